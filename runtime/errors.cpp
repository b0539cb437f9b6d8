#include "runtime/errors.hpp"

#include <caf/message.hpp>
#include <caf/make_message.hpp>

namespace emporium {

caf::error make_error(errc code, std::string detail) {
  if (detail.empty()) return caf::error{static_cast<std::uint8_t>(code), error_category};
  return caf::error{static_cast<std::uint8_t>(code), error_category,
                    caf::make_message(std::move(detail))};
}

errc code_of(const caf::error& err) {
  if (!err || err.category() != error_category) return errc::none;
  return static_cast<errc>(err.code());
}

const char* to_string(errc code) {
  switch (code) {
    case errc::none: return "none";
    case errc::not_found: return "not_found";
    case errc::conflict: return "conflict";
    case errc::insufficient_stock: return "insufficient_stock";
    case errc::unknown_sku: return "unknown_sku";
    case errc::version_conflict: return "version_conflict";
    case errc::db_unavailable: return "db_unavailable";
    case errc::invalid_argument: return "invalid_argument";
    case errc::busy: return "busy";
    case errc::timeout: return "timeout";
    case errc::unavailable: return "unavailable";
    case errc::not_delivered: return "not_delivered";
    case errc::db_failed: return "db_failed";
  }
  return "unknown";
}

}  // namespace emporium
