// The stores and persistence actors against real databases: SQLite files and the PostgreSQL that
// tests/run-all.sh starts (EMPORIUM_TEST_PG); one test stops and restarts a private PostgreSQL.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <gtest/gtest.h>
#include <soci/soci.h>
#include <soci/postgresql/soci-postgresql.h>

#include "runtime/atoms.hpp"
#include "runtime/errors.hpp"
#include "runtime/persistence.hpp"
#include "runtime/store.hpp"

namespace emporium {
namespace {

namespace fs = std::filesystem;

std::string unique_name(const std::string& prefix) {
  static std::atomic<int> n{0};
  return prefix + std::to_string(::getpid()) + "_" + std::to_string(n++);
}

// The PostgreSQL databases this test made: dropped when it ends (Persistence::TearDown).
std::vector<std::string>& created_databases() {
  static std::vector<std::string> names;
  return names;
}

// A fresh database of the backend under test: a new SQLite file, or a new PostgreSQL database
// (created with `options`, if any).
std::string fresh_database(Backend backend, const fs::path& dir, const std::string& options = "") {
  if (backend == Backend::sqlite) return "sqlite:" + (dir / (unique_name("db") + ".db")).string();
  const char* admin = std::getenv("EMPORIUM_TEST_PG");
  if (!admin) throw std::runtime_error("EMPORIUM_TEST_PG is not set (tests/run-all.sh sets it)");
  std::string url = admin;
  auto name = unique_name("emporium_it_");
  soci::session s;
  open_session(s, *parse_db_url(url));
  s << "CREATE DATABASE " + name + (options.empty() ? "" : " " + options);
  created_databases().push_back(name);
  return url.substr(0, url.rfind('/') + 1) + name;
}

class Persistence : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / unique_name("emporium-it-");
    fs::remove_all(dir_);  // left by a killed run whose process id this one has now
    fs::create_directories(dir_);
    orders_url_ = fresh_database(GetParam(), dir_);
    inventory_url_ = fresh_database(GetParam(), dir_);
  }
  void TearDown() override {
    fs::remove_all(dir_);
    if (created_databases().empty()) return;
    soci::session admin;
    open_session(admin, *parse_db_url(std::getenv("EMPORIUM_TEST_PG")));
    for (const auto& name : std::exchange(created_databases(), {}))
      admin << "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)";
  }

  std::unique_ptr<soci::session> connect(const std::string& url) {
    auto s = std::make_unique<soci::session>();
    open_session(*s, *parse_db_url(url));
    return s;
  }

  fs::path dir_;
  std::string orders_url_, inventory_url_;
};

// Applies `writes` as one batch, in a transaction of its own; which of them were applied.
std::vector<bool> save_batch(soci::session& s, const std::vector<EntityWrite>& writes) {
  std::vector<const EntityWrite*> batch;
  for (auto& w : writes) batch.push_back(&w);
  soci::transaction tx(s);
  auto applied = save_entities(s, batch);
  tx.commit();
  return applied;
}

OrderRecord sample_order(const std::string& id, std::int64_t version) {
  return OrderRecord{id, "alice", "pending", "", {{"mug", 2, 1999}, {"pen", 1, 250}}, 4248, "USD",
                     std::nullopt, 1000, 1000, version};
}

TEST_P(Persistence, MigrationsApplyOnceAndAreRecorded) {
  auto session = connect(orders_url_);
  auto& s = *session;
  EXPECT_EQ(migrate(s, GetParam(), Database::orders), 8);
  EXPECT_EQ(migrate(s, GetParam(), Database::orders), 0);
  long long version = 0;
  s << "SELECT MAX(version) FROM schema_migrations", soci::into(version);
  EXPECT_EQ(version, 8);
  if (GetParam() == Backend::postgresql) {  // room for a payment's updates in its page
    std::string options;
    s << "SELECT CAST(reloptions AS text) FROM pg_class WHERE relname = 'payments'", soci::into(options);
    EXPECT_EQ(options, "{fillfactor=70}");
  }
  auto inv_session = connect(inventory_url_);
  auto& inv = *inv_session;
  EXPECT_EQ(migrate(inv, GetParam(), Database::inventory), 4);
  EXPECT_EQ(migrate(inv, GetParam(), Database::inventory), 0);
  if (GetParam() != Backend::postgresql) return;
  // The ids and keys compare byte by byte; the other text columns keep the database's collation.
  auto collated_c = [](soci::session& db, const std::string& table) {
    std::vector<std::string> columns(20);
    db << "SELECT a.attname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation "
          "WHERE a.attrelid = CAST(:t AS regclass) AND c.collname = 'C' ORDER BY a.attnum",
        soci::use(table), soci::into(columns);
    return columns;
  };
  using Names = std::vector<std::string>;
  EXPECT_EQ(collated_c(s, "orders"), (Names{"id", "customer_id"}));
  EXPECT_EQ(collated_c(s, "order_lines"), Names{"order_id"});
  EXPECT_EQ(collated_c(s, "payments"), Names{"id"});
  EXPECT_EQ(collated_c(s, "idempotency_keys"), (Names{"customer_id", "idem_key"}));
  EXPECT_EQ(collated_c(inv, "items"), Names{"sku"});
  EXPECT_EQ(collated_c(inv, "reservations"), (Names{"sku", "order_id"}));
  // Analyzed again after the columns' types changed (which drops their statistics).
  auto analyzed = [](soci::session& db, const std::string& tables) {
    int n = 0;
    db << "SELECT count(*) FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL AND relname IN (" +
              tables + ")",
        soci::into(n);
    return n;
  };
  EXPECT_EQ(analyzed(s, "'orders', 'order_lines', 'payments', 'idempotency_keys'"), 4);
  EXPECT_EQ(analyzed(inv, "'items', 'reservations'"), 2);
}

// A customer's orders are listed newest first, by id compared byte by byte (ids are ASCII; their
// order under collation "C" is the one they had under C.UTF-8), and a page goes on from its cursor.
// On PostgreSQL the database's own collation is ICU's root, which orders these ids otherwise.
TEST_P(Persistence, OrdersAreListedByIdComparedByteByByte) {
  auto url = GetParam() == Backend::postgresql
                 ? fresh_database(GetParam(), dir_, "LOCALE_PROVIDER icu ICU_LOCALE 'und' TEMPLATE template0")
                 : orders_url_;
  auto session = connect(url);
  auto& s = *session;
  migrate(s, GetParam(), Database::orders);
  std::vector<std::string> ids = {"ord_b", "ord_B", "ord_a9", "ord_a_", "ord_A", "ord_0", "ord_a-"};
  for (const auto& id : ids) ASSERT_TRUE(save_order(s, sample_order(id, 1), 0, true));
  auto expected = ids;
  std::sort(expected.rbegin(), expected.rend());  // bytes, descending
  auto listed = [&](const std::string& before, int limit) {
    std::vector<std::string> out;
    for (const auto& order : list_orders(s, "alice", before, limit)) out.push_back(order.id);
    return out;
  };
  EXPECT_EQ(listed("", 10), expected);
  EXPECT_EQ(listed(expected[2], 3), (std::vector<std::string>(expected.begin() + 3, expected.begin() + 6)));
}

