// The inventory item actor on a real node (SQLite): stock arithmetic after every step,
// reservations per order, expiry, and idempotent re-delivery.
#include <soci/soci.h>

#include "runtime/persistence.hpp"
#include "runtime/store.hpp"
#include "tests/unit/actors/node_fixture.hpp"

namespace emporium::testing {
namespace {

class InventoryActor : public NodeFixture {};

TEST_F(InventoryActor, PutCreatesThenReplaces) {
  auto first = ask<item_put_result>(inventory_type, "mug", item_put{"Mug", 1999, 10, "USD"});
  ASSERT_TRUE(first.value);
  EXPECT_TRUE(first.value->created);
  EXPECT_EQ(first.value->item.available(), 10);
  auto second = ask<item_put_result>(inventory_type, "mug", item_put{"Big mug", 2499, 20, "EUR"});
  ASSERT_TRUE(second.value);
  EXPECT_FALSE(second.value->created);
  auto now = item("mug");
  EXPECT_EQ(now.name, "Big mug");
  EXPECT_EQ(now.price_cents, 2499);
  EXPECT_EQ(now.currency, "EUR");
  EXPECT_EQ(now.on_hand, 20);
}

// Each call for it stops the actor it activated (nothing else was asked of it), rather than
// keeping one until it idles out.
TEST_F(InventoryActor, UnknownSkuIsNotFoundAndCannotBeReserved) {
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "none", get_atom::value).code(), errc::not_found);
  EXPECT_TRUE(all_down(inventory_type));
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "none", item_reserve{"ord_1", 1}).code(), errc::unknown_sku);
  EXPECT_TRUE(all_down(inventory_type));
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "none", item_adjust{5}).code(), errc::not_found);
  EXPECT_TRUE(all_down(inventory_type));
}

// A sku found in no stored item is known so for actors.unknown_sku_ttl_ms: lookups meanwhile do not
// read the database again (an item written into it by hand shows only after that time), and a
// create here shows at once.
class UnknownSkus : public InventoryActor {
 protected:
  void configure(Config& c) override { c.actors.unknown_sku_ttl_ms = 3'000; }
  void inventory_sql(const std::string& sql) {
    caf::scoped_actor self{*system_};
    self->request(node_.ctx->inventory_db, std::chrono::seconds(5),
                  db_write{[sql](soci::session& s) {
                    s << sql;
                    return true;
                  }})
        .receive([](bool) {}, [&](caf::error& e) { FAIL() << sql << ": " << caf::to_string(e); });
  }
};

TEST_F(UnknownSkus, AnUnknownSkuIsNotReadAgainWithinItsTime) {
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "ghost", get_atom::value).code(), errc::not_found);
  EXPECT_TRUE(node_.ctx->absent_skus->known_absent("ghost"));
  inventory_sql(
      "INSERT INTO items (sku, name, price_cents, currency, on_hand, reserved, version) "
      "VALUES ('ghost', 'Ghost', 100, 'USD', 5, 0, 1)");
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "ghost", get_atom::value).code(), errc::not_found);
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "ghost", item_reserve{"ord_1", 1}).code(),
            errc::unknown_sku);
  Reply<ItemRecord> found;
  for (int i = 0; i < 600 && !found.value; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    found = ask<ItemRecord>(inventory_type, "ghost", get_atom::value);
  }
  ASSERT_TRUE(found.value) << "never read again";
  EXPECT_EQ(found.value->on_hand, 5);
}

TEST_F(UnknownSkus, ACreateAfterALookupShowsAtOnce) {
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "mug", get_atom::value).code(), errc::not_found);
  auto put = ask<item_put_result>(inventory_type, "mug", item_put{"Mug", 1999, 10, "USD"});
  ASSERT_TRUE(put.value) << to_string(put.code());
  EXPECT_TRUE(put.value->created);
  EXPECT_FALSE(node_.ctx->absent_skus->known_absent("mug"));
  ASSERT_TRUE(passivate(inventory_type, "mug"));
  ASSERT_TRUE(all_down(inventory_type));
  EXPECT_EQ(item("mug").on_hand, 10);
}

