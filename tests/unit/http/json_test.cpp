// Tests for http/json: the strict parser against the conformance corpus in tests/data/json (in
// the style of JSONTestSuite: `n_*` must be refused, `y_*` accepted), plus its own bounds.
#include "http/json.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "http/codec.hpp"
#include "runtime/clock.hpp"

namespace emporium {
namespace {

namespace fs = std::filesystem;

// Fewer files than this means the corpus went missing or was cut, which must not pass as green.
constexpr std::size_t kRejectCasesMin = 60;
constexpr std::size_t kAcceptCasesMin = 30;

fs::path corpus_dir() {
  return fs::path(EMPORIUM_SOURCE_DIR) / "tests" / "data" / "json";
}

std::vector<fs::path> corpus(const std::string& prefix) {
  std::vector<fs::path> files;
  if (!fs::is_directory(corpus_dir())) return files;
  for (const auto& entry : fs::directory_iterator(corpus_dir())) {
    const auto name = entry.path().filename().string();
    if (entry.is_regular_file() && name.starts_with(prefix) && name.ends_with(".json"))
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(StrictJsonCorpus, HoldsEnoughCases) {
  EXPECT_GE(corpus("n_").size(), kRejectCasesMin) << "in " << corpus_dir();
  EXPECT_GE(corpus("y_").size(), kAcceptCasesMin) << "in " << corpus_dir();
}

TEST(StrictJsonCorpus, RejectsEveryNCase) {
  const auto files = corpus("n_");
  ASSERT_GE(files.size(), kRejectCasesMin);
  for (const auto& file : files) {
    std::string why;
    EXPECT_FALSE(parse_strict(read_bytes(file), &why).has_value())
        << file.filename() << " was accepted";
    EXPECT_FALSE(why.empty()) << file.filename() << " was refused without a reason";
  }
}

TEST(StrictJsonCorpus, AcceptsEveryYCase) {
  const auto files = corpus("y_");
  ASSERT_GE(files.size(), kAcceptCasesMin);
  for (const auto& file : files) {
    std::string why;
    EXPECT_TRUE(parse_strict(read_bytes(file), &why).has_value())
        << file.filename() << " was refused: " << why;
  }
}

TEST(StrictJson, DuplicateKeyIsNamedAsTheReason) {
  std::string why;
  EXPECT_FALSE(parse_strict(R"({"sku":"a","sku":"b"})", &why));
  EXPECT_EQ(why, "duplicate key in JSON object");
}

TEST(StrictJson, DepthBoundIsInclusive) {
  const auto nested = [](std::size_t depth) {
    return std::string(depth, '[') + std::string(depth, ']');
  };
  EXPECT_TRUE(parse_strict(nested(json_depth_max)));
  std::string why;
  EXPECT_FALSE(parse_strict(nested(json_depth_max + 1), &why));
  EXPECT_EQ(why, "JSON nested too deeply");
  EXPECT_TRUE(parse_strict(nested(4), nullptr, 4));
  EXPECT_FALSE(parse_strict(nested(5), nullptr, 4));
  EXPECT_TRUE(parse_strict(nested(40), nullptr, 40));  // above Boost.JSON's default of 32
}

TEST(StrictJson, ReasonNeverQuotesTheInput) {
  std::string why;
  EXPECT_FALSE(parse_strict(R"({"number":"4111111111111111",})", &why));
  EXPECT_EQ(why.find("4111"), std::string::npos);
}

TEST(StrictJson, IntegersKeepTheirExactValue) {
  const auto v = parse_strict("[9223372036854775807,-9223372036854775808,18446744073709551615]");
  ASSERT_TRUE(v);
  const auto& a = v->as_array();
  EXPECT_EQ(a[0].as_int64(), INT64_MAX);
  EXPECT_EQ(a[1].as_int64(), INT64_MIN);
  EXPECT_EQ(a[2].as_uint64(), UINT64_MAX);
}

}  // namespace
}  // namespace emporium

// The statuses stored only while a cancel or a ship of a confirmed order is under way are shown
// as `confirmed` (API.md lists the statuses clients see).
TEST(OrderJson, ACancelOrShipUnderWayShowsConfirmed) {
  using emporium::encode_order;
  using emporium::OrderRecord;
  OrderRecord order;
  order.id = "ord_1";
  order.customer_id = "alice";
  for (auto [stored, shown] : {std::pair{"cancelling", "confirmed"}, std::pair{"shipping", "confirmed"},
                               std::pair{"confirmed", "confirmed"}, std::pair{"cancelled", "cancelled"},
                               std::pair{"shipped", "shipped"}}) {
    order.status = stored;
    auto body = boost::json::parse(encode_order(order)).as_object();
    EXPECT_EQ(body.at("status").as_string(), shown) << stored;
  }
}

// payment.status is one of the API's five: a pending payment (its charge under way) is not shown.
TEST(OrderJson, APendingPaymentIsNotShown) {
  emporium::OrderRecord order;
  order.id = "ord_1";
  order.status = "reserved";
  emporium::PaymentRecord payment;
  payment.id = "pay_1";
  payment.brand = "visa";
  payment.last4 = "4242";
  for (auto [status, shown] : {std::pair{"pending", false}, std::pair{"authorized", true},
                               std::pair{"captured", true}, std::pair{"declined", true},
                               std::pair{"refunded", true}, std::pair{"failed", true}}) {
    payment.status = status;
    order.payment = payment;
    auto body = boost::json::parse(emporium::encode_order(order)).as_object();
    if (shown) EXPECT_EQ(body.at("payment").at("status").as_string(), status);
    else EXPECT_TRUE(body.at("payment").is_null()) << body;
  }
}

// The order is written straight into its text (no JSON tree): every field as the API shows it,
// strings escaped so that any text parses back to itself, in the order of the fields below.
TEST(OrderJson, AnOrderIsWrittenAsTheApiShowsItWithEveryStringEscaped) {
  using emporium::OrderRecord;
  namespace json = boost::json;
  OrderRecord order;
  order.id = "ord_1";
  order.customer_id = std::string("a\"b\\c/\x01\x1f\n\t é ✓") + std::string(1, '\0') + "end";
  order.status = "confirmed";
  order.lines = {{"mug", 2, 1999}, {"pen", 3, 250}};
  order.total_cents = 4748;
  order.currency = "EUR";
  emporium::PaymentRecord payment;
  payment.id = "pay_1";
  payment.status = "captured";
  payment.brand = "visa";
  payment.last4 = "4242";
  order.payment = payment;
  order.created_at_ms = 1'700'000'000'123;
  order.updated_at_ms = 1'700'000'000'456;
  auto text = emporium::encode_order(order);
  json::object expected{
      {"id", "ord_1"},
      {"customer_id", order.customer_id},
      {"status", "confirmed"},
      {"items", json::array{json::object{{"sku", "mug"},
                                         {"quantity", 2},
                                         {"unit_price_cents", 1999},
                                         {"line_total_cents", 3998}},
                            json::object{{"sku", "pen"},
                                         {"quantity", 3},
                                         {"unit_price_cents", 250},
                                         {"line_total_cents", 750}}}},
      {"total_cents", 4748},
      {"currency", "EUR"},
      {"payment",
       json::object{{"id", "pay_1"}, {"status", "captured"}, {"brand", "visa"}, {"last4", "4242"}}},
      {"failure_reason", nullptr},
      {"created_at", emporium::rfc3339(order.created_at_ms)},
      {"updated_at", emporium::rfc3339(order.updated_at_ms)}};
  auto parsed = emporium::parse_strict(text);  // strict: no duplicate keys, nothing after it
  ASSERT_TRUE(parsed) << text;
  EXPECT_EQ(*parsed, json::value(expected)) << text;
  std::vector<std::string> keys;
  for (const auto& kv : parsed->as_object()) keys.emplace_back(kv.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"id", "customer_id", "status", "items", "total_cents",
                                            "currency", "payment", "failure_reason", "created_at",
                                            "updated_at"}));
  EXPECT_NE(text.find(R"(a\"b\\c/\u0001\u001f\u000a\u0009 é ✓\u0000end)"), std::string::npos) << text;

