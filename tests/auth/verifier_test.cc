// TokenVerifier with people's tokens and external OpenID providers: the JWT attack suite
// of issue 3 §4 at the unit level (the integration suite repeats it over HTTPS).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <memory>
#include <string>
#include <vector>

#include "auth/jwt.h"
#include "auth/oidc_keys.h"
#include "auth/token_verifier.h"
#include "core/base64.h"
#include "core/clock.h"
#include "crypto/crypto.h"
#include "crypto/public_key.h"
#include "crypto/signing_key.h"

namespace phigate::auth {
namespace {

constexpr std::string_view kIss = "https://phigate.test:8443";
constexpr std::string_view kAud = "https://phigate.test:8443/fhir";
constexpr std::string_view kIdp = "https://idp.test";
constexpr std::string_view kIdpAud = "https://phigate.test/fhir";
constexpr int64_t kStartMs = 1'800'000'000'000;

crypto::PrivateKey NewKey(crypto::JwsAlg alg) {
  return std::move(crypto::PrivateKey::Generate(alg)).value();
}

std::string B64(std::string_view s) { return Base64UrlEncode(s); }

// A compact JWS with exactly the given header (no normalization), signed by `key`.
std::string SignRaw(const crypto::PrivateKey& key, const boost::json::object& header,
                    const boost::json::object& claims) {
  std::string input =
      B64(boost::json::serialize(header)) + "." + B64(boost::json::serialize(claims));
  return input + "." + B64(key.Sign(input));
}

// A fake provider: serves discovery and a JWKS made of the given keys, counts fetches.
struct FakeIdp {
  std::vector<std::pair<std::string, const crypto::PrivateKey*>> keys;  // kid -> key
  int fetches = 0;
  bool down = false;

  FetchFunction Fetcher() {
    return [this](const std::string& url) -> Result<std::string> {
      ++fetches;
      if (down) return Unavailable("idp.test: connect");
      if (url == std::string(kIdp) + "/.well-known/openid-configuration") {
        return R"({"issuer":")" + std::string(kIdp) + R"(","jwks_uri":")" + std::string(kIdp) +
               R"(/jwks"})";
      }
      if (url == std::string(kIdp) + "/jwks") {
        std::string out = R"({"keys":[)";
        for (size_t i = 0; i < keys.size(); ++i) {
          if (i > 0) out += ",";
          out += keys[i].second->PublicJwkJson(keys[i].first);
        }
        return out + "]}";
      }
      return Unavailable("idp.test: status 404");
    };
  }
};

class VerifierTest : public ::testing::Test {
 protected:
  VerifierTest() {
    idp_.keys = {{"rsa-1", &rsa_}, {"ec-1", &ec_}, {"ed-1", &ed_}};
    OidcIssuerConfig config;
    config.issuer = std::string(kIdp);
    config.audience = std::string(kIdpAud);
    verifier_.AddProvider(std::make_unique<OidcKeySource>(config, idp_.Fetcher(), clock_));
  }

  int64_t Now() const { return clock_.NowSeconds(); }

  // A person's token from the external provider, as oidc-provider would issue it.
  boost::json::object IdpClaims() const {
    return {{"iss", kIdp},           {"aud", kIdpAud},       {"sub", "user-7"},
            {"client_id", "app-1"},  {"scope", "user/*.rs"}, {"jti", "j-1"},
            {"iat", Now()},          {"exp", Now() + 300},   {"amr", {"pwd", "otp"}},
            {"roles", {"clinician"}}};
  }
  boost::json::object Header(std::string_view alg, std::string_view kid,
                             std::string_view typ = "at+jwt") const {
    return {{"alg", alg}, {"kid", kid}, {"typ", typ}};
  }
  std::string IdpToken(const boost::json::object& claims) const {
    return SignRaw(rsa_, Header("RS256", "rsa-1"), claims);
  }
  // phigate's own person token (what the built-in server issues after password + TOTP).
  boost::json::object OwnPersonClaims() const {
    return {{"iss", kIss},
            {"aud", kAud},
            {"sub", "u-1"},
            {"client_id", "app-1"},
            {"scope", "user/*.rs"},
            {"jti", "own-1"},
            {"iat", Now()},
            {"exp", Now() + 300},
            {"auth_time", Now() - 5},
            {"amr", {"pwd", "otp", "mfa"}},
            {"roles", {"clinician"}},
            {"fhirUser", std::string(kIss) + "/fhir/Practitioner/9"},
            {"sid", "fam-1"}};
  }

