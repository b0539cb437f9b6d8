// Order actor, one per order: runs the placement saga (reserve every line in parallel, each item
// answering at once → record as reserved, with the payment's pending record, while the items make
// sure the reservations are stored → charge → record as confirmed, with the capture, while the
// reservations are committed: two database round trips in a row), compensating on every failure
// (release reservations, refund, or abandon a payment never charged), and takes cancel and ship.
// Every step is idempotent, keyed by the order id. Read while its reserves are out, an order is
// recorded as pending first (see pin in order.cpp).
//
// Protocol (reply, or error):
//   order_place   -> OrderRecord  final state (confirmed, rejected, payment_failed) or cancelled;
//                                 re-delivery answers the same order          db_unavailable
//   get_atom      -> OrderRecord  (placing: once its first write is stored)  not_found
//   cancel_atom   -> OrderRecord  cancelled (releases stock, refunds)          not_found, conflict
//   ship_atom     -> OrderRecord  shipped (stock leaves on_hand)               not_found, conflict, busy
//   recover_atom  -> OrderRecord  an unfinished order finished or compensated  not_found
#pragma once

#include <string>
#include <vector>

#include <caf/actor.hpp>

#include "actors/card.hpp"
#include "actors/context.hpp"
#include "actors/order_status.hpp"
#include "runtime/records.hpp"

namespace emporium {

struct order_place {
  std::string customer_id;
  std::vector<OrderLine> lines;  // sku and quantity; prices come from the items
  Card card;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, order_place& x) {
  return f(caf::meta::type_name("order_place"), x.customer_id, x.lines, x.card);
}

// `fresh`: activated for a placement of a new id, so there is nothing to load first. The order
// finds its registry in the context.
caf::actor spawn_order(caf::local_actor* spawner, ContextPtr ctx, std::string id, bool fresh = false);

}  // namespace emporium

