// An item's committed reservations (actors/inventory.cpp): the units of each order, by order id.
//
// An item of a selling sku keeps one per unshipped order, so they are kept compact. An order id as
// the node makes it ("ord_" and 26 characters of lowercase Crockford base32, new_id in
// runtime/clock.cpp) is packed into 16 bytes: its first character, the top of a count of
// milliseconds (0 until the year 6429), takes 2 bits, the other 25 take 5 each, 127 bits in all.
// The packed ids sit in an open-addressing table (linear probing; a deletion shifts back the
// entries after it, so there are no tombstones), their units beside them: 20 B a slot, at most 3/4
// of the slots used, at least 1/8 before the table halves. Any other id, and units past 2^32 - 1,
// go to an ordinary map instead. Exact either way: a packed id unpacks to the very same string.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace emporium {

class CommittedUnits {
 public:
  bool contains(const std::string& order_id) const {
    if (auto key = pack(order_id); key && find(*key) != kNone) return true;
    return !others_.empty() && others_.count(order_id) != 0;
  }

  // Sets the units of `order_id` (a quantity above 0).
  void put(const std::string& order_id, std::int64_t quantity) {
    auto key = pack(order_id);  // once: a commit is on an item's hot path
    bool fits = key && quantity > 0 && quantity <= kMaxUnits;
    if (auto i = key ? find(*key) : kNone; i != kNone) {
      if (fits) {
        units_[i] = static_cast<std::uint32_t>(quantity);
        return;
      }
      erase_at(i);
    }
    if (!fits) {
      others_[order_id] = quantity;
      return;
    }
    if (!others_.empty()) others_.erase(order_id);
    if ((count_ + 1) * 4 > capacity_ * 3) rehash(capacity_ == 0 ? kMinSlots : capacity_ * 2);
    auto i = home(*key);
    while (units_[i] != 0) i = (i + 1) & (capacity_ - 1);
    keys_[i] = *key;
    units_[i] = static_cast<std::uint32_t>(quantity);
    ++count_;
  }

  // The units of `order_id`; none when it has none here.
  std::optional<std::int64_t> units(const std::string& order_id) const {
    if (auto key = pack(order_id)) {
      if (auto i = find(*key); i != kNone) return units_[i];
    }
    if (others_.empty()) return std::nullopt;
    auto it = others_.find(order_id);
    if (it == others_.end()) return std::nullopt;
    return it->second;
  }

  // Takes out the units of `order_id`; none when it has none here.
  std::optional<std::int64_t> take(const std::string& order_id) {
    if (auto key = pack(order_id)) {
      if (auto i = find(*key); i != kNone) {
        std::int64_t units = units_[i];
        erase_at(i);
        return units;
      }
    }
    if (others_.empty()) return std::nullopt;
    auto it = others_.find(order_id);
    if (it == others_.end()) return std::nullopt;
    auto units = it->second;
    others_.erase(it);
    return units;
  }

  std::size_t size() const { return count_ + others_.size(); }
  bool empty() const { return size() == 0; }
  std::size_t slots() const { return capacity_; }

  // Makes room for `n` packed ids in all without growing.
  void reserve(std::size_t n) {
    auto wanted = slots_for(n);
    if (wanted > capacity_) rehash(wanted);
  }

  // Calls f(order_id, units) for each, in no particular order.
  template <class F>
  void for_each(F f) const {
    for (std::size_t i = 0; i < capacity_; ++i)
      if (units_[i] != 0) f(unpack(keys_[i]), static_cast<std::int64_t>(units_[i]));
    for (const auto& [order_id, units] : others_) f(order_id, units);
  }

