// The emporium executable: `serve`, `token`, `migrate`. Thin: it loads the configuration and hands
// over to the runtime, actors and edge libraries.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>
#include <tuple>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <soci/soci.h>
#include <spdlog/spdlog.h>

#include "actors/node.hpp"
#include "http/payment_client.hpp"
#include "http/auth.hpp"
#include "http/routes.hpp"
#include "http/server.hpp"
#include "runtime/atoms.hpp"
#include "runtime/cluster.hpp"
#include "runtime/persistence.hpp"
#include "runtime/registry.hpp"
#include "runtime/scheduler.hpp"
#include "runtime/config.hpp"
#include "runtime/metrics.hpp"
#include "runtime/store.hpp"

namespace fs = std::filesystem;
using namespace emporium;

namespace {

struct CommonOptions {
  std::string config_file;
  std::vector<std::string> sets;
};

void add_common(CLI::App* cmd, CommonOptions& opts) {
  cmd->add_option("--config", opts.config_file, "TOML configuration file")
      ->check([](const std::string& path) { return path.empty() ? "--config needs a file" : ""; });
  cmd->add_option("--set", opts.sets, "override a key: section.key=value")->allow_extra_args(false);
}

Config load(const CommonOptions& opts) {
  ConfigSources sources;
  if (!opts.config_file.empty()) sources.file = opts.config_file;
  else if (fs::exists("config/emporium.toml")) sources.file = "config/emporium.toml";
  sources.environment = process_environment();
  sources.overrides = opts.sets;
  return load_config(sources);
}

// The HS256 secret: configured, or generated once into <data_dir>/dev-secret (mode 0600) so that
// `serve` and `token` agree without set-up.
std::string hs256_secret(const Config& config) {
  if (config.auth.hs256_secret) return *config.auth.hs256_secret;
  fs::path path = fs::path(config.node.data_dir) / "dev-secret";
  if (std::ifstream in{path}; in) {
    std::string secret;
    std::getline(in, secret);
    if (!secret.empty()) return secret;
  }
  auto tmp = path;
  tmp += ".tmp";
  try {
    fs::create_directories(path.parent_path().empty() ? "." : path.parent_path());
    unsigned char bytes[32];
    RAND_bytes(bytes, sizeof bytes);
    std::string secret;
    char hex[3];
    for (auto b : bytes) {
      std::snprintf(hex, sizeof hex, "%02x", b);
      secret += hex;
    }
    secret += '\n';
    // Created readable by its owner only: never, even for a moment, by others.
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw fs::filesystem_error("cannot create", tmp, std::error_code(errno, std::generic_category()));
    bool written = ::write(fd, secret.data(), secret.size()) == static_cast<ssize_t>(secret.size());
    int err = written ? 0 : errno;
    ::close(fd);
    if (!written) throw fs::filesystem_error("cannot write", tmp, std::error_code(err, std::generic_category()));
    fs::rename(tmp, path);
    secret.pop_back();
    return secret;
  } catch (const fs::filesystem_error& e) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw ConfigError("node.data_dir", "cannot keep the dev secret at " + path.string() + ": " +
                                           e.code().message());
  }
}

int run_migrate(const Config& config) {
  for (auto [key, url, db] : {std::tuple{"database.orders", config.database.orders, Database::orders},
                              std::tuple{"database.inventory", config.database.inventory, Database::inventory}}) {
    auto parsed = parse_db_url(url);
    if (!parsed) throw ConfigError(key, "expected sqlite:PATH or postgresql://...");
    int n = 0;
    try {
      soci::session session;
      open_session(session, *parsed, config.database.idle_in_transaction_ms, "emporium-migrate");
      n = migrate(session, parsed->backend, db);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(key) + ": " + e.what());  // which database failed
    }
    std::cout << (db == Database::orders ? "orders" : "inventory") << ": " << n
              << " migrations applied\n";
  }
  return 0;
}

struct TokenOptions {
  std::string sub, scope;
  std::int64_t ttl_s = 3600;
  std::string alg = "HS256";
  std::string key_file;  // PEM private key for RS256/ES256
  std::string kid;
};

// A private key file, bounded: a PEM key is a few KiB.
std::string read_key_file(const std::string& path) {
  constexpr std::size_t kKeyBytesMax = 64 * 1024;
  std::ifstream in{path, std::ios::binary};
  if (!in) throw std::runtime_error("--key: cannot open " + path);
  std::string pem(kKeyBytesMax + 1, '\0');
  in.read(pem.data(), static_cast<std::streamsize>(pem.size()));
  pem.resize(static_cast<std::size_t>(in.gcount()));
  if (pem.size() > kKeyBytesMax) throw std::runtime_error("--key: file over 64 KiB");
  return pem;
}

