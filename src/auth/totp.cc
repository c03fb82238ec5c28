#include "auth/totp.h"

#include <array>
#include <cstdio>

#include "core/url.h"
#include "crypto/crypto.h"

namespace phigate::auth {

namespace {

constexpr char kBase32Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";  // RFC 4648 §6
constexpr uint32_t kCodeModulus = 1000000;                              // 10^kTotpDigits
// A caller's window beyond this would accept codes minutes old; it is a programming
// error, so it is clamped rather than honoured.
constexpr int kMaxWindow = 10;

int Base32Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= '2' && c <= '7') return c - '2' + 26;
  return -1;
}

bool IsSixDigits(std::string_view code) {
  if (code.size() != static_cast<size_t>(kTotpDigits)) return false;
  for (char c : code) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

std::string Base32Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 8 + 4) / 5);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : bytes) {
    acc = (acc << 8) | static_cast<unsigned char>(c);
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += kBase32Alphabet[(acc >> bits) & 31];
    }
  }
  if (bits > 0) out += kBase32Alphabet[(acc << (5 - bits)) & 31];
  return out;
}

Result<std::string> Base32Decode(std::string_view text) {
  // RFC 4648 §6: padding makes the length a multiple of 8; a quantum ends in 0, 1, 3, 4
  // or 6 '=' characters. Without padding, the same lengths mod 8 (0, 7, 5, 4, 2) are valid.
  size_t pads = 0;
  while (!text.empty() && text.back() == '=') {
    text.remove_suffix(1);
    ++pads;
  }
  const size_t rest = text.size() % 8;
  const bool rest_ok = rest == 0 || rest == 2 || rest == 4 || rest == 5 || rest == 7;
  if (!rest_ok || pads >= 8 || (pads != 0 && (rest == 0 || (text.size() + pads) % 8 != 0))) {
    return InvalidArgument("invalid base32");
  }
  std::string out;
  out.reserve(text.size() * 5 / 8);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = Base32Value(c);
    if (v < 0) return InvalidArgument("invalid base32");
    acc = (acc << 5) | static_cast<uint32_t>(v);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  // Non-zero leftover bits mean a second spelling of the same bytes; one value, one text.
  if ((acc & ((1u << bits) - 1)) != 0) return InvalidArgument("invalid base32");
  return out;
}

std::string TotpCode(std::string_view secret, int64_t step) {
  // RFC 4226 §5.2: HMAC-SHA-1 over the 8-byte big-endian counter (RFC 6238 §4.2: T).
  std::array<char, 8> counter;
  auto value = static_cast<uint64_t>(step);
  for (int i = 7; i >= 0; --i) {
    counter[static_cast<size_t>(i)] = static_cast<char>(value & 0xFF);
    value >>= 8;
  }
  const std::string mac =
      crypto::HmacSha1(secret, std::string_view(counter.data(), counter.size()));
  // RFC 4226 §5.3 dynamic truncation: the low nibble of the last byte picks 4 bytes, whose
  // top bit is dropped so the number is the same signed or unsigned.
  const auto byte = [&mac](size_t i) {
    return static_cast<uint32_t>(static_cast<uint8_t>(mac[i]));
  };
  const size_t offset = byte(mac.size() - 1) & 0x0F;
  const uint32_t binary = ((byte(offset) & 0x7F) << 24) | (byte(offset + 1) << 16) |
                          (byte(offset + 2) << 8) | byte(offset + 3);
  char code[kTotpDigits + 1];
  static_cast<void>(std::snprintf(code, sizeof code, "%06u", binary % kCodeModulus));
  return std::string(code, kTotpDigits);
}

std::optional<int64_t> VerifyTotp(std::string_view secret, std::string_view code,
                                  int64_t unix_seconds, int64_t last_used_step, int window) {
  if (!IsSixDigits(code)) return std::nullopt;
  const int w = window < 0 ? 0 : (window > kMaxWindow ? kMaxWindow : window);
  const int64_t now = TotpStep(unix_seconds);
  std::optional<int64_t> matched;
  // Every candidate is computed and compared, so the time taken does not tell which step
  // (if any) matched. Steps at or below last_used_step are never candidates: RFC 6238
  // §5.2 asks that a code be accepted once only.
  for (int64_t step = now - w; step <= now + w; ++step) {
    if (step < 0 || step <= last_used_step) continue;
    // Should two steps share a code, the latest is returned: storing it burns both.
    if (crypto::ConstantTimeEquals(TotpCode(secret, step), code)) matched = step;
  }
  return matched;
}

std::string TotpUri(std::string_view issuer, std::string_view account, std::string_view secret) {
  // Key Uri Format: the label is "issuer:account" with each part percent-encoded (the ':'
  // separator literal), and the issuer is repeated as a parameter.
  return "otpauth://totp/" + PercentEncode(issuer) + ":" + PercentEncode(account) +
         "?secret=" + Base32Encode(secret) + "&issuer=" + PercentEncode(issuer) +
         "&algorithm=SHA1&digits=" + std::to_string(kTotpDigits) +
         "&period=" + std::to_string(kTotpStepS);
}

}  // namespace phigate::auth
