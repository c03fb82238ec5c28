#include "auth/client_auth.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "auth/jwk.h"
#include "auth/jwt.h"
#include "core/ascii.h"
#include "core/base64.h"
#include "core/log.h"
#include "crypto/crypto.h"
#include "crypto/password_hash.h"
#include "crypto/public_key.h"

namespace phigate::auth {

namespace {

constexpr std::string_view kFailed = "client authentication failed";

// Fills `detail` (if any) and returns the status: one exit for every failure.
class Outcome {
 public:
  explicit Outcome(ClientAuthDetail* detail) : detail_(detail) {}
  void Method(std::string_view method) {
    if (detail_ != nullptr) detail_->method = method;
  }
  void Client(const std::string& id) {
    if (detail_ != nullptr) detail_->client_id = id;
  }
  Status Fail(std::string_view reason) {
    if (detail_ != nullptr) detail_->reason = reason;
    return {StatusCode::kUnauthenticated, std::string(kFailed)};
  }
  Status Invalid(std::string_view reason, std::string message) {
    if (detail_ != nullptr) detail_->reason = reason;
    return InvalidArgument(std::move(message));
  }
  Status Store(Status status, std::string_view reason = "storage_error") {
    if (detail_ != nullptr) detail_->reason = reason;
    return status;
  }

 private:
  ClientAuthDetail* detail_;
};

// RFC 6749 §3.2: a parameter sent without a value is treated as omitted.
std::optional<std::string_view> Param(const QueryParams& form, std::string_view name) {
  for (const auto& [key, value] : form) {
    if (key == name) {
      if (value.empty()) return std::nullopt;
      return std::string_view(value);
    }
  }
  return std::nullopt;
}

struct BasicCredentials {
  std::string client_id;
  std::string client_secret;
};

// RFC 7617 §2 credentials, whose two halves RFC 6749 §2.3.1 form-urlencodes first.
std::optional<BasicCredentials> ParseBasic(std::string_view header) {
  header = TrimOws(header);
  constexpr std::string_view kScheme = "Basic";
  // RFC 9110 §11.1: the scheme is case-insensitive; at least one space follows it.
  if (header.size() <= kScheme.size() ||
      !EqualsIgnoreCase(header.substr(0, kScheme.size()), kScheme) ||
      header[kScheme.size()] != ' ') {
    return std::nullopt;
  }
  std::optional<std::string> decoded = Base64Decode(TrimOws(header.substr(kScheme.size())));
  if (!decoded) return std::nullopt;
  // The user-id cannot contain ':' (RFC 7617 §2); the secret may.
  const size_t colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  std::optional<std::string> id = PercentDecode(std::string_view(*decoded).substr(0, colon), true);
  std::optional<std::string> secret =
      PercentDecode(std::string_view(*decoded).substr(colon + 1), true);
  if (!id || !secret || id->empty() || secret->empty()) return std::nullopt;
  if (id->size() > kMaxClientIdBytes || secret->size() > kMaxClientSecretBytes) {
    return std::nullopt;
  }
  return BasicCredentials{std::move(*id), std::move(*secret)};
}

// Gives a SecretCheckSlots slot back when the check ends.
class SlotRelease {
 public:
  explicit SlotRelease(SecretCheckSlots& slots) : slots_(slots) {}
  ~SlotRelease() { slots_.Release(); }
  SlotRelease(const SlotRelease&) = delete;
  SlotRelease& operator=(const SlotRelease&) = delete;

 private:
  SecretCheckSlots& slots_;
};

Result<storage::ClientRecord> SecretBasic(storage::Store& store, const BasicCredentials& creds,
                                          Outcome& out) {
  // Every path below runs Argon2id once: take a slot first.
  SecretCheckSlots& slots = SecretCheckSlots::Process();
  if (!slots.TryAcquire()) return out.Store(Unavailable("busy"), "secret_check_busy");
  SlotRelease release(slots);
  Result<std::optional<storage::ClientRecord>> found = store.GetClient(creds.client_id);
  if (!found.ok()) return out.Store(found.status());
  const std::optional<storage::ClientRecord>& client = found.value();
  if (!client) {
    // Same Argon2id cost as a real check, so timing does not reveal the id is unknown.
    crypto::BurnPasswordVerification(creds.client_secret);
    return out.Fail("unknown_client");
  }
  out.Client(client->client_id);
  const bool has_secret =
      client->auth_method == kAuthMethodSecretBasic && !client->secret_hash.empty();
  // The hash is checked even for a disabled or secretless client, for the same reason.
  bool secret_ok = false;
  if (has_secret) {
    secret_ok = crypto::VerifyPassword(client->secret_hash, creds.client_secret);
  } else {
    crypto::BurnPasswordVerification(creds.client_secret);
  }
  if (!has_secret) return out.Fail("method_not_registered");
  if (!secret_ok) return out.Fail("wrong_secret");
  if (client->disabled) return out.Fail("client_disabled");
  return *client;
}

// A JSON number that is an integer (NumericDate, RFC 7519 §2; fractions are truncated).
std::optional<int64_t> NumericDate(const boost::json::object& claims, std::string_view name) {
  const boost::json::value* v = claims.if_contains(name);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64() && v->as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v->as_uint64());
  }
  if (v->is_double() && v->as_double() > -9.2e18 && v->as_double() < 9.2e18) {
    return static_cast<int64_t>(v->as_double());
  }
  return std::nullopt;
}

