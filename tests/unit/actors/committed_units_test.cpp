// An item's committed reservations, packed (actors/committed_units.hpp): exact for every id, the
// node's own and any other, through puts, takes and the table's growing and shrinking.
#include <cstdint>
#include <map>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "actors/committed_units.hpp"
#include "runtime/clock.hpp"

namespace emporium {
namespace {

std::map<std::string, std::int64_t> contents(const CommittedUnits& units) {
  std::map<std::string, std::int64_t> out;
  units.for_each([&](const std::string& id, std::int64_t n) { EXPECT_TRUE(out.emplace(id, n).second) << id; });
  return out;
}

TEST(CommittedUnits, TheNodesOrderIdsPackAndUnpackToTheSameString) {
  for (int i = 0; i < 1000; ++i) {
    auto id = new_id("ord_", SystemClock{}.now_ms());
    auto key = CommittedUnits::pack(id);
    ASSERT_TRUE(key) << id;
    EXPECT_EQ(CommittedUnits::unpack(*key), id);
  }
  // Every character of the alphabet in every place, and the largest first character.
  const std::string alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
  for (size_t place = 1; place < 26; ++place)
    for (char c : alphabet) {
      std::string id = "ord_3" + std::string(25, 'z');
      id[4 + place] = c;
      auto key = CommittedUnits::pack(id);
      ASSERT_TRUE(key) << id;
      EXPECT_EQ(CommittedUnits::unpack(*key), id);
    }
}

TEST(CommittedUnits, OtherIdsAreNotPacked) {
  const std::string good = "ord_" + std::string(26, '0');
  ASSERT_TRUE(CommittedUnits::pack(good));
  for (std::string id : {std::string("o1"), "pay_" + good.substr(4), good + "0", good.substr(1),
                         "ord_4" + std::string(25, '0'),    // past 127 bits
                         "ord_0" + std::string(24, '0') + "u",  // not in the alphabet
                         "ord_0" + std::string(24, '0') + "A",  // upper case: another string
                         "ord_0" + std::string(24, '0') + "i", std::string("ord_")})
    EXPECT_FALSE(CommittedUnits::pack(id)) << id;
}

// A put over an existing id replaces its units; units past 32 bits and ids of any form are kept
// exactly, beside the packed ones.
TEST(CommittedUnits, KeepsEveryIdAndQuantityExactly) {
  CommittedUnits units;
  EXPECT_TRUE(units.empty());
  EXPECT_FALSE(units.take("ord_" + std::string(26, '0')));
  auto a = new_id("ord_", SystemClock{}.now_ms());
  auto b = new_id("ord_", SystemClock{}.now_ms());
  units.put(a, 3);
  units.put(b, 5'000'000'000);  // past 32 bits
  units.put("legacy-1", 7);
  units.put(a, 4);  // replaced
  EXPECT_EQ(units.size(), 3u);
  EXPECT_TRUE(units.contains(a));
  EXPECT_TRUE(units.contains(b));
  EXPECT_TRUE(units.contains("legacy-1"));
  EXPECT_FALSE(units.contains("legacy-2"));
  EXPECT_EQ(contents(units), (std::map<std::string, std::int64_t>{{a, 4}, {b, 5'000'000'000}, {"legacy-1", 7}}));
  // An id moves between the table and the map with its units, and is kept once.
  units.put(b, 6);
  units.put(a, 7'000'000'000);
  EXPECT_EQ(units.size(), 3u);
  EXPECT_EQ(contents(units), (std::map<std::string, std::int64_t>{{a, 7'000'000'000}, {b, 6}, {"legacy-1", 7}}));
  units.put(a, 4);
  units.put(b, 5'000'000'000);
  EXPECT_EQ(units.take(b), 5'000'000'000);
  EXPECT_EQ(units.take(a), 4);
  EXPECT_FALSE(units.take(a));
  EXPECT_EQ(units.take("legacy-1"), 7);
  EXPECT_TRUE(units.empty());
  EXPECT_EQ(units.slots(), 0u);  // the table went with its last id
}

// Random puts and takes against a map: every answer the same, through growing and shrinking and
// the shifting back of entries after a taken one.
TEST(CommittedUnits, AgreesWithAMapThroughRandomPutsAndTakes) {
  std::mt19937_64 random(42);
  std::vector<std::string> ids;
  for (int i = 0; i < 3000; ++i) ids.push_back(new_id("ord_", SystemClock{}.now_ms()));
  ids.push_back("not-packed-1");
  ids.push_back("not-packed-2");
  CommittedUnits units;
  std::map<std::string, std::int64_t> expected;
  size_t most_slots = 0;
  for (int step = 0; step < 60'000; ++step) {
    const auto& id = ids[random() % ids.size()];
    // Mostly puts in the first third, mostly takes in the last: the table grows, then shrinks.
    int put_share = step < 20'000 ? 80 : step < 40'000 ? 50 : 5;
    if (static_cast<int>(random() % 100) < put_share) {
      auto n = static_cast<std::int64_t>(1 + random() % 1000);
      units.put(id, n);
      expected[id] = n;
    } else {
      auto it = expected.find(id);
      auto looked_up = units.units(id);
      ASSERT_EQ(looked_up.has_value(), it != expected.end()) << id << " at step " << step;
      if (looked_up) EXPECT_EQ(*looked_up, it->second);
      auto taken = units.take(id);
      ASSERT_EQ(taken.has_value(), it != expected.end()) << id << " at step " << step;
      if (taken) {
        EXPECT_EQ(*taken, it->second);
        expected.erase(it);
      }
    }
    ASSERT_EQ(units.size(), expected.size());
    ASSERT_LE(units.size() * 4, units.slots() * 3 + 8);  // at most 3/4 used (+ the 2 unpacked)
    most_slots = std::max(most_slots, units.slots());
    if (step % 5000 == 0) ASSERT_EQ(contents(units), expected) << "at step " << step;
  }
  for (const auto& id : ids) EXPECT_EQ(units.contains(id), expected.count(id) != 0) << id;
  EXPECT_EQ(contents(units), expected);
  EXPECT_GE(most_slots, 2048u);  // it grew for the ~1,900 held at most
  // About 150 are left (a put for every 19 takes): the table halved twice at least.
  EXPECT_LE(units.slots() * 4, most_slots) << "it gave its slots back as ids went";
}

// Room made ahead: no growing on the way to `n`; at most 3/4 of the slots used at `n`.
TEST(CommittedUnits, ReserveMakesRoomForExactlyThatMany) {
  CommittedUnits units;
  units.reserve(12);
  EXPECT_EQ(units.slots(), 16u);  // 12 is 3/4 of 16
  units.reserve(13);
  EXPECT_EQ(units.slots(), 32u);
  CommittedUnits many;
  many.reserve(20'000);
  EXPECT_EQ(many.slots(), 32'768u);
  for (int i = 0; i < 20'000; ++i) many.put(new_id("ord_", SystemClock{}.now_ms()), 1);
  EXPECT_EQ(many.slots(), 32'768u);
  EXPECT_EQ(many.size(), 20'000u);
}

}  // namespace
}  // namespace emporium
