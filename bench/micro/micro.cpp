// Actor runtime microbenchmarks (Google Benchmark) on a real node's actors over SQLite files in a
// temp dir: message round trips to an inventory actor (through the router, and direct), activation
// and passivation rates, and the resident memory of an active idle actor of each type.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <gperftools/malloc_extension.h>
#include <caf/all.hpp>
#include <soci/soci.h>

#include "actors/inventory.hpp"
#include "actors/node.hpp"
#include "actors/order.hpp"
#include "actors/payment.hpp"
#include "actors/payment_provider.hpp"
#include "runtime/atoms.hpp"
#include "runtime/clock.hpp"
#include "runtime/registry.hpp"
#include "runtime/scheduler.hpp"
#include "runtime/store.hpp"

using namespace emporium;
namespace fs = std::filesystem;

namespace {

constexpr int kIdleActors = 20'000;        // per type, for the memory figure
constexpr int kActivationBurst = 1'000;    // actors activated at once per burst
constexpr int kRoundTripsPerBatch = 1'000; // sequential round trips per iteration

std::string sku_id(int i) { return "sku-" + std::to_string(i); }
// Ids as long as the ones the node makes (`new_id`: a prefix and 26 characters), so they take the
// heap as real ones do, where a short id would fit in the string itself.
std::string long_id(const char* prefix, int i) {
  auto digits = std::to_string(i);
  return prefix + std::string(26 - digits.size(), '0') + digits;
}
std::string order_id(int i) { return long_id("ord_", i); }
std::string payment_id(int i) { return long_id("pay_", i); }

// One node's actors over SQLite files that already hold kIdleActors items, orders and payments.
struct Env {
  fs::path dir;
  std::unique_ptr<caf::actor_system_config> cfg;
  std::unique_ptr<caf::actor_system> system;
  NodeActors node;
};
Env* env = nullptr;

void populate(const fs::path& dir) {
  auto now = SystemClock{}.now_ms();
  {
    soci::session s;
    open_session(s, {Backend::sqlite, (dir / "inventory.db").string()});
    migrate(s, Backend::sqlite, Database::inventory);
    soci::transaction tx(s);
    for (int i = 0; i < kIdleActors; ++i)
      save_item(s, ItemRecord{sku_id(i), "Bench mug " + std::to_string(i), 1999, "USD", 1'000'000, 0, 1},
                0, {});
    tx.commit();
  }
  soci::session s;
  open_session(s, {Backend::sqlite, (dir / "orders.db").string()});
  migrate(s, Backend::sqlite, Database::orders);
  soci::transaction tx(s);
  for (int i = 0; i < kIdleActors; ++i) {
    PaymentRecord p{payment_id(i), order_id(i), "captured", "", "visa", "4242", 12, 2030,
                    "sim_" + payment_id(i), 1999, "USD", 1};
    save_payment(s, p, 0);
    OrderRecord o;
    o.id = order_id(i);
    o.customer_id = "bench";
    o.status = "confirmed";
    o.lines = {{sku_id(i), 1, 1999}};
    o.total_cents = 1999;
    o.payment = p;
    o.created_at_ms = o.updated_at_ms = now;
    o.version = 1;
    save_order(s, o, 0, true);
  }
  tx.commit();
}

void start_env() {
  env = new Env;
  env->dir = fs::temp_directory_path() / ("emporium-micro-" + std::to_string(::getpid()));
  fs::create_directories(env->dir);
  populate(env->dir);
  Config config;
  config.database.orders = "sqlite:" + (env->dir / "orders.db").string();
  config.database.inventory = "sqlite:" + (env->dir / "inventory.db").string();
  // Nothing passivates on its own while a benchmark holds actors idle on purpose.
  config.actors.idle_passivate_ms = 3'600'000;
  config.actors.terminal_passivate_ms = 3'600'000;
  env->cfg = std::make_unique<caf::actor_system_config>();
  env->cfg->set("scheduler.max-threads",
                static_cast<size_t>(std::max(2u, std::thread::hardware_concurrency())));
  use_node_scheduler(*env->cfg);  // as the node runs (cmd/main.cpp)
  env->system = std::make_unique<caf::actor_system>(*env->cfg);
  env->node = start_node_actors(*env->system, config, std::make_shared<SystemClock>(),
                                make_provider(config.payment));
}

void stop_env() {
  stop_node_actors(*env->system, env->node);
  env->system.reset();
  fs::remove_all(env->dir);
  delete env;
}

const caf::actor& router() { return env->node.ctx->router; }
const caf::actor& registry(caf::atom_value type) { return env->node.registries.at(type); }

caf::message get_routed(caf::atom_value type, const std::string& id) {
  return caf::make_message(route_atom::value, type, id, caf::make_message(get_atom::value));
}

// Sends every message, then awaits every answer (of type Reply): all requests in flight at once.
template <class Reply>
void ask_all(caf::scoped_actor& self, const caf::actor& dest, const std::vector<caf::message>& msgs) {
  using handle_t = decltype(self->request(dest, caf::infinite, caf::message{}));
  std::vector<handle_t> handles;
  handles.reserve(msgs.size());
  for (const auto& m : msgs) handles.push_back(self->request(dest, caf::infinite, m));
  for (auto& h : handles)
    h.receive([](Reply&) {},
              [](caf::error& err) { std::fprintf(stderr, "error: %s\n", to_string(err).c_str()); });
}

std::int64_t active(caf::scoped_actor& self, caf::atom_value type) {
  RegistryStats stats;
  self->request(registry(type), caf::infinite, stats_atom::value)
      .receive([&](RegistryStats& s) { stats = s; }, [](caf::error&) {});
  return stats.active;
}

// Activates entities [0, n) of `type` by asking each for its state, kActivationBurst at a time.
void activate(caf::scoped_actor& self, caf::atom_value type, int n) {
  for (int from = 0; from < n; from += kActivationBurst) {
    std::vector<caf::message> msgs;
    for (int i = from; i < std::min(n, from + kActivationBurst); ++i) {
      auto id = type == inventory_type ? sku_id(i) : type == order_type ? order_id(i) : payment_id(i);
      msgs.push_back(get_routed(type, id));
    }
    if (type == inventory_type) ask_all<ItemRecord>(self, router(), msgs);
    else if (type == order_type) ask_all<OrderRecord>(self, router(), msgs);
    else ask_all<PaymentRecord>(self, router(), msgs);
  }
}

// Bytes the allocator (TCMalloc, as in the node) has handed out and not taken back, rounded up to
// its size classes (steadier than RSS, which depends on where freed memory sits).
std::int64_t heap_bytes() {
  size_t allocated = 0;
  if (!MallocExtension::instance()->GetNumericProperty("generic.current_allocated_bytes", &allocated)) {
    std::fprintf(stderr, "emporium-micro: the allocator reports no heap figures (not TCMalloc?)\n");
    std::exit(1);
  }
  return static_cast<std::int64_t>(allocated);
}

// Waits until the heap stops changing: stopped actors are freed by the scheduler's threads a
// little after the registry forgot them.
void settle_heap() {
  auto last = heap_bytes();
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto now = heap_bytes();
    if (std::abs(now - last) < 64 * 1024) return;
    last = now;
  }
}

