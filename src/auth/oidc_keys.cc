#include "auth/oidc_keys.h"

#include <algorithm>
#include <boost/json.hpp>
#include <utility>

#include "core/ascii.h"
#include "core/log.h"

namespace phigate::auth {

namespace {

// OpenID Connect Discovery 1.0 §4.
constexpr std::string_view kDiscoveryPath = "/.well-known/openid-configuration";
// A discovery document is a flat object with a few arrays; this depth is generous.
constexpr unsigned kMaxDiscoveryDepth = 16;

bool AlgorithmAllowed(const OidcIssuerConfig& config, crypto::JwsAlg alg) {
  const std::string_view name = crypto::JwsAlgName(alg);
  return std::find(config.algorithms.begin(), config.algorithms.end(), name) !=
         config.algorithms.end();
}

// Discovery §4: "If the Issuer value contains a path component, any terminating / MUST be
// removed before appending /.well-known/openid-configuration."
std::string DiscoveryUrl(std::string_view issuer) {
  if (issuer.ends_with('/')) issuer.remove_suffix(1);
  return std::string(issuer) + std::string(kDiscoveryPath);
}

// The jwks_uri of a discovery document, after the checks of Discovery §4.3: the issuer it
// names must be exactly ours (else a document served at our issuer's URL could make us
// trust another issuer's keys), and the keys must come over TLS.
Result<std::string> JwksUriFromDiscovery(std::string_view body, std::string_view issuer) {
  boost::json::parse_options options;
  options.max_depth = kMaxDiscoveryDepth;
  boost::system::error_code ec;
  const boost::json::value doc = boost::json::parse(body, ec, {}, options);
  if (ec || !doc.is_object()) return Unavailable("not a JSON object");
  const boost::json::object& object = doc.get_object();
  const boost::json::value* found_issuer = object.if_contains("issuer");
  if (found_issuer == nullptr || !found_issuer->is_string() ||
      std::string_view(found_issuer->get_string()) != issuer) {
    return Unavailable("issuer mismatch");
  }
  const boost::json::value* jwks_uri = object.if_contains("jwks_uri");
  if (jwks_uri == nullptr || !jwks_uri->is_string()) {
    return Unavailable("no jwks_uri");
  }
  const std::string_view uri = jwks_uri->get_string();
  constexpr std::string_view kHttps = "https://";
  if (uri.size() <= kHttps.size() || !EqualsIgnoreCase(uri.substr(0, kHttps.size()), kHttps)) {
    return Unavailable("jwks_uri is not https");
  }
  return std::string(uri);
}

}  // namespace

OidcKeySource::OidcKeySource(OidcIssuerConfig config, FetchFunction fetch, const Clock& clock)
    : config_(std::move(config)), fetch_(std::move(fetch)), clock_(clock) {}

uint64_t OidcKeySource::fetches() const {
  std::lock_guard lock(mu_);
  return fetches_;
}

Status OidcKeySource::Refresh() {
  std::lock_guard fetch_lock(fetch_mu_);
  return RefreshLocked(clock_.NowSeconds());
}

std::shared_ptr<const crypto::PublicKey> OidcKeySource::Find(std::string_view kid,
                                                             crypto::JwsAlg alg) {
  // The allow-list is checked before anything else, so a token naming an algorithm we do
  // not accept costs nothing (and cannot trigger a fetch).
  if (!AlgorithmAllowed(config_, alg)) return nullptr;

  struct Snapshot {
    std::shared_ptr<const crypto::PublicKey> key;
    bool fresh = false;      // the cached keys are younger than jwks_max_age_s
    bool may_fetch = false;  // jwks_min_refresh_s has passed since the last attempt
  };
  // A clock that went backwards counts as "long ago": a refetch then resets the times,
  // rather than the cache being frozen until the clock catches up.
  auto snapshot = [&](int64_t now_s) {
    Snapshot s;
    std::shared_ptr<const JwkSet> keys;
    {
      std::lock_guard lock(mu_);
      keys = keys_;
      s.fresh = keys_ != nullptr && now_s >= last_success_s_ &&
                now_s - last_success_s_ < config_.jwks_max_age_s;
      s.may_fetch = !attempted_ || now_s < last_attempt_s_ ||
                    now_s - last_attempt_s_ >= config_.jwks_min_refresh_s;
    }
    if (keys != nullptr) s.key = keys->Find(kid, alg);
    return s;
  };

  Snapshot s = snapshot(clock_.NowSeconds());
  if (s.key != nullptr && s.fresh) return s.key;  // the common case: no waiting
  if (!s.may_fetch) return s.key;                 // rate-limited: what we have, maybe nothing

  // A refetch is due: the keys are stale, or the kid is unknown.
  // Never wait for another thread's fetch: it may take up to http_timeout_ms, and an
  // unknown kid is attacker-controlled, so waiting would let forged tokens hold io threads.
  // A stale but known key stays valid meanwhile; an unknown kid is not found this time
  // (the fetch in flight, if it brings the key, serves the next lookup).
  std::unique_lock fetch_lock(fetch_mu_, std::try_to_lock);
  if (!fetch_lock.owns_lock()) return s.key;
  // Another thread may have fetched while we waited for fetch_mu_: decide again.
  const int64_t now_s = clock_.NowSeconds();
  s = snapshot(now_s);
  if ((s.key != nullptr && s.fresh) || !s.may_fetch) return s.key;
  // A failure is logged by RefreshLocked and leaves the cached keys in place; the lookup
  // below then answers from them (or not at all for a kid no fetch has produced).
  (void)RefreshLocked(now_s);
  return snapshot(now_s).key;
}

Status OidcKeySource::RefreshLocked(int64_t now_s) {
  std::string jwks_uri;
  {
    std::lock_guard lock(mu_);
    attempted_ = true;
    last_attempt_s_ = now_s;
    jwks_uri = jwks_uri_;
  }
  auto fetch = [this](const std::string& url) {
    Result<std::string> body = fetch_(url);
    std::lock_guard lock(mu_);
    ++fetches_;
    return body;
  };
  // Logged with the issuer (configuration, not a secret) and a reason that names a stage
  // and a host or a JSON position, never a response body or token content.
  auto failed = [this](std::string_view stage, const Status& status) {
    Log(LogLevel::kWarn, "oidc.fetch_failed",
        {{"issuer", config_.issuer}, {"stage", stage}, {"reason", status.message()}});
    return Unavailable(std::string(stage) + ": " + status.message());
  };

  // Discovery once: the jwks_uri of a provider is stable, and refetching the document for
  // every key refresh would double the requests an unreachable provider sees.
  if (jwks_uri.empty()) {
    Result<std::string> doc = fetch(DiscoveryUrl(config_.issuer));
    if (!doc.ok()) return failed("discovery", doc.status());
    Result<std::string> uri = JwksUriFromDiscovery(*doc, config_.issuer);
    if (!uri.ok()) return failed("discovery", uri.status());
    jwks_uri = std::move(uri).value();
    std::lock_guard lock(mu_);
    jwks_uri_ = jwks_uri;
  }

  Result<std::string> body = fetch(jwks_uri);
  if (!body.ok()) return failed("jwks", body.status());
  Result<JwkSet> parsed = ParseJwks(*body);
  if (!parsed.ok()) return failed("jwks", parsed.status());
  auto keys = std::make_shared<const JwkSet>(std::move(parsed).value());
  const size_t count = keys->size();
  {
    std::lock_guard lock(mu_);
    keys_ = std::move(keys);
    last_success_s_ = now_s;
  }
  Log(LogLevel::kInfo, "oidc.keys_refreshed",
      {{"issuer", config_.issuer}, {"keys", static_cast<uint64_t>(count)}});
  return Status::Ok();
}

}  // namespace phigate::auth
