// Hex decoding for known-answer vectors, which the standards print in hex.
// Thread-safety: pure function.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace phigate::testing {

inline std::string FromHex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  if (hex.size() % 2 != 0) ADD_FAILURE() << "odd-length hex vector";
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) ADD_FAILURE() << "bad hex digit in vector at " << i;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

}  // namespace phigate::testing
