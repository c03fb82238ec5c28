#include "storage/sqlite/sqlite_store.h"

#include <chrono>
#include <cstdint>
#include <limits>
#include <mutex>
#include <utility>

#include "core/log.h"
#include "storage/sqlite/connection.h"
#include "storage/sqlite/current_cache.h"
#include "storage/sqlite/private_file.h"
#include "storage/sqlite/read_pool.h"
#include "storage/sqlite/schema.h"

namespace phigate::storage {
namespace {

using sqlite::Connection;
using sqlite::ConnectionRole;
using sqlite::ReadPool;
using sqlite::Sql;
using sqlite::Statement;
using sqlite::Transaction;

// --- resource versions -------------------------------------------------------------------
// Every SELECT of a version lists the columns in the order ReadVersionRow expects.

constexpr Sql kSelectCurrentVersion{
    "select_current_version", "SELECT version FROM resource_current WHERE type = ?1 AND id = ?2"};

constexpr Sql kInsertVersion{
    "insert_version",
    "INSERT INTO resource_versions"
    " (type, id, version, last_updated_ms, deleted, key_version, ciphertext)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING seq"};

constexpr Sql kUpsertCurrent{"upsert_current",
                             "INSERT INTO resource_current (type, id, version) VALUES (?1, ?2, ?3)"
                             " ON CONFLICT (type, id) DO UPDATE SET version = excluded.version"};

constexpr Sql kSelectCurrent{
    "select_current",
    "SELECT v.seq, v.type, v.id, v.version, v.last_updated_ms, v.deleted, v.key_version,"
    " v.ciphertext"
    " FROM resource_current AS c JOIN resource_versions AS v"
    " ON v.type = c.type AND v.id = c.id AND v.version = c.version"
    " WHERE c.type = ?1 AND c.id = ?2"};

constexpr Sql kSelectVersion{
    "select_version",
    "SELECT seq, type, id, version, last_updated_ms, deleted, key_version, ciphertext"
    " FROM resource_versions WHERE type = ?1 AND id = ?2 AND version = ?3"};

// Instance and type history: each has an index on (type[, id], seq), so both walk the
// index backwards from before_seq and stop after LIMIT rows.
constexpr Sql kHistoryInstance{
    "history_instance",
    "SELECT seq, type, id, version, last_updated_ms, deleted, key_version, ciphertext"
    " FROM resource_versions WHERE type = ?1 AND id = ?2 AND seq < ?3"
    " ORDER BY seq DESC LIMIT ?4"};

constexpr Sql kHistoryType{
    "history_type",
    "SELECT seq, type, id, version, last_updated_ms, deleted, key_version, ciphertext"
    " FROM resource_versions WHERE type = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"};

// --- clients and data keys ---------------------------------------------------------------

constexpr Sql kInsertClient{"insert_client",
                            "INSERT INTO clients"
                            " (client_id, name, secret_hash, scope, created_ms, disabled)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"};

constexpr Sql kSelectClient{"select_client",
                            "SELECT client_id, name, secret_hash, scope, created_ms, disabled"
                            " FROM clients WHERE client_id = ?1"};

constexpr Sql kInsertDataKey{"insert_data_key",
                             "INSERT INTO data_keys (version, wrapped) VALUES (?1, ?2)"};

constexpr Sql kSelectDataKeys{"select_data_keys",
                              "SELECT version, wrapped FROM data_keys ORDER BY version"};

// Reads the schema table, so it starts a real read transaction on the file (and the WAL
// index) rather than only exercising the library.
constexpr Sql kHealthCheck{"health_check", "SELECT count(*) FROM sqlite_master"};

Status VersionConflict() { return {StatusCode::kConflict, "version conflict"}; }

// Gives a unique-violation conflict from StatusFromSqlite its caller-specific message.
Status RenameConflict(Status status, const char* message) {
  if (status.code() == StatusCode::kConflict) return {StatusCode::kConflict, message};
  return status;
}

Result<uint32_t> ToKeyVersion(int64_t value) {
  // The schema's CHECK keeps this in range; a value outside means the file was altered.
  if (value < 0 || value > std::numeric_limits<uint32_t>::max()) {
    Log(LogLevel::kError, "storage.key_version_out_of_range");
    return Internal("storage error");
  }
  return static_cast<uint32_t>(value);
}

Result<VersionRecord> ReadVersionRow(const Statement& row) {
  VersionRecord record;
  record.seq = row.ColumnInt64(0);
  record.type = row.ColumnText(1);
  record.id = row.ColumnText(2);
  record.version = row.ColumnInt64(3);
  record.last_updated_ms = row.ColumnInt64(4);
  record.deleted = row.ColumnInt64(5) != 0;
  ASSIGN_OR_RETURN(record.key_version, ToKeyVersion(row.ColumnInt64(6)));
  record.ciphertext = row.ColumnBlob(7);
  return record;
}

// Steps a SELECT that returns at most one version.
Result<std::optional<VersionRecord>> ReadOptionalVersion(Statement& statement) {
  ASSIGN_OR_RETURN(bool has_row, statement.Step());
  if (!has_row) return std::optional<VersionRecord>();
  ASSIGN_OR_RETURN(VersionRecord record, ReadVersionRow(statement));
  return std::optional<VersionRecord>(std::move(record));
}

class SqliteStore final : public Store {
 public:
  SqliteStore(std::unique_ptr<Connection> writer, std::vector<std::unique_ptr<Connection>> readers,
              std::chrono::milliseconds read_wait, int64_t cache_bytes)
      : read_wait_(read_wait),
        cache_(cache_bytes),
        writer_(std::move(writer)),
        readers_(std::move(readers)) {}

