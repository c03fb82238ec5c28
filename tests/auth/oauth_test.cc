// The built-in authorization server's client-facing endpoints (oauth_endpoints.h,
// client_auth.h): every grant and its errors, refresh rotation and session rules,
// private_key_jwt, revocation, introspection and discovery. A real SqliteStore in a temp
// dir, a FakeClock, the real verifier wired to the real SessionGuard.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/auth_test_env.h"
#include "auth/authorization_codes.h"
#include "auth/client_auth.h"
#include "auth/client_registry.h"
#include "auth/jwt.h"
#include "auth/oauth_endpoints.h"
#include "auth/security_events.h"
#include "auth/session_guard.h"
#include "auth/token_issuer.h"
#include "auth/token_verifier.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/url.h"
#include "crypto/crypto.h"
#include "crypto/public_key.h"
#include "crypto/signing_key.h"
#include "storage/sqlite/sqlite_store.h"

namespace phigate::auth {
namespace {

constexpr std::string_view kIss = "https://phigate.test:8443";
constexpr std::string_view kAud = "https://phigate.test:8443/fhir";
constexpr std::string_view kTokenUrl = "https://phigate.test:8443/oauth2/token";
constexpr std::string_view kForm = "application/x-www-form-urlencoded";
constexpr std::string_view kRedirect = "https://app.example/callback";
constexpr std::string_view kUserId = "0123456789abcdef0123456789abcdef";
constexpr int64_t kStartMs = kAuthTestStartMs;

boost::json::object Decode(std::string_view json) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(json, ec);
  if (ec || !v.is_object()) return {};
  return std::move(v.as_object());
}

boost::json::object JwtPart(std::string_view jwt, int part) {
  const size_t dot1 = jwt.find('.');
  const size_t dot2 = jwt.rfind('.');
  if (dot1 == std::string_view::npos || dot2 == dot1) return {};
  std::string_view b64 = part == 0 ? jwt.substr(0, dot1) : jwt.substr(dot1 + 1, dot2 - dot1 - 1);
  std::optional<std::string> json = Base64UrlDecode(b64);
  return json ? Decode(*json) : boost::json::object();
}

std::string Str(const boost::json::object& o, std::string_view key) {
  const boost::json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::string Header(const EndpointResponse& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return {};
}

std::string Basic(std::string_view id, std::string_view secret) {
  return "Basic " + Base64Encode(PercentEncode(id) + ":" + PercentEncode(secret));
}

// A verifier that satisfies the PKCE syntax (RFC 7636 §4.1).
std::string NewVerifier() { return crypto::RandomToken(48); }

class OAuthTest : public AuthTestEnv {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(OpenStore("oauth", /*store_reads_fake_clock=*/true));

    config_.issuer = std::string(kIss);
    config_.audience = std::string(kAud);
    config_.session_idle_timeout_s = 900;
    config_.session_max_lifetime_s = 3600;
    guard_ = std::make_unique<SessionGuard>(*store_, clock_, 1000);
    verifier_ = std::make_unique<TokenVerifier>(key_, std::string(kIss), std::string(kAud), 60,
                                                clock_, 100, guard_.get());
    endpoints_ = std::make_unique<OAuthEndpoints>(*store_, issuer_, codes_, *guard_, *verifier_,
                                                  clock_, config_, std::string(kIss), events_);

    storage::UserRecord user;
    user.user_id = std::string(kUserId);
    user.username = "dr.who";
    user.roles = "clinician";
    user.fhir_user = "Practitioner/1";
    user.mfa_enrolled = true;
    user.created_ms = kStartMs;
    ASSERT_TRUE(store_->PutUser(user).ok());

    ClientRegistration app;
    app.name = "public app";
    app.scope = "openid fhirUser offline_access online_access user/*.rs patient/*.rs";
    app.redirect_uris = {std::string(kRedirect), "http://127.0.0.1:7777/cb"};
    app.is_public = true;
    Result<NewClient> created = CreateClient(*store_, app, clock_);
    ASSERT_TRUE(created.ok()) << created.status().message();
    public_id_ = created->client_id;
    EXPECT_TRUE(created->client_secret.empty());
    EXPECT_EQ(created->auth_method, "none");
  }

  int64_t Now() const { return clock_.NowSeconds(); }

  static EndpointRequest Request(std::string_view authorization, std::string_view body) {
    EndpointRequest r;
    r.method = "POST";
    r.content_type = kForm;
    r.authorization = authorization;
    r.body = body;
    r.remote_address = "192.0.2.7";
    return r;
  }
  EndpointResponse Token(std::string_view body, std::string_view authorization = "") {
    return endpoints_->Token(Request(authorization, body));
  }
  EndpointResponse Revoke(std::string_view body, std::string_view authorization = "") {
    return endpoints_->Revoke(Request(authorization, body));
  }
  EndpointResponse Introspect(std::string_view body, std::string_view authorization = "") {
    return endpoints_->Introspect(Request(authorization, body));
  }

  // The grant the login would store after password + TOTP.
  AuthorizationGrant Grant(const std::string& client_id, std::string_view scope,
                           const std::string& verifier) const {
    AuthorizationGrant g;
    g.client_id = client_id;
    g.redirect_uri = std::string(kRedirect);
    g.scope = std::string(scope);
    g.code_challenge = S256Challenge(verifier);
    g.nonce = "n-0S6_WzA2Mj";
    g.user_id = std::string(kUserId);
    g.roles = {"clinician"};
    g.fhir_user = "Practitioner/1";
    g.amr = {"pwd", "otp", "mfa"};
    g.auth_time_s = Now();
    return g;
  }

  static std::string CodeBody(std::string_view code, std::string_view verifier,
                              std::string_view client_id, std::string_view redirect = kRedirect) {
    std::string body = "grant_type=authorization_code&code=" + PercentEncode(code) +
                       "&code_verifier=" + PercentEncode(verifier) +
                       "&redirect_uri=" + PercentEncode(redirect);
    if (!client_id.empty()) body += "&client_id=" + PercentEncode(client_id);
    return body;
  }
  static std::string RefreshBody(std::string_view token, std::string_view client_id) {
    std::string body = "grant_type=refresh_token&refresh_token=" + PercentEncode(token);
    if (!client_id.empty()) body += "&client_id=" + PercentEncode(client_id);
    return body;
  }

  // A code of the public app, redeemed once.
  struct Redeemed {
    std::string code;
    std::string verifier;
    boost::json::object tokens;  // the token response
  };
  Redeemed RedeemCode(std::string_view scope) {
    Redeemed out;
    out.verifier = NewVerifier();
    out.code = codes_.Issue(Grant(public_id_, scope, out.verifier));
    EndpointResponse r = Token(CodeBody(out.code, out.verifier, public_id_));
    EXPECT_EQ(r.status, 200) << r.body;
    out.tokens = Decode(r.body);
    return out;
  }
  // A whole login for the public app: returns the token response.
  boost::json::object Login(std::string_view scope) { return RedeemCode(scope).tokens; }

  void ExpectError(const EndpointResponse& r, int status, std::string_view error) const {
    EXPECT_EQ(r.status, status) << r.body;
    boost::json::object body = Decode(r.body);
    EXPECT_EQ(Str(body, "error"), error) << r.body;
    EXPECT_FALSE(Str(body, "error_description").empty());
    EXPECT_EQ(body.size(), 2u) << r.body;
    EXPECT_EQ(Header(r, "Cache-Control"), "no-store");
  }

  bool HasEvent(SecurityEventType type) const {
    for (const SecurityEvent& e : events_.events()) {
      if (e.type == type) return true;
    }
    return false;
  }

  // A second public app "other", with the same redirect URI: returns its client_id.
  std::string OtherPublicClient(std::string_view scope) {
    ClientRegistration other;
    other.name = "other";
    other.scope = std::string(scope);
    other.redirect_uris = {std::string(kRedirect)};
    other.is_public = true;
    return CreateClient(*store_, other, clock_)->client_id;
  }

  // Changes the stored user as `change` says (an admin action, as the CLI does it).
  void UpdateUser(const std::function<void(storage::UserRecord&)>& change) {
    storage::UserRecord user = std::move(*store_->GetUser(std::string(kUserId))).value();
    change(user);
    ASSERT_TRUE(store_->UpdateUser(user, user.revision).ok());
  }

  // A confidential client with a secret (Argon2id: created only where needed).
  NewClient SecretClient(std::string_view scope, std::vector<std::string> redirect_uris = {},
                         std::string_view roles = "") {
    ClientRegistration reg;
    reg.name = "secret client";
    reg.scope = std::string(scope);
    reg.redirect_uris = std::move(redirect_uris);
    reg.roles = std::string(roles);
    Result<NewClient> c = CreateClient(*store_, reg, clock_);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return c.ok() ? c.value() : NewClient();
  }

  // A private_key_jwt client whose key pair the test keeps.
  struct KeyClient {
    std::string client_id;
    std::string kid;
    std::shared_ptr<crypto::PrivateKey> key;
  };
  KeyClient JwtClient(crypto::JwsAlg alg, std::string_view scope = "system/*.rs",
                      std::string_view roles = "auditor") {
    KeyClient out;
    out.kid = "key-" + crypto::RandomToken(6);
    Result<crypto::PrivateKey> key = crypto::PrivateKey::Generate(alg);
    EXPECT_TRUE(key.ok());
    out.key = std::make_shared<crypto::PrivateKey>(std::move(key).value());
    ClientRegistration reg;
    reg.name = "backend";
    reg.scope = std::string(scope);
    reg.roles = std::string(roles);
    reg.jwks = R"({"keys":[)" + out.key->PublicJwkJson(out.kid) + "]}";
    Result<NewClient> c = CreateClient(*store_, reg, clock_);
    EXPECT_TRUE(c.ok()) << c.status().message();
    if (c.ok()) {
      out.client_id = c->client_id;
      EXPECT_TRUE(c->client_secret.empty());
      EXPECT_EQ(c->auth_method, "private_key_jwt");
    }
    return out;
  }
  boost::json::object AssertionClaims(const KeyClient& c) const {
    return {{"iss", c.client_id}, {"sub", c.client_id}, {"aud", kTokenUrl},
            {"exp", Now() + 240}, {"iat", Now()},       {"jti", crypto::RandomToken(12)}};
  }
  static std::string Assertion(const KeyClient& c, const boost::json::object& claims) {
    return EncodeJws(*c.key, c.kid, "JWT", claims);
  }
  static std::string AssertionBody(std::string_view assertion,
                                   std::string_view rest = "grant_type=client_credentials") {
    return std::string(rest) + "&client_assertion_type=" + PercentEncode(kJwtBearerAssertionType) +
           "&client_assertion=" + PercentEncode(assertion);
  }
  EndpointResponse AssertionToken(const KeyClient& c, const boost::json::object& claims) {
    return Token(AssertionBody(Assertion(c, claims)));
  }

  crypto::SigningKey key_ = std::move(crypto::SigningKey::Generate()).value();
  TokenIssuer issuer_{key_, std::string(kIss), std::string(kAud), 900, 300, clock_};
  AuthorizationCodes codes_{clock_};
  std::unique_ptr<SessionGuard> guard_;
  std::unique_ptr<TokenVerifier> verifier_;
  std::unique_ptr<OAuthEndpoints> endpoints_;
  std::string public_id_;
};

// --- authorization_code ---

TEST_F(OAuthTest, CodeGrantIssuesPersonTokenRefreshTokenAndIdToken) {
  const std::string verifier = NewVerifier();
  const std::string code =
      codes_.Issue(Grant(public_id_, "openid fhirUser offline_access user/*.rs", verifier));
  EndpointResponse r = Token(CodeBody(code, verifier, public_id_));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/json; charset=utf-8");
  EXPECT_EQ(Header(r, "Cache-Control"), "no-store");
  EXPECT_EQ(Header(r, "Pragma"), "no-cache");
  boost::json::object body = Decode(r.body);
  EXPECT_EQ(body.size(), 6u) << r.body;
  EXPECT_EQ(Str(body, "token_type"), "Bearer");
  EXPECT_EQ(body.at("expires_in").as_int64(), 300);
  EXPECT_EQ(Str(body, "scope"), "openid fhirUser offline_access user/*.rs");
  EXPECT_EQ(Str(body, "refresh_token").size(), 43u);  // 256 bits, base64url
  EXPECT_FALSE(body.contains("patient"));

  const std::string access = Str(body, "access_token");
  Result<Principal> p = verifier_->Verify(access);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->kind, PrincipalKind::kPerson);
  EXPECT_TRUE(p->builtin);
  EXPECT_EQ(p->subject, kUserId);
  EXPECT_EQ(p->client_id, public_id_);
  EXPECT_EQ(p->roles, std::vector<std::string>{"clinician"});
  EXPECT_EQ(p->fhir_user, "Practitioner/1");
  EXPECT_EQ(p->auth_time_s, Now());
  EXPECT_FALSE(p->session_id.empty());
  boost::json::object claims = JwtPart(access, 1);
  EXPECT_EQ(Str(claims, "fhirUser"), std::string(kIss) + "/fhir/Practitioner/1");
  EXPECT_EQ(Str(claims, "sid"), p->session_id);
  EXPECT_EQ(claims.at("amr"), (boost::json::array{"pwd", "otp", "mfa"}));
  EXPECT_EQ(claims.at("exp").as_int64() - claims.at("iat").as_int64(), 300);

