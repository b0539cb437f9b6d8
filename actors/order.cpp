// The order actor and its placement saga. Steps chain through replies (`then`), so the actor keeps
// answering reads while a step waits; `running` marks a saga or compensation in progress, and
// messages that would change the order meanwhile wait for it (cancel) or are refused (ship).
#include "actors/order.hpp"

#include <algorithm>
#include <array>
#include <forward_list>
#include <memory>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "actors/entity.hpp"
#include "runtime/registry.hpp"
#include "actors/inventory.hpp"
#include "actors/payment.hpp"
#include "runtime/store.hpp"

namespace emporium {

// --- status table ------------------------------------------------------------------------------

namespace {
struct Move {
  OrderStatus from;
  OrderStatus to;
};
constexpr std::array legal_moves{
    Move{OrderStatus::pending, OrderStatus::reserved},
    Move{OrderStatus::pending, OrderStatus::rejected},
    Move{OrderStatus::pending, OrderStatus::payment_failed},  // recovery of an interrupted order
    Move{OrderStatus::pending, OrderStatus::cancelled},
    Move{OrderStatus::reserved, OrderStatus::confirmed},
    Move{OrderStatus::reserved, OrderStatus::rejected},  // a reservation made again found no stock
    Move{OrderStatus::reserved, OrderStatus::payment_failed},
    Move{OrderStatus::reserved, OrderStatus::cancelled},
    Move{OrderStatus::confirmed, OrderStatus::shipped},    // (rows stored before `shipping`)
    Move{OrderStatus::confirmed, OrderStatus::cancelled},  // (rows stored before `cancelling`)
    Move{OrderStatus::confirmed, OrderStatus::cancelling},
    Move{OrderStatus::cancelling, OrderStatus::cancelled},
    Move{OrderStatus::confirmed, OrderStatus::shipping},
    Move{OrderStatus::shipping, OrderStatus::shipped},
};
constexpr std::array status_names{"pending",   "reserved",       "confirmed", "shipped",
                                  "rejected",  "payment_failed", "cancelled", "cancelling",
                                  "shipping"};
}  // namespace

std::string_view to_string(OrderStatus status) { return status_names[static_cast<int>(status)]; }

std::optional<OrderStatus> order_status_from(std::string_view text) {
  for (size_t i = 0; i < status_names.size(); ++i)
    if (text == status_names[i]) return static_cast<OrderStatus>(i);
  return std::nullopt;
}

bool is_terminal(OrderStatus status) {
  return status != OrderStatus::pending && status != OrderStatus::reserved &&
         status != OrderStatus::cancelling && status != OrderStatus::shipping;
}

bool legal_transition(OrderStatus from, OrderStatus to) {
  for (auto m : legal_moves)
    if (m.from == from && m.to == to) return true;
  return false;
}

namespace {

// The commands that settle an order: in a cluster each reads the order again first (see
// command).
enum class Command : std::uint8_t { cancel, ship, recover, get };

// What only a running saga or compensation holds.
struct Running {
  HeldCard card;  // until the charge is sent
  // Answered with the order when `running` ends, all alike.
  std::forward_list<caf::response_promise> waiting;
  // A cancel that came during a ship, or a ship during a cancel: refused (conflict) once the one
  // under way ended, as of the order it left (shipped, cancelled).
  std::forward_list<caf::response_promise> refused;
  // The placement's own call: answered with `answer` when set, rather than the order (a placement
  // compensated for a database's failure before any charge: the edge's 503). Anyone else waiting
  // (a cancel, the same placement delivered again) gets the order.
  caf::response_promise placement;
  caf::error answer;
  // Reads that came before the order's first write was stored (see pin): answered with the order
  // as that write stored it, or with the error that stopped it.
  std::forward_list<caf::response_promise> readers;
  // `pin`, only while the reserves are out (`reserving`): the saga's next step waits for its
  // answer (`reserves_answered`: the reserves' failures, kept meanwhile). Refused because the order is
  // stored (`pin_refused`: another activation stored it), or failed (`pin_error`).
  bool reserving = false;
  bool pin_in_flight = false;
  bool pin_refused = false;
  caf::error pin_error;
  std::optional<std::vector<errc>> reserves_answered;
  // The currency of the first item that answered a reserve, and whether another one differed:
  // an order's total is in one currency, so such an order is rejected (currency_mismatch).
  std::string currency;
  bool mixed_currency = false;
  // Writes of the order sent (stamp) and not answered yet. While any is out, or once one failed
  // (`diverged`: the actor is on its way to stop), what the actor holds may be ahead of storage,
  // so a read gets the order with the fields of `stored` (see shown_as_stored): what the last
  // write applied (or the load) left in storage.
  int writes_out = 0;
  bool diverged = false;
  bool leave_when_done = false;  // a passivation called off (resume_atom): asked again at the end
  bool failing = false;          // its last step (a capture kept, holds released) before fail()
  bool adopting = false;  // a placement delivered twice takes the stored order (adopt_stored)
  // In a cluster, the commands that wait for the order read again (see command), in the order
  // they came; none: no such read is under way. The version this activation wrote last (-1: not
  // known to be its own), the version last read and when it was first read (steady clock), and
  // how many reads were made.
  std::vector<std::pair<Command, caf::response_promise>> settling;
  std::int64_t own_version = -1;
  std::int64_t seen_version = -1;
  std::int64_t seen_at_ms = 0;
  int rereads = 0;
  struct Stored {
    std::string status, failure_reason;
    std::int64_t version = 0, updated_at_ms = 0;
    std::optional<std::string> payment_status;  // none: no payment stored
  };
  std::optional<Stored> stored;
};

// Kept small: with the CAF actor around it, an order's state must stay within 256 B for the actor
// to take TCMalloc's 1,280-B size class rather than the next, 1,408 B (asserted below; measured
// by the micro benchmark IdleActorBytesOrder; see bench/RESULTS.md, tenth run). So the order's
// registry comes from the context, and what only a running saga needs is in a block of its own.
struct order_state {
  ContextPtr ctx;
  OrderRecord rec;  // rec.id is the order's id, stored or not (kept once: actors stay small)
  // Flags, a bit each (nine bools would take 16 B, past the size class).
  bool exists : 1 = false;
  bool running : 1 = false;  // a saga or compensation is in progress
  bool cancel_requested : 1 = false;
  bool stop_requested : 1 = false;  // passivation asked while running: stop when it ends
  bool fresh : 1 = false;  // activated for a placement without loading: the id was new
  bool inserted : 1 = false;  // stored: loaded, or this activation's first write committed
  bool intent_written : 1 = false;  // this activation wrote the payment's pending record...
  bool charge_sent : 1 = false;     // ...and sent the charge (if not, the payment never ran)
  bool held_is_own : 1 = false;  // the version it holds is one this activation wrote (see command)
  std::unique_ptr<Running> run;  // made on first use; gone when the saga ends

