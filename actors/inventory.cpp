// The inventory item actor. Changes are applied in memory at once and written in order (each
// write fenced by the version the previous one produced), so a hot SKU shares group commits
// instead of waiting one commit per order. A change is answered only once its write committed.
// When a write fails, memory may be ahead of the database: the actor answers the rest with the
// error and stops, and the next message activates it again from storage.
#include "actors/inventory.hpp"

#include <algorithm>
#include <map>

#include "actors/entity.hpp"
#include "runtime/registry.hpp"
#include "runtime/store.hpp"

namespace emporium {
namespace {

struct inventory_state {
  ContextPtr ctx;
  std::string sku;
  bool exists = false;
  ItemRecord item;       // latest, including writes not yet committed
  ItemRecord committed;  // what the database holds: the only state reported to readers
  std::map<std::string, ReservationRecord> reservations;  // active ones, by order id
  int writes_in_flight = 0;
  int checks_in_flight = 0;  // reads of the stored version (when_absent)
  bool broken = false;
  bool fenced = false;  // broken by a version check: another activation wrote first
  bool stop_requested = false;  // passivation asked while writes were in flight
  caf::actor registry;
  std::int64_t published = 0;  // the version readers see (0: none)
  static inline const char* name = "inventory";
  // Readers stop seeing this activation's snapshot when it stops, however it stops: CAF destroys
  // an actor's state when it terminates.
  ~inventory_state() {
    if (published != 0 && ctx) ctx->item_snapshots->withdraw(sku, published);
  }
};

using inventory_actor = entity_actor<inventory_state>;

caf::error failure(errc code) { return make_error(code); }

// Stops once nothing it started is still waiting for an answer, when it must stop.
void quit_when_done(inventory_actor* self) {
  auto& st = self->state;
  if ((st.broken || st.stop_requested) && st.writes_in_flight == 0 && st.checks_in_flight == 0)
    self->quit();
}

// Writes the current item and `changed` reservations; answers `rp` with the item once committed.
void persist(inventory_actor* self, std::vector<ReservationRecord> changed, caf::response_promise rp,
             caf::message reply) {
  auto& st = self->state;
  std::int64_t expected = st.exists ? st.item.version : 0;
  st.item.version = expected + 1;
  st.exists = true;
  ItemRecord snapshot = st.item;
  st.writes_in_flight += 1;
  self->request(st.ctx->inventory_db_for(st.sku), caf::infinite,
                db_save{ItemWrite{snapshot, expected, std::move(changed)}})
      .then(
          [self, rp, reply, snapshot](bool applied) mutable {
            auto& st = self->state;
            st.writes_in_flight -= 1;
            if (!applied || st.broken) {
              st.broken = true;
              if (!applied) st.fenced = true;
              if (rp.pending())
                rp.deliver(failure(applied ? errc::db_unavailable : errc::version_conflict));
            } else {
              st.committed = snapshot;
              st.ctx->item_snapshots->publish(snapshot);
              st.published = snapshot.version;
              if (rp.pending()) rp.deliver(reply.empty() ? caf::make_message(snapshot) : reply);
            }
            quit_when_done(self);
          },
          [self, rp](caf::error& err) mutable {
            auto& st = self->state;
            st.writes_in_flight -= 1;
            st.broken = true;
            if (rp.pending()) rp.deliver(err);
            quit_when_done(self);
          });
}

// Releases held reservations past their expiry; returns whether any was released.
bool expire_reservations(inventory_actor* self) {
  auto& st = self->state;
  auto now = st.ctx->clock->now_ms();
  std::vector<ReservationRecord> changed;
  for (auto it = st.reservations.begin(); it != st.reservations.end();) {
    auto& r = it->second;
    if (r.state == ReservationState::held && r.expires_at_ms <= now) {
      r.state = ReservationState::released;
      st.item.reserved -= r.quantity;
      changed.push_back(r);
      it = st.reservations.erase(it);
    } else {
      ++it;
    }
  }
  if (changed.empty()) return false;
  persist(self, std::move(changed), caf::response_promise{}, caf::message{});
  return true;
}

void schedule_expiry(inventory_actor* self) {
  auto& st = self->state;
  std::int64_t earliest = 0;
  for (auto& [_, r] : st.reservations)
    if (r.state == ReservationState::held && (earliest == 0 || r.expires_at_ms < earliest))
      earliest = r.expires_at_ms;
  if (earliest == 0) return;
  auto delay = std::max<std::int64_t>(earliest - st.ctx->clock->now_ms(), 0) + 1;
  self->delayed_send(self, ms(delay), expire_atom::value);
}

bool has_held(const inventory_state& st) {
  return std::any_of(st.reservations.begin(), st.reservations.end(),
                     [](auto& kv) { return kv.second.state == ReservationState::held; });
}

// A reservation this activation does not know of may have been made by another activation of the
// item (on the node that owned it before a view change) after this one loaded. Before answering
// from its absence, it reads the stored version: the persistence actor answers a read after the
// writes sent to it before, so by then `committed` includes every write of ours that went through.
// Storage ahead of `committed`, or a write of ours fenced meanwhile, means this activation is
// stale: it answers version_conflict (the router sends the call again, to a fresh activation) and
// stops. `answer(rp)` gives the answer of a current activation.
template <class Answer>
caf::response_promise when_absent(inventory_actor* self, Answer answer) {
  auto& st = self->state;
  auto rp = self->make_response_promise();
  auto stored = std::make_shared<std::int64_t>(0);
  st.checks_in_flight += 1;
  self->request(st.ctx->inventory_db_for(st.sku), caf::infinite,
                db_read{[sku = st.sku, stored](soci::session& s) {
                  if (auto loaded = load_item(s, sku)) *stored = loaded->item.version;
                }})
      .then(
          [self, stored, rp, answer](bool) mutable {
            auto& st = self->state;
            st.checks_in_flight -= 1;
            if (st.fenced || *stored > st.committed.version) {
              st.broken = true;
              st.fenced = true;
              rp.deliver(failure(errc::version_conflict));
            } else {
              answer(rp);
            }
            quit_when_done(self);
          },
          [self, rp](caf::error& err) mutable {
            self->state.checks_in_flight -= 1;
            rp.deliver(err);
            quit_when_done(self);
          });
  return rp;
}

const caf::behavior& item_handlers();

caf::behavior inventory_item(inventory_actor* self, ContextPtr ctx, std::string sku,
                             caf::actor registry) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.sku = std::move(sku);
  st.registry = std::move(registry);
  load_then<ItemState>(self, st.ctx->inventory_db_for(st.sku),
                       [sku = st.sku](soci::session& s) { return load_item(s, sku); },
                       [self](std::optional<ItemState> loaded) {
                         auto& st = self->state;
                         if (!loaded) return;
                         st.exists = true;
                         st.item = st.committed = loaded->item;
                         st.ctx->item_snapshots->publish(st.committed);
                         st.published = st.committed.version;
                         for (auto& r : loaded->reservations) st.reservations[r.order_id] = r;
                         expire_reservations(self);
                         schedule_expiry(self);
                       });
  return item_handlers();
}

// A change refused because this activation broke: fenced, another activation owns the row now,
// so the caller may send the call again there.
std::optional<caf::error> refused(inventory_actor* self) {
  if (self->state.broken) return failure(self->state.fenced ? errc::version_conflict : errc::db_unavailable);
  return std::nullopt;
}

// The handlers, built once and shared by every item actor (see entity_actor).
const caf::behavior& item_handlers() {
  static const caf::behavior handlers{
      [](mailbox_atom) { return inventory_actor::current()->mailbox().size(); },
      [](get_atom) -> caf::result<ItemRecord> {
        auto* self = inventory_actor::current();
        if (!self->state.exists) return failure(errc::not_found);
        return self->state.committed;
      },
      [](inspect_atom) -> caf::result<item_state_view> {
        auto* self = inventory_actor::current();
        item_state_view view{self->state.committed, {}};
        for (auto& [_, r] : self->state.reservations) view.reservations.push_back(r);
        return view;
      },
      [](item_put& put) -> caf::result<item_put_result> {
        auto* self = inventory_actor::current();
        if (auto err = refused(self)) return *err;
        auto& st = self->state;
        if (st.exists && put.on_hand < st.item.reserved) return failure(errc::conflict);
        bool created = !st.exists;
        if (created) st.item = ItemRecord{st.sku, {}, 0, "USD", 0, 0, 0};
        st.item.name = put.name;
        st.item.price_cents = put.price_cents;
        st.item.currency = put.currency;
        st.item.on_hand = put.on_hand;
        auto rp = self->make_response_promise();
        ItemRecord after = st.item;
        after.version += 1;
        persist(self, {}, rp, caf::make_message(item_put_result{after, created}));
        return rp;
      },
      [](item_adjust& adj) -> caf::result<ItemRecord> {
        auto* self = inventory_actor::current();
        if (auto err = refused(self)) return *err;
        auto& st = self->state;
        if (!st.exists) return failure(errc::not_found);
        if (st.item.on_hand + adj.delta < st.item.reserved) return failure(errc::conflict);
        st.item.on_hand += adj.delta;
        auto rp = self->make_response_promise();
        persist(self, {}, rp, {});
        return rp;
      },
      [](item_reserve& req) -> caf::result<ItemRecord> {
        auto* self = inventory_actor::current();
        if (auto err = refused(self)) return *err;
        auto& st = self->state;
        if (!st.exists) return failure(errc::unknown_sku);
        if (st.reservations.count(req.order_id)) return st.committed;  // re-delivery
        if (req.quantity <= 0) return failure(errc::invalid_argument);
        if (st.item.available() < req.quantity) return failure(errc::insufficient_stock);
        auto expires = st.ctx->clock->now_ms() + st.ctx->settings.reservation_ttl_ms;
        ReservationRecord r{st.sku, req.order_id, req.quantity, ReservationState::held, expires};
        st.reservations[req.order_id] = r;
        st.item.reserved += req.quantity;
        auto rp = self->make_response_promise();
        persist(self, {r}, rp, {});
        if (st.reservations.size() == 1) schedule_expiry(self);
        return rp;
      },
      [](item_commit& req) -> caf::result<ItemRecord> {
        auto* self = inventory_actor::current();
        if (auto err = refused(self)) return *err;
        auto& st = self->state;
        auto it = st.reservations.find(req.order_id);
        if (it == st.reservations.end())
          return when_absent(self, [](caf::response_promise& rp) { rp.deliver(failure(errc::not_found)); });
        if (it->second.state == ReservationState::committed) return st.committed;
        it->second.state = ReservationState::committed;
        it->second.expires_at_ms = 0;
        auto rp = self->make_response_promise();
        persist(self, {it->second}, rp, {});
        return rp;
      },
      [](item_release& req) -> caf::result<ItemRecord> {
        auto* self = inventory_actor::current();
        if (auto err = refused(self)) return *err;
        auto& st = self->state;
        if (!st.exists) return failure(errc::not_found);
        auto it = st.reservations.find(req.order_id);
        if (it == st.reservations.end())  // nothing held: already released (or never held)
          return when_absent(self, [self](caf::response_promise& rp) { rp.deliver(self->state.committed); });
        auto r = it->second;
        r.state = ReservationState::released;
        st.item.reserved -= r.quantity;
        st.reservations.erase(it);
        auto rp = self->make_response_promise();
        persist(self, {r}, rp, {});
        return rp;
      },
      [](item_ship& req) -> caf::result<ItemRecord> {
        auto* self = inventory_actor::current();
        if (auto err = refused(self)) return *err;
        auto& st = self->state;
        if (!st.exists) return failure(errc::not_found);
        auto it = st.reservations.find(req.order_id);
        if (it == st.reservations.end())  // shipped before: re-delivery
          return when_absent(self, [self](caf::response_promise& rp) { rp.deliver(self->state.committed); });
        auto r = it->second;
        r.state = ReservationState::shipped;
        st.item.reserved -= r.quantity;
        st.item.on_hand -= r.quantity;
        st.reservations.erase(it);
        auto rp = self->make_response_promise();
        persist(self, {r}, rp, {});
        return rp;
      },
      [](expire_atom) {
        auto* self = inventory_actor::current();
        if (self->state.broken) return;
        expire_reservations(self);
        schedule_expiry(self);
      },
      [](stop_atom) {
        auto* self = inventory_actor::current();
        self->state.stop_requested = true;  // the last answer it waits for stops it
        quit_when_done(self);
      },
      [](idle_atom) {  // the registry asks: nothing came for a while
        auto* self = inventory_actor::current();
        auto& st = self->state;
        // Held reservations keep the actor: their expiry timer lives here.
        if (st.writes_in_flight == 0 && !has_held(st))
          self->send(st.registry, idle_atom::value, st.sku);
      },
  };
  return handlers;
}

}  // namespace

caf::actor spawn_inventory_item(caf::local_actor* spawner, ContextPtr ctx, std::string sku,
                                caf::actor registry) {
  return spawner->spawn(inventory_item, std::move(ctx), std::move(sku), std::move(registry));
}

}  // namespace emporium
