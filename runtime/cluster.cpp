// The router, the links between nodes, the endpoint each node publishes, and membership.
#include "runtime/cluster.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <set>
#include <unordered_map>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "runtime/atoms.hpp"
#include "runtime/config.hpp"
#include "runtime/errors.hpp"
#include "runtime/persistence.hpp"
#include "runtime/registry.hpp"
#include "runtime/store.hpp"

namespace emporium {

// --- wire envelopes ------------------------------------------------------------------------------

// One entity call to another node, and its answer. `final`: the sender already forwarded it once,
// so the receiver delivers it locally whatever its own view says (views differ only briefly).
struct remote_call {
  std::uint64_t seq = 0;
  caf::atom_value type = caf::atom("");
  std::string id;
  caf::message payload;
  bool final = false;
};
struct remote_reply {
  std::uint64_t seq = 0;
  caf::message value;
  caf::error error;
};
struct call_batch {
  std::vector<remote_call> items;
};
struct reply_batch {
  std::vector<remote_reply> items;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, remote_call& x) {
  return f(caf::meta::type_name("remote_call"), x.seq, x.type, x.id, x.payload, x.final);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, remote_reply& x) {
  return f(caf::meta::type_name("remote_reply"), x.seq, x.value, x.error);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, call_batch& x) {
  return f(caf::meta::type_name("call_batch"), x.items);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reply_batch& x) {
  return f(caf::meta::type_name("reply_batch"), x.items);
}

void add_cluster_message_types(caf::actor_system_config& config) {
  config.add_message_type<call_batch>("emporium::call_batch");
  config.add_message_type<reply_batch>("emporium::reply_batch");
  config.add_message_type<std::vector<ActiveView>>("emporium::ActiveViews");
  config.add_message_type<EntityView>("emporium::EntityView");
}

namespace {

using suspect_atom = caf::atom_constant<caf::atom("suspect")>;
using connected_atom = caf::atom_constant<caf::atom("connected")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using reconnect_atom = caf::atom_constant<caf::atom("reconnect")>;
using hello_atom = caf::atom_constant<caf::atom("hello")>;
using accept_atom = caf::atom_constant<caf::atom("accept")>;

std::chrono::milliseconds ms(std::int64_t v) { return std::chrono::milliseconds(v); }

// A peer as the view lists it: links are keyed by name and rebuilt when address or incarnation change.
struct Peer {
  std::string name;
  std::string address;
  std::int64_t incarnation = 0;
};

// What the membership actor tells the router.
struct ClusterView {
  std::string self;
  std::int64_t self_incarnation = 0;
  bool serving = false;
  std::vector<std::string> placement;  // sorted names of the members entities are placed on
  std::vector<Peer> peers;             // other members up by heartbeat (links are kept to them)
};

struct ClusterWiring {
  ClusterSettings settings;
  caf::actor membership;
  caf::actor middleman;
  caf::actor sweeper;
  caf::actor endpoint;  // this node's, announced to peers that do not connect themselves
  std::int64_t self_incarnation = 0;
};

}  // namespace
}  // namespace emporium

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::ClusterView)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::ClusterWiring)

