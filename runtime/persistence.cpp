// The persistence actor: group commit over one SOCI connection, reconnecting by itself.
#include "runtime/persistence.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include <caf/all.hpp>
#include <soci/soci.h>
#include <soci/postgresql/soci-postgresql.h>
#include <spdlog/spdlog.h>

#include "runtime/atoms.hpp"
#include "runtime/errors.hpp"
#include "runtime/fences.hpp"

namespace emporium {
namespace {

struct PendingWrite {
  std::function<bool(soci::session&)> apply;  // or, when empty, `entity`
  std::optional<EntityWrite> entity;
  caf::response_promise promise;
  caf::actor_id writer = 0;  // the actor that sent the entity write (0: unknown)
};

// Item writes refused by their version checks fence their writers (runtime/fences.hpp).

// Runs a batch in the caller's transaction: the closures in their order, then the entity writes
// together (they touch other tables than the closures do).
std::vector<bool> apply_batch(soci::session& session, StatementCache* statements,
                              std::vector<PendingWrite>& batch) {
  std::vector<bool> applied(batch.size());
  std::vector<const EntityWrite*> entities;
  std::vector<size_t> positions;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].apply) {
      applied[i] = batch[i].apply(session);
    } else {
      entities.push_back(&*batch[i].entity);
      positions.push_back(i);
    }
  }
  if (!entities.empty()) {
    auto saved = save_entities(session, entities, statements);
    for (size_t k = 0; k < positions.size(); ++k) applied[positions[k]] = saved[k];
  }
  return applied;
}

struct persistence_state {
  PersistenceSettings settings;
  std::optional<DbUrl> url;
  std::unique_ptr<soci::session> session;
  std::unique_ptr<StatementCache> statements;  // PostgreSQL: the batch statements, prepared once
  bool connected = false;
  std::chrono::steady_clock::time_point last_attempt{};
  std::vector<PendingWrite> batch;
  bool flush_scheduled = false;
  // The batch now open lingers: a timer tagged with `batches_started` will flush it (a timer left
  // from a batch that went early, full, is recognised by its tag and ignored).
  bool lingering = false;
  std::uint64_t batches_started = 0;
  CommitStats stats;
  ItemFences fences;
  static inline const char* name = "persistence";
};

const ItemWrite* item_write(const PendingWrite& w) {
  return w.entity && w.writer != 0 ? std::get_if<ItemWrite>(&*w.entity) : nullptr;
}

// Fences the writer of a refused item write (or moves its fence to this write's version).
void add_fence(persistence_state& st, const PendingWrite& w) {
  if (const auto* item = item_write(w))
    st.fences.add(w.writer, item->item.sku, item->item.version, std::chrono::steady_clock::now());
}

bool is_fenced(const persistence_state& st, const PendingWrite& w) {
  if (st.fences.empty()) return false;
  const auto* item = item_write(w);
  return item && st.fences.refuses(w.writer, item->item.sku, item->expected);
}

// Answers a write its writer's fence refuses, which fences the write after it in turn.
void refuse(persistence_state& st, PendingWrite& w) {
  add_fence(st, w);
  st.stats.conflicts += 1;
  w.promise.deliver(false);
}

// Drops fences past their time, then answers the writes a fence refuses and takes them out of the
// batch (runtime/fences.hpp). Nothing to do, and nothing copied, while there are no fences.
void refuse_fenced(persistence_state& st, std::vector<PendingWrite>& batch) {
  if (st.fences.empty()) return;
  st.fences.expire(std::chrono::steady_clock::now());
  auto fenced = [&st](const PendingWrite& w) { return is_fenced(st, w); };
  if (std::none_of(batch.begin(), batch.end(), fenced)) return;
  std::vector<PendingWrite> kept;
  kept.reserve(batch.size());
  for (auto& w : batch) {
    if (is_fenced(st, w)) refuse(st, w);
    else kept.push_back(std::move(w));
  }
  batch = std::move(kept);
}

using persistence_actor = caf::stateful_actor<persistence_state>;

const char* database_name(Database db) { return db == Database::orders ? "orders" : "inventory"; }

// True when the failure means the server or the connection is gone (retry later), as opposed to a
// bad statement. PostgreSQL tells by SQLSTATE class 08 (connection) or 57P (shutdown).
bool is_connection_failure(const std::exception& e, soci::session& session) {
  if (auto pg = dynamic_cast<const soci::postgresql_soci_error*>(&e)) {
    auto state = pg->sqlstate();
    if (state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0) return true;
  }
  if (auto se = dynamic_cast<const soci::soci_error*>(&e))
    if (se->get_error_category() == soci::soci_error::connection_error) return true;
  try {
    return !session.is_connected();
  } catch (...) {
    return true;
  }
}

