// The activation registry and the node's router.
#include "runtime/registry.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <unordered_map>
#include <utility>

#include <caf/all.hpp>

#include "runtime/atoms.hpp"
#include "runtime/clock.hpp"
#include "runtime/errors.hpp"

namespace emporium {
namespace {

using idle_sweep_atom = caf::atom_constant<caf::atom("idlesweep")>;
using hold_atom = caf::atom_constant<caf::atom("hold")>;
using terminal_tick_atom = caf::atom_constant<caf::atom("termtick")>;

// A call that waits for a stopping activation (see HoldLimits).
struct Held {
  caf::response_promise rp;
  caf::message payload;
};

// An activation passivated but still finishing its work, until it is down, with the calls that
// wait for it. Weak: one that never stops is still freed once nothing else refers to it (and
// then it is down).
struct Stopping {
  caf::actor_addr addr;
  std::vector<Held> held;
  bool stop_on_release = false;  // passivated (or moved away) while calls waited: stop the next one too
  bool resuming = false;  // the wait ended: asked whether it stays (resume_atom), not answered yet
  std::int64_t wait = 0;  // which wait (the passivation count): its timer and answer name it
};

// An entity as the registry keeps it: the id is the key of `entities` only (ids are ~30
// characters, so each copy is a heap block per entity). Active (`handle`), or its last activation
// stopping (`stopping`), not both.
struct Entry {
  caf::actor handle;
  std::unique_ptr<Stopping> stopping;
  std::int64_t activated_at_ms = 0;
  std::int64_t last_active_ms = 0;
  std::int64_t messages = 0;
  std::int64_t touched = 0;

