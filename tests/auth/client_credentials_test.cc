// The client credentials grant at the token endpoint (RFC 6749 §4.4) with
// client_secret_basic, and client registration (client_registry.h). private_key_jwt and
// the other grants: oauth_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <memory>
#include <string>

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
#include "crypto/password_hash.h"
#include "crypto/public_key.h"
#include "crypto/signing_key.h"
#include "storage/sqlite/sqlite_store.h"

namespace phigate::auth {
namespace {

constexpr std::string_view kIss = "https://phigate.test:8443";
constexpr std::string_view kAud = "https://phigate.test:8443/fhir";
constexpr std::string_view kForm = "application/x-www-form-urlencoded";
constexpr std::string_view kRegistered = "system/Patient.cruds system/Observation.rs";
constexpr std::string_view kGrant = "grant_type=client_credentials";

// One fixture: a fresh SQLite store in its own temp dir, one registered client.
class TokenEndpointTest : public AuthTestEnv {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(OpenStore("auth", /*store_reads_fake_clock=*/false));
    guard_ = std::make_unique<SessionGuard>(*store_, clock_);
    verifier_ = std::make_unique<TokenVerifier>(key_, std::string(kIss), std::string(kAud), 60,
                                                clock_, 100, guard_.get());
    config_.issuer = std::string(kIss);
    config_.audience = std::string(kAud);
    endpoints_ = std::make_unique<OAuthEndpoints>(*store_, issuer_, codes_, *guard_, *verifier_,
                                                  clock_, config_, std::string(kIss), events_);
    Result<NewClient> client = CreateClient(*store_, "test app", kRegistered, clock_);
    ASSERT_TRUE(client.ok()) << client.status().message();
    client_ = client.value();
  }

  static std::string Basic(std::string_view id, std::string_view secret) {
    // RFC 6749 §2.3.1: form-urlencode each half, then RFC 7617 Basic.
    return "Basic " + Base64Encode(PercentEncode(id) + ":" + PercentEncode(secret));
  }
  std::string GoodBasic() const { return Basic(client_.client_id, client_.client_secret); }

  EndpointResponse Post(std::string_view authorization, std::string_view body,
                        std::string_view content_type = kForm) const {
    EndpointRequest request;
    request.method = "POST";
    request.authorization = authorization;
    request.content_type = content_type;
    request.body = body;
    request.remote_address = "192.0.2.1";
    return endpoints_->Token(request);
  }

  static bool Challenged(const EndpointResponse& r) {
    for (const auto& [name, value] : r.headers) {
      if (name == "WWW-Authenticate") return value == R"(Basic realm="phigate")";
    }
    return false;
  }

  // Asserts an RFC 6749 §5.2 error response, and that nothing secret was echoed.
  void ExpectError(const EndpointResponse& r, int http_status, std::string_view error) const {
    EXPECT_EQ(r.status, http_status) << r.body;
    EXPECT_EQ(Challenged(r), http_status == 401);
    boost::system::error_code ec;
    boost::json::value body = boost::json::parse(r.body, ec);
    ASSERT_FALSE(ec) << r.body;
    ASSERT_TRUE(body.is_object());
    EXPECT_EQ(body.as_object().size(), 2u) << r.body;
    EXPECT_EQ(body.at("error").as_string(), error);
    EXPECT_TRUE(body.at("error_description").is_string());
    EXPECT_EQ(r.body.find(client_.client_secret), std::string::npos);
    EXPECT_EQ(r.body.find(client_.client_id), std::string::npos);
  }

  // Asserts success and returns the verified principal of the issued token.
  Principal ExpectSuccess(const EndpointResponse& r, std::string_view scope) const {
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_FALSE(Challenged(r));
    boost::json::object body = boost::json::parse(r.body).as_object();
    EXPECT_EQ(body.size(), 4u);
    EXPECT_EQ(body.at("token_type").as_string(), "Bearer");
    EXPECT_EQ(body.at("expires_in").as_int64(), 900);
    EXPECT_EQ(body.at("scope").as_string(), scope);
    Result<Principal> p = verifier_->Verify(body.at("access_token").as_string());
    EXPECT_TRUE(p.ok()) << p.status().message();
    return p.ok() ? p.value() : Principal();
  }

