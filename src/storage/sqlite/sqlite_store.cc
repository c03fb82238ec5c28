#include "storage/sqlite/sqlite_store.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "core/ascii.h"
#include "core/clock.h"
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

// --- search index ------------------------------------------------------------------------
// A resource's entries are replaced whole on every append (the primary key starts with
// (type, id), so the DELETE is one range).

constexpr Sql kDeleteIndexEntries{"delete_index_entries",
                                  "DELETE FROM search_index WHERE type = ?1 AND id = ?2"};

constexpr Sql kInsertIndexEntry{"insert_index_entry",
                                "INSERT INTO search_index (type, id, token, low_year, high_year)"
                                " VALUES (?1, ?2, ?3, ?4, ?5)"};

// Bounds on one SearchCurrent call. Every value is one bound parameter and, per candidate,
// up to one index seek; SQLite limits a statement's parameters and expression depth, and a
// request must not be able to make one statement arbitrarily expensive.
constexpr size_t kMaxSearchClauses = 64;
constexpr size_t kMaxSearchValues = 1000;  // tokens of every clause plus ids
// A driving condition with fewer index rows than this (past after_id) is read whole and its
// ids sorted; with more, the query walks an id-ordered index and stops at LIMIT instead.
constexpr int64_t kSortableDriverRows = 1000;

// Search statements vary in shape (how many conditions, of which kind, with how many
// values), so they are assembled by SearchSql from the fragments below and numbered
// placeholders; values are only ever bound. There are two plans, both returning
// (id, current version) in id order:
//
// - Driven by one positive condition `d`: walk search_index_by_token for its tokens (in id
//   order when it has one token; several tokens are merged by GROUP BY's sort, allowed only
//   for a small row count), join the current version, and test the other conditions with
//   [NOT] EXISTS seeks correlated on d. CROSS JOIN fixes that join order: SQLite
//   has no statistics here (no ANALYZE) and must not start from resource_current.
// - Driven by resource_current: walk the type's resources in id order (or seek the listed
//   ids) and test every condition with [NOT] EXISTS; for queries with no positive
//   condition, or whose positive conditions all match too many rows to sort.
//
// GROUP BY d.id makes each resource one row even when several of its entries match; over
// one token the index is already in id order, so it needs no sort.
constexpr std::string_view kSearchByIndexSelect =
    "SELECT d.id, c.version FROM search_index AS d INDEXED BY search_index_by_token"
    " CROSS JOIN resource_current AS c ON c.type = d.type AND c.id = d.id"
    " CROSS JOIN resource_versions AS v"
    " ON v.type = c.type AND v.id = c.id AND v.version = c.version"
    " WHERE d.type = ";
constexpr std::string_view kSearchByIndexAfter = " AND d.id > ";
constexpr std::string_view kSearchByIndexTokens = " AND d.token IN ";
constexpr std::string_view kSearchByIndexYearHigh = " AND d.low_year <= ";
constexpr std::string_view kSearchByIndexYearLow = " AND d.high_year >= ";
constexpr std::string_view kSearchByIndexExists =
    " AND EXISTS (SELECT 1 FROM search_index AS s WHERE s.type = d.type AND s.id = d.id"
    " AND s.token IN ";
constexpr std::string_view kSearchByIndexNotExists =
    " AND NOT EXISTS (SELECT 1 FROM search_index AS s WHERE s.type = d.type AND s.id = d.id"
    " AND s.token IN ";
constexpr std::string_view kSearchByIndexOrder = " GROUP BY d.id ORDER BY d.id LIMIT ";

constexpr std::string_view kSearchByResourceSelect =
    "SELECT c.id, c.version FROM resource_current AS c"
    " CROSS JOIN resource_versions AS v"
    " ON v.type = c.type AND v.id = c.id AND v.version = c.version"
    " WHERE c.type = ";
constexpr std::string_view kSearchByResourceAfter = " AND c.id > ";
// With listed ids the primary key is sought once per id (the IN list is walked in order, so
// ORDER BY needs no sort); the unary + keeps SQLite from using it for the after_id range
// instead, which would walk every resource of the type.
constexpr std::string_view kSearchByResourceIdsAfter = " AND +c.id > ";
constexpr std::string_view kSearchByResourceIds = " AND c.id IN ";
constexpr std::string_view kSearchByResourceExists =
    " AND EXISTS (SELECT 1 FROM search_index AS s WHERE s.type = c.type AND s.id = c.id"
    " AND s.token IN ";
constexpr std::string_view kSearchByResourceNotExists =
    " AND NOT EXISTS (SELECT 1 FROM search_index AS s WHERE s.type = c.type AND s.id = c.id"
    " AND s.token IN ";
constexpr std::string_view kSearchByResourceOrder = " ORDER BY c.id LIMIT ";

// Shared by both plans: inside an EXISTS (alias s) and on the current version (alias v).
constexpr std::string_view kSearchExistsYearHigh = " AND s.low_year <= ";
constexpr std::string_view kSearchExistsYearLow = " AND s.high_year >= ";
constexpr std::string_view kSearchExistsEnd = ")";
constexpr std::string_view kSearchLiveVersion = " AND v.deleted = 0 AND v.last_updated_ms >= ";
constexpr std::string_view kSearchUpdatedBefore = " AND v.last_updated_ms < ";

// The estimate that picks the driving condition: its index rows past after_id, counted up
// to a cap so that a common token costs no more than a rare one. Years are left out: a rare
// year of a common token would make the count walk every row of the token.
constexpr std::string_view kCountDriverRowsSelect =
    "SELECT count(*) FROM (SELECT 1 FROM search_index INDEXED BY search_index_by_token"
    " WHERE type = ";
constexpr std::string_view kCountDriverRowsAfter = " AND id > ";
constexpr std::string_view kCountDriverRowsTokens = " AND token IN ";
constexpr std::string_view kCountDriverRowsLimit = " LIMIT ";
constexpr std::string_view kCountDriverRowsEnd = ")";

// --- clients and data keys ---------------------------------------------------------------
// Every SELECT of a client lists the columns in the order ReadClientRow expects.

constexpr Sql kInsertClient{
    "insert_client",
    "INSERT INTO clients"
    " (client_id, name, secret_hash, scope, created_ms, disabled, auth_method, jwks, roles,"
    " redirect_uris, third_party, baa_counterparty, baa_signed_ms, baa_expires_ms, baa_status)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"};

constexpr Sql kSelectClient{"select_client",
                            "SELECT client_id, name, secret_hash, scope, created_ms, disabled,"
                            " auth_method, jwks, roles, redirect_uris, third_party,"
                            " baa_counterparty, baa_signed_ms, baa_expires_ms, baa_status"
                            " FROM clients WHERE client_id = ?1"};

constexpr Sql kListClients{"list_clients",
                           "SELECT client_id, name, secret_hash, scope, created_ms, disabled,"
                           " auth_method, jwks, roles, redirect_uris, third_party,"
                           " baa_counterparty, baa_signed_ms, baa_expires_ms, baa_status"
                           " FROM clients ORDER BY client_id"};

