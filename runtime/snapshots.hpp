// The committed state of the inventory items active on this node, readable from any thread: the
// HTTP edge answers stock checks from it without a round trip through the actors. An item actor
// publishes its committed snapshot when it loads and after each of its writes commits, and removes
// it when it stops, so an entry exists only while the item's actor is active here (in a cluster:
// on its owner). A miss falls back to asking the actor. Readers see exactly what the actor would
// answer: the state the database holds.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "runtime/clock.hpp"
#include "runtime/records.hpp"

namespace emporium {

class ItemSnapshots {
 public:
  // Newer versions replace older ones; an older one (a stale activation) never wins.
  void publish(const ItemRecord& item) {
    auto& shard = shard_for(item.sku);
    std::lock_guard lock{shard.mutex};
    auto [it, inserted] = shard.items.try_emplace(item.sku, item);
    if (!inserted && it->second.version <= item.version) it->second = item;
  }
  // Removes the entry unless a newer version was published since (by another activation).
  void withdraw(const std::string& sku, std::int64_t version) {
    auto& shard = shard_for(sku);
    std::lock_guard lock{shard.mutex};
    auto it = shard.items.find(sku);
    if (it != shard.items.end() && it->second.version <= version) shard.items.erase(it);
  }
  std::optional<ItemRecord> find(const std::string& sku) const {
    auto& shard = shard_for(sku);
    std::lock_guard lock{shard.mutex};
    auto it = shard.items.find(sku);
    if (it == shard.items.end()) return std::nullopt;
    return it->second;
  }
  std::size_t size() const {
    std::size_t n = 0;
    for (auto& shard : shards_) {
      std::lock_guard lock{shard.mutex};
      n += shard.items.size();
    }
    return n;
  }

 private:
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, ItemRecord> items;
  };
  Shard& shard_for(const std::string& sku) const {
    return shards_[std::hash<std::string>{}(sku) % shards_.size()];
  }
  mutable std::array<Shard, 16> shards_;
};

// Skus found in no stored item, noted by the item actor that looked (on the owner, in a cluster),
// for `ttl_ms`: an activation for one of them within that time starts knowing it unknown instead
// of reading the inventory database again, on the write connection its item shares with every
// group commit of that shard. Lookups of unknown skus (up to 100 a request) then cost no database
// round trip. A create of the sku clears it here; a create elsewhere (another node owning it
// then, or the database written by hand) shows within `ttl_ms`, and a view change clears all.
// At most `max` skus are kept (expired ones are dropped to make room; past that, none is noted).
constexpr std::size_t kAbsentSkusMax = 65'536;

class AbsentSkus {
 public:
  AbsentSkus(std::int64_t ttl_ms, std::size_t max) : ttl_ms_(ttl_ms), per_shard_(max / kShards) {}

  // Which forgets and clears came so far: a lookup takes it before it reads the database, and
  // notes what it found only if none came meanwhile (a create while it read, on a second
  // activation, or a view change).
  std::uint64_t generation() const { return generation_.load(); }

  void note(const std::string& sku, std::uint64_t since_generation) {
    if (ttl_ms_ <= 0 || per_shard_ == 0) return;
    auto now = steady_ms();
    auto& shard = shard_for(sku);
    std::lock_guard lock{shard.mutex};
    if (shard.until.size() >= per_shard_)
      std::erase_if(shard.until, [now](auto& e) { return e.second <= now; });
    if (shard.until.size() >= per_shard_ && shard.until.count(sku) == 0) return;
    if (generation_.load() != since_generation) return;  // under the shard's lock: see forget
    shard.until[sku] = now + ttl_ms_;
  }
  bool known_absent(const std::string& sku) const {
    auto& shard = shard_for(sku);
    std::lock_guard lock{shard.mutex};
    auto it = shard.until.find(sku);
    return it != shard.until.end() && it->second > steady_ms();
  }
  void forget(const std::string& sku) {
    auto& shard = shard_for(sku);
    std::lock_guard lock{shard.mutex};
    generation_ += 1;
    shard.until.erase(sku);
  }
  void clear() {
    generation_ += 1;
    for (auto& shard : shards_) {
      std::lock_guard lock{shard.mutex};
      shard.until.clear();
    }
  }
  std::size_t size() const {
    std::size_t n = 0;
    for (auto& shard : shards_) {
      std::lock_guard lock{shard.mutex};
      n += shard.until.size();
    }
    return n;
  }

 private:
  static constexpr std::size_t kShards = 16;
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, std::int64_t> until;  // steady clock, ms
  };
  Shard& shard_for(const std::string& sku) const {
    return shards_[std::hash<std::string>{}(sku) % kShards];
  }
  std::int64_t ttl_ms_;
  std::size_t per_shard_;
  std::atomic<std::uint64_t> generation_{0};
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace emporium
