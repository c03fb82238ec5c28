#include "auth/scope.h"

#include <algorithm>

namespace phigate::auth {

namespace {

constexpr uint32_t Bit(Interaction i) { return uint32_t{1} << static_cast<uint32_t>(i); }

// SMART v2 letter -> interactions (SMART App Launch 2.x, "Scopes for requesting FHIR
// resources"): read covers vread and instance history; search covers type history.
constexpr uint32_t kCreate = Bit(Interaction::kCreate);
constexpr uint32_t kRead =
    Bit(Interaction::kRead) | Bit(Interaction::kVread) | Bit(Interaction::kHistoryInstance);
constexpr uint32_t kUpdate = Bit(Interaction::kUpdate);
constexpr uint32_t kDelete = Bit(Interaction::kDelete);
constexpr uint32_t kSearch = Bit(Interaction::kSearch) | Bit(Interaction::kHistoryType);

struct ContextPrefix {
  std::string_view prefix;
  ScopeContext context;
};
constexpr ContextPrefix kContexts[] = {{"patient/", ScopeContext::kPatient},
                                       {"user/", ScopeContext::kUser},
                                       {"system/", ScopeContext::kSystem}};

Status Malformed(size_t index, std::string_view why) {
  // The position, not the token: error text must not echo submitted input.
  return InvalidArgument("scope " + std::to_string(index + 1) +
                         " is malformed: " + std::string(why));
}

// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
bool IsScopeTokenChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x21 && u <= 0x7E && u != 0x22 && u != 0x5C;
}

// FHIR resource type names are ASCII letters starting upper case; "*" means any type.
bool IsResourceTypeSyntax(std::string_view t) {
  if (t == "*") return true;
  if (t.empty() || t.size() > 64) return false;
  if (t[0] < 'A' || t[0] > 'Z') return false;
  return std::all_of(t.begin(), t.end(),
                     [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); });
}

// v1 names or v2 letters -> interaction bits; 0 if malformed.
uint32_t ParsePermissions(std::string_view perm) {
  if (perm == "read") return kRead | kSearch;
  if (perm == "write") return kCreate | kUpdate | kDelete;
  if (perm == "*") return kCreate | kRead | kUpdate | kDelete | kSearch;
  // v2: letters must appear in the order c, r, u, d, s, each at most once.
  static constexpr std::string_view kOrder = "cruds";
  static constexpr uint32_t kBits[] = {kCreate, kRead, kUpdate, kDelete, kSearch};
  if (perm.empty()) return 0;
  uint32_t bits = 0;
  size_t next = 0;  // index in kOrder the next letter may start from
  for (char c : perm) {
    size_t pos = kOrder.find(c, next);
    if (pos == std::string_view::npos) return 0;
    bits |= kBits[pos];
    next = pos + 1;
  }
  return bits;
}

}  // namespace

Result<ScopeSet> ScopeSet::Parse(std::string_view space_separated) {
  if (space_separated.empty()) return InvalidArgument("scope is empty");
  if (space_separated.size() > kMaxScopeChars) return InvalidArgument("scope is too long");
  ScopeSet set;
  size_t index = 0;
  std::string_view rest = space_separated;
  while (true) {
    const size_t sp = rest.find(' ');
    const std::string_view token = rest.substr(0, sp);
    if (token.empty()) {
      return InvalidArgument("scope tokens must be separated by exactly one space");
    }
    if (index >= kMaxScopeTokens) return InvalidArgument("scope has too many tokens");
    if (!std::all_of(token.begin(), token.end(), IsScopeTokenChar)) {
      return Malformed(index, "invalid character");
    }
    const bool seen = std::find(set.tokens_.begin(), set.tokens_.end(), token) != set.tokens_.end();
    const ContextPrefix* context = nullptr;
    for (const ContextPrefix& c : kContexts) {
      if (token.starts_with(c.prefix)) context = &c;
    }
    if (context != nullptr) {
      const std::string_view body = token.substr(context->prefix.size());
      const size_t dot = body.find('.');
      if (dot == std::string_view::npos)
        return Malformed(index, "expected <context>/<type>.<perm>");
      const std::string_view type = body.substr(0, dot);
      const std::string_view perm = body.substr(dot + 1);
      if (!IsResourceTypeSyntax(type)) return Malformed(index, "invalid resource type");
      const uint32_t bits = ParsePermissions(perm);
      if (bits == 0) return Malformed(index, "invalid permissions");
      if (!seen) set.grants_.push_back({context->context, std::string(type), bits});
    } else if (!seen) {
      set.other_.emplace_back(token);
    }
    if (!seen) set.tokens_.emplace_back(token);
    ++index;
    if (sp == std::string_view::npos) break;
    rest.remove_prefix(sp + 1);
  }
  return set;
}

bool ScopeSet::AllowsBits(std::optional<ScopeContext> context, std::string_view resource_type,
                          uint32_t bits) const {
  // Union over the grants that apply to the type: each bit needs some grant.
  uint32_t granted = 0;
  for (const Grant& g : grants_) {
    if (context && g.context != *context) continue;
    if (g.resource_type == "*" || g.resource_type == resource_type) granted |= g.interactions;
  }
  return (granted & bits) == bits;
}

bool ScopeSet::Allows(std::string_view resource_type, Interaction interaction) const {
  return AllowsBits(std::nullopt, resource_type, Bit(interaction));
}

bool ScopeSet::AllowsIn(ScopeContext context, std::string_view resource_type,
                        Interaction interaction) const {
  return AllowsBits(context, resource_type, Bit(interaction));
}

bool ScopeSet::HasContext(ScopeContext context) const {
  return std::any_of(grants_.begin(), grants_.end(),
                     [context](const Grant& g) { return g.context == context; });
}

bool ScopeSet::Contains(std::string_view token) const {
  return std::find(other_.begin(), other_.end(), token) != other_.end();
}

bool ScopeSet::Covers(const ScopeSet& requested) const {
  for (const Grant& g : requested.grants_) {
    // For g.resource_type == "*" only our "*" grants match, as required; a grant in one
    // context never covers another context (patient/ is narrower than user/).
    if (!AllowsBits(g.context, g.resource_type, g.interactions)) return false;
  }
  for (const std::string& t : requested.other_) {
    if (std::find(other_.begin(), other_.end(), t) == other_.end()) return false;
  }
  return true;
}

std::string ScopeSet::ToString() const {
  std::string out;
  for (const std::string& t : tokens_) {
    if (!out.empty()) out += ' ';
    out += t;
  }
  return out;
}

}  // namespace phigate::auth
