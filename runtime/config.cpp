// Configuration loading: defaults, then the TOML file, then EMPORIUM_* variables, then --set flags.
// Every key is described once in kKeys; parsing, the environment mapping and range checks all
// walk that table, so adding a key is one line there.
#include "runtime/config.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string_view>
#include <variant>

extern char** environ;

namespace emporium {

namespace {

// A pointer to one field of a Config; the alternative held tells the field's type.
using FieldRef =
    std::variant<std::string*, std::optional<std::string>*, std::int64_t*, double*, bool*>;

// Field `Member` of section `Section`; one instantiation per key gives a plain function pointer.
template <auto Section, auto Member>
FieldRef field(Config& config) {
  return &((config.*Section).*Member);
}

// Inclusive limits of an integer key; the defaults mean "no limit".
struct Bounds {
  std::int64_t min = std::numeric_limits<std::int64_t>::min();
  std::int64_t max = std::numeric_limits<std::int64_t>::max();
};

struct Key {
  std::string_view name;  // "section.key"
  FieldRef (*field)(Config&);
  Bounds bounds{};  // checked for integer fields only
};

// Durations, counts and sizes without a stricter rule still cannot be negative.
constexpr Bounds kNonNegative{0};

using C = Config;
const Key kKeys[] = {
    {"node.name", field<&C::node, &C::Node::name>},
    {"node.data_dir", field<&C::node, &C::Node::data_dir>},
    {"http.listen", field<&C::http, &C::Http::listen>},
    {"http.header_limit_bytes", field<&C::http, &C::Http::header_limit_bytes>, {1024}},
    {"http.body_limit_bytes", field<&C::http, &C::Http::body_limit_bytes>, {1}},
    {"http.request_timeout_ms", field<&C::http, &C::Http::request_timeout_ms>, {1}},
    {"http.idle_timeout_ms", field<&C::http, &C::Http::idle_timeout_ms>, kNonNegative},
    {"http.header_timeout_ms", field<&C::http, &C::Http::header_timeout_ms>, {1}},
    {"http.body_timeout_ms", field<&C::http, &C::Http::body_timeout_ms>, {1}},
    {"http.max_in_flight", field<&C::http, &C::Http::max_in_flight>, {1}},
    {"http.max_connections", field<&C::http, &C::Http::max_connections>, {1}},
    {"http.threads", field<&C::http, &C::Http::threads>, {1, 64}},
    {"database.orders", field<&C::database, &C::Database::orders>},
    {"database.inventory", field<&C::database, &C::Database::inventory>},
    {"database.batch_size_max", field<&C::database, &C::Database::batch_size_max>, {1, 10'000}},
    {"database.batch_linger_us", field<&C::database, &C::Database::batch_linger_us>, {0, 100'000}},
    {"database.connections", field<&C::database, &C::Database::connections>, {1, 64}},
    {"database.retry_after_s", field<&C::database, &C::Database::retry_after_s>, kNonNegative},
    {"database.reconnect_interval_ms", field<&C::database, &C::Database::reconnect_interval_ms>,
     kNonNegative},
    {"database.idle_in_transaction_ms", field<&C::database, &C::Database::idle_in_transaction_ms>,
     {100, 3'600'000}},
    {"auth.issuer", field<&C::auth, &C::Auth::issuer>},
    {"auth.audience", field<&C::auth, &C::Auth::audience>},
    {"auth.hs256_secret", field<&C::auth, &C::Auth::hs256_secret>},
    {"auth.jwks_file", field<&C::auth, &C::Auth::jwks_file>},
    {"auth.leeway_s", field<&C::auth, &C::Auth::leeway_s>, {0, 3600}},
    {"rate_limit.rate", field<&C::rate_limit, &C::RateLimit::rate>},
    {"rate_limit.burst", field<&C::rate_limit, &C::RateLimit::burst>},
    {"rate_limit.place_rate", field<&C::rate_limit, &C::RateLimit::place_rate>},
    {"rate_limit.place_burst", field<&C::rate_limit, &C::RateLimit::place_burst>},
    {"rate_limit.entries_max", field<&C::rate_limit, &C::RateLimit::entries_max>, {1000}},
    {"cluster.enabled", field<&C::cluster, &C::Cluster::enabled>},
    {"cluster.listen", field<&C::cluster, &C::Cluster::listen>},
    {"cluster.advertise", field<&C::cluster, &C::Cluster::advertise>},
    {"cluster.heartbeat_interval_ms", field<&C::cluster, &C::Cluster::heartbeat_interval_ms>, {50, 60'000}},
    {"cluster.failure_timeout_ms", field<&C::cluster, &C::Cluster::failure_timeout_ms>, {200, 600'000}},
    {"cluster.connect_timeout_ms", field<&C::cluster, &C::Cluster::connect_timeout_ms>, {100, 60'000}},
    {"cluster.batch_max", field<&C::cluster, &C::Cluster::batch_max>, {1, 10'000}},
    {"cluster.calls_pending_max", field<&C::cluster, &C::Cluster::calls_pending_max>, {1}},
    {"cluster.call_timeout_ms", field<&C::cluster, &C::Cluster::call_timeout_ms>, {100, 600'000}},
    {"cluster.sweep_grace_ms", field<&C::cluster, &C::Cluster::sweep_grace_ms>, kNonNegative},
    {"cluster.tls_certificate", field<&C::cluster, &C::Cluster::tls_certificate>},
    {"cluster.tls_key", field<&C::cluster, &C::Cluster::tls_key>},
    {"cluster.tls_ca_file", field<&C::cluster, &C::Cluster::tls_ca_file>},
    {"payment.provider", field<&C::payment, &C::Payment::provider>},
    {"payment.url", field<&C::payment, &C::Payment::url>},
    {"payment.retries_max", field<&C::payment, &C::Payment::retries_max>, {0, 20}},
    {"payment.retry_backoff_ms", field<&C::payment, &C::Payment::retry_backoff_ms>, kNonNegative},
    {"payment.timeout_ms", field<&C::payment, &C::Payment::timeout_ms>, {100, 120'000}},
    {"payment.connections", field<&C::payment, &C::Payment::connections>, {1, 64}},
    {"payment.queue_max", field<&C::payment, &C::Payment::queue_max>, {1, 100'000}},
    {"orders.placement_timeout_ms", field<&C::orders, &C::Orders::placement_timeout_ms>, {1}},
    {"orders.reservation_ttl_ms", field<&C::orders, &C::Orders::reservation_ttl_ms>, {1000}},
    {"orders.reservation_check_ms", field<&C::orders, &C::Orders::reservation_check_ms>, {100, 86'400'000}},
    {"orders.reservation_commit_delay_ms", field<&C::orders, &C::Orders::reservation_commit_delay_ms>, {0, 60'000}},
    {"orders.items_max", field<&C::orders, &C::Orders::items_max>, {1, 1000}},
    {"orders.quantity_max", field<&C::orders, &C::Orders::quantity_max>, {1, 1'000'000}},
    {"orders.step_timeout_ms", field<&C::orders, &C::Orders::step_timeout_ms>, {100, 3'600'000}},
    {"orders.recovery_interval_ms", field<&C::orders, &C::Orders::recovery_interval_ms>, {100, 86'400'000}},
    {"orders.recovery_batch_max", field<&C::orders, &C::Orders::recovery_batch_max>, {1, 100'000}},
    {"actors.idle_passivate_ms", field<&C::actors, &C::Actors::idle_passivate_ms>, kNonNegative},
    {"actors.terminal_passivate_ms", field<&C::actors, &C::Actors::terminal_passivate_ms>,
     kNonNegative},
    {"actors.scheduler_threads", field<&C::actors, &C::Actors::scheduler_threads>, {0, 256}},
    {"actors.unknown_sku_ttl_ms", field<&C::actors, &C::Actors::unknown_sku_ttl_ms>, {0, 60'000}},
    // API.md: keys are kept at least 24 hours. At most ten years.
    {"idempotency.ttl_s", field<&C::idempotency, &C::Idempotency::ttl_s>, {86'400, 315'360'000}},
};

const Key* find_key(std::string_view name) {
  for (const Key& key : kKeys) {
    if (key.name == name) return &key;
  }
  return nullptr;
}

bool is_known_section(std::string_view section) {
  for (const Key& key : kKeys) {
    if (key.name.substr(0, key.name.find('.')) == section) return true;
  }
  return false;
}

// "rate_limit.rate" -> "EMPORIUM_RATE_LIMIT_RATE". Generated from the key because sections and
// keys contain underscores, so a variable name cannot be split back unambiguously.
std::string env_var_name(std::string_view key) {
  std::string name = "EMPORIUM_";
  for (char ch : key) {
    name += ch == '.' ? '_' : static_cast<char>(ch >= 'a' && ch <= 'z' ? ch - 'a' + 'A' : ch);
  }
  return name;
}

[[noreturn]] void type_error(std::string_view key, std::string_view expected,
                             const std::string& detail) {
  throw ConfigError(std::string(key), "expected " + std::string(expected) + detail);
}

// --- TOML values ------------------------------------------------------------------------------

std::string toml_location(const toml::node& value) {
  const toml::source_region& source = value.source();
  std::string where = " (";
  if (source.path) where += *source.path + " ";
  return where + "line " + std::to_string(source.begin.line) + ")";
}

void assign_toml(std::string& field, const toml::node& value, std::string_view key) {
  const auto* text = value.as_string();
  if (!text) type_error(key, "a string", toml_location(value));
  field = text->get();
}

void assign_toml(std::optional<std::string>& field, const toml::node& value, std::string_view key) {
  std::string text;
  assign_toml(text, value, key);
  field = std::move(text);
}

void assign_toml(std::int64_t& field, const toml::node& value, std::string_view key) {
  const auto* number = value.as_integer();
  if (!number) type_error(key, "an integer", toml_location(value));
  field = number->get();
}

// TOML writes 200 as an integer; a double key accepts it so users need not write 200.0.
void assign_toml(double& field, const toml::node& value, std::string_view key) {
  if (const auto* number = value.as_floating_point()) {
    field = number->get();
  } else if (const auto* whole = value.as_integer()) {
    field = static_cast<double>(whole->get());
  } else {
    type_error(key, "a number", toml_location(value));
  }
}

void assign_toml(bool& field, const toml::node& value, std::string_view key) {
  const auto* flag = value.as_boolean();
  if (!flag) type_error(key, "a boolean", toml_location(value));
  field = flag->get();
}

void set_from_toml(Config& config, const Key& key, const toml::node& value) {
  std::visit([&](auto* target) { assign_toml(*target, value, key.name); }, key.field(config));
}

toml::table parse_toml_file(const std::string& path) {
  // An explicit file that is absent is an error, not a silent fall-back to defaults.
  if (!std::filesystem::exists(path)) throw ConfigError(path, "configuration file not found");
  std::ifstream in(path);
  // An ifstream opens a directory without complaint, so check that separately.
  if (!in || std::filesystem::is_directory(path)) {
    throw ConfigError(path, "cannot read configuration file");
  }
  try {
    return toml::parse(in, path);
  } catch (const toml::parse_error& error) {
    const auto& begin = error.source().begin;
    throw ConfigError(path, "parse error at line " + std::to_string(begin.line) + ", column " +
                                std::to_string(begin.column) + ": " +
                                std::string(error.description()));
  }
}

// Settings live in [section] tables; anything else, at any level, is an unknown key.
void apply_file(const std::string& path, Config& config) {
  const toml::table root = parse_toml_file(path);
  for (const auto& [section_key, section_node] : root) {
    const std::string section(section_key.str());
    const toml::table* table = section_node.as_table();
    if (!table) throw ConfigError(section, "unknown key (settings belong in a [section])");
    if (!is_known_section(section) && table->empty()) {
      throw ConfigError(section, "unknown section");
    }
    for (const auto& [name, value] : *table) {
      const std::string full = section + "." + std::string(name.str());
      const Key* key = find_key(full);
      if (!key) {
        const std::string problem =
            is_known_section(section) ? "unknown key" : "unknown section [" + section + "]";
        throw ConfigError(full, problem + toml_location(value));
      }
      set_from_toml(config, *key, value);
    }
  }
}

// --- Text values (environment and --set) ------------------------------------------------------

// `origin` names where the text came from, so the message points at the variable or flag.
std::string text_detail(std::string_view text, std::string_view origin) {
  return ", got \"" + std::string(text) + "\" (from " + std::string(origin) + ")";
}

// Integers are strict: the whole text must be the number, so "8k" or " 8" is an error.
template <typename Number>
std::optional<Number> parse_number(std::string_view text) {
  Number number{};
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, number);
  if (text.empty() || error != std::errc{} || stop != end) return std::nullopt;
  return number;
}

void assign_text(std::string& field, std::string_view text, std::string_view, std::string_view) {
  field = text;
}

void assign_text(std::optional<std::string>& field, std::string_view text, std::string_view,
                 std::string_view) {
  field = std::string(text);
}

void assign_text(std::int64_t& field, std::string_view text, std::string_view key,
                 std::string_view origin) {
  const auto number = parse_number<std::int64_t>(text);
  if (!number) type_error(key, "an integer", text_detail(text, origin));
  field = *number;
}

// from_chars accepts "inf" and "nan", which no setting means, so those are rejected too.
void assign_text(double& field, std::string_view text, std::string_view key,
                 std::string_view origin) {
  const auto number = parse_number<double>(text);
  if (!number || !std::isfinite(*number)) type_error(key, "a number", text_detail(text, origin));
  field = *number;
}

void assign_text(bool& field, std::string_view text, std::string_view key,
                 std::string_view origin) {
  if (text != "true" && text != "false") {
    type_error(key, "a boolean (true or false)", text_detail(text, origin));
  }
  field = text == "true";
}

void set_from_text(Config& config, const Key& key, std::string_view text, std::string_view origin) {
  std::visit([&](auto* target) { assign_text(*target, text, key.name, origin); },
             key.field(config));
}

// Variables named after a known key are read. One named after a known section but no key of it
// (EMPORIUM_HTTP_LISTN) is an unknown key, as in the file or --set; other EMPORIUM_* variables
// (EMPORIUM_BIN, say) belong to someone else (scripts, tests) and are ignored.
void apply_environment(const std::map<std::string, std::string>& environment, Config& config) {
  std::set<std::string> known;
  for (const Key& key : kKeys) {
    const std::string variable = env_var_name(key.name);
    known.insert(variable);
    const auto found = environment.find(variable);
    if (found != environment.end()) set_from_text(config, key, found->second, variable);
  }
  std::set<std::string> sections;
  for (const Key& key : kKeys) sections.insert(std::string(key.name.substr(0, key.name.find('.'))));
  for (const auto& [variable, value] : environment) {
    if (variable.rfind("EMPORIUM_", 0) != 0 || known.count(variable)) continue;
    for (const auto& section : sections) {
      auto prefix = env_var_name(section) + "_";
      if (variable.size() <= prefix.size() || variable.rfind(prefix, 0) != 0) continue;
      std::string rest = variable.substr(prefix.size());
      for (auto& ch : rest) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
      throw ConfigError(section + "." + rest, "unknown key (the environment variable " + variable + ")");
    }
  }
}

void apply_override(const std::string& assignment, Config& config) {
  const auto equals = assignment.find('=');
  if (equals == std::string::npos) {
    throw ConfigError(assignment, "--set expects section.key=value");
  }
  const std::string name = assignment.substr(0, equals);
  const Key* key = find_key(name);
  if (!key) throw ConfigError(name, "unknown key in --set");
  set_from_text(config, *key, std::string_view(assignment).substr(equals + 1), "--set");
}

// --- Validation -------------------------------------------------------------------------------

void check_bounds(Config& config) {
  for (const Key& key : kKeys) {
    const FieldRef ref = key.field(config);
    const auto* value = std::get_if<std::int64_t*>(&ref);
    if (!value) continue;
    const std::int64_t number = **value;
    const Bounds& b = key.bounds;
    if (number >= b.min && number <= b.max) continue;
    std::string rule = b.max == Bounds{}.max ? "at least " + std::to_string(b.min)
                       : b.min == Bounds{}.min
                           ? "at most " + std::to_string(b.max)
                           : "between " + std::to_string(b.min) + " and " + std::to_string(b.max);
    throw ConfigError(std::string(key.name), "must be " + rule + ", got " + std::to_string(number));
  }
}

void check_rate_limit(const Config::RateLimit& limit) {
  // Written as !(x > 0) so that a NaN from a TOML file (nan is valid TOML) also fails.
  if (!(limit.rate > 0)) throw ConfigError("rate_limit.rate", "must be greater than 0");
  if (!(limit.burst >= 1)) throw ConfigError("rate_limit.burst", "must be at least 1");
  if (!(limit.place_rate >= 0)) throw ConfigError("rate_limit.place_rate", "must be 0 (use rate) or more");
  if (!(limit.place_burst == 0 || limit.place_burst >= 1))
    throw ConfigError("rate_limit.place_burst", "must be 0 (use burst) or at least 1");
}

bool is_ip_address(int family, std::string_view text) {
  in6_addr buffer{};  // large enough for either family
  return inet_pton(family, std::string(text).c_str(), &buffer) == 1;
}

bool is_port(std::string_view text) {
  if (text.size() > 5) return false;
  const auto port = parse_number<std::int64_t>(text);
  // Digits only: from_chars would accept a leading '-'.
  return port && text.front() != '-' && *port <= 65535;
}

// A host we can bind to: IPv4 address, localhost, or [IPv6 address].
bool is_bindable_host(std::string_view host) {
  if (host == "localhost") return true;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    return is_ip_address(AF_INET6, host.substr(1, host.size() - 2));
  }
  return is_ip_address(AF_INET, host);
}

// Another node may reach us by DNS name, so an advertised host may also be a hostname.
bool is_reachable_host(std::string_view host) {
  if (is_bindable_host(host)) return true;
  if (host.empty() || host.size() > 253) return false;
  for (char ch : host) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '.' || ch == '-';
    if (!ok) return false;
  }
  return true;
}

// host:port, split at the last colon so that "[::1]:80" keeps its brackets in the host.
void check_address(std::string_view key, std::string_view address,
                   bool (*valid_host)(std::string_view)) {
  const auto colon = address.rfind(':');
  const bool ok = colon != std::string_view::npos && valid_host(address.substr(0, colon)) &&
                  is_port(address.substr(colon + 1));
  if (!ok) {
    throw ConfigError(std::string(key),
                      "expected host:port with port 0-65535, got \"" + std::string(address) + "\"");
  }
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool is_sqlite(std::string_view url) { return starts_with(url, "sqlite:"); }

void check_database_url(std::string_view key, std::string_view url) {
  // A path after sqlite:, a host or more after the PostgreSQL scheme.
  if ((is_sqlite(url) && url.size() > 7) || (starts_with(url, "postgresql://") && url.size() > 13) ||
      (starts_with(url, "postgres://") && url.size() > 11)) {
    return;
  }
  throw ConfigError(std::string(key),
                    "expected sqlite:PATH or postgresql://..., got \"" + std::string(url) + "\"");
}

// Cluster nodes share the databases; SQLite files are local to one node.
void check_cluster_databases(const Config& config) {
  if (!config.cluster.enabled) return;
  for (const auto& [key, url] : {std::pair{"database.orders", &config.database.orders},
                                 std::pair{"database.inventory", &config.database.inventory}}) {
    if (is_sqlite(*url)) {
      throw ConfigError(
          "cluster.enabled",
          std::string("a cluster needs PostgreSQL databases, but ") + key + " is \"" + *url + "\"");
    }
  }
}

void check_payment(const Config::Payment& payment) {
  if (payment.provider != "simulated" && payment.provider != "http") {
    throw ConfigError("payment.provider",
                      "expected simulated or http, got \"" + payment.provider + "\"");
  }
  if (payment.provider == "http" && payment.url.empty()) {
    throw ConfigError("payment.url", "required when payment.provider is http");
  }
  // (The whole URL is checked when the provider is made: http/payment_client.cpp.)
  if (payment.provider == "http" &&
      (payment.url.rfind("http://", 0) != 0 || payment.url.size() == std::string_view("http://").size())) {
    throw ConfigError("payment.url", "expected http://HOST[:PORT][/PATH], got \"" + payment.url + "\"");
  }
}

// The name appears in logs, metrics and cluster membership, so keep it to a safe alphabet.
void check_node_name(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64;
  for (char ch : name) {
    ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                ch == '.' || ch == '_' || ch == '-');
  }
  if (!ok) {
    throw ConfigError("node.name",
                      "expected 1-64 characters of A-Z a-z 0-9 . _ -, got \"" + name + "\"");
  }
}

constexpr std::int64_t kUnitsPerOrderMax = 9'000'000;

// An http charge's longest time: every attempt to its timeout, and the backoffs between them.
double longest_charge_ms(const Config::Payment& p) {
  return static_cast<double>(p.timeout_ms) * static_cast<double>(p.retries_max + 1) +
         static_cast<double>(p.retry_backoff_ms) * (std::pow(2.0, static_cast<double>(p.retries_max)) - 1);
}

void validate(Config& config) {
  check_node_name(config.node.name);
  check_bounds(config);
  check_rate_limit(config.rate_limit);
  check_address("http.listen", config.http.listen, is_bindable_host);
  check_address("cluster.listen", config.cluster.listen, is_bindable_host);
  if (!config.cluster.advertise.empty()) {
    check_address("cluster.advertise", config.cluster.advertise, is_reachable_host);
  }
  // Empty, every token would be refused (the verifier fails closed on them).
  if (config.auth.issuer.empty()) throw ConfigError("auth.issuer", "must not be empty");
  if (config.auth.audience.empty()) throw ConfigError("auth.audience", "must not be empty");
  check_database_url("database.orders", config.database.orders);
  check_database_url("database.inventory", config.database.inventory);
  check_cluster_databases(config);
  {
    const auto& c = config.cluster;
    int set = !c.tls_certificate.empty() + !c.tls_key.empty() + !c.tls_ca_file.empty();
    if (set != 0 && set != 3)
      throw ConfigError(c.tls_certificate.empty() ? "cluster.tls_certificate"
                        : c.tls_key.empty()       ? "cluster.tls_key"
                                                  : "cluster.tls_ca_file",
                        "TLS between nodes needs cluster.tls_certificate, cluster.tls_key and "
                        "cluster.tls_ca_file together");
    for (auto [key, path] : {std::pair{"cluster.tls_certificate", &c.tls_certificate},
                             std::pair{"cluster.tls_key", &c.tls_key},
                             std::pair{"cluster.tls_ca_file", &c.tls_ca_file}})
      if (!path->empty() && !std::filesystem::is_regular_file(*path))
        throw ConfigError(key, "no such file: " + *path);
  }
  if (config.cluster.failure_timeout_ms < 2 * config.cluster.heartbeat_interval_ms)
    throw ConfigError("cluster.failure_timeout_ms",
                      "must be at least twice cluster.heartbeat_interval_ms");
  check_payment(config.payment);
  // An order's total is at most items_max x quantity_max units of at most 10^12 cents each
  // (http/codec.cpp): it must fit in 64 bits.
  if (config.orders.items_max * config.orders.quantity_max > kUnitsPerOrderMax)
    throw ConfigError("orders.quantity_max",
                      "orders.items_max x orders.quantity_max must be at most " +
                          std::to_string(kUnitsPerOrderMax) +
                          " (an order's total, at up to 10^12 cents a unit, must fit in 64 bits)");
  // An empty secret verifies no token: only a node that trusts a JWKS may have none.
  if (config.auth.hs256_secret && config.auth.hs256_secret->empty() && config.auth.jwks_file.empty())
    throw ConfigError("auth.hs256_secret", "may be empty only when auth.jwks_file is set");
  // An http charge, with all its attempts, fits in the order's step: otherwise the order gives up
  // on a charge still going (and compensates while it runs).
  if (config.payment.provider == "http") {
    double charge_ms = longest_charge_ms(config.payment);
    if (charge_ms >= static_cast<double>(config.orders.step_timeout_ms))
      throw ConfigError("payment.timeout_ms",
                        "payment.timeout_ms x (payment.retries_max + 1) plus the backoffs (" +
                            std::to_string(static_cast<std::int64_t>(charge_ms)) +
                            " ms) must be below orders.step_timeout_ms (" +
                            std::to_string(config.orders.step_timeout_ms) + " ms)");
  }
}

}  // namespace

Config load_config(const ConfigSources& sources) {
  Config config;
  if (sources.file) apply_file(*sources.file, config);
  apply_environment(sources.environment, config);
  for (const std::string& assignment : sources.overrides) apply_override(assignment, config);
  validate(config);
  if (config.cluster.advertise.empty()) config.cluster.advertise = config.cluster.listen;
  return config;
}

std::map<std::string, std::string> process_environment() {
  std::map<std::string, std::string> environment;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const auto equals = text.find('=');
    if (equals == std::string_view::npos) continue;
    // emplace keeps the first of duplicate names, as getenv does.
    environment.emplace(std::string(text.substr(0, equals)), std::string(text.substr(equals + 1)));
  }
  return environment;
}

std::vector<std::string> config_warnings(const Config& config) {
  std::vector<std::string> out;
  // In a cluster, an order untouched for the grace is taken for abandoned by its new owner (the
  // sweep, a cancel): an old owner still alive whose http charge takes longer is compensated
  // beside it (README, "Settling after a view change").
  if (config.cluster.enabled && config.payment.provider == "http") {
    auto charge_ms = static_cast<std::int64_t>(longest_charge_ms(config.payment));
    if (config.cluster.sweep_grace_ms <= charge_ms)
      out.push_back("cluster.sweep_grace_ms (" + std::to_string(config.cluster.sweep_grace_ms) +
                    " ms) is not above an http charge's longest time (" + std::to_string(charge_ms) +
                    " ms: payment.timeout_ms x (payment.retries_max + 1) plus the backoffs): after a "
                    "view change, an order still charging on its old owner may be compensated "
                    "beside the charge");
  }
  // A cancel waits for an order changed within the grace after a view change: past the request's
  // time, its caller gets no answer while it still applies.
  if (config.cluster.enabled && config.cluster.sweep_grace_ms >= config.http.request_timeout_ms)
    out.push_back("cluster.sweep_grace_ms (" + std::to_string(config.cluster.sweep_grace_ms) +
                  " ms) is not below http.request_timeout_ms (" +
                  std::to_string(config.http.request_timeout_ms) +
                  " ms): a cancel waiting for an order after a view change may outlast its request");
  return out;
}

}  // namespace emporium
