// Domain failures as values: one error category for the whole project, mapped to HTTP at the edge
// (http/problem.cpp) in one place.
#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>

namespace emporium {

enum class errc : std::uint8_t {
  none = 0,
  not_found,            // entity does not exist
  conflict,             // illegal state transition or limit (e.g. on_hand below reserved)
  insufficient_stock,
  unknown_sku,
  version_conflict,     // optimistic check failed: another writer owns the row now
  db_unavailable,       // database unreachable; retry later
  invalid_argument,
  busy,                 // entity is in the middle of something that must finish first
  timeout,
  unavailable,          // the owner node went away while it had the call; retry later
  not_delivered,        // the call never reached its entity (owner moving, unreachable); safe to resend
  db_failed,            // the database answered, but refused or failed the statement (locked, full, a
                        // constraint): not the caller's fault; retry later
};

constexpr caf::atom_value error_category = caf::atom("emporium");

caf::error make_error(errc code, std::string detail = {});
// The project code of `err`, or errc::none when it is not ours (CAF system errors).
errc code_of(const caf::error& err);
const char* to_string(errc code);

}  // namespace emporium