// Passivates entities [0, n) and waits until the registry holds none; with `settle`, also a
// moment for the actors to take their stop message and be freed.
void passivate(caf::scoped_actor& self, caf::atom_value type, int n, bool settle) {
  for (int from = 0; from < n; from += kActivationBurst) {
    std::vector<caf::message> msgs;
    for (int i = from; i < std::min(n, from + kActivationBurst); ++i) {
      auto id = type == inventory_type ? sku_id(i) : type == order_type ? order_id(i) : payment_id(i);
      msgs.push_back(caf::make_message(passivate_atom::value, id));
    }
    ask_all<bool>(self, registry(type), msgs);
  }
  while (active(self, type) != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (settle) settle_heap();
}

// --- round trips -------------------------------------------------------------------------------

struct loop_state {
  caf::actor target;
  caf::message msg;
  int left = 0;
  caf::response_promise done;
};

void next_round_trip(caf::event_based_actor* self, std::shared_ptr<loop_state> st) {
  if (st->left-- == 0) {
    st->done.deliver(true);
    return;
  }
  self->request(st->target, caf::infinite, st->msg)
      .then([self, st](ItemRecord&) { next_round_trip(self, st); },
            [st](caf::error&) { st->done.deliver(false); });
}

// An actor that, asked (n), does n sequential request/response round trips with `msg` to `target`.
caf::behavior round_tripper(caf::event_based_actor* self, caf::actor target, caf::message msg) {
  return {
      [=](int n) {
        auto st = std::make_shared<loop_state>();
        st->target = target;
        st->msg = msg;
        st->left = n;
        st->done = self->make_response_promise();
        next_round_trip(self, st);
        return st->done;
      },
  };
}

caf::actor inventory_handle(caf::scoped_actor& self, const std::string& sku) {
  caf::actor handle;
  self->request(router(), caf::infinite, get_routed(inventory_type, sku))
      .receive([](ItemRecord&) {}, [](caf::error&) {});
  self->request(registry(inventory_type), caf::infinite, find_atom::value, sku)
      .receive([&](ActiveEntity& e) { handle = e.handle; }, [](caf::error&) {});
  return handle;
}

void run_round_trips(benchmark::State& state, caf::actor target, caf::message msg) {
  caf::scoped_actor self{*env->system};
  auto tripper = env->system->spawn(round_tripper, target, msg);
  for (auto _ : state) {
    bool ok = false;
    self->request(tripper, caf::infinite, kRoundTripsPerBatch)
        .receive([&](bool b) { ok = b; }, [](caf::error&) {});
    if (!ok) state.SkipWithError("round trip failed");
  }
  state.SetItemsProcessed(state.iterations() * kRoundTripsPerBatch);
  self->send_exit(tripper, caf::exit_reason::user_shutdown);
}

// Stock check as the edge does it: router -> inventory registry -> item actor, and back.
void BM_RoundTripViaRouter(benchmark::State& state) {
  run_round_trips(state, router(), get_routed(inventory_type, sku_id(0)));
}

// The same item actor asked directly: what the router and registry hops cost.
void BM_RoundTripDirect(benchmark::State& state) {
  caf::scoped_actor self{*env->system};
  auto handle = inventory_handle(self, sku_id(0));
  run_round_trips(state, handle, caf::make_message(get_atom::value));
}

// From a blocking (scoped) actor on a non-scheduler thread, as a test or a tool would ask.
void BM_RoundTripBlockingCaller(benchmark::State& state) {
  caf::scoped_actor self{*env->system};
  auto msg = get_routed(inventory_type, sku_id(0));
  for (auto _ : state)
    self->request(router(), caf::infinite, msg).receive([](ItemRecord&) {}, [](caf::error&) {});
  state.SetItemsProcessed(state.iterations());
}

// --- activation and passivation ---------------------------------------------------------------

// One actor at a time: activate (spawn + load its row from SQLite), then passivate it.
void BM_ActivatePassivateSequential(benchmark::State& state) {
  caf::scoped_actor self{*env->system};
  int i = 0;
  for (auto _ : state) {
    auto sku = sku_id(i++ % kIdleActors);
    self->request(router(), caf::infinite, get_routed(inventory_type, sku))
        .receive([](ItemRecord&) {}, [](caf::error&) {});
    self->request(registry(inventory_type), caf::infinite, passivate_atom::value, sku)
        .receive([](bool) {}, [](caf::error&) {});
  }
  state.SetItemsProcessed(state.iterations());
}

// kActivationBurst inventory actors activated at once, then all passivated at once.
void BM_ActivatePassivateBurst(benchmark::State& state) {
  caf::scoped_actor self{*env->system};
  for (auto _ : state) {
    activate(self, inventory_type, kActivationBurst);
    passivate(self, inventory_type, kActivationBurst, false);
  }
  state.SetItemsProcessed(state.iterations() * kActivationBurst);
}

// --- memory of an idle actor ------------------------------------------------------------------

std::int64_t rss_bytes() {
  MallocExtension::instance()->ReleaseFreeMemory();  // free pages back to the system first
  std::ifstream statm("/proc/self/statm");
  std::int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

// kIdleActors actors of one type, activated and left idle: the allocator's bytes per actor, and the
// resident memory growth. A first round warms what is allocated once (SQLite page cache, registry
// buckets, the allocator's caches); the memory it frees is reused by the measured round, so the
// resident growth can fall short of what the actors hold, and the heap bytes are the firmer figure.
void idle_actor_bytes(benchmark::State& state, caf::atom_value type) {
  caf::scoped_actor self{*env->system};
  activate(self, type, kIdleActors);
  passivate(self, type, kIdleActors, true);
  for (auto _ : state) {
    auto before = rss_bytes();
    auto heap_before = heap_bytes();
    activate(self, type, kIdleActors);
    settle_heap();
    auto loaded = rss_bytes();
    auto heap_loaded = heap_bytes();
    auto n = active(self, type);
    passivate(self, type, kIdleActors, true);
    auto after = rss_bytes();
    auto heap_after = heap_bytes();
    state.counters["active"] = static_cast<double>(n);
    state.counters["bytes_per_actor"] = static_cast<double>(loaded - before) / kIdleActors;
    state.counters["bytes_left_per_passivated"] = static_cast<double>(after - before) / kIdleActors;
    state.counters["heap_bytes_per_actor"] = static_cast<double>(heap_loaded - heap_before) / kIdleActors;
    state.counters["heap_bytes_left_per_passivated"] =
        static_cast<double>(heap_after - heap_before) / kIdleActors;
    state.counters["active_after_passivation"] = static_cast<double>(active(self, type));
  }
}

void BM_IdleActorBytesInventory(benchmark::State& state) { idle_actor_bytes(state, inventory_type); }
void BM_IdleActorBytesOrder(benchmark::State& state) { idle_actor_bytes(state, order_type); }
void BM_IdleActorBytesPayment(benchmark::State& state) { idle_actor_bytes(state, payment_type); }

// The floor: a bare CAF event-based actor with a one-handler behavior, no state, no registry.
void BM_IdleActorBytesBareCafActor(benchmark::State& state) {
  for (auto _ : state) {
    std::vector<caf::actor> actors;
    actors.reserve(kIdleActors);
    settle_heap();
    auto before = rss_bytes();
    auto heap_before = heap_bytes();
    for (int i = 0; i < kIdleActors; ++i)
      actors.push_back(env->system->spawn([](caf::event_based_actor*) -> caf::behavior {
        return {[](int) {}};
      }));
    settle_heap();
    auto loaded = rss_bytes();
    auto heap_loaded = heap_bytes();
    for (auto& a : actors) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    actors.clear();
    settle_heap();
    state.counters["bytes_per_actor"] = static_cast<double>(loaded - before) / kIdleActors;
    state.counters["heap_bytes_per_actor"] = static_cast<double>(heap_loaded - heap_before) / kIdleActors;
    state.counters["bytes_left_per_passivated"] = static_cast<double>(rss_bytes() - before) / kIdleActors;
    state.counters["heap_bytes_left_per_passivated"] =
        static_cast<double>(heap_bytes() - heap_before) / kIdleActors;
  }
}

// One item whose orders were committed and not shipped yet: its actor keeps each of those
// reservations until its order ships or is cancelled. The allocator's bytes per committed
// reservation the active item holds (measured across a passivation and the activation after it,
// so that nothing written meanwhile counts), and how long that activation takes.
constexpr int kCommitted = 20'000;

void BM_CommittedReservationBytes(benchmark::State& state) {
  caf::scoped_actor self{*env->system};
  const std::string sku = "committed-sku";
  auto routed = [&](caf::message msg) { return caf::make_message(route_atom::value, inventory_type, sku, std::move(msg)); };
  ask_all<item_put_result>(self, router(), {routed(caf::make_message(item_put{"Mug", 1999, 1'000'000'000, "USD"}))});
  // Order ids as the node makes them (new_id), which the item keeps packed; the same ones in every
  // repetition (the item keeps them: a reserve of one delivered again changes nothing).
  static const std::vector<std::string> ids = [] {
    std::vector<std::string> made;
    for (int i = 0; i < kCommitted; ++i) made.push_back(new_id("ord_", SystemClock{}.now_ms()));
    return made;
  }();
  for (auto step : {0, 1})
    for (int from = 0; from < kCommitted; from += kActivationBurst) {
      std::vector<caf::message> msgs;
      for (int i = from; i < std::min(kCommitted, from + kActivationBurst); ++i) {
        const auto& id = ids[static_cast<size_t>(i)];
        msgs.push_back(step == 0 ? routed(caf::make_message(item_reserve{id, 1}))
                                 : routed(caf::make_message(item_commit{id})));
      }
      ask_all<ItemRecord>(self, router(), msgs);
    }
  auto passivate_item = [&] {
    ask_all<bool>(self, registry(inventory_type), {caf::make_message(passivate_atom::value, sku)});
    while (active(self, inventory_type) != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    settle_heap();
  };
  // One activation unmeasured first: what a first read allocates once (the database's page
  // cache) does not count.
  passivate_item();
  ask_all<ItemRecord>(self, router(), {get_routed(inventory_type, sku)});
  for (auto _ : state) {
    passivate_item();
    auto heap_before = heap_bytes();
    auto started = std::chrono::steady_clock::now();
    ask_all<ItemRecord>(self, router(), {get_routed(inventory_type, sku)});
    auto took = std::chrono::steady_clock::now() - started;
    settle_heap();
    auto heap_active = heap_bytes();
    state.counters["committed"] = kCommitted;
    state.counters["heap_bytes_per_committed_reservation"] =
        static_cast<double>(heap_active - heap_before) / kCommitted;
    state.counters["activation_ms"] = std::chrono::duration<double, std::milli>(took).count();
  }
  passivate_item();
}

}  // namespace

// Wall-clock time throughout: the calling thread mostly waits for the actors' threads.
BENCHMARK(BM_RoundTripViaRouter)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_RoundTripDirect)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_RoundTripBlockingCaller)->Unit(benchmark::kMicrosecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_ActivatePassivateSequential)->Unit(benchmark::kMicrosecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_ActivatePassivateBurst)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_IdleActorBytesInventory)->Iterations(1)->Repetitions(3)->ReportAggregatesOnly(true)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_IdleActorBytesOrder)->Iterations(1)->Repetitions(3)->ReportAggregatesOnly(true)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_IdleActorBytesPayment)->Iterations(1)->Repetitions(3)->ReportAggregatesOnly(true)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CommittedReservationBytes)->Iterations(1)->Repetitions(3)->ReportAggregatesOnly(true)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_IdleActorBytesBareCafActor)->Iterations(1)->Repetitions(3)->ReportAggregatesOnly(true)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  start_env();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  stop_env();
  return 0;
}
