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

// Issue 3: authentication state of the built-in authorization server.
//
// clients gains the columns of the new ClientRecord fields. Their defaults describe what
// every client of a version-1 database is: a confidential client with a secret
// (client_secret_basic), no keys, no roles, no redirect URIs (client credentials only).
//
// users: one row per person. username is unique case-insensitively (NOCASE, ASCII, which
// is all a username may contain); totp_secret is a BLOB because it holds keyring-sealed
// bytes, never the secret. An outstanding enrollment token is found by its hash, so the
// hash is indexed and unique, but only among non-empty values: most users have none.
//
// refresh_families / refresh_tokens: a session and the chain of its refresh token hashes.
// Rotated hashes stay (is_current = 0) so presenting one again is recognised as reuse (OAuth
// 2.0 Security BCP, RFC 9700 §4.14.2). The partial unique index makes a second current
// token in one family impossible. ON DELETE CASCADE removes a purged family's tokens. The
// partial index on revoked_ms serves the deny-list poll (RevokedFamiliesSince).
//
// revoked_access_tokens (RFC 7009) and client_assertion_jtis (RFC 7523 §3) are kept until
// the token or assertion expires; the expiry indexes make purging a range scan.
constexpr Sql kMigration2Authentication{"migration_2_authentication", R"sql(
ALTER TABLE clients ADD COLUMN auth_method TEXT NOT NULL DEFAULT 'client_secret_basic'
  CHECK (auth_method IN ('client_secret_basic', 'private_key_jwt', 'none'));
ALTER TABLE clients ADD COLUMN jwks TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN roles TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '';
CREATE TABLE users (
  user_id TEXT PRIMARY KEY NOT NULL CHECK (length(user_id) > 0),
  username TEXT NOT NULL COLLATE NOCASE UNIQUE CHECK (length(username) > 0),
  roles TEXT NOT NULL,
  fhir_user TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  totp_secret BLOB NOT NULL,
  mfa_enrolled INTEGER NOT NULL CHECK (mfa_enrolled IN (0, 1)),
  totp_last_step INTEGER NOT NULL,
  enrollment_hash TEXT NOT NULL,
  enrollment_expires_ms INTEGER NOT NULL,
  failed_attempts INTEGER NOT NULL CHECK (failed_attempts BETWEEN 0 AND 2147483647),
  locked_until_ms INTEGER NOT NULL,
  disabled INTEGER NOT NULL CHECK (disabled IN (0, 1)),
  created_ms INTEGER NOT NULL,
  sessions_valid_after_ms INTEGER NOT NULL,
  revision INTEGER NOT NULL CHECK (revision >= 1)
) STRICT;
CREATE UNIQUE INDEX users_by_enrollment_hash ON users (enrollment_hash)
  WHERE enrollment_hash <> '';
CREATE TABLE refresh_families (
  family_id TEXT PRIMARY KEY NOT NULL CHECK (length(family_id) > 0),
  user_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  scope TEXT NOT NULL,
  auth_time_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  last_used_ms INTEGER NOT NULL,
  revoked INTEGER NOT NULL CHECK (revoked IN (0, 1)),
  revoked_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX refresh_families_by_user ON refresh_families (user_id);
CREATE INDEX refresh_families_by_expiry ON refresh_families (expires_ms);
CREATE INDEX refresh_families_by_revoked_ms ON refresh_families (revoked_ms) WHERE revoked = 1;
CREATE TABLE refresh_tokens (
  token_hash TEXT PRIMARY KEY NOT NULL CHECK (length(token_hash) > 0),
  family_id TEXT NOT NULL REFERENCES refresh_families (family_id) ON DELETE CASCADE,
  created_ms INTEGER NOT NULL,
  is_current INTEGER NOT NULL CHECK (is_current IN (0, 1)),
  rotated_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE UNIQUE INDEX refresh_tokens_one_current ON refresh_tokens (family_id) WHERE is_current = 1;
CREATE TABLE revoked_access_tokens (
  jti TEXT PRIMARY KEY NOT NULL CHECK (length(jti) > 0),
  expires_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX revoked_access_tokens_by_expiry ON revoked_access_tokens (expires_ms);
CREATE TABLE client_assertion_jtis (
  client_id TEXT NOT NULL CHECK (length(client_id) > 0),
  jti TEXT NOT NULL CHECK (length(jti) > 0),
  expires_ms INTEGER NOT NULL,
  PRIMARY KEY (client_id, jti)
) STRICT, WITHOUT ROWID;
CREATE INDEX client_assertion_jtis_by_expiry ON client_assertion_jtis (expires_ms);
PRAGMA user_version = 2;
)sql"};

// Issue 4: business associate agreements (§6) and break-glass grants (§5).
//
// clients gains the BAA columns. Their defaults describe every client of a version-2
// database: a first-party client with no agreement ("none"), so nothing that worked before
// the upgrade starts being refused. The CHECKs keep baa_status to the three values
// ClientRecord documents and an active agreement's interval non-empty.
//
// break_glass_grants: the emergency access record (HIPAA §164.312(a)(2)(ii), "emergency
// access procedure"). It is evidence, so it is append-only: the triggers refuse UPDATE and
// DELETE from any writer, not only from this code. reason_sealed is a BLOB because it holds
// keyring-sealed bytes, never the reason text. The (user_id, patient_id, opened_ms) index
// serves the per-request "latest grant" lookup and the opened_ms index the review listing;
// both end with the implicit rowid, which breaks ties between grants opened in one
// millisecond by insertion order.
constexpr Sql kMigration3BaaAndBreakGlass{"migration_3_baa_and_break_glass", R"sql(
ALTER TABLE clients ADD COLUMN third_party INTEGER NOT NULL DEFAULT 0
  CHECK (third_party IN (0, 1));
ALTER TABLE clients ADD COLUMN baa_counterparty TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN baa_signed_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN baa_expires_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN baa_status TEXT NOT NULL DEFAULT 'none'
  CHECK (baa_status IN ('none', 'active', 'revoked'));
CREATE TABLE break_glass_grants (
  grant_id TEXT PRIMARY KEY NOT NULL CHECK (length(grant_id) > 0),
  user_id TEXT NOT NULL CHECK (length(user_id) > 0),
  client_id TEXT NOT NULL CHECK (length(client_id) > 0),
  patient_id TEXT NOT NULL CHECK (length(patient_id) > 0),
  reason_sealed BLOB NOT NULL,
  key_version INTEGER NOT NULL CHECK (key_version BETWEEN 0 AND 4294967295),
  opened_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL CHECK (expires_ms > opened_ms),
  auth_time_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX break_glass_grants_by_user_patient
  ON break_glass_grants (user_id, patient_id, opened_ms);
CREATE INDEX break_glass_grants_by_opened ON break_glass_grants (opened_ms);
CREATE TRIGGER break_glass_grants_no_update BEFORE UPDATE ON break_glass_grants
BEGIN
  SELECT RAISE(ABORT, 'break-glass grants are append-only');
END;
CREATE TRIGGER break_glass_grants_no_delete BEFORE DELETE ON break_glass_grants
BEGIN
  SELECT RAISE(ABORT, 'break-glass grants are append-only');
END;
PRAGMA user_version = 3;
)sql"};

// Issue 6 §2: search over encrypted data.
//
// search_index: one row per search index entry of a resource's current version (see
// IndexEntry in storage/store.h): an opaque blind-index token (a truncated keyed HMAC, so
// no PHI in the clear) and, for dates, the years the value spans (HIPAA Safe Harbor
// treats a year alone as not identifying; both 0 otherwise). AppendVersion replaces a
// resource's rows in the same transaction as the version, so the index never points at a
// version that is not current and a current version is never missing from it.
//
// With 10^6 resources of ~30 entries each the rows outnumber everything else, so each
// entry is stored twice and no more: WITHOUT ROWID, so the primary key holds the row
// itself (a rowid table would add the table and a third copy for deleting by resource),
// and one secondary index, which in a WITHOUT ROWID table carries the whole primary key
// and so covers every search query:
// - the primary key (type, id, token, low_year, high_year) deletes a resource's rows as
//   one range and keeps one entry once;
// - search_index_by_token (token, type, id [, low_year, high_year]) walks a token's
//   resources of one type in id order, the order search results page in, so a query stops
//   after its LIMIT instead of sorting every match; the years it carries filter a date
//   range without leaving the index, and the EXISTS checks of further conditions are
//   seeks into it. An index ordered by year would find a rare year faster but return ids
//   out of order (every match sorted before the first page) and cost a third copy.
// token and id compare as BINARY (memcmp): the byte order SearchQuery pages in.
// A database migrated from version 3 holds resources without rows here: the store never
// sees plaintext, so it cannot make their tokens; search finds them once the fhir layer
// has re-indexed them (written a version with its entries).
constexpr Sql kMigration4SearchIndex{"migration_4_search_index", R"sql(
CREATE TABLE search_index (
  type TEXT NOT NULL,
  id TEXT NOT NULL,
  token BLOB NOT NULL CHECK (length(token) > 0),
  low_year INTEGER NOT NULL,
  high_year INTEGER NOT NULL,
  PRIMARY KEY (type, id, token, low_year, high_year)
) STRICT, WITHOUT ROWID;
CREATE INDEX search_index_by_token ON search_index (token, type, id);
PRAGMA user_version = 4;
)sql"};

struct Migration {
  int to_version;
  const Sql* sql;
};

// Append only: a released migration never changes, a new schema is a new entry.
constexpr std::array kMigrations{
    Migration{1, &kMigration1InitialSchema},
    Migration{2, &kMigration2Authentication},
    Migration{3, &kMigration3BaaAndBreakGlass},
    Migration{4, &kMigration4SearchIndex},
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
