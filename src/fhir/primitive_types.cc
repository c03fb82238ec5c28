#include "fhir/primitive_types.h"

#include <array>
#include <cstdint>
#include <utility>

namespace phigate::fhir {
namespace {

constexpr std::int64_t kMaxInt32 = 2147483647;

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLowerHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f'); }
bool IsBase64Char(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' || c == '/' ||
         c == '=';
}
// C0 controls and DEL, which never belong in a URI.
bool IsControl(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

// A forward-only cursor over the text being checked; every method either consumes what it
// was asked for and returns true, or returns false (callers then reject the whole text).
class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}

  bool AtEnd() const { return pos_ == text_.size(); }
  bool Peek(char c) const { return pos_ < text_.size() && text_[pos_] == c; }
  bool Consume(char c) {
    if (!Peek(c)) return false;
    ++pos_;
    return true;
  }
  bool Consume(std::string_view s) {
    if (text_.substr(pos_, s.size()) != s) return false;
    pos_ += s.size();
    return true;
  }
  // Exactly `n` decimal digits, as a number.
  bool Digits(int n, int* out) {
    int value = 0;
    for (int i = 0; i < n; ++i) {
      if (pos_ >= text_.size() || !IsDigit(text_[pos_])) return false;
      value = value * 10 + (text_[pos_++] - '0');
    }
    *out = value;
    return true;
  }
  // One or more decimal digits.
  bool SomeDigits() {
    const std::size_t start = pos_;
    while (pos_ < text_.size() && IsDigit(text_[pos_])) ++pos_;
    return pos_ > start;
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
};

bool IsLeapYear(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int DaysInMonth(int year, int month) {
  static constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && IsLeapYear(year) ? 29 : kDays[month - 1];
}

// YYYY[-MM[-DD]]; returns how many parts were present (1-3), or 0 if malformed.
int ScanDate(Scanner& s) {
  int year = 0;
  int month = 0;
  int day = 0;
  if (!s.Digits(4, &year) || year == 0) return 0;
  if (!s.Consume('-')) return 1;
  if (!s.Digits(2, &month) || month < 1 || month > 12) return 0;
  if (!s.Consume('-')) return 2;
  if (!s.Digits(2, &day) || day < 1 || day > DaysInMonth(year, month)) return 0;
  return 3;
}

// hh:mm:ss[.f+], with 60 seconds allowed for leap seconds as in the published pattern.
bool ScanTime(Scanner& s) {
  int hour = 0;
  int minute = 0;
  int second = 0;
  if (!s.Digits(2, &hour) || hour > 23 || !s.Consume(':')) return false;
  if (!s.Digits(2, &minute) || minute > 59 || !s.Consume(':')) return false;
  if (!s.Digits(2, &second) || second > 60) return false;
  return !s.Consume('.') || s.SomeDigits();
}

// Z, or +hh:mm / -hh:mm from 00:00 to 14:00.
bool ScanZone(Scanner& s) {
  if (s.Consume('Z')) return true;
  if (!s.Consume('+') && !s.Consume('-')) return false;
  int hours = 0;
  int minutes = 0;
  if (!s.Digits(2, &hours) || !s.Consume(':') || !s.Digits(2, &minutes)) return false;
  if (hours == 14) return minutes == 0;
  return hours <= 13 && minutes <= 59;
}

// [1-9][0-9]* or 0 (when `allow_zero`), at most `max`; a leading '-' is the caller's job.
bool ScanBoundedNatural(std::string_view digits, bool allow_zero, std::int64_t max) {
  if (digits.empty()) return false;
  if (digits[0] == '0') return allow_zero && digits.size() == 1;
  if (digits.size() > 10) return false;  // more than 2^31 whatever the digits
  std::int64_t value = 0;
  for (char c : digits) {
    if (!IsDigit(c)) return false;
    value = value * 10 + (c - '0');
  }
  return value <= max;
}

}  // namespace

std::optional<PrimitiveKind> PrimitiveKindFromName(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, PrimitiveKind>, 20> kNames = {{
      {"base64Binary", PrimitiveKind::kBase64Binary},
      {"boolean", PrimitiveKind::kBoolean},
      {"canonical", PrimitiveKind::kCanonical},
      {"code", PrimitiveKind::kCode},
      {"date", PrimitiveKind::kDate},
      {"dateTime", PrimitiveKind::kDateTime},
      {"decimal", PrimitiveKind::kDecimal},
      {"id", PrimitiveKind::kId},
      {"instant", PrimitiveKind::kInstant},
      {"integer", PrimitiveKind::kInteger},
      {"markdown", PrimitiveKind::kMarkdown},
      {"oid", PrimitiveKind::kOid},
      {"positiveInt", PrimitiveKind::kPositiveInt},
      {"string", PrimitiveKind::kString},
      {"time", PrimitiveKind::kTime},
      {"unsignedInt", PrimitiveKind::kUnsignedInt},
      {"uri", PrimitiveKind::kUri},
      {"url", PrimitiveKind::kUrl},
      {"uuid", PrimitiveKind::kUuid},
      {"xhtml", PrimitiveKind::kXhtml},
  }};
  for (const auto& [n, kind] : kNames) {
    if (n == name) return kind;
  }
  return std::nullopt;
}

bool MatchesString(std::string_view text) {
  bool has_content = false;
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
      return false;
    }
    if (!IsAsciiSpace(c)) has_content = true;
  }
  return has_content;
}

