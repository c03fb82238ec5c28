// Compact JWS (RFC 7515 §7.1) with ES256 (RFC 7518 §3.4), as used for JWT access tokens
// (RFC 7519, RFC 9068). Only what phigate's own tokens need, and strict on decode, as
// RFC 8725 (JWT Best Current Practices) asks:
//   - a size cap before any parsing;
//   - exactly three base64url parts, no padding, no whitespace;
//   - the header must be a JSON object whose "alg" is exactly "ES256" (never "none",
//     never HMAC: RFC 8725 §2.1, §3.1), whose "kid" equals the expected key's, and whose
//     "typ" is the expected type (RFC 8725 §3.11; RFC 9068 §4 for "at+jwt");
//   - a "crit" header is refused, as we understand no extensions (RFC 7515 §4.1.11);
//   - "jku", "x5u", "jwk" and "x5c" are ignored: the key is configuration, never fetched
//     from or carried in the token (RFC 8725 §3.10);
//   - the signature is checked before the payload is even decoded; the payload must be a
//     JSON object.
// Duplicate JSON member names: Boost.JSON keeps the last one, which RFC 7519 §4 permits;
// since the signature covers the bytes, only our own issuer could produce them.
//
// Thread-safety: pure functions.
#pragma once

#include <boost/json.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "crypto/public_key.h"
#include "crypto/signing_key.h"

namespace phigate::auth {

// Upper bound on a compact JWS we will look at. Our access tokens are ~600 bytes.
inline constexpr size_t kMaxJwtBytes = 8 * 1024;
// RFC 9068 §2.1: JWT access tokens are typed "at+jwt".
inline constexpr std::string_view kAccessTokenTyp = "at+jwt";

// Signs `claims` with `key`: header {"alg":"ES256","typ":<typ>,"kid":key.kid()}.
std::string EncodeJwt(const crypto::SigningKey& key, std::string_view typ,
                      const boost::json::object& claims);

// Decodes and verifies a compact JWS; returns its claims. Every failure is
// kUnauthenticated "invalid token": the reason is not told to an unauthenticated caller.
// `typ` matches case-insensitively, with or without the "application/" prefix
// (RFC 7515 §4.1.9).
Result<boost::json::object> DecodeAndVerifyJwt(std::string_view token, const crypto::PublicKey& key,
                                               std::string_view expected_kid,
                                               std::string_view expected_typ);

// --- Any party's JWS (external OpenID providers, private_key_jwt client assertions) ---
// Same strictness as above, but the key is looked up by the caller between the two steps:
//   auto parts = ParseJws(token);             // structure + header only, no trust
//   key = keys.Find(parts->kid, alg)          // the caller's key set decides
//   auto claims = VerifyJws(*parts, *key);    // signature, then the payload
struct JwsParts {
  std::string alg;            // header "alg", verbatim (a string; anything else is refused)
  std::string kid;            // header "kid" or empty
  std::string typ;            // header "typ" or empty
  std::string signing_input;  // header '.' payload, as received
  std::string signature;      // base64url-decoded
  std::string payload_b64;
};

// kUnauthenticated "invalid token" unless: size <= kMaxJwtBytes, exactly three non-empty
// base64url parts, header a JSON object with a string "alg", "kid"/"typ" strings if
// present, no "crit". "jku", "x5u", "jwk", "x5c" are ignored (never fetched or used).
Result<JwsParts> ParseJws(std::string_view token);

// A base64url-encoded JSON object (a JWS header or payload), parsed without exceptions;
// nullopt on any failure. Decoding is not verifying: see VerifyJws.
std::optional<boost::json::object> DecodeJsonObject(std::string_view b64);

// True if `typ` equals `want` case-insensitively, with or without "application/".
bool JwsTypMatches(std::string_view typ, std::string_view want);

// kUnauthenticated "invalid token" unless parts.alg names an algorithm (ParseJwsAlg) equal
// to key.alg() and the signature verifies; then the payload must be a JSON object.
Result<boost::json::object> VerifyJws(const JwsParts& parts, const crypto::PublicKey& key);

// Signs `claims` with header {"alg":<key.alg()>,"typ":<typ>,"kid":<kid>} (typ/kid omitted
// when empty).
std::string EncodeJws(const crypto::PrivateKey& key, std::string_view kid, std::string_view typ,
                      const boost::json::object& claims);

}  // namespace phigate::auth
