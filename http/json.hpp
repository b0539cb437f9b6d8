// Strict JSON for request bodies and tokens: one document, valid UTF-8, no duplicate keys (Boost.JSON
// 1.81 would silently keep the last), no comments, nesting bounded.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/value.hpp>

namespace emporium {

constexpr std::size_t json_depth_max = 32;

// Whether `text` holds a control character (below 0x20, or DEL): text that names something in
// storage (an item's name, a token's subject) must not.
inline bool has_control_characters(std::string_view text) {
  for (char c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  return false;
}

// The parsed value, or nullopt with `error` set to a short reason that never quotes the input.
std::optional<boost::json::value> parse_strict(std::string_view text, std::string* error = nullptr,
                                               std::size_t depth_max = json_depth_max);

}  // namespace emporium