  crypto::SigningKey key_ = std::move(crypto::SigningKey::Generate()).value();
  TokenIssuer issuer_{key_, std::string(kIss), std::string(kAud), 900, 300, clock_};
  AuthorizationCodes codes_{clock_};
  std::unique_ptr<SessionGuard> guard_;
  std::unique_ptr<TokenVerifier> verifier_;
  std::unique_ptr<OAuthEndpoints> endpoints_;
  NewClient client_;
};

TEST_F(TokenEndpointTest, HappyPathIssuesAVerifiableTokenWithEveryClaim) {
  EndpointResponse r = Post(GoodBasic(), kGrant);
  ASSERT_EQ(r.status, 200) << r.body;
  Principal p = ExpectSuccess(r, kRegistered);
  EXPECT_EQ(p.client_id, client_.client_id);
  EXPECT_EQ(p.subject, client_.client_id);

  // Decode the JWT by hand: header and every claim.
  boost::json::object body = boost::json::parse(r.body).as_object();
  std::string token(body.at("access_token").as_string());
  const size_t dot1 = token.find('.');
  const size_t dot2 = token.rfind('.');
  ASSERT_NE(dot1, dot2);
  boost::json::object header =
      boost::json::parse(*Base64UrlDecode(token.substr(0, dot1))).as_object();
  EXPECT_EQ(header.at("alg").as_string(), "ES256");
  EXPECT_EQ(header.at("typ").as_string(), "at+jwt");
  EXPECT_EQ(header.at("kid").as_string(), key_.kid());
  EXPECT_EQ(header.size(), 3u);
  boost::json::object claims =
      boost::json::parse(*Base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1))).as_object();
  EXPECT_EQ(claims.at("iss").as_string(), kIss);
  EXPECT_EQ(claims.at("aud").as_string(), kAud);
  EXPECT_EQ(claims.at("sub").as_string(), client_.client_id);
  EXPECT_EQ(claims.at("client_id").as_string(), client_.client_id);
  EXPECT_EQ(claims.at("scope").as_string(), kRegistered);
  EXPECT_EQ(claims.at("jti").as_string().size(), 22u);
  EXPECT_EQ(claims.at("iat").as_int64(), clock_.NowSeconds());
  const int64_t lifetime = claims.at("exp").as_int64() - claims.at("iat").as_int64();
  EXPECT_EQ(lifetime, 900);
  EXPECT_LE(lifetime, 900);
  EXPECT_EQ(claims.at("roles"), boost::json::value(boost::json::array{}));  // none registered
  EXPECT_EQ(claims.size(), 9u);
  EXPECT_EQ(r.body.find(client_.client_secret), std::string::npos);
}

TEST_F(TokenEndpointTest, ContentTypeParametersAndCaseAreAccepted) {
  ExpectSuccess(Post(GoodBasic(), kGrant, "Application/X-WWW-Form-URLEncoded; charset=UTF-8"),
                kRegistered);
  ExpectSuccess(Post("basic  " + GoodBasic().substr(6), kGrant), kRegistered);
}

TEST_F(TokenEndpointTest, WrongSecretIsInvalidClient) {
  ExpectError(Post(Basic(client_.client_id, client_.client_secret + "x"), kGrant), 401,
              "invalid_client");
  ExpectError(Post(Basic(client_.client_id, crypto::RandomToken(32)), kGrant), 401,
              "invalid_client");
}

TEST_F(TokenEndpointTest, UnknownClientIsInvalidClient) {
  ExpectError(Post(Basic(crypto::RandomToken(16), client_.client_secret), kGrant), 401,
              "invalid_client");
}

TEST_F(TokenEndpointTest, UnknownClientCostsAnArgon2idCheckToo) {
  // Without the dummy-hash check an unknown id answers in microseconds, a known one in
  // tens of milliseconds: a client-id oracle. Compare the fastest of a few runs of each;
  // the real gap without the dummy check is > 100x, so a 4x margin keeps this stable.
  auto fastest = [this](const std::string& authorization) {
    auto best = std::chrono::steady_clock::duration::max();
    for (int i = 0; i < 3; ++i) {
      const auto start = std::chrono::steady_clock::now();
      EXPECT_EQ(Post(authorization, kGrant).status, 401);
      best = std::min(best, std::chrono::steady_clock::now() - start);
    }
    return best;
  };
  const auto known = fastest(Basic(client_.client_id, "wrong-secret"));
  const auto unknown = fastest(Basic("no-such-client", "wrong-secret"));
  EXPECT_GE(unknown * 4, known);
}