// One statement for both "active" and "revoked": SetClientBaa has already required every
// field of an active agreement, so the "keep the stored value when empty/0" cases only ever
// apply to a revocation. max() only ever sets third_party, never clears it. RETURNING yields
// a row exactly when the client exists.
constexpr Sql kSetClientBaa{
    "set_client_baa",
    "UPDATE clients SET baa_status = ?2,"
    " baa_counterparty = CASE WHEN ?3 = '' THEN baa_counterparty ELSE ?3 END,"
    " baa_signed_ms = CASE WHEN ?4 = 0 THEN baa_signed_ms ELSE ?4 END,"
    " baa_expires_ms = CASE WHEN ?5 = 0 THEN baa_expires_ms ELSE ?5 END,"
    " third_party = max(third_party, ?6)"
    " WHERE client_id = ?1 RETURNING 1"};

// --- break-glass grants ------------------------------------------------------------------
// Every SELECT of a grant lists the columns in the order ReadGrantRow expects. rowid breaks
// ties between grants opened in the same millisecond (the later insert is the newer); both
// indexes end with it, so the ORDER BY walks an index backwards without sorting.

constexpr Sql kInsertGrant{
    "insert_break_glass_grant",
    "INSERT INTO break_glass_grants (grant_id, user_id, client_id, patient_id, reason_sealed,"
    " key_version, opened_ms, expires_ms, auth_time_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"};

constexpr Sql kSelectLatestGrant{
    "select_latest_break_glass_grant",
    "SELECT grant_id, user_id, client_id, patient_id, reason_sealed, key_version, opened_ms,"
    " expires_ms, auth_time_ms FROM break_glass_grants"
    " WHERE user_id = ?1 AND patient_id = ?2 ORDER BY opened_ms DESC, rowid DESC LIMIT 1"};

constexpr Sql kListGrantsSince{
    "list_break_glass_grants_since",
    "SELECT grant_id, user_id, client_id, patient_id, reason_sealed, key_version, opened_ms,"
    " expires_ms, auth_time_ms FROM break_glass_grants"
    " WHERE opened_ms >= ?1 ORDER BY opened_ms DESC, rowid DESC LIMIT ?2"};

// --- users -------------------------------------------------------------------------------
// Every SELECT of a user lists the columns in the order ReadUserRow expects. username has
// NOCASE collation, so comparisons and ORDER BY on it ignore ASCII case.

constexpr Sql kInsertUser{
    "insert_user",
    "INSERT INTO users (user_id, username, roles, fhir_user, password_hash, totp_secret,"
    " mfa_enrolled, totp_last_step, enrollment_hash, enrollment_expires_ms, failed_attempts,"
    " locked_until_ms, disabled, created_ms, sessions_valid_after_ms, revision)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 1)"};

constexpr Sql kSelectUserRevision{"select_user_revision",
                                  "SELECT username, revision FROM users WHERE user_id = ?1"};

// user_id, username and created_ms are deliberately absent from SET: they never change.
// The revision in WHERE repeats the check UpdateUser made in the same transaction.
constexpr Sql kUpdateUser{
    "update_user",
    "UPDATE users SET roles = ?2, fhir_user = ?3, password_hash = ?4, totp_secret = ?5,"
    " mfa_enrolled = ?6, totp_last_step = ?7, enrollment_hash = ?8,"
    " enrollment_expires_ms = ?9, failed_attempts = ?10, locked_until_ms = ?11,"
    " disabled = ?12, sessions_valid_after_ms = ?13, revision = revision + 1"
    " WHERE user_id = ?1 AND revision = ?14"};

constexpr Sql kSelectUser{
    "select_user",
    "SELECT user_id, username, roles, fhir_user, password_hash, totp_secret, mfa_enrolled,"
    " totp_last_step, enrollment_hash, enrollment_expires_ms, failed_attempts,"
    " locked_until_ms, disabled, created_ms, sessions_valid_after_ms, revision"
    " FROM users WHERE user_id = ?1"};

constexpr Sql kSelectUserByName{
    "select_user_by_name",
    "SELECT user_id, username, roles, fhir_user, password_hash, totp_secret, mfa_enrolled,"
    " totp_last_step, enrollment_hash, enrollment_expires_ms, failed_attempts,"
    " locked_until_ms, disabled, created_ms, sessions_valid_after_ms, revision"
    " FROM users WHERE username = ?1"};

// The `<> ''` term matches the partial index's WHERE, which lets SQLite use the index (and
// keeps an empty hash from matching every user without an enrollment).
constexpr Sql kSelectUserByEnrollment{
    "select_user_by_enrollment",
    "SELECT user_id, username, roles, fhir_user, password_hash, totp_secret, mfa_enrolled,"
    " totp_last_step, enrollment_hash, enrollment_expires_ms, failed_attempts,"
    " locked_until_ms, disabled, created_ms, sessions_valid_after_ms, revision"
    " FROM users WHERE enrollment_hash = ?1 AND enrollment_hash <> ''"};

constexpr Sql kListUsers{
    "list_users",
    "SELECT user_id, username, roles, fhir_user, password_hash, totp_secret, mfa_enrolled,"
    " totp_last_step, enrollment_hash, enrollment_expires_ms, failed_attempts,"
    " locked_until_ms, disabled, created_ms, sessions_valid_after_ms, revision"
    " FROM users ORDER BY username"};

// --- refresh token families --------------------------------------------------------------
// Every SELECT of a family lists its columns in the order ReadFamilyRow expects.

constexpr Sql kPurgeEndedFamilies{"purge_ended_families",
                                  "DELETE FROM refresh_families WHERE expires_ms < ?1"};

constexpr Sql kInsertFamily{
    "insert_family",
    "INSERT INTO refresh_families (family_id, user_id, client_id, scope, auth_time_ms,"
    " expires_ms, last_used_ms, revoked, revoked_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, 0)"};

constexpr Sql kInsertCurrentToken{
    "insert_current_token",
    "INSERT INTO refresh_tokens (token_hash, family_id, created_ms, is_current, rotated_ms)"
    " VALUES (?1, ?2, ?3, 1, 0)"};

constexpr Sql kSelectTokenFamily{
    "select_token_family",
    "SELECT f.family_id, f.user_id, f.client_id, f.scope, f.auth_time_ms, f.expires_ms,"
    " f.last_used_ms, f.revoked, t.is_current"
    " FROM refresh_tokens AS t JOIN refresh_families AS f ON f.family_id = t.family_id"
    " WHERE t.token_hash = ?1"};

constexpr Sql kSelectCurrentTokenFamily{
    "select_current_token_family",
    "SELECT f.family_id, f.user_id, f.client_id, f.scope, f.auth_time_ms, f.expires_ms,"
    " f.last_used_ms, f.revoked"
    " FROM refresh_tokens AS t JOIN refresh_families AS f ON f.family_id = t.family_id"
    " WHERE t.token_hash = ?1 AND t.is_current = 1"};

constexpr Sql kSelectFamily{
    "select_family",
    "SELECT family_id, user_id, client_id, scope, auth_time_ms, expires_ms, last_used_ms,"
    " revoked FROM refresh_families WHERE family_id = ?1"};

constexpr Sql kRetireToken{"retire_token",
                           "UPDATE refresh_tokens SET is_current = 0, rotated_ms = ?2"
                           " WHERE token_hash = ?1"};

constexpr Sql kTouchFamily{"touch_family",
                           "UPDATE refresh_families SET last_used_ms = ?2 WHERE family_id = ?1"};

