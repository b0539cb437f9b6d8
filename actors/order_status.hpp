// The order's states and the one table of legal moves between them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace emporium {

enum class OrderStatus { pending, reserved, confirmed, shipped, rejected, payment_failed, cancelled };

std::string_view to_string(OrderStatus status);
std::optional<OrderStatus> order_status_from(std::string_view text);
bool is_terminal(OrderStatus status);  // no step of the saga is left to run
// True when the move is in the table (a move to the same state is not a move).
bool legal_transition(OrderStatus from, OrderStatus to);

}  // namespace emporium
