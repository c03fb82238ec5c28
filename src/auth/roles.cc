#include "auth/roles.h"

#include <algorithm>

namespace phigate::auth {

Result<std::vector<std::string>> ParseRoles(std::string_view list) {
  std::vector<std::string> roles;
  if (list.empty()) return InvalidArgument("at least one role is required");
  while (true) {
    const size_t comma = list.find(',');
    const std::string_view name = list.substr(0, comma);
    if (std::find(kKnownRoles.begin(), kKnownRoles.end(), name) == kKnownRoles.end()) {
      std::string known;
      for (std::string_view r : kKnownRoles) known += (known.empty() ? "" : ", ") + std::string(r);
      return InvalidArgument("unknown role '" + std::string(name) + "' (known: " + known + ")");
    }
    if (std::find(roles.begin(), roles.end(), name) != roles.end()) {
      return InvalidArgument("role '" + std::string(name) + "' given twice");
    }
    roles.emplace_back(name);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return roles;
}

std::string JoinRoles(const std::vector<std::string>& roles) {
  std::string out;
  for (const auto& r : roles) out += (out.empty() ? "" : ",") + r;
  return out;
}

}  // namespace phigate::auth
