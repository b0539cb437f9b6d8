// The node's actor scheduler: CAF 0.17's work-stealing coordinator with a clock that keeps quiet
// when an actor that never set a timeout exits.
//
// Every actor's exit tells CAF's clock to drop that actor's timeouts, and that message wakes the
// clock's thread. An order and its payment session exit with every placement, so at 6,000 orders/s
// the clock's thread woke 11,000 times a second (1.7 per order; perf probes counted 2.0 exits per
// order) with nothing to do: their requests have no CAF timeout (runtime/deadlines.hpp). This
// clock remembers which actors set a timeout with it, and passes on only their exits.
#pragma once

#include <cstdint>

namespace caf {
class actor_system;
class actor_system_config;
}  // namespace caf

namespace emporium {

// Makes the actor system built from `config` use the node's scheduler (call before building it).
void use_node_scheduler(caf::actor_system_config& config);

// The exits the node's clock passed on to CAF's clock thread, and those it kept quiet about;
// {0, 0} when `system` runs another scheduler.
struct ClockExits {
  std::uint64_t passed_on = 0;
  std::uint64_t kept_quiet = 0;
};
ClockExits clock_exits(caf::actor_system& system);

}  // namespace emporium
