// Request timeouts kept by Deadlines: delivered as CAF's own (sec::request_timeout, not early),
// dropped when the answer comes, and holding no actor that stopped.
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include "runtime/atoms.hpp"
#include "runtime/deadlines.hpp"
#include "runtime/timed_request.hpp"

namespace emporium {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

caf::behavior answering(caf::event_based_actor*) {
  return {[](get_atom) { return 7; }};
}

// Takes the request and never answers it.
caf::behavior silent(caf::event_based_actor*) {
  return {[](get_atom) -> caf::result<int> { return caf::delegated<int>{}; }};
}

// Asks `target` once within each of `lengths` (ms), in that order, and reports each outcome to
// `report`: (ms, answer) or (ms, error).
caf::behavior requester(caf::event_based_actor* self, Deadlines* deadlines, caf::actor target,
                        std::vector<std::int64_t> lengths, caf::actor report) {
  for (auto ms : lengths)
    request_within<int>(
        self, *deadlines, ms, target, [self, ms, report](int& answer) { self->send(report, ms, answer); },
        [self, ms, report](caf::error& err) { self->send(report, ms, err); }, get_atom::value);
  return {[self](stop_atom) { self->quit(); }};
}

using Lengths = std::vector<std::int64_t>;

class DeadlinesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg_.set("scheduler.max-threads", size_t{2});
    system_ = std::make_unique<caf::actor_system>(cfg_);
  }
  void TearDown() override {
    deadlines_.stop();
    system_.reset();
  }

  // A spawned actor runs its first requests on a worker thread, a moment later.
  void wait_armed(std::size_t n) {
    for (int i = 0; i < 400 && deadlines_.armed() < n; ++i) std::this_thread::sleep_for(5ms);
    ASSERT_EQ(deadlines_.armed(), n);
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> system_;
  Deadlines deadlines_{5ms};
};

TEST_F(DeadlinesTest, AnUnansweredRequestGetsTheTimeoutNotBeforeItsTime) {
  caf::scoped_actor self{*system_};
  auto target = system_->spawn(silent);
  auto start = steady::now();
  auto asker = system_->spawn(requester, &deadlines_, target, Lengths{80}, caf::actor{self});
  bool timed_out = false;
  self->receive([&](std::int64_t, caf::error& err) { timed_out = err == caf::sec::request_timeout; },
                [&](std::int64_t, int) { ADD_FAILURE() << "the silent actor answered"; },
                caf::after(10s) >> [] { ADD_FAILURE() << "no timeout within 10 s"; });
  EXPECT_TRUE(timed_out);
  EXPECT_GE(steady::now() - start, 80ms);
  EXPECT_EQ(deadlines_.armed(), 0u);
  self->send_exit(asker, caf::exit_reason::user_shutdown);
  self->send_exit(target, caf::exit_reason::user_shutdown);
}

