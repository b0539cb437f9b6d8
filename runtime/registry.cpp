// The activation registry and the node's router.
#include "runtime/registry.hpp"

#include <algorithm>
#include <chrono>
#include <unordered_map>

#include <caf/all.hpp>

#include "runtime/atoms.hpp"
#include "runtime/errors.hpp"

namespace emporium {
namespace {

using idle_sweep_atom = caf::atom_constant<caf::atom("idlesweep")>;
using hold_atom = caf::atom_constant<caf::atom("hold")>;

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// An active entity as the registry keeps it: the id is the key of `active` only (ids are ~30
// characters, so each copy is a heap block per entity).
struct Entry {
  caf::actor handle;
  std::int64_t activated_at_ms = 0;
  std::int64_t last_active_ms = 0;
  std::int64_t messages = 0;
  std::int64_t touched = 0;

  ActiveEntity view(const std::string& id) const {
    return {id, handle, activated_at_ms, last_active_ms, messages, touched};
  }
};

struct registry_state {
  std::unordered_map<std::string, Entry> active;
  // The id of each active entity by its actor id (the key of its entry in `active`, stable until
  // that entry is erased), to forget one that stops on its own. Actor ids hash without a cached
  // hash: a smaller node than an address.
  std::unordered_map<caf::actor_id, const std::string*> active_ids;
  // Entities passivated but still finishing their work, until they are down. Weak: one that
  // never stops is still freed once nothing else refers to it (and then it is down).
  struct Stopping {
    caf::actor_addr addr;
    std::string id;
  };
  std::unordered_map<caf::actor_id, Stopping> stopping;
  // The last activation of an entity that is stopping, while messages for the entity wait for it
  // to be down (see HoldLimits); and those messages, in the order they came.
  std::unordered_map<std::string, caf::actor_id> stopping_by_id;
  struct Held {
    caf::response_promise rp;
    caf::message payload;
  };
  std::unordered_map<std::string, std::vector<Held>> held;
  RegistryStats stats;
  static inline const char* name = "registry";
};

using registry_actor = caf::stateful_actor<registry_state>;

// Forgets an active entity, which goes on in `stopping` until it is down.
void forget(registry_state& st, std::unordered_map<std::string, Entry>::iterator it) {
  auto aid = it->second.handle.id();
  st.active_ids.erase(aid);
  st.stopping.emplace(aid, registry_state::Stopping{it->second.handle.address(), it->first});
  st.stopping_by_id[it->first] = aid;
  st.active.erase(it);
}

// Starts an activation of `id` for its first message `first`.
Entry& activate(registry_actor* self, const EntityFactory& factory, const std::string& id,
                const caf::message& first, std::int64_t now) {
  auto& st = self->state;
  auto entity = factory(self, id, caf::actor_cast<caf::actor>(self), first);
  self->monitor(entity);
  auto aid = entity.id();
  auto it = st.active.emplace(id, Entry{std::move(entity), now, now, 0, 0}).first;
  st.active_ids.emplace(aid, &it->first);
  st.stats.activations += 1;
  return it->second;
}

void touch(Entry& e, std::int64_t now) {
  e.messages += 1;
  e.last_active_ms = now;
  e.touched = steady_ms();
}

// The messages that waited for `id`'s stopping activation go to a new one, in the order they came
// (its stopping is no longer waited for: later messages go straight to the new one).
void release_held(registry_actor* self, const EntityFactory& factory,
                  const std::function<std::int64_t()>& now_ms, const std::string& id) {
  auto& st = self->state;
  st.stopping_by_id.erase(id);
  auto h = st.held.find(id);
  if (h == st.held.end()) return;
  auto waiting = std::move(h->second);
  st.held.erase(h);
  if (waiting.empty()) return;
  auto now = now_ms();
  auto it = st.active.find(id);
  Entry& e = it != st.active.end() ? it->second : activate(self, factory, id, waiting.front().payload, now);
  for (auto& m : waiting) {
    touch(e, now);
    m.rp.delegate(e.handle, std::move(m.payload));
  }
}

caf::behavior registry(registry_actor* self, EntityFactory factory,
                       std::function<std::int64_t()> now_ms, std::int64_t idle_after_ms,
                       int probes_per_sweep, HoldLimits hold) {
  // Looks for idle entities many times per idle period (every 10 ms to 1 s), and asks at most
  // probes_per_sweep of them each time (see kIdleProbesPerSweep).
  auto sweep_every = std::chrono::milliseconds(std::clamp<std::int64_t>(idle_after_ms / 16, 10, 1000));
  if (idle_after_ms >= 0) self->delayed_send(self, sweep_every, idle_sweep_atom::value);
  // Shutdown: the registry takes its entities with it (they are monitored, not linked, so an
  // entity that fails does not take the registry down).
  self->set_exit_handler([=](const caf::exit_msg& msg) {
    for (auto& [_, e] : self->state.active) self->send_exit(e.handle, msg.reason);
    self->state.active.clear();
    self->state.active_ids.clear();
    // Entities told to stop that are still finishing their work go too.
    for (auto& [_, s] : self->state.stopping)
      if (auto handle = caf::actor_cast<caf::actor>(s.addr)) self->send_exit(handle, msg.reason);
    for (auto& [_, waiting] : self->state.held)
      for (auto& m : waiting) m.rp.deliver(make_error(errc::unavailable, "node stopping"));
    self->state.held.clear();
    self->quit(msg.reason);
  });
  // An entity that stopped on its own (crash, fencing) is forgotten too.
  self->set_down_handler([=](const caf::down_msg& dm) {
    auto& st = self->state;
    auto aid = dm.source.id();
    if (auto it = st.active_ids.find(aid); it != st.active_ids.end()) {
      st.active.erase(st.active.find(*it->second));
      st.active_ids.erase(it);
    }
    auto s = st.stopping.find(aid);
    if (s == st.stopping.end()) return;
    auto id = std::move(s->second.id);
    st.stopping.erase(s);
    auto last = st.stopping_by_id.find(id);
    if (last != st.stopping_by_id.end() && last->second == aid) release_held(self, factory, now_ms, id);
  });
  return {
      [=](route_atom, caf::atom_value, const std::string& id,
          caf::message& payload) -> caf::result<caf::message> {
        auto& st = self->state;
        auto it = st.active.find(id);
        auto now = now_ms();
        if (it == st.active.end()) {
          if (auto last = st.stopping_by_id.find(id); last != st.stopping_by_id.end()) {
            auto& waiting = st.held[id];
            if (static_cast<std::int64_t>(waiting.size()) < hold.held_max) {
              if (waiting.empty())
                self->delayed_send(self, std::chrono::milliseconds(hold.hold_ms), hold_atom::value, id,
                                   last->second);
              st.stats.held += 1;
              auto rp = self->make_response_promise();
              waiting.push_back({rp, std::move(payload)});
              return rp;
            }
            release_held(self, factory, now_ms, id);  // full: the wait ends now
            it = st.active.find(id);
          }
        }
        Entry& e = it != st.active.end() ? it->second : activate(self, factory, id, payload, now);
        touch(e, now);
        return self->delegate(e.handle, std::move(payload));
      },
      [=](hold_atom, const std::string& id, caf::actor_id aid) {  // waited long enough
        auto& st = self->state;
        auto last = st.stopping_by_id.find(id);
        if (last != st.stopping_by_id.end() && last->second == aid) release_held(self, factory, now_ms, id);
      },
      [=](idle_sweep_atom) {
        auto quiet_since = steady_ms() - idle_after_ms;
        int probes = 0;
        for (auto& [_, e] : self->state.active) {
          if (e.touched > quiet_since) continue;
          self->send(e.handle, idle_atom::value);
          e.touched = steady_ms();  // asked: not again before another idle period
          if (++probes == probes_per_sweep) break;
        }
        self->delayed_send(self, sweep_every, idle_sweep_atom::value);
      },
      [=](idle_atom, const std::string& id) {
        auto& st = self->state;
        auto it = st.active.find(id);
        auto sender = caf::actor_cast<caf::actor>(self->current_sender());
        if (it == st.active.end() || it->second.handle != sender) return;
        forget(st, it);
        st.stats.passivations += 1;
        self->send(sender, stop_atom::value);
      },
      [=](passivate_atom, const std::string& id) {
        auto& st = self->state;
        auto it = st.active.find(id);
        if (it == st.active.end()) return false;
        auto handle = it->second.handle;
        forget(st, it);
        st.stats.passivations += 1;
        self->send(handle, stop_atom::value);  // after everything forwarded before
        return true;
      },
      [=](find_atom, const std::string& id) -> caf::result<ActiveEntity> {
        auto it = self->state.active.find(id);
        if (it == self->state.active.end()) return make_error(errc::not_found);
        return it->second.view(it->first);
      },
      [=](list_atom, std::int64_t limit) {
        std::vector<ActiveEntity> out;
        for (auto& [id, e] : self->state.active) out.push_back(e.view(id));
        std::sort(out.begin(), out.end(),
                  [](auto& a, auto& b) { return a.last_active_ms > b.last_active_ms; });
        if (static_cast<std::int64_t>(out.size()) > limit) out.resize(static_cast<size_t>(limit));
        return out;
      },
      [=](view_atom, const OwnershipTest& test) {
        auto& st = self->state;
        std::vector<std::string> moved;
        for (auto& [id, e] : st.active)
          if (!test.owns(id)) moved.push_back(id);
        for (const auto& id : moved) {
          auto it = st.active.find(id);
          self->send(it->second.handle, stop_atom::value);  // after everything forwarded before
          forget(st, it);
          st.stats.passivations += 1;
        }
      },
      [=](stats_atom) {
        auto stats = self->state.stats;
        stats.active = static_cast<std::int64_t>(self->state.active.size());
        stats.alive = static_cast<std::int64_t>(self->state.active.size() + self->state.stopping.size());
        return stats;
      },
  };
}

}  // namespace

caf::actor spawn_registry(caf::actor_system& system, EntityFactory factory,
                          std::function<std::int64_t()> now_ms, std::int64_t idle_after_ms,
                          int probes_per_sweep, HoldLimits hold) {
  return system.spawn(registry, std::move(factory), std::move(now_ms), idle_after_ms,
                      std::max(1, probes_per_sweep), hold);
}

}  // namespace emporium
