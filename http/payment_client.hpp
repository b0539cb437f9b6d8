// The `http` payment provider (payment.provider = http): the provider is a service reached over
// HTTP/1.1 at payment.url. The protocol is in README.md ("The http payment provider"):
//   POST {url}/charges  {"payment_id", "amount_cents", "currency", "card": {"number", "exp_month",
//                        "exp_year", "cvc"}}  ->  {"status": "captured" | "declined" |
//                        "insufficient_funds", "reference"}
//   POST {url}/refunds  {"payment_id", "amount_cents"}  ->  any 2xx
// each with the payment id as its Idempotency-Key header. A call blocks its thread until answered
// or payment.timeout_ms passed, so the node makes its calls from threads of their own (see
// actors/node.hpp), never from an actor thread. The card goes in the request body only, which is
// wiped once sent; no log line or error holds it.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "actors/payment_provider.hpp"
#include "runtime/config.hpp"

namespace emporium {

// Throws ConfigError naming payment.url when it is not an http:// URL with a host.
std::shared_ptr<PaymentProvider> make_http_provider(const Config::Payment& settings);

}  // namespace emporium
