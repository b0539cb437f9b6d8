// The seam to payment providers. The simulated provider answers from the test cards of API.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "actors/card.hpp"
#include "runtime/config.hpp"

namespace emporium {

struct ChargeRequest {
  std::string payment_id;  // the provider's idempotency key: a retry never charges twice
  std::int64_t amount_cents = 0;
  std::string currency;
  const Card* card = nullptr;
};

enum class ChargeOutcome { captured, declined, insufficient_funds, transient_error };

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
};

class SimulatedProvider final : public PaymentProvider {
 public:
  ChargeResult charge(const ChargeRequest& request) override;
  bool refund(const std::string& payment_id, std::int64_t amount_cents) override;
};

std::shared_ptr<PaymentProvider> make_provider(const Config::Payment& settings);

}  // namespace emporium