  // The ID token (OIDC Core §2): typ JWT, aud = client, nonce, fhirUser (scope granted).
  const std::string id_token = Str(body, "id_token");
  EXPECT_EQ(Str(JwtPart(id_token, 0), "typ"), "JWT");
  boost::json::object id = JwtPart(id_token, 1);
  EXPECT_EQ(Str(id, "iss"), kIss);
  EXPECT_EQ(Str(id, "aud"), public_id_);
  EXPECT_EQ(Str(id, "sub"), kUserId);
  EXPECT_EQ(Str(id, "nonce"), "n-0S6_WzA2Mj");
  EXPECT_EQ(Str(id, "fhirUser"), std::string(kIss) + "/fhir/Practitioner/1");
  EXPECT_EQ(id.at("auth_time").as_int64(), Now());
  EXPECT_EQ(id.at("exp").as_int64() - id.at("iat").as_int64(), 300);
  // An ID token is not an access token.
  EXPECT_FALSE(verifier_->Verify(id_token).ok());

  // The session is stored as a refresh family whose id is the sid.
  Result<std::optional<storage::RefreshFamily>> family = store_->GetRefreshFamily(p->session_id);
  ASSERT_TRUE(family.ok());
  ASSERT_TRUE(family->has_value());
  EXPECT_EQ((*family)->user_id, kUserId);
  EXPECT_EQ((*family)->client_id, public_id_);
  EXPECT_EQ((*family)->expires_ms, kStartMs + 3600 * 1000);
  EXPECT_TRUE(HasEvent(SecurityEventType::kTokenIssued));
}