bool connect(persistence_state& st) {
  st.last_attempt = std::chrono::steady_clock::now();
  st.statements.reset();  // before the session they were prepared on
  try {
    st.session = std::make_unique<soci::session>();
    auto name = st.settings.application_name;
    if (name.empty())
      name = std::string("emporium-") + database_name(st.settings.database) +
             (st.settings.snapshot_reads ? "-read" : "-write");
    open_session(*st.session, *st.url, st.settings.idle_in_transaction_ms, name);
    if (st.url->backend == Backend::postgresql)
      st.statements = std::make_unique<StatementCache>(*st.session);
    if (st.settings.migrate) migrate(*st.session, st.url->backend, st.settings.database);
    st.connected = true;
    spdlog::info("database {} connected", database_name(st.settings.database));
  } catch (const std::exception& e) {
    st.connected = false;
    spdlog::warn("database {} unavailable: {}", database_name(st.settings.database), e.what());
  }
  return st.connected;
}

bool ensure_connected(persistence_state& st) {
  if (st.connected) return true;
  auto since = std::chrono::steady_clock::now() - st.last_attempt;
  if (since < std::chrono::milliseconds(st.settings.reconnect_interval_ms)) return false;
  return connect(st);
}

void fail_all(std::vector<PendingWrite>& batch, const caf::error& err) {
  for (auto& w : batch) w.promise.deliver(err);
}

// A batch failed for a reason other than the connection: run each write alone so that one bad
// write does not fail the others.
void commit_one_by_one(persistence_state& st, std::vector<PendingWrite>& batch) {
  for (auto& w : batch) {
    if (is_fenced(st, w)) {  // the write before it, refused just now
      refuse(st, w);
      continue;
    }
    try {
      soci::transaction tx(*st.session);
      std::vector<PendingWrite> one;
      one.push_back({w.apply, w.entity, {}});
      bool applied = apply_batch(*st.session, st.statements.get(), one)[0];
      tx.commit();
      if (!applied) add_fence(st, w);
      w.promise.deliver(applied);
    } catch (const std::exception& e) {
      if (is_connection_failure(e, *st.session)) {
        st.connected = false;
        w.promise.deliver(make_error(errc::db_unavailable));
        continue;
      }
      spdlog::error("database {} write failed: {}", database_name(st.settings.database), e.what());
      w.promise.deliver(make_error(errc::db_failed, "write failed"));
    }
  }
}

void flush(persistence_state& st) {
  st.flush_scheduled = false;
  st.lingering = false;
  st.batches_started += 1;
  if (st.batch.empty()) return;
  auto batch = std::move(st.batch);
  st.batch.clear();
  refuse_fenced(st, batch);
  if (batch.empty()) return;
  if (!ensure_connected(st)) return fail_all(batch, make_error(errc::db_unavailable));
  std::vector<bool> applied;
  auto started = std::chrono::steady_clock::now();
  // The time spent on the batch, whatever came of it (a stall that ends in a lost connection is
  // what an operator most wants to see).
  auto timed = [&st, started, size = batch.size()] {
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
    st.stats.commit_seconds_total += took.count();
    st.stats.commit_seconds_max = std::max(st.stats.commit_seconds_max, took.count());
    if (took >= std::chrono::milliseconds(kSlowBatchMs))
      spdlog::warn("database {}: a batch of {} writes took {:.0f} ms to commit",
                   database_name(st.settings.database), size, took.count() * 1000);
  };
  try {
    // On PostgreSQL a batch of entity writes alone is one pipeline, its own transaction (see
    // StatementCache): no BEGIN and COMMIT round trips.
    bool one_pipeline = st.statements && std::none_of(batch.begin(), batch.end(),
                                                      [](const PendingWrite& w) { return bool(w.apply); });
    if (one_pipeline) {
      applied = apply_batch(*st.session, st.statements.get(), batch);
    } else {
      soci::transaction tx(*st.session);
      applied = apply_batch(*st.session, st.statements.get(), batch);
      tx.commit();
    }
  } catch (const std::exception& e) {
    if (is_connection_failure(e, *st.session)) {
      st.connected = false;
      timed();
      spdlog::warn("database {} lost: {}", database_name(st.settings.database), e.what());
      return fail_all(batch, make_error(errc::db_unavailable));
    }
    commit_one_by_one(st, batch);
    return timed();
  }
  timed();
  st.stats.batches += 1;
  st.stats.writes += static_cast<std::int64_t>(batch.size());
  st.stats.batch_size_max_seen =
      std::max(st.stats.batch_size_max_seen, static_cast<std::int64_t>(batch.size()));
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!applied[i]) {
      st.stats.conflicts += 1;
      add_fence(st, batch[i]);
    }
    batch[i].promise.deliver(static_cast<bool>(applied[i]));
  }
}

