// Coarse request timeouts on one thread (see deadlines.hpp).
#include "runtime/deadlines.hpp"

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <iterator>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <caf/abstract_actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/actor_cast.hpp>
#include <caf/error.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message.hpp>
#include <caf/message_id.hpp>
#include <caf/sec.hpp>

namespace emporium {

namespace {
using steady = std::chrono::steady_clock;

struct Slot {
  caf::actor_addr who;  // weak: a stopped actor is neither kept nor reached
  std::uint64_t response_id = 0;  // 0: `message` is delivered instead of a timeout
  caf::message message;
  std::uint32_t generation = 0;
  bool armed = false;
};

// A timeout as queued; the slot tells whether it still stands (same generation, armed).
struct Due {
  steady::time_point at;
  std::uint32_t slot;
  std::uint32_t generation;
};

// The timeouts of one length, due in the order they were set: each arm reads the time under the
// lock, so a queue of one length stays sorted by itself and the thread takes only from the fronts.
// Lengths are few (the step and the placement timeouts); past kQueues of them, the last queue
// takes every other length, kept sorted on insert.
constexpr std::size_t kQueues = 8;
struct Queue {
  std::int64_t after_ms;
  std::deque<Due> due;
};
}  // namespace

struct Deadlines::Impl {
  std::chrono::milliseconds tick;
  mutable std::mutex mx;
  std::condition_variable cv;
  std::vector<Slot> slots;
  std::vector<std::uint32_t> free_slots;
  std::vector<Queue> queues;  // few: one per timeout length in use
  std::size_t queued = 0;     // entries in the queues, standing or not
  std::size_t armed = 0;
  bool stopping = false;
  std::thread thread;

  // Frees a slot whose timeout is delivered or dropped; returns its reference, to be released
  // outside the lock (the last weak reference frees the actor's memory), and moves its message to
  // `message`, for the same reason.
  caf::actor_addr release(Slot& s, std::uint32_t index, caf::message& message) {
    s.armed = false;
    message = std::move(s.message);
    ++s.generation;
    if (s.generation == 0) s.generation = 1;  // 0 is the empty token
    free_slots.push_back(index);
    --armed;
    return std::exchange(s.who, caf::actor_addr{});
  }

  struct Fire {
    steady::time_point at;
    caf::actor_addr who;
    std::uint64_t response_id;
    caf::message message;
  };

  void run() {
    pthread_setname_np(pthread_self(), "emp.deadlines");  // for operators (top -H) and /proc
    std::vector<Fire> fire;
    std::vector<caf::actor_addr> dropped;
    std::vector<caf::message> dropped_messages;
    std::unique_lock<std::mutex> lock(mx);
    while (!stopping) {
      // Asleep while nothing is queued: an arm into empty queues wakes the thread.
      if (queued == 0) cv.wait(lock, [this] { return stopping || queued > 0; });
      else cv.wait_for(lock, tick, [this] { return stopping; });
      if (stopping) break;
      auto now = steady::now();
      for (auto& q : queues)
        while (!q.due.empty() && q.due.front().at <= now) {
          auto d = q.due.front();
          q.due.pop_front();
          --queued;
          auto& s = slots[d.slot];
          if (!s.armed || s.generation != d.generation) continue;
          auto id = s.response_id;
          caf::message message;
          auto who = release(s, d.slot, message);
          fire.push_back(Fire{d.at, std::move(who), id, std::move(message)});
        }
      if (fire.empty()) continue;
      lock.unlock();
      // In the order they came due, across the queues (a late pass takes several at once).
      std::stable_sort(fire.begin(), fire.end(), [](const Fire& a, const Fire& b) { return a.at < b.at; });
      for (auto& f : fire) {
        auto self = caf::actor_cast<caf::strong_actor_ptr>(f.who);
        if (!self) continue;
        if (f.response_id == 0)
          self->get()->enqueue(caf::make_mailbox_element(nullptr, caf::make_message_id(), {},
                                                         std::move(f.message)),
                               nullptr);
        else
          self->get()->eq_impl(caf::message_id{f.response_id}, self, nullptr,
                               caf::make_error(caf::sec::request_timeout));
      }
      fire.clear();  // drops the references outside the lock
      lock.lock();
    }
    // Stopped: drop every reference, outside the lock.
    for (std::uint32_t i = 0; i < slots.size(); ++i)
      if (slots[i].armed) {
        dropped_messages.emplace_back();
        dropped.push_back(release(slots[i], i, dropped_messages.back()));
      }
    queues.clear();
    queued = 0;
    lock.unlock();
    dropped.clear();
    dropped_messages.clear();
  }
};

Deadlines::Deadlines(std::chrono::milliseconds tick) : impl_(std::make_shared<Impl>()) {
  impl_->tick = tick;
  impl_->thread = std::thread([impl = impl_] { impl->run(); });
}

Deadlines::~Deadlines() { stop(); }

void Deadlines::stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mx);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (!impl_->thread.joinable()) return;
  // Never from its own thread (the last reference to the node's context let go by an actor the
  // thread released): that thread ends by itself once it sees `stopping`, and its own reference
  // keeps what it runs on alive until then.
  if (impl_->thread.get_id() == std::this_thread::get_id()) impl_->thread.detach();
  else impl_->thread.join();
}

