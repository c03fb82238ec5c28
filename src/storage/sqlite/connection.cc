#include "storage/sqlite/connection.h"

#include <sqlite3.h>

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "core/log.h"

namespace phigate::storage::sqlite {
namespace {

// https://www.sqlite.org/pragma.html. Applied to every connection: trusted_schema=OFF keeps
// SQL functions out of views/triggers a tampered file could carry, temp_store=MEMORY keeps
// sort spills out of /tmp, secure_delete=ON zeroes freed pages so deleted bytes do not
// linger in the file.
constexpr Sql kPragmasCommon{"pragmas_common",
                             "PRAGMA foreign_keys=ON;"
                             "PRAGMA secure_delete=ON;"
                             "PRAGMA temp_store=MEMORY;"
                             "PRAGMA trusted_schema=OFF;"};
// The write connection: WAL so readers never block the writer; synchronous=FULL so the WAL
// is fsync'd at every commit (a commit is acknowledged only once durable, DESIGN.md
// "Storage and keys"); journal_size_limit truncates the WAL after a checkpoint so it does
// not keep its high-water size (and old frames) forever.
constexpr Sql kJournalModeWal{"journal_mode_wal", "PRAGMA journal_mode=WAL"};
constexpr Sql kPragmasWrite{"pragmas_write",
                            "PRAGMA synchronous=FULL;"
                            "PRAGMA journal_size_limit=67108864;"};
// Read connections are opened read-only already; query_only also refuses writes that the
// read-only flag would let through (e.g. to an attached in-memory database).
constexpr Sql kPragmasRead{"pragmas_read", "PRAGMA query_only=ON"};

// Read back: a PRAGMA compiled out of the library is silently ignored, and these settings
// are guarantees, not hints.
constexpr Sql kReadSynchronous{"read_synchronous", "PRAGMA synchronous"};
constexpr Sql kReadForeignKeys{"read_foreign_keys", "PRAGMA foreign_keys"};
constexpr Sql kReadSecureDelete{"read_secure_delete", "PRAGMA secure_delete"};
constexpr int64_t kSynchronousFull = 2;

constexpr Sql kBeginImmediate{"begin_immediate", "BEGIN IMMEDIATE"};
constexpr Sql kCommit{"commit", "COMMIT"};
constexpr Sql kRollback{"rollback", "ROLLBACK"};

struct StatementFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using OwnedStatement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

// Prepares a one-shot statement and steps it to its first row.
Result<OwnedStatement> QueryFirstRow(sqlite3* db, const Sql& sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.text, -1, &raw, nullptr);
  OwnedStatement stmt(raw);
  if (rc != SQLITE_OK) return StatusFromSqlite(rc, db, sql.name);
  rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW) return stmt;
  if (rc == SQLITE_DONE) {
    Log(LogLevel::kError, "storage.sqlite_no_row", {{"sql", sql.name}});
    return Internal("storage error");
  }
  return StatusFromSqlite(rc, db, sql.name);
}

Result<std::string> QueryText(sqlite3* db, const Sql& sql) {
  ASSIGN_OR_RETURN(OwnedStatement stmt, QueryFirstRow(db, sql));
  const unsigned char* text = sqlite3_column_text(stmt.get(), 0);
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt.get(), 0)));
}

Status Require(bool condition, std::string_view setting) {
  if (condition) return Status::Ok();
  Log(LogLevel::kError, "storage.sqlite_setting_refused", {{"setting", setting}});
  return Internal("storage configuration failed");
}

}  // namespace

Status StatusFromSqlite(int rc, sqlite3* db, std::string_view what) {
  const int primary = rc & 0xff;
  if (primary == SQLITE_CONSTRAINT &&
      (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)) {
    // An expected outcome (duplicate insert), not a fault: not logged.
    return Status(StatusCode::kConflict, "conflict");
  }
  // SQLite's messages name tables, columns and constraints, never bound values, so they are
  // safe for the PHI-free log; they still never reach the client.
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const LogLevel level = primary == SQLITE_BUSY ? LogLevel::kWarn : LogLevel::kError;
  Log(level, "storage.sqlite_error", {{"op", what}, {"code", rc}, {"detail", detail}});
  switch (primary) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      // busy_timeout already waited for the other writer (often the CLI in another process).
      return Unavailable("storage busy");
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
    case SQLITE_NOLFS:
      // Environmental and possibly transient (disk full, I/O, file moved): 503 so callers
      // and load balancers retry elsewhere or later.
      return Unavailable("storage unavailable");
    case SQLITE_TOOBIG:
      return Status(StatusCode::kPayloadTooLarge, "record too large");
    default:
      // Corruption, schema mismatch, misuse: a defect or damage, not a retry case.
      return Internal("storage error");
  }
}

