// The node's record of skus found in no stored item (runtime/snapshots.hpp, AbsentSkus): known
// for its time, forgotten on a create or a view change, and bounded.
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "runtime/snapshots.hpp"

namespace emporium {
namespace {

using namespace std::chrono_literals;

TEST(AbsentSkus, ASkuIsKnownAbsentForItsTimeOnly) {
  AbsentSkus absent(1'000, kAbsentSkusMax);
  EXPECT_FALSE(absent.known_absent("ghost"));
  absent.note("ghost", absent.generation());
  EXPECT_TRUE(absent.known_absent("ghost"));
  EXPECT_FALSE(absent.known_absent("other"));
  std::this_thread::sleep_for(1'100ms);
  EXPECT_FALSE(absent.known_absent("ghost"));
}

// A lookup that read the database while the sku was created (or all were cleared) notes nothing:
// what it read may be older than the create.
TEST(AbsentSkus, ALookupOlderThanAForgetNotesNothing) {
  AbsentSkus absent(60'000, kAbsentSkusMax);
  auto before = absent.generation();
  absent.forget("mug");  // a create, while the lookup read
  absent.note("mug", before);
  EXPECT_FALSE(absent.known_absent("mug"));
  before = absent.generation();
  absent.clear();
  absent.note("mug", before);
  EXPECT_FALSE(absent.known_absent("mug"));
  absent.note("mug", absent.generation());
  EXPECT_TRUE(absent.known_absent("mug"));
}

TEST(AbsentSkus, ForgettingOrClearingEndsItAtOnce) {
  AbsentSkus absent(60'000, kAbsentSkusMax);
  absent.note("a", absent.generation());
  absent.note("b", absent.generation());
  absent.forget("a");
  EXPECT_FALSE(absent.known_absent("a"));
  EXPECT_TRUE(absent.known_absent("b"));
  absent.clear();
  EXPECT_FALSE(absent.known_absent("b"));
  EXPECT_EQ(absent.size(), 0u);
}

TEST(AbsentSkus, ATimeOfZeroKeepsNothing) {
  AbsentSkus absent(0, kAbsentSkusMax);
  absent.note("ghost", absent.generation());
  EXPECT_FALSE(absent.known_absent("ghost"));
  EXPECT_EQ(absent.size(), 0u);
}

// At most `max` are kept (per shard, a sixteenth of it): past that, a new sku is not noted until
// expired ones make room.
TEST(AbsentSkus, ItKeepsAtMostItsMaximum) {
  AbsentSkus absent(200, 32);
  for (int i = 0; i < 1000; ++i) absent.note("sku-" + std::to_string(i), absent.generation());
  EXPECT_LE(absent.size(), 32u);
  EXPECT_GE(absent.size(), 16u);  // every shard took some
  std::this_thread::sleep_for(250ms);
  int noted = 0;
  for (int i = 0; i < 1000; ++i) {
    absent.note("new-" + std::to_string(i), absent.generation());
    noted += absent.known_absent("new-" + std::to_string(i)) ? 1 : 0;
  }
  EXPECT_LE(absent.size(), 32u);
  EXPECT_GE(noted, 16);  // the expired ones made room
}

}  // namespace
}  // namespace emporium
