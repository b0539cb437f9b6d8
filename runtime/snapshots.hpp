// The committed state of the inventory items active on this node, readable from any thread: the
// HTTP edge answers stock checks from it without a round trip through the actors. An item actor
// publishes its committed snapshot when it loads and after each of its writes commits, and removes
// it when it stops, so an entry exists only while the item's actor is active here (in a cluster:
// on its owner). A miss falls back to asking the actor. Readers see exactly what the actor would
// answer: the state the database holds.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

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

}  // namespace emporium
