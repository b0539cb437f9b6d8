// rfc3339: the date computed without gmtime_r and printf, checked against them.
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "runtime/clock.hpp"

namespace emporium {
namespace {

// The C library's answer, for a time at or after 1970.
std::string reference(std::int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

TEST(Rfc3339, KnownTimes) {
  EXPECT_EQ(rfc3339(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(rfc3339(951'782'400'000), "2000-02-29T00:00:00.000Z");     // a leap day of a 400th year
  EXPECT_EQ(rfc3339(4'107'542'399'999), "2100-02-28T23:59:59.999Z");   // 2100 has no leap day
  EXPECT_EQ(rfc3339(4'107'542'400'000), "2100-03-01T00:00:00.000Z");
  EXPECT_EQ(rfc3339(1'795'734'062'345), "2026-11-26T23:01:02.345Z");
  EXPECT_EQ(rfc3339(253'402'300'799'999), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(rfc3339(-1), "1969-12-31T23:59:59.999Z");  // floored, not "-001" milliseconds
}

TEST(Rfc3339, AgreesWithTheCLibraryOverTenThousandYears) {
  std::mt19937_64 rng(20261127);
  std::uniform_int_distribution<std::int64_t> any(0, 253'402'300'799'999);
  for (int i = 0; i < 200'000; ++i) {
    auto ms = any(rng);
    ASSERT_EQ(rfc3339(ms), reference(ms)) << ms;
  }
  // Every day boundary of the years around now, and of a century.
  for (std::int64_t day = 0; day < 366 * 140; ++day) {
    auto ms = (day + 10'957) * 86'400'000;  // from 2000-01-01
    ASSERT_EQ(rfc3339(ms), reference(ms)) << ms;
    ASSERT_EQ(rfc3339(ms - 1), reference(ms - 1)) << ms - 1;
  }
}

}  // namespace
}  // namespace emporium