// `revoked = 0` keeps the first revocation time: a second revocation changes nothing.
constexpr Sql kRevokeFamily{"revoke_family",
                            "UPDATE refresh_families SET revoked = 1, revoked_ms = ?2"
                            " WHERE family_id = ?1 AND revoked = 0"};

constexpr Sql kRevokeUserFamilies{"revoke_user_families",
                                  "UPDATE refresh_families SET revoked = 1, revoked_ms = ?2"
                                  " WHERE user_id = ?1 AND revoked = 0"};

constexpr Sql kSelectRevokedFamiliesSince{
    "select_revoked_families_since",
    "SELECT family_id FROM refresh_families WHERE revoked = 1 AND revoked_ms >= ?1"
    " ORDER BY revoked_ms, family_id"};

// --- access token revocation and client assertion replay ---------------------------------

// A second revocation of one jti keeps the later expiry, so the entry never ends early.
constexpr Sql kInsertRevokedAccessToken{
    "insert_revoked_access_token",
    "INSERT INTO revoked_access_tokens (jti, expires_ms) VALUES (?1, ?2)"
    " ON CONFLICT (jti) DO UPDATE SET expires_ms = max(expires_ms, excluded.expires_ms)"};

constexpr Sql kSelectRevokedAccessTokens{
    "select_revoked_access_tokens",
    "SELECT jti FROM revoked_access_tokens WHERE expires_ms > ?1 ORDER BY jti"};

constexpr Sql kAnyExpiredAccessToken{
    "any_expired_access_token",
    "SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE expires_ms <= ?1)"};

constexpr Sql kPurgeRevokedAccessTokens{"purge_revoked_access_tokens",
                                        "DELETE FROM revoked_access_tokens WHERE expires_ms <= ?1"};

constexpr Sql kPurgeAssertionJtis{"purge_assertion_jtis",
                                  "DELETE FROM client_assertion_jtis WHERE expires_ms <= ?1"};

// RETURNING yields a row only when the row was inserted, not when DO NOTHING applied.
constexpr Sql kInsertAssertionJti{
    "insert_assertion_jti",
    "INSERT INTO client_assertion_jtis (client_id, jti, expires_ms) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (client_id, jti) DO NOTHING RETURNING 1"};

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

bool KnownAuthMethod(const std::string& method) {
  return method == "client_secret_basic" || method == "private_key_jwt" || method == "none";
}

ClientRecord ReadClientRow(const Statement& row) {
  ClientRecord client;
  client.client_id = row.ColumnText(0);
  client.name = row.ColumnText(1);
  client.secret_hash = row.ColumnText(2);
  client.scope = row.ColumnText(3);
  client.created_ms = row.ColumnInt64(4);
  client.disabled = row.ColumnInt64(5) != 0;
  client.auth_method = row.ColumnText(6);
  client.jwks = row.ColumnText(7);
  client.roles = row.ColumnText(8);
  client.redirect_uris = row.ColumnText(9);
  client.third_party = row.ColumnInt64(10) != 0;
  client.baa_counterparty = row.ColumnText(11);
  client.baa_signed_ms = row.ColumnInt64(12);
  client.baa_expires_ms = row.ColumnInt64(13);
  client.baa_status = row.ColumnText(14);
  return client;
}

bool KnownBaaStatus(const std::string& status) {
  return status == "none" || status == "active" || status == "revoked";
}

Result<BreakGlassGrant> ReadGrantRow(const Statement& row) {
  BreakGlassGrant grant;
  grant.grant_id = row.ColumnText(0);
  grant.user_id = row.ColumnText(1);
  grant.client_id = row.ColumnText(2);
  grant.patient_id = row.ColumnText(3);
  grant.reason_sealed = row.ColumnBlob(4);
  ASSIGN_OR_RETURN(grant.key_version, ToKeyVersion(row.ColumnInt64(5)));
  grant.opened_ms = row.ColumnInt64(6);
  grant.expires_ms = row.ColumnInt64(7);
  grant.auth_time_ms = row.ColumnInt64(8);
  return grant;
}

UserRecord ReadUserRow(const Statement& row) {
  UserRecord user;
  user.user_id = row.ColumnText(0);
  user.username = row.ColumnText(1);
  user.roles = row.ColumnText(2);
  user.fhir_user = row.ColumnText(3);
  user.password_hash = row.ColumnText(4);
  user.totp_secret = row.ColumnBlob(5);
  user.mfa_enrolled = row.ColumnInt64(6) != 0;
  user.totp_last_step = row.ColumnInt64(7);
  user.enrollment_hash = row.ColumnText(8);
  user.enrollment_expires_ms = row.ColumnInt64(9);
  // The schema's CHECK keeps the count within int.
  user.failed_attempts = static_cast<int>(row.ColumnInt64(10));
  user.locked_until_ms = row.ColumnInt64(11);
  user.disabled = row.ColumnInt64(12) != 0;
  user.created_ms = row.ColumnInt64(13);
  user.sessions_valid_after_ms = row.ColumnInt64(14);
  user.revision = row.ColumnInt64(15);
  return user;
}

RefreshFamily ReadFamilyRow(const Statement& row) {
  RefreshFamily family;
  family.family_id = row.ColumnText(0);
  family.user_id = row.ColumnText(1);
  family.client_id = row.ColumnText(2);
  family.scope = row.ColumnText(3);
  family.auth_time_ms = row.ColumnInt64(4);
  family.expires_ms = row.ColumnInt64(5);
  family.last_used_ms = row.ColumnInt64(6);
  family.revoked = row.ColumnInt64(7) != 0;
  return family;
}

// Steps a SELECT that returns at most one row and converts it with `read_row`.
template <typename ReadRow>
auto ReadOptionalRow(Statement& statement, ReadRow read_row)
    -> Result<std::optional<decltype(read_row(statement))>> {
  using Record = decltype(read_row(statement));
  ASSIGN_OR_RETURN(bool has_row, statement.Step());
  if (!has_row) return std::optional<Record>();
  return std::optional<Record>(read_row(statement));
}

// Steps a SELECT to completion, converting every row with `read_row`.
template <typename ReadRow>
auto ReadAllRows(Statement& statement, ReadRow read_row)
    -> Result<std::vector<decltype(read_row(statement))>> {
  std::vector<decltype(read_row(statement))> records;
  while (true) {
    ASSIGN_OR_RETURN(bool has_row, statement.Step());
    if (!has_row) return records;
    records.push_back(read_row(statement));
  }
}

Status ValidateUser(const UserRecord& user) {
  if (user.user_id.empty() || user.username.empty()) {
    return InvalidArgument("a user needs a user_id and a username");
  }
  if (user.failed_attempts < 0) return InvalidArgument("invalid failed attempt count");
  return Status::Ok();
}

// now >= last_used + idle, without overflowing for a huge idle timeout (then: never idle).
bool IdleExpired(int64_t now_ms, int64_t last_used_ms, int64_t idle_timeout_ms) {
  int64_t idle_end = 0;
  if (__builtin_add_overflow(last_used_ms, idle_timeout_ms, &idle_end)) return false;
  return now_ms >= idle_end;
}

