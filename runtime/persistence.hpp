// Persistence actors: one per database, on its own thread (`detached`: SOCI blocks), owning one
// connection. Writes are group-committed: each write joins the open batch and the whole batch
// commits in one transaction; every writer is answered only after that commit.
//
// Protocol (all jobs are closures run on the actor's connection; local only):
//   db_write -> bool     true: applied; false: a version check failed (another owner wrote first)
//   db_save  -> bool     the same for an entity write given as data (see save_entities): a batch
//                        of them costs PostgreSQL a few multi-row statements
//   db_read  -> bool     (true) the closure stored its result where the caller can read it
//   ping     -> bool     (true) the database answers
// Failures: errc::db_unavailable while the database cannot be reached (retried by the caller;
// the actor reconnects on its own), errc::db_failed when a job's SQL fails otherwise.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include "runtime/store.hpp"

namespace soci {
class session;
}

namespace emporium {

struct db_write {
  std::function<bool(soci::session&)> apply;
};
struct db_save {
  EntityWrite write;
};
struct db_read {
  std::function<void(soci::session&)> run;
};

struct PersistenceSettings {
  std::string url;  // sqlite:PATH or postgresql://...
  Database database = Database::orders;
  std::int64_t batch_size_max = 256;
  std::int64_t reconnect_interval_ms = 1000;
  bool migrate = true;  // one connection per database migrates; the node waits for it to answer
  std::int64_t idle_in_transaction_ms = 2000;  // see open_session
  // A batch of kLingerMin to kLingerBelow - 1 writes waits this long, once, for more writes to
  // join it before it is committed (0: never waits). See flush_or_linger in persistence.cpp.
  std::int64_t linger_us = 0;
  // Each db_read in one read-only snapshot (REPEATABLE READ on PostgreSQL): for a connection that
  // only reads beside the writers (NodeContext::orders_reader), whose reads of several statements
  // must not see a commit land between two of them. A write connection needs none: no commit of
  // its own lands while it reads.
  bool snapshot_reads = false;
  // The connection's name on PostgreSQL (open_session); empty: `emporium-orders-write`,
  // `emporium-inventory-read` and so on, by database and snapshot_reads.
  std::string application_name = {};
};

// The batches that linger: a lone write does not (the rate is low: nothing would join it, and it
// would only be late), nor does a batch of kLingerBelow or more (its commit is already shared).
inline constexpr std::int64_t kLingerMin = 2;
inline constexpr std::int64_t kLingerBelow = 16;

// Spawns the actor; it connects and migrates at once (failures make it start unavailable).
caf::actor spawn_persistence(caf::actor_system& system, PersistenceSettings settings);

// Figures of the group commit, for /metrics and the benchmarks.
struct CommitStats {
  std::int64_t batches = 0;
  std::int64_t writes = 0;
  std::int64_t batch_size_max_seen = 0;
  std::int64_t conflicts = 0;
  double commit_seconds_total = 0;  // time spent writing batches, from sending to the commit's answer
  double commit_seconds_max = 0;    // the slowest batch so far
  std::int64_t lingers = 0;         // batches that waited for more writes (linger_us)
};

// A batch slower than this is logged (a warning with its size and time): on a healthy server a
// batch takes a millisecond or two, and a stall here holds every write waiting behind it.
inline constexpr std::int64_t kSlowBatchMs = 100;

}  // namespace emporium

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::db_write)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::db_save)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::db_read)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::CommitStats)
