// SQL of both databases. Columns are NOT NULL with '' for absent text, so no indicators are needed;
// values are read with into() so the requested C++ type, not the declared column type, governs.
#include "runtime/store.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

#include <soci/soci.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/sqlite3/soci-sqlite3.h>
#include <libpq-fe.h>

namespace emporium {
namespace {

using ll = long long;

struct Migration {
  int version;
  const char* sql;                  // statements separated by ';'
  const char* postgresql = nullptr;  // more, run on PostgreSQL only (storage parameters)
};

const Migration orders_migrations[] = {
    {1, R"(
CREATE TABLE orders (
  id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, status TEXT NOT NULL,
  failure_reason TEXT NOT NULL DEFAULT '', total_cents BIGINT NOT NULL, currency TEXT NOT NULL,
  payment_id TEXT NOT NULL DEFAULT '', created_at_ms BIGINT NOT NULL, updated_at_ms BIGINT NOT NULL,
  version BIGINT NOT NULL);
CREATE INDEX orders_by_customer ON orders (customer_id, id);
CREATE INDEX orders_by_status ON orders (status);
CREATE TABLE order_lines (
  order_id TEXT NOT NULL, line_no BIGINT NOT NULL, sku TEXT NOT NULL, quantity BIGINT NOT NULL,
  unit_price_cents BIGINT NOT NULL, PRIMARY KEY (order_id, line_no));
CREATE TABLE payments (
  id TEXT PRIMARY KEY, order_id TEXT NOT NULL, status TEXT NOT NULL,
  failure_reason TEXT NOT NULL DEFAULT '', brand TEXT NOT NULL, last4 TEXT NOT NULL,
  exp_month BIGINT NOT NULL, exp_year BIGINT NOT NULL, provider_ref TEXT NOT NULL DEFAULT '',
  amount_cents BIGINT NOT NULL, currency TEXT NOT NULL, version BIGINT NOT NULL);
CREATE TABLE idempotency_keys (
  customer_id TEXT NOT NULL, idem_key TEXT NOT NULL, request_hash TEXT NOT NULL,
  status BIGINT NOT NULL, response_body TEXT NOT NULL, created_at_ms BIGINT NOT NULL,
  PRIMARY KEY (customer_id, idem_key))
)"},
    // Cluster membership (as Orleans' membership table): one row per node name.
    {2, R"(
CREATE TABLE cluster_members (
  name TEXT PRIMARY KEY, cluster_address TEXT NOT NULL, http_address TEXT NOT NULL,
  incarnation BIGINT NOT NULL, status TEXT NOT NULL, heartbeat_ms BIGINT NOT NULL,
  active_order BIGINT NOT NULL DEFAULT 0, active_inventory BIGINT NOT NULL DEFAULT 0,
  active_payment BIGINT NOT NULL DEFAULT 0)
)"},
    // The recovery sweep pages through the unfinished orders by id: an index of just those (small,
    // in id order) instead of one of every order's status.
    {3, R"(
CREATE INDEX orders_unfinished ON orders (id) WHERE status IN ('pending', 'reserved');
DROP INDEX orders_by_status
)"},
    // A replay answers with the first response's content type (an order, or a problem); '' for
    // rows stored before, which are replayed as they were.
    {4, R"(
ALTER TABLE idempotency_keys ADD COLUMN content_type TEXT NOT NULL DEFAULT ''
)"},
    // A cancel or a ship of a confirmed order under way is unfinished too (`cancelling`,
    // `shipping`: actors/order_status.hpp): the sweep finishes one interrupted.
    {5, R"(
DROP INDEX orders_unfinished;
CREATE INDEX orders_unfinished ON orders (id)
  WHERE status IN ('pending', 'reserved', 'cancelling', 'shipping')
)"},
    // A payment is updated once or twice soon after its insert (captured, then perhaps refunded):
    // room left in each page lets PostgreSQL write the new version beside the old one, without
    // index entries (a HOT update). Pages written from now on; nothing on SQLite.
    {6, "", R"(
ALTER TABLE payments SET (fillfactor = 70)
)"},
    // Ids and keys compare byte by byte (collation "C"): every index probe and insert compares
    // them, and under a database's locale (even C.UTF-8) each comparison went through strcoll.
    // They are ASCII, so their order is the same as before in C.UTF-8. SQLite compares bytes
    // already. The indexes are rebuilt; the tables are not rewritten. A column whose type is
    // altered loses its statistics: the tables are analyzed again.
    {7, "", R"(
ALTER TABLE orders ALTER COLUMN id TYPE TEXT COLLATE "C",
  ALTER COLUMN customer_id TYPE TEXT COLLATE "C";
ALTER TABLE order_lines ALTER COLUMN order_id TYPE TEXT COLLATE "C";
ALTER TABLE payments ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE idempotency_keys ALTER COLUMN customer_id TYPE TEXT COLLATE "C",
  ALTER COLUMN idem_key TYPE TEXT COLLATE "C";
ANALYZE orders;
ANALYZE order_lines;
ANALYZE payments;
ANALYZE idempotency_keys
)"},
    // An Idempotency-Key is claimed before its placement starts, with the id of the order it
    // places (status 0 until the answer is stored): a retry on any node, or after a crash, finds
    // that order instead of placing another.
    {8, R"(
ALTER TABLE idempotency_keys ADD COLUMN order_id TEXT NOT NULL DEFAULT ''
)"},
};

const Migration inventory_migrations[] = {
    {1, R"(
CREATE TABLE items (
  sku TEXT PRIMARY KEY, name TEXT NOT NULL, price_cents BIGINT NOT NULL, currency TEXT NOT NULL,
  on_hand BIGINT NOT NULL, reserved BIGINT NOT NULL, version BIGINT NOT NULL,
  CHECK (reserved >= 0), CHECK (on_hand >= reserved));
CREATE TABLE reservations (
  sku TEXT NOT NULL, order_id TEXT NOT NULL, quantity BIGINT NOT NULL, state TEXT NOT NULL,
  expires_at_ms BIGINT NOT NULL, PRIMARY KEY (sku, order_id));
CREATE INDEX reservations_by_state ON reservations (sku, state)
)"},
    // The recovery sweep finds the items with held reservations due for their check (actors/
    // node_actors.cpp): an index of just those, which are few.
    {2, R"(
CREATE INDEX reservations_held ON reservations (expires_at_ms) WHERE state = 'held'
)"},
    // A released or shipped reservation is deleted (save_item): the table keeps only the live ones,
    // so an item's are its rows by the primary key, and the index by state, which every
    // reservation's insert and commit also had to write, goes.
    {3, R"(
DELETE FROM reservations WHERE state NOT IN ('held', 'committed');
DROP INDEX reservations_by_state
)"},
    // Skus and order ids compare byte by byte, as in the orders database (its migration 7).
    {4, "", R"(
ALTER TABLE items ALTER COLUMN sku TYPE TEXT COLLATE "C";
ALTER TABLE reservations ALTER COLUMN sku TYPE TEXT COLLATE "C",
  ALTER COLUMN order_id TYPE TEXT COLLATE "C";
ANALYZE items;
ANALYZE reservations
)"},
};

std::vector<std::string> split_statements(const char* sql) {
  std::vector<std::string> out;
  std::stringstream in(sql);
  std::string statement;
  while (std::getline(in, statement, ';'))
    if (statement.find_first_not_of(" \n\t") != std::string::npos) out.push_back(statement);
  return out;
}

}  // namespace

std::optional<DbUrl> parse_db_url(const std::string& url) {
  if (url.rfind("sqlite:", 0) == 0 && url.size() > 7) return DbUrl{Backend::sqlite, url.substr(7)};
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0)
    return DbUrl{Backend::postgresql, url};
  return std::nullopt;
}

