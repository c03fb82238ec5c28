// Tests for BaaGate (policy/baa_gate.h, issue 4 §6): which clients need a business
// associate agreement, the exact refusals, expiry against the clock, a revocation written
// by another process taking effect on the next request, the first-party cache, and failing
// closed when the store fails. A real SqliteStore in a temp dir, a FakeClock.
#include "policy/baa_gate.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "storage/sqlite/sqlite_store.h"

namespace phigate::policy {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kT0 = 1'700'000'000'000;  // Nov 2023
constexpr int64_t kDayMs = 24 * 60 * 60 * 1000;
constexpr int64_t kCacheMs = 1000;

constexpr char kNone[] =
    "a business associate agreement is required: this third-party client has none";
constexpr char kRevoked[] = "a business associate agreement is required: its agreement was revoked";
constexpr char kExpired[] = "a business associate agreement is required: its agreement has expired";
constexpr char kNotYet[] =
    "a business associate agreement is required: its agreement is not yet in effect";

// Forwards to a real store; GetClient fails (as a locked or broken database would) while
// `fail_get_client` is set, and counts its calls.
class FlakyStore final : public storage::Store {
 public:
  explicit FlakyStore(storage::Store& inner) : inner_(inner) {}
  std::atomic<bool> fail_get_client{false};
  std::atomic<int> get_client_calls{0};

  Result<std::optional<storage::ClientRecord>> GetClient(const std::string& client_id) override {
    ++get_client_calls;
    if (fail_get_client) return Unavailable("storage busy");
    return inner_.GetClient(client_id);
  }