  Result<std::optional<VersionRecord>> ReadCurrent(const std::string& type,
                                                   const std::string& id) override {
    if (auto cached = cache_.Get(type, id)) return cached;
    const uint64_t generation = cache_.Generation(type, id);
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(kSelectCurrent));
    select.BindText(1, type).BindText(2, id);
    ASSIGN_OR_RETURN(std::optional<VersionRecord> record, ReadOptionalVersion(select));
    if (record) cache_.Fill(*record, generation);
    return record;
  }

  Result<std::optional<VersionRecord>> ReadVersion(const std::string& type, const std::string& id,
                                                   int64_t version) override {
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(kSelectVersion));
    select.BindText(1, type).BindText(2, id).BindInt64(3, version);
    return ReadOptionalVersion(select);
  }

  Result<int64_t> AppendVersion(const VersionRecord& record, int64_t expected_version) override {
    if (record.type.empty() || record.id.empty()) {
      return InvalidArgument("a resource version needs a type and an id");
    }
    // The upper bound keeps expected_version + 1 from overflowing.
    if (expected_version < 0 || expected_version == std::numeric_limits<int64_t>::max() ||
        record.version != expected_version + 1) {
      return InvalidArgument("the new version must follow the expected version");
    }
    if (record.deleted && !record.ciphertext.empty()) {
      return InvalidArgument("a deleted version carries no content");
    }

    std::lock_guard lock(write_mutex_);
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginImmediate(*writer_));
    // Check and write under one write lock: nothing (thread or process) can append between.
    int64_t current_version = 0;
    {
      ASSIGN_OR_RETURN(Statement select, writer_->Prepare(kSelectCurrentVersion));
      select.BindText(1, record.type).BindText(2, record.id);
      ASSIGN_OR_RETURN(bool exists, select.Step());
      if (exists) current_version = select.ColumnInt64(0);
    }
    // Returning drops the transaction, which rolls back: nothing changed.
    if (current_version != expected_version) return VersionConflict();