namespace emporium {

std::size_t rendezvous_owner(const std::vector<std::string>& members, caf::atom_value type,
                             const std::string& id) {
  // FNV-1a over (type, id, member), then a SplitMix64 finish: the same on every node and build.
  auto mix = [](std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  std::uint64_t base = 1469598103934665603ULL;
  auto feed = [](std::uint64_t h, const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
  };
  auto t = static_cast<std::uint64_t>(type);
  base = feed(base, &t, sizeof t);
  base = feed(base, id.data(), id.size());
  std::size_t best = 0;
  std::uint64_t best_score = 0;
  for (std::size_t i = 0; i < members.size(); ++i) {
    auto score = mix(feed(feed(base, "\0", 1), members[i].data(), members[i].size()));
    if (i == 0 || score > best_score) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

namespace {

// An error that arrives as a plain message (a peer refusing something sent without a request)
// would stop a CAF 0.17 actor by default; the long-lived cluster actors log it and go on.
template <class Self>
void keep_running_on_errors(Self* self, const char* who) {
  self->set_error_handler([who](caf::error& err) {
    spdlog::warn("cluster: {} got an error message: {}", who, caf::to_string(err));
  });
}

caf::error unavailable(std::string detail) { return make_error(errc::unavailable, std::move(detail)); }
caf::error not_delivered(std::string detail) { return make_error(errc::not_delivered, std::move(detail)); }

using retire_atom = caf::atom_constant<caf::atom("retire")>;

// Failures after which the call certainly did not run, so the router may send it again (to the
// owner the view names by then): fenced writes, calls bounced by an entity that stopped, calls
// never sent.
bool resendable(const caf::error& err) {
  auto code = code_of(err);
  return code == errc::version_conflict || code == errc::not_delivered ||
         err == caf::sec::request_receiver_down;
}

// Sends `items` to `to` in messages of at most `max` (call or reply batches), and empties it.
template <class Batch, class Self, class Item>
void send_batches(Self* self, const caf::actor& to, std::vector<Item>& items, std::size_t max) {
  max = std::max<std::size_t>(1, max);
  for (std::size_t i = 0; i < items.size(); i += max) {
    Batch batch;
    auto first = items.begin() + static_cast<std::ptrdiff_t>(i);
    auto last = items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), i + max));
    batch.items.assign(std::make_move_iterator(first), std::make_move_iterator(last));
    self->send(to, std::move(batch));
  }
  items.clear();
}

// --- link: calls to one other node ---------------------------------------------------------------

struct link_state {
  Peer peer;
  ClusterWiring wiring;
  caf::actor remote;  // the peer's endpoint, once connected
  // Endpoints of earlier connections with calls sent on them and not yet answered: still
  // monitored, so that those calls fail when it goes (see link_connected).
  std::vector<caf::actor_addr> earlier;
  bool connecting = false;
  std::uint64_t next_seq = 1;
  struct Pending {
    caf::response_promise rp;
    caf::actor_addr sent_on;  // the endpoint it went to; none while in the outbox
  };
  std::unordered_map<std::uint64_t, Pending> pending;
  std::vector<remote_call> outbox;
  bool flush_scheduled = false;
  bool retiring = false;  // the peer left the view: answer what is pending, then stop
  std::uint64_t attempt = 0;  // connection attempts, so an old timer does not end a newer one
  static inline const char* name = "cluster_link";
};
using link_actor = caf::stateful_actor<link_state>;

// Answers every waiting call with `err` (the link stops).
void fail_pending(link_actor* self, const caf::error& err) {
  for (auto& [_, p] : self->state.pending) p.rp.deliver(err);
  self->state.pending.clear();
}

void link_flush(link_actor* self) {
  auto& st = self->state;
  st.flush_scheduled = false;
  if (!st.remote || st.outbox.empty()) return;
  auto to = st.remote.address();
  for (const auto& call : st.outbox) {
    auto it = st.pending.find(call.seq);
    if (it != st.pending.end()) it->second.sent_on = to;
  }
  send_batches<call_batch>(self, st.remote, st.outbox, st.wiring.settings.batch_max);
}

// Stops watching earlier endpoints that no waiting call was sent to (none, most of the time).
void forget_answered_endpoints(link_actor* self) {
  auto& st = self->state;
  if (st.earlier.empty()) return;
  std::set<caf::actor_addr> waited_on;
  for (const auto& [_, p] : st.pending) waited_on.insert(p.sent_on);
  auto gone = std::remove_if(st.earlier.begin(), st.earlier.end(), [&](const caf::actor_addr& a) {
    if (waited_on.count(a) != 0) return false;
    self->demonitor(a);
    return true;
  });
  st.earlier.erase(gone, st.earlier.end());
}

// An earlier connection's endpoint went away: the calls sent on it may have run, and no answer
// will come for them now.
void earlier_endpoint_lost(link_actor* self, const caf::actor_addr& endpoint) {
  auto& st = self->state;
  st.earlier.erase(std::remove(st.earlier.begin(), st.earlier.end(), endpoint), st.earlier.end());
  for (auto it = st.pending.begin(); it != st.pending.end();) {
    if (it->second.sent_on != endpoint) {
      ++it;
      continue;
    }
    it->second.rp.deliver(unavailable("node " + st.peer.name + " went away with the call"));
    it = st.pending.erase(it);
  }
  if (st.retiring && st.pending.empty()) self->quit();
}

void link_lost(link_actor* self, const std::string& why) {
  auto& st = self->state;
  if (st.remote) self->demonitor(st.remote);
  for (const auto& a : st.earlier) self->demonitor(a);
  st.earlier.clear();
  st.remote = nullptr;
  st.connecting = false;
  // Calls not yet sent are resent elsewhere by the router; sent ones may have run.
  for (auto& [seq, p] : st.pending)
    p.rp.deliver(!p.sent_on ? not_delivered("node " + st.peer.name + " is unreachable")
                            : unavailable("node " + st.peer.name + " went away with the call"));
  st.pending.clear();
  st.outbox.clear();
  if (st.retiring) return self->quit();
  spdlog::warn("cluster: lost {} ({}): suspect", st.peer.name, why);
  if (st.wiring.membership)
    self->send(st.wiring.membership, suspect_atom::value, st.peer.name, st.peer.incarnation);
  self->delayed_send(self, ms(st.wiring.settings.heartbeat_interval_ms), reconnect_atom::value);
}

// One connection per pair of nodes: the node whose name sorts first connects and says hello; the
// other takes the endpoint from the hello (two nodes dialling each other at once would have CAF
// drop one of the two connections, and with it the proxies of calls in flight).
bool initiates(const link_state& st) { return st.wiring.settings.self < st.peer.name; }

// A connection taken while one is open (a hello over a new one) replaces it for the calls to
// come. The calls sent on the earlier one stay waiting for their answers, which the peer sends to
// this link whichever connection carries them; the earlier endpoint stays monitored until they
// are answered, so that they fail if it goes first instead of waiting forever.
void link_connected(link_actor* self, caf::actor remote) {
  auto& st = self->state;
  bool watched = st.remote == remote;
  if (!watched) {
    if (st.remote) st.earlier.push_back(st.remote.address());
    // An endpoint taken back is watched already.
    auto again = std::find(st.earlier.begin(), st.earlier.end(), remote.address());
    watched = again != st.earlier.end();
    if (watched) st.earlier.erase(again);
    forget_answered_endpoints(self);
  }
  st.remote = std::move(remote);
  st.connecting = false;
  if (!watched) self->monitor(st.remote);
  spdlog::info("cluster: connected to {} at {}", st.peer.name, st.peer.address);
  if (st.wiring.membership)
    self->send(st.wiring.membership, connected_atom::value, st.peer.name, st.peer.incarnation);
  link_flush(self);
}

void link_connect(link_actor* self) {
  auto& st = self->state;
  if (st.remote || st.connecting) return;
  st.attempt += 1;
  if (!initiates(st)) {
    // Wait for the peer's hello; calls queue meanwhile, and fail if it does not come in time.
    st.connecting = true;
    self->delayed_send(self, ms(st.wiring.settings.connect_timeout_ms), accept_atom::value, st.attempt);
    return;
  }
  auto colon = st.peer.address.rfind(':');
  unsigned port_number = 0;
  auto digits = colon == std::string::npos ? std::string_view{} : std::string_view(st.peer.address).substr(colon + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port_number);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || port_number == 0 ||
      port_number > 65535)
    return link_lost(self, "bad address " + st.peer.address);
  auto host = st.peer.address.substr(0, colon);
  auto port = static_cast<std::uint16_t>(port_number);
  st.connecting = true;
  self->request(st.wiring.middleman, ms(st.wiring.settings.connect_timeout_ms),
                caf::connect_atom::value, host, port)
      .then(
          [self](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
            auto& st = self->state;
            st.connecting = false;
            if (!ptr) return link_lost(self, "no endpoint published");
            auto remote = caf::actor_cast<caf::actor>(ptr);
            self->send(remote, hello_atom::value, st.wiring.settings.self,
                       st.wiring.self_incarnation, st.wiring.endpoint);
            link_connected(self, std::move(remote));
          },
          [self](caf::error& err) { link_lost(self, to_string(err)); });
}

caf::behavior cluster_link(link_actor* self, Peer peer, ClusterWiring wiring) {
  self->state.peer = std::move(peer);
  self->state.wiring = std::move(wiring);
  keep_running_on_errors(self, "link");
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& st = self->state;
    if (st.remote && dm.source == st.remote.address())
      link_lost(self, to_string(dm.reason));
    else if (std::find(st.earlier.begin(), st.earlier.end(), dm.source) != st.earlier.end())
      earlier_endpoint_lost(self, dm.source);
  });
  // Stopping (the peer left the view): whoever waits is answered. (Not in an attached functor:
  // those run after the state is gone.)
  self->set_exit_handler([self](const caf::exit_msg& msg) {
    fail_pending(self, unavailable("node " + self->state.peer.name + " left the view"));
    self->quit(msg.reason);
  });
  link_connect(self);
  return {
      [=](route_atom, caf::atom_value type, std::string& id, caf::message& payload,
          bool final) -> caf::result<caf::message> {
        auto& st = self->state;
        if (st.retiring || (!st.remote && !st.connecting))
          return not_delivered("node " + st.peer.name + " is unreachable");
        if (st.pending.size() >= st.wiring.settings.calls_pending_max)
          return not_delivered("too many calls waiting for node " + st.peer.name);
        auto seq = st.next_seq++;
        auto rp = self->make_response_promise();
        st.pending.emplace(seq, link_state::Pending{rp, caf::actor_addr{}});
        st.outbox.push_back(remote_call{seq, type, std::move(id), std::move(payload), final});
        if (st.remote) {
          if (st.outbox.size() >= st.wiring.settings.batch_max || self->mailbox().empty()) {
            link_flush(self);  // full, or nothing else is waiting to join the batch
          } else if (!st.flush_scheduled) {
            // Everything already in the mailbox joins this batch before it goes.
            st.flush_scheduled = true;
            self->send(self, flush_atom::value);
          }
        }
        return rp;
      },
      [=](flush_atom) { link_flush(self); },
      [=](reply_batch& batch) {
        auto& st = self->state;
        for (auto& r : batch.items) {
          auto it = st.pending.find(r.seq);
          if (it == st.pending.end()) continue;
          if (r.error) it->second.rp.deliver(std::move(r.error));
          else it->second.rp.deliver(std::move(r.value));
          st.pending.erase(it);
        }
        forget_answered_endpoints(self);
        if (st.retiring && st.pending.empty()) self->quit();
      },
      [=](retire_atom) {
        auto& st = self->state;
        st.retiring = true;
        if (st.pending.empty()) return self->quit();
        // A peer that left answers what it has before it goes; one that died is noticed by
        // the lost connection. Either way, no longer than the failure timeout.
        self->delayed_send(self, ms(st.wiring.settings.failure_timeout_ms), timeout_atom::value);
      },
      [=](timeout_atom) {
        auto& st = self->state;
        if (!st.pending.empty())
          spdlog::warn("cluster: {} left with {} calls unanswered", st.peer.name, st.pending.size());
        fail_pending(self, unavailable("node " + st.peer.name + " left with the call"));
        self->quit();
      },
      [=](reconnect_atom) { link_connect(self); },
      [=](accept_atom, caf::actor& remote) {
        if (self->state.retiring) return;
        link_connected(self, std::move(remote));
      },
      [=](accept_atom, std::uint64_t attempt) {  // the hello did not come within the connect timeout
        auto& st = self->state;
        if (attempt == st.attempt && !st.remote && st.connecting)
          link_lost(self, "no hello within the connect timeout");
      },
  };
}

