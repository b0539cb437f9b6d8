#include "http/rate_limit.hpp"

#include <algorithm>
#include <cmath>

namespace emporium {

RateLimiter::RateLimiter(double rate_per_s, double burst, std::size_t entries_max)
    : interval_us_(1e6 / rate_per_s), burst_(burst), entries_max_(entries_max) {}

RateDecision RateLimiter::check(const std::string& principal, std::int64_t now_us) {
  std::lock_guard lock(mutex_);
  if (tat_us_.size() >= entries_max_ && !tat_us_.count(principal)) evict(now_us);
  auto window_us = static_cast<std::int64_t>(interval_us_ * burst_);
  auto& tat = tat_us_[principal];
  auto start = std::max(tat, now_us);
  auto next = start + static_cast<std::int64_t>(interval_us_);
  auto allow_at = next - window_us;
  RateDecision d;
  if (now_us < allow_at) {
    d.allowed = false;
    d.retry_after_s = std::max<std::int64_t>(1, (allow_at - now_us + 999'999) / 1'000'000);
    d.reset_s = (start - now_us + 999'999) / 1'000'000;
    return d;
  }
  tat = next;
  d.remaining = static_cast<std::int64_t>(std::floor((now_us - allow_at) / interval_us_));
  d.reset_s = (next - now_us + 999'999) / 1'000'000;
  return d;
}

void RateLimiter::evict(std::int64_t now_us) {
  for (auto it = tat_us_.begin(); it != tat_us_.end();)
    it = it->second <= now_us ? tat_us_.erase(it) : std::next(it);
  // Everyone is still busy: drop the one furthest from refusal rather than grow without bound.
  if (tat_us_.size() >= entries_max_) {
    auto oldest = std::min_element(tat_us_.begin(), tat_us_.end(),
                                   [](auto& a, auto& b) { return a.second < b.second; });
    tat_us_.erase(oldest);
  }
}

std::size_t RateLimiter::size() const {
  std::lock_guard lock(mutex_);
  return tat_us_.size();
}

std::string RateLimiter::policy_header() const {
  auto window_s = std::max<std::int64_t>(1, std::llround(interval_us_ * burst_ / 1e6));
  return "\"default\";q=" + std::to_string(static_cast<std::int64_t>(burst_)) + ";w=" +
         std::to_string(window_s);
}

}  // namespace emporium