TEST_F(OAuthTest, CodeGrantWithoutRefreshOrOpenidScopesIssuesOnlyTheAccessToken) {
  boost::json::object body = Login("user/*.rs");
  EXPECT_EQ(body.size(), 4u);
  EXPECT_FALSE(body.contains("refresh_token"));
  EXPECT_FALSE(body.contains("id_token"));
  // Still a session id: a replayed code or a revocation ends it.
  Result<Principal> p = verifier_->Verify(Str(body, "access_token"));
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->session_id.empty());
}

TEST_F(OAuthTest, IdTokenCarriesFhirUserOnlyWithTheFhirUserScope) {
  boost::json::object body = Login("openid user/*.rs");
  boost::json::object id = JwtPart(Str(body, "id_token"), 1);
  EXPECT_FALSE(id.contains("fhirUser"));
  EXPECT_EQ(Str(id, "nonce"), "n-0S6_WzA2Mj");
}

TEST_F(OAuthTest, CodeGrantReturnsThePatientContext) {
  const std::string verifier = NewVerifier();
  AuthorizationGrant g = Grant(public_id_, "patient/*.rs", verifier);
  g.patient = "7";
  EndpointResponse r = Token(CodeBody(codes_.Issue(g), verifier, public_id_));
  ASSERT_EQ(r.status, 200) << r.body;
  boost::json::object body = Decode(r.body);
  EXPECT_EQ(Str(body, "patient"), "7");
  Result<Principal> p = verifier_->Verify(Str(body, "access_token"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->patient, "7");
}

TEST_F(OAuthTest, PkceMismatchIsInvalidGrantAndConsumesTheCode) {
  const std::string verifier = NewVerifier();
  const std::string code = codes_.Issue(Grant(public_id_, "user/*.rs", verifier));
  ExpectError(Token(CodeBody(code, NewVerifier(), public_id_)), 400, "invalid_grant");
  // The code is single use even after a failed attempt: no guessing verifiers.
  ExpectError(Token(CodeBody(code, verifier, public_id_)), 400, "invalid_grant");
}

TEST_F(OAuthTest, CodeVerifierIsRequiredAndMustBeWellFormed) {
  const std::string verifier = NewVerifier();
  const std::string code = codes_.Issue(Grant(public_id_, "user/*.rs", verifier));
  const std::string base = "grant_type=authorization_code&client_id=" + public_id_ +
                           "&redirect_uri=" + PercentEncode(kRedirect) + "&code=" + code;
  ExpectError(Token(base), 400, "invalid_request");
  ExpectError(Token(base + "&code_verifier=" + std::string(42, 'a')), 400, "invalid_request");
  ExpectError(Token(base + "&code_verifier=" + std::string(129, 'a')), 400, "invalid_request");
  ExpectError(Token(base + "&code_verifier=" + std::string(42, 'a') + "%2B"), 400,
              "invalid_request");
  // Syntax errors did not consume the code.
  EXPECT_EQ(Token(CodeBody(code, verifier, public_id_)).status, 200);
  // The challenge is S256 of exactly the verifier (RFC 7636 Appendix B).
  EXPECT_EQ(S256Challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
  EXPECT_TRUE(IsValidCodeVerifier(std::string(43, '~')));
  EXPECT_TRUE(IsValidCodeVerifier(std::string(128, '.')));
  EXPECT_FALSE(IsValidCodeVerifier(std::string(43, '/')));
}

TEST_F(OAuthTest, CodeIsMissingIsInvalidRequest) {
  ExpectError(Token("grant_type=authorization_code&client_id=" + public_id_ +
                    "&code_verifier=" + NewVerifier()),
              400, "invalid_request");
}

TEST_F(OAuthTest, RedirectUriMustMatchTheAuthorizationRequest) {
  const std::string verifier = NewVerifier();
  std::string code = codes_.Issue(Grant(public_id_, "user/*.rs", verifier));
  ExpectError(Token(CodeBody(code, verifier, public_id_, "http://127.0.0.1:7777/cb")), 400,
              "invalid_grant");
  code = codes_.Issue(Grant(public_id_, "user/*.rs", verifier));
  ExpectError(Token("grant_type=authorization_code&client_id=" + public_id_ + "&code=" + code +
                    "&code_verifier=" + verifier),
              400, "invalid_grant");
}

TEST_F(OAuthTest, CodeOfAnotherClientIsInvalidGrant) {
  const std::string other_id = OtherPublicClient("user/*.rs");
  const std::string verifier = NewVerifier();
  const std::string code = codes_.Issue(Grant(public_id_, "user/*.rs", verifier));
  ExpectError(Token(CodeBody(code, verifier, other_id)), 400, "invalid_grant");
}

TEST_F(OAuthTest, ExpiredOrUnknownCodeIsInvalidGrant) {
  const std::string verifier = NewVerifier();
  const std::string code = codes_.Issue(Grant(public_id_, "user/*.rs", verifier));
  clock_.Advance((kAuthorizationCodeTtlS + 1) * 1000);
  ExpectError(Token(CodeBody(code, verifier, public_id_)), 400, "invalid_grant");
  ExpectError(Token(CodeBody(crypto::RandomToken(32), verifier, public_id_)), 400, "invalid_grant");
}

TEST_F(OAuthTest, ReusedCodeRevokesTheSessionItCreated) {
  const Redeemed first = RedeemCode("offline_access user/*.rs");
  const std::string access = Str(first.tokens, "access_token");
  ASSERT_TRUE(verifier_->Verify(access).ok());

  ExpectError(Token(CodeBody(first.code, first.verifier, public_id_)), 400, "invalid_grant");
  Result<Principal> p = verifier_->Verify(access);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kUnauthenticated);
  // Revoked by jti (persisted) as well as by session.
  EXPECT_EQ(p.status().message(), "token revoked");
  ExpectError(Token(RefreshBody(Str(first.tokens, "refresh_token"), public_id_)), 400,
              "invalid_grant");
  EXPECT_TRUE(HasEvent(SecurityEventType::kTokenRevoked));
}

TEST_F(OAuthTest, ReusedCodeWithoutRefreshTokenStillEndsTheAccessToken) {
  const Redeemed first = RedeemCode("user/*.rs");
  const std::string access = Str(first.tokens, "access_token");
  ExpectError(Token(CodeBody(first.code, first.verifier, public_id_)), 400, "invalid_grant");
  EXPECT_EQ(verifier_->Verify(access).status().message(), "token revoked");
}

// Regression (security review L3): a session without refresh tokens exists in memory only,
// so the code-reuse revocation must also revoke its access token by jti, in the store: a
// restarted server (a fresh SessionGuard loaded from the store) still refuses the token.
TEST_F(OAuthTest, ReusedCodeWithoutRefreshTokenStaysRevokedAfterARestart) {
  const Redeemed first = RedeemCode("user/*.rs");
  const std::string access = Str(first.tokens, "access_token");
  ExpectError(Token(CodeBody(first.code, first.verifier, public_id_)), 400, "invalid_grant");

  SessionGuard restarted_guard(*store_, clock_, 1000);
  ASSERT_TRUE(restarted_guard.Load().ok());
  TokenVerifier restarted(key_, std::string(kIss), std::string(kAud), 60, clock_, 100,
                          &restarted_guard);
  Result<Principal> p = restarted.Verify(access);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "token revoked");
}

