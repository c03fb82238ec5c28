// Fuzz target for JWK sets (auth/jwk.h) and JWS of other parties (auth/jwt.h ParseJws /
// VerifyJws). A JWKS arrives from an OpenID provider's jwks_uri or from a client
// registration file; a JWS from any unauthenticated caller.
//
// The whole input is parsed as a JWKS. Then, when it holds a '\n', the text before the
// first one is parsed as a JWKS (so seeds keep their JSON on one line) and the rest as a
// compact JWS, which is verified with the key the set yields for its kid and alg, as the
// token verifier does. Invariants:
//   - ParseJwks fails only with kInvalidArgument and a message about the JWKS;
//   - a parsed set holds at most kMaxJwksKeys keys, from at most kMaxJwksBytes of input,
//     every key non-null and with unique non-empty kids, and Find() by a key's own kid and
//     algorithm returns that key; Find() returns only keys of the asked algorithm;
//   - ParseJws and VerifyJws fail only with kUnauthenticated "invalid token", and ParseJws
//     never accepts more than kMaxJwtBytes;
//   - a JWS that verifies names the key's algorithm exactly (never "none" or HS256).
// A fuzzer cannot forge signatures; seeds that pair an RFC 7515 / RFC 8037 public key with
// its published example reach the success path legitimately.
// Thread-safety: libFuzzer calls this from one thread.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "auth/jwk.h"
#include "auth/jwt.h"
#include "crypto/public_key.h"
#include "fuzz_check.h"

namespace {

using phigate::Result;
using phigate::Status;
using phigate::StatusCode;
using phigate::auth::JwkSet;
using phigate::crypto::JwsAlg;

constexpr JwsAlg kAlgs[] = {JwsAlg::kRS256, JwsAlg::kES256, JwsAlg::kEdDSA};

void CheckInvalidToken(const Status& status) {
  FUZZ_CHECK(status.code() == StatusCode::kUnauthenticated);
  FUZZ_CHECK(status.message() == "invalid token");
}

std::optional<JwkSet> CheckJwks(std::string_view text) {
  Result<JwkSet> set = phigate::auth::ParseJwks(text);
  if (!set.ok()) {
    FUZZ_CHECK(set.status().code() == StatusCode::kInvalidArgument);
    FUZZ_CHECK(set.status().message().starts_with("JWKS "));
    return std::nullopt;
  }
  FUZZ_CHECK(text.size() <= phigate::auth::kMaxJwksBytes);
  FUZZ_CHECK(set->size() <= phigate::auth::kMaxJwksKeys);
  std::set<std::string, std::less<>> kids;
  for (const phigate::auth::Jwk& jwk : set->keys()) {
    FUZZ_CHECK(jwk.key != nullptr);
    if (jwk.kid.empty()) continue;
    FUZZ_CHECK(kids.insert(jwk.kid).second);
    FUZZ_CHECK(set->Find(jwk.kid, jwk.key->alg()) == jwk.key);
  }
  for (JwsAlg alg : kAlgs) {
    const std::shared_ptr<const phigate::crypto::PublicKey> any = set->Find("", alg);
    FUZZ_CHECK(any == nullptr || any->alg() == alg);
  }
  return std::move(set).value();
}

void CheckJws(const JwkSet& keys, std::string_view token) {
  Result<phigate::auth::JwsParts> parts = phigate::auth::ParseJws(token);
  if (!parts.ok()) {
    CheckInvalidToken(parts.status());
    return;
  }
  FUZZ_CHECK(token.size() <= phigate::auth::kMaxJwtBytes);
  const std::optional<JwsAlg> alg = phigate::crypto::ParseJwsAlg(parts->alg);
  // Try every key of the set, not only the one Find picks: an algorithm mismatch must fail
  // whichever key a buggy lookup might hand over.
  for (const phigate::auth::Jwk& jwk : keys.keys()) {
    Result<boost::json::object> claims = phigate::auth::VerifyJws(*parts, *jwk.key);
    if (!claims.ok()) {
      CheckInvalidToken(claims.status());
      continue;
    }
    FUZZ_CHECK(alg.has_value() && *alg == jwk.key->alg());
    FUZZ_CHECK(parts->alg == phigate::crypto::JwsAlgName(jwk.key->alg()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  static_cast<void>(CheckJwks(input));
  const size_t newline = input.find('\n');
  if (newline == std::string_view::npos) return 0;
  const std::optional<JwkSet> keys = CheckJwks(input.substr(0, newline));
  if (!keys) return 0;
  std::string_view token = input.substr(newline + 1);
  // Seeds are text files that end in a newline; a token never contains one.
  if (token.ends_with('\n')) token.remove_suffix(1);
  CheckJws(*keys, token);
  return 0;
}
