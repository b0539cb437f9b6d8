// Inventory item actor, one per SKU: owns on_hand and the reservations of orders, and serializes
// every change to its SKU, so no unit is sold twice. Invariant: 0 <= reserved <= on_hand.
//
// Protocol (reply, or error):
//   get_atom            -> ItemRecord            not_found
//   item_put            -> item_put_result       conflict (on_hand below reserved)
//   item_adjust         -> ItemRecord            not_found, conflict
//   item_reserve        -> ItemRecord            unknown_sku, insufficient_stock   (idempotent per order)
//   item_commit         -> ItemRecord            not_found (no reservation: it expired)
//   item_release        -> ItemRecord            (no reservation, or held_only and committed: unchanged)
//   item_ship           -> ItemRecord            (no reservation: unchanged)
//   (any write)                                  db_unavailable
// A held reservation expires after reservation_ttl_ms unless committed. One still held
// reservation_check_ms after it was made asks its order, and is released at once if the order is
// not stored, or is finished (a finished order holds no reservation of its own): an order reserves
// while its pending record is written, so a crash in between leaves a reservation no order knows.
// A reserve delivered again for a held reservation starts it over (its order is still placing).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/meta/type_name.hpp>

#include "actors/context.hpp"
#include "runtime/records.hpp"

namespace emporium {

struct item_put {
  std::string name;
  std::int64_t price_cents = 0;
  std::int64_t on_hand = 0;
  std::string currency = "USD";
};
struct item_put_result {
  ItemRecord item;
  bool created = false;
};
struct item_adjust {
  std::int64_t delta = 0;
};
struct item_reserve {
  std::string order_id;
  std::int64_t quantity = 0;
};
struct item_commit {
  std::string order_id;
};
struct item_release {
  std::string order_id;
  // Only a held reservation: an order undoing what it reserved beside a pending record that was
  // not written leaves alone a reservation another activation of the order already committed.
  bool held_only = false;
};
struct item_ship {
  std::string order_id;
};

// Live state for operators.
struct item_state_view {
  ItemRecord item;
  std::vector<ReservationRecord> reservations;
};
using inspect_atom = caf::atom_constant<caf::atom("inspect")>;

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_put& x) {
  return f(caf::meta::type_name("item_put"), x.name, x.price_cents, x.on_hand, x.currency);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_put_result& x) {
  return f(caf::meta::type_name("item_put_result"), x.item, x.created);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_adjust& x) {
  return f(caf::meta::type_name("item_adjust"), x.delta);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_reserve& x) {
  return f(caf::meta::type_name("item_reserve"), x.order_id, x.quantity);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_commit& x) {
  return f(caf::meta::type_name("item_commit"), x.order_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_release& x) {
  return f(caf::meta::type_name("item_release"), x.order_id, x.held_only);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_ship& x) {
  return f(caf::meta::type_name("item_ship"), x.order_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_state_view& x) {
  return f(caf::meta::type_name("item_state_view"), x.item, x.reservations);
}

caf::actor spawn_inventory_item(caf::local_actor* spawner, ContextPtr ctx, std::string sku);

}  // namespace emporium
