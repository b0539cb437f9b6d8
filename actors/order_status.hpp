// The order's states and the one table of legal moves between them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace emporium {

// `cancelling` and `shipping` are stored only: a cancel or a ship of a confirmed order records
// one before it touches the payment or the items, so that an interrupted one is finished the
// same way (by the recovery sweep, or the next cancel or ship) and the other is refused meanwhile.
// Clients see them as `confirmed` (API.md lists the statuses; see shown_status).
enum class OrderStatus {
  pending, reserved, confirmed, shipped, rejected, payment_failed, cancelled, cancelling, shipping
};

std::string_view to_string(OrderStatus status);
// The status as clients see it: the stored one, save that `cancelling` and `shipping` show as
// `confirmed`.
// (Inline: the edge's codec uses it without the order actor.)
inline std::string_view shown_status(std::string_view stored) {
  if (stored == "cancelling" || stored == "shipping") return "confirmed";
  return stored;
}
std::optional<OrderStatus> order_status_from(std::string_view text);
bool is_terminal(OrderStatus status);  // no step of the saga is left to run
// True when the move is in the table (a move to the same state is not a move).
bool legal_transition(OrderStatus from, OrderStatus to);

}  // namespace emporium
