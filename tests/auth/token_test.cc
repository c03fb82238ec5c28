#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "auth/jwt.h"
#include "auth/scope.h"
#include "auth/token_issuer.h"
#include "auth/token_verifier.h"
#include "core/base64.h"
#include "core/clock.h"
#include "crypto/signing_key.h"

namespace phigate::auth {
namespace {

constexpr std::string_view kIss = "https://phigate.test:8443";
constexpr std::string_view kAud = "https://phigate.test:8443/fhir";
constexpr int64_t kSkew = 60;
constexpr int64_t kStartMs = 1'800'000'000'000;  // 2027-01-15

crypto::SigningKey NewKey() { return std::move(crypto::SigningKey::Generate()).value(); }

ScopeSet Scopes(std::string_view s) { return std::move(ScopeSet::Parse(s)).value(); }

boost::json::object PayloadOf(std::string_view token) {
  size_t dot1 = token.find('.');
  size_t dot2 = token.rfind('.');
  std::optional<std::string> json = Base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!json) return {};
  return boost::json::parse(*json).as_object();
}

class TokenTest : public ::testing::Test {
 protected:
  int64_t Now() const { return clock_.NowSeconds(); }

  // A well-formed claim set as the issuer would make it at the current time.
  boost::json::object Claims() const {
    return {{"iss", kIss},
            {"aud", kAud},
            {"sub", "client-1"},
            {"client_id", "client-1"},
            {"scope", "system/Patient.rs"},
            {"jti", "jti-1"},
            {"iat", Now()},
            {"exp", Now() + 300}};
  }
  std::string Sign(const boost::json::object& claims) const {
    return EncodeJwt(key_, kAccessTokenTyp, claims);
  }
  std::string Issue(std::string_view client_id = "client-1",
                    std::string_view scope = "system/Patient.rs") const {
    Result<TokenIssuer::Issued> issued = issuer_.Issue(client_id, Scopes(scope));
    EXPECT_TRUE(issued.ok()) << issued.status().message();
    return issued.ok() ? issued->access_token : std::string();
  }

  static void ExpectRejected(const TokenVerifier& verifier, std::string_view token,
                             std::string_view message = "invalid token") {
    Result<Principal> r = verifier.Verify(token);
    ASSERT_FALSE(r.ok()) << "accepted";
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
    EXPECT_EQ(r.status().message(), message);
  }
  void ExpectRejected(std::string_view token, std::string_view message = "invalid token") const {
    ExpectRejected(verifier_, token, message);
  }

