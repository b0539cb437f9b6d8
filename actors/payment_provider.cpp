// Card helpers and the simulated provider.
#include "actors/payment_provider.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <stdexcept>
#include <vector>

#include <caf/all.hpp>

#include <openssl/crypto.h>

namespace emporium {

SecretString& SecretString::operator=(const SecretString& other) {
  if (this != &other) {
    wipe();
    value_ = other.value_;
  }
  return *this;
}

SecretString& SecretString::operator=(SecretString&& other) noexcept {
  if (this != &other) {
    wipe();
    value_ = std::move(other.value_);
    other.wipe();
  }
  return *this;
}

// The whole buffer, not just its size: a string moved from keeps the characters of its inline
// buffer past the first (only its size is set to 0).
void SecretString::wipe() noexcept {
  OPENSSL_cleanse(value_.data(), value_.capacity());
  value_.clear();
}

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

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Card::brand() const {
  auto n = number.reveal();
  if (n.empty()) return "unknown";
  if (n[0] == '4') return "visa";
  if (n.size() >= 2) {
    int two = (n[0] - '0') * 10 + (n[1] - '0');
    if (two >= 51 && two <= 55) return "mastercard";
    if (two == 34 || two == 37) return "amex";
    if (n.substr(0, 4) == "6011" || two == 65) return "discover";
  }
  if (n.size() >= 4) {
    int four = std::stoi(std::string(n.substr(0, 4)));
    if (four >= 2221 && four <= 2720) return "mastercard";
  }
  return "unknown";
}

std::string Card::last4() const {
  auto n = number.reveal();
  return std::string(n.size() >= 4 ? n.substr(n.size() - 4) : n);
}

bool luhn_valid(std::string_view digits) {
  if (digits.empty()) return false;
  int sum = 0;
  bool twice = false;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (*it < '0' || *it > '9') return false;
    int d = *it - '0';
    if (twice) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

ChargeResult SimulatedProvider::charge(const ChargeRequest& request) {
  auto number = request.card ? request.card->number.reveal() : std::string_view{};
  std::string ref = "sim_" + request.payment_id;
  if (number == "4000000000000002") return {ChargeOutcome::declined, ref};
  if (number == "4000000000009995") return {ChargeOutcome::insufficient_funds, ref};
  if (number == "4000000000000119") return {ChargeOutcome::transient_error, {}};
  return {ChargeOutcome::captured, ref};
}

bool SimulatedProvider::refund(const std::string&, std::int64_t) { return true; }

std::shared_ptr<PaymentProvider> make_provider(const Config::Payment& settings) {
  if (settings.provider == "simulated") return std::make_shared<SimulatedProvider>();
  // `http` is the edge's (http/payment_client.hpp): actors know nothing of HTTP.
  throw std::invalid_argument("payment.provider: make_provider builds only `simulated`");
}

}  // namespace emporium