  void ExpectRejected(std::string_view token, std::string_view message = "invalid token") {
    Result<Principal> r = verifier_.Verify(token);
    ASSERT_FALSE(r.ok()) << "accepted";
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
    EXPECT_EQ(r.status().message(), message);
  }

  FakeClock clock_{kStartMs};
  crypto::SigningKey own_ = std::move(crypto::SigningKey::Generate()).value();
  crypto::PrivateKey rsa_ = NewKey(crypto::JwsAlg::kRS256);
  crypto::PrivateKey ec_ = NewKey(crypto::JwsAlg::kES256);
  crypto::PrivateKey ed_ = NewKey(crypto::JwsAlg::kEdDSA);
  FakeIdp idp_;
  TokenVerifier verifier_{own_, std::string(kIss), std::string(kAud), 60, clock_, 0};
};

TEST_F(VerifierTest, OwnPersonTokenYieldsAPersonPrincipal) {
  Result<Principal> p = verifier_.Verify(EncodeJwt(own_, kAccessTokenTyp, OwnPersonClaims()));
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->kind, PrincipalKind::kPerson);
  EXPECT_TRUE(p->builtin);
  EXPECT_EQ(p->subject, "u-1");
  EXPECT_EQ(p->client_id, "app-1");
  EXPECT_EQ(p->fhir_user, "Practitioner/9");
  EXPECT_EQ(p->session_id, "fam-1");
  EXPECT_EQ(p->auth_time_s, Now() - 5);
  EXPECT_EQ(p->roles, (std::vector<std::string>{"clinician"}));
  EXPECT_EQ(p->amr, (std::vector<std::string>{"pwd", "otp", "mfa"}));
  EXPECT_TRUE(p->scopes.AllowsIn(ScopeContext::kUser, "Patient", Interaction::kRead));
}

TEST_F(VerifierTest, OwnPersonTokenWithoutSecondFactorIsInsufficient) {
  boost::json::object claims = OwnPersonClaims();
  claims["amr"] = boost::json::array{"pwd"};
  ExpectRejected(EncodeJwt(own_, kAccessTokenTyp, claims), kInsufficientUserAuthentication);
  claims.erase("amr");
  ExpectRejected(EncodeJwt(own_, kAccessTokenTyp, claims), kInsufficientUserAuthentication);
}

TEST_F(VerifierTest, OwnIdTokenIsNotAnAccessToken) {
  boost::json::object claims = OwnPersonClaims();
  claims["aud"] = "app-1";
  ExpectRejected(EncodeJwt(own_, "JWT", claims));
  // Typed right but carrying ID-token claims: still refused.
  claims = OwnPersonClaims();
  claims["nonce"] = "n-1";
  ExpectRejected(EncodeJwt(own_, kAccessTokenTyp, claims));
}

TEST_F(VerifierTest, ExternalTokensVerifyWithEachAllowedAlgorithm) {
  const std::vector<std::tuple<const crypto::PrivateKey*, std::string_view, std::string_view>>
      cases = {{&rsa_, "RS256", "rsa-1"}, {&ec_, "ES256", "ec-1"}, {&ed_, "EdDSA", "ed-1"}};
  for (const auto& [key, alg, kid] : cases) {
    Result<Principal> p = verifier_.Verify(SignRaw(*key, Header(alg, kid), IdpClaims()));
    ASSERT_TRUE(p.ok()) << alg << ": " << p.status().message();
    EXPECT_FALSE(p->builtin);
    EXPECT_EQ(p->issuer, kIdp);
    EXPECT_EQ(p->kind, PrincipalKind::kPerson);
    EXPECT_EQ(p->subject, "user-7");
    EXPECT_EQ(p->roles, (std::vector<std::string>{"clinician"}));
  }
  // Discovery + JWKS once; every later key was already known.
  EXPECT_EQ(idp_.fetches, 2);
}

TEST_F(VerifierTest, ExternalPersonWithoutMfaIsInsufficient) {
  boost::json::object claims = IdpClaims();
  claims["amr"] = boost::json::array{"pwd"};
  ExpectRejected(IdpToken(claims), kInsufficientUserAuthentication);
  claims.erase("amr");
  ExpectRejected(IdpToken(claims), kInsufficientUserAuthentication);
}

