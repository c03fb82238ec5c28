// Connection: one SQLite database handle with its prepared-statement cache, plus the RAII
// handles used on it (Statement, Transaction) and the one place that turns SQLite result
// codes into client-safe Status values.
//
// Thread-safety: a Connection, and every Statement or Transaction made from it, is used by
// one thread at a time. The owner provides the exclusion (SqliteStore's write_mutex_ for the
// write connection, ReadPool leases for read connections); handles are opened with
// SQLITE_OPEN_NOMUTEX because that outer exclusion already exists.
//
// sqlite3.h stays out of this header (DESIGN.md: third-party headers stay in their room);
// only the opaque handle types are named here.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace phigate::storage::sqlite {

// A named SQL constant. `text` is parameterized (?1, ?2...) and never built from values;
// `name` identifies the statement in logs without printing SQL.
struct Sql {
  const char* name;
  const char* text;
};

// Maps a SQLite result code to a client-safe Status and logs the internal detail.
// `what` names the operation for the log line. Unique/primary-key violations become
// kConflict so callers can give them their own message.
Status StatusFromSqlite(int rc, sqlite3* db, std::string_view what);

// A prepared statement: borrowed from the connection's cache (Connection::Prepare) or owned
// (Connection::PrepareUncached). A borrowed one resets itself and clears its bindings when
// it goes out of scope, so a reader never keeps a read transaction (and a WAL snapshot) open
// and a cached statement never keeps a previous caller's values bound; an owned one is
// finalized, which ends its read just the same.
class Statement {
 public:
  enum class Ownership { kBorrowed, kOwned };
  Statement(sqlite3_stmt* stmt, sqlite3* db, const char* name,
            Ownership ownership = Ownership::kBorrowed);
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Binding never fails on the spot: the first failure is remembered and returned by Step,
  // so call sites read as one chain of binds followed by one checked Step.
  Statement& BindInt64(int index, int64_t value);
  Statement& BindText(int index, std::string_view value);
  Statement& BindBlob(int index, std::string_view value);

  // true: a row is available through the Column* accessors; false: the statement is done.
  Result<bool> Step();
  // Steps to completion, ignoring rows (statements run for their effect).
  Status Run();

  int64_t ColumnInt64(int column) const;
  std::string ColumnText(int column) const;
  std::string ColumnBlob(int column) const;

 private:
  sqlite3_stmt* stmt_;
  sqlite3* db_;
  const char* name_;
  Ownership ownership_;
  int bind_rc_;  // first failed bind, reported by Step
};

// Which handle to open. The write connection is the only one that may change the database;
// read connections are opened read-only so a bug cannot turn a read into a write.
enum class ConnectionRole { kWrite, kRead };

class Connection {
 public:
  // Opens an existing database file (the caller creates it with owner-only permissions; the
  // handle never creates files itself) and applies the PRAGMAs for `role`. `cache_bytes`
  // > 0 sets the connection's page cache (PRAGMA cache_size); 0 keeps SQLite's default.
  static Result<std::unique_ptr<Connection>> Open(const std::string& path, ConnectionRole role,
                                                  int busy_timeout_ms, int64_t cache_bytes = 0);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Returns the cached statement for `sql`, preparing it on first use.
  Result<Statement> Prepare(const Sql& sql);
  // Prepares `text` (one statement) without caching it: for statements assembled at run
  // time whose shapes are too many to cache (a search has one per combination of its
  // conditions and their value counts, and a cache keyed by them would grow at a caller's
  // will). The text is still assembled only from constant fragments and placeholders,
  // never from values. `name` names it in logs and must outlive the Statement.
  Result<Statement> PrepareUncached(const std::string& text, const char* name);
  // Runs `sql` (possibly several statements, no parameters, rows ignored) without caching:
  // for migrations and PRAGMAs that run once per connection.
  Status Exec(const Sql& sql);
  // Runs a one-shot statement returning a single integer (PRAGMA reads).
  Result<int64_t> QueryInt64(const Sql& sql);
  // True while a transaction is open (after BEGIN, before COMMIT/ROLLBACK or an automatic
  // rollback SQLite performs on some errors).
  bool InTransaction() const;

 private:
  explicit Connection(sqlite3* db) : db_(db) {}
  Status Configure(ConnectionRole role, int busy_timeout_ms, int64_t cache_bytes);

  // Heterogeneous lookup so a cache hit hashes the constant without allocating.
  struct SqlHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*, SqlHash, std::equal_to<>> statements_;
};

// BEGIN IMMEDIATE ... COMMIT. IMMEDIATE takes the database write lock at BEGIN, so the
// read-check-write inside cannot interleave with another connection or process, and lock
// waits happen up front (bounded by busy_timeout) instead of failing at COMMIT.
// Rolls back on destruction unless committed.
class Transaction {
 public:
  static Result<Transaction> BeginImmediate(Connection& connection);
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  // Durable when ok (synchronous=FULL: the WAL is fsync'd before COMMIT returns).
  Status Commit();

 private:
  explicit Transaction(Connection* connection) : connection_(connection) {}
  Connection* connection_;  // null once committed or moved from
};

}  // namespace phigate::storage::sqlite