// A create the database refuses for a row stored meanwhile (by hand here; in a cluster, by another
// node): the create fails, the sku is forgotten, and the next call reads the stored item.
TEST_F(UnknownSkus, ACreateOverAnItemStoredMeanwhileFailsThenTheStoredOneShows) {
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "ghost", get_atom::value).code(), errc::not_found);
  inventory_sql(
      "INSERT INTO items (sku, name, price_cents, currency, on_hand, reserved, version) "
      "VALUES ('ghost', 'Ghost', 100, 'USD', 5, 0, 1)");
  auto put = ask<item_put_result>(inventory_type, "ghost", item_put{"Mug", 1999, 10, "USD"});
  EXPECT_EQ(put.code(), errc::version_conflict);
  EXPECT_FALSE(node_.ctx->absent_skus->known_absent("ghost"));
  ASSERT_TRUE(all_down(inventory_type));
  EXPECT_EQ(item("ghost").on_hand, 5);
}

class UnknownSkusReadEachTime : public UnknownSkus {
 protected:
  void configure(Config& c) override { c.actors.unknown_sku_ttl_ms = 0; }
};

TEST_F(UnknownSkusReadEachTime, AnItemWrittenByHandShowsAtOnce) {
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "ghost", get_atom::value).code(), errc::not_found);
  inventory_sql(
      "INSERT INTO items (sku, name, price_cents, currency, on_hand, reserved, version) "
      "VALUES ('ghost', 'Ghost', 100, 'USD', 5, 0, 1)");
  ASSERT_TRUE(all_down(inventory_type));
  auto found = ask<ItemRecord>(inventory_type, "ghost", get_atom::value);
  ASSERT_TRUE(found.value) << to_string(found.code());
  EXPECT_EQ(found.value->on_hand, 5);
}

TEST_F(InventoryActor, ReserveMovesUnitsFromAvailableToReserved) {
  put_item("mug", 10);
  auto r = ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_1", 3});
  ASSERT_TRUE(r.value);
  auto now = item("mug");
  EXPECT_EQ(now.on_hand, 10);
  EXPECT_EQ(now.reserved, 3);
  EXPECT_EQ(now.available(), 7);
}

TEST_F(InventoryActor, ReservingMoreThanAvailableIsInsufficientStockAndChangesNothing) {
  put_item("mug", 5);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_1", 4}).value);
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_2", 2}).code(),
            errc::insufficient_stock);
  auto now = item("mug");
  EXPECT_EQ(now.reserved, 4);
  EXPECT_EQ(now.available(), 1);
  EXPECT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_3", 1}).value);
  EXPECT_EQ(item("mug").available(), 0);
}

TEST_F(InventoryActor, ReserveIsIdempotentPerOrder) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_1", 3}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_1", 3}).value);
  EXPECT_EQ(item("mug").reserved, 3);
}

// An early reserve is answered once the units are set aside, before its write commits; item_sync
// is answered once it is stored.
TEST_F(InventoryActor, AnEarlyReserveIsStoredOnceItsSyncIsAnswered) {
  put_item("mug", 100, 1999);
  auto stored_reserved = [&] {
    caf::scoped_actor self{*system_};
    std::int64_t reserved = -1;
    std::size_t rows = 0;
    self->request(node_.ctx->inventory_db, std::chrono::seconds(5), db_read{[&](soci::session& s) {
                    if (auto loaded = load_item(s, "mug")) {
                      reserved = loaded->item.reserved;
                      rows = loaded->reservations.size();
                    }
                  }})
        .receive([](bool) {}, [](caf::error& e) { FAIL() << caf::to_string(e); });
    return std::pair{reserved, rows};
  };
  for (int i = 0; i < 20; ++i) {
    auto id = "ord_early" + std::to_string(i);
    auto early = ask<ItemRecord>(inventory_type, "mug", item_reserve{id, 1, true});
    ASSERT_TRUE(early.value) << to_string(early.code());
    EXPECT_EQ(early.value->price_cents, 1999);
    auto synced = ask<ItemRecord>(inventory_type, "mug", item_sync{id});
    ASSERT_TRUE(synced.value) << to_string(synced.code());
    EXPECT_EQ(synced.value->reserved, i + 1);  // the committed state, with this reservation
    EXPECT_EQ(stored_reserved(), std::pair(std::int64_t{i + 1}, std::size_t(i + 1)));
  }
  // A sync the item knows nothing of (the activation that answered the reserve stopped before its
  // write committed) makes the reservation again, and is answered once it is stored.
  auto again = ask<ItemRecord>(inventory_type, "mug", item_sync{"ord_lost", 5});
  ASSERT_TRUE(again.value) << to_string(again.code());
  EXPECT_EQ(again.value->reserved, 25);
  EXPECT_EQ(stored_reserved(), std::pair(std::int64_t{25}, std::size_t(21)));
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "mug", item_sync{"ord_lost", 5}).value->reserved, 25);
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "mug", item_sync{"ord_many", 76}).code(), errc::insufficient_stock);
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "none", item_sync{"ord_early0", 1}).code(), errc::unknown_sku);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_early0"}).value);
  EXPECT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_sync{"ord_early0"}).value);  // committed
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_big", 76, true}).code(),
            errc::insufficient_stock);
}

