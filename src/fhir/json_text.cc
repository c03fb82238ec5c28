#include "fhir/json_text.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace phigate::fhir {

namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() && IsSpace(s[i])) ++i;
  return i;
}

// `i` is at an opening quote; returns the index just past the closing quote.
size_t SkipString(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return s.size();
}

// `i` is at the first character of a value; returns the index just past it.
size_t SkipValue(std::string_view s, size_t i) {
  if (i >= s.size()) return s.size();
  if (s[i] == '"') return SkipString(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      char c = s[i];
      if (c == '"') {
        i = SkipString(s, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return s.size();
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && !IsSpace(s[i])) ++i;
  return i;
}

}  // namespace

std::vector<RawMember> TopLevelMembers(std::string_view text) {
  std::vector<RawMember> members;
  if (!ScanTopLevelMembers(text, members)) members.clear();
  return members;
}

namespace {

// The one scanner of a top-level object: calls on_member(raw_key, value) for each member,
// raw_key being the name with its quotes exactly as in the text; stops (false) when
// on_member does. True only if the whole text is one object and nothing follows it.
template <typename OnMember>
bool ScanObject(std::string_view text, OnMember&& on_member) {
  size_t i = SkipSpace(text, 0);
  if (i >= text.size() || text[i] != '{') return false;
  i = SkipSpace(text, i + 1);
  while (i < text.size() && text[i] == '"') {
    const size_t key_end = SkipString(text, i);
    if (key_end > text.size() || key_end - i < 2) return false;
    const std::string_view raw_key = text.substr(i, key_end - i);
    i = SkipSpace(text, key_end);
    if (i >= text.size() || text[i] != ':') return false;
    i = SkipSpace(text, i + 1);
    const size_t value_end = SkipValue(text, i);
    if (value_end == i) return false;  // no value
    if (!on_member(raw_key, text.substr(i, value_end - i))) return false;
    i = SkipSpace(text, value_end);
    if (i < text.size() && text[i] == ',') {
      i = SkipSpace(text, i + 1);
      if (i >= text.size() || text[i] != '"') return false;  // a trailing comma
    } else {
      break;  // only the closing brace may follow a member without a comma
    }
  }
  if (i >= text.size() || text[i] != '}') return false;
  return SkipSpace(text, i + 1) == text.size();
}

}  // namespace

bool ScanTopLevelMembers(std::string_view text, std::vector<RawMember>& members) {
  members.clear();
  return ScanObject(text, [&members](std::string_view raw_key, std::string_view value) {
    std::string key;
    if (raw_key.find('\\') == std::string_view::npos) {
      key = std::string(raw_key.substr(1, raw_key.size() - 2));
    } else {
      // An escaped name: let the JSON parser decode it.
      boost::system::error_code ec;
      boost::json::value v = boost::json::parse(raw_key, ec);
      if (ec || !v.is_string()) return false;
      key = std::string(v.as_string());
    }
    members.push_back({std::move(key), value});
    return true;
  });
}

bool ScanTopLevelMemberViews(std::string_view text, std::vector<MemberView>& members) {
  members.clear();
  return ScanObject(text, [&members](std::string_view raw_key, std::string_view value) {
    const std::string_view key = raw_key.substr(1, raw_key.size() - 2);
    if (key.find('\\') != std::string_view::npos) return false;
    members.push_back({key, value});
    return true;
  });
}

void AppendMinified(std::string& out, std::string_view s) {
  out.reserve(out.size() + s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '"') {
      size_t end = SkipString(s, i);
      out.append(s.substr(i, end - i));
      i = end;
    } else {
      if (!IsSpace(s[i])) out += s[i];
      ++i;
    }
  }
}

}  // namespace phigate::fhir