  FakeClock clock_{kStartMs};
  crypto::SigningKey key_ = NewKey();
  TokenIssuer issuer_{key_, std::string(kIss), std::string(kAud), 900, 300, clock_};
  TokenVerifier verifier_{key_, std::string(kIss), std::string(kAud), kSkew, clock_, 1000};
  // Same checks, no cache: for the uncached path.
  TokenVerifier uncached_{key_, std::string(kIss), std::string(kAud), kSkew, clock_, 0};
};

TEST_F(TokenTest, IssuedTokenHasExactlyTheRfc9068Claims) {
  Result<TokenIssuer::Issued> issued = issuer_.Issue("client-1", Scopes("system/Patient.rs"));
  ASSERT_TRUE(issued.ok());
  EXPECT_EQ(issued->expires_in, 900);
  EXPECT_EQ(issued->scope, "system/Patient.rs");
  EXPECT_EQ(issued->expires_at_s, Now() + 900);
  boost::json::object claims = PayloadOf(issued->access_token);
  EXPECT_EQ(claims.size(), 9u);
  EXPECT_EQ(claims.at("roles"), boost::json::value(boost::json::array{}));
  EXPECT_EQ(claims.at("jti").as_string(), issued->jti);
  EXPECT_EQ(claims.at("iss").as_string(), kIss);
  EXPECT_EQ(claims.at("aud").as_string(), kAud);
  EXPECT_EQ(claims.at("sub").as_string(), "client-1");
  EXPECT_EQ(claims.at("client_id").as_string(), "client-1");
  EXPECT_EQ(claims.at("scope").as_string(), "system/Patient.rs");
  EXPECT_EQ(claims.at("jti").as_string().size(), 22u);  // 16 random bytes, base64url
  EXPECT_EQ(claims.at("iat").as_int64(), Now());
  EXPECT_EQ(claims.at("exp").as_int64(), Now() + 900);
}

TEST_F(TokenTest, EveryTokenHasAFreshJti) {
  std::set<std::string> jtis;
  for (int i = 0; i < 20; ++i) jtis.insert(std::string(PayloadOf(Issue()).at("jti").as_string()));
  EXPECT_EQ(jtis.size(), 20u);
}

TEST_F(TokenTest, LifetimeIsClampedToAtMost900Seconds) {
  TokenIssuer long_lived(key_, std::string(kIss), std::string(kAud), 86400, 86400, clock_);
  EXPECT_EQ(long_lived.lifetime_s(), 900);
  EXPECT_EQ(long_lived.person_lifetime_s(), 900);
  Result<TokenIssuer::Issued> issued = long_lived.Issue("c", Scopes("system/*.r"));
  ASSERT_TRUE(issued.ok());
  EXPECT_EQ(issued->expires_in, 900);
  boost::json::object claims = PayloadOf(issued->access_token);
  EXPECT_EQ(claims.at("exp").as_int64() - claims.at("iat").as_int64(), 900);

  TokenIssuer zero(key_, std::string(kIss), std::string(kAud), 0, -5, clock_);
  EXPECT_EQ(zero.lifetime_s(), 1);
  EXPECT_EQ(zero.person_lifetime_s(), 1);
  TokenIssuer short_lived(key_, std::string(kIss), std::string(kAud), 30, 20, clock_);
  EXPECT_EQ(short_lived.system_lifetime_s(), 30);
  EXPECT_EQ(short_lived.person_lifetime_s(), 20);
}

TEST_F(TokenTest, IssueRequiresClientIdAndScope) {
  Result<TokenIssuer::Issued> no_id = issuer_.Issue("", Scopes("system/*.r"));
  ASSERT_FALSE(no_id.ok());
  EXPECT_EQ(no_id.status().code(), StatusCode::kInvalidArgument);
  Result<TokenIssuer::Issued> no_scope = issuer_.Issue("c", ScopeSet());
  ASSERT_FALSE(no_scope.ok());
  EXPECT_EQ(no_scope.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(TokenTest, SystemTokenCarriesTheClientRoles) {
  Result<TokenIssuer::Issued> issued =
      issuer_.Issue("lab", Scopes("system/Observation.c"), {"clinician", "auditor"});
  ASSERT_TRUE(issued.ok());
  EXPECT_EQ(PayloadOf(issued->access_token).at("roles"),
            boost::json::value(boost::json::array{"clinician", "auditor"}));
}

PersonTokenRequest PersonRequest(ScopeSet scope) {
  PersonTokenRequest r;
  r.client_id = "app-1";
  r.user_id = "user-1";
  r.scope = std::move(scope);
  r.roles = {"clinician"};
  r.amr = {"pwd", "otp", "mfa"};
  r.auth_time_s = kStartMs / 1000 - 30;
  r.fhir_user = "Practitioner/9";
  r.patient = "p-7";
  r.session_id = "sid-1";
  return r;
}

TEST_F(TokenTest, PersonTokenHasTheSessionAndPersonClaims) {
  Result<TokenIssuer::Issued> issued = issuer_.IssueForPerson(PersonRequest(Scopes("user/*.rs")));
  ASSERT_TRUE(issued.ok()) << issued.status().message();
  EXPECT_EQ(issued->expires_in, 300);
  EXPECT_EQ(issued->expires_at_s, Now() + 300);
  EXPECT_EQ(issued->scope, "user/*.rs");
  boost::json::object claims = PayloadOf(issued->access_token);
  EXPECT_EQ(claims.at("iss").as_string(), kIss);
  EXPECT_EQ(claims.at("aud").as_string(), kAud);
  EXPECT_EQ(claims.at("sub").as_string(), "user-1");
  EXPECT_EQ(claims.at("client_id").as_string(), "app-1");
  EXPECT_EQ(claims.at("scope").as_string(), "user/*.rs");
  EXPECT_EQ(claims.at("jti").as_string(), issued->jti);
  EXPECT_EQ(claims.at("iat").as_int64(), Now());
  EXPECT_EQ(claims.at("exp").as_int64(), Now() + 300);
  EXPECT_EQ(claims.at("auth_time").as_int64(), Now() - 30);
  EXPECT_EQ(claims.at("amr"), boost::json::value(boost::json::array{"pwd", "otp", "mfa"}));
  EXPECT_EQ(claims.at("roles"), boost::json::value(boost::json::array{"clinician"}));
  EXPECT_EQ(claims.at("sid").as_string(), "sid-1");
  EXPECT_EQ(claims.at("fhirUser").as_string(), std::string(kIss) + "/fhir/Practitioner/9");
  EXPECT_EQ(claims.at("patient").as_string(), "p-7");
  EXPECT_EQ(claims.size(), 14u);

  // Optional claims are left out when empty.
  PersonTokenRequest bare = PersonRequest(Scopes("user/*.rs"));
  bare.fhir_user.clear();
  bare.patient.clear();
  bare.session_id.clear();
  boost::json::object bare_claims = PayloadOf(issuer_.IssueForPerson(bare)->access_token);
  EXPECT_FALSE(bare_claims.contains("fhirUser"));
  EXPECT_FALSE(bare_claims.contains("patient"));
  EXPECT_FALSE(bare_claims.contains("sid"));
  EXPECT_EQ(bare_claims.size(), 11u);
}

TEST_F(TokenTest, PersonTokenNeverOutlivesItsSession) {
  PersonTokenRequest r = PersonRequest(Scopes("user/*.rs"));
  r.not_after_s = Now() + 100;
  Result<TokenIssuer::Issued> issued = issuer_.IssueForPerson(r);
  ASSERT_TRUE(issued.ok());
  EXPECT_EQ(issued->expires_in, 100);
  EXPECT_EQ(PayloadOf(issued->access_token).at("exp").as_int64(), Now() + 100);
  r.not_after_s = Now() + 1000;  // later than the lifetime: no effect
  EXPECT_EQ(issuer_.IssueForPerson(r)->expires_in, 300);
  r.not_after_s = Now();  // the session has ended
  EXPECT_EQ(issuer_.IssueForPerson(r).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(TokenTest, PersonTokenNeedsDistinctClientAndUser) {
  PersonTokenRequest r = PersonRequest(Scopes("user/*.rs"));
  r.user_id = r.client_id;  // would look like a client's own token (RFC 9068 §2.2)
  EXPECT_EQ(issuer_.IssueForPerson(r).status().code(), StatusCode::kInvalidArgument);
  r = PersonRequest(Scopes("user/*.rs"));
  r.user_id.clear();
  EXPECT_EQ(issuer_.IssueForPerson(r).status().code(), StatusCode::kInvalidArgument);
  r = PersonRequest(ScopeSet());
  EXPECT_EQ(issuer_.IssueForPerson(r).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(TokenTest, IdTokenClaims) {
  IdTokenRequest r;
  r.client_id = "app-1";
  r.user_id = "user-1";
  r.nonce = "abc";
  r.auth_time_s = Now() - 5;
  r.amr = {"pwd", "otp", "mfa"};
  r.fhir_user = "Patient/3";
  Result<std::string> id = issuer_.IssueIdToken(r);
  ASSERT_TRUE(id.ok());
  const std::string& token = id.value();
  boost::json::object header =
      boost::json::parse(*Base64UrlDecode(token.substr(0, token.find('.')))).as_object();
  EXPECT_EQ(header.at("typ").as_string(), "JWT");
  EXPECT_EQ(header.at("alg").as_string(), "ES256");
  EXPECT_EQ(header.at("kid").as_string(), key_.kid());
  boost::json::object claims = PayloadOf(token);
  EXPECT_EQ(claims.at("iss").as_string(), kIss);
  EXPECT_EQ(claims.at("sub").as_string(), "user-1");
  EXPECT_EQ(claims.at("aud").as_string(), "app-1");
  EXPECT_EQ(claims.at("iat").as_int64(), Now());
  EXPECT_EQ(claims.at("exp").as_int64(), Now() + kIdTokenLifetimeS);
  EXPECT_EQ(claims.at("auth_time").as_int64(), Now() - 5);
  EXPECT_EQ(claims.at("nonce").as_string(), "abc");
  EXPECT_EQ(claims.at("fhirUser").as_string(), std::string(kIss) + "/fhir/Patient/3");
  EXPECT_EQ(claims.size(), 9u);
  // Not usable as an access token.
  ExpectRejected(token);

  r.nonce.clear();
  r.fhir_user.clear();
  boost::json::object bare = PayloadOf(issuer_.IssueIdToken(r).value());
  EXPECT_FALSE(bare.contains("nonce"));
  EXPECT_FALSE(bare.contains("fhirUser"));
  r.client_id.clear();
  EXPECT_EQ(issuer_.IssueIdToken(r).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(TokenTest, RoundTripYieldsThePrincipal) {
  std::string token = Issue("client-7", "system/Patient.rs system/Observation.c");
  Result<Principal> p = verifier_.Verify(token);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->client_id, "client-7");
  EXPECT_EQ(p->subject, "client-7");
  EXPECT_EQ(p->expires_at_s, Now() + 900);
  EXPECT_EQ(p->jti, std::string(PayloadOf(token).at("jti").as_string()));
  EXPECT_EQ(p->scopes.ToString(), "system/Patient.rs system/Observation.c");
  EXPECT_TRUE(p->scopes.Allows("Patient", Interaction::kSearch));
  EXPECT_TRUE(p->scopes.Allows("Observation", Interaction::kCreate));
  EXPECT_FALSE(p->scopes.Allows("Patient", Interaction::kDelete));
  EXPECT_TRUE(uncached_.Verify(token).ok());
}

TEST_F(TokenTest, ExpiredTokenIsRejectedAfterTheSkew) {
  std::string token = Issue();
  const int64_t exp = Now() + 900;
  clock_.Set((exp + kSkew - 1) * 1000);
  EXPECT_TRUE(uncached_.Verify(token).ok());
  clock_.Set((exp + kSkew) * 1000);
  ExpectRejected(uncached_, token, "token expired");
  clock_.Advance(3600 * 1000);
  ExpectRejected(uncached_, token, "token expired");
}

TEST_F(TokenTest, IatInTheFutureBeyondSkewIsRejected) {
  FakeClock ahead(kStartMs + (kSkew + 1) * 1000);
  TokenIssuer future_issuer(key_, std::string(kIss), std::string(kAud), 900, 300, ahead);
  std::string token =
      std::move(future_issuer.Issue("c", Scopes("system/*.r"))).value().access_token;
  ExpectRejected(token);
  // Within the skew it is accepted.
  ahead.Set(kStartMs + kSkew * 1000);
  token = std::move(future_issuer.Issue("c", Scopes("system/*.r"))).value().access_token;
  EXPECT_TRUE(verifier_.Verify(token).ok());
}

TEST_F(TokenTest, NbfInTheFutureBeyondSkewIsRejected) {
  boost::json::object claims = Claims();
  claims["nbf"] = Now() + kSkew + 1;
  ExpectRejected(Sign(claims));
  claims["nbf"] = Now() + kSkew;
  EXPECT_TRUE(verifier_.Verify(Sign(claims)).ok());
  claims["nbf"] = "soon";
  ExpectRejected(Sign(claims));
}

TEST_F(TokenTest, WrongAudienceIsRejected) {
  std::string token = Issue();
  TokenVerifier other(key_, std::string(kIss), "https://other.test/fhir", kSkew, clock_, 10);
  ExpectRejected(other, token);
  boost::json::object claims = Claims();
  claims["aud"] = std::string(kAud) + "/";
  ExpectRejected(Sign(claims));
  claims.erase("aud");
  ExpectRejected(Sign(claims));
  claims["aud"] = boost::json::array{"https://other.test", kAud};
  EXPECT_TRUE(verifier_.Verify(Sign(claims)).ok());
  claims["aud"] = boost::json::array{"https://other.test"};
  ExpectRejected(Sign(claims));
  claims["aud"] = boost::json::array{kAud, 5};
  ExpectRejected(Sign(claims));
  claims["aud"] = boost::json::array{};
  ExpectRejected(Sign(claims));
}

TEST_F(TokenTest, WrongIssuerIsRejected) {
  std::string token = Issue();
  TokenVerifier other(key_, "https://other.test", std::string(kAud), kSkew, clock_, 10);
  ExpectRejected(other, token);
  boost::json::object claims = Claims();
  claims["iss"] = std::string(kIss) + "/";
  ExpectRejected(Sign(claims));
  claims.erase("iss");
  ExpectRejected(Sign(claims));
}

TEST_F(TokenTest, EveryRequiredClaimMustBePresent) {
  for (std::string_view name : {"iss", "aud", "sub", "client_id", "scope", "jti", "iat", "exp"}) {
    boost::json::object claims = Claims();
    ASSERT_TRUE(verifier_.Verify(Sign(claims)).ok());
    claims.erase(name);
    SCOPED_TRACE(std::string(name));
    ExpectRejected(Sign(claims));
  }
}

TEST_F(TokenTest, ClaimsMustBeWellTyped) {
  auto with = [this](std::string_view name, boost::json::value v) {
    boost::json::object claims = Claims();
    claims[name] = std::move(v);
    return Sign(claims);
  };
  ExpectRejected(with("exp", boost::json::string(std::to_string(Now() + 300))));
  ExpectRejected(with("exp", static_cast<double>(Now() + 300)));
  ExpectRejected(with("exp", nullptr));
  ExpectRejected(with("iat", -5));
  ExpectRejected(with("iat", 0));
  ExpectRejected(with("exp", std::numeric_limits<uint64_t>::max()));
  ExpectRejected(with("sub", 5));
  ExpectRejected(with("sub", ""));
  ExpectRejected(with("client_id", boost::json::array{"client-1"}));
  ExpectRejected(with("client_id", ""));
  ExpectRejected(with("jti", true));
  ExpectRejected(with("scope", ""));
  ExpectRejected(with("scope", boost::json::array{"system/Patient.rs"}));
  ExpectRejected(with("scope", "patient/Patient.xyz"));
  ExpectRejected(with("scope", "system/Patient.sr"));
  ExpectRejected(with("iss", 1));
}

TEST_F(TokenTest, LifetimeOutsideTheIssuerPolicyIsRejected) {
  boost::json::object claims = Claims();
  claims["exp"] = Now() + 901;
  ExpectRejected(Sign(claims));
  claims["exp"] = Now();  // exp == iat
  ExpectRejected(Sign(claims));
  claims["exp"] = std::numeric_limits<int64_t>::max();
  ExpectRejected(Sign(claims));
  claims["exp"] = Now() + 900;
  EXPECT_TRUE(verifier_.Verify(Sign(claims)).ok());
}

TEST_F(TokenTest, StructurallyBadTokensAreRejected) {
  std::string token = Issue();
  const size_t dot1 = token.find('.');
  const size_t dot2 = token.rfind('.');
  crypto::SigningKey other = NewKey();
  std::string none_header =
      Base64UrlEncode(R"({"alg":"none","typ":"at+jwt","kid":")" + key_.kid() + "\"}");
  std::string tampered_payload =
      token.substr(0, dot1 + 1) + Base64UrlEncode(R"({"sub":"admin"})") + token.substr(dot2);
  std::string tampered_sig = token;
  tampered_sig[dot2 + 5] = tampered_sig[dot2 + 5] == 'A' ? 'B' : 'A';
  const std::vector<std::string> bad = {
      "",
      token.substr(0, dot2),                                // 2 parts
      token + ".x",                                         // 4 parts
      token + "=",                                          // padding
      token.substr(0, dot1) + "!" + token.substr(dot1),     // non-base64url
      none_header + token.substr(dot1, dot2 - dot1) + ".",  // alg none
      tampered_payload,
      tampered_sig,
      EncodeJwt(other, kAccessTokenTyp, Claims()),  // another key
      std::string(kMaxJwtBytes + 1, 'a'),           // oversized
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE(i);
    ExpectRejected(bad[i]);
    ExpectRejected(uncached_, bad[i]);
  }
}

TEST_F(TokenTest, CacheHitSkipsTheSignatureCheck) {
  std::string token = Issue();
  EXPECT_EQ(verifier_.signature_verifications(), 0u);
  Result<Principal> first = verifier_.Verify(token);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(verifier_.signature_verifications(), 1u);
  for (int i = 0; i < 5; ++i) {
    Result<Principal> again = verifier_.Verify(token);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->jti, first->jti);
    EXPECT_EQ(again->client_id, first->client_id);
    EXPECT_EQ(again->scopes.ToString(), first->scopes.ToString());
  }
  EXPECT_EQ(verifier_.signature_verifications(), 1u);
  EXPECT_EQ(verifier_.cached_entries(), 1u);
  // A different token is a miss.
  ASSERT_TRUE(verifier_.Verify(Issue()).ok());
  EXPECT_EQ(verifier_.signature_verifications(), 2u);
}

TEST_F(TokenTest, CachedTokenIsStillRejectedAfterExpiry) {
  std::string token = Issue();
  ASSERT_TRUE(verifier_.Verify(token).ok());
  clock_.Advance((900 + kSkew - 1) * 1000);
  ASSERT_TRUE(verifier_.Verify(token).ok());
  clock_.Advance(1000);
  ExpectRejected(token, "token expired");
  EXPECT_EQ(verifier_.signature_verifications(), 1u);  // decided by the cache entry
  EXPECT_EQ(verifier_.cached_entries(), 0u);           // and the entry is gone
  ExpectRejected(token, "token expired");              // the full check agrees
  EXPECT_EQ(verifier_.signature_verifications(), 2u);
}

TEST_F(TokenTest, FailuresAreNotCached) {
  boost::json::object claims = Claims();
  claims["aud"] = "https://evil.test/fhir";  // fails after the signature check
  std::string token = Sign(claims);
  ExpectRejected(token);
  ExpectRejected(token);
  EXPECT_EQ(verifier_.signature_verifications(), 2u);
  EXPECT_EQ(verifier_.cached_entries(), 0u);
}

TEST_F(TokenTest, ZeroCapacityDisablesTheCache) {
  std::string token = Issue();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(uncached_.Verify(token).ok());
  EXPECT_EQ(uncached_.signature_verifications(), 3u);
  EXPECT_EQ(uncached_.cached_entries(), 0u);
}

TEST_F(TokenTest, CacheIsBoundedAndEvictsLiveEntriesOnlyWhenFull) {
  TokenVerifier small(key_, std::string(kIss), std::string(kAud), kSkew, clock_, 8);
  std::vector<std::string> tokens;
  for (int i = 0; i < 20; ++i) tokens.push_back(Issue());
  for (const std::string& t : tokens) {
    ASSERT_TRUE(small.Verify(t).ok());
    EXPECT_LE(small.cached_entries(), 8u);
  }
  EXPECT_EQ(small.cached_entries(), 8u);
  // Evicted tokens are still valid: they are simply verified again.
  for (const std::string& t : tokens) ASSERT_TRUE(small.Verify(t).ok());
  EXPECT_LE(small.cached_entries(), 8u);
}

TEST_F(TokenTest, FullCacheDropsExpiredEntriesFirst) {
  TokenVerifier small(key_, std::string(kIss), std::string(kAud), kSkew, clock_, 4);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(small.Verify(Issue()).ok());
  clock_.Advance(600 * 1000);
  std::string live = Issue();  // expires 600 s after the first three
  ASSERT_TRUE(small.Verify(live).ok());
  EXPECT_EQ(small.cached_entries(), 4u);
  clock_.Advance((300 + kSkew) * 1000);  // the first three are now expired
  ASSERT_TRUE(small.Verify(Issue()).ok());
  EXPECT_EQ(small.cached_entries(), 2u);  // expired swept; `live` and the new one remain
  const uint64_t before = small.signature_verifications();
  ASSERT_TRUE(small.Verify(live).ok());
  EXPECT_EQ(small.signature_verifications(), before);  // `live` was kept
}

TEST_F(TokenTest, FullCacheFreesAnEighthEvenWhenFewEntriesExpired) {
  // A sweep that frees only one expired entry must not leave the cache full again, or
  // every later insertion would pay another O(n) sweep.
  TokenVerifier small(key_, std::string(kIss), std::string(kAud), kSkew, clock_, 16);
  ASSERT_TRUE(small.Verify(Issue()).ok());
  clock_.Advance(10 * 1000);
  for (int i = 0; i < 15; ++i) ASSERT_TRUE(small.Verify(Issue()).ok());
  EXPECT_EQ(small.cached_entries(), 16u);
  clock_.Advance((900 - 10 + kSkew) * 1000);  // only the first entry has expired
  ASSERT_TRUE(small.Verify(Issue()).ok());
  EXPECT_EQ(small.cached_entries(), 15u);  // 16 - 2 (one eighth) + the new one
}

TEST_F(TokenTest, ConcurrentVerifyIsSafe) {
  std::vector<std::string> tokens = {Issue("a"), Issue("b"), Issue("c")};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        Result<Principal> p = verifier_.Verify(tokens[(i + t) % tokens.size()]);
        if (!p.ok()) failures.fetch_add(1);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  // Racing misses may verify a token more than once, but never per request.
  EXPECT_LE(verifier_.signature_verifications(), 12u);
  EXPECT_EQ(verifier_.cached_entries(), 3u);
}

}  // namespace
}  // namespace phigate::auth
