// SqliteStore: the embedded default Store on SQLite (WAL, synchronous=FULL).
//
// One write connection serializes writes in this process (SQLite's file lock serializes
// them across processes); a pool of read-only connections serves reads in parallel. The
// database and its -wal/-shm files are owner-only (0600) regardless of umask, and a symlink
// at `path` is refused.
// Thread-safety: all methods may be called concurrently (see store.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/clock.h"
#include "storage/store.h"

namespace phigate::storage {

struct SqliteOptions {
  std::string path;          // database file; created (0600) if missing
  int read_connections = 4;  // pool of read-only connections (at least 1)
  // How long a call waits for another process's write lock, or for a free read connection,
  // before answering kUnavailable.
  int busy_timeout_ms = 5000;
  // Bytes of ciphertext kept in memory for the newest versions of hot resources (see
  // current_cache.h); 0 disables. Enable only in the process that owns the data dir
  // (`serve` holds its lock), since the cache assumes it sees every resource write.
  int64_t current_cache_bytes = 0;
  // Page cache of the write connection (SQLite's cache_size; 0 keeps SQLite's 2 MB
  // default). A write changes pages of several b-trees (the version, the current pointer,
  // and two b-trees per search index entry, ~60 entries per resource), and a batch of
  // writes (AppendVersions) many more; with the default cache the writer re-reads them
  // from the OS for every statement. Measured with `phigate import` of 120,000 synthetic
  // resources (bench/search_bench.sh 20000): 58 s with the default, 44 s with 64 MiB
  // (256 MiB: no better). Memory is taken only as pages are used.
  int64_t write_cache_bytes = 64 * 1024 * 1024;
  // Stamps the revocation time of sessions revoked by RevokeRefreshFamily and
  // RevokeUserSessions (the calls that carry no time), which RevokedFamiliesSince compares
  // against. nullptr: the system clock. Not owned; must outlive the store. A test that
  // passes fake times to RevokedFamiliesSince passes its FakeClock here.
  const Clock* clock = nullptr;
  // Sessions (refresh token families) that ended (absolute expiry) longer than this before
  // a new session's auth_time are deleted with their tokens when that session is created.
  // Their tokens can no longer be used, and access tokens issued from them are expired by
  // then; only their rows would remain, growing without bound.
  int64_t ended_session_retention_ms = 24LL * 60 * 60 * 1000;
};

// Opens (creating and migrating if needed) the database.
Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options);

}  // namespace phigate::storage