// Regression (security review L4): duplicates are found by a hash set (linear), also at
// the end of a form with thousands of parameters.
TEST_F(OAuthTest, ARepeatedParameterInALargeFormIsInvalidRequest) {
  std::string body = "grant_type=client_credentials";
  for (int i = 0; body.size() < kMaxTokenRequestBodyBytes - 16; ++i) {
    body += "&p" + std::to_string(i) + "=";
  }
  body += "&p7=";
  ASSERT_LE(body.size(), kMaxTokenRequestBodyBytes);
  ExpectError(Token(body), 400, "invalid_request");
  EXPECT_EQ(Str(Decode(Token(body).body), "error_description"), "a request parameter is repeated");
}

TEST_F(OAuthTest, DisabledUserCannotRedeemACode) {
  const std::string verifier = NewVerifier();
  const std::string code = codes_.Issue(Grant(public_id_, "user/*.rs", verifier));
  ASSERT_NO_FATAL_FAILURE(UpdateUser([](storage::UserRecord& u) { u.disabled = true; }));
  ExpectError(Token(CodeBody(code, verifier, public_id_)), 400, "invalid_grant");
}

TEST_F(OAuthTest, ConfidentialAppAuthenticatesWithItsSecret) {
  NewClient app = SecretClient("user/*.rs openid", {std::string(kRedirect)});
  const std::string verifier = NewVerifier();
  std::string code = codes_.Issue(Grant(app.client_id, "user/*.rs openid", verifier));
  // Without credentials a confidential client is not authenticated.
  EndpointResponse anonymous = Token(CodeBody(code, verifier, app.client_id));
  ExpectError(anonymous, 401, "invalid_client");
  EXPECT_EQ(Header(anonymous, "WWW-Authenticate"), R"(Basic realm="phigate")");
  // Wrong secret.
  EndpointResponse wrong =
      Token(CodeBody(code, verifier, ""), Basic(app.client_id, app.client_secret + "x"));
  ExpectError(wrong, 401, "invalid_client");
  EXPECT_EQ(Header(wrong, "WWW-Authenticate"), R"(Basic realm="phigate")");
  EXPECT_TRUE(HasEvent(SecurityEventType::kClientAuthFailure));
  // Failed authentication did not consume the code.
  EndpointResponse ok =
      Token(CodeBody(code, verifier, ""), Basic(app.client_id, app.client_secret));
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_FALSE(Str(Decode(ok.body), "id_token").empty());
}

TEST_F(OAuthTest, SystemOnlyClientCannotUseTheCodeGrant) {
  KeyClient backend = JwtClient(crypto::JwsAlg::kES256);
  const std::string verifier = NewVerifier();
  const std::string code = codes_.Issue(Grant(backend.client_id, "user/*.rs", verifier));
  ExpectError(Token(AssertionBody(Assertion(backend, AssertionClaims(backend)),
                                  CodeBody(code, verifier, ""))),
              400, "unauthorized_client");
}

TEST_F(OAuthTest, OtherGrantTypesAreUnsupported) {
  for (std::string_view grant :
       {"password&username=a&password=b", "implicit",
        "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code",
        "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer", "Authorization_Code"}) {
    SCOPED_TRACE(grant);
    ExpectError(Token("grant_type=" + std::string(grant) + "&client_id=" + public_id_), 400,
                "unsupported_grant_type");
  }
  ExpectError(Token("client_id=" + public_id_), 400, "invalid_request");
}

TEST_F(OAuthTest, FormRulesApplyToEveryEndpoint) {
  const std::string body = "grant_type=refresh_token&refresh_token=x&client_id=" + public_id_;
  EndpointRequest json = Request("", body);
  json.content_type = "application/json";
  ExpectError(endpoints_->Token(json), 400, "invalid_request");
  ExpectError(endpoints_->Revoke(json), 400, "invalid_request");
  ExpectError(endpoints_->Introspect(json), 400, "invalid_request");
  ExpectError(Token(body + "&client_id=" + public_id_), 400, "invalid_request");
  ExpectError(Token(body + "&pad=" + std::string(kMaxTokenRequestBodyBytes, 'a')), 400,
              "invalid_request");
  EndpointRequest get = Request("", body);
  get.method = "GET";
  EndpointResponse r = endpoints_->Token(get);
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(Header(r, "Allow"), "POST");
}

TEST_F(OAuthTest, OneClientAuthenticationMethodPerRequest) {
  KeyClient backend = JwtClient(crypto::JwsAlg::kES256);
  const std::string assertion = AssertionBody(Assertion(backend, AssertionClaims(backend)));
  ExpectError(Token(assertion, Basic(backend.client_id, "secret")), 400, "invalid_request");
  ExpectError(Token(assertion + "&client_secret=x"), 400, "invalid_request");
  // client_secret_post is not offered.
  ExpectError(
      Token("grant_type=client_credentials&client_id=" + backend.client_id + "&client_secret=x"),
      401, "invalid_client");
  // No credentials at all.
  ExpectError(Token("grant_type=client_credentials"), 401, "invalid_client");
}

// --- refresh_token ---

TEST_F(OAuthTest, RefreshRotatesTheTokenAndKeepsTheSession) {
  boost::json::object login = Login("offline_access user/*.rs");
  const std::string first_refresh = Str(login, "refresh_token");
  const Principal first = verifier_->Verify(Str(login, "access_token")).value();
  clock_.Advance(60'000);

  EndpointResponse r = Token(RefreshBody(first_refresh, public_id_));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Header(r, "Cache-Control"), "no-store");
  boost::json::object body = Decode(r.body);
  EXPECT_EQ(Str(body, "token_type"), "Bearer");
  EXPECT_EQ(Str(body, "scope"), "offline_access user/*.rs");
  const std::string second_refresh = Str(body, "refresh_token");
  EXPECT_EQ(second_refresh.size(), 43u);
  EXPECT_NE(second_refresh, first_refresh);
  Result<Principal> p = verifier_->Verify(Str(body, "access_token"));
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->session_id, first.session_id);
  EXPECT_EQ(p->auth_time_s, first.auth_time_s);
  EXPECT_EQ(p->amr, (std::vector<std::string>{"pwd", "otp", "mfa"}));
  EXPECT_EQ(p->roles, std::vector<std::string>{"clinician"});
  EXPECT_EQ(p->fhir_user, "Practitioner/1");
  EXPECT_TRUE(HasEvent(SecurityEventType::kTokenRefreshed));

  // The new token works once more; the chain continues.
  EndpointResponse again = Token(RefreshBody(second_refresh, public_id_));
  ASSERT_EQ(again.status, 200) << again.body;
}

