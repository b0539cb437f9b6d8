// The seam to payment providers. The simulated provider answers from the test cards of API.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

#include "actors/card.hpp"
#include "runtime/clock.hpp"
#include "runtime/config.hpp"

namespace emporium {

struct ChargeRequest {
  std::string payment_id;  // the provider's idempotency key: a retry never charges twice
  std::int64_t amount_cents = 0;
  std::string currency;
  const Card* card = nullptr;
};

// transient_error: not charged (the call can be made again); unknown: the call may have been
// charged and its answer lost (a timeout after it was sent, a 5xx, an answer not understood).
enum class ChargeOutcome { captured, declined, insufficient_funds, transient_error, unknown };

struct ChargeResult {
  ChargeOutcome outcome = ChargeOutcome::transient_error;
  std::string provider_ref;
};

class PaymentProvider {
 public:
  virtual ~PaymentProvider() = default;
  // Authorizes and captures. Must be idempotent per payment_id.
  virtual ChargeResult charge(const ChargeRequest& request) = 0;
  // Refunds a captured payment; idempotent per payment_id. False: try again later.
  virtual bool refund(const std::string& payment_id, std::int64_t amount_cents) = 0;
  // True when a call waits on the network: the node then calls it from threads of its own
  // (provider callers, see actors/node.hpp), never from an actor thread.
  virtual bool blocking() const { return false; }
};

// Makes a blocking provider's calls on `callers` threads of their own (detached actors linked to
// the one returned, which stop with it), each call on the first thread free, in the order they
// came. At most `queue_max` calls wait for a thread: one past that is refused at once (a charge
// as a transient error, so not made; a refund as not done). Answers provider_charge with a
// ChargeResult (a caller lost with the call: unknown) and provider_refund with a bool.
caf::actor spawn_provider_calls(caf::actor_system& system, std::shared_ptr<PaymentProvider> provider,
                                std::int64_t callers, std::int64_t queue_max);

// provider_charge::not_after_ms counts milliseconds of the steady clock (runtime/clock.hpp,
// steady_ms).

// A provider call made on a caller's thread (local messages only: the card never leaves the node
// this way). Replies: ChargeResult, bool.
struct provider_charge {
  std::string payment_id;
  std::int64_t amount_cents = 0;
  std::string currency;
  Card card;  // wiped when the message goes
  // Steady-clock milliseconds: a call still waiting for its caller by then is not made (answered
  // as a transient error), so a slow provider's backlog never sends stale charges.
  std::int64_t not_after_ms = 0;
};
struct provider_refund {
  std::string payment_id;
  std::int64_t amount_cents = 0;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, provider_charge& x) {
  return f(caf::meta::type_name("provider_charge"), x.payment_id, x.amount_cents, x.currency, x.card,
           x.not_after_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, provider_refund& x) {
  return f(caf::meta::type_name("provider_refund"), x.payment_id, x.amount_cents);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ChargeResult& x) {
  auto outcome = static_cast<int>(x.outcome);
  return f(caf::meta::type_name("ChargeResult"), outcome, x.provider_ref,
           caf::meta::load_callback([&]() -> caf::error {
             x.outcome = static_cast<ChargeOutcome>(outcome);
             return caf::none;
           }));
}

class SimulatedProvider final : public PaymentProvider {
 public:
  ChargeResult charge(const ChargeRequest& request) override;
  bool refund(const std::string& payment_id, std::int64_t amount_cents) override;
};

std::shared_ptr<PaymentProvider> make_provider(const Config::Payment& settings);

}  // namespace emporium
