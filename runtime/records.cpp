// Names of the reservation states as stored in the inventory database.
#include "runtime/records.hpp"

#include <string_view>

namespace emporium {

const char* to_string(ReservationState state) {
  switch (state) {
    case ReservationState::held: return "held";
    case ReservationState::committed: return "committed";
    case ReservationState::released: return "released";
    case ReservationState::shipped: return "shipped";
  }
  return "held";
}

std::optional<ReservationState> reservation_state_from(const std::string& text) {
  for (auto s : {ReservationState::held, ReservationState::committed, ReservationState::released,
                 ReservationState::shipped})
    if (text == to_string(s)) return s;
  return std::nullopt;
}

std::string payment_id_for(const std::string& order_id) {
  std::string_view tail = order_id;
  if (tail.substr(0, 4) == "ord_") tail.remove_prefix(4);
  return "pay_" + std::string(tail);
}

}  // namespace emporium
