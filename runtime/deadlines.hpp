// Request timeouts for the saga's many requests, kept coarsely on one thread of our own.
//
// A request with a timeout makes CAF 0.17's clock thread wake up to set the timeout, and again to
// deliver it (answered or not; CAF never cancels it before it fires or its actor exits). An order
// makes four such requests; at 4,000 orders/s that thread took a tenth of a core. Here setting a
// timeout takes a lock, and wakes the thread only when nothing was queued: the thread wakes every
// `tick` while timeouts are queued (disarmed ones stay queued, inert, until their time) and sleeps
// otherwise. It delivers the ones that came due as CAF would (sec::request_timeout to the
// request's response id), late by at most one tick. A timeout is dropped when its answer comes
// (disarm), so it holds no reference to its actor for longer than the request is open; and the
// reference it holds is weak, so an actor that stops first is neither kept nor reached.
//
// Use it through request_within (runtime/timed_request.hpp), which arms and disarms. An actor's own
// timer that is often set and seldom left to fire can be kept here too (arm_message).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

namespace caf {
class abstract_actor;
class message;
}

namespace emporium {

class Deadlines {
 public:
  struct Token {
    std::uint32_t slot = 0;
    std::uint32_t generation = 0;  // 0: nothing armed
  };

  explicit Deadlines(std::chrono::milliseconds tick = std::chrono::milliseconds(10));
  ~Deadlines();  // stops, dropping what is armed
  Deadlines(const Deadlines&) = delete;
  Deadlines& operator=(const Deadlines&) = delete;

  // In `after_ms`, `self` gets sec::request_timeout as the answer to request `response_id`
  // (caf::message_id::integer_value() of the request's response id), unless disarmed first.
  Token arm(caf::abstract_actor* self, std::uint64_t response_id, std::int64_t after_ms);
  // In `after_ms`, `self` gets `message` (from no sender), unless disarmed first.
  Token arm_message(caf::abstract_actor* self, caf::message message, std::int64_t after_ms);
  // Drops the timeout; a token already delivered or disarmed is ignored.
  void disarm(Token token);
  // Stops the thread; nothing is delivered afterwards. Called before the actors stop.
  void stop();

  std::size_t armed() const;  // timeouts set and not yet delivered or disarmed

 private:
  Token arm_message_or_timeout(caf::abstract_actor* self, std::uint64_t response_id,
                               caf::message message, std::int64_t after_ms);
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with its thread, which may outlive this object (stop)
};

}  // namespace emporium