  order.payment.reset();
  order.lines.clear();
  order.status = "payment_failed";
  order.failure_reason = "card_declined";
  auto failed = boost::json::parse(emporium::encode_order(order)).as_object();
  EXPECT_TRUE(failed.at("payment").is_null());
  EXPECT_TRUE(failed.at("items").as_array().empty());
  EXPECT_EQ(failed.at("failure_reason").as_string(), "card_declined");
}

TEST(OrderJson, APageListsItsOrdersAndItsCursor) {
  emporium::OrderRecord a, b;
  a.id = "ord_a";
  b.id = "ord_b";
  auto page =
      boost::json::parse(emporium::encode_order_page({a, b}, std::string("c\"1"))).as_object();
  ASSERT_EQ(page.at("data").as_array().size(), 2u);
  EXPECT_EQ(page.at("data").as_array()[1].as_object().at("id").as_string(), "ord_b");
  EXPECT_EQ(page.at("next_cursor").as_string(), "c\"1");
  auto last = boost::json::parse(emporium::encode_order_page({}, std::nullopt)).as_object();
  EXPECT_TRUE(last.at("data").as_array().empty());
  EXPECT_TRUE(last.at("next_cursor").is_null());
}

// An item is written the same way: the public view without the counts, the admin's with them, in
// this order, and any name escaped.
TEST(ItemJson, BothViewsAndAListAreWrittenAsTheApiShowsThem) {
  namespace json = boost::json;
  emporium::ItemRecord item;
  item.sku = "sku-1";
  item.name = "Mug \"XL\" \\ é\n";
  item.price_cents = 1999;
  item.currency = "EUR";
  item.on_hand = 10;
  item.reserved = 3;
  auto keys = [](const json::value& v) {
    std::vector<std::string> out;
    for (const auto& kv : v.as_object()) out.emplace_back(kv.key());
    return out;
  };
  auto shown = emporium::parse_strict(emporium::encode_item(item, false));
  ASSERT_TRUE(shown);
  EXPECT_EQ(*shown, json::value(json::object{{"sku", "sku-1"},
                                             {"name", item.name},
                                             {"price_cents", 1999},
                                             {"currency", "EUR"},
                                             {"available", 7}}));
  EXPECT_EQ(keys(*shown),
            (std::vector<std::string>{"sku", "name", "price_cents", "currency", "available"}));
  auto admin = emporium::parse_strict(emporium::encode_item(item, true));
  ASSERT_TRUE(admin);
  EXPECT_EQ(keys(*admin), (std::vector<std::string>{"sku", "name", "price_cents", "currency",
                                                    "available", "on_hand", "reserved"}));
  EXPECT_EQ(admin->at("on_hand").as_int64(), 10);
  EXPECT_EQ(admin->at("reserved").as_int64(), 3);
  auto list = emporium::parse_strict(emporium::encode_item_list({item, item}, false));
  ASSERT_TRUE(list);
  ASSERT_EQ(list->at("data").as_array().size(), 2u);
  EXPECT_EQ(list->at("data").as_array()[1], *shown);
  auto none = emporium::parse_strict(emporium::encode_item_list({}, true));
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->at("data").as_array().empty());
}

