#include "runtime/scheduler.hpp"

#include <pthread.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/detail/thread_safe_actor_clock.hpp>
#include <caf/policy/work_stealing.hpp>
#include <caf/scheduler/coordinator.hpp>

namespace emporium {
namespace {

// CAF's clock, told only of the exits of actors that set a timeout with it. An actor sets its own
// timeouts, and its exit is its last act, so no timeout of an actor comes after its exit.
class QuietClock : public caf::detail::thread_safe_actor_clock {
 public:
  using super = caf::detail::thread_safe_actor_clock;

  void set_ordinary_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                            uint64_t id) override {
    note(self);
    super::set_ordinary_timeout(t, self, type, id);
  }

  void set_request_timeout(time_point t, caf::abstract_actor* self, caf::message_id id) override {
    note(self);
    super::set_request_timeout(t, self, id);
  }

  void set_multi_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                         uint64_t id) override {
    note(self);
    super::set_multi_timeout(t, self, type, id);
  }

  void cancel_timeouts(caf::abstract_actor* self) override {
    bool had_timeouts;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      had_timeouts = timed_.erase(self->id()) > 0;
    }
    if (!had_timeouts) {
      kept_quiet_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    passed_on_.fetch_add(1, std::memory_order_relaxed);
    super::cancel_timeouts(self);
  }

  ClockExits exits() const {
    return {passed_on_.load(std::memory_order_relaxed),
            kept_quiet_.load(std::memory_order_relaxed)};
  }

 private:
  void note(caf::abstract_actor* self) {
    std::lock_guard<std::mutex> lock(mutex_);
    timed_.insert(self->id());
  }

  std::mutex mutex_;
  std::unordered_set<caf::actor_id> timed_;  // actors that set a timeout and have not exited
  std::atomic<std::uint64_t> passed_on_{0};
  std::atomic<std::uint64_t> kept_quiet_{0};
};

// The work-stealing coordinator with the quiet clock. The base class keeps a clock of its own,
// with a thread that now never wakes: its members are private, and clock() is the one way in.
class NodeScheduler : public caf::scheduler::coordinator<caf::policy::work_stealing> {
 public:
  using super = caf::scheduler::coordinator<caf::policy::work_stealing>;

  explicit NodeScheduler(caf::actor_system& system) : super(system) {}

  static caf::actor_system::module* make(caf::actor_system& system, caf::detail::type_list<>) {
    return new NodeScheduler(system);
  }

  caf::detail::thread_safe_actor_clock& clock() noexcept override { return clock_; }

  ClockExits exits() const { return clock_.exits(); }

 protected:
  void start() override {
    // Before the workers: a clock whose thread has not started blocks its 65th caller.
    timer_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "emp.clock");
      system().thread_started();
      clock_.run_dispatch_loop();
      system().thread_terminates();
    });
    super::start();
  }

  void stop() override {
    super::stop();  // the actors' cleanup may still reach the clock
    clock_.cancel_dispatch_loop();
    timer_.join();
  }

 private:
  QuietClock clock_;
  std::thread timer_;
};

}  // namespace

void use_node_scheduler(caf::actor_system_config& config) {
  config.load<NodeScheduler>();
}

ClockExits clock_exits(caf::actor_system& system) {
  auto* scheduler = dynamic_cast<NodeScheduler*>(&system.scheduler());
  return scheduler ? scheduler->exits() : ClockExits{};
}

}  // namespace emporium
