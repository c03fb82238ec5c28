#include "core/base64.h"

#include <array>
#include <cstdint>

namespace phigate {

namespace {

constexpr char kStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Encode(std::string_view in, const char* alphabet, bool pad) {
  // Sized once and filled through a pointer: every audit record's ciphertext passes here,
  // and a capacity check per character cost more than the encoding.
  const size_t full = in.size() / 3;
  std::string out(full * 4, '\0');
  char* o = out.data();
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3, o += 4) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    o[0] = alphabet[(n >> 18) & 63];
    o[1] = alphabet[(n >> 12) & 63];
    o[2] = alphabet[(n >> 6) & 63];
    o[3] = alphabet[n & 63];
  }
  size_t rest = in.size() - i;
  if (rest == 1) {
    uint32_t n = uint8_t(in[i]) << 16;
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    if (pad) out += "==";
  } else if (rest == 2) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    out += alphabet[(n >> 6) & 63];
    if (pad) out += '=';
  }
  return out;
}

std::optional<std::string> Decode(std::string_view in, const char* alphabet, bool padded) {
  std::array<int, 256> rev;
  rev.fill(-1);
  for (int i = 0; i < 64; ++i) rev[uint8_t(alphabet[i])] = i;
  if (padded) {
    if (in.size() % 4 != 0) return std::nullopt;
    size_t pads = 0;
    while (pads < 2 && !in.empty() && in.back() == '=') {
      in.remove_suffix(1);
      ++pads;
    }
  }
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = rev[uint8_t(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xFF);
    }
  }
  // Non-canonical trailing bits are rejected so that one value has one encoding.
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace

std::string Base64Encode(std::string_view bytes) { return Encode(bytes, kStd, true); }
std::optional<std::string> Base64Decode(std::string_view text) { return Decode(text, kStd, true); }
std::string Base64UrlEncode(std::string_view bytes) { return Encode(bytes, kUrl, false); }
std::optional<std::string> Base64UrlDecode(std::string_view text) {
  return Decode(text, kUrl, false);
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  char* o = out.data();
  for (char c : bytes) {
    *o++ = kHex[(uint8_t(c) >> 4) & 15];
    *o++ = kHex[uint8_t(c) & 15];
  }
  return out;
}

}  // namespace phigate
