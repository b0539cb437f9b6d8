// Inventory item actor, one per SKU: owns on_hand and the reservations of orders, and serializes
// every change to its SKU, so no unit is sold twice. Invariant: 0 <= reserved <= on_hand.
//
// Protocol (reply, or error):
//   get_atom            -> ItemRecord            not_found
//   item_put            -> item_put_result       conflict (on_hand below reserved)
//   item_adjust         -> ItemRecord            not_found, conflict
//   item_reserve        -> ItemRecord            unknown_sku, insufficient_stock   (idempotent per order)
//                          (with `early`: answered once decided, before its write commits)
//   item_sync           -> ItemRecord            unknown_sku, insufficient_stock
//                          (once the reservation of the order is stored; made again if lost)
//   item_commit         -> ItemRecord            not_found (no reservation, and none made again)
//                          (answered at once; written with the item's next write, or alone within
//                          reservation_commit_delay_ms, or before the item stops; 0: answered once
//                          written. One made again is answered once written.)
//   item_release        -> ItemRecord            (no reservation, or held_only and committed: unchanged)
//   item_ship           -> ItemRecord            (no reservation: unchanged)
//   (any write)                                  db_unavailable
// A held reservation asks its order reservation_check_ms after it was made, and again when it
// expires (reservation_ttl_ms), and then every reservation_check_ms for as long as it is held:
// - an order confirmed gets it committed: an order confirms while its reservations are committed
//   (see order.cpp), and a commit is written a moment later, so a crash or a failed write in
//   between leaves a confirmed order whose reservation is still held, and stored;
// - an order not stored, or finished otherwise, gets it released at once: an order reserves before
//   its record is written, so a crash in between leaves a reservation no order knows;
// - an order still placing (pending, reserved) keeps it: its saga, or the recovery, settles it
//   (released at the expiry, it could be confirmed without its units);
// - an order being shipped or cancelled keeps it for its ship or cancel, which takes it;
// - an order that cannot be asked (its node unreachable) keeps it: it may be confirmed.
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
  // Answered as soon as the units are set aside, with the item's price, while the write goes on:
  // the caller asks item_sync before anything it does must rest on the stored reservation.
  bool early = false;
};
// Answered once the reservation of the order (held or committed) is stored: every write this
// activation started before it came has committed. An activation that does not know it (the one
// that answered the reserve stopped before its write committed: its node went away, or the write
// failed) makes it again, as a reserve would: the units are set aside once, whichever way.
struct item_sync {
  std::string order_id;
  std::int64_t quantity = 0;
};
struct item_commit {
  std::string order_id;
  // Above 0: a reservation gone (released, or lost with an activation) is made again with this
  // many units, and committed, if they are there.
  std::int64_t quantity = 0;
};
struct item_release {
  std::string order_id;
  // Only a held reservation: an activation of an order that stored nothing yet, undoing what it
  // reserved, leaves alone a reservation another activation of the order already committed.
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
  return f(caf::meta::type_name("item_reserve"), x.order_id, x.quantity, x.early);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_sync& x) {
  return f(caf::meta::type_name("item_sync"), x.order_id, x.quantity);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_commit& x) {
  return f(caf::meta::type_name("item_commit"), x.order_id, x.quantity);
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