TEST_F(OAuthTest, ReusedRefreshTokenRevokesTheWholeFamily) {
  boost::json::object login = Login("offline_access user/*.rs");
  const std::string old_refresh = Str(login, "refresh_token");
  EndpointResponse r = Token(RefreshBody(old_refresh, public_id_));
  ASSERT_EQ(r.status, 200);
  boost::json::object body = Decode(r.body);
  const std::string access = Str(body, "access_token");
  ASSERT_TRUE(verifier_->Verify(access).ok());  // now cached

  ExpectError(Token(RefreshBody(old_refresh, public_id_)), 400, "invalid_grant");
  EXPECT_TRUE(HasEvent(SecurityEventType::kRefreshTokenReuse));
  // The current refresh token and every access token of the session are dead.
  ExpectError(Token(RefreshBody(Str(body, "refresh_token"), public_id_)), 400, "invalid_grant");
  EXPECT_EQ(verifier_->Verify(access).status().message(), "session ended");
  EXPECT_EQ(verifier_->Verify(Str(login, "access_token")).status().message(), "session ended");
}

TEST_F(OAuthTest, IdleSessionExpires) {
  boost::json::object login = Login("offline_access user/*.rs");
  clock_.Advance((config_.session_idle_timeout_s + 1) * 1000);
  ExpectError(Token(RefreshBody(Str(login, "refresh_token"), public_id_)), 400, "invalid_grant");
  EXPECT_TRUE(HasEvent(SecurityEventType::kSessionExpired));
}