TEST_F(DeadlinesTest, AnAnswerDisarmsItsTimeout) {
  caf::scoped_actor self{*system_};
  auto target = system_->spawn(answering);
  auto asker = system_->spawn(requester, &deadlines_, target, Lengths{60'000}, caf::actor{self});
  int answer = 0;
  self->receive([&](std::int64_t, int x) { answer = x; },
                [&](std::int64_t, caf::error& err) { ADD_FAILURE() << caf::to_string(err); },
                caf::after(10s) >> [] { ADD_FAILURE() << "no answer within 10 s"; });
  EXPECT_EQ(answer, 7);
  EXPECT_EQ(deadlines_.armed(), 0u);  // not left for the minute it had
  self->send_exit(asker, caf::exit_reason::user_shutdown);
  self->send_exit(target, caf::exit_reason::user_shutdown);
}

TEST_F(DeadlinesTest, AnActorThatStoppedIsNeitherKeptNorReached) {
  caf::scoped_actor self{*system_};
  auto target = system_->spawn(silent);
  caf::actor_addr gone;
  {
    auto asker = system_->spawn(requester, &deadlines_, target, Lengths{3'000}, caf::actor{self});
    gone = asker.address();
    wait_armed(1);
    self->send(asker, stop_atom::value);
    self->wait_for(asker);
  }
  // Only the weak reference is left: the actor is gone while its timeout stands (CAF lets go of
  // its own references a moment after the actor is down).
  for (int i = 0; i < 200 && caf::actor_cast<caf::actor>(gone); ++i) std::this_thread::sleep_for(5ms);
  EXPECT_FALSE(caf::actor_cast<caf::actor>(gone));
  EXPECT_EQ(deadlines_.armed(), 1u);
  self->receive([&](std::int64_t, caf::error&) { ADD_FAILURE() << "a stopped actor reported"; },
                caf::after(3'500ms) >> [] {});
  EXPECT_EQ(deadlines_.armed(), 0u);  // came due and was dropped
  self->send_exit(target, caf::exit_reason::user_shutdown);
}

TEST_F(DeadlinesTest, TimeoutsOfManyLengthsComeInTheOrderTheyAreDue) {
  // More lengths than the thread keeps queues for, set longest first: the ones past the queues
  // share one, sorted on insert. 100 ms apart: a pass that runs late delivers what came due in
  // due order, but an asker held up between two requests for longer than that would swap them.
  // One asker: its timeouts reach its mailbox, and so the report, in the order they are delivered.
  caf::scoped_actor self{*system_};
  auto target = system_->spawn(silent);
  Lengths lengths;
  for (std::int64_t ms = 1'100; ms >= 100; ms -= 100) lengths.push_back(ms);  // 100 ms apart
  auto start = steady::now();
  auto asker = system_->spawn(requester, &deadlines_, target, lengths, caf::actor{self});
  std::vector<std::int64_t> order;
  for (size_t i = 0; i < lengths.size(); ++i)
    self->receive(
        [&](std::int64_t ms, caf::error& err) {
          EXPECT_EQ(err, caf::sec::request_timeout);
          EXPECT_GE(steady::now() - start, std::chrono::milliseconds(ms)) << ms;  // not early
          order.push_back(ms);
        },
        caf::after(10s) >> [] { ADD_FAILURE() << "a timeout did not come"; });
  ASSERT_EQ(order.size(), lengths.size());
  for (size_t i = 1; i < order.size(); ++i) EXPECT_LT(order[i - 1], order[i]) << i;
  EXPECT_EQ(deadlines_.armed(), 0u);
  self->send_exit(asker, caf::exit_reason::user_shutdown);
  self->send_exit(target, caf::exit_reason::user_shutdown);
}

// A pass that comes after several timeouts of different queues came due delivers them in due
// order, not queue by queue: with a tick longer than both, the 200-ms timeout (queued first, in
// the first queue) and the 100-ms one (second queue) come due before one pass.
TEST(DeadlinesLatePass, DeliversWhatCameDueInDueOrder) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", size_t{2});
  caf::actor_system system{cfg};
  Deadlines deadlines{300ms};
  {
    caf::scoped_actor self{system};
    auto target = system.spawn(silent);
    auto asker = system.spawn(requester, &deadlines, target, Lengths{200, 100}, caf::actor{self});
    std::vector<std::int64_t> order;
    for (int i = 0; i < 2; ++i)
      self->receive([&](std::int64_t ms, caf::error&) { order.push_back(ms); },
                    caf::after(10s) >> [] { ADD_FAILURE() << "a timeout did not come"; });
    EXPECT_EQ(order, (std::vector<std::int64_t>{100, 200}));
    self->send_exit(asker, caf::exit_reason::user_shutdown);
    self->send_exit(target, caf::exit_reason::user_shutdown);
  }
  deadlines.stop();
}

TEST_F(DeadlinesTest, StopDropsWhatIsArmedAndArmsNothingMore) {
  caf::scoped_actor self{*system_};
  auto target = system_->spawn(silent);
  auto asker = system_->spawn(requester, &deadlines_, target, Lengths{2'000, 2'000, 2'100}, caf::actor{self});
  wait_armed(3);
  deadlines_.stop();
  EXPECT_EQ(deadlines_.armed(), 0u);
  self->receive([&](std::int64_t, caf::error&) { ADD_FAILURE() << "delivered after stop"; },
                caf::after(2'500ms) >> [] {});  // past when they were due
  auto token = deadlines_.arm(caf::actor_cast<caf::abstract_actor*>(target), 1, 10);
  EXPECT_EQ(token.generation, 0u);
  EXPECT_EQ(deadlines_.armed(), 0u);
  self->send_exit(asker, caf::exit_reason::user_shutdown);
  self->send_exit(target, caf::exit_reason::user_shutdown);
}

// An actor's own timer: its message comes once, not before its time; one disarmed never comes.
TEST_F(DeadlinesTest, AMessageComesAtItsTimeUnlessDisarmed) {
  caf::scoped_actor self{*system_};
  auto start = steady::now();
  deadlines_.arm_message(self.ptr(), caf::make_message(flush_atom::value, std::int64_t{1}), 60);
  auto dropped = deadlines_.arm_message(self.ptr(), caf::make_message(flush_atom::value, std::int64_t{2}), 30);
  EXPECT_EQ(deadlines_.armed(), 2u);
  deadlines_.disarm(dropped);
  std::vector<std::int64_t> got;
  self->receive([&](flush_atom, std::int64_t which) { got.push_back(which); },
                caf::after(10s) >> [] { ADD_FAILURE() << "no message within 10 s"; });
  EXPECT_GE(steady::now() - start, 60ms);
  self->receive([&](flush_atom, std::int64_t which) { got.push_back(which); },
                caf::after(200ms) >> [] {});
  EXPECT_EQ(got, std::vector<std::int64_t>{1});
  EXPECT_EQ(deadlines_.armed(), 0u);
}

}  // namespace
}  // namespace emporium
