// Tests for the issue-4 parts of the SQLite Store (storage/store.h): the business associate
// agreement fields of clients (SetClientBaa), break-glass grants (append-only), and schema
// migration 3 from a version-2 database.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "status_matchers.h"
#include "storage/raw_db.h"
#include "storage/sqlite/sqlite_store.h"

namespace phigate::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

namespace fs = std::filesystem;

constexpr int64_t kT0 = 1'700'000'000'000;  // Nov 2023
constexpr int64_t kDayMs = 24 * 60 * 60 * 1000;

using ::phigate::testing::IsOk;
using ::phigate::testing::StatusIs;

using ::phigate::testing::RawDb;

// The schema of version 2 exactly as the previous release wrote it (schema.cc migrations 1
// and 2). Frozen here on purpose: the upgrade test must start from the old file.
constexpr char kVersion2Schema[] = R"sql(
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
)sql";

ClientRecord MakeClient(const std::string& client_id) {
  ClientRecord client;
  client.client_id = client_id;
  client.name = "App " + client_id;
  client.secret_hash = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA";
  client.scope = "system/Observation.rs";
  client.created_ms = kT0;
  return client;
}

BaaRecord ActiveBaa(const std::string& counterparty, int64_t signed_ms, int64_t expires_ms) {
  BaaRecord baa;
  baa.counterparty = counterparty;
  baa.signed_ms = signed_ms;
  baa.expires_ms = expires_ms;
  baa.status = "active";
  return baa;
}

BreakGlassGrant MakeGrant(const std::string& grant_id, const std::string& user_id,
                          const std::string& patient_id, int64_t opened_ms) {
  BreakGlassGrant grant;
  grant.grant_id = grant_id;
  grant.user_id = user_id;
  grant.client_id = "ehr-app";
  grant.patient_id = patient_id;
  grant.reason_sealed = std::string("\x01\x00\xff sealed", 10);
  grant.key_version = 7;
  grant.opened_ms = opened_ms;
  grant.expires_ms = opened_ms + 60 * 60 * 1000;
  grant.auth_time_ms = opened_ms - 1000;
  return grant;
}

std::vector<std::string> GrantIds(const std::vector<BreakGlassGrant>& grants) {
  std::vector<std::string> ids;
  for (const BreakGlassGrant& grant : grants) ids.push_back(grant.grant_id);
  return ids;
}

class BaaGrantStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "phigate-baa-store-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/phigate.db";
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  std::unique_ptr<Store> Open() {
    SqliteOptions options;
    options.path = path_;
    options.read_connections = 2;
    options.clock = &clock_;
    auto store = OpenSqliteStore(options);
    EXPECT_THAT(store, IsOk());
    return store.ok() ? std::move(store).value() : nullptr;
  }
  void Reopen() {
    store_.reset();
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }
  ClientRecord Client(const std::string& client_id) {
    auto client = store_->GetClient(client_id);
    EXPECT_THAT(client, IsOk());
    if (!client.ok() || !client->has_value()) {
      ADD_FAILURE() << "no client " << client_id;
      return {};
    }
    return **client;
  }
  std::vector<std::string> ListedGrants(int64_t since_ms, int limit) {
    auto grants = store_->ListBreakGlassGrants(since_ms, limit);
    EXPECT_THAT(grants, IsOk());
    return grants.ok() ? GrantIds(*grants) : std::vector<std::string>{"<error>"};
  }

  FakeClock clock_{kT0};
  std::string dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
};

// --- clients: BAA fields ---------------------------------------------------------------------

TEST_F(BaaGrantStoreTest, NewClientHasNoAgreementByDefault) {
  ASSERT_THAT(store_->PutClient(MakeClient("app-1")), IsOk());
  ClientRecord client = Client("app-1");
  EXPECT_FALSE(client.third_party);
  EXPECT_EQ(client.baa_counterparty, "");
  EXPECT_EQ(client.baa_signed_ms, 0);
  EXPECT_EQ(client.baa_expires_ms, 0);
  EXPECT_EQ(client.baa_status, "none");
}

