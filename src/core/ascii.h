// ASCII helpers for protocol text (HTTP header values, media types, auth schemes), where
// case-insensitivity and whitespace are defined over ASCII only (RFC 9110 §5.6).
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace phigate {

// Strips optional whitespace (spaces and tabs, RFC 9110 §5.6.3) from both ends.
inline std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

inline char ToLowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLowerAscii(a[i]) != ToLowerAscii(b[i])) return false;
  }
  return true;
}

inline std::string ToLowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ToLowerAscii(c);
  return out;
}

}  // namespace phigate
