// The item fences' limits at their edges: how long a fence is kept, and how many.
#include <chrono>
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "runtime/fences.hpp"

namespace emporium {
namespace {

using namespace std::chrono_literals;
const auto t0 = ItemFences::clock::time_point{} + 1h;

TEST(ItemFences, RefuseOnlyTheWriterSkuAndVersionTheyName) {
  ItemFences fences;
  fences.add(7, "sku-1", 12, t0);
  EXPECT_TRUE(fences.refuses(7, "sku-1", 12));
  EXPECT_FALSE(fences.refuses(8, "sku-1", 12));  // another activation
  EXPECT_FALSE(fences.refuses(7, "sku-2", 12));
  EXPECT_FALSE(fences.refuses(7, "sku-1", 11));  // a write that does not expect the refused one
  fences.add(7, "sku-1", 13, t0 + 1ms);          // the next write refused in turn: moved, not added
  EXPECT_EQ(fences.size(), 1u);
  EXPECT_FALSE(fences.refuses(7, "sku-1", 12));
  EXPECT_TRUE(fences.refuses(7, "sku-1", 13));
}

// Kept exactly `kept` after its last move, gone a moment later; a move restarts its time.
TEST(ItemFences, AFenceIsKeptItsTimeAndNoLonger) {
  ItemFences fences(60'000ms, 4096);
  fences.add(1, "a", 2, t0);
  fences.add(2, "b", 2, t0 + 30s);
  fences.expire(t0 + 60s);
  EXPECT_TRUE(fences.refuses(1, "a", 2));
  fences.expire(t0 + 60s + 1ns);
  EXPECT_FALSE(fences.refuses(1, "a", 2));
  EXPECT_TRUE(fences.refuses(2, "b", 2));
  fences.add(2, "b", 3, t0 + 80s);
  fences.expire(t0 + 140s);
  EXPECT_TRUE(fences.refuses(2, "b", 3));
  fences.expire(t0 + 140s + 1ns);
  EXPECT_TRUE(fences.empty());
  EXPECT_EQ(ItemFences::kKeptMs, 60'000ms);  // what the persistence actor keeps them for
}

// At most `capacity`: all of them kept up to it, and the oldest goes for one more.
TEST(ItemFences, PastItsCapacityTheOldestGoes) {
  ASSERT_EQ(ItemFences::kCapacity, 4096u);  // the persistence actor's limit
  ItemFences fences;
  for (std::uint64_t w = 1; w <= ItemFences::kCapacity; ++w)
    fences.add(w, "sku-" + std::to_string(w), 5, t0 + std::chrono::milliseconds(w));
  EXPECT_EQ(fences.size(), ItemFences::kCapacity);
  for (std::uint64_t w = 1; w <= ItemFences::kCapacity; ++w)
    ASSERT_TRUE(fences.refuses(w, "sku-" + std::to_string(w), 5)) << w;
  // The first one moved last: now the second is the oldest.
  fences.add(1, "sku-1", 6, t0 + 10s);
  fences.add(5000, "sku-5000", 5, t0 + 11s);
  EXPECT_EQ(fences.size(), ItemFences::kCapacity);
  EXPECT_TRUE(fences.refuses(5000, "sku-5000", 5));
  EXPECT_TRUE(fences.refuses(1, "sku-1", 6));
  EXPECT_FALSE(fences.refuses(2, "sku-2", 5));
  EXPECT_TRUE(fences.refuses(3, "sku-3", 5));
}

}  // namespace
}  // namespace emporium
