#include "auth/jwt.h"

#include <optional>
#include <utility>

#include "core/ascii.h"
#include "core/base64.h"

namespace phigate::auth {

std::optional<boost::json::object> DecodeJsonObject(std::string_view b64) {
  std::optional<std::string> text = Base64UrlDecode(b64);
  if (!text) return std::nullopt;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(*text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

namespace {

constexpr size_t kEs256SignatureBytes = 64;  // r || s, RFC 7518 §3.4

Status InvalidToken() { return {StatusCode::kUnauthenticated, "invalid token"}; }

const boost::json::string* StringMember(const boost::json::object& o, std::string_view key) {
  const boost::json::value* v = o.if_contains(key);
  return v == nullptr ? nullptr : v->if_string();
}

bool IsBase64Url(std::string_view s) {
  for (char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// RFC 7519 §7.2 step 10: the claims set must be a JSON object.
Result<boost::json::object> DecodePayload(std::string_view payload_b64) {
  std::optional<boost::json::object> payload = DecodeJsonObject(payload_b64);
  if (!payload) return InvalidToken();
  return std::move(*payload);
}

}  // namespace

std::string EncodeJwt(const crypto::SigningKey& key, std::string_view typ,
                      const boost::json::object& claims) {
  boost::json::object header;
  header["alg"] = "ES256";
  header["typ"] = typ;
  header["kid"] = key.kid();
  std::string signing_input = Base64UrlEncode(boost::json::serialize(header));
  signing_input += '.';
  signing_input += Base64UrlEncode(boost::json::serialize(claims));
  const std::string signature = key.Sign(signing_input);
  signing_input += '.';
  signing_input += Base64UrlEncode(signature);
  return signing_input;
}

Result<boost::json::object> DecodeAndVerifyJwt(std::string_view token, const crypto::PublicKey& key,
                                               std::string_view expected_kid,
                                               std::string_view expected_typ) {
  ASSIGN_OR_RETURN(JwsParts parts, ParseJws(token));
  // alg is compared exactly: no "none", no HS256 with the public key as secret, no
  // case variants (RFC 8725 §2.1, §3.1).
  if (parts.alg != "ES256") return InvalidToken();
  if (parts.kid.empty() || parts.kid != expected_kid) return InvalidToken();
  if (!JwsTypMatches(parts.typ, expected_typ)) return InvalidToken();
  if (parts.signature.size() != kEs256SignatureBytes) return InvalidToken();
  if (!key.Verify(crypto::JwsAlg::kES256, parts.signing_input, parts.signature)) {
    return InvalidToken();
  }
  return DecodePayload(parts.payload_b64);
}

Result<JwsParts> ParseJws(std::string_view token) {
  // Bound the work an unauthenticated input can cause before decoding anything.
  if (token.empty() || token.size() > kMaxJwtBytes) return InvalidToken();
  const size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return InvalidToken();
  const size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos) return InvalidToken();
  if (token.find('.', dot2 + 1) != std::string_view::npos) return InvalidToken();  // JWE or junk
  const std::string_view header_b64 = token.substr(0, dot1);
  const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_b64 = token.substr(dot2 + 1);
  if (header_b64.empty() || payload_b64.empty() || signature_b64.empty()) return InvalidToken();
  // The payload is decoded only after the signature verifies; its alphabet is checked now
  // so that a token is either well-formed compact JWS or refused here.
  if (!IsBase64Url(payload_b64)) return InvalidToken();

  std::optional<boost::json::object> header = DecodeJsonObject(header_b64);
  if (!header) return InvalidToken();
  // RFC 7515 §4.1.11: we implement no extension, so a "crit" header cannot be honoured.
  if (header->contains("crit")) return InvalidToken();
  const boost::json::string* alg = StringMember(*header, "alg");
  if (alg == nullptr) return InvalidToken();
  JwsParts parts;
  parts.alg = std::string(*alg);
  // kid and typ are optional, but when present they must be strings (RFC 7515 §4.1.4,
  // §4.1.9). jku, x5u, jwk and x5c are never read (RFC 8725 §3.10).
  for (auto [name, out] : {std::pair{"kid", &parts.kid}, std::pair{"typ", &parts.typ}}) {
    const boost::json::value* v = header->if_contains(name);
    if (v == nullptr) continue;
    if (!v->is_string()) return InvalidToken();
    *out = std::string(v->get_string());
  }
  std::optional<std::string> signature = Base64UrlDecode(signature_b64);
  if (!signature) return InvalidToken();
  // RFC 7515 §5.2: the signing input is the encoded header '.' the encoded payload.
  parts.signing_input = std::string(token.substr(0, dot2));
  parts.signature = std::move(*signature);
  parts.payload_b64 = std::string(payload_b64);
  return parts;
}

bool JwsTypMatches(std::string_view typ, std::string_view want) {
  // RFC 7515 §4.1.9: "typ" is a media type, matched case-insensitively, and the
  // "application/" prefix may be left out.
  std::string got = ToLowerAscii(typ);
  if (got.starts_with("application/")) got.erase(0, std::string_view("application/").size());
  return got == ToLowerAscii(want);
}

Result<boost::json::object> VerifyJws(const JwsParts& parts, const crypto::PublicKey& key) {
  // The header's alg must name the key's own algorithm (RFC 8725 §3.1); "none", HS256
  // and every other name have no JwsAlg and fail here.
  const std::optional<crypto::JwsAlg> alg = crypto::ParseJwsAlg(parts.alg);
  if (!alg || *alg != key.alg()) return InvalidToken();
  if (!key.Verify(*alg, parts.signing_input, parts.signature)) return InvalidToken();
  return DecodePayload(parts.payload_b64);
}

std::string EncodeJws(const crypto::PrivateKey& key, std::string_view kid, std::string_view typ,
                      const boost::json::object& claims) {
  boost::json::object header;
  header["alg"] = crypto::JwsAlgName(key.alg());
  if (!typ.empty()) header["typ"] = typ;
  if (!kid.empty()) header["kid"] = kid;
  std::string signing_input = Base64UrlEncode(boost::json::serialize(header));
  signing_input += '.';
  signing_input += Base64UrlEncode(boost::json::serialize(claims));
  const std::string signature = key.Sign(signing_input);
  signing_input += '.';
  signing_input += Base64UrlEncode(signature);
  return signing_input;
}

}  // namespace phigate::auth
