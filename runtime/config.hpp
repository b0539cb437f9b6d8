// Node configuration: one struct with defaults, loaded once at start (TOML file, then
// EMPORIUM_SECTION_KEY environment variables, then --set flags) and validated with errors naming keys.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace emporium {

struct Config {
  struct Node {
    std::string name = "node-1";
    std::string data_dir = "data";  // where dev-secret and default SQLite files live
    bool operator==(const Node&) const = default;
  } node;

  struct Http {
    std::string listen = "127.0.0.1:8080";
    std::int64_t header_limit_bytes = 8 * 1024;
    std::int64_t body_limit_bytes = 64 * 1024;
    std::int64_t request_timeout_ms = 30'000;  // handling one request, and writing its answer
    std::int64_t header_timeout_ms = 10'000;   // from a request's first byte to its last header
    std::int64_t body_timeout_ms = 30'000;     // reading a request's body
    std::int64_t max_in_flight = 4'096;        // requests being handled at once; past it 503
    std::int64_t idle_timeout_ms = 60'000;     // keep-alive connection with no request
    std::int64_t max_connections = 10'000;
    std::int64_t threads = 2;                  // Asio threads of the edge
    bool operator==(const Http&) const = default;
  } http;

  struct Database {
    std::string orders = "sqlite:data/orders.db";
    std::string inventory = "sqlite:data/inventory.db";
    std::int64_t batch_size_max = 256;          // writes per group-commit transaction
    std::int64_t batch_linger_us = 0;           // a batch of 2-15 writes waits this long for more
    std::int64_t connections = 1;               // per PostgreSQL database (SQLite: always 1)
    std::int64_t retry_after_s = 2;             // Retry-After when the database is unreachable
    std::int64_t reconnect_interval_ms = 1'000;
    std::int64_t idle_in_transaction_ms = 2'000;  // PostgreSQL ends a transaction left open this long
    bool operator==(const Database&) const = default;
  } database;

  struct Auth {
    std::string issuer = "emporium-dev";
    std::string audience = "emporium";
    std::optional<std::string> hs256_secret;    // unset: generated once into <data_dir>/dev-secret
    std::string jwks_file;
    std::int64_t leeway_s = 60;
    bool operator==(const Auth&) const = default;
  } auth;

  struct RateLimit {
    double rate = 200;   // sustained requests per second per principal
    double burst = 400;
    // A second budget that POST /v1/orders and cancel also take from, per principal; both 0: none.
    double place_rate = 0;   // 0: `rate`
    double place_burst = 0;  // 0: `burst`
    std::int64_t entries_max = 100'000;  // principals tracked; the least recently seen go first
    bool operator==(const RateLimit&) const = default;
  } rate_limit;

  struct Cluster {
    bool enabled = false;
    std::string listen = "127.0.0.1:7000";
    std::string advertise;  // empty: same as listen
    std::int64_t heartbeat_interval_ms = 1000;  // membership row refresh and view read
    std::int64_t failure_timeout_ms = 3000;     // a member silent this long is down
    std::int64_t connect_timeout_ms = 2000;     // connecting to another node
    std::int64_t batch_max = 256;               // entity calls per CAF message to one node
    std::int64_t calls_pending_max = 20'000;    // calls waiting on one node before refusing more
    std::int64_t call_timeout_ms = 30'000;      // a call from another node not answered by then fails
    std::int64_t sweep_grace_ms = 10'000;  // after a view change, orders untouched this long are swept
    // TLS between nodes (libcaf_openssl): all three PEM files, or none for plain TCP.
    std::string tls_certificate;
    std::string tls_key;
    std::string tls_ca_file;
    bool operator==(const Cluster&) const = default;
  } cluster;

  struct Payment {
    std::string provider = "simulated";
    std::string url;
    std::int64_t retries_max = 3;        // retries of a transient provider error
    std::int64_t retry_backoff_ms = 50;  // first backoff, doubled per retry
    std::int64_t timeout_ms = 5'000;     // one call to the http provider, connect to answer
    std::int64_t connections = 4;        // http provider calls at once (a thread each)
    std::int64_t queue_max = 1'024;      // http provider calls waiting for a thread; past it refused
    bool operator==(const Payment&) const = default;
  } payment;

  struct Orders {
    std::int64_t placement_timeout_ms = 5'000;  // past this POST /v1/orders answers 202
    std::int64_t reservation_ttl_ms = 900'000;  // a reservation still held by then asks its order again
    std::int64_t reservation_check_ms = 30'000;  // a reservation still held by then asks its order
    // A commit is answered at once and written with its item's next write, or alone by this time
    // (one node only: in a cluster, 0; see actor_settings).
    std::int64_t reservation_commit_delay_ms = 1'000;
    std::int64_t items_max = 100;
    std::int64_t quantity_max = 1'000;
    std::int64_t step_timeout_ms = 30'000;        // a saga step not answered by then fails
    std::int64_t recovery_interval_ms = 30'000;   // the sweep for unfinished orders runs this often
    std::int64_t recovery_batch_max = 1'000;      // unfinished orders recovered at once
    bool operator==(const Orders&) const = default;
  } orders;

  struct Actors {
    std::int64_t idle_passivate_ms = 120'000;  // an idle actor stops after this
    std::int64_t terminal_passivate_ms = 5'000;  // an order in a final state stops sooner
    std::int64_t unknown_sku_ttl_ms = 1'000;     // a sku found in no stored item, known so long
    std::int64_t scheduler_threads = 0;          // 0: cores minus http.threads, at least 1
    bool operator==(const Actors&) const = default;
  } actors;

  struct Idempotency {
    std::int64_t ttl_s = 86'400;
    bool operator==(const Idempotency&) const = default;
  } idempotency;

  // Whole-config comparison, e.g. to check the documented default file against these defaults.
  bool operator==(const Config&) const = default;
};

// A bad configuration: `key` is the offending `section.key` (or the file path for a parse error).
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string key, const std::string& message)
      : std::runtime_error(key + ": " + message), key_(std::move(key)) {}
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

// Where configuration comes from, lowest precedence first. `environment` is the process
// environment as NAME=VALUE pairs (only EMPORIUM_* entries are read); `overrides` are
// `section.key=value` strings from --set flags.
struct ConfigSources {
  std::optional<std::string> file;  // TOML file; a missing explicit file is an error
  std::map<std::string, std::string> environment;
  std::vector<std::string> overrides;
};

// Loads and validates; throws ConfigError naming the key on the first problem.
Config load_config(const ConfigSources& sources);

// What a valid configuration still risks, one sentence each naming its key (logged at start).
std::vector<std::string> config_warnings(const Config& config);

// The process environment as a map, for ConfigSources::environment.
std::map<std::string, std::string> process_environment();

}  // namespace emporium
