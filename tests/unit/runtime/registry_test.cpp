// The activation registry on its own, with entities that only count what they are asked: idle
// probes go out a limited number per sweep, and passivated entities are kept until they are down.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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

// A closed registry (the node is stopping) refuses every call as if it were gone, for an active
// entity and a new one alike, and activates nothing more.
TEST_F(Registry, AClosedRegistryRefusesEveryCall) {
  start(-1, 16);
  activate(1);  // "e0" is active
  caf::scoped_actor self{*system_};
  self->send(registry_, close_atom::value);
  for (const char* id : {"e0", "e1"}) {
    caf::error got;
    self->request(registry_, 5s, route_atom::value, probe_type, std::string(id),
                  caf::make_message(get_atom::value))
        .receive([](int) { ADD_FAILURE() << "a closed registry passed a call on"; },
                 [&](caf::error& err) { got = err; });
    EXPECT_EQ(got, caf::sec::request_receiver_down) << id;
  }
  RegistryStats st;
  self->request(registry_, 5s, stats_atom::value)
      .receive([&](RegistryStats& s) { st = s; }, [](caf::error& e) { ADD_FAILURE() << "stats or passivate: " << caf::to_string(e); });
  EXPECT_EQ(st.activations, 1);
}

// Answers (get_atom) and reports itself finished to its registry; counts idle probes.
caf::behavior finisher(caf::event_based_actor* self, caf::actor registry, std::shared_ptr<std::atomic<int>> probes) {
  return {
      [=](get_atom) {
        self->send(registry, terminal_atom::value);
        return 1;
      },
      [probes](idle_atom) { probes->fetch_add(1); },
      [self](stop_atom) { self->quit(); },
  };
}

// A finished entity is asked whether it is idle terminal_after_ms after it said so (the registry
// looks every 1/16 of that, at least every 10 ms), not before, and once; entities that finish
// later are asked later.
TEST_F(Registry, AFinishedEntityIsAskedOnceItsTimeIsUp) {
  registry_ = spawn_registry(
      *system_,
      [probes = probes_](caf::local_actor* s, const std::string&, caf::actor reg, const caf::message&) {
        return s->spawn(finisher, reg, probes);
      },
      [] { return std::int64_t{0}; }, -1, kIdleProbesPerSweep, {}, 400);
  auto start = std::chrono::steady_clock::now();
  activate(5);  // five finish now
  std::this_thread::sleep_for(200ms);
  caf::scoped_actor self{*system_};
  self->send(registry_, route_atom::value, probe_type, std::string("late"), caf::make_message(get_atom::value));
  self->receive([](int) {}, [](caf::error& err) { FAIL() << to_string(err); });
  EXPECT_EQ(probes_->load(), 0);
  EXPECT_EQ(wait_for_probes(5), 5);
  auto first = std::chrono::steady_clock::now() - start;
  EXPECT_GE(first, 400ms);
  EXPECT_LT(first, 1500ms);
  EXPECT_LE(probes_->load(), 5);  // the late one not yet
  EXPECT_EQ(wait_for_probes(6), 6);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 600ms);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(probes_->load(), 6);  // each asked once
}

