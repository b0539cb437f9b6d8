// The payment session actor.
#include "actors/payment.hpp"

#include <forward_list>
#include <utility>
#include <vector>

#include "actors/entity.hpp"
#include "runtime/registry.hpp"
#include "runtime/store.hpp"

namespace emporium {
namespace {

struct payment_state {
  ContextPtr ctx;
  bool exists = false;
  PaymentRecord rec;  // rec.id is the payment's id, stored or not (kept once: actors stay small)
  HeldCard card;  // only while a charge is being decided
  int attempts = 0;
  // Requests answered with the outcome, all alike (a list: one pointer while empty).
  std::forward_list<caf::response_promise> waiting;
  bool busy = false;
  int writes_in_flight = 0;
  bool stop_requested = false;  // passivation asked while a request was unanswered: stop after it
  bool leave_when_done = false;  // that passivation called off (resume_atom): asked for again
  bool rereading = false;  // a write of ours lost (lost_write): it may stop once it knows why
  bool caller_writes = false;   // the charge running: its capture goes back unwritten
  bool maybe_charged = false;   // an attempt's outcome was unknown (ChargeOutcome::unknown)
  static inline const char* name = "payment";
};

using payment_actor = entity_actor<payment_state>;

bool final_status(const std::string& status) { return status != "pending"; }

void answer_all(payment_actor* self);

// Once nothing it started is unanswered: a payment asked to stop (stop_atom) stops, and one whose
// stop was called off (resume_atom) asks its registry for it again.
void stop_when_done(payment_actor* self) {
  auto& st = self->state;
  if (st.busy || st.writes_in_flight != 0 || !st.waiting.empty()) return;
  if (st.stop_requested) return self->quit();
  if (std::exchange(st.leave_when_done, false))
    leave_registry(self, st.ctx, payment_type, st.rec.id);
}

// A write of ours lost to a newer stored record (this activation took its record from a charge
// message, or another activation wrote): a decided stored record is the answer, as a loaded
// activation would have given it; an undecided one leaves the call to be sent again.
void lost_write(payment_actor* self) {
  auto& st = self->state;
  st.rereading = true;
  auto loaded = std::make_shared<std::optional<PaymentRecord>>();
  self->request(st.ctx->orders_db_for(st.rec.id), caf::infinite,
                db_read{[loaded, id = st.rec.id](soci::session& s) { *loaded = load_payment(s, id); }})
      .then(
          [self, loaded](bool) {
            auto& st = self->state;
            st.rereading = false;
            if (*loaded && final_status((*loaded)->status)) {
              st.rec = std::move(**loaded);
              st.busy = false;
              st.card.wipe();
              answer_all(self);
              stop_when_done(self);
              return;
            }
            leave_registry(self, st.ctx, payment_type, st.rec.id);
            for (auto& rp : st.waiting) rp.deliver(make_error(errc::version_conflict));
            st.waiting.clear();
            self->quit();
          },
          [self](caf::error& err) {
            leave_registry(self, self->state.ctx, payment_type, self->state.rec.id);
            for (auto& rp : self->state.waiting) rp.deliver(err);
            self->state.waiting.clear();
            self->quit(err);
          });
}

// Writes the record; `then` runs once committed, errors go to every waiting requester.
template <class Then>
void persist(payment_actor* self, Then then) {
  auto& st = self->state;
  std::int64_t expected = st.exists ? st.rec.version : 0;
  st.rec.version = expected + 1;
  st.exists = true;
  PaymentRecord snapshot = st.rec;
  st.writes_in_flight += 1;
  self->request(st.ctx->orders_db_for(st.rec.id), caf::infinite,
                db_save{PaymentWrite{std::move(snapshot), expected}})
      .then(
          [self, then](bool applied) mutable {
            self->state.writes_in_flight -= 1;
            if (!applied) return lost_write(self);
            then();
            stop_when_done(self);
          },
          [self](caf::error& err) {
            self->state.writes_in_flight -= 1;
            leave_registry(self, self->state.ctx, payment_type, self->state.rec.id);
            for (auto& rp : self->state.waiting) rp.deliver(err);
            self->quit(err);  // memory may be ahead of storage: reload on the next message
          });
}

// Answers everyone waiting with the record; a decided payment passivates soon, as a finished
// order does (its registry asks it terminal_passivate_ms later, in the order they finished, so
// payments that finish together do not all stop at one sweep).
void answer_all(payment_actor* self) {
  auto waiting = std::move(self->state.waiting);
  self->state.waiting.clear();
  for (auto& rp : waiting) rp.deliver(self->state.rec);
  self->send(self->state.ctx->registries.at(payment_type), terminal_atom::value);  // asked to stop terminal_passivate_ms later
}

void finish(payment_actor* self) {
  auto& st = self->state;
  st.card.wipe();
  st.busy = false;
  persist(self, [self] { answer_all(self); });
}

// A capture whose caller stores it: answered as it is to be stored, with the version that write
// gives it, and the actor stops, since its memory is ahead of storage (the next message loads
// what was stored).
void hand_over(payment_actor* self) {
  auto& st = self->state;
  st.card.wipe();
  st.busy = false;
  st.rec.version += 1;
  auto waiting = std::move(st.waiting);
  st.waiting.clear();
  for (auto& rp : waiting) rp.deliver(st.rec);
  self->quit();
}

void decide(payment_actor* self, const ChargeResult& result);

// Asks the provider: at once, or through a caller thread when the provider blocks (the actor stays
// `busy` meanwhile, so nothing else changes the payment until the answer is decided).
void attempt(payment_actor* self) {
  auto& st = self->state;
  if (const auto* caller = st.ctx->provider_caller_for(st.rec.id)) {
    self->request(*caller, caf::infinite,
                  provider_charge{st.rec.id, st.rec.amount_cents, st.rec.currency, *st.card,
                                  steady_ms() + st.ctx->settings.payment_timeout_ms})
        .then([self](ChargeResult& result) { decide(self, result); },
              [self](caf::error&) { decide(self, {ChargeOutcome::unknown, {}}); });  // caller gone
    return;
  }
  ChargeRequest req{st.rec.id, st.rec.amount_cents, st.rec.currency, &*st.card};
  decide(self, st.ctx->provider->charge(req));
}

void decide(payment_actor* self, const ChargeResult& result) {
  auto& st = self->state;
  st.attempts += 1;
  switch (result.outcome) {
    case ChargeOutcome::captured:
      st.rec.status = "captured";
      st.rec.provider_ref = result.provider_ref;
      if (st.caller_writes && st.writes_in_flight == 0) return hand_over(self);
      return finish(self);
    case ChargeOutcome::declined:
    case ChargeOutcome::insufficient_funds:
      st.rec.status = "declined";
      st.rec.failure_reason =
          result.outcome == ChargeOutcome::declined ? "card_declined" : "insufficient_funds";
      st.rec.provider_ref = result.provider_ref;
      return finish(self);
    case ChargeOutcome::unknown:
      st.maybe_charged = true;
      [[fallthrough]];
    case ChargeOutcome::transient_error:
      if (st.attempts <= st.ctx->settings.payment_retries_max) {
        auto backoff = st.ctx->settings.payment_retry_backoff_ms << (st.attempts - 1);
        self->delayed_send(self, ms(backoff), retry_atom::value);
        return;
      }
      st.rec.failure_reason = "payment_unavailable";
      // An attempt that may have been charged leaves the payment undecided (pending): the order's
      // compensation voids it at the provider (refund_atom). Otherwise nothing was charged.
      if (!st.maybe_charged) st.rec.status = "failed";
      return finish(self);
  }
}

// The handlers, built once and shared by every payment actor (see entity_actor).
const caf::behavior& payment_handlers() {
  static const caf::behavior handlers{
      [](payment_charge& req) -> caf::result<PaymentRecord> {
        auto* self = payment_actor::current();
        auto& st = self->state;
        if (st.exists && final_status(st.rec.status)) return st.rec;  // re-delivery
        auto rp = self->make_response_promise();
        st.waiting.push_front(rp);
        if (st.busy) return rp;
        st.busy = true;
        st.caller_writes = req.caller_writes;
        st.card = std::move(req.card);
        req.card.wipe();
        bool recorded = st.exists && st.rec.status == "pending";
        st.rec = PaymentRecord{st.rec.id, req.order_id, "pending", "", st.card->brand(), st.card->last4(),
                               st.card->exp_month, st.card->exp_year, "", req.amount_cents,
                               req.currency, st.rec.version};
        // Intent first: a crash after this leaves a record the recovery sweep can settle. A
        // pending record already stored (by the order, or by an attempt cut short) is that intent,
        // and the provider's idempotency key (the payment id) makes another attempt safe.
        if (recorded) attempt(self);
        else persist(self, [self] { attempt(self); });
        return rp;
      },
      [](retry_atom) {
        auto* self = payment_actor::current();
        if (self->state.busy) attempt(self);
      },
      [](refund_atom) -> caf::result<PaymentRecord> {
        auto* self = payment_actor::current();
        auto& st = self->state;
        if (!st.exists) return make_error(errc::not_found);
        if (st.busy) return make_error(errc::busy);
        // A pending one was never decided here (a crash or a lost write after the provider call):
        // the provider may have captured it, so it is voided or refunded there too, by the same
        // idempotency key.
        if (st.rec.status != "captured" && st.rec.status != "pending") return st.rec;
        auto rp = self->make_response_promise();
        auto refunded = [self, rp](bool ok) mutable {
          auto& st = self->state;
          if (!ok) {  // try again later; so does a charge that came meanwhile
            rp.deliver(make_error(errc::busy));
            for (auto& waiting : st.waiting) waiting.deliver(make_error(errc::busy));
            st.waiting.clear();
            return;
          }
          if (st.rec.status == "captured") {
            st.rec.status = "refunded";
          } else {
            st.rec.status = "failed";
            st.rec.failure_reason = "payment_unavailable";
          }
          st.waiting.push_front(rp);
          persist(self, [self] { answer_all(self); });
        };
        if (const auto* caller = st.ctx->provider_caller_for(st.rec.id)) {
          st.busy = true;  // until the provider answered
          auto answered = [self, refunded](bool ok) mutable {
            auto& st = self->state;
            st.busy = false;
            refunded(ok);
            stop_when_done(self);
          };
          self->request(*caller, caf::infinite, provider_refund{st.rec.id, st.rec.amount_cents})
              .then([answered](bool ok) mutable { answered(ok); },
                    [answered](caf::error&) mutable { answered(false); });
          return rp;
        }
        refunded(st.ctx->provider->refund(st.rec.id, st.rec.amount_cents));
        return rp;
      },
      [](abandon_atom) -> caf::result<PaymentRecord> {
        auto* self = payment_actor::current();
        // The order never sent the charge (it was cancelled first): the intent is settled as
        // failed without asking the provider.
        auto& st = self->state;
        if (!st.exists) return make_error(errc::not_found);
        if (st.busy) return make_error(errc::busy);
        if (st.rec.status != "pending") return st.rec;
        st.rec.status = "failed";
        st.rec.failure_reason = "";
        st.waiting.push_front(self->make_response_promise());
        auto rp = st.waiting.front();
        persist(self, [self] { answer_all(self); });
        return rp;
      },
      [](mailbox_atom) { return payment_actor::current()->mailbox().size(); },
      [](get_atom) -> caf::result<PaymentRecord> {
        auto* self = payment_actor::current();
        if (!self->state.exists) return make_error(errc::not_found);
        return self->state.rec;
      },
      [](stop_atom) {
        auto* self = payment_actor::current();
        auto& st = self->state;
        // A requester still waiting is answered first: a charge in progress, a write out, or the
        // reread after a lost write (lost_write), which stops the actor once it has answered.
        if (!st.busy && st.writes_in_flight == 0 && st.waiting.empty()) return self->quit();
        st.stop_requested = true;
      },
      [](resume_atom) {  // the registry waited long enough for the stop (runtime/registry.hpp)
        auto& st = payment_actor::current()->state;
        // Not one that stops on its own: once it knows why its write was lost (lost_write), or
        // once it hands its capture to its order (hand_over), its memory being ahead of storage.
        if (st.rereading || st.caller_writes) return false;
        st.stop_requested = false;
        st.leave_when_done = true;
        return true;
      },
      [](idle_atom) {  // the registry asks: nothing came for a while
        auto* self = payment_actor::current();
        auto& st = self->state;
        if (!st.busy) self->send(st.ctx->registries.at(payment_type), idle_atom::value, st.rec.id);
      },
  };
  return handlers;
}

caf::behavior payment_session(payment_actor* self, ContextPtr ctx, std::string id,
                              std::optional<PaymentRecord> intent) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.rec.id = std::move(id);
  if (intent) {
    st.exists = true;
    st.rec = std::move(*intent);
  } else load_then<PaymentRecord>(self, st.ctx->orders_db_for(st.rec.id),
                           [id = st.rec.id](soci::session& s) { return load_payment(s, id); },
                           [self](std::optional<PaymentRecord> loaded) {
                             if (!loaded) return;
                             self->state.exists = true;
                             self->state.rec = std::move(*loaded);
                           });
  return payment_handlers();
}

}  // namespace

std::optional<PaymentRecord> recorded_intent(const std::string& payment_id, const payment_charge& c) {
  if (c.intent_version <= 0) return std::nullopt;
  return PaymentRecord{payment_id,      c.order_id,        "pending",        "", c.card.brand(),
                       c.card.last4(),  c.card.exp_month,  c.card.exp_year,  "", c.amount_cents,
                       c.currency,      c.intent_version};
}

caf::actor spawn_payment(caf::local_actor* spawner, ContextPtr ctx, std::string id,
                         std::optional<PaymentRecord> intent) {
  return spawner->spawn(payment_session, std::move(ctx), std::move(id), std::move(intent));
}

}  // namespace emporium
