#include "auth/oidc_keys.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"

namespace phigate::auth {
namespace {

using crypto::JwsAlg;
using crypto::PrivateKey;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsNull;
using ::testing::NotNull;

constexpr int64_t kStartMs = 1'800'000'000'000;
constexpr char kIssuer[] = "https://idp.example.org/realms/main";
constexpr char kDiscoveryUrl[] =
    "https://idp.example.org/realms/main/.well-known/openid-configuration";
constexpr char kJwksUrl[] = "https://idp.example.org/realms/main/certs";

// A provider in memory: answers per URL (set by the test) and records every request.
// Thread-safe, as Find() may call it from several threads.
class FakeProvider {
 public:
  void Set(const std::string& url, Result<std::string> answer) {
    std::lock_guard lock(mu_);
    answers_.insert_or_assign(url, std::move(answer));
  }
  void SetDown(bool down) {
    std::lock_guard lock(mu_);
    down_ = down;
  }

  FetchFunction Function() {
    return [this](const std::string& url) -> Result<std::string> {
      std::lock_guard lock(mu_);
      calls_.push_back(url);
      if (down_) return Unavailable("idp.example.org: connect");
      auto it = answers_.find(url);
      if (it == answers_.end()) return Unavailable("idp.example.org: status 404");
      return it->second;
    };
  }

  std::vector<std::string> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, Result<std::string>> answers_;
  std::vector<std::string> calls_;
  bool down_ = false;
};

std::string Discovery(const std::string& issuer, const std::string& jwks_uri) {
  return R"({"issuer":")" + issuer + R"(","jwks_uri":")" + jwks_uri +
         R"(","authorization_endpoint":"https://idp.example.org/auth",)"
         R"("id_token_signing_alg_values_supported":["RS256","ES256"]})";
}

std::string Jwks(const std::vector<std::string>& jwks) {
  std::string out = R"({"keys":[)";
  for (size_t i = 0; i < jwks.size(); ++i) out += (i == 0 ? "" : ",") + jwks[i];
  return out + "]}";
}

PrivateKey Generate(JwsAlg alg) {
  Result<PrivateKey> key = PrivateKey::Generate(alg);
  if (!key.ok()) throw std::runtime_error("key generation failed: " + key.status().message());
  return std::move(key).value();
}

// Captures log lines written while it is alive (the logger is process-wide).
class LogCapture {
 public:
  LogCapture() {
    file_ = std::tmpfile();
    SetLogFd(::fileno(file_));
  }
  ~LogCapture() {
    SetLogFd(2);
    std::fclose(file_);
  }
  std::string Text() const {
    std::rewind(file_);
    std::string text;
    char chunk[4096];
    size_t n = 0;
    while ((n = std::fread(chunk, 1, sizeof chunk, file_)) > 0) text.append(chunk, n);
    return text;
  }

 private:
  FILE* file_;
};

class OidcKeySourceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    es_key_ = new PrivateKey(Generate(JwsAlg::kES256));
    es_key2_ = new PrivateKey(Generate(JwsAlg::kES256));
    rs_key_ = new PrivateKey(Generate(JwsAlg::kRS256));
    ed_key_ = new PrivateKey(Generate(JwsAlg::kEdDSA));
  }
  static void TearDownTestSuite() {
    delete es_key_;
    delete es_key2_;
    delete rs_key_;
    delete ed_key_;
  }

  OidcKeySourceTest() {
    config_.issuer = kIssuer;
    config_.audience = "https://fhir.example.org/fhir";
    config_.jwks_min_refresh_s = 60;
    config_.jwks_max_age_s = 3600;
    provider_.Set(kDiscoveryUrl, Discovery(kIssuer, kJwksUrl));
    provider_.Set(kJwksUrl, Jwks({es_key_->PublicJwkJson("es-1"), rs_key_->PublicJwkJson("rs-1"),
                                  ed_key_->PublicJwkJson("ed-1")}));
  }

  std::unique_ptr<OidcKeySource> Make() {
    return std::make_unique<OidcKeySource>(config_, provider_.Function(), clock_);
  }

  // A source that has completed its start-up Refresh (discovery + JWKS).
  std::unique_ptr<OidcKeySource> Started() {
    auto source = Make();
    const Status refreshed = source->Refresh();
    EXPECT_TRUE(refreshed.ok()) << refreshed.message();
    EXPECT_THAT(provider_.calls(), ElementsAre(kDiscoveryUrl, kJwksUrl));
    return source;
  }

  // True if `key` is the public half of `signer` (it verifies the signer's signature).
  static bool IsKeyOf(const std::shared_ptr<const crypto::PublicKey>& key,
                      const PrivateKey& signer) {
    return key != nullptr && key->Verify(signer.alg(), "h.p", signer.Sign("h.p"));
  }

  void AdvanceSeconds(int64_t s) { clock_.Advance(s * 1000); }

  static PrivateKey* es_key_;
  static PrivateKey* es_key2_;
  static PrivateKey* rs_key_;
  static PrivateKey* ed_key_;
  OidcIssuerConfig config_;
  FakeProvider provider_;
  FakeClock clock_{kStartMs};
};

