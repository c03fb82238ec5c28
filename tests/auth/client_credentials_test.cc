#include "auth/client_credentials.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "auth/client_registry.h"
#include "auth/jwt.h"
#include "auth/token_issuer.h"
#include "auth/token_verifier.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/url.h"
#include "crypto/crypto.h"
#include "crypto/password_hash.h"
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
class TokenEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("phigate-auth-test-" + crypto::RandomToken(12));
    std::filesystem::create_directory(dir_);
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all);
    storage::SqliteOptions options;
    options.path = (dir_ / "phigate.db").string();
    options.read_connections = 1;
    Result<std::unique_ptr<storage::Store>> store = storage::OpenSqliteStore(options);
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(store).value();
    Result<NewClient> client = CreateClient(*store_, "test app", kRegistered, clock_);
    ASSERT_TRUE(client.ok()) << client.status().message();
    client_ = client.value();
  }

  void TearDown() override {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static std::string Basic(std::string_view id, std::string_view secret) {
    // RFC 6749 §2.3.1: form-urlencode each half, then RFC 7617 Basic.
    return "Basic " + Base64Encode(PercentEncode(id) + ":" + PercentEncode(secret));
  }
  std::string GoodBasic() const { return Basic(client_.client_id, client_.client_secret); }

  TokenEndpointResult Post(std::string_view authorization, std::string_view body,
                           std::string_view content_type = kForm) const {
    return HandleTokenRequest(*store_, issuer_, authorization, content_type, body);
  }

  // Asserts an RFC 6749 §5.2 error response, and that nothing secret was echoed.
  void ExpectError(const TokenEndpointResult& r, int http_status, std::string_view error) const {
    EXPECT_EQ(r.http_status, http_status) << r.json_body;
    EXPECT_EQ(r.www_authenticate_basic, http_status == 401);
    boost::system::error_code ec;
    boost::json::value body = boost::json::parse(r.json_body, ec);
    ASSERT_FALSE(ec) << r.json_body;
    ASSERT_TRUE(body.is_object());
    EXPECT_EQ(body.as_object().size(), 2u) << r.json_body;
    EXPECT_EQ(body.at("error").as_string(), error);
    EXPECT_TRUE(body.at("error_description").is_string());
    EXPECT_EQ(r.json_body.find(client_.client_secret), std::string::npos);
    EXPECT_EQ(r.json_body.find(client_.client_id), std::string::npos);
  }

  // Asserts success and returns the verified principal of the issued token.
  Principal ExpectSuccess(const TokenEndpointResult& r, std::string_view scope) const {
    EXPECT_EQ(r.http_status, 200) << r.json_body;
    EXPECT_FALSE(r.www_authenticate_basic);
    boost::json::object body = boost::json::parse(r.json_body).as_object();
    EXPECT_EQ(body.size(), 4u);
    EXPECT_EQ(body.at("token_type").as_string(), "Bearer");
    EXPECT_EQ(body.at("expires_in").as_int64(), 900);
    EXPECT_EQ(body.at("scope").as_string(), scope);
    Result<Principal> p = verifier_.Verify(body.at("access_token").as_string());
    EXPECT_TRUE(p.ok()) << p.status().message();
    return p.ok() ? p.value() : Principal();
  }

  std::filesystem::path dir_;
  std::unique_ptr<storage::Store> store_;
  FakeClock clock_{1'800'000'000'000};
  crypto::SigningKey key_ = std::move(crypto::SigningKey::Generate()).value();
  TokenIssuer issuer_{key_, std::string(kIss), std::string(kAud), 900, clock_};
  TokenVerifier verifier_{key_, std::string(kIss), std::string(kAud), 60, clock_, 100};
  NewClient client_;
};

TEST_F(TokenEndpointTest, HappyPathIssuesAVerifiableTokenWithEveryClaim) {
  TokenEndpointResult r = Post(GoodBasic(), kGrant);
  ASSERT_EQ(r.http_status, 200) << r.json_body;
  Principal p = ExpectSuccess(r, kRegistered);
  EXPECT_EQ(p.client_id, client_.client_id);
  EXPECT_EQ(p.subject, client_.client_id);

  // Decode the JWT by hand: header and every claim.
  boost::json::object body = boost::json::parse(r.json_body).as_object();
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
  EXPECT_EQ(claims.size(), 8u);
  EXPECT_EQ(r.json_body.find(client_.client_secret), std::string::npos);
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
      EXPECT_EQ(Post(authorization, kGrant).http_status, 401);
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
  ExpectError(Post(GoodBasic(), "grant_type=authorization_code&code=x"), 400,
              "unsupported_grant_type");
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
      Post(authz, kGrant).json_body,
      Post(authz, "grant_type=password&password=" + secret).json_body,
      Post(authz, kGrant, "text/plain").json_body,
      Post(authz, std::string(kGrant) + "&scope=" + secret).json_body,
      Post(authz, std::string(kGrant) + "&client_secret=" + secret).json_body,
      Post(Basic(secret, secret), kGrant).json_body,
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

}  // namespace
}  // namespace phigate::auth
