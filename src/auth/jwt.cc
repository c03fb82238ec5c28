#include "auth/jwt.h"

#include <cctype>
#include <optional>

#include "core/base64.h"

namespace phigate::auth {

namespace {

constexpr size_t kEs256SignatureBytes = 64;  // r || s, RFC 7518 §3.4

Status InvalidToken() { return {StatusCode::kUnauthenticated, "invalid token"}; }

// Parses a base64url JSON object without exceptions; nullopt on any failure.
std::optional<boost::json::object> DecodeJsonObject(std::string_view b64) {
  std::optional<std::string> text = Base64UrlDecode(b64);
  if (!text) return std::nullopt;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(*text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

bool TypMatches(std::string_view got, std::string_view want) {
  auto lower = [](std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  std::string g = lower(got);
  const std::string w = lower(want);
  if (g.starts_with("application/")) g.erase(0, std::string_view("application/").size());
  return g == w;
}

const boost::json::string* StringMember(const boost::json::object& o, std::string_view key) {
  const boost::json::value* v = o.if_contains(key);
  return v == nullptr ? nullptr : v->if_string();
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

Result<boost::json::object> DecodeAndVerifyJwt(std::string_view token,
                                               const crypto::VerifyingKey& key,
                                               std::string_view expected_kid,
                                               std::string_view expected_typ) {
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

  std::optional<boost::json::object> header = DecodeJsonObject(header_b64);
  if (!header) return InvalidToken();
  // alg is compared exactly: no "none", no HS256 with the public key as secret, no
  // case variants (RFC 8725 §2.1, §3.1).
  const boost::json::string* alg = StringMember(*header, "alg");
  if (alg == nullptr || *alg != "ES256") return InvalidToken();
  const boost::json::string* kid = StringMember(*header, "kid");
  if (kid == nullptr || *kid != expected_kid) return InvalidToken();
  const boost::json::string* typ = StringMember(*header, "typ");
  if (typ == nullptr || !TypMatches(*typ, expected_typ)) return InvalidToken();
  if (header->contains("crit")) return InvalidToken();

  std::optional<std::string> signature = Base64UrlDecode(signature_b64);
  if (!signature || signature->size() != kEs256SignatureBytes) return InvalidToken();
  // RFC 7515 §5.2: the signing input is the encoded header '.' the encoded payload.
  if (!key.Verify(token.substr(0, dot2), *signature)) return InvalidToken();

  std::optional<boost::json::object> payload = DecodeJsonObject(payload_b64);
  if (!payload) return InvalidToken();
  return std::move(*payload);
}

}  // namespace phigate::auth
