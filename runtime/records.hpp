// Stored state of the domain entities: plain aggregates shared by the actors (which own them in
// memory) and the stores (which read and write them). Nothing here holds a card number or cvc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace emporium {

struct ItemRecord {
  std::string sku;
  std::string name;
  std::int64_t price_cents = 0;
  std::string currency = "USD";
  std::int64_t on_hand = 0;
  std::int64_t reserved = 0;
  std::int64_t version = 0;  // 0: not stored yet

  std::int64_t available() const { return on_hand - reserved; }
};

enum class ReservationState { held, committed, released, shipped };
const char* to_string(ReservationState state);
std::optional<ReservationState> reservation_state_from(const std::string& text);

struct ReservationRecord {
  std::string sku;
  std::string order_id;
  std::int64_t quantity = 0;
  ReservationState state = ReservationState::held;
  std::int64_t expires_at_ms = 0;  // only for `held`

  bool active() const {
    return state == ReservationState::held || state == ReservationState::committed;
  }
};

struct PaymentRecord {
  std::string id;
  std::string order_id;
  std::string status;  // pending, authorized, captured, declined, refunded, failed
  std::string failure_reason;
  std::string brand;
  std::string last4;
  int exp_month = 0;
  int exp_year = 0;
  std::string provider_ref;
  std::int64_t amount_cents = 0;
  std::string currency = "USD";
  std::int64_t version = 0;
};

struct OrderLine {
  std::string sku;
  std::int64_t quantity = 0;
  std::int64_t unit_price_cents = 0;
};

struct OrderRecord {
  std::string id;
  std::string customer_id;
  std::string status;          // see actors/order_status.hpp
  std::string failure_reason;  // empty: null
  std::vector<OrderLine> lines;
  std::int64_t total_cents = 0;
  std::string currency = "USD";
  std::optional<PaymentRecord> payment;
  std::int64_t created_at_ms = 0;
  std::int64_t updated_at_ms = 0;
  std::int64_t version = 0;  // 0: not stored yet
};

// A finished idempotent request: what was answered, to answer it again.
struct IdempotencyRecord {
  std::string customer_id;
  std::string key;
  std::string request_hash;
  int status = 0;
  std::string response_body;
  std::int64_t created_at_ms = 0;
};

}  // namespace emporium
