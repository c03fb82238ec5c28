#include "core/clock.h"

#include <cstdio>
#include <ctime>

namespace phigate {

namespace {
std::tm UtcTm(int64_t millis) {
  std::time_t secs = static_cast<std::time_t>(millis / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return tm;
}
}  // namespace

std::string FormatInstant(int64_t millis) {
  std::tm tm = UtcTm(millis);
  char buf[96];  // sized for any int fields, so the compiler can prove no truncation
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis % 1000));
  return buf;
}

std::optional<int64_t> ParseDateUtc(std::string_view date) {
  if (date.size() != 10 || date[4] != '-' || date[7] != '-') return std::nullopt;
  auto digits = [&](size_t pos, size_t n) -> int {
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (date[i] < '0' || date[i] > '9') return -1;
      v = v * 10 + (date[i] - '0');
    }
    return v;
  };
  const int y = digits(0, 4);
  const int m = digits(5, 2);
  const int d = digits(8, 2);
  if (y < 1970 || m < 1 || d < 1) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year(y),
                                        std::chrono::month(static_cast<unsigned>(m)),
                                        std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;  // month range and the month's length, leap years too
  return int64_t{std::chrono::sys_days(ymd).time_since_epoch().count()} * 86'400'000;
}

std::string FormatHttpDate(int64_t millis) {
  std::tm tm = UtcTm(millis);
  char buf[40];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

}  // namespace phigate