TEST_F(BaaGrantStoreTest, BaaFieldsRoundTripThroughPutGetAndList) {
  ClientRecord partner = MakeClient("partner");
  partner.third_party = true;
  partner.baa_counterparty = "Acme Analytics, Inc.";
  partner.baa_signed_ms = kT0;
  partner.baa_expires_ms = kT0 + 365 * kDayMs;
  partner.baa_status = "active";
  ASSERT_THAT(store_->PutClient(partner), IsOk());
  ClientRecord revoked = MakeClient("old-partner");
  revoked.third_party = true;
  revoked.baa_counterparty = "Old Co";
  revoked.baa_signed_ms = 5;
  revoked.baa_expires_ms = 6;
  revoked.baa_status = "revoked";
  ASSERT_THAT(store_->PutClient(revoked), IsOk());

  ClientRecord got = Client("partner");
  EXPECT_TRUE(got.third_party);
  EXPECT_EQ(got.baa_counterparty, "Acme Analytics, Inc.");
  EXPECT_EQ(got.baa_signed_ms, kT0);
  EXPECT_EQ(got.baa_expires_ms, kT0 + 365 * kDayMs);
  EXPECT_EQ(got.baa_status, "active");

  Reopen();
  auto clients = store_->ListClients();
  ASSERT_THAT(clients, IsOk());
  ASSERT_EQ(clients->size(), 2u);
  EXPECT_EQ((*clients)[0].client_id, "old-partner");
  EXPECT_TRUE((*clients)[0].third_party);
  EXPECT_EQ((*clients)[0].baa_counterparty, "Old Co");
  EXPECT_EQ((*clients)[0].baa_signed_ms, 5);
  EXPECT_EQ((*clients)[0].baa_expires_ms, 6);
  EXPECT_EQ((*clients)[0].baa_status, "revoked");
  EXPECT_EQ((*clients)[1].baa_counterparty, "Acme Analytics, Inc.");
  EXPECT_EQ((*clients)[1].baa_status, "active");
}

TEST_F(BaaGrantStoreTest, PutClientRejectsAnUnknownBaaStatus) {
  ClientRecord client = MakeClient("app-1");
  client.baa_status = "pending";
  EXPECT_THAT(store_->PutClient(client),
              StatusIs(StatusCode::kInvalidArgument, "unknown BAA status"));
  EXPECT_FALSE(store_->GetClient("app-1")->has_value());
}

TEST_F(BaaGrantStoreTest, SetClientBaaRecordsAnActiveAgreementAndMarksThirdParty) {
  ASSERT_THAT(store_->PutClient(MakeClient("partner")), IsOk());
  ASSERT_THAT(store_->SetClientBaa("partner", ActiveBaa("Acme", kT0, kT0 + kDayMs), true), IsOk());
  ClientRecord client = Client("partner");
  EXPECT_TRUE(client.third_party);
  EXPECT_EQ(client.baa_counterparty, "Acme");
  EXPECT_EQ(client.baa_signed_ms, kT0);
  EXPECT_EQ(client.baa_expires_ms, kT0 + kDayMs);
  EXPECT_EQ(client.baa_status, "active");
  // Unrelated fields are untouched.
  EXPECT_EQ(client.name, "App partner");
  EXPECT_EQ(client.scope, "system/Observation.rs");
  EXPECT_EQ(client.created_ms, kT0);

  // A renewal replaces the dates; third_party=false never clears the flag.
  ASSERT_THAT(store_->SetClientBaa("partner", ActiveBaa("Acme Corp", kT0 + 10, kT0 + 20), false),
              IsOk());
  client = Client("partner");
  EXPECT_TRUE(client.third_party);
  EXPECT_EQ(client.baa_counterparty, "Acme Corp");
  EXPECT_EQ(client.baa_signed_ms, kT0 + 10);
  EXPECT_EQ(client.baa_expires_ms, kT0 + 20);
}

TEST_F(BaaGrantStoreTest, SetClientBaaWithoutThirdPartyLeavesAFirstPartyClientFirstParty) {
  ASSERT_THAT(store_->PutClient(MakeClient("app-1")), IsOk());
  ASSERT_THAT(store_->SetClientBaa("app-1", ActiveBaa("Acme", kT0, kT0 + 1), false), IsOk());
  EXPECT_FALSE(Client("app-1").third_party);
  EXPECT_EQ(Client("app-1").baa_status, "active");
}

