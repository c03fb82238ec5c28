#include "core/date_range.h"

#include <algorithm>
#include <chrono>

namespace phigate {
namespace {

constexpr int64_t kDayMs = 86'400'000;

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

int64_t DaysFromCivil(int64_t year, int64_t month, int64_t day) {
  year -= month <= 2 ? 1 : 0;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const int64_t yoe = year - era * 400;
  const int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int32_t UtcYear(int64_t millis) {
  const std::chrono::sys_days days{
      std::chrono::days{millis >= 0 ? millis / kDayMs : -((-millis + kDayMs - 1) / kDayMs)}};
  return static_cast<int32_t>(int{std::chrono::year_month_day(days).year()});
}

std::optional<DateRange> ParseDateRange(std::string_view v) {
  int year = 0;
  int month = 1;
  int day = 1;
  if (!Digits(v, 0, 4, &year) || year < 1) return std::nullopt;
  if (v.size() == 4) {
    return DateRange{DaysFromCivil(year, 1, 1) * kDayMs, DaysFromCivil(year + 1, 1, 1) * kDayMs};
  }
  if (v.size() < 7 || v[4] != '-' || !Digits(v, 5, 2, &month) || month < 1 || month > 12) {
    return std::nullopt;
  }
  if (v.size() == 7) {
    const int64_t lo = DaysFromCivil(year, month, 1) * kDayMs;
    const int64_t hi =
        (month == 12 ? DaysFromCivil(year + 1, 1, 1) : DaysFromCivil(year, month + 1, 1)) * kDayMs;
    return DateRange{lo, hi};
  }
  if (v.size() < 10 || v[7] != '-' || !Digits(v, 8, 2, &day)) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year(year),
                                        std::chrono::month(static_cast<unsigned>(month)),
                                        std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) return std::nullopt;  // the month's length, leap years too
  const int64_t midnight = DaysFromCivil(year, month, day) * kDayMs;
  if (v.size() == 10) return DateRange{midnight, midnight + kDayMs};
  int hour = 0;
  int minute = 0;
  int second = 0;
  if (v[10] != 'T' || v.size() < 16 || !Digits(v, 11, 2, &hour) || v[13] != ':' ||
      !Digits(v, 14, 2, &minute) || hour > 23 || minute > 59) {
    return std::nullopt;
  }
  size_t pos = 16;
  int64_t precision = 60000;
  int64_t millis = 0;
  if (pos < v.size() && v[pos] == ':') {
    // A leap second (23:59:60, which FHIR's dateTime pattern admits) is read as :59.
    if (!Digits(v, pos + 1, 2, &second) || second > 60) return std::nullopt;
    second = std::min(second, 59);
    pos += 3;
    precision = 1000;
    if (pos < v.size() && v[pos] == '.') {
      ++pos;
      size_t n = 0;
      int64_t scale = 100;
      while (pos < v.size() && v[pos] >= '0' && v[pos] <= '9') {
        if (n < 3) {
          millis += (v[pos] - '0') * scale;
          scale /= 10;
        }
        ++n;
        ++pos;
      }
      if (n == 0) return std::nullopt;
      precision = n >= 3 ? 1 : (n == 2 ? 10 : 100);
    }
  }
  int64_t offset_ms = 0;
  if (pos < v.size()) {
    if (v[pos] == 'Z' && pos + 1 == v.size()) {
      // UTC
    } else if ((v[pos] == '+' || v[pos] == '-') && v.size() == pos + 6 && v[pos + 3] == ':') {
      int oh = 0;
      int om = 0;
      if (!Digits(v, pos + 1, 2, &oh) || !Digits(v, pos + 4, 2, &om) || oh > 14 || om > 59) {
        return std::nullopt;
      }
      offset_ms = (oh * 60 + om) * int64_t{60000};
      if (v[pos] == '-') offset_ms = -offset_ms;
    } else {
      return std::nullopt;
    }
  }
  const int64_t lo =
      midnight + ((hour * 60 + minute) * 60 + second) * int64_t{1000} + millis - offset_ms;
  return DateRange{lo, lo + precision};
}

}  // namespace phigate
