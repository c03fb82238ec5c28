// SessionGuard (session_guard.h): revoked jtis and sessions in memory and in the store,
// user state through a short cache, only for phigate's own tokens.
#include "auth/session_guard.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "auth/auth_test_env.h"
#include "auth/principal.h"
#include "auth/token_issuer.h"
#include "core/clock.h"
#include "crypto/crypto.h"
#include "storage/sqlite/sqlite_store.h"

namespace phigate::auth {
namespace {

constexpr std::string_view kUserId = "00112233445566778899aabbccddeeff";

class SessionGuardTest : public AuthTestEnv {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(OpenStore("guard", /*store_reads_fake_clock=*/true));
    guard_ = std::make_unique<SessionGuard>(*store_, clock_, 1000);

    storage::UserRecord user;
    user.user_id = std::string(kUserId);
    user.username = "nurse";
    user.roles = "clinician";
    user.mfa_enrolled = true;
    ASSERT_TRUE(store_->PutUser(user).ok());
  }

  Principal Person() const {
    Principal p;
    p.kind = PrincipalKind::kPerson;
    p.builtin = true;
    p.subject = std::string(kUserId);
    p.client_id = "app";
    p.auth_time_s = clock_.NowSeconds();
    p.session_id = "session-1";
    p.jti = "jti-person";
    p.expires_at_s = clock_.NowSeconds() + 300;
    return p;
  }
  Principal System() const {
    Principal p;
    p.kind = PrincipalKind::kSystem;
    p.builtin = true;
    p.subject = "backend";
    p.client_id = "backend";
    p.jti = "jti-system";
    p.expires_at_s = clock_.NowSeconds() + 900;
    return p;
  }

  void SetUser(bool disabled, int64_t sessions_valid_after_ms) {
    storage::UserRecord user = std::move(*store_->GetUser(std::string(kUserId))).value();
    user.disabled = disabled;
    user.sessions_valid_after_ms = sessions_valid_after_ms;
    ASSERT_TRUE(store_->UpdateUser(user, user.revision).ok());
  }

  static void ExpectRefused(const Status& s, std::string_view message) {
    EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
    EXPECT_EQ(s.message(), message);
  }

