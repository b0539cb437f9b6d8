// The activation registry on its own, with entities that only count what they are asked: idle
// probes go out a limited number per sweep, and passivated entities are kept until they are down.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include "runtime/atoms.hpp"
#include "runtime/registry.hpp"

namespace emporium {
namespace {

using namespace std::chrono_literals;

constexpr caf::atom_value probe_type = caf::atom("probe");

// Answers (get_atom) with 1; counts idle probes and never says it is idle, so it stays active and
// is not probed again before another idle period.
caf::behavior probed(caf::event_based_actor* self, std::shared_ptr<std::atomic<int>> probes) {
  return {
      [](get_atom) { return 1; },
      [probes](idle_atom) { probes->fetch_add(1); },
      [self](stop_atom) { self->quit(); },
  };
}

class Registry : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg_.set("scheduler.max-threads", size_t{2});
    system_ = std::make_unique<caf::actor_system>(cfg_);
  }
  void TearDown() override {
    caf::anon_send_exit(registry_, caf::exit_reason::user_shutdown);
    system_.reset();
  }

  void start(std::int64_t idle_after_ms, int probes_per_sweep) {
    registry_ = spawn_registry(
        *system_,
        [probes = probes_](caf::local_actor* s, const std::string&, caf::actor, const caf::message&) {
          return s->spawn(probed, probes);
        },
        [] { return std::int64_t{0}; }, idle_after_ms, probes_per_sweep);
  }

  // Activates `n` entities at once (all calls sent, then all answers read), so that they go quiet
  // within a millisecond or so of each other, not spread over a sweep on a loaded machine.
  void activate(int n) {
    caf::scoped_actor self{*system_};
    for (int i = 0; i < n; ++i)
      self->send(registry_, route_atom::value, probe_type, "e" + std::to_string(i),
                 caf::make_message(get_atom::value));
    for (int i = 0; i < n; ++i)
      self->receive([](int) {}, [](caf::error& err) { FAIL() << to_string(err); },
                    caf::after(5s) >> [] { FAIL() << "an entity did not answer"; });
  }

  // Polls until at least `n` probes went out (or 5 s passed).
  int wait_for_probes(int n) {
    for (int i = 0; i < 1000 && probes_->load() < n; ++i) std::this_thread::sleep_for(5ms);
    return probes_->load();
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> system_;
  caf::actor registry_;
  std::shared_ptr<std::atomic<int>> probes_ = std::make_shared<std::atomic<int>>(0);
};

// Ten entities go quiet together; with at most 4 probes per sweep (a sweep every 100 ms), the
// first sweep asks 4 of them and the next ones the rest, a sweep apart.
TEST_F(Registry, IdleProbesPerSweepStopAtTheLimit) {
  start(1600, 4);
  activate(10);
  ASSERT_GE(wait_for_probes(1), 1);
  std::this_thread::sleep_for(40ms);  // well within the 100 ms to the next sweep
  EXPECT_LE(probes_->load(), 4);  // 4, or fewer if the ten went quiet on both sides of a sweep
  auto first = std::chrono::steady_clock::now() - 40ms;
  EXPECT_EQ(wait_for_probes(10), 10);  // two more sweeps (three if the ten straddled one)
  // Not fewer than the limit either: one probe a sweep would take nine more sweeps.
  EXPECT_LT(std::chrono::steady_clock::now() - first, 600ms);
  std::this_thread::sleep_for(300ms);  // asked once per idle period, not at every sweep
  EXPECT_EQ(probes_->load(), 10);
}

// With a limit above the number of idle entities, one sweep asks them all (sweeps 100 ms apart).
TEST_F(Registry, OneSweepAsksAllIdleEntitiesBelowTheLimit) {
  start(1600, 16);
  activate(10);
  ASSERT_GE(wait_for_probes(1), 1);
  // One sweep, or two if the ten went quiet on both sides of one; a limit of 4 would take three.
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(probes_->load(), 10);
}

}  // namespace
}  // namespace emporium
