#include "http/rate_limit.hpp"

#include <algorithm>
#include <cmath>

namespace emporium {

RateLimiter::RateLimiter(std::string name, double rate_per_s, double burst, std::size_t entries_max)
    : name_(std::move(name)),
      interval_us_(1e6 / rate_per_s),
      burst_(burst),
      entries_max_(std::max<std::size_t>(1, entries_max)) {
  auto window_s = std::max<std::int64_t>(1, std::llround(interval_us_ * burst_ / 1e6));
  policy_ = "\"" + name_ + "\";q=" + std::to_string(static_cast<std::int64_t>(burst_)) +
            ";w=" + std::to_string(window_s);
}

RateDecision RateLimiter::check(const std::string& principal, std::int64_t now_us) {
  std::lock_guard lock(mutex_);
  auto found = index_.find(principal);
  if (found != index_.end()) {
    recent_.splice(recent_.begin(), recent_, found->second);
  } else {
    if (recent_.size() >= entries_max_) {
      index_.erase(recent_.back().principal);
      recent_.pop_back();
    }
    recent_.push_front(Entry{principal, 0});
    index_.emplace(recent_.front().principal, recent_.begin());
  }
  auto& tat = recent_.front().tat_us;
  auto window_us = static_cast<std::int64_t>(interval_us_ * burst_);
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

void RateLimiter::give_back(const std::string& principal) {
  std::lock_guard lock(mutex_);
  auto found = index_.find(principal);
  // A time before now counts as now in check, so this undoes the request it allowed last.
  if (found != index_.end()) found->second->tat_us -= static_cast<std::int64_t>(interval_us_);
}

std::size_t RateLimiter::size() const {
  std::lock_guard lock(mutex_);
  return recent_.size();
}

std::string RateLimiter::rate_header(const RateDecision& d) const {
  return "\"" + name_ + "\";r=" + std::to_string(d.remaining) + ";t=" + std::to_string(d.reset_s);
}

}  // namespace emporium
