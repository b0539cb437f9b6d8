// Placement (rendezvous hashing), the cluster settings' checks, and the wire form of the messages
// that cross between nodes.
#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <thread>
#include <set>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <gtest/gtest.h>

#include "actors/inventory.hpp"
#include "actors/node.hpp"
#include "actors/order.hpp"
#include "actors/payment.hpp"
#include "runtime/atoms.hpp"
#include "runtime/cluster.hpp"
#include "runtime/config.hpp"
#include "runtime/errors.hpp"
#include "runtime/registry.hpp"

namespace emporium {
namespace {

std::string owner(const std::vector<std::string>& members, caf::atom_value type, const std::string& id) {
  return members[rendezvous_owner(members, type, id)];
}

TEST(Rendezvous, SpreadsEntitiesEvenlyOverMembers) {
  const std::vector<std::string> members{"node-1", "node-2", "node-3"};
  std::map<std::string, int> counts;
  const int n = 30'000;
  for (int i = 0; i < n; ++i) counts[owner(members, inventory_type, "sku-" + std::to_string(i))] += 1;
  ASSERT_EQ(counts.size(), 3u);
  for (const auto& [name, count] : counts) {
    EXPECT_GT(count, n * 30 / 100) << name;
    EXPECT_LT(count, n * 37 / 100) << name;
  }
}

TEST(Rendezvous, TypeIsPartOfTheKey) {
  const std::vector<std::string> members{"a", "b", "c", "d"};
  int differ = 0;
  for (int i = 0; i < 1000; ++i) {
    auto id = "x" + std::to_string(i);
    differ += owner(members, order_type, id) != owner(members, payment_type, id);
  }
  EXPECT_GT(differ, 600);  // about 3/4 for independent choices
}

TEST(Rendezvous, AMemberLeavingMovesOnlyItsOwnEntities) {
  const std::vector<std::string> three{"node-1", "node-2", "node-3"};
  const std::vector<std::string> two{"node-1", "node-3"};
  int moved = 0;
  for (int i = 0; i < 10'000; ++i) {
    auto id = "ord_" + std::to_string(i);
    auto before = owner(three, order_type, id);
    auto after = owner(two, order_type, id);
    if (before != "node-2") EXPECT_EQ(before, after) << id;
    else ++moved;
  }
  EXPECT_GT(moved, 2'500);
}

TEST(Rendezvous, AMemberJoiningTakesOnlyFromTheOthersAndAboutItsShare) {
  const std::vector<std::string> three{"node-1", "node-2", "node-3"};
  const std::vector<std::string> four{"node-1", "node-2", "node-3", "node-4"};
  int taken = 0;
  for (int i = 0; i < 10'000; ++i) {
    auto id = "sku-" + std::to_string(i);
    auto after = owner(four, inventory_type, id);
    if (after == "node-4") ++taken;
    else EXPECT_EQ(owner(three, inventory_type, id), after) << id;
  }
  EXPECT_GT(taken, 2'200);
  EXPECT_LT(taken, 2'800);
}

ConfigSources with_set(std::vector<std::string> sets) {
  ConfigSources sources;
  sources.overrides = std::move(sets);
  return sources;
}

TEST(ClusterConfig, TlsFilesComeTogetherAndMustExist) {
  try {
    load_config(with_set({"cluster.tls_certificate=" EMPORIUM_SOURCE_DIR "/README.md"}));
    FAIL() << "accepted a certificate without key and CA";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cluster.tls_key"), std::string::npos) << e.what();
  }
  try {
    load_config(with_set({"cluster.tls_certificate=/nonexistent/cert.pem", "cluster.tls_key=/nonexistent/k",
                          "cluster.tls_ca_file=/nonexistent/ca"}));
    FAIL() << "accepted missing files";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cluster.tls_certificate"), std::string::npos) << e.what();
  }
}

TEST(ClusterConfig, FailureTimeoutCoversTwoHeartbeats) {
  EXPECT_THROW(load_config(with_set({"cluster.heartbeat_interval_ms=1000", "cluster.failure_timeout_ms=1500"})),
               ConfigError);
  auto ok = load_config(with_set({"cluster.heartbeat_interval_ms=1000", "cluster.failure_timeout_ms=2000"}));
  EXPECT_EQ(ok.cluster.failure_timeout_ms, 2000);
}

TEST(ClusterConfig, BatchLimitsAreBounded) {
  EXPECT_THROW(load_config(with_set({"cluster.batch_max=0"})), ConfigError);
  EXPECT_THROW(load_config(with_set({"cluster.batch_max=10001"})), ConfigError);
  EXPECT_EQ(load_config(with_set({"cluster.batch_max=1"})).cluster.batch_max, 1);
  EXPECT_THROW(load_config(with_set({"cluster.calls_pending_max=0"})), ConfigError);
}

// What a peer receives of `msg`: CAF's binary form, as the middleman sends it.
caf::message over_the_wire(caf::actor_system& sys, caf::message& msg) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  EXPECT_FALSE(inspect(sink, msg));
  caf::message back;
  caf::binary_deserializer source{sys, buf};
  EXPECT_FALSE(inspect(source, back));
  return back;
}

// The card crosses the wire to the payment's owner intact, and prints as *** anywhere else.
TEST(Wire, EntityMessagesRoundTripAndTheCardNeverPrints) {
  caf::actor_system_config cfg;
  add_message_types(cfg);
  caf::actor_system sys{cfg};
  Card card{SecretString("4242424242424242"), SecretString("123"), 12, 2031};
  auto msg = caf::make_message(
      payment_charge{"ord_1", 2500, "EUR", card},
      order_place{"alice", {OrderLine{"sku-1", 2, 0}, OrderLine{"sku-2", 1, 0}}, card});
  auto back = over_the_wire(sys, msg);
  ASSERT_TRUE((back.match_elements<payment_charge, order_place>()));
  const auto& charge = back.get_as<payment_charge>(0);
  EXPECT_EQ(charge.order_id, "ord_1");
  EXPECT_EQ(charge.amount_cents, 2500);
  EXPECT_EQ(charge.currency, "EUR");
  EXPECT_EQ(charge.card.number.reveal(), "4242424242424242");
  EXPECT_EQ(charge.card.cvc.reveal(), "123");
  const auto& place = back.get_as<order_place>(1);
  ASSERT_EQ(place.lines.size(), 2u);
  EXPECT_EQ(place.lines[1].sku, "sku-2");
  auto printed = caf::to_string(back);
  EXPECT_EQ(printed.find("4242"), std::string::npos) << printed;
  EXPECT_EQ(printed.find("123\""), std::string::npos) << printed;
  EXPECT_NE(printed.find("***"), std::string::npos) << printed;
}

TEST(Wire, OrderWithAndWithoutPaymentRoundTrips) {
  caf::actor_system_config cfg;
  add_message_types(cfg);
  caf::actor_system sys{cfg};
  OrderRecord with;
  with.id = "ord_2";
  with.status = "confirmed";
  with.lines = {OrderLine{"sku-9", 3, 700}};
  with.payment = PaymentRecord{"pay_2", "ord_2", "captured", "", "visa", "4242", 12, 2031, "ref", 2100, "USD", 2};
  OrderRecord without = with;
  without.payment.reset();
  auto msg = caf::make_message(with, without, ItemRecord{"sku-9", "Mug", 700, "USD", 10, 3, 4});
  auto back = over_the_wire(sys, msg);
  ASSERT_TRUE((back.match_elements<OrderRecord, OrderRecord, ItemRecord>()));
  ASSERT_TRUE(back.get_as<OrderRecord>(0).payment.has_value());
  EXPECT_EQ(back.get_as<OrderRecord>(0).payment->last4, "4242");
  EXPECT_EQ(back.get_as<OrderRecord>(0).lines[0].unit_price_cents, 700);
  EXPECT_FALSE(back.get_as<OrderRecord>(1).payment.has_value());
  EXPECT_EQ(back.get_as<ItemRecord>(2).reserved, 3);
}

}  // namespace
}  // namespace emporium

// --- the transport: two actor systems, each with its own middleman on loopback ------------------

namespace emporium {
namespace {

constexpr caf::atom_value hold_type = caf::atom("hold");

// An entity that echoes (get_atom, x) and never answers ship_atom (a call that hangs).
struct holder_state {
  std::vector<caf::response_promise> held;
};
caf::behavior holder(caf::stateful_actor<holder_state>* self) {
  return {
      [](get_atom, std::int64_t x) { return x; },
      [self](ship_atom) {
        self->state.held.push_back(self->make_response_promise());
        return self->state.held.back();
      },
  };
}

struct TransportNode {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor registry, router, endpoint;
  std::uint16_t port = 0;
};

class Transport : public ::testing::Test {
 protected:
  void start(ClusterSettings settings) {
    for (auto* n : {&a_, &b_}) {
      n->cfg.set("scheduler.max-threads", static_cast<size_t>(2));
      n->cfg.load<caf::io::middleman>();
      add_message_types(n->cfg);
      n->sys = std::make_unique<caf::actor_system>(n->cfg);
      n->registry = spawn_registry(
          *n->sys, [](caf::local_actor* s, const std::string&, caf::actor, const caf::message&) { return s->spawn(holder); },
          [] { return std::int64_t{0}; });
      n->router = spawn_router(*n->sys, {{hold_type, n->registry}});
      // A free port: publish a placeholder, then the endpoint on the same port.
      auto probe = n->sys->spawn([]() -> caf::behavior { return {[](int) {}}; });
      auto port = n->sys->middleman().publish(probe, 0, "127.0.0.1", true);
      ASSERT_TRUE(port);
      n->port = *port;
      n->sys->middleman().unpublish(probe, *port);
      caf::anon_send_exit(probe, caf::exit_reason::user_shutdown);
    }
    std::map<std::string, std::string> members{{"a", "127.0.0.1:" + std::to_string(a_.port)},
                                               {"b", "127.0.0.1:" + std::to_string(b_.port)}};
    for (auto [n, name] : {std::pair{&a_, "a"}, std::pair{&b_, "b"}}) {
      settings.self = name;
      n->endpoint = start_static_cluster(*n->sys, settings, n->router, members,
                                         caf::actor_cast<caf::actor>(n->sys->middleman().actor_handle()));
      ASSERT_TRUE(n->sys->middleman().publish(n->endpoint, n->port, "127.0.0.1", true));
    }
    const std::vector<std::string> names{"a", "b"};
    for (int i = 0; owned_by_b_.size() < 64; ++i) {
      auto id = "h" + std::to_string(i);
      if (names[rendezvous_owner(names, hold_type, id)] == "b") owned_by_b_.push_back(id);
    }
  }