namespace {

std::string percent_decode(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

// A value single-quoted for libpq's keyword=value form.
std::string conninfo_quote(const std::string& v) {
  std::string q = "'";
  for (char c : v) {
    if (c == '\\' || c == '\'') q += '\\';
    q += c;
  }
  return q + "'";
}

// libpq keyword=value form of a postgresql:// URI: SOCI 4.0.3 mangles URIs (it appends to the
// connection string), so the URI is taken apart here. Values are single-quoted for libpq.
std::string libpq_conninfo(const std::string& uri) {
  const auto& quote = conninfo_quote;
  std::string rest = uri.substr(uri.find("://") + 3);
  std::string query;
  if (auto q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::string path;
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  std::string out;
  auto add = [&](const char* key, const std::string& value) {
    if (!value.empty()) out += std::string(out.empty() ? "" : " ") + key + "=" + quote(value);
  };
  if (auto at = rest.rfind('@'); at != std::string::npos) {
    auto userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = userinfo.find(':');
    add("user", percent_decode(userinfo.substr(0, colon)));
    if (colon != std::string::npos) add("password", percent_decode(userinfo.substr(colon + 1)));
  }
  std::string host = rest, port;
  if (!rest.empty() && rest.front() == '[') {  // [v6]:port
    auto close = rest.find(']');
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  add("host", percent_decode(host));
  add("port", port);
  add("dbname", percent_decode(path));
  std::stringstream params(query);
  std::string pair;
  while (std::getline(params, pair, '&')) {
    auto eq = pair.find('=');
    if (eq == std::string::npos) continue;
    auto key = percent_decode(pair.substr(0, eq));
    bool plain = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
    if (plain) add(key.c_str(), percent_decode(pair.substr(eq + 1)));
  }
  return out;
}

}  // namespace

void open_session(soci::session& session, const DbUrl& url, std::int64_t idle_in_transaction_ms,
                  const std::string& application_name) {
  if (url.backend == Backend::postgresql) {
    auto conninfo = libpq_conninfo(url.path_or_uri);
    // libpq takes a fallback name only where neither the URL nor PGAPPNAME names the connection.
    if (!application_name.empty())
      conninfo += " fallback_application_name=" + conninfo_quote(application_name);
    session.open(soci::postgresql, conninfo);
    session << "SET idle_in_transaction_session_timeout = " + std::to_string(idle_in_transaction_ms);
    // Every statement of ours finds its rows by key. Prepared ones are planned once (planning
    // the batch statements at each run took a fifth of the machine), and a plan made while the
    // tables were small must not scan them whole once they have grown: no sequential scans, and
    // joins by nested loop over an index, whatever the sizes at planning time.
    session << "SET plan_cache_mode = force_generic_plan";
    session << "SET enable_seqscan = off";
    session << "SET enable_hashjoin = off";
    session << "SET enable_mergejoin = off";
    return;
  }
  auto parent = std::filesystem::path(url.path_or_uri).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  session.open(soci::sqlite3, "db=\"" + url.path_or_uri + "\" timeout=10");
  session << "PRAGMA journal_mode=WAL";
  // FULL: a commit acknowledged to a customer survives power loss, not only a killed process.
  session << "PRAGMA synchronous=FULL";
  session << "PRAGMA foreign_keys=ON";
}

namespace {
int migrate_locked(soci::session& s, Database db);
}

// Nodes of a cluster start together on one database: on PostgreSQL they migrate one at a time
// under an advisory lock (SQLite files have one node).
int migrate(soci::session& s, Backend backend, Database db) {
  if (backend != Backend::postgresql) return migrate_locked(s, db);
  s << "SELECT pg_advisory_lock(72150001)";
  try {
    int applied = migrate_locked(s, db);
    s << "SELECT pg_advisory_unlock(72150001)";
    return applied;
  } catch (...) {
    try {
      s << "SELECT pg_advisory_unlock(72150001)";
    } catch (...) {
    }
    throw;
  }
}

namespace {
int migrate_locked(soci::session& s, Database db) {
  s << "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, "
       "applied_at_ms BIGINT NOT NULL)";
  ll current = 0;
  soci::indicator ind = soci::i_ok;
  s << "SELECT MAX(version) FROM schema_migrations", soci::into(current, ind);
  if (ind != soci::i_ok) current = 0;
  int applied = 0;
  auto apply = [&](const Migration& m) {
    if (m.version <= current) return;
    soci::transaction tx(s);
    for (const auto& statement : split_statements(m.sql)) s << statement;
    if (m.postgresql && s.get_backend_name() == "postgresql")
      for (const auto& statement : split_statements(m.postgresql)) s << statement;
    ll version = m.version;
    ll now = 0;
    s << "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (:v, :t)", soci::use(version),
        soci::use(now);
    tx.commit();
    ++applied;
  };
  if (db == Database::orders)
    for (const auto& m : orders_migrations) apply(m);
  else
    for (const auto& m : inventory_migrations) apply(m);
  return applied;
}
}  // namespace

// --- orders ----------------------------------------------------------------------------------

namespace {

struct OrderRow {
  std::string id, customer_id, status, failure_reason, currency, payment_id;
  ll total_cents = 0, created_at_ms = 0, updated_at_ms = 0, version = 0;
};

OrderRecord to_record_without_children(const OrderRow& row) {
  OrderRecord rec;
  rec.id = row.id;
  rec.customer_id = row.customer_id;
  rec.status = row.status;
  rec.failure_reason = row.failure_reason;
  rec.total_cents = row.total_cents;
  rec.currency = row.currency;
  rec.created_at_ms = row.created_at_ms;
  rec.updated_at_ms = row.updated_at_ms;
  rec.version = row.version;
  return rec;
}

// A payment's columns, in the order PaymentRow reads them, each after `prefix`; `outer`: of an
// outer join, each COALESCE'd ('' or 0 where there is no payment: its id '').
std::string payment_columns(const std::string& prefix, bool outer = false) {
  struct Column {
    const char* name;
    const char* none;
  };
  static constexpr Column columns[] = {
      {"id", "''"},        {"order_id", "''"},     {"status", "''"},       {"failure_reason", "''"},
      {"brand", "''"},     {"last4", "''"},        {"exp_month", "0"},     {"exp_year", "0"},
      {"provider_ref", "''"}, {"amount_cents", "0"}, {"currency", "''"}, {"version", "0"}};
  std::string out;
  for (const auto& c : columns) {
    auto column = prefix + c.name;
    out += (out.empty() ? "" : ", ") + (outer ? "COALESCE(" + column + ", " + c.none + ")" : column);
  }
  return out;
}

// A payment read by a statement: its columns (see payment_columns) are the statement's next ones.
struct PaymentRow {
  PaymentRecord p;
  ll amount = 0, version = 0;

  void exchange(soci::statement& st) {
    for (auto* text : {&p.id, &p.order_id, &p.status, &p.failure_reason, &p.brand, &p.last4})
      st.exchange(soci::into(*text));
    st.exchange(soci::into(p.exp_month));
    st.exchange(soci::into(p.exp_year));
    st.exchange(soci::into(p.provider_ref));
    st.exchange(soci::into(amount));
    st.exchange(soci::into(p.currency));
    st.exchange(soci::into(version));
  }
  PaymentRecord record() const {
    auto out = p;
    out.amount_cents = amount;
    out.version = version;
    return out;
  }
};

constexpr const char* order_columns =
    "SELECT id, customer_id, status, failure_reason, currency, payment_id, total_cents, "
    "created_at_ms, updated_at_ms, version FROM orders ";

void write_lines(soci::session& s, const OrderRecord& rec) {
  s << "DELETE FROM order_lines WHERE order_id = :id", soci::use(rec.id);
  ll line_no = 0;
  for (const auto& line : rec.lines) {
    ll quantity = line.quantity, price = line.unit_price_cents;
    s << "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_cents) "
         "VALUES (:o, :n, :s, :q, :p)",
        soci::use(rec.id), soci::use(line_no), soci::use(line.sku), soci::use(quantity),
        soci::use(price);
    ++line_no;
  }
}

}  // namespace

// One statement: the order's row once per line, with its line and its payment beside it (outer
// joins: none stands as a line number of -1, a payment id of ''). An order is loaded at each
// activation, on its shard's write connection, where three statements held the group commits
// behind them three times as long.
std::optional<OrderRecord> load_order(soci::session& s, const std::string& id) {
  OrderRow row;
  std::string sku;
  ll line_no = -1, quantity = 0, price = 0;
  PaymentRow payment;
  static const std::string sql =
      "SELECT o.id, o.customer_id, o.status, o.failure_reason, o.currency, o.payment_id, "
      "o.total_cents, o.created_at_ms, o.updated_at_ms, o.version, COALESCE(l.line_no, -1), "
      "COALESCE(l.sku, ''), COALESCE(l.quantity, 0), COALESCE(l.unit_price_cents, 0), " +
      payment_columns("p.", true) +
      " FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id "
      "LEFT JOIN payments p ON p.id = o.payment_id AND o.payment_id <> '' "
      "WHERE o.id = :id ORDER BY l.line_no";
  soci::statement st =
      (s.prepare << sql, soci::into(row.id), soci::into(row.customer_id), soci::into(row.status),
       soci::into(row.failure_reason), soci::into(row.currency), soci::into(row.payment_id),
       soci::into(row.total_cents), soci::into(row.created_at_ms), soci::into(row.updated_at_ms),
       soci::into(row.version), soci::into(line_no), soci::into(sku), soci::into(quantity),
       soci::into(price));
  payment.exchange(st);
  st.exchange(soci::use(id));
  st.define_and_bind();
  st.execute();
  std::optional<OrderRecord> out;
  while (st.fetch()) {
    if (!out) {
      out = to_record_without_children(row);
      if (!payment.p.id.empty()) out->payment = payment.record();
    }
    if (line_no >= 0) out->lines.push_back({sku, quantity, price});
  }
  return out;
}

bool save_order(soci::session& s, const OrderRecord& rec, std::int64_t expected_version,
                bool lines) {
  std::string payment_id = rec.payment ? rec.payment->id : std::string{};
  ll total = rec.total_cents, created = rec.created_at_ms, updated = rec.updated_at_ms;
  ll version = rec.version, expected = expected_version;
  if (expected_version == 0) {
    // An insert over an existing row lost a race for a new entity: reported as a failed check.
    soci::statement insert =
        (s.prepare << "INSERT INTO orders (id, customer_id, status, failure_reason, total_cents, "
                      "currency, payment_id, created_at_ms, updated_at_ms, version) "
                      "VALUES (:id, :c, :st, :fr, :t, :cur, :p, :ca, :ua, :v) ON CONFLICT (id) DO NOTHING",
         soci::use(rec.id), soci::use(rec.customer_id), soci::use(rec.status),
         soci::use(rec.failure_reason), soci::use(total), soci::use(rec.currency),
         soci::use(payment_id), soci::use(created), soci::use(updated), soci::use(version));
    insert.execute(true);
    if (insert.get_affected_rows() != 1) return false;
    write_lines(s, rec);
    return true;
  }
  soci::statement st =
      (s.prepare << "UPDATE orders SET status = :st, failure_reason = :fr, total_cents = :t, "
                    "currency = :cur, payment_id = :p, updated_at_ms = :ua, version = :v "
                    "WHERE id = :id AND version = :ev",
       soci::use(rec.status), soci::use(rec.failure_reason), soci::use(total),
       soci::use(rec.currency), soci::use(payment_id), soci::use(updated), soci::use(version),
       soci::use(rec.id), soci::use(expected));
  st.execute(true);
  if (st.get_affected_rows() != 1) return false;
  if (lines) write_lines(s, rec);
  return true;
}

// A customer's page of orders, newest first, in three statements whatever its size: the orders,
// then the lines and the payments of the page's range of ids, rather than two more per order.
std::vector<OrderRecord> list_orders(soci::session& s, const std::string& customer_id,
                                     const std::string& before_id, int limit) {
  ll lim = limit;
  auto where = std::string("WHERE customer_id = :c") + (before_id.empty() ? "" : " AND id < :b") +
               " ORDER BY id DESC LIMIT :l";
  auto bind_page = [&](soci::statement& st) {
    st.exchange(soci::use(customer_id));
    if (!before_id.empty()) st.exchange(soci::use(before_id));
    st.exchange(soci::use(lim));
    st.define_and_bind();
    st.execute();
  };
  std::vector<OrderRecord> out;
  std::unordered_map<std::string, size_t> at;  // order id -> its place in `out`
  {
    OrderRow row;
    soci::statement st = (s.prepare << std::string(order_columns) + where, soci::into(row.id),
                          soci::into(row.customer_id), soci::into(row.status),
                          soci::into(row.failure_reason), soci::into(row.currency),
                          soci::into(row.payment_id), soci::into(row.total_cents),
                          soci::into(row.created_at_ms), soci::into(row.updated_at_ms),
                          soci::into(row.version));
    bind_page(st);
    while (st.fetch()) {
      at[row.id] = out.size();
      out.push_back(to_record_without_children(row));
    }
  }
  if (out.empty()) return out;
  // The page's children: of the customer's orders from the page's last id to its first (rows of
  // orders stored meanwhile in that range are left out by `at`), by the customer's index.
  std::string lo = out.back().id, hi = out.front().id;
  auto bind_range = [&](soci::statement& st) {
    st.exchange(soci::use(customer_id));
    st.exchange(soci::use(lo));
    st.exchange(soci::use(hi));
    st.define_and_bind();
    st.execute();
  };
  const std::string range = " WHERE o.customer_id = :c AND o.id >= :lo AND o.id <= :hi";
  {
    std::string order_id, sku;
    ll quantity = 0, price = 0;
    soci::statement st =
        (s.prepare << "SELECT l.order_id, l.sku, l.quantity, l.unit_price_cents FROM orders o "
                      "JOIN order_lines l ON l.order_id = o.id" +
                          range + " ORDER BY l.order_id, l.line_no",
         soci::into(order_id), soci::into(sku), soci::into(quantity), soci::into(price));
    bind_range(st);
    while (st.fetch())
      if (auto it = at.find(order_id); it != at.end())
        out[it->second].lines.push_back({sku, quantity, price});
  }
  {
    // Filed under the order that names the payment (as load_order finds it), whatever the
    // payment's own order id says.
    std::string order_id;
    PaymentRow payment;
    soci::statement st = (s.prepare << "SELECT o.id, " + payment_columns("p.") +
                                           " FROM orders o JOIN payments p ON p.id = o.payment_id" +
                                           range,
                          soci::into(order_id));
    payment.exchange(st);
    bind_range(st);
    while (st.fetch())
      if (auto it = at.find(order_id); it != at.end()) out[it->second].payment = payment.record();
  }
  return out;
}

namespace {
// The first column of `sql`'s rows, a page of keys: its parameters are a bound, the key to start
// after, and the page's size, in that order.
std::vector<std::string> keys_page(soci::session& s, const std::string& sql, std::int64_t bound,
                                   const std::string& after, std::int64_t limit) {
  std::vector<std::string> keys;
  std::string key;
  ll b = bound, n = limit;
  soci::statement st = (s.prepare << sql, soci::into(key), soci::use(b), soci::use(after), soci::use(n));
  st.execute();
  while (st.fetch()) keys.push_back(key);
  return keys;
}
}  // namespace

std::vector<std::string> unfinished_orders(soci::session& s, std::int64_t updated_before_ms,
                                           const std::string& after_id, std::int64_t limit) {
  return keys_page(s,
                   "SELECT id FROM orders "
                   "WHERE status IN ('pending', 'reserved', 'cancelling', 'shipping') "
                   "AND updated_at_ms < :before AND id > :after ORDER BY id LIMIT :n",
                   updated_before_ms, after_id, limit);
}

std::vector<std::string> skus_holding(soci::session& s, std::int64_t expiring_by_ms,
                                      const std::string& after_sku, std::int64_t limit) {
  return keys_page(s,
                   "SELECT DISTINCT sku FROM reservations WHERE state = 'held' "
                   "AND expires_at_ms <= :by AND sku > :after ORDER BY sku LIMIT :n",
                   expiring_by_ms, after_sku, limit);
}

std::optional<PaymentRecord> load_payment(soci::session& s, const std::string& id) {
  PaymentRow payment;
  soci::statement st = (s.prepare << "SELECT " + payment_columns("") + " FROM payments WHERE id = :id");
  payment.exchange(st);
  st.exchange(soci::use(id));
  st.define_and_bind();
  if (!st.execute(true)) return std::nullopt;
  return payment.record();
}

bool save_payment(soci::session& s, const PaymentRecord& p, std::int64_t expected_version) {
  ll amount = p.amount_cents, version = p.version, expected = expected_version;
  if (expected_version == 0) {
    soci::statement insert =
        (s.prepare << "INSERT INTO payments (id, order_id, status, failure_reason, brand, last4, "
                      "exp_month, exp_year, provider_ref, amount_cents, currency, version) "
                      "VALUES (:id, :o, :st, :fr, :b, :l4, :em, :ey, :pr, :a, :c, :v) "
                      "ON CONFLICT (id) DO NOTHING",
         soci::use(p.id), soci::use(p.order_id), soci::use(p.status), soci::use(p.failure_reason),
         soci::use(p.brand), soci::use(p.last4), soci::use(p.exp_month), soci::use(p.exp_year),
         soci::use(p.provider_ref), soci::use(amount), soci::use(p.currency), soci::use(version));
    insert.execute(true);
    return insert.get_affected_rows() == 1;
  }
  soci::statement st =
      (s.prepare << "UPDATE payments SET status = :st, failure_reason = :fr, provider_ref = :pr, "
                    "version = :v WHERE id = :id AND version = :ev",
       soci::use(p.status), soci::use(p.failure_reason), soci::use(p.provider_ref),
       soci::use(version), soci::use(p.id), soci::use(expected));
  st.execute(true);
  return st.get_affected_rows() == 1;
}

std::optional<IdempotencyRecord> load_idempotency(soci::session& s, const std::string& customer_id,
                                                  const std::string& key) {
  IdempotencyRecord r;
  ll created = 0;
  s << "SELECT customer_id, idem_key, request_hash, status, response_body, created_at_ms, "
       "content_type, order_id FROM idempotency_keys WHERE customer_id = :c AND idem_key = :k",
      soci::into(r.customer_id), soci::into(r.key), soci::into(r.request_hash), soci::into(r.status),
      soci::into(r.response_body), soci::into(created), soci::into(r.content_type),
      soci::into(r.order_id), soci::use(customer_id), soci::use(key);
  if (!s.got_data()) return std::nullopt;
  r.created_at_ms = created;
  return r;
}

std::optional<IdempotencyRecord> claim_idempotency(soci::session& s, const IdempotencyRecord& claim) {
  ll created = claim.created_at_ms;
  // Twice at most: a row seen by the insert may be gone by the read (a claim dropped, or purged).
  for (int attempt = 0; attempt < 2; ++attempt) {
    soci::statement st =
        (s.prepare << "INSERT INTO idempotency_keys (customer_id, idem_key, request_hash, status, "
                      "response_body, created_at_ms, content_type, order_id) "
                      "VALUES (:c, :k, :h, 0, '', :t, '', :o) ON CONFLICT (customer_id, idem_key) DO NOTHING",
         soci::use(claim.customer_id), soci::use(claim.key), soci::use(claim.request_hash),
         soci::use(created), soci::use(claim.order_id));
    st.execute(true);
    if (st.get_affected_rows() == 1) return std::nullopt;
    if (auto stored = load_idempotency(s, claim.customer_id, claim.key)) return stored;
  }
  throw std::runtime_error("idempotency key neither claimed nor stored");
}

void save_idempotency(soci::session& s, const IdempotencyRecord& r) {
  ll created = r.created_at_ms;
  s << "INSERT INTO idempotency_keys (customer_id, idem_key, request_hash, status, response_body, "
       "created_at_ms, content_type, order_id) VALUES (:c, :k, :h, :s, :b, :t, :ct, :o) "
       "ON CONFLICT (customer_id, idem_key) DO UPDATE SET status = excluded.status, "
       "response_body = excluded.response_body, content_type = excluded.content_type "
       "WHERE idempotency_keys.status = 0 AND idempotency_keys.request_hash = excluded.request_hash "
       "AND idempotency_keys.order_id = excluded.order_id",
      soci::use(r.customer_id), soci::use(r.key), soci::use(r.request_hash), soci::use(r.status),
      soci::use(r.response_body), soci::use(created), soci::use(r.content_type), soci::use(r.order_id);
}

void drop_idempotency_claim(soci::session& s, const std::string& customer_id, const std::string& key,
                            const std::string& order_id) {
  s << "DELETE FROM idempotency_keys WHERE customer_id = :c AND idem_key = :k AND status = 0 "
       "AND order_id = :o",
      soci::use(customer_id), soci::use(key), soci::use(order_id);
}

int purge_idempotency(soci::session& s, std::int64_t older_than_ms) {
  ll t = older_than_ms;
  soci::statement st =
      (s.prepare << "DELETE FROM idempotency_keys WHERE created_at_ms < :t", soci::use(t));
  st.execute(true);
  return static_cast<int>(st.get_affected_rows());
}

// --- inventory -------------------------------------------------------------------------------

// One statement, as an order's load (see load_order): the item's row once per live reservation,
// with the reservation beside it (an outer join; none stands as an order id of ''), in order id
// order. An item is loaded at each activation, on its shard's write connection.
std::optional<ItemState> load_item(soci::session& s, const std::string& sku) {
  ItemState state;
  auto& it = state.item;
  ll price = 0, on_hand = 0, reserved = 0, version = 0;
  std::string order_id, state_text;
  ll quantity = 0, expires = 0;
  soci::statement st =
      (s.prepare << "SELECT i.sku, i.name, i.price_cents, i.currency, i.on_hand, i.reserved, "
                    "i.version, COALESCE(r.order_id, ''), COALESCE(r.quantity, 0), "
                    "COALESCE(r.state, ''), COALESCE(r.expires_at_ms, 0) FROM items i "
                    "LEFT JOIN reservations r ON r.sku = i.sku AND r.state IN ('held', 'committed') "
                    "WHERE i.sku = :s ORDER BY r.order_id",
       soci::into(it.sku), soci::into(it.name), soci::into(price), soci::into(it.currency),
       soci::into(on_hand), soci::into(reserved), soci::into(version), soci::into(order_id),
       soci::into(quantity), soci::into(state_text), soci::into(expires), soci::use(sku));
  st.execute();
  bool found = false;
  while (st.fetch()) {
    found = true;
    if (order_id.empty()) continue;  // no reservation
    auto rs = reservation_state_from(state_text).value_or(ReservationState::held);
    state.reservations.push_back({sku, order_id, quantity, rs, expires});
  }
  if (!found) return std::nullopt;
  it.price_cents = price;
  it.on_hand = on_hand;
  it.reserved = reserved;
  it.version = version;
  return state;
}

bool save_item(soci::session& s, const ItemRecord& it, std::int64_t expected_version,
               const std::vector<ReservationRecord>& changed) {
  ll price = it.price_cents, on_hand = it.on_hand, reserved = it.reserved, version = it.version;
  ll expected = expected_version;
  if (expected_version == 0) {
    soci::statement insert =
        (s.prepare << "INSERT INTO items (sku, name, price_cents, currency, on_hand, reserved, "
                      "version) VALUES (:s, :n, :p, :c, :o, :r, :v) ON CONFLICT (sku) DO NOTHING",
         soci::use(it.sku), soci::use(it.name), soci::use(price), soci::use(it.currency),
         soci::use(on_hand), soci::use(reserved), soci::use(version));
    insert.execute(true);
    if (insert.get_affected_rows() != 1) return false;
  } else {
    soci::statement st =
        (s.prepare << "UPDATE items SET name = :n, price_cents = :p, currency = :c, on_hand = :o, "
                      "reserved = :r, version = :v WHERE sku = :s AND version = :ev",
         soci::use(it.name), soci::use(price), soci::use(it.currency), soci::use(on_hand),
         soci::use(reserved), soci::use(version), soci::use(it.sku), soci::use(expected));
    st.execute(true);
    if (st.get_affected_rows() != 1) return false;
  }
  for (const auto& r : changed) {
    if (!r.active()) {
      s << "DELETE FROM reservations WHERE sku = :s AND order_id = :o", soci::use(r.sku),
          soci::use(r.order_id);
      continue;
    }
    ll quantity = r.quantity, expires = r.expires_at_ms;
    std::string state = to_string(r.state);
    s << "INSERT INTO reservations (sku, order_id, quantity, state, expires_at_ms) "
         "VALUES (:s, :o, :q, :st, :e) ON CONFLICT (sku, order_id) DO UPDATE SET "
         "quantity = excluded.quantity, state = excluded.state, expires_at_ms = excluded.expires_at_ms",
        soci::use(r.sku), soci::use(r.order_id), soci::use(quantity), soci::use(state),
        soci::use(expires);
  }
  return true;
}

void ping(soci::session& s) {
  int one = 0;
  s << "SELECT 1", soci::into(one);
}

}  // namespace emporium

namespace emporium {

// --- cluster membership ------------------------------------------------------------------------

std::int64_t database_now_ms(soci::session& s) {
  ll now = 0;
  if (s.get_backend_name() == "postgresql")
    s << "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)", soci::into(now);
  else
    s << "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)", soci::into(now);
  return now;
}

std::int64_t register_member(soci::session& s, const MemberRow& me) {
  ll last = 0;
  soci::indicator ind = soci::i_null;
  s << "SELECT MAX(incarnation) FROM cluster_members WHERE name = :n", soci::into(last, ind),
      soci::use(me.name);
  ll incarnation = std::max<ll>(ind == soci::i_ok ? last : 0, me.incarnation) + 1;
  ll now = database_now_ms(s);
  s << "DELETE FROM cluster_members WHERE name = :n", soci::use(me.name);
  s << "INSERT INTO cluster_members (name, cluster_address, http_address, incarnation, status, "
       "heartbeat_ms) VALUES (:n, :c, :h, :i, 'up', :t)",
      soci::use(me.name), soci::use(me.cluster_address), soci::use(me.http_address),
      soci::use(incarnation), soci::use(now);
  return incarnation;
}

std::optional<MemberRow> member_row(soci::session& s, const std::string& name) {
  MemberRow row;
  ll inc = 0, beat = 0;
  soci::indicator found = soci::i_null;
  s << "SELECT name, cluster_address, http_address, incarnation, status, heartbeat_ms FROM cluster_members "
       "WHERE name = :n",
      soci::into(row.name, found), soci::into(row.cluster_address), soci::into(row.http_address),
      soci::into(inc), soci::into(row.status), soci::into(beat), soci::use(name);
  if (!s.got_data() || found != soci::i_ok) return std::nullopt;
  row.incarnation = inc;
  row.heartbeat_ms = beat;
  return row;
}

bool heartbeat_member(soci::session& s, const MemberRow& me, std::int64_t failure_timeout_ms,
                      std::vector<MemberRow>& out, std::int64_t& now_ms) {
  ll now = database_now_ms(s);
  ll inc = me.incarnation, o = me.active_order, i = me.active_inventory, p = me.active_payment;
  soci::statement beat = (s.prepare << "UPDATE cluster_members SET heartbeat_ms = :t, http_address = :h, "
                                       "active_order = :o, active_inventory = :i, active_payment = :p "
                                       "WHERE name = :n AND incarnation = :inc AND status = 'up'",
                          soci::use(now), soci::use(me.http_address), soci::use(o), soci::use(i),
                          soci::use(p), soci::use(me.name), soci::use(inc));
  beat.execute(true);
  bool alive = beat.get_affected_rows() == 1;
  ll stale = now - failure_timeout_ms;
  s << "UPDATE cluster_members SET status = 'down' WHERE status = 'up' AND heartbeat_ms < :stale",
      soci::use(stale);
  out.clear();
  MemberRow row;
  ll r_inc = 0, r_beat = 0, r_o = 0, r_i = 0, r_p = 0;
  soci::statement read = (s.prepare << "SELECT name, cluster_address, http_address, incarnation, status, "
                                       "heartbeat_ms, active_order, active_inventory, active_payment "
                                       "FROM cluster_members ORDER BY name",
                          soci::into(row.name), soci::into(row.cluster_address),
                          soci::into(row.http_address), soci::into(r_inc), soci::into(row.status),
                          soci::into(r_beat), soci::into(r_o), soci::into(r_i), soci::into(r_p));
  read.execute();
  while (read.fetch()) {
    row.incarnation = r_inc;
    row.heartbeat_ms = r_beat;
    row.active_order = r_o;
    row.active_inventory = r_i;
    row.active_payment = r_p;
    out.push_back(row);
  }
  now_ms = now;
  return alive;
}

void leave_member(soci::session& s, const std::string& name, std::int64_t incarnation) {
  ll inc = incarnation;
  s << "UPDATE cluster_members SET status = 'left' WHERE name = :n AND incarnation = :i",
      soci::use(name), soci::use(inc);
}

}  // namespace emporium

// --- entity writes as data -----------------------------------------------------------------------

namespace emporium {
namespace {

// Runs of writes to one entity that chain (each expects the version the previous produced) merge
// into one segment: the last state, written once, over the first expected version.
template <class W>
struct Segment {
  W write;
  std::vector<size_t> members;  // positions in the batch
};

const std::string& key_of(const OrderWrite& w) { return w.rec.id; }
const std::string& key_of(const PaymentWrite& w) { return w.rec.id; }
const std::string& key_of(const ItemWrite& w) { return w.item.sku; }
std::int64_t version_of(const OrderWrite& w) { return w.rec.version; }
std::int64_t version_of(const PaymentWrite& w) { return w.rec.version; }
std::int64_t version_of(const ItemWrite& w) { return w.item.version; }

void merge(OrderWrite& into, const OrderWrite& next) {
  into.rec = next.rec;
  into.lines = into.lines || next.lines;
  into.payment_intent = into.payment_intent || next.payment_intent;
  if (next.payment_outcome) into.payment_outcome = next.payment_outcome;
}
void merge(PaymentWrite& into, const PaymentWrite& next) { into.rec = next.rec; }
void merge(ItemWrite& into, const ItemWrite& next) {
  into.item = next.item;
  for (const auto& r : next.changed) {
    auto same = std::find_if(into.changed.begin(), into.changed.end(),
                             [&](const ReservationRecord& c) { return c.order_id == r.order_id; });
    if (same == into.changed.end()) into.changed.push_back(r);
    else *same = r;
  }
}

// Rounds of segments with at most one segment per entity each; a write that does not chain to the
// entity's previous one goes to the next round, so it is checked against what that one left.
template <class W>
std::vector<std::vector<Segment<W>>> plan(const std::vector<const EntityWrite*>& writes) {
  std::vector<std::vector<Segment<W>>> rounds;
  std::unordered_map<std::string, std::pair<size_t, size_t>> last;  // key: round, index
  for (size_t i = 0; i < writes.size(); ++i) {
    const W* w = std::get_if<W>(writes[i]);
    if (!w) continue;
    auto seen = last.find(key_of(*w));
    if (seen != last.end()) {
      auto& segment = rounds[seen->second.first][seen->second.second];
      if (w->expected == version_of(segment.write)) {
        merge(segment.write, *w);
        segment.members.push_back(i);
        continue;
      }
    }
    size_t round = seen == last.end() ? 0 : seen->second.first + 1;
    if (rounds.size() <= round) rounds.resize(round + 1);
    rounds[round].push_back({*w, {i}});
    last[key_of(*w)] = {round, rounds[round].size() - 1};
  }
  return rounds;
}

// The payment given with an order update is written first, and the order only if it was (or was
// already stored as given); an order insert takes none (as on PostgreSQL).
bool payment_written(soci::session& s, const PaymentRecord& p) {
  if (save_payment(s, p, p.version - 1)) return true;
  auto stored = load_payment(s, p.id);
  return stored && stored->version == p.version && stored->status == p.status;
}

bool save_one(soci::session& s, const OrderWrite& w) {
  if (w.expected > 0 && w.payment_outcome && !payment_written(s, *w.payment_outcome)) return false;
  if (!save_order(s, w.rec, w.expected, w.lines)) return false;
  if (w.payment_intent && w.rec.payment) save_payment(s, *w.rec.payment, 0);  // kept if stored
  return true;
}
bool save_one(soci::session& s, const PaymentWrite& w) { return save_payment(s, w.rec, w.expected); }
bool save_one(soci::session& s, const ItemWrite& w) {
  return save_item(s, w.item, w.expected, w.changed);
}

// PostgreSQL array literals for one text parameter each: `{"a","b"}` and `{1,2}`.
// Runs of a value without a quote or a backslash are copied whole.
std::string text_array(const std::vector<std::string>& values) {
  std::size_t size = 2;
  for (const auto& v : values) size += v.size() + 3;
  std::string out;
  out.reserve(size);
  out += '{';
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += '"';
    std::string_view rest = values[i];
    for (auto at = rest.find_first_of("\"\\"); at != std::string_view::npos;
         at = rest.find_first_of("\"\\")) {
      out += rest.substr(0, at);
      out += '\\';
      out += rest[at];
      rest.remove_prefix(at + 1);
    }
    out += rest;
    out += '"';
  }
  out += '}';
  return out;
}
std::string int_array(const std::vector<ll>& values) {
  std::string out;
  out.reserve(2 + values.size() * 12);
  out += '{';
  char digits[24];
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, values[i]);
    out.append(digits, end);
  }
  out += '}';
  return out;
}

// Marks the 1-based positions listed in `list` ("1,3") as applied in `out` (indexed from 0).
void mark_applied(const std::string& list, const std::vector<size_t>& positions,
                  std::vector<bool>& out) {
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    auto n = std::stoul(item);
    if (n >= 1 && n <= positions.size()) out[positions[n - 1]] = true;
  }
}

