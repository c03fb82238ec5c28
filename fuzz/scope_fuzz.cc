// Fuzz target for SMART scope strings (auth/scope.h), which arrive unauthenticated in
// token requests.
//
// The input is split at its first '\n' into two scope strings, so that Covers() sees pairs
// of parsed sets. Invariants on every set that parses:
//   - it covers itself;
//   - ToString() parses again, to a set with the same text that covers and is covered by
//     the original (one permission set, one meaning);
//   - a set grants an interaction only if it holds a system/ scope at all.
// Thread-safety: libFuzzer calls this from one thread.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

#include "auth/scope.h"
#include "fuzz_check.h"

namespace {

using phigate::auth::Interaction;
using phigate::auth::ScopeSet;

constexpr std::array<Interaction, 8> kInteractions = {
    Interaction::kRead,   Interaction::kVread,           Interaction::kUpdate,
    Interaction::kDelete, Interaction::kHistoryInstance, Interaction::kHistoryType,
    Interaction::kCreate, Interaction::kSearch,
};

std::optional<ScopeSet> ParseAndCheck(std::string_view text) {
  auto parsed = ScopeSet::Parse(text);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == phigate::StatusCode::kInvalidArgument);
    return std::nullopt;
  }
  const ScopeSet& set = *parsed;
  FUZZ_CHECK(!set.empty());
  FUZZ_CHECK(set.Covers(set));
  const std::string text_form = set.ToString();
  FUZZ_CHECK(text_form.size() <= text.size());
  auto again = ScopeSet::Parse(text_form);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->ToString() == text_form);
  FUZZ_CHECK(again->Covers(set) && set.Covers(*again));

  bool any = false;
  for (std::string_view type : {"Patient", "Observation", "*", ""}) {
    for (Interaction interaction : kInteractions) any |= set.Allows(type, interaction);
  }
  if (any) FUZZ_CHECK(set.GrantsAnyInteraction());
  return std::move(parsed).value();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const std::optional<ScopeSet> first = ParseAndCheck(input.substr(0, newline));
  if (newline == std::string_view::npos) return 0;
  const std::optional<ScopeSet> second = ParseAndCheck(input.substr(newline + 1));
  if (first && second) {
    // Covering is a preorder: if each covers the other, they grant the same.
    if (first->Covers(*second) && second->Covers(*first)) {
      for (Interaction interaction : kInteractions) {
        FUZZ_CHECK(first->Allows("Patient", interaction) == second->Allows("Patient", interaction));
      }
    }
  }
  return 0;
}
