// LineParser: a strict parser of the fixed one-line JSON shapes the audit trail writes
// (records, audit_log.cc; checkpoints, checkpoints.cc). Any other JSON spelling of the same
// data (spaces, escapes, reordered keys) is rejected, so each record and checkpoint has
// exactly one byte representation and a verifier never has to normalize.
// Thread-safety: a value over a caller-owned string; one thread.
#pragma once

#include <charconv>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace phigate::audit {

class LineParser {
 public:
  explicit LineParser(std::string_view line) : rest_(line) {}

  bool Literal(std::string_view text) {
    if (rest_.substr(0, text.size()) != text) return false;
    rest_.remove_prefix(text.size());
    return true;
  }

  // A non-negative decimal without leading zeros.
  template <typename T>
  bool Number(T* out) {
    size_t n = 0;
    while (n < rest_.size() && rest_[n] >= '0' && rest_[n] <= '9') ++n;
    if (n == 0 || (n > 1 && rest_[0] == '0')) return false;
    auto [ptr, ec] = std::from_chars(rest_.data(), rest_.data() + n, *out);
    if (ec != std::errc() || ptr != rest_.data() + n) return false;
    rest_.remove_prefix(n);
    return true;
  }

  // Exactly `count` lower-case hex digits. The string_view overloads point into the line.
  bool LowerHex(size_t count, std::string_view* out) {
    if (rest_.size() < count || !IsLowerHex(rest_.substr(0, count))) return false;
    *out = rest_.substr(0, count);
    rest_.remove_prefix(count);
    return true;
  }
  bool LowerHex(size_t count, std::string* out) {
    std::string_view view;
    if (!LowerHex(count, &view)) return false;
    out->assign(view);
    return true;
  }

  // A run of base64url characters (RFC 4648 §5, no padding).
  bool Base64Url(std::string_view* out, bool allow_empty) {
    size_t n = 0;
    while (n < rest_.size()) {
      const char c = rest_[n];
      const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_';
      if (!ok) break;
      ++n;
    }
    if (n == 0 && !allow_empty) return false;
    *out = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return true;
  }
  bool Base64Url(std::string* out, bool allow_empty) {
    std::string_view view;
    if (!Base64Url(&view, allow_empty)) return false;
    out->assign(view);
    return true;
  }

  // A JSON array of strings of exactly `count` lower-case hex digits each, "[]" when empty.
  bool LowerHexArray(size_t count, std::vector<std::string_view>* out) {
    out->clear();
    if (!Literal("[")) return false;
    if (Literal("]")) return true;
    do {
      std::string_view item;
      if (!Literal("\"") || !LowerHex(count, &item) || !Literal("\"")) return false;
      out->push_back(item);
    } while (Literal(","));
    return Literal("]");
  }

  static bool IsLowerHex(std::string_view text) {
    for (const char c : text) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
  }

  bool AtEnd() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

}  // namespace phigate::audit