// --- endpoint: calls from other nodes ------------------------------------------------------------

struct reply_outbox {
  caf::actor to;
  std::vector<remote_reply> replies;
};

struct endpoint_state {
  caf::actor router;
  std::size_t batch_max = 256;
  std::map<caf::actor_addr, reply_outbox> outboxes;
  bool flush_scheduled = false;
  std::chrono::milliseconds call_timeout{30'000};  // a call not answered by then is answered with an error
  // The calls taken and not yet answered, with the entity each one is for (for the log when
  // leaving with calls unanswered).
  std::map<std::pair<caf::actor_addr, std::uint64_t>, std::pair<caf::atom_value, std::string>> calls;
  std::int64_t batches_in = 0, calls_in = 0, batch_in_max = 0;  // received, since start
  static inline const char* name = "cluster_endpoint";
};
using endpoint_actor = caf::stateful_actor<endpoint_state>;

void flush_replies(endpoint_actor* self) {
  auto& st = self->state;
  st.flush_scheduled = false;
  for (auto& [_, box] : st.outboxes) send_batches<reply_batch>(self, box.to, box.replies, st.batch_max);
  st.outboxes.clear();
}

void endpoint_reply(endpoint_actor* self, const caf::actor& to, remote_reply reply) {
  auto& st = self->state;
  st.calls.erase({to.address(), reply.seq});
  auto& box = st.outboxes[to.address()];
  box.to = to;
  box.replies.push_back(std::move(reply));
  if (self->mailbox().empty()) {
    flush_replies(self);  // nothing else is waiting to join the batch
  } else if (!st.flush_scheduled) {
    st.flush_scheduled = true;
    self->send(self, flush_atom::value);
  }
}

caf::behavior cluster_endpoint(endpoint_actor* self, caf::actor router, std::size_t batch_max,
                               std::int64_t call_timeout_ms) {
  self->state.router = std::move(router);
  self->state.call_timeout = ms(call_timeout_ms);
  self->state.batch_max = std::max<std::size_t>(1, batch_max);
  keep_running_on_errors(self, "endpoint");
  return {
      [=](call_batch& batch) {
        auto to = caf::actor_cast<caf::actor>(self->current_sender());
        if (!to) return;
        auto& st = self->state;
        auto size = static_cast<std::int64_t>(batch.items.size());
        st.batches_in += 1;
        st.calls_in += size;
        st.batch_in_max = std::max(st.batch_in_max, size);
        for (auto& call : batch.items) {
          auto seq = call.seq;
          self->state.calls.emplace(std::pair{to.address(), seq}, std::pair{call.type, call.id});
          // Any reply type: CAF 0.17 has no catch-all response handler, but a reply that matches
          // no handler arrives at the error handler as unexpected_response carrying the reply.
          self->request(self->state.router, self->state.call_timeout, route_atom::value, call.type,
                        std::move(call.id), std::move(call.payload), call.final)
              .then([self, to, seq](caf::message& reply) {  // a reply that is itself a message
                      endpoint_reply(self, to, remote_reply{seq, std::move(reply), caf::error{}});
                    },
                    [self, to, seq](caf::error& err) {
                      if (err == caf::sec::unexpected_response)
                        endpoint_reply(self, to, remote_reply{seq, err.context(), caf::error{}});
                      else
                        endpoint_reply(self, to, remote_reply{seq, caf::message{}, std::move(err)});
                    });
        }
      },
      [=](flush_atom) { flush_replies(self); },
      [=](hello_atom h, std::string& name, std::int64_t incarnation, caf::actor& endpoint) {
        self->send(self->state.router, h, std::move(name), incarnation, std::move(endpoint));
      },
      [=](stats_atom) { return static_cast<std::int64_t>(self->state.calls.size()); },
      [=](stats_atom, batches_atom) -> caf::result<std::int64_t, std::int64_t, std::int64_t> {
        auto& st = self->state;
        return {st.batches_in, st.calls_in, st.batch_in_max};
      },
      [=](list_atom) {
        for (const auto& [_, what] : self->state.calls)
          spdlog::warn("cluster: unanswered call to {} {}", caf::to_string(what.first), what.second);
      },
  };
}

// --- router --------------------------------------------------------------------------------------

struct Retry {
  caf::response_promise rp;
  caf::atom_value type;
  std::string id;
  caf::message payload;
  bool from_peer = false;
  bool final = false;
  int attempt = 0;
};

struct router_state {
  std::map<caf::atom_value, caf::actor> registries;
  std::uint64_t next_retry = 1;
  std::unordered_map<std::uint64_t, Retry> retries;
  bool clustered = false;
  ClusterWiring wiring;
  ClusterView view;
  std::map<std::string, std::pair<Peer, caf::actor>> links;
  std::map<std::string, std::pair<std::int64_t, caf::actor>> hellos;  // peer -> (incarnation, endpoint)
  static inline const char* name = "router";
};
using router_actor = caf::stateful_actor<router_state>;

bool owns(const ClusterView& view, caf::atom_value type, const std::string& id) {
  if (!view.serving || view.placement.empty()) return false;
  return view.placement[rendezvous_owner(view.placement, type, id)] == view.self;
}

// Where a call goes: the local registry, or the link to the owner (with the message to send).
struct Target {
  caf::actor actor;
  caf::message message;
  bool passivate_after = false;  // delivered here for a sender with an older view: do not keep it
};

caf::expected<Target> resolve(router_actor* self, caf::atom_value type, const std::string& id,
                              const caf::message& payload, bool from_peer, bool final) {
  auto& st = self->state;
  auto reg = st.registries.find(type);
  if (reg == st.registries.end()) return caf::make_error(caf::sec::unexpected_message);
  auto local = [&] { return Target{reg->second, caf::make_message(route_atom::value, type, id, payload)}; };
  if (type == admin_type) return local();  // addressed to this node's operator agent
  if (!st.view.serving) return not_delivered("node " + st.view.self + " is not serving: rejoining its cluster");
  // A node that left (or is leaving) hands even a final call on: it owns nothing any more.
  bool member = std::find(st.view.placement.begin(), st.view.placement.end(), st.view.self) !=
                st.view.placement.end();
  if (st.view.placement.empty()) return not_delivered("no cluster member is up");
  const auto& owner = st.view.placement[rendezvous_owner(st.view.placement, type, id)];
  if (final && member) {
    // The sender's view named this node; this node's names another. Answer this call here, but
    // do not keep the entity (nor its snapshot for readers) active on a node that does not own it.
    auto target = local();
    target.passivate_after = owner != st.view.self;
    return target;
  }
  if (owner == st.view.self) return local();
  auto link = st.links.find(owner);
  if (link == st.links.end()) return not_delivered("node " + owner + " is not connected");
  return Target{link->second.second, caf::make_message(route_atom::value, type, id, payload, from_peer)};
}

// Sends a call and answers `rp`; a call that certainly did not run is sent again after a pause,
// to whichever node owns the entity by then (views settle within a heartbeat or two).
void forward(router_actor* self, caf::response_promise rp, caf::atom_value type, std::string id,
             caf::message payload, bool from_peer, bool final, int attempt) {
  static constexpr int kAttempts = 8;
  static constexpr std::int64_t kPauseMs[kAttempts] = {10, 25, 50, 100, 200, 300, 400, 500};
  // A read (get_atom) changes nothing, and a cancel is idempotent (an order's cancel after it was
  // cancelled answers it unchanged), so either may be sent again even when the node that had it
  // went away before answering (it may have run there).
  auto retry = [=](const caf::error& err) mutable {
    bool again = resendable(err) || (code_of(err) == errc::unavailable &&
                                     (payload.match_elements<get_atom>() || payload.match_elements<cancel_atom>()));
    if (!again || attempt + 1 >= kAttempts) return rp.deliver(err);
    auto& st = self->state;
    auto seq = st.next_retry++;
    st.retries.emplace(seq, Retry{rp, type, id, payload, from_peer, final, attempt + 1});
    self->delayed_send(self, ms(kPauseMs[attempt]), retry_atom::value, seq);
  };
  auto target = resolve(self, type, id, payload, from_peer, final);
  if (!target) return retry(target.error());
  // Any reply type: CAF 0.17 has no catch-all response handler, but a reply that matches no
  // handler reaches the error handler as unexpected_response carrying the reply.
  self->request(target->actor, caf::infinite, std::move(target->message))
      .then([rp](caf::message& reply) mutable { rp.deliver(std::move(reply)); },
            [rp, retry](caf::error& err) mutable {
              if (err == caf::sec::unexpected_response) return rp.deliver(std::move(err.context()));
              retry(err);
            });
  if (target->passivate_after) caf::anon_send(target->actor, passivate_atom::value, id);
}

// `from_peer`: the call came from another node's link; `final`: deliver it here regardless.
caf::result<caf::message> dispatch(router_actor* self, caf::atom_value type, std::string& id,
                                   caf::message& payload, bool from_peer, bool final) {
  auto& st = self->state;
  if (!st.clustered) {
    auto reg = st.registries.find(type);
    if (reg == st.registries.end()) return caf::sec::unexpected_message;
    return self->delegate(reg->second, route_atom::value, type, std::move(id), std::move(payload));
  }
  auto rp = self->make_response_promise();
  forward(self, rp, type, std::move(id), std::move(payload), from_peer, final, 0);
  return rp;
}

void apply_view(router_actor* self, ClusterView view) {
  auto& st = self->state;
  bool moved = view.placement != st.view.placement || view.serving != st.view.serving;
  st.clustered = true;
  // Links: one per peer incarnation (and per incarnation of this node).
  bool rejoined = view.self_incarnation != st.wiring.self_incarnation;
  st.wiring.self_incarnation = view.self_incarnation;
  std::set<std::string> keep;
  for (const auto& peer : view.peers) {
    keep.insert(peer.name);
    auto it = st.links.find(peer.name);
    if (!rejoined && it != st.links.end() && it->second.first.address == peer.address &&
        it->second.first.incarnation == peer.incarnation)
      continue;
    if (it != st.links.end()) self->send(it->second.second, retire_atom::value);
    auto link = self->spawn(cluster_link, peer, st.wiring);
    st.links[peer.name] = {peer, link};
    auto hello = st.hellos.find(peer.name);
    if (hello != st.hellos.end() && hello->second.first == peer.incarnation)
      self->send(link, accept_atom::value, hello->second.second);
  }
  for (auto it = st.links.begin(); it != st.links.end();) {
    if (keep.count(it->first)) {
      ++it;
      continue;
    }
    self->send(it->second.second, retire_atom::value);
    it = st.links.erase(it);
  }
  st.view = std::move(view);
  if (!moved) return;
  spdlog::info("cluster: view [{}], serving {}", fmt::join(st.view.placement, ", "), st.view.serving);
  if (st.wiring.settings.on_move) st.wiring.settings.on_move();
  // Entities this node no longer owns passivate; their next message activates them at the owner.
  auto shared = std::make_shared<const ClusterView>(st.view);
  for (const auto& [type, registry] : st.registries)
    if (type != admin_type)
      self->send(registry, view_atom::value,
               OwnershipTest{[shared, type = type](const std::string& id) { return owns(*shared, type, id); }});
  // The orders this node now owns that were left unfinished: now, and once the old owner's
  // in-flight steps have had time to end.
  if (st.wiring.sweeper && st.view.serving) {
    self->send(st.wiring.sweeper, sweep_atom::value);
    self->delayed_send(st.wiring.sweeper, ms(st.wiring.settings.sweep_grace_ms + 500), sweep_atom::value);
  }
}

caf::behavior router(router_actor* self, std::map<caf::atom_value, caf::actor> registries) {
  self->state.registries = std::move(registries);
  keep_running_on_errors(self, "router");
  // Links go when the router goes.
  self->set_exit_handler([self](const caf::exit_msg& msg) {
    for (auto& [_, link] : self->state.links) self->send_exit(link.second, msg.reason);
    self->state.links.clear();
    self->quit(msg.reason);
  });
  return {
      [=](route_atom, caf::atom_value type, std::string& id, caf::message& payload) {
        return dispatch(self, type, id, payload, false, false);
      },
      [=](route_atom, caf::atom_value type, std::string& id, caf::message& payload, bool final) {
        return dispatch(self, type, id, payload, true, final);
      },
      [=](hello_atom, const std::string& name, std::int64_t incarnation, caf::actor& endpoint) {
        auto& st = self->state;
        st.hellos[name] = {incarnation, endpoint};
        auto it = st.links.find(name);
        if (it != st.links.end() && it->second.first.incarnation == incarnation)
          self->send(it->second.second, accept_atom::value, endpoint);
      },
      [=](register_atom, caf::atom_value type, caf::actor& handler) {
        self->state.registries[type] = std::move(handler);
      },
      [=](admin_atom, std::string& node, caf::message& query) -> caf::result<caf::message> {
        auto& st = self->state;
        auto agent = st.registries.find(admin_type);
        if (agent == st.registries.end()) return caf::sec::unexpected_message;
        if (!st.clustered || node == st.view.self)
          return self->delegate(agent->second, route_atom::value, admin_type, std::move(node), std::move(query));
        auto link = st.links.find(node);
        if (link == st.links.end()) return not_delivered("node " + node + " is not connected");
        return self->delegate(link->second.second, route_atom::value, admin_type, std::move(node),
                              std::move(query), true);
      },
      [=](retry_atom, std::uint64_t seq) {
        auto it = self->state.retries.find(seq);
        if (it == self->state.retries.end()) return;
        auto r = std::move(it->second);
        self->state.retries.erase(it);
        forward(self, r.rp, r.type, std::move(r.id), std::move(r.payload), r.from_peer, r.final, r.attempt);
      },
      [=](ClusterWiring& wiring) {
        // From now on the node serves entities only as its cluster view says (none until joined).
        self->state.wiring = std::move(wiring);
        self->state.clustered = true;
        self->state.view.self = self->state.wiring.settings.self;
        self->state.view.serving = false;
      },
      [=](view_atom, ClusterView& view) { apply_view(self, std::move(view)); },
      [=](owned_atom, caf::atom_value type, std::vector<std::string>& ids) {
        auto& st = self->state;
        if (!st.clustered) return ids;
        std::vector<std::string> out;
        for (auto& id : ids)
          if (owns(st.view, type, id)) out.push_back(std::move(id));
        return out;
      },
  };
}

// --- membership ----------------------------------------------------------------------------------

struct membership_state {
  ClusterSettings settings;
  caf::actor db;
  caf::actor router;
  std::map<caf::atom_value, caf::actor> registries;
  std::function<std::string()> http_address;
  std::int64_t incarnation = 0;
  bool registered = false;
  bool serving = false;
  bool leaving = false;
  std::vector<MemberRow> rows;
  std::int64_t db_now_ms = 0;
  std::map<std::string, std::int64_t> suspects;  // name -> incarnation the link lost
  std::map<caf::atom_value, std::int64_t> active;  // this node's active actors, for its row
  std::chrono::steady_clock::time_point last_beat = std::chrono::steady_clock::now();
  ClusterView last_view;
  bool view_sent = false;
  bool beat_in_flight = false;  // one heartbeat at a time: an overlapping one could register twice
  // Before this process first registers: another node up under this name, at another address,
  // may be a live one (a copied configuration) or this node's last life. Its heartbeat seen first;
  // if it beats again, it is live and this node may not join (`refused`).
  bool ever_registered = false;
  std::int64_t holder_beat_ms = -1;
  std::string refused;
  static inline const char* name = "membership";
};
using membership_actor = caf::stateful_actor<membership_state>;

bool alive(const membership_state& st, const MemberRow& row) {
  return row.status == "up" && st.db_now_ms - row.heartbeat_ms <= st.settings.failure_timeout_ms;
}

void publish_view(membership_actor* self) {
  auto& st = self->state;
  ClusterView view;
  view.self = st.settings.self;
  view.self_incarnation = st.incarnation;
  view.serving = st.serving || st.leaving;  // leaving: owns nothing, hands every call on
  for (const auto& row : st.rows) {
    if (!alive(st, row)) continue;
    if (row.name == st.settings.self) {
      if (st.serving && row.incarnation == st.incarnation) view.placement.push_back(row.name);
      continue;
    }
    view.peers.push_back(Peer{row.name, row.cluster_address, row.incarnation});
    auto s = st.suspects.find(row.name);
    if (s == st.suspects.end() || s->second != row.incarnation) view.placement.push_back(row.name);
  }
  std::sort(view.placement.begin(), view.placement.end());
  bool same = st.view_sent && view.serving == st.last_view.serving &&
              view.self_incarnation == st.last_view.self_incarnation &&
              view.placement == st.last_view.placement &&
              view.peers.size() == st.last_view.peers.size() &&
              std::equal(view.peers.begin(), view.peers.end(), st.last_view.peers.begin(),
                         [](const Peer& a, const Peer& b) {
                           return a.name == b.name && a.address == b.address &&
                                  a.incarnation == b.incarnation;
                         });
  if (same) return;
  st.last_view = view;
  st.view_sent = true;
  self->send(st.router, view_atom::value, std::move(view));
}

void stop_serving(membership_actor* self, const char* why) {
  auto& st = self->state;
  if (!st.serving) return;
  spdlog::warn("cluster: {} stops serving entities: {}", st.settings.self, why);
  st.serving = false;
  publish_view(self);
}

void tick(membership_actor* self) {
  auto& st = self->state;
  if (st.leaving || st.beat_in_flight) return;
  st.beat_in_flight = true;
  MemberRow me{st.settings.self, st.settings.cluster_address, st.http_address(), st.incarnation,
               "up", 0, st.active[caf::atom("order")], st.active[caf::atom("inventory")],
               st.active[caf::atom("payment")]};
  struct Outcome {
    bool registered = false;
    std::int64_t incarnation = 0;
    bool alive = false;
    std::vector<MemberRow> rows;
    std::int64_t now_ms = 0;
    std::optional<MemberRow> holder;  // another node up under this name: not registered
  };
  auto out = std::make_shared<Outcome>();
  bool must_register = !st.registered;
  bool first = !st.ever_registered;
  auto timeout = st.settings.failure_timeout_ms;
  self->request(st.db, ms(st.settings.failure_timeout_ms),
                db_write{[out, me, must_register, first, timeout](soci::session& s) mutable {
                  if (must_register && first) {
                    auto row = member_row(s, me.name);
                    auto now = database_now_ms(s);
                    if (row && row->status == "up" && now - row->heartbeat_ms <= timeout &&
                        row->cluster_address != me.cluster_address) {
                      out->holder = std::move(row);
                      out->now_ms = now;
                      return true;
                    }
                  }
                  if (must_register) {
                    me.incarnation = register_member(s, me);
                    out->registered = true;
                    out->incarnation = me.incarnation;
                  }
                  out->alive = heartbeat_member(s, me, timeout, out->rows, out->now_ms);
                  return true;
                }})
      .then(
          [self, out](bool) {
            auto& st = self->state;
            st.beat_in_flight = false;
            if (st.leaving) return;
            if (out->holder) {
              const auto& holder = *out->holder;
              if (st.holder_beat_ms < 0) {
                st.holder_beat_ms = holder.heartbeat_ms;
                spdlog::warn("cluster: node.name {} is up at {} (its heartbeat {} ms ago): waiting to "
                             "see whether it is a live node or this node's last life",
                             st.settings.self, holder.cluster_address, out->now_ms - holder.heartbeat_ms);
              } else if (holder.heartbeat_ms != st.holder_beat_ms && st.refused.empty()) {
                st.refused = "another live node at " + holder.cluster_address + " is named " +
                             st.settings.self + " (node.name must be unique in the cluster)";
                spdlog::error("cluster: {}", st.refused);
              }
              return;
            }
            st.last_beat = std::chrono::steady_clock::now();
            if (out->registered) {
              st.registered = true;
              st.ever_registered = true;
              st.incarnation = out->incarnation;
              spdlog::info("cluster: {} registered, incarnation {}", st.settings.self, st.incarnation);
            }
            st.rows = std::move(out->rows);
            st.db_now_ms = out->now_ms;
            // Suspicion ends with the incarnation it was about.
            for (auto it = st.suspects.begin(); it != st.suspects.end();) {
              bool current = std::any_of(st.rows.begin(), st.rows.end(), [&](const MemberRow& r) {
                return r.name == it->first && r.incarnation == it->second && alive(st, r);
              });
              it = current ? std::next(it) : st.suspects.erase(it);
            }
            if (!out->alive) {
              // Declared down by a peer (we were silent too long): entities go, then we come back
              // as a new incarnation on the next beat.
              st.registered = false;
              stop_serving(self, "declared down by the cluster");
              return;
            }
            st.serving = true;
            publish_view(self);
          },
          [self](caf::error& err) {
            auto& st = self->state;
            st.beat_in_flight = false;
            auto silent = std::chrono::steady_clock::now() - st.last_beat;
            spdlog::warn("cluster: heartbeat failed: {}", to_string(code_of(err)));
            if (silent > ms(st.settings.failure_timeout_ms))
              stop_serving(self, "no heartbeat within the failure timeout");
          });
  // Active actor counts for the next row.
  for (const auto& [type, registry] : st.registries)
    self->request(registry, ms(st.settings.heartbeat_interval_ms), stats_atom::value)
        .then([self, type = type](const RegistryStats& s) { self->state.active[type] = s.active; },
              [](caf::error&) {});
}

caf::behavior membership(membership_actor* self, ClusterSettings settings, caf::actor db,
                         caf::actor router, std::map<caf::atom_value, caf::actor> registries,
                         std::function<std::string()> http_address) {
  auto& st = self->state;
  st.settings = std::move(settings);
  st.db = std::move(db);
  st.router = std::move(router);
  st.registries = std::move(registries);
  st.http_address = std::move(http_address);
  keep_running_on_errors(self, "membership");
  self->send(self, tick_atom::value);
  return {
      [=](tick_atom) {
        tick(self);
        if (!self->state.leaving)
          self->delayed_send(self, ms(self->state.settings.heartbeat_interval_ms), tick_atom::value);
      },
      [=](suspect_atom, const std::string& name, std::int64_t incarnation) {
        self->state.suspects[name] = incarnation;
        publish_view(self);
      },
      [=](connected_atom, const std::string& name, std::int64_t incarnation) {
        auto it = self->state.suspects.find(name);
        if (it != self->state.suspects.end() && it->second == incarnation) {
          self->state.suspects.erase(it);
          publish_view(self);
        }
      },
      [=](refused_atom) { return self->state.refused; },
      [=](joined_atom) {
        auto& st = self->state;
        return st.serving && st.view_sent &&
               std::find(st.last_view.placement.begin(), st.last_view.placement.end(),
                         st.settings.self) != st.last_view.placement.end();
      },
      [=](members_atom) {
        auto& st = self->state;
        std::vector<MemberStatus> out;
        for (const auto& row : st.rows) {
          MemberStatus m{row.name, row.cluster_address, row.http_address, "down", row.incarnation,
                         row.heartbeat_ms, row.active_order, row.active_inventory, row.active_payment};
          if (row.status == "left") m.status = "left";
          else if (alive(st, row)) {
            auto s = st.suspects.find(row.name);
            m.status = s != st.suspects.end() && s->second == row.incarnation ? "suspect" : "up";
          }
          if (row.name == st.settings.self && row.incarnation == st.incarnation && !st.serving)
            m.status = st.leaving ? "left" : "down";
          out.push_back(std::move(m));
        }
        return out;
      },
      [=](leave_atom) -> caf::result<bool> {
        auto& st = self->state;
        st.leaving = true;
        st.serving = false;
        auto rp = self->make_response_promise<bool>();
        auto name = st.settings.self;
        auto incarnation = st.incarnation;
        self->request(st.db, ms(st.settings.failure_timeout_ms), db_write{[name, incarnation](soci::session& s) {
                        leave_member(s, name, incarnation);
                        return true;
                      }})
            .then([rp](bool) mutable { rp.deliver(true); },
                  [rp](caf::error&) mutable { rp.deliver(false); });
        // Entities go to the other members now; calls still arriving are forwarded to them.
        publish_view(self);
        return rp;
      },
  };
}

}  // namespace