// A commit with its quantity makes a gone reservation again, committed, when the units are there;
// a release (or a ship) that came right after it, finding nothing yet, releases (ships) what the
// commit made, rather than leaving it committed for good.
TEST_F(InventoryActor, AReleaseAfterACommitThatMadeTheReservationAgainReleasesIt) {
  put_item("mug", 10);
  auto made = ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_made", 2});
  ASSERT_TRUE(made.value) << to_string(made.code());
  EXPECT_EQ(made.value->reserved, 2);
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_none"}).code(), errc::not_found);
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_big", 9}).code(), errc::not_found);
  for (const char* id : {"ord_r1", "ord_r2", "ord_r3"}) {
    caf::anon_send(node_.ctx->router, route_atom::value, inventory_type, std::string("mug"),
                   caf::make_message(item_commit{id, 1}));
    ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_release{id}).value) << id;
  }
  caf::anon_send(node_.ctx->router, route_atom::value, inventory_type, std::string("mug"),
                 caf::make_message(item_commit{"ord_s1", 1}));
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_ship{"ord_s1"}).value);
  EXPECT_TRUE(passivate(inventory_type, "mug"));
  auto now = item("mug");
  EXPECT_EQ(now.reserved, 2);  // ord_made's only
  EXPECT_EQ(now.on_hand, 9);   // ord_s1 shipped
}

// The reservations of `sku` as stored: order id and state. A write that reached `db` before the
// call (an item's answer to flush_atom only says its write is on its way) is committed first: the
// batch it joined would otherwise be committed after this read.
std::map<std::string, ReservationState> stored_reservations(caf::actor_system& system,
                                                            const caf::actor& db, const std::string& sku) {
  caf::scoped_actor self{system};
  self->send(db, flush_atom::value);
  std::map<std::string, ReservationState> out;
  self->request(db, std::chrono::seconds(5), db_read{[&](soci::session& s) {
                  soci::rowset<soci::row> rows =
                      (s.prepare << "SELECT order_id, state FROM reservations WHERE sku = '" + sku + "'");
                  for (const auto& row : rows)
                    out[row.get<std::string>(0)] = *reservation_state_from(row.get<std::string>(1));
                }})
      .receive([](bool) {}, [](caf::error& e) { FAIL() << caf::to_string(e); });
  return out;
}

