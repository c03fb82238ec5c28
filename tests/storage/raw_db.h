// A raw SQLite handle for building and inspecting database files as an administrator (or
// another program) would; deliberately not going through the Store. Shared by the storage
// tests. Thread-safety: one instance per thread.
#pragma once

#include <sqlite3.h>

#include <string>
#include <vector>

namespace phigate::testing {

class RawDb {
 public:
  RawDb(const std::string& path, int flags) {
    rc_ = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  int Exec(const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  }
  // Column `column` of every row, as text ("<null>" for NULL; {"<error>"} if `sql` fails
  // to prepare).
  std::vector<std::string> Column(const std::string& sql, int column = 0) {
    std::vector<std::string> out;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) return {"<error>"};
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, column);
      out.emplace_back(text != nullptr ? reinterpret_cast<const char*>(text) : "<null>");
    }
    sqlite3_finalize(stmt);
    return out;
  }
  // name:type of every column of `table`, in order.
  std::vector<std::string> Columns(const std::string& table) {
    std::vector<std::string> out;
    sqlite3_stmt* stmt = nullptr;
    const std::string sql = "SELECT name || ':' || type FROM pragma_table_info(?1)";
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) return {"<error>"};
    sqlite3_bind_text(stmt, 1, table.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

}  // namespace phigate::testing
