// GCRA rate limiter per principal (token sub, else client address), with the IETF RateLimit
// headers. Memory is bounded: at most `entries_max` principals are tracked, and when a new one
// comes the least recently seen is dropped (it is the likeliest to be back at full burst, and
// forgetting it can only make the limiter more lenient, never refuse someone wrongly).
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace emporium {

struct RateDecision {
  bool allowed = true;
  std::int64_t remaining = 0;      // requests left in the burst after this one
  std::int64_t retry_after_s = 0;  // when refused: whole seconds until one is allowed
  std::int64_t reset_s = 0;        // until the full burst is available again
};

class RateLimiter {
 public:
  RateLimiter(std::string name, double rate_per_s, double burst, std::size_t entries_max);
  RateDecision check(const std::string& principal, std::int64_t now_us);
  // Undoes the last request `check` allowed `principal` (one another budget refused after).
  void give_back(const std::string& principal);
  std::size_t size() const;
  const std::string& policy_header() const { return policy_; }  // RateLimit-Policy value
  std::string rate_header(const RateDecision& d) const;          // RateLimit value

 private:
  struct Entry {
    std::string principal;
    std::int64_t tat_us;  // theoretical arrival time
  };
  std::string name_;
  std::string policy_;
  double interval_us_;
  double burst_;
  std::size_t entries_max_;
  mutable std::mutex mutex_;
  std::list<Entry> recent_;  // most recently seen first
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index_;  // views into `recent_`
};

}  // namespace emporium