// A commit is answered at once. Its write goes with the item's next write, or alone when the timer
// fires (orders.reservation_commit_delay_ms), or before the item passivates; a ship before it is
// written leaves no row.
TEST_F(InventoryActor, ACommitIsAnsweredAtOnceAndWrittenWithTheItemsNextWrite) {
  using S = ReservationState;
  using Rows = std::map<std::string, ReservationState>;
  auto stored = [&] { return stored_reservations(*system_, node_.ctx->inventory_db, "mug"); };
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_a", 3}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_a"}).value);
  EXPECT_EQ(stored(), (Rows{{"ord_a", S::held}}));
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_b", 1}).value);
  EXPECT_EQ(stored(), (Rows{{"ord_a", S::committed}, {"ord_b", S::held}}));
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_b"}).value);
  EXPECT_EQ(stored(), (Rows{{"ord_a", S::committed}, {"ord_b", S::held}}));
  caf::anon_send(node_.ctx->router, route_atom::value, inventory_type, std::string("mug"),
                 caf::make_message(flush_atom::value));  // as the timer
  for (int i = 0; i < 200 && stored().at("ord_b") != S::committed; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(stored(), (Rows{{"ord_a", S::committed}, {"ord_b", S::committed}}));
  // Shipped before its commit was written: the ship deletes the row, and nothing brings it back.
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_c", 2}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_c"}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_ship{"ord_c"}).value);
  caf::anon_send(node_.ctx->router, route_atom::value, inventory_type, std::string("mug"),
                 caf::make_message(flush_atom::value));
  // Answered once stored, after any write the timer started.
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_e", 1}).value);
  EXPECT_EQ(stored(), (Rows{{"ord_a", S::committed}, {"ord_b", S::committed}, {"ord_e", S::held}}));
  // Passivated with a commit not written: written before the item stops.
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_d", 1}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_d"}).value);
  EXPECT_TRUE(passivate(inventory_type, "mug"));
  auto now = item("mug");  // a new activation, once the last one stopped
  EXPECT_EQ(now.on_hand, 8);
  EXPECT_EQ(now.reserved, 6);
  EXPECT_EQ(stored(), (Rows{{"ord_a", S::committed}, {"ord_b", S::committed}, {"ord_d", S::committed},
                            {"ord_e", S::held}}));
}

// The stop's first half: once the node is closed, its items have stored the commits they kept in
// memory, and a call to an entity is refused as if its receiver were gone (on a single node calls
// go straight to the registries, so their close is what keeps a late call from an item).
TEST_F(InventoryActor, AClosedNodeHasStoredItsKeptCommitsAndTakesNoCall) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_a", 3}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_a"}).value);
  close_node_actors(*system_, node_);
  EXPECT_EQ(stored_reservations(*system_, node_.ctx->inventory_db, "mug"),
            (std::map<std::string, ReservationState>{{"ord_a", ReservationState::committed}}));
  caf::scoped_actor self{*system_};
  caf::error got;
  self->request(node_.ctx->route_for(inventory_type), std::chrono::seconds(5), route_atom::value,
                inventory_type, std::string("mug"), caf::make_message(get_atom::value))
      .receive([](ItemRecord&) { ADD_FAILURE() << "a closed node passed a call on"; },
               [&](caf::error& err) { got = err; });
  EXPECT_EQ(got, caf::sec::request_receiver_down);
}

class CommitsWrittenAtOnce : public NodeFixture {
 protected:
  void configure(Config& c) override { c.orders.reservation_commit_delay_ms = 0; }
};

// In a cluster a commit is written before it is answered: its fenced write is what sends it to the
// current activation of the item, when another one took over.
TEST(ActorSettingsOfConfig, InAClusterEveryCommitIsWrittenBeforeItIsAnswered) {
  Config config;
  config.orders.reservation_commit_delay_ms = 700;
  EXPECT_EQ(actor_settings(config).reservation_commit_delay_ms, 700);
  config.cluster.enabled = true;
  EXPECT_EQ(actor_settings(config).reservation_commit_delay_ms, 0);
}

// On a single node an entity call goes straight to the registry of its type; in a cluster, and for
// a type with no registry here, to the router.
TEST(NodeContextRoute, ASingleNodeCallsItsRegistriesAClusterItsRouter) {
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  auto dummy = [](caf::event_based_actor*) -> caf::behavior { return {[](get_atom) {}}; };
  NodeContext ctx;
  ctx.single_node = true;
  ctx.router = system.spawn(dummy);
  ctx.registries[order_type] = system.spawn(dummy);
  ctx.registries[inventory_type] = system.spawn(dummy);
  EXPECT_EQ(ctx.route_for(order_type), ctx.registries[order_type]);
  EXPECT_EQ(ctx.route_for(inventory_type), ctx.registries[inventory_type]);
  EXPECT_EQ(ctx.route_for(payment_type), ctx.router);
  ctx.single_node = false;
  EXPECT_EQ(ctx.route_for(order_type), ctx.router);
  for (const auto& a : {ctx.router, ctx.registries[order_type], ctx.registries[inventory_type]})
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

class CommitsWrittenSoon : public NodeFixture {
 protected:
  void configure(Config& c) override { c.orders.reservation_commit_delay_ms = 50; }
};

// A commit that no other write takes is written by its timer.
TEST_F(CommitsWrittenSoon, ACommitAloneIsWrittenByItsTimer) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_a", 3}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_a"}).value);
  auto stored = [&] { return stored_reservations(*system_, node_.ctx->inventory_db, "mug"); };
  for (int i = 0; i < 300 && stored().at("ord_a") != ReservationState::committed; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(stored(), (std::map<std::string, ReservationState>{{"ord_a", ReservationState::committed}}));
  EXPECT_EQ(item("mug").version, 3);  // put, reserve, the commit's write
}