int run_token(const Config& config, const TokenOptions& opts) {
  // As the verifier takes them (http/auth.cpp): never print a token every node refuses.
  const bool control = std::any_of(opts.sub.begin(), opts.sub.end(),
                                   [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
  if (opts.sub.empty() || opts.sub.size() > 255 || control)
    throw std::invalid_argument("--sub must be 1 to 255 bytes without control characters");
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  const bool hs256 = opts.alg == "HS256";
  if (hs256 && !opts.key_file.empty()) throw std::runtime_error("--key is for RS256/ES256");
  if (!hs256 && opts.key_file.empty())
    throw std::runtime_error("--alg " + opts.alg + " needs --key FILE");
  // Only HS256 needs the secret: asking for it may create <data_dir>/dev-secret.
  const std::string secret = hs256 ? hs256_secret(config) : std::string();
  std::string pem = hs256 ? std::string() : read_key_file(opts.key_file);
  // The private key does not outlive its use, also when signing throws.
  const std::unique_ptr<std::string, void (*)(std::string*)> wipe{
      &pem, [](std::string* s) { OPENSSL_cleanse(s->data(), s->size()); }};
  const auth::SigningKey key{opts.alg, secret, pem, opts.kid};
  const auth::TokenRequest request{config.auth.issuer, config.auth.audience, opts.sub, opts.scope,
                                   opts.ttl_s, now};
  std::cout << auth::sign_token(key, request) << '\n';
  return 0;
}

// Blocks until both databases answer (nothing listens before the node can serve); false when a
// stop signal came first.
bool wait_for_databases(caf::actor_system& system, const NodeContext& ctx, const sigset_t& signals) {
  caf::scoped_actor self{system};
  for (int attempt = 0;; ++attempt) {
    bool ok = true;
    // Shard 0 of each database migrates on connecting, so its answer means the schema is there.
    for (const auto* shards : {&ctx.orders_shards, &ctx.inventory_shards})
      for (const auto& db : *shards)
      self->request(db, std::chrono::seconds(10), ping_atom::value)
          .receive([](bool) {}, [&](caf::error&) { ok = false; });
    if (ok) return true;
    if (attempt % 10 == 0) spdlog::warn("waiting for the databases to answer");
    timespec pause{0, 500'000'000};
    if (sigtimedwait(&signals, nullptr, &pause) > 0) return false;
  }
}

// The HTTP address other nodes list for this one: known once the server is bound.
class SharedAddress {
 public:
  explicit SharedAddress(std::string value) : value_(std::move(value)) {}
  void set(std::string value) {
    std::lock_guard lock{mutex_};
    value_ = std::move(value);
  }
  std::string get() const {
    std::lock_guard lock{mutex_};
    return value_;
  }

 private:
  mutable std::mutex mutex_;
  std::string value_;
};

// Blocks until the membership actor reports the node joined and serving; false on a stop signal.
// Waits until the node has joined; false when a signal came first. `refused`: why the node may
// not join (another live node holds its name), which ends the wait too.
bool wait_for_join(caf::actor_system& system, const caf::actor& membership, const sigset_t& signals,
                   std::string& refused) {
  caf::scoped_actor self{system};
  for (int attempt = 0;; ++attempt) {
    bool joined = false;
    self->request(membership, std::chrono::seconds(5), joined_atom::value)
        .receive([&](bool serving) { joined = serving; }, [](caf::error&) {});
    if (joined) return true;
    self->request(membership, std::chrono::seconds(5), refused_atom::value)
        .receive([&](std::string& why) { refused = std::move(why); }, [](caf::error&) {});
    if (!refused.empty()) return false;
    if (attempt > 0 && attempt % 25 == 0) spdlog::warn("waiting to join the cluster");
    timespec pause{0, 200'000'000};
    if (sigtimedwait(&signals, nullptr, &pause) > 0) return false;
  }
}

// Marks this node left: peers stop placing entities here at their next heartbeat, and what still
// reaches it is forwarded to the new owners.
void leave_cluster(caf::actor_system& system, const caf::actor& membership, std::chrono::milliseconds timeout) {
  caf::scoped_actor self{system};
  self->request(membership, timeout, leave_atom::value).receive([](bool) {}, [](caf::error&) {});
  spdlog::info("left the cluster");
}

// Waits, until `within` passes, for the calls taken from peers to be answered and for the
// entities passivated by leaving to finish their work (an order in the middle of its saga).
void drain_cluster(caf::actor_system& system, const caf::actor& endpoint, const NodeActors& node,
                   std::chrono::milliseconds within) {
  auto deadline = std::chrono::steady_clock::now() + within;
  caf::scoped_actor self{system};
  for (;;) {
    std::int64_t calls = 0;
    std::string entities;
    std::int64_t busy = 0;
    self->request(endpoint, std::chrono::seconds(1), stats_atom::value)
        .receive([&](std::int64_t n) { calls = n; }, [&](caf::error&) {});
    for (const auto& [type, registry] : node.registries)
      self->request(registry, std::chrono::seconds(1), stats_atom::value)
          .receive(
              [&, type = type](const RegistryStats& s) {
                busy += s.alive;
                if (s.alive > 0) entities += " " + caf::to_string(type) + "=" + std::to_string(s.alive);
              },
              [&](caf::error&) {});
    if (busy + calls == 0) return;
    if (std::chrono::steady_clock::now() > deadline) {
      spdlog::warn("leaving with {} calls from peers unanswered and entities busy:{}", calls, entities);
      caf::anon_send(endpoint, list_atom::value);  // logs them
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int run_serve(const Config& config) {
  for (const auto& warning : config_warnings(config)) spdlog::warn("config: {}", warning);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // every thread started below inherits this

  std::string host;
  std::uint16_t port = 0;
  split_host_port(config.http.listen, host, port);
  auto secret = hs256_secret(config);
  // A node told to trust a JWKS does not start without it; later rereads keep the last good set.
  if (!config.auth.jwks_file.empty())
    if (auto error = auth::check_jwks_file(config.auth.jwks_file))
      throw ConfigError("auth.jwks_file", *error);
  auto provider = config.payment.provider == "http" ? make_http_provider(config.payment)
                                                    : make_provider(config.payment);

  caf::actor_system_config caf_config;
  // Stock checks are answered on the edge's threads (ItemSnapshots), everything else on the
  // actors': by default the cores are split between the two (measured best on 2 cores).
  auto cores = static_cast<std::int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  auto threads = config.actors.scheduler_threads > 0
                     ? config.actors.scheduler_threads
                     : std::max<std::int64_t>(1, cores - config.http.threads);
  caf_config.set("scheduler.max-threads", static_cast<size_t>(threads));
  // An idle CAF worker spins briefly, then polls its queue 500 times with a 50 us sleep between
  // polls (to steal from other workers), then waits on a condition variable that an enqueue
  // signals. A lone worker has no one to steal from: after its quick polls it waits. Measured at 300
  // orders/s on 2 cores: 22 % less CPU for the node per order, p50 2.4 instead of 3.0 ms; at 1,500/s
  // and at full load no change (bench/RESULTS.md, seventh run).
  if (threads == 1) caf_config.set("work-stealing.moderate-poll-attempts", size_t{0});
  use_node_scheduler(caf_config);  // its clock sleeps through the exits of actors without timeouts
  add_message_types(caf_config);
  if (config.cluster.enabled) {
    caf_config.load<caf::io::middleman>();
    // CAF's own liveness check between nodes: a silent connection is dropped within the failure
    // timeout, which marks the peer suspect at once.
    caf_config.set("middleman.heartbeat-interval",
                   caf::timespan{std::chrono::milliseconds(config.cluster.heartbeat_interval_ms / 2)});
    caf_config.set("middleman.connection-timeout",
                   caf::timespan{std::chrono::milliseconds(config.cluster.failure_timeout_ms)});
    if (!config.cluster.tls_certificate.empty()) {
      // Both ends present a certificate from the CA: only members of this cluster connect.
      caf_config.openssl_certificate = config.cluster.tls_certificate;
      caf_config.openssl_key = config.cluster.tls_key;
      caf_config.openssl_cafile = config.cluster.tls_ca_file;
      caf_config.load<caf::openssl::manager>();
    }
  }
  caf::actor_system system{caf_config};

  auto node = start_node_actors(system, config, std::make_shared<SystemClock>(), provider);
  if (!wait_for_databases(system, *node.ctx, signals)) {
    spdlog::info("stopped before the databases answered");
    stop_node_actors(system, node);
    return 1;
  }
  node.sweeper = spawn_recovery_sweep(
      system, node.ctx,
      {config.orders.recovery_interval_ms, config.idempotency.ttl_s * 1000,
       config.cluster.enabled ? config.cluster.sweep_grace_ms : 0, config.orders.recovery_batch_max});

  auto http_address = std::make_shared<SharedAddress>(config.http.listen);
  ClusterHandles cluster;
  caf::actor membership_db;
  auto stop_cluster = [&] {
    for (const auto& a : {cluster.membership, cluster.endpoint, membership_db})
      if (a) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    cluster = ClusterHandles{};
    membership_db = nullptr;
  };
  if (config.cluster.enabled) {
    membership_db = spawn_persistence(system, {config.database.orders, Database::orders, 16,
                                               config.database.reconnect_interval_ms, false,
                                               config.database.idle_in_transaction_ms, 0, false,
                                               "emporium-membership"});
    const bool tls = !config.cluster.tls_certificate.empty();
    auto connector = tls ? caf::actor_cast<caf::actor>(system.openssl_manager().actor_handle())
                         : caf::actor_cast<caf::actor>(system.middleman().actor_handle());
    auto settings = cluster_settings(config);
    // Skus another node may have created while it owned them are looked up again; orders that
    // another node's activation may still be placing are settled as stored (actors/order.cpp).
    settings.on_move = [absent = node.ctx->absent_skus, moved = node.ctx->view_moved_at_ms] {
      absent->clear();
      moved->store(steady_ms());
    };
    cluster =
        start_cluster(system, settings, node.ctx->router, node.registries, membership_db, connector,
                      node.sweeper, [http_address] { return http_address->get(); });
    std::string chost;
    std::uint16_t cport = 0;
    split_host_port(config.cluster.listen, chost, cport);
    auto published = tls ? caf::openssl::publish(cluster.endpoint, cport, chost.c_str(), true)
                         : system.middleman().publish(cluster.endpoint, cport, chost.c_str(), true);
    if (!published) {
      auto why = system.render(published.error());
      stop_cluster();
      stop_node_actors(system, node);
      throw ConfigError("cluster.listen", "cannot listen on " + config.cluster.listen + ": " +
                                              why);
    }
    spdlog::info("node {} listening for its cluster on {}:{}{}", config.node.name, chost, *published,
                 tls ? " (TLS)" : "");
    std::string refused;
    if (!wait_for_join(system, cluster.membership, signals, refused)) {
      spdlog::info("stopped before joining the cluster");
      stop_cluster();
      stop_node_actors(system, node);
      if (!refused.empty()) throw ConfigError("node.name", refused);
      return 1;
    }
  }

  ApiSettings api;
  api.node_name = config.node.name;
  api.cluster_address = config.cluster.advertise.empty() ? config.cluster.listen : config.cluster.advertise;
  api.auth = {config.auth.issuer, config.auth.audience, secret, config.auth.leeway_s, 8192,
              config.auth.jwks_file};
  api.rate = config.rate_limit.rate;
  api.burst = config.rate_limit.burst;
  // Placements take from the one budget of every request; a stricter one besides only where either
  // key is set (the other then follows the one budget's).
  const auto& limit = config.rate_limit;
  if (limit.place_rate > 0 || limit.place_burst > 0) {
    api.place_rate = limit.place_rate > 0 ? limit.place_rate : limit.rate;
    api.place_burst = limit.place_burst > 0 ? limit.place_burst : limit.burst;
  }
  api.rate_entries_max = config.rate_limit.entries_max;
  api.placement_timeout_ms = config.orders.placement_timeout_ms;
  api.retry_after_s = config.database.retry_after_s;
  api.items_max = config.orders.items_max;
  api.quantity_max = config.orders.quantity_max;
  auto metrics = std::make_shared<Metrics>();
  auto handler_api = std::make_shared<Api>(system, node.ctx, api, metrics);
  if (cluster.membership) handler_api->set_membership(cluster.membership);

  ServerSettings server_settings;
  server_settings.host = host;
  server_settings.port = port;
  server_settings.header_limit_bytes = config.http.header_limit_bytes;
  server_settings.body_limit_bytes = config.http.body_limit_bytes;
  server_settings.request_timeout_ms = config.http.request_timeout_ms;
  server_settings.header_timeout_ms = config.http.header_timeout_ms;
  server_settings.body_timeout_ms = config.http.body_timeout_ms;
  server_settings.idle_timeout_ms = config.http.idle_timeout_ms;
  server_settings.max_connections = config.http.max_connections;
  server_settings.max_in_flight = config.http.max_in_flight;
  server_settings.threads = static_cast<int>(config.http.threads);
  auto server = std::make_unique<Server>(server_settings, [handler_api](HttpRequest&& req, Respond respond) {
    handler_api->handle(std::move(req), std::move(respond));
  });
  std::uint16_t bound = 0;
  std::string bind_error;
  try {
    bound = server->start();
  } catch (const std::exception& e) {
    bind_error = e.what();
    // Boost's system errors end in " [system:98 at /usr/include/...]": not for the operator.
    if (auto at = bind_error.find(" ["); at != std::string::npos) bind_error.resize(at);
  }
  if (!bind_error.empty()) {
    // Joined but cannot serve HTTP (the port is taken): leave at once and stop everything, so
    // the process exits and its entities move to the other members.
    if (cluster.membership)
      leave_cluster(system, cluster.membership, std::chrono::milliseconds(config.cluster.failure_timeout_ms));
    handler_api.reset();  // before the server: answers still on their way refer to its connections
    server.reset();
    stop_cluster();
    stop_node_actors(system, node);
    throw ConfigError("http.listen", "cannot listen on " + config.http.listen + ": " + bind_error);
  }
  // An IPv6 host is bracketed in a URL and in host:port.
  const std::string authority =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(bound);
  handler_api->set_http_address(authority);
  http_address->set(authority);
  spdlog::info("node {} serving on http://{}", config.node.name, authority);
  std::printf("emporium listening on http://%s\n", authority.c_str());
  std::fflush(stdout);

  int signal = 0;
  sigwait(&signals, &signal);
  spdlog::info("signal {}: draining", signal);
  auto left_at = std::chrono::steady_clock::now();
  if (cluster.membership) {
    // Leave first: this node's own in-flight requests go on through the new owners.
    leave_cluster(system, cluster.membership, std::chrono::milliseconds(config.cluster.failure_timeout_ms));
  }
  server->stop(config.http.request_timeout_ms);
  // The API first: its gateway actors end, and with them every answer still on its way, which
  // refers to a connection of the server (a request answered 503 late, its actor still working).
  handler_api.reset();
  server.reset();
  if (cluster.membership) {
    // Keep forwarding until every peer has read the table at least twice since we left.
    auto settle = std::chrono::milliseconds(2 * config.cluster.heartbeat_interval_ms + 200);
    auto waited = std::chrono::steady_clock::now() - left_at;
    if (waited < settle) std::this_thread::sleep_for(settle - waited);
    drain_cluster(system, cluster.endpoint, node,
                  std::chrono::milliseconds(config.orders.placement_timeout_ms));
    stop_cluster();
  }
  stop_node_actors(system, node);
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Emporium: an order-processing runtime on actors"};
  app.require_subcommand(1);
  CommonOptions serve_opts, token_opts, migrate_opts;
  auto* serve = app.add_subcommand("serve", "run one node");
  add_common(serve, serve_opts);
  auto* token = app.add_subcommand("token", "print a signed access token for local testing");
  add_common(token, token_opts);
  TokenOptions token_args;
  token->add_option("--sub", token_args.sub, "subject (customer id)")->required();
  token->add_option("--scope", token_args.scope, "space-separated scopes")->required();
  token->add_option("--ttl", token_args.ttl_s, "lifetime in seconds")
      ->check(CLI::Range(1, 31'536'000));
  token->add_option("--alg", token_args.alg, "HS256 (auth.hs256_secret), RS256 or ES256 (--key)")
      ->check(CLI::IsMember({"HS256", "RS256", "ES256"}));
  token->add_option("--key", token_args.key_file, "PEM private key for RS256/ES256")
      ->check(CLI::ExistingFile);
  token->add_option("--kid", token_args.kid, "kid of the matching JWKS key (RS256/ES256)");
  auto* migrate_cmd = app.add_subcommand("migrate", "apply database migrations and exit");
  add_common(migrate_cmd, migrate_opts);
  CLI11_PARSE(app, argc, argv);

  try {
    if (serve->parsed()) return run_serve(load(serve_opts));
    if (token->parsed()) return run_token(load(token_opts), token_args);
    if (migrate_cmd->parsed()) return run_migrate(load(migrate_opts));
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "emporium: configuration error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "emporium: %s\n", e.what());
    return 1;
  }
  return 0;
}
