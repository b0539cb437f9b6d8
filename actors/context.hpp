// What every entity actor of a node shares: where to route, where to persist, time, the provider.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>

#include "actors/payment_provider.hpp"
#include "runtime/clock.hpp"
#include "runtime/deadlines.hpp"
#include "runtime/snapshots.hpp"

namespace emporium {

struct ActorSettings {
  std::int64_t reservation_ttl_ms = 900'000;
  std::int64_t reservation_check_ms = 30'000;  // a held reservation this old asks its order
  std::int64_t reservation_commit_delay_ms = 1'000;  // a commit not written by then is written alone
  std::int64_t idle_passivate_ms = 120'000;
  std::int64_t terminal_passivate_ms = 5'000;
  std::int64_t payment_retries_max = 3;
  std::int64_t payment_retry_backoff_ms = 50;
  std::int64_t payment_timeout_ms = 5'000;  // a call's time; a charge waits for a caller no longer
  std::int64_t step_timeout_ms = 30'000;  // one saga step (a reply from another entity)
  // In a cluster, cluster.sweep_grace_ms: an order's cancel, ship or recovery, and a read of one
  // loaded unfinished, read the order again first; within this time of a view change, a cancel or
  // ship waits while the order is stored unfinished or confirmed, changed within this time by
  // another activation (which may still be at its saga: see the order actor's `command`). -1 on
  // one node: neither.
  std::int64_t settle_grace_ms = -1;
};

struct NodeContext {
  caf::actor router;
  std::map<caf::atom_value, caf::actor> registries;  // local registry per entity type
  bool single_node = false;  // no cluster: this node owns every entity (start_node_actors sets it)
  // Where an entity call (route_atom, type, id, payload) goes. On a single node straight to the
  // local registry of its type, which the router would only pass it on to: one message fewer per
  // call, five per one-line order. In a cluster, the router, which finds the owner.
  const caf::actor& route_for(caf::atom_value type) const {
    if (single_node)
      if (auto it = registries.find(type); it != registries.end()) return it->second;
    return router;
  }
  // Persistence actors, one connection each. An entity always uses the same one (picked by its
  // id), so its writes stay in order while different entities' writes go out in parallel.
  std::vector<caf::actor> orders_shards;
  std::vector<caf::actor> inventory_shards;
  caf::actor orders_db;     // orders_shards[0]: it migrates; reads and node-wide work use it
  caf::actor inventory_db;  // inventory_shards[0]
  // A connection of its own per PostgreSQL database for the reads that are no entity's: the
  // recovery sweep's pages, a customer's order list, the admin's stored views. Such a read can take
  // milliseconds (the sweep's read of unfinished orders once took 15.8 ms under load); on a write
  // connection every batch behind it would wait. On SQLite, orders_db and inventory_db.
  caf::actor orders_reader;
  caf::actor inventory_reader;

  const caf::actor& orders_db_for(const std::string& id) const { return pick(orders_shards, id); }
  const caf::actor& inventory_db_for(const std::string& sku) const {
    return pick(inventory_shards, sku);
  }
  static const caf::actor& pick(const std::vector<caf::actor>& shards, const std::string& key) {
    return shards[std::hash<std::string>{}(key) % shards.size()];
  }
  // Committed state of the items active here, for reads from the HTTP threads.
  std::shared_ptr<ItemSnapshots> item_snapshots = std::make_shared<ItemSnapshots>();
  // Skus found in no stored item, for actors.unknown_sku_ttl_ms (start_node_actors sets it up).
  std::shared_ptr<AbsentSkus> absent_skus = std::make_shared<AbsentSkus>(0, 0);
  // When (steady_ms) a cluster's view last moved entities (ClusterSettings::on_move): within
  // settle_grace_ms of it, another node's activation of an order may still be at its saga.
  std::shared_ptr<std::atomic<std::int64_t>> view_moved_at_ms =
      std::make_shared<std::atomic<std::int64_t>>(std::numeric_limits<std::int64_t>::min() / 2);
  std::shared_ptr<const Clock> clock;
  std::shared_ptr<PaymentProvider> provider;
  // For a provider that blocks (provider->blocking()): the actor that hands its calls to threads
  // of their own (see spawn_provider_calls). None otherwise: the payment actor calls the provider
  // itself.
  caf::actor provider_calls;
  const caf::actor* provider_caller_for(const std::string&) const {
    return provider_calls ? &provider_calls : nullptr;
  }
  // The saga's request timeouts (see runtime/deadlines.hpp); stopped before the actors are.
  std::shared_ptr<Deadlines> deadlines = std::make_shared<Deadlines>();
  ActorSettings settings;
};

using ContextPtr = std::shared_ptr<const NodeContext>;

}  // namespace emporium
