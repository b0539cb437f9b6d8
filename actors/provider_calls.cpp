// The calls of a provider that blocks, made on threads of their own (see spawn_provider_calls in
// actors/payment_provider.hpp). Apart from payment_provider.cpp, which the fuzz build links
// without CAF.
#include <algorithm>
#include <deque>
#include <functional>
#include <vector>

#include <caf/all.hpp>

#include "actors/payment_provider.hpp"

namespace emporium {

namespace {

// One thread's calls, one at a time.
caf::behavior provider_caller(caf::event_based_actor*, std::shared_ptr<PaymentProvider> provider) {
  return {
      [provider](provider_charge& call) {
        ChargeResult result;  // transient: not made, it waited too long
        if (steady_ms() <= call.not_after_ms)
          result = provider->charge({call.payment_id, call.amount_cents, call.currency, &call.card});
        call.card.wipe();
        return result;
      },
      [provider](provider_refund& call) { return provider->refund(call.payment_id, call.amount_cents); },
  };
}

struct CallQueue {
  // A waiting call: given a free caller, it makes the call there and runs `done` once answered.
  using Job = std::function<void(const caf::actor& caller, std::function<void()> done)>;
  std::deque<Job> waiting;
  std::vector<caf::actor> free;
  std::size_t waiting_max = 0;
};

// Hands waiting calls to free callers, first come first served.
void hand_out(caf::event_based_actor* self, const std::shared_ptr<CallQueue>& q) {
  while (!q->waiting.empty() && !q->free.empty()) {
    auto caller = q->free.back();
    q->free.pop_back();
    auto job = std::move(q->waiting.front());
    q->waiting.pop_front();
    job(caller, [self, q, caller] {
      q->free.push_back(caller);
      hand_out(self, q);
    });
  }
}

// Queues `call`; the promise gets the caller's answer, `lost` when the caller went away with it,
// or `refused` at once when the queue is full.
template <class Result, class Call>
caf::response_promise queue_call(caf::event_based_actor* self, const std::shared_ptr<CallQueue>& q,
                                 Call call, Result lost, Result refused) {
  auto rp = self->make_response_promise();
  if (q->waiting.size() >= q->waiting_max) {
    rp.deliver(refused);
    return rp;
  }
  q->waiting.push_back([self, rp, call = std::move(call), lost](const caf::actor& caller,
                                                                  std::function<void()> done) mutable {
    self->request(caller, caf::infinite, std::move(call))
        .then(
            [rp, done](Result& result) mutable {
              rp.deliver(std::move(result));
              done();
            },
            [rp, done, lost](caf::error&) mutable {
              rp.deliver(lost);
              done();
            });
  });
  hand_out(self, q);
  return rp;
}

}  // namespace

caf::actor spawn_provider_calls(caf::actor_system& system, std::shared_ptr<PaymentProvider> provider,
                                std::int64_t callers, std::int64_t queue_max) {
  return system.spawn([provider, callers, queue_max](caf::event_based_actor* self) -> caf::behavior {
    auto q = std::make_shared<CallQueue>();
    q->waiting_max = static_cast<std::size_t>(std::max<std::int64_t>(1, queue_max));
    for (std::int64_t i = 0; i < std::max<std::int64_t>(1, callers); ++i)
      q->free.push_back(self->spawn<caf::detached + caf::linked>(provider_caller, provider));
    return {
        [self, q](provider_charge& call) {
          return queue_call<ChargeResult>(self, q, std::move(call), {ChargeOutcome::unknown, {}},
                                          {ChargeOutcome::transient_error, {}});
        },
        [self, q](provider_refund& call) { return queue_call<bool>(self, q, std::move(call), false, false); },
    };
  });
}

}  // namespace emporium
