// Process metrics in Prometheus text format: counters and histograms keyed by name and labels.
// Labels never carry request data beyond route templates and status codes.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace emporium {

class Metrics {
 public:
  void add(const std::string& name_with_labels, double value = 1);
  void set(const std::string& name_with_labels, double value);  // gauge
  // A counter kept elsewhere (a registry's activations, say), copied in at scrape time: typed
  // `counter`, as its `_total` name says.
  void set_counter(const std::string& name_with_labels, double value);
  void observe(const std::string& name, const std::string& labels, double seconds);  // histogram
  std::string render() const;

 private:
  struct Histogram {
    std::vector<std::uint64_t> buckets;
    double sum = 0;
    std::uint64_t count = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::string, double> counters_;
  std::map<std::string, double> gauges_;
  std::map<std::pair<std::string, std::string>, Histogram> histograms_;
};

}  // namespace emporium
