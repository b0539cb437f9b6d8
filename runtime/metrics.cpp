#include "runtime/metrics.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <sstream>

namespace emporium {
namespace {
constexpr std::array<double, 12> bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,   0.25,   0.5,   1,    2.5};
std::string base_name(const std::string& s) { return s.substr(0, s.find('{')); }

// A value as text that reads back as it: a whole number in digits (a counter of 1,234,567 is
// "1234567", not the stream's six digits, "1.23457e+06"), any other the shortest such text.
std::string number(double v) {
  std::array<char, 32> buf{};
  auto [end, ec] = std::abs(v) < 1e15 && v == std::floor(v)
                       ? std::to_chars(buf.data(), buf.data() + buf.size(), static_cast<std::int64_t>(v))
                       : std::to_chars(buf.data(), buf.data() + buf.size(), v);
  return ec == std::errc{} ? std::string(buf.data(), end) : std::string("NaN");
}
}  // namespace

void Metrics::add(const std::string& key, double value) {
  std::lock_guard lock(mutex_);
  counters_[key] += value;
}

void Metrics::set_counter(const std::string& key, double value) {
  std::lock_guard lock(mutex_);
  counters_[key] = value;
}

void Metrics::set(const std::string& key, double value) {
  std::lock_guard lock(mutex_);
  gauges_[key] = value;
}

void Metrics::observe(const std::string& name, const std::string& labels, double seconds) {
  std::lock_guard lock(mutex_);
  auto& h = histograms_[{name, labels}];
  if (h.buckets.empty()) h.buckets.resize(bounds.size());
  for (size_t i = 0; i < bounds.size(); ++i)
    if (seconds <= bounds[i]) h.buckets[i] += 1;
  h.sum += seconds;
  h.count += 1;
}

std::string Metrics::render() const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  std::string last;
  auto type_line = [&](const std::string& key, const char* type) {
    auto name = base_name(key);
    if (name != last) out << "# TYPE " << name << ' ' << type << '\n';
    last = name;
  };
  for (const auto& [k, v] : counters_) {
    type_line(k, "counter");
    out << k << ' ' << number(v) << '\n';
  }
  for (const auto& [k, v] : gauges_) {
    type_line(k, "gauge");
    out << k << ' ' << number(v) << '\n';
  }
  for (const auto& [key, h] : histograms_) {
    const auto& [name, labels] = key;
    type_line(name, "histogram");
    auto sep = labels.empty() ? "" : ",";
    for (size_t i = 0; i < bounds.size(); ++i)
      out << name << "_bucket{" << labels << sep << "le=\"" << bounds[i] << "\"} " << h.buckets[i] << '\n';
    out << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << h.count << '\n';
    out << name << "_sum{" << labels << "} " << number(h.sum) << '\n';
    out << name << "_count{" << labels << "} " << h.count << '\n';
  }
  return out.str();
}

}  // namespace emporium