  std::unique_ptr<SessionGuard> guard_;
};

TEST_F(SessionGuardTest, LiveTokensPass) {
  EXPECT_TRUE(guard_->Check(Person()).ok());
  EXPECT_TRUE(guard_->Check(System()).ok());
}

TEST_F(SessionGuardTest, ExternalProvidersTokensAreNotItsBusiness) {
  Principal external = Person();
  external.builtin = false;
  external.subject = "someone-the-store-does-not-know";
  ASSERT_TRUE(guard_->RevokeAccessToken(external.jti, external.expires_at_s).ok());
  EXPECT_TRUE(guard_->Check(external).ok());
}

TEST_F(SessionGuardTest, RevokedAccessTokenIsRefusedAndSurvivesARestart) {
  ASSERT_TRUE(guard_->RevokeAccessToken("jti-system", System().expires_at_s).ok());
  ExpectRefused(guard_->Check(System()), "token revoked");
  EXPECT_TRUE(guard_->Check(Person()).ok());  // another jti

  SessionGuard restarted(*store_, clock_);
  EXPECT_TRUE(restarted.Check(System()).ok());  // before Load
  ASSERT_TRUE(restarted.Load().ok());
  ExpectRefused(restarted.Check(System()), "token revoked");
}

TEST_F(SessionGuardTest, RevokedSessionIsRefusedAndSurvivesARestart) {
  storage::RefreshFamily family;
  family.family_id = "session-1";
  family.user_id = std::string(kUserId);
  family.client_id = "app";
  family.scope = "offline_access user/*.rs";
  family.auth_time_ms = clock_.NowMillis();
  family.expires_ms = clock_.NowMillis() + 3600 * 1000;
  family.last_used_ms = clock_.NowMillis();
  ASSERT_TRUE(store_->CreateRefreshFamily(family, "hash-1").ok());
  ASSERT_TRUE(guard_->RevokeFamily("session-1").ok());
  EXPECT_TRUE(store_->GetRefreshFamily("session-1")->value().revoked);
  ExpectRefused(guard_->Check(Person()), "session ended");
  Principal other = Person();
  other.session_id = "session-2";
  EXPECT_TRUE(guard_->Check(other).ok());
  // A system token has no session.
  EXPECT_TRUE(guard_->Check(System()).ok());

  SessionGuard restarted(*store_, clock_);
  ASSERT_TRUE(restarted.Load().ok());
  ExpectRefused(restarted.Check(Person()), "session ended");
}

TEST_F(SessionGuardTest, SessionWithoutStoredFamilyIsRevokedInMemory) {
  // A login without refresh scopes has a session id but no stored family
  // (oauth_endpoints.h): revoking it works in this process and is not an error.
  ASSERT_TRUE(guard_->RevokeFamily("session-1").ok());
  ExpectRefused(guard_->Check(Person()), "session ended");
}

TEST_F(SessionGuardTest, LoadSkipsSessionsRevokedLongBeforeAnyLiveToken) {
  for (std::string id : {"old-session", "recent-session"}) {
    storage::RefreshFamily family;
    family.family_id = id;
    family.user_id = std::string(kUserId);
    family.client_id = "app";
    family.scope = "offline_access user/*.rs";
    family.auth_time_ms = clock_.NowMillis();
    family.expires_ms = clock_.NowMillis() + 12 * 3600 * 1000;
    family.last_used_ms = clock_.NowMillis();
    ASSERT_TRUE(store_->CreateRefreshFamily(family, "hash-of-" + id).ok());
  }
  ASSERT_TRUE(store_->RevokeRefreshFamily("old-session").ok());
  clock_.Advance(2 * 3600 * 1000);
  ASSERT_TRUE(store_->RevokeRefreshFamily("recent-session").ok());
  SessionGuard restarted(*store_, clock_);
  ASSERT_TRUE(restarted.Load().ok());
  Principal p = Person();
  p.session_id = "recent-session";
  ExpectRefused(restarted.Check(p), "session ended");
  // Any token of the old session expired long ago; no need to remember it.
  p.session_id = "old-session";
  EXPECT_TRUE(restarted.Check(p).ok());
}

TEST_F(SessionGuardTest, DisabledUserIsRefusedWithinTheCacheAge) {
  const Principal p = Person();
  ASSERT_TRUE(guard_->Check(p).ok());  // cached as usable
  SetUser(/*disabled=*/true, 0);
  // Another process (`phigate users disable`) changed the store: within the cache age
  // the cached state holds...
  clock_.Advance(999);
  EXPECT_TRUE(guard_->Check(p).ok());
  // ...and one second after the cache entry was made it is re-read.
  clock_.Advance(1);
  ExpectRefused(guard_->Check(p), "invalid token");
}

TEST_F(SessionGuardTest, InvalidateUserTakesEffectAtOnce) {
  const Principal p = Person();
  ASSERT_TRUE(guard_->Check(p).ok());
  SetUser(/*disabled=*/true, 0);
  guard_->InvalidateUser(std::string(kUserId));
  ExpectRefused(guard_->Check(p), "invalid token");
}

TEST_F(SessionGuardTest, SessionsBeforeAResetAreRefused) {
  const Principal p = Person();  // auth_time = now
  SetUser(false, p.auth_time_s * 1000);
  EXPECT_TRUE(guard_->Check(p).ok());  // authenticated at the instant of the reset: fine
  SetUser(false, p.auth_time_s * 1000 + 1);
  guard_->InvalidateUser(std::string(kUserId));
  ExpectRefused(guard_->Check(p), "invalid token");
  // A login after the reset is fine.
  Principal later = p;
  later.auth_time_s += 1;
  EXPECT_TRUE(guard_->Check(later).ok());
}

TEST_F(SessionGuardTest, UnknownUserIsRefused) {
  Principal p = Person();
  p.subject = "ffffffffffffffffffffffffffffffff";
  ExpectRefused(guard_->Check(p), "invalid token");
}

TEST_F(SessionGuardTest, SystemTokensDoNotLookUpUsers) {
  // The client id is not a user: a system token passes without a user record.
  Principal p = System();
  p.subject = "not-a-user";
  p.client_id = "not-a-user";
  EXPECT_TRUE(guard_->Check(p).ok());
}

TEST_F(SessionGuardTest, ExpiredRevocationsAreDroppedOpportunistically) {
  ASSERT_TRUE(guard_->RevokeAccessToken("short", clock_.NowSeconds() + 10).ok());
  Principal p = System();
  p.jti = "short";
  ExpectRefused(guard_->Check(p), "token revoked");
  // Kept past exp (plus a margin over the verifier's skew)...
  clock_.Advance((10 + 120) * 1000);
  ExpectRefused(guard_->Check(p), "token revoked");
  // ...and dropped by a later revocation once long expired.
  clock_.Advance(3600 * 1000);
  ASSERT_TRUE(guard_->RevokeAccessToken("other", clock_.NowSeconds() + 300).ok());
  EXPECT_TRUE(guard_->Check(p).ok());
}

// Regression (security review L2): revoked sessions are forgotten once no token of them
// can be alive (kMaxTokenLifetimeS + margin after the revocation), so the set stays bounded.
TEST_F(SessionGuardTest, RevokedSessionsArePrunedAfterTheTokenHorizon) {
  ASSERT_TRUE(guard_->RevokeFamily("session-1").ok());
  EXPECT_EQ(guard_->revoked_family_count(), 1u);
  clock_.Advance(kMaxTokenLifetimeS * 1000);
  ASSERT_TRUE(guard_->RevokeFamily("session-2").ok());
  EXPECT_EQ(guard_->revoked_family_count(), 2u);  // session-1 is still within the horizon
  // Revoked again later: the newer revocation decides.
  ASSERT_TRUE(guard_->RevokeFamily("session-2").ok());
  clock_.Advance(601'000);  // session-1: 900 + 601 s ago, past the 600 s margin
  ASSERT_TRUE(guard_->RevokeFamily("session-3").ok());
  EXPECT_EQ(guard_->revoked_family_count(), 2u);
  Principal p = Person();
  p.session_id = "session-2";
  EXPECT_EQ(guard_->Check(p).message(), "session ended");
  clock_.Advance(kMaxTokenLifetimeS * 1000);
  ASSERT_TRUE(guard_->RevokeFamily("session-4").ok());
  EXPECT_EQ(guard_->revoked_family_count(), 2u);  // session-3, session-4
}

TEST_F(SessionGuardTest, EmptyIdsAreRefused) {
  EXPECT_EQ(guard_->RevokeAccessToken("", 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(guard_->RevokeFamily("").code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace phigate::auth
