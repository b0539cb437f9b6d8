// The /v1, operator and health endpoints of API.md: authentication, scopes, rate limits,
// idempotency, and the mapping of domain results and failures to HTTP, in one place.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "http/auth.hpp"
#include "http/message.hpp"

namespace caf {
class actor;
class actor_system;
}

namespace emporium {

struct NodeContext;
class Metrics;
class Gateway;

struct ApiSettings {
  std::string node_name = "node-1";
  std::string cluster_address;
  std::string http_address;
  auth::VerifierSettings auth;
  double rate = 200;
  double burst = 400;
  // A stricter budget for order placement and cancel, taken from besides the one above; 0: none.
  double place_rate = 0;
  double place_burst = 0;
  std::int64_t rate_entries_max = 100'000;
  std::int64_t placement_timeout_ms = 5000;
  std::int64_t retry_after_s = 2;
  std::int64_t items_max = 100;
  std::int64_t quantity_max = 1000;
};

class Api {
 public:
  Api(caf::actor_system& system, std::shared_ptr<const NodeContext> ctx, ApiSettings settings,
      std::shared_ptr<Metrics> metrics);
  ~Api();
  void handle(HttpRequest&& request, Respond respond);
  void set_http_address(std::string address);  // once the server is bound (port 0 picks one)
  // In a cluster: the membership actor, for /admin/cluster and /readyz. Before serving.
  void set_membership(const caf::actor& membership);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace emporium
