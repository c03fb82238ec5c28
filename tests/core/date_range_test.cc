// ParseDateRange, DaysFromCivil and UtcYear (core/date_range.h): the interval of instants a
// FHIR date, dateTime or instant covers at its precision (search.html#date), with exact
// millisecond bounds, and the UTC year of an instant on both sides of 1970.
#include "core/date_range.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace phigate {
namespace {

constexpr int64_t kSecond = 1000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kDay = 24 * kHour;

// Unix seconds of UTC midnights, from `date -u -d ... +%s`.
constexpr int64_t k2020_01_01 = 1'577'836'800;
constexpr int64_t k2020_02_01 = 1'580'515'200;
constexpr int64_t k2020_02_29 = 1'582'934'400;
constexpr int64_t k2020_03_01 = 1'583'020'800;
constexpr int64_t k2021_01_01 = 1'609'459'200;
constexpr int64_t k2023_01_01 = 1'672'531'200;
constexpr int64_t k2024_01_01 = 1'704'067'200;
constexpr int64_t k0001_01_01 = -62'135'596'800;
constexpr int64_t k9999_01_01 = 253'370'764'800;
constexpr int64_t k10000_01_01 = 253'402'300'800;

void ExpectRange(std::string_view text, int64_t lo, int64_t hi) {
  const std::optional<DateRange> r = ParseDateRange(text);
  ASSERT_TRUE(r.has_value()) << text;
  EXPECT_EQ(r->lo, lo) << text;
  EXPECT_EQ(r->hi, hi) << text;
}

TEST(DaysFromCivilTest, KnownDays) {
  EXPECT_EQ(DaysFromCivil(1970, 1, 1), 0);
  EXPECT_EQ(DaysFromCivil(1969, 12, 31), -1);
  EXPECT_EQ(DaysFromCivil(2000, 3, 1), 11'017);
  EXPECT_EQ(DaysFromCivil(2020, 2, 29) * kDay, k2020_02_29 * kSecond);
  EXPECT_EQ(DaysFromCivil(1, 1, 1) * kDay, k0001_01_01 * kSecond);
  EXPECT_EQ(DaysFromCivil(10000, 1, 1) * kDay, k10000_01_01 * kSecond);
}

TEST(ParseDateRangeTest, YearIsTheWholeYear) {
  ExpectRange("2020", k2020_01_01 * kSecond, k2021_01_01 * kSecond);
  ExpectRange("2023", k2023_01_01 * kSecond, k2024_01_01 * kSecond);
}

TEST(ParseDateRangeTest, MonthIsTheWholeMonthLeapFebruaryIncluded) {
  ExpectRange("2020-02", k2020_02_01 * kSecond, k2020_03_01 * kSecond);
  ExpectRange("2020-12", (k2021_01_01 - 31 * 86'400) * kSecond, k2021_01_01 * kSecond);
  ExpectRange("2023-02", DaysFromCivil(2023, 2, 1) * kDay, DaysFromCivil(2023, 3, 1) * kDay);
  EXPECT_EQ(ParseDateRange("2023-02")->hi - ParseDateRange("2023-02")->lo, 28 * kDay);
  EXPECT_EQ(ParseDateRange("2020-02")->hi - ParseDateRange("2020-02")->lo, 29 * kDay);
}

TEST(ParseDateRangeTest, DayIsTheWholeDay) {
  ExpectRange("2020-02-29", k2020_02_29 * kSecond, k2020_03_01 * kSecond);
  ExpectRange("2000-02-29", DaysFromCivil(2000, 2, 29) * kDay, DaysFromCivil(2000, 3, 1) * kDay);
  ExpectRange("2023-12-31", (k2024_01_01 - 86'400) * kSecond, k2024_01_01 * kSecond);
}

TEST(ParseDateRangeTest, TimePrecisions) {
  const int64_t t = k2020_02_29 * kSecond + 12 * kHour + 34 * kMinute;
  ExpectRange("2020-02-29T12:34", t, t + kMinute);
  ExpectRange("2020-02-29T12:34Z", t, t + kMinute);
  ExpectRange("2020-02-29T12:34:56", t + 56 * kSecond, t + 57 * kSecond);
  ExpectRange("2020-02-29T12:34:56Z", t + 56 * kSecond, t + 57 * kSecond);
  // Fractions: the range is the precision written, milliseconds at most.
  ExpectRange("2020-02-29T12:34:56.1Z", t + 56'100, t + 56'200);
  ExpectRange("2020-02-29T12:34:56.12Z", t + 56'120, t + 56'130);
  ExpectRange("2020-02-29T12:34:56.123Z", t + 56'123, t + 56'124);
  ExpectRange("2020-02-29T12:34:56.1239Z", t + 56'123, t + 56'124);
  ExpectRange("2020-02-29T12:34:56.000000001Z", t + 56'000, t + 56'001);
  ExpectRange("2020-02-29T00:00:00.000Z", k2020_02_29 * kSecond, k2020_02_29 * kSecond + 1);
  ExpectRange("2020-02-29T23:59:59.999Z", k2020_03_01 * kSecond - 1, k2020_03_01 * kSecond);
}

TEST(ParseDateRangeTest, ZoneOffsetsAreSubtracted) {
  const int64_t t = k2020_02_29 * kSecond + 12 * kHour + 34 * kMinute;
  ExpectRange("2020-02-29T12:34:00+00:00", t, t + kSecond);
  ExpectRange("2020-02-29T12:34:00-00:00", t, t + kSecond);
  ExpectRange("2020-02-29T12:34:00+05:30", t - 5 * kHour - 30 * kMinute,
              t - 5 * kHour - 30 * kMinute + kSecond);
  ExpectRange("2020-02-29T12:34:00-08:00", t + 8 * kHour, t + 8 * kHour + kSecond);
  ExpectRange("2020-02-29T12:34+01:00", t - kHour, t - kHour + kMinute);
  ExpectRange("2020-02-29T12:34:56.5-03:45", t + 56'500 + 3 * kHour + 45 * kMinute,
              t + 56'600 + 3 * kHour + 45 * kMinute);
  ExpectRange("2020-02-29T12:34:00+14:00", t - 14 * kHour, t - 14 * kHour + kSecond);
  // A local time of one day may be another UTC day (and year).
  ExpectRange("2021-01-01T01:00:00+02:00", k2021_01_01 * kSecond - kHour,
              k2021_01_01 * kSecond - kHour + kSecond);
}

TEST(ParseDateRangeTest, YearBounds) {
  ExpectRange("0001", k0001_01_01 * kSecond, DaysFromCivil(2, 1, 1) * kDay);
  ExpectRange("0001-01-01", k0001_01_01 * kSecond, k0001_01_01 * kSecond + kDay);
  ExpectRange("9999", k9999_01_01 * kSecond, k10000_01_01 * kSecond);
  ExpectRange("9999-12", DaysFromCivil(9999, 12, 1) * kDay, k10000_01_01 * kSecond);
  ExpectRange("9999-12-31T23:59:59.999Z", k10000_01_01 * kSecond - 1, k10000_01_01 * kSecond);
  // An offset may carry the first instant of year 1 before it; the range is still exact.
  ExpectRange("0001-01-01T00:00:00+01:00", k0001_01_01 * kSecond - kHour,
              k0001_01_01 * kSecond - kHour + kSecond);
}

TEST(ParseDateRangeTest, RejectsWhatIsNotARealDate) {
  for (std::string_view bad : {
           "",
           "garbage",
           "abcd",
           "202",
           "0000",
           "0000-01-01",
           "10000",
           "+2020",
           "-2020",
           "2020-",
           "2020-1",
           "2020-00",
           "2020-13",
           "2023-13",
           "2020/01/01",
           "2020-01-",
           "2020-01-1",
           "2020-01-00",
           "2020-01-32",
           "2023-02-29",
           "1900-02-29",
           "2100-02-29",
           "2020-04-31",
           "2020-02-30",
           "2020-01-01Z",
           "2020-01-01+01:00",
           "2020-01-01 12:00",
           "2020-01-01t12:00",
           "2020-01-01T",
           "2020-01-01T12",
           "2020-01-01T12:",
           "2020-01-01T12:3",
           "2020-01-01T1:30",
           "2020-01-01T24:00",
           "2020-01-01T24:00:00Z",
           "2020-01-01T23:60",
           "2020-01-01T12:34:61Z",
           "2020-01-01T12:34:5",
           "2020-01-01T12:34:56.",
           "2020-01-01T12:34:56.Z",
           "2020-01-01T12:34:56.1x",
           "2020-01-01T12:34:56z",
           "2020-01-01T12:34:56ZZ",
           "2020-01-01T12:34:56Z ",
           " 2020",
           "2020 ",
           "2020-01-01T12:34:56+05",
           "2020-01-01T12:34:56+05:3",
           "2020-01-01T12:34:56+0530",
           "2020-01-01T12:34:56+05:30:00",
           "2020-01-01T12:34:56+15:00",
           "2020-01-01T12:34:56+05:60",
           "2020-01-01T12:34:56*05:00",
           "2020-01-01T12:34:56+aa:bb",
       }) {
    EXPECT_EQ(ParseDateRange(bad), std::nullopt) << "\"" << bad << "\"";
  }
}

// datatypes.html#dateTime and #instant allow a leap second (seconds "60" in the published
// regex), and the validator (primitive_types.cc ScanTime) stores such values; a date that
// does not parse is not indexed, so the resource is lost to every date search. Proposed:
// read second 60 as second 59, so the value stays in its minute, day and year.
TEST(ParseDateRangeTest, LeapSecondIsWithinItsMinute) {
  const int64_t last_second = 1'483'228'799 * kSecond;  // 2016-12-31T23:59:59Z
  ASSERT_EQ(last_second, DaysFromCivil(2017, 1, 1) * kDay - kSecond);
  ExpectRange("2016-12-31T23:59:60Z", last_second, last_second + kSecond);
  ExpectRange("2016-12-31T23:59:60.5Z", last_second + 500, last_second + 600);
  ExpectRange("2017-01-01T00:59:60+01:00", last_second, last_second + kSecond);
  EXPECT_EQ(ParseDateRange("2016-12-31T23:59:61Z"), std::nullopt);
}

TEST(ParseDateRangeTest, EmbeddedNulIsRejected) {
  const std::string with_nul("2020\0", 5);
  EXPECT_EQ(ParseDateRange(with_nul), std::nullopt);
  const std::string day_with_nul("2020-01-01\0", 11);
  EXPECT_EQ(ParseDateRange(day_with_nul), std::nullopt);
}

TEST(UtcYearTest, AroundTheEpoch) {
  EXPECT_EQ(UtcYear(0), 1970);
  EXPECT_EQ(UtcYear(-1), 1969);
  EXPECT_EQ(UtcYear(-kDay), 1969);
  EXPECT_EQ(UtcYear(-kDay - 1), 1969);
  // 1969-01-01T00:00:00Z is -365 days; one millisecond before it is 1968.
  EXPECT_EQ(UtcYear(-365 * kDay), 1969);
  EXPECT_EQ(UtcYear(-365 * kDay - 1), 1968);
  // 1968 is a leap year: 1968-01-01 is 366 days before 1969-01-01.
  EXPECT_EQ(UtcYear(-731 * kDay), 1968);
  EXPECT_EQ(UtcYear(-731 * kDay - 1), 1967);
}

TEST(UtcYearTest, YearBoundaries) {
  EXPECT_EQ(UtcYear(k2024_01_01 * kSecond - 1), 2023);
  EXPECT_EQ(UtcYear(k2024_01_01 * kSecond), 2024);
  EXPECT_EQ(UtcYear(k2020_02_29 * kSecond + 12 * kHour), 2020);
  EXPECT_EQ(UtcYear(k0001_01_01 * kSecond), 1);
  EXPECT_EQ(UtcYear(k0001_01_01 * kSecond - 1), 0);
  EXPECT_EQ(UtcYear(k10000_01_01 * kSecond - 1), 9999);
  EXPECT_EQ(UtcYear(k10000_01_01 * kSecond), 10000);
  // 1900 is not a leap year, 1600 is.
  EXPECT_EQ(UtcYear(DaysFromCivil(1900, 12, 31) * kDay), 1900);
  EXPECT_EQ(UtcYear(DaysFromCivil(1901, 1, 1) * kDay), 1901);
  EXPECT_EQ(UtcYear(DaysFromCivil(1600, 12, 31) * kDay + kDay - 1), 1600);
}

TEST(UtcYearTest, AgreesWithParseDateRangeForEveryYearStart) {
  // The first and last millisecond of each year parse back to that year, both sides of
  // 1970 (what the index stores in the clear for date parameters).
  for (int year : {1, 4, 99, 100, 400, 1066, 1582, 1899, 1900, 1969, 1970, 1971, 2000, 2038, 2100,
                   9998, 9999}) {
    char text[5];
    std::snprintf(text, sizeof(text), "%04d", year);
    const std::optional<DateRange> r = ParseDateRange(text);
    ASSERT_TRUE(r.has_value()) << text;
    EXPECT_EQ(UtcYear(r->lo), year) << text;
    EXPECT_EQ(UtcYear(r->hi - 1), year) << text;
    EXPECT_EQ(UtcYear(r->lo - 1), year - 1) << text;
    EXPECT_EQ(UtcYear(r->hi), year + 1) << text;
  }
}

}  // namespace
}  // namespace phigate
