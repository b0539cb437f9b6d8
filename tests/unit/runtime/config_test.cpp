// Configuration loading: precedence of file, environment and --set, and errors naming the key.
#include "runtime/config.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace emporium {
namespace {

namespace fs = std::filesystem;

// Loads expecting a ConfigError and returns it, so a test can check which key it names.
ConfigError load_error(const ConfigSources& sources) {
  try {
    load_config(sources);
  } catch (const ConfigError& error) {
    return error;
  }
  ADD_FAILURE() << "expected a ConfigError";
  return ConfigError("<none>", "no error was raised");
}

ConfigSources with_set(std::vector<std::string> overrides) {
  ConfigSources sources;
  sources.overrides = std::move(overrides);
  return sources;
}

ConfigSources with_env(std::map<std::string, std::string> environment) {
  ConfigSources sources;
  sources.environment = std::move(environment);
  return sources;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "emporium-config-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }

  void TearDown() override { fs::remove_all(dir_); }

  // Writes a TOML file into the test's directory and returns sources that load it.
  ConfigSources file(const std::string& text, const std::string& name = "emporium.toml") {
    const fs::path path = dir_ / name;
    std::ofstream(path) << text;
    ConfigSources sources;
    sources.file = path.string();
    return sources;
  }

  fs::path dir_;
};

// --- Defaults and precedence ---

TEST_F(ConfigTest, DefaultsMatchTheDocumentedValues) {
  const Config config = load_config({});
  EXPECT_EQ(config.node.name, "node-1");
  EXPECT_EQ(config.node.data_dir, "data");
  EXPECT_EQ(config.http.listen, "127.0.0.1:8080");
  EXPECT_EQ(config.http.header_limit_bytes, 8192);
  EXPECT_EQ(config.http.body_limit_bytes, 65536);
  EXPECT_EQ(config.http.threads, 2);
  EXPECT_EQ(config.database.orders, "sqlite:data/orders.db");
  EXPECT_EQ(config.database.inventory, "sqlite:data/inventory.db");
  EXPECT_EQ(config.auth.issuer, "emporium-dev");
  EXPECT_EQ(config.auth.audience, "emporium");
  EXPECT_FALSE(config.auth.hs256_secret.has_value());
  EXPECT_EQ(config.auth.jwks_file, "");
  EXPECT_EQ(config.rate_limit.rate, 200);
  EXPECT_EQ(config.rate_limit.burst, 400);
  EXPECT_FALSE(config.cluster.enabled);
  EXPECT_EQ(config.cluster.listen, "127.0.0.1:7000");
  EXPECT_EQ(config.payment.provider, "simulated");
}

TEST_F(ConfigTest, EmptyAdvertiseBecomesListen) {
  EXPECT_EQ(load_config({}).cluster.advertise, "127.0.0.1:7000");
  EXPECT_EQ(load_config(with_set({"cluster.listen=0.0.0.0:7100"})).cluster.advertise,
            "0.0.0.0:7100");
}

TEST_F(ConfigTest, ExplicitAdvertiseIsKept) {
  const Config config = load_config(with_set({"cluster.advertise=node-2.internal:7000"}));
  EXPECT_EQ(config.cluster.advertise, "node-2.internal:7000");
}

// The documented file must list the built-in defaults, or the documentation would lie.
TEST_F(ConfigTest, DocumentedDefaultFileMatchesBuiltInDefaults) {
  const fs::path documented = fs::path(EMPORIUM_SOURCE_DIR) / "config" / "emporium.toml";
  ASSERT_TRUE(fs::exists(documented)) << documented;
  ConfigSources sources;
  sources.file = documented.string();
  EXPECT_TRUE(load_config(sources) == load_config({}));
}

TEST_F(ConfigTest, FileValuesOverrideDefaults) {
  const Config config = load_config(file(R"(
[http]
listen = "0.0.0.0:9090"
threads = 4
[rate_limit]
rate = 12.5
[auth]
hs256_secret = "s3cret"
)"));
  EXPECT_EQ(config.http.listen, "0.0.0.0:9090");
  EXPECT_EQ(config.http.threads, 4);
  EXPECT_EQ(config.rate_limit.rate, 12.5);
  EXPECT_EQ(config.auth.hs256_secret, "s3cret");
  EXPECT_EQ(config.http.body_limit_bytes, 65536) << "keys not in the file keep their default";
}

TEST_F(ConfigTest, EnvironmentOverridesFile) {
  ConfigSources sources = file("[http]\nthreads = 4\nlisten = \"127.0.0.1:9000\"\n");
  sources.environment = {{"EMPORIUM_HTTP_THREADS", "6"}};
  const Config config = load_config(sources);
  EXPECT_EQ(config.http.threads, 6);
  EXPECT_EQ(config.http.listen, "127.0.0.1:9000");
}

TEST_F(ConfigTest, SetOverridesEnvironment) {
  ConfigSources sources = file("[http]\nthreads = 4\n");
  sources.environment = {{"EMPORIUM_HTTP_THREADS", "6"}};
  sources.overrides = {"http.threads=8"};
  EXPECT_EQ(load_config(sources).http.threads, 8);
}

TEST_F(ConfigTest, LaterSetWins) {
  EXPECT_EQ(load_config(with_set({"http.threads=2", "http.threads=3"})).http.threads, 3);
}

TEST_F(ConfigTest, SetValueMayContainEqualsSigns) {
  EXPECT_EQ(load_config(with_set({"auth.hs256_secret=a=b="})).auth.hs256_secret, "a=b=");
}

TEST_F(ConfigTest, Hs256SecretMayBeSetEmptyWithAJwksFile) {
  const Config config = load_config(
      with_env({{"EMPORIUM_AUTH_HS256_SECRET", ""}, {"EMPORIUM_AUTH_JWKS_FILE", "keys.json"}}));
  ASSERT_TRUE(config.auth.hs256_secret.has_value());
  EXPECT_EQ(*config.auth.hs256_secret, "");
}

TEST_F(ConfigTest, AnEmptyHs256SecretWithoutAJwksFileStopsTheNode) {
  // It would verify no token: every request would be 401.
  auto err = load_error(with_env({{"EMPORIUM_AUTH_HS256_SECRET", ""}}));
  EXPECT_EQ(err.key(), "auth.hs256_secret");
  EXPECT_NE(std::string(err.what()).find("auth.jwks_file"), std::string::npos);
}

TEST_F(ConfigTest, AnOrdersTotalMustFitIn64Bits) {
  // items_max x quantity_max units at up to 10^12 cents each: at most 9,000,000 units.
  const Config edge = load_config(with_set({"orders.items_max=9", "orders.quantity_max=1000000"}));
  EXPECT_EQ(edge.orders.items_max * edge.orders.quantity_max, 9'000'000);
  auto err = load_error(with_set({"orders.items_max=10", "orders.quantity_max=1000000"}));
  EXPECT_EQ(err.key(), "orders.quantity_max");
  EXPECT_EQ(load_error(with_set({"orders.items_max=1000", "orders.quantity_max=9001"})).key(),
            "orders.quantity_max");
  EXPECT_EQ(load_config(with_set({"orders.items_max=1000", "orders.quantity_max=9000"})).orders.quantity_max,
            9000);
}

TEST_F(ConfigTest, IdempotencyKeysAreKeptAtLeastADay) {
  EXPECT_EQ(load_config(with_set({"idempotency.ttl_s=86400"})).idempotency.ttl_s, 86'400);
  EXPECT_EQ(load_config(with_set({"idempotency.ttl_s=315360000"})).idempotency.ttl_s, 315'360'000);
  EXPECT_EQ(load_error(with_set({"idempotency.ttl_s=86399"})).key(), "idempotency.ttl_s");
  EXPECT_EQ(load_error(with_set({"idempotency.ttl_s=315360001"})).key(), "idempotency.ttl_s");
}

TEST_F(ConfigTest, UnknownSkusAreKnownAtMostAMinute) {
  const std::string key = "actors.unknown_sku_ttl_ms";
  EXPECT_EQ(load_config(with_set({key + "=0"})).actors.unknown_sku_ttl_ms, 0);
  EXPECT_EQ(load_config(with_set({key + "=60000"})).actors.unknown_sku_ttl_ms, 60'000);
  EXPECT_EQ(load_error(with_set({key + "=-1"})).key(), key);
  EXPECT_EQ(load_error(with_set({key + "=60001"})).key(), key);
}

TEST_F(ConfigTest, IntegerIsAcceptedForADoubleInFile) {
  EXPECT_EQ(load_config(file("[rate_limit]\nburst = 7\n")).rate_limit.burst, 7.0);
}

// --- Every key is reachable ---

// One sample per key of the struct, written from config.hpp independently of the loader's table
// so that a key missing from that table fails here. Values differ from the defaults and are valid.
struct KeySample {
  std::string key;
  std::string variable;
  std::string value;
  std::function<bool(const Config&)> is_set;
};

const std::vector<KeySample>& every_key() {
  static const std::vector<KeySample> samples = {
      {"node.name", "EMPORIUM_NODE_NAME", "node-7",
       [](const Config& c) { return c.node.name == "node-7"; }},
      {"node.data_dir", "EMPORIUM_NODE_DATA_DIR", "/var/lib/e",
       [](const Config& c) { return c.node.data_dir == "/var/lib/e"; }},
      {"http.listen", "EMPORIUM_HTTP_LISTEN", "[::1]:0",
       [](const Config& c) { return c.http.listen == "[::1]:0"; }},
      {"http.header_limit_bytes", "EMPORIUM_HTTP_HEADER_LIMIT_BYTES", "4096",
       [](const Config& c) { return c.http.header_limit_bytes == 4096; }},
      {"http.body_limit_bytes", "EMPORIUM_HTTP_BODY_LIMIT_BYTES", "1000",
       [](const Config& c) { return c.http.body_limit_bytes == 1000; }},
      {"http.request_timeout_ms", "EMPORIUM_HTTP_REQUEST_TIMEOUT_MS", "1500",
       [](const Config& c) { return c.http.request_timeout_ms == 1500; }},
      {"http.idle_timeout_ms", "EMPORIUM_HTTP_IDLE_TIMEOUT_MS", "2500",
       [](const Config& c) { return c.http.idle_timeout_ms == 2500; }},
      {"http.header_timeout_ms", "EMPORIUM_HTTP_HEADER_TIMEOUT_MS", "2600",
       [](const Config& c) { return c.http.header_timeout_ms == 2600; }},
      {"http.body_timeout_ms", "EMPORIUM_HTTP_BODY_TIMEOUT_MS", "2700",
       [](const Config& c) { return c.http.body_timeout_ms == 2700; }},
      {"http.max_in_flight", "EMPORIUM_HTTP_MAX_IN_FLIGHT", "17",
       [](const Config& c) { return c.http.max_in_flight == 17; }},
      {"http.max_connections", "EMPORIUM_HTTP_MAX_CONNECTIONS", "10",
       [](const Config& c) { return c.http.max_connections == 10; }},
      {"http.threads", "EMPORIUM_HTTP_THREADS", "64",
       [](const Config& c) { return c.http.threads == 64; }},
      {"database.orders", "EMPORIUM_DATABASE_ORDERS", "postgres://db/o2",
       [](const Config& c) { return c.database.orders == "postgres://db/o2"; }},
      {"database.inventory", "EMPORIUM_DATABASE_INVENTORY", "postgres://db/i2",
       [](const Config& c) { return c.database.inventory == "postgres://db/i2"; }},
      {"database.batch_size_max", "EMPORIUM_DATABASE_BATCH_SIZE_MAX", "10000",
       [](const Config& c) { return c.database.batch_size_max == 10000; }},
      {"database.batch_linger_us", "EMPORIUM_DATABASE_BATCH_LINGER_US", "100000",
       [](const Config& c) { return c.database.batch_linger_us == 100000; }},
      {"database.connections", "EMPORIUM_DATABASE_CONNECTIONS", "8",
       [](const Config& c) { return c.database.connections == 8; }},
      {"database.retry_after_s", "EMPORIUM_DATABASE_RETRY_AFTER_S", "9",
       [](const Config& c) { return c.database.retry_after_s == 9; }},
      {"database.reconnect_interval_ms", "EMPORIUM_DATABASE_RECONNECT_INTERVAL_MS", "333",
       [](const Config& c) { return c.database.reconnect_interval_ms == 333; }},
      {"database.idle_in_transaction_ms", "EMPORIUM_DATABASE_IDLE_IN_TRANSACTION_MS", "100",
       [](const Config& c) { return c.database.idle_in_transaction_ms == 100; }},
      {"auth.issuer", "EMPORIUM_AUTH_ISSUER", "iss-x",
       [](const Config& c) { return c.auth.issuer == "iss-x"; }},
      {"auth.audience", "EMPORIUM_AUTH_AUDIENCE", "aud-x",
       [](const Config& c) { return c.auth.audience == "aud-x"; }},
      {"auth.hs256_secret", "EMPORIUM_AUTH_HS256_SECRET", "k3y",
       [](const Config& c) { return c.auth.hs256_secret == "k3y"; }},
      {"auth.jwks_file", "EMPORIUM_AUTH_JWKS_FILE", "/etc/jwks.json",
       [](const Config& c) { return c.auth.jwks_file == "/etc/jwks.json"; }},
      {"auth.leeway_s", "EMPORIUM_AUTH_LEEWAY_S", "3600",
       [](const Config& c) { return c.auth.leeway_s == 3600; }},
      {"rate_limit.rate", "EMPORIUM_RATE_LIMIT_RATE", "0.5",
       [](const Config& c) { return c.rate_limit.rate == 0.5; }},
      {"rate_limit.burst", "EMPORIUM_RATE_LIMIT_BURST", "1e3",
       [](const Config& c) { return c.rate_limit.burst == 1000.0; }},
      {"rate_limit.place_rate", "EMPORIUM_RATE_LIMIT_PLACE_RATE", "5",
       [](const Config& c) { return c.rate_limit.place_rate == 5.0; }},
      {"rate_limit.place_burst", "EMPORIUM_RATE_LIMIT_PLACE_BURST", "10",
       [](const Config& c) { return c.rate_limit.place_burst == 10.0; }},
      {"rate_limit.entries_max", "EMPORIUM_RATE_LIMIT_ENTRIES_MAX", "5000",
       [](const Config& c) { return c.rate_limit.entries_max == 5000; }},
      {"cluster.enabled", "EMPORIUM_CLUSTER_ENABLED", "true",
       [](const Config& c) { return c.cluster.enabled; }},
      {"cluster.listen", "EMPORIUM_CLUSTER_LISTEN", "localhost:7001",
       [](const Config& c) { return c.cluster.listen == "localhost:7001"; }},
      {"cluster.advertise", "EMPORIUM_CLUSTER_ADVERTISE", "10.0.0.2:7000",
       [](const Config& c) { return c.cluster.advertise == "10.0.0.2:7000"; }},
      {"payment.provider", "EMPORIUM_PAYMENT_PROVIDER", "http",
       [](const Config& c) { return c.payment.provider == "http"; }},
      {"payment.url", "EMPORIUM_PAYMENT_URL", "http://pay/v2",
       [](const Config& c) { return c.payment.url == "http://pay/v2"; }},
      {"payment.retries_max", "EMPORIUM_PAYMENT_RETRIES_MAX", "20",
       [](const Config& c) { return c.payment.retries_max == 20; }},
      {"payment.retry_backoff_ms", "EMPORIUM_PAYMENT_RETRY_BACKOFF_MS", "7",
       [](const Config& c) { return c.payment.retry_backoff_ms == 7; }},
      {"payment.timeout_ms", "EMPORIUM_PAYMENT_TIMEOUT_MS", "250",
       [](const Config& c) { return c.payment.timeout_ms == 250; }},
      {"payment.connections", "EMPORIUM_PAYMENT_CONNECTIONS", "9",
       [](const Config& c) { return c.payment.connections == 9; }},
      {"payment.queue_max", "EMPORIUM_PAYMENT_QUEUE_MAX", "10",
       [](const Config& c) { return c.payment.queue_max == 10; }},
      {"orders.placement_timeout_ms", "EMPORIUM_ORDERS_PLACEMENT_TIMEOUT_MS", "1",
       [](const Config& c) { return c.orders.placement_timeout_ms == 1; }},
      {"orders.reservation_ttl_ms", "EMPORIUM_ORDERS_RESERVATION_TTL_MS", "1000",
       [](const Config& c) { return c.orders.reservation_ttl_ms == 1000; }},
      {"orders.reservation_check_ms", "EMPORIUM_ORDERS_RESERVATION_CHECK_MS", "250",
       [](const Config& c) { return c.orders.reservation_check_ms == 250; }},
      {"orders.reservation_commit_delay_ms", "EMPORIUM_ORDERS_RESERVATION_COMMIT_DELAY_MS", "40",
       [](const Config& c) { return c.orders.reservation_commit_delay_ms == 40; }},
      {"orders.items_max", "EMPORIUM_ORDERS_ITEMS_MAX", "1000",
       [](const Config& c) { return c.orders.items_max == 1000; }},
      {"orders.quantity_max", "EMPORIUM_ORDERS_QUANTITY_MAX", "5",
       [](const Config& c) { return c.orders.quantity_max == 5; }},
      {"actors.idle_passivate_ms", "EMPORIUM_ACTORS_IDLE_PASSIVATE_MS", "10",
       [](const Config& c) { return c.actors.idle_passivate_ms == 10; }},
      {"actors.terminal_passivate_ms", "EMPORIUM_ACTORS_TERMINAL_PASSIVATE_MS", "11",
       [](const Config& c) { return c.actors.terminal_passivate_ms == 11; }},
      {"actors.scheduler_threads", "EMPORIUM_ACTORS_SCHEDULER_THREADS", "3",
       [](const Config& c) { return c.actors.scheduler_threads == 3; }},
      {"actors.unknown_sku_ttl_ms", "EMPORIUM_ACTORS_UNKNOWN_SKU_TTL_MS", "250",
       [](const Config& c) { return c.actors.unknown_sku_ttl_ms == 250; }},
      {"idempotency.ttl_s", "EMPORIUM_IDEMPOTENCY_TTL_S", "172800",
       [](const Config& c) { return c.idempotency.ttl_s == 172800; }},
      {"cluster.heartbeat_interval_ms", "EMPORIUM_CLUSTER_HEARTBEAT_INTERVAL_MS", "500",
       [](const Config& c) { return c.cluster.heartbeat_interval_ms == 500; }},
      {"cluster.failure_timeout_ms", "EMPORIUM_CLUSTER_FAILURE_TIMEOUT_MS", "5000",
       [](const Config& c) { return c.cluster.failure_timeout_ms == 5000; }},
      {"cluster.connect_timeout_ms", "EMPORIUM_CLUSTER_CONNECT_TIMEOUT_MS", "3000",
       [](const Config& c) { return c.cluster.connect_timeout_ms == 3000; }},
      {"cluster.batch_max", "EMPORIUM_CLUSTER_BATCH_MAX", "7",
       [](const Config& c) { return c.cluster.batch_max == 7; }},
      {"cluster.calls_pending_max", "EMPORIUM_CLUSTER_CALLS_PENDING_MAX", "9",
       [](const Config& c) { return c.cluster.calls_pending_max == 9; }},
      {"cluster.call_timeout_ms", "EMPORIUM_CLUSTER_CALL_TIMEOUT_MS", "1234",
       [](const Config& c) { return c.cluster.call_timeout_ms == 1234; }},
      {"cluster.sweep_grace_ms", "EMPORIUM_CLUSTER_SWEEP_GRACE_MS", "4321",
       [](const Config& c) { return c.cluster.sweep_grace_ms == 4321; }},
      {"orders.step_timeout_ms", "EMPORIUM_ORDERS_STEP_TIMEOUT_MS", "60000",
       [](const Config& c) { return c.orders.step_timeout_ms == 60000; }},
      {"orders.recovery_interval_ms", "EMPORIUM_ORDERS_RECOVERY_INTERVAL_MS", "777",
       [](const Config& c) { return c.orders.recovery_interval_ms == 777; }},
      {"orders.recovery_batch_max", "EMPORIUM_ORDERS_RECOVERY_BATCH_MAX", "55",
       [](const Config& c) { return c.orders.recovery_batch_max == 55; }},
  };
  return samples;
}

// Values that let every sample above validate on its own (cluster and http payment need them).
const std::map<std::string, std::string> kCompatibleBase = {
    {"EMPORIUM_DATABASE_ORDERS", "postgresql://db/orders"},
    {"EMPORIUM_DATABASE_INVENTORY", "postgresql://db/inventory"},
    {"EMPORIUM_PAYMENT_URL", "http://pay/base"},
};

TEST_F(ConfigTest, EveryKeyCanBeSetFromItsEnvironmentVariable) {
  for (const KeySample& sample : every_key()) {
    SCOPED_TRACE(sample.variable);
    std::map<std::string, std::string> environment = kCompatibleBase;
    environment[sample.variable] = sample.value;
    EXPECT_TRUE(sample.is_set(load_config(with_env(environment))));
  }
}

TEST_F(ConfigTest, EveryKeyCanBeSetWithSet) {
  for (const KeySample& sample : every_key()) {
    SCOPED_TRACE(sample.key);
    ConfigSources sources = with_env(kCompatibleBase);
    sources.overrides = {sample.key + "=" + sample.value};
    EXPECT_TRUE(sample.is_set(load_config(sources)));
  }
}

// The TLS files are set together, and must exist: one sample for the three.
TEST_F(ConfigTest, TheTlsKeysCanBeSetFromTheirVariablesAndWithSet) {
  const std::string file = EMPORIUM_SOURCE_DIR "/README.md";  // any file that exists
  auto is_set = [&](const Config& c) {
    return c.cluster.tls_certificate == file && c.cluster.tls_key == file && c.cluster.tls_ca_file == file;
  };
  auto environment = kCompatibleBase;
  for (const char* variable : {"EMPORIUM_CLUSTER_TLS_CERTIFICATE", "EMPORIUM_CLUSTER_TLS_KEY",
                               "EMPORIUM_CLUSTER_TLS_CA_FILE"})
    environment[variable] = file;
  EXPECT_TRUE(is_set(load_config(with_env(environment))));
  ConfigSources sources = with_env(kCompatibleBase);
  sources.overrides = {"cluster.tls_certificate=" + file, "cluster.tls_key=" + file, "cluster.tls_ca_file=" + file};
  EXPECT_TRUE(is_set(load_config(sources)));
}

// Every key the documented file lists (set, or commented out as `# key = ...`) has a sample above,
// so a key added to the file and the loader without one fails here.
TEST_F(ConfigTest, EveryDocumentedKeyHasASample) {
  std::ifstream in(fs::path(EMPORIUM_SOURCE_DIR) / "config" / "emporium.toml");
  ASSERT_TRUE(in) << "config/emporium.toml";
  std::set<std::string> sampled = {"cluster.tls_certificate", "cluster.tls_key", "cluster.tls_ca_file"};
  for (const auto& sample : every_key()) sampled.insert(sample.key);
  std::string line, section;
  int documented = 0;
  while (std::getline(in, line)) {
    if (line.rfind("[", 0) == 0) {
      section = line.substr(1, line.find(']') - 1);
      continue;
    }
    auto text = line.rfind("# ", 0) == 0 ? line.substr(2) : line;
    auto eq = text.find(" = ");
    if (section.empty() || eq == std::string::npos || eq == 0 ||
        text.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != eq)
      continue;
    ++documented;
    EXPECT_TRUE(sampled.count(section + "." + text.substr(0, eq))) << section << "." << text.substr(0, eq);
  }
  EXPECT_EQ(documented, static_cast<int>(sampled.size()));
}

TEST_F(ConfigTest, UnrelatedEmporiumVariablesAreIgnored) {
  const Config config = load_config(with_env({{"EMPORIUM_BIN", "/usr/bin/emporium"},
                                              {"EMPORIUM_TEST_PG", "postgresql://x/y"},
                                              {"EMPORIUM_HTTP", "1"},
                                              {"EMPORIUM_HTTP_", "1"},
                                              {"EMPORIUM_", ""},
                                              {"PATH", "/usr/bin"}}));
  EXPECT_TRUE(config == load_config({}));
}

// API.md: an unknown key stops the node, from any source: a variable named after a section but no
// key of it is one.
TEST_F(ConfigTest, AVariableOfAKnownSectionButNoKeyIsAnUnknownKey) {
  EXPECT_EQ(load_error(with_env({{"EMPORIUM_HTTP_LISTN", "127.0.0.1:1"}})).key(), "http.listn");
  EXPECT_EQ(load_error(with_env({{"EMPORIUM_RATE_LIMIT_RATES", "5"}})).key(), "rate_limit.rates");
  const auto err = load_error(with_env({{"EMPORIUM_DATABASE_URL", "postgresql://db/x"}}));
  EXPECT_EQ(err.key(), "database.url");
  EXPECT_NE(std::string(err.what()).find("EMPORIUM_DATABASE_URL"), std::string::npos) << err.what();
}

TEST_F(ConfigTest, ProcessEnvironmentReadsEnviron) {
  ASSERT_EQ(setenv("EMPORIUM_CONFIG_TEST_PROBE", "a=b", 1), 0);
  const auto environment = process_environment();
  unsetenv("EMPORIUM_CONFIG_TEST_PROBE");
  const auto found = environment.find("EMPORIUM_CONFIG_TEST_PROBE");
  ASSERT_NE(found, environment.end());
  EXPECT_EQ(found->second, "a=b");
}

// --- File errors ---

TEST_F(ConfigTest, MissingFileIsRejectedNamingThePath) {
  ConfigSources sources;
  sources.file = (dir_ / "absent.toml").string();
  EXPECT_EQ(load_error(sources).key(), *sources.file);
}

TEST_F(ConfigTest, TomlSyntaxErrorNamesTheFileAndLine) {
  const ConfigSources sources = file("[http]\nthreads = 4\nlisten = \n");
  const ConfigError error = load_error(sources);
  EXPECT_EQ(error.key(), *sources.file);
  EXPECT_TRUE(contains(error.what(), "line 3")) << error.what();
}

TEST_F(ConfigTest, UnknownKeyInFileIsRejectedNamingIt) {
  const ConfigError error = load_error(file("[http]\nthreads = 2\nthread_count = 4\n"));
  EXPECT_EQ(error.key(), "http.thread_count");
  EXPECT_TRUE(contains(error.what(), "unknown key")) << error.what();
}

TEST_F(ConfigTest, UnknownSectionInFileIsRejectedNamingSectionAndKey) {
  EXPECT_EQ(load_error(file("[htp]\nthreads = 4\n")).key(), "htp.threads");
  EXPECT_EQ(load_error(file("[nothing]\n")).key(), "nothing");
}

TEST_F(ConfigTest, KeyOutsideASectionIsRejectedNamingIt) {
  EXPECT_EQ(load_error(file("threads = 4\n")).key(), "threads");
}

TEST_F(ConfigTest, NestedTableIsRejectedAsUnknownKey) {
  EXPECT_EQ(load_error(file("[http.tls]\ncert = \"x\"\n")).key(), "http.tls");
}

TEST_F(ConfigTest, WrongTypeInFileIsRejectedNamingTheKey) {
  struct Case {
    std::string toml, key, expected;
  };
  const std::vector<Case> cases = {
      {"[http]\nthreads = \"4\"\n", "http.threads", "expected an integer"},
      {"[http]\nthreads = 1.5\n", "http.threads", "expected an integer"},
      {"[http]\nlisten = 8080\n", "http.listen", "expected a string"},
      {"[cluster]\nenabled = \"yes\"\n", "cluster.enabled", "expected a boolean"},
      {"[rate_limit]\nrate = \"fast\"\n", "rate_limit.rate", "expected a number"},
      {"[auth]\nhs256_secret = 1\n", "auth.hs256_secret", "expected a string"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.toml);
    const ConfigError error = load_error(file(c.toml));
    EXPECT_EQ(error.key(), c.key);
    EXPECT_TRUE(contains(error.what(), c.key + ": " + c.expected)) << error.what();
  }
}

// --- Text value errors (environment and --set) ---

TEST_F(ConfigTest, MalformedEnvironmentValueIsRejectedNamingTheKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"EMPORIUM_HTTP_THREADS", "12abc"},
      {"EMPORIUM_HTTP_THREADS", ""},
      {"EMPORIUM_HTTP_THREADS", " 4"},
      {"EMPORIUM_HTTP_THREADS", "4.0"},
      {"EMPORIUM_HTTP_THREADS", "99999999999999999999"},
      {"EMPORIUM_CLUSTER_ENABLED", "yes"},
      {"EMPORIUM_CLUSTER_ENABLED", "1"},
      {"EMPORIUM_RATE_LIMIT_RATE", "fast"},
      {"EMPORIUM_RATE_LIMIT_RATE", "nan"},
      {"EMPORIUM_RATE_LIMIT_RATE", "1.5x"},
  };
  const std::map<std::string, std::string> key_of = {
      {"EMPORIUM_HTTP_THREADS", "http.threads"},
      {"EMPORIUM_CLUSTER_ENABLED", "cluster.enabled"},
      {"EMPORIUM_RATE_LIMIT_RATE", "rate_limit.rate"},
  };
  for (const auto& [variable, value] : cases) {
    SCOPED_TRACE(variable + "=" + value);
    EXPECT_EQ(load_error(with_env({{variable, value}})).key(), key_of.at(variable));
  }
}

TEST_F(ConfigTest, ValueErrorNamesTheVariableItCameFrom) {
  const ConfigError error = load_error(with_env({{"EMPORIUM_HTTP_THREADS", "four"}}));
  EXPECT_TRUE(contains(error.what(), "http.threads: expected an integer")) << error.what();
  EXPECT_TRUE(contains(error.what(), "EMPORIUM_HTTP_THREADS")) << error.what();
}

TEST_F(ConfigTest, MalformedSetValueIsRejectedNamingTheKey) {
  EXPECT_EQ(load_error(with_set({"http.threads=lots"})).key(), "http.threads");
}

TEST_F(ConfigTest, SetWithoutEqualsIsRejectedNamingIt) {
  EXPECT_EQ(load_error(with_set({"http.threads"})).key(), "http.threads");
}

TEST_F(ConfigTest, SetWithUnknownKeyIsRejectedNamingIt) {
  const ConfigError error = load_error(with_set({"http.thread=4"}));
  EXPECT_EQ(error.key(), "http.thread");
  EXPECT_TRUE(contains(error.what(), "unknown key")) << error.what();
}

// --- Validation ---

TEST_F(ConfigTest, OutOfRangeValuesAreRejectedNamingTheKey) {
  const std::vector<std::string> keys_and_values = {
      "http.header_limit_bytes=1023",
      "http.body_limit_bytes=0",
      "http.request_timeout_ms=0",
      "http.max_connections=0",
      "http.threads=0",
      "http.threads=65",
      "actors.scheduler_threads=-1",
      "actors.scheduler_threads=257",  // 100000 made the node start 8,000 threads and spin
      "database.batch_size_max=0",
      "database.batch_size_max=10001",
      "database.batch_linger_us=-1",
      "database.batch_linger_us=100001",
      "database.idle_in_transaction_ms=99",
      "database.idle_in_transaction_ms=3600001",
      "rate_limit.rate=0",
      "rate_limit.rate=-1",
      "rate_limit.burst=0.5",
      "payment.retries_max=-1",
      "payment.retries_max=21",
      "orders.placement_timeout_ms=0",
      "orders.reservation_ttl_ms=999",
      "orders.reservation_check_ms=99",
      "orders.reservation_check_ms=86400001",
      "orders.reservation_commit_delay_ms=-1",
      "orders.reservation_commit_delay_ms=60001",
      "orders.items_max=0",
      "orders.items_max=1001",
      "orders.quantity_max=0",
      "orders.quantity_max=1000001",
      "orders.step_timeout_ms=99",
      "orders.step_timeout_ms=3600001",
      "orders.recovery_interval_ms=99",
      "orders.recovery_interval_ms=86400001",
      "orders.recovery_batch_max=0",
      "orders.recovery_batch_max=100001",
      "auth.leeway_s=-1",
      "auth.leeway_s=3601",
      "http.idle_timeout_ms=-1",
      "idempotency.ttl_s=-5",
  };
  for (const std::string& assignment : keys_and_values) {
    SCOPED_TRACE(assignment);
    EXPECT_EQ(load_error(with_set({assignment})).key(), assignment.substr(0, assignment.find('=')));
  }
}

TEST_F(ConfigTest, BoundaryValuesAreAccepted) {
  const Config config = load_config(with_set({
      "http.header_limit_bytes=1024",
      "http.threads=1",
      "database.batch_size_max=1",
      "database.batch_linger_us=0",
      "rate_limit.burst=1",
      "payment.retries_max=0",
      "orders.reservation_ttl_ms=1000",
      "orders.items_max=1",
      "auth.leeway_s=0",
      "rate_limit.rate=0.001",
      "actors.scheduler_threads=256",
  }));
  EXPECT_EQ(config.actors.scheduler_threads, 256);
  EXPECT_EQ(config.http.header_limit_bytes, 1024);
  EXPECT_EQ(config.auth.leeway_s, 0);
  EXPECT_EQ(config.database.batch_linger_us, 0);
}

TEST_F(ConfigTest, SagaAndRecoveryKeysAcceptTheirBounds) {
  const Config low = load_config(with_set(
      {"orders.step_timeout_ms=100", "orders.recovery_interval_ms=100", "orders.recovery_batch_max=1",
       "orders.reservation_check_ms=100", "orders.reservation_commit_delay_ms=0"}));
  EXPECT_EQ(low.orders.step_timeout_ms, 100);
  EXPECT_EQ(low.orders.reservation_commit_delay_ms, 0);
  EXPECT_EQ(low.orders.reservation_check_ms, 100);
  EXPECT_EQ(low.orders.recovery_interval_ms, 100);
  EXPECT_EQ(low.orders.recovery_batch_max, 1);
  const Config high = load_config(with_set({"orders.step_timeout_ms=3600000",
                                            "orders.recovery_interval_ms=86400000",
                                            "orders.recovery_batch_max=100000",
                                            "orders.reservation_check_ms=86400000",
                                            "orders.reservation_commit_delay_ms=60000"}));
  EXPECT_EQ(high.orders.reservation_commit_delay_ms, 60'000);
  EXPECT_EQ(high.orders.step_timeout_ms, 3'600'000);
  EXPECT_EQ(high.orders.reservation_check_ms, 86'400'000);
  EXPECT_EQ(high.orders.recovery_interval_ms, 86'400'000);
  EXPECT_EQ(high.orders.recovery_batch_max, 100'000);
  const Config defaults = load_config({});
  EXPECT_EQ(defaults.orders.step_timeout_ms, 30'000);
  EXPECT_EQ(defaults.orders.recovery_interval_ms, 30'000);
  EXPECT_EQ(defaults.orders.recovery_batch_max, 1'000);
  EXPECT_EQ(defaults.orders.reservation_check_ms, 30'000);
  EXPECT_EQ(defaults.orders.reservation_commit_delay_ms, 1'000);
}

// The http provider's limits: a call's timeout 100 ms to 120 s (default 5 s), 1 to 64 calls at
// once (default 4); past either edge the node does not start, naming the key.
TEST_F(ConfigTest, PaymentProviderLimitsAcceptTheirBoundsAndNoMore) {
  const Config defaults = load_config({});
  EXPECT_EQ(defaults.payment.timeout_ms, 5'000);
  EXPECT_EQ(defaults.payment.connections, 4);
  const Config low = load_config(with_set({"payment.timeout_ms=100", "payment.connections=1"}));
  EXPECT_EQ(low.payment.timeout_ms, 100);
  EXPECT_EQ(low.payment.connections, 1);
  const Config high = load_config(with_set({"payment.timeout_ms=120000", "payment.connections=64"}));
  EXPECT_EQ(high.payment.timeout_ms, 120'000);
  EXPECT_EQ(high.payment.connections, 64);
  EXPECT_EQ(load_error(with_set({"payment.timeout_ms=99"})).key(), "payment.timeout_ms");
  EXPECT_EQ(load_error(with_set({"payment.timeout_ms=120001"})).key(), "payment.timeout_ms");
  EXPECT_EQ(load_error(with_set({"payment.connections=0"})).key(), "payment.connections");
  EXPECT_EQ(load_error(with_set({"payment.connections=65"})).key(), "payment.connections");
  EXPECT_EQ(defaults.payment.queue_max, 1'024);
  EXPECT_EQ(load_config(with_set({"payment.queue_max=1"})).payment.queue_max, 1);
  EXPECT_EQ(load_config(with_set({"payment.queue_max=100000"})).payment.queue_max, 100'000);
  EXPECT_EQ(load_error(with_set({"payment.queue_max=0"})).key(), "payment.queue_max");
  EXPECT_EQ(load_error(with_set({"payment.queue_max=100001"})).key(), "payment.queue_max");
  // An http charge with all its attempts must fit in the order's step (30 s by default): 4
  // attempts (payment.retries_max 3) and 50 + 100 + 200 ms of backoff.
  const std::vector<std::string> http = {"payment.provider=http", "payment.url=http://127.0.0.1:9"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), http.begin(), http.end());
    return with_set(more);
  };
  EXPECT_EQ(load_config(with({"payment.timeout_ms=7412", "orders.step_timeout_ms=30000"})).payment.timeout_ms,
            7'412);  // 7,412 x 4 + 350 = 29,998
  EXPECT_EQ(load_error(with({"payment.timeout_ms=7413", "orders.step_timeout_ms=30000"})).key(),
            "payment.timeout_ms");  // 30,002
  EXPECT_EQ(load_config(with_set({"payment.timeout_ms=7413"})).payment.timeout_ms, 7'413);  // simulated
}

// A valid configuration whose settings risk something is warned of at start: in a cluster, a grace
// not above an http charge's longest time (4 x 5,000 ms + 350 ms by default), or not below the
// request's time.
TEST_F(ConfigTest, AClusterGraceShorterThanAChargeOrLongerThanARequestIsWarnedOf) {
  auto warnings = [](std::vector<std::string> overrides) {
    ConfigSources sources = with_env(kCompatibleBase);
    sources.overrides = std::move(overrides);
    return config_warnings(load_config(sources));
  };
  const std::vector<std::string> http = {"payment.provider=http", "payment.url=http://127.0.0.1:9"};
  auto cluster_http = [&](std::vector<std::string> more) {
    more.insert(more.begin(), http.begin(), http.end());
    more.push_back("cluster.enabled=true");
    return more;
  };
  auto defaults = warnings(cluster_http({}));  // grace 10,000 ms, a charge 20,350 ms
  ASSERT_EQ(defaults.size(), 1u);
  EXPECT_TRUE(contains(defaults[0], "cluster.sweep_grace_ms (10000 ms)")) << defaults[0];
  EXPECT_TRUE(contains(defaults[0], "20350 ms")) << defaults[0];
  EXPECT_EQ(warnings(cluster_http({"cluster.sweep_grace_ms=20350"})).size(), 1u);  // at its edge
  EXPECT_TRUE(warnings(cluster_http({"cluster.sweep_grace_ms=20351"})).empty());
  EXPECT_TRUE(warnings(cluster_http({"payment.timeout_ms=2000"})).empty());  // 8,350 ms
  EXPECT_TRUE(warnings(http).empty());                                      // one node
  EXPECT_TRUE(warnings({"cluster.enabled=true"}).empty());                  // simulated
  auto long_grace = warnings({"cluster.enabled=true", "cluster.sweep_grace_ms=30000"});
  ASSERT_EQ(long_grace.size(), 1u);
  EXPECT_TRUE(contains(long_grace[0], "http.request_timeout_ms (30000 ms)")) << long_grace[0];
  EXPECT_TRUE(warnings({"cluster.enabled=true", "cluster.sweep_grace_ms=29999"}).empty());
}

TEST_F(ConfigTest, MalformedListenAddressIsRejectedNamingTheKey) {
  const std::vector<std::string> addresses = {
      "127.0.0.1", "127.0.0.1:",     "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:80x",
      ":8080",     "example.com:80", "::1:80",          "[::1]",        "[]:80",
      "[nope]:80", "256.0.0.1:80",   "localhost:+80",
  };
  for (const std::string key : {"http.listen", "cluster.listen"}) {
    for (const std::string& address : addresses) {
      SCOPED_TRACE(key + "=" + address);
      EXPECT_EQ(load_error(with_set({key + "=" + address})).key(), key);
    }
  }
}

TEST_F(ConfigTest, ListenAcceptsIpv4LocalhostAndBracketedIpv6) {
  for (const std::string address :
       {"0.0.0.0:0", "127.0.0.1:65535", "localhost:8080", "[::1]:8080", "[::]:0"}) {
    SCOPED_TRACE(address);
    EXPECT_EQ(load_config(with_set({"http.listen=" + address})).http.listen, address);
    EXPECT_EQ(load_config(with_set({"cluster.listen=" + address})).cluster.listen, address);
  }
}

TEST_F(ConfigTest, MalformedAdvertiseAddressIsRejected) {
  EXPECT_EQ(load_error(with_set({"cluster.advertise=node-2"})).key(), "cluster.advertise");
}

TEST_F(ConfigTest, DatabaseUrlMustBeSqliteOrPostgres) {
  EXPECT_EQ(load_error(with_set({"database.orders=mysql://db/o"})).key(), "database.orders");
  EXPECT_EQ(load_error(with_set({"database.inventory=data/inv.db"})).key(), "database.inventory");
  const Config config = load_config(with_set(
      {"database.orders=postgres://u:p@db:5432/o", "database.inventory=sqlite:/tmp/i.db"}));
  EXPECT_EQ(config.database.orders, "postgres://u:p@db:5432/o");
}

TEST_F(ConfigTest, ClusterWithSqliteIsRefused) {
  for (const auto& sqlite_key : {"database.orders", "database.inventory"}) {
    SCOPED_TRACE(sqlite_key);
    ConfigSources sources = with_env(kCompatibleBase);
    sources.overrides = {"cluster.enabled=true", std::string(sqlite_key) + "=sqlite:x.db"};
    const ConfigError error = load_error(sources);
    EXPECT_EQ(error.key(), "cluster.enabled");
    EXPECT_TRUE(contains(error.what(), "PostgreSQL")) << error.what();
  }
  EXPECT_EQ(load_error(with_set({"cluster.enabled=true"})).key(), "cluster.enabled");
}

TEST_F(ConfigTest, ClusterWithPostgresIsAccepted) {
  ConfigSources sources = with_env(kCompatibleBase);
  sources.overrides = {"cluster.enabled=true"};
  EXPECT_TRUE(load_config(sources).cluster.enabled);
}

TEST_F(ConfigTest, UnknownPaymentProviderIsRejected) {
  EXPECT_EQ(load_error(with_set({"payment.provider=stripe"})).key(), "payment.provider");
}

TEST_F(ConfigTest, HttpPaymentProviderRequiresUrl) {
  EXPECT_EQ(load_error(with_set({"payment.provider=http"})).key(), "payment.url");
  const Config config =
      load_config(with_set({"payment.provider=http", "payment.url=http://pay.local"}));
  EXPECT_EQ(config.payment.url, "http://pay.local");
}

TEST_F(ConfigTest, NodeNameMustBeShortAndSimple) {
  const std::vector<std::string> bad_names = {"", "node 1", "node/1", "nöde", std::string(65, 'n')};
  for (const std::string& bad : bad_names) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(load_error(with_set({"node.name=" + bad})).key(), "node.name");
  }
  const std::string longest(64, 'n');
  EXPECT_EQ(load_config(with_set({"node.name=" + longest})).node.name, longest);
  EXPECT_EQ(load_config(with_set({"node.name=Node_1.eu-west"})).node.name, "Node_1.eu-west");
}

}  // namespace
}  // namespace emporium
