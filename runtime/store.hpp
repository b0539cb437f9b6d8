// SQL for the two databases (orders, inventory) over SOCI, in both dialects (SQLite, PostgreSQL).
// Plain synchronous functions on a session: the persistence actors call them on their own thread.
// Every update is fenced by the row version: it applies only when the stored version is the
// expected one, and reports false otherwise.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "runtime/records.hpp"

namespace soci {
class session;
}

namespace emporium {

enum class Backend { sqlite, postgresql };

struct DbUrl {
  Backend backend = Backend::sqlite;
  std::string path_or_uri;  // SQLite file path, or the libpq URI
};

// Parses `sqlite:PATH` or `postgresql://...` / `postgres://...`; nullopt when neither.
std::optional<DbUrl> parse_db_url(const std::string& url);

// Opens `session` (SQLite: WAL, synchronous=FULL, busy timeout; parent folder created). On
// PostgreSQL a transaction the client leaves open for `idle_in_transaction_ms` is ended by the
// server, connection and all: a node paused in the middle of one (SIGSTOP, a frozen VM) must not
// hold its row locks, and with them every other node's writes to those rows, until it resumes.
// On PostgreSQL `application_name`, when given, names the connection in the server's views
// (pg_stat_activity), unless the URL (`?application_name=...`) or PGAPPNAME names it.
void open_session(soci::session& session, const DbUrl& url,
                  std::int64_t idle_in_transaction_ms = 2'000,
                  const std::string& application_name = {});

enum class Database { orders, inventory };
// Applies the missing versioned migrations of `db` in one transaction each; returns how many ran.
int migrate(soci::session& session, Backend backend, Database db);

// --- orders database -------------------------------------------------------------------------
std::optional<OrderRecord> load_order(soci::session& s, const std::string& id);
// Inserts when expected_version is 0 (false when the row exists already), else updates;
// `rec.version` must be expected_version + 1.
// Lines are written on insert and when `write_lines`; the payment row is written with the order
// when present (its own version check included).
bool save_order(soci::session& s, const OrderRecord& rec, std::int64_t expected_version,
                bool write_lines);
// Own orders newest first; `before_id` empty for the first page.
std::vector<OrderRecord> list_orders(soci::session& s, const std::string& customer_id,
                                     const std::string& before_id, int limit);
// Ids of unfinished orders (pending, reserved, cancelling, shipping) last changed before the time:
// at most `limit`, in id order, after `after_id` (empty: from the first).
std::vector<std::string> unfinished_orders(soci::session& s, std::int64_t updated_before_ms,
                                           const std::string& after_id, std::int64_t limit);
// Skus with a held reservation expiring by the time: at most `limit`, in sku order, after
// `after_sku` (empty: from the first).
std::vector<std::string> skus_holding(soci::session& s, std::int64_t expiring_by_ms,
                                      const std::string& after_sku, std::int64_t limit);

std::optional<PaymentRecord> load_payment(soci::session& s, const std::string& id);
bool save_payment(soci::session& s, const PaymentRecord& rec, std::int64_t expected_version);

std::optional<IdempotencyRecord> load_idempotency(soci::session& s, const std::string& customer_id,
                                                  const std::string& key);
// Claims a key for the placement of `claim.order_id` (stored with status 0: running): nullopt
// when claimed, else the record stored already (running, or finished).
std::optional<IdempotencyRecord> claim_idempotency(soci::session& s, const IdempotencyRecord& claim);
// Stores a finished response over the key's running claim (of the same request), or as a new
// record; a finished record is kept (first response wins).
void save_idempotency(soci::session& s, const IdempotencyRecord& rec);
// Drops the key's claim while it is running for `order_id` (its placement did nothing: 503), so
// that a retry places anew.
void drop_idempotency_claim(soci::session& s, const std::string& customer_id, const std::string& key,
                            const std::string& order_id);
int purge_idempotency(soci::session& s, std::int64_t older_than_ms);

// --- inventory database ----------------------------------------------------------------------
struct ItemState {
  ItemRecord item;
  std::vector<ReservationRecord> reservations;  // active ones (held, committed)
};
std::optional<ItemState> load_item(soci::session& s, const std::string& sku);
// Writes the item (insert when expected_version is 0) and upserts the changed reservations.
bool save_item(soci::session& s, const ItemRecord& item, std::int64_t expected_version,
               const std::vector<ReservationRecord>& changed);

// --- entity writes as data ----------------------------------------------------------------------
// The actors' writes, described rather than run, so that a group commit can send a whole batch to
// PostgreSQL as a few multi-row statements instead of several statements per write.
struct OrderWrite {
  OrderRecord rec;
  std::int64_t expected = 0;  // see save_order
  bool lines = false;
  bool payment_intent = false;  // inserts rec.payment too (a new payment's pending record)
  // A decided payment written with an order update (its version is the new one; the stored one
  // is a version below). The order row is written only if this one is, or is already stored as
  // given: an update of the order with a payment that lost its version check is not applied.
  std::optional<PaymentRecord> payment_outcome;
};
struct PaymentWrite {
  PaymentRecord rec;
  std::int64_t expected = 0;
};
struct ItemWrite {
  ItemRecord item;
  std::int64_t expected = 0;
  std::vector<ReservationRecord> changed;
};
using EntityWrite = std::variant<OrderWrite, PaymentWrite, ItemWrite>;

// Applies `writes` in their order, inside the caller's transaction; entry i of the result tells
// whether writes[i] passed its version check (an insert whose row exists already did not). Writes
// to one entity that follow each other (each expecting the version the one before produced)
// stand or fall together, as one write of the last state. On PostgreSQL a batch costs a few
// statements per kind of row, whatever its size; on SQLite each write is applied in turn.
class StatementCache;
std::vector<bool> save_entities(soci::session& s, const std::vector<const EntityWrite*>& writes,
                                StatementCache* cache = nullptr);

// PostgreSQL statements prepared on a connection and run again with new values, which spares the
// server parsing and planning each run. Its owner keeps it beside the session and drops it before
// the session (a new connection needs a new cache).
//
// The statements of a batch are queued and then sent together in one round trip (libpq's pipeline
// mode), with one Sync at the end. Outside a transaction block they form one implicit transaction:
// all are applied or none. Inside one (soci::transaction) they join it. A batch of one write used to
// cost three round trips (BEGIN, the statement, COMMIT), and each is a wake-up of the server and of
// this thread: at 400 orders/s the median order took 4.8 ms with them and 2.8 ms without.
//
// Each statement is prepared again after `runs_per_plan` runs (once no run of it waits in the
// pipeline). Its plan (a generic one, see
// open_session) is made for the tables as they are when it is prepared, and PostgreSQL keeps it
// until the tables are analysed again. Prepared while the orders tables were analysed empty, the
// order update scanned the whole table for every batch: 16 ms a batch, 576 orders/s instead of
// 3,000, until autovacuum analysed them again up to a minute later.
class StatementCache {
 public:
  static constexpr std::int64_t kRunsPerPlan = 256;
  explicit StatementCache(soci::session& s, std::int64_t runs_per_plan = kRunsPerPlan);
  ~StatementCache();
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;
  // Queues `sql` (SOCI's `:name` placeholders, bound in order of appearance, as text) with
  // `values`; `on_row` gets the first column of its first row ("" when none) once it ran.
  void queue(const std::string& sql, std::vector<std::string> values,
             std::function<void(const std::string&)> on_row);
  // Runs what is queued in one round trip; on a failure nothing queued is applied, and it throws
  // soci::postgresql_soci_error with the failure's SQLSTATE ("08006" when the connection is gone).
  void run_queued();
  // Drops what is queued, unrun (after a failure while queueing).
  void discard_queued();
  // Times a statement was prepared on this connection, first time included (for tests).
  std::int64_t prepares() const { return prepares_; }