TEST_F(TokenEndpointTest, DisabledClientIsInvalidClientEvenWithTheRightSecret) {
  storage::ClientRecord record;
  record.client_id = "disabled-client";
  record.name = "off";
  record.secret_hash = crypto::HashPassword("the-secret").value();
  record.scope = "system/*.rs";
  record.disabled = true;
  ASSERT_TRUE(store_->PutClient(record).ok());
  ExpectError(Post(Basic("disabled-client", "the-secret"), kGrant), 401, "invalid_client");
}

static std::string HeaderOf(const EndpointResponse& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return {};
}

// Regression (security review M2): failed client authentications are throttled per
// address like failed logins (same keys: auth.address_max_failures, address_window_s), so
// Basic headers cannot buy unlimited Argon2id runs.
TEST_F(TokenEndpointTest, AnAddressWithTooManyClientAuthFailuresGets429) {
  const std::string wrong = Basic(client_.client_id, "not the secret");
  // A success in between gives its attempt back.
  ExpectSuccess(Post(GoodBasic(), kGrant), kRegistered);
  for (int i = 0; i < AuthConfig{}.address_max_failures; ++i) {
    ExpectError(Post(wrong, kGrant), 401, "invalid_client");
  }
  EndpointResponse throttled = Post(GoodBasic(), kGrant);
  ExpectError(throttled, 429, "invalid_client");
  EXPECT_EQ(boost::json::parse(throttled.body).at("error_description").as_string(),
            "too many failed attempts");
  EXPECT_EQ(HeaderOf(throttled, "Retry-After"), "300");
  EXPECT_EQ(events_.events().back().type, SecurityEventType::kAddressThrottled);
  EXPECT_EQ(events_.events().back().address, "192.0.2.1");
  // Another address is not affected.
  const std::string good = GoodBasic();  // EndpointRequest holds views
  EndpointRequest other;
  other.method = "POST";
  other.authorization = good;
  other.content_type = kForm;
  other.body = kGrant;
  other.remote_address = "192.0.2.99";
  ExpectSuccess(endpoints_->Token(other), kRegistered);
  // The window slides.
  clock_.Advance(300'000);
  ExpectSuccess(Post(GoodBasic(), kGrant), kRegistered);
}

// Regression (security review M2): at most SecretCheckSlots::Process().capacity() Argon2id
// checks at once; beyond that, 503 at once instead of queueing on the io threads.
TEST_F(TokenEndpointTest, SecretChecksBeyondTheProcessCapAreRefusedAt503) {
  SecretCheckSlots& slots = SecretCheckSlots::Process();
  ASSERT_GE(slots.capacity(), 2);
  int held = 0;
  while (slots.TryAcquire()) ++held;
  EXPECT_EQ(held, slots.capacity());
  EndpointResponse busy = Post(GoodBasic(), kGrant);
  for (int i = 0; i < held; ++i) slots.Release();
  ExpectError(busy, 503, "temporarily_unavailable");
  EXPECT_EQ(HeaderOf(busy, "Retry-After"), "1");
  // Not a failure of the client: it does not count against the address, and works again.
  ExpectSuccess(Post(GoodBasic(), kGrant), kRegistered);
}

TEST_F(TokenEndpointTest, MissingOrMalformedBasicIsInvalidClient) {
  ExpectError(Post("", kGrant), 401, "invalid_client");
  ExpectError(Post("Bearer " + client_.client_secret, kGrant), 401, "invalid_client");
  ExpectError(Post("Basic", kGrant), 401, "invalid_client");
  ExpectError(Post("Basic !!!!", kGrant), 401, "invalid_client");
  ExpectError(Post("Basicx " + GoodBasic().substr(6), kGrant), 401, "invalid_client");
  // No colon, empty id, empty secret.
  ExpectError(Post("Basic " + Base64Encode(client_.client_id), kGrant), 401, "invalid_client");
  ExpectError(Post("Basic " + Base64Encode(":" + client_.client_secret), kGrant), 401,
              "invalid_client");
  ExpectError(Post("Basic " + Base64Encode(client_.client_id + ":"), kGrant), 401,
              "invalid_client");
  // A malformed percent escape inside Basic.
  ExpectError(Post("Basic " + Base64Encode(client_.client_id + ":%zz"), kGrant), 401,
              "invalid_client");
}

TEST_F(TokenEndpointTest, SecretInTheBodyIsRefused) {
  std::string body = std::string(kGrant) + "&client_id=" + client_.client_id +
                     "&client_secret=" + client_.client_secret;
  ExpectError(Post("", body), 401, "invalid_client");            // client_secret_post
  ExpectError(Post(GoodBasic(), body), 400, "invalid_request");  // two methods (§2.3)
}

TEST_F(TokenEndpointTest, ClientIdInTheBodyMustMatchBasic) {
  ExpectSuccess(Post(GoodBasic(), std::string(kGrant) + "&client_id=" + client_.client_id),
                kRegistered);
  ExpectError(Post(GoodBasic(), std::string(kGrant) + "&client_id=someone-else"), 400,
              "invalid_request");
}

TEST_F(TokenEndpointTest, FormEncodedIdAndSecretInBasicAreDecoded) {
  // RFC 6749 §2.3.1: the id and secret are form-urlencoded before Basic encoding.
  const std::string id = "app:one/é";
  const std::string secret = "p@ss word+/:%=&é";
  storage::ClientRecord record;
  record.client_id = id;
  record.name = "encoded";
  record.secret_hash = crypto::HashPassword(secret).value();
  record.scope = "system/Patient.rs";
  ASSERT_TRUE(store_->PutClient(record).ok());
  Principal p = ExpectSuccess(Post(Basic(id, secret), kGrant), "system/Patient.rs");
  EXPECT_EQ(p.client_id, id);
  // '+' in the encoded form is a space, so a raw '+' in the secret does not match.
  const std::string raw = "Basic " + Base64Encode(PercentEncode(id) + ":" + "p@ss%20word+/:%25=&é");
  ExpectError(Post(raw, kGrant), 401, "invalid_client");
}

TEST_F(TokenEndpointTest, PercentEncodedUnreservedCharactersInBasicDecode) {
  std::string id;
  for (char c : client_.client_id) id += "%" + HexEncode(std::string(1, c));
  ExpectSuccess(Post("Basic " + Base64Encode(id + ":" + client_.client_secret), kGrant),
                kRegistered);
}

TEST_F(TokenEndpointTest, WrongGrantTypeIsUnsupported) {
  ExpectError(Post(GoodBasic(), "grant_type=password&username=a&password=b"), 400,
              "unsupported_grant_type");
  ExpectError(Post(GoodBasic(), "grant_type=implicit"), 400, "unsupported_grant_type");
  ExpectError(Post(GoodBasic(), "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
              400, "unsupported_grant_type");
  ExpectError(Post(GoodBasic(), "grant_type=Client_Credentials"), 400, "unsupported_grant_type");
}

TEST_F(TokenEndpointTest, MissingGrantTypeIsInvalidRequest) {
  ExpectError(Post(GoodBasic(), ""), 400, "invalid_request");
  ExpectError(Post(GoodBasic(), "grant_type="), 400, "invalid_request");
  ExpectError(Post(GoodBasic(), "scope=system%2FPatient.rs"), 400, "invalid_request");
}

TEST_F(TokenEndpointTest, WrongContentTypeIsInvalidRequest) {
  ExpectError(Post(GoodBasic(), R"({"grant_type":"client_credentials"})", "application/json"), 400,
              "invalid_request");
  ExpectError(Post(GoodBasic(), kGrant, ""), 400, "invalid_request");
  ExpectError(Post(GoodBasic(), kGrant, "multipart/form-data"), 400, "invalid_request");
  ExpectError(Post(GoodBasic(), kGrant, "application/x-www-form-urlencodedx"), 400,
              "invalid_request");
}

TEST_F(TokenEndpointTest, MalformedOrOversizedBodyIsInvalidRequest) {
  ExpectError(Post(GoodBasic(), "grant_type=client%zzcredentials"), 400, "invalid_request");
  ExpectError(Post(GoodBasic(), "grant_type=client_credentials&x=%00"), 400, "invalid_request");
  ExpectError(Post(GoodBasic(),
                   std::string(kGrant) + "&pad=" + std::string(kMaxTokenRequestBodyBytes, 'a')),
              400, "invalid_request");
}

TEST_F(TokenEndpointTest, DuplicateParametersAreInvalidRequest) {
  ExpectError(Post(GoodBasic(), "grant_type=client_credentials&grant_type=client_credentials"), 400,
              "invalid_request");
  ExpectError(
      Post(GoodBasic(), std::string(kGrant) + "&scope=system%2FPatient.r&scope=system%2FPatient.r"),
      400, "invalid_request");
  ExpectError(Post(GoodBasic(), std::string(kGrant) + "&scope=&scope="), 400, "invalid_request");
}

TEST_F(TokenEndpointTest, UnknownParametersAreIgnored) {
  // RFC 6749 §3.2.
  ExpectSuccess(Post(GoodBasic(), std::string(kGrant) + "&resource=x&audience=y"), kRegistered);
}

TEST_F(TokenEndpointTest, RequestedScopeNarrowsTheGrant) {
  Principal p = ExpectSuccess(Post(GoodBasic(), std::string(kGrant) + "&scope=system%2FPatient.rs"),
                              "system/Patient.rs");
  EXPECT_TRUE(p.scopes.Allows("Patient", Interaction::kRead));
  EXPECT_TRUE(p.scopes.Allows("Patient", Interaction::kSearch));
  EXPECT_FALSE(p.scopes.Allows("Patient", Interaction::kCreate));
  EXPECT_FALSE(p.scopes.Allows("Observation", Interaction::kRead));

  ExpectSuccess(Post(GoodBasic(),
                     std::string(kGrant) + "&scope=system/Observation.read+system/Patient.write"),
                "system/Observation.read system/Patient.write");
  // An empty scope counts as absent (RFC 6749 §3.1): the registered scope is granted.
  ExpectSuccess(Post(GoodBasic(), std::string(kGrant) + "&scope="), kRegistered);
}

TEST_F(TokenEndpointTest, ScopeBeyondRegistrationIsInvalidScope) {
  for (std::string_view scope : {"system%2FObservation.c", "system%2FEncounter.r", "system%2F*.r",
                                 "system%2FPatient.r+openid"}) {
    SCOPED_TRACE(scope);
    ExpectError(Post(GoodBasic(), std::string(kGrant) + "&scope=" + std::string(scope)), 400,
                "invalid_scope");
  }
}

TEST_F(TokenEndpointTest, MalformedScopeIsInvalidScope) {
  for (std::string_view scope : {"user%2FPatient.r", "patient%2F*.read", "system%2FPatient.sr",
                                 "system%2FPatient.r++x", "system%2Fpatient.r"}) {
    SCOPED_TRACE(scope);
    ExpectError(Post(GoodBasic(), std::string(kGrant) + "&scope=" + std::string(scope)), 400,
                "invalid_scope");
  }
}

TEST_F(TokenEndpointTest, ErrorBodiesDoNotEchoTheSubmittedSecret) {
  const std::string secret = "Sup3r-Secret-Value-" + crypto::RandomToken(8);
  const std::string authz = Basic(client_.client_id, secret);
  const std::string results[] = {
      Post(authz, kGrant).body,
      Post(authz, "grant_type=password&password=" + secret).body,
      Post(authz, kGrant, "text/plain").body,
      Post(authz, std::string(kGrant) + "&scope=" + secret).body,
      Post(authz, std::string(kGrant) + "&client_secret=" + secret).body,
      Post(Basic(secret, secret), kGrant).body,
  };
  for (const std::string& body : results) {
    EXPECT_EQ(body.find(secret), std::string::npos) << body;
    EXPECT_EQ(body.find("Sup3r"), std::string::npos) << body;
  }
}

TEST_F(TokenEndpointTest, CreateClientStoresOnlyTheArgon2idHash) {
  Result<std::optional<storage::ClientRecord>> got = store_->GetClient(client_.client_id);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got.value().has_value());
  const storage::ClientRecord& record = **got;
  EXPECT_EQ(record.name, "test app");
  EXPECT_EQ(record.scope, kRegistered);
  EXPECT_EQ(record.created_ms, clock_.NowMillis());
  EXPECT_FALSE(record.disabled);
  EXPECT_TRUE(record.secret_hash.starts_with("$argon2id$")) << record.secret_hash;
  EXPECT_EQ(record.secret_hash.find(client_.client_secret), std::string::npos);
  EXPECT_TRUE(crypto::VerifyPassword(record.secret_hash, client_.client_secret));
  EXPECT_EQ(client_.client_id.size(), 22u);      // 16 random bytes
  EXPECT_EQ(client_.client_secret.size(), 43u);  // 32 random bytes
}

TEST_F(TokenEndpointTest, CreateClientNormalizesTheScope) {
  Result<NewClient> c =
      CreateClient(*store_, "n", "system/*.rs system/*.rs offline_access", clock_);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*store_->GetClient(c->client_id))->scope, "system/*.rs offline_access");
}

