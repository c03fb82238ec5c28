// Clock: the one seam for time, so tests use fake time.
// Thread-safety: SystemClock is stateless; FakeClock is guarded by an atomic.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace phigate {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (UTC).
  virtual int64_t NowMillis() const = 0;
  int64_t NowSeconds() const { return NowMillis() / 1000; }
};

class SystemClock final : public Clock {
 public:
  int64_t NowMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  static const SystemClock& Instance() {
    static const SystemClock clock;
    return clock;
  }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t millis) : millis_(millis) {}
  int64_t NowMillis() const override { return millis_.load(); }
  void Set(int64_t millis) { millis_.store(millis); }
  void Advance(int64_t millis) { millis_.fetch_add(millis); }

 private:
  std::atomic<int64_t> millis_;
};

// FHIR instant, e.g. "2026-11-29T07:52:16.123Z" (always UTC, millisecond precision).
std::string FormatInstant(int64_t millis);
// A calendar date "YYYY-MM-DD" (years 1970-9999, real dates only) as the UTC milliseconds
// of its midnight; nullopt for anything else.
std::optional<int64_t> ParseDateUtc(std::string_view date);
// RFC 7231 IMF-fixdate, e.g. "Sun, 29 Nov 2026 07:52:16 GMT", for Last-Modified.
std::string FormatHttpDate(int64_t millis);

}  // namespace phigate
