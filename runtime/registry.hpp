// Activation registry (virtual actors, as Orleans grains): one per entity type and node. It
// activates an entity actor on its first message and forgets it when the actor passivates.
//
// The routing seam: every message for an entity is sent to the node's router as
//   (route_atom, type, id, payload)
// and the reply comes back to the caller. Today the router hands the message to the local
// registry of `type`; a cluster puts the owner lookup (and other nodes) behind the same message.
//
// Passivation protocol: an idle entity sends (idle_atom, id) to its registry; the registry forgets
// it and answers stop_atom, which queues behind every message it forwarded before, so nothing
// forwarded is lost. An entity that got messages meanwhile simply processes them before stopping.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/local_actor.hpp>

namespace emporium {

// Spawns the actor of entity `id`; `registry` is the handle the entity reports idleness to.
using EntityFactory =
    std::function<caf::actor(caf::local_actor* spawner, const std::string& id, caf::actor registry)>;

caf::actor spawn_registry(caf::actor_system& system, caf::atom_value type, EntityFactory factory);

// registries: entity type -> its registry.
caf::actor spawn_router(caf::actor_system& system, std::map<caf::atom_value, caf::actor> registries);

// What a registry reports to (stats_atom): active actors and activations since start.
struct RegistryStats {
  std::int64_t active = 0;
  std::int64_t activations = 0;
  std::int64_t passivations = 0;
};

}  // namespace emporium

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::RegistryStats)