  Result<std::optional<storage::VersionRecord>> ReadCurrent(const std::string& type,
                                                            const std::string& id) override {
    return inner_.ReadCurrent(type, id);
  }
  Result<std::optional<storage::VersionRecord>> ReadVersion(const std::string& type,
                                                            const std::string& id,
                                                            int64_t version) override {
    return inner_.ReadVersion(type, id, version);
  }
  using storage::Store::AppendVersion;
  Result<int64_t> AppendVersion(const storage::VersionRecord& record, int64_t expected_version,
                                const storage::BeforeCommit& before_commit) override {
    return inner_.AppendVersion(record, expected_version, before_commit);
  }
  Result<std::vector<int64_t>> AppendVersions(const std::vector<VersionWrite>& writes,
                                              const storage::BeforeCommit& before_commit) override {
    return inner_.AppendVersions(writes, before_commit);
  }
  Result<std::vector<storage::VersionRecord>> SearchCurrent(
      const storage::SearchQuery& query) override {
    return inner_.SearchCurrent(query);
  }
  Result<std::vector<storage::VersionRecord>> History(const storage::HistoryQuery& query) override {
    return inner_.History(query);
  }
  Status PutClient(const storage::ClientRecord& client) override {
    return inner_.PutClient(client);
  }
  Result<std::vector<storage::ClientRecord>> ListClients() override { return inner_.ListClients(); }
  Status SetClientBaa(const std::string& client_id, const storage::BaaRecord& baa,
                      bool third_party) override {
    return inner_.SetClientBaa(client_id, baa, third_party);
  }
  Status PutBreakGlassGrant(const storage::BreakGlassGrant& grant) override {
    return inner_.PutBreakGlassGrant(grant);
  }
  Result<std::optional<storage::BreakGlassGrant>> LatestBreakGlassGrant(
      const std::string& user_id, const std::string& patient_id) override {
    return inner_.LatestBreakGlassGrant(user_id, patient_id);
  }
  Result<std::vector<storage::BreakGlassGrant>> ListBreakGlassGrants(int64_t since_ms,
                                                                     int limit) override {
    return inner_.ListBreakGlassGrants(since_ms, limit);
  }
  Status PutUser(const storage::UserRecord& user) override { return inner_.PutUser(user); }
  Status UpdateUser(const storage::UserRecord& user, int64_t expected_revision) override {
    return inner_.UpdateUser(user, expected_revision);
  }
  Result<std::optional<storage::UserRecord>> GetUser(const std::string& user_id) override {
    return inner_.GetUser(user_id);
  }
  Result<std::optional<storage::UserRecord>> GetUserByName(const std::string& username) override {
    return inner_.GetUserByName(username);
  }
  Result<std::optional<storage::UserRecord>> GetUserByEnrollment(const std::string& hash) override {
    return inner_.GetUserByEnrollment(hash);
  }
  Result<std::vector<storage::UserRecord>> ListUsers() override { return inner_.ListUsers(); }
  Status CreateRefreshFamily(const storage::RefreshFamily& family,
                             const std::string& first_token_hash) override {
    return inner_.CreateRefreshFamily(family, first_token_hash);
  }
  Result<storage::RotateResult> RotateRefreshToken(const std::string& old_hash,
                                                   const std::string& new_hash, int64_t now_ms,
                                                   int64_t idle_timeout_ms) override {
    return inner_.RotateRefreshToken(old_hash, new_hash, now_ms, idle_timeout_ms);
  }
  Result<std::optional<storage::RefreshFamily>> FindRefreshToken(const std::string& hash) override {
    return inner_.FindRefreshToken(hash);
  }
  Result<std::optional<storage::RefreshFamily>> GetRefreshFamily(
      const std::string& family_id) override {
    return inner_.GetRefreshFamily(family_id);
  }
  Status RevokeRefreshFamily(const std::string& family_id) override {
    return inner_.RevokeRefreshFamily(family_id);
  }
  Status RevokeUserSessions(const std::string& user_id) override {
    return inner_.RevokeUserSessions(user_id);
  }
  Result<std::vector<std::string>> RevokedFamiliesSince(int64_t since_ms) override {
    return inner_.RevokedFamiliesSince(since_ms);
  }
  Status RevokeAccessToken(const std::string& jti, int64_t expires_ms) override {
    return inner_.RevokeAccessToken(jti, expires_ms);
  }
  Result<std::vector<std::string>> RevokedAccessTokens(int64_t now_ms) override {
    return inner_.RevokedAccessTokens(now_ms);
  }
  Result<bool> RecordAssertionJti(const std::string& client_id, const std::string& jti,
                                  int64_t expires_ms, int64_t now_ms) override {
    return inner_.RecordAssertionJti(client_id, jti, expires_ms, now_ms);
  }
  Result<std::vector<storage::DataKeyRecord>> LoadDataKeys() override {
    return inner_.LoadDataKeys();
  }
  Status SaveDataKey(const storage::DataKeyRecord& key) override { return inner_.SaveDataKey(key); }
  bool Healthy() override { return inner_.Healthy(); }