// With orders.reservation_commit_delay_ms = 0 a commit is written on its own and answered once
// stored.
TEST_F(CommitsWrittenAtOnce, ACommitIsAnsweredOnceStored) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_a", 3}).value);
  auto committed = ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_a"});
  ASSERT_TRUE(committed.value);
  EXPECT_EQ(committed.value->version, 3);  // put, reserve, commit
  EXPECT_EQ(stored_reservations(*system_, node_.ctx->inventory_db, "mug"),
            (std::map<std::string, ReservationState>{{"ord_a", ReservationState::committed}}));
}

TEST_F(InventoryActor, ReleaseRestoresAvailableOnceOnly) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_1", 3}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_release{"ord_1"}).value);
  EXPECT_EQ(item("mug").available(), 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_release{"ord_1"}).value);
  auto now = item("mug");
  EXPECT_EQ(now.available(), 10);
  EXPECT_EQ(now.reserved, 0);
}

TEST_F(InventoryActor, ShipTakesCommittedUnitsOffOnHandOnce) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_1", 3}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_1"}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_ship{"ord_1"}).value);
  auto now = item("mug");
  EXPECT_EQ(now.on_hand, 7);
  EXPECT_EQ(now.reserved, 0);
  EXPECT_EQ(now.available(), 7);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_ship{"ord_1"}).value);
  EXPECT_EQ(item("mug").on_hand, 7);
}

TEST_F(InventoryActor, HeldReservationExpiresButCommittedOneDoesNot) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_held", 2}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_done", 3}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_done"}).value);
  clock_->advance(config_.orders.reservation_ttl_ms + 1);
  caf::anon_send(node_.ctx->router, route_atom::value, inventory_type, std::string("mug"),
                 caf::make_message(expire_atom::value));
  // The expiry write is committed before the next read is answered: reads queue behind it.
  for (int i = 0; i < 100 && item("mug").reserved != 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto now = item("mug");
  EXPECT_EQ(now.reserved, 3);
  EXPECT_EQ(now.available(), 7);
  // An expired order's commit finds nothing to commit.
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_held"}).code(), errc::not_found);
}

// A release asked for held reservations only leaves a committed one alone (see item_release).
TEST_F(InventoryActor, AReleaseOfHeldOnlyLeavesACommittedReservation) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_done", 3}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_done"}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_held", 2}).value);
  auto kept = ask<ItemRecord>(inventory_type, "mug", item_release{"ord_done", true});
  ASSERT_TRUE(kept.value) << to_string(kept.code());
  EXPECT_EQ(kept.value->reserved, 5);
  auto released = ask<ItemRecord>(inventory_type, "mug", item_release{"ord_held", true});
  ASSERT_TRUE(released.value) << to_string(released.code());
  EXPECT_EQ(released.value->reserved, 3);
  auto all = ask<ItemRecord>(inventory_type, "mug", item_release{"ord_done"});
  ASSERT_TRUE(all.value) << to_string(all.code());
  EXPECT_EQ(all.value->reserved, 0);
}

