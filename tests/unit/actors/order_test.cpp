// The order actor's saga on a real node (SQLite): each outcome, compensation, cancel from each
// state, ship, recovery of interrupted orders, and idempotent re-delivery of every command.
#include <atomic>
#include <future>
#include <thread>

#include <soci/soci.h>

#include "runtime/cluster.hpp"
#include "runtime/persistence.hpp"
#include "runtime/store.hpp"
#include "tests/unit/actors/node_fixture.hpp"

namespace emporium::testing {
namespace {

class OrderActor : public NodeFixture {
 protected:
  void configure(Config& c) override { c.payment.retries_max = 3; }

  OrderRecord get(const std::string& id) {
    auto r = ask<OrderRecord>(order_type, id, get_atom::value);
    EXPECT_TRUE(r.value) << to_string(r.code());
    return r.value.value_or(OrderRecord{});
  }

  void expect_stock(const std::string& sku, std::int64_t on_hand, std::int64_t reserved) {
    auto it = item(sku);
    EXPECT_EQ(it.on_hand, on_hand) << sku;
    EXPECT_EQ(it.reserved, reserved) << sku;
    EXPECT_EQ(it.available(), on_hand - reserved) << sku;
  }

  // The item's reserved units once they are `want`, or after 3 s (what a timer or a check does
  // comes after the message that set it off is answered).
  std::int64_t reserved_becomes(const std::string& sku, std::int64_t want) {
    for (int i = 0; i < 300 && item(sku).reserved != want; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return item(sku).reserved;
  }

  // Sends the item its expiry message, as its timer would.
  void expire_now(const std::string& sku) {
    caf::anon_send(node_.ctx->router, route_atom::value, inventory_type, sku,
                   caf::make_message(expire_atom::value));
  }

  // Writes an order straight to storage, as a crash would have left it.
  void store_order(const OrderRecord& rec) {
    caf::scoped_actor self{*system_};
    self->request(node_.ctx->orders_db, std::chrono::seconds(5),
                  db_write{[rec](soci::session& s) { return save_order(s, rec, 0, true); }})
        .receive([](bool applied) { EXPECT_TRUE(applied); },
                 [](caf::error& e) { FAIL() << caf::to_string(e); });
  }

  // Runs `sql` on the orders database, as one write of its persistence actor.
  void orders_sql(const std::string& sql) {
    caf::scoped_actor self{*system_};
    self->request(node_.ctx->orders_db, std::chrono::seconds(5), db_write{[sql](soci::session& s) {
                    s << sql;
                    return true;
                  }})
        .receive([](bool) {}, [&](caf::error& e) { FAIL() << sql << ": " << caf::to_string(e); });
  }

  // Cancels order `id` once it is seen in `status` (polled up to `polls` times, `pause` apart);
  // no value when the order never was seen so (its saga moved on first).
  Reply<OrderRecord> cancel_when(const std::string& id, const std::string& status, int polls,
                                 std::chrono::milliseconds pause) {
    for (int i = 0; i < polls; ++i) {
      auto now = ask<OrderRecord>(order_type, id, get_atom::value);
      if (now.value && now.value->status == status) return ask<OrderRecord>(order_type, id, cancel_atom::value);
      std::this_thread::sleep_for(pause);
    }
    return {};
  }
};

TEST_F(OrderActor, PlacementConfirmsCapturesAndKeepsUnitsReserved) {
  put_item("mug", 10, 1999);
  put_item("pen", 5, 250);
  auto r = place("ord_a", {{"mug", 2, 0}, {"pen", 3, 0}});
  ASSERT_TRUE(r.value) << to_string(r.code());
  const auto& o = *r.value;
  EXPECT_EQ(o.status, "confirmed");
  EXPECT_EQ(o.failure_reason, "");
  EXPECT_EQ(o.total_cents, 2 * 1999 + 3 * 250);
  ASSERT_TRUE(o.payment);
  EXPECT_EQ(o.payment->status, "captured");
  EXPECT_EQ(o.payment->brand, "visa");
  EXPECT_EQ(o.payment->last4, "4242");
  expect_stock("mug", 10, 2);
  expect_stock("pen", 5, 3);
  EXPECT_EQ(provider_->charges, 1);
}

// What the stand-in for the inventory registry does to reserves (see inventory_stand_in).
struct ReserveScript {
  int lose = 0;                // the first `lose` run, but are answered errc::unavailable
  bool hold = false;           // none is passed on, and none answered
  std::vector<caf::response_promise> held;
  bool refuse_commits = false;  // commits are answered db_unavailable, unrun (a refused write)
  bool refuse_syncs = false;    // syncs are answered db_unavailable (a reservation not stored)
  bool release_before_commit = false;  // a commit finds its reservation released first...
  bool steal_before_commit = false;    // ...and its units reserved for another order
  int reserves_seen = 0;        // reserves that reached the stand-in
  // Reserves, syncs, commits are parked, unanswered, until the stand-in gets unpark_atom: then
  // passed on.
  bool park_reserves = false;
  bool park_syncs = false;
  bool park_commits = false;
  struct Parked {
    caf::response_promise rp;
    std::string sku;
    caf::message payload;
  };
  std::vector<Parked> parked;
  std::shared_ptr<std::atomic<int>> parked_count = std::make_shared<std::atomic<int>>(0);
};

using unpark_atom = caf::atom_constant<caf::atom("unpark")>;

// Passes `payload` on to `real` and its answer, whatever its type, to `rp`.
void pass_on(caf::event_based_actor* self, const caf::actor& real, caf::atom_value type, std::string id,
             caf::message payload, caf::response_promise rp, bool drop = false) {
  // Any reply type: a reply that matches no handler reaches the error handler as
  // unexpected_response carrying the reply.
  self->request(real, caf::infinite, route_atom::value, type, std::move(id), std::move(payload))
      .then([](caf::message&) {},
            [rp, drop](caf::error& err) mutable {
              if (drop) return rp.deliver(make_error(errc::unavailable, "node went away with the call"));
              if (err == caf::sec::unexpected_response) return rp.deliver(std::move(err.context()));
              rp.deliver(std::move(err));
            });
}

// Stands in for the inventory registry in front of the real one. Every call goes there, save what
// the script says of reserves: a lost answer is what a caller sees when the node that owned the
// item went away with the call before its answer came back; a held one, an item whose node hangs.
caf::behavior inventory_stand_in(caf::event_based_actor* self, caf::actor real,
                                 std::shared_ptr<ReserveScript> script) {
  return {[=](unpark_atom) {
            for (auto& parked : script->parked)
              pass_on(self, real, inventory_type, parked.sku, parked.payload, parked.rp);
            script->parked.clear();
          },
          [=](route_atom, caf::atom_value type, std::string& id, caf::message& payload) {
    auto rp = self->make_response_promise();
    bool reserve = payload.match_elements<item_reserve>();
    if (reserve) script->reserves_seen += 1;
    if (reserve && script->hold) {
      script->held.push_back(rp);  // kept, never delivered
      return rp;
    }
    if (script->refuse_commits && payload.match_elements<item_commit>()) {
      rp.deliver(make_error(errc::db_unavailable, "commit refused"));
      return rp;
    }
    if (script->refuse_syncs && payload.match_elements<item_sync>()) {
      rp.deliver(make_error(errc::db_unavailable, "reservation not stored"));
      return rp;
    }
    if ((script->park_syncs && payload.match_elements<item_sync>()) || (script->park_reserves && reserve) ||
        (script->park_commits && payload.match_elements<item_commit>())) {
      script->parked.push_back({rp, id, payload});
      *script->parked_count += 1;
      return rp;
    }
    if (script->release_before_commit && payload.match_elements<item_commit>()) {
      auto release = caf::make_message(item_release{payload.get_as<item_commit>(0).order_id});
      self->request(real, caf::infinite, route_atom::value, type, id, std::move(release))
          .then([](caf::message&) {}, [](caf::error&) {});
      if (script->steal_before_commit) {
        auto steal = caf::make_message(item_reserve{"ord_thief", payload.get_as<item_commit>(0).quantity});
        self->request(real, caf::infinite, route_atom::value, type, id, std::move(steal))
            .then([](caf::message&) {}, [](caf::error&) {});
      }
    }
    bool drop = reserve && script->lose-- > 0;
    pass_on(self, real, type, std::move(id), std::move(payload), rp, drop);
    return rp;
  }};
}

class OrderActorLosingReplies : public OrderActor {
 protected:
  bool calls_through_router() const override { return true; }
  // Puts a stand-in with `script` in front of the inventory registry: the router sends item calls
  // to it.
  std::shared_ptr<ReserveScript> script_reserves(ReserveScript script) {
    auto shared = std::make_shared<ReserveScript>(std::move(script));
    auto stand_in = system_->spawn(inventory_stand_in, node_.registries.at(inventory_type), shared);
    caf::anon_send(node_.ctx->router, register_atom::value, inventory_type, stand_in);
    stand_ins_.push_back(stand_in);
    return shared;
  }
  void lose_reserve_replies(int n) { script_reserves({n, false, {}}); }
  // Whether `n` calls were parked by the stand-in within 2 s.
  static bool parked(const ReserveScript& script, int n) {
    for (int i = 0; i < 1000 && script.parked_count->load() < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return script.parked_count->load() == n;
  }
  // A read of order `id` from `self`: answered after whatever `self` sent the order before.
  Reply<OrderRecord> read_as(caf::scoped_actor& self, const std::string& id) {
    Reply<OrderRecord> out;
    self->request(node_.ctx->router, std::chrono::seconds(20), route_atom::value, order_type, id,
                  caf::make_message(get_atom::value))
        .receive([&](OrderRecord& o) { out.value = std::move(o); }, [&](caf::error& e) { out.error = std::move(e); });
    return out;
  }
  void TearDown() override {
    for (auto& a : stand_ins_) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    OrderActor::TearDown();
  }
  std::vector<caf::actor> stand_ins_;
};

// Stands in for the order registry of a node that cannot be reached: every call is answered
// errc::unavailable, and counted in `asked`.
caf::behavior unreachable_orders(caf::event_based_actor*, std::shared_ptr<std::atomic<int>> asked) {
  return {[asked](route_atom, caf::atom_value, std::string&, caf::message&) -> caf::result<OrderRecord> {
    ++*asked;
    return make_error(errc::unavailable, "the order's node went away");
  }};
}

// Waits (up to 5 s) until `asked` passes `before`: the check has asked, so what it kept is kept.
bool asked_past(const std::atomic<int>& asked, int before) {
  for (int i = 0; i < 2500 && asked.load() <= before; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return asked.load() > before;
}

// A check that cannot reach its order (its node unreachable) releases nothing, and neither does
// its expiry: the order may be confirmed (see confirm_and_commit). It asks again every
// reservation_check_ms, and is released once its order is found not stored.
TEST_F(OrderActorLosingReplies, AReservationWhoseOrderCannotBeAskedIsKeptUntilItCanBe) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_far", 2}).value);
  auto asked = std::make_shared<std::atomic<int>>(0);
  auto stand_in = system_->spawn(unreachable_orders, asked);
  caf::anon_send(node_.ctx->router, register_atom::value, order_type, stand_in);
  stand_ins_.push_back(stand_in);
  clock_->advance(config_.orders.reservation_check_ms);
  expire_now("mug");
  ASSERT_TRUE(asked_past(*asked, 0)) << "the check did not ask the order";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the answer handled
  expect_stock("mug", 10, 2);
  int before_expiry = asked->load();
  clock_->advance(config_.orders.reservation_ttl_ms - config_.orders.reservation_check_ms);
  expire_now("mug");
  ASSERT_TRUE(asked_past(*asked, before_expiry)) << "the expiry did not ask the order";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  expect_stock("mug", 10, 2);
  caf::anon_send(node_.ctx->router, register_atom::value, order_type, node_.registries.at(order_type));
  expire_now("mug");  // asked again only reservation_check_ms after its expiry
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  expect_stock("mug", 10, 2);
  clock_->advance(config_.orders.reservation_check_ms);
  expire_now("mug");
  EXPECT_EQ(reserved_becomes("mug", 0), 0);
}

class OrderActorSilentItem : public OrderActorLosingReplies {
 protected:
  void configure(Config& c) override {
    OrderActorLosingReplies::configure(c);
    c.orders.step_timeout_ms = 300;
  }
};

// A saga step that gets no answer fails after orders.step_timeout_ms (300 ms here, 30 s by
// default): the placement answers db_unavailable (the edge's 503) and nothing stays reserved.
TEST_F(OrderActorSilentItem, AStepWithoutAnswerFailsAfterTheStepTimeout) {
  put_item("mug", 10);
  put_item("pen", 5);
  auto script = script_reserves({0, true, {}});
  auto started = std::chrono::steady_clock::now();
  auto r = place("ord_silent", {{"mug", 1, 0}});
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_FALSE(r.value);
  EXPECT_EQ(r.code(), errc::db_unavailable);
  EXPECT_GE(took, std::chrono::milliseconds(300));
  EXPECT_LT(took, std::chrono::seconds(10));  // not the 30 s default
  EXPECT_EQ(script->held.size(), 1u);
  expect_stock("mug", 10, 0);
  EXPECT_EQ(provider_->charges, 0);
}

// An order placing before its first write (its reserves not answered yet) that is asked for is
// stored pending and shown so, not unknown: past the placement timeout the edge answers 202 with
// it, never 404, and what it answered exists.
TEST_F(OrderActorSilentItem, AnOrderWaitingForItsReservesIsShownPending) {
  put_item("mug", 10);
  auto script = script_reserves({0, true, {}});
  auto placing = std::async(std::launch::async, [&] { return place("ord_wait", {{"mug", 1, 0}}); });
  Reply<OrderRecord> shown;
  for (int i = 0; i < 100 && !shown.value; ++i) {
    shown = ask<OrderRecord>(order_type, "ord_wait", get_atom::value);
    if (!shown.value) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(shown.value) << to_string(shown.code());
  EXPECT_EQ(shown.value->status, "pending");
  EXPECT_EQ(shown.value->customer_id, "alice");
  ASSERT_EQ(shown.value->lines.size(), 1u);
  EXPECT_FALSE(shown.value->payment);
  // Asked for, it was stored pending (the edge answered 202 with it): the step timeout then
  // compensates it, never charged, and the placement answers the failure.
  auto placed = placing.get();
  EXPECT_EQ(placed.code(), errc::db_unavailable);
  EXPECT_TRUE(passivate(order_type, "ord_wait"));
  auto stored = ask<OrderRecord>(order_type, "ord_wait", get_atom::value);
  ASSERT_TRUE(stored.value) << to_string(stored.code());
  EXPECT_EQ(stored.value->status, "payment_failed");
  EXPECT_EQ(stored.value->failure_reason, "payment_unavailable");
  EXPECT_EQ(provider_->charges, 0);
  expect_stock("mug", 10, 0);
}

// Item calls are idempotent per order: one whose answer was lost with its node is sent again, up to
// kItemResends (2) times, and the item holds the order's units once.
TEST_F(OrderActorLosingReplies, AReserveWhoseNodeWentAwayIsSentAgainAndHeldOnce) {
  put_item("mug", 10, 1999);
  put_item("pen", 5, 250);
  lose_reserve_replies(2);
  auto r = place("ord_lost", {{"mug", 2, 0}, {"pen", 3, 0}});
  ASSERT_TRUE(r.value) << to_string(r.code());
  EXPECT_EQ(r.value->status, "confirmed");
  EXPECT_EQ(r.value->total_cents, 2 * 1999 + 3 * 250);
  expect_stock("mug", 10, 2);
  expect_stock("pen", 5, 3);
}

// Past the limit the placement fails as db_unavailable (the edge's 503), and what was reserved is
// released.
TEST_F(OrderActorLosingReplies, AReserveLostMoreOftenThanTheLimitFailsAndReleases) {
  put_item("mug", 10, 1999);
  lose_reserve_replies(3);
  auto r = place("ord_lost", {{"mug", 2, 0}});
  EXPECT_FALSE(r.value);
  EXPECT_EQ(r.code(), errc::db_unavailable);
  expect_stock("mug", 10, 0);
}

// The order is recorded while its reservations are made sure to be stored (item_sync), and the
// charge waits for both: a reservation that is not stored fails the order before the provider is
// asked, as the database's failure (the edge's 503), and the order is compensated at once: the
// payment's pending record is settled without the provider.
TEST_F(OrderActorLosingReplies, AReservationThatIsNotStoredFailsTheOrderBeforeAnyCharge) {
  put_item("mug", 10);
  auto script = script_reserves({});
  script->refuse_syncs = true;
  auto failed = place("ord_nosync", {{"mug", 2, 0}});
  EXPECT_FALSE(failed.value);
  EXPECT_EQ(failed.code(), errc::db_unavailable);
  auto r = ask<OrderRecord>(order_type, "ord_nosync", get_atom::value);
  ASSERT_TRUE(r.value) << to_string(r.code());
  EXPECT_EQ(r.value->status, "payment_failed");
  EXPECT_EQ(r.value->failure_reason, "payment_unavailable");
  ASSERT_TRUE(r.value->payment);
  EXPECT_EQ(r.value->payment->status, "failed");
  EXPECT_EQ(provider_->charges, 0);
  EXPECT_EQ(provider_->refunds, 0);
  expect_stock("mug", 10, 0);
}

// The confirmation and the commits go at the same time, once the charge went through (see
// confirm_and_commit): a commit refused leaves the reservation stored, held, and the order
// confirmed. The item's check commits it as its confirmed order's, so it never expires.
TEST_F(OrderActorLosingReplies, ACommitRefusedBesideTheConfirmationIsCommittedAtTheItemsCheck) {
  put_item("mug", 10);
  script_reserves({0, false, {}, true});
  auto r = place("ord_nocommit", {{"mug", 2, 0}});
  ASSERT_TRUE(r.value) << to_string(r.code());
  EXPECT_EQ(r.value->status, "confirmed");
  EXPECT_EQ(r.value->payment->status, "captured");
  EXPECT_EQ(provider_->charges, 1);
  auto state = [&] {
    auto view = ask<item_state_view>(inventory_type, "mug", inspect_atom::value);
    EXPECT_TRUE(view.value) << to_string(view.code());
    for (const auto& res : view.value.value_or(item_state_view{}).reservations)
      if (res.order_id == "ord_nocommit") return std::optional(res.state);
    return std::optional<ReservationState>{};
  };
  EXPECT_EQ(state(), ReservationState::held);
  expect_stock("mug", 10, 2);
  clock_->advance(config_.orders.reservation_check_ms);
  expire_now("mug");
  for (int i = 0; i < 300 && state() != ReservationState::committed; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(state(), ReservationState::committed);
  clock_->advance(config_.orders.reservation_ttl_ms);
  expire_now("mug");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  expect_stock("mug", 10, 2);
  EXPECT_TRUE(passivate(inventory_type, "mug"));  // and it was stored so
  EXPECT_EQ(state(), ReservationState::committed);
  ASSERT_TRUE(ask<OrderRecord>(order_type, "ord_nocommit", ship_atom::value).value);
  expect_stock("mug", 8, 0);
}

// A commit that finds its reservation gone (released meanwhile) makes it again when the units are
// there: the order is placed.
TEST_F(OrderActorLosingReplies, ACommitThatFindsItsReservationGoneMakesItAgain) {
  put_item("mug", 10);
  auto script = script_reserves({});
  script->release_before_commit = true;
  auto r = place("ord_gone", {{"mug", 2, 0}});
  ASSERT_TRUE(r.value) << to_string(r.code());
  EXPECT_EQ(r.value->status, "confirmed");
  EXPECT_EQ(provider_->charges, 1);
  EXPECT_EQ(provider_->refunds, 0);
  expect_stock("mug", 10, 2);
  script->release_before_commit = false;
  EXPECT_TRUE(passivate(inventory_type, "mug"));  // stored committed: it ships
  ASSERT_TRUE(ask<OrderRecord>(order_type, "ord_gone", ship_atom::value).value);
  expect_stock("mug", 8, 0);
}

// One whose units are gone too (another order took them) leaves a confirmed order without its
// units: it is cancelled, and so refunded, and holds nothing.
TEST_F(OrderActorLosingReplies, ACommitThatFindsItsUnitsGoneCancelsAndRefunds) {
  put_item("mug", 3);
  auto script = script_reserves({});
  script->release_before_commit = true;
  script->steal_before_commit = true;
  auto r = place("ord_gone", {{"mug", 2, 0}});
  ASSERT_TRUE(r.value) << to_string(r.code());
  EXPECT_EQ(r.value->status, "cancelled");
  ASSERT_TRUE(r.value->payment);
  EXPECT_EQ(r.value->payment->status, "refunded");
  EXPECT_EQ(provider_->charges, 1);
  EXPECT_EQ(provider_->refunds, 1);
  expect_stock("mug", 3, 2);  // the other order's
}

// The order is recorded once its reservations are made (see place): a record the database refuses
// fails the placement, and what was reserved is released before the answer.
TEST_F(OrderActorLosingReplies, APendingRecordRefusedReleasesTheReservationsMadeBesideIt) {
  put_item("mug", 10);
  put_item("pen", 5);
  auto script = script_reserves({});
  orders_sql("CREATE TRIGGER refuse BEFORE INSERT ON orders BEGIN SELECT RAISE(ABORT, 'refused'); END");
  auto r = place("ord_refused", {{"mug", 2, 0}, {"pen", 1, 0}});
  EXPECT_FALSE(r.value);
  EXPECT_EQ(r.code(), errc::db_failed);  // the database refused the statement
  EXPECT_EQ(script->reserves_seen, 2);
  expect_stock("mug", 10, 0);
  expect_stock("pen", 5, 0);
  EXPECT_EQ(provider_->charges, 0);
  orders_sql("DROP TRIGGER refuse");
  EXPECT_EQ(ask<OrderRecord>(order_type, "ord_refused", get_atom::value).code(), errc::not_found);
  auto placed = place("ord_refused_2", {{"mug", 2, 0}});
  ASSERT_TRUE(placed.value) << to_string(placed.code());
  EXPECT_EQ(placed.value->status, "confirmed");
  expect_stock("mug", 10, 2);
}

TEST_F(OrderActor, InsufficientStockIsRejectedWithoutPaymentAndReleasesOtherLines) {
  put_item("mug", 10);
  put_item("pen", 1);
  auto r = place("ord_b", {{"mug", 2, 0}, {"pen", 2, 0}});
  ASSERT_TRUE(r.value);
  EXPECT_EQ(r.value->status, "rejected");
  EXPECT_EQ(r.value->failure_reason, "insufficient_stock");
  EXPECT_FALSE(r.value->payment);
  EXPECT_EQ(provider_->charges, 0);
  expect_stock("mug", 10, 0);
  expect_stock("pen", 1, 0);
}

TEST_F(OrderActor, UnknownSkuIsRejected) {
  put_item("mug", 10);
  auto r = place("ord_c", {{"mug", 1, 0}, {"ghost", 1, 0}});
  ASSERT_TRUE(r.value);
  EXPECT_EQ(r.value->status, "rejected");
  EXPECT_EQ(r.value->failure_reason, "unknown_sku");
  EXPECT_EQ(provider_->charges, 0);
  expect_stock("mug", 10, 0);
}

TEST_F(OrderActor, EachFailingCardFailsPaymentAndReleasesStock) {
  put_item("mug", 10);
  struct Case {
    const char* number;
    const char* reason;
    const char* payment_status;
  };
  for (auto c : {Case{"4000000000000002", "card_declined", "declined"},
                 Case{"4000000000009995", "insufficient_funds", "declined"},
                 Case{"4000000000000119", "payment_unavailable", "failed"}}) {
    auto id = std::string("ord_") + c.reason;
    auto r = place(id, {{"mug", 4, 0}}, c.number);
    ASSERT_TRUE(r.value) << c.number;
    EXPECT_EQ(r.value->status, "payment_failed") << c.number;
    EXPECT_EQ(r.value->failure_reason, c.reason);
    ASSERT_TRUE(r.value->payment);
    EXPECT_EQ(r.value->payment->status, c.payment_status);
    expect_stock("mug", 10, 0);
  }
  // The transient card was tried once and retried retries_max times.
  EXPECT_EQ(provider_->charges, 2 + 1 + config_.payment.retries_max);
}

TEST_F(OrderActor, TransientErrorThenSuccessConfirms) {
  put_item("mug", 10);
  provider_->transient_left = 2;
  auto r = place("ord_t", {{"mug", 1, 0}}, "4000000000000119");
  ASSERT_TRUE(r.value);
  EXPECT_EQ(r.value->status, "confirmed");
  EXPECT_EQ(r.value->payment->status, "captured");
  EXPECT_EQ(provider_->charges, 3);
  expect_stock("mug", 10, 1);
}

TEST_F(OrderActor, PlaceIsIdempotentPerOrderId) {
  put_item("mug", 10);
  auto first = place("ord_i", {{"mug", 2, 0}});
  auto again = place("ord_i", {{"mug", 2, 0}});
  ASSERT_TRUE(first.value && again.value);
  EXPECT_EQ(again.value->status, "confirmed");
  EXPECT_EQ(again.value->payment->id, first.value->payment->id);
  EXPECT_EQ(provider_->charges, 1);
  expect_stock("mug", 10, 2);
}

// A placement of an id already stored reaches an activation that did not load (placements come
// with new ids): its first write finds the row, and it answers with the stored order.
TEST_F(OrderActor, PlacementDeliveredAgainToAFreshActivationAnswersTheStoredOrder) {
  put_item("mug", 10);
  auto first = place("ord_r", {{"mug", 2, 0}});
  ASSERT_TRUE(first.value);
  EXPECT_TRUE(passivate(order_type, "ord_r"));
  auto again = place("ord_r", {{"mug", 5, 0}});
  ASSERT_TRUE(again.value) << to_string(again.code());
  EXPECT_EQ(again.value->status, "confirmed");
  EXPECT_EQ(again.value->lines[0].quantity, 2);
  EXPECT_EQ(again.value->payment->id, first.value->payment->id);
  EXPECT_EQ(provider_->charges, 1);
  expect_stock("mug", 10, 2);
  EXPECT_EQ(get("ord_r").version, first.value->version);
}

// A placement delivered again reserves while it writes, as every placement does. When the stored
// order is finished (failed, shipped), what the new activation reserved is released before it
// answers with the stored order.
TEST_F(OrderActor, PlacementDeliveredAgainAfterTheOrderFinishedLeavesNoStockHeld) {
  put_item("mug", 10);
  auto failed = place("ord_df", {{"mug", 2, 0}}, "4000000000000002");
  ASSERT_TRUE(failed.value);
  EXPECT_EQ(failed.value->status, "payment_failed");
  ASSERT_TRUE(place("ord_ds", {{"mug", 3, 0}}).value);
  ASSERT_TRUE(ask<OrderRecord>(order_type, "ord_ds", ship_atom::value).value);
  expect_stock("mug", 7, 0);
  EXPECT_TRUE(passivate(order_type, "ord_df"));
  EXPECT_TRUE(passivate(order_type, "ord_ds"));
  auto again_failed = place("ord_df", {{"mug", 2, 0}}, "4000000000000002");
  ASSERT_TRUE(again_failed.value) << to_string(again_failed.code());
  EXPECT_EQ(again_failed.value->status, "payment_failed");
  auto again_shipped = place("ord_ds", {{"mug", 3, 0}});
  ASSERT_TRUE(again_shipped.value) << to_string(again_shipped.code());
  EXPECT_EQ(again_shipped.value->status, "shipped");
  expect_stock("mug", 7, 0);
  EXPECT_EQ(provider_->charges, 2);
}

// The order is first stored reserved, with its lines and the payment's intent, and then confirmed
// with the capture, so a placement writes the orders database twice.
TEST_F(OrderActor, PlacementWritesTheOrdersDatabaseTwice) {
  put_item("mug", 10);
  auto writes = [&] {
    caf::scoped_actor self{*system_};
    std::int64_t n = 0;
    self->request(node_.ctx->orders_db, std::chrono::seconds(5), stats_atom::value)
        .receive([&](CommitStats& s) { n = s.writes; }, [](caf::error& e) { FAIL() << caf::to_string(e); });
    return n;
  };
  auto before = writes();
  auto r = place("ord_w", {{"mug", 1, 0}});
  ASSERT_TRUE(r.value);
  EXPECT_EQ(r.value->status, "confirmed");
  EXPECT_EQ(r.value->payment->version, 2);  // the intent (by the order), then the capture
  EXPECT_EQ(writes() - before, 2);
  // What is stored is the capture the payment handed over, with the order's amount (a refund takes
  // the amount from there) and the provider's reference.
  auto stored = ask<PaymentRecord>(payment_type, r.value->payment->id, get_atom::value);
  ASSERT_TRUE(stored.value);
  EXPECT_EQ(stored.value->status, "captured");
  EXPECT_EQ(stored.value->version, 2);
  EXPECT_FALSE(stored.value->provider_ref.empty());
  EXPECT_EQ(stored.value->amount_cents, r.value->total_cents);
  EXPECT_GT(stored.value->amount_cents, 0);
  // And the order as stored shows it captured.
  EXPECT_TRUE(passivate(order_type, "ord_w"));
  auto reloaded = get("ord_w");
  ASSERT_TRUE(reloaded.payment);
  EXPECT_EQ(reloaded.payment->status, "captured");
  EXPECT_EQ(reloaded.status, "confirmed");
}

TEST_F(OrderActor, CancelConfirmedRefundsAndReleasesAndIsIdempotent) {
  put_item("mug", 10);
  ASSERT_TRUE(place("ord_x", {{"mug", 3, 0}}).value);
  auto c = ask<OrderRecord>(order_type, "ord_x", cancel_atom::value);
  ASSERT_TRUE(c.value) << to_string(c.code());
  EXPECT_EQ(c.value->status, "cancelled");
  EXPECT_EQ(c.value->payment->status, "refunded");
  EXPECT_EQ(provider_->refunds, 1);
  expect_stock("mug", 10, 0);
  auto again = ask<OrderRecord>(order_type, "ord_x", cancel_atom::value);
  ASSERT_TRUE(again.value);
  EXPECT_EQ(again.value->status, "cancelled");
  EXPECT_EQ(again.value->version, c.value->version);
  EXPECT_EQ(provider_->refunds, 1);
}

class OrderActorSlowCharge : public OrderActor {
 protected:
  void configure(Config& c) override {
    OrderActor::configure(c);
    c.payment.retry_backoff_ms = 40;
  }

  // Places order `id` (2 mugs of 10) with a charge that takes 40 and 80 ms of retries before it is
  // captured, and returns once the provider was first asked: the charge is running.
  std::future<Reply<OrderRecord>> place_slowly(const std::string& id) {
    put_item("mug", 10);
    provider_->transient_left = 2;
    auto placing = std::async(std::launch::async, [this, id] { return place(id, {{"mug", 2, 0}}, "4000000000000119"); });
    for (int i = 0; i < 2000 && provider_->charges.load() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_GE(provider_->charges.load(), 1);
    return placing;
  }
};

// A cancel that lands while the charge runs: the capture, handed back unwritten for the
// confirmation, is stored before the compensation refunds it, so the payment ends refunded (not
// voided as an unknown outcome).
TEST_F(OrderActorSlowCharge, ACancelDuringTheChargeStoresTheCaptureThenRefundsIt) {
  auto placing = place_slowly("ord_c");
  auto cancelled = ask<OrderRecord>(order_type, "ord_c", cancel_atom::value);
  ASSERT_TRUE(cancelled.value) << to_string(cancelled.code());
  EXPECT_EQ(cancelled.value->status, "cancelled");
  auto placed = placing.get();
  ASSERT_TRUE(placed.value) << to_string(placed.code());
  EXPECT_EQ(placed.value->status, "cancelled");
  ASSERT_TRUE(placed.value->payment);
  EXPECT_EQ(placed.value->payment->status, "refunded");
  EXPECT_EQ(provider_->charges.load(), 3);
  EXPECT_EQ(provider_->refunds.load(), 1);
  expect_stock("mug", 10, 0);
  passivate(payment_type, placed.value->payment->id);
  auto stored = ask<PaymentRecord>(payment_type, placed.value->payment->id, get_atom::value);
  ASSERT_TRUE(stored.value);
  EXPECT_EQ(stored.value->status, "refunded");
  EXPECT_EQ(stored.value->version, 3);  // intent, capture, refund
}

// The confirmation, written with the capture, loses its version check (another owner wrote the
// order meanwhile): the capture is kept all the same, and the recovery confirms the order instead
// of refunding a charge the provider made.
TEST_F(OrderActorSlowCharge, ACaptureIsKeptWhenTheConfirmationLosesItsCheck) {
  auto placing = place_slowly("ord_k");
  orders_sql("UPDATE orders SET version = version + 1 WHERE id = 'ord_k'");  // another owner's write
  auto placed = placing.get();
  EXPECT_FALSE(placed.value);
  EXPECT_EQ(placed.code(), errc::version_conflict);
  EXPECT_EQ(provider_->refunds.load(), 0);
  auto r = ask<OrderRecord>(order_type, "ord_k", recover_atom::value);
  ASSERT_TRUE(r.value) << to_string(r.code());
  EXPECT_EQ(r.value->status, "confirmed");
  ASSERT_TRUE(r.value->payment);
  EXPECT_EQ(r.value->payment->status, "captured");
  EXPECT_EQ(provider_->refunds.load(), 0);
  expect_stock("mug", 10, 2);
}

// The confirmation, written with the capture, fails for a reason other than a lost check (a
// trigger refuses it; it does not match the earlier writes): the capture is stored alone, and the
// recovery confirms the order without charging again.
TEST_F(OrderActor, ACaptureIsKeptWhenTheConfirmationFailsToBeWritten) {
  put_item("mug", 10);
  orders_sql("CREATE TRIGGER refuse_confirmed BEFORE UPDATE ON orders WHEN NEW.status = 'confirmed' "
             "BEGIN SELECT RAISE(ABORT, 'refused'); END");
  auto placed = place("ord_f", {{"mug", 2, 0}});
  EXPECT_FALSE(placed.value);
  EXPECT_EQ(placed.code(), errc::db_failed);
  EXPECT_EQ(provider_->charges.load(), 1);
  orders_sql("DROP TRIGGER refuse_confirmed");
  auto r = ask<OrderRecord>(order_type, "ord_f", recover_atom::value);
  ASSERT_TRUE(r.value) << to_string(r.code());
  EXPECT_EQ(r.value->status, "confirmed");
  ASSERT_TRUE(r.value->payment);
  EXPECT_EQ(r.value->payment->status, "captured");
  EXPECT_EQ(provider_->charges.load(), 1);  // the recovery found the capture: no charge again
  EXPECT_EQ(provider_->refunds.load(), 0);
  expect_stock("mug", 10, 2);
}

// A charge slow enough (200 then 400 ms of retries) that a cancel sent once it started surely lands
// while it runs.
class OrderActorSlowerCharge : public OrderActorSlowCharge {
 protected:
  void configure(Config& c) override {
    OrderActorSlowCharge::configure(c);
    c.payment.retry_backoff_ms = 200;
  }
};

// A saga that does not confirm cannot store its capture (a cancel landed during the charge, and a
// trigger refuses the capture's write; it does not match the intent, an insert): the order stops
// with the error, as stored (reserved, its payment pending). The recovery then voids the charge at
// the provider by its idempotency key and releases the stock: nothing stays charged for an order
// that is not confirmed.
TEST_F(OrderActorSlowerCharge, ACaptureThatCannotBeStoredIsVoidedByTheRecovery) {
  orders_sql("CREATE TRIGGER refuse_captured BEFORE UPDATE ON payments WHEN NEW.status = 'captured' "
             "BEGIN SELECT RAISE(ABORT, 'refused'); END");
  auto placing = place_slowly("ord_v");
  auto cancelled = ask<OrderRecord>(order_type, "ord_v", cancel_atom::value);
  EXPECT_FALSE(cancelled.value);
  EXPECT_EQ(cancelled.code(), errc::db_failed);
  auto placed = placing.get();
  EXPECT_FALSE(placed.value);
  EXPECT_EQ(placed.code(), errc::db_failed);
  EXPECT_EQ(provider_->charges.load(), 3);
  EXPECT_EQ(provider_->refunds.load(), 0);
  orders_sql("DROP TRIGGER refuse_captured");
  auto stored = ask<OrderRecord>(order_type, "ord_v", get_atom::value);
  ASSERT_TRUE(stored.value) << to_string(stored.code());
  EXPECT_EQ(stored.value->status, "reserved");
  ASSERT_TRUE(stored.value->payment);
  EXPECT_EQ(stored.value->payment->status, "pending");
  auto r = ask<OrderRecord>(order_type, "ord_v", recover_atom::value);
  ASSERT_TRUE(r.value) << to_string(r.code());
  EXPECT_EQ(r.value->status, "payment_failed");
  ASSERT_TRUE(r.value->payment);
  EXPECT_EQ(r.value->payment->status, "failed");
  EXPECT_EQ(provider_->refunds.load(), 1);
  EXPECT_EQ(provider_->charges.load(), 3);
  expect_stock("mug", 10, 0);
}

// A second activation of an order, as a cluster's new owner makes after a view change while the
// old owner's activation is still at its saga (both on this node here, the second spawned beside
// the registry's, with a cluster's settings): it loads the order `reserved`.
// `moved`: the view moved entities just now (else long ago).
caf::actor spawn_second_activation(caf::actor_system& system, const NodeContext& node,
                                   const std::string& id, std::int64_t grace_ms, bool moved = true) {
  auto ctx = std::make_shared<NodeContext>(node);
  ctx->settings.settle_grace_ms = grace_ms;
  ctx->view_moved_at_ms = std::make_shared<std::atomic<std::int64_t>>(moved ? steady_ms() : 0);
  caf::scoped_actor self{system};
  return spawn_order(self.ptr(), ctx, id);
}

template <class... Ts>
Reply<OrderRecord> call_activation(caf::actor_system& system, const caf::actor& activation, Ts&&... xs) {
  caf::scoped_actor self{system};
  Reply<OrderRecord> out;
  self->request(activation, std::chrono::seconds(20), std::forward<Ts>(xs)...)
      .receive([&](OrderRecord& value) { out.value = std::move(value); },
               [&](caf::error& err) { out.error = std::move(err); });
  return out;
}

class OrderActorTwoOwners : public OrderActorSlowerCharge {
 protected:
  caf::actor second_activation(const std::string& id, std::int64_t grace_ms, bool moved = true) {
    return spawn_second_activation(*system_, *node_.ctx, id, grace_ms, moved);
  }
  template <class... Ts>
  Reply<OrderRecord> call(const caf::actor& activation, Ts&&... xs) {
    return call_activation(*system_, activation, std::forward<Ts>(xs)...);
  }
  // Stores order `id` pending, one line of 2 mugs, as a node that died mid-placement left it.
  void store_pending(const std::string& id) {
    OrderRecord rec;
    rec.id = id;
    rec.customer_id = "alice";
    rec.lines = {{"mug", 2, 1000}};
    rec.status = "pending";
    rec.version = 1;
    rec.created_at_ms = rec.updated_at_ms = clock_->now_ms();
    store_order(rec);
  }
  // A cancel at `activation` ends the order cancelled, well within the grace it would wait.
  void expect_cancelled_without_waiting(const caf::actor& activation) {
    auto start = std::chrono::steady_clock::now();
    auto cancelled = call(activation, cancel_atom::value);
    ASSERT_TRUE(cancelled.value) << to_string(cancelled.code());
    EXPECT_EQ(cancelled.value->status, "cancelled");
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  }
};

// The cancel at the second activation waits until the order as stored is finished (the first
// confirms it), then cancels it as confirmed: refunded, and its units released. Compensating at
// once from its own `reserved` (as one node does) would release the units that the first's
// confirmation then commits again, for an order stored cancelled.
TEST_F(OrderActorTwoOwners, ACancelWaitsForTheSagaUnderWayElsewhereThenCancelsWhatItStored) {
  auto placing = place_slowly("ord_2o");
  auto second = second_activation("ord_2o", 2'000);
  auto cancelled = call(second, cancel_atom::value);
  auto placed = placing.get();
  ASSERT_TRUE(placed.value) << to_string(placed.code());
  EXPECT_EQ(placed.value->status, "confirmed");  // the first's saga was left to end
  ASSERT_TRUE(cancelled.value) << to_string(cancelled.code());
  EXPECT_EQ(cancelled.value->status, "cancelled");
  ASSERT_TRUE(cancelled.value->payment);
  EXPECT_EQ(cancelled.value->payment->status, "refunded");
  EXPECT_EQ(provider_->charges.load(), 3);
  EXPECT_EQ(provider_->refunds.load(), 1);
  EXPECT_EQ(reserved_becomes("mug", 0), 0);
  expect_stock("mug", 10, 0);
  passivate(order_type, "ord_2o");
  auto stored = get("ord_2o");
  EXPECT_EQ(stored.status, "cancelled");
}

// An order stored pending that no activation will change (its saga's node died), just after a
// view change: the cancel waits the grace from when it first read it, then compensates it. Its
// stored time is this node's clock's (a manual one, not moved): only this node's sight of the
// version ends the wait.
TEST_F(OrderActorTwoOwners, ACancelOfAnOrderNoOneChangesWaitsOutTheGraceThenCompensates) {
  put_item("mug", 10);
  store_pending("ord_ab2");
  auto second = second_activation("ord_ab2", 400);
  auto start = std::chrono::steady_clock::now();
  auto cancelled = call(second, cancel_atom::value);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(cancelled.value) << to_string(cancelled.code());
  EXPECT_EQ(cancelled.value->status, "cancelled");
  EXPECT_GE(took, std::chrono::milliseconds(390));
}

// Untouched by its stored time (the clock moved past the grace): compensated at once.
TEST_F(OrderActorTwoOwners, ACancelOfAnOrderStoredLongAgoDoesNotWait) {
  put_item("mug", 10);
  store_pending("ord_ab3");
  clock_->advance(10'000);
  expect_cancelled_without_waiting(second_activation("ord_ab3", 10'000));
}

// Stopped while a cancel waits (the view moved the order away, or the node leaves): the cancel,
// which has done nothing yet, is answered as not delivered (the router sends it on to the owner),
// and nothing is compensated.
TEST_F(OrderActorTwoOwners, ACancelWaitingWhenItsActivationStopsIsAnsweredNotDelivered) {
  put_item("mug", 10);
  store_pending("ord_st");
  auto second = second_activation("ord_st", 10'000);
  auto cancelling = std::async(std::launch::async, [&] { return call(second, cancel_atom::value); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  caf::anon_send(second, stop_atom::value);
  auto cancelled = cancelling.get();
  EXPECT_FALSE(cancelled.value);
  EXPECT_EQ(cancelled.code(), errc::not_delivered);
  EXPECT_EQ(get("ord_st").status, "pending");
}

// Just after a view change, an activation that settled the order itself (a recovery confirmed it)
// does not wait for its own write when a cancel comes: the cancel refunds at once.
TEST_F(OrderActorTwoOwners, ACancelAfterThisActivationsOwnRecoveryDoesNotWait) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_own", 2}).value);
  auto charged = ask<PaymentRecord>(payment_type, "pay_own",
                                    payment_charge{"ord_own", 2000, "USD", card("4242424242424242")});
  ASSERT_TRUE(charged.value);
  auto long_ago = clock_->now_ms() - 20'000;  // untouched past the grace: the recovery runs
  store_order({"ord_own", "alice", "reserved", "", {{"mug", 2, 1000}}, 2000, "USD", charged.value,
               long_ago, long_ago, 2});
  auto second = second_activation("ord_own", 10'000);
  auto recovered = call(second, recover_atom::value);
  ASSERT_TRUE(recovered.value) << to_string(recovered.code());
  EXPECT_EQ(recovered.value->status, "confirmed");
  auto start = std::chrono::steady_clock::now();
  auto cancelled = call(second, cancel_atom::value);
  ASSERT_TRUE(cancelled.value) << to_string(cancelled.code());
  EXPECT_EQ(cancelled.value->status, "cancelled");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(reserved_becomes("mug", 0), 0);
}

// The read again fails (the orders table is gone for a while): the cancel is answered with the
// database's error, not left waiting, and nothing is compensated; once the table is back, a new
// activation cancels it.
TEST_F(OrderActorTwoOwners, ACancelWhoseReadAgainFailsIsAnsweredWithTheError) {
  put_item("mug", 10);
  store_pending("ord_rf");
  auto second = second_activation("ord_rf", 10'000);
  ASSERT_TRUE(call(second, get_atom::value).value);  // loaded
  orders_sql("ALTER TABLE orders RENAME TO orders_away");
  auto start = std::chrono::steady_clock::now();
  auto cancelled = call(second, cancel_atom::value);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_FALSE(cancelled.value);
  EXPECT_NE(cancelled.code(), errc::none);
  orders_sql("ALTER TABLE orders_away RENAME TO orders");
  EXPECT_EQ(get("ord_rf").status, "pending");
  auto third = second_activation("ord_rf", 10'000, false);
  auto again = call(third, cancel_atom::value);
  ASSERT_TRUE(again.value) << to_string(again.code());
  EXPECT_EQ(again.value->status, "cancelled");
}

// No view change lately: no other activation can be at the order's saga, so it is compensated at
// once, as on one node.
TEST_F(OrderActorTwoOwners, ACancelLongAfterTheLastViewChangeDoesNotWait) {
  put_item("mug", 10);
  store_pending("ord_ab4");
  expect_cancelled_without_waiting(second_activation("ord_ab4", 10'000, false));
}

// The old owner's confirmation is stored while its commit is still on its way (parked here): the
// cancel at the second activation waits (the view changed just now, and the confirmation is not
// its own), so the commit lands first and the cancel releases the committed units. Cancelling at
// once would release the held reservation, and the late commit would make it again, committed,
// for an order stored cancelled.
TEST_F(OrderActorLosingReplies, ACancelElsewhereOfAnOrderJustConfirmedWaitsForItsCommits) {
  put_item("mug", 10);
  auto script = script_reserves({});
  script->park_commits = true;
  auto placing = std::async(std::launch::async, [&] { return place("ord_lc", {{"mug", 2, 0}}); });
  ASSERT_TRUE(parked(*script, 1));
  bool confirmed = false;
  for (int i = 0; i < 500 && !confirmed; ++i) {
    auto shown = ask<OrderRecord>(order_type, "ord_lc", get_atom::value);
    confirmed = shown.value && shown.value->status == "confirmed";
    if (!confirmed) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(confirmed);
  auto second = spawn_second_activation(*system_, *node_.ctx, "ord_lc", 1'500);
  auto cancelling = std::async(std::launch::async, [&] { return call_activation(*system_, second, cancel_atom::value); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  caf::anon_send(stand_ins_.back(), unpark_atom::value);
  auto placed = placing.get();
  ASSERT_TRUE(placed.value) << to_string(placed.code());
  EXPECT_EQ(placed.value->status, "confirmed");
  auto cancelled = cancelling.get();
  ASSERT_TRUE(cancelled.value) << to_string(cancelled.code());
  EXPECT_EQ(cancelled.value->status, "cancelled");
  ASSERT_TRUE(cancelled.value->payment);
  EXPECT_EQ(cancelled.value->payment->status, "refunded");
  EXPECT_EQ(reserved_becomes("mug", 0), 0);
  expect_stock("mug", 10, 0);
}

// A read at the second activation, once the first confirmed the order, shows it confirmed (an
// order loaded unfinished is read again), not the `reserved` it loaded.
TEST_F(OrderActorTwoOwners, AReadAtTheSecondActivationShowsWhatTheFirstStoredSince) {
  auto placing = place_slowly("ord_2g");
  auto second = second_activation("ord_2g", 2'000);
  auto placed = placing.get();
  ASSERT_TRUE(placed.value) << to_string(placed.code());
  EXPECT_EQ(placed.value->status, "confirmed");
  auto shown = call(second, get_atom::value);
  ASSERT_TRUE(shown.value) << to_string(shown.code());
  EXPECT_EQ(shown.value->status, "confirmed");
  EXPECT_EQ(shown.value->version, placed.value->version);
}

// The sweep's recovery at the second activation, while the first's saga runs: it does not wait
// and does not compensate; it answers the order as stored, and the saga confirms it.
TEST_F(OrderActorTwoOwners, ARecoveryOfAnOrderChangedLatelyLeavesItAlone) {
  auto placing = place_slowly("ord_2r");
  auto second = second_activation("ord_2r", 10'000);
  auto start = std::chrono::steady_clock::now();
  auto recovered = call(second, recover_atom::value);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2000));
  ASSERT_TRUE(recovered.value) << to_string(recovered.code());
  EXPECT_NE(recovered.value->status, "payment_failed");  // (reserved, or confirmed if read after)
  auto placed = placing.get();
  ASSERT_TRUE(placed.value) << to_string(placed.code());
  EXPECT_EQ(placed.value->status, "confirmed");
  EXPECT_EQ(provider_->refunds.load(), 0);
  expect_stock("mug", 10, 2);
}

// A cancel that lands before the charge was sent: the payment's pending record (written with the
// reserved state) is abandoned, and the provider is never asked, neither to charge nor to void.
TEST_F(OrderActorLosingReplies, CancelBeforeTheChargeAbandonsThePaymentWithoutTheProvider) {
  put_item("mug", 10);
  auto script = script_reserves({});
  script->park_syncs = true;  // the charge waits for the reservation's sync: parked here
  auto placing = std::async(std::launch::async, [&] { return place("ord_ab", {{"mug", 2, 0}}); });
  ASSERT_TRUE(parked(*script, 1));
  // The cancel, then a read, from one sender: once the read is answered (the order stored
  // reserved, with its payment's intent), the cancel is in, waiting for the saga.
  caf::scoped_actor self{*system_};
  auto cancelling = self->request(node_.ctx->router, std::chrono::seconds(20), route_atom::value, order_type,
                                  std::string("ord_ab"), caf::make_message(cancel_atom::value));
  auto stored = read_as(self, "ord_ab");
  ASSERT_TRUE(stored.value) << to_string(stored.code());
  EXPECT_EQ(stored.value->status, "reserved");
  caf::anon_send(stand_ins_.back(), unpark_atom::value);
  Reply<OrderRecord> cancelled;
  std::move(cancelling).receive([&](OrderRecord& o) { cancelled.value = std::move(o); },
                                [&](caf::error& e) { cancelled.error = std::move(e); });
  auto placed = placing.get();
  ASSERT_TRUE(placed.value) << to_string(placed.code());
  ASSERT_TRUE(cancelled.value) << to_string(cancelled.code());
  EXPECT_EQ(placed.value->status, "cancelled");
  EXPECT_EQ(cancelled.value->status, "cancelled");
  ASSERT_TRUE(cancelled.value->payment);
  EXPECT_EQ(cancelled.value->payment->status, "failed");
  EXPECT_EQ(provider_->charges, 0);
  EXPECT_EQ(provider_->refunds, 0);
  expect_stock("mug", 10, 0);
}

// An order an operator passivates in the middle of its placement finishes it in the same
// activation: a read that waited past the registry's hold (2 s) goes to it, rather than to a second
// activation beside the saga, which would take the order for interrupted and settle it (the
// recovery) while the first still charges.
TEST_F(OrderActorLosingReplies, AnOrderPassivatedMidPlacementKeepsOneActivation) {
  put_item("mug", 10);
  auto script = script_reserves({});
  script->park_syncs = true;  // the charge waits for the reservation's sync: parked here
  auto placing = std::async(std::launch::async, [&] { return place("ord_pm", {{"mug", 2, 0}}); });
  ASSERT_TRUE(parked(*script, 1));
  EXPECT_TRUE(passivate(order_type, "ord_pm"));
  auto start = std::chrono::steady_clock::now();
  auto shown = ask<OrderRecord>(order_type, "ord_pm", get_atom::value);
  ASSERT_TRUE(shown.value) << to_string(shown.code());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1900));  // held
  EXPECT_EQ(shown.value->status, "reserved");
  EXPECT_EQ(alive(order_type), 1);
  caf::anon_send(stand_ins_.back(), unpark_atom::value);
  auto placed = placing.get();
  ASSERT_TRUE(placed.value) << to_string(placed.code());
  EXPECT_EQ(placed.value->status, "confirmed");
  EXPECT_EQ(provider_->charges, 1);
  EXPECT_EQ(provider_->refunds, 0);
  expect_stock("mug", 10, 2);
  EXPECT_TRUE(all_down(order_type));  // the passivation stands: it stopped once the saga ended
  auto stored = ask<OrderRecord>(order_type, "ord_pm", get_atom::value);
  ASSERT_TRUE(stored.value) << to_string(stored.code());
  EXPECT_EQ(stored.value->status, "confirmed");
}

// An order read while its reserves are out is stored pending first (see pin), and shown so; the
// placement then goes on from there.
TEST_F(OrderActorLosingReplies, AnOrderReadWhileItsReservesAreOutIsStoredPendingThenPlaced) {
  put_item("mug", 10);
  auto script = script_reserves({});
  script->park_reserves = true;
  auto placing = std::async(std::launch::async, [&] { return place("ord_pin", {{"mug", 1, 0}}); });
  ASSERT_TRUE(parked(*script, 1));
  auto shown = ask<OrderRecord>(order_type, "ord_pin", get_atom::value);
  ASSERT_TRUE(shown.value) << to_string(shown.code());
  EXPECT_EQ(shown.value->status, "pending");
  EXPECT_EQ(shown.value->version, 1);
  caf::anon_send(stand_ins_.back(), unpark_atom::value);
  auto placed = placing.get();
  ASSERT_TRUE(placed.value) << to_string(placed.code());
  EXPECT_EQ(placed.value->status, "confirmed");
  EXPECT_EQ(placed.value->version, 3);  // pending, reserved, confirmed
  expect_stock("mug", 10, 1);
}

// A read that comes while the order's first write is under way waits for it: a first write the
// database refuses leaves nothing to show (the edge would answer 202 for an order that never
// exists), and what the reserves held is released.
TEST_F(OrderActorLosingReplies, AReadDuringARefusedFirstWriteGetsTheFailure) {
  put_item("mug", 10);
  auto script = script_reserves({});
  script->park_syncs = true;  // sent beside the first write: the saga waits for both
  orders_sql("CREATE TRIGGER refuse BEFORE INSERT ON orders BEGIN SELECT RAISE(ABORT, 'refused'); END");
  auto placing = std::async(std::launch::async, [&] { return place("ord_rd", {{"mug", 1, 0}}); });
  ASSERT_TRUE(parked(*script, 1));
  caf::scoped_actor self{*system_};
  auto reading = self->request(node_.ctx->router, std::chrono::seconds(20), route_atom::value, order_type,
                               std::string("ord_rd"), caf::make_message(get_atom::value));
  caf::anon_send(stand_ins_.back(), unpark_atom::value);
  Reply<OrderRecord> shown;
  std::move(reading).receive([&](OrderRecord& o) { shown.value = std::move(o); },
                             [&](caf::error& e) { shown.error = std::move(e); });
  EXPECT_FALSE(shown.value) << shown.value->status;
  EXPECT_EQ(shown.code(), errc::db_failed);
  auto placed = placing.get();
  EXPECT_FALSE(placed.value);
  EXPECT_EQ(placed.code(), errc::db_failed);
  orders_sql("DROP TRIGGER refuse");
  EXPECT_EQ(ask<OrderRecord>(order_type, "ord_rd", get_atom::value).code(), errc::not_found);
  expect_stock("mug", 10, 0);
}

// A pending record the database refuses: the read gets the failure, nothing is stored, and what
// the reserves held is released once they answered.
TEST_F(OrderActorLosingReplies, AnOrderWhosePendingRecordIsRefusedReleasesWhatItHeld) {
  put_item("mug", 10);
  auto script = script_reserves({});
  script->park_reserves = true;
  orders_sql("CREATE TRIGGER refuse BEFORE INSERT ON orders BEGIN SELECT RAISE(ABORT, 'refused'); END");
  auto placing = std::async(std::launch::async, [&] { return place("ord_rd", {{"mug", 1, 0}}); });
  ASSERT_TRUE(parked(*script, 1));
  auto shown = ask<OrderRecord>(order_type, "ord_rd", get_atom::value);
  EXPECT_FALSE(shown.value);
  EXPECT_EQ(shown.code(), errc::db_failed);
  caf::anon_send(stand_ins_.back(), unpark_atom::value);
  auto placed = placing.get();
  EXPECT_FALSE(placed.value);
  EXPECT_EQ(placed.code(), errc::db_failed);
  orders_sql("DROP TRIGGER refuse");
  EXPECT_EQ(ask<OrderRecord>(order_type, "ord_rd", get_atom::value).code(), errc::not_found);
  expect_stock("mug", 10, 0);
}

// A pending record refused because the order is stored (another activation of it placed it):
// this activation takes the stored order, as when its first write finds it stored, writes nothing
// over it, and releases nothing (the reservations are the other activation's too).
TEST_F(OrderActorLosingReplies, AnOrderWhosePendingRecordFindsItStoredTakesTheStoredOne) {
  put_item("mug", 10);
  store_order(OrderRecord{"ord_dup", "alice", "reserved", "", {{"mug", 1, 1000}}, 1000, "USD", std::nullopt,
                          clock_->now_ms(), clock_->now_ms(), 1});
  auto script = script_reserves({});
  script->park_reserves = true;
  auto placing = std::async(std::launch::async, [&] { return place("ord_dup", {{"mug", 1, 0}}); });
  ASSERT_TRUE(parked(*script, 1));
  caf::scoped_actor self{*system_};
  auto reading = self->request(node_.ctx->router, std::chrono::seconds(20), route_atom::value, order_type,
                               std::string("ord_dup"), caf::make_message(get_atom::value));
  // The reserves then answer, from memory, before the store answers the pending record: the
  // saga waits for that answer before its next write, which would otherwise be chained to the
  // refused version and land on the stored order (version 2, this activation's payment).
  caf::anon_send(stand_ins_.back(), unpark_atom::value);
  auto placed = placing.get();
  ASSERT_TRUE(placed.value) << to_string(placed.code());
  EXPECT_EQ(placed.value->status, "reserved");
  EXPECT_EQ(placed.value->version, 1);  // nothing written over it
  EXPECT_FALSE(placed.value->payment);
  std::move(reading).receive([&](OrderRecord& o) { EXPECT_EQ(o.version, 1); },
                             [&](caf::error& e) { ADD_FAILURE() << caf::to_string(e); });
  EXPECT_EQ(provider_->charges, 0);
  // Held for the stored order, which its recovery settles (the reserve's write may still be
  // under way: readers see what is stored).
  EXPECT_EQ(reserved_becomes("mug", 1), 1);
}

TEST_F(OrderActor, CancelShippedOrFailedOrdersIsConflict) {
  put_item("mug", 10);
  ASSERT_TRUE(place("ord_s", {{"mug", 1, 0}}).value);
  ASSERT_TRUE(ask<OrderRecord>(order_type, "ord_s", ship_atom::value).value);
  EXPECT_EQ(ask<OrderRecord>(order_type, "ord_s", cancel_atom::value).code(), errc::conflict);
  ASSERT_TRUE(place("ord_f", {{"mug", 1, 0}}, "4000000000000002").value);
  EXPECT_EQ(ask<OrderRecord>(order_type, "ord_f", cancel_atom::value).code(), errc::conflict);
  ASSERT_TRUE(place("ord_j", {{"mug", 100, 0}}).value);
  EXPECT_EQ(ask<OrderRecord>(order_type, "ord_j", cancel_atom::value).code(), errc::conflict);
  EXPECT_EQ(ask<OrderRecord>(order_type, "ord_none", cancel_atom::value).code(), errc::not_found);
}

TEST_F(OrderActor, ShipMovesStockOffOnHandAndOnlyFromConfirmed) {
  put_item("mug", 10);
  ASSERT_TRUE(place("ord_sh", {{"mug", 4, 0}}).value);
  auto s = ask<OrderRecord>(order_type, "ord_sh", ship_atom::value);
  ASSERT_TRUE(s.value);
  EXPECT_EQ(s.value->status, "shipped");
  expect_stock("mug", 6, 0);
  EXPECT_EQ(ask<OrderRecord>(order_type, "ord_sh", ship_atom::value).code(), errc::conflict);
  expect_stock("mug", 6, 0);
  ASSERT_TRUE(place("ord_rej", {{"mug", 100, 0}}).value);
  EXPECT_EQ(ask<OrderRecord>(order_type, "ord_rej", ship_atom::value).code(), errc::conflict);
}

// Sends each message to order `id` at once, in this order, then collects the reply to each.
std::vector<Reply<OrderRecord>> ask_together(caf::actor_system& system, const caf::actor& router,
                                             const std::string& id, std::vector<caf::message> msgs) {
  caf::scoped_actor self{system};
  std::vector<decltype(self->request(router, std::chrono::seconds(20), route_atom::value,
                                     order_type, id, msgs[0]))> sent;
  for (auto& msg : msgs)
    sent.push_back(self->request(router, std::chrono::seconds(20), route_atom::value, order_type, id, msg));
  std::vector<Reply<OrderRecord>> out(msgs.size());
  for (size_t i = 0; i < sent.size(); ++i)
    sent[i].receive([&](OrderRecord& r) { out[i].value = std::move(r); },
                    [&](caf::error& e) { out[i].error = std::move(e); });
  return out;
}

// A cancel that comes while an order is being confirmed (here by the recovery: its payment was
// captured) cancels it once confirmed: both are answered with the cancelled order, refunded, its
// stock free. (It was answered with the confirmed order, and the cancel was lost.)
TEST_F(OrderActor, ACancelThatComesWhileTheOrderIsBeingConfirmedCancelsIt) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_cc", 2}).value);
  auto charged = ask<PaymentRecord>(payment_type, "pay_cc",
                                    payment_charge{"ord_cc", 2000, "USD", card("4242424242424242")});
  ASSERT_TRUE(charged.value);
  store_order({"ord_cc", "alice", "reserved", "", {{"mug", 2, 1000}}, 2000, "USD", charged.value,
               clock_->now_ms(), clock_->now_ms(), 2});
  auto replies = ask_together(*system_, node_.ctx->router, "ord_cc",
                              {caf::make_message(recover_atom::value), caf::make_message(cancel_atom::value)});
  for (auto& r : replies) {
    ASSERT_TRUE(r.value) << to_string(r.code());
    EXPECT_EQ(r.value->status, "cancelled");
    EXPECT_EQ(r.value->payment->status, "refunded");
  }
  EXPECT_EQ(provider_->refunds, 1);
  expect_stock("mug", 10, 0);
}

// A cancel that comes while the order is being shipped is refused, as once it is shipped; the ship
// goes on. (It was answered 200 with the shipped order.)
TEST_F(OrderActor, ACancelThatComesWhileTheOrderIsBeingShippedIsRefused) {
  put_item("mug", 10);
  ASSERT_TRUE(place("ord_cs", {{"mug", 3, 0}}).value);
  auto replies = ask_together(*system_, node_.ctx->router, "ord_cs",
                              {caf::make_message(ship_atom::value), caf::make_message(cancel_atom::value)});
  ASSERT_TRUE(replies[0].value) << to_string(replies[0].code());
  EXPECT_EQ(replies[0].value->status, "shipped");
  EXPECT_EQ(replies[1].code(), errc::conflict);
  EXPECT_EQ(provider_->refunds, 0);
  expect_stock("mug", 7, 0);
}

// A cancel of a confirmed order records `cancelling` before it refunds and releases. One
// interrupted (a crash after the refund and one line's release) is found by the recovery sweep,
// and finished as a cancel. A ship meanwhile finishes the cancel too and is refused: shipping it
// would sell the released units twice, with its payment refunded.
TEST_F(OrderActor, AnInterruptedCancelIsFinishedAsACancelAndNeverShipped) {
  put_item("mug", 10);
  put_item("pen", 10);
  for (auto by : {"sweep", "ship"}) {
    SCOPED_TRACE(by);
    std::string id = std::string("ord_ic_") + by;
    auto placed = place(id, {{"mug", 2, 0}, {"pen", 3, 0}});
    ASSERT_TRUE(placed.value);
    ASSERT_EQ(placed.value->status, "confirmed");
    // What the interrupted cancel did: the order marked, the payment refunded, the mug released.
    ASSERT_TRUE(passivate(order_type, id));
    orders_sql("UPDATE orders SET status = 'cancelling', version = version + 1 WHERE id = '" + id + "'");
    ASSERT_TRUE(ask<PaymentRecord>(payment_type, placed.value->payment->id, refund_atom::value).value);
    ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_release{id}).value);
    expect_stock("mug", 10, 0);
    expect_stock("pen", 10, 3);
    EXPECT_EQ(get(id).status, "cancelling");  // shown as confirmed (see shown_status)
    auto refunds = provider_->refunds.load();
    if (std::string(by) == "sweep") {
      caf::scoped_actor self{*system_};
      std::vector<std::string> found;
      self->request(node_.ctx->orders_db, std::chrono::seconds(5),
                    db_read{[&found, now = clock_->now_ms()](soci::session& s) {
                      found = unfinished_orders(s, now + 1, "", 100);
                    }})
          .receive([](bool) {}, [](caf::error& e) { FAIL() << caf::to_string(e); });
      EXPECT_EQ(found, std::vector<std::string>{id});
      auto r = ask<OrderRecord>(order_type, id, recover_atom::value);
      ASSERT_TRUE(r.value) << to_string(r.code());
      EXPECT_EQ(r.value->status, "cancelled");
    } else {
      auto ship = ask<OrderRecord>(order_type, id, ship_atom::value);
      EXPECT_EQ(ship.code(), errc::conflict);
      EXPECT_EQ(get(id).status, "cancelled");
    }
    EXPECT_EQ(get(id).payment->status, "refunded");
    EXPECT_EQ(provider_->refunds.load(), refunds);  // the second refund finds it refunded
    expect_stock("mug", 10, 0);
    expect_stock("pen", 10, 0);
  }
}

// A ship records `shipping` before it ships the lines. One interrupted (a crash after one line
// shipped) is finished as a ship by the next ship, or by a cancel, which is then refused: it would
// refund an order whose goods are leaving. Each line ships once.
TEST_F(OrderActor, AnInterruptedShipIsFinishedAsAShipAndNeverCancelled) {
  put_item("mug", 10);
  put_item("pen", 10);
  for (auto by : {"ship", "cancel"}) {
    SCOPED_TRACE(by);
    std::string id = std::string("ord_is_") + by;
    ASSERT_TRUE(place(id, {{"mug", 2, 0}, {"pen", 3, 0}}).value);
    auto mug = item("mug").on_hand, pen = item("pen").on_hand;
    ASSERT_TRUE(passivate(order_type, id));
    orders_sql("UPDATE orders SET status = 'shipping', version = version + 1 WHERE id = '" + id + "'");
    ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_ship{id}).value);
    expect_stock("mug", mug - 2, 0);
    expect_stock("pen", pen, 3);
    auto r = ask<OrderRecord>(order_type, id, std::string(by) == "ship" ? caf::make_message(ship_atom::value)
                                                                       : caf::make_message(cancel_atom::value));
    if (std::string(by) == "ship") {
      ASSERT_TRUE(r.value) << to_string(r.code());
      EXPECT_EQ(r.value->status, "shipped");
    } else {
      EXPECT_EQ(r.code(), errc::conflict);
    }
    auto now = get(id);
    EXPECT_EQ(now.status, "shipped");
    EXPECT_EQ(now.payment->status, "captured");
    expect_stock("mug", mug - 2, 0);  // shipped once
    expect_stock("pen", pen - 3, 0);
    EXPECT_EQ(ask<OrderRecord>(order_type, id, ship_atom::value).code(), errc::conflict);
  }
  EXPECT_EQ(provider_->refunds, 0);
}

TEST_F(OrderActor, StateSurvivesPassivation) {
  put_item("mug", 10);
  ASSERT_TRUE(place("ord_p", {{"mug", 2, 0}}).value);
  EXPECT_TRUE(passivate(order_type, "ord_p"));
  auto o = get("ord_p");
  EXPECT_EQ(o.status, "confirmed");
  ASSERT_EQ(o.lines.size(), 1u);
  EXPECT_EQ(o.lines[0].quantity, 2);
  EXPECT_EQ(o.payment->status, "captured");
}

TEST_F(OrderActor, RecoveryCompensatesAnInterruptedPendingOrder) {
  put_item("mug", 10);
  // A crash after the order was recorded and one line reserved.
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_crash", 3}).value);
  OrderRecord rec{"ord_crash", "alice", "pending", "", {{"mug", 3, 0}}, 0, "USD", std::nullopt,
                  clock_->now_ms(), clock_->now_ms(), 1};
  store_order(rec);
  auto r = ask<OrderRecord>(order_type, "ord_crash", recover_atom::value);
  ASSERT_TRUE(r.value) << to_string(r.code());
  EXPECT_EQ(r.value->status, "payment_failed");
  EXPECT_EQ(r.value->failure_reason, "payment_unavailable");
  expect_stock("mug", 10, 0);
  auto again = ask<OrderRecord>(order_type, "ord_crash", recover_atom::value);
  EXPECT_EQ(again.value->version, r.value->version);  // nothing left to do
}

// A backlog of unfinished orders (5, after a crash) is recovered by one sweep, `batch_max` (2) at
// a time: every one of them ends compensated, not only the first batch.
TEST_F(OrderActor, TheRecoverySweepWorksOffABacklogInBatches) {
  put_item("mug", 10);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back("ord_bk" + std::to_string(i));
    store_order(OrderRecord{ids.back(), "alice", "pending", "", {{"mug", 1, 0}}, 0, "USD", std::nullopt,
                            clock_->now_ms(), clock_->now_ms(), 1});
  }
  clock_->advance(1);  // the sweep takes orders last changed before now
  node_.sweeper = spawn_recovery_sweep(*system_, node_.ctx, {0, 86'400'000, 0, 2});
  auto all_failed = [&] {
    for (const auto& id : ids) {
      auto o = ask<OrderRecord>(order_type, id, get_atom::value);
      if (!o.value || o.value->status != "payment_failed") return false;
    }
    return true;
  };
  for (int i = 0; i < 500 && !all_failed(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(all_failed());
  expect_stock("mug", 10, 0);
}

TEST_F(OrderActor, RecoveryConfirmsAReservedOrderWhosePaymentWasCaptured) {
  put_item("mug", 10);
  // A crash after the capture, before the order was confirmed.
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_cap", 2}).value);
  auto charged = ask<PaymentRecord>(payment_type, "pay_cap",
                                    payment_charge{"ord_cap", 2000, "USD", card("4242424242424242")});
  ASSERT_TRUE(charged.value);
  OrderRecord rec{"ord_cap", "alice", "reserved", "", {{"mug", 2, 1000}}, 2000, "USD",
                  charged.value, clock_->now_ms(), clock_->now_ms(), 2};
  store_order(rec);
  auto r = ask<OrderRecord>(order_type, "ord_cap", recover_atom::value);
  ASSERT_TRUE(r.value) << to_string(r.code());
  EXPECT_EQ(r.value->status, "confirmed");
  expect_stock("mug", 10, 2);
  // The reservation is committed now: it does not expire.
  clock_->advance(config_.orders.reservation_ttl_ms + 1);
  caf::anon_send(node_.ctx->router, route_atom::value, inventory_type, std::string("mug"),
                 caf::make_message(expire_atom::value));
  expect_stock("mug", 10, 2);
}

// A reservation still held orders.reservation_check_ms after it was made asks its order: released
// at once when the order is not stored (its node failed before writing it) or is finished, kept
// while the order is still placing (its saga or the recovery sweep settles it), and checked once.
TEST_F(OrderActor, AHeldReservationNoOrderWillClaimIsReleasedAtItsCheck) {
  put_item("mug", 10);
  auto failed = place("ord_cf", {{"mug", 2, 0}}, "4000000000000002");
  ASSERT_TRUE(failed.value);
  EXPECT_EQ(failed.value->status, "payment_failed");
  OrderRecord placing{"ord_cp", "alice", "pending", "", {{"mug", 1, 0}}, 0, "USD", std::nullopt,
                      clock_->now_ms(), clock_->now_ms(), 1};
  store_order(placing);
  for (auto [id, qty] : {std::pair<const char*, int>{"ord_cf", 2}, {"ord_cp", 1}, {"ord_cg", 3}})
    ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{id, qty}).value) << id;
  expect_stock("mug", 10, 6);
  clock_->advance(config_.orders.reservation_check_ms - 1);  // not due yet
  expire_now("mug");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  expect_stock("mug", 10, 6);
  clock_->advance(1);
  expire_now("mug");
  EXPECT_EQ(reserved_becomes("mug", 1), 1);  // the failed order's and the unknown one's
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  expect_stock("mug", 10, 1);  // the placing order's is kept
  EXPECT_EQ(get("ord_cf").status, "payment_failed");
  // Once checked, it waits for its expiry, which asks again: still placing, it is kept (the
  // order could still be confirmed), and the order's recovery releases it.
  clock_->advance(config_.orders.reservation_ttl_ms - config_.orders.reservation_check_ms);
  expire_now("mug");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  expect_stock("mug", 10, 1);
  auto recovered = ask<OrderRecord>(order_type, "ord_cp", recover_atom::value);
  ASSERT_TRUE(recovered.value) << to_string(recovered.code());
  EXPECT_EQ(recovered.value->status, "payment_failed");
  expect_stock("mug", 10, 0);
}

// A reserve delivered again shows its order still placing: the held reservation starts over, and
// its check comes a full reservation_check_ms later.
TEST_F(OrderActor, AReserveDeliveredAgainPutsOffItsCheck) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_again", 2}).value);
  clock_->advance(config_.orders.reservation_check_ms - 1);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_again", 2}).value);
  clock_->advance(1);
  expire_now("mug");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  expect_stock("mug", 10, 2);
  clock_->advance(config_.orders.reservation_check_ms);
  expire_now("mug");
  EXPECT_EQ(reserved_becomes("mug", 0), 0);  // no such order
}

// An item activated after a crash checks the held reservations that came due meanwhile, unasked.
TEST_F(OrderActor, AnItemActivatedLaterChecksTheHeldReservationsDueMeanwhile) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_lost", 4}).value);
  EXPECT_TRUE(passivate(inventory_type, "mug"));
  clock_->advance(config_.orders.reservation_check_ms);
  EXPECT_EQ(reserved_becomes("mug", 0), 0);
}

// An item nobody asks about is activated by the recovery sweep once a held reservation of it
// comes due for its check, and the check then releases what no order claims. (It waited for the
// item's next message.)
TEST_F(OrderActor, TheRecoverySweepActivatesAnItemWhoseHeldReservationCameDue) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_orphan", 4}).value);
  EXPECT_TRUE(passivate(inventory_type, "mug"));
  ASSERT_TRUE(all_down(inventory_type));
  auto stored_reserved = [&] {
    caf::scoped_actor self{*system_};
    std::int64_t reserved = -1;
    self->request(node_.ctx->inventory_db, std::chrono::seconds(5), db_read{[&reserved](soci::session& s) {
                    if (auto loaded = load_item(s, "mug")) reserved = loaded->item.reserved;
                  }})
        .receive([](bool) {}, [](caf::error& e) { FAIL() << caf::to_string(e); });
    return reserved;
  };
  // Not due yet: the sweep leaves the item alone.
  clock_->advance(config_.orders.reservation_check_ms - 1);
  node_.sweeper = spawn_recovery_sweep(*system_, node_.ctx, {0, 86'400'000, 0, 1'000});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(alive(inventory_type), 0);
  EXPECT_EQ(stored_reserved(), 4);
  // Due: the next sweep activates it, and its check releases the reservation.
  clock_->advance(1);
  caf::anon_send(node_.sweeper, sweep_atom::value);
  std::int64_t reserved = -1;
  for (int i = 0; i < 300 && (reserved = stored_reserved()) != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(reserved, 0);
}

class OrderActorShortTtl : public OrderActor {
 protected:
  void configure(Config& c) override {
    OrderActor::configure(c);
    c.orders.reservation_ttl_ms = 1000;
    c.orders.reservation_check_ms = 60'000;
  }
};

// A check set longer than the TTL never comes: the timer is set for the expiry (the manual clock
// is moved to it, the timer fires in real time).
TEST_F(OrderActorShortTtl, AHeldReservationExpiresOnTimeWhenItsCheckWouldComeLater) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_short", 2}).value);
  clock_->advance(1000);
  EXPECT_EQ(reserved_becomes("mug", 0), 0);
}

TEST_F(OrderActor, StatusTableAllowsOnlyTheDocumentedMoves) {
  EXPECT_TRUE(legal_transition(OrderStatus::pending, OrderStatus::reserved));
  EXPECT_TRUE(legal_transition(OrderStatus::reserved, OrderStatus::confirmed));
  EXPECT_TRUE(legal_transition(OrderStatus::confirmed, OrderStatus::shipped));
  EXPECT_TRUE(legal_transition(OrderStatus::confirmed, OrderStatus::cancelled));
  EXPECT_TRUE(legal_transition(OrderStatus::confirmed, OrderStatus::cancelling));
  EXPECT_TRUE(legal_transition(OrderStatus::cancelling, OrderStatus::cancelled));
  EXPECT_TRUE(legal_transition(OrderStatus::confirmed, OrderStatus::shipping));
  EXPECT_TRUE(legal_transition(OrderStatus::shipping, OrderStatus::shipped));
  EXPECT_FALSE(legal_transition(OrderStatus::cancelling, OrderStatus::shipping));
  EXPECT_FALSE(legal_transition(OrderStatus::cancelling, OrderStatus::shipped));
  EXPECT_FALSE(legal_transition(OrderStatus::shipping, OrderStatus::cancelling));
  EXPECT_FALSE(legal_transition(OrderStatus::shipping, OrderStatus::cancelled));
  EXPECT_FALSE(legal_transition(OrderStatus::shipped, OrderStatus::cancelled));
  EXPECT_FALSE(legal_transition(OrderStatus::rejected, OrderStatus::confirmed));
  EXPECT_FALSE(legal_transition(OrderStatus::cancelled, OrderStatus::confirmed));
  EXPECT_FALSE(legal_transition(OrderStatus::pending, OrderStatus::shipped));
}

class OrderActorShortTerminal : public OrderActor {
 protected:
  void configure(Config& c) override {
    OrderActor::configure(c);
    c.actors.terminal_passivate_ms = 300;
  }
};

// A finished order (just finished, or loaded finished), and a payment that decided on its own, stop
// actors.terminal_passivate_ms after they finish (their registries ask them then), not before. (A captured payment hands its record
// to its order and stops at once.)
TEST_F(OrderActorShortTerminal, AFinishedOrderAndItsPaymentStopAfterTheirTime) {
  put_item("mug", 10);
  auto start = std::chrono::steady_clock::now();
  auto placed = place("ord_done", {{"mug", 1, 0}}, "4242424242424242");
  ASSERT_TRUE(placed.value) << to_string(placed.code());
  EXPECT_EQ(placed.value->status, "confirmed");
  EXPECT_EQ(alive(order_type), 1);
  EXPECT_TRUE(all_down(order_type));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
  // Read again, from storage: loaded finished, it stops after its time as well.
  EXPECT_EQ(get("ord_done").status, "confirmed");
  EXPECT_EQ(alive(order_type), 1);
  EXPECT_TRUE(all_down(order_type));
  // A declined card: the payment decides and writes its outcome itself, then waits its time too.
  start = std::chrono::steady_clock::now();
  auto declined = place("ord_declined", {{"mug", 1, 0}}, "4000000000000002");
  ASSERT_TRUE(declined.value) << to_string(declined.code());
  EXPECT_EQ(declined.value->status, "payment_failed");
  EXPECT_EQ(alive(payment_type), 1);
  EXPECT_TRUE(all_down(payment_type));
  EXPECT_TRUE(all_down(order_type));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
}

}  // namespace
}  // namespace emporium::testing
