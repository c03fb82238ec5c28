// DateRange: a FHIR date, dateTime or instant (datatypes.html#dateTime) as the interval of
// instants its precision covers, which is how FHIR search compares dates
// (search.html#date): "2026" is the whole year, "2026-11-29T16:00" the whole minute,
// "2026-11-29T16:00:00.123Z" one millisecond.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace phigate {

struct DateRange {
  int64_t lo = 0;  // UTC milliseconds, inclusive
  int64_t hi = 0;  // UTC milliseconds, exclusive
};

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t year, int64_t month, int64_t day);

// Accepts yyyy, yyyy-mm, yyyy-mm-dd and yyyy-mm-ddThh:mm[:ss[.f+]][Z|(+|-)hh:mm] with years
// 0001-9999 and real calendar dates. A time without a zone is taken as UTC (the spec
// leaves it to the server). nullopt for anything else.
std::optional<DateRange> ParseDateRange(std::string_view text);

// The UTC calendar year of `millis` (years before 1970 included).
int32_t UtcYear(int64_t millis);

}  // namespace phigate
