// Placement (rendezvous hashing), the cluster settings' checks, and the wire form of the messages
// that cross between nodes.
#include <map>
#include <set>
#include <string>
#include <vector>

#include <caf/all.hpp>
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