TEST_F(TokenEndpointTest, CreateClientValidatesNameAndScope) {
  auto expect_invalid = [this](std::string_view name, std::string_view scope) {
    Result<NewClient> c = CreateClient(*store_, name, scope, clock_);
    ASSERT_FALSE(c.ok()) << "accepted name '" << name << "' scope '" << scope << "'";
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  };
  expect_invalid("", "system/*.rs");
  expect_invalid(std::string(201, 'a'), "system/*.rs");
  expect_invalid("tab\there", "system/*.rs");
  expect_invalid("new\nline", "system/*.rs");
  expect_invalid("caf\xc3\xa9", "system/*.rs");
  expect_invalid("ok", "");
  expect_invalid("ok", "system/Patient.sr");
  expect_invalid("ok", "user/Patient.rs");
  expect_invalid("ok", "openid offline_access");  // grants no interaction
  EXPECT_TRUE(CreateClient(*store_, std::string(200, '~'), "system/*.rs", clock_).ok());
  EXPECT_TRUE(CreateClient(*store_, "a b c", "system/*.rs", clock_).ok());
}

TEST_F(TokenEndpointTest, SystemClientCannotUseTheCodeGrant) {
  ExpectError(Post(GoodBasic(),
                   "grant_type=authorization_code&code=x&code_verifier=" + std::string(43, 'a')),
              400, "unauthorized_client");
}

