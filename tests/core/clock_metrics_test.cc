// core/clock.h dates and core/metrics.h counters.
#include <gtest/gtest.h>

#include "core/clock.h"
#include "core/metrics.h"

namespace phigate {
namespace {

TEST(ParseDateUtcTest, CalendarDates) {
  EXPECT_EQ(ParseDateUtc("1970-01-01"), int64_t{0});
  EXPECT_EQ(ParseDateUtc("2026-11-29"), int64_t{1'795'910'400'000});
  EXPECT_EQ(FormatInstant(*ParseDateUtc("2024-02-29")), "2024-02-29T00:00:00.000Z");
  for (std::string_view bad :
       {"2023-02-29", "2026-13-01", "2026-00-10", "2026-04-31", "1969-12-31", "2026-1-01",
        "2026/01/01", "2026-01-01T00:00", "", "abcd-ef-gh", "2026-01-0a"}) {
    EXPECT_EQ(ParseDateUtc(bad), std::nullopt) << bad;
  }
}

TEST(MetricsTest, CountersRenderInPrometheusText) {
  Counter& c = GetCounter("phigate_test_things_total", "Things counted by the test");
  EXPECT_EQ(&c, &GetCounter("phigate_test_things_total", "ignored the second time"));
  const uint64_t before = c.Value();
  c.Inc();
  c.Inc(2);
  EXPECT_EQ(c.Value(), before + 3);
  const std::string text = RenderMetrics();
  EXPECT_NE(text.find("# HELP phigate_test_things_total Things counted by the test\n"
                      "# TYPE phigate_test_things_total counter\n"
                      "phigate_test_things_total " +
                      std::to_string(before + 3) + "\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace phigate
