#include "auth/jwk.h"

#include <boost/json.hpp>
#include <optional>
#include <set>
#include <utility>

#include "core/base64.h"

namespace phigate::auth {

namespace {

namespace json = boost::json;

// RFC 7517 §4 / RFC 7518 §6.3.2 / RFC 8037 §2: members that only a private (or
// symmetric) key has. "oth" is RSA multi-prime private information (RFC 7518 §6.3.2.7).
constexpr std::string_view kPrivateMembers[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};

Status KeyError(size_t index, std::string_view what) {
  return InvalidArgument("JWKS key " + std::to_string(index) + ": " + std::string(what));
}

// Outcome of looking at one entry of "keys": usable, skipped (not ours to use), or an error.
struct Entry {
  std::optional<Jwk> jwk;  // empty: skipped
};

// A member that must be a string when present: nullopt if absent, an error if not a string.
Result<std::optional<std::string_view>> OptionalString(const json::object& key, size_t index,
                                                       std::string_view name) {
  const json::value* v = key.if_contains(name);
  if (v == nullptr) return std::optional<std::string_view>();
  if (!v->is_string()) {
    return KeyError(index, "\"" + std::string(name) + "\" must be a string");
  }
  return std::optional<std::string_view>(v->get_string());
}

// A required base64url member (RFC 7518 §6: no padding), decoded.
Result<std::string> Base64UrlMember(const json::object& key, size_t index, std::string_view name) {
  ASSIGN_OR_RETURN(std::optional<std::string_view> text, OptionalString(key, index, name));
  if (!text) return KeyError(index, "missing \"" + std::string(name) + "\"");
  std::optional<std::string> bytes = Base64UrlDecode(*text);
  if (!bytes || bytes->empty()) {
    return KeyError(index, "\"" + std::string(name) + "\" is not base64url");
  }
  return std::move(*bytes);
}

// The algorithm a key of this kty/crv would verify; nullopt for types we do not use
// (oct, other curves, unknown kty), which are skipped.
Result<std::optional<crypto::JwsAlg>> AlgForType(const json::object& key, size_t index) {
  ASSIGN_OR_RETURN(std::optional<std::string_view> kty, OptionalString(key, index, "kty"));
  // RFC 7517 §4.1: "kty" is required in every JWK.
  if (!kty) return KeyError(index, "missing \"kty\"");
  if (*kty == "RSA") return std::optional<crypto::JwsAlg>(crypto::JwsAlg::kRS256);
  if (*kty != "EC" && *kty != "OKP") return std::optional<crypto::JwsAlg>();
  ASSIGN_OR_RETURN(std::optional<std::string_view> crv, OptionalString(key, index, "crv"));
  if (!crv) return KeyError(index, "missing \"crv\"");
  if (*kty == "EC" && *crv == "P-256") {
    return std::optional<crypto::JwsAlg>(crypto::JwsAlg::kES256);
  }
  if (*kty == "OKP" && *crv == "Ed25519") {
    return std::optional<crypto::JwsAlg>(crypto::JwsAlg::kEdDSA);
  }
  return std::optional<crypto::JwsAlg>();  // P-384, X25519, Ed448, ...
}

// RFC 7517 §4.2 "use" and §4.3 "key_ops": a key meant for something other than
// verifying signatures is skipped (providers publish encryption keys in the same set).
Result<bool> MeantForVerification(const json::object& key, size_t index) {
  ASSIGN_OR_RETURN(std::optional<std::string_view> use, OptionalString(key, index, "use"));
  if (use && *use != "sig") return false;
  const json::value* ops = key.if_contains("key_ops");
  if (ops == nullptr) return true;
  if (!ops->is_array()) return KeyError(index, "\"key_ops\" must be an array");
  bool verify = false;
  for (const json::value& op : ops->get_array()) {
    if (!op.is_string()) return KeyError(index, "\"key_ops\" must hold strings");
    if (op.get_string() == "verify") verify = true;
  }
  return verify;
}

Result<Entry> ParseKey(const json::value& value, size_t index) {
  if (!value.is_object()) return KeyError(index, "not a JSON object");
  const json::object& key = value.get_object();
  // Checked before anything else, whatever the key type: private material in a published
  // or registered key set means someone leaked a key, and using the set would hide it.
  for (std::string_view member : kPrivateMembers) {
    if (key.contains(member)) return KeyError(index, "private key members are not accepted");
  }
  ASSIGN_OR_RETURN(std::optional<std::string_view> kid, OptionalString(key, index, "kid"));
  ASSIGN_OR_RETURN(std::optional<std::string_view> alg_member, OptionalString(key, index, "alg"));
  ASSIGN_OR_RETURN(std::optional<crypto::JwsAlg> alg, AlgForType(key, index));
  if (!alg) return Entry{};
  ASSIGN_OR_RETURN(bool for_verification, MeantForVerification(key, index));
  if (!for_verification) return Entry{};
  // RFC 7517 §4.4: a key bound to another algorithm (e.g. RSA-OAEP, PS256) is not ours.
  if (alg_member && *alg_member != crypto::JwsAlgName(*alg)) return Entry{};

  Result<crypto::PublicKey> public_key = Status(StatusCode::kInternal, "unreachable");
  switch (*alg) {
    case crypto::JwsAlg::kRS256: {
      ASSIGN_OR_RETURN(std::string n, Base64UrlMember(key, index, "n"));
      ASSIGN_OR_RETURN(std::string e, Base64UrlMember(key, index, "e"));
      public_key = crypto::PublicKey::Rsa(n, e);
      break;
    }
    case crypto::JwsAlg::kES256: {
      ASSIGN_OR_RETURN(std::string x, Base64UrlMember(key, index, "x"));
      ASSIGN_OR_RETURN(std::string y, Base64UrlMember(key, index, "y"));
      public_key = crypto::PublicKey::EcP256(x, y);
      break;
    }
    case crypto::JwsAlg::kEdDSA: {
      ASSIGN_OR_RETURN(std::string x, Base64UrlMember(key, index, "x"));
      public_key = crypto::PublicKey::Ed25519(x);
      break;
    }
  }
  // The crypto layer's messages name the problem, never the key's bytes.
  if (!public_key.ok()) return KeyError(index, public_key.status().message());
  Jwk jwk;
  jwk.kid = kid ? std::string(*kid) : std::string();
  jwk.key = std::make_shared<const crypto::PublicKey>(std::move(public_key).value());
  return Entry{std::move(jwk)};
}

}  // namespace

std::shared_ptr<const crypto::PublicKey> JwkSet::Find(std::string_view kid,
                                                      crypto::JwsAlg alg) const {
  if (!kid.empty()) {
    // Kids are unique among usable keys (ParseJwks), so the first match is the only one.
    for (const Jwk& jwk : keys_) {
      if (jwk.kid == kid) return jwk.key->alg() == alg ? jwk.key : nullptr;
    }
    return nullptr;
  }
  // No kid (RFC 7515 §4.1.4 makes it optional): only an unambiguous choice is made, so a
  // token can never pick among several candidate keys by trial.
  std::shared_ptr<const crypto::PublicKey> found;
  for (const Jwk& jwk : keys_) {
    if (jwk.key->alg() != alg) continue;
    if (found) return nullptr;
    found = jwk.key;
  }
  return found;
}

Result<JwkSet> ParseJwks(std::string_view text) {
  if (text.size() > kMaxJwksBytes) {
    return InvalidArgument("JWKS is larger than " + std::to_string(kMaxJwksBytes) + " bytes");
  }
  boost::system::error_code ec;
  const json::value doc = json::parse(text, ec);
  if (ec) return InvalidArgument("JWKS is not valid JSON");
  const json::value* keys = doc.is_object() ? doc.get_object().if_contains("keys") : nullptr;
  if (keys == nullptr || !keys->is_array()) {
    return InvalidArgument("JWKS must be a JSON object with a \"keys\" array");
  }
  const json::array& entries = keys->get_array();
  if (entries.size() > kMaxJwksKeys) {
    return InvalidArgument("JWKS has more than " + std::to_string(kMaxJwksKeys) + " keys");
  }
  std::vector<Jwk> usable;
  std::set<std::string, std::less<>> kids;
  for (size_t i = 0; i < entries.size(); ++i) {
    ASSIGN_OR_RETURN(Entry entry, ParseKey(entries[i], i));
    if (!entry.jwk) continue;
    // RFC 7517 §4.5: kids are meant to tell keys apart; two usable keys sharing one would
    // let the set's order decide which key verifies a token.
    if (!entry.jwk->kid.empty() && !kids.insert(entry.jwk->kid).second) {
      return KeyError(i, "duplicate \"kid\"");
    }
    usable.push_back(std::move(*entry.jwk));
  }
  return JwkSet(std::move(usable));
}

}  // namespace phigate::auth