PrivateKey* OidcKeySourceTest::es_key_ = nullptr;
PrivateKey* OidcKeySourceTest::es_key2_ = nullptr;
PrivateKey* OidcKeySourceTest::rs_key_ = nullptr;
PrivateKey* OidcKeySourceTest::ed_key_ = nullptr;

// --- Discovery -------------------------------------------------------------------------

TEST_F(OidcKeySourceTest, RefreshFetchesDiscoveryThenTheJwksUri) {
  auto source = Started();
  EXPECT_EQ(source->fetches(), 2u);
  EXPECT_TRUE(IsKeyOf(source->Find("es-1", JwsAlg::kES256), *es_key_));
  EXPECT_TRUE(IsKeyOf(source->Find("rs-1", JwsAlg::kRS256), *rs_key_));
  EXPECT_TRUE(IsKeyOf(source->Find("ed-1", JwsAlg::kEdDSA), *ed_key_));
  EXPECT_EQ(source->fetches(), 2u);
}

TEST_F(OidcKeySourceTest, TrailingSlashOfTheIssuerIsDroppedFromTheDiscoveryUrlOnly) {
  config_.issuer = std::string(kIssuer) + "/";
  // The document names the issuer exactly as configured (with its slash).
  provider_.Set(kDiscoveryUrl, Discovery(config_.issuer, kJwksUrl));
  auto source = Started();
  EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), NotNull());
}

TEST_F(OidcKeySourceTest, DiscoveryNamingAnotherIssuerIsRefused) {
  LogCapture log;
  const std::string with_slash = std::string(kIssuer) + "/";
  for (const std::string issuer : {"https://evil.example.org/realms/main", with_slash.c_str(),
                                   "HTTPS://idp.example.org/realms/main"}) {
    provider_.Set(kDiscoveryUrl, Discovery(issuer, kJwksUrl));
    auto source = Make();
    const Status refreshed = source->Refresh();
    EXPECT_EQ(refreshed.code(), StatusCode::kUnavailable) << issuer;
    EXPECT_EQ(refreshed.message(), "discovery: issuer mismatch") << issuer;
    // The keys of the impostor's jwks_uri are never fetched, never used.
    EXPECT_EQ(source->fetches(), 1u);
    EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), IsNull());
  }
  EXPECT_THAT(log.Text(),
              HasSubstr(R"("event":"oidc.fetch_failed","issuer":")" + std::string(kIssuer) +
                        R"(","stage":"discovery","reason":"issuer mismatch")"));
}

TEST_F(OidcKeySourceTest, JwksUriThatIsNotHttpsIsRefused) {
  provider_.Set(kDiscoveryUrl, Discovery(kIssuer, "http://idp.example.org/realms/main/certs"));
  provider_.Set("http://idp.example.org/realms/main/certs", Jwks({es_key_->PublicJwkJson("es-1")}));
  auto source = Make();
  const Status refreshed = source->Refresh();
  EXPECT_EQ(refreshed.code(), StatusCode::kUnavailable);
  EXPECT_EQ(refreshed.message(), "discovery: jwks_uri is not https");
  EXPECT_THAT(provider_.calls(), ElementsAre(kDiscoveryUrl));
  EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), IsNull());
}

