// Fuzzes strict JSON parsing and the request decoders with one input: whatever the body, a decoder
// either refuses it with a reason or yields a value inside the documented bounds.
#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "http/codec.hpp"
#include "http/json.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace json = boost::json;
using namespace emporium;

namespace {

constexpr OrderLimits kLimits{100, 1000};
constexpr int kYear = 2025;
constexpr int kMonth = 6;

std::size_t depth_of(const json::value& v) {
  std::size_t inner = 0;
  if (v.is_array())
    for (const auto& e : v.get_array()) inner = std::max(inner, depth_of(e));
  else if (v.is_object())
    for (const auto& kv : v.get_object()) inner = std::max(inner, depth_of(kv.value()));
  else
    return 0;
  return inner + 1;
}

// Equality after a serialize/parse round trip. Doubles may move by an ulp or two: Boost.JSON 1.81
// parses long mantissas inexactly (its precise mode came in 1.83); money is integers, never
// doubles.
bool same(const json::value& a, const json::value& b) {
  if (a.is_double() && b.is_double()) {
    const double x = a.get_double(), y = b.get_double();
    if (x == y) return true;
    return std::isfinite(x) && std::isfinite(y) &&
           std::fabs(x - y) <= 1e-15 * std::max(std::fabs(x), std::fabs(y));
  }
  if (a.is_array() && b.is_array()) {
    const auto &p = a.get_array(), &q = b.get_array();
    if (p.size() != q.size()) return false;
    for (std::size_t i = 0; i < p.size(); ++i)
      if (!same(p[i], q[i])) return false;
    return true;
  }
  if (a.is_object() && b.is_object()) {
    const auto &p = a.get_object(), &q = b.get_object();
    if (p.size() != q.size()) return false;
    for (const auto& kv : p) {
      const auto* other = q.if_contains(kv.key());
      if (!other || !same(kv.value(), *other)) return false;
    }
    return true;
  }
  return a == b;
}

bool all_finite(const json::value& v) {
  if (v.is_double()) return std::isfinite(v.get_double());
  if (v.is_array())
    return std::all_of(v.get_array().begin(), v.get_array().end(),
                       [](const json::value& e) { return all_finite(e); });
  if (v.is_object())
    return std::all_of(v.get_object().begin(), v.get_object().end(),
                       [](const json::key_value_pair& kv) { return all_finite(kv.value()); });
  return true;
}

bool digits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// A refusal carries a reason; an acceptance carries no field error.
template <class T>
void check_shape(const Decoded<T>& d, bool parsed_object) {
  if (d.ok()) {
    FUZZ_CHECK(d.errors.empty());
    FUZZ_CHECK(d.detail.empty());
  } else {
    FUZZ_CHECK(!d.detail.empty() || !d.errors.empty());
  }
  // Field errors exist only once the body is a JSON object; before that, only a detail.
  if (!parsed_object) {
    FUZZ_CHECK(!d.ok());
    FUZZ_CHECK(d.errors.empty());
    FUZZ_CHECK(!d.detail.empty());
  }
  for (const auto& e : d.errors) FUZZ_CHECK(!e.message.empty());  // the field may be "" (key "")
}

void check_order(const Decoded<PlaceOrderInput>& d, std::string_view body) {
  // PCI: a card number or cvc the client sent never appears in an error message or detail.
  for (std::string_view secret : {std::string_view("4111111111111111"), std::string_view("4242")}) {
    if (body.find(secret) == std::string_view::npos) continue;
    FUZZ_CHECK(d.detail.find(secret) == std::string::npos);
    for (const auto& e : d.errors) FUZZ_CHECK(e.message.find(secret) == std::string::npos);
  }
  if (!d.ok()) return;
  const auto& in = *d.value;
  FUZZ_CHECK(!in.lines.empty());
  FUZZ_CHECK(static_cast<std::int64_t>(in.lines.size()) <= kLimits.items_max);
  std::set<std::string> skus;
  for (const auto& line : in.lines) {
    FUZZ_CHECK(valid_sku(line.sku));
    FUZZ_CHECK(skus.insert(line.sku).second);  // repeated skus are summed into one line
    FUZZ_CHECK(line.quantity >= 1 && line.quantity <= kLimits.quantity_max);
    FUZZ_CHECK(line.unit_price_cents == 0);  // prices come from inventory, never from the client
  }
  const auto number = in.card.number.reveal();
  FUZZ_CHECK(digits(number) && number.size() >= 12 && number.size() <= 19);
  FUZZ_CHECK(luhn_valid(number));
  const auto cvc = in.card.cvc.reveal();
  FUZZ_CHECK(digits(cvc) && cvc.size() >= 3 && cvc.size() <= 4);
  FUZZ_CHECK(in.card.exp_month >= 1 && in.card.exp_month <= 12);
  FUZZ_CHECK(in.card.exp_year > kYear ||
             (in.card.exp_year == kYear && in.card.exp_month >= kMonth));
  FUZZ_CHECK(in.card.exp_year <= 2100);
  FUZZ_CHECK(!in.card.brand().empty() && in.card.last4().size() == 4);
}

void check_item(const Decoded<PutItemInput>& d) {
  if (!d.ok()) return;
  const auto& in = *d.value;
  FUZZ_CHECK(!in.name.empty() && in.name.size() <= 200);
  FUZZ_CHECK(in.price_cents >= 0 && in.price_cents <= 1'000'000'000'000);
  FUZZ_CHECK(in.on_hand >= 0 && in.on_hand <= 1'000'000'000);
  FUZZ_CHECK(in.currency.size() == 3);
  for (char c : in.currency) FUZZ_CHECK(c >= 'A' && c <= 'Z');
}

void check_adjust(const Decoded<std::int64_t>& d) {
  if (d.ok()) FUZZ_CHECK(*d.value >= -1'000'000'000 && *d.value <= 1'000'000'000);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);

  std::string why;
  const auto value = parse_strict(body, &why);
  FUZZ_CHECK(value.has_value() == why.empty());
  if (value) {
    FUZZ_CHECK(depth_of(*value) <= json_depth_max);
    // What we accept, re-serialized, is accepted again and means the same. Not for a number
    // beyond the double range (1e999): Boost.JSON reads it as infinity and writes `Infinity`.
    if (all_finite(*value)) {
      const auto again = parse_strict(json::serialize(*value));
      FUZZ_CHECK(again.has_value());
      FUZZ_CHECK(same(*again, *value));
    }
  } else {
    FUZZ_CHECK(why.size() < 64);  // a fixed reason, never a quote of the input
  }
  const bool object = value && value->is_object();

  const auto order = decode_place_order(body, kLimits, kYear, kMonth);
  check_shape(order, object);
  check_order(order, body);

  const auto item = decode_put_item(body);
  check_shape(item, object);
  check_item(item);

  const auto adjust = decode_adjust(body);
  check_shape(adjust, object);
  check_adjust(adjust);
  return 0;
}
