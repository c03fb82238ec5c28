// Base64 (RFC 4648 §4) and base64url without padding (§5, as JOSE uses it).
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace phigate {

std::string Base64Encode(std::string_view bytes);
std::optional<std::string> Base64Decode(std::string_view text);
std::string Base64UrlEncode(std::string_view bytes);
// Rejects padding, whitespace and characters outside the url alphabet.
std::optional<std::string> Base64UrlDecode(std::string_view text);
std::string HexEncode(std::string_view bytes);

}  // namespace phigate