TEST_F(VerifierTest, ExternalSystemTokenNeedsNoAmr) {
  boost::json::object claims = IdpClaims();
  claims["sub"] = "app-1";
  claims.erase("amr");
  claims["scope"] = "system/Patient.rs";
  Result<Principal> p = verifier_.Verify(IdpToken(claims));
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->kind, PrincipalKind::kSystem);
}

TEST_F(VerifierTest, AlgNoneIsRefused) {
  std::string token = B64(R"({"alg":"none","typ":"at+jwt","kid":"rsa-1"})") + "." +
                      B64(boost::json::serialize(IdpClaims())) + ".";
  ExpectRejected(token);
  token += "AAAA";
  ExpectRejected(token);
}

TEST_F(VerifierTest, Hs256SignedWithThePublicKeyIsRefused) {
  // The classic key-confusion attack: HMAC keyed with the provider's public JWK text.
  const std::string pub = rsa_.PublicJwkJson("rsa-1");
  std::string input = B64(R"({"alg":"HS256","typ":"at+jwt","kid":"rsa-1"})") + "." +
                      B64(boost::json::serialize(IdpClaims()));
  ExpectRejected(input + "." + B64(crypto::HmacSha256(pub, input)));
  // Same with our own issuer and our own public key coordinates.
  std::string own_input = B64(R"({"alg":"HS256","typ":"at+jwt","kid":")" + own_.kid() + R"("})") +
                          "." + B64(boost::json::serialize(OwnPersonClaims()));
  ExpectRejected(own_input + "." + B64(crypto::HmacSha256(own_.PublicJwkJson(), own_input)));
}

TEST_F(VerifierTest, AlgorithmMustMatchTheKeyType) {
  // An EC key published as ec-1, token claims RS256 with that kid (signature by RSA key).
  ExpectRejected(SignRaw(rsa_, Header("RS256", "ec-1"), IdpClaims()));
  ExpectRejected(SignRaw(ec_, Header("EdDSA", "ec-1"), IdpClaims()));
}

TEST_F(VerifierTest, AlgorithmOutsideTheAllowListIsRefused) {
  OidcIssuerConfig config;
  config.issuer = "https://rsa-only.test";
  config.audience = std::string(kIdpAud);
  config.algorithms = {"RS256"};
  int fetches = 0;
  TokenVerifier v(own_, std::string(kIss), std::string(kAud), 60, clock_, 0);
  v.AddProvider(std::make_unique<OidcKeySource>(
      config,
      [&](const std::string&) -> Result<std::string> {
        ++fetches;
        return Unavailable("x");
      },
      clock_));
  boost::json::object claims = IdpClaims();
  claims["iss"] = "https://rsa-only.test";
  Result<Principal> r = v.Verify(SignRaw(ec_, Header("ES256", "ec-1"), claims));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "invalid token");
  EXPECT_EQ(fetches, 0);  // refused before any key lookup
}

TEST_F(VerifierTest, WrongAudienceOrIssuerIsRefused) {
  boost::json::object claims = IdpClaims();
  claims["aud"] = "https://elsewhere.test/fhir";
  ExpectRejected(IdpToken(claims));
  claims = IdpClaims();
  claims["iss"] = "https://evil.test";
  ExpectRejected(IdpToken(claims));
  // Our own audience in an IdP token is not the IdP's configured audience.
  claims = IdpClaims();
  claims["aud"] = std::string(kAud);
  ExpectRejected(IdpToken(claims));
}

TEST_F(VerifierTest, TimeClaimsAreEnforcedWithSixtySecondsOfSkew) {
  boost::json::object claims = IdpClaims();
  claims["exp"] = Now() - 61;
  claims["iat"] = Now() - 400;
  ExpectRejected(IdpToken(claims), "token expired");
  claims = IdpClaims();
  claims["exp"] = Now() - 30;  // within the skew
  claims["iat"] = Now() - 400;
  EXPECT_TRUE(verifier_.Verify(IdpToken(claims)).ok());
  claims = IdpClaims();
  claims["nbf"] = Now() + 61;
  ExpectRejected(IdpToken(claims));
  claims["nbf"] = Now() + 30;
  EXPECT_TRUE(verifier_.Verify(IdpToken(claims)).ok());
  claims = IdpClaims();
  claims.erase("exp");
  ExpectRejected(IdpToken(claims));
  claims = IdpClaims();
  claims["iat"] = Now() + 120;
  ExpectRejected(IdpToken(claims));
}