using Applied = std::shared_ptr<std::vector<bool>>;

// Columns of a batch, one array each, for the multi-row statements below.
struct Columns {
  std::vector<std::vector<std::string>> text;
  std::vector<std::vector<ll>> ints;
  Columns(size_t texts, size_t numbers) : text(texts), ints(numbers) {}
  std::vector<std::string> literals() const {
    std::vector<std::string> out;
    for (const auto& t : text) out.push_back(text_array(t));
    for (const auto& n : ints) out.push_back(int_array(n));
    return out;
  }
};

// Queues `sql`, whose parameters are the columns' arrays in order (text ones first), and whose one
// row lists the 1-based positions (in `which`) applied; they are marked in `ok` once it ran.
void queue_listing(StatementCache& cache, const std::string& sql, std::vector<std::string> values,
                   std::vector<size_t> which, const Applied& ok) {
  cache.queue(sql, std::move(values),
              [which = std::move(which), ok](const std::string& listed) { mark_applied(listed, which, *ok); });
}

constexpr const char* listed_positions = "SELECT coalesce(string_agg(CAST(n AS text), ','), '') FROM ";

// Positions of the segments that insert a new row and of those that update one.
template <class W>
std::pair<std::vector<size_t>, std::vector<size_t>> inserts_and_updates(
    const std::vector<Segment<W>>& segments) {
  std::pair<std::vector<size_t>, std::vector<size_t>> out;
  for (size_t i = 0; i < segments.size(); ++i)
    (segments[i].write.expected == 0 ? out.first : out.second).push_back(i);
  return out;
}

