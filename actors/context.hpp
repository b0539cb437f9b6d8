// What every entity actor of a node shares: where to route, where to persist, time, the provider.
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include <caf/actor.hpp>

#include "actors/payment_provider.hpp"
#include "runtime/clock.hpp"

namespace emporium {

struct ActorSettings {
  std::int64_t reservation_ttl_ms = 900'000;
  std::int64_t idle_passivate_ms = 120'000;
  std::int64_t terminal_passivate_ms = 5'000;
  std::int64_t payment_retries_max = 3;
  std::int64_t payment_retry_backoff_ms = 50;
  std::int64_t step_timeout_ms = 30'000;  // one saga step (a reply from another entity)
};

struct NodeContext {
  caf::actor router;
  std::map<caf::atom_value, caf::actor> registries;  // local registry per entity type
  caf::actor orders_db;
  caf::actor inventory_db;
  std::shared_ptr<const Clock> clock;
  std::shared_ptr<PaymentProvider> provider;
  ActorSettings settings;
};

using ContextPtr = std::shared_ptr<const NodeContext>;

}  // namespace emporium