  void TearDown() override {
    for (auto* n : {&a_, &b_})
      for (const auto& h : {n->router, n->registry, n->endpoint})
        if (h) caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  }

  // Sends `payload` for entity `id` through node a's router; the answer (or error) comes later.
  std::future<caf::expected<std::int64_t>> call(const std::string& id, caf::message payload) {
    auto done = std::make_shared<std::promise<caf::expected<std::int64_t>>>();
    auto out = done->get_future();
    a_.sys->spawn([=, router = a_.router](caf::event_based_actor* self) {
      self->request(router, std::chrono::seconds(20), route_atom::value, hold_type, id, payload)
          .then([done](std::int64_t x) { done->set_value(x); },
                [done](caf::error& err) { done->set_value(std::move(err)); });
    });
    return out;
  }

  // Sends 64 calls to entities on b at once and checks every answer.
  void call_64() {
    std::vector<std::future<caf::expected<std::int64_t>>> answers;
    for (std::int64_t i = 0; i < 64; ++i)
      answers.push_back(call(owned_by_b_[static_cast<size_t>(i)], caf::make_message(get_atom::value, i)));
    for (std::int64_t i = 0; i < 64; ++i) {
      auto got = answers[static_cast<size_t>(i)].get();
      ASSERT_TRUE(got) << caf::to_string(got.error());
      EXPECT_EQ(*got, i);
    }
  }