const boost::json::string* StringClaim(const boost::json::object& claims, std::string_view name) {
  const boost::json::value* v = claims.if_contains(name);
  return v == nullptr ? nullptr : v->if_string();
}

// RFC 7523 §3 item 3: aud identifies the authorization server; the token endpoint URL (or
// the issuer) either as the string or as a member of an array.
bool AudienceMatches(const boost::json::object& claims, std::string_view token_endpoint_url,
                     std::string_view issuer) {
  auto ok = [&](std::string_view aud) {
    return aud == token_endpoint_url || (!issuer.empty() && aud == issuer);
  };
  const boost::json::value* aud = claims.if_contains("aud");
  if (aud == nullptr) return false;
  if (const boost::json::string* s = aud->if_string()) return ok(*s);
  if (const boost::json::array* a = aud->if_array()) {
    for (const boost::json::value& v : *a) {
      if (const boost::json::string* s = v.if_string(); s != nullptr && ok(*s)) return true;
    }
  }
  return false;
}

// The unverified "iss" of an assertion: only to find which client's keys to verify with.
// Every claim is checked again from the verified payload.
std::optional<std::string> UnverifiedIssuer(const JwsParts& parts) {
  std::optional<std::string> text = Base64UrlDecode(parts.payload_b64);
  if (!text) return std::nullopt;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(*text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const boost::json::string* iss = StringClaim(v.as_object(), "iss");
  if (iss == nullptr || iss->empty() || iss->size() > kMaxClientIdBytes) return std::nullopt;
  return std::string(*iss);
}

Result<storage::ClientRecord> PrivateKeyJwt(storage::Store& store, std::string_view assertion,
                                            std::optional<std::string_view> form_client_id,
                                            std::string_view token_endpoint_url,
                                            const AuthConfig& config, const Clock& clock,
                                            Outcome& out) {
  Result<JwsParts> parts = ParseJws(assertion);
  if (!parts.ok()) return out.Fail("malformed_assertion");
  // An access token of ours is never a client assertion (RFC 8725 §3.11).
  if (JwsTypMatches(parts->typ, kAccessTokenTyp)) return out.Fail("assertion_typ");
  std::optional<std::string> client_id = UnverifiedIssuer(*parts);
  if (!client_id) return out.Fail("assertion_iss");
  if (form_client_id && *form_client_id != *client_id) {
    return out.Invalid("client_id_mismatch", "client_id does not match the client assertion");
  }

  Result<std::optional<storage::ClientRecord>> found = store.GetClient(*client_id);
  if (!found.ok()) return out.Store(found.status());
  if (!found->has_value()) return out.Fail("unknown_client");
  const storage::ClientRecord& client = **found;
  out.Client(client.client_id);
  if (client.auth_method != kAuthMethodPrivateKeyJwt) return out.Fail("method_not_registered");
  if (client.disabled) return out.Fail("client_disabled");

  Result<JwkSet> keys = ParseJwks(client.jwks);
  if (!keys.ok()) {
    Log(LogLevel::kError, "client_jwks_invalid", {{"client_id", client.client_id}});
    return out.Fail("registered_jwks_invalid");
  }
  std::optional<crypto::JwsAlg> alg = crypto::ParseJwsAlg(parts->alg);
  if (!alg) return out.Fail("assertion_alg");
  std::shared_ptr<const crypto::PublicKey> key = keys->Find(parts->kid, *alg);
  if (key == nullptr) return out.Fail("assertion_key_unknown");
  Result<boost::json::object> verified = VerifyJws(*parts, *key);
  if (!verified.ok()) return out.Fail("assertion_signature");
  const boost::json::object& claims = verified.value();

  // RFC 7523 §3: iss and sub are both the client id.
  const boost::json::string* iss = StringClaim(claims, "iss");
  const boost::json::string* sub = StringClaim(claims, "sub");
  if (iss == nullptr || sub == nullptr || *iss != client.client_id || *sub != client.client_id) {
    return out.Fail("assertion_iss_sub");
  }
  if (!AudienceMatches(claims, token_endpoint_url, config.issuer)) {
    return out.Fail("assertion_aud");
  }
  const int64_t now = clock.NowSeconds();
  const int64_t skew = config.clock_skew_s;
  std::optional<int64_t> exp = NumericDate(claims, "exp");
  if (!exp) return out.Fail("assertion_exp_missing");
  if (*exp <= now - skew) return out.Fail("assertion_expired");
  // A long-lived assertion is a long replay window for whoever copies it (SMART Backend
  // Services: "no more than five minutes in the future").
  if (*exp > now + config.client_assertion_max_lifetime_s + skew) {
    return out.Fail("assertion_exp_too_far");
  }
  for (std::string_view name : {"nbf", "iat"}) {
    if (claims.contains(name)) {
      std::optional<int64_t> t = NumericDate(claims, name);
      if (!t || *t > now + skew) return out.Fail("assertion_not_yet_valid");
    }
  }
  const boost::json::string* jti = StringClaim(claims, "jti");
  if (jti == nullptr || jti->empty() || jti->size() > kMaxAssertionJtiBytes) {
    return out.Fail("assertion_jti_missing");
  }
  // Recorded until the assertion could no longer pass the exp check above.
  Result<bool> fresh = store.RecordAssertionJti(client.client_id, std::string(*jti),
                                                (*exp + skew) * 1000, clock.NowMillis());
  if (!fresh.ok()) return out.Store(fresh.status());
  if (!fresh.value()) return out.Fail("replayed_jti");
  return client;
}

Result<storage::ClientRecord> PublicClient(storage::Store& store, std::string_view client_id,
                                           Outcome& out) {
  if (client_id.size() > kMaxClientIdBytes) return out.Fail("unknown_client");
  Result<std::optional<storage::ClientRecord>> found = store.GetClient(std::string(client_id));
  if (!found.ok()) return out.Store(found.status());
  if (!found->has_value()) return out.Fail("unknown_client");
  const storage::ClientRecord& client = **found;
  out.Client(client.client_id);
  // A confidential client that sent no credentials has not authenticated (RFC 6749 §3.2.1).
  if (client.auth_method != kAuthMethodNone) return out.Fail("credentials_missing");
  if (client.disabled) return out.Fail("client_disabled");
  return client;
}

}  // namespace

