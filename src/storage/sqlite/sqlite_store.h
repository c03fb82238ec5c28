// SqliteStore: the embedded default Store on SQLite (WAL, synchronous=FULL).
//
// One write connection serializes writes in this process (SQLite's file lock serializes
// them across processes); a pool of read-only connections serves reads in parallel. The
// database and its -wal/-shm files are owner-only (0600) regardless of umask, and a symlink
// at `path` is refused.
// Thread-safety: all methods may be called concurrently (see store.h).
#pragma once

#include <memory>
#include <string>

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
};

// Opens (creating and migrating if needed) the database.
Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options);

}  // namespace phigate::storage
