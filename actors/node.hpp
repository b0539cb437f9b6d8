// A node's actors: the two persistence actors, a registry per entity type, the router, and the
// recovery sweep that finishes or compensates orders left unfinished.
#pragma once

#include <map>
#include <memory>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "actors/context.hpp"
#include "runtime/config.hpp"

namespace emporium {

struct NodeActors {
  std::shared_ptr<NodeContext> ctx;
  std::map<caf::atom_value, caf::actor> registries;
  caf::actor sweeper;
};

ActorSettings actor_settings(const Config& config);

// Spawns everything; `provider` and `clock` are injected (tests pass their own).
NodeActors start_node_actors(caf::actor_system& system, const Config& config,
                             std::shared_ptr<const Clock> clock,
                             std::shared_ptr<PaymentProvider> provider);

struct SweepSettings {
  std::int64_t interval_ms = 30'000;  // 0: only at start and on sweep_atom
  std::int64_t idempotency_keep_ms = 86'400'000;
  std::int64_t grace_ms = 0;
  std::int64_t batch_max = 1'000;  // orders recovered at once, in id order
};

// Runs the sweep now (and then every `interval_ms`, when not 0, and on sweep_atom): the unfinished
// orders this node owns, untouched for `grace_ms`, are finished or compensated, `batch_max` at a
// time, and the items it owns with a held reservation due for its check are activated, so that
// they check it. Each periodic round also drops the idempotency keys older than
// `idempotency_keep_ms`.
caf::actor spawn_recovery_sweep(caf::actor_system& system, ContextPtr ctx, SweepSettings settings);

// Announces the entity messages and replies that cross between nodes, and the cluster envelopes.
void add_message_types(caf::actor_system_config& config);

// The first half of the stop: no call reaches an entity any more (the registries refuse every call,
// the router and the sweeper are gone), and the items have written the commits they kept in
// memory (within 5 s). The persistence actors still run.
void close_node_actors(caf::actor_system& system, NodeActors& node);

// Stops every actor of the node (closes it first; persistence last, after its batch is flushed)
// and waits until they are gone; `node` is emptied. Release every other copy of the context first.
void stop_node_actors(caf::actor_system& system, NodeActors& node);

}  // namespace emporium