TEST_F(OAuthTest, SessionEndsAtItsAbsoluteLifetimeEvenWhenActive) {
  boost::json::object login = Login("online_access user/*.rs");
  std::string refresh = Str(login, "refresh_token");
  // Used every 800 s (within the 900 s idle timeout): fine until 3600 s after the login.
  for (int i = 1; i <= 4; ++i) {
    clock_.Advance(800'000);
    EndpointResponse r = Token(RefreshBody(refresh, public_id_));
    ASSERT_EQ(r.status, 200) << "refresh " << i << ": " << r.body;
    refresh = Str(Decode(r.body), "refresh_token");
  }
  // Near the end, the access token is cut to the session's end (no token outlives the
  // automatic logoff).
  clock_.Advance(250'000);  // 3450 s after the login
  EndpointResponse last = Token(RefreshBody(refresh, public_id_));
  ASSERT_EQ(last.status, 200) << last.body;
  boost::json::object body = Decode(last.body);
  EXPECT_EQ(body.at("expires_in").as_int64(), 150);
  EXPECT_EQ(JwtPart(Str(body, "access_token"), 1).at("exp").as_int64(), kStartMs / 1000 + 3600);
  refresh = Str(body, "refresh_token");
  clock_.Advance(800'000);  // 4250 s after the login, 800 s after the last use
  ExpectError(Token(RefreshBody(refresh, public_id_)), 400, "invalid_grant");
  EXPECT_TRUE(HasEvent(SecurityEventType::kSessionExpired));
}

TEST_F(OAuthTest, DisabledUserCannotRefreshAndTheSessionEnds) {
  boost::json::object login = Login("offline_access user/*.rs");
  ASSERT_NO_FATAL_FAILURE(UpdateUser([](storage::UserRecord& u) { u.disabled = true; }));
  ExpectError(Token(RefreshBody(Str(login, "refresh_token"), public_id_)), 400, "invalid_grant");
  // Re-enabled, the session stays ended.
  ASSERT_NO_FATAL_FAILURE(UpdateUser([](storage::UserRecord& u) { u.disabled = false; }));
  guard_->InvalidateUser(std::string(kUserId));
  EXPECT_EQ(verifier_->Verify(Str(login, "access_token")).status().message(), "session ended");
}

TEST_F(OAuthTest, MfaResetEndsRefresh) {
  boost::json::object login = Login("offline_access user/*.rs");
  clock_.Advance(1000);
  ASSERT_NO_FATAL_FAILURE(
      UpdateUser([&](storage::UserRecord& u) { u.sessions_valid_after_ms = clock_.NowMillis(); }));
  ExpectError(Token(RefreshBody(Str(login, "refresh_token"), public_id_)), 400, "invalid_grant");
}

TEST_F(OAuthTest, RefreshTokenIsBoundToItsClient) {
  boost::json::object login = Login("offline_access user/*.rs");
  const std::string other_id = OtherPublicClient("user/*.rs offline_access");
  ExpectError(Token(RefreshBody(Str(login, "refresh_token"), other_id)), 400, "invalid_grant");
  // The rightful client's token was not consumed.
  EXPECT_EQ(Token(RefreshBody(Str(login, "refresh_token"), public_id_)).status, 200);
}

TEST_F(OAuthTest, RefreshScopeMayOnlyNarrow) {
  boost::json::object login = Login("offline_access user/*.rs");
  const std::string refresh = Str(login, "refresh_token");
  ExpectError(Token(RefreshBody(refresh, public_id_) + "&scope=user%2F*.cruds"), 400,
              "invalid_scope");
  ExpectError(Token(RefreshBody(refresh, public_id_) + "&scope=user%2FPatient.zz"), 400,
              "invalid_scope");
  // Refused scopes did not consume the token.
  EndpointResponse r = Token(RefreshBody(refresh, public_id_) + "&scope=user%2FPatient.rs");
  ASSERT_EQ(r.status, 200) << r.body;
  boost::json::object body = Decode(r.body);
  EXPECT_EQ(Str(body, "scope"), "user/Patient.rs");
  // The refresh token keeps the original scope (RFC 6749 §6).
  EndpointResponse next = Token(RefreshBody(Str(body, "refresh_token"), public_id_));
  ASSERT_EQ(next.status, 200);
  EXPECT_EQ(Str(Decode(next.body), "scope"), "offline_access user/*.rs");
}

TEST_F(OAuthTest, RefreshOfAPatientUserKeepsThePatientContext) {
  storage::UserRecord patient;
  patient.user_id = "fedcba9876543210fedcba9876543210";
  patient.username = "pat";
  patient.roles = "patient";
  patient.fhir_user = "Patient/42";
  patient.mfa_enrolled = true;
  ASSERT_TRUE(store_->PutUser(patient).ok());
  const std::string verifier = NewVerifier();
  AuthorizationGrant g = Grant(public_id_, "offline_access patient/*.rs", verifier);
  g.user_id = patient.user_id;
  g.roles = {"patient"};
  g.fhir_user = "Patient/42";
  g.patient = "42";
  EndpointResponse r = Token(CodeBody(codes_.Issue(g), verifier, public_id_));
  ASSERT_EQ(r.status, 200) << r.body;
  EndpointResponse refreshed = Token(RefreshBody(Str(Decode(r.body), "refresh_token"), public_id_));
  ASSERT_EQ(refreshed.status, 200) << refreshed.body;
  EXPECT_EQ(Str(Decode(refreshed.body), "patient"), "42");
}

TEST_F(OAuthTest, RefreshErrors) {
  ExpectError(Token("grant_type=refresh_token&client_id=" + public_id_), 400, "invalid_request");
  ExpectError(Token(RefreshBody(crypto::RandomToken(32), public_id_)), 400, "invalid_grant");
  ExpectError(Token(RefreshBody(std::string(300, 'a'), public_id_)), 400, "invalid_grant");
  ExpectError(Token(RefreshBody(crypto::RandomToken(32), "no-such-client")), 401, "invalid_client");
}

// --- client_credentials specifics (the rest: client_credentials_test.cc) ---

TEST_F(OAuthTest, PublicClientCannotUseClientCredentials) {
  ExpectError(Token("grant_type=client_credentials&client_id=" + public_id_), 400,
              "unauthorized_client");
}

TEST_F(OAuthTest, AppWithSystemScopesMayUseClientCredentialsWithItsSystemScopesOnly) {
  NewClient app =
      SecretClient("openid user/*.rs system/Patient.rs", {std::string(kRedirect)}, "clinician");
  EndpointResponse r =
      Token("grant_type=client_credentials", Basic(app.client_id, app.client_secret));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Str(Decode(r.body), "scope"), "system/Patient.rs");
  Result<Principal> p = verifier_->Verify(Str(Decode(r.body), "access_token"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->kind, PrincipalKind::kSystem);
  EXPECT_EQ(p->roles, std::vector<std::string>{"clinician"});
  ExpectError(Token("grant_type=client_credentials&scope=user%2F*.rs",
                    Basic(app.client_id, app.client_secret)),
              400, "invalid_scope");
}

// --- private_key_jwt (RFC 7523) ---

class PrivateKeyJwtTest : public OAuthTest, public ::testing::WithParamInterface<crypto::JwsAlg> {};

TEST_P(PrivateKeyJwtTest, SignedAssertionAuthenticates) {
  KeyClient c = JwtClient(GetParam(), "system/Patient.rs system/Observation.rs", "auditor");
  EndpointResponse r = AssertionToken(c, AssertionClaims(c));
  ASSERT_EQ(r.status, 200) << r.body;
  boost::json::object body = Decode(r.body);
  EXPECT_EQ(Str(body, "scope"), "system/Patient.rs system/Observation.rs");
  EXPECT_EQ(body.at("expires_in").as_int64(), 900);
  Result<Principal> p = verifier_->Verify(Str(body, "access_token"));
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->kind, PrincipalKind::kSystem);
  EXPECT_EQ(p->subject, c.client_id);
  EXPECT_EQ(p->roles, std::vector<std::string>{"auditor"});
}

INSTANTIATE_TEST_SUITE_P(Algorithms, PrivateKeyJwtTest,
                         ::testing::Values(crypto::JwsAlg::kRS256, crypto::JwsAlg::kES256,
                                           crypto::JwsAlg::kEdDSA),
                         [](const auto& param_info) {
                           return std::string(crypto::JwsAlgName(param_info.param));
                         });

TEST_F(OAuthTest, ReplayedAssertionIsRefused) {
  KeyClient c = JwtClient(crypto::JwsAlg::kES256);
  const std::string assertion = Assertion(c, AssertionClaims(c));
  ASSERT_EQ(Token(AssertionBody(assertion)).status, 200);
  EndpointResponse replay = Token(AssertionBody(assertion));
  ExpectError(replay, 401, "invalid_client");
  // No Basic challenge for an assertion failure.
  EXPECT_EQ(Header(replay, "WWW-Authenticate"), "");
  // Still refused until it would have expired anyway.
  clock_.Advance(200'000);
  ExpectError(Token(AssertionBody(assertion)), 401, "invalid_client");
}

TEST_F(OAuthTest, AssertionAudienceMustBeTheTokenEndpointOrIssuer) {
  KeyClient c = JwtClient(crypto::JwsAlg::kES256);
  boost::json::object claims = AssertionClaims(c);
  claims["aud"] = "https://elsewhere.example/token";
  ExpectError(AssertionToken(c, claims), 401, "invalid_client");
  claims["jti"] = crypto::RandomToken(12);
  claims.erase("aud");
  ExpectError(AssertionToken(c, claims), 401, "invalid_client");
  claims["jti"] = crypto::RandomToken(12);
  claims["aud"] = boost::json::array{"https://elsewhere.example", kTokenUrl};
  EXPECT_EQ(AssertionToken(c, claims).status, 200);
  claims["jti"] = crypto::RandomToken(12);
  claims["aud"] = kIss;
  EXPECT_EQ(AssertionToken(c, claims).status, 200);
}

TEST_F(OAuthTest, AssertionLifetimeIsChecked) {
  KeyClient c = JwtClient(crypto::JwsAlg::kEdDSA);
  auto with = [&](std::string_view name, boost::json::value value) {
    boost::json::object claims = AssertionClaims(c);
    claims[name] = std::move(value);
    return AssertionToken(c, claims);
  };
  ExpectError(with("exp", Now() + 3600), 401, "invalid_client");  // too far ahead
  ExpectError(with("exp", Now() - 61), 401, "invalid_client");    // expired
  ExpectError(with("exp", "tomorrow"), 401, "invalid_client");    // not a date
  ExpectError(with("nbf", Now() + 120), 401, "invalid_client");   // not yet valid
  ExpectError(with("iat", Now() + 120), 401, "invalid_client");   // from the future
  EXPECT_EQ(with("exp", Now() + 300 + 60).status, 200);           // the limit + skew
  EXPECT_EQ(with("exp", Now() - 59).status, 200);                 // within the skew
  boost::json::object no_exp = AssertionClaims(c);
  no_exp.erase("exp");
  ExpectError(AssertionToken(c, no_exp), 401, "invalid_client");
  boost::json::object no_jti = AssertionClaims(c);
  no_jti.erase("jti");
  ExpectError(AssertionToken(c, no_jti), 401, "invalid_client");
}

TEST_F(OAuthTest, AssertionMustBeSignedByARegisteredKey) {
  KeyClient c = JwtClient(crypto::JwsAlg::kES256);
  // Unknown kid.
  KeyClient unknown_kid = c;
  unknown_kid.kid = "not-registered";
  ExpectError(AssertionToken(unknown_kid, AssertionClaims(c)), 401, "invalid_client");
  // The registered kid, another key.
  KeyClient wrong_key = c;
  wrong_key.key = std::make_shared<crypto::PrivateKey>(
      std::move(crypto::PrivateKey::Generate(crypto::JwsAlg::kES256)).value());
  ExpectError(AssertionToken(wrong_key, AssertionClaims(c)), 401, "invalid_client");
  // Another algorithm than the registered key's.
  KeyClient wrong_alg = c;
  wrong_alg.key = std::make_shared<crypto::PrivateKey>(
      std::move(crypto::PrivateKey::Generate(crypto::JwsAlg::kEdDSA)).value());
  ExpectError(AssertionToken(wrong_alg, AssertionClaims(c)), 401, "invalid_client");
  // A tampered payload.
  std::string assertion = Assertion(c, AssertionClaims(c));
  const size_t dot = assertion.find('.');
  assertion[dot + 5] = assertion[dot + 5] == 'A' ? 'B' : 'A';
  ExpectError(Token(AssertionBody(assertion)), 401, "invalid_client");
  // Not a JWS at all.
  ExpectError(Token(AssertionBody("abc")), 401, "invalid_client");
}

TEST_F(OAuthTest, AssertionIssuerAndSubjectAreTheClient) {
  KeyClient c = JwtClient(crypto::JwsAlg::kES256);
  boost::json::object claims = AssertionClaims(c);
  claims["sub"] = "someone-else";
  ExpectError(AssertionToken(c, claims), 401, "invalid_client");
  claims = AssertionClaims(c);
  claims["iss"] = "no-such-client";
  claims["sub"] = "no-such-client";
  ExpectError(AssertionToken(c, claims), 401, "invalid_client");
  // client_id, if sent, must name the assertion's client.
  ExpectError(Token(AssertionBody(Assertion(c, AssertionClaims(c)),
                                  "grant_type=client_credentials&client_id=other")),
              400, "invalid_request");
  EXPECT_EQ(Token(AssertionBody(Assertion(c, AssertionClaims(c)),
                                "grant_type=client_credentials&client_id=" + c.client_id))
                .status,
            200);
  // Wrong or missing assertion type.
  ExpectError(Token("grant_type=client_credentials&client_assertion_type=urn%3Ax&"
                    "client_assertion=" +
                    Assertion(c, AssertionClaims(c))),
              401, "invalid_client");
  ExpectError(
      Token("grant_type=client_credentials&client_assertion=" + Assertion(c, AssertionClaims(c))),
      400, "invalid_request");
}

TEST_F(OAuthTest, SecretClientCannotUseAnAssertionAndKeyClientHasNoSecret) {
  KeyClient c = JwtClient(crypto::JwsAlg::kES256);
  ExpectError(Token("grant_type=client_credentials", Basic(c.client_id, "anything")), 401,
              "invalid_client");
  // A disabled key client.
  storage::ClientRecord record = std::move(*store_->GetClient(c.client_id)).value();
  record.client_id = "disabled-key-client";
  record.disabled = true;
  ASSERT_TRUE(store_->PutClient(record).ok());
  KeyClient disabled = c;
  disabled.client_id = "disabled-key-client";
  ExpectError(AssertionToken(disabled, AssertionClaims(disabled)), 401, "invalid_client");
}

// --- revocation (RFC 7009) ---

TEST_F(OAuthTest, RevokingAnAccessTokenTakesEffectAtOnce) {
  boost::json::object login = Login("offline_access user/*.rs");
  const std::string access = Str(login, "access_token");
  const Principal p = verifier_->Verify(access).value();  // cached
  EndpointResponse r =
      Revoke("token=" + access + "&token_type_hint=access_token&client_id=" + public_id_);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(Header(r, "Cache-Control"), "no-store");
  Result<Principal> after = verifier_->Verify(access);
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().message(), "token revoked");
  EXPECT_EQ(guard_->Check(p).message(), "token revoked");
  // Its session ended with it.
  ExpectError(Token(RefreshBody(Str(login, "refresh_token"), public_id_)), 400, "invalid_grant");
  EXPECT_TRUE(HasEvent(SecurityEventType::kTokenRevoked));
  // Revoking again is fine.
  EXPECT_EQ(Revoke("token=" + access + "&client_id=" + public_id_).status, 200);
}

TEST_F(OAuthTest, RevokingASystemToken) {
  KeyClient c = JwtClient(crypto::JwsAlg::kES256);
  EndpointResponse t = AssertionToken(c, AssertionClaims(c));
  const std::string access = Str(Decode(t.body), "access_token");
  ASSERT_TRUE(verifier_->Verify(access).ok());
  EXPECT_EQ(Revoke(AssertionBody(Assertion(c, AssertionClaims(c)), "token=" + access)).status, 200);
  EXPECT_EQ(verifier_->Verify(access).status().message(), "token revoked");
}

TEST_F(OAuthTest, RevokingARefreshTokenEndsTheSession) {
  boost::json::object login = Login("offline_access user/*.rs");
  EndpointResponse r = Revoke("token=" + Str(login, "refresh_token") +
                              "&token_type_hint=refresh_token&client_id=" + public_id_);
  EXPECT_EQ(r.status, 200) << r.body;
  ExpectError(Token(RefreshBody(Str(login, "refresh_token"), public_id_)), 400, "invalid_grant");
  EXPECT_EQ(verifier_->Verify(Str(login, "access_token")).status().message(), "session ended");
}

TEST_F(OAuthTest, RevocationErrors) {
  boost::json::object login = Login("offline_access user/*.rs");
  // Unknown or invalid tokens: 200, nothing to do (RFC 7009 §2.2).
  EXPECT_EQ(Revoke("token=" + crypto::RandomToken(32) + "&client_id=" + public_id_).status, 200);
  EXPECT_EQ(Revoke("token=a.b.c&client_id=" + public_id_).status, 200);
  ExpectError(Revoke("client_id=" + public_id_), 400, "invalid_request");
  ExpectError(Revoke("token=" + Str(login, "refresh_token")), 401, "invalid_client");
  // Another client's tokens are refused and stay valid.
  const std::string other_id = OtherPublicClient("user/*.rs");
  ExpectError(Revoke("token=" + Str(login, "refresh_token") + "&client_id=" + other_id), 400,
              "unauthorized_client");
  ExpectError(Revoke("token=" + Str(login, "access_token") + "&client_id=" + other_id), 400,
              "unauthorized_client");
  EXPECT_TRUE(verifier_->Verify(Str(login, "access_token")).ok());
  EXPECT_EQ(Token(RefreshBody(Str(login, "refresh_token"), public_id_)).status, 200);
}

// --- introspection (RFC 7662) ---

TEST_F(OAuthTest, IntrospectionOfAccessAndRefreshTokens) {
  KeyClient rs = JwtClient(crypto::JwsAlg::kES256);
  auto introspect = [&](const std::string& token) {
    EndpointResponse r =
        Introspect(AssertionBody(Assertion(rs, AssertionClaims(rs)), "token=" + token));
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(Header(r, "Cache-Control"), "no-store");
    return Decode(r.body);
  };
  boost::json::object login = Login("offline_access user/*.rs");

  boost::json::object access = introspect(Str(login, "access_token"));
  EXPECT_EQ(access.at("active"), true);
  EXPECT_EQ(Str(access, "scope"), "offline_access user/*.rs");
  EXPECT_EQ(Str(access, "client_id"), public_id_);
  EXPECT_EQ(Str(access, "sub"), kUserId);
  EXPECT_EQ(Str(access, "token_type"), "Bearer");
  EXPECT_EQ(Str(access, "iss"), kIss);
  EXPECT_EQ(Str(access, "aud"), kAud);
  EXPECT_EQ(access.at("exp").as_int64(), Now() + 300);
  EXPECT_EQ(access.at("iat").as_int64(), Now());

  boost::json::object refresh = introspect(Str(login, "refresh_token"));
  EXPECT_EQ(refresh.at("active"), true);
  EXPECT_EQ(Str(refresh, "token_type"), "refresh_token");
  EXPECT_EQ(Str(refresh, "client_id"), public_id_);
  EXPECT_EQ(Str(refresh, "sub"), kUserId);
  EXPECT_EQ(Str(refresh, "scope"), "offline_access user/*.rs");
  EXPECT_EQ(refresh.at("exp").as_int64(), Now() + 3600);

  const boost::json::object inactive{{"active", false}};
  EXPECT_EQ(introspect(crypto::RandomToken(32)), inactive);
  EXPECT_EQ(introspect("a.b.c"), inactive);
  // An ID token is not an access token.
  EXPECT_EQ(introspect(Str(Login("openid user/*.rs"), "id_token")), inactive);

  // Idle: the refresh token is no longer active; the access token expired too.
  clock_.Advance((config_.session_idle_timeout_s + 1) * 1000);
  EXPECT_EQ(introspect(Str(login, "refresh_token")), inactive);
  EXPECT_EQ(introspect(Str(login, "access_token")), inactive);
}

TEST_F(OAuthTest, IntrospectionReportsRevokedTokensInactive) {
  KeyClient rs = JwtClient(crypto::JwsAlg::kES256);
  boost::json::object login = Login("offline_access user/*.rs");
  ASSERT_EQ(Revoke("token=" + Str(login, "access_token") + "&client_id=" + public_id_).status, 200);
  for (const std::string& token : {Str(login, "access_token"), Str(login, "refresh_token")}) {
    EndpointResponse r =
        Introspect(AssertionBody(Assertion(rs, AssertionClaims(rs)), "token=" + token));
    EXPECT_EQ(r.body, R"({"active":false})");
  }
}

TEST_F(OAuthTest, IntrospectionNeedsAConfidentialClient) {
  boost::json::object login = Login("offline_access user/*.rs");
  const std::string token = Str(login, "access_token");
  ExpectError(Introspect("token=" + token), 401, "invalid_client");
  ExpectError(Introspect("token=" + token + "&client_id=" + public_id_), 401, "invalid_client");
  KeyClient rs = JwtClient(crypto::JwsAlg::kES256);
  ExpectError(Introspect(AssertionBody(Assertion(rs, AssertionClaims(rs)), "x=1")), 400,
              "invalid_request");
  // With a secret (client_secret_basic) it works.
  NewClient secret = SecretClient("system/*.rs");
  EndpointResponse r = Introspect("token=" + token, Basic(secret.client_id, secret.client_secret));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Decode(r.body).at("active"), true);
}

// --- discovery ---

TEST_F(OAuthTest, OpenIdConfiguration) {
  boost::json::object doc = Decode(endpoints_->OpenIdConfigurationJson());
  EXPECT_EQ(Str(doc, "issuer"), kIss);
  EXPECT_EQ(Str(doc, "authorization_endpoint"), std::string(kIss) + "/oauth2/authorize");
  EXPECT_EQ(Str(doc, "token_endpoint"), kTokenUrl);
  EXPECT_EQ(Str(doc, "jwks_uri"), std::string(kIss) + "/oauth2/jwks");
  EXPECT_EQ(Str(doc, "revocation_endpoint"), std::string(kIss) + "/oauth2/revoke");
  EXPECT_EQ(Str(doc, "introspection_endpoint"), std::string(kIss) + "/oauth2/introspect");
  EXPECT_EQ(doc.at("response_types_supported"), (boost::json::array{"code"}));
  EXPECT_EQ(doc.at("response_modes_supported"), (boost::json::array{"query"}));
  EXPECT_EQ(doc.at("grant_types_supported"),
            (boost::json::array{"authorization_code", "refresh_token", "client_credentials"}));
  EXPECT_EQ(doc.at("code_challenge_methods_supported"), (boost::json::array{"S256"}));
  EXPECT_EQ(doc.at("token_endpoint_auth_methods_supported"),
            (boost::json::array{"client_secret_basic", "private_key_jwt", "none"}));
  EXPECT_EQ(doc.at("token_endpoint_auth_signing_alg_values_supported"),
            (boost::json::array{"RS256", "ES256", "EdDSA"}));
  EXPECT_EQ(doc.at("id_token_signing_alg_values_supported"), (boost::json::array{"ES256"}));
  EXPECT_EQ(doc.at("subject_types_supported"), (boost::json::array{"public"}));
  EXPECT_EQ(doc.at("authorization_response_iss_parameter_supported"), true);
  const boost::json::array& scopes = doc.at("scopes_supported").as_array();
  for (std::string_view s : {"openid", "fhirUser", "offline_access", "online_access",
                             "patient/*.rs", "user/*.rs", "system/*.rs"}) {
    EXPECT_NE(std::find(scopes.begin(), scopes.end(), boost::json::value(s)), scopes.end()) << s;
  }
  const boost::json::array& claims = doc.at("claims_supported").as_array();
  for (std::string_view c : {"sub", "iss", "auth_time", "amr", "nonce", "fhirUser"}) {
    EXPECT_NE(std::find(claims.begin(), claims.end(), boost::json::value(c)), claims.end()) << c;
  }
  // No implicit flow, no password grant advertised.
  EXPECT_EQ(endpoints_->OpenIdConfigurationJson().find("password"), std::string::npos);
  EXPECT_EQ(endpoints_->OpenIdConfigurationJson().find("token id_token"), std::string::npos);
}

TEST_F(OAuthTest, SmartConfiguration) {
  boost::json::object doc = Decode(endpoints_->SmartConfigurationJson());
  EXPECT_EQ(Str(doc, "issuer"), kIss);
  EXPECT_EQ(Str(doc, "jwks_uri"), std::string(kIss) + "/oauth2/jwks");
  EXPECT_EQ(Str(doc, "authorization_endpoint"), std::string(kIss) + "/oauth2/authorize");
  EXPECT_EQ(Str(doc, "token_endpoint"), kTokenUrl);
  EXPECT_EQ(Str(doc, "introspection_endpoint"), std::string(kIss) + "/oauth2/introspect");
  EXPECT_EQ(Str(doc, "revocation_endpoint"), std::string(kIss) + "/oauth2/revoke");
  EXPECT_EQ(doc.at("code_challenge_methods_supported"), (boost::json::array{"S256"}));
  EXPECT_EQ(doc.at("response_types_supported"), (boost::json::array{"code"}));
  EXPECT_EQ(doc.at("token_endpoint_auth_methods_supported"),
            (boost::json::array{"client_secret_basic", "private_key_jwt", "none"}));
  EXPECT_EQ(doc.at("token_endpoint_auth_signing_alg_values_supported"),
            (boost::json::array{"RS256", "ES256", "EdDSA"}));
  EXPECT_EQ(doc.at("grant_types_supported"),
            (boost::json::array{"authorization_code", "refresh_token", "client_credentials"}));
  EXPECT_EQ(doc.at("capabilities"),
            (boost::json::array{"launch-standalone", "client-public",
                                "client-confidential-symmetric", "client-confidential-asymmetric",
                                "context-standalone-patient", "permission-offline",
                                "permission-online", "permission-patient", "permission-user",
                                "permission-v1", "permission-v2", "sso-openid-connect"}));
  EXPECT_TRUE(doc.at("scopes_supported").is_array());
}

}  // namespace
}  // namespace phigate::auth
