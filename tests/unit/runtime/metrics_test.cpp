// The /metrics text: values as the shortest text that reads back as them.
#include <string>

#include <gtest/gtest.h>

#include "runtime/metrics.hpp"

namespace emporium {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST(Metrics, LargeCountersAndFractionsKeepEveryDigit) {
  Metrics m;
  m.add("emporium_things_total{type=\"order\"}", 1'234'567);
  m.add("emporium_things_total{type=\"order\"}", 1);
  m.set("emporium_level", 0.1);
  m.set("emporium_big_gauge", 9'007'199'254'740'992.0);  // 2^53
  m.set("emporium_huge_gauge", 1e20);
  m.observe("emporium_seconds", "route=\"x\"", 0.0003);
  m.observe("emporium_seconds", "route=\"x\"", 1'000'000.25);
  auto text = m.render();
  EXPECT_TRUE(has_line(text, "emporium_things_total{type=\"order\"} 1234568")) << text;
  EXPECT_TRUE(has_line(text, "emporium_level 0.1")) << text;
  EXPECT_TRUE(has_line(text, "emporium_big_gauge 9007199254740992")) << text;
  EXPECT_TRUE(has_line(text, "emporium_huge_gauge 1e+20")) << text;
  // A bucket's bound is its series' label: written as it always was.
  EXPECT_TRUE(has_line(text, "emporium_seconds_bucket{route=\"x\",le=\"0.0005\"} 1")) << text;
  EXPECT_TRUE(has_line(text, "emporium_seconds_bucket{route=\"x\",le=\"+Inf\"} 2")) << text;
  // The sum reads back as the very double (no digits cut to six).
  const std::string sum_key = "emporium_seconds_sum{route=\"x\"} ";
  auto at = text.find(sum_key);
  ASSERT_NE(at, std::string::npos) << text;
  auto sum_text = text.substr(at + sum_key.size(), text.find('\n', at) - at - sum_key.size());
  EXPECT_EQ(std::stod(sum_text), 0.0003 + 1'000'000.25) << sum_text;
  EXPECT_EQ(sum_text.find('e'), std::string::npos) << sum_text;
  EXPECT_TRUE(has_line(text, "# TYPE emporium_things_total counter")) << text;
}

// A counter kept elsewhere and copied in at scrape time is typed counter; a level stays a gauge.
TEST(Metrics, CountersCopiedInAreTypedCounter) {
  Metrics m;
  m.set_counter("emporium_commit_batches_total{db=\"orders\"}", 10);
  m.set_counter("emporium_commit_batches_total{db=\"orders\"}", 12);  // copied again: replaced
  m.set_counter("emporium_commit_batches_total{db=\"inventory\"}", 3);
  m.set("emporium_commit_batch_size_max{db=\"orders\"}", 40);
  auto text = m.render();
  EXPECT_TRUE(has_line(text, "# TYPE emporium_commit_batches_total counter")) << text;
  EXPECT_TRUE(has_line(text, "emporium_commit_batches_total{db=\"orders\"} 12")) << text;
  EXPECT_TRUE(has_line(text, "emporium_commit_batches_total{db=\"inventory\"} 3")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE emporium_commit_batch_size_max gauge")) << text;
  EXPECT_EQ(text.find("# TYPE emporium_commit_batches_total gauge"), std::string::npos) << text;
  EXPECT_EQ(text.find("# TYPE emporium_commit_batches_total"), text.rfind("# TYPE emporium_commit_batches_total"))
      << "one TYPE line per name: " << text;
}

}  // namespace
}  // namespace emporium
