// Fences of item activations whose writes were refused (see the persistence actor).
//
// An item write refused by its version check tells the item's activation that another activation
// owns the row, and the activation stops writing when it hears. Writes it sent before it heard
// assumed the refused one applied, and one of them could pass its version check by chance: when
// the other activation's write made the very version it expects, it would write this activation's
// stale counts over that one. So once an item write by an activation is refused, a later write of
// that item by that activation which expects the refused write's version is refused too, without
// running, and fences the next (actors/inventory.cpp, persist). Without it, a unit reserved by the
// other activation could be free again. Orders and payments are not fenced: some of them go on
// after a refusal, from what they read (an order that finds its row stored after all, a payment
// that finds itself decided).
//
// One fence per refused activation and sku, kept `kept_ms` after its last refusal: the writes sent
// before the activation heard come within milliseconds, and it stops once they are answered. At
// most `capacity` fences: past that, the oldest goes (actor ids never recur, so a fence only ever
// matters to writes already in flight).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace emporium {

class ItemFences {
 public:
  using clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kKeptMs{60'000};
  static constexpr std::size_t kCapacity = 4096;

  explicit ItemFences(std::chrono::milliseconds kept_ms = kKeptMs, std::size_t capacity = kCapacity)
      : kept_ms_(kept_ms), capacity_(std::max<std::size_t>(1, capacity)) {}

  bool empty() const { return fences_.empty(); }
  std::size_t size() const { return fences_.size(); }

  // Fences `writer`'s writes of `sku` that expect `version` (what its refused write would have
  // made), or moves its fence there.
  void add(std::uint64_t writer, const std::string& sku, std::int64_t version,
           clock::time_point now) {
    for (auto& f : fences_)
      if (f.writer == writer && f.sku == sku) {
        f.version = version;
        f.at = now;
        return;
      }
    if (fences_.size() >= capacity_)
      fences_.erase(std::min_element(fences_.begin(), fences_.end(),
                                     [](const Fence& a, const Fence& b) { return a.at < b.at; }));
    fences_.push_back({writer, sku, version, now});
  }

  // True when a write of `sku` by `writer` that expects `expected` is to be refused.
  bool refuses(std::uint64_t writer, const std::string& sku, std::int64_t expected) const {
    return std::any_of(fences_.begin(), fences_.end(), [&](const Fence& f) {
      return f.writer == writer && f.version == expected && f.sku == sku;
    });
  }

  // Drops the fences last moved more than `kept_ms` before `now`.
  void expire(clock::time_point now) {
    auto oldest_kept = now - kept_ms_;
    fences_.erase(std::remove_if(fences_.begin(), fences_.end(),
                                 [oldest_kept](const Fence& f) { return f.at < oldest_kept; }),
                  fences_.end());
  }

 private:
  struct Fence {
    std::uint64_t writer = 0;
    std::string sku;
    std::int64_t version = 0;
    clock::time_point at;
  };
  std::chrono::milliseconds kept_ms_;
  std::size_t capacity_;
  std::vector<Fence> fences_;  // few, and none most of the time
};

}  // namespace emporium
