// The SQLite schema and its migrations.
//
// PRAGMA user_version records the schema version; each migration is a named SQL constant
// that ends by setting it, so a migration and its version bump commit together. Columns
// follow DESIGN.md "Storage and keys": the resource body exists only as ciphertext; the
// plaintext columns are type, id, version, lastUpdated, deleted, key version and seq.
// Thread-safety: Migrate runs on the write connection under its owner's exclusion; it takes
// the database write lock, so processes opening the same file at once migrate it once.
#pragma once

#include "core/status.h"
#include "storage/sqlite/connection.h"

namespace phigate::storage::sqlite {

// The schema version this build writes and understands.
inline constexpr int kSchemaVersion = 4;

// Brings the database up to kSchemaVersion. Refuses a database written by a newer build
// (its schema may carry meaning this build would ignore).
Status Migrate(Connection& connection);

}  // namespace phigate::storage::sqlite
