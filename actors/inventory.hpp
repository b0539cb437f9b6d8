// Inventory item actor, one per SKU: owns on_hand and the reservations of orders, and serializes
// every change to its SKU, so no unit is sold twice. Invariant: 0 <= reserved <= on_hand.
//
// Protocol (reply, or error):
//   get_atom            -> ItemRecord            not_found
//   item_put            -> item_put_result       conflict (on_hand below reserved)
//   item_adjust         -> ItemRecord            not_found, conflict
//   item_reserve        -> ItemRecord            unknown_sku, insufficient_stock   (idempotent per order)
//   item_commit         -> ItemRecord            not_found (no reservation: it expired)
//   item_release        -> ItemRecord            (no reservation: unchanged)
//   item_ship           -> ItemRecord            (no reservation: unchanged)
//   (any write)                                  db_unavailable
// A held reservation expires after reservation_ttl_ms unless committed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

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

caf::actor spawn_inventory_item(caf::local_actor* spawner, ContextPtr ctx, std::string sku,
                                caf::actor registry);

}  // namespace emporium

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::ItemRecord)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::item_put)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::item_put_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::item_adjust)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::item_reserve)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::item_commit)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::item_release)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::item_ship)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::item_state_view)