TEST_F(BaaGrantStoreTest, RevokeKeepsTheStoredAgreementFields) {
  ASSERT_THAT(store_->PutClient(MakeClient("partner")), IsOk());
  ASSERT_THAT(store_->SetClientBaa("partner", ActiveBaa("Acme", kT0, kT0 + kDayMs), true), IsOk());
  BaaRecord revoke;
  revoke.status = "revoked";
  ASSERT_THAT(store_->SetClientBaa("partner", revoke, false), IsOk());
  ClientRecord client = Client("partner");
  EXPECT_EQ(client.baa_status, "revoked");
  EXPECT_EQ(client.baa_counterparty, "Acme");
  EXPECT_EQ(client.baa_signed_ms, kT0);
  EXPECT_EQ(client.baa_expires_ms, kT0 + kDayMs);
  EXPECT_TRUE(client.third_party);

  // A revocation may also state fields; non-empty ones replace the stored values.
  revoke.counterparty = "Acme (terminated)";
  ASSERT_THAT(store_->SetClientBaa("partner", revoke, false), IsOk());
  client = Client("partner");
  EXPECT_EQ(client.baa_counterparty, "Acme (terminated)");
  EXPECT_EQ(client.baa_signed_ms, kT0);
  EXPECT_EQ(client.baa_status, "revoked");

  // And an agreement can be made active again.
  ASSERT_THAT(store_->SetClientBaa("partner", ActiveBaa("Acme", kT0 + 5, kT0 + 9), false), IsOk());
  EXPECT_EQ(Client("partner").baa_status, "active");
}

TEST_F(BaaGrantStoreTest, SetClientBaaErrors) {
  ASSERT_THAT(store_->PutClient(MakeClient("partner")), IsOk());
  EXPECT_THAT(store_->SetClientBaa("nobody", ActiveBaa("Acme", kT0, kT0 + 1), true),
              StatusIs(StatusCode::kNotFound, "client not found"));
  BaaRecord revoke;
  revoke.status = "revoked";
  EXPECT_THAT(store_->SetClientBaa("nobody", revoke, false),
              StatusIs(StatusCode::kNotFound, "client not found"));

  BaaRecord bad_status = ActiveBaa("Acme", kT0, kT0 + 1);
  for (const char* status : {"", "none", "Active", "expired"}) {
    bad_status.status = status;
    EXPECT_THAT(store_->SetClientBaa("partner", bad_status, true),
                StatusIs(StatusCode::kInvalidArgument, "a BAA status must be active or revoked"))
        << status;
  }
  EXPECT_THAT(store_->SetClientBaa("partner", ActiveBaa("Acme", kT0, kT0), true),
              StatusIs(StatusCode::kInvalidArgument, "a BAA must expire after it is signed"));
  EXPECT_THAT(store_->SetClientBaa("partner", ActiveBaa("Acme", kT0, kT0 - 1), true),
              StatusIs(StatusCode::kInvalidArgument, "a BAA must expire after it is signed"));
  EXPECT_THAT(store_->SetClientBaa("partner", ActiveBaa("", kT0, kT0 + 1), true),
              StatusIs(StatusCode::kInvalidArgument, "a BAA needs a counterparty"));
  EXPECT_THAT(store_->SetClientBaa("", ActiveBaa("Acme", kT0, kT0 + 1), true),
              StatusIs(StatusCode::kInvalidArgument, "a client needs a client_id"));

  // None of the refused calls changed anything.
  ClientRecord client = Client("partner");
  EXPECT_FALSE(client.third_party);
  EXPECT_EQ(client.baa_status, "none");
  EXPECT_EQ(client.baa_counterparty, "");
  EXPECT_EQ(client.baa_signed_ms, 0);
  EXPECT_EQ(client.baa_expires_ms, 0);
}

TEST_F(BaaGrantStoreTest, ARevocationByAnotherStoreIsSeenAtOnce) {
  // The CLI and the server are two processes with their own connections on one file.
  ASSERT_THAT(store_->PutClient(MakeClient("partner")), IsOk());
  ASSERT_THAT(store_->SetClientBaa("partner", ActiveBaa("Acme", kT0, kT0 + kDayMs), true), IsOk());
  ASSERT_EQ(Client("partner").baa_status, "active");
  std::unique_ptr<Store> cli = Open();
  ASSERT_NE(cli, nullptr);
  BaaRecord revoke;
  revoke.status = "revoked";
  ASSERT_THAT(cli->SetClientBaa("partner", revoke, false), IsOk());
  EXPECT_EQ(Client("partner").baa_status, "revoked");
}