// The registry's timers at their bounds: a sixteenth of the time they serve, never more often than
// every 10 ms, and never less often than every 1 s (idle sweeps) or 250 ms (finished entities).
TEST(RegistryTimers, ASixteenthOfTheirTimeWithinTheirBounds) {
  EXPECT_EQ(idle_sweep_every(0), 10ms);
  EXPECT_EQ(idle_sweep_every(160), 10ms);
  EXPECT_EQ(idle_sweep_every(175), 10ms);
  EXPECT_EQ(idle_sweep_every(176), 11ms);
  EXPECT_EQ(idle_sweep_every(1600), 100ms);
  EXPECT_EQ(idle_sweep_every(16'000), 1000ms);
  EXPECT_EQ(idle_sweep_every(16'016), 1000ms);
  EXPECT_EQ(idle_sweep_every(600'000), 1000ms);
  EXPECT_EQ(terminal_tick_every(-1), 10ms);  // never used: nothing is queued then
  EXPECT_EQ(terminal_tick_every(0), 10ms);
  EXPECT_EQ(terminal_tick_every(175), 10ms);
  EXPECT_EQ(terminal_tick_every(176), 11ms);
  EXPECT_EQ(terminal_tick_every(400), 25ms);
  EXPECT_EQ(terminal_tick_every(4000), 250ms);
  EXPECT_EQ(terminal_tick_every(4016), 250ms);
  EXPECT_EQ(terminal_tick_every(5000), 250ms);  // actors.terminal_passivate_ms's default
  EXPECT_EQ(terminal_tick_every(3'600'000), 250ms);
}

// Finished entities passivated another way before their time do not stay in the queue until it
// comes: once most of the queue is gone, the rest goes too (at most 64 entries are kept anyway).
TEST_F(Registry, FinishedEntitiesPassivatedEarlyLeaveTheQueue) {
  registry_ = spawn_registry(
      *system_,
      [probes = probes_](caf::local_actor* s, const std::string&, caf::actor reg, const caf::message&) {
        return s->spawn(finisher, reg, probes);
      },
      [] { return std::int64_t{0}; }, -1, kIdleProbesPerSweep, {}, 60'000);
  activate(200);
  caf::scoped_actor self{*system_};
  auto stats = [&] {
    RegistryStats out;
    self->request(registry_, 5s, stats_atom::value).receive([&](RegistryStats& s) { out = s; }, [](caf::error& e) { ADD_FAILURE() << "stats or passivate: " << caf::to_string(e); });
    return out;
  };
  EXPECT_EQ(stats().finished_queued, 200);
  for (int i = 0; i < 200; ++i)
    self->request(registry_, 5s, passivate_atom::value, "e" + std::to_string(i)).receive([](bool) {}, [](caf::error&) {});
  for (int i = 0; i < 500 && stats().alive != 0; ++i) std::this_thread::sleep_for(10ms);
  auto st = stats();
  EXPECT_EQ(st.alive, 0);
  EXPECT_LE(st.finished_queued, 64);
}

// What entities of the hold tests were asked: (activation, call number), in the order they
// answered.
struct Calls {
  std::mutex mutex;
  std::vector<std::pair<int, int>> seen;
  std::vector<caf::actor> activations;  // each activation's handle, in order
  // How a stopping activation answers the registry's resume_atom: none (as an entity without a
  // handler for it), stays, must stop, or stays once told (reply_atom; the answer waits till then).
  enum class Resume { none, stays, must_stop, when_told } resume = Resume::none;
  caf::response_promise resume_answer;  // when_told: the answer kept
  std::atomic<int> stops{0};            // stop_atom messages received, by all activations
  std::atomic<int> asked{0};            // resume_atom messages received, by all activations
  std::vector<std::pair<int, int>> get() {
    std::lock_guard lock(mutex);
    return seen;
  }
  caf::actor get_activation(size_t i) {
    std::lock_guard lock(mutex);
    return i < activations.size() ? activations[i] : caf::actor{};
  }
};
using letgo_atom = caf::atom_constant<caf::atom("letgo")>;
using reply_atom = caf::atom_constant<caf::atom("reply")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;

// Answers (get_atom, n) with its activation number; told to stop, it stays until let go, as an
// entity still finishing a write does. It answers resume_atom as `calls->resume` says, and asks
// its registry to stop it when told to leave (leave_atom), as an entity done with its work does.
caf::behavior stubborn(caf::event_based_actor* self, int activation, std::shared_ptr<Calls> calls,
                       caf::actor registry) {
  return {
      [=](get_atom, int n) {
        std::lock_guard lock(calls->mutex);
        calls->seen.emplace_back(activation, n);
        return activation;
      },
      [calls](stop_atom) { calls->stops += 1; },
      [self, registry](leave_atom) { self->send(registry, idle_atom::value, std::string("x")); },
      [self](letgo_atom) { self->quit(); },
      [self, calls](resume_atom) -> caf::result<bool> {
        calls->asked += 1;
        std::lock_guard lock(calls->mutex);
        switch (calls->resume) {
          case Calls::Resume::none: return caf::make_error(caf::sec::unexpected_message);
          case Calls::Resume::stays: return true;
          case Calls::Resume::must_stop: return false;
          case Calls::Resume::when_told: break;
        }
        calls->resume_answer = self->make_response_promise();
        return calls->resume_answer;
      },
      [calls](reply_atom) {
        std::lock_guard lock(calls->mutex);
        calls->resume_answer.deliver(true);
      },
  };
}

class RegistryHold : public Registry {
 protected:
  void start_stubborn(HoldLimits hold) {
    registry_ = spawn_registry(
        *system_,
        [calls = calls_, n = activations_](caf::local_actor* s, const std::string&,
                                           caf::actor registry, const caf::message&) {
          auto a = s->spawn(stubborn, ++*n, calls, registry);
          std::lock_guard lock(calls->mutex);
          calls->activations.push_back(a);
          return a;
        },
        [] { return std::int64_t{0}; }, -1, kIdleProbesPerSweep, hold);
  }
  // Sends call `n` to entity "x" through the registry; the answer comes to `self` later.
  void call(caf::scoped_actor& self, int n) {
    self->send(registry_, route_atom::value, probe_type, std::string("x"), caf::make_message(get_atom::value, n));
  }
  RegistryStats stats() {
    caf::scoped_actor self{*system_};
    RegistryStats out;
    self->request(registry_, 5s, stats_atom::value).receive([&](RegistryStats& s) { out = s; }, [](caf::error& e) { ADD_FAILURE() << "stats or passivate: " << caf::to_string(e); });
    return out;
  }
  caf::actor first_activation() {
    caf::scoped_actor self{*system_};
    caf::actor out;
    self->request(registry_, 5s, find_atom::value, std::string("x"))
        .receive([&](ActiveEntity& e) { out = e.handle; }, [](caf::error& err) { FAIL() << to_string(err); });
    return out;
  }
  // The next answer to `self`: the activation number, or -1 on an error, or 0 if none in `wait`.
  static int answer(caf::scoped_actor& self, std::chrono::milliseconds wait) {
    int got = 0;
    self->receive([&](int a) { got = a; }, [&](caf::error&) { got = -1; }, caf::after(wait) >> [] {});
    return got;
  }

  // Activates entity "x" (call 1), then passivates it, which leaves it stopping; returns its
  // handle, which keeps it alive (the registry holds a stopping activation weakly).
  caf::actor activate_then_passivate(caf::scoped_actor& self) {
    call(self, 1);
    EXPECT_EQ(answer(self, 5000ms), 1);
    auto old = first_activation();
    EXPECT_TRUE(old);
    bool was = false;
    self->request(registry_, 5s, passivate_atom::value, std::string("x"))
        .receive([&](bool w) { was = w; }, [](caf::error&) {});
    EXPECT_TRUE(was);
    return old;
  }

  std::shared_ptr<Calls> calls_ = std::make_shared<Calls>();
  std::shared_ptr<int> activations_ = std::make_shared<int>(0);
};

// A message for an entity passivated while it still works waits until that activation is down,
// then goes to a new one; the calls that waited keep their order.
TEST_F(RegistryHold, AMessageForAStoppingEntityWaitsUntilItIsDown) {
  start_stubborn({10'000, 16});
  caf::scoped_actor self{*system_};
  auto old = activate_then_passivate(self);
  call(self, 2);
  call(self, 3);
  EXPECT_EQ(answer(self, 300ms), 0);  // waiting, not sent to a second activation
  auto st = stats();
  EXPECT_EQ(st.activations, 1);
  EXPECT_EQ(st.held, 2);
  EXPECT_EQ(st.alive, 1);
  self->send(old, letgo_atom::value);
  EXPECT_EQ(answer(self, 5000ms), 2);
  EXPECT_EQ(answer(self, 5000ms), 2);
  EXPECT_EQ(calls_->get(), (std::vector<std::pair<int, int>>{{1, 1}, {2, 2}, {2, 3}}));
  call(self, 4);  // straight to the new activation
  EXPECT_EQ(answer(self, 5000ms), 2);
  EXPECT_EQ(stats().activations, 2);
}

// An activation that does not stop is waited for `hold_ms`, no longer.
// Closing (the node's stop) answers the calls that wait for a stopping activation as refused: none
// starts a new activation once the old one is down.
TEST_F(RegistryHold, ClosingAnswersTheCallsItHolds) {
  start_stubborn({10'000, 16});
  caf::scoped_actor self{*system_};
  auto old = activate_then_passivate(self);
  call(self, 2);
  EXPECT_EQ(answer(self, 300ms), 0);  // waiting
  self->send(registry_, close_atom::value);
  EXPECT_EQ(answer(self, 5000ms), -1);
  self->send(old, letgo_atom::value);
  old = nullptr;
  std::this_thread::sleep_for(100ms);
  auto st = stats();
  EXPECT_EQ(st.activations, 1);
  EXPECT_EQ(calls_->get(), (std::vector<std::pair<int, int>>{{1, 1}}));
}

TEST_F(RegistryHold, TheWaitEndsAfterItsTime) {
  start_stubborn({300, 16});
  caf::scoped_actor self{*system_};
  auto old = activate_then_passivate(self);
  auto start = std::chrono::steady_clock::now();
  call(self, 2);
  EXPECT_EQ(answer(self, 5000ms), 2);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 290ms);
  EXPECT_EQ(stats().alive, 2);  // the old one still finishing its work
  self->send(old, letgo_atom::value);
}

// At most `held_max` messages wait: the one after them ends the wait, and waits with them for the
// stopping activation's answer; this one cannot stay, so all go to a new activation in the order
// they came.
TEST_F(RegistryHold, TheWaitEndsWhenItHoldsItsMaximum) {
  start_stubborn({10'000, 2});
  caf::scoped_actor self{*system_};
  auto old = activate_then_passivate(self);
  call(self, 2);
  call(self, 3);
  EXPECT_EQ(answer(self, 300ms), 0);  // two wait: the maximum
  call(self, 4);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(answer(self, 5000ms), 2);
  EXPECT_EQ(calls_->get(), (std::vector<std::pair<int, int>>{{1, 1}, {2, 2}, {2, 3}, {2, 4}}));
  EXPECT_EQ(stats().held, 3);
  EXPECT_EQ(stats().resumed, 0);
  self->send(old, letgo_atom::value);
}

// A stopping activation still alive when the wait ends is asked to stay: one that does takes the
// calls that waited, and the later ones, so that no second activation runs beside it.
TEST_F(RegistryHold, AnActivationStillAtItsWorkWhenTheWaitEndsStays) {
  calls_->resume = Calls::Resume::stays;
  start_stubborn({300, 16});
  caf::scoped_actor self{*system_};
  auto old = activate_then_passivate(self);
  auto start = std::chrono::steady_clock::now();
  call(self, 2);
  EXPECT_EQ(answer(self, 5000ms), 1);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 290ms);
  call(self, 3);  // straight to it
  EXPECT_EQ(answer(self, 5000ms), 1);
  auto st = stats();
  EXPECT_EQ(st.activations, 1);
  EXPECT_EQ(st.resumed, 1);
  EXPECT_EQ(st.active, 1);
  EXPECT_EQ(st.alive, 1);
  EXPECT_EQ(calls_->get(), (std::vector<std::pair<int, int>>{{1, 1}, {1, 2}, {1, 3}}));
  self->send(old, letgo_atom::value);
}

// One that must stop anyway (a failure left it ahead of storage) leaves them to a new activation.
TEST_F(RegistryHold, AnActivationThatMustStopLeavesTheCallsToANewOne) {
  calls_->resume = Calls::Resume::must_stop;
  start_stubborn({300, 16});
  caf::scoped_actor self{*system_};
  auto old = activate_then_passivate(self);
  call(self, 2);
  EXPECT_EQ(answer(self, 5000ms), 2);
  auto st = stats();
  EXPECT_EQ(st.activations, 2);
  EXPECT_EQ(st.resumed, 0);
  EXPECT_EQ(st.alive, 2);
  self->send(old, letgo_atom::value);
}

// Past the maximum, calls wait for the stopping activation's answer too, and go to it, in the order
// they came, once it says it stays; later calls with them.
TEST_F(RegistryHold, PastTheMaximumCallsWaitForTheAnswer) {
  calls_->resume = Calls::Resume::when_told;
  start_stubborn({10'000, 2});
  caf::scoped_actor self{*system_};
  auto old = activate_then_passivate(self);
  call(self, 2);
  call(self, 3);
  call(self, 4);  // ends the wait: the activation is asked
  call(self, 5);  // not answered yet: waits too
  for (int i = 0; i < 1000 && calls_->asked.load() < 1; ++i) std::this_thread::sleep_for(2ms);
  EXPECT_EQ(calls_->asked.load(), 1);
  EXPECT_EQ(answer(self, 100ms), 0);  // all four wait for the answer
  self->send(old, reply_atom::value);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(answer(self, 5000ms), 1);
  call(self, 6);
  EXPECT_EQ(answer(self, 5000ms), 1);
  EXPECT_EQ(calls_->get(),
            (std::vector<std::pair<int, int>>{{1, 1}, {1, 2}, {1, 3}, {1, 4}, {1, 5}, {1, 6}}));
  EXPECT_EQ(stats().activations, 1);
  self->send(old, letgo_atom::value);
}

// While the answer is awaited, at most four times `held_max` calls wait: the one after them is
// refused as busy.
TEST_F(RegistryHold, WhileAskedAtMostFourTimesTheMaximumWait) {
  calls_->resume = Calls::Resume::when_told;
  start_stubborn({10'000, 2});
  caf::scoped_actor self{*system_};
  auto old = activate_then_passivate(self);
  for (int n = 2; n <= 10; ++n) call(self, n);  // 2, 3 wait; 4 ends the wait; 4 to 9 wait too
  EXPECT_EQ(answer(self, 5000ms), -1);           // 10: the ninth, past 4 x 2
  EXPECT_EQ(answer(self, 100ms), 0);
  self->send(old, reply_atom::value);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(answer(self, 5000ms), 1);
  EXPECT_EQ(calls_->get().size(), 9u);  // call 1, then 2 to 9
  self->send(old, letgo_atom::value);
}

// One that answers too late (past `hold_ms`) has lost its calls to a new activation: when it asks
// to stop, as one that stayed does once its work is done, it is told to.
TEST_F(RegistryHold, AnActivationThatAnswersTooLateIsStoppedWhenItAsks) {
  calls_->resume = Calls::Resume::when_told;
  start_stubborn({200, 16});
  caf::scoped_actor self{*system_};
  auto old = activate_then_passivate(self);
  for (int i = 0; i < 500 && calls_->stops.load() < 1; ++i) std::this_thread::sleep_for(2ms);
  EXPECT_EQ(calls_->stops.load(), 1);
  call(self, 2);
  EXPECT_EQ(answer(self, 5000ms), 2);  // 200 ms, then no answer within 200 ms
  self->send(old, reply_atom::value);  // too late: it thinks it stays
  self->send(old, leave_atom::value);
  for (int i = 0; i < 500 && calls_->stops.load() < 2; ++i) std::this_thread::sleep_for(2ms);
  EXPECT_EQ(calls_->stops.load(), 2);
  EXPECT_EQ(stats().resumed, 0);
  EXPECT_EQ(stats().active, 1);  // the new activation
  self->send(old, letgo_atom::value);
}

// Each wait has its own time: the timer of a wait that ended early (at its maximum of calls, the
// activation staying) does not end the next wait for the same activation, passivated again.
TEST_F(RegistryHold, AWaitThatEndedEarlyDoesNotEndTheNextOne) {
  calls_->resume = Calls::Resume::stays;
  start_stubborn({2000, 2});
  caf::scoped_actor self{*system_};
  auto old = activate_then_passivate(self);
  call(self, 2);  // its wait's timer fires 2 s from now
  call(self, 3);
  call(self, 4);  // the maximum: the wait ends now, and the activation stays
  for (int i = 0; i < 3; ++i) EXPECT_EQ(answer(self, 5000ms), 1);
  std::this_thread::sleep_for(1000ms);
  bool was = false;
  self->request(registry_, 5s, passivate_atom::value, std::string("x")).receive([&](bool w) { was = w; }, [](caf::error&) {});
  EXPECT_TRUE(was);
  call(self, 5);  // a new wait, of 2 s: the first one's timer, 1 s from now, is not its own
  EXPECT_EQ(answer(self, 1500ms), 0);
  EXPECT_EQ(answer(self, 5000ms), 1);
  EXPECT_EQ(stats().resumed, 2);
  self->send(old, letgo_atom::value);
}

// Passivated again while it is asked: it stays, takes the calls that waited, and is told to stop
// once more, so a later call waits for it again.
TEST_F(RegistryHold, PassivatedAgainWhileAskedItTakesTheCallsThenStopsAgain) {
  calls_->resume = Calls::Resume::when_told;
  start_stubborn({2000, 16});  // asked after 2 s; its answer is waited for 2 s more
  caf::scoped_actor self{*system_};
  auto old = activate_then_passivate(self);
  call(self, 2);
  for (int i = 0; i < 2000 && calls_->asked.load() < 1; ++i) std::this_thread::sleep_for(2ms);
  ASSERT_EQ(calls_->asked.load(), 1);  // the wait ended: asked, not answered
  bool was = false;
  self->request(registry_, 5s, passivate_atom::value, std::string("x")).receive([&](bool w) { was = w; }, [](caf::error&) {});
  EXPECT_TRUE(was);
  self->send(old, reply_atom::value);
  EXPECT_EQ(answer(self, 5000ms), 1);
  EXPECT_EQ(stats().active, 0);  // stopping again
  call(self, 3);
  EXPECT_EQ(answer(self, 100ms), 0);  // waits for it
  self->send(old, letgo_atom::value);
  EXPECT_EQ(answer(self, 5000ms), 2);
  EXPECT_EQ(stats().resumed, 1);
}

// Passivated again while calls wait for its stopping activation: the activation they go to stops
// after them, and a call after that waits for it in turn.
TEST_F(RegistryHold, APassivationWhileCallsWaitStopsTheActivationTheyGoTo) {
  start_stubborn({10'000, 16});
  caf::scoped_actor self{*system_};
  auto old = activate_then_passivate(self);
  call(self, 2);
  EXPECT_EQ(answer(self, 200ms), 0);
  bool was = false;
  self->request(registry_, 5s, passivate_atom::value, std::string("x")).receive([&](bool w) { was = w; }, [](caf::error&) {});
  EXPECT_TRUE(was);
  self->send(old, letgo_atom::value);
  EXPECT_EQ(answer(self, 5000ms), 2);
  auto st = stats();
  EXPECT_EQ(st.active, 0);  // the second activation is stopping
  EXPECT_EQ(st.alive, 1);
  call(self, 3);
  EXPECT_EQ(answer(self, 200ms), 0);  // waits for it
  self->send(calls_->get_activation(1), letgo_atom::value);
  EXPECT_EQ(answer(self, 5000ms), 3);
}

// The same when the view moves the entity away while calls wait: the activation they go to here
// stops after them, instead of staying on a node that no longer owns the entity.
TEST_F(RegistryHold, AViewChangeWhileCallsWaitStopsTheActivationTheyGoTo) {
  start_stubborn({10'000, 16});
  caf::scoped_actor self{*system_};
  auto old = activate_then_passivate(self);
  call(self, 2);
  EXPECT_EQ(answer(self, 200ms), 0);
  self->send(registry_, view_atom::value, OwnershipTest{[](const std::string&) { return false; }});
  self->send(old, letgo_atom::value);
  EXPECT_EQ(answer(self, 5000ms), 2);
  auto st = stats();
  EXPECT_EQ(st.active, 0);
  EXPECT_EQ(st.alive, 1);
  self->send(calls_->get_activation(1), letgo_atom::value);
}

// Messages still waiting when the registry stops are answered, not dropped.
TEST_F(RegistryHold, WaitingMessagesAreAnsweredWhenTheRegistryStops) {
  start_stubborn({10'000, 16});
  caf::scoped_actor self{*system_};
  auto old = activate_then_passivate(self);
  call(self, 2);
  EXPECT_EQ(answer(self, 200ms), 0);
  caf::anon_send_exit(registry_, caf::exit_reason::user_shutdown);
  EXPECT_EQ(answer(self, 5000ms), -1);
}

}  // namespace
}  // namespace emporium