// A listed page (three statements, whatever its size) has each order's own lines, in their order,
// and the payment the order names, whatever that payment's own order id says; an order naming a
// missing payment, or none, has none; another customer's orders, a payment no order names, and
// the orders past the page are not mixed in.
TEST_P(Persistence, AListedPageHasEachOrdersOwnLinesAndPayment) {
  auto session = connect(orders_url_);
  auto& s = *session;
  migrate(s, GetParam(), Database::orders);
  auto sku = [](const std::string& id, int line) {  // sorts against line order
    return id + "-" + std::string(1, static_cast<char>('z' - line));
  };
  auto payment = [](const std::string& id, int n) {
    return PaymentRecord{"pay_" + id, id, "captured", "", "visa", "4242", 1 + n, 2030 + n,
                         "ref-" + id, 1000 + n, "USD", 2};
  };
  // ord_n has n + 1 lines. Paid: ord_0, ord_2 (its payment says another order), ord_4; ord_1
  // names a payment never stored; ord_3 none.
  auto store = [&](const std::string& id, const std::string& customer, int n) {
    auto rec = sample_order(id, 1);
    rec.customer_id = customer;
    rec.lines.clear();
    for (int i = 0; i <= n; ++i) rec.lines.push_back({sku(id, i), i + 1, 100 * (n + 1)});
    if (n % 2 == 0) {
      auto p = payment(id, n);
      if (id == "ord_2") p.order_id = "ord_elsewhere";
      ASSERT_TRUE(save_payment(s, p, 0));
      rec.payment = p;
    } else if (n == 1) {
      rec.payment = payment("missing", n);
    }
    ASSERT_TRUE(save_order(s, rec, 0, true));
  };
  for (int n = 0; n < 5; ++n) store("ord_" + std::to_string(n), "alice", n);
  store("ord_45", "bob", 3);  // sorts among alice's
  ASSERT_TRUE(save_payment(s, PaymentRecord{"pay_stray", "ord_3", "captured", "", "visa", "1111", 1,
                                            2030, "", 1, "USD", 1}, 0));  // named by no order
  auto check = [&](const std::vector<OrderRecord>& page, const std::vector<int>& ns) {
    ASSERT_EQ(page.size(), ns.size());
    for (size_t k = 0; k < ns.size(); ++k) {
      int n = ns[k];
      auto id = "ord_" + std::to_string(n);
      const auto& got = page[k];
      EXPECT_EQ(got.id, id);
      EXPECT_EQ(got.customer_id, "alice");
      ASSERT_EQ(got.lines.size(), static_cast<size_t>(n + 1)) << id;
      for (int i = 0; i <= n; ++i) {
        EXPECT_EQ(got.lines[i].sku, sku(id, i)) << id;
        EXPECT_EQ(got.lines[i].quantity, i + 1) << id;
        EXPECT_EQ(got.lines[i].unit_price_cents, 100 * (n + 1)) << id;
      }
      ASSERT_EQ(got.payment.has_value(), n % 2 == 0) << id;
      if (!got.payment) continue;
      auto want = payment(id, n);
      if (id == "ord_2") want.order_id = "ord_elsewhere";
      EXPECT_EQ(got.payment->id, want.id);
      EXPECT_EQ(got.payment->order_id, want.order_id);
      EXPECT_EQ(got.payment->status, want.status);
      EXPECT_EQ(got.payment->brand, want.brand);
      EXPECT_EQ(got.payment->last4, want.last4);
      EXPECT_EQ(got.payment->exp_month, want.exp_month);
      EXPECT_EQ(got.payment->exp_year, want.exp_year);
      EXPECT_EQ(got.payment->provider_ref, want.provider_ref);
      EXPECT_EQ(got.payment->amount_cents, want.amount_cents);
      EXPECT_EQ(got.payment->currency, want.currency);
      EXPECT_EQ(got.payment->version, want.version);
      // As a load of the order finds them.
      auto loaded = load_order(s, id);
      ASSERT_TRUE(loaded);
      ASSERT_TRUE(loaded->payment);
      EXPECT_EQ(loaded->payment->id, want.id);
    }
  };
  check(list_orders(s, "alice", "", 3), {4, 3, 2});
  check(list_orders(s, "alice", "ord_2", 10), {1, 0});
  check(list_orders(s, "alice", "ord_0", 10), {});
  EXPECT_FALSE(load_order(s, "ord_1")->payment);  // names a payment never stored
}

// An order loads in one statement (outer joins): its lines in their order, and its payment with
// every field, or none; a row without lines loads with none; an unknown id loads nothing.
TEST_P(Persistence, AnOrderLoadsWithItsLinesAndPaymentOrWithout) {
  auto session = connect(orders_url_);
  auto& s = *session;
  migrate(s, GetParam(), Database::orders);
  auto rec = sample_order("ord_p", 1);
  rec.lines = {{"z-last", 1, 10}, {"a-first", 2, 20}, {"m", 3, 30}};  // kept in their order
  PaymentRecord p{"pay_p", "ord_p", "refunded", "", "mastercard", "4444", 7, 2031, "ref-9", 140, "EUR", 3};
  ASSERT_TRUE(save_payment(s, p, 0));
  rec.payment = p;
  ASSERT_TRUE(save_order(s, rec, 0, true));
  auto loaded = load_order(s, "ord_p");
  ASSERT_TRUE(loaded);
  ASSERT_EQ(loaded->lines.size(), 3u);
  EXPECT_EQ(loaded->lines[0].sku, "z-last");
  EXPECT_EQ(loaded->lines[1].quantity, 2);
  EXPECT_EQ(loaded->lines[2].unit_price_cents, 30);
  ASSERT_TRUE(loaded->payment);
  const auto& got = *loaded->payment;
  EXPECT_EQ(got.id, "pay_p");
  EXPECT_EQ(got.order_id, "ord_p");
  EXPECT_EQ(got.status, "refunded");
  EXPECT_EQ(got.brand, "mastercard");
  EXPECT_EQ(got.last4, "4444");
  EXPECT_EQ(got.exp_month, 7);
  EXPECT_EQ(got.exp_year, 2031);
  EXPECT_EQ(got.provider_ref, "ref-9");
  EXPECT_EQ(got.amount_cents, 140);
  EXPECT_EQ(got.currency, "EUR");
  EXPECT_EQ(got.version, 3);
  ASSERT_TRUE(save_order(s, sample_order("ord_n", 1), 0, true));
  auto unpaid = load_order(s, "ord_n");
  ASSERT_TRUE(unpaid);
  EXPECT_FALSE(unpaid->payment);
  EXPECT_EQ(unpaid->lines.size(), 2u);
  s << "INSERT INTO orders (id, customer_id, status, total_cents, currency, created_at_ms, "
       "updated_at_ms, version) VALUES ('ord_bare', 'alice', 'pending', 0, 'USD', 1, 1, 1)";
  auto bare = load_order(s, "ord_bare");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->status, "pending");
  EXPECT_TRUE(bare->lines.empty());
  EXPECT_FALSE(bare->payment);
  EXPECT_FALSE(load_order(s, "ord_none"));
}

// A PostgreSQL connection is named for the server's views, unless its URL names it.
TEST_P(Persistence, AConnectionIsNamedUnlessItsUrlNamesIt) {
  if (GetParam() != Backend::postgresql) GTEST_SKIP() << "PostgreSQL only";
  auto name_of = [](const std::string& url, const std::string& name) {
    soci::session s;
    open_session(s, *parse_db_url(url), 2000, name);
    std::string got;
    s << "SELECT current_setting('application_name')", soci::into(got);
    return got;
  };
  EXPECT_EQ(name_of(orders_url_, "emporium-orders-write"), "emporium-orders-write");
  EXPECT_EQ(name_of(orders_url_ + "?application_name=shop-1", "emporium-orders-write"), "shop-1");
  EXPECT_EQ(name_of(orders_url_ + "?sslmode=disable&application_name=shop-2", "emporium-x"), "shop-2");
  EXPECT_EQ(name_of(orders_url_, "it's\\x=y"), "it's\\x=y");  // quoted for libpq
  ::setenv("PGAPPNAME", "from-env", 1);
  auto from_env = name_of(orders_url_, "emporium-orders-write");
  ::unsetenv("PGAPPNAME");
  EXPECT_EQ(from_env, "from-env");
  EXPECT_EQ(name_of(orders_url_, ""), "");
}

// A released or shipped reservation is deleted by its item's write, not kept as history; a write
// refused by its version check deletes nothing.
TEST_P(Persistence, FinishedReservationsAreDeletedByTheirItemsWrite) {
  auto session = connect(inventory_url_);
  auto& s = *session;
  migrate(s, GetParam(), Database::inventory);
  auto held = [](const std::string& order, std::int64_t quantity) {
    return ReservationRecord{"mug", order, quantity, ReservationState::held, 9000};
  };
  ASSERT_TRUE(save_item(s, {"mug", "Mug", 1999, "USD", 10, 4, 1}, 0,
                        {held("ord_a", 2), held("ord_b", 1), held("ord_c", 1)}));
  auto released_a = held("ord_a", 2);
  released_a.state = ReservationState::released;
  auto shipped_b = held("ord_b", 1);
  shipped_b.state = ReservationState::shipped;
  auto released_c = held("ord_c", 1);
  released_c.state = ReservationState::released;
  auto committed_d = held("ord_d", 3);
  committed_d.state = ReservationState::committed;
  std::vector<EntityWrite> writes{
      ItemWrite{{"mug", "Mug", 1999, "USD", 9, 4, 2}, 1, {released_a, shipped_b, committed_d}},
      ItemWrite{{"mug", "Mug", 1999, "USD", 9, 3, 8}, 7, {released_c}},  // stale
  };
  EXPECT_EQ(save_batch(s, writes), (std::vector<bool>{true, false}));
  long long rows = 0;
  s << "SELECT COUNT(*) FROM reservations", soci::into(rows);
  EXPECT_EQ(rows, 2);
  auto mug = load_item(s, "mug");
  ASSERT_TRUE(mug);
  ASSERT_EQ(mug->reservations.size(), 2u);
  EXPECT_EQ(mug->reservations[0].order_id, "ord_c");
  EXPECT_EQ(mug->reservations[0].state, ReservationState::held);
  EXPECT_EQ(mug->reservations[1].order_id, "ord_d");
  EXPECT_EQ(mug->reservations[1].state, ReservationState::committed);
  // One by one (as SQLite writes, and PostgreSQL outside a batch) too.
  released_c.expires_at_ms = 0;
  EXPECT_TRUE(save_item(s, {"mug", "Mug", 1999, "USD", 9, 3, 3}, 2, {released_c}));
  s << "SELECT COUNT(*) FROM reservations", soci::into(rows);
  EXPECT_EQ(rows, 1);
}

