// HTML escaping for text phigate puts into markup: the authorization server's pages
// (auth/pages.h) and the narrative of the accounting of disclosures (audit/query.h).
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace phigate {

// &, <, >, " and ' as character references (HTML Living Standard §13.1.4: safe in text
// and in double- or single-quoted attribute values; valid XHTML too).
inline std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace phigate