TEST_F(OidcKeySourceTest, MalformedDiscoveryDocumentsAreRefused) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", "discovery: not a JSON object"},
      {R"(["https://idp.example.org/realms/main"])", "discovery: not a JSON object"},
      {R"({"jwks_uri":"https://idp.example.org/certs"})", "discovery: issuer mismatch"},
      {R"({"issuer":42,"jwks_uri":"https://idp.example.org/certs"})", "discovery: issuer mismatch"},
      {R"({"issuer":")" + std::string(kIssuer) + R"("})", "discovery: no jwks_uri"},
      {R"({"issuer":")" + std::string(kIssuer) + R"(","jwks_uri":["https://x/"]})",
       "discovery: no jwks_uri"},
      {R"({"issuer":")" + std::string(kIssuer) + R"(","jwks_uri":"https://"})",
       "discovery: jwks_uri is not https"},
      {R"({"issuer":")" + std::string(kIssuer) + R"(","jwks_uri":"certs"})",
       "discovery: jwks_uri is not https"},
  };
  for (const auto& [doc, message] : cases) {
    provider_.Set(kDiscoveryUrl, doc);
    auto source = Make();
    const Status refreshed = source->Refresh();
    EXPECT_EQ(refreshed.code(), StatusCode::kUnavailable) << doc;
    EXPECT_EQ(refreshed.message(), message) << doc;
  }
}

TEST_F(OidcKeySourceTest, DiscoveryIsFetchedOnceNotOnEveryKeyRefresh) {
  auto source = Started();
  AdvanceSeconds(config_.jwks_max_age_s);
  EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), NotNull());
  EXPECT_THAT(provider_.calls(), ElementsAre(kDiscoveryUrl, kJwksUrl, kJwksUrl));
}

// --- Caching and refetching ------------------------------------------------------------

TEST_F(OidcKeySourceTest, KnownKidIsFoundWithoutRefetch) {
  auto source = Started();
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(IsKeyOf(source->Find("es-1", JwsAlg::kES256), *es_key_));
    AdvanceSeconds(config_.jwks_max_age_s / 5 - 1);
  }
  EXPECT_EQ(source->fetches(), 2u);
}

TEST_F(OidcKeySourceTest, UnknownKidRefetchesAtMostOncePerMinRefresh) {
  auto source = Started();
  // Right after a fetch, an unknown kid does not fetch again.
  EXPECT_THAT(source->Find("forged", JwsAlg::kES256), IsNull());
  EXPECT_EQ(source->fetches(), 2u);

  // The provider adds a key; after min_refresh an unknown kid brings it in.
  provider_.Set(kJwksUrl, Jwks({es_key_->PublicJwkJson("es-1"), es_key2_->PublicJwkJson("es-2")}));
  AdvanceSeconds(config_.jwks_min_refresh_s);
  EXPECT_TRUE(IsKeyOf(source->Find("es-2", JwsAlg::kES256), *es_key2_));
  EXPECT_EQ(source->fetches(), 3u);

  // A stream of forged kids: one refetch, then none until min_refresh has passed again.
  AdvanceSeconds(config_.jwks_min_refresh_s);
  for (int i = 0; i < 20; ++i) {
    EXPECT_THAT(source->Find("forged-" + std::to_string(i), JwsAlg::kES256), IsNull());
  }
  EXPECT_EQ(source->fetches(), 4u);
  AdvanceSeconds(config_.jwks_min_refresh_s - 1);
  EXPECT_THAT(source->Find("forged", JwsAlg::kES256), IsNull());
  EXPECT_EQ(source->fetches(), 4u);
  AdvanceSeconds(1);
  EXPECT_THAT(source->Find("forged", JwsAlg::kES256), IsNull());
  EXPECT_EQ(source->fetches(), 5u);
  // Known keys were never affected.
  EXPECT_TRUE(IsKeyOf(source->Find("es-1", JwsAlg::kES256), *es_key_));
  EXPECT_EQ(source->fetches(), 5u);
}

