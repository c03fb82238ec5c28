// PHI-free structured logging: one JSON object per line on stderr.
//
// The logger accepts only named fields whose values the caller vouches are free of PHI:
// request ids, route templates (never the concrete path), status codes, durations, client
// ids, resource type/id/version. Never pass a resource body, a query value, a token, a
// secret or a submitted value. Thread-safety: Log() may be called from any thread; each
// line is written with one write(2) so lines never interleave.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace phigate {

// kAlert: needs a person's attention now (syslog "alert"), e.g. a break-glass grant.
enum class LogLevel { kDebug, kInfo, kWarn, kError, kAlert };

struct LogField {
  LogField(std::string_view k, std::string_view v) : key(k), value(std::string(v)) {}
  LogField(std::string_view k, const char* v) : key(k), value(std::string(v)) {}
  LogField(std::string_view k, int64_t v) : key(k), value(v) {}
  LogField(std::string_view k, int v) : key(k), value(int64_t{v}) {}
  LogField(std::string_view k, uint64_t v) : key(k), value(static_cast<int64_t>(v)) {}
  LogField(std::string_view k, double v) : key(k), value(v) {}
  std::string_view key;
  std::variant<std::string, int64_t, double> value;
};

void SetLogLevel(LogLevel level);
// Redirects output to a file descriptor (tests); default is 2 (stderr).
void SetLogFd(int fd);
void Log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {});

// JSON string escaping shared with the log writer (RFC 8259 §7).
void AppendJsonEscaped(std::string& out, std::string_view s);

}  // namespace phigate