  ActiveEntity view(const std::string& id) const {
    return {id, handle, activated_at_ms, last_active_ms, messages, touched};
  }
};

struct registry_state {
  std::unordered_map<std::string, Entry> entities;
  std::int64_t stopping_entries = 0;  // entries in `entities` whose activation is stopping
  // The id of each activation in `entities` by its actor id (the key of its entry, stable until
  // that entry is erased), for its down message. Actor ids hash without a cached hash: a smaller
  // node than an address.
  std::unordered_map<caf::actor_id, const std::string*> ids;
  // Passivated activations still finishing their work that no call waits for any more (the wait
  // ended: a newer activation of the entity runs), until they are down. Weak, as in Stopping.
  std::unordered_map<caf::actor_id, caf::actor_addr> leftover;
  // Finished entities to ask whether they are idle, in the order they reported (see
  // terminal_after_ms): when (steady clock, ms), and which activation.
  std::deque<std::pair<std::int64_t, caf::actor_id>> terminal;
  bool terminal_tick_set = false;
  bool closed = false;  // the node is stopping: calls are refused (close_atom)
  RegistryStats stats;
  static inline const char* name = "registry";
};

using registry_actor = caf::stateful_actor<registry_state>;
using EntryIt = std::unordered_map<std::string, Entry>::iterator;

// Passivates the active entity of `it`: it is told to stop after what was forwarded to it, and
// calls for it wait until it is down.
void passivate(registry_actor* self, EntryIt it) {
  auto& st = self->state;
  auto& e = it->second;
  st.stats.passivations += 1;
  e.stopping = std::make_unique<Stopping>(
      Stopping{e.handle.address(), {}, false, false, st.stats.passivations});
  self->send(e.handle, stop_atom::value);  // after everything forwarded before
  e.handle = nullptr;
  st.stopping_entries += 1;
}

// Starts an activation of entry `it` (new, or stopping: its waiting calls are the caller's) for
// its first message `first`.
void activate(registry_actor* self, const EntityFactory& factory, EntryIt it, const caf::message& first,
              std::int64_t now) {
  auto& st = self->state;
  auto& e = it->second;
  e.handle = factory(self, it->first, caf::actor_cast<caf::actor>(self), first);
  self->monitor(e.handle);
  st.ids[e.handle.id()] = &it->first;
  e.activated_at_ms = e.last_active_ms = now;
  e.messages = 0;
  e.touched = 0;
  st.stats.activations += 1;
}

// Drops the queue entries of finished entities that are gone (passivated another way, or down),
// once they are more than half of it: the queue otherwise keeps them until they come due, and a
// passivated entity must cost nothing. Amortized: each pass at least halves the queue.
void prune_finished(registry_state& st) {
  constexpr size_t kKeptAnyway = 64;
  if (st.terminal.size() <= kKeptAnyway || st.terminal.size() <= 2 * st.entities.size()) return;
  std::deque<std::pair<std::int64_t, caf::actor_id>> kept;
  for (const auto& t : st.terminal)
    if (st.ids.count(t.second) != 0) kept.push_back(t);
  st.terminal.swap(kept);
}

void touch(Entry& e, std::int64_t now) {
  e.messages += 1;
  e.last_active_ms = now;
  e.touched = steady_ms();
}

// Ends the wait for the stopping activation of `it`: its waiting calls go to a new activation, in
// the order they came, and later calls straight to that one. The old one, when not down yet, is
// kept in `leftover` until it is. With no call waiting the entry goes.
void release(registry_actor* self, const EntityFactory& factory, const std::function<std::int64_t()>& now_ms,
             EntryIt it, bool down) {
  auto& st = self->state;
  auto stopping = std::move(it->second.stopping);
  st.stopping_entries -= 1;
  auto old = stopping->addr.id();
  st.ids.erase(old);
  if (!down) st.leftover.emplace(old, stopping->addr);
  if (stopping->held.empty()) {
    st.entities.erase(it);
    return;
  }
  auto now = now_ms();
  activate(self, factory, it, stopping->held.front().payload, now);
  for (auto& m : stopping->held) {
    touch(it->second, now);
    m.rp.delegate(it->second.handle, std::move(m.payload));
  }
  if (stopping->stop_on_release) passivate(self, it);
}

// The stopping activation of `it` stays after all (it answered resume_atom with true): the calls
// that waited for it go to it, in the order they came, and later calls too. Passivated again
// meanwhile (or moved away, or the node closing), it is told to stop once more.
void readopt(registry_actor* self, EntryIt it, caf::actor old, std::int64_t now) {
  auto& st = self->state;
  auto stopping = std::move(it->second.stopping);
  st.stopping_entries -= 1;
  st.stats.resumed += 1;
  auto& e = it->second;
  e.handle = std::move(old);
  for (auto& m : stopping->held) {
    touch(e, now);
    m.rp.delegate(e.handle, std::move(m.payload));
  }
  if (stopping->stop_on_release || st.closed) passivate(self, it);
}

// The wait for the stopping activation of `it` is over (its time is up, or it holds its maximum of
// calls): one still alive is asked whether it stays, and the calls go to it if it does; otherwise
// (gone, unwilling, or no answer within `hold_ms`) they go to a new activation (see HoldLimits).
void end_wait(registry_actor* self, const EntityFactory& factory,
              const std::function<std::int64_t()>& now_ms, const HoldLimits& hold, EntryIt it) {
  auto& stopping = *it->second.stopping;
  if (stopping.resuming) return;
  auto old = caf::actor_cast<caf::actor>(stopping.addr);
  if (!old) return release(self, factory, now_ms, it, false);
  stopping.resuming = true;
  auto settle = [self, factory, now_ms, id = it->first, wait = stopping.wait](bool stays) {
    auto& st = self->state;
    auto it = st.entities.find(id);
    // Down meanwhile: its calls went to a new activation already.
    if (it == st.entities.end() || !it->second.stopping || it->second.stopping->wait != wait)
      return;
    it->second.stopping->resuming = false;
    auto old = caf::actor_cast<caf::actor>(it->second.stopping->addr);
    if (stays && old) return readopt(self, it, std::move(old), now_ms());
    release(self, factory, now_ms, it, false);
  };
  self->request(old, std::chrono::milliseconds(hold.hold_ms), resume_atom::value)
      .then([settle](bool stays) { settle(stays); }, [settle](caf::error&) { settle(false); });
}

// Keeps a call for the stopping activation of `it` until the wait ends (see HoldLimits).
caf::result<caf::message> hold_call(registry_actor* self, const HoldLimits& hold, EntryIt it,
                                    caf::message& payload) {
  auto& stopping = *it->second.stopping;
  if (stopping.held.empty())
    self->delayed_send(self, std::chrono::milliseconds(hold.hold_ms), hold_atom::value, it->first,
                       stopping.wait);
  self->state.stats.held += 1;
  auto rp = self->make_response_promise();
  stopping.held.push_back({rp, std::move(payload)});
  return rp;
}

caf::behavior registry(registry_actor* self, EntityFactory factory,
                       std::function<std::int64_t()> now_ms, std::int64_t idle_after_ms,
                       int probes_per_sweep, HoldLimits hold, std::int64_t terminal_after_ms) {
  auto terminal_every = terminal_tick_every(terminal_after_ms);
  // Looks for idle entities many times per idle period (every 10 ms to 1 s), and asks at most
  // probes_per_sweep of them each time (see kIdleProbesPerSweep).
  auto sweep_every = idle_sweep_every(idle_after_ms);
  if (idle_after_ms >= 0) self->delayed_send(self, sweep_every, idle_sweep_atom::value);
  // Shutdown: the registry takes its entities with it (they are monitored, not linked, so an
  // entity that fails does not take the registry down). Calls still waiting are answered.
  self->set_exit_handler([=](const caf::exit_msg& msg) {
    auto& st = self->state;
    auto stop = [&](const caf::actor_addr& addr) {
      if (auto handle = caf::actor_cast<caf::actor>(addr)) self->send_exit(handle, msg.reason);
    };
    for (auto& [_, e] : st.entities) {
      if (e.handle) self->send_exit(e.handle, msg.reason);
      if (!e.stopping) continue;
      stop(e.stopping->addr);
      for (auto& m : e.stopping->held) m.rp.deliver(make_error(errc::unavailable, "node stopping"));
    }
    for (auto& [_, addr] : st.leftover) stop(addr);
    st.entities.clear();
    st.ids.clear();
    st.leftover.clear();
    self->quit(msg.reason);
  });
  // An activation that is down: one that stopped on its own (crash, fencing) is forgotten; one
  // that was passivated lets the calls waiting for it go on.
  self->set_down_handler([=](const caf::down_msg& dm) {
    auto& st = self->state;
    auto aid = dm.source.id();
    st.leftover.erase(aid);
    auto id = st.ids.find(aid);
    if (id == st.ids.end()) return;
    auto it = st.entities.find(*id->second);
    if (it->second.stopping) {
      release(self, factory, now_ms, it, true);
    } else {
      st.ids.erase(id);
      st.entities.erase(it);
    }
    prune_finished(st);
  });
  return {
      [=](route_atom, caf::atom_value, const std::string& id,
          caf::message& payload) -> caf::result<caf::message> {
        auto& st = self->state;
        if (st.closed) return caf::make_error(caf::sec::request_receiver_down);
        auto it = st.entities.find(id);
        if (it != st.entities.end() && it->second.stopping) {
          if (static_cast<std::int64_t>(it->second.stopping->held.size()) >= hold.held_max) {
            end_wait(self, factory, now_ms, hold, it);  // full: the wait ends now
            it = st.entities.find(id);                  // gone, had nothing waited
          }
          // Still waiting: for its answer (past the maximum, up to four times it), or passivated
          // again on release.
          if (it != st.entities.end() && it->second.stopping) {
            if (static_cast<std::int64_t>(it->second.stopping->held.size()) >= 4 * hold.held_max)
              return make_error(errc::busy, "too many calls wait for this entity");
            return hold_call(self, hold, it, payload);
          }
        }
        auto now = now_ms();
        if (it == st.entities.end()) {
          it = st.entities.try_emplace(id).first;
          activate(self, factory, it, payload, now);
        }
        touch(it->second, now);
        return self->delegate(it->second.handle, std::move(payload));
      },
      [=](hold_atom, const std::string& id, std::int64_t wait) {  // waited long enough
        auto& st = self->state;
        auto it = st.entities.find(id);
        if (it != st.entities.end() && it->second.stopping && it->second.stopping->wait == wait)
          end_wait(self, factory, now_ms, hold, it);
      },
      [=](idle_sweep_atom) {
        auto quiet_since = steady_ms() - idle_after_ms;
        int probes = 0;
        for (auto& [_, e] : self->state.entities) {
          if (!e.handle || e.touched > quiet_since) continue;
          self->send(e.handle, idle_atom::value);
          e.touched = steady_ms();  // asked: not again before another idle period
          if (++probes == probes_per_sweep) break;
        }
        self->delayed_send(self, sweep_every, idle_sweep_atom::value);
      },
      [=](terminal_atom) {
        auto& st = self->state;
        if (terminal_after_ms < 0 || !self->current_sender()) return;
        st.terminal.emplace_back(steady_ms() + terminal_after_ms, self->current_sender()->id());
        if (st.terminal_tick_set) return;
        st.terminal_tick_set = true;
        self->delayed_send(self, std::max(std::chrono::milliseconds(terminal_after_ms), terminal_every),
                           terminal_tick_atom::value);
      },
      [=](terminal_tick_atom) {
        auto& st = self->state;
        auto now = steady_ms();
        while (!st.terminal.empty() && st.terminal.front().first <= now) {
          auto aid = st.terminal.front().second;
          st.terminal.pop_front();
          auto id = st.ids.find(aid);
          if (id == st.ids.end()) continue;  // gone already
          auto& e = st.entities.find(*id->second)->second;
          if (e.handle && e.handle.id() == aid) self->send(e.handle, idle_atom::value);
        }
        st.terminal_tick_set = !st.terminal.empty();
        if (!st.terminal_tick_set) return;
        auto wait = std::chrono::milliseconds(std::max<std::int64_t>(st.terminal.front().first - now, 0));
        self->delayed_send(self, std::max(wait, terminal_every), terminal_tick_atom::value);
      },
      [=](idle_atom, const std::string& id) {
        auto& st = self->state;
        auto it = st.entities.find(id);
        auto sender = caf::actor_cast<caf::actor>(self->current_sender());
        if (it == st.entities.end() || !it->second.handle || it->second.handle != sender) {
          // One whose calls went to a newer activation (its answer to resume_atom came too late)
          // is told to stop when it asks to.
          if (sender && st.leftover.count(sender.id()) != 0) self->send(sender, stop_atom::value);
          return;
        }
        passivate(self, it);
      },
      [=](passivate_atom, const std::string& id) {
        auto& st = self->state;
        auto it = st.entities.find(id);
        if (it == st.entities.end()) return false;
        if (it->second.handle) {
          passivate(self, it);
          return true;
        }
        // Stopping already: the activation the waiting calls will start stops after them.
        auto& stopping = *it->second.stopping;
        if (stopping.held.empty()) return false;
        stopping.stop_on_release = true;
        return true;
      },
      [=](find_atom, const std::string& id) -> caf::result<ActiveEntity> {
        auto it = self->state.entities.find(id);
        if (it == self->state.entities.end() || !it->second.handle) return make_error(errc::not_found);
        return it->second.view(it->first);
      },
      [=](list_atom, std::int64_t limit) {
        std::vector<ActiveEntity> out;
        for (auto& [id, e] : self->state.entities)
          if (e.handle) out.push_back(e.view(id));
        std::sort(out.begin(), out.end(),
                  [](auto& a, auto& b) { return a.last_active_ms > b.last_active_ms; });
        if (static_cast<std::int64_t>(out.size()) > limit) out.resize(static_cast<size_t>(limit));
        return out;
      },
      [=](view_atom, const OwnershipTest& test) {
        auto& st = self->state;
        for (auto it = st.entities.begin(); it != st.entities.end(); ++it) {
          if (test.owns(it->first)) continue;
          if (it->second.handle) passivate(self, it);
          // Whichever activation takes the calls that wait (this one staying, or a new one) stops
          // after them: the entity is owned elsewhere now.
          it->second.stopping->stop_on_release = true;
        }
      },
      // Before the node stops (stop_node_actors): each active entity gets flush_atom, and the answer
      // comes once each has answered it, or failed to (an entity without a handler for it fails at
      // once). An item writes then what it keeps in memory only (actors/inventory.cpp), so its
      // write is queued at its persistence actor before that actor stops.
      [=](flush_atom) -> caf::result<bool> {
        auto left = std::make_shared<std::size_t>(0);
        for (auto& [_, e] : self->state.entities)
          if (e.handle) *left += 1;
        if (*left == 0) return true;
        auto rp = self->make_response_promise();
        auto one_done = [left, rp]() mutable {
          if (--*left == 0) rp.deliver(true);
        };
        for (auto& [_, e] : self->state.entities)
          if (e.handle)
            self->request(e.handle, std::chrono::seconds(2), flush_atom::value)
                .then([one_done](bool) mutable { one_done(); },
                      [one_done](caf::error&) mutable { one_done(); });
        return rp;
      },
      // The node is stopping: from now on a call is refused as if its receiver were gone, as it
      // was when every call went through the router and the stop began by stopping the router.
      // Calls held for a stopping activation are answered so too: none starts a new one.
      [=](close_atom) {
        auto& st = self->state;
        st.closed = true;
        for (auto& [_, e] : st.entities)
          if (e.stopping)
            for (auto& m : std::exchange(e.stopping->held, {}))
              m.rp.deliver(caf::make_error(caf::sec::request_receiver_down));
      },
      [=](stats_atom) {
        auto& st = self->state;
        auto stats = st.stats;
        auto entries = static_cast<std::int64_t>(st.entities.size());
        stats.active = entries - st.stopping_entries;
        stats.alive = entries + static_cast<std::int64_t>(st.leftover.size());
        stats.finished_queued = static_cast<std::int64_t>(st.terminal.size());
        return stats;
      },
  };
}

}  // namespace

caf::actor spawn_registry(caf::actor_system& system, EntityFactory factory,
                          std::function<std::int64_t()> now_ms, std::int64_t idle_after_ms,
                          int probes_per_sweep, HoldLimits hold, std::int64_t terminal_after_ms) {
  return system.spawn(registry, std::move(factory), std::move(now_ms), idle_after_ms,
                      std::max(1, probes_per_sweep), hold, terminal_after_ms);
}

std::chrono::milliseconds idle_sweep_every(std::int64_t idle_after_ms) {
  return std::chrono::milliseconds(std::clamp<std::int64_t>(idle_after_ms / 16, 10, 1000));
}

std::chrono::milliseconds terminal_tick_every(std::int64_t terminal_after_ms) {
  return std::chrono::milliseconds(std::clamp<std::int64_t>(terminal_after_ms / 16, 10, 250));
}

}  // namespace emporium