    int64_t seq = 0;
    {
      ASSIGN_OR_RETURN(Statement insert, writer_->Prepare(kInsertVersion));
      insert.BindText(1, record.type)
          .BindText(2, record.id)
          .BindInt64(3, record.version)
          .BindInt64(4, record.last_updated_ms)
          .BindInt64(5, record.deleted ? 1 : 0)
          .BindInt64(6, record.key_version)
          .BindBlob(7, record.ciphertext);
      auto returned = insert.Step();
      if (!returned.ok()) return RenameConflict(returned.status(), "version conflict");
      if (!*returned) return Internal("storage error");  // RETURNING always yields a row
      seq = insert.ColumnInt64(0);
      RETURN_IF_ERROR(insert.Run());
    }
    {
      ASSIGN_OR_RETURN(Statement upsert, writer_->Prepare(kUpsertCurrent));
      upsert.BindText(1, record.type).BindText(2, record.id).BindInt64(3, record.version);
      RETURN_IF_ERROR(upsert.Run());
    }
    RETURN_IF_ERROR(transaction.Commit());
    VersionRecord committed = record;
    committed.seq = seq;
    cache_.Written(committed);
    return seq;
  }

  Result<std::vector<VersionRecord>> History(const HistoryQuery& query) override {
    if (query.type.empty()) return InvalidArgument("history needs a resource type");
    if (query.limit < 0 || query.before_seq < 0) {
      return InvalidArgument("invalid history page");
    }
    std::vector<VersionRecord> records;
    if (query.limit == 0) return records;
    const int64_t before =
        query.before_seq > 0 ? query.before_seq : std::numeric_limits<int64_t>::max();

    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    const bool instance = !query.id.empty();
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(instance ? kHistoryInstance : kHistoryType));
    if (instance) {
      select.BindText(1, query.type)
          .BindText(2, query.id)
          .BindInt64(3, before)
          .BindInt64(4, query.limit);
    } else {
      select.BindText(1, query.type).BindInt64(2, before).BindInt64(3, query.limit);
    }
    while (true) {
      ASSIGN_OR_RETURN(bool has_row, select.Step());
      if (!has_row) break;
      ASSIGN_OR_RETURN(VersionRecord record, ReadVersionRow(select));
      records.push_back(std::move(record));
    }
    return records;
  }

  Status PutClient(const ClientRecord& client) override {
    if (client.client_id.empty()) return InvalidArgument("a client needs a client_id");
    std::lock_guard lock(write_mutex_);
    // One statement in autocommit mode is its own transaction, durable when Run returns.
    ASSIGN_OR_RETURN(Statement insert, writer_->Prepare(kInsertClient));
    insert.BindText(1, client.client_id)
        .BindText(2, client.name)
        .BindText(3, client.secret_hash)
        .BindText(4, client.scope)
        .BindInt64(5, client.created_ms)
        .BindInt64(6, client.disabled ? 1 : 0);
    return RenameConflict(insert.Run(), "client already exists");
  }

  Result<std::optional<ClientRecord>> GetClient(const std::string& client_id) override {
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(kSelectClient));
    select.BindText(1, client_id);
    ASSIGN_OR_RETURN(bool has_row, select.Step());
    if (!has_row) return std::optional<ClientRecord>();
    ClientRecord client;
    client.client_id = select.ColumnText(0);
    client.name = select.ColumnText(1);
    client.secret_hash = select.ColumnText(2);
    client.scope = select.ColumnText(3);
    client.created_ms = select.ColumnInt64(4);
    client.disabled = select.ColumnInt64(5) != 0;
    return std::optional<ClientRecord>(std::move(client));
  }

  Result<std::vector<DataKeyRecord>> LoadDataKeys() override {
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(kSelectDataKeys));
    std::vector<DataKeyRecord> keys;
    while (true) {
      ASSIGN_OR_RETURN(bool has_row, select.Step());
      if (!has_row) break;
      DataKeyRecord key;
      ASSIGN_OR_RETURN(key.version, ToKeyVersion(select.ColumnInt64(0)));
      key.wrapped = select.ColumnBlob(1);
      keys.push_back(std::move(key));
    }
    return keys;
  }

  Status SaveDataKey(const DataKeyRecord& key) override {
    if (key.wrapped.empty()) return InvalidArgument("a data key needs its wrapped bytes");
    std::lock_guard lock(write_mutex_);
    ASSIGN_OR_RETURN(Statement insert, writer_->Prepare(kInsertDataKey));
    insert.BindInt64(1, key.version).BindBlob(2, key.wrapped);
    return RenameConflict(insert.Run(), "data key version already exists");
  }

  bool Healthy() override {
    auto reader = readers_.Acquire(read_wait_);
    if (!reader.ok()) return false;
    auto select = (*reader)->Prepare(kHealthCheck);
    return select.ok() && select->Step().ok();
  }

 private:
  // How long a read waits for a free pooled connection before answering kUnavailable.
  const std::chrono::milliseconds read_wait_;
  // write_mutex_ guards writer_: the one read-write connection, its statement cache and any
  // transaction open on it. Cross-process exclusion is SQLite's file lock (BEGIN IMMEDIATE).
  sqlite::CurrentVersionCache cache_;
  std::mutex write_mutex_;
  std::unique_ptr<Connection> writer_;
  // Declared after writer_ so the readers close first: the last connection to close
  // checkpoints the WAL into the database file, and only the writer is allowed to.
  ReadPool readers_;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options) {
  if (options.path.empty()) return InvalidArgument("storage: a database path is required");
  if (options.read_connections < 1) {
    return InvalidArgument("storage: read_connections must be at least 1");
  }
  if (options.busy_timeout_ms < 0) {
    return InvalidArgument("storage: busy_timeout_ms must not be negative");
  }
  RETURN_IF_ERROR(sqlite::EnsurePrivateFile(options.path));
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> writer,
                   Connection::Open(options.path, ConnectionRole::kWrite, options.busy_timeout_ms));
  RETURN_IF_ERROR(sqlite::Migrate(*writer));
  // SQLite creates these with the database file's mode (so 0600 already); checked anyway in
  // case they were left behind, wider, by an older run or another tool.
  RETURN_IF_ERROR(sqlite::RestrictIfExists(options.path + "-wal"));
  RETURN_IF_ERROR(sqlite::RestrictIfExists(options.path + "-shm"));

  std::vector<std::unique_ptr<Connection>> readers;
  readers.reserve(static_cast<size_t>(options.read_connections));
  for (int i = 0; i < options.read_connections; ++i) {
    ASSIGN_OR_RETURN(
        std::unique_ptr<Connection> reader,
        Connection::Open(options.path, ConnectionRole::kRead, options.busy_timeout_ms));
    readers.push_back(std::move(reader));
  }
  return std::unique_ptr<Store>(std::make_unique<SqliteStore>(
      std::move(writer), std::move(readers), std::chrono::milliseconds(options.busy_timeout_ms),
      options.current_cache_bytes));
}

}  // namespace phigate::storage