// A payment row as the payments insert takes it: 8 text columns, then 4 numbers.
void add_payment(Columns& c, const PaymentRecord& p) {
  const std::string* texts[] = {&p.id,    &p.order_id, &p.status,       &p.failure_reason,
                                &p.brand, &p.last4,    &p.provider_ref, &p.currency};
  for (size_t k = 0; k < std::size(texts); ++k) c.text[k].push_back(*texts[k]);
  c.ints[0].push_back(p.exp_month);
  c.ints[1].push_back(p.exp_year);
  c.ints[2].push_back(p.amount_cents);
  c.ints[3].push_back(p.version);
}

// Order rows go with their lines and, for a new payment, its pending record: each statement
// below writes those only for the order rows it wrote (kept by what the order write returned),
// so a batch of orders costs one statement for its inserts and one for its updates.
struct OrderChildren {
  Columns lines{2, 3};    // order_id, sku; line_no, quantity, unit_price_cents
  Columns intents{8, 4};  // as the payments insert below
};

OrderChildren children_of(const std::vector<Segment<OrderWrite>>& segments,
                          const std::vector<size_t>& which) {
  OrderChildren c;
  for (auto i : which) {
    const auto& w = segments[i].write;
    if (w.expected == 0 || w.lines) {
      ll line_no = 0;
      for (const auto& line : w.rec.lines) {
        c.lines.text[0].push_back(w.rec.id);
        c.lines.text[1].push_back(line.sku);
        c.lines.ints[0].push_back(line_no++);
        c.lines.ints[1].push_back(line.quantity);
        c.lines.ints[2].push_back(line.unit_price_cents);
      }
    }
    if (w.payment_intent && w.rec.payment) add_payment(c.intents, *w.rec.payment);
  }
  return c;
}