TEST_F(OidcKeySourceTest, KeysOlderThanMaxAgeAreRefetched) {
  auto source = Started();
  AdvanceSeconds(config_.jwks_max_age_s - 1);
  EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), NotNull());
  EXPECT_EQ(source->fetches(), 2u);
  AdvanceSeconds(1);
  EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), NotNull());
  EXPECT_EQ(source->fetches(), 3u);
  // Fresh again: no further fetch.
  EXPECT_THAT(source->Find("rs-1", JwsAlg::kRS256), NotNull());
  EXPECT_EQ(source->fetches(), 3u);
}

TEST_F(OidcKeySourceTest, RotatedOutKidIsGoneAfterTheRefresh) {
  auto source = Started();
  ASSERT_THAT(source->Find("es-1", JwsAlg::kES256), NotNull());
  provider_.Set(kJwksUrl, Jwks({es_key2_->PublicJwkJson("es-2")}));
  AdvanceSeconds(config_.jwks_max_age_s);
  EXPECT_TRUE(IsKeyOf(source->Find("es-2", JwsAlg::kES256), *es_key2_));
  EXPECT_EQ(source->fetches(), 3u);
  EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), IsNull());
  EXPECT_THAT(source->Find("rs-1", JwsAlg::kRS256), IsNull());
  EXPECT_EQ(source->fetches(), 3u);  // rate-limited
}

TEST_F(OidcKeySourceTest, FetchFailureKeepsTheCachedKeysAndIsLogged) {
  auto source = Started();
  provider_.SetDown(true);
  LogCapture log;
  AdvanceSeconds(config_.jwks_max_age_s);
  // Stale, the refetch fails: the keys the provider published are still used.
  EXPECT_TRUE(IsKeyOf(source->Find("es-1", JwsAlg::kES256), *es_key_));
  EXPECT_EQ(source->fetches(), 3u);
  // The next attempts are rate-limited, not one per request.
  EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), NotNull());
  EXPECT_THAT(source->Find("unknown", JwsAlg::kES256), IsNull());
  EXPECT_EQ(source->fetches(), 3u);
  AdvanceSeconds(config_.jwks_min_refresh_s);
  EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), NotNull());
  EXPECT_EQ(source->fetches(), 4u);
  EXPECT_THAT(log.Text(),
              HasSubstr(R"("event":"oidc.fetch_failed","issuer":")" + std::string(kIssuer) +
                        R"(","stage":"jwks","reason":"idp.example.org: connect")"));
}

TEST_F(OidcKeySourceTest, MalformedJwksKeepsTheCachedKeys) {
  auto source = Started();
  provider_.Set(kJwksUrl, std::string(R"({"keys":"oops"})"));
  AdvanceSeconds(config_.jwks_max_age_s);
  EXPECT_TRUE(IsKeyOf(source->Find("es-1", JwsAlg::kES256), *es_key_));
  EXPECT_EQ(source->fetches(), 3u);
  // An explicit refresh reports why.
  const Status refreshed = source->Refresh();
  EXPECT_EQ(refreshed.code(), StatusCode::kUnavailable);
  EXPECT_THAT(refreshed.message(), ::testing::StartsWith("jwks: "));
  EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), NotNull());
}

TEST_F(OidcKeySourceTest, UnreachableProviderMeansNoKey) {
  provider_.SetDown(true);
  auto source = Make();
  const Status refreshed = source->Refresh();
  EXPECT_EQ(refreshed.code(), StatusCode::kUnavailable);
  EXPECT_EQ(refreshed.message(), "discovery: idp.example.org: connect");
  EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), IsNull());
  EXPECT_EQ(source->fetches(), 1u);  // rate-limited since the start-up attempt
  AdvanceSeconds(config_.jwks_min_refresh_s);
  EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), IsNull());
  EXPECT_EQ(source->fetches(), 2u);
}

