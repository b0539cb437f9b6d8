// GCRA rate limiter per principal (token sub, else client address), with the IETF RateLimit
// headers. The table is bounded: past `entries_max`, entries that are back at full burst (and so
// carry no information) are evicted first.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace emporium {

struct RateDecision {
  bool allowed = true;
  std::int64_t remaining = 0;
  std::int64_t retry_after_s = 0;  // when refused
  std::int64_t reset_s = 0;        // until the full burst is available again
};

class RateLimiter {
 public:
  RateLimiter(double rate_per_s, double burst, std::size_t entries_max = 100'000);
  RateDecision check(const std::string& principal, std::int64_t now_us);
  std::size_t size() const;
  std::string policy_header() const;  // RateLimit-Policy value

 private:
  void evict(std::int64_t now_us);
  double interval_us_;
  double burst_;
  std::size_t entries_max_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::int64_t> tat_us_;  // theoretical arrival time
};

}  // namespace emporium