// A search statement being assembled: SQL text from constant fragments and numbered
// placeholders, and the values those placeholders bind, in order. The values are views of
// the caller's query, which outlives the statement.
class SearchSql {
 public:
  SearchSql& Append(std::string_view fragment) {
    text_ += fragment;
    return *this;
  }
  SearchSql& Text(std::string_view value) { return Param({Kind::kText, value, 0}); }
  SearchSql& Int(int64_t value) { return Param({Kind::kInt, {}, value}); }
  // "(?n, ?n+1, ...)", one BLOB (tokens) or TEXT (ids) placeholder per value.
  SearchSql& BlobList(const std::vector<std::string>& values) { return List(Kind::kBlob, values); }
  SearchSql& TextList(const std::vector<std::string>& values) { return List(Kind::kText, values); }

  Result<Statement> Prepare(Connection& connection, const char* name) const {
    ASSIGN_OR_RETURN(Statement statement, connection.PrepareUncached(text_, name));
    int index = 1;
    for (const Value& value : values_) {
      switch (value.kind) {
        case Kind::kText:
          statement.BindText(index, value.bytes);
          break;
        case Kind::kBlob:
          statement.BindBlob(index, value.bytes);
          break;
        case Kind::kInt:
          statement.BindInt64(index, value.number);
          break;
      }
      ++index;
    }
    return statement;
  }

 private:
  enum class Kind { kText, kBlob, kInt };
  struct Value {
    Kind kind;
    std::string_view bytes;
    int64_t number;
  };

  SearchSql& Param(const Value& value) {
    values_.push_back(value);
    text_ += '?';
    text_ += std::to_string(values_.size());
    return *this;
  }
  SearchSql& List(Kind kind, const std::vector<std::string>& values) {
    text_ += '(';
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) text_ += ", ";
      Param({kind, values[i], 0});
    }
    text_ += ')';
    return *this;
  }

  std::string text_;
  std::vector<Value> values_;
};

// The kInvalidArgument cases of Store::SearchCurrent, plus the bounds above.
Status ValidateSearch(const SearchQuery& query) {
  if (query.type.empty()) return InvalidArgument("a search needs a resource type");
  if (query.limit <= 0) return InvalidArgument("a search needs a positive limit");
  if (query.all_of.size() > kMaxSearchClauses) {
    return InvalidArgument("too many search conditions");
  }
  size_t values = query.ids.size();
  for (const SearchClause& clause : query.all_of) {
    if (clause.any_of.empty()) return InvalidArgument("a search condition needs a value");
    for (const std::string& token : clause.any_of) {
      if (token.empty()) return InvalidArgument("a search value must not be empty");
    }
    if (clause.by_year && clause.year_low > clause.year_high) {
      return InvalidArgument("a search year range is reversed");
    }
    values += clause.any_of.size();
  }
  if (values > kMaxSearchValues) return InvalidArgument("too many search values");
  return Status::Ok();
}

Status ValidateIndex(const VersionRecord& record) {
  // A tombstone has no current content, hence nothing a search could find.
  if (record.deleted && !record.index.empty()) {
    return InvalidArgument("a deleted version carries no content");
  }
  for (const IndexEntry& entry : record.index) {
    if (entry.token.empty()) return InvalidArgument("a search index entry needs a token");
    if (entry.low_year > entry.high_year) {
      return InvalidArgument("a search index entry's years are reversed");
    }
  }
  return Status::Ok();
}

// The conditions of `query` other than `driver` (all of them when there is none), as
// [NOT] EXISTS tests correlated on the driving alias.
void AppendConditionTests(const SearchQuery& query, std::optional<size_t> driver, SearchSql& sql) {
  for (size_t i = 0; i < query.all_of.size(); ++i) {
    if (driver && i == *driver) continue;
    const SearchClause& clause = query.all_of[i];
    if (driver) {
      sql.Append(clause.negate ? kSearchByIndexNotExists : kSearchByIndexExists);
    } else {
      sql.Append(clause.negate ? kSearchByResourceNotExists : kSearchByResourceExists);
    }
    sql.BlobList(clause.any_of);
    if (clause.by_year) {
      sql.Append(kSearchExistsYearHigh).Int(clause.year_high);
      sql.Append(kSearchExistsYearLow).Int(clause.year_low);
    }
    sql.Append(kSearchExistsEnd);
  }
}

// The statement returning (id, current version) of the page `query` asks for, driven by
// the condition `driver` or, without one, by resource_current (see the plans above).
SearchSql BuildSearch(const SearchQuery& query, std::optional<size_t> driver) {
  SearchSql sql;
  if (driver) {
    const SearchClause& clause = query.all_of[*driver];
    sql.Append(kSearchByIndexSelect).Text(query.type);
    sql.Append(kSearchByIndexAfter).Text(query.after_id);
    sql.Append(kSearchByIndexTokens).BlobList(clause.any_of);
    if (clause.by_year) {
      sql.Append(kSearchByIndexYearHigh).Int(clause.year_high);
      sql.Append(kSearchByIndexYearLow).Int(clause.year_low);
    }
  } else {
    sql.Append(kSearchByResourceSelect).Text(query.type);
    if (query.ids.empty()) {
      sql.Append(kSearchByResourceAfter).Text(query.after_id);
    } else {
      sql.Append(kSearchByResourceIdsAfter).Text(query.after_id);
      sql.Append(kSearchByResourceIds).TextList(query.ids);
    }
  }
  sql.Append(kSearchLiveVersion).Int(query.updated_from_ms);
  sql.Append(kSearchUpdatedBefore).Int(query.updated_to_ms);
  AppendConditionTests(query, driver, sql);
  sql.Append(driver ? kSearchByIndexOrder : kSearchByResourceOrder).Int(query.limit);
  return sql;
}

// The index rows of `clause`'s tokens past query.after_id, up to kSortableDriverRows.
Result<int64_t> CountDriverRows(Connection& reader, const SearchQuery& query,
                                const SearchClause& clause) {
  SearchSql sql;
  sql.Append(kCountDriverRowsSelect).Text(query.type);
  sql.Append(kCountDriverRowsAfter).Text(query.after_id);
  sql.Append(kCountDriverRowsTokens).BlobList(clause.any_of);
  sql.Append(kCountDriverRowsLimit).Int(kSortableDriverRows).Append(kCountDriverRowsEnd);
  ASSIGN_OR_RETURN(Statement count, sql.Prepare(reader, "search_count_driver_rows"));
  ASSIGN_OR_RETURN(bool has_row, count.Step());
  if (!has_row) return Internal("storage error");  // count(*) always yields a row
  return count.ColumnInt64(0);
}