  // What b's endpoint received: batches, calls, the largest batch.
  std::tuple<std::int64_t, std::int64_t, std::int64_t> received_by_b() {
    caf::scoped_actor self{*b_.sys};
    std::tuple<std::int64_t, std::int64_t, std::int64_t> out{-1, -1, -1};
    self->request(b_.endpoint, std::chrono::seconds(5), stats_atom::value, batches_atom::value)
        .receive([&](std::int64_t batches, std::int64_t calls, std::int64_t largest) { out = {batches, calls, largest}; },
                 [](caf::error& err) { FAIL() << caf::to_string(err); });
    return out;
  }

  TransportNode a_, b_;
  std::vector<std::string> owned_by_b_;
};

// cluster.batch_max: the calls cross in batches of at most that many.
TEST_F(Transport, CallsCrossInBatchesAndEveryOneIsAnswered) {
  ClusterSettings s;
  s.batch_max = 3;  // many batches for 64 calls
  start(s);
  call_64();
  auto [batches, calls, largest] = received_by_b();
  EXPECT_EQ(calls, 64);
  EXPECT_LE(largest, 3);
  EXPECT_GE(batches, 22);  // 64 / 3, rounded up
}

// At its lowest, 1: every call crosses alone.
TEST_F(Transport, ABatchLimitOfOneSendsEveryCallAlone) {
  ClusterSettings s;
  s.batch_max = 1;
  start(s);
  call_64();
  EXPECT_EQ(received_by_b(), std::make_tuple(std::int64_t{64}, std::int64_t{64}, std::int64_t{1}));
}

// cluster.calls_pending_max: past it a call is refused (not_delivered, after the router's resends);
// cluster.call_timeout_ms: a call the other node does not answer in time fails, and frees its place.
TEST_F(Transport, PendingCallsAreBoundedAndUnansweredOnesTimeOut) {
  ClusterSettings s;
  s.calls_pending_max = 4;
  s.call_timeout_ms = 3000;  // longer than the router's resends (about 1.6 s)
  start(s);
  std::vector<std::future<caf::expected<std::int64_t>>> held;
  for (int i = 0; i < 4; ++i) held.push_back(call(owned_by_b_[static_cast<size_t>(i)], caf::make_message(ship_atom::value)));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the four are pending at the link
  auto refused = call(owned_by_b_[10], caf::make_message(get_atom::value, std::int64_t{7})).get();
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::not_delivered) << caf::to_string(refused.error());
  for (auto& h : held) {
    // Answered by the endpoint's deadline (3 s), well before the caller's own (20 s).
    ASSERT_EQ(h.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    auto got = h.get();
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error(), caf::sec::request_timeout) << caf::to_string(got.error());
  }
  auto after = call(owned_by_b_[10], caf::make_message(get_atom::value, std::int64_t{8})).get();
  ASSERT_TRUE(after) << caf::to_string(after.error());
  EXPECT_EQ(*after, 8);
}

// A stand-in for another node's endpoint: counts the call batches it gets and answers none.
caf::behavior silent_endpoint(caf::event_based_actor* self,
                              std::shared_ptr<std::atomic<int>> batches) {
  self->set_default_handler(
      [batches](caf::scheduled_actor*, caf::message_view&) -> caf::result<caf::message> {
        batches->fetch_add(1);
        return caf::delegated<caf::message>{};  // no answer, ever
      });
  return {[](stop_atom) {}};
}

// A link that takes a second connection (a hello with another endpoint) while calls sent on the
// first wait: the calls to come go over the second, and those waiting fail as soon as the first
// endpoint goes, instead of waiting for the caller's own timeout.
TEST(ClusterLink, CallsSentOnAnEarlierConnectionFailWhenItsEndpointGoes) {
  using hello_atom = caf::atom_constant<caf::atom("hello")>;
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", static_cast<size_t>(2));
  add_message_types(cfg);
  caf::actor_system sys{cfg};
  auto first_batches = std::make_shared<std::atomic<int>>(0);
  auto second_batches = std::make_shared<std::atomic<int>>(0);
  auto first = sys.spawn(silent_endpoint, first_batches);
  auto second = sys.spawn(silent_endpoint, second_batches);
  auto registry = spawn_registry(
      sys,
      [](caf::local_actor* s, const std::string&, caf::actor, const caf::message&) {
        return s->spawn(holder);
      },
      [] { return std::int64_t{0}; });
  auto router = spawn_router(sys, {{hold_type, registry}});
  ClusterSettings settings;
  settings.self = "b";  // sorts after "a": this node waits for a's hello instead of dialling
  settings.connect_timeout_ms = 60'000;
  auto endpoint = start_static_cluster(sys, settings, router,
                                       {{"a", "127.0.0.1:9"}, {"b", "127.0.0.1:9"}}, caf::actor{});
  // Everything stops however the test ends (the router and the endpoint hold each other, and the
  // actor system waits for every actor when it goes).
  struct Stop {
    std::vector<caf::actor> actors;
    ~Stop() {
      for (const auto& a : actors) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    }
  } stop{{router, registry, endpoint, first, second}};
  caf::scoped_actor self{sys};
  self->send(router, hello_atom::value, std::string("a"), std::int64_t{1}, first);
  const std::vector<std::string> names{"a", "b"};
  std::vector<std::string> on_a;
  for (int i = 0; on_a.size() < 2; ++i) {
    auto id = "h" + std::to_string(i);
    if (names[rendezvous_owner(names, hold_type, id)] == "a") on_a.push_back(id);
  }
  // A call the router never sends again (not a read): its answer is the link's.
  auto call = [&](const std::string& id) {
    auto done = std::make_shared<std::promise<caf::error>>();
    sys.spawn([=](caf::event_based_actor* s) {
      s->request(router, std::chrono::seconds(20), route_atom::value, hold_type, id,
                 caf::make_message(ship_atom::value))
          .then([done](std::int64_t) { done->set_value(caf::error{}); },
                [done](caf::error& err) { done->set_value(std::move(err)); });
    });
    return done->get_future();
  };
  auto wait_for = [](const std::shared_ptr<std::atomic<int>>& n) {
    for (int i = 0; i < 500 && n->load() == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return n->load();
  };
  auto sent_first = call(on_a[0]);
  ASSERT_EQ(wait_for(first_batches), 1);
  self->send(router, hello_atom::value, std::string("a"), std::int64_t{1}, second);
  auto sent_second = call(on_a[1]);  // after the hello, from the same router: over the second
  ASSERT_EQ(wait_for(second_batches), 1);
  EXPECT_EQ(first_batches->load(), 1);
  EXPECT_EQ(sent_first.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  self->send_exit(first, caf::exit_reason::remote_link_unreachable);
  ASSERT_EQ(sent_first.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  auto err = sent_first.get();
  EXPECT_EQ(code_of(err), errc::unavailable) << caf::to_string(err);
  // The call on the second connection still waits: its endpoint is there.
  EXPECT_EQ(sent_second.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  self->send_exit(second, caf::exit_reason::remote_link_unreachable);
  ASSERT_EQ(sent_second.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(code_of(sent_second.get()), errc::unavailable);
}

}  // namespace
}  // namespace emporium