TEST_F(OidcKeySourceTest, FirstFindWithoutRefreshFetches) {
  auto source = Make();
  EXPECT_TRUE(IsKeyOf(source->Find("rs-1", JwsAlg::kRS256), *rs_key_));
  EXPECT_THAT(provider_.calls(), ElementsAre(kDiscoveryUrl, kJwksUrl));
}

TEST_F(OidcKeySourceTest, ProviderThatComesUpLaterIsUsedAfterMinRefresh) {
  provider_.SetDown(true);
  auto source = Make();
  EXPECT_FALSE(source->Refresh().ok());
  provider_.SetDown(false);
  EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), IsNull());  // rate-limited
  AdvanceSeconds(config_.jwks_min_refresh_s);
  EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), NotNull());
  EXPECT_THAT(provider_.calls(), ElementsAre(kDiscoveryUrl, kDiscoveryUrl, kJwksUrl));
}

// --- Algorithms ------------------------------------------------------------------------

TEST_F(OidcKeySourceTest, AlgorithmNotAllowedFindsNothingAndFetchesNothing) {
  config_.algorithms = {"ES256"};
  auto source = Make();
  EXPECT_THAT(source->Find("rs-1", JwsAlg::kRS256), IsNull());
  EXPECT_THAT(source->Find("ed-1", JwsAlg::kEdDSA), IsNull());
  EXPECT_EQ(source->fetches(), 0u);
  // Loaded keys of a disallowed algorithm stay unusable.
  ASSERT_TRUE(source->Refresh().ok());
  EXPECT_THAT(source->Find("rs-1", JwsAlg::kRS256), IsNull());
  EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), NotNull());
  EXPECT_EQ(source->fetches(), 2u);
}

TEST_F(OidcKeySourceTest, KeyIsReturnedOnlyForItsOwnAlgorithm) {
  auto source = Started();
  EXPECT_THAT(source->Find("es-1", JwsAlg::kRS256), IsNull());
  EXPECT_THAT(source->Find("rs-1", JwsAlg::kEdDSA), IsNull());
  const auto key = source->Find("ed-1", JwsAlg::kEdDSA);
  ASSERT_THAT(key, NotNull());
  EXPECT_EQ(key->alg(), JwsAlg::kEdDSA);
}

// --- Concurrency -----------------------------------------------------------------------

TEST_F(OidcKeySourceTest, ConcurrentLookupsOfAnUnknownKidFetchOnce) {
  auto source = Make();
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&source] {
      for (int j = 0; j < 50; ++j) (void)source->Find("forged", JwsAlg::kES256);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_THAT(provider_.calls(), ElementsAre(kDiscoveryUrl, kJwksUrl));
  EXPECT_THAT(source->Find("es-1", JwsAlg::kES256), NotNull());
}

// Regression (security review L6): a forged kid must not hold an io thread while another
// thread's fetch runs (up to http_timeout_ms): it finds nothing at once. A known key is
// still served from the cache meanwhile.
TEST_F(OidcKeySourceTest, AnUnknownKidNeverWaitsForAnotherThreadsFetch) {
  config_.jwks_min_refresh_s = 0;  // every unknown kid may fetch: the worst case
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> block{false};
  FetchFunction inner = provider_.Function();
  auto source = std::make_unique<OidcKeySource>(
      config_,
      [&](const std::string& url) {
        if (block.exchange(false)) {
          entered.set_value();
          released.wait();
        }
        return inner(url);
      },
      clock_);
  ASSERT_TRUE(source->Refresh().ok());
  block = true;
  std::thread slow([&] { EXPECT_THAT(source->Find("forged-1", JwsAlg::kES256), IsNull()); });
  entered.get_future().wait();
  auto other =
      std::async(std::launch::async, [&] { return source->Find("forged-2", JwsAlg::kES256); });
  const bool returned = other.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  EXPECT_TRUE(IsKeyOf(source->Find("es-1", JwsAlg::kES256), *es_key_));
  release.set_value();
  slow.join();
  EXPECT_TRUE(returned) << "Find waited for another thread's fetch";
  EXPECT_THAT(other.get(), IsNull());
}

}  // namespace
}  // namespace phigate::auth