TEST_P(Persistence, OrderUpdatesAreFencedByVersion) {
  auto session = connect(orders_url_);
  auto& s = *session;
  migrate(s, GetParam(), Database::orders);
  auto rec = sample_order("ord_1", 1);
  ASSERT_TRUE(save_order(s, rec, 0, true));
  rec.status = "reserved";
  rec.version = 2;
  EXPECT_TRUE(save_order(s, rec, 1, false));
  auto stale = rec;
  stale.status = "cancelled";
  EXPECT_FALSE(save_order(s, stale, 1, false));  // an older owner writing late
  auto loaded = load_order(s, "ord_1");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->status, "reserved");
  EXPECT_EQ(loaded->version, 2);
  ASSERT_EQ(loaded->lines.size(), 2u);
  EXPECT_EQ(loaded->lines[0].sku, "mug");
  EXPECT_EQ(loaded->lines[1].unit_price_cents, 250);
  EXPECT_EQ(unfinished_orders(s, INT64_MAX, "", 10), std::vector<std::string>{"ord_1"});
}

// The recovery sweep reads unfinished orders a page at a time: in id order, after a cursor, at
// most `limit`; finished and recently changed ones are left out.
TEST_P(Persistence, UnfinishedOrdersComeInPagesAfterACursor) {
  auto session = connect(orders_url_);
  auto& s = *session;
  migrate(s, GetParam(), Database::orders);
  for (int i = 1; i <= 5; ++i) {
    auto rec = sample_order("ord_" + std::to_string(i), 1);
    rec.status = i == 3 ? "confirmed" : "pending";
    rec.updated_at_ms = i == 5 ? 2'000 : 1'000;
    ASSERT_TRUE(save_order(s, rec, 0, true));
  }
  using ids = std::vector<std::string>;
  EXPECT_EQ(unfinished_orders(s, 1'500, "", 2), (ids{"ord_1", "ord_2"}));
  EXPECT_EQ(unfinished_orders(s, 1'500, "ord_2", 2), (ids{"ord_4"}));
  EXPECT_EQ(unfinished_orders(s, 1'500, "ord_4", 2), ids{});
  EXPECT_EQ(unfinished_orders(s, 2'001, "", 10), (ids{"ord_1", "ord_2", "ord_4", "ord_5"}));
  EXPECT_EQ(unfinished_orders(s, 2'001, "", 1), ids{"ord_1"});
}

TEST_P(Persistence, ItemAndReservationsRoundTripWithVersionCheck) {
  auto session = connect(inventory_url_);
  auto& s = *session;
  migrate(s, GetParam(), Database::inventory);
  ItemRecord item{"mug", "Mug", 1999, "USD", 10, 3, 1};
  ReservationRecord held{"mug", "ord_1", 3, ReservationState::held, 5000};
  ASSERT_TRUE(save_item(s, item, 0, {held}));
  item.reserved = 0;
  item.version = 2;
  held.state = ReservationState::released;
  EXPECT_TRUE(save_item(s, item, 1, {held}));
  EXPECT_FALSE(save_item(s, item, 1, {}));
  auto loaded = load_item(s, "mug");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->item.reserved, 0);
  EXPECT_EQ(loaded->item.version, 2);
  EXPECT_TRUE(loaded->reservations.empty());  // released ones are not active
  EXPECT_FALSE(load_item(s, "none"));
}

TEST_P(Persistence, IdempotencyKeysKeepTheFirstAnswerAndArePurgedAfterTheirTime) {
  auto session = connect(orders_url_);
  auto& s = *session;
  migrate(s, GetParam(), Database::orders);
  save_idempotency(s, {"alice", "k1", "h1", 201, "{\"first\":true}", 1'000, "application/json"});
  save_idempotency(s, {"alice", "k1", "h2", 409, "{}", 2'000, "application/problem+json"});  // a second answer never replaces it
  save_idempotency(s, {"alice", "k2", "h3", 402, "{}", 50'000, "application/json"});
  auto first = load_idempotency(s, "alice", "k1");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 201);
  EXPECT_EQ(first->request_hash, "h1");
  EXPECT_EQ(first->content_type, "application/json");
  EXPECT_EQ(load_idempotency(s, "alice", "k2")->content_type, "application/json");
  // A row stored before the content type was kept (migration 4) has none.
  s << "INSERT INTO idempotency_keys (customer_id, idem_key, request_hash, status, response_body, "
       "created_at_ms) VALUES ('carol', 'old', 'h4', 409, '{}', 50000)";
  auto old = load_idempotency(s, "carol", "old");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->status, 409);
  EXPECT_EQ(old->content_type, "");
  s << "DELETE FROM idempotency_keys WHERE customer_id = 'carol'";
  EXPECT_FALSE(load_idempotency(s, "bob", "k1"));
  EXPECT_EQ(purge_idempotency(s, 10'000), 1);
  EXPECT_FALSE(load_idempotency(s, "alice", "k1"));
  EXPECT_TRUE(load_idempotency(s, "alice", "k2"));
  // At its edge: a key exactly as old as the cutoff is kept, one millisecond older is dropped.
  EXPECT_EQ(purge_idempotency(s, 50'000), 0);
  EXPECT_TRUE(load_idempotency(s, "alice", "k2"));
  EXPECT_EQ(purge_idempotency(s, 50'001), 1);
  EXPECT_FALSE(load_idempotency(s, "alice", "k2"));
}

TEST_P(Persistence, AnIdempotencyKeyIsClaimedOnceAndItsAnswerStoredOverTheClaim) {
  auto session = connect(orders_url_);
  auto& s = *session;
  migrate(s, GetParam(), Database::orders);
  IdempotencyRecord claim{"alice", "k1", "h1", 0, "", 1'000, "", "ord_first"};
  EXPECT_FALSE(claim_idempotency(s, claim));  // claimed
  // The same key again (another node, a retry): the claim, running, with its order.
  auto again = claim;
  again.order_id = "ord_second";
  again.created_at_ms = 2'000;
  auto found = claim_idempotency(s, again);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->status, 0);
  EXPECT_EQ(found->order_id, "ord_first");
  EXPECT_EQ(found->created_at_ms, 1'000);
  EXPECT_EQ(found->request_hash, "h1");
  // Another request's answer never lands on it; this one's does, and then stays.
  save_idempotency(s, {"alice", "k1", "h2", 201, "{\"other\":1}", 3'000, "application/json", "ord_x"});
  EXPECT_EQ(load_idempotency(s, "alice", "k1")->status, 0);
  save_idempotency(s, {"alice", "k1", "h1", 402, "{\"first\":1}", 3'000, "application/json", "ord_first"});
  save_idempotency(s, {"alice", "k1", "h1", 201, "{\"late\":1}", 4'000, "application/json", "ord_first"});
  auto stored = load_idempotency(s, "alice", "k1");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->status, 402);
  EXPECT_EQ(stored->response_body, "{\"first\":1}");
  EXPECT_EQ(stored->order_id, "ord_first");
  EXPECT_EQ(stored->created_at_ms, 1'000);  // kept from the claim: the key's age
  // A finished record is not dropped as a claim; a running claim of its order is, and only that.
  drop_idempotency_claim(s, "alice", "k1", "ord_first");
  EXPECT_TRUE(load_idempotency(s, "alice", "k1"));
  EXPECT_FALSE(claim_idempotency(s, {"alice", "k2", "h3", 0, "", 5'000, "", "ord_third"}));
  drop_idempotency_claim(s, "alice", "k2", "ord_other");
  EXPECT_TRUE(load_idempotency(s, "alice", "k2"));
  drop_idempotency_claim(s, "alice", "k2", "ord_third");
  EXPECT_FALSE(load_idempotency(s, "alice", "k2"));
  EXPECT_FALSE(claim_idempotency(s, {"alice", "k2", "h4", 0, "", 6'000, "", "ord_fourth"}));  // anew
  EXPECT_EQ(load_idempotency(s, "alice", "k2")->order_id, "ord_fourth");
}

// database.idle_in_transaction_ms at its edge: a transaction whose client pauses past the limit
// (a node stopped mid-write) is ended by the server and its row locks are freed for the others;
// one that pauses less survives.
TEST_P(Persistence, ATransactionLeftOpenPastTheLimitLosesItsLocks) {
  if (GetParam() != Backend::postgresql) GTEST_SKIP() << "a PostgreSQL session setting";
  auto url = *parse_db_url(orders_url_);
  soci::session paused;
  open_session(paused, url, 300);
  migrate(paused, GetParam(), Database::orders);
  auto rec = sample_order("ord_stall", 1);
  ASSERT_TRUE(save_order(paused, rec, 0, true));
  auto next = rec;
  next.version = 2;
  {
    soci::transaction brief(paused);
    ASSERT_TRUE(save_order(paused, next, 1, false));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // under the limit
    EXPECT_NO_THROW(brief.commit());
  }
  auto third = next;
  third.version = 3;
  third.status = "reserved";
  soci::transaction stalled(paused);
  ASSERT_TRUE(save_order(paused, third, 2, false));  // holds the row's lock
  std::this_thread::sleep_for(std::chrono::milliseconds(900));  // past the limit
  soci::session other;
  open_session(other, url, 300);
  other << "SET lock_timeout = '5s'";  // were the lock still held, this fails instead of hanging
  auto theirs = next;
  theirs.version = 3;
  theirs.status = "cancelled";
  EXPECT_TRUE(save_order(other, theirs, 2, false));  // the stalled write was rolled back
  EXPECT_ANY_THROW(stalled.commit());
  EXPECT_EQ(load_order(other, "ord_stall")->status, "cancelled");
}

TEST_P(Persistence, StockConstraintsHoldInTheDatabaseToo) {
  auto session = connect(inventory_url_);
  auto& s = *session;
  migrate(s, GetParam(), Database::inventory);
  ItemRecord broken{"mug", "Mug", 1999, "USD", 2, 5, 1};  // reserved above on_hand
  EXPECT_THROW(save_item(s, broken, 0, {}), soci::soci_error);
}

// A batch of entity writes (the group commit's path): on PostgreSQL a few multi-row statements,
// on SQLite one write at a time; the outcomes and rows must be the same.
TEST_P(Persistence, EntityWriteBatchesCheckVersionsAndChainWritesToOneEntity) {
  auto orders_session = connect(orders_url_);
  auto& s = *orders_session;
  migrate(s, GetParam(), Database::orders);
  ASSERT_TRUE(save_order(s, sample_order("ord_x", 1), 0, true));
  ASSERT_TRUE(save_order(s, sample_order("ord_b", 1), 0, true));

  auto a1 = sample_order("ord_a", 1);
  auto a2 = a1;
  a2.status = "reserved";
  a2.version = 2;
  a2.lines[0].unit_price_cents = 2100;  // prices known after the reservation
  a2.payment = PaymentRecord{"pay_1", "ord_a", "pending", "", "visa", "4242", 12, 2030, "", 4450, "USD", 1};
  auto x_again = sample_order("ord_x", 1);
  x_again.lines = {{"cup", 3, 500}};  // lost with its row: the stored lines stay
  auto x_next = sample_order("ord_x", 2);
  x_next.status = "reserved";
  x_next.lines = x_again.lines;  // the segment writes the last state of the two
  auto b_stale = sample_order("ord_b", 6);
  auto c1 = sample_order("ord_c", 1);
  c1.payment = PaymentRecord{"pay_c", "ord_c", "pending", "", "visa", "4242", 1, 2031, "", 4248, "USD", 1};
  auto b_intent = b_stale;
  b_intent.payment = PaymentRecord{"pay_b", "ord_b", "pending", "", "visa", "4242", 1, 2031, "", 1, "USD", 1};
  auto pay = *a2.payment;
  auto pay_captured = pay;
  pay_captured.status = "captured";
  pay_captured.provider_ref = "sim_1";
  pay_captured.version = 2;
  std::vector<EntityWrite> writes{
      OrderWrite{a1, 0, true},           // 0 insert
      OrderWrite{a2, 1, true},           // 1 chains on 0: one write of the last state
      OrderWrite{x_again, 0, true},      // 2 insert over an existing row: lost
      OrderWrite{x_next, 1, false},      // 3 chains on 2, so falls with it
      OrderWrite{b_stale, 5, false},     // 4 stale version
      PaymentWrite{pay, 0},              // 5 insert
      PaymentWrite{pay_captured, 1},     // 6 chains on 5
      OrderWrite{c1, 0, true, true},     // 7 insert with its payment's intent
      OrderWrite{b_intent, 5, true, true},  // 8 stale: its intent is not written either
  };
  EXPECT_EQ(save_batch(s, writes),
            (std::vector<bool>{true, true, false, false, false, true, true, true, false}));
  auto c = load_order(s, "ord_c");
  ASSERT_TRUE(c && c->payment);
  EXPECT_EQ(c->payment->status, "pending");
  EXPECT_EQ(c->payment->exp_year, 2031);
  EXPECT_EQ(c->lines.size(), 2u);
  EXPECT_FALSE(load_payment(s, "pay_b"));
  auto a = load_order(s, "ord_a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->status, "reserved");
  EXPECT_EQ(a->version, 2);
  ASSERT_EQ(a->lines.size(), 2u);
  EXPECT_EQ(a->lines[0].sku, "mug");
  EXPECT_EQ(a->lines[0].unit_price_cents, 2100);
  EXPECT_EQ(a->lines[1].sku, "pen");
  ASSERT_TRUE(a->payment);
  EXPECT_EQ(a->payment->status, "captured");
  EXPECT_EQ(a->payment->provider_ref, "sim_1");
  EXPECT_EQ(a->payment->version, 2);
  auto x = load_order(s, "ord_x");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->status, "pending");
  EXPECT_EQ(x->version, 1);
  ASSERT_EQ(x->lines.size(), 2u);
  EXPECT_EQ(x->lines[0].sku, "mug");
  EXPECT_EQ(x->lines[0].quantity, 2);
  EXPECT_EQ(x->lines[1].sku, "pen");
  EXPECT_EQ(load_order(s, "ord_b")->version, 1);

  // In one statement, an update that applies rewrites its order's lines, and a stale one writes
  // none of its own.
  auto a3 = *a;
  a3.version = 3;
  a3.lines = {{"cup", 1, 500}};
  auto b_other = sample_order("ord_b", 8);
  b_other.lines = {{"cup", 4, 500}};
  std::vector<EntityWrite> relined{OrderWrite{a3, 2, true}, OrderWrite{b_other, 7, true}};
  EXPECT_EQ(save_batch(s, relined), (std::vector<bool>{true, false}));
  a = load_order(s, "ord_a");
  ASSERT_TRUE(a);
  ASSERT_EQ(a->lines.size(), 1u);
  EXPECT_EQ(a->lines[0].sku, "cup");
  auto b = load_order(s, "ord_b");
  ASSERT_TRUE(b);
  ASSERT_EQ(b->lines.size(), 2u);
  EXPECT_EQ(b->lines[0].sku, "mug");
  EXPECT_EQ(b->lines[0].quantity, 2);

  auto inventory_session = connect(inventory_url_);
  auto& inv = *inventory_session;
  migrate(inv, GetParam(), Database::inventory);
  ASSERT_TRUE(save_item(inv, {"mug", "Mug", 1999, "USD", 10, 0, 1}, 0, {}));
  ASSERT_TRUE(save_item(inv, {"cup", "Cup", 500, "USD", 5, 0, 1}, 0, {}));
  ReservationRecord held_a{"mug", "ord_a", 2, ReservationState::held, 9000};
  auto committed_a = held_a;
  committed_a.state = ReservationState::committed;
  committed_a.expires_at_ms = 0;
  ReservationRecord held_c{"mug", "ord_c", 1, ReservationState::held, 9000};
  // A write that loses its version check writes none of its reservations, nor deletes any.
  auto released_c = held_c;
  released_c.state = ReservationState::released;
  ReservationRecord held_z{"cup", "ord_z", 1, ReservationState::held, 9000};
  std::vector<EntityWrite> items{
      ItemWrite{{"mug", "Mug", 1999, "USD", 10, 2, 2}, 1, {held_a}},               // 0
      ItemWrite{{"mug", "Mug", 1999, "USD", 10, 3, 3}, 2, {committed_a, held_c}},  // 1 chains on 0
      ItemWrite{{"mug", "Mug", 1999, "USD", 10, 0, 5}, 4, {released_c}},           // 2 stale
      ItemWrite{{"pen", "Pen", 250, "USD", 7, 0, 1}, 0, {}},                       // 3 insert
      ItemWrite{{"cup", "Cup", 500, "USD", 9, 1, 6}, 5, {held_z}},                 // 4 stale
      ItemWrite{{"cup", "Cup", 500, "USD", 8, 0, 2}, 1, {}},  // 5 checked after 4 failed: applies
  };
  EXPECT_EQ(save_batch(inv, items), (std::vector<bool>{true, true, false, true, false, true}));
  auto mug = load_item(inv, "mug");
  ASSERT_TRUE(mug);
  EXPECT_EQ(mug->item.version, 3);
  EXPECT_EQ(mug->item.reserved, 3);
  ASSERT_EQ(mug->reservations.size(), 2u);
  EXPECT_EQ(mug->reservations[0].order_id, "ord_a");
  EXPECT_EQ(mug->reservations[0].state, ReservationState::committed);
  EXPECT_EQ(mug->reservations[1].order_id, "ord_c");
  EXPECT_EQ(mug->reservations[1].state, ReservationState::held);
  EXPECT_EQ(load_item(inv, "pen")->item.on_hand, 7);
  EXPECT_EQ(load_item(inv, "cup")->item.on_hand, 8);
  EXPECT_EQ(load_item(inv, "cup")->item.version, 2);
  EXPECT_TRUE(load_item(inv, "cup")->reservations.empty());

  // A committed reservation is written over its stored held row, and a held one over a stored
  // committed row.
  auto committed_c = held_c;
  committed_c.state = ReservationState::committed;
  committed_c.expires_at_ms = 0;
  auto held_a_again = held_a;
  held_a_again.quantity = 1;
  held_a_again.expires_at_ms = 9500;
  std::vector<EntityWrite> later{
      ItemWrite{{"mug", "Mug", 1999, "USD", 10, 2, 4}, 3, {committed_c, held_a_again}}};
  EXPECT_EQ(save_batch(inv, later), (std::vector<bool>{true}));
  mug = load_item(inv, "mug");
  ASSERT_TRUE(mug);
  ASSERT_EQ(mug->reservations.size(), 2u);
  EXPECT_EQ(mug->reservations[0].order_id, "ord_a");
  EXPECT_EQ(mug->reservations[0].state, ReservationState::held);
  EXPECT_EQ(mug->reservations[0].quantity, 1);
  EXPECT_EQ(mug->reservations[0].expires_at_ms, 9500);
  EXPECT_EQ(mug->reservations[1].order_id, "ord_c");
  EXPECT_EQ(mug->reservations[1].state, ReservationState::committed);
  EXPECT_EQ(mug->reservations[1].expires_at_ms, 0);
}

// A plan lives as long as its prepared statement, and one made while the orders table was
// analysed empty scans the whole table at every run. Statements are prepared again after
// `runs_per_plan` runs, so that a later plan is made for the table as it has grown. The old ones are
// deallocated on the server, and the writes go on being applied and fenced as before.
TEST_P(Persistence, BatchStatementsArePreparedAgainAfterTheirRuns) {
  if (GetParam() != Backend::postgresql) GTEST_SKIP() << "a PostgreSQL statement cache";
  auto session = connect(orders_url_);
  auto& s = *session;
  migrate(s, GetParam(), Database::orders);
  s << "ANALYZE orders";  // empty: the first plans are made for an empty table
  StatementCache cache(s, 4);
  auto run = [&](const OrderRecord& rec, std::int64_t expected) {
    OrderWrite write{rec, expected, expected == 0};
    EntityWrite entity = write;
    std::vector<const EntityWrite*> batch{&entity};
    soci::transaction tx(s);
    auto applied = save_entities(s, batch, &cache);
    tx.commit();
    return static_cast<bool>(applied.at(0));  // not vector<bool>'s proxy into `applied`
  };
  auto rec = sample_order("ord_p", 1);
  ASSERT_TRUE(run(rec, 0));  // the insert statement: prepared once
  for (std::int64_t v = 2; v <= 10; ++v) {  // nine runs of the update statement, 4 per plan
    rec.version = v;
    ASSERT_TRUE(run(rec, v - 1)) << v;
  }
  EXPECT_EQ(cache.prepares(), 1 + 3);
  rec.version = 11;
  EXPECT_FALSE(run(rec, 9));  // fenced: the stored version is 10
  EXPECT_EQ(load_order(s, "ord_p")->version, 10);
  int on_server = 0;
  s << "SELECT count(*) FROM pg_prepared_statements", soci::into(on_server);
  EXPECT_EQ(on_server, 2);  // the insert and the update, not the update's earlier plans
}

// An order update written with its decided payment, on both backends: both rows; neither when the
// payment's version check fails; the order when the payment is already stored as given; the
// payment alone when the order's own check fails (a capture the provider made is kept, and the
// recovery then confirms the order).
TEST_P(Persistence, AnOrderIsWrittenWithItsPaymentOnlyIfThePaymentIsWritten) {
  auto session = connect(orders_url_);
  auto& s = *session;
  migrate(s, GetParam(), Database::orders);
  auto place = [&](const std::string& id) {
    auto rec = sample_order(id, 1);
    rec.payment = PaymentRecord{"pay_" + id, id, "pending", "", "visa", "4242", 12, 2030, "", 4248, "USD", 1};
    EntityWrite w = OrderWrite{rec, 0, true, true};
    std::vector<const EntityWrite*> batch{&w};
    EXPECT_EQ(save_entities(s, batch), std::vector<bool>{true});
    return rec;
  };
  auto captured = [](const OrderRecord& rec, std::int64_t version) {
    auto p = *rec.payment;
    p.status = "captured";
    p.provider_ref = "ref_" + p.id;
    p.version = version;
    return p;
  };
  auto confirm = [&](OrderRecord rec, std::int64_t expected, std::int64_t payment_version) {
    auto p = captured(rec, payment_version);
    rec.status = "confirmed";
    rec.version = expected + 1;
    return OrderWrite{rec, expected, false, false, p};
  };
  auto a = place("ord_a"), b = place("ord_b"), c = place("ord_c"), d = place("ord_d");
  ASSERT_TRUE(save_payment(s, captured(c, 2), 1));  // stored already, as given below
  std::vector<EntityWrite> writes{
      confirm(a, 1, 2),  // the payment's next version: both
      confirm(b, 1, 3),  // a version ahead of the stored payment: neither
      confirm(c, 1, 2),  // the payment stored as given: the order
      confirm(d, 5, 2),  // a stale order version: the payment only
  };
  std::vector<const EntityWrite*> batch;
  for (auto& w : writes) batch.push_back(&w);
  EXPECT_EQ(save_entities(s, batch), (std::vector<bool>{true, false, true, false}));
  auto order = [&](const std::string& id) { return load_order(s, id).value_or(OrderRecord{}); };
  auto payment = [&](const std::string& id) { return load_payment(s, id).value_or(PaymentRecord{}); };
  EXPECT_EQ(order("ord_a").status, "confirmed");
  EXPECT_EQ(payment("pay_ord_a").status, "captured");
  EXPECT_EQ(payment("pay_ord_a").provider_ref, "ref_pay_ord_a");
  EXPECT_EQ(payment("pay_ord_a").version, 2);
  EXPECT_EQ(order("ord_b").status, "pending");
  EXPECT_EQ(order("ord_b").version, 1);
  EXPECT_EQ(payment("pay_ord_b").status, "pending");
  EXPECT_EQ(order("ord_c").status, "confirmed");
  EXPECT_EQ(payment("pay_ord_c").version, 2);
  EXPECT_EQ(order("ord_d").status, "pending");
  EXPECT_EQ(payment("pay_ord_d").status, "captured");
}

// A statement due to be prepared again while a run of it waits in the same pipeline (two rounds of
// one kind in one batch) is prepared again only after the pipeline ran: the waiting run still
// finds the statement it was queued with.
TEST_P(Persistence, AStatementIsNotPreparedAgainWhileARunOfItWaits) {
  if (GetParam() != Backend::postgresql) GTEST_SKIP() << "a PostgreSQL statement cache";
  auto session = connect(orders_url_);
  auto& s = *session;
  migrate(s, GetParam(), Database::orders);
  StatementCache cache(s, 1);  // every statement is due again after one run
  auto rec = sample_order("ord_q", 1);
  EntityWrite insert = OrderWrite{rec, 0, true};
  std::vector<const EntityWrite*> first{&insert};
  ASSERT_EQ(save_entities(s, first, &cache), std::vector<bool>{true});
  rec.version = 2;
  // The second write does not chain to the first: a second round, the same update statement.
  std::vector<EntityWrite> writes{OrderWrite{rec, 1, false}, OrderWrite{rec, 1, false}};
  std::vector<const EntityWrite*> batch{&writes[0], &writes[1]};
  EXPECT_EQ(save_entities(s, batch, &cache), (std::vector<bool>{true, false}));
  EXPECT_EQ(cache.prepares(), 2);  // the insert and the update, each once so far
  rec.version = 3;
  EntityWrite next = OrderWrite{rec, 2, false};
  std::vector<const EntityWrite*> last{&next};
  EXPECT_EQ(save_entities(s, last, &cache), std::vector<bool>{true});
  EXPECT_EQ(cache.prepares(), 3);  // the update, due since its first run, prepared again now
  EXPECT_EQ(load_order(s, "ord_q")->version, 3);
}

// A batch's statements reach PostgreSQL in one pipeline with one Sync: one transaction. When a
// later statement fails, what the earlier ones wrote is not kept, and the connection goes on.
TEST_P(Persistence, ABatchIsAppliedWhollyOrNotAtAll) {
  if (GetParam() != Backend::postgresql) GTEST_SKIP() << "a PostgreSQL pipeline";
  auto session = connect(inventory_url_);
  auto& s = *session;
  migrate(s, GetParam(), Database::inventory);
  ASSERT_TRUE(save_item(s, {"mug", "Mug", 1999, "USD", 10, 0, 1}, 0, {}));
  // The insert statement runs first and succeeds; the update then breaks the stock constraint.
  std::vector<EntityWrite> writes{ItemWrite{{"cup", "Cup", 500, "USD", 5, 0, 1}, 0, {}},
                                  ItemWrite{{"mug", "Mug", 1999, "USD", 10, 11, 2}, 1, {}}};
  std::vector<const EntityWrite*> batch{&writes[0], &writes[1]};
  StatementCache cache(s);
  EXPECT_THROW(save_entities(s, batch, &cache), soci::soci_error);
  EXPECT_FALSE(load_item(s, "cup"));
  EXPECT_EQ(load_item(s, "mug")->item.version, 1);
  std::vector<const EntityWrite*> good{&writes[0]};
  EXPECT_EQ(save_entities(s, good, &cache), std::vector<bool>{true});
  EXPECT_EQ(load_item(s, "cup")->item.on_hand, 5);
}

// A batch sent on a connection the server has closed fails as a lost connection (SQLSTATE class
// 08 or 57P), which the persistence actor answers with db_unavailable and reconnects on.
TEST_P(Persistence, ABatchOnALostConnectionFailsAsALostConnection) {
  if (GetParam() != Backend::postgresql) GTEST_SKIP() << "a PostgreSQL pipeline";
  auto session = connect(orders_url_);
  auto& s = *session;
  migrate(s, GetParam(), Database::orders);
  StatementCache cache(s);
  auto insert = [&](const std::string& id) {
    EntityWrite write = OrderWrite{sample_order(id, 1), 0, true};
    std::vector<const EntityWrite*> batch{&write};
    return save_entities(s, batch, &cache);
  };
  ASSERT_EQ(insert("ord_1"), std::vector<bool>{true});  // the insert statement is prepared now
  int pid = 0;
  s << "SELECT pg_backend_pid()", soci::into(pid);
  auto admin = connect(orders_url_);
  int terminated = 0;
  *admin << "SELECT CAST(pg_terminate_backend(" + std::to_string(pid) + ", 5000) AS int)",
      soci::into(terminated);
  ASSERT_EQ(terminated, 1);
  try {
    insert("ord_2");
    FAIL() << "a batch on a closed connection succeeded";
  } catch (const soci::postgresql_soci_error& e) {
    auto state = e.sqlstate();
    EXPECT_TRUE(state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0) << state << ": " << e.what();
  }
  EXPECT_FALSE(load_order(*admin, "ord_2"));
}

// Text that PostgreSQL's array syntax would otherwise take apart arrives as written.
TEST_P(Persistence, EntityWriteBatchesKeepAwkwardText) {
  auto session = connect(inventory_url_);
  auto& s = *session;
  migrate(s, GetParam(), Database::inventory);
  std::string name = "Mug \"large\", {blue} \\ NULL; 'quoted' \u00e9";
  std::vector<EntityWrite> items{ItemWrite{{"mug", name, 1999, "USD", 10, 0, 1}, 0, {}},
                                 ItemWrite{{"cup", "", 500, "USD", 5, 0, 1}, 0, {}},
                                 ItemWrite{{"jug", "\"\"\\\\\"x\\", INT64_MAX, "USD", 0, 0, 1}, 0, {}}};
  std::vector<const EntityWrite*> batch{&items[0], &items[1], &items[2]};
  soci::transaction tx(s);
  EXPECT_EQ(save_entities(s, batch), (std::vector<bool>{true, true, true}));
  tx.commit();
  EXPECT_EQ(load_item(s, "mug")->item.name, name);
  EXPECT_EQ(load_item(s, "cup")->item.name, "");
  EXPECT_EQ(load_item(s, "jug")->item.name, "\"\"\\\\\"x\\");
  EXPECT_EQ(load_item(s, "jug")->item.price_cents, INT64_MAX);
}

class PersistenceActor : public Persistence {
 protected:
  void SetUp() override {
    Persistence::SetUp();
    caf_config_.set("scheduler.max-threads", size_t{2});
    system_ = std::make_unique<caf::actor_system>(caf_config_);
  }
  void TearDown() override {
    for (auto& a : actors_) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    actors_.clear();
    system_->await_all_actors_done();
    system_.reset();
    Persistence::TearDown();
  }
  caf::actor spawn(const std::string& url, Database db, std::int64_t batch_size_max = 256,
                   std::int64_t linger_us = 0) {
    actors_.push_back(spawn_persistence(*system_, {url, db, batch_size_max, 200, true, 2000, linger_us}));
    return actors_.back();
  }

  // Keeps `db` busy with a write that takes `ms`, and returns once it has begun: what is sent
  // meanwhile waits in the mailbox and makes up the next batch, whole.
  void block(const caf::actor& db, int ms) {
    auto started = std::make_shared<std::promise<void>>();
    auto begun = started->get_future();
    caf::anon_send(db, db_write{[started, ms](soci::session&) {
                     started->set_value();
                     std::this_thread::sleep_for(std::chrono::milliseconds(ms));
                     return true;
                   }});
    begun.wait();
  }

  // Inserts order `id` after `delay_ms`; the future has the outcome (as fire's) and when it came,
  // in ms from the call.
  std::future<std::pair<int, double>> insert_later(const caf::actor& db, const std::string& id, int delay_ms) {
    auto done = std::make_shared<std::promise<std::pair<int, double>>>();
    auto out = done->get_future();
    auto start = std::chrono::steady_clock::now();
    auto rec = sample_order(id, 1);
    system_->spawn([=](caf::event_based_actor* self) -> caf::behavior {
      auto since = [start] { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count(); };
      self->delayed_send(self, std::chrono::milliseconds(delay_ms), flush_atom::value);
      return {[=](flush_atom) {
        self->request(db, std::chrono::seconds(30), db_save{OrderWrite{rec, 0, true}})
            .then([=](bool applied) { done->set_value({applied ? 1 : 0, since()}); self->quit(); },
                  [=](caf::error&) { done->set_value({-1, since()}); self->quit(); });
      }};
    });
    return out;
  }
  // Sends every write at once (from an event-based actor, so none waits for another) and
  // returns each outcome: 1 applied, 0 version conflict, -1 error.
  template <class Write>
  std::vector<int> fire(const caf::actor& db, std::vector<Write> writes) {
    auto done = std::make_shared<std::promise<std::vector<int>>>();
    system_->spawn([db, writes = std::move(writes), done](caf::event_based_actor* self) {
      auto out = std::make_shared<std::vector<int>>(writes.size(), -2);
      auto left = std::make_shared<size_t>(writes.size());
      for (size_t i = 0; i < writes.size(); ++i)
        self->request(db, std::chrono::seconds(30), writes[i])
            .then(
                [=](bool applied) {
                  (*out)[i] = applied ? 1 : 0;
                  if (--*left == 0) done->set_value(*out);
                },
                [=](caf::error& e) {
                  (*out)[i] = code_of(e) == errc::db_failed ? -1 : -3;
                  if (--*left == 0) done->set_value(*out);
                });
    });
    return done->get_future().get();
  }

  CommitStats stats(const caf::actor& db) {
    caf::scoped_actor self{*system_};
    CommitStats out;
    self->request(db, std::chrono::seconds(5), stats_atom::value).receive([&](CommitStats& s) { out = s; }, [](caf::error& e) { ADD_FAILURE() << "stats or passivate: " << caf::to_string(e); });
    return out;
  }

  // The item as stored, read through `db`.
  std::optional<ItemState> stored_item(const caf::actor& db, const std::string& sku) {
    auto loaded = std::make_shared<std::optional<ItemState>>();
    caf::scoped_actor self{*system_};
    self->request(db, std::chrono::seconds(5), db_read{[loaded, sku](soci::session& s) { *loaded = load_item(s, sku); }})
        .receive([](bool) {}, [](caf::error& e) { FAIL() << caf::to_string(e); });
    return *loaded;
  }

  caf::actor_system_config caf_config_;
  std::unique_ptr<caf::actor_system> system_;
  std::vector<caf::actor> actors_;
};

// A reading connection beside the writers (snapshot_reads) runs each read in one snapshot: a commit
// made by another connection between two of its statements is not seen by the second. Without
// it, PostgreSQL's read committed lets the second statement see it.
TEST_P(PersistenceActor, ASnapshotReadDoesNotSeeACommitBetweenItsStatements) {
  if (GetParam() != Backend::postgresql) GTEST_SKIP() << "PostgreSQL only (a SQLite file has one connection)";
  auto writer = connect(orders_url_);
  migrate(*writer, GetParam(), Database::orders);
  auto counts = [&](bool snapshot) {
    actors_.push_back(spawn_persistence(*system_, {orders_url_, Database::orders, 256, 200, false, 2000, 0, snapshot}));
    auto reader = actors_.back();
    auto seen = std::make_shared<std::pair<long long, long long>>();
    auto id = std::string(snapshot ? "ord_s" : "ord_n");
    caf::scoped_actor self{*system_};
    self->request(reader, std::chrono::seconds(10), db_read{[&, seen, id](soci::session& s) {
                    s << "SELECT COUNT(*) FROM orders", soci::into(seen->first);
                    save_order(*writer, sample_order(id, 1), 0, true);  // commits on its own
                    s << "SELECT COUNT(*) FROM orders", soci::into(seen->second);
                  }})
        .receive([](bool) {}, [](caf::error& e) { FAIL() << caf::to_string(e); });
    return *seen;
  };
  auto snapshot = counts(true);
  EXPECT_EQ(snapshot.first, snapshot.second);
  auto plain = counts(false);
  EXPECT_EQ(plain.second, plain.first + 1);
}

TEST_P(PersistenceActor, ConcurrentWritesShareCommits) {
  auto db = spawn(orders_url_, Database::orders);
  constexpr int writes = 200;
  std::vector<db_write> batch;
  for (int i = 0; i < writes; ++i) {
    auto rec = sample_order("ord_" + std::to_string(i), 1);
    batch.push_back(db_write{[rec](soci::session& s) { return save_order(s, rec, 0, true); }});
  }
  auto outcomes = fire(db, std::move(batch));
  EXPECT_EQ(std::count(outcomes.begin(), outcomes.end(), 1), writes);
  caf::scoped_actor self{*system_};
  auto st = stats(db);
  EXPECT_EQ(st.writes, writes);
  EXPECT_LT(st.batches, writes);  // one transaction served several writers
  EXPECT_GT(st.batch_size_max_seen, 1);
  EXPECT_GT(st.commit_seconds_max, 0);
  EXPECT_LE(st.commit_seconds_max, st.commit_seconds_total);
  auto count = std::make_shared<long long>(0);
  self->request(db, std::chrono::seconds(5), db_read{[count](soci::session& s) { s << "SELECT COUNT(*) FROM orders", soci::into(*count); }})
      .receive([](bool) {}, [](caf::error& e) { FAIL() << caf::to_string(e); });
  EXPECT_EQ(*count, writes);
}

// The slowest batch is reported (and logged past kSlowBatchMs): here a write that holds its batch
// for 150 ms.
TEST_P(PersistenceActor, TheSlowestCommitIsReported) {
  auto db = spawn(orders_url_, Database::orders);
  std::vector<db_write> batch;
  batch.push_back(db_write{[](soci::session&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    return true;
  }});
  EXPECT_EQ(fire(db, std::move(batch)), std::vector<int>{1});
  auto st = stats(db);
  EXPECT_GE(st.commit_seconds_max, 0.15);
  EXPECT_LT(st.commit_seconds_max, 5.0);
  EXPECT_GE(st.commit_seconds_total, st.commit_seconds_max);
}

// An item activation that learns late that another owns its row (a view change) may have sent
// more writes after the refused one. The next expects the version the refused one would have made,
// which the other activation's write made too: without the fence it would pass, and write stale
// counts over that write. Fenced, it and the one after it are refused; another writer's write
// that expects the same version goes through.
TEST_P(PersistenceActor, AnItemWriteSentAfterARefusedOneByTheSameWriterIsRefusedToo) {
  auto db = spawn(inventory_url_, Database::inventory);
  auto write = [&](caf::scoped_actor& who, std::int64_t expected, std::int64_t reserved) {
    ItemRecord item{"sku-f", "Mug", 1999, "USD", 100, reserved, expected + 1};
    int out = -2;
    who->request(db, std::chrono::seconds(5), db_save{ItemWrite{item, expected, {}}})
        .receive([&](bool applied) { out = applied ? 1 : 0; }, [&](caf::error&) { out = -1; });
    return out;
  };
  caf::scoped_actor creator{*system_}, other{*system_}, stale{*system_}, fresh{*system_};
  ASSERT_EQ(write(creator, 0, 0), 1);
  ASSERT_EQ(write(other, 1, 5), 1);   // the other activation: version 2, 5 reserved
  EXPECT_EQ(write(stale, 1, 1), 0);   // refused: the row is at version 2
  EXPECT_EQ(write(stale, 2, 2), 0);   // expects version 2, and the row is at 2: fenced
  EXPECT_EQ(write(stale, 3, 3), 0);   // the next in its chain too
  EXPECT_EQ(write(fresh, 2, 6), 1);   // another writer that read version 2 writes
  auto loaded = stored_item(db, "sku-f");
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->item.version, 3);
  EXPECT_EQ(loaded->item.reserved, 6);
  EXPECT_EQ(stats(db).conflicts, 3);
}

// The same when the stale writes come in one batch that fails for another reason (a closure that
// throws), so that each write runs alone.
TEST_P(PersistenceActor, AFencedItemWriteIsRefusedWhenItsBatchRunsWriteByWrite) {
  auto db = spawn(inventory_url_, Database::inventory);
  auto item = [](std::int64_t expected, std::int64_t reserved) {
    return db_save{ItemWrite{ItemRecord{"sku-g", "Mug", 1999, "USD", 100, reserved, expected + 1}, expected, {}}};
  };
  EXPECT_EQ(fire(db, std::vector<db_save>{item(0, 0)}), std::vector<int>{1});
  EXPECT_EQ(fire(db, std::vector<db_save>{item(1, 5)}), std::vector<int>{1});  // the other activation
  block(db, 300);
  caf::anon_send(db, db_write{[](soci::session&) -> bool { throw std::runtime_error("a closure that fails"); }});
  // One writer, sent at once: both wait behind the block, in the batch with the closure.
  EXPECT_EQ(fire(db, std::vector<db_save>{item(1, 1), item(2, 2)}), (std::vector<int>{0, 0}));
  auto loaded = stored_item(db, "sku-g");
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->item.version, 2);
  EXPECT_EQ(loaded->item.reserved, 5);
}

// Entity writes as data, as the actors send them: batches of many writes, each batch a few
// statements (prepared once on PostgreSQL and run again batch after batch).
TEST_P(PersistenceActor, EntityWritesShareCommitsAndKeepTheirVersionChecks) {
  auto db = spawn(orders_url_, Database::orders);
  constexpr int orders = 150;
  std::vector<db_save> inserts, updates;
  for (int i = 0; i < orders; ++i) {
    auto rec = sample_order("ord_e" + std::to_string(i), 1);
    inserts.push_back(db_save{OrderWrite{rec, 0, true}});
    rec.status = "reserved";
    rec.version = 2;
    rec.lines[0].unit_price_cents = 100 + i;
    // Every tenth update is stale: written as if by an owner that missed a version.
    updates.push_back(db_save{OrderWrite{rec, i % 10 == 0 ? 7 : 1, true}});
  }
  auto first = fire(db, inserts);
  EXPECT_EQ(std::count(first.begin(), first.end(), 1), orders);
  auto again = fire(db, std::vector<db_save>(inserts.begin(), inserts.begin() + 5));
  EXPECT_EQ(again, (std::vector<int>(5, 0)));  // inserts over existing rows: refused, not failed
  auto second = fire(db, updates);
  for (int i = 0; i < orders; ++i) EXPECT_EQ(second[i], i % 10 == 0 ? 0 : 1) << i;
  auto st = stats(db);
  EXPECT_LT(st.batches, 2 * orders);
  EXPECT_EQ(st.conflicts, 5 + orders / 10);
  auto loaded = std::make_shared<std::vector<std::optional<OrderRecord>>>();
  caf::scoped_actor self{*system_};
  self->request(db, std::chrono::seconds(5), db_read{[loaded](soci::session& s) {
                  for (int i : {0, 1, 149}) loaded->push_back(load_order(s, "ord_e" + std::to_string(i)));
                }})
      .receive([](bool) {}, [](caf::error& e) { FAIL() << caf::to_string(e); });
  ASSERT_EQ(loaded->size(), 3u);
  EXPECT_EQ((*loaded)[0]->version, 1);  // its update was stale
  EXPECT_EQ((*loaded)[0]->lines[0].unit_price_cents, 1999);
  EXPECT_EQ((*loaded)[1]->version, 2);
  EXPECT_EQ((*loaded)[1]->lines[0].unit_price_cents, 101);
  EXPECT_EQ((*loaded)[2]->lines[0].unit_price_cents, 249);
  EXPECT_EQ((*loaded)[2]->lines.size(), 2u);
}

TEST_P(PersistenceActor, NoBatchExceedsItsLimit) {
  auto db = spawn(orders_url_, Database::orders, 4);
  std::vector<db_write> batch;
  for (int i = 0; i < 40; ++i) {
    auto rec = sample_order("ord_lim_" + std::to_string(i), 1);
    batch.push_back(db_write{[rec](soci::session& s) { return save_order(s, rec, 0, true); }});
  }
  auto outcomes = fire(db, std::move(batch));
  EXPECT_EQ(std::count(outcomes.begin(), outcomes.end(), 1), 40);
  auto st = stats(db);
  // At its edge: batches fill up to the limit (the writes queue up behind the first commit) and
  // never past it.
  EXPECT_EQ(st.batch_size_max_seen, 4);
  EXPECT_GE(st.batches, 10);
}

// database.batch_linger_us: a batch of kLingerMin (2) to kLingerBelow - 1 (15) writes waits, once,
// for more writes to share its commit; a lone write and a batch of 16 go at once. Lingering 1 s
// here, so that what waited and what did not are far apart.
TEST_P(PersistenceActor, ABatchOfAFewWritesLingersForMoreAndTakesThem) {
  auto db = spawn(orders_url_, Database::orders, 256, 1'000'000);
  block(db, 100);
  auto first = insert_later(db, "ord_l1", 0);
  auto second = insert_later(db, "ord_l2", 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the blocker done, the two waiting
  auto third = insert_later(db, "ord_l3", 0);                   // comes within their linger
  auto a = first.get(), b = second.get(), c = third.get();
  EXPECT_EQ(a.first, 1);
  EXPECT_EQ(b.first, 1);
  EXPECT_EQ(c.first, 1);
  EXPECT_GE(a.second, 900);  // waited out the linger
  auto st = stats(db);
  EXPECT_EQ(st.lingers, 1);
  EXPECT_EQ(st.batches, 2);  // the blocker's, then one for the three
  EXPECT_EQ(st.batch_size_max_seen, 3);
}

TEST_P(PersistenceActor, ALoneWriteDoesNotLinger) {
  auto db = spawn(orders_url_, Database::orders, 256, 1'000'000);
  auto alone = insert_later(db, "ord_alone", 0).get();
  EXPECT_EQ(alone.first, 1);
  EXPECT_LT(alone.second, 700);
  EXPECT_EQ(stats(db).lingers, 0);
}

// At the edge: 15 writes in a batch linger, 16 do not.
TEST_P(PersistenceActor, FifteenWritesLingerAndSixteenDoNot) {
  for (int n : {15, 16}) {
    SCOPED_TRACE(n);
    auto db = spawn(orders_url_, Database::orders, 256, 1'000'000);
    block(db, 200);
    std::vector<std::future<std::pair<int, double>>> writes;
    for (int i = 0; i < n; ++i) writes.push_back(insert_later(db, "ord_e" + std::to_string(n) + "_" + std::to_string(i), 0));
    double slowest = 0;
    for (auto& w : writes) {
      auto got = w.get();
      EXPECT_EQ(got.first, 1);
      slowest = std::max(slowest, got.second);
    }
    auto st = stats(db);
    EXPECT_EQ(st.batches, 2);
    EXPECT_EQ(st.batch_size_max_seen, n);
    EXPECT_EQ(st.lingers, n < kLingerBelow ? 1 : 0);
    if (n < kLingerBelow) EXPECT_GE(slowest, 1000);
    else EXPECT_LT(slowest, 900);
  }
}

// Full before its linger is up, a batch goes at once, and the timer it left does not cut the next
// batch's own linger short.
TEST_P(PersistenceActor, ALingeringBatchThatFillsUpGoesAtOnce) {
  auto db = spawn(orders_url_, Database::orders, 4, 1'000'000);
  block(db, 100);
  std::vector<std::future<std::pair<int, double>>> early;
  for (int i = 0; i < 2; ++i) early.push_back(insert_later(db, "ord_f" + std::to_string(i), 0));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // lingering, 2 of 4
  for (int i = 2; i < 4; ++i) early.push_back(insert_later(db, "ord_f" + std::to_string(i), 0));
  for (auto& w : early) {
    auto got = w.get();
    EXPECT_EQ(got.first, 1);
    EXPECT_LT(got.second, 900);  // went when full, not after the linger
  }
  // The next batch lingers its own full second, past the first batch's stale timer.
  auto start = std::chrono::steady_clock::now();
  block(db, 100);
  auto x = insert_later(db, "ord_f4", 0), y = insert_later(db, "ord_f5", 0);
  EXPECT_EQ(x.get().first, 1);
  EXPECT_EQ(y.get().first, 1);
  std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took.count(), 1000);
  EXPECT_EQ(stats(db).lingers, 2);
}

// A batch still open when the actor is told to stop (here: lingering, which a plain flush leaves
// alone) is committed and answered before it stops, not dropped with its writers unanswered.
TEST_P(PersistenceActor, AnOpenBatchIsCommittedAndAnsweredWhenTheActorStops) {
  auto db = spawn(orders_url_, Database::orders, 256, 10'000'000);
  block(db, 100);
  auto first = insert_later(db, "ord_x1", 0);
  auto second = insert_later(db, "ord_x2", 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the blocker done, the two lingering
  EXPECT_EQ(stats(db).lingers, 1);
  caf::anon_send(db, flush_atom::value);  // what a stopping node sends first: ignored while lingering
  caf::anon_send_exit(db, caf::exit_reason::user_shutdown);
  auto a = first.get(), b = second.get();
  EXPECT_EQ(a.first, 1);
  EXPECT_EQ(b.first, 1);
  EXPECT_LT(a.second, 5'000);  // long before the linger (10 s) or the request's timeout (30 s)
  auto session = connect(orders_url_);
  EXPECT_TRUE(load_order(*session, "ord_x1"));
  EXPECT_TRUE(load_order(*session, "ord_x2"));
}

TEST_P(PersistenceActor, AFailingWriteDoesNotFailTheRestOfItsBatch) {
  auto db = spawn(orders_url_, Database::orders);
  auto good = [](int i) {
    auto rec = sample_order("ord_ok_" + std::to_string(i), 1);
    return db_write{[rec](soci::session& s) { return save_order(s, rec, 0, true); }};
  };
  auto bad = db_write{[](soci::session& s) {
    s << "INSERT INTO no_such_table VALUES (1)";
    return true;
  }};
  auto outcomes = fire(db, std::vector<db_write>{good(1), bad, good(2)});
  EXPECT_EQ(outcomes, (std::vector<int>{1, -1, 1}));
}

// A batch that fails is timed too: here one whose write fails after holding it for 150 ms.
TEST_P(PersistenceActor, AFailedBatchIsTimedToo) {
  auto db = spawn(orders_url_, Database::orders);
  auto slow_and_bad = db_write{[](soci::session& s) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    s << "INSERT INTO no_such_table VALUES (1)";
    return true;
  }};
  EXPECT_EQ(fire(db, std::vector<db_write>{slow_and_bad}), std::vector<int>{-1});
  EXPECT_GE(stats(db).commit_seconds_max, 0.15);
}

TEST_P(PersistenceActor, VersionConflictIsReportedNotApplied) {
  auto db = spawn(orders_url_, Database::orders);
  caf::scoped_actor self{*system_};
  auto rec = sample_order("ord_v", 1);
  bool first = false, second = true;
  self->request(db, std::chrono::seconds(10), db_write{[rec](soci::session& s) { return save_order(s, rec, 0, true); }})
      .receive([&](bool b) { first = b; }, [](caf::error&) {});
  auto stale = rec;
  stale.version = 5;
  self->request(db, std::chrono::seconds(10), db_write{[stale](soci::session& s) { return save_order(s, stale, 4, false); }})
      .receive([&](bool b) { second = b; }, [](caf::error&) {});
  EXPECT_TRUE(first);
  EXPECT_FALSE(second);
  EXPECT_EQ(stats(db).conflicts, 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, Persistence, ::testing::Values(Backend::sqlite, Backend::postgresql),
                         [](const auto& info) { return info.param == Backend::sqlite ? "SQLite" : "PostgreSQL"; });
INSTANTIATE_TEST_SUITE_P(Backends, PersistenceActor, ::testing::Values(Backend::sqlite, Backend::postgresql),
                         [](const auto& info) { return info.param == Backend::sqlite ? "SQLite" : "PostgreSQL"; });

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A PostgreSQL of its own that the test stops and starts again.
class DatabaseOutage : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / unique_name("emporium-pg-outage-");
    script_ = fs::path(EMPORIUM_SOURCE_DIR) / "tests/integration/pg_instance.sh";
    port_ = free_port();
    ASSERT_EQ(run("init"), 0);
    ASSERT_EQ(run("start"), 0);
    caf_config_.set("scheduler.max-threads", size_t{2});
    system_ = std::make_unique<caf::actor_system>(caf_config_);
  }
  void TearDown() override {
    caf::anon_send_exit(db_, caf::exit_reason::user_shutdown);
    db_ = nullptr;
    system_->await_all_actors_done();
    system_.reset();
    run("stop");
    fs::remove_all(dir_);
  }
  int run(const std::string& cmd) {
    auto line = script_.string() + " " + cmd + " " + dir_.string() + " " + std::to_string(port_);
    return std::system(line.c_str());
  }
  std::string url() const { return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/postgres"; }

  // true: applied; false: refused as unavailable (errc::db_unavailable), and how long it took.
  bool write(int i, std::chrono::milliseconds* took = nullptr) {
    caf::scoped_actor self{*system_};
    auto rec = sample_order("ord_out_" + std::to_string(i), 1);
    bool applied = false;
    auto start = std::chrono::steady_clock::now();
    // As the actors write: as data, through the statements the actor keeps prepared, which must
    // be prepared again on the new connection.
    self->request(db_, std::chrono::seconds(20), db_save{OrderWrite{rec, 0, true}})
        .receive([&](bool b) { applied = b; },
                 [&](caf::error& e) { EXPECT_EQ(code_of(e), errc::db_unavailable) << caf::to_string(e); });
    if (took) *took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    return applied;
  }

  fs::path dir_, script_;
  int port_ = 0;
  caf::actor_system_config caf_config_;
  std::unique_ptr<caf::actor_system> system_;
  caf::actor db_;
};

TEST_F(DatabaseOutage, WritesFailFastWhileDownAndSucceedOnceItIsBack) {
  db_ = spawn_persistence(*system_, {url(), Database::orders, 256, 200});
  ASSERT_TRUE(write(1));
  run("stop");
  std::chrono::milliseconds took{0};
  EXPECT_FALSE(write(2, &took));
  EXPECT_LT(took.count(), 5000) << "a write while the database is down must fail fast";
  EXPECT_FALSE(write(3));
  ASSERT_EQ(run("start"), 0);
  bool back = false;
  for (int i = 0; i < 100 && !back; ++i) {
    back = write(100 + i);
    if (!back) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(back) << "the actor reconnects by itself";
  // The failed writes left nothing behind; the one before the outage is still there.
  auto count = std::make_shared<long long>(-1);
  caf::scoped_actor self{*system_};
  self->request(db_, std::chrono::seconds(5), db_read{[count](soci::session& s) {
                  s << "SELECT COUNT(*) FROM orders WHERE id IN ('ord_out_1', 'ord_out_2', 'ord_out_3')", soci::into(*count);
                }})
      .receive([](bool) {}, [](caf::error& e) { FAIL() << caf::to_string(e); });
  EXPECT_EQ(*count, 1);
}

}  // namespace
}  // namespace emporium