  // The 16-byte form of an order id the node made, or none for any other id.
  struct Key {
    std::uint64_t hi = 0;
    std::uint64_t lo = 0;
    bool operator==(const Key& other) const { return hi == other.hi && lo == other.lo; }
  };
  static std::optional<Key> pack(const std::string& id) {
    if (id.size() != kPrefix.size() + kChars || id.compare(0, kPrefix.size(), kPrefix) != 0)
      return std::nullopt;
    unsigned __int128 bits = 0;
    for (std::size_t i = 0; i < kChars; ++i) {
      int v = digit(id[kPrefix.size() + i]);
      if (v < 0 || (i == 0 && v > 3)) return std::nullopt;
      bits = (bits << 5) | static_cast<unsigned>(v);
    }
    return Key{static_cast<std::uint64_t>(bits >> 64), static_cast<std::uint64_t>(bits)};
  }
  static std::string unpack(const Key& key) {
    auto bits = (static_cast<unsigned __int128>(key.hi) << 64) | key.lo;
    std::string id(kPrefix);
    id.resize(kPrefix.size() + kChars);
    for (std::size_t i = kChars; i-- > 0;) {
      id[kPrefix.size() + i] = kAlphabet[static_cast<unsigned>(bits & 31)];
      bits >>= 5;
    }
    return id;
  }

 private:
  static constexpr std::string_view kPrefix = "ord_";
  static constexpr std::size_t kChars = 26;
  static constexpr const char* kAlphabet = "0123456789abcdefghjkmnpqrstvwxyz";
  static constexpr std::size_t kMinSlots = 16;
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  static constexpr std::int64_t kMaxUnits = 0xffffffffLL;  // 0 marks an empty slot

  // The value of a character of the alphabet, or -1.
  static int digit(char c) {
    static const auto values = [] {
      std::array<std::int8_t, 256> t{};
      t.fill(-1);
      for (int i = 0; i < 32; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
      return t;
    }();
    return values[static_cast<unsigned char>(c)];
  }

  // Slots for `n` at most 3/4 full: a power of two.
  static std::size_t slots_for(std::size_t n) {
    std::size_t slots = kMinSlots;
    while (n * 4 > slots * 3) slots *= 2;
    return slots;
  }

  std::size_t home(const Key& key) const {
    std::uint64_t h = key.lo ^ (key.hi * 0x9e3779b97f4a7c15ULL);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 29;
    return static_cast<std::size_t>(h) & (capacity_ - 1);
  }

  std::size_t find(const Key& key) const {
    if (capacity_ == 0) return kNone;
    for (auto i = home(key);; i = (i + 1) & (capacity_ - 1)) {
      if (units_[i] == 0) return kNone;
      if (keys_[i] == key) return i;
    }
  }

  // Empties slot `hole`, then moves back each entry after it that its probe passed the hole for.
  void erase_at(std::size_t hole) {
    auto mask = capacity_ - 1;
    units_[hole] = 0;
    --count_;
    for (auto j = (hole + 1) & mask; units_[j] != 0; j = (j + 1) & mask) {
      auto h = home(keys_[j]);
      bool stays = hole < j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (stays) continue;
      keys_[hole] = keys_[j];
      units_[hole] = units_[j];
      units_[j] = 0;
      hole = j;
    }
    if (count_ == 0) {
      keys_.reset();
      units_.reset();
      capacity_ = 0;
    } else if (capacity_ > kMinSlots && count_ * 8 < capacity_) {
      rehash(slots_for(count_ * 2));  // most have gone: give the slots back (at most 3/8 used)
    }
  }

  void rehash(std::size_t slots) {
    auto old_keys = std::move(keys_);
    auto old_units = std::move(units_);
    auto old_capacity = capacity_;
    keys_ = std::make_unique<Key[]>(slots);
    units_ = std::make_unique<std::uint32_t[]>(slots);  // zeroed: all empty
    capacity_ = slots;
    for (std::size_t i = 0; i < old_capacity; ++i) {
      if (old_units[i] == 0) continue;
      auto j = home(old_keys[i]);
      while (units_[j] != 0) j = (j + 1) & (capacity_ - 1);
      keys_[j] = old_keys[i];
      units_[j] = old_units[i];
    }
  }

  std::unique_ptr<Key[]> keys_;
  std::unique_ptr<std::uint32_t[]> units_;
  std::size_t capacity_ = 0;  // a power of two, or 0
  std::size_t count_ = 0;     // packed ids in the table
  std::unordered_map<std::string, std::int64_t> others_;
};

}  // namespace emporium