Deadlines::Token Deadlines::arm(caf::abstract_actor* self, std::uint64_t response_id, std::int64_t after_ms) {
  return arm_message_or_timeout(self, response_id, caf::message{}, after_ms);
}

Deadlines::Token Deadlines::arm_message(caf::abstract_actor* self, caf::message message, std::int64_t after_ms) {
  return arm_message_or_timeout(self, 0, std::move(message), after_ms);
}

Deadlines::Token Deadlines::arm_message_or_timeout(caf::abstract_actor* self, std::uint64_t response_id,
                                                   caf::message message, std::int64_t after_ms) {
  auto who = self->address();  // taken outside the lock: it counts a reference
  auto& m = *impl_;
  bool wake = false;
  Token token;
  {
    std::lock_guard<std::mutex> lock(m.mx);
    if (m.stopping) return {};
    std::uint32_t index;
    if (!m.free_slots.empty()) {
      index = m.free_slots.back();
      m.free_slots.pop_back();
    } else {
      index = static_cast<std::uint32_t>(m.slots.size());
      m.slots.emplace_back();
      m.slots.back().generation = 1;
    }
    auto& s = m.slots[index];
    s.who = std::move(who);
    s.response_id = response_id;
    s.message = std::move(message);
    s.armed = true;
    ++m.armed;
    Queue* q = nullptr;
    for (auto& each : m.queues)
      if (each.after_ms == after_ms) q = &each;
    if (!q) q = m.queues.size() < kQueues ? &m.queues.emplace_back(Queue{after_ms, {}}) : &m.queues.back();
    auto at = steady::now() + std::chrono::milliseconds(after_ms);
    auto pos = q->due.end();  // the end, but for a length that is not the queue's own
    while (pos != q->due.begin() && std::prev(pos)->at > at) --pos;
    q->due.insert(pos, Due{at, index, s.generation});
    wake = m.queued++ == 0;
    token = Token{index, s.generation};
  }
  if (wake) m.cv.notify_one();
  return token;
}

void Deadlines::disarm(Token token) {
  if (token.generation == 0) return;
  caf::actor_addr who;
  caf::message message;  // released after the lock, as `who`
  {
    std::lock_guard<std::mutex> lock(impl_->mx);
    if (token.slot >= impl_->slots.size()) return;
    auto& s = impl_->slots[token.slot];
    if (!s.armed || s.generation != token.generation) return;
    who = impl_->release(s, token.slot, message);
  }
}

std::size_t Deadlines::armed() const {
  std::lock_guard<std::mutex> lock(impl_->mx);
  return impl_->armed;
}

}  // namespace emporium