std::vector<std::string> values_of(std::initializer_list<const Columns*> columns) {
  std::vector<std::string> out;
  for (const auto* c : columns)
    for (auto& v : c->literals()) out.push_back(std::move(v));
  return out;
}

// Keeps the rows whose `key` is among the `column`s of the CTE `written`. A join would do, but the
// write sessions join only by nested loop (open_session: no hash or merge joins, so that no plan
// made for small tables scans them whole later), and a nested loop between two CTEs reads one side
// again for every row of the other: at 50 rows a side, 2,500 comparisons and as many reads of a
// stored row, about 40 % of a batch statement. A sublink that is not at the top of the WHERE (here
// under IS TRUE) is not made a join; it becomes a subplan, hashed (read once into a hash table)
// since the planner's estimate of a CTE's rows, 1 to 10, always fits in memory, and no setting
// turns that off. Keys are never null, so IS TRUE changes nothing else. The column is qualified,
// so that a CTE without it fails the statement instead of matching the outer row's own column.
std::string among(const std::string& key, const std::string& column, const std::string& written) {
  return "(" + key + " IN (SELECT w." + column + " FROM " + written + " w)) IS TRUE";
}

// `written` names the CTE whose rows (with an `id`) are the orders written. `fresh`: they are all
// new rows of this transaction, so none has lines yet: the lines are inserted as they are, without
// a delete of surplus lines or a conflict check (a speculative insert costs an index probe and a
// WAL record more per line). Orders are never deleted, so no line outlives its order.
std::string order_children_sql(const std::string& written, bool fresh) {
  std::string lines =
      "c AS (SELECT y.order_id, y.sku, y.line_no, y.quantity, y.unit_price_cents FROM "
      "unnest(CAST(:la AS text[]), CAST(:lb AS text[]), CAST(:lc AS bigint[]), "
      "CAST(:ld AS bigint[]), CAST(:le AS bigint[])) AS y(order_id, sku, line_no, quantity, "
      "unit_price_cents) WHERE " + among("y.order_id", "id", written) + "), ";
  if (fresh)
    lines += "l AS (INSERT INTO order_lines (order_id, sku, line_no, quantity, unit_price_cents) "
             "SELECT * FROM c), ";
  else
    lines += "d AS (DELETE FROM order_lines l USING (SELECT order_id, count(*) AS lines FROM c "
             "GROUP BY order_id) k WHERE l.order_id = k.order_id AND l.line_no >= k.lines), "
             "l AS (INSERT INTO order_lines (order_id, sku, line_no, quantity, unit_price_cents) "
             "SELECT * FROM c ON CONFLICT (order_id, line_no) DO UPDATE SET sku = excluded.sku, "
             "quantity = excluded.quantity, unit_price_cents = excluded.unit_price_cents), ";
  return lines +
         "p AS (INSERT INTO payments (id, order_id, status, failure_reason, brand, last4, "
         "provider_ref, currency, exp_month, exp_year, amount_cents, version) SELECT z.id, "
         "z.order_id, z.status, z.failure_reason, z.brand, z.last4, z.provider_ref, z.currency, "
         "z.exp_month, z.exp_year, z.amount_cents, z.version FROM unnest(CAST(:pa AS text[]), "
         "CAST(:pb AS text[]), CAST(:pc AS text[]), CAST(:pd AS text[]), CAST(:pe AS text[]), "
         "CAST(:pf AS text[]), CAST(:pg AS text[]), CAST(:ph AS text[]), CAST(:pi AS bigint[]), "
         "CAST(:pj AS bigint[]), CAST(:pk AS bigint[]), CAST(:pl AS bigint[])) AS z(id, order_id, "
         "status, failure_reason, brand, last4, provider_ref, currency, exp_month, exp_year, "
         "amount_cents, version) WHERE " + among("z.order_id", "id", written) +
         " ON CONFLICT (id) DO NOTHING) ";
}

