// rfc3339, computed without gmtime_r and printf and checked against them; ids from new_id.
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

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
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

TEST(Rfc3339, KnownTimes) {
  EXPECT_EQ(rfc3339(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(rfc3339(951'782'400'000), "2000-02-29T00:00:00.000Z");    // a leap day of a 400th year
  EXPECT_EQ(rfc3339(4'107'542'399'999), "2100-02-28T23:59:59.999Z");  // 2100 has no leap day
  EXPECT_EQ(rfc3339(4'107'542'400'000), "2100-03-01T00:00:00.000Z");
  EXPECT_EQ(rfc3339(1'795'734'062'345), "2026-11-26T23:01:02.345Z");
  EXPECT_EQ(rfc3339(253'402'300'799'999), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(rfc3339(-1), "1969-12-31T23:59:59.999Z");  // floored, not "-001" milliseconds
  EXPECT_EQ(rfc3339(-62'167'219'200'000), "0000-01-01T00:00:00.000Z");
  // Outside years 0 to 9999, gmtime_r and printf write it (floored as well).
  EXPECT_EQ(rfc3339(253'402'300'800'000), "10000-01-01T00:00:00.000Z");
  EXPECT_EQ(rfc3339(-62'167'219'200'001), "-001-12-31T23:59:59.999Z");
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

namespace emporium {
namespace {

// Ids from the buffered generator: the same form as always (prefix, 10 characters of time, 16 of
// randomness, Crockford base32), all different over many refills of the buffer (each takes 256),
// from several threads at once, and every character of the alphabet in every random position.
TEST(NewId, UniqueWellFormedAndRandomAcrossRefillsAndThreads) {
  constexpr int kThreads = 4, kEach = 5'000;
  std::vector<std::vector<std::string>> made(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&made, t] {
      for (int i = 0; i < kEach; ++i) made[t].push_back(new_id("ord_", 1'795'734'062'345));
    });
  for (auto& th : threads) th.join();
  const std::string alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
  std::set<std::string> all;
  std::vector<std::set<char>> seen(16);
  for (const auto& ids : made)
    for (const auto& id : ids) {
      ASSERT_EQ(id.size(), 4u + 26u) << id;
      ASSERT_EQ(id.substr(0, 4), "ord_");
      for (char c : id.substr(4)) ASSERT_NE(alphabet.find(c), std::string::npos) << id;
      for (int i = 0; i < 16; ++i) seen[i].insert(id[4 + 10 + i]);
      all.insert(id);
    }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kEach));
  // Random parts that repeat: ids differ by their time part alone (it rises by 1 ms per id).
  std::set<std::string> randoms;
  for (const auto& id : all) randoms.insert(id.substr(14));
  EXPECT_EQ(randoms.size(), all.size());
  for (int i = 0; i < 16; ++i) EXPECT_EQ(seen[i].size(), 32u) << "position " << i;
}

}  // namespace
}  // namespace emporium
