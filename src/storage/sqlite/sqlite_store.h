// SqliteStore: the embedded default Store on SQLite (WAL, synchronous=FULL).
// Thread-safety: all methods may be called concurrently (see store.h).
#pragma once

#include <memory>
#include <string>

#include "storage/store.h"

namespace phigate::storage {

struct SqliteOptions {
  std::string path;              // database file; created (0600) if missing
  int read_connections = 4;      // pool of read-only connections
  int busy_timeout_ms = 5000;    // wait for another process's write lock
};

// Opens (creating and migrating if needed) the database.
Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options);

}  // namespace phigate::storage