Applied pg_orders(StatementCache& s, const std::vector<Segment<OrderWrite>>& segments) {
  auto ok = std::make_shared<std::vector<bool>>(segments.size(), false);
  auto [inserts, updates] = inserts_and_updates(segments);
  if (!inserts.empty()) {
    Columns c(6, 4);
    for (auto i : inserts) {
      const auto& r = segments[i].write.rec;
      c.text[0].push_back(r.id);
      c.text[1].push_back(r.customer_id);
      c.text[2].push_back(r.status);
      c.text[3].push_back(r.failure_reason);
      c.text[4].push_back(r.currency);
      c.text[5].push_back(r.payment ? r.payment->id : std::string{});
      c.ints[0].push_back(r.total_cents);
      c.ints[1].push_back(r.created_at_ms);
      c.ints[2].push_back(r.updated_at_ms);
      c.ints[3].push_back(r.version);
    }
    auto children = children_of(segments, inserts);
    queue_listing(s,
        "WITH x AS (SELECT * FROM unnest(CAST(:a AS text[]), CAST(:b AS text[]), CAST(:c AS text[]), "
        "CAST(:d AS text[]), CAST(:e AS text[]), CAST(:f AS text[]), CAST(:g AS bigint[]), "
        "CAST(:h AS bigint[]), CAST(:i AS bigint[]), CAST(:j AS bigint[])) WITH ORDINALITY "
        "AS t(id, customer_id, status, failure_reason, currency, payment_id, total_cents, "
        "created_at_ms, updated_at_ms, version, n)), "
        "i AS (INSERT INTO orders (id, customer_id, status, failure_reason, currency, payment_id, "
        "total_cents, created_at_ms, updated_at_ms, version) SELECT id, customer_id, status, "
        "failure_reason, currency, payment_id, total_cents, created_at_ms, updated_at_ms, version "
        "FROM x ON CONFLICT (id) DO NOTHING RETURNING id), " +
            order_children_sql("i", true) +
            "SELECT coalesce(string_agg(CAST(x.n AS text), ','), '') FROM x WHERE " +
            among("x.id", "id", "i"),
        values_of({&c, &children.lines, &children.intents}), inserts, ok);
  }
  if (!updates.empty()) {
    Columns c(5, 4);
    Columns outcomes(5, 1);  // order_id, id, status, failure_reason, provider_ref; version
    for (auto i : updates) {
      const auto& w = segments[i].write;
      if (const auto& p = w.payment_outcome) {
        outcomes.text[0].push_back(w.rec.id);
        outcomes.text[1].push_back(p->id);
        outcomes.text[2].push_back(p->status);
        outcomes.text[3].push_back(p->failure_reason);
        outcomes.text[4].push_back(p->provider_ref);
        outcomes.ints[0].push_back(p->version);
      }
      c.text[0].push_back(w.rec.id);
      c.text[1].push_back(w.rec.status);
      c.text[2].push_back(w.rec.failure_reason);
      c.text[3].push_back(w.rec.currency);
      c.text[4].push_back(w.rec.payment ? w.rec.payment->id : std::string{});
      c.ints[0].push_back(w.rec.total_cents);
      c.ints[1].push_back(w.rec.updated_at_ms);
      c.ints[2].push_back(w.rec.version);
      c.ints[3].push_back(w.expected);
    }
    auto children = children_of(segments, updates);
    queue_listing(s,
        "WITH x AS (SELECT * FROM unnest(CAST(:a AS text[]), CAST(:b AS text[]), CAST(:c AS text[]), "
        "CAST(:d AS text[]), CAST(:e AS text[]), CAST(:f AS bigint[]), CAST(:g AS bigint[]), "
        "CAST(:h AS bigint[]), CAST(:i AS bigint[])) WITH ORDINALITY AS t(id, status, "
        "failure_reason, currency, payment_id, total_cents, updated_at_ms, version, expected, n)), "
        // Decided payments written with their orders, each fenced by its version; an order
        // whose payment was not written is not written either.
        "z AS (SELECT * FROM unnest(CAST(:za AS text[]), CAST(:zb AS text[]), CAST(:zc AS text[]), "
        "CAST(:zd AS text[]), CAST(:ze AS text[]), CAST(:zf AS bigint[])) AS t(order_id, id, status, "
        "failure_reason, provider_ref, version)), "
        // (A payment already stored as given counts as written.)
        "pu AS (UPDATE payments p SET status = z.status, failure_reason = z.failure_reason, "
        "provider_ref = z.provider_ref, version = z.version FROM z "
        "WHERE p.id = z.id AND p.version = z.version - 1 RETURNING z.order_id), "
        "pw AS (SELECT z.order_id FROM z JOIN payments p ON p.id = z.id AND p.version = z.version "
        "AND p.status = z.status), "
        "u AS (UPDATE orders o SET status = x.status, failure_reason = x.failure_reason, "
        "currency = x.currency, payment_id = x.payment_id, total_cents = x.total_cents, "
        "updated_at_ms = x.updated_at_ms, version = x.version FROM x "
        "WHERE o.id = x.id AND o.version = x.expected AND (x.id NOT IN (SELECT order_id FROM z) "
        "OR x.id IN (SELECT order_id FROM pu) OR x.id IN (SELECT order_id FROM pw)) "
        "RETURNING x.n, o.id), " +
            order_children_sql("u", false) +
            "SELECT coalesce(string_agg(CAST(n AS text), ','), '') FROM u",
        values_of({&c, &outcomes, &children.lines, &children.intents}), updates, ok);
  }
  return ok;
}

