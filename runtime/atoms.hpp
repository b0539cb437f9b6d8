// Message tags shared across the runtime and the domain actors (CAF 0.17 atoms: at most 10 chars).
#pragma once

#include <caf/atom.hpp>

namespace emporium {

using route_atom = caf::atom_constant<caf::atom("route")>;
using get_atom = caf::atom_constant<caf::atom("get")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using ship_atom = caf::atom_constant<caf::atom("ship")>;
using refund_atom = caf::atom_constant<caf::atom("refund")>;
using abandon_atom = caf::atom_constant<caf::atom("abandon")>;
using recover_atom = caf::atom_constant<caf::atom("recover")>;
using idle_atom = caf::atom_constant<caf::atom("idle")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using close_atom = caf::atom_constant<caf::atom("close")>;
using ping_atom = caf::atom_constant<caf::atom("ping")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;
using owned_atom = caf::atom_constant<caf::atom("owned")>;
using timeout_atom = caf::atom_constant<caf::atom("timeout")>;
using resume_atom = caf::atom_constant<caf::atom("resume")>;  // see runtime/registry.hpp

// Entity types, as routed.
constexpr caf::atom_value order_type = caf::atom("order");
constexpr caf::atom_value inventory_type = caf::atom("inventory");
constexpr caf::atom_value payment_type = caf::atom("payment");

}  // namespace emporium