// A committed reservation is kept by its order id and quantity alone (see inventory_state), and
// stays exact across a passivation: a reserve or a commit delivered again changes nothing, the
// operators' view lists it, and shipping takes its units once.
TEST_F(InventoryActor, ACommittedReservationStaysExactAcrossPassivation) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_a", 3}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_a"}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_b", 2}).value);
  EXPECT_TRUE(passivate(inventory_type, "mug"));
  auto again = ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_a", 3});  // activates it
  ASSERT_TRUE(again.value) << to_string(again.code());
  EXPECT_EQ(again.value->reserved, 5);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_a"}).value);
  EXPECT_EQ(item("mug").reserved, 5);
  // Past every expiry, the timer releases the held one only.
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_0", 1}).value);
  clock_->advance(config_.orders.reservation_ttl_ms + 1);
  caf::anon_send(node_.ctx->router, route_atom::value, inventory_type, std::string("mug"),
                 caf::make_message(expire_atom::value));
  for (int i = 0; i < 100 && item("mug").reserved != 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(item("mug").reserved, 3);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_b", 2}).value);
  auto view = ask<item_state_view>(inventory_type, "mug", inspect_atom::value);
  ASSERT_TRUE(view.value) << to_string(view.code());
  ASSERT_EQ(view.value->reservations.size(), 2u);
  const auto& a = view.value->reservations[0];  // in order id order
  EXPECT_EQ(a.sku, "mug");
  EXPECT_EQ(a.order_id, "ord_a");
  EXPECT_EQ(a.state, ReservationState::committed);
  EXPECT_EQ(a.quantity, 3);
  EXPECT_EQ(a.expires_at_ms, 0);
  const auto& b = view.value->reservations[1];
  EXPECT_EQ(b.order_id, "ord_b");
  EXPECT_EQ(b.state, ReservationState::held);
  EXPECT_EQ(b.quantity, 2);
  // A release of held reservations only leaves it alone.
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_release{"ord_a", true}).value);
  EXPECT_EQ(item("mug").reserved, 5);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_ship{"ord_a"}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_ship{"ord_a"}).value);  // delivered again
  auto now = item("mug");
  EXPECT_EQ(now.on_hand, 7);
  EXPECT_EQ(now.reserved, 2);
  // Shipped: a commit finds nothing now, and a passivation brings back only what is left.
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_a"}).code(), errc::not_found);
  EXPECT_TRUE(passivate(inventory_type, "mug"));
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_release{"ord_b"}).value);
  now = item("mug");
  EXPECT_EQ(now.on_hand, 7);
  EXPECT_EQ(now.reserved, 0);
}

// A reservation still held can be shipped too (its units leave stock at once), and a committed
// one can be released in full after a passivation.
TEST_F(InventoryActor, AHeldReservationShipsAndACommittedOneReleasesAfterPassivation) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_h", 2}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_ship{"ord_h"}).value);
  auto now = item("mug");
  EXPECT_EQ(now.on_hand, 8);
  EXPECT_EQ(now.reserved, 0);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_c", 3}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_c"}).value);
  EXPECT_TRUE(passivate(inventory_type, "mug"));
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_release{"ord_c"}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_release{"ord_c"}).value);  // again
  now = item("mug");
  EXPECT_EQ(now.on_hand, 8);
  EXPECT_EQ(now.reserved, 0);
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "mug", item_ship{"ord_c"}).value->on_hand, 8);
}

TEST_F(InventoryActor, AdjustAndPutBelowReservedAreConflicts) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_1", 6}).value);
  EXPECT_EQ(ask<ItemRecord>(inventory_type, "mug", item_adjust{-5}).code(), errc::conflict);
  EXPECT_EQ(ask<item_put_result>(inventory_type, "mug", item_put{"Mug", 1, 5, "USD"}).code(),
            errc::conflict);
  auto adjusted = ask<ItemRecord>(inventory_type, "mug", item_adjust{-4});
  ASSERT_TRUE(adjusted.value);
  EXPECT_EQ(adjusted.value->on_hand, 6);
  EXPECT_EQ(item("mug").available(), 0);
}

TEST_F(InventoryActor, StateAndReservationsSurvivePassivation) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_1", 4}).value);
  EXPECT_TRUE(passivate(inventory_type, "mug"));
  auto now = item("mug");  // activated again from storage
  EXPECT_EQ(now.on_hand, 10);
  EXPECT_EQ(now.reserved, 4);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_release{"ord_1"}).value);
  EXPECT_EQ(item("mug").available(), 10);
}

}  // namespace
}  // namespace emporium::testing

