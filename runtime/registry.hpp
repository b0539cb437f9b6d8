// Activation registry (virtual actors, as Orleans grains): one per entity type and node. It
// activates an entity actor on its first message and forgets it when the actor passivates.
//
// The routing seam: every message for an entity is sent as
//   (route_atom, type, id, payload)
// and the reply comes back to the caller. On a single node it comes straight here (NodeContext::
// route_for); a cluster puts the owner lookup (and other nodes) behind the same message, sent to
// the node's router. Once closed (close_atom, the node is stopping) a registry refuses every call.
//
// Passivation protocol: an idle entity sends (idle_atom, id) to its registry (and so does one about
// to stop on its own, after a failure: actors/entity.hpp, leave_registry); the registry answers
// stop_atom, which queues behind every message it forwarded before, so nothing forwarded is lost.
// An entity that got messages meanwhile simply processes them before stopping. Messages that come
// for it after that wait until it is down, then go to a new activation (see HoldLimits).
// Idleness is the registry's to notice: every entity it has routed nothing to for `idle_after_ms`
// gets idle_atom (no id), and so does a finished one `terminal_after_ms` after it said so; it
// answers as above when it may stop (nothing in progress). Entities keep no receive timeout or
// timer of their own: one per actor cost memory, and the clock thread's CPU.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/local_actor.hpp>
#include <caf/message.hpp>

namespace emporium {

// Spawns the actor of entity `id`; `registry` is the handle the entity reports idleness to, and
// `first` the message it is activated for (some know from it that there is nothing to load).
using EntityFactory = std::function<caf::actor(caf::local_actor* spawner, const std::string& id,
                                               caf::actor registry, const caf::message& first)>;

// Idle entities asked per sweep, at most: entities that went quiet together (after a burst of
// load) stop over several sweeps, not in one pause of the actor threads.
constexpr int kIdleProbesPerSweep = 256;

// A message for an entity whose last activation was passivated but is still finishing its work
// (a write out, a saga running) waits for that activation to be down before a new one starts, so
// that the new one loads what the old one wrote instead of racing it (its first write would lose
// the version check). It waits at most `hold_ms`, and at most `held_max` messages wait per entity.
// Past either, the stopping activation, when still alive, is asked to stay (resume_atom): one that
// agrees takes the calls that waited, and later ones, as the active one again, so that no second
// activation starts beside one still at its work (an order's saga in one and a recovery in another
// would both act on its stock and payment). One that is gone, or says no (it stops for a failure, memory
// ahead of storage), leaves them to a new activation at once (the version checks, and for items
// the persistence actor's fence, keep that safe). Calls go on waiting for the answer (`hold_ms`
// at most, past `held_max` too, up to four times it: later ones are refused, errc::busy); one
// that answers later has lost them to a new activation, and is told to stop when it asks to.
constexpr std::int64_t kHoldForStoppingMs = 2'000;
constexpr std::int64_t kHeldMax = 1'024;
struct HoldLimits {
  std::int64_t hold_ms = kHoldForStoppingMs;
  std::int64_t held_max = kHeldMax;
};

// `now_ms` gives wall-clock time for the operators' view; `idle_after_ms` is how long an entity
// may go without a message before it is asked whether it is idle (0: at once; negative: never).
// The registry looks for idle entities every 1/16 of that (10 ms to 1 s), and asks at most
// `probes_per_sweep` of them each time.
//
// `terminal_after_ms` (negative: never): an entity that reports (terminal_atom) to its registry,
// a finished one, is asked (idle_atom) that long after, whatever came meanwhile. The registry
// keeps these in one queue in the order they came and looks at it every 1/16 of that (10 ms to
// 250 ms): one timer per registry, where a timer per entity cost CAF's clock thread two wake-ups
// per entity.
caf::actor spawn_registry(caf::actor_system& system, EntityFactory factory,
                          std::function<std::int64_t()> now_ms, std::int64_t idle_after_ms = -1,
                          int probes_per_sweep = kIdleProbesPerSweep, HoldLimits hold = {},
                          std::int64_t terminal_after_ms = -1);

// How often a registry looks for idle entities: every 1/16 of `idle_after_ms`, 10 ms to 1 s.
std::chrono::milliseconds idle_sweep_every(std::int64_t idle_after_ms);
// How often it looks at its queue of finished entities: every 1/16 of `terminal_after_ms`, 10 ms
// to 250 ms. So a finished entity is asked at most 250 ms after its time (given an idle actor
// thread), and the registry wakes for them at most every 10 ms.
std::chrono::milliseconds terminal_tick_every(std::int64_t terminal_after_ms);

// Which entities of its type this node owns, as the cluster view says (local message only).
struct OwnershipTest {
  std::function<bool(const std::string& id)> owns;
};
using view_atom = caf::atom_constant<caf::atom("view")>;

// One active entity, as operators see it (list_atom).
struct ActiveEntity {
  std::string id;  // filled in views (list_atom, find_atom); the registry keys entries by it
  caf::actor handle;
  std::int64_t activated_at_ms = 0;
  std::int64_t last_active_ms = 0;
  std::int64_t messages = 0;  // routed to it since activation
  std::int64_t touched = 0;   // last routed message, steady clock in ms (for idleness)
};

using list_atom = caf::atom_constant<caf::atom("list")>;
using find_atom = caf::atom_constant<caf::atom("find")>;
using passivate_atom = caf::atom_constant<caf::atom("passivate")>;
using terminal_atom = caf::atom_constant<caf::atom("terminal")>;
using mailbox_atom = caf::atom_constant<caf::atom("mailbox")>;

// Registry protocol besides routing:
//   (list_atom, limit)      -> std::vector<ActiveEntity>   up to `limit`, most recently active first
//   (find_atom, id)         -> ActiveEntity                 sec::no_such_key... when not active
//   (passivate_atom, id)    -> bool                         true when it was active
//   stats_atom              -> RegistryStats
//   (view_atom, OwnershipTest)                              passivates the entities not owned
//   terminal_atom, from an entity                           asks it idle_atom terminal_after_ms later
// Every entity that defers its stop (stop_atom) while it finishes its work answers resume_atom
// with true when it stays (its stop is called off) and false when it must stop anyway.
// Every entity answers mailbox_atom with its mailbox depth (std::size_t).

// What a registry reports to (stats_atom): active actors and activations since start.
struct RegistryStats {
  std::int64_t active = 0;
  std::int64_t alive = 0;  // active, plus passivated ones still finishing their work
  std::int64_t activations = 0;
  std::int64_t passivations = 0;
  std::int64_t held = 0;  // messages that waited for a stopping activation, since start
  std::int64_t resumed = 0;  // stopping activations that stayed when the wait ended (resume_atom)
  std::int64_t finished_queued = 0;  // entries in the queue of finished entities (terminal_atom)
};

}  // namespace emporium

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::RegistryStats)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::OwnershipTest)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::ActiveEntity)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<emporium::ActiveEntity>)