caf::actor spawn_router(caf::actor_system& system, std::map<caf::atom_value, caf::actor> registries) {
  return system.spawn(router, std::move(registries));
}

ClusterSettings cluster_settings(const Config& config) {
  ClusterSettings s;
  s.self = config.node.name;
  s.cluster_address = config.cluster.advertise;
  s.heartbeat_interval_ms = config.cluster.heartbeat_interval_ms;
  s.failure_timeout_ms = config.cluster.failure_timeout_ms;
  s.connect_timeout_ms = config.cluster.connect_timeout_ms;
  s.sweep_grace_ms = config.cluster.sweep_grace_ms;
  s.batch_max = static_cast<std::size_t>(config.cluster.batch_max);
  s.calls_pending_max = static_cast<std::size_t>(config.cluster.calls_pending_max);
  s.call_timeout_ms = config.cluster.call_timeout_ms;
  return s;
}

ClusterHandles start_cluster(caf::actor_system& system, ClusterSettings settings, caf::actor router,
                             std::map<caf::atom_value, caf::actor> registries, caf::actor db,
                             caf::actor middleman, caf::actor sweeper,
                             std::function<std::string()> http_address) {
  ClusterHandles out;
  out.endpoint = system.spawn(cluster_endpoint, router, settings.batch_max, settings.call_timeout_ms);
  out.membership = system.spawn(membership, settings, std::move(db), router, std::move(registries),
                                std::move(http_address));
  caf::anon_send(router, ClusterWiring{settings, out.membership, std::move(middleman), std::move(sweeper),
                                       out.endpoint});
  return out;
}

caf::actor start_static_cluster(caf::actor_system& system, ClusterSettings settings,
                                caf::actor router, const std::map<std::string, std::string>& members,
                                caf::actor connector) {
  auto endpoint = system.spawn(cluster_endpoint, router, settings.batch_max, settings.call_timeout_ms);
  ClusterView view;
  view.self = settings.self;
  view.self_incarnation = 1;
  view.serving = true;
  for (const auto& [name, address] : members) {
    view.placement.push_back(name);
    if (name != settings.self) view.peers.push_back(Peer{name, address, 1});
  }
  caf::anon_send(router, ClusterWiring{settings, caf::actor{}, std::move(connector), caf::actor{}, endpoint});
  caf::anon_send(router, view_atom::value, std::move(view));
  return endpoint;
}

}  // namespace emporium