bool SecretCheckSlots::TryAcquire() {
  int used = used_.load(std::memory_order_relaxed);
  while (used < capacity_) {
    if (used_.compare_exchange_weak(used, used + 1, std::memory_order_acquire,
                                    std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

void SecretCheckSlots::Release() { used_.fetch_sub(1, std::memory_order_release); }

SecretCheckSlots& SecretCheckSlots::Process() {
  static SecretCheckSlots slots(std::max(2, static_cast<int>(std::thread::hardware_concurrency())));
  return slots;
}

Result<storage::ClientRecord> AuthenticateClient(storage::Store& store,
                                                 const EndpointRequest& request,
                                                 const QueryParams& form,
                                                 std::string_view token_endpoint_url,
                                                 const AuthConfig& config, const Clock& clock,
                                                 ClientAuthDetail* detail) {
  Outcome out(detail);
  const bool has_basic = !TrimOws(request.authorization).empty();
  if (detail != nullptr) detail->basic_attempted = has_basic;
  const std::optional<std::string_view> assertion_type = Param(form, "client_assertion_type");
  const std::optional<std::string_view> assertion = Param(form, "client_assertion");
  const bool has_assertion = assertion_type.has_value() || assertion.has_value();
  const bool has_post_secret = Param(form, "client_secret").has_value();
  const std::optional<std::string_view> form_client_id = Param(form, "client_id");

  // RFC 6749 §2.3: "MUST NOT use more than one authentication method in each request".
  if (int{has_basic} + int{has_assertion} + int{has_post_secret} > 1) {
    return out.Invalid("several_methods", "use exactly one client authentication method");
  }
  if (has_post_secret) {
    out.Method("client_secret_post");
    return out.Fail("method_not_supported");  // client_secret_post is not offered
  }
  if (has_basic) {
    out.Method(kAuthMethodSecretBasic);
    std::optional<BasicCredentials> creds = ParseBasic(request.authorization);
    if (!creds) return out.Fail("malformed_basic");
    if (form_client_id && *form_client_id != creds->client_id) {
      return out.Invalid("client_id_mismatch", "client_id does not match the authenticated client");
    }
    return SecretBasic(store, *creds, out);
  }
  if (has_assertion) {
    out.Method(kAuthMethodPrivateKeyJwt);
    if (!assertion_type || !assertion) {
      return out.Invalid("assertion_incomplete",
                         "client_assertion and client_assertion_type go together");
    }
    if (*assertion_type != kJwtBearerAssertionType) return out.Fail("assertion_type");
    return PrivateKeyJwt(store, *assertion, form_client_id, token_endpoint_url, config, clock, out);
  }
  if (form_client_id) {
    out.Method(kAuthMethodNone);
    return PublicClient(store, *form_client_id, out);
  }
  return out.Fail("no_credentials");
}

}  // namespace phigate::auth