// --- break-glass grants ----------------------------------------------------------------------

TEST_F(BaaGrantStoreTest, GrantRoundTripsAndSurvivesReopen) {
  BreakGlassGrant grant = MakeGrant("g1", "u1", "p1", kT0);
  ASSERT_THAT(store_->PutBreakGlassGrant(grant), IsOk());
  Reopen();
  auto latest = store_->LatestBreakGlassGrant("u1", "p1");
  ASSERT_THAT(latest, IsOk());
  ASSERT_TRUE(latest->has_value());
  const BreakGlassGrant& got = **latest;
  EXPECT_EQ(got.grant_id, "g1");
  EXPECT_EQ(got.user_id, "u1");
  EXPECT_EQ(got.client_id, "ehr-app");
  EXPECT_EQ(got.patient_id, "p1");
  EXPECT_EQ(got.reason_sealed, grant.reason_sealed);  // binary, NUL included
  EXPECT_EQ(got.key_version, 7u);
  EXPECT_EQ(got.opened_ms, kT0);
  EXPECT_EQ(got.expires_ms, kT0 + 60 * 60 * 1000);
  EXPECT_EQ(got.auth_time_ms, kT0 - 1000);
}

TEST_F(BaaGrantStoreTest, LatestIsTheMostRecentlyOpenedGrantOfThatUserAndPatient) {
  auto none = store_->LatestBreakGlassGrant("u1", "p1");
  ASSERT_THAT(none, IsOk());
  EXPECT_FALSE(none->has_value());

  // Inserted out of order: "latest" goes by opened_ms, not by insertion.
  ASSERT_THAT(store_->PutBreakGlassGrant(MakeGrant("g-mid", "u1", "p1", kT0 + 100)), IsOk());
  ASSERT_THAT(store_->PutBreakGlassGrant(MakeGrant("g-new", "u1", "p1", kT0 + 200)), IsOk());
  ASSERT_THAT(store_->PutBreakGlassGrant(MakeGrant("g-old", "u1", "p1", kT0)), IsOk());
  // Other users and patients do not count, however recent.
  ASSERT_THAT(store_->PutBreakGlassGrant(MakeGrant("g-u2", "u2", "p1", kT0 + 900)), IsOk());
  ASSERT_THAT(store_->PutBreakGlassGrant(MakeGrant("g-p2", "u1", "p2", kT0 + 900)), IsOk());

  auto latest = store_->LatestBreakGlassGrant("u1", "p1");
  ASSERT_THAT(latest, IsOk());
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->grant_id, "g-new");
  // An expired grant is still returned: the caller decides about time.
  clock_.Set(kT0 + 10 * kDayMs);
  EXPECT_EQ((*store_->LatestBreakGlassGrant("u1", "p1"))->grant_id, "g-new");
  EXPECT_FALSE(store_->LatestBreakGlassGrant("u3", "p1")->has_value());

  // Two grants opened in the same millisecond: the later insert is the latest.
  ASSERT_THAT(store_->PutBreakGlassGrant(MakeGrant("g-tie-a", "u1", "p1", kT0 + 300)), IsOk());
  ASSERT_THAT(store_->PutBreakGlassGrant(MakeGrant("g-tie-b", "u1", "p1", kT0 + 300)), IsOk());
  EXPECT_EQ((*store_->LatestBreakGlassGrant("u1", "p1"))->grant_id, "g-tie-b");
}

