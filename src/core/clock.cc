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

std::string FormatHttpDate(int64_t millis) {
  std::tm tm = UtcTm(millis);
  char buf[40];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

}  // namespace phigate
