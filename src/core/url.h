// URL pieces: percent-decoding (RFC 3986 §2.1), query strings and
// application/x-www-form-urlencoded bodies (WHATWG URL §5).
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace phigate {

// Decodes %XX escapes; with `plus_is_space`, '+' becomes ' ' (form encoding). Fails on a
// malformed escape or an encoded NUL (never let %00 reach the layers below).
std::optional<std::string> PercentDecode(std::string_view in, bool plus_is_space);
std::string PercentEncode(std::string_view in);

using QueryParams = std::vector<std::pair<std::string, std::string>>;
// Splits "a=1&b=2" into decoded pairs in order; fails on any malformed escape.
std::optional<QueryParams> ParseQuery(std::string_view query);

}  // namespace phigate