// The positive condition that drives the search (see the plans above), or nullopt to walk
// resource_current: listed ids are sought directly, a query without a positive condition
// has nothing to walk in the index, and several tokens that each match many rows would
// need every match sorted. Otherwise the condition with the fewest rows (estimated with
// capped counts) drives; if even that one has too many rows to sort, the one-token
// condition with the fewest rows is walked in id order.
Result<std::optional<size_t>> ChooseDriver(Connection& reader, const SearchQuery& query) {
  if (!query.ids.empty()) return std::optional<size_t>();
  std::vector<size_t> positive;
  for (size_t i = 0; i < query.all_of.size(); ++i) {
    if (!query.all_of[i].negate) positive.push_back(i);
  }
  if (positive.empty()) return std::optional<size_t>();
  // The common case (one identifier, one reference): nothing to choose.
  if (positive.size() == 1 && query.all_of[positive[0]].any_of.size() == 1) {
    return std::optional<size_t>(positive[0]);
  }
  std::optional<size_t> fewest;
  std::optional<size_t> fewest_single_token;
  int64_t fewest_rows = 0;
  int64_t fewest_single_token_rows = 0;
  for (size_t i : positive) {
    ASSIGN_OR_RETURN(int64_t rows, CountDriverRows(reader, query, query.all_of[i]));
    if (!fewest || rows < fewest_rows) {
      fewest = i;
      fewest_rows = rows;
    }
    if (query.all_of[i].any_of.size() == 1 &&
        (!fewest_single_token || rows < fewest_single_token_rows)) {
      fewest_single_token = i;
      fewest_single_token_rows = rows;
    }
    if (rows == 0) break;  // nothing matches: this condition answers fastest
  }
  if (fewest_rows < kSortableDriverRows) return fewest;
  return fewest_single_token;
}

class SqliteStore final : public Store {
 public:
  SqliteStore(std::unique_ptr<Connection> writer, std::vector<std::unique_ptr<Connection>> readers,
              std::chrono::milliseconds read_wait, int64_t cache_bytes, const Clock& clock,
              int64_t ended_session_retention_ms)
      : read_wait_(read_wait),
        clock_(clock),
        ended_session_retention_ms_(ended_session_retention_ms),
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