 private:
  struct Entry;
  struct Queued;
  Entry& prepared(const std::string& sql);
  soci::session& session_;
  std::int64_t runs_per_plan_;
  std::int64_t prepares_ = 0;
  std::vector<std::pair<std::string, std::unique_ptr<Entry>>> entries_;
  std::vector<Queued> queued_;
};

void ping(soci::session& s);

// --- cluster membership (orders database) ------------------------------------------------------
struct MemberRow {
  std::string name;
  std::string cluster_address;
  std::string http_address;
  std::int64_t incarnation = 0;
  std::string status;  // up, down (declared by a peer), left
  std::int64_t heartbeat_ms = 0;  // the database's clock, so nodes' clocks need not agree
  std::int64_t active_order = 0;
  std::int64_t active_inventory = 0;
  std::int64_t active_payment = 0;
};
// The database's wall clock in milliseconds.
std::int64_t database_now_ms(soci::session& s);
// Registers `me` (inside the caller's transaction) with a new incarnation (above any before it, and above me.incarnation), up.
std::int64_t register_member(soci::session& s, const MemberRow& me);
// The member row of `name`, if there is one.
std::optional<MemberRow> member_row(soci::session& s, const std::string& name);
// One heartbeat: refreshes my row (false when it is no longer mine and up: declared down), marks
// members silent past the timeout down, and reads every row into `out`.
bool heartbeat_member(soci::session& s, const MemberRow& me, std::int64_t failure_timeout_ms,
                      std::vector<MemberRow>& out, std::int64_t& now_ms);
void leave_member(soci::session& s, const std::string& name, std::int64_t incarnation);

}  // namespace emporium
