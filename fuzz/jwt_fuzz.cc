// Fuzz target for compact JWS decoding and verification (auth/jwt.h), which every bearer
// token reaches before anything else is known about the caller.
//
// A fuzzer cannot forge ES256 signatures, so inputs are used two ways:
//   - as a whole token, which must never verify (a success would mean a signature check
//     that accepts what our key never signed);
//   - when the input has exactly one '.', as a signing input "header.payload" that this
//     target signs with its own key and completes into a token; this lets the fuzzer
//     reach the header rules, the signature check's success path and payload decoding.
// A token that verifies must carry a header with alg ES256, our kid and typ, and its claims
// must be exactly the payload's JSON object.
// The key is generated once per process, so committed seeds hold no valid signatures; the
// expected kid is a fixed string that seeds can spell.
// Thread-safety: libFuzzer calls this from one thread.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "auth/jwt.h"
#include "core/base64.h"
#include "crypto/signing_key.h"
#include "fuzz_check.h"

namespace {

namespace json = boost::json;

constexpr std::string_view kKid = "fuzz-kid";

struct Keys {
  phigate::crypto::SigningKey signing;
  phigate::crypto::PublicKey verifying;
};

Keys MakeKeys() {
  auto signing = phigate::crypto::SigningKey::Generate();
  if (!signing.ok()) {
    std::fprintf(stderr, "cannot generate a key: %s\n", signing.status().message().c_str());
    std::abort();
  }
  auto verifying = phigate::crypto::PublicKey::EcP256(signing->PublicX(), signing->PublicY());
  if (!verifying.ok()) {
    std::fprintf(stderr, "cannot load the public key: %s\n", verifying.status().message().c_str());
    std::abort();
  }
  return {std::move(signing).value(), std::move(verifying).value()};
}

const Keys& FuzzKeys() {
  static const Keys keys = MakeKeys();
  return keys;
}

std::optional<json::object> DecodePart(std::string_view b64) {
  const std::optional<std::string> text = phigate::Base64UrlDecode(b64);
  if (!text) return std::nullopt;
  boost::system::error_code ec;
  json::value v = json::parse(*text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

void CheckRejection(const phigate::Status& status) {
  FUZZ_CHECK(status.code() == phigate::StatusCode::kUnauthenticated);
  FUZZ_CHECK(status.message() == "invalid token");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Keys& keys = FuzzKeys();
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const auto raw = phigate::auth::DecodeAndVerifyJwt(input, keys.verifying, kKid, "at+jwt");
  FUZZ_CHECK(!raw.ok());
  CheckRejection(raw.status());

  const size_t dot = input.find('.');
  if (dot == std::string_view::npos || input.find('.', dot + 1) != std::string_view::npos) {
    return 0;
  }
  std::string token(input);
  token += '.';
  token += phigate::Base64UrlEncode(keys.signing.Sign(input));
  const auto signed_result =
      phigate::auth::DecodeAndVerifyJwt(token, keys.verifying, kKid, "at+jwt");
  if (!signed_result.ok()) {
    CheckRejection(signed_result.status());
    return 0;
  }
  FUZZ_CHECK(token.size() <= phigate::auth::kMaxJwtBytes);
  const std::optional<json::object> header = DecodePart(input.substr(0, dot));
  FUZZ_CHECK(header.has_value());
  const json::value* alg = header->if_contains("alg");
  FUZZ_CHECK(alg != nullptr && alg->is_string() && alg->get_string() == "ES256");
  const json::value* kid = header->if_contains("kid");
  FUZZ_CHECK(kid != nullptr && kid->is_string() && kid->get_string() == kKid);
  FUZZ_CHECK(header->if_contains("typ") != nullptr && !header->contains("crit"));
  const std::optional<json::object> payload = DecodePart(input.substr(dot + 1));
  FUZZ_CHECK(payload.has_value() && *payload == *signed_result);
  return 0;
}
