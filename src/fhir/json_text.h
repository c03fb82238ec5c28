// Text-level access to a JSON object that has already been parsed and validated.
//
// Stored resources keep the client's bytes for every element: Boost.JSON 1.81 holds
// decimals as binary doubles, so re-serializing would turn 72.50 into 7.25E1 and drop
// digits, while FHIR requires a decimal's precision to be kept (datatypes.html#decimal).
// The server therefore rewrites only the top-level members it owns (id, meta) and copies
// every other member's text verbatim, minus insignificant whitespace.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace phigate::fhir {

struct RawMember {
  std::string key;         // decoded member name
  std::string_view value;  // the member's value, exactly as in the text
};

// The members of the top-level object in `object_text`, in order. Precondition: the text
// is one valid JSON object (it was parsed successfully); anything else yields {}.
std::vector<RawMember> TopLevelMembers(std::string_view object_text);

// Like TopLevelMembers, but reports whether the scan consumed the whole text as one object
// (`{` members `}` and nothing after but whitespace), so a caller that skips the full
// parse (the read path, over text the server stored after validating it) still notices
// text it did not write. False leaves `members` unspecified.
bool ScanTopLevelMembers(std::string_view object_text, std::vector<RawMember>& members);

// A member as two slices of the text: no copy, no decoding.
struct MemberView {
  std::string_view key;    // the name between its quotes, exactly as in the text
  std::string_view value;  // the value, exactly as in the text
};

// ScanTopLevelMembers without allocating: false also when a name contains an escape
// (`\`), since the slice would not be the decoded name; callers then take a decoding path.
bool ScanTopLevelMemberViews(std::string_view object_text, std::vector<MemberView>& members);

// Appends `json_text` without whitespace outside strings.
void AppendMinified(std::string& out, std::string_view json_text);

}  // namespace phigate::fhir
