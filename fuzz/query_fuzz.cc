// Fuzz target for URL decoding (core/url.h): ParseQuery, which splits every search and
// form body, and PercentDecode in both modes.
//
// Invariants:
//   - a decoded value never holds a NUL (url.h: "never let %00 reach the layers below");
//   - PercentEncode then PercentDecode gives back any NUL-free input, in both modes;
//   - a parsed query, re-encoded as k=v pairs, parses to the same pairs.
// Thread-safety: libFuzzer calls this from one thread.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/url.h"
#include "fuzz_check.h"

namespace {

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  for (const bool plus_is_space : {false, true}) {
    const std::optional<std::string> decoded = phigate::PercentDecode(input, plus_is_space);
    if (decoded) {
      FUZZ_CHECK(!HasNul(*decoded));
      FUZZ_CHECK(decoded->size() <= input.size());
    }
    const std::optional<std::string> round_trip =
        phigate::PercentDecode(phigate::PercentEncode(input), plus_is_space);
    FUZZ_CHECK(HasNul(input) ? !round_trip.has_value() : round_trip == input);
  }

  const std::optional<phigate::QueryParams> params = phigate::ParseQuery(input);
  if (!params) return 0;
  std::string encoded;
  for (const auto& [key, value] : *params) {
    FUZZ_CHECK(!HasNul(key) && !HasNul(value));
    if (!encoded.empty()) encoded += '&';
    encoded += phigate::PercentEncode(key);
    encoded += '=';
    encoded += phigate::PercentEncode(value);
  }
  const std::optional<phigate::QueryParams> again = phigate::ParseQuery(encoded);
  FUZZ_CHECK(again.has_value() && *again == *params);
  return 0;
}
