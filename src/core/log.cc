#include "core/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "core/clock.h"

namespace phigate {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_fd{2};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
    case LogLevel::kAlert:
      return "alert";
  }
  return "info";
}
}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
void SetLogFd(int fd) { g_fd.store(fd); }

void AppendJsonEscaped(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void Log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
  if (static_cast<int>(level) < g_level.load()) return;
  std::string line;
  line.reserve(256);
  line += "{\"time\":";
  AppendJsonEscaped(line, FormatInstant(SystemClock::Instance().NowMillis()));
  line += ",\"level\":\"";
  line += LevelName(level);
  line += "\",\"event\":";
  AppendJsonEscaped(line, event);
  for (const LogField& f : fields) {
    line += ',';
    AppendJsonEscaped(line, f.key);
    line += ':';
    if (const auto* s = std::get_if<std::string>(&f.value)) {
      AppendJsonEscaped(line, *s);
    } else if (const auto* i = std::get_if<int64_t>(&f.value)) {
      line += std::to_string(*i);
    } else {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.3f", std::get<double>(f.value));
      line += buf;
    }
  }
  line += "}\n";
  const char* p = line.data();
  size_t left = line.size();
  int fd = g_fd.load();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n <= 0) break;  // Logging never fails a request.
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace phigate
