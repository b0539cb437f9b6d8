// Stored state of the domain entities: plain aggregates shared by the actors (which own them in
// memory) and the stores (which read and write them). Nothing here holds a card number or cvc.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/none.hpp>
#include <caf/meta/type_name.hpp>

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

// An optional value kept on the heap, with a value's copies: a pointer's size while empty, and
// while full, the value's own allocation instead of its bytes inline. An order's payment is one:
// every active order actor holds its record, and the record inline would push the actor into a
// larger size class of the allocator (see bench/RESULTS.md, tenth run).
template <class T>
class Boxed {
 public:
  Boxed() = default;
  Boxed(std::nullopt_t) {}  // NOLINT: as std::optional converts
  Boxed(T value) : ptr_(std::make_unique<T>(std::move(value))) {}  // NOLINT
  Boxed(std::optional<T> value) {  // NOLINT
    if (value) ptr_ = std::make_unique<T>(std::move(*value));
  }
  Boxed(const Boxed& other) : ptr_(other.ptr_ ? std::make_unique<T>(*other.ptr_) : nullptr) {}
  Boxed(Boxed&&) noexcept = default;
  Boxed& operator=(const Boxed& other) {
    if (this != &other) ptr_ = other.ptr_ ? std::make_unique<T>(*other.ptr_) : nullptr;
    return *this;
  }
  Boxed& operator=(Boxed&&) noexcept = default;
  ~Boxed() = default;

  bool has_value() const { return ptr_ != nullptr; }
  explicit operator bool() const { return has_value(); }
  T& operator*() { return *ptr_; }
  const T& operator*() const { return *ptr_; }
  T* operator->() { return ptr_.get(); }
  const T* operator->() const { return ptr_.get(); }
  void reset() { ptr_.reset(); }

 private:
  std::unique_ptr<T> ptr_;
};

struct OrderLine {
  std::string sku;
  std::int64_t quantity = 0;
  std::int64_t unit_price_cents = 0;
};

// The most units an item may hold on hand: a PUT may set up to this (http/codec.cpp), and an
// adjust that would raise it past that is refused (actors/inventory.cpp).
constexpr std::int64_t kOnHandMax = 1'000'000'000;

struct OrderRecord {
  std::string id;
  std::string customer_id;
  std::string status;          // see actors/order_status.hpp
  std::string failure_reason;  // empty: null
  std::vector<OrderLine> lines;
  std::int64_t total_cents = 0;
  std::string currency = "USD";
  Boxed<PaymentRecord> payment;
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
  std::string content_type;  // of the response; empty in rows stored before it was kept
  // The order the key's placement places: a key is claimed (stored with status 0, running)
  // before its placement starts, so a retry finds that order. Empty in rows stored before.
  std::string order_id;
};

// Field lists for CAF: records cross between nodes in messages, and print in CAF's logs.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ItemRecord& x) {
  return f(caf::meta::type_name("ItemRecord"), x.sku, x.name, x.price_cents, x.currency, x.on_hand,
           x.reserved, x.version);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ReservationRecord& x) {
  return f(caf::meta::type_name("ReservationRecord"), x.sku, x.order_id, x.quantity, x.state,
           x.expires_at_ms);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, PaymentRecord& x) {
  return f(caf::meta::type_name("PaymentRecord"), x.id, x.order_id, x.status, x.failure_reason,
           x.brand, x.last4, x.exp_month, x.exp_year, x.provider_ref, x.amount_cents, x.currency,
           x.version);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, OrderLine& x) {
  return f(caf::meta::type_name("OrderLine"), x.sku, x.quantity, x.unit_price_cents);
}

// The optional payment travels as a flag and a record.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, OrderRecord& x) {
  bool has_payment = x.payment.has_value();
  PaymentRecord payment = has_payment ? *x.payment : PaymentRecord{};
  return f(caf::meta::type_name("OrderRecord"), x.id, x.customer_id, x.status, x.failure_reason,
           x.lines, x.total_cents, x.currency, has_payment, payment, x.created_at_ms,
           x.updated_at_ms, x.version, caf::meta::load_callback([&]() -> caf::error {
             if (has_payment) x.payment = std::move(payment);
             else x.payment.reset();
             return caf::none;
           }));
}

}  // namespace emporium