Applied pg_payments(StatementCache& s, const std::vector<Segment<PaymentWrite>>& segments) {
  auto ok = std::make_shared<std::vector<bool>>(segments.size(), false);
  auto [inserts, updates] = inserts_and_updates(segments);
  if (!inserts.empty()) {
    Columns c(8, 4);
    for (auto i : inserts) add_payment(c, segments[i].write.rec);
    queue_listing(s,
        "WITH x AS (SELECT * FROM unnest(CAST(:a AS text[]), CAST(:b AS text[]), CAST(:c AS text[]), "
        "CAST(:d AS text[]), CAST(:e AS text[]), CAST(:f AS text[]), CAST(:g AS text[]), "
        "CAST(:h AS text[]), CAST(:i AS bigint[]), CAST(:j AS bigint[]), CAST(:k AS bigint[]), "
        "CAST(:l AS bigint[])) WITH ORDINALITY AS t(id, order_id, status, failure_reason, brand, "
        "last4, provider_ref, currency, exp_month, exp_year, amount_cents, version, n)), "
        "i AS (INSERT INTO payments (id, order_id, status, failure_reason, brand, last4, "
        "provider_ref, currency, exp_month, exp_year, amount_cents, version) SELECT id, order_id, "
        "status, failure_reason, brand, last4, provider_ref, currency, exp_month, exp_year, "
        "amount_cents, version FROM x ON CONFLICT (id) DO NOTHING RETURNING id), "
        "y AS (SELECT x.n FROM x WHERE " + among("x.id", "id", "i") + ") " +
            std::string(listed_positions) + "y",
        c.literals(), inserts, ok);
  }
  if (!updates.empty()) {
    Columns c(4, 2);
    for (auto i : updates) {
      const auto& w = segments[i].write;
      c.text[0].push_back(w.rec.id);
      c.text[1].push_back(w.rec.status);
      c.text[2].push_back(w.rec.failure_reason);
      c.text[3].push_back(w.rec.provider_ref);
      c.ints[0].push_back(w.rec.version);
      c.ints[1].push_back(w.expected);
    }
    queue_listing(s,
        "WITH x AS (SELECT * FROM unnest(CAST(:a AS text[]), CAST(:b AS text[]), CAST(:c AS text[]), "
        "CAST(:d AS text[]), CAST(:e AS bigint[]), CAST(:f AS bigint[])) WITH ORDINALITY "
        "AS t(id, status, failure_reason, provider_ref, version, expected, n)), "
        "u AS (UPDATE payments p SET status = x.status, failure_reason = x.failure_reason, "
        "provider_ref = x.provider_ref, version = x.version FROM x "
        "WHERE p.id = x.id AND p.version = x.expected RETURNING x.n) " +
            std::string(listed_positions) + "u",
        c.literals(), updates, ok);
  }
  return ok;
}

// Item rows go with their changed reservations, written only for the items the statement wrote.
Applied pg_items(StatementCache& s, const std::vector<Segment<ItemWrite>>& segments) {
  auto ok = std::make_shared<std::vector<bool>>(segments.size(), false);
  auto [inserts, updates] = inserts_and_updates(segments);
  auto columns = [&](const std::vector<size_t>& which, bool with_expected) {
    Columns c(3, with_expected ? 5 : 4);
    for (auto i : which) {
      const auto& w = segments[i].write;
      c.text[0].push_back(w.item.sku);
      c.text[1].push_back(w.item.name);
      c.text[2].push_back(w.item.currency);
      c.ints[0].push_back(w.item.price_cents);
      c.ints[1].push_back(w.item.on_hand);
      c.ints[2].push_back(w.item.reserved);
      c.ints[3].push_back(w.item.version);
      if (with_expected) c.ints[4].push_back(w.expected);
    }
    return c;
  };
  // A held or committed reservation is written; a released or shipped one is deleted (the
  // table keeps only the live ones). Deletes make a statement of their own shape, only for the
  // batches that have any: placements write none.
  struct Reservations {
    Columns live{3, 2};  // sku, order_id, state; quantity, expires_at_ms
    Columns gone{2, 0};  // sku, order_id
  };
  auto reservations = [&](const std::vector<size_t>& which) {
    Reservations r;
    for (auto i : which)
      for (const auto& res : segments[i].write.changed) {
        if (!res.active()) {
          r.gone.text[0].push_back(res.sku);
          r.gone.text[1].push_back(res.order_id);
          continue;
        }
        r.live.text[0].push_back(res.sku);
        r.live.text[1].push_back(res.order_id);
        r.live.text[2].push_back(to_string(res.state));
        r.live.ints[0].push_back(res.quantity);
        r.live.ints[1].push_back(res.expires_at_ms);
      }
    return r;
  };
  auto reservations_sql = [](const std::string& written, const Reservations& r) {
    std::string sql =
        "r AS (INSERT INTO reservations (sku, order_id, state, quantity, expires_at_ms) "
        "SELECT y.sku, y.order_id, y.state, y.quantity, y.expires_at_ms FROM "
        "unnest(CAST(:ra AS text[]), CAST(:rb AS text[]), CAST(:rc AS text[]), "
        "CAST(:rd AS bigint[]), CAST(:re AS bigint[])) AS y(sku, order_id, state, quantity, "
        "expires_at_ms) WHERE " + among("y.sku", "sku", written) +
        " ON CONFLICT (sku, order_id) DO UPDATE SET quantity = excluded.quantity, "
        "state = excluded.state, expires_at_ms = excluded.expires_at_ms) ";
    if (!r.gone.text[0].empty())
      sql += ", d AS (DELETE FROM reservations z USING unnest(CAST(:da AS text[]), "
             "CAST(:db AS text[])) AS y(sku, order_id) WHERE " + among("y.sku", "sku", written) +
             " AND z.sku = y.sku AND z.order_id = y.order_id) ";
    return sql;
  };
  auto values = [](const Columns& item, const Reservations& r) {
    return r.gone.text[0].empty() ? values_of({&item, &r.live}) : values_of({&item, &r.live, &r.gone});
  };
  if (!inserts.empty()) {
    auto c = columns(inserts, false);
    auto r = reservations(inserts);
    queue_listing(s,
        "WITH x AS (SELECT * FROM unnest(CAST(:a AS text[]), CAST(:b AS text[]), CAST(:c AS text[]), "
        "CAST(:d AS bigint[]), CAST(:e AS bigint[]), CAST(:f AS bigint[]), CAST(:g AS bigint[])) "
        "WITH ORDINALITY AS t(sku, name, currency, price_cents, on_hand, reserved, version, n)), "
        "i AS (INSERT INTO items (sku, name, currency, price_cents, on_hand, reserved, version) "
        "SELECT sku, name, currency, price_cents, on_hand, reserved, version FROM x "
        "ON CONFLICT (sku) DO NOTHING RETURNING sku), " +
            reservations_sql("i", r) +
            "SELECT coalesce(string_agg(CAST(x.n AS text), ','), '') FROM x WHERE " +
            among("x.sku", "sku", "i"),
        values(c, r), inserts, ok);
  }
  if (!updates.empty()) {
    auto c = columns(updates, true);
    auto r = reservations(updates);
    queue_listing(s,
        "WITH x AS (SELECT * FROM unnest(CAST(:a AS text[]), CAST(:b AS text[]), CAST(:c AS text[]), "
        "CAST(:d AS bigint[]), CAST(:e AS bigint[]), CAST(:f AS bigint[]), CAST(:g AS bigint[]), "
        "CAST(:h AS bigint[])) WITH ORDINALITY AS t(sku, name, currency, price_cents, on_hand, "
        "reserved, version, expected, n)), "
        "u AS (UPDATE items it SET name = x.name, currency = x.currency, price_cents = x.price_cents, "
        "on_hand = x.on_hand, reserved = x.reserved, version = x.version FROM x "
        "WHERE it.sku = x.sku AND it.version = x.expected RETURNING x.n, it.sku), " +
            reservations_sql("u", r) + "SELECT coalesce(string_agg(CAST(n AS text), ','), '') FROM u",
        values(c, r), updates, ok);
  }
  return ok;
}

Applied pg_save(StatementCache& s, const std::vector<Segment<OrderWrite>>& segments) {
  return pg_orders(s, segments);
}
Applied pg_save(StatementCache& s, const std::vector<Segment<PaymentWrite>>& segments) {
  return pg_payments(s, segments);
}
Applied pg_save(StatementCache& s, const std::vector<Segment<ItemWrite>>& segments) {
  return pg_items(s, segments);
}

// Which writes of a round were applied: filled in once the queued statements ran.
struct RoundResult {
  std::vector<std::vector<size_t>> members;  // per segment, its positions in the batch
  Applied ok;
};