TEST_F(VerifierTest, HostileKidsAreJustUnknownKeys) {
  for (std::string_view kid : {"../../../../etc/passwd", "' OR 1=1 --", "rsa-1\"", "rsa-1 "}) {
    ExpectRejected(SignRaw(rsa_, Header("RS256", kid), IdpClaims()));
  }
}

TEST_F(VerifierTest, UnknownKeyIsRefusedAndRefetchesAreRateLimited) {
  crypto::PrivateKey stranger = NewKey(crypto::JwsAlg::kRS256);
  ASSERT_TRUE(verifier_.Verify(IdpToken(IdpClaims())).ok());
  const int before = idp_.fetches;
  ExpectRejected(SignRaw(stranger, Header("RS256", "new-kid"), IdpClaims()));
  // The first unknown kid refetches the JWKS once; a second one right after does not.
  ExpectRejected(SignRaw(stranger, Header("RS256", "other-kid"), IdpClaims()));
  EXPECT_LE(idp_.fetches - before, 1);
  // A key signed by a stranger but claiming a known kid fails on the signature.
  ExpectRejected(SignRaw(stranger, Header("RS256", "rsa-1"), IdpClaims()));
}

TEST_F(VerifierTest, UnreachableProviderMeansNoTokenIsAccepted) {
  idp_.down = true;
  ExpectRejected(IdpToken(IdpClaims()));
}

TEST_F(VerifierTest, TokenHeadersPointingElsewhereAreIgnored) {
  // jku/x5u/jwk would let the token choose its own key: they are never used. A token
  // whose embedded jwk is the stranger's key still fails.
  crypto::PrivateKey stranger = NewKey(crypto::JwsAlg::kRS256);
  boost::json::object header = Header("RS256", "rsa-1");
  header["jku"] = "https://127.0.0.1:1/jwks";
  header["x5u"] = "https://127.0.0.1:1/cert";
  header["jwk"] = boost::json::parse(stranger.PublicJwkJson("rsa-1"));
  ExpectRejected(SignRaw(stranger, header, IdpClaims()));
  // The genuine key with the same headers verifies: they are merely ignored.
  EXPECT_TRUE(verifier_.Verify(SignRaw(rsa_, header, IdpClaims())).ok());
}

TEST_F(VerifierTest, IdTokensAndRefreshTokensAreNotAccessTokens) {
  boost::json::object id_token = IdpClaims();
  id_token["aud"] = "app-1";
  id_token["nonce"] = "n";
  ExpectRejected(SignRaw(rsa_, Header("RS256", "rsa-1", "JWT"), id_token));
  // Even with our audience, the JWT typ gives an ID token away.
  ExpectRejected(SignRaw(rsa_, Header("RS256", "rsa-1", "JWT"), IdpClaims()));
  // An opaque refresh token.
  ExpectRejected(crypto::RandomToken(32));
}

TEST_F(VerifierTest, RolesFromANestedClaim) {
  OidcIssuerConfig config;
  config.issuer = "https://kc.test";
  config.audience = std::string(kIdpAud);
  config.roles_claim = "realm_access.roles";
  FakeIdp kc;
  kc.keys = {{"k", &rsa_}};
  TokenVerifier v(own_, std::string(kIss), std::string(kAud), 60, clock_, 0);
  v.AddProvider(std::make_unique<OidcKeySource>(
      config,
      [&](const std::string& url) -> Result<std::string> {
        if (url == "https://kc.test/.well-known/openid-configuration") {
          return std::string(R"({"issuer":"https://kc.test","jwks_uri":"https://kc.test/jwks"})");
        }
        return std::string(R"({"keys":[)") + rsa_.PublicJwkJson("k") + "]}";
      },
      clock_));
  boost::json::object claims = IdpClaims();
  claims["iss"] = "https://kc.test";
  claims.erase("roles");
  claims["realm_access"] = {{"roles", {"billing", "auditor"}}};
  Result<Principal> p = v.Verify(SignRaw(rsa_, Header("RS256", "k"), claims));
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->roles, (std::vector<std::string>{"billing", "auditor"}));
}

}  // namespace
}  // namespace phigate::auth
