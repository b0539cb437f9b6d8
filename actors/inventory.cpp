// The inventory item actor. Changes are applied in memory at once and written in order (each
// write fenced by the version the previous one produced), so a hot SKU shares group commits
// instead of waiting one commit per order. A change is answered only once its write committed,
// save an early reserve (see item_reserve), whose caller asks item_sync before it relies on it,
// and a commit on one node (see item_commit), which changes no count and is written later.
// When a write fails, memory may be ahead of the database: the actor answers the rest with the
// error and stops, and the next message activates it again from storage.
#include "actors/inventory.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>

#include "actors/committed_units.hpp"
#include "actors/entity.hpp"
#include "runtime/registry.hpp"
#include "runtime/store.hpp"

namespace emporium {
namespace {

// Kept small: with the CAF actor around it, an item's state must stay within 384 B for the actor to
// take TCMalloc's 1,408-B size class rather than the next, 1,536 B (asserted below; see
// bench/RESULTS.md, tenth run). So the sku is kept once, in `item`, and the item's registry comes
// from the context.
struct inventory_state {
  ContextPtr ctx;
  ItemRecord item;       // latest, including writes not yet committed; its sku is set from the start
  ItemRecord committed;  // what the database holds: the only state reported to readers
  std::map<std::string, ReservationRecord> reservations;  // the held ones, by order id
  // The committed ones (their units stay reserved until the order ships or is cancelled): only
  // order id and quantity, packed (actors/committed_units.hpp), since an item of a selling sku
  // keeps one per unshipped order. None: no block.
  std::unique_ptr<CommittedUnits> committed_units;
  // item_sync calls waiting for writes, each with the version the committed state must reach.
  // None waiting: no block.
  using Syncs = std::vector<std::pair<std::int64_t, caf::response_promise>>;
  std::unique_ptr<Syncs> syncs;
  // Orders whose commit is not written yet (see item_commit): it goes with the item's next write,
  // or on its own once reservation_commit_delay_ms passed (the timer, kept by the node's
  // Deadlines: set once per run of such commits, and mostly dropped unfired). None: no block.
  struct UnstoredCommits {
    std::vector<std::string> order_ids;
    Deadlines::Token timer;
  };
  std::unique_ptr<UnstoredCommits> unstored_commits;
  int writes_in_flight = 0;
  int checks_in_flight = 0;  // reads of the stored version (when_absent)
  bool exists = false;
  bool broken = false;
  bool fenced = false;  // broken by a version check: another activation wrote first
  bool stop_requested = false;  // passivation asked while writes were in flight
  bool leave_when_done = false;  // that passivation called off (resume_atom): asked for again
  std::int64_t published = 0;  // the version readers see (0: none)
  std::int64_t timer_at = 0;   // when the timer set last fires (0: none is set)
  // Held reservations due for their check (see check_reservations) up to this time were checked.
  std::int64_t checked_until = 0;
  const std::string& sku() const { return item.sku; }
  static inline const char* name = "inventory";
  // Readers stop seeing this activation's snapshot when it stops, however it stops: CAF destroys
  // an actor's state when it terminates.
  ~inventory_state() {
    if (published != 0 && ctx) ctx->item_snapshots->withdraw(sku(), published);
  }
};

using inventory_actor = entity_actor<inventory_state>;
// CAF allocates an actor in one block with its control block (caf::actor_storage).
static_assert(sizeof(caf::actor_storage<inventory_actor>) <= 1408,
              "an idle item would take a larger size class than 1,408 B");

caf::error failure(errc code) { return make_error(code); }

// Stops once nothing it started is still waiting for an answer, when it must stop.
void quit_when_done(inventory_actor* self) {
  auto& st = self->state;
  if (st.writes_in_flight != 0 || st.checks_in_flight != 0) return;
  if (st.broken || st.stop_requested) return self->quit();
  // A passivation called off while it waited for them: the registry is asked for it again (the
  // stop comes after the calls it forwarded meanwhile).
  if (std::exchange(st.leave_when_done, false))
    leave_registry(self, st.ctx, inventory_type, st.sku());
}

// A write failed or lost its version check: memory may be ahead of storage, so the item stops once
// nothing it started is unanswered. Its registry hears of it first (leave_registry): later calls
// wait for the next activation rather than reach this one, or bounce once it stopped.
void break_item(inventory_actor* self, bool fenced) {
  auto& st = self->state;
  if (!st.broken) leave_registry(self, st.ctx, inventory_type, st.sku());
  st.broken = true;
  st.ctx->absent_skus->forget(st.sku());  // perhaps stored after all (by another activation)
  st.fenced = st.fenced || fenced;
}

// The answer to a call for a sku no item has. With nothing else asked of it, the actor stops now
// rather than when it idles out, so that such calls (a stock check, an order's line) do not pile
// actors up (see leave_registry); the registry's stop comes after what it forwarded meanwhile.
caf::error unknown_item(inventory_actor* self, errc code) {
  if (self->mailbox().empty())
    leave_registry(self, self->state.ctx, inventory_type, self->state.sku());
  return failure(code);
}

// Whether the reservation of `order_id` is committed.
bool has_committed(const inventory_state& st, const std::string& order_id) {
  return st.committed_units && st.committed_units->contains(order_id);
}

void add_committed(inventory_state& st, const std::string& order_id, std::int64_t quantity) {
  if (!st.committed_units) st.committed_units = std::make_unique<CommittedUnits>();
  st.committed_units->put(order_id, quantity);
}

// Takes the committed reservation of `order_id` out (it has one), as a record in `state`.
ReservationRecord take_committed(inventory_state& st, const std::string& order_id,
                                 ReservationState state) {
  auto units = st.committed_units->take(order_id);
  ReservationRecord r{st.sku(), order_id, units.value_or(0), state, 0};
  if (st.committed_units->empty()) st.committed_units.reset();  // the table gave back its slots
  return r;
}

// Answers the item_sync calls whose writes have committed, or all of them once the actor broke.
void answer_syncs(inventory_actor* self) {
  auto& st = self->state;
  if (!st.syncs) return;
  auto& waiting = *st.syncs;
  for (auto it = waiting.begin(); it != waiting.end();) {
    if (st.broken)
      it->second.deliver(failure(st.fenced ? errc::version_conflict : errc::db_unavailable));
    else if (it->first <= st.committed.version)
      it->second.deliver(st.committed);
    else {
      ++it;
      continue;
    }
    it = waiting.erase(it);
  }
  if (waiting.empty()) st.syncs.reset();
}

// Whether this activation holds a reservation of `order_id`, held or committed.
bool knows(const inventory_state& st, const std::string& order_id) {
  return st.reservations.count(order_id) > 0 || has_committed(st, order_id);
}

// Answers `rp` with the committed state once every write started so far has committed.
void deliver_when_stored(inventory_actor* self, caf::response_promise rp) {
  auto& st = self->state;
  if (st.committed.version >= st.item.version) return rp.deliver(st.committed);
  if (!st.syncs) st.syncs = std::make_unique<inventory_state::Syncs>();
  st.syncs->emplace_back(st.item.version, std::move(rp));
}

// Writes the current item and `changed` reservations, and the commits not written yet; answers
// `rp` with the item once committed.
void persist(inventory_actor* self, std::vector<ReservationRecord> changed, caf::response_promise rp,
             caf::message reply) {
  auto& st = self->state;
  if (st.unstored_commits) {
    st.ctx->deadlines->disarm(st.unstored_commits->timer);
    for (auto& order_id : st.unstored_commits->order_ids) {
      auto units = st.committed_units ? st.committed_units->units(order_id) : std::nullopt;
      // Shipped or released since: that write, in `changed`, says what became of it.
      if (!units || std::any_of(changed.begin(), changed.end(),
                                [&](const ReservationRecord& r) { return r.order_id == order_id; }))
        continue;
      changed.push_back({st.sku(), std::move(order_id), *units, ReservationState::committed, 0});
    }
    st.unstored_commits.reset();
  }
  std::int64_t expected = st.exists ? st.item.version : 0;
  st.item.version = expected + 1;
  st.exists = true;
  ItemRecord snapshot = st.item;
  st.writes_in_flight += 1;
  self->request(st.ctx->inventory_db_for(st.sku()), caf::infinite,
                db_save{ItemWrite{snapshot, expected, std::move(changed)}})
      .then(
          [self, rp, reply, snapshot](bool applied) mutable {
            auto& st = self->state;
            st.writes_in_flight -= 1;
            if (!applied || st.broken) {
              break_item(self, !applied);
              if (rp.pending())
                rp.deliver(failure(applied ? errc::db_unavailable : errc::version_conflict));
            } else {
              // A create: a lookup that read before it committed may have noted the sku since.
              if (snapshot.version == 1) st.ctx->absent_skus->forget(st.sku());
              st.committed = snapshot;
              st.ctx->item_snapshots->publish(snapshot);
              st.published = snapshot.version;
              if (rp.pending()) rp.deliver(reply.empty() ? caf::make_message(snapshot) : reply);
            }
            answer_syncs(self);
            quit_when_done(self);
          },
          [self, rp](caf::error& err) mutable {
            auto& st = self->state;
            st.writes_in_flight -= 1;
            break_item(self, false);
            if (rp.pending()) rp.deliver(err);
            answer_syncs(self);
            quit_when_done(self);
          });
}

// Writes the commits not written yet, if any is still committed.
void write_commits(inventory_actor* self) {
  auto& st = self->state;
  if (!st.unstored_commits || st.broken) return;
  auto& ids = st.unstored_commits->order_ids;
  auto still = std::any_of(ids.begin(), ids.end(),
                           [&](const std::string& order_id) { return has_committed(st, order_id); });
  if (still) return persist(self, {}, caf::response_promise{}, {});  // takes them, and the timer
  st.ctx->deadlines->disarm(st.unstored_commits->timer);
  st.unstored_commits.reset();
}

// When a held reservation is checked against its order: reservation_check_ms after it was made
// (its expiry is set reservation_ttl_ms after that).
std::int64_t check_due(const inventory_state& st, const ReservationRecord& r) {
  return r.expires_at_ms - st.ctx->settings.reservation_ttl_ms + st.ctx->settings.reservation_check_ms;
}

// Makes sure the timer fires by `due`. The timer carries its time, so one replaced by an earlier
// one is ignored when it fires.
void schedule_at(inventory_actor* self, std::int64_t due) {
  auto& st = self->state;
  if (st.timer_at != 0 && st.timer_at <= due) return;
  st.timer_at = due;
  auto delay = std::max<std::int64_t>(due - st.ctx->clock->now_ms(), 0) + 1;
  self->delayed_send(self, ms(delay), expire_atom::value, due);
}

// A commit kept in memory for now: the item's next write takes it, or flush_atom writes it
// reservation_commit_delay_ms from the first one waiting.
void defer_commit(inventory_actor* self, std::string order_id) {
  auto& st = self->state;
  if (!st.unstored_commits) {
    st.unstored_commits = std::make_unique<inventory_state::UnstoredCommits>();
    st.unstored_commits->timer = st.ctx->deadlines->arm_message(
        self, caf::make_message(flush_atom::value), st.ctx->settings.reservation_commit_delay_ms);
  }
  st.unstored_commits->order_ids.push_back(std::move(order_id));
}

// When a held reservation next needs the timer: its check, unless done, or its expiry, whichever
// comes first (a check set longer than the TTL never comes).
std::int64_t next_due(const inventory_state& st, const ReservationRecord& r) {
  auto check = check_due(st, r);
  return check > st.checked_until ? std::min(check, r.expires_at_ms) : r.expires_at_ms;
}

// Sets the timer for the next held reservation due for its check or its expiry.
void schedule_expiry(inventory_actor* self) {
  auto& st = self->state;
  std::int64_t earliest = 0;
  for (auto& [_, r] : st.reservations) {
    if (r.state != ReservationState::held) continue;
    auto due = next_due(st, r);
    if (earliest == 0 || due < earliest) earliest = due;
  }
  if (earliest != 0) schedule_at(self, earliest);
}

// Sets `quantity` units aside for `order_id`, as a new held reservation in memory (the caller
// writes it); the code when it cannot.
errc hold_units(inventory_actor* self, const std::string& order_id, std::int64_t quantity) {
  auto& st = self->state;
  if (!st.exists) return errc::unknown_sku;
  if (quantity <= 0) return errc::invalid_argument;
  if (st.item.available() < quantity) return errc::insufficient_stock;
  auto expires = st.ctx->clock->now_ms() + st.ctx->settings.reservation_ttl_ms;
  ReservationRecord r{st.sku(), order_id, quantity, ReservationState::held, expires};
  st.reservations[order_id] = r;
  st.item.reserved += quantity;
  schedule_at(self, next_due(st, r));
  return errc::none;
}

// Settles the reservation of `order_id` as `to` (released, or committed) if it is still the held
// one that was asked about (the same expiry: a reserve delivered again meanwhile renews it, see
// item_reserve).
void settle(inventory_actor* self, const std::string& order_id, std::int64_t expires_at_ms,
            ReservationState to, std::string_view why) {
  auto& st = self->state;
  if (st.broken) return;
  auto it = st.reservations.find(order_id);
  if (it == st.reservations.end() || it->second.state != ReservationState::held ||
      it->second.expires_at_ms != expires_at_ms)
    return;
  auto r = it->second;
  st.reservations.erase(it);
  r.state = to;
  if (to == ReservationState::committed) {
    r.expires_at_ms = 0;
    add_committed(st, r.order_id, r.quantity);
  } else {
    st.item.reserved -= r.quantity;
  }
  spdlog::info("item {}: {} the reservation of order {} ({})", st.sku(),
               to == ReservationState::committed ? "committed" : "released", order_id, why);
  persist(self, {r}, caf::response_promise{}, caf::message{});
}

// Asks the order of the held reservation of `order_id` what becomes of it (see inventory.hpp).
void ask_order(inventory_actor* self, const std::string& order_id, std::int64_t expires) {
  ask<OrderRecord>(
      self, self->state.ctx, order_type, order_id,
      [self, order_id, expires](OrderRecord& order) {
        const auto& s = order.status;
        if (s == "confirmed")
          return settle(self, order_id, expires, ReservationState::committed, "its order is " + s);
        // Still placing (its saga, or the recovery, settles it), or shipping or cancelling (its
        // ship or cancel takes the held reservation): kept.
        if (s == "pending" || s == "reserved" || s == "shipping" || s == "cancelling") return;
        settle(self, order_id, expires, ReservationState::released, "its order is " + s);
      },
      [self, order_id, expires](caf::error& err) {
        if (code_of(err) == errc::not_found)
          settle(self, order_id, expires, ReservationState::released, "no such order");
      },
      get_atom::value);
}

// Held reservations past their expiry ask their order again, and their expiry moves on by
// reservation_check_ms: one its order keeps (still placing, or it cannot be asked) asks again then.
void expire_reservations(inventory_actor* self) {
  auto& st = self->state;
  auto now = st.ctx->clock->now_ms();
  for (auto& [order_id, r] : st.reservations) {
    if (r.state != ReservationState::held || r.expires_at_ms > now) continue;
    r.expires_at_ms = now + st.ctx->settings.reservation_check_ms;
    ask_order(self, order_id, r.expires_at_ms);
  }
}

// Asks the order of every held reservation that came due for its check since the last time:
// committed by now in the normal course, a reservation still held belongs to an order that is
// still placing (pending or reserved: its saga, or the recovery sweep, settles it), to an order
// confirmed whose commit failed, or to none that will claim it (see inventory.hpp).
void check_reservations(inventory_actor* self) {
  auto& st = self->state;
  auto now = st.ctx->clock->now_ms();
  for (auto& [order_id, r] : st.reservations) {
    if (r.state != ReservationState::held) continue;
    auto due = check_due(st, r);
    if (due <= st.checked_until || due > now) continue;
    ask_order(self, order_id, r.expires_at_ms);
  }
  st.checked_until = now;
}

// What the timer does: expire, check what came due, set the timer for what comes next.
void on_timer(inventory_actor* self) {
  expire_reservations(self);
  check_reservations(self);
  schedule_expiry(self);
}

bool has_held(const inventory_state& st) {
  return std::any_of(st.reservations.begin(), st.reservations.end(),
                     [](auto& kv) { return kv.second.state == ReservationState::held; });
}

// A reservation this activation does not know of may have been made by another activation of the
// item (on the node that owned it before a view change) after this one loaded. Before answering
// from its absence, it reads the stored version. The persistence actor runs a read as it comes:
// a write of ours it committed before has been answered before the read is (answers to one actor
// keep their order), so `committed` includes it by then; a write of ours still waiting for its
// batch is in neither `committed` nor the stored version.
// Storage ahead of `committed`, or a write of ours fenced meanwhile, means this activation is
// stale: it answers version_conflict (the router sends the call again, to a fresh activation) and
// stops. `answer(rp)` gives the answer of a current activation.
template <class Answer>
caf::response_promise when_absent(inventory_actor* self, Answer answer) {
  auto& st = self->state;
  auto rp = self->make_response_promise();
  auto stored = std::make_shared<std::int64_t>(0);
  st.checks_in_flight += 1;
  self->request(st.ctx->inventory_db_for(st.sku()), caf::infinite,
                db_read{[sku = st.sku(), stored](soci::session& s) {
                  if (auto loaded = load_item(s, sku)) *stored = loaded->item.version;
                }})
      .then(
          [self, stored, rp, answer](bool) mutable {
            auto& st = self->state;
            st.checks_in_flight -= 1;
            if (st.fenced || *stored > st.committed.version) {
              break_item(self, true);
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

std::optional<caf::error> refused(inventory_actor* self);

// A release (or a ship) of the reservation of its order: done if this activation knows it, and
// answered once stored; else answered at once with the committed state. A release or a ship that
// found nothing waits for the read of when_absent before it answers so: a commit that came before
// it and made the reservation again (see item_commit) made it by then, since the store answers
// an actor's reads in order, and it is released (or shipped) rather than kept for good.
void settle_known(inventory_actor* self, const item_release& req, caf::response_promise& rp) {
  auto& st = self->state;
  if (auto err = refused(self)) return rp.deliver(*err);
  ReservationRecord r;
  if (auto it = st.reservations.find(req.order_id); it != st.reservations.end()) {
    r = it->second;
    st.reservations.erase(it);
  } else if (has_committed(st, req.order_id)) {
    if (req.held_only) return rp.deliver(st.committed);  // committed: not this release's to undo
    r = take_committed(st, req.order_id, ReservationState::released);
  } else {
    return rp.deliver(st.committed);
  }
  r.state = ReservationState::released;
  st.item.reserved -= r.quantity;
  persist(self, {r}, rp, {});
}

void settle_known(inventory_actor* self, const item_ship& req, caf::response_promise& rp) {
  auto& st = self->state;
  if (auto err = refused(self)) return rp.deliver(*err);
  ReservationRecord r;
  if (has_committed(st, req.order_id)) {
    r = take_committed(st, req.order_id, ReservationState::shipped);
  } else if (auto it = st.reservations.find(req.order_id); it != st.reservations.end()) {
    r = it->second;
    st.reservations.erase(it);
  } else {
    return rp.deliver(st.committed);
  }
  r.state = ReservationState::shipped;
  st.item.reserved -= r.quantity;
  st.item.on_hand -= r.quantity;
  persist(self, {r}, rp, {});
}

const caf::behavior& item_handlers();

caf::behavior inventory_item(inventory_actor* self, ContextPtr ctx, std::string sku) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.item.sku = std::move(sku);
  // Found in no stored item a moment ago (see AbsentSkus): nothing to load.
  if (st.ctx->absent_skus->known_absent(st.sku())) return item_handlers();
  auto since = st.ctx->absent_skus->generation();  // see AbsentSkus::note
  load_then<ItemState>(self, st.ctx->inventory_db_for(st.sku()),
                       [sku = st.sku()](soci::session& s) { return load_item(s, sku); },
                       [self, since](std::optional<ItemState> loaded) {
                         auto& st = self->state;
                         if (!loaded) return st.ctx->absent_skus->note(st.sku(), since);
                         st.exists = true;
                         st.item = st.committed = loaded->item;
                         st.ctx->item_snapshots->publish(st.committed);
                         st.published = st.committed.version;
                         auto committed = std::count_if(
                             loaded->reservations.begin(), loaded->reservations.end(),
                             [](auto& r) { return r.state == ReservationState::committed; });
                         if (committed > 0) {
                           st.committed_units = std::make_unique<CommittedUnits>();
                           st.committed_units->reserve(static_cast<size_t>(committed));
                         }
                         for (auto& r : loaded->reservations) {
                           if (r.state == ReservationState::committed)
                             add_committed(st, r.order_id, r.quantity);
                           else
                             st.reservations[r.order_id] = std::move(r);
                         }
                         expire_reservations(self);
                         schedule_expiry(self);  // checks what came due meanwhile at once
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
        if (!self->state.exists) return unknown_item(self, errc::not_found);
        return self->state.committed;
      },
      [](inspect_atom) -> caf::result<item_state_view> {
        auto* self = inventory_actor::current();
        item_state_view view{self->state.committed, {}};
        auto& st = self->state;
        for (auto& [_, r] : st.reservations) view.reservations.push_back(r);
        if (st.committed_units) {
          st.committed_units->for_each([&](std::string order_id, std::int64_t quantity) {
            view.reservations.push_back(
                {st.sku(), std::move(order_id), quantity, ReservationState::committed, 0});
          });
          // In order id order, as the stored view lists them.
          std::sort(view.reservations.begin(), view.reservations.end(),
                    [](const ReservationRecord& a, const ReservationRecord& b) {
                      return a.order_id < b.order_id;
                    });
        }
        return view;
      },
      [](item_put& put) -> caf::result<item_put_result> {
        auto* self = inventory_actor::current();
        if (auto err = refused(self)) return *err;
        auto& st = self->state;
        if (st.exists && put.on_hand < st.item.reserved) return failure(errc::conflict);
        bool created = !st.exists;
        if (created) {
          st.item = ItemRecord{std::string(st.sku()), {}, 0, "USD", 0, 0, 0};
          st.ctx->absent_skus->forget(st.sku());
        }
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
        if (!st.exists) return unknown_item(self, errc::not_found);
        if (st.item.on_hand + adj.delta < st.item.reserved) return failure(errc::conflict);
        // As high as a PUT may set it (http/codec.cpp), and no higher.
        if (adj.delta > 0 && st.item.on_hand + adj.delta > kOnHandMax)
          return make_error(errc::conflict, "on_hand would exceed " + std::to_string(kOnHandMax));
        st.item.on_hand += adj.delta;
        auto rp = self->make_response_promise();
        persist(self, {}, rp, {});
        return rp;
      },
      [](item_reserve& req) -> caf::result<ItemRecord> {
        auto* self = inventory_actor::current();
        if (auto err = refused(self)) return *err;
        auto& st = self->state;
        if (!st.exists) return unknown_item(self, errc::unknown_sku);
        if (auto it = st.reservations.find(req.order_id); it != st.reservations.end()) {
          // Delivered again: its order is still placing, so a held one starts over (in memory:
          // its check and expiry come later; a check under way for it no longer applies).
          if (it->second.state == ReservationState::held)
            it->second.expires_at_ms = st.ctx->clock->now_ms() + st.ctx->settings.reservation_ttl_ms;
          return req.early ? st.item : st.committed;
        }
        // Delivered again after its commit: nothing to do.
        if (has_committed(st, req.order_id)) return st.committed;
        if (auto code = hold_units(self, req.order_id, req.quantity); code != errc::none)
          return failure(code);
        auto r = st.reservations.at(req.order_id);
        if (req.early) {  // the price as the write will store it; item_sync waits for the write
          ItemRecord now = st.item;
          persist(self, {r}, caf::response_promise{}, {});
          return now;
        }
        auto rp = self->make_response_promise();
        persist(self, {r}, rp, {});
        return rp;
      },
      [](item_sync& req) -> caf::result<ItemRecord> {
        auto* self = inventory_actor::current();
        if (auto err = refused(self)) return *err;
        auto& st = self->state;
        if (knows(st, req.order_id)) {
          auto rp = self->make_response_promise();
          deliver_when_stored(self, rp);
          return rp;
        }
        // Not known here: after the read that makes sure this activation is current, made again.
        return when_absent(self, [self, req](caf::response_promise& rp) {
          if (auto err = refused(self)) return rp.deliver(*err);
          auto& st = self->state;
          if (!knows(st, req.order_id)) {
            if (auto code = hold_units(self, req.order_id, req.quantity); code != errc::none)
              return rp.deliver(failure(code));
            spdlog::info("item {}: made the reservation of order {} again", st.sku(), req.order_id);
            persist(self, {st.reservations.at(req.order_id)}, caf::response_promise{}, {});
          }
          deliver_when_stored(self, rp);
        });
      },
      [](item_commit& req) -> caf::result<ItemRecord> {
        auto* self = inventory_actor::current();
        if (auto err = refused(self)) return *err;
        auto& st = self->state;
        if (has_committed(st, req.order_id)) return st.committed;  // delivered again
        auto it = st.reservations.find(req.order_id);
        if (it == st.reservations.end()) {
          // Gone (released, or lost with an activation): made again and committed if the units are
          // there, once this activation is known to be current.
          return when_absent(self, [self, req](caf::response_promise& rp) {
            if (auto err = refused(self)) return rp.deliver(*err);
            auto& st = self->state;
            if (has_committed(st, req.order_id)) return rp.deliver(st.committed);
            if (!st.reservations.count(req.order_id) &&
                (req.quantity <= 0 || hold_units(self, req.order_id, req.quantity) != errc::none))
              return rp.deliver(failure(errc::not_found));
            auto r = st.reservations.at(req.order_id);
            st.reservations.erase(req.order_id);
            r.state = ReservationState::committed;
            r.expires_at_ms = 0;
            add_committed(st, r.order_id, r.quantity);
            spdlog::info("item {}: made the reservation of order {} again, committed", st.sku(), r.order_id);
            persist(self, {r}, rp, {});
          });
        }
        auto r = it->second;
        r.state = ReservationState::committed;
        r.expires_at_ms = 0;
        st.reservations.erase(it);
        add_committed(st, r.order_id, r.quantity);
        if (st.ctx->settings.reservation_commit_delay_ms > 0) {
          // Answered now, written later: the units stay reserved either way, and a commit lost
          // with this activation is made again at the stored held reservation's check, which asks
          // the order (confirmed: committed).
          defer_commit(self, r.order_id);
          return st.committed;
        }
        auto rp = self->make_response_promise();
        persist(self, {r}, rp, {});
        return rp;
      },
      [](item_release& req) -> caf::result<ItemRecord> {
        auto* self = inventory_actor::current();
        if (auto err = refused(self)) return *err;
        auto& st = self->state;
        if (!st.exists) return unknown_item(self, errc::not_found);
        if (!knows(st, req.order_id))  // already released (or never held)
          return when_absent(self, [self, req](caf::response_promise& rp) { settle_known(self, req, rp); });
        auto rp = self->make_response_promise();
        settle_known(self, req, rp);
        return rp;
      },
      [](item_ship& req) -> caf::result<ItemRecord> {
        auto* self = inventory_actor::current();
        if (auto err = refused(self)) return *err;
        auto& st = self->state;
        if (!st.exists) return unknown_item(self, errc::not_found);
        if (!knows(st, req.order_id))  // shipped before: re-delivery
          return when_absent(self, [self, req](caf::response_promise& rp) { settle_known(self, req, rp); });
        auto rp = self->make_response_promise();
        settle_known(self, req, rp);
        return rp;
      },
      [](expire_atom) {  // now (the tests send it)
        auto* self = inventory_actor::current();
        if (!self->state.broken) on_timer(self);
      },
      [](expire_atom, std::int64_t due) {  // the timer (see schedule_at)
        auto* self = inventory_actor::current();
        auto& st = self->state;
        if (st.broken || due != st.timer_at) return;
        st.timer_at = 0;
        on_timer(self);
      },
      [](flush_atom) {  // the commits' timer (see defer_commit), and the node's stop (registry)
        write_commits(inventory_actor::current());
        return true;  // the write, if any, is on its way to the persistence actor
      },
      [](stop_atom) {
        auto* self = inventory_actor::current();
        write_commits(self);
        self->state.stop_requested = true;  // the last answer it waits for stops it
        quit_when_done(self);
      },
      [](resume_atom) {  // the registry waited long enough for the stop (runtime/registry.hpp)
        auto& st = inventory_actor::current()->state;
        if (st.broken) return false;  // it stops, ahead of storage
        st.stop_requested = false;
        st.leave_when_done = true;
        return true;
      },
      [](idle_atom) {  // the registry asks: nothing came for a while
        auto* self = inventory_actor::current();
        auto& st = self->state;
        // Held reservations keep the actor: their expiry timer lives here. Commits not written
        // yet do not: the stop writes them.
        if (st.writes_in_flight == 0 && !has_held(st))
          self->send(st.ctx->registries.at(inventory_type), idle_atom::value, st.sku());
      },
  };
  return handlers;
}

}  // namespace

caf::actor spawn_inventory_item(caf::local_actor* spawner, ContextPtr ctx, std::string sku) {
  return spawner->spawn(inventory_item, std::move(ctx), std::move(sku));
}

}  // namespace emporium