// ---------------------------------------------------------------------------------------
// Statement

Statement::Statement(sqlite3_stmt* stmt, sqlite3* db, const char* name, Ownership ownership)
    : stmt_(stmt), db_(db), name_(name), ownership_(ownership), bind_rc_(SQLITE_OK) {}

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)),
      db_(other.db_),
      name_(other.name_),
      ownership_(other.ownership_),
      bind_rc_(other.bind_rc_) {}

Statement::~Statement() {
  if (stmt_ == nullptr) return;
  if (ownership_ == Ownership::kOwned) {
    sqlite3_finalize(stmt_);
    return;
  }
  // The return values repeat the last step's error, which the caller already saw.
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

// Bound bytes are SQLITE_STATIC (no copy of a large ciphertext): the caller keeps them alive
// while the Statement lives, which the call sites do by binding fields of a record that
// outlives the statement.
Statement& Statement::BindInt64(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Statement& Statement::BindText(int index, std::string_view value) {
  // A default string_view has a null data(), which SQLite would bind as NULL, not ''.
  const char* data = value.data() != nullptr ? value.data() : "";
  int rc = sqlite3_bind_text64(stmt_, index, data, value.size(), SQLITE_STATIC, SQLITE_UTF8);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Statement& Statement::BindBlob(int index, std::string_view value) {
  // An empty blob (a tombstone's ciphertext) must be a zero-length BLOB, not NULL.
  int rc = value.empty()
               ? sqlite3_bind_zeroblob(stmt_, index, 0)
               : sqlite3_bind_blob64(stmt_, index, value.data(), value.size(), SQLITE_STATIC);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Result<bool> Statement::Step() {
  if (bind_rc_ != SQLITE_OK) return StatusFromSqlite(bind_rc_, db_, name_);
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return StatusFromSqlite(rc, db_, name_);
}

Status Statement::Run() {
  while (true) {
    ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return Status::Ok();
  }
}

int64_t Statement::ColumnInt64(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string Statement::ColumnText(int column) const {
  // column_text before column_bytes: the documented order that avoids a second conversion.
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::string Statement::ColumnBlob(int column) const {
  const void* blob = sqlite3_column_blob(stmt_, column);
  if (blob == nullptr) return {};  // zero-length blob or NULL
  return std::string(static_cast<const char*>(blob),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

// ---------------------------------------------------------------------------------------
// Connection

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& path, ConnectionRole role,
                                                     int busy_timeout_ms, int64_t cache_bytes) {
  // The store shares handles across threads (one at a time); a library built with
  // SQLITE_THREADSAFE=0 has no locking at all and would corrupt its global state.
  if (sqlite3_threadsafe() == 0) {
    Log(LogLevel::kError, "storage.sqlite_not_threadsafe");
    return Internal("storage configuration failed");
  }
  // No SQLITE_OPEN_CREATE: the file was created owner-only by the caller, and a missing file
  // here means something removed it, not that SQLite should create one with default mode.
  // NOFOLLOW: a symlink planted at the database path cannot redirect PHI elsewhere.
  int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_PRIVATECACHE;
  flags |= role == ConnectionRole::kWrite ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  // sqlite3_open_v2 allocates a handle even when it fails; the Connection owns it either way.
  std::unique_ptr<Connection> connection(new Connection(db));
  if (rc != SQLITE_OK) return StatusFromSqlite(rc, db, "open");
  RETURN_IF_ERROR(connection->Configure(role, busy_timeout_ms, cache_bytes));
  return connection;
}

Status Connection::Configure(ConnectionRole role, int busy_timeout_ms, int64_t cache_bytes) {
  sqlite3_extended_result_codes(db_, 1);
  // Defensive mode refuses writable_schema and similar features that can corrupt the file.
  int rc = sqlite3_db_config(db_, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  if (rc != SQLITE_OK) return StatusFromSqlite(rc, db_, "defensive");
  // Set first: the PRAGMAs below may already need a lock another process holds.
  rc = sqlite3_busy_timeout(db_, busy_timeout_ms);
  if (rc != SQLITE_OK) return StatusFromSqlite(rc, db_, "busy_timeout");
  RETURN_IF_ERROR(Exec(kPragmasCommon));
  ASSIGN_OR_RETURN(int64_t foreign_keys, QueryInt64(kReadForeignKeys));
  RETURN_IF_ERROR(Require(foreign_keys == 1, "foreign_keys"));
  ASSIGN_OR_RETURN(int64_t secure_delete, QueryInt64(kReadSecureDelete));
  RETURN_IF_ERROR(Require(secure_delete == 1, "secure_delete"));
  if (cache_bytes > 0) {
    // The one PRAGMA whose value comes from options: PRAGMAs take no bound parameters, and
    // the text gets only an integer formatted here. A negative cache_size counts KiB.
    const int64_t kib = std::min<int64_t>(cache_bytes / 1024 + (cache_bytes % 1024 != 0),
                                          std::numeric_limits<int32_t>::max());
    const std::string text = "PRAGMA cache_size=-" + std::to_string(kib);
    RETURN_IF_ERROR(Exec(Sql{"cache_size", text.c_str()}));
  }
  if (role == ConnectionRole::kRead) return Exec(kPragmasRead);

  // journal_mode answers with the mode now in force; anything but "wal" (e.g. a file system
  // without shared-memory support) would silently lose reader/writer concurrency.
  ASSIGN_OR_RETURN(std::string journal_mode, QueryText(db_, kJournalModeWal));
  RETURN_IF_ERROR(Require(journal_mode == "wal", "journal_mode"));
  RETURN_IF_ERROR(Exec(kPragmasWrite));
  ASSIGN_OR_RETURN(int64_t synchronous, QueryInt64(kReadSynchronous));
  return Require(synchronous == kSynchronousFull, "synchronous");
}

Connection::~Connection() {
  for (auto& [text, stmt] : statements_) sqlite3_finalize(stmt);
  statements_.clear();
  // All statements are finalized above, so close cannot be deferred by a leftover one.
  int rc = sqlite3_close_v2(db_);
  if (rc != SQLITE_OK) {
    Log(LogLevel::kError, "storage.sqlite_close_failed", {{"code", rc}});
  }
}

Result<Statement> Connection::Prepare(const Sql& sql) {
  auto it = statements_.find(std::string_view(sql.text));
  if (it != statements_.end()) {
    // Two live borrows of one cached statement would reset each other mid-step.
    assert(!sqlite3_stmt_busy(it->second));
    return Statement(it->second, db_, sql.name);
  }
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  // PERSISTENT: the statement lives as long as the connection, so SQLite keeps it out of the
  // lookaside allocator meant for short-lived objects.
  int rc = sqlite3_prepare_v3(db_, sql.text, -1, SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return StatusFromSqlite(rc, db_, sql.name);
  }
  // A cached constant holds exactly one statement; anything after it would be ignored.
  assert(tail != nullptr && *tail == '\0');
  statements_.emplace(sql.text, stmt);
  return Statement(stmt, db_, sql.name);
}

Result<Statement> Connection::PrepareUncached(const std::string& text, const char* name) {
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  int rc =
      sqlite3_prepare_v3(db_, text.c_str(), static_cast<int>(text.size()) + 1, 0, &stmt, &tail);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return StatusFromSqlite(rc, db_, name);
  }
  // The assembled text holds exactly one statement; anything after it would be ignored.
  assert(tail != nullptr && *tail == '\0');
  return Statement(stmt, db_, name, Statement::Ownership::kOwned);
}

Status Connection::Exec(const Sql& sql) {
  int rc = sqlite3_exec(db_, sql.text, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return StatusFromSqlite(rc, db_, sql.name);
  return Status::Ok();
}

Result<int64_t> Connection::QueryInt64(const Sql& sql) {
  ASSIGN_OR_RETURN(OwnedStatement stmt, QueryFirstRow(db_, sql));
  return static_cast<int64_t>(sqlite3_column_int64(stmt.get(), 0));
}

bool Connection::InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

// ---------------------------------------------------------------------------------------
// Transaction

Result<Transaction> Transaction::BeginImmediate(Connection& connection) {
  if (connection.InTransaction()) {
    // Only possible if an earlier ROLLBACK failed; refuse rather than nest into its changes.
    Log(LogLevel::kError, "storage.transaction_left_open");
    return Internal("storage error");
  }
  ASSIGN_OR_RETURN(Statement begin, connection.Prepare(kBeginImmediate));
  RETURN_IF_ERROR(begin.Run());
  return Transaction(&connection);
}

Transaction::Transaction(Transaction&& other) noexcept
    : connection_(std::exchange(other.connection_, nullptr)) {}

Status Transaction::Commit() {
  assert(connection_ != nullptr);
  {
    ASSIGN_OR_RETURN(Statement commit, connection_->Prepare(kCommit));
    RETURN_IF_ERROR(commit.Run());
  }
  connection_ = nullptr;
  return Status::Ok();
}

Transaction::~Transaction() {
  // SQLite rolls back by itself on some errors (e.g. SQLITE_FULL); only roll back what is
  // still open.
  if (connection_ == nullptr || !connection_->InTransaction()) return;
  auto rollback = connection_->Prepare(kRollback);
  Status status = rollback.ok() ? rollback->Run() : rollback.status();
  if (!status.ok()) Log(LogLevel::kError, "storage.rollback_failed");
}

}  // namespace phigate::storage::sqlite
