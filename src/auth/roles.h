// The role names phigate ships (issue 4 gives them their policy). Users and clients are
// registered with a subset; an unknown name is refused at registration.
// Thread-safety: constants and pure functions.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace phigate::auth {

inline constexpr std::array<std::string_view, 5> kKnownRoles = {"admin", "clinician", "billing",
                                                                "auditor", "patient"};

// Parses "r1,r2" (no spaces, no duplicates, each a known role, at least one).
// kInvalidArgument naming the unknown role (role names are not secrets).
Result<std::vector<std::string>> ParseRoles(std::string_view comma_separated);
std::string JoinRoles(const std::vector<std::string>& roles);

}  // namespace phigate::auth