// Group commit shares a commit among the writes that queued while the one before ran. At a
// moderate rate that is only a few writes, and each commit costs the server about as much as a
// full one (a transaction, a WAL flush, a wake-up of its backend and of this thread): lingering
// briefly for more writes makes fewer, fuller batches. On PostgreSQL at about half of the maximum
// order rate, 500 µs took about a fifth less server CPU per order; on the 2-core benchmark machine
// it did not lower the latency, so it is off by default (bench/RESULTS.md, eighth run). Only
// batches of kLingerMin to kLingerBelow - 1 writes wait, once each.
void flush_or_linger(persistence_actor* self) {
  auto& st = self->state;
  auto size = static_cast<std::int64_t>(st.batch.size());
  if (st.settings.linger_us > 0 && !st.lingering && size >= kLingerMin && size < kLingerBelow) {
    st.lingering = true;
    st.stats.lingers += 1;
    self->delayed_send(self, std::chrono::microseconds(st.settings.linger_us), flush_atom::value,
                       st.batches_started);
    return;
  }
  flush(st);
}

// A write joins the open batch; answered once the batch committed.
caf::result<bool> enqueue(persistence_actor* self, PendingWrite write) {
  auto& st = self->state;
  if (!st.connected && !ensure_connected(st)) return make_error(errc::db_unavailable);
  write.promise = self->make_response_promise();
  auto rp = write.promise;
  st.batch.push_back(std::move(write));
  if (static_cast<std::int64_t>(st.batch.size()) >= st.settings.batch_size_max) {
    flush(st);
  } else if (!st.flush_scheduled) {
    // Queues behind every write already waiting: they all join this batch (and it may linger).
    st.flush_scheduled = true;
    self->send(self, flush_atom::value);
  }
  return rp;
}

caf::behavior persistence(persistence_actor* self, PersistenceSettings settings) {
  auto& st = self->state;
  st.settings = std::move(settings);
  st.url = parse_db_url(st.settings.url);
  if (!st.url) throw std::invalid_argument("bad database url");
  connect(st);
  // Stopping: the open batch is committed and answered first. Its writers were answered nothing
  // otherwise (CAF 0.17 drops a promise silently), and a lingering batch ignores a plain flush.
  // What is still in the mailbox is bounced to its senders as usual.
  self->set_exit_handler([self](const caf::exit_msg& msg) {
    if (!self->state.batch.empty()) flush(self->state);
    self->quit(msg.reason);
  });
  return {
      [=](db_write& w) -> caf::result<bool> {
        return enqueue(self, {std::move(w.apply), std::nullopt, {}});
      },
      [=](db_save& w) -> caf::result<bool> {
        const auto& sender = self->current_sender();
        return enqueue(self, {{}, std::move(w.write), {}, sender ? sender->id() : caf::actor_id{0}});
      },
      [=](flush_atom) {
        if (!self->state.lingering) flush_or_linger(self);
      },
      [=](flush_atom, std::uint64_t batch) {  // a lingering batch's time is up
        if (self->state.lingering && batch == self->state.batches_started) flush(self->state);
      },
      [=](db_read& r) -> caf::result<bool> {
        auto& st = self->state;
        if (!ensure_connected(st)) return make_error(errc::db_unavailable);
        bool snapshot = st.settings.snapshot_reads && st.url->backend == Backend::postgresql;
        try {
          if (snapshot) *st.session << "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
          r.run(*st.session);
          if (snapshot) *st.session << "COMMIT";
          return true;
        } catch (const std::exception& e) {
          if (snapshot) {
            try {
              *st.session << "ROLLBACK";
            } catch (...) {
            }
          }
          if (is_connection_failure(e, *st.session)) {
            st.connected = false;
            return make_error(errc::db_unavailable);
          }
          spdlog::error("database {} read failed: {}", database_name(st.settings.database),
                        e.what());
          return make_error(errc::db_failed, "read failed");
        }
      },
      [=](ping_atom) -> caf::result<bool> {
        auto& st = self->state;
        if (!ensure_connected(st)) return make_error(errc::db_unavailable);
        try {
          ping(*st.session);
          return true;
        } catch (...) {
          st.connected = false;
          return make_error(errc::db_unavailable);
        }
      },
      [=](stats_atom) { return self->state.stats; },
  };
}

}  // namespace

caf::actor spawn_persistence(caf::actor_system& system, PersistenceSettings settings) {
  return system.spawn<caf::detached>(persistence, std::move(settings));
}

}  // namespace emporium
