// Names of the reservation states as stored in the inventory database.
#include "runtime/records.hpp"

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

}  // namespace emporium