TEST_F(BaaGrantStoreTest, ListIsNewestFirstSinceATimeAndLimited) {
  ASSERT_THAT(store_->PutBreakGlassGrant(MakeGrant("g2", "u1", "p1", kT0 + 20)), IsOk());
  ASSERT_THAT(store_->PutBreakGlassGrant(MakeGrant("g1", "u2", "p2", kT0 + 10)), IsOk());
  ASSERT_THAT(store_->PutBreakGlassGrant(MakeGrant("g4", "u1", "p3", kT0 + 40)), IsOk());
  ASSERT_THAT(store_->PutBreakGlassGrant(MakeGrant("g3", "u3", "p1", kT0 + 30)), IsOk());

  EXPECT_THAT(ListedGrants(0, 100), ElementsAre("g4", "g3", "g2", "g1"));
  EXPECT_THAT(ListedGrants(kT0 + 20, 100), ElementsAre("g4", "g3", "g2"));  // inclusive
  EXPECT_THAT(ListedGrants(kT0 + 21, 100), ElementsAre("g4", "g3"));
  EXPECT_THAT(ListedGrants(0, 2), ElementsAre("g4", "g3"));
  EXPECT_THAT(ListedGrants(0, 1), ElementsAre("g4"));
  EXPECT_THAT(ListedGrants(kT0 + 41, 100), IsEmpty());
  EXPECT_THAT(store_->ListBreakGlassGrants(0, 0),
              StatusIs(StatusCode::kInvalidArgument, "the grant listing limit must be positive"));
  EXPECT_THAT(store_->ListBreakGlassGrants(0, -1),
              StatusIs(StatusCode::kInvalidArgument, "the grant listing limit must be positive"));
}

TEST_F(BaaGrantStoreTest, DuplicateGrantIdIsAConflictAndChangesNothing) {
  ASSERT_THAT(store_->PutBreakGlassGrant(MakeGrant("g1", "u1", "p1", kT0)), IsOk());
  EXPECT_THAT(store_->PutBreakGlassGrant(MakeGrant("g1", "u2", "p2", kT0 + 50)),
              StatusIs(StatusCode::kConflict, "grant exists"));
  EXPECT_THAT(ListedGrants(0, 10), ElementsAre("g1"));
  EXPECT_EQ((*store_->LatestBreakGlassGrant("u1", "p1"))->opened_ms, kT0);
  EXPECT_FALSE(store_->LatestBreakGlassGrant("u2", "p2")->has_value());
}

TEST_F(BaaGrantStoreTest, InvalidGrantsAreRefused) {
  const char* kIds = "a break-glass grant needs a grant, user, client and patient id";
  BreakGlassGrant grant = MakeGrant("", "u1", "p1", kT0);
  EXPECT_THAT(store_->PutBreakGlassGrant(grant), StatusIs(StatusCode::kInvalidArgument, kIds));
  grant = MakeGrant("g1", "", "p1", kT0);
  EXPECT_THAT(store_->PutBreakGlassGrant(grant), StatusIs(StatusCode::kInvalidArgument, kIds));
  grant = MakeGrant("g1", "u1", "", kT0);
  EXPECT_THAT(store_->PutBreakGlassGrant(grant), StatusIs(StatusCode::kInvalidArgument, kIds));
  grant = MakeGrant("g1", "u1", "p1", kT0);
  grant.client_id.clear();
  EXPECT_THAT(store_->PutBreakGlassGrant(grant), StatusIs(StatusCode::kInvalidArgument, kIds));
  grant = MakeGrant("g1", "u1", "p1", kT0);
  grant.expires_ms = grant.opened_ms;
  EXPECT_THAT(
      store_->PutBreakGlassGrant(grant),
      StatusIs(StatusCode::kInvalidArgument, "a break-glass grant must expire after it opens"));
  EXPECT_THAT(ListedGrants(0, 10), IsEmpty());
}

TEST_F(BaaGrantStoreTest, GrantsAreAppendOnlyEvenForOtherWriters) {
  ASSERT_THAT(store_->PutBreakGlassGrant(MakeGrant("g1", "u1", "p1", kT0)), IsOk());
  RawDb db(path_, SQLITE_OPEN_READWRITE);
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(db.Exec("UPDATE break_glass_grants SET expires_ms = expires_ms + 1000000"),
            SQLITE_CONSTRAINT);
  EXPECT_EQ(db.Exec("DELETE FROM break_glass_grants"), SQLITE_CONSTRAINT);
  EXPECT_THAT(db.Column("SELECT expires_ms - opened_ms FROM break_glass_grants"),
              ElementsAre("3600000"));
}

// --- schema and migration --------------------------------------------------------------------

