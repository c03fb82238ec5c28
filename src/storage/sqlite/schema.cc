#include "storage/sqlite/schema.h"

#include <array>

#include "core/log.h"

namespace phigate::storage::sqlite {
namespace {

// STRICT tables (https://www.sqlite.org/stricttables.html): a value of the wrong type is an
// error instead of being stored as whatever it happens to be, so ciphertext can never end
// up as TEXT and versions never as strings.
//
// resource_versions: one row per version. seq is AUTOINCREMENT so a seq is never reused,
// not even after the newest row is removed: History paging cursors (before_seq) stay
// meaningful. Two indexes serve History newest-first for a type and for one resource.
//
// resource_current: the newest version per resource, so ReadCurrent is one primary-key
// lookup plus one lookup through UNIQUE(type, id, version). The foreign key makes a
// "current" pointer to a version that does not exist impossible.
constexpr Sql kMigration1InitialSchema{"migration_1_initial_schema", R"sql(
CREATE TABLE resource_versions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  type TEXT NOT NULL CHECK (length(type) > 0),
  id TEXT NOT NULL CHECK (length(id) > 0),
  version INTEGER NOT NULL CHECK (version >= 1),
  last_updated_ms INTEGER NOT NULL,
  deleted INTEGER NOT NULL CHECK (deleted IN (0, 1)),
  key_version INTEGER NOT NULL CHECK (key_version BETWEEN 0 AND 4294967295),
  ciphertext BLOB NOT NULL,
  UNIQUE (type, id, version)
) STRICT;
CREATE INDEX resource_versions_by_type_seq ON resource_versions (type, seq);
CREATE INDEX resource_versions_by_resource_seq ON resource_versions (type, id, seq);
CREATE TABLE resource_current (
  type TEXT NOT NULL,
  id TEXT NOT NULL,
  version INTEGER NOT NULL,
  PRIMARY KEY (type, id),
  FOREIGN KEY (type, id, version) REFERENCES resource_versions (type, id, version)
) STRICT, WITHOUT ROWID;
CREATE TABLE clients (
  client_id TEXT PRIMARY KEY NOT NULL CHECK (length(client_id) > 0),
  name TEXT NOT NULL,
  secret_hash TEXT NOT NULL,
  scope TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  disabled INTEGER NOT NULL CHECK (disabled IN (0, 1))
) STRICT;
CREATE TABLE data_keys (
  version INTEGER PRIMARY KEY CHECK (version BETWEEN 0 AND 4294967295),
  wrapped BLOB NOT NULL
) STRICT;
PRAGMA user_version = 1;
)sql"};

struct Migration {
  int to_version;
  const Sql* sql;
};

// Append only: a released migration never changes, a new schema is a new entry.
constexpr std::array kMigrations{
    Migration{1, &kMigration1InitialSchema},
};
static_assert(kMigrations.back().to_version == kSchemaVersion);

constexpr Sql kReadUserVersion{"read_user_version", "PRAGMA user_version"};

}  // namespace

Status Migrate(Connection& connection) {
  // One IMMEDIATE transaction: two processes starting on a fresh file at once serialize
  // here, and the second finds the schema already in place.
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginImmediate(connection));
  ASSIGN_OR_RETURN(int64_t version, connection.QueryInt64(kReadUserVersion));
  if (version > kSchemaVersion) {
    Log(LogLevel::kError, "storage.schema_too_new",
        {{"found", version}, {"supported", kSchemaVersion}});
    return Internal("the database was written by a newer version of phigate");
  }
  if (version < 0) {
    Log(LogLevel::kError, "storage.schema_version_invalid", {{"found", version}});
    return Internal("storage error");
  }
  for (const Migration& migration : kMigrations) {
    if (migration.to_version <= version) continue;
    RETURN_IF_ERROR(connection.Exec(*migration.sql));
    Log(LogLevel::kInfo, "storage.migrated",
        {{"to_version", migration.to_version}, {"migration", migration.sql->name}});
  }
  return transaction.Commit();
}

}  // namespace phigate::storage::sqlite
