// Store: durable storage of resource versions, API clients, wrapped data keys, and the
// authentication state of the built-in authorization server (users, refresh token families,
// revoked access tokens, seen client assertion ids).
//
// The store never sees plaintext PHI: a resource version arrives as an opaque AEAD
// ciphertext (sealed by the fhir layer with AAD = type/id/version). Plaintext columns are
// only type, id, version, lastUpdated, deleted flag, key version and a global sequence
// number that orders history.
//
// Every mutating call returns only after its commit is durable (fsync). Implementations
// must be safe to call from many threads at once, and safe while another process (the
// `phigate clients add` CLI) writes to the same database.
//
// Errors (client-safe messages, never SQL or values): kInvalidArgument for a malformed
// record or query; kConflict as documented per call; kUnavailable ("storage busy",
// "storage unavailable") when the database is locked past the busy timeout, the disk is
// full or I/O fails (retry later); kInternal for damage or defects.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace phigate::storage {

// One search index entry of a resource's current version (fhir/search_index.h makes
// them). `token` is opaque to the store (16 bytes: a truncated keyed HMAC of a parameter
// and a normalized value). Date parameters also carry the years their value spans, in the
// clear (HIPAA Safe Harbor treats a year alone as not identifying), so a date range
// narrows on years before the fhir layer refines on the decrypted resource; other entries
// have both years 0.
struct IndexEntry {
  std::string token;
  int32_t low_year = 0;
  int32_t high_year = 0;
};

struct VersionRecord {
  std::string type;
  std::string id;
  int64_t version = 0;          // 1, 2, 3... per (type, id)
  int64_t last_updated_ms = 0;  // UTC milliseconds
  bool deleted = false;         // a tombstone: ciphertext is empty
  uint32_t key_version = 0;     // DEK version that sealed ciphertext
  std::string ciphertext;       // nonce || ct || tag
  int64_t seq = 0;              // assigned by the store on append; global, increasing
  // AppendVersion: the search index entries of this version. They replace the resource's
  // previous entries in the same transaction, so the index always describes exactly the
  // current version (a tombstone has none). Reads leave it empty.
  std::vector<IndexEntry> index;
};

// One condition of a search over current versions: a resource matches when it has an
// index entry whose token is any of `any_of` (and, with `by_year`, whose year span
// overlaps [year_low, year_high]); `negate` inverts the condition (:not, :missing=true).
struct SearchClause {
  std::vector<std::string> any_of;
  bool by_year = false;
  int32_t year_low = 0;
  int32_t year_high = 0;
  bool negate = false;
};

// Candidates for a search: current, not deleted versions of `type` that satisfy every
// clause (none: every resource of the type), restricted to `ids` when non-empty, whose
// last_updated_ms lies in [updated_from_ms, updated_to_ms), with id > `after_id`; at most
// `limit` (> 0), in ascending id order (byte order), ciphertext included. The fhir layer
// decrypts them and checks each condition exactly (tokens are truncated, years coarse).
struct SearchQuery {
  std::string type;
  std::vector<SearchClause> all_of;
  std::vector<std::string> ids;
  int64_t updated_from_ms = INT64_MIN;
  int64_t updated_to_ms = INT64_MAX;
  std::string after_id;
  int limit = 100;
};

struct HistoryQuery {
  std::string type;        // required
  std::string id;          // empty: type-level history
  int64_t before_seq = 0;  // 0: from the newest; else only records with seq < before_seq
  int limit = 50;          // at most this many records
};

struct ClientRecord {
  std::string client_id;
  std::string name;
  std::string secret_hash;  // Argon2id PHC string; empty unless auth_method is secret_basic
  std::string scope;        // space-separated SMART scopes
  int64_t created_ms = 0;
  bool disabled = false;
  // "client_secret_basic" | "private_key_jwt" | "none" (a public app: PKCE only).
  std::string auth_method = "client_secret_basic";
  std::string jwks;           // the client's public JWKS (JSON) for private_key_jwt
  std::string roles;          // comma-separated role names
  std::string redirect_uris;  // space-separated; non-empty: may use authorization_code
  // Business associate agreement (issue 4 §6). A third-party client receives PHI only
  // while its BAA is active: baa_status "active" and baa_signed_ms <= now < baa_expires_ms.
  bool third_party = false;
  std::string baa_counterparty;     // the business associate's legal name; "" if no BAA
  int64_t baa_signed_ms = 0;        // UTC ms; 0 if no BAA
  int64_t baa_expires_ms = 0;       // UTC ms, exclusive; 0 if no BAA
  std::string baa_status = "none";  // "none" | "active" | "revoked"
};

