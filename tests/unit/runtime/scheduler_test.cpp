// The node's scheduler: its clock passes on only the exits of actors that set a timeout with it,
// and CAF's timeouts still work through it.
#include "runtime/scheduler.hpp"

#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <chrono>
#include <memory>
#include <thread>

#include "runtime/atoms.hpp"

namespace emporium {
namespace {

using namespace std::chrono_literals;

// Takes the request and never answers it.
caf::behavior silent(caf::event_based_actor*) {
  return {[](get_atom) -> caf::result<int> { return caf::delegated<int>{}; }};
}

// Asks `target` with CAF's own timeout, tells `report` how it ended, and stops on stop_atom.
caf::behavior asker(caf::event_based_actor* self, caf::actor target, caf::timespan timeout,
                    caf::actor report) {
  self->request(target, timeout, get_atom::value)
      .then([self, report](int answer) { self->send(report, answer); },
            [self, report](caf::error& err) { self->send(report, err); });
  return {[self](stop_atom) { self->quit(); }};
}

// Tells `report` when its receive timeout fires (CAF's ordinary timeout), and stops on stop_atom.
caf::behavior waiting(caf::event_based_actor* self, caf::actor report) {
  return {[self](stop_atom) { self->quit(); },
          caf::after(std::chrono::milliseconds(30)) >>
              [self, report] { self->send(report, timeout_atom::value); }};
}

caf::behavior idle(caf::event_based_actor* self) {
  return {[self](stop_atom) { self->quit(); }};
}

class NodeSchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg_.set("scheduler.max-threads", size_t{2});
    use_node_scheduler(cfg_);
    system_ = std::make_unique<caf::actor_system>(cfg_);
  }

  // Waits (up to 5 s) for `done`.
  template <class F>
  static bool eventually(F done) {
    for (int i = 0; i < 500; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return done();
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> system_;
};

TEST_F(NodeSchedulerTest, TheExitsOfActorsWithoutTimeoutsAreKeptFromTheClock) {
  auto before = clock_exits(*system_);
  for (int i = 0; i < 100; ++i) caf::anon_send(system_->spawn(idle), stop_atom::value);
  ASSERT_TRUE(
      eventually([&] { return clock_exits(*system_).kept_quiet >= before.kept_quiet + 100; }));
  EXPECT_EQ(clock_exits(*system_).passed_on, before.passed_on);
}

TEST_F(NodeSchedulerTest, ARequestTimeoutStillComesAtItsTime) {
  caf::scoped_actor self{*system_};
  auto target = system_->spawn(silent);
  auto start = std::chrono::steady_clock::now();
  auto a = system_->spawn(asker, target, caf::timespan{50ms}, caf::actor{self});
  bool timed_out = false;
  self->receive([&](caf::error& err) { timed_out = err == caf::sec::request_timeout; },
                [&](int) { ADD_FAILURE() << "the silent actor answered"; },
                caf::after(10s) >> [] { ADD_FAILURE() << "no timeout within 10 s"; });
  EXPECT_TRUE(timed_out);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
  self->send(a, stop_atom::value);
  self->send_exit(target, caf::exit_reason::user_shutdown);
}

// A receive timeout (`after`) is set with the clock too: it fires, and its actor's exit is passed
// on.
TEST_F(NodeSchedulerTest, AReceiveTimeoutFiresAndItsActorsExitIsPassedOn) {
  caf::scoped_actor self{*system_};
  auto before = clock_exits(*system_);
  auto w = system_->spawn(waiting, caf::actor{self});
  bool fired = false;
  self->receive([&](timeout_atom) { fired = true; },
                caf::after(10s) >> [] { ADD_FAILURE() << "no receive timeout"; });
  EXPECT_TRUE(fired);
  self->send(w, stop_atom::value);
  EXPECT_TRUE(eventually([&] { return clock_exits(*system_).passed_on == before.passed_on + 1; }));
}

// The exit of an actor with a timeout still open reaches CAF's clock, which lets go of the actor
// then, not when the timeout (a minute away) would have fired.
TEST_F(NodeSchedulerTest, AnActorThatExitsWithATimeoutOpenIsLetGoAtOnce) {
  caf::scoped_actor self{*system_};
  auto target = system_->spawn(silent);
  auto before = clock_exits(*system_);
  auto a = system_->spawn(asker, target, caf::timespan{60s}, caf::actor{self});
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(a);
  self->send(a, stop_atom::value);  // after the request: an actor runs its start before messages
  a = nullptr;
  EXPECT_TRUE(eventually([&] { return weak.lock() == nullptr; }))
      << "the clock still holds the asker";
  EXPECT_EQ(clock_exits(*system_).passed_on, before.passed_on + 1);
  self->send_exit(target, caf::exit_reason::user_shutdown);
}

TEST(NodeSchedulerAbsent, AnotherSchedulerCountsNothing) {
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  auto exits = clock_exits(system);
  EXPECT_EQ(exits.passed_on, 0u);
  EXPECT_EQ(exits.kept_quiet, 0u);
}

}  // namespace
}  // namespace emporium
