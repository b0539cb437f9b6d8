// Cross-node entity messages per second: two actor systems (node a and node b, each with its own
// CAF middleman on loopback) in one process, so both share the machine's cores as two node
// processes would. Three figures, each over DURATION seconds with WINDOW calls outstanding:
//   raw        CAF request/response to an actor published on b (remote_actor proxy), no router;
//   unbatched  entity calls through a's router to b's entities, cluster.batch_max = 1;
//   batched    the same with cluster.batch_max = BATCH (the default 256).
// Also the raw figure with one call outstanding (latency-bound). Prints RESULT lines:
//   RESULT name=<name> window=<n> calls=<n> seconds=<s> per_second=<n>
//
//   emporium-cluster-bench [DURATION_S=5] [WINDOW=256] [BATCH=256]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/node.hpp"
#include "runtime/atoms.hpp"
#include "runtime/cluster.hpp"
#include "runtime/registry.hpp"

using namespace emporium;
using namespace std::chrono;

namespace {

constexpr caf::atom_value echo_type = caf::atom("echo");

std::unique_ptr<caf::actor_system> make_system() {
  static std::vector<std::unique_ptr<caf::actor_system_config>> configs;  // CAF keeps a reference
  auto cfg = std::make_unique<caf::actor_system_config>();
  cfg->set("scheduler.max-threads", static_cast<size_t>(2));
  cfg->load<caf::io::middleman>();
  add_message_types(*cfg);
  auto sys = std::make_unique<caf::actor_system>(*cfg);
  configs.push_back(std::move(cfg));
  return sys;
}

caf::behavior echo_entity() {
  return {[](get_atom, std::int64_t x) { return x; }};
}

// Keeps `window` calls outstanding for `seconds`; `call` sends one and returns its handle.
template <class Call>
std::int64_t run_window(caf::actor_system& sys, int window, double seconds, Call call) {
  auto done = std::make_shared<std::atomic<std::int64_t>>(0);
  auto stop_at = steady_clock::now() + duration_cast<steady_clock::duration>(duration<double>(seconds));
  auto finished = std::make_shared<std::atomic<int>>(0);
  sys.spawn([=](caf::event_based_actor* self) {
    struct Loop {
      static void next(caf::event_based_actor* self, Call call, std::int64_t i,
                       std::shared_ptr<std::atomic<std::int64_t>> done, steady_clock::time_point stop_at,
                       std::shared_ptr<std::atomic<int>> finished) {
        call(self, i).then(
            [=](std::int64_t) {
              done->fetch_add(1, std::memory_order_relaxed);
              if (steady_clock::now() < stop_at) next(self, call, i + 1, done, stop_at, finished);
              else finished->fetch_add(1);
            },
            [=](caf::error& err) {
              std::fprintf(stderr, "call failed: %s\n", caf::to_string(err).c_str());
              finished->fetch_add(1);
            });
      }
    };
    for (int w = 0; w < window; ++w) Loop::next(self, call, w * 1'000'000, done, stop_at, finished);
  });
  while (finished->load() < window) std::this_thread::sleep_for(milliseconds(5));
  return done->load();
}

void report(const char* name, int window, std::int64_t calls, double seconds) {
  std::printf("RESULT name=%s window=%d calls=%lld seconds=%.2f per_second=%.0f\n", name, window,
              static_cast<long long>(calls), seconds, static_cast<double>(calls) / seconds);
  std::fflush(stdout);
}

struct Node {
  std::unique_ptr<caf::actor_system> sys;
  caf::actor registry;
  caf::actor router;
  caf::actor endpoint;
  std::uint16_t port = 0;
};

// Two nodes routing `echo` entities to each other with the given batch limit.
std::pair<Node, Node> make_pair_of_nodes(std::size_t batch_max) {
  Node a, b;
  for (auto* n : {&a, &b}) {
    n->sys = make_system();
    n->registry = spawn_registry(
        *n->sys,
        [](caf::local_actor* spawner, const std::string&, caf::actor, const caf::message&) {
          return spawner->spawn(echo_entity);
        },
        [] { return std::int64_t{0}; });
    n->router = spawn_router(*n->sys, {{echo_type, n->registry}});
  }
  std::map<std::string, std::string> members;
  auto settings = [batch_max](const char* name) {
    ClusterSettings s;
    s.self = name;
    s.batch_max = batch_max;
    return s;
  };
  auto sa = settings("a");
  auto sb = settings("b");
  // Ports: let the OS pick by publishing a dummy first, then reuse those numbers.
  for (auto* n : {&a, &b}) {
    auto probe = n->sys->spawn([]() -> caf::behavior { return {[](int) {}}; });
    auto port = n->sys->middleman().publish(probe, 0, "127.0.0.1", true);
    if (!port) throw std::runtime_error("publish failed");
    n->port = *port;
    n->sys->middleman().unpublish(probe, *port);
    caf::anon_send_exit(probe, caf::exit_reason::user_shutdown);
  }
  members["a"] = "127.0.0.1:" + std::to_string(a.port);
  members["b"] = "127.0.0.1:" + std::to_string(b.port);
  for (auto [n, s] : {std::pair{&a, sa}, std::pair{&b, sb}}) {
    n->endpoint = start_static_cluster(*n->sys, s, n->router, members,
                                       caf::actor_cast<caf::actor>(n->sys->middleman().actor_handle()));
    auto port = n->sys->middleman().publish(n->endpoint, n->port, "127.0.0.1", true);
    if (!port) throw std::runtime_error("publish of the endpoint failed");
  }
  return {std::move(a), std::move(b)};
}

void shutdown(Node& n) {
  for (const auto& a : {n.router, n.registry, n.endpoint}) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  n.router = n.registry = n.endpoint = nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 5.0;
  const int window = argc > 2 ? std::atoi(argv[2]) : 256;
  const std::size_t batch = argc > 3 ? static_cast<std::size_t>(std::atoi(argv[3])) : 256;

  // Raw CAF: an echo actor published on b, called through its proxy on a.
  {
    auto a = make_system();
    auto b = make_system();
    auto echo = b->spawn([]() -> caf::behavior { return {[](get_atom, std::int64_t x) { return x; }}; });
    auto port = b->middleman().publish(echo, 0, "127.0.0.1", true);
    auto proxy = a->middleman().remote_actor("127.0.0.1", *port);
    if (!proxy) {
      std::fprintf(stderr, "remote_actor failed\n");
      return 1;
    }
    auto target = *proxy;
    for (int w : {1, window}) {
      auto start = steady_clock::now();
      auto calls = run_window(*a, w, seconds, [target](caf::event_based_actor* self, std::int64_t i) {
        return self->request(target, caf::infinite, get_atom::value, i);
      });
      report(w == 1 ? "raw_caf_sequential" : "raw_caf", w, calls,
             duration<double>(steady_clock::now() - start).count());
    }
    caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  }

  // Entity calls routed from node a to the entities node b owns.
  for (auto [name, batch_max] : {std::pair{"routed_unbatched", std::size_t{1}}, std::pair{"routed_batched", batch}}) {
    auto [a, b] = make_pair_of_nodes(batch_max);
    std::vector<std::string> ids;
    const std::vector<std::string> members{"a", "b"};
    for (int i = 0; ids.size() < 1000; ++i) {
      std::string id{"e"};
      id += std::to_string(i);
      if (members[rendezvous_owner(members, echo_type, id)] == "b") ids.push_back(id);
    }
    std::this_thread::sleep_for(milliseconds(300));  // links connect
    auto router = a.router;
    auto shared_ids = std::make_shared<const std::vector<std::string>>(std::move(ids));
    auto start = steady_clock::now();
    auto calls = run_window(*a.sys, window, seconds, [router, shared_ids](caf::event_based_actor* self, std::int64_t i) {
      const auto& list = *shared_ids;
      return self->request(router, caf::infinite, route_atom::value, echo_type,
                           list[static_cast<std::size_t>(i) % list.size()],
                           caf::make_message(get_atom::value, i));
    });
    report(name, window, calls, duration<double>(steady_clock::now() - start).count());
    shutdown(a);
    shutdown(b);
  }
  std::fflush(stdout);
  std::_Exit(0);  // skip tearing down two middlemen with live connections
}