// The business associate agreement fields of one client, as `phigate clients baa` sets them.
struct BaaRecord {
  std::string counterparty;
  int64_t signed_ms = 0;
  int64_t expires_ms = 0;
  std::string status;  // "active" | "revoked"
};

// One break-glass (emergency access) grant: a user's time box on one patient (issue 4 §5).
struct BreakGlassGrant {
  std::string grant_id;       // random, hex
  std::string user_id;        // the principal's subject
  std::string client_id;      // the app the user acted through
  std::string patient_id;     // the Patient resource id the grant covers
  std::string reason_sealed;  // the X-Break-Glass-Reason text, sealed by the keyring (AAD
                              // "break-glass/<grant_id>"); never plaintext
  uint32_t key_version = 0;   // the keyring version that sealed the reason
  int64_t opened_ms = 0;
  int64_t expires_ms = 0;
  int64_t auth_time_ms = 0;  // the authentication (second factor) that opened it
};

// A person who logs in to the built-in authorization server.
struct UserRecord {
  std::string user_id;          // 128 random bits, hex; immutable, unique
  std::string username;         // unique; stored lower-cased
  std::string roles;            // comma-separated role names
  std::string fhir_user;        // "" or a relative reference: "Practitioner/123", "Patient/7"
  std::string password_hash;    // Argon2id PHC; empty until enrolled
  std::string totp_secret;      // sealed by the keyring (never plaintext); empty if none
  bool mfa_enrolled = false;    // the TOTP secret was confirmed with a first code
  int64_t totp_last_step = 0;   // highest TOTP time step accepted (single use)
  std::string enrollment_hash;  // hex SHA-256 of the outstanding enrollment token, or ""
  int64_t enrollment_expires_ms = 0;
  int failed_attempts = 0;      // consecutive failed passwords/codes
  int64_t locked_until_ms = 0;  // 0: not locked
  bool disabled = false;
  int64_t created_ms = 0;
  // Tokens and sessions of this user that authenticated before this instant are void
  // (set on disable, MFA reset and re-enrollment).
  int64_t sessions_valid_after_ms = 0;
  int64_t revision = 0;  // set by the store: 1 on insert, +1 on every update
};

// One login session of the built-in server: a chain of rotated refresh tokens.
struct RefreshFamily {
  std::string family_id;  // random; also the access tokens' "sid"
  std::string user_id;
  std::string client_id;
  std::string scope;
  int64_t auth_time_ms = 0;  // when the person authenticated (password + TOTP)
  int64_t expires_ms = 0;    // absolute session end (auth_time + max lifetime)
  int64_t last_used_ms = 0;  // idle timeout counts from here
  bool revoked = false;
};

enum class RotateOutcome {
  kRotated,  // old token consumed, new token stored, family.last_used_ms = now
  kUnknown,  // no such token
  kReused,   // the token was already rotated: the whole family is now revoked
  kRevoked,  // the family was revoked before
  kExpired,  // idle timeout or absolute lifetime passed (the family is revoked now)
};

struct RotateResult {
  RotateOutcome outcome = RotateOutcome::kUnknown;
  RefreshFamily family;  // filled unless kUnknown
};

struct DataKeyRecord {
  uint32_t version = 0;
  std::string wrapped;  // DEK wrapped by the KEK
};

// Called inside a write transaction just before COMMIT (Store::AppendVersion).
using BeforeCommit = std::function<Status()>;

class Store {
 public:
  virtual ~Store() = default;

