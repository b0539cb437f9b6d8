// Payment session actor, one per payment: authorizes and captures through the provider adapter,
// retrying transient provider errors with doubling backoff. It records its intent before calling
// the provider and uses its id as the provider's idempotency key, so a retry never charges twice.
// It stores brand, last4 and expiry only; the card is wiped from memory once the charge is decided.
//
// Protocol (reply, or error):
//   payment_charge -> PaymentRecord   status captured | declined | failed   (idempotent)
//   refund_atom    -> PaymentRecord   status refunded (captured) or failed (never finished)
//   get_atom       -> PaymentRecord   not_found
#pragma once

#include <cstdint>
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
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, payment_charge& x) {
  return f(caf::meta::type_name("payment_charge"), x.order_id, x.amount_cents, x.currency, x.card);
}

caf::actor spawn_payment(caf::local_actor* spawner, ContextPtr ctx, std::string id,
                         caf::actor registry);

}  // namespace emporium

