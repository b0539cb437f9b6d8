// Time and ids come through this small interface so tests can control them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace emporium {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t now_ms() const = 0;  // milliseconds since the Unix epoch
};

class SystemClock final : public Clock {
 public:
  std::int64_t now_ms() const override;
};

// Milliseconds of the steady clock (for intervals and expiries on this node, never shown).
std::int64_t steady_ms();

// A unique id with a prefix, e.g. "ord_" + 26 characters of time-ordered randomness, so that ids
// sort by creation time (the order list pages by id).
std::string new_id(std::string_view prefix, std::int64_t now_ms);

// RFC 3339 UTC with milliseconds, e.g. 2026-11-26T07:01:02.345Z.
std::string rfc3339(std::int64_t ms);

}  // namespace emporium
