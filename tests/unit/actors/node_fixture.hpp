// A real node's actors (registries, router, persistence on SQLite files in a temp dir) with a clock
// and a payment provider the test controls. Tests talk to entities through the router, as the
// edge does, and wait for each reply.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include "actors/inventory.hpp"
#include "actors/node.hpp"
#include "actors/order.hpp"
#include "actors/payment.hpp"
#include "runtime/atoms.hpp"
#include "runtime/errors.hpp"
#include "runtime/registry.hpp"
#include "runtime/scheduler.hpp"

namespace emporium::testing {

class ManualClock final : public Clock {
 public:
  std::int64_t now_ms() const override { return now_.load(); }
  void advance(std::int64_t ms) { now_ += ms; }

 private:
  std::atomic<std::int64_t> now_{1'800'000'000'000};
};

// The simulated provider's cards, plus: the transient card fails `transient_left` times and then
// succeeds (-1: always fails), and every call is counted.
class ScriptedProvider final : public PaymentProvider {
 public:
  ChargeResult charge(const ChargeRequest& request) override {
    charges += 1;
    if (request.card && request.card->number.reveal() == "4000000000000119") {
      if (transient_left < 0) return {ChargeOutcome::transient_error, {}};
      if (transient_left > 0) {
        transient_left -= 1;
        return {ChargeOutcome::transient_error, {}};
      }
      return {ChargeOutcome::captured, "ref_" + request.payment_id};
    }
    return simulated.charge(request);
  }
  bool refund(const std::string& payment_id, std::int64_t amount_cents) override {
    refunds += 1;
    return simulated.refund(payment_id, amount_cents);
  }

  std::atomic<int> charges{0};
  std::atomic<int> refunds{0};
  std::atomic<int> transient_left{-1};

 private:
  SimulatedProvider simulated;
};

template <class T>
struct Reply {
  std::optional<T> value;
  caf::error error;
  errc code() const { return code_of(error); }
};

inline Card card(const std::string& number, const std::string& cvc = "123") {
  return Card{SecretString(number), SecretString(cvc), 12, 2030};
}

class NodeFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("emporium-actors-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::remove_all(dir_);  // left by a killed run whose process id this one has now
    std::filesystem::create_directories(dir_);
    config_.database.orders = "sqlite:" + (dir_ / "orders.db").string();
    config_.database.inventory = "sqlite:" + (dir_ / "inventory.db").string();
    config_.payment.retry_backoff_ms = 1;
    config_.orders.reservation_ttl_ms = 60'000;
    configure(config_);
    caf_config_.set("scheduler.max-threads", size_t{2});
    use_node_scheduler(caf_config_);
    system_ = std::make_unique<caf::actor_system>(caf_config_);  // keeps a reference to it
    node_ = start_node_actors(*system_, config_, clock_, provider_);
    // Before any call (a fresh node has nothing to recover): every call then goes to the router,
    // where a test can put a stand-in in front of a registry (register_atom).
    EXPECT_TRUE(node_.ctx->single_node);
    if (calls_through_router()) node_.ctx->single_node = false;
  }

  void TearDown() override {
    stop_node_actors(*system_, node_);
    system_.reset();
    std::filesystem::remove_all(dir_);
  }

  virtual void configure(Config&) {}
  // Entity calls through the router, as in a cluster (by default a single node's go straight to
  // the registries: NodeContext::route_for).
  virtual bool calls_through_router() const { return false; }

  template <class T, class... Ts>
  Reply<T> ask(caf::atom_value type, const std::string& id, Ts&&... xs) {
    caf::scoped_actor self{*system_};
    Reply<T> out;
    self->request(node_.ctx->router, std::chrono::seconds(20), route_atom::value, type, id,
                  caf::make_message(std::forward<Ts>(xs)...))
        .receive([&](T& value) { out.value = std::move(value); },
                 [&](caf::error& err) { out.error = std::move(err); });
    return out;
  }

  ItemRecord put_item(const std::string& sku, std::int64_t on_hand, std::int64_t price = 1000) {
    auto r = ask<item_put_result>(inventory_type, sku, item_put{"Item " + sku, price, on_hand, "USD"});
    EXPECT_TRUE(r.value) << to_string(r.code());
    return r.value ? r.value->item : ItemRecord{};
  }

  ItemRecord item(const std::string& sku) {
    auto r = ask<ItemRecord>(inventory_type, sku, get_atom::value);
    EXPECT_TRUE(r.value) << to_string(r.code());
    auto it = r.value.value_or(ItemRecord{});
    EXPECT_EQ(it.available(), it.on_hand - it.reserved);
    EXPECT_GE(it.reserved, 0);
    EXPECT_GE(it.available(), 0);
    return it;
  }

  Reply<OrderRecord> place(const std::string& order_id, std::vector<OrderLine> lines,
                           const std::string& number = "4242424242424242") {
    return ask<OrderRecord>(order_type, order_id, order_place{"alice", std::move(lines), card(number)});
  }

  bool passivate(caf::atom_value type, const std::string& id) {
    caf::scoped_actor self{*system_};
    bool out = false;
    self->request(node_.registries.at(type), std::chrono::seconds(5), passivate_atom::value, id)
        .receive([&](bool was) { out = was; }, [](caf::error& e) { ADD_FAILURE() << "stats or passivate: " << caf::to_string(e); });
    return out;
  }

  // Entities of `type` the registry counts alive: active, or passivated and not yet down.
  std::int64_t alive(caf::atom_value type) {
    caf::scoped_actor self{*system_};
    RegistryStats stats;
    self->request(node_.registries.at(type), std::chrono::seconds(5), stats_atom::value)
        .receive([&](RegistryStats& s) { stats = s; }, [](caf::error& e) { ADD_FAILURE() << "stats or passivate: " << caf::to_string(e); });
    return stats.alive;
  }
  // Waits (up to 5 s) until none of `type` is alive; whether that came.
  bool all_down(caf::atom_value type) {
    for (int i = 0; i < 500; ++i) {
      if (alive(type) == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  Config config_;
  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::shared_ptr<ScriptedProvider> provider_ = std::make_shared<ScriptedProvider>();
  caf::actor_system_config caf_config_;
  std::unique_ptr<caf::actor_system> system_;
  NodeActors node_;
  std::filesystem::path dir_;
  static inline int counter_ = 0;
};

}  // namespace emporium::testing