template <class W>
void save_kind(soci::session& s, StatementCache* cache, const std::vector<const EntityWrite*>& writes,
               std::vector<bool>& applied, std::vector<RoundResult>& queued) {
  for (const auto& round : plan<W>(writes)) {
    std::vector<std::vector<size_t>> members;
    for (const auto& segment : round) members.push_back(segment.members);
    if (cache) {
      queued.push_back({std::move(members), pg_save(*cache, round)});
      continue;
    }
    for (size_t i = 0; i < round.size(); ++i) {
      bool ok = save_one(s, round[i].write);
      for (auto member : members[i]) applied[member] = ok;
    }
  }
}

}  // namespace

// On PostgreSQL every round's statements go to the server together, in one round trip.
std::vector<bool> save_entities(soci::session& s, const std::vector<const EntityWrite*>& writes,
                                StatementCache* cache) {
  std::vector<bool> applied(writes.size(), false);
  std::unique_ptr<StatementCache> own;
  if (s.get_backend_name() != "postgresql") {
    cache = nullptr;
  } else if (!cache) {
    own = std::make_unique<StatementCache>(s);
    cache = own.get();
  }
  std::vector<RoundResult> queued;
  try {
    save_kind<OrderWrite>(s, cache, writes, applied, queued);
    save_kind<PaymentWrite>(s, cache, writes, applied, queued);
    save_kind<ItemWrite>(s, cache, writes, applied, queued);
    if (cache) cache->run_queued();
  } catch (...) {
    if (cache) cache->discard_queued();  // not to run with a later batch
    throw;
  }
  for (const auto& round : queued)
    for (size_t i = 0; i < round.members.size(); ++i)
      for (auto member : round.members[i]) applied[member] = (*round.ok)[i];
  return applied;
}

namespace {

// SOCI's `:name` placeholders as libpq's `$1`, `$2`, ... in order of appearance (`::` casts and
// quoted text left alone); sets `count` to the number of placeholders.
std::string numbered_placeholders(const std::string& sql, int& count) {
  std::string out;
  count = 0;
  bool quoted = false;
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (c == '\'') quoted = !quoted;
    if (!quoted && c == ':' && i + 1 < sql.size() && sql[i + 1] == ':') {
      out += "::";
      ++i;
      continue;
    }
    if (!quoted && c == ':' && i + 1 < sql.size() && word(sql[i + 1])) {
      while (i + 1 < sql.size() && word(sql[i + 1])) ++i;
      out += "$" + std::to_string(++count);
      continue;
    }
    out += c;
  }
  return out;
}

// A PostgreSQL failure as SOCI reports it, so that callers tell a lost connection (class 08) from
// a failed statement as they do for SOCI's own.
[[noreturn]] void fail(PGconn* conn, const std::string& what, const char* sqlstate) {
  std::string message = what;
  if (conn && PQerrorMessage(conn) && *PQerrorMessage(conn)) message += ": " + std::string(PQerrorMessage(conn));
  // A connection that could not leave pipeline mode is of no use to SOCI any more: reported as
  // lost, so that its owner connects again.
  bool gone = !conn || PQstatus(conn) == CONNECTION_BAD || PQpipelineStatus(conn) != PQ_PIPELINE_OFF;
  throw soci::postgresql_soci_error(message, gone ? "08006" : (sqlstate ? sqlstate : "XX000"));
}

// Takes a command's result `r`; throws (see fail) unless it succeeded.
void command(PGconn* conn, PGresult* r, const char* what) {
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  auto* field = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string state = field ? field : "";
  PQclear(r);
  if (!ok) fail(conn, std::string(what) + " failed", state.empty() ? nullptr : state.c_str());
}

PGconn* connection_of(soci::session& s) {
  // static_cast: the SOCI library exports no type information for its backends.
  auto* backend = s.get_backend_name() == "postgresql"
                      ? static_cast<soci::postgresql_session_backend*>(s.get_backend())
                      : nullptr;
  if (!backend || !backend->conn_) throw soci::postgresql_soci_error("not a PostgreSQL session", "08003");
  return backend->conn_;
}

}  // namespace

struct StatementCache::Entry {
  std::string name;
  int params = 0;
  std::int64_t runs = 0;
  int queued = 0;  // runs waiting in the pipeline: it is not prepared again meanwhile
};

struct StatementCache::Queued {
  Entry* entry;
  std::vector<std::string> values;
  std::function<void(const std::string&)> on_row;
};

StatementCache::StatementCache(soci::session& s, std::int64_t runs_per_plan)
    : session_(s), runs_per_plan_(std::max<std::int64_t>(1, runs_per_plan)) {}

// The statements are deallocated on the server; on a lost connection the server dropped them.
StatementCache::~StatementCache() {
  try {
    auto* conn = connection_of(session_);
    if (PQstatus(conn) != CONNECTION_OK) return;
    for (auto& [_, entry] : entries_)
      if (entry) PQclear(PQexec(conn, ("DEALLOCATE " + entry->name).c_str()));
  } catch (...) {
  }
}

StatementCache::Entry& StatementCache::prepared(const std::string& sql) {
  auto slot = std::find_if(entries_.begin(), entries_.end(), [&](auto& e) { return e.first == sql; });
  if (slot == entries_.end()) slot = entries_.insert(entries_.end(), {sql, nullptr});
  auto& entry = slot->second;
  auto* conn = connection_of(session_);
  if (entry && entry->runs >= runs_per_plan_ && entry->queued == 0) {
    command(conn, PQexec(conn, ("DEALLOCATE " + entry->name).c_str()), "deallocating a statement");
    entry.reset();  // prepared again below
  }
  if (!entry) {
    auto fresh = std::make_unique<Entry>();
    static std::atomic<std::int64_t> next_name{1};  // unique on any connection, whatever the caches
    fresh->name = "emporium_batch_" + std::to_string(next_name++);
    auto text = numbered_placeholders(sql, fresh->params);
    command(conn, PQprepare(conn, fresh->name.c_str(), text.c_str(), fresh->params, nullptr),
            "preparing a statement");
    prepares_ += 1;
    entry = std::move(fresh);
  }
  return *entry;
}

void StatementCache::queue(const std::string& sql, std::vector<std::string> values,
                           std::function<void(const std::string&)> on_row) {
  auto& entry = prepared(sql);
  if (static_cast<int>(values.size()) != entry.params)
    throw soci::postgresql_soci_error("a statement got the wrong number of values", "42P02");
  entry.runs += 1;
  entry.queued += 1;
  queued_.push_back({&entry, std::move(values), std::move(on_row)});
}

void StatementCache::discard_queued() {
  for (auto& q : queued_) q.entry->queued = 0;
  queued_.clear();
}

void StatementCache::run_queued() {
  auto queued = std::move(queued_);
  queued_.clear();
  for (auto& q : queued) q.entry->queued = 0;
  if (queued.empty()) return;
  auto* conn = connection_of(session_);
  if (PQenterPipelineMode(conn) != 1) fail(conn, "entering pipeline mode failed", nullptr);
  bool sent = true;
  for (auto& q : queued) {
    std::vector<const char*> params;
    for (auto& v : q.values) params.push_back(v.c_str());
    if (PQsendQueryPrepared(conn, q.entry->name.c_str(), static_cast<int>(params.size()), params.data(),
                            nullptr, nullptr, 0) != 1) {
      sent = false;
      break;
    }
  }
  if (!sent || PQpipelineSync(conn) != 1) {
    PQexitPipelineMode(conn);
    fail(conn, "sending a batch failed", nullptr);
  }
  // Each statement's result, then a null; then the Sync's. After a failure the rest come back
  // aborted (skipped by the server) and the implicit transaction is rolled back.
  std::vector<std::string> rows(queued.size());
  std::string error_state;
  std::string error_message;
  size_t index = 0;
  bool got = false;
  int nulls = 0;
  for (;;) {
    PGresult* r = PQgetResult(conn);
    if (!r) {
      if (got) {
        ++index;
        got = false;
        nulls = 0;
        continue;
      }
      if (++nulls > 1 || PQstatus(conn) == CONNECTION_BAD) break;  // the connection is gone
      continue;
    }
    nulls = 0;
    auto status = PQresultStatus(r);
    if (status == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      break;
    }
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
      if (index < rows.size() && PQntuples(r) > 0 && PQnfields(r) > 0 && !PQgetisnull(r, 0, 0))
        rows[index] = PQgetvalue(r, 0, 0);
    } else if (error_state.empty() && status != PGRES_PIPELINE_ABORTED) {
      auto* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      error_state = state ? state : "XX000";
      error_message = PQresultErrorMessage(r);
    } else if (error_state.empty()) {
      error_state = "XX000";
    }
    got = true;
    PQclear(r);
  }
  bool complete = index == queued.size();
  PQexitPipelineMode(conn);
  if (!error_state.empty()) fail(conn, "a batch statement failed: " + error_message, error_state.c_str());
  if (!complete) fail(conn, "a batch got no answer", "08006");
  for (size_t i = 0; i < queued.size(); ++i)
    if (queued[i].on_row) queued[i].on_row(rows[i]);
}

}  // namespace emporium