  // The newest version of (type, id), tombstone included; nullopt if it never existed.
  virtual Result<std::optional<VersionRecord>> ReadCurrent(const std::string& type,
                                                           const std::string& id) = 0;
  virtual Result<std::optional<VersionRecord>> ReadVersion(const std::string& type,
                                                           const std::string& id,
                                                           int64_t version) = 0;
  // Appends `record` (its seq is ignored) if and only if the newest version of
  // (record.type, record.id) is `expected_version` (0: the resource must not exist yet).
  // Otherwise returns kConflict ("version conflict") and changes nothing. record.version
  // must be expected_version + 1, type and id non-empty, and a tombstone's ciphertext empty
  // (else kInvalidArgument). Durable when it returns ok. Returns the assigned seq.
  Result<int64_t> AppendVersion(const VersionRecord& record, int64_t expected_version) {
    return AppendVersion(record, expected_version, {});
  }
  // The same; `before_commit` (may be empty) runs inside the transaction after the checks
  // and the write, just before COMMIT. If it fails, nothing is committed and its status is
  // returned. The audit stage writes a change's durable record there (issue 5 §2: no
  // change is committed without its record).
  virtual Result<int64_t> AppendVersion(const VersionRecord& record, int64_t expected_version,
                                        const BeforeCommit& before_commit) = 0;
  // Appends several versions (of different resources) in one transaction, all or nothing:
  // each write is checked and applied as AppendVersion would (version check, index
  // replacement), in order; the first failure rolls everything back and is returned,
  // prefixed "entry <i>: " for a version conflict ("entry 3: version conflict", kConflict)
  // or a malformed record (kInvalidArgument). Two writes of the same (type, id) are
  // kInvalidArgument. `before_commit` (may be empty) runs once, after every write, just
  // before COMMIT. Returns the assigned seqs in order. Empty `writes`: nothing happens.
  // For FHIR transactions (issue 6 §4) and bulk import.
  struct VersionWrite {
    VersionRecord record;
    int64_t expected_version = 0;
  };
  virtual Result<std::vector<int64_t>> AppendVersions(const std::vector<VersionWrite>& writes,
                                                      const BeforeCommit& before_commit) = 0;
  // Search candidates (see SearchQuery); kInvalidArgument for an empty type, a limit <= 0,
  // a clause with no token, or a year clause with year_low > year_high.
  virtual Result<std::vector<VersionRecord>> SearchCurrent(const SearchQuery& query) = 0;
  // Versions newest first (by seq), for one resource or one type. limit 0 yields nothing;
  // a negative limit or before_seq, or an empty type, is kInvalidArgument.
  virtual Result<std::vector<VersionRecord>> History(const HistoryQuery& query) = 0;

  // Insert; kConflict ("client already exists") if it exists, kInvalidArgument for an empty
  // client_id or an auth_method other than the three listed in ClientRecord.
  virtual Status PutClient(const ClientRecord& client) = 0;
  virtual Result<std::optional<ClientRecord>> GetClient(const std::string& client_id) = 0;

  virtual Result<std::vector<ClientRecord>> ListClients() = 0;  // ordered by client_id
  // Sets (status "active") or revokes (status "revoked"; the other fields keep their stored
  // values when empty/0) the BAA of a client; marks the client third_party when
  // `third_party` is true (never clears it). kNotFound ("client not found") if absent,
  // kInvalidArgument for a status other than "active"/"revoked" or, when active, an empty
  // counterparty or expires_ms <= signed_ms.
  virtual Status SetClientBaa(const std::string& client_id, const BaaRecord& baa,
                              bool third_party) = 0;
  // --- Break-glass grants (append-only; a grant is never updated or deleted) ---
  // kConflict ("grant exists") for a duplicate grant_id; kInvalidArgument for empty ids or
  // expires_ms <= opened_ms.
  virtual Status PutBreakGlassGrant(const BreakGlassGrant& grant) = 0;
  // The most recently opened grant of (user_id, patient_id), expired or not; nullopt if none.
  virtual Result<std::optional<BreakGlassGrant>> LatestBreakGlassGrant(
      const std::string& user_id, const std::string& patient_id) = 0;
  // Grants opened at or after `since_ms`, newest first, at most `limit` (> 0).
  virtual Result<std::vector<BreakGlassGrant>> ListBreakGlassGrants(int64_t since_ms,
                                                                    int limit) = 0;