TEST_F(TokenEndpointTest, RolesOfTheClientAreInTheToken) {
  ClientRegistration reg;
  reg.name = "lab";
  reg.scope = "system/Observation.cud";
  reg.roles = "clinician,billing";
  Result<NewClient> c = CreateClient(*store_, reg, clock_);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ((*store_->GetClient(c->client_id))->roles, "clinician,billing");
  Principal p =
      ExpectSuccess(Post(Basic(c->client_id, c->client_secret), kGrant), "system/Observation.cud");
  EXPECT_EQ(p.roles, (std::vector<std::string>{"clinician", "billing"}));
}

TEST_F(TokenEndpointTest, SuccessIsNotCached) {
  EndpointResponse r = Post(GoodBasic(), kGrant);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json; charset=utf-8");
  std::vector<std::pair<std::string, std::string>> want = {{"Cache-Control", "no-store"},
                                                           {"Pragma", "no-cache"}};
  EXPECT_EQ(r.headers, want);
}

// --- registration (client_registry.h) ---

TEST(RedirectUriTest, OnlyHttpsOrLoopbackWithoutFragment) {
  for (std::string_view ok :
       {"https://app.example/cb", "https://app.example:8443/a/b?x=1", "https://app.example",
        "http://127.0.0.1/cb", "http://127.0.0.1:51004/cb", "http://localhost:3000/callback",
        "http://[::1]:8080/cb", "http://localhost"}) {
    EXPECT_TRUE(ValidateRedirectUri(ok).ok()) << ok;
  }
  for (std::string_view bad :
       {"", "http://app.example/cb", "https://app.example/cb#frag", "https://app.example/#",
        "app.example/cb", "/cb", "https:///cb", "https://user@app.example/cb",
        "http://127.0.0.1.evil.example/cb", "http://localhost.evil.example/cb",
        "http://localhost:/cb", "http://localhost:80a/cb", "com.example.app:/cb",
        "javascript:alert(1)", "HTTPS://app.example/cb", "https://app.example/a b",
        "https://app.example/\x01", "ftp://app.example/cb"}) {
    Status s = ValidateRedirectUri(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ValidateRedirectUri("https://app.example/" + std::string(2040, 'a')).ok());
}

TEST_F(TokenEndpointTest, PublicAppRegistration) {
  ClientRegistration reg;
  reg.name = "spa";
  reg.scope = "openid fhirUser offline_access patient/*.rs";
  reg.redirect_uris = {"https://spa.example/cb", "http://localhost:3000/cb"};
  reg.is_public = true;
  Result<NewClient> c = CreateClient(*store_, reg, clock_);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(c->client_secret.empty());
  EXPECT_EQ(c->auth_method, "none");
  const storage::ClientRecord record = std::move(*store_->GetClient(c->client_id)).value();
  EXPECT_EQ(record.auth_method, "none");
  EXPECT_EQ(record.secret_hash, "");
  EXPECT_EQ(record.redirect_uris, "https://spa.example/cb http://localhost:3000/cb");
  EXPECT_EQ(record.scope, "openid fhirUser offline_access patient/*.rs");

  auto expect_invalid = [this](ClientRegistration r) {
    Result<NewClient> bad = CreateClient(*store_, r, clock_);
    ASSERT_FALSE(bad.ok()) << r.scope;
    EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  };
  ClientRegistration no_uri = reg;
  no_uri.redirect_uris.clear();
  expect_invalid(no_uri);  // a public client needs a redirect URI
  ClientRegistration system = reg;
  system.scope = "system/*.rs user/*.rs";
  expect_invalid(system);  // cannot use client credentials
  ClientRegistration no_resource = reg;
  no_resource.scope = "openid offline_access";
  expect_invalid(no_resource);
  ClientRegistration bad_uri = reg;
  bad_uri.redirect_uris = {"http://app.example/cb"};
  expect_invalid(bad_uri);
  ClientRegistration repeated = reg;
  repeated.redirect_uris = {"https://spa.example/cb", "https://spa.example/cb"};
  expect_invalid(repeated);
  ClientRegistration with_keys = reg;
  with_keys.jwks = R"({"keys":[]})";
  expect_invalid(with_keys);
  ClientRegistration bad_roles = reg;
  bad_roles.roles = "superuser";
  expect_invalid(bad_roles);
}

TEST_F(TokenEndpointTest, UserAndPatientScopesNeedARedirectUri) {
  for (std::string_view scope : {"user/*.rs", "system/*.rs patient/*.rs"}) {
    Result<NewClient> c = CreateClient(*store_, "no uri", scope, clock_);
    ASSERT_FALSE(c.ok()) << scope;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  }
  // With one, a confidential app may hold all three contexts.
  ClientRegistration app;
  app.name = "app";
  app.scope = "user/*.rs patient/*.rs system/Patient.rs openid";
  app.redirect_uris = {"https://app.example/cb"};
  Result<NewClient> c = CreateClient(*store_, app, clock_);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->auth_method, "client_secret_basic");
  EXPECT_EQ(c->client_secret.size(), 43u);
}

