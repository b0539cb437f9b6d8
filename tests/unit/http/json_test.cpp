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