 private:
  storage::Store& inner_;
};

storage::ClientRecord MakeClient(const std::string& client_id, bool third_party) {
  storage::ClientRecord client;
  client.client_id = client_id;
  client.name = "App " + client_id;
  client.secret_hash = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA";
  client.scope = "system/Observation.rs";
  client.created_ms = kT0;
  client.third_party = third_party;
  return client;
}

storage::BaaRecord ActiveBaa(int64_t signed_ms, int64_t expires_ms) {
  storage::BaaRecord baa;
  baa.counterparty = "Acme Analytics, Inc.";
  baa.signed_ms = signed_ms;
  baa.expires_ms = expires_ms;
  baa.status = "active";
  return baa;
}

class BaaGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "phigate-baa-gate-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/phigate.db";
    store_ = Open();
    ASSERT_NE(store_, nullptr);
    flaky_ = std::make_unique<FlakyStore>(*store_);
    gate_ = std::make_unique<BaaGate>(*flaky_, clock_, kCacheMs);
  }
  void TearDown() override {
    gate_.reset();
    flaky_.reset();
    store_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  std::unique_ptr<storage::Store> Open() {
    storage::SqliteOptions options;
    options.path = path_;
    options.read_connections = 2;
    options.clock = &clock_;
    auto store = storage::OpenSqliteStore(options);
    EXPECT_TRUE(store.ok()) << store.status().message();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // Expects `status` to be the PermissionDenied refusal `message`, exactly.
  static void ExpectRefused(const Status& status, const char* message) {
    EXPECT_EQ(status.code(), StatusCode::kPermissionDenied) << status.message();
    EXPECT_EQ(status.message(), message);
  }

  FakeClock clock_{kT0};
  std::string dir_;
  std::string path_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<FlakyStore> flaky_;
  std::unique_ptr<BaaGate> gate_;
};

TEST_F(BaaGateTest, FirstPartyClientPasses) {
  ASSERT_TRUE(store_->PutClient(MakeClient("ehr", false)).ok());
  EXPECT_TRUE(gate_->Check("ehr").ok());
}

TEST_F(BaaGateTest, FirstPartyClientWithAnExpiredAgreementStillPasses) {
  // Only third parties need an agreement; a BAA recorded without --third-party is
  // informational.
  ASSERT_TRUE(store_->PutClient(MakeClient("ehr", false)).ok());
  ASSERT_TRUE(store_->SetClientBaa("ehr", ActiveBaa(kT0 - 2 * kDayMs, kT0 - kDayMs), false).ok());
  EXPECT_TRUE(gate_->Check("ehr").ok());
}

TEST_F(BaaGateTest, UnregisteredClientPasses) {
  // An external OpenID provider's app: not in the client table at all.
  EXPECT_TRUE(gate_->Check("idp-app").ok());
  EXPECT_TRUE(gate_->Check("").ok());
}

TEST_F(BaaGateTest, ThirdPartyWithoutAgreementIsDenied) {
  ASSERT_TRUE(store_->PutClient(MakeClient("partner", true)).ok());
  ExpectRefused(gate_->Check("partner"), kNone);
}

TEST_F(BaaGateTest, ThirdPartyWithActiveAgreementPasses) {
  ASSERT_TRUE(store_->PutClient(MakeClient("partner", false)).ok());
  // `clients baa` marks the client third party as it records the agreement.
  ASSERT_TRUE(store_->SetClientBaa("partner", ActiveBaa(kT0 - kDayMs, kT0 + kDayMs), true).ok());
  EXPECT_TRUE(gate_->Check("partner").ok());
  // The first instant of the agreement counts.
  ASSERT_TRUE(store_->SetClientBaa("partner", ActiveBaa(kT0, kT0 + kDayMs), true).ok());
  EXPECT_TRUE(gate_->Check("partner").ok());
}

TEST_F(BaaGateTest, ExpiryTakesEffectOnTheClockWithoutANewGate) {
  ASSERT_TRUE(store_->PutClient(MakeClient("partner", true)).ok());
  ASSERT_TRUE(store_->SetClientBaa("partner", ActiveBaa(kT0 - kDayMs, kT0 + kDayMs), true).ok());
  ASSERT_TRUE(gate_->Check("partner").ok());
  clock_.Set(kT0 + kDayMs - 1);  // the last millisecond
  EXPECT_TRUE(gate_->Check("partner").ok());
  clock_.Set(kT0 + kDayMs);  // expires_ms is exclusive
  ExpectRefused(gate_->Check("partner"), kExpired);
  clock_.Advance(365 * kDayMs);
  ExpectRefused(gate_->Check("partner"), kExpired);
}

TEST_F(BaaGateTest, RevocationByAnotherProcessIsDeniedOnTheNextCheck) {
  ASSERT_TRUE(store_->PutClient(MakeClient("partner", true)).ok());
  ASSERT_TRUE(store_->SetClientBaa("partner", ActiveBaa(kT0 - kDayMs, kT0 + kDayMs), true).ok());
  ASSERT_TRUE(gate_->Check("partner").ok());

  // The CLI: its own store (own connections) on the same file. No clock movement at all,
  // so a cached answer would still say "ok".
  std::unique_ptr<storage::Store> cli = Open();
  ASSERT_NE(cli, nullptr);
  storage::BaaRecord revoke;
  revoke.status = "revoked";
  ASSERT_TRUE(cli->SetClientBaa("partner", revoke, false).ok());

  ExpectRefused(gate_->Check("partner"), kRevoked);
  // Re-activated by the CLI: allowed again at once, too.
  ASSERT_TRUE(cli->SetClientBaa("partner", ActiveBaa(kT0 - kDayMs, kT0 + kDayMs), false).ok());
  EXPECT_TRUE(gate_->Check("partner").ok());
}

TEST_F(BaaGateTest, AgreementNotYetSignedIsDenied) {
  ASSERT_TRUE(store_->PutClient(MakeClient("partner", true)).ok());
  ASSERT_TRUE(
      store_->SetClientBaa("partner", ActiveBaa(kT0 + kDayMs, kT0 + 2 * kDayMs), true).ok());
  ExpectRefused(gate_->Check("partner"), kNotYet);
  clock_.Set(kT0 + kDayMs - 1);
  ExpectRefused(gate_->Check("partner"), kNotYet);
  clock_.Set(kT0 + kDayMs);
  EXPECT_TRUE(gate_->Check("partner").ok());
}

TEST_F(BaaGateTest, ThirdPartyIsReadFromTheStoreOnEveryCheck) {
  ASSERT_TRUE(store_->PutClient(MakeClient("partner", true)).ok());
  ASSERT_TRUE(store_->SetClientBaa("partner", ActiveBaa(kT0 - kDayMs, kT0 + kDayMs), true).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(gate_->Check("partner").ok());
  EXPECT_EQ(flaky_->get_client_calls, 3);
}

TEST_F(BaaGateTest, FirstPartyAnswerIsCachedForCacheMs) {
  ASSERT_TRUE(store_->PutClient(MakeClient("ehr", false)).ok());
  ASSERT_TRUE(gate_->Check("ehr").ok());
  ASSERT_TRUE(gate_->Check("unknown").ok());
  EXPECT_EQ(flaky_->get_client_calls, 2);

  // Another process makes it a third party without an agreement (SetClientBaa cannot,
  // so: revoke with third_party=true). Within cache_ms the cached first-party answer holds
  // and the store is not asked.
  std::unique_ptr<storage::Store> cli = Open();
  ASSERT_NE(cli, nullptr);
  storage::BaaRecord revoke;
  revoke.status = "revoked";
  ASSERT_TRUE(cli->SetClientBaa("ehr", revoke, true).ok());
  clock_.Advance(kCacheMs - 1);
  EXPECT_TRUE(gate_->Check("ehr").ok());
  EXPECT_TRUE(gate_->Check("unknown").ok());
  EXPECT_EQ(flaky_->get_client_calls, 2);

  // Past cache_ms the record is read again.
  clock_.Advance(1);
  ExpectRefused(gate_->Check("ehr"), kRevoked);
  EXPECT_EQ(flaky_->get_client_calls, 3);
}

TEST_F(BaaGateTest, ClockSteppedBackwardsRereadsTheStore) {
  ASSERT_TRUE(store_->PutClient(MakeClient("ehr", false)).ok());
  ASSERT_TRUE(gate_->Check("ehr").ok());
  clock_.Set(kT0 - 10 * kDayMs);
  ASSERT_TRUE(gate_->Check("ehr").ok());
  EXPECT_EQ(flaky_->get_client_calls, 2);
}

TEST_F(BaaGateTest, StoreFailureFailsClosed) {
  ASSERT_TRUE(store_->PutClient(MakeClient("partner", true)).ok());
  ASSERT_TRUE(store_->SetClientBaa("partner", ActiveBaa(kT0 - kDayMs, kT0 + kDayMs), true).ok());
  ASSERT_TRUE(gate_->Check("partner").ok());

  flaky_->fail_get_client = true;
  // A third party that passed a moment ago is not let through on a stale answer.
  Status status = gate_->Check("partner");
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "storage unavailable");
  // Nor is a client never seen before.
  EXPECT_EQ(gate_->Check("never-seen").code(), StatusCode::kUnavailable);

  flaky_->fail_get_client = false;
  EXPECT_TRUE(gate_->Check("partner").ok());
}

}  // namespace
}  // namespace phigate::policy