  // --- Users (built-in authorization server) ---
  // Insert with revision 1 (user.revision is ignored); kConflict ("user exists") if the id or
  // username (compared ignoring ASCII case) is taken. The username is stored lower-cased.
  // kInvalidArgument for an empty user_id or username.
  virtual Status PutUser(const UserRecord& user) = 0;
  // Replaces the user if its stored revision is `expected_revision` (then revision + 1);
  // kConflict ("version conflict") otherwise, kNotFound ("user not found") if absent.
  // user_id, username and created_ms never change: a different username is
  // kInvalidArgument, a different created_ms is ignored.
  virtual Status UpdateUser(const UserRecord& user, int64_t expected_revision) = 0;
  virtual Result<std::optional<UserRecord>> GetUser(const std::string& user_id) = 0;
  virtual Result<std::optional<UserRecord>> GetUserByName(const std::string& username) = 0;
  // An empty hash finds nobody.
  virtual Result<std::optional<UserRecord>> GetUserByEnrollment(const std::string& hash) = 0;
  virtual Result<std::vector<UserRecord>> ListUsers() = 0;  // ordered by username

  // --- Refresh tokens: only SHA-256 hashes (hex) of the opaque tokens are stored ---
  // kConflict ("session exists") if the family id or token hash exists. Also deletes
  // families (and their tokens) whose expires_ms is older than family.auth_time_ms minus a
  // retention (SqliteOptions::ended_session_retention_ms, 24 h): their tokens read as
  // unknown afterwards.
  virtual Status CreateRefreshFamily(const RefreshFamily& family,
                                     const std::string& first_token_hash) = 0;
  // One transaction: if `old_hash` is the family's current token and the family is live
  // (not revoked, now < expires_ms, now < last_used_ms + idle_timeout_ms), replaces it by
  // `new_hash`. A hash that was current before (already rotated) revokes the family
  // (kReused); an expired family is revoked (kExpired). A revoked family answers kRevoked
  // whichever of its hashes is presented. Revocations here are stamped with now_ms.
  // kConflict ("refresh token exists") if new_hash exists; kInvalidArgument for empty or
  // equal hashes or a non-positive idle timeout.
  virtual Result<RotateResult> RotateRefreshToken(const std::string& old_hash,
                                                  const std::string& new_hash, int64_t now_ms,
                                                  int64_t idle_timeout_ms) = 0;
  // The family whose current token is `hash`, without changing anything (introspection);
  // nullopt for an unknown or already-rotated hash.
  virtual Result<std::optional<RefreshFamily>> FindRefreshToken(const std::string& hash) = 0;
  virtual Result<std::optional<RefreshFamily>> GetRefreshFamily(const std::string& family_id) = 0;
  // The two calls below stamp the revocation with the store's clock (SqliteOptions::clock);
  // an unknown id is not an error, and an already revoked family keeps its first time.
  virtual Status RevokeRefreshFamily(const std::string& family_id) = 0;  // idempotent
  virtual Status RevokeUserSessions(const std::string& user_id) = 0;     // all families
  // Families revoked at or after `since_ms` (by revocation time) for the in-memory deny
  // list, oldest revocation first.
  virtual Result<std::vector<std::string>> RevokedFamiliesSince(int64_t since_ms) = 0;

  // --- Access token revocation (RFC 7009) by jti, kept until the token's expiry ---
  virtual Status RevokeAccessToken(const std::string& jti, int64_t expires_ms) = 0;  // idempotent
  // Unexpired (expires_ms > now_ms) revoked jtis (start-up and refresh of the in-memory
  // deny list), ordered by jti; expired entries are purged. A repeated revocation keeps the
  // later expiry.
  virtual Result<std::vector<std::string>> RevokedAccessTokens(int64_t now_ms) = 0;

  // --- Replay protection for client assertions (RFC 7523 §3 "jti") ---
  // Records (client_id, jti) until expires_ms; returns false if it was already recorded
  // and has not expired (a replay). Purges expired entries (expires_ms <= now_ms) first, so
  // an expired duplicate is recorded anew (true).
  virtual Result<bool> RecordAssertionJti(const std::string& client_id, const std::string& jti,
                                          int64_t expires_ms, int64_t now_ms) = 0;

  virtual Result<std::vector<DataKeyRecord>> LoadDataKeys() = 0;
  virtual Status SaveDataKey(const DataKeyRecord& key) = 0;  // kConflict if version exists

  // True when the database answers (readiness).
  virtual bool Healthy() = 0;
};

}  // namespace phigate::storage
