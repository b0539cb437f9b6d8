// Request decoders (validation per API.md, with field errors) and response encoders. Money stays
// in integer minor units throughout: no value passes through floating point.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "actors/card.hpp"
#include "runtime/records.hpp"

namespace emporium {

struct FieldError {
  std::string field;
  std::string message;
};

template <class T>
struct Decoded {
  std::optional<T> value;
  std::string detail;              // why the body as a whole was refused
  std::vector<FieldError> errors;  // per field
  bool ok() const { return value.has_value(); }
};

struct OrderLimits {
  std::int64_t items_max = 100;
  std::int64_t quantity_max = 1000;
};

struct PlaceOrderInput {
  std::vector<OrderLine> lines;  // repeated skus summed, in first-seen order
  Card card;
};

struct PutItemInput {
  std::string name;
  std::int64_t price_cents = 0;
  std::int64_t on_hand = 0;
  std::string currency = "USD";
};

// `year`, `month`: today in UTC, for the card expiry check.
Decoded<PlaceOrderInput> decode_place_order(std::string_view body, const OrderLimits& limits,
                                            int year, int month);
Decoded<PutItemInput> decode_put_item(std::string_view body);
Decoded<std::int64_t> decode_adjust(std::string_view body);

bool valid_sku(std::string_view sku);

// What an Idempotency-Key's request is compared by (its digest is stored): the body without the
// card's secrets. The card's number is cut to its length and last four digits, its cvc left out,
// and any other run of 12 or more digits outside the items (a card number put elsewhere) is cut
// the same way; a body that is not JSON has all its digits masked. So no digest of a card number
// is ever stored.
std::string card_free_body(std::string_view body);

std::string encode_order(const OrderRecord& order);
std::string encode_item(const ItemRecord& item, bool admin_view);
std::string encode_order_page(const std::vector<OrderRecord>& orders,
                              const std::optional<std::string>& next_cursor);
std::string encode_item_list(const std::vector<ItemRecord>& items, bool admin_view);

}  // namespace emporium