bool MatchesCode(std::string_view text) {
  if (!MatchesString(text)) return false;
  // Tokens separated by single whitespace characters: no leading, trailing or doubled ones.
  if (IsAsciiSpace(text.front()) || IsAsciiSpace(text.back())) return false;
  for (std::size_t i = 1; i < text.size(); ++i) {
    if (IsAsciiSpace(text[i]) && IsAsciiSpace(text[i - 1])) return false;
  }
  return true;
}

bool MatchesId(std::string_view text) {
  if (text.empty() || text.size() > 64) return false;
  for (char c : text) {
    const bool ok =
        IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool MatchesUri(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (IsAsciiSpace(c) || IsControl(c)) return false;
  }
  return true;
}

bool MatchesOid(std::string_view text) {
  Scanner s(text);
  if (!s.Consume("urn:oid:")) return false;
  if (!s.Consume('0') && !s.Consume('1') && !s.Consume('2')) return false;
  int arcs = 0;
  while (s.Consume('.')) {
    // 0 or [1-9][0-9]*
    if (s.Consume('0')) {
      if (!s.AtEnd() && !s.Peek('.')) return false;
    } else if (!s.SomeDigits()) {
      return false;
    }
    ++arcs;
  }
  return arcs > 0 && s.AtEnd();
}

bool MatchesUuid(std::string_view text) {
  static constexpr std::string_view kPrefix = "urn:uuid:";
  static constexpr std::array<std::size_t, 5> kGroups = {8, 4, 4, 4, 12};
  if (text.substr(0, kPrefix.size()) != kPrefix) return false;
  std::string_view rest = text.substr(kPrefix.size());
  if (rest.size() != 36) return false;
  std::size_t pos = 0;
  for (std::size_t g = 0; g < kGroups.size(); ++g) {
    if (g > 0 && rest[pos++] != '-') return false;
    for (std::size_t i = 0; i < kGroups[g]; ++i) {
      if (!IsLowerHex(rest[pos++])) return false;
    }
  }
  return true;
}

bool MatchesDate(std::string_view text) {
  Scanner s(text);
  return ScanDate(s) > 0 && s.AtEnd();
}

bool MatchesDateTime(std::string_view text) {
  Scanner s(text);
  const int parts = ScanDate(s);
  if (parts == 0) return false;
  if (s.AtEnd()) return true;
  // A time is allowed only after a full date, and then needs a zone.
  return parts == 3 && s.Consume('T') && ScanTime(s) && ScanZone(s) && s.AtEnd();
}

bool MatchesInstant(std::string_view text) {
  Scanner s(text);
  return ScanDate(s) == 3 && s.Consume('T') && ScanTime(s) && ScanZone(s) && s.AtEnd();
}

bool MatchesTime(std::string_view text) {
  Scanner s(text);
  return ScanTime(s) && s.AtEnd();
}

bool MatchesBase64Binary(std::string_view text) {
  // Whitespace-separated runs of alphabet characters, each run a whole number of
  // four-character groups, at least one group in total.
  std::size_t run = 0;
  bool any = false;
  for (char c : text) {
    if (IsAsciiSpace(c)) {
      if (run % 4 != 0) return false;
      run = 0;
    } else if (IsBase64Char(c)) {
      ++run;
      any = true;
    } else {
      return false;
    }
  }
  return any && run % 4 == 0;
}

bool MatchesXhtml(std::string_view text) {
  static constexpr std::string_view kOpen = "<div";
  static constexpr std::string_view kClose = "</div>";
  if (text.substr(0, kOpen.size()) != kOpen || text.size() <= kOpen.size()) return false;
  const char next = text[kOpen.size()];
  if (!IsAsciiSpace(next) && next != '>' && next != '/') return false;
  while (!text.empty() && IsAsciiSpace(text.back())) text.remove_suffix(1);
  return text.size() >= kOpen.size() + kClose.size() &&
         text.substr(text.size() - kClose.size()) == kClose;
}

bool MatchesDecimalText(std::string_view text) {
  Scanner s(text);
  s.Consume('-');
  if (!s.Consume('0') && !s.SomeDigits()) return false;  // 0 or [1-9][0-9]*
  if (s.Consume('.') && !s.SomeDigits()) return false;
  if (s.Consume('e') || s.Consume('E')) {
    if (!s.Consume('+')) s.Consume('-');
    if (!s.SomeDigits()) return false;
  }
  return s.AtEnd();
}

bool MatchesIntegerText(std::string_view text) {
  if (!text.empty() && text[0] == '-') {
    return ScanBoundedNatural(text.substr(1), /*allow_zero=*/true, kMaxInt32 + 1);
  }
  return ScanBoundedNatural(text, /*allow_zero=*/true, kMaxInt32);
}

bool MatchesPositiveIntText(std::string_view text) {
  return ScanBoundedNatural(text, /*allow_zero=*/false, kMaxInt32);
}

bool MatchesUnsignedIntText(std::string_view text) {
  return ScanBoundedNatural(text, /*allow_zero=*/true, kMaxInt32);
}

std::size_t CodePointCount(std::string_view utf8) {
  std::size_t count = 0;
  for (char c : utf8) {
    // Count every byte that does not continue a multi-byte sequence.
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
}

}  // namespace phigate::fhir
