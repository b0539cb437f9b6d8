// The node's router and the cluster behind it (DESIGN.md, "Cluster").
//
// Every entity message goes to the router as (route_atom, type, id, payload). On a single node the
// router hands it to the local registry of `type`. In a cluster it picks the entity's owner by
// rendezvous hashing of (type, id) over the members it sees up, and sends the message to the
// owner's registry: locally, or over CAF's middleman through the link to that node. Links batch
// the calls bound for one node into one CAF message (and the replies likewise), because a CAF 0.17
// remote message costs far more than a local one.
//
// Membership lives in the orders database (`cluster_members`): the membership actor registers the
// node with a new incarnation, heartbeats every `heartbeat_interval_ms`, marks members silent past
// `failure_timeout_ms` down, and pushes the view to the router. A link that loses its connection
// marks its peer suspect at once (it leaves the placement set until it answers again). A node that
// finds its own row declared down stops serving entities (they passivate, calls are refused with
// errc::unavailable) and registers again with a new incarnation. Writes stay fenced by row
// versions, so an old owner that wakes up late cannot overwrite the new owner's state.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

namespace caf {
class actor_system_config;
}

namespace emporium {

// registries: entity type -> the node's registry of that type.
caf::actor spawn_router(caf::actor_system& system, std::map<caf::atom_value, caf::actor> registries);

struct ClusterSettings {
  std::string self;             // node.name
  std::string cluster_address;  // host:port other nodes reach this one at
  std::int64_t heartbeat_interval_ms = 1000;
  std::int64_t failure_timeout_ms = 3000;
  std::int64_t connect_timeout_ms = 2000;
  std::int64_t sweep_grace_ms = 10000;  // an order untouched this long after a view change is swept
  std::size_t batch_max = 256;         // calls per CAF message to one node (1: no batching)
  std::size_t calls_pending_max = 20000;  // calls waiting on one node before new ones are refused
  std::int64_t call_timeout_ms = 30000;   // a call from another node not answered by then fails
  // Called (on the router's thread) when a view moves entities between nodes, before they move.
  std::function<void()> on_move;
};

struct Config;
// The settings of `config.cluster` and `node.name`.
ClusterSettings cluster_settings(const Config& config);

// One member as this node sees it (GET /admin/cluster).
struct MemberStatus {
  std::string name;
  std::string cluster_address;
  std::string http_address;
  std::string status;  // up, suspect, down, left
  std::int64_t incarnation = 0;
  std::int64_t last_heartbeat_ms = 0;
  std::int64_t active_order = 0;
  std::int64_t active_inventory = 0;
  std::int64_t active_payment = 0;
};

// Operators' views of entities, gathered from every node (GET /admin/actors...).
struct ActiveView {
  std::string type;
  std::string id;
  std::string node;
  std::int64_t mailbox = 0;
  std::int64_t messages = 0;
  std::int64_t activated_at_ms = 0;
  std::int64_t last_active_ms = 0;
};
struct EntityView {
  bool active = false;
  std::string node;
  std::string state_json;  // the live state, when active
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ActiveView& x) {
  return f(caf::meta::type_name("ActiveView"), x.type, x.id, x.node, x.mailbox, x.messages,
           x.activated_at_ms, x.last_active_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, EntityView& x) {
  return f(caf::meta::type_name("EntityView"), x.active, x.node, x.state_json);
}

// The router takes a node's operator agent as the handler of `admin_type` (register_atom), and
// sends (admin_atom, node, query) to the agent of that node, here or over its link:
//   (list_atom, type, limit)      -> std::vector<ActiveView>
//   (find_atom, type, id)         -> EntityView
//   (passivate_atom, type, id)    -> bool
constexpr caf::atom_value admin_type = caf::atom("admin");
using admin_atom = caf::atom_constant<caf::atom("admin")>;
using register_atom = caf::atom_constant<caf::atom("register")>;

using members_atom = caf::atom_constant<caf::atom("members")>;
using joined_atom = caf::atom_constant<caf::atom("joined")>;
// Asks the membership why this node may not join: empty while nothing stands in its way; else the
// reason (another live node holds its name), which stops the node at start.
using refused_atom = caf::atom_constant<caf::atom("refused")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using batches_atom = caf::atom_constant<caf::atom("batches")>;

// Membership protocol:
//   members_atom -> std::vector<MemberStatus>
//   joined_atom  -> bool   registered, seen up, and serving
//   leave_atom   -> bool   the row is marked left (peers stop placing here); heartbeats stop
// The endpoint answers stats_atom with the calls from other nodes it has not answered yet, and
// (stats_atom, batches_atom) with what it received: (batches, calls, the largest batch).
struct ClusterHandles {
  caf::actor membership;
  caf::actor endpoint;  // what this node publishes on cluster.listen
};

// Spawns the endpoint and the membership actor and wires them to `router`. `db` is a persistence
// actor on the orders database kept for membership alone (heartbeats never queue behind order
// writes); `middleman` is the CAF middleman actor; `registries` report active actors for the
// heartbeat row; `sweeper` is told to sweep when this node's share of entities changes.
ClusterHandles start_cluster(caf::actor_system& system, ClusterSettings settings, caf::actor router,
                             std::map<caf::atom_value, caf::actor> registries, caf::actor db,
                             caf::actor middleman, caf::actor sweeper,
                             std::function<std::string()> http_address);

// A fixed membership without the table (benchmarks of the transport): every member of `members`
// (name -> cluster address) is up for good. Returns the endpoint to publish.
caf::actor start_static_cluster(caf::actor_system& system, ClusterSettings settings,
                                caf::actor router, const std::map<std::string, std::string>& members,
                                caf::actor connector);

// Announces the types that cross between nodes (the envelopes of links); the entity messages are
// announced by actors/wire.cpp.
void add_cluster_message_types(caf::actor_system_config& config);

// The rendezvous choice: the index into `members` (sorted names) that owns (type, id).
std::size_t rendezvous_owner(const std::vector<std::string>& members, caf::atom_value type,
                             const std::string& id);

}  // namespace emporium

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::MemberStatus)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<emporium::MemberStatus>)
