// Payment session actor, one per payment: authorizes and captures through the provider adapter,
// retrying transient provider errors with doubling backoff. Its intent is recorded before the
// provider is called (by the order, with its reserved state, or else by the payment itself), and
// its id is the provider's idempotency key, so a retry never charges twice.
// It stores brand, last4 and expiry only; the card is wiped from memory once the charge is decided.
//
// Protocol (reply, or error):
//   payment_charge -> PaymentRecord   status captured | declined | failed   (idempotent; a
//                                     pending record already stored is the intent: no new write)
//                                     With `caller_writes`, a capture is answered unwritten, with
//                                     the version the caller's write is to give it, and the actor
//                                     stops: the caller stores it with its own state, in one
//                                     transaction (the order, with its confirmation).
//   refund_atom    -> PaymentRecord   status refunded (captured) or failed (never finished)
//   abandon_atom   -> PaymentRecord   status failed, for a pending intent whose charge was never
//                                     sent (the provider is not asked)      not_found, busy
//   get_atom       -> PaymentRecord   not_found
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <caf/actor.hpp>

#include "actors/card.hpp"
#include "actors/context.hpp"
#include "runtime/records.hpp"

namespace emporium {

struct payment_charge {
  std::string order_id;
  std::int64_t amount_cents = 0;
  std::string currency = "USD";
  Card card;
  // The version of the pending record the order stored with its own state (its intent, written in
  // the same transaction), or 0 when the payment records its intent itself.
  std::int64_t intent_version = 0;
  bool caller_writes = false;  // a capture is answered unwritten (see the protocol above)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, payment_charge& x) {
  return f(caf::meta::type_name("payment_charge"), x.order_id, x.amount_cents, x.currency, x.card,
           x.intent_version, x.caller_writes);
}

// The pending record a charge says its order stored (nullopt when it says none was).
std::optional<PaymentRecord> recorded_intent(const std::string& payment_id, const payment_charge& c);

// `intent`: the stored record, known without loading it (see recorded_intent). The payment finds
// its registry in the context.
caf::actor spawn_payment(caf::local_actor* spawner, ContextPtr ctx, std::string id,
                         std::optional<PaymentRecord> intent = std::nullopt);

}  // namespace emporium