TEST_F(TokenEndpointTest, KeyClientRegistration) {
  crypto::PrivateKey key = std::move(crypto::PrivateKey::Generate(crypto::JwsAlg::kEdDSA)).value();
  ClientRegistration reg;
  reg.name = "backend";
  reg.scope = "system/*.rs";
  reg.jwks = R"({"keys":[)" + key.PublicJwkJson("k1") + "]}";
  Result<NewClient> c = CreateClient(*store_, reg, clock_);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(c->client_secret.empty());
  EXPECT_EQ(c->auth_method, "private_key_jwt");
  const storage::ClientRecord record = std::move(*store_->GetClient(c->client_id)).value();
  EXPECT_EQ(record.jwks, reg.jwks);
  EXPECT_EQ(record.secret_hash, "");
  // It has no secret to present.
  ExpectError(Post(Basic(c->client_id, "guess"), kGrant), 401, "invalid_client");

  for (
      std::string_view jwks :
      {R"({"keys":[]})", R"({"keys":[{"kty":"oct","k":"c2VjcmV0"}]})", "not json",
       R"({"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]})"}) {
    ClientRegistration bad = reg;
    bad.jwks = std::string(jwks);
    Result<NewClient> refused = CreateClient(*store_, bad, clock_);
    ASSERT_FALSE(refused.ok()) << jwks;
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
    // Never key material in the message.
    EXPECT_EQ(refused.status().message().find("nWGxne"), std::string::npos);
  }
}

}  // namespace
}  // namespace phigate::auth