TEST_F(BaaGrantStoreTest, GrantTableHasTheExpectedColumnsAndIndexes) {
  RawDb db(path_, SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok());
  EXPECT_THAT(db.Column("PRAGMA user_version"), ElementsAre("4"));
  EXPECT_THAT(db.Columns("break_glass_grants"),
              ElementsAre("grant_id:TEXT", "user_id:TEXT", "client_id:TEXT", "patient_id:TEXT",
                          "reason_sealed:BLOB", "key_version:INTEGER", "opened_ms:INTEGER",
                          "expires_ms:INTEGER", "auth_time_ms:INTEGER"));
  EXPECT_THAT(db.Column("SELECT strict FROM pragma_table_list WHERE name = 'break_glass_grants'"),
              ElementsAre("1"));
  constexpr int kDetail = 3;  // EXPLAIN QUERY PLAN's detail column
  // Both queries walk an index without a temporary sort.
  EXPECT_THAT(db.Column("EXPLAIN QUERY PLAN SELECT grant_id FROM break_glass_grants"
                        " WHERE user_id = 'u' AND patient_id = 'p'"
                        " ORDER BY opened_ms DESC, rowid DESC LIMIT 1",
                        kDetail),
              ElementsAre(HasSubstr("break_glass_grants_by_user_patient")));
  EXPECT_THAT(db.Column("EXPLAIN QUERY PLAN SELECT grant_id FROM break_glass_grants"
                        " WHERE opened_ms >= 5 ORDER BY opened_ms DESC, rowid DESC LIMIT 10",
                        kDetail),
              ElementsAre(HasSubstr("break_glass_grants_by_opened")));
}

TEST_F(BaaGrantStoreTest, VersionTwoDatabaseMigratesAndKeepsItsClients) {
  store_.reset();
  fs::remove(path_);
  fs::remove(path_ + "-wal");
  fs::remove(path_ + "-shm");
  {
    RawDb db(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    ASSERT_TRUE(db.ok());
    ASSERT_EQ(db.Exec(kVersion2Schema), SQLITE_OK);
    ASSERT_EQ(db.Exec("INSERT INTO clients (client_id, name, secret_hash, scope, created_ms,"
                      " disabled, auth_method, jwks, roles, redirect_uris) VALUES"
                      " ('app-1', 'App', '', 'patient/*.rs', 1700000000123, 0, 'none', '',"
                      " 'clinician', 'https://app.example/cb'),"
                      " ('lab-1', 'Lab', '$argon2id$h', 'system/Observation.rs', 5, 1,"
                      " 'client_secret_basic', '', '', '')"),
              SQLITE_OK);
    ASSERT_THAT(db.Column("PRAGMA user_version"), ElementsAre("2"));
  }
  store_ = Open();
  ASSERT_NE(store_, nullptr);

  auto clients = store_->ListClients();
  ASSERT_THAT(clients, IsOk());
  ASSERT_EQ(clients->size(), 2u);
  const ClientRecord& app = (*clients)[0];
  EXPECT_EQ(app.client_id, "app-1");
  EXPECT_EQ(app.auth_method, "none");
  EXPECT_EQ(app.roles, "clinician");
  EXPECT_EQ(app.redirect_uris, "https://app.example/cb");
  EXPECT_EQ(app.created_ms, 1'700'000'000'123);
  for (const ClientRecord& client : *clients) {
    // A client from before issue 4 is first party without an agreement: nothing that
    // worked before the upgrade is refused after it.
    EXPECT_FALSE(client.third_party) << client.client_id;
    EXPECT_EQ(client.baa_status, "none") << client.client_id;
    EXPECT_EQ(client.baa_counterparty, "") << client.client_id;
    EXPECT_EQ(client.baa_signed_ms, 0) << client.client_id;
    EXPECT_EQ(client.baa_expires_ms, 0) << client.client_id;
  }
  EXPECT_TRUE((*clients)[1].disabled);

  // The new column and table work, and the migration is not repeated on the next open.
  ASSERT_THAT(store_->SetClientBaa("lab-1", ActiveBaa("Lab Co", kT0, kT0 + kDayMs), true), IsOk());
  ASSERT_THAT(store_->PutBreakGlassGrant(MakeGrant("g1", "u1", "p1", kT0)), IsOk());
  Reopen();
  EXPECT_EQ(Client("lab-1").baa_status, "active");
  EXPECT_TRUE(Client("lab-1").third_party);
  EXPECT_THAT(ListedGrants(0, 10), ElementsAre("g1"));
  RawDb db(path_, SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok());
  EXPECT_THAT(db.Column("PRAGMA user_version"), ElementsAre("4"));
}

}  // namespace
}  // namespace phigate::storage
