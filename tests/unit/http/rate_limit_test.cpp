// The GCRA limiter: burst, refusal with Retry-After, refill, and bounded memory.
#include "http/rate_limit.hpp"

#include <gtest/gtest.h>

namespace emporium {
namespace {

constexpr std::int64_t second_us = 1'000'000;

TEST(RateLimiter, AllowsTheBurstThenRefusesWithRetryAfter) {
  RateLimiter limiter("default", 10, 5, 1000);
  for (int i = 0; i < 5; ++i) {
    auto d = limiter.check("alice", 0);
    EXPECT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, 4 - i);
  }
  auto refused = limiter.check("alice", 0);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_s, 1);  // 100 ms away, rounded up to whole seconds
  EXPECT_TRUE(limiter.check("bob", 0).allowed);  // per principal
}

// A request another budget refused is given back: the principal has what it had before it.
TEST(RateLimiter, GivingBackUndoesTheLastRequestAllowed) {
  RateLimiter limiter("default", 10, 3, 1000);
  EXPECT_EQ(limiter.check("a", 0).remaining, 2);
  EXPECT_EQ(limiter.check("a", 0).remaining, 1);
  limiter.give_back("a");
  EXPECT_EQ(limiter.check("a", 0).remaining, 1);
  EXPECT_EQ(limiter.check("a", 0).remaining, 0);
  EXPECT_FALSE(limiter.check("a", 0).allowed);
  // After a full refill (the time before now counts as now), one give back changes nothing
  // a later check would see beyond the one request it undoes.
  EXPECT_EQ(limiter.check("a", 10 * second_us).remaining, 2);
  limiter.give_back("a");
  EXPECT_EQ(limiter.check("a", 10 * second_us).remaining, 2);
  limiter.give_back("nobody");  // unknown: nothing to undo
  EXPECT_EQ(limiter.size(), 1u);
}

TEST(RateLimiter, RefillsAtTheRate) {
  RateLimiter limiter("default", 10, 2, 1000);
  EXPECT_TRUE(limiter.check("a", 0).allowed);
  EXPECT_TRUE(limiter.check("a", 0).allowed);
  EXPECT_FALSE(limiter.check("a", 0).allowed);
  EXPECT_FALSE(limiter.check("a", second_us / 10 - 1).allowed);
  EXPECT_TRUE(limiter.check("a", second_us / 10).allowed);  // one interval later, one more
  EXPECT_FALSE(limiter.check("a", second_us / 10).allowed);
}

TEST(RateLimiter, RetryAfterGrowsWithASlowRate) {
  RateLimiter limiter("place", 0.1, 1, 1000);  // one request per 10 s
  EXPECT_TRUE(limiter.check("a", 0).allowed);
  auto d = limiter.check("a", 0);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_s, 10);
}

TEST(RateLimiter, MemoryStaysBoundedWithAMillionPrincipals) {
  constexpr std::size_t cap = 50'000;
  RateLimiter limiter("default", 1, 1, cap);
  std::int64_t now = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    limiter.check("p" + std::to_string(i), now);
    // A busy principal keeps its entry (it is always recent) and stays limited.
    if (i % 1000 == 0) {
      auto d = limiter.check("hot", now);
      if (i > 0) EXPECT_FALSE(d.allowed) << i;
    }
    now += 1;
  }
  EXPECT_EQ(limiter.size(), cap);
}

TEST(RateLimiter, HeadersFollowTheDraftFormat) {
  RateLimiter limiter("default", 200, 400, 10);
  EXPECT_EQ(limiter.policy_header(), "\"default\";q=400;w=2");
  auto d = limiter.check("a", 0);
  EXPECT_EQ(limiter.rate_header(d), "\"default\";r=399;t=1");
}

}  // namespace
}  // namespace emporium
