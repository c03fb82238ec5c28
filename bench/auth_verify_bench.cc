// Microbenchmark of the authentication stage alone (issue 3 §5): what TokenVerifier::
// VerifyShared costs per request for a cached token and for a token it has not seen
// (cache off), for phigate's own ES256 tokens (system and person, with the SessionGuard)
// and an external provider's RS256 and ES256 tokens. bench/auth_bench.sh relates these
// figures to the whole request's cost measured with wrk.
#include <benchmark/benchmark.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "auth/jwt.h"
#include "auth/oidc_keys.h"
#include "auth/session_guard.h"
#include "auth/token_issuer.h"
#include "auth/token_verifier.h"
#include "core/base64.h"
#include "core/clock.h"
#include "crypto/public_key.h"
#include "crypto/signing_key.h"
#include "storage/sqlite/sqlite_store.h"
#include "storage/store.h"

namespace phigate::auth {
namespace {

constexpr const char* kIss = "https://bench.test:8443";
constexpr const char* kAud = "https://bench.test:8443/fhir";
constexpr const char* kIdp = "https://idp.bench.test";

template <typename T>
T Must(Result<T> r) {
  if (!r.ok()) {
    std::fprintf(stderr, "bench setup failed: %s\n", r.status().message().c_str());
    std::abort();
  }
  return std::move(r).value();
}

struct Fixture {
  Fixture() {
    dir = std::filesystem::temp_directory_path() /
          ("phigate-authbench-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    storage::SqliteOptions options;
    options.path = (dir / "db.sqlite").string();
    store = Must(storage::OpenSqliteStore(options));
    guard = std::make_unique<SessionGuard>(*store, SystemClock::Instance());
    storage::UserRecord user;
    user.user_id = "u-1";
    user.username = "bench";
    user.roles = "clinician";
    user.mfa_enrolled = true;
    user.created_ms = SystemClock::Instance().NowMillis();
    if (!store->PutUser(user).ok()) std::abort();
  }
  ~Fixture() { std::filesystem::remove_all(dir); }

  std::unique_ptr<TokenVerifier> Verifier(size_t cache_entries) {
    auto v = std::make_unique<TokenVerifier>(own, kIss, kAud, 60, SystemClock::Instance(),
                                             cache_entries, guard.get());
    OidcIssuerConfig config;
    config.issuer = kIdp;
    config.audience = kAud;
    std::string jwks = std::string(R"({"keys":[)") + rsa.PublicJwkJson("rsa") + "," +
                       ec.PublicJwkJson("ec") + "]}";
    v->AddProvider(std::make_unique<OidcKeySource>(
        config,
        [jwks](const std::string& url) -> Result<std::string> {
          if (url.ends_with("/.well-known/openid-configuration")) {
            return std::string(R"({"issuer":")") + kIdp + R"(","jwks_uri":")" + kIdp + R"(/jwks"})";
          }
          return jwks;
        },
        SystemClock::Instance()));
    return v;
  }

  std::string OwnSystemToken() {
    return Must(issuer.Issue("client-1", Must(ScopeSet::Parse("system/*.rs")))).access_token;
  }
  std::string OwnPersonToken() {
    const int64_t now = SystemClock::Instance().NowSeconds();
    boost::json::object claims{{"iss", kIss},
                               {"aud", kAud},
                               {"sub", "u-1"},
                               {"client_id", "app-1"},
                               {"scope", "user/*.rs"},
                               {"jti", "p-1"},
                               {"iat", now},
                               {"exp", now + 300},
                               {"auth_time", now},
                               {"amr", {"pwd", "otp", "mfa"}},
                               {"roles", {"clinician"}},
                               {"sid", "s-1"}};
    return EncodeJwt(own, kAccessTokenTyp, claims);
  }
  std::string ExternalToken(const crypto::PrivateKey& key, const char* kid) {
    const int64_t now = SystemClock::Instance().NowSeconds();
    boost::json::object claims{{"iss", kIdp},
                               {"aud", kAud},
                               {"sub", "bench"},
                               {"client_id", "bench"},
                               {"scope", "system/*.rs"},
                               {"jti", "x-1"},
                               {"iat", now},
                               {"exp", now + 3600}};
    return EncodeJws(key, kid, kAccessTokenTyp, claims);
  }

  std::filesystem::path dir;
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<SessionGuard> guard;
  crypto::SigningKey own = Must(crypto::SigningKey::Generate());
  crypto::PrivateKey rsa = Must(crypto::PrivateKey::Generate(crypto::JwsAlg::kRS256));
  crypto::PrivateKey ec = Must(crypto::PrivateKey::Generate(crypto::JwsAlg::kES256));
  TokenIssuer issuer{own, kIss, kAud, 900, 300, SystemClock::Instance()};
};

Fixture& F() {
  static Fixture* f = new Fixture();
  return *f;
}

// One verifier per benchmark (shared by its threads, as the io threads share one).
void Run(benchmark::State& state, size_t cache, const std::string& token) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<TokenVerifier>> verifiers;
  TokenVerifier* verifier = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto& v = verifiers[std::to_string(cache) + token];
    if (v == nullptr) {
      v = F().Verifier(cache);
      (void)v->VerifyShared(token);  // fetch a provider's keys before the threads start
    }
    verifier = v.get();
  }
  if (!verifier->VerifyShared(token).ok()) {
    state.SkipWithError("token refused");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(verifier->VerifyShared(token));
}

void BM_OwnSystemCached(benchmark::State& s) { Run(s, 1000, F().OwnSystemToken()); }
void BM_OwnPersonCached(benchmark::State& s) { Run(s, 1000, F().OwnPersonToken()); }
void BM_ExternalRs256Cached(benchmark::State& s) {
  Run(s, 1000, F().ExternalToken(F().rsa, "rsa"));
}
void BM_ExternalEs256Cached(benchmark::State& s) { Run(s, 1000, F().ExternalToken(F().ec, "ec")); }
void BM_OwnSystemUncached(benchmark::State& s) { Run(s, 0, F().OwnSystemToken()); }
void BM_OwnPersonUncached(benchmark::State& s) { Run(s, 0, F().OwnPersonToken()); }
void BM_ExternalRs256Uncached(benchmark::State& s) { Run(s, 0, F().ExternalToken(F().rsa, "rsa")); }
void BM_ExternalEs256Uncached(benchmark::State& s) { Run(s, 0, F().ExternalToken(F().ec, "ec")); }

// Threads(2): two io threads verifying at once, as on this 2-core machine under load
// (contention on the cache and revocation locks shows here, not single-threaded).
BENCHMARK(BM_OwnSystemCached)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_OwnPersonCached)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_ExternalRs256Cached)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_ExternalEs256Cached)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_OwnSystemUncached);
BENCHMARK(BM_OwnPersonUncached);
BENCHMARK(BM_ExternalRs256Uncached);
BENCHMARK(BM_ExternalEs256Uncached);

}  // namespace
}  // namespace phigate::auth

BENCHMARK_MAIN();