  using Store::AppendVersion;
  Result<int64_t> AppendVersion(const VersionRecord& record, int64_t expected_version,
                                const BeforeCommit& before_commit) override {
    RETURN_IF_ERROR(ValidateWrite(record, expected_version));
    std::lock_guard lock(write_mutex_);
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginImmediate(*writer_));
    // Returning drops the transaction, which rolls back: nothing changed.
    ASSIGN_OR_RETURN(int64_t seq, WriteVersionLocked(record, expected_version));
    if (before_commit) RETURN_IF_ERROR(before_commit());
    RETURN_IF_ERROR(transaction.Commit());
    cache_.Written(CommittedRecord(record, seq));
    return seq;
  }

  Result<std::vector<int64_t>> AppendVersions(const std::vector<VersionWrite>& writes,
                                              const BeforeCommit& before_commit) override {
    if (writes.empty()) return std::vector<int64_t>();
    std::lock_guard lock(write_mutex_);
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginImmediate(*writer_));
    // Each write is checked and applied in order, so the error returned is the first one in
    // `writes`, whatever its kind. Returning drops the transaction, which rolls back every
    // earlier write too.
    std::set<std::pair<std::string_view, std::string_view>> resources;
    std::vector<int64_t> seqs;
    seqs.reserve(writes.size());
    for (size_t i = 0; i < writes.size(); ++i) {
      const VersionWrite& write = writes[i];
      if (Status valid = ValidateWrite(write.record, write.expected_version); !valid.ok()) {
        return EntryError(i, valid);
      }
      // Each write is checked against the version before the call, so a second write of
      // one resource would be checked against a version the first one replaced.
      if (!resources.emplace(write.record.type, write.record.id).second) {
        return EntryError(i, InvalidArgument("the resource is written twice"));
      }
      auto seq = WriteVersionLocked(write.record, write.expected_version);
      if (!seq.ok()) return EntryError(i, seq.status());
      seqs.push_back(*seq);
    }
    if (before_commit) RETURN_IF_ERROR(before_commit());
    RETURN_IF_ERROR(transaction.Commit());
    // Only after the commit: a rolled-back write must never become visible through the cache.
    for (size_t i = 0; i < writes.size(); ++i) {
      cache_.Written(CommittedRecord(writes[i].record, seqs[i]));
    }
    return seqs;
  }

  Result<std::vector<VersionRecord>> SearchCurrent(const SearchQuery& query) override {
    RETURN_IF_ERROR(ValidateSearch(query));
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(std::optional<size_t> driver, ChooseDriver(*reader, query));
    std::vector<std::pair<std::string, int64_t>> page;  // (id, current version)
    {
      const SearchSql sql = BuildSearch(query, driver);
      ASSIGN_OR_RETURN(Statement select, sql.Prepare(*reader, "search_current"));
      while (true) {
        ASSIGN_OR_RETURN(bool has_row, select.Step());
        if (!has_row) break;
        page.emplace_back(select.ColumnText(0), select.ColumnInt64(1));
      }
    }
    // The records are read by (type, id, version) after the page is known, so the page's
    // sort carries ids, not ciphertext. A version row never changes once written, so this
    // returns exactly the versions the page found current, even if a write came between.
    std::vector<VersionRecord> records;
    records.reserve(page.size());
    for (const auto& [id, version] : page) {
      if (auto cached = cache_.Get(query.type, id); cached && cached->version == version) {
        records.push_back(std::move(*cached));
        continue;
      }
      ASSIGN_OR_RETURN(Statement select, reader->Prepare(kSelectVersion));
      select.BindText(1, query.type).BindText(2, id).BindInt64(3, version);
      ASSIGN_OR_RETURN(std::optional<VersionRecord> record, ReadOptionalVersion(select));
      if (!record) {
        // resource_current's foreign key makes this impossible unless the file was altered.
        Log(LogLevel::kError, "storage.search_version_missing");
        return Internal("storage error");
      }
      records.push_back(std::move(*record));
    }
    return records;
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
    if (!KnownAuthMethod(client.auth_method)) {
      return InvalidArgument("unknown client authentication method");
    }
    if (!KnownBaaStatus(client.baa_status)) return InvalidArgument("unknown BAA status");
    std::lock_guard lock(write_mutex_);
    // One statement in autocommit mode is its own transaction, durable when Run returns.
    ASSIGN_OR_RETURN(Statement insert, writer_->Prepare(kInsertClient));
    insert.BindText(1, client.client_id)
        .BindText(2, client.name)
        .BindText(3, client.secret_hash)
        .BindText(4, client.scope)
        .BindInt64(5, client.created_ms)
        .BindInt64(6, client.disabled ? 1 : 0)
        .BindText(7, client.auth_method)
        .BindText(8, client.jwks)
        .BindText(9, client.roles)
        .BindText(10, client.redirect_uris)
        .BindInt64(11, client.third_party ? 1 : 0)
        .BindText(12, client.baa_counterparty)
        .BindInt64(13, client.baa_signed_ms)
        .BindInt64(14, client.baa_expires_ms)
        .BindText(15, client.baa_status);
    return RenameConflict(insert.Run(), "client already exists");
  }

  Result<std::optional<ClientRecord>> GetClient(const std::string& client_id) override {
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(kSelectClient));
    select.BindText(1, client_id);
    return ReadOptionalRow(select, ReadClientRow);
  }

  Result<std::vector<ClientRecord>> ListClients() override {
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(kListClients));
    return ReadAllRows(select, ReadClientRow);
  }

  Status SetClientBaa(const std::string& client_id, const BaaRecord& baa,
                      bool third_party) override {
    if (client_id.empty()) return InvalidArgument("a client needs a client_id");
    if (baa.status != "active" && baa.status != "revoked") {
      return InvalidArgument("a BAA status must be active or revoked");
    }
    if (baa.status == "active") {
      if (baa.counterparty.empty()) return InvalidArgument("a BAA needs a counterparty");
      if (baa.expires_ms <= baa.signed_ms) {
        return InvalidArgument("a BAA must expire after it is signed");
      }
    }
    std::lock_guard lock(write_mutex_);
    // Autocommit: one statement, durable when it completes.
    ASSIGN_OR_RETURN(Statement update, writer_->Prepare(kSetClientBaa));
    update.BindText(1, client_id)
        .BindText(2, baa.status)
        .BindText(3, baa.counterparty)
        .BindInt64(4, baa.signed_ms)
        .BindInt64(5, baa.expires_ms)
        .BindInt64(6, third_party ? 1 : 0);
    ASSIGN_OR_RETURN(bool found, update.Step());
    // Done already when nothing matched (stepping again would run the UPDATE a second
    // time); otherwise finish the statement, which commits it.
    if (!found) return NotFound("client not found");
    return update.Run();
  }

  // --- break-glass grants ---

  Status PutBreakGlassGrant(const BreakGlassGrant& grant) override {
    if (grant.grant_id.empty() || grant.user_id.empty() || grant.client_id.empty() ||
        grant.patient_id.empty()) {
      return InvalidArgument("a break-glass grant needs a grant, user, client and patient id");
    }
    if (grant.expires_ms <= grant.opened_ms) {
      return InvalidArgument("a break-glass grant must expire after it opens");
    }
    std::lock_guard lock(write_mutex_);
    ASSIGN_OR_RETURN(Statement insert, writer_->Prepare(kInsertGrant));
    insert.BindText(1, grant.grant_id)
        .BindText(2, grant.user_id)
        .BindText(3, grant.client_id)
        .BindText(4, grant.patient_id)
        .BindBlob(5, grant.reason_sealed)
        .BindInt64(6, grant.key_version)
        .BindInt64(7, grant.opened_ms)
        .BindInt64(8, grant.expires_ms)
        .BindInt64(9, grant.auth_time_ms);
    return RenameConflict(insert.Run(), "grant exists");
  }

  Result<std::optional<BreakGlassGrant>> LatestBreakGlassGrant(
      const std::string& user_id, const std::string& patient_id) override {
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(kSelectLatestGrant));
    select.BindText(1, user_id).BindText(2, patient_id);
    ASSIGN_OR_RETURN(bool has_row, select.Step());
    if (!has_row) return std::optional<BreakGlassGrant>();
    ASSIGN_OR_RETURN(BreakGlassGrant grant, ReadGrantRow(select));
    return std::optional<BreakGlassGrant>(std::move(grant));
  }

  Result<std::vector<BreakGlassGrant>> ListBreakGlassGrants(int64_t since_ms, int limit) override {
    if (limit <= 0) return InvalidArgument("the grant listing limit must be positive");
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(kListGrantsSince));
    select.BindInt64(1, since_ms).BindInt64(2, limit);
    std::vector<BreakGlassGrant> grants;
    while (true) {
      ASSIGN_OR_RETURN(bool has_row, select.Step());
      if (!has_row) return grants;
      ASSIGN_OR_RETURN(BreakGlassGrant grant, ReadGrantRow(select));
      grants.push_back(std::move(grant));
    }
  }

  // --- users ---

  Status PutUser(const UserRecord& user) override {
    RETURN_IF_ERROR(ValidateUser(user));
    // Lower-cased here as well as by the caller: the store's uniqueness (NOCASE) and the
    // stored form then agree whoever writes.
    const std::string username = ToLowerAscii(user.username);
    std::lock_guard lock(write_mutex_);
    ASSIGN_OR_RETURN(Statement insert, writer_->Prepare(kInsertUser));
    insert.BindText(1, user.user_id)
        .BindText(2, username)
        .BindText(3, user.roles)
        .BindText(4, user.fhir_user)
        .BindText(5, user.password_hash)
        .BindBlob(6, user.totp_secret)
        .BindInt64(7, user.mfa_enrolled ? 1 : 0)
        .BindInt64(8, user.totp_last_step)
        .BindText(9, user.enrollment_hash)
        .BindInt64(10, user.enrollment_expires_ms)
        .BindInt64(11, user.failed_attempts)
        .BindInt64(12, user.locked_until_ms)
        .BindInt64(13, user.disabled ? 1 : 0)
        .BindInt64(14, user.created_ms)
        .BindInt64(15, user.sessions_valid_after_ms);
    // The id, the username, or (astronomically unlikely) the enrollment token hash is taken.
    return RenameConflict(insert.Run(), "user exists");
  }

  Status UpdateUser(const UserRecord& user, int64_t expected_revision) override {
    RETURN_IF_ERROR(ValidateUser(user));
    std::lock_guard lock(write_mutex_);
    // Check and write under one write lock: a concurrent update (thread or process, e.g. a
    // login counting a failure while `users disable` runs) cannot slip in between.
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginImmediate(*writer_));
    {
      ASSIGN_OR_RETURN(Statement select, writer_->Prepare(kSelectUserRevision));
      select.BindText(1, user.user_id);
      ASSIGN_OR_RETURN(bool exists, select.Step());
      if (!exists) return NotFound("user not found");
      if (!EqualsIgnoreCase(select.ColumnText(0), user.username)) {
        return InvalidArgument("a username cannot change");
      }
      if (select.ColumnInt64(1) != expected_revision) return VersionConflict();
    }
    {
      ASSIGN_OR_RETURN(Statement update, writer_->Prepare(kUpdateUser));
      update.BindText(1, user.user_id)
          .BindText(2, user.roles)
          .BindText(3, user.fhir_user)
          .BindText(4, user.password_hash)
          .BindBlob(5, user.totp_secret)
          .BindInt64(6, user.mfa_enrolled ? 1 : 0)
          .BindInt64(7, user.totp_last_step)
          .BindText(8, user.enrollment_hash)
          .BindInt64(9, user.enrollment_expires_ms)
          .BindInt64(10, user.failed_attempts)
          .BindInt64(11, user.locked_until_ms)
          .BindInt64(12, user.disabled ? 1 : 0)
          .BindInt64(13, user.sessions_valid_after_ms)
          .BindInt64(14, expected_revision);
      // Only the enrollment hash index can be violated here.
      RETURN_IF_ERROR(RenameConflict(update.Run(), "enrollment token exists"));
    }
    return transaction.Commit();
  }

  Result<std::optional<UserRecord>> GetUser(const std::string& user_id) override {
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(kSelectUser));
    select.BindText(1, user_id);
    return ReadOptionalRow(select, ReadUserRow);
  }

  Result<std::optional<UserRecord>> GetUserByName(const std::string& username) override {
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(kSelectUserByName));
    select.BindText(1, username);
    return ReadOptionalRow(select, ReadUserRow);
  }

  Result<std::optional<UserRecord>> GetUserByEnrollment(const std::string& hash) override {
    // "" means "no enrollment outstanding"; it must never find a user.
    if (hash.empty()) return std::optional<UserRecord>();
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(kSelectUserByEnrollment));
    select.BindText(1, hash);
    return ReadOptionalRow(select, ReadUserRow);
  }

  Result<std::vector<UserRecord>> ListUsers() override {
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(kListUsers));
    return ReadAllRows(select, ReadUserRow);
  }

  // --- refresh token families ---

  Status CreateRefreshFamily(const RefreshFamily& family,
                             const std::string& first_token_hash) override {
    if (family.family_id.empty() || family.user_id.empty() || family.client_id.empty() ||
        first_token_hash.empty()) {
      return InvalidArgument("a session needs a family id, user, client and token");
    }
    if (family.revoked) return InvalidArgument("a new session cannot be revoked");
    std::lock_guard lock(write_mutex_);
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginImmediate(*writer_));
    // Housekeeping rides on the (infrequent) login rather than on a timer. auth_time is the
    // new session's "now"; far-past values just purge nothing.
    int64_t purge_before = 0;
    if (!__builtin_sub_overflow(family.auth_time_ms, ended_session_retention_ms_, &purge_before)) {
      ASSIGN_OR_RETURN(Statement purge, writer_->Prepare(kPurgeEndedFamilies));
      purge.BindInt64(1, purge_before);
      RETURN_IF_ERROR(purge.Run());
    }
    {
      ASSIGN_OR_RETURN(Statement insert, writer_->Prepare(kInsertFamily));
      insert.BindText(1, family.family_id)
          .BindText(2, family.user_id)
          .BindText(3, family.client_id)
          .BindText(4, family.scope)
          .BindInt64(5, family.auth_time_ms)
          .BindInt64(6, family.expires_ms)
          .BindInt64(7, family.last_used_ms);
      RETURN_IF_ERROR(RenameConflict(insert.Run(), "session exists"));
    }
    {
      ASSIGN_OR_RETURN(Statement insert, writer_->Prepare(kInsertCurrentToken));
      insert.BindText(1, first_token_hash)
          .BindText(2, family.family_id)
          .BindInt64(3, family.auth_time_ms);
      RETURN_IF_ERROR(RenameConflict(insert.Run(), "session exists"));
    }
    return transaction.Commit();
  }

  Result<RotateResult> RotateRefreshToken(const std::string& old_hash, const std::string& new_hash,
                                          int64_t now_ms, int64_t idle_timeout_ms) override {
    if (old_hash.empty() || new_hash.empty() || old_hash == new_hash) {
      return InvalidArgument("invalid refresh token rotation");
    }
    if (idle_timeout_ms <= 0) return InvalidArgument("the idle timeout must be positive");

    std::lock_guard lock(write_mutex_);
    // Read, decide and write under one write lock: two requests presenting the same token at
    // once (or a replay racing the legitimate client) cannot both rotate it; the second sees
    // a rotated token and revokes the family (RFC 9700 §4.14.2).
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginImmediate(*writer_));
    RotateResult result;
    bool is_current = false;
    {
      ASSIGN_OR_RETURN(Statement select, writer_->Prepare(kSelectTokenFamily));
      select.BindText(1, old_hash);
      ASSIGN_OR_RETURN(bool found, select.Step());
      // Nothing to change: returning rolls the empty transaction back.
      if (!found) return result;  // kUnknown
      result.family = ReadFamilyRow(select);
      is_current = select.ColumnInt64(8) != 0;
    }
    RefreshFamily& family = result.family;
    if (family.revoked) {
      result.outcome = RotateOutcome::kRevoked;
      return result;
    }
    if (!is_current) {
      result.outcome = RotateOutcome::kReused;
    } else if (now_ms >= family.expires_ms ||
               IdleExpired(now_ms, family.last_used_ms, idle_timeout_ms)) {
      result.outcome = RotateOutcome::kExpired;
    } else {
      result.outcome = RotateOutcome::kRotated;
    }

    if (result.outcome != RotateOutcome::kRotated) {
      ASSIGN_OR_RETURN(Statement revoke, writer_->Prepare(kRevokeFamily));
      revoke.BindText(1, family.family_id).BindInt64(2, now_ms);
      RETURN_IF_ERROR(revoke.Run());
      RETURN_IF_ERROR(transaction.Commit());
      family.revoked = true;
      return result;
    }

    {
      // The old hash stays, no longer current: presenting it again is detected as reuse.
      ASSIGN_OR_RETURN(Statement retire, writer_->Prepare(kRetireToken));
      retire.BindText(1, old_hash).BindInt64(2, now_ms);
      RETURN_IF_ERROR(retire.Run());
    }
    {
      ASSIGN_OR_RETURN(Statement insert, writer_->Prepare(kInsertCurrentToken));
      insert.BindText(1, new_hash).BindText(2, family.family_id).BindInt64(3, now_ms);
      RETURN_IF_ERROR(RenameConflict(insert.Run(), "refresh token exists"));
    }
    {
      ASSIGN_OR_RETURN(Statement touch, writer_->Prepare(kTouchFamily));
      touch.BindText(1, family.family_id).BindInt64(2, now_ms);
      RETURN_IF_ERROR(touch.Run());
    }
    RETURN_IF_ERROR(transaction.Commit());
    family.last_used_ms = now_ms;
    return result;
  }

  Result<std::optional<RefreshFamily>> FindRefreshToken(const std::string& hash) override {
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(kSelectCurrentTokenFamily));
    select.BindText(1, hash);
    return ReadOptionalRow(select, ReadFamilyRow);
  }

  Result<std::optional<RefreshFamily>> GetRefreshFamily(const std::string& family_id) override {
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(kSelectFamily));
    select.BindText(1, family_id);
    return ReadOptionalRow(select, ReadFamilyRow);
  }

  Status RevokeRefreshFamily(const std::string& family_id) override {
    if (family_id.empty()) return InvalidArgument("a session needs a family id");
    const int64_t now_ms = clock_.NowMillis();
    std::lock_guard lock(write_mutex_);
    // Autocommit: one statement, durable when Run returns. Unknown ids change nothing.
    ASSIGN_OR_RETURN(Statement revoke, writer_->Prepare(kRevokeFamily));
    revoke.BindText(1, family_id).BindInt64(2, now_ms);
    return revoke.Run();
  }

  Status RevokeUserSessions(const std::string& user_id) override {
    if (user_id.empty()) return InvalidArgument("a user needs a user_id");
    const int64_t now_ms = clock_.NowMillis();
    std::lock_guard lock(write_mutex_);
    ASSIGN_OR_RETURN(Statement revoke, writer_->Prepare(kRevokeUserFamilies));
    revoke.BindText(1, user_id).BindInt64(2, now_ms);
    return revoke.Run();
  }

  Result<std::vector<std::string>> RevokedFamiliesSince(int64_t since_ms) override {
    ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
    ASSIGN_OR_RETURN(Statement select, reader->Prepare(kSelectRevokedFamiliesSince));
    select.BindInt64(1, since_ms);
    return ReadAllRows(select, [](const Statement& row) { return row.ColumnText(0); });
  }

  // --- access token revocation and client assertion replay ---

  Status RevokeAccessToken(const std::string& jti, int64_t expires_ms) override {
    if (jti.empty()) return InvalidArgument("a revoked token needs a jti");
    std::lock_guard lock(write_mutex_);
    ASSIGN_OR_RETURN(Statement insert, writer_->Prepare(kInsertRevokedAccessToken));
    insert.BindText(1, jti).BindInt64(2, expires_ms);
    return insert.Run();
  }

  Result<std::vector<std::string>> RevokedAccessTokens(int64_t now_ms) override {
    std::vector<std::string> jtis;
    bool any_expired = false;
    {
      ASSIGN_OR_RETURN(ReadPool::Lease reader, readers_.Acquire(read_wait_));
      {
        ASSIGN_OR_RETURN(Statement select, reader->Prepare(kSelectRevokedAccessTokens));
        select.BindInt64(1, now_ms);
        ASSIGN_OR_RETURN(
            jtis, ReadAllRows(select, [](const Statement& row) { return row.ColumnText(0); }));
      }
      ASSIGN_OR_RETURN(Statement probe, reader->Prepare(kAnyExpiredAccessToken));
      probe.BindInt64(1, now_ms);
      ASSIGN_OR_RETURN(bool has_row, probe.Step());
      any_expired = has_row && probe.ColumnInt64(0) != 0;
    }
    // This is polled often; the write connection (and an fsync) is used only when an entry
    // has actually expired, i.e. about once per revoked token. Purging is housekeeping: its
    // failure (already logged) does not fail the answer, the next poll retries.
    if (any_expired) {
      std::lock_guard lock(write_mutex_);
      auto purge = writer_->Prepare(kPurgeRevokedAccessTokens);
      if (purge.ok()) {
        purge->BindInt64(1, now_ms);
        (void)purge->Run();
      }
    }
    return jtis;
  }

  Result<bool> RecordAssertionJti(const std::string& client_id, const std::string& jti,
                                  int64_t expires_ms, int64_t now_ms) override {
    if (client_id.empty() || jti.empty()) {
      return InvalidArgument("an assertion needs a client_id and a jti");
    }
    std::lock_guard lock(write_mutex_);
    // Purge and insert in one transaction: an expired entry for the same (client, jti) is
    // gone before the insert, so only an unexpired one counts as a replay.
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginImmediate(*writer_));
    {
      ASSIGN_OR_RETURN(Statement purge, writer_->Prepare(kPurgeAssertionJtis));
      purge.BindInt64(1, now_ms);
      RETURN_IF_ERROR(purge.Run());
    }
    bool inserted = false;
    {
      ASSIGN_OR_RETURN(Statement insert, writer_->Prepare(kInsertAssertionJti));
      insert.BindText(1, client_id).BindText(2, jti).BindInt64(3, expires_ms);
      ASSIGN_OR_RETURN(inserted, insert.Step());
      RETURN_IF_ERROR(insert.Run());
    }
    RETURN_IF_ERROR(transaction.Commit());
    return inserted;
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
  // The kInvalidArgument checks of AppendVersion, which need no transaction.
  static Status ValidateWrite(const VersionRecord& record, int64_t expected_version) {
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
    return ValidateIndex(record);
  }

  // AppendVersions' error for entry `i` (0-based, the index into `writes`): a conflict or
  // a malformed record is prefixed "entry <i>: " so the caller can point at the entry;
  // storage failures ("storage busy"...) keep their message, since they are no entry's fault.
  static Status EntryError(size_t i, const Status& status) {
    if (status.code() != StatusCode::kConflict && status.code() != StatusCode::kInvalidArgument) {
      return status;
    }
    return {status.code(), "entry " + std::to_string(i) + ": " + status.message()};
  }

  // Reads leave index empty (store.h), the cache included; the entries are not copied.
  static VersionRecord CommittedRecord(const VersionRecord& record, int64_t seq) {
    VersionRecord committed;
    committed.type = record.type;
    committed.id = record.id;
    committed.version = record.version;
    committed.last_updated_ms = record.last_updated_ms;
    committed.deleted = record.deleted;
    committed.key_version = record.key_version;
    committed.ciphertext = record.ciphertext;
    committed.seq = seq;
    return committed;
  }

  // One validated version write (ValidateWrite) inside the caller's BEGIN IMMEDIATE
  // transaction (write_mutex_ held): the version check, the version row, the current
  // pointer and the index entries. Returns the assigned seq; on an error the caller must
  // roll back (drop the transaction), since earlier statements may have run.
  Result<int64_t> WriteVersionLocked(const VersionRecord& record, int64_t expected_version) {
    // Check and write under one write lock: nothing (thread or process) can append between.
    int64_t current_version = 0;
    {
      ASSIGN_OR_RETURN(Statement select, writer_->Prepare(kSelectCurrentVersion));
      select.BindText(1, record.type).BindText(2, record.id);
      ASSIGN_OR_RETURN(bool exists, select.Step());
      if (exists) current_version = select.ColumnInt64(0);
    }
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
    // In the same transaction (issue 6 §2): the index never describes another version.
    RETURN_IF_ERROR(ReplaceIndexEntries(record));
    return seq;
  }

  // Replaces the search index entries of record's resource by record.index, inside the
  // caller's write transaction (write_mutex_ held).
  Status ReplaceIndexEntries(const VersionRecord& record) {
    {
      ASSIGN_OR_RETURN(Statement remove, writer_->Prepare(kDeleteIndexEntries));
      remove.BindText(1, record.type).BindText(2, record.id);
      RETURN_IF_ERROR(remove.Run());
    }
    // Sorted in primary-key order, equal entries become neighbours and are written once
    // (a resource may repeat a value, e.g. two identical codings), and the rows go into the
    // primary key's b-tree in order.
    std::vector<const IndexEntry*> entries;
    entries.reserve(record.index.size());
    for (const IndexEntry& entry : record.index) entries.push_back(&entry);
    auto key = [](const IndexEntry* entry) {
      return std::tie(entry->token, entry->low_year, entry->high_year);
    };
    std::sort(entries.begin(), entries.end(),
              [&](const IndexEntry* a, const IndexEntry* b) { return key(a) < key(b); });
    entries.erase(
        std::unique(entries.begin(), entries.end(),
                    [&](const IndexEntry* a, const IndexEntry* b) { return key(a) == key(b); }),
        entries.end());
    for (const IndexEntry* entry : entries) {
      ASSIGN_OR_RETURN(Statement insert, writer_->Prepare(kInsertIndexEntry));
      insert.BindText(1, record.type)
          .BindText(2, record.id)
          .BindBlob(3, entry->token)
          .BindInt64(4, entry->low_year)
          .BindInt64(5, entry->high_year);
      RETURN_IF_ERROR(insert.Run());
    }
    return Status::Ok();
  }

  // How long a read waits for a free pooled connection before answering kUnavailable.
  const std::chrono::milliseconds read_wait_;
  const Clock& clock_;  // stamps revoked_ms for revocations that carry no time
  const int64_t ended_session_retention_ms_;
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
  if (options.ended_session_retention_ms < 0) {
    return InvalidArgument("storage: ended_session_retention_ms must not be negative");
  }
  if (options.write_cache_bytes < 0) {
    return InvalidArgument("storage: write_cache_bytes must not be negative");
  }
  RETURN_IF_ERROR(sqlite::EnsurePrivateFile(options.path));
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> writer,
                   Connection::Open(options.path, ConnectionRole::kWrite, options.busy_timeout_ms,
                                    options.write_cache_bytes));
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
      options.current_cache_bytes,
      options.clock != nullptr ? *options.clock : SystemClock::Instance(),
      options.ended_session_retention_ms));
}

}  // namespace phigate::storage