  Running& saga() {
    if (!run) run = std::make_unique<Running>();
    return *run;
  }
  static inline const char* name = "order";
};

using order_actor = entity_actor<order_state>;
// CAF allocates an actor in one block with its control block (caf::actor_storage).
static_assert(sizeof(caf::actor_storage<order_actor>) <= 1280,
              "an idle order would take a larger size class than 1,280 B");

// What an order keeps of its payment, once its pending record is written: what it shows and
// decides by. The order id it would repeat and the provider's reference are dropped (each a heap
// block with real ids, in every idle order); the payment actor and the store have them.
void keep_payment(OrderRecord& rec, Boxed<PaymentRecord> payment) {
  if (payment) {
    std::string{}.swap(payment->order_id);
    std::string{}.swap(payment->provider_ref);
  }
  rec.payment = std::move(payment);
}

OrderStatus status_of(const order_state& st) {
  return order_status_from(st.rec.status).value_or(OrderStatus::pending);
}

// Answers everyone waiting with `err` and stops: memory may be ahead of storage, so the next
// message activates the order again from what was committed (the registry hears of it first).
void fail(order_actor* self, const caf::error& err) {
  leave_registry(self, self->state.ctx, order_type, self->state.rec.id);
  auto run = std::move(self->state.run);  // the card is wiped as it goes
  if (run) {
    if (run->placement.pending()) run->placement.deliver(err);
    for (auto& rp : run->readers) rp.deliver(err);
    for (auto& rp : run->waiting) rp.deliver(err);
    for (auto& rp : run->refused) rp.deliver(err);
    for (auto& call : run->settling) call.second.deliver(err);
  }
  self->quit();
}

// Stores a capture the payment handed over unwritten (see payment_charge::caller_writes) on its
// own; `done` gets no error once it is stored.
template <class Done>
void write_capture(order_actor* self, PaymentRecord capture, Done done) {
  auto expected = capture.version - 1;
  self->request(self->state.ctx->orders_db_for(self->state.rec.id), caf::infinite,
                db_save{PaymentWrite{std::move(capture), expected}})
      .then([done](bool applied) mutable { done(applied ? caf::error{} : make_error(errc::version_conflict)); },
            [done](caf::error& err) mutable { done(err); });
}

// A write that carried a capture failed (see charge): the capture is stored alone
// first, as best it can be, so that the recovery finds the payment captured and confirms the
// order, rather than refunding a charge the provider made. Then `fail`.
void fail_keeping(order_actor* self, const std::optional<PaymentRecord>& capture, const caf::error& err) {
  if (!capture) return fail(self, err);
  self->state.saga().failing = true;
  write_capture(self, *capture, [self, err](const caf::error&) { fail(self, err); });
}

void cancel_confirmed(order_actor* self);

void finish(order_actor* self) {
  auto& st = self->state;
  // A cancel that came while the order was being confirmed is done now: everyone waiting gets the
  // cancelled order, as when it comes before the charge's answer.
  if (st.cancel_requested && status_of(st) == OrderStatus::confirmed) {
    st.cancel_requested = false;
    return cancel_confirmed(self);
  }
  st.cancel_requested = false;
  st.running = false;
  auto run = std::move(st.run);  // the card is wiped as it goes
  if (run) {
    if (run->placement.pending()) {
      if (run->answer)
        run->placement.deliver(run->answer);
      else
        run->placement.deliver(st.rec);
    }
    for (auto& rp : run->readers) rp.deliver(st.rec);
    for (auto& rp : run->waiting) rp.deliver(st.rec);
    for (auto& rp : run->refused)
      rp.deliver(make_error(errc::conflict, "order is " + std::string(shown_status(st.rec.status))));
  }
  if (st.stop_requested) return self->quit();
  // A passivation called off while the saga ran: the registry is asked for it again (its stop
  // comes after the calls it forwarded meanwhile).
  if (run && run->leave_when_done) return leave_registry(self, st.ctx, order_type, st.rec.id);
  // Finished: the registry asks it to stop actors.terminal_passivate_ms from now.
  if (is_terminal(status_of(st))) self->send(st.ctx->registries.at(order_type), terminal_atom::value);
}

void adopt_stored(order_actor* self);
void reread(order_actor* self);
void reread_done(order_actor* self, std::optional<OrderRecord> loaded);


// The total is derived: the sum of the line totals, as agreed so far.
void refresh_total(OrderRecord& rec) {
  rec.total_cents = 0;
  for (const auto& line : rec.lines) rec.total_cents += line.quantity * line.unit_price_cents;
}

// What a transition writes besides the order row.
struct Also {
  bool lines = false;
  bool payment_intent = false;  // the pending payment record, in the same transaction
  std::optional<PaymentRecord> payment_outcome;  // a decided payment, in the same transaction
};

// What storage holds of the record's changing fields, as of `rec`.
Running::Stored stored_fields(const OrderRecord& rec) {
  Running::Stored out{rec.status, rec.failure_reason, rec.version, rec.updated_at_ms, std::nullopt};
  if (rec.payment) out.payment_status = rec.payment->status;
  return out;
}

// Moves the record to `to` and makes its write; the write expects the version stored before (0:
// none). The table is asserted by the caller.
OrderWrite stamp(order_state& st, OrderStatus to, std::string reason, Also also) {
  if (st.run) {  // until write_answered
    // Before any write of this activation is answered, the record is as loaded (or not stored).
    if (!st.run->stored && st.inserted) st.run->stored = stored_fields(st.rec);
    ++st.run->writes_out;
  }
  std::int64_t expected = st.exists ? st.rec.version : 0;
  refresh_total(st.rec);
  st.rec.status = std::string(to_string(to));
  st.rec.failure_reason = std::move(reason);
  st.rec.version = expected + 1;
  st.rec.updated_at_ms = st.ctx->clock->now_ms();
  st.exists = true;
  return OrderWrite{st.rec, expected, also.lines, also.payment_intent, std::move(also.payment_outcome)};
}

// A write made by stamp was answered: `applied`, storage now holds the record as it stands (no
// step changes it while its own write is out); else the actor is about to stop, ahead of storage.
void write_answered(order_actor* self, bool applied) {
  auto& run = self->state.run;
  if (!run || run->writes_out == 0) return;
  --run->writes_out;
  if (!applied) run->diverged = true;
  else if (!run->diverged) run->stored = stored_fields(self->state.rec);
  if (applied) self->state.held_is_own = true;
}

// The order as a read gets it: the record, with the changing fields as stored while a write is
// out or failed (see Running::stored).
OrderRecord shown_as_stored(const order_state& st) {
  OrderRecord out = st.rec;
  const auto& run = st.run;
  if (!run || !run->stored || (run->writes_out == 0 && !run->diverged)) return out;
  const auto& stored = *run->stored;
  out.status = stored.status;
  out.failure_reason = stored.failure_reason;
  out.version = stored.version;
  out.updated_at_ms = stored.updated_at_ms;
  if (!stored.payment_status) out.payment = std::nullopt;
  else if (out.payment) out.payment->status = *stored.payment_status;
  return out;
}

// The first write of this activation committed, storing `written`: reads that waited for it get it.
void inserted_now(order_actor* self, const OrderRecord& written) {
  auto& st = self->state;
  st.inserted = true;
  if (!st.run) return;
  for (auto& rp : st.run->readers) rp.deliver(written);
  st.run->readers.clear();
}

// Moves to `to` (asserting the table) and writes; `then` runs once committed.
template <class Then>
void transition(order_actor* self, OrderStatus to, std::string reason, Also also, Then then) {
  auto& st = self->state;
  if (st.exists && !legal_transition(status_of(st), to))
    return fail(self, make_error(errc::conflict, "illegal order transition"));
  auto capture = also.payment_outcome;  // stored alone if the write with the order fails
  bool first = !st.exists;
  if (first) also.lines = true;   // the first write inserts the order, with its lines
  auto write = stamp(st, to, std::move(reason), std::move(also));
  std::optional<OrderRecord> written;
  if (first) written = st.rec;
  self->request(st.ctx->orders_db_for(st.rec.id), caf::infinite, db_save{std::move(write)})
      .then(
          [self, then, capture, written](bool applied) mutable {
            write_answered(self, applied);
            if (!applied) return fail_keeping(self, capture, make_error(errc::version_conflict));
            if (written) inserted_now(self, *written);
            then();
          },
          [self, capture](caf::error& err) {
            write_answered(self, false);
            fail_keeping(self, capture, err);
          });
}

void after_reserve(order_actor* self, const std::vector<errc>& failures);

// An order placing whose reserves are out, asked for before anything is stored: by the edge past
// the placement timeout (its 202), by an item's check, by its customer. It is stored now, pending,
// with its lines, and the reads get it once stored (see Running::readers): what they get exists
// (the saga's next write updates it, and a failure compensates it), and a check can no longer find
// it absent and release what it holds. The saga's next step waits for the answer (see
// after_reserve): every later write is chained to this one's version.
void pin(order_actor* self) {
  auto& st = self->state;
  st.saga().pin_in_flight = true;
  auto write = stamp(st, OrderStatus::pending, "", {true, false, {}});
  OrderRecord written = st.rec;
  auto answered = [self] {
    auto& run = self->state.saga();
    run.pin_in_flight = false;
    if (!run.reserves_answered) return;
    auto failures = std::move(*run.reserves_answered);
    run.reserves_answered.reset();
    after_reserve(self, failures);
  };
  self->request(st.ctx->orders_db_for(st.rec.id), caf::infinite, db_save{std::move(write)})
      .then(
          [self, written, answered](bool applied) {
            write_answered(self, applied);
            if (applied)
              inserted_now(self, written);
            else
              self->state.saga().pin_refused = true;  // stored by another activation
            answered();
          },
          [self, answered](caf::error& err) {
            write_answered(self, false);
            auto& run = self->state.saga();
            for (auto& rp : run.readers) rp.deliver(err);
            run.readers.clear();
            run.pin_error = err;
            answered();
          });
}

// How many times an item call is sent again after its node went away with it.
constexpr int kItemResends = 2;

// Sends `msg` to item `sku` through the router. The item calls are idempotent per order, so a call
// answered errc::unavailable (its node went away with it: it may or may not have run) is sent again,
// up to kItemResends times, to whichever node owns the item by then. The router pauses and resends
// calls that found no owner, so the next attempt needs no pause of its own.
template <class Ok, class Failed>
void ask_item(order_actor* self, const std::string& sku, caf::message msg, int resends, Ok ok, Failed failed) {
  ask<ItemRecord>(
      self, self->state.ctx, inventory_type, sku, [ok](ItemRecord& item) mutable { ok(item); },
      [self, sku, msg, resends, ok, failed](caf::error& err) mutable {
        if (code_of(err) != errc::unavailable || resends <= 0) return failed(err);
        spdlog::info("order {}: sending its call to item {} again ({})", self->state.rec.id, sku,
                     to_string(err));
        ask_item(self, sku, std::move(msg), resends - 1, std::move(ok), std::move(failed));
      },
      msg);  // already a message: make_message passes it on as it is
}

// Sends one message per line to its item and calls `done` with the failures once all answered.
template <class MakeMsg, class Done>
void for_each_line(order_actor* self, MakeMsg make_msg, Done done) {
  auto& st = self->state;
  auto left = std::make_shared<size_t>(st.rec.lines.size());
  auto failures = std::make_shared<std::vector<errc>>();
  for (size_t i = 0; i < st.rec.lines.size(); ++i) {
    const auto& line = st.rec.lines[i];
    ask_item(
        self, line.sku, caf::make_message(make_msg(line)), kItemResends,
        [self, i, left, failures, done](ItemRecord& item) {
          auto& line = self->state.rec.lines[i];
          if (line.unit_price_cents == 0) line.unit_price_cents = item.price_cents;
          if (i == 0) self->state.rec.currency = item.currency;
          if (auto& run = self->state.run; run && run->reserving) {  // one currency per order
            if (run->currency.empty()) run->currency = item.currency;
            else if (run->currency != item.currency) run->mixed_currency = true;
          }
          if (--*left == 0) done(*failures);
        },
        [left, failures, done](caf::error& err) {
          auto code = code_of(err);
          failures->push_back(code == errc::none ? errc::db_unavailable : code);
          if (--*left == 0) done(*failures);
        });
  }
}

// Releases every line's reservation; `then` runs only when all are released (an unknown sku has
// nothing to release). Otherwise the order stays as stored and the sweep or a retry does it again:
// releasing is idempotent, and moving on would leave units reserved for good. `held_only` leaves
// committed reservations alone (see item_release).
template <class Then>
void release_all(order_actor* self, Then then, bool held_only = false) {
  auto id = self->state.rec.id;
  for_each_line(self, [id, held_only](const OrderLine&) { return item_release{id, held_only}; },
                [self, then](const std::vector<errc>& failures) {
                  for (auto code : failures)
                    if (code != errc::not_found && code != errc::unknown_sku)
                      return fail(self, make_error(errc::db_unavailable));
                  then();
                });
}

// Nothing of the order is stored, or what is cannot be relied on: its held reservations are
// released, then it fails with `err`.
void release_then_fail(order_actor* self, caf::error err) {
  self->state.saga().failing = true;
  release_all(self, [self, err] { fail(self, err); }, true);
}

// Ends the order as `to` after undoing what was done: refund or void the payment, release stock.
void compensate(order_actor* self, OrderStatus to, std::string reason) {
  auto& st = self->state;
  // An activation that stored nothing yet undoes only held reservations: a committed one belongs
  // to another activation of the order, which stored it first (see item_release).
  bool held_only = !st.inserted;
  auto end = [self, to, reason, held_only] {
    release_all(self, [self, to, reason] {
      transition(self, to, reason, {}, [self] { finish(self); });
    }, held_only);
  };
  if (!st.rec.payment) return end();
  // A pending payment whose charge this activation never sent is abandoned (marked failed, the
  // provider never asked); otherwise it is refunded, or voided when its outcome is unknown.
  bool never_charged = st.intent_written && !st.charge_sent;
  auto settled = [self, end](PaymentRecord& p) {
    keep_payment(self->state.rec, std::move(p));
    end();
  };
  auto unsettled = [self, end](caf::error& err) {
    if (code_of(err) == errc::not_found) return end();  // never recorded: nothing charged
    fail(self, err);  // the payment could not be settled: leave the order to the sweep
  };
  if (never_charged)
    ask<PaymentRecord>(self, st.ctx, payment_type, st.rec.payment->id, settled, unsettled, abandon_atom::value);
  else
    ask<PaymentRecord>(self, st.ctx, payment_type, st.rec.payment->id, settled, unsettled, refund_atom::value);
}

void confirm(order_actor* self) {
  auto id = self->state.rec.id;
  for_each_line(self, [id](const OrderLine& l) { return item_commit{id, l.quantity}; },
                [self](const std::vector<errc>& failures) {
                  if (!failures.empty()) {
                    spdlog::warn("order {}: committing its reservations failed: {}", self->state.rec.id,
                                 to_string(failures.front()));
                    return compensate(self, OrderStatus::payment_failed, "payment_unavailable");
                  }
                  transition(self, OrderStatus::confirmed, "", {}, [self] { finish(self); });
                });
}

// Cancels a confirmed order: records `cancelling` first, then refunds and releases (see
// OrderStatus), so that one interrupted is finished as a cancel, never shipped meanwhile.
void cancel_confirmed(order_actor* self) {
  transition(self, OrderStatus::cancelling, "", {},
             [self] { compensate(self, OrderStatus::cancelled, ""); });
}

// Ships every line, then records `shipped`. A ship records `shipping` before (see OrderStatus),
// so that one interrupted is finished as a ship, never cancelled meanwhile: an item's ship and
// release are idempotent, and one already shipped or released answers as done.
void ship_lines(order_actor* self) {
  auto id = self->state.rec.id;
  for_each_line(self, [id](const OrderLine&) { return item_ship{id}; },
                [self](const std::vector<errc>& failures) {
                  if (!failures.empty()) return fail(self, make_error(errc::db_unavailable));
                  transition(self, OrderStatus::shipped, "", {}, [self] { finish(self); });
                });
}

// Stores a capture for a saga that does not confirm: the compensation then refunds what the
// provider captured.
template <class Then>
void store_capture(order_actor* self, PaymentRecord capture, Then then) {
  write_capture(self, std::move(capture), [self, then](const caf::error& err) mutable {
    if (err) return fail(self, err);
    then();
  });
}

// Confirms with the capture, and commits every reservation at the same time (two databases:
// neither waits for the other), once the charge went through.
// - Both stored: placed.
// - The confirmation stored, a commit not: the reservation is stored, held (see hold_and_charge),
//   and the item commits it when it next asks this order, as a confirmed order's (see
//   inventory.hpp), so the order is placed. One gone (released meanwhile by another activation of
//   the order: a check finds this one stored, see pin) is made again by the commit if the units
//   are there; if not, the confirmed order has no units: it is cancelled, and so refunded (a
//   crash before its cancel is stored leaves it confirmed without them: see the README).
// - The confirmation not stored: the capture is stored alone, and the recovery confirms the order
//   (see recover), committing first.
void confirm_and_commit(order_actor* self, PaymentRecord capture) {
  struct Join {
    int left = 2;
    std::vector<errc> commit_failures;
  };
  auto join = std::make_shared<Join>();
  auto done = [self, join] {
    if (--join->left > 0) return;  // a failed confirmation never counts down: the actor stops
    auto& failures = join->commit_failures;
    if (failures.empty()) return finish(self);
    auto id = self->state.rec.id;
    if (std::find(failures.begin(), failures.end(), errc::not_found) != failures.end()) {
      spdlog::warn("order {}: a reservation was gone when it was confirmed; cancelling it", id);
      return cancel_confirmed(self);
    }
    spdlog::warn("order {}: committing its reservations failed ({}); they are stored held, and "
                 "their items commit them as of the confirmed order", id, to_string(failures.front()));
    finish(self);
  };
  transition(self, OrderStatus::confirmed, "", {false, false, std::move(capture)}, done);
  auto id = self->state.rec.id;
  for_each_line(self, [id](const OrderLine& l) { return item_commit{id, l.quantity}; },
                [join, done](const std::vector<errc>& failures) {
                  join->commit_failures = failures;
                  done();
                });
}

// Charges the card, then confirms and commits (see confirm_and_commit). The capture comes back
// unwritten and is stored with the confirmation, in one transaction. A cancel that came meanwhile
// wins: the capture is stored first, so that the refund finds it captured.
void charge(order_actor* self) {
  auto& st = self->state;
  payment_charge req{st.rec.id, st.rec.total_cents, st.rec.currency, st.saga().card.take(),
                     st.rec.payment->version, true};
  st.charge_sent = true;
  ask<PaymentRecord>(
      self, st.ctx, payment_type, st.rec.payment->id,
      [self](PaymentRecord& p) {
        std::optional<PaymentRecord> capture;
        if (p.status == "captured") capture = p;
        keep_payment(self->state.rec, std::move(p));
        auto& st = self->state;
        if (st.cancel_requested) {
          if (!capture) return compensate(self, OrderStatus::cancelled, "");
          return store_capture(self, std::move(*capture),
                               [self] { compensate(self, OrderStatus::cancelled, ""); });
        }
        if (!capture) return compensate(self, OrderStatus::payment_failed, st.rec.payment->failure_reason);
        confirm_and_commit(self, std::move(*capture));
      },
      [self](caf::error& err) {  // outcome unknown: the refund call voids or refunds it
        spdlog::warn("order {}: charge failed: {}", self->state.rec.id, to_string(err));
        compensate(self, OrderStatus::payment_failed, "payment_unavailable");
      },
      std::move(req));
}

// Records the order, reserved, with its lines and the payment's pending record (its first write:
// an insert), and makes sure every reservation is stored (item_sync) at the same time (two
// databases: neither waits for the other); then charges. The charge waits for both: the pending
// record must be stored before the provider is asked (the recovery settles it), and a reservation
// must be stored before its order may be confirmed (see confirm_and_commit).
void hold_and_charge(order_actor* self) {
  struct Join {
    int left = 2;
    bool stored = false;     // the order was stored already, by another activation
    caf::error write_error;  // the order could not be written
    std::vector<errc> sync_failures;
  };
  auto join = std::make_shared<Join>();
  auto done = [self, join] {
    if (--join->left > 0) return;
    auto& st = self->state;
    // Stored by another activation: its reservations are the same as ours (one per order and
    // sku), so none is released here, save as adopt_stored says. Whatever is left held for an
    // order that will not claim it, the reservation's check releases (see inventory.hpp).
    if (join->stored && st.fresh) return adopt_stored(self);
    if (join->stored) return fail(self, make_error(errc::version_conflict));
    // Nothing recorded: release what was reserved, then report it. Only held reservations: a
    // committed one belongs to another activation of this order that got past its reserve.
    if (join->write_error) return release_then_fail(self, join->write_error);
    if (st.cancel_requested) return compensate(self, OrderStatus::cancelled, "");
    if (!join->sync_failures.empty()) {
      // A reservation made again (its first one lost) may find the stock gone; otherwise the
      // inventory database failed: compensated now, never charged, and answered as the failure.
      const auto& failures = join->sync_failures;
      auto has = [&](errc c) { return std::find(failures.begin(), failures.end(), c) != failures.end(); };
      if (has(errc::unknown_sku) || has(errc::insufficient_stock))
        return compensate(self, OrderStatus::rejected,
                          has(errc::unknown_sku) ? "unknown_sku" : "insufficient_stock");
      spdlog::warn("order {}: storing its reservations failed: {}", st.rec.id, to_string(failures.front()));
      st.saga().answer = make_error(errc::db_unavailable);
      return compensate(self, OrderStatus::payment_failed, "payment_unavailable");
    }
    charge(self);
  };
  auto& st = self->state;
  auto now = st.ctx->clock->now_ms();
  refresh_total(st.rec);  // the reservations brought the prices
  const auto& card = *st.saga().card;
  st.rec.payment = PaymentRecord{new_id("pay_", now), st.rec.id, "pending", "", card.brand(),
                                 card.last4(), card.exp_month, card.exp_year, "",
                                 st.rec.total_cents, st.rec.currency, 1};
  st.intent_written = true;
  bool first = !st.exists;  // else stored pending already (see pin)
  auto write = stamp(st, OrderStatus::reserved, "", {true, true, {}});
  std::optional<OrderRecord> written;
  if (first) written = st.rec;
  self->request(st.ctx->orders_db_for(st.rec.id), caf::infinite, db_save{std::move(write)})
      .then(
          [self, join, done, written](bool applied) {
            write_answered(self, applied);
            join->stored = !applied;
            if (applied && written) inserted_now(self, *written);
            done();
          },
          [self, join, done](caf::error& err) {
            write_answered(self, false);
            join->write_error = err;
            done();
          });
  auto id = st.rec.id;
  for_each_line(self, [id](const OrderLine& l) { return item_sync{id, l.quantity}; },
                [join, done](const std::vector<errc>& failures) {
                  join->sync_failures = failures;
                  done();
                });
}

void after_reserve(order_actor* self, const std::vector<errc>& failures) {
  auto& st = self->state;
  auto& run = st.saga();
  run.reserving = false;
  if (run.pin_in_flight) {  // goes on once it is answered (see pin)
    run.reserves_answered = failures;
    return;
  }
  // Stored by another activation (see pin): as when the saga's first write finds it stored.
  // Nothing is released: the reservations are the same as the other activation's.
  if (run.pin_refused) {
    if (st.fresh) return adopt_stored(self);
    return fail(self, make_error(errc::version_conflict));
  }
  if (run.pin_error)  // nothing is stored: what was held is released
    return release_then_fail(self, run.pin_error);
  if (!failures.empty()) {
    auto has = [&](errc c) { return std::find(failures.begin(), failures.end(), c) != failures.end(); };
    if (!has(errc::unknown_sku) && !has(errc::insufficient_stock)) {
      // A step failed for want of a database or a reply: undo what was reserved, then report it.
      std::string codes;
      for (auto code : failures) codes += std::string(codes.empty() ? "" : ", ") + to_string(code);
      spdlog::warn("order {}: reserving failed ({}); releasing, then answering db_unavailable",
                   st.rec.id, codes);
      // Nothing stored: only held ones are released. A committed one belongs to another
      // activation of the order (see item_release), and one held for another activation still
      // placing, that this one releases, fails that one's commit, which it answers (see
      // confirm_and_commit). Stored pending (see pin): compensated, and answered as the failure.
      if (!st.exists) return release_then_fail(self, make_error(errc::db_unavailable));
      st.saga().answer = make_error(errc::db_unavailable);
      return compensate(self, OrderStatus::payment_failed, "payment_unavailable");
    }
    auto reason = has(errc::unknown_sku) ? "unknown_sku" : "insufficient_stock";
    return compensate(self, OrderStatus::rejected, reason);  // its first write, unless pinned
  }
  // Items priced in different currencies: no total can be charged. Released, never charged.
  if (run.mixed_currency) return compensate(self, OrderStatus::rejected, "currency_mismatch");
  hold_and_charge(self);
}

void place(order_actor* self, order_place& req) {
  auto& st = self->state;
  auto now = st.ctx->clock->now_ms();
  st.running = true;
  st.saga().card = std::move(req.card);
  req.card.wipe();
  auto id = std::move(st.rec.id);
  st.rec = OrderRecord{};
  st.rec.id = std::move(id);
  st.rec.customer_id = req.customer_id;
  st.rec.lines = std::move(req.lines);
  st.rec.status = std::string(to_string(OrderStatus::pending));  // until its first write
  st.rec.created_at_ms = now;
  st.rec.updated_at_ms = now;
  // Every item answers as soon as it has set the units aside, with its price (see item_reserve's
  // `early`); nothing is recorded before that. A reservation whose order is never recorded (its
  // node failed meanwhile) is released when its check finds no order (see inventory.hpp).
  st.saga().reserving = true;
  for_each_line(self,
                [id = st.rec.id](const OrderLine& l) { return item_reserve{id, l.quantity, true}; },
                [self](const std::vector<errc>& failures) { after_reserve(self, failures); });
}

// An order found unfinished (after a crash or a lost step) with no saga running here: a cancel or
// a ship under way is finished as it began; a placement is finished when the charge went through,
// else compensated. The card is gone, so no charge is started.
void recover(order_actor* self) {
  auto& st = self->state;
  st.running = true;
  spdlog::info("order {}: recovering from {}", st.rec.id, st.rec.status);
  switch (status_of(st)) {
    case OrderStatus::cancelling: return compensate(self, OrderStatus::cancelled, "");
    case OrderStatus::shipping: return ship_lines(self);
    case OrderStatus::pending:
    case OrderStatus::reserved: break;
    default: return finish(self);  // nothing is left to do
  }
  if (status_of(st) == OrderStatus::pending || !st.rec.payment)
    return compensate(self, OrderStatus::payment_failed, "payment_unavailable");
  ask<PaymentRecord>(
      self, st.ctx, payment_type, st.rec.payment->id,
      [self](PaymentRecord& p) {
        keep_payment(self->state.rec, std::move(p));
        if (self->state.rec.payment->status == "captured") return confirm(self);
        compensate(self, OrderStatus::payment_failed, "payment_unavailable");
      },
      [self](caf::error&) { compensate(self, OrderStatus::payment_failed, "payment_unavailable"); },
      get_atom::value);
}

// A cancel: a ship under way is finished, never undone (one interrupted is finished now), and the
// cancel is refused once it is shipped, as of a shipped order; a saga under way does it when its
// step ends (see finish).
void cancel_call(order_actor* self, caf::response_promise rp) {
  auto& st = self->state;
  if (!st.exists && !st.running) return rp.deliver(make_error(errc::not_found));
  if (status_of(st) == OrderStatus::shipping) {
    st.saga().refused.push_front(std::move(rp));
    if (!st.running) {
      st.running = true;
      ship_lines(self);
    }
    return;
  }
  if (st.running) {
    st.cancel_requested = true;
    st.saga().waiting.push_front(std::move(rp));
    return;
  }
  switch (status_of(st)) {
    case OrderStatus::cancelled: return rp.deliver(st.rec);
    case OrderStatus::pending:
    case OrderStatus::reserved:
    case OrderStatus::confirmed:
    case OrderStatus::cancelling:  // (an interrupted cancel: finished)
      st.running = true;
      st.saga().waiting.push_front(std::move(rp));
      if (status_of(st) == OrderStatus::confirmed) return cancel_confirmed(self);
      return compensate(self, OrderStatus::cancelled, "");
    default: return rp.deliver(make_error(errc::conflict, "order is " + st.rec.status));
  }
}

// A ship: a cancel under way is finished, never undone (one interrupted is finished now), and the
// ship is refused once it is cancelled, as of a cancelled order.
void ship_call(order_actor* self, caf::response_promise rp) {
  auto& st = self->state;
  if (!st.exists && !st.running) return rp.deliver(make_error(errc::not_found));
  auto status = status_of(st);
  if (status == OrderStatus::cancelling) {
    st.saga().refused.push_front(std::move(rp));
    if (!st.running) {
      st.running = true;
      compensate(self, OrderStatus::cancelled, "");
    }
    return;
  }
  if (st.running) return rp.deliver(make_error(errc::busy));
  if (status != OrderStatus::confirmed && status != OrderStatus::shipping)
    return rp.deliver(make_error(errc::conflict, "order is " + st.rec.status));
  st.running = true;
  st.saga().waiting.push_front(std::move(rp));
  if (status == OrderStatus::shipping) return ship_lines(self);  // an interrupted ship: finished
  transition(self, OrderStatus::shipping, "", {}, [self] { ship_lines(self); });
}

// A recovery (the sweep's), of an order that `untouched` long enough for it.
void recover_call(order_actor* self, caf::response_promise rp, bool untouched) {
  auto& st = self->state;
  if (!st.exists) return rp.deliver(make_error(errc::not_found));
  if (st.running || !untouched || is_terminal(status_of(st))) return rp.deliver(st.rec);
  st.saga().waiting.push_front(std::move(rp));
  recover(self);
}

// A read, of an order with no first write under way here (see the get_atom handler).
void get_call(order_actor* self, caf::response_promise rp) {
  auto& st = self->state;
  if (st.exists) return rp.deliver(shown_as_stored(st));
  // An unknown id: asked to stop actors.terminal_passivate_ms from now, as a finished order is,
  // so that lookups of unknown ids do not keep an actor each until they idle out. It stops then
  // unless a placement came for it meanwhile and is still running.
  if (!st.running) self->send(st.ctx->registries.at(order_type), terminal_atom::value);
  rp.deliver(make_error(errc::not_found));
}

void dispatch(order_actor* self, Command cmd, caf::response_promise rp, bool untouched) {
  switch (cmd) {
    case Command::cancel: return cancel_call(self, std::move(rp));
    case Command::ship: return ship_call(self, std::move(rp));
    case Command::recover: return recover_call(self, std::move(rp), untouched);
    case Command::get: return get_call(self, std::move(rp));
  }
}

// Whether commands wait for the order to be read again (see command).
bool rereading(const order_state& st) { return st.run && !st.run->settling.empty(); }

// Whether `cmd` waits for an order that may be placing elsewhere (see command): a cancel and a
// ship do; a recovery and a read are answered as it is stored.
bool waits(Command cmd) { return cmd == Command::cancel || cmd == Command::ship; }

// Whether `cmd` reads the order again first (see command): in a cluster, with no saga here, a
// cancel, ship or recovery of a stored order, and a read of one stored unfinished (the other
// activation moves it on). An id not stored when loaded is not read again: its activation stops
// actors.terminal_passivate_ms after its first read (see get_call), and the next one loads it.
bool worth_reading(const order_state& st, Command cmd) {
  if (st.ctx->settings.settle_grace_ms < 0 || st.running || !st.exists) return false;
  return cmd != Command::get || !is_terminal(status_of(st));
}

// In a cluster, another node's activation of this order may have written it since this one
// loaded it, and may still be at its saga: after a view change, the old owner finishes the step
// under way, its writes fenced by the order's version. A cancel that compensated from a stale
// `reserved` would release the units of an order the other confirmed; one that compensated beside
// the other's saga would release what its confirmation commits. So in a cluster a cancel, a ship
// or a recovery of an order with no saga here reads the order again, and applies to it as stored.
// Within settle_grace_ms (cluster.sweep_grace_ms) of a view change that moved entities, an order
// stored unfinished (pending, reserved, cancelling, shipping), or confirmed (its confirmation's
// commits go out beside its write, and may still be on their way), and changed within that time
// by another activation, is read again at growing pauses, until it is finished, or untouched that
// long (by its stored time, or by this node's sight of its version: clocks may differ), or the
// view change is that old. A recovery does not wait: it applies only to such an order untouched
// that long, and the sweep comes again. A read does not wait either; it reads again an order
// stored unfinished (see worth_reading), so that one moved on by the other activation is not
// shown stale until this one idles out. Commands that come meanwhile join the same read (a read
// during a wait gets the order as last read). On one node, and in a cluster whose view did not
// change lately, there is no other activation to wait for. (Node clocks are taken to agree well
// within the grace, as the sweep takes them to.)
caf::result<OrderRecord> command(order_actor* self, Command cmd) {
  auto& st = self->state;
  auto rp = self->make_response_promise();
  bool joins = rereading(st);
  if (!joins && !worth_reading(st, cmd)) {
    dispatch(self, cmd, rp, true);
    return rp;
  }
  auto& run = st.saga();
  run.settling.emplace_back(cmd, rp);
  if (joins) return rp;
  st.running = true;
  // The version it holds, if this activation wrote it: its saga, which wrote it, is over, and the
  // commits of a confirmation it wrote were answered.
  run.own_version = st.held_is_own ? st.rec.version : -1;
  run.seen_version = -1;
  run.rereads = 0;
  reread(self);
  return rp;
}

void reread(order_actor* self) {
  auto& st = self->state;
  auto loaded = std::make_shared<std::optional<OrderRecord>>();
  self->request(st.ctx->orders_db_for(st.rec.id), caf::infinite,
                db_read{[loaded, id = st.rec.id](soci::session& s) { *loaded = load_order(s, id); }})
      .then([self, loaded](bool) { reread_done(self, std::move(*loaded)); },
            [self](caf::error& err) { fail(self, err); });
}

// Whether the order as just read may still be changed by another activation (see command).
bool may_be_placing_elsewhere(const order_state& st, const Running& run, std::int64_t now) {
  auto grace = st.ctx->settings.settle_grace_ms;
  if (!st.exists || st.rec.version == run.own_version) return false;
  if (now - st.ctx->view_moved_at_ms->load() >= grace) return false;
  auto status = status_of(st);
  if (is_terminal(status) && status != OrderStatus::confirmed) return false;
  auto quiet = std::max(now - run.seen_at_ms, st.ctx->clock->now_ms() - st.rec.updated_at_ms);
  return quiet < grace;
}

void reread_done(order_actor* self, std::optional<OrderRecord> loaded) {
  auto& st = self->state;
  auto& run = st.saga();
  st.exists = loaded.has_value();  // (gone: answered as an unknown order)
  if (loaded) {
    st.rec = std::move(*loaded);
    keep_payment(st.rec, std::move(st.rec.payment));
    st.inserted = true;
    run.stored.reset();  // what it holds is what is stored
  }
  // Another activation's write read: the version held is no longer this one's own.
  if (st.rec.version != run.own_version) st.held_is_own = false;
  auto now = steady_ms();
  if (st.rec.version != run.seen_version) {
    run.seen_version = st.rec.version;
    run.seen_at_ms = now;
  }
  bool placing = may_be_placing_elsewhere(st, run, now);
  if (placing) {
    // Recoveries and reads do not wait: answered with the order as stored (a recovery leaves it
    // to the next sweep).
    auto& calls = run.settling;
    for (auto& call : calls)
      if (!waits(call.first)) dispatch(self, call.first, call.second, false);
    calls.erase(std::remove_if(calls.begin(), calls.end(), [](const auto& call) { return !waits(call.first); }),
                calls.end());
    if (!calls.empty()) {
      auto pause = std::int64_t{10} << std::min(run.rereads++, 5);
      self->delayed_send(self, ms(pause), retry_atom::value);
      return;
    }
  }
  auto calls = std::move(run.settling);
  run.settling.clear();
  st.running = false;
  for (auto& call : calls) dispatch(self, call.first, std::move(call.second), !placing);
  // Nothing started: whatever waited meanwhile (a placement delivered again) gets the order, and
  // a stop asked meanwhile is made.
  if (!st.running) finish(self);
}

// The handlers, built once and shared by every order actor (see entity_actor).
const caf::behavior& order_handlers() {
  static const caf::behavior handlers{
      [](order_place& req) -> caf::result<OrderRecord> {
        auto* self = order_actor::current();
        auto& st = self->state;
        if (st.exists && !st.running) return st.rec;  // re-delivery: the order as it is
        auto rp = self->make_response_promise();
        if (st.running) {  // delivered again while it runs: the order once it ends
          st.saga().waiting.push_front(rp);
          return rp;
        }
        st.saga().placement = rp;
        place(self, req);
        return rp;
      },
      [](mailbox_atom) { return order_actor::current()->mailbox().size(); },
      [](get_atom) -> caf::result<OrderRecord> {
        auto* self = order_actor::current();
        auto& st = self->state;
        // In a cluster, what another activation may have changed is read again (see command). A
        // read during a cancel's or ship's wait gets the order as last read.
        if (rereading(st)) {
          if (st.run->seen_version >= 0) return shown_as_stored(st);
          return command(self, Command::get);
        }
        if (worth_reading(st, Command::get)) return command(self, Command::get);
        if (st.running && !st.inserted) {  // placing, its first write not stored yet
          auto rp = self->make_response_promise();
          st.saga().readers.push_front(rp);
          // Its reserves out: stored now (see pin). Else its first write comes next, or it fails.
          if (!st.exists && st.saga().reserving) pin(self);
          return rp;
        }
        if (!st.exists) {
          // An unknown id (see get_call).
          if (!st.running) self->send(st.ctx->registries.at(order_type), terminal_atom::value);
          return make_error(errc::not_found);
        }
        return shown_as_stored(st);
      },
      [](cancel_atom) -> caf::result<OrderRecord> {
        return command(order_actor::current(), Command::cancel);
      },
      [](ship_atom) -> caf::result<OrderRecord> {
        return command(order_actor::current(), Command::ship);
      },
      [](recover_atom) -> caf::result<OrderRecord> {
        auto* self = order_actor::current();
        auto& st = self->state;
        if (st.running && !rereading(st)) return st.rec;  // (a reread under way: joins it)
        return command(self, Command::recover);
      },
      [](retry_atom) {  // the pause before the next read (see command)
        auto* self = order_actor::current();
        if (rereading(self->state)) reread(self);
      },
      [](idle_atom) {
        auto* self = order_actor::current();
        auto& st = self->state;
        if (!st.running) self->send(st.ctx->registries.at(order_type), idle_atom::value, st.rec.id);
      },
      [](stop_atom) {
        auto* self = order_actor::current();
        auto& st = self->state;
        if (!st.running) return self->quit();
        st.stop_requested = true;
        // Stopped while it reads the order again or waits (see command), before any command ran
        // (the view moved the order away, or this node leaves): the commands are answered as not
        // delivered, which the router sends on to the order's owner, and it stops now.
        if (rereading(st)) {
          for (auto& call : st.run->settling)
            call.second.deliver(make_error(errc::not_delivered, "the order's activation stopped"));
          st.run->settling.clear();
          st.running = false;
          finish(self);  // what else waited gets the order; then it quits
        }
      },
      // The registry waited long enough for the stop (runtime/registry.hpp): it stays, and takes
      // the calls again, rather than a second activation running beside its saga, and asks for
      // the stop again once the saga ends. Not one about to fail: it stops, ahead of storage.
      [](resume_atom) {
        auto& st = order_actor::current()->state;
        const auto& run = st.run;
        bool bound_to_fail =
            run && (run->failing || run->pin_error ||
                    (!run->adopting && (run->diverged || (run->pin_refused && !st.fresh))));
        if (bound_to_fail) return false;
        st.stop_requested = false;
        st.saga().leave_when_done = true;
        return true;
      },
  };
  return handlers;
}

// A fresh activation's first write, the insert, found the order stored after all (a placement
// delivered twice): it takes the stored order and answers with it, as a loaded activation would.
void adopt_stored(order_actor* self) {
  auto& st = self->state;
  st.fresh = false;
  st.saga().adopting = true;  // it goes on, from what is stored: not bound to fail
  st.run->card.wipe();
  auto loaded = std::make_shared<std::optional<OrderRecord>>();
  self->request(st.ctx->orders_db_for(st.rec.id), caf::infinite,
                db_read{[loaded, id = st.rec.id](soci::session& s) { *loaded = load_order(s, id); }})
      .then(
          [self, loaded](bool) {
            if (!*loaded) return fail(self, make_error(errc::version_conflict));
            auto& st = self->state;
            st.rec = std::move(**loaded);
            keep_payment(st.rec, std::move(st.rec.payment));
            st.exists = true;
            st.inserted = true;
            st.held_is_own = false;
            if (st.run) {  // what it holds is what is stored again
              st.run->adopting = false;
              st.run->pin_refused = false;
              st.run->diverged = false;
              st.run->stored.reset();
            }
            // A cancel that came meanwhile applies to the stored order, as it would have if this
            // activation had loaded it first.
            auto status = status_of(st);
            if (st.cancel_requested && status == OrderStatus::confirmed) {
              st.cancel_requested = false;
              return cancel_confirmed(self);
            }
            bool live = status == OrderStatus::pending || status == OrderStatus::reserved ||
                        status == OrderStatus::cancelling;
            if (st.cancel_requested && live) return compensate(self, OrderStatus::cancelled, "");
            // This activation reserved before it wrote (see place). An order still placing holds
            // the same reservations. A confirmed one may hold them still held, if its commits
            // failed (see confirm_and_commit): they are committed (committing is idempotent). A
            // finished one holds none, so a held one is this activation's and is released
            // (releasing is idempotent). A placement delivered again while the order is
            // compensated elsewhere may read it still placing: the reservation's check releases
            // it later.
            // A shipping or cancelling one is left to its ship or cancel, which takes a held one.
            if (status == OrderStatus::pending || status == OrderStatus::reserved ||
                status == OrderStatus::shipping || status == OrderStatus::cancelling)
              return finish(self);
            if (status == OrderStatus::confirmed) {
              auto id = st.rec.id;
              // (Not made again if gone: this activation may race the order's own cancel.)
              return for_each_line(self, [id](const OrderLine&) { return item_commit{id}; },
                                   [self](const std::vector<errc>&) { finish(self); });
            }
            release_all(self, [self] { finish(self); }, true);
          },
          [self](caf::error& err) { fail(self, err); });
}

caf::behavior order_entity(order_actor* self, ContextPtr ctx, std::string id, bool fresh) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.rec.id = std::move(id);
  st.fresh = fresh;
  if (!fresh) load_then<OrderRecord>(self, st.ctx->orders_db_for(st.rec.id),
                         [id = st.rec.id](soci::session& s) { return load_order(s, id); },
                         [self](std::optional<OrderRecord> loaded) {
                           if (!loaded) return;
                           auto& st = self->state;
                           st.exists = true;
                           st.inserted = true;
                           st.rec = std::move(*loaded);
                           keep_payment(st.rec, std::move(st.rec.payment));
                           // Loaded finished (read, say): it stops as soon as one just finished.
                           if (is_terminal(status_of(st)))
                             self->send(st.ctx->registries.at(order_type), terminal_atom::value);
                         });
  return order_handlers();
}

}  // namespace

caf::actor spawn_order(caf::local_actor* spawner, ContextPtr ctx, std::string id, bool fresh) {
  return spawner->spawn(order_entity, std::move(ctx), std::move(id), fresh);
}

}  // namespace emporium