namespace emporium {

// --- the Idempotency-Key's comparison -----------------------------------------------------------

TEST(CardFreeBody, KeepsNoCardNumberOrCvcAndStillTellsRequestsApart) {
  const std::string body =
      R"({"items":[{"sku":"sku-1","quantity":2}],"payment":{"card":{"number":"4242424242424242",)"
      R"("exp_month":12,"exp_year":2030,"cvc":"123"}}})";
  auto cut = card_free_body(body);
  EXPECT_EQ(cut.find("424242424242"), std::string::npos) << cut;
  EXPECT_EQ(cut.find("123"), std::string::npos) << cut;
  EXPECT_NE(cut.find("16:*4242"), std::string::npos) << cut;
  EXPECT_EQ(cut, card_free_body(body));  // the same body, the same result
  // Another quantity, another card's last four or expiry: told apart.
  for (auto [from, to] : {std::pair{"\"quantity\":2", "\"quantity\":3"},
                          std::pair{"4242424242424242", "4242424242424243"},
                          std::pair{"\"exp_month\":12", "\"exp_month\":11"}}) {
    auto other = body;
    other.replace(other.find(from), std::string(from).size(), to);
    EXPECT_NE(card_free_body(other), cut) << to;
  }
  // A card number given as a number, or put anywhere else, is cut too.
  for (std::string other :
       {std::string(R"({"payment":{"card":{"number":4242424242424242,"cvc":123}}})"),
        std::string(R"({"note":"card 5555555555554444","pay":[5555555555554444]})")}) {
    auto c = card_free_body(other);
    EXPECT_EQ(c.find("55555555"), std::string::npos) << c;
    EXPECT_EQ(c.find("42424242"), std::string::npos) << c;
    EXPECT_EQ(c.find("123"), std::string::npos) << c;
  }
  // Skus are kept whole, long digit runs and all (a GTIN): two skus of the same length and last
  // four digits are told apart.
  auto gtin = [](const char* sku) {
    return card_free_body(std::string(R"({"items":[{"sku":")") + sku + R"(","quantity":1}]})");
  };
  EXPECT_NE(gtin("4006381333931"), gtin("4006381113931"));
  EXPECT_NE(gtin("4006381333931").find("4006381333931"), std::string::npos);
  // A body that is not JSON has its digits masked.
  auto garbled = card_free_body(R"({"number":"4242424242424242", cvc 123)");
  EXPECT_EQ(garbled.find_first_of("0123456789"), std::string::npos) << garbled;
}

}  // namespace emporium