namespace emporium::testing {
namespace {

// Item actors share one set of handlers, which find their actor through the thread running it:
// asked all at once, on two scheduler threads, each must still answer from its own state.
TEST_F(InventoryActor, ItemsAskedAtOnceEachAnswerFromTheirOwnState) {
  constexpr int kItems = 64;
  for (int i = 0; i < kItems; ++i) put_item("sku-" + std::to_string(i), i + 1);
  caf::scoped_actor self{*system_};
  for (int round = 0; round < 20; ++round) {
    std::vector<std::pair<int, decltype(self->request(node_.ctx->router, caf::infinite, caf::message{}))>> asks;
    for (int i = 0; i < kItems; ++i)
      asks.emplace_back(i, self->request(node_.ctx->router, std::chrono::seconds(20), route_atom::value,
                                         inventory_type, "sku-" + std::to_string(i),
                                         caf::make_message(get_atom::value)));
    for (auto& [i, handle] : asks)
      handle.receive(
          [&, i = i](ItemRecord& item) {
            EXPECT_EQ(item.sku, "sku-" + std::to_string(i));
            EXPECT_EQ(item.on_hand, i + 1);
          },
          [](caf::error& err) { ADD_FAILURE() << to_string(err); });
  }
}

class IdleActors : public NodeFixture {
 protected:
  void configure(Config& c) override { c.actors.idle_passivate_ms = 100; }

  RegistryStats stats(caf::atom_value type) {
    caf::scoped_actor self{*system_};
    RegistryStats out;
    self->request(node_.registries.at(type), std::chrono::seconds(5), stats_atom::value)
        .receive([&](RegistryStats& s) { out = s; }, [](caf::error& e) { ADD_FAILURE() << "stats or passivate: " << caf::to_string(e); });
    return out;
  }
};

TEST_F(IdleActors, IdleItemPassivatesAndComesBackFromStorage) {
  put_item("mug", 10);
  EXPECT_EQ(stats(inventory_type).active, 1);
  for (int i = 0; i < 100 && stats(inventory_type).active != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(stats(inventory_type).active, 0);
  EXPECT_EQ(stats(inventory_type).passivations, 1);
  EXPECT_EQ(item("mug").on_hand, 10);  // activated again from storage
  EXPECT_EQ(stats(inventory_type).activations, 2);
}

// A passivated entity counts as alive until it is down, and no longer after.
// An item passivated for being idle writes its commits not written yet before it stops.
TEST_F(IdleActors, AnIdleItemWritesItsCommitsBeforeItStops) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_a", 3}).value);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_commit{"ord_a"}).value);
  EXPECT_TRUE(all_down(inventory_type));
  EXPECT_EQ(stored_reservations(*system_, node_.ctx->inventory_db, "mug"),
            (std::map<std::string, ReservationState>{{"ord_a", ReservationState::committed}}));
}

TEST_F(IdleActors, PassivatedItemIsForgottenOnceDown) {
  put_item("mug", 10);
  EXPECT_EQ(stats(inventory_type).alive, 1);
  ASSERT_TRUE(passivate(inventory_type, "mug"));
  for (int i = 0; i < 100 && stats(inventory_type).alive != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(stats(inventory_type).active, 0);
  EXPECT_EQ(stats(inventory_type).alive, 0);
  EXPECT_EQ(item("mug").on_hand, 10);
  EXPECT_EQ(stats(inventory_type).alive, 1);
}

// Stock checks read the snapshot an active item publishes; once its actor has stopped, readers
// must not see it (it may be stale: the next owner writes elsewhere).
TEST_F(IdleActors, ReadersSeeAnItemOnlyWhileItsActorIsActive) {
  put_item("mug", 10);
  auto seen = node_.ctx->item_snapshots->find("mug");
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->on_hand, 10);
  for (int i = 0; i < 100 && node_.ctx->item_snapshots->find("mug"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(stats(inventory_type).active, 0);
  EXPECT_FALSE(node_.ctx->item_snapshots->find("mug"));
}

TEST_F(IdleActors, ItemWithHeldReservationStaysActiveForItsExpiry) {
  put_item("mug", 10);
  ASSERT_TRUE(ask<ItemRecord>(inventory_type, "mug", item_reserve{"ord_1", 1}).value);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(stats(inventory_type).active, 1);
}

}  // namespace
}  // namespace emporium::testing
