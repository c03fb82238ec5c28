#include "policy/policy.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "auth/roles.h"

namespace phigate::policy {
namespace {

// Policy-file interaction names and the auth::Interaction bits each grants. `history`
// covers both history interactions (FHIR R4 http.html#history); `search` is search-type.
struct InteractionBits {
  std::string_view name;
  uint32_t bits;
};
constexpr uint32_t Bit(auth::Interaction i) { return 1u << static_cast<uint32_t>(i); }
constexpr InteractionBits kInteractionNames[] = {
    {"read", Bit(auth::Interaction::kRead)},
    {"vread", Bit(auth::Interaction::kVread)},
    {"search", Bit(auth::Interaction::kSearch)},
    {"history", Bit(auth::Interaction::kHistoryInstance) | Bit(auth::Interaction::kHistoryType)},
    {"create", Bit(auth::Interaction::kCreate)},
    {"update", Bit(auth::Interaction::kUpdate)},
    {"delete", Bit(auth::Interaction::kDelete)},
};

// At most this many roles, so a set of roles fits a uint64_t bitmask (the key of the
// combined-mask cache).
constexpr size_t kMaxRoles = 64;
constexpr size_t kNoPurpose = static_cast<size_t>(-1);

size_t PurposeIndex(std::string_view code) {
  const std::vector<std::string_view>& codes = PurposeOfUseCodes();
  for (size_t i = 0; i < codes.size(); ++i) {
    if (codes[i] == code) return i;
  }
  return kNoPurpose;
}

const ElementMask& EverythingMask() {
  static const ElementMask kEverything = ElementMask::Everything();
  return kEverything;
}

// Load errors carry "<key path>: <what>"; Parse prefixes the origin.
Status LoadError(const std::string& key, const std::string& what) {
  return InvalidArgument(key + ": " + what);
}

std::string KnownRoleList() {
  std::string out;
  for (std::string_view r : auth::kKnownRoles) {
    if (!out.empty()) out += ", ";
    out += r;
  }
  return out;
}

}  // namespace

const std::vector<std::string_view>& PurposeOfUseCodes() {
  // The codes of the PurposeOfUse hierarchy of v3 ActReason (terminology.hl7.org
  // CodeSystem-v3-ActReason / ValueSet v3-PurposeOfUse), grouped under their parent.
  static const std::vector<std::string_view> kCodes = {
      // healthcare marketing
      "HMARKT",
      // healthcare operations and its specializations
      "HOPERAT",
      "CAREMGT",
      "DONAT",
      "FRAUD",
      "GOV",
      "HACCRED",
      "HCOMPL",
      "HDECD",
      "HDIRECT",
      "HDM",
      "HLEGAL",
      "HOUTCOMS",
      "HPRGRP",
      "HQUALIMP",
      "HSYSADMIN",
      "LABELING",
      "METAMGT",
      "MEMADMIN",
      "MILCDM",
      "PATADMIN",
      "PATSFTY",
      "PERFMSR",
      "RECORDMGT",
      "SYSDEV",
      "HTEST",
      "TRAIN",
      // healthcare payment
      "HPAYMT",
      "CLMATTCH",
      "COVAUTH",
      "COVERAGE",
      "ELIGDTRM",
      "ELIGVER",
      "ENROLLM",
      "MILDCRG",
      "REMITADV",
      // healthcare research
      "HRESCH",
      "BIORCH",
      "CLINTRCH",
      "CLINTRCHNPC",
      "CLINTRCHPC",
      "PRECLINTRCH",
      "DSRCH",
      "POARCH",
      "TRANSRCH",
      // patient requested
      "PATRQT",
      "FAMRQT",
      "PWATRNY",
      "SUPNWK",
      // public health
      "PUBHLTH",
      "DISASTER",
      "THREAT",
      // treatment; ETREAT (emergency treatment) with BTG and ERTREAT under it
      "TREAT",
      "CLINTRL",
      "COC",
      "ETREAT",
      "BTG",
      "ERTREAT",
      "POPHLTH",
  };
  return kCodes;
}

bool IsPurposeOfUseCode(std::string_view code) { return PurposeIndex(code) != kNoPurpose; }

bool IsConfidentialityCode(std::string_view code) {
  return code == "U" || code == "L" || code == "M" || code == "N" || code == "R" || code == "V";
}

std::string_view InteractionName(auth::Interaction interaction) {
  switch (interaction) {
    case auth::Interaction::kRead:
      return "read";
    case auth::Interaction::kVread:
      return "vread";
    case auth::Interaction::kUpdate:
      return "update";
    case auth::Interaction::kDelete:
      return "delete";
    case auth::Interaction::kHistoryInstance:
    case auth::Interaction::kHistoryType:
      return "history";
    case auth::Interaction::kCreate:
      return "create";
    case auth::Interaction::kSearch:
      return "search";
  }
  return "unknown";
}

struct Policy::Role {
  std::string name;
  bool phi = true;
  bool break_glass = false;
  bool patient_compartment = false;
  // false: no narrative or notes on any type (NarrativeFreeElements).
  bool narrative = true;
  size_t default_purpose = kNoPurpose;
  std::bitset<128> purposes;
  // Interactions granted on a type not in `type_bits` (from `types = ["*"]` grants).
  uint32_t star_bits = 0;
  // Exact interactions for every type a grant names or excepts.
  fhir::StringMap<uint32_t> type_bits;
  // v3-Confidentiality codes that make a resource invisible to the role (sorted).
  std::vector<std::string> hidden_labels;
  // What break-glass (purpose ETREAT) lifts for the role.
  bool lift_compartment = true;
  bool lift_elements = true;
  bool lift_labels = true;
  // Types with an element policy; any other type is unrestricted.
  fhir::StringMap<ElementMask> read_masks;
  fhir::StringMap<ElementMask> write_masks;

  uint32_t Bits(std::string_view type) const {
    auto it = type_bits.find(type);
    return it == type_bits.end() ? star_bits : it->second;
  }
  const ElementMask& Mask(std::string_view type, bool write) const {
    const fhir::StringMap<ElementMask>& masks = write ? write_masks : read_masks;
    auto it = masks.find(type);
    return it == masks.end() ? EverythingMask() : it->second;
  }
};

// Union masks for callers with several allowing roles that restrict the same type, built
// on first use; entries are never removed, so returned pointers stay valid for the life of
// the Policy. Guarded by `mu`. Bounded by the role combinations actually seen.
struct Policy::MaskCache {
  std::mutex mu;
  std::map<std::tuple<uint64_t, std::string, bool>, std::unique_ptr<ElementMask>> masks;
  // Labels hidden from every role of a set (the intersection), keyed by role bits.
  std::map<uint64_t, std::unique_ptr<std::vector<std::string>>> labels;
};

Policy::Policy() : cache_(std::make_unique<MaskCache>()) {}
Policy::Policy(Policy&&) noexcept = default;
Policy& Policy::operator=(Policy&&) noexcept = default;
Policy::~Policy() = default;

namespace {

// Reads an array of strings at `key`.
Status StringArray(const toml::node& node, const std::string& key, std::vector<std::string>& out) {
  const toml::array* a = node.as_array();
  if (a == nullptr) return LoadError(key, "must be an array of strings");
  for (const toml::node& e : *a) {
    const auto* s = e.as_string();
    if (s == nullptr) return LoadError(key, "must be an array of strings");
    out.push_back(s->get());
  }
  return Status::Ok();
}

// Validates element names for `type` as written in the policy: a top-level element name,
// or "name[x]" for a choice element.
Status CheckElements(const fhir::TypeDef& type, const std::vector<std::string>& names,
                     const std::string& key) {
  std::set<std::string_view> seen;
  for (const std::string& name : names) {
    if (!seen.insert(name).second) return LoadError(key, "duplicate element '" + name + "'");
    std::string_view base = name;
    bool choice_syntax = base.size() > 3 && base.substr(base.size() - 3) == "[x]";
    if (choice_syntax) base.remove_suffix(3);
    const fhir::ElementDef* e = type.elements.FindElement(base);
    if (e == nullptr) return LoadError(key, "unknown element '" + name + "'");
    if (e->choice && !choice_syntax) {
      return LoadError(key, "choice element '" + name + "' must be written '" + name + "[x]'");
    }
    if (!e->choice && choice_syntax) {
      return LoadError(key, "element '" + name + "' is not a choice element");
    }
  }
  return Status::Ok();
}

// The elements a role with `narrative = false` never sees or writes: the narrative and the
// free-text notes, which describe the record in words no element policy can narrow
// (issue 4, billing: "no ... notes or narrative").
bool IsNarrativeElement(std::string_view name) {
  return name == "text" || name == "note" || name == "processNote";
}

Status CheckNoNarrative(const std::vector<std::string>& names, const std::string& key) {
  for (const std::string& name : names) {
    if (IsNarrativeElement(name)) {
      return LoadError(key, "element '" + name + "' is not allowed with narrative = false");
    }
  }
  return Status::Ok();
}

// Every top-level element of `type` (choice elements as "x[x]") except the narrative
// elements, or nullopt when the type has none of those. `meta` is always visible, and is
// left out of the list so that writing it stays refused (ElementMask::Lists): labels,
// tags and profiles are not changed by a role under an element policy.
std::optional<std::vector<std::string>> NarrativeFreeElements(const fhir::TypeDef& type) {
  std::vector<std::string> names;
  bool removed = false;
  names.reserve(type.elements.elements().size());
  for (const fhir::ElementDef& element : type.elements.elements()) {
    if (IsNarrativeElement(element.name)) {
      removed = true;
    } else if (element.name != "meta") {
      names.push_back(element.choice ? element.name + "[x]" : element.name);
    }
  }
  if (!removed) return std::nullopt;
  return names;
}

struct Grant {
  bool star = false;
  std::vector<std::string> types;
  std::vector<std::string> except;
  uint32_t bits = 0;
};

Status ParseGrant(const toml::table& table, const std::string& key, Grant& grant) {
  const fhir::Model& model = fhir::Model::R4();
  bool has_types = false;
  bool has_interactions = false;
  for (const auto& [k, node] : table) {
    std::string sub = key + "." + std::string(k.str());
    if (k == "types") {
      has_types = true;
      std::vector<std::string> types;
      RETURN_IF_ERROR(StringArray(node, sub, types));
      if (types.empty()) return LoadError(sub, "must not be empty");
      for (const std::string& t : types) {
        if (t == "*") {
          grant.star = true;
        } else if (!model.IsResourceType(t)) {
          return LoadError(sub, "unknown resource type '" + t + "'");
        } else {
          grant.types.push_back(t);
        }
      }
      if (grant.star && !grant.types.empty()) {
        return LoadError(sub, "'*' already names every type");
      }
    } else if (k == "except") {
      RETURN_IF_ERROR(StringArray(node, sub, grant.except));
      for (const std::string& t : grant.except) {
        if (!model.IsResourceType(t)) {
          return LoadError(sub, "unknown resource type '" + t + "'");
        }
      }
    } else if (k == "interactions") {
      has_interactions = true;
      std::vector<std::string> names;
      RETURN_IF_ERROR(StringArray(node, sub, names));
      if (names.empty()) return LoadError(sub, "must not be empty");
      for (const std::string& n : names) {
        auto it = std::find_if(std::begin(kInteractionNames), std::end(kInteractionNames),
                               [&](const InteractionBits& b) { return b.name == n; });
        if (it == std::end(kInteractionNames)) {
          return LoadError(sub, "unknown interaction '" + n + "'");
        }
        grant.bits |= it->bits;
      }
    } else {
      return LoadError(sub, "unknown key");
    }
  }
  if (!has_types) return LoadError(key + ".types", "missing");
  if (!has_interactions) return LoadError(key + ".interactions", "missing");
  if (!grant.except.empty() && !grant.star) {
    return LoadError(key + ".except", "only allowed with types = [\"*\"]");
  }
  return Status::Ok();
}

}  // namespace

Result<Policy> Policy::Parse(std::string_view toml_text, std::string_view origin) {
  const std::string prefix = std::string(origin) + ": ";
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << prefix << "line " << e.source().begin.line << ": " << e.description();
    return InvalidArgument(msg.str());
  }
  Policy policy;
  auto load = [&]() -> Status {
    for (const auto& [k, node] : root) {
      if (k != "roles") return LoadError(std::string(k.str()), "unknown key");
    }
    const toml::table* roles = root["roles"].as_table();
    if (roles == nullptr) return LoadError("roles", "missing (a table of roles)");
    if (roles->size() > kMaxRoles) return LoadError("roles", "more than 64 roles");
    const fhir::Model& model = fhir::Model::R4();
    for (const auto& [role_name, role_node] : *roles) {
      const std::string key = "roles." + std::string(role_name.str());
      // Users and clients are registered only with auth::kKnownRoles (auth/roles.h), so
      // any other name could never apply: it is a typo, refused like any unknown name.
      if (std::find(auth::kKnownRoles.begin(), auth::kKnownRoles.end(), role_name.str()) ==
          auth::kKnownRoles.end()) {
        return LoadError(key, "unknown role (known: " + KnownRoleList() + ")");
      }
      const toml::table* t = role_node.as_table();
      if (t == nullptr) return LoadError(key, "must be a table");
      Role role;
      role.name = std::string(role_name.str());
      std::vector<std::string> purposes;
      std::string default_purpose;
      std::vector<Grant> grants;
      const toml::table* elements = nullptr;
      bool has_purposes = false;
      bool has_lifts = false;
      for (const auto& [k, node] : *t) {
        const std::string sub = key + "." + std::string(k.str());
        if (k == "description") {
          if (!node.is_string()) return LoadError(sub, "must be a string");
        } else if (k == "purposes") {
          has_purposes = true;
          RETURN_IF_ERROR(StringArray(node, sub, purposes));
        } else if (k == "default_purpose") {
          const auto* s = node.as_string();
          if (s == nullptr) return LoadError(sub, "must be a string");
          default_purpose = s->get();
        } else if (k == "compartment") {
          const auto* s = node.as_string();
          if (s == nullptr) return LoadError(sub, "must be a string");
          if (s->get() == "patient") {
            role.patient_compartment = true;
          } else if (s->get() != "none") {
            return LoadError(
                sub, "unknown compartment '" + s->get() + "' (expected \"none\" or \"patient\")");
          }
        } else if (k == "break_glass" || k == "phi" || k == "narrative") {
          const auto* b = node.as_boolean();
          if (b == nullptr) return LoadError(sub, "must be a boolean");
          (k == "phi" ? role.phi : k == "narrative" ? role.narrative : role.break_glass) = b->get();
        } else if (k == "grants") {
          const toml::array* a = node.as_array();
          if (a == nullptr || !a->is_array_of_tables()) {
            return LoadError(sub, "must be an array of tables ([[" + sub + "]])");
          }
          for (size_t i = 0; i < a->size(); ++i) {
            Grant g;
            RETURN_IF_ERROR(
                ParseGrant(*a->get(i)->as_table(), sub + "[" + std::to_string(i) + "]", g));
            grants.push_back(std::move(g));
          }
        } else if (k == "elements") {
          elements = node.as_table();
          if (elements == nullptr) return LoadError(sub, "must be a table");
        } else if (k == "hidden_labels") {
          RETURN_IF_ERROR(StringArray(node, sub, role.hidden_labels));
          for (const std::string& code : role.hidden_labels) {
            if (!IsConfidentialityCode(code)) {
              return LoadError(sub, "unknown v3-Confidentiality code '" + code +
                                        "' (expected U, L, M, N, R or V)");
            }
          }
          std::sort(role.hidden_labels.begin(), role.hidden_labels.end());
          if (std::adjacent_find(role.hidden_labels.begin(), role.hidden_labels.end()) !=
              role.hidden_labels.end()) {
            return LoadError(sub, "duplicate code");
          }
        } else if (k == "break_glass_lifts") {
          has_lifts = true;
          std::vector<std::string> lifts;
          RETURN_IF_ERROR(StringArray(node, sub, lifts));
          role.lift_compartment = role.lift_elements = role.lift_labels = false;
          for (const std::string& l : lifts) {
            bool* flag = l == "compartment"     ? &role.lift_compartment
                         : l == "elements"      ? &role.lift_elements
                         : l == "hidden_labels" ? &role.lift_labels
                                                : nullptr;
            if (flag == nullptr) {
              return LoadError(sub, "unknown restriction '" + l +
                                        "' (expected compartment, elements or hidden_labels)");
            }
            if (*flag) return LoadError(sub, "duplicate restriction '" + l + "'");
            *flag = true;
          }
        } else {
          return LoadError(sub, "unknown key");
        }
      }

      if (has_lifts && !role.break_glass) {
        return LoadError(key + ".break_glass_lifts", "only allowed with break_glass = true");
      }
      if (!role.phi && !role.hidden_labels.empty()) {
        return LoadError(key + ".hidden_labels", "not allowed with phi = false");
      }
      if (role.phi && (!has_purposes || purposes.empty())) {
        return LoadError(key + ".purposes", "missing (a role with PHI needs a purpose)");
      }

      // Purposes of use.
      std::set<std::string> seen_purposes;
      for (const std::string& p : purposes) {
        size_t idx = PurposeIndex(p);
        if (idx == kNoPurpose) return LoadError(key + ".purposes", "unknown purpose '" + p + "'");
        if (p == kBreakGlassPurpose) {
          return LoadError(key + ".purposes",
                           "ETREAT is granted by break_glass = true, not listed");
        }
        if (!seen_purposes.insert(p).second) {
          return LoadError(key + ".purposes", "duplicate purpose '" + p + "'");
        }
        role.purposes.set(idx);
      }
      if (!default_purpose.empty()) {
        size_t idx = PurposeIndex(default_purpose);
        if (idx == kNoPurpose) {
          return LoadError(key + ".default_purpose", "unknown purpose '" + default_purpose + "'");
        }
        if (!role.purposes.test(idx)) {
          return LoadError(key + ".default_purpose",
                           "'" + default_purpose + "' is not one of the role's purposes");
        }
        role.default_purpose = idx;
      }

      if (!role.phi) {
        // Separation of duties (issue 4 §1, admin): a role without PHI grants nothing.
        if (!grants.empty()) return LoadError(key + ".grants", "not allowed with phi = false");
        if (elements != nullptr) {
          return LoadError(key + ".elements", "not allowed with phi = false");
        }
        if (role.break_glass) {
          return LoadError(key + ".break_glass", "not allowed with phi = false");
        }
      } else {
        if (role.default_purpose == kNoPurpose) {
          return LoadError(key + ".default_purpose", "missing");
        }
      }

      // Grants -> per-type bitmasks. A type named or excepted anywhere gets its exact
      // bits, so a "*" grant's `except` removes only that grant's interactions.
      std::set<std::string> named;
      for (const Grant& g : grants) {
        if (g.star) role.star_bits |= g.bits;
        named.insert(g.types.begin(), g.types.end());
        named.insert(g.except.begin(), g.except.end());
      }
      for (const std::string& type : named) {
        uint32_t bits = 0;
        for (const Grant& g : grants) {
          if (g.star) {
            if (std::find(g.except.begin(), g.except.end(), type) == g.except.end()) {
              bits |= g.bits;
            }
          } else if (std::find(g.types.begin(), g.types.end(), type) != g.types.end()) {
            bits |= g.bits;
          }
        }
        role.type_bits.emplace(type, bits);
      }

      // Element policies.
      if (elements != nullptr) {
        for (const auto& [type_name, type_node] : *elements) {
          const std::string tkey = key + ".elements." + std::string(type_name.str());
          const fhir::TypeDef* type = model.FindResourceType(type_name.str());
          if (type == nullptr) {
            return LoadError(key + ".elements",
                             "unknown resource type '" + std::string(type_name.str()) + "'");
          }
          if (role.Bits(type_name.str()) == 0) {
            return LoadError(tkey, "no grant of the role covers this type");
          }
          const toml::table* et = type_node.as_table();
          if (et == nullptr) return LoadError(tkey, "must be a table");
          std::vector<std::string> read;
          std::vector<std::string> write;
          bool has_read = false;
          bool has_write = false;
          for (const auto& [k, node] : *et) {
            const std::string sub = tkey + "." + std::string(k.str());
            if (k == "read") {
              has_read = true;
              RETURN_IF_ERROR(StringArray(node, sub, read));
              RETURN_IF_ERROR(CheckElements(*type, read, sub));
              if (!role.narrative) RETURN_IF_ERROR(CheckNoNarrative(read, sub));
            } else if (k == "write") {
              has_write = true;
              RETURN_IF_ERROR(StringArray(node, sub, write));
              RETURN_IF_ERROR(CheckElements(*type, write, sub));
              if (!role.narrative) RETURN_IF_ERROR(CheckNoNarrative(write, sub));
            } else {
              return LoadError(sub, "unknown key");
            }
          }
          if (!has_read) return LoadError(tkey + ".read", "missing");
          // What cannot be seen cannot be written (an update preserves hidden elements).
          if (!has_write) write = read;
          for (const std::string& w : write) {
            if (std::find(read.begin(), read.end(), w) == read.end()) {
              return LoadError(tkey + ".write", "element '" + w + "' is not readable");
            }
          }
          std::string type_str(type_name.str());
          role.read_masks.emplace(type_str, ElementMask::Only(std::move(read)));
          role.write_masks.emplace(type_str, ElementMask::Only(std::move(write)));
        }
      }
      if (!role.narrative) {
        // Every other type the role reaches gets a mask of all but the narrative and notes,
        // computed here so that Evaluate stays a lookup: the types named in grants and, for
        // a "*" grant, every R4 resource type (about 150 masks of a few dozen names).
        auto add_narrative_free = [&role, &model](const std::string& type_name) {
          if (role.read_masks.find(type_name) != role.read_masks.end()) return;
          const fhir::TypeDef* type = model.FindResourceType(type_name);
          if (type == nullptr || type->is_abstract) return;
          std::optional<std::vector<std::string>> names = NarrativeFreeElements(*type);
          if (!names) return;  // the type has no narrative or notes: nothing to hide
          role.write_masks.emplace(type_name, ElementMask::Only(*names));
          role.read_masks.emplace(type_name, ElementMask::Only(std::move(*names)));
        };
        for (const auto& [type_name, bits] : role.type_bits) {
          if (bits != 0) add_narrative_free(type_name);
        }
        if (role.star_bits != 0) {
          for (const std::string& type_name : model.ResourceTypes()) {
            if (role.type_bits.find(type_name) == role.type_bits.end()) {
              add_narrative_free(type_name);
            }
          }
        }
      }
      policy.by_name_.emplace(role.name, policy.roles_.size());
      policy.roles_.push_back(std::move(role));
    }
    return Status::Ok();
  };
  Status status = load();
  if (!status.ok()) return InvalidArgument(prefix + status.message());
  return policy;
}

const Policy& Policy::Default() {
  static const Policy* const kDefault = [] {
    Result<Policy> p = Parse(DefaultPolicyToml(), "default policy");
    if (!p.ok()) {
      // The embedded policy is part of the build; failing to load it is a build defect.
      std::fprintf(stderr, "phigate: %s\n", p.status().message().c_str());
      std::abort();
    }
    return new Policy(std::move(p).value());
  }();
  return *kDefault;
}

bool Policy::HasRole(std::string_view name) const { return FindRole(name) != nullptr; }

std::vector<std::string> Policy::RoleNames() const {
  std::vector<std::string> out;
  for (const Role& r : roles_) out.push_back(r.name);
  return out;
}

std::string_view Policy::DefaultPurpose(std::string_view role) const {
  const Role* r = FindRole(role);
  if (r == nullptr || r->default_purpose == kNoPurpose) return {};
  return PurposeOfUseCodes()[r->default_purpose];
}

const Policy::Role* Policy::FindRole(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &roles_[it->second];
}

const ElementMask* Policy::CombinedMask(uint64_t role_bits, std::string_view type,
                                        bool write) const {
  // Any unrestricted role makes the union unrestricted: no lock, no allocation.
  for (size_t i = 0; i < roles_.size(); ++i) {
    if ((role_bits & (uint64_t{1} << i)) != 0 && roles_[i].Mask(type, write).all) {
      return &EverythingMask();
    }
  }
  std::lock_guard<std::mutex> lock(cache_->mu);
  auto key = std::make_tuple(role_bits, std::string(type), write);
  auto it = cache_->masks.find(key);
  if (it != cache_->masks.end()) return it->second.get();
  std::vector<std::string> names;
  for (size_t i = 0; i < roles_.size(); ++i) {
    if ((role_bits & (uint64_t{1} << i)) == 0) continue;
    const ElementMask& m = roles_[i].Mask(type, write);
    names.insert(names.end(), m.elements.begin(), m.elements.end());
  }
  auto mask = std::make_unique<ElementMask>(ElementMask::Only(std::move(names)));
  const ElementMask* out = mask.get();
  cache_->masks.emplace(std::move(key), std::move(mask));
  return out;
}

const std::vector<std::string>* Policy::CombinedLabels(uint64_t role_bits) const {
  std::lock_guard lock(cache_->mu);
  auto it = cache_->labels.find(role_bits);
  if (it == cache_->labels.end()) {
    std::unique_ptr<std::vector<std::string>> labels;
    for (size_t i = 0; i < roles_.size(); ++i) {
      if ((role_bits & (uint64_t{1} << i)) == 0) continue;
      const std::vector<std::string>& mine = roles_[i].hidden_labels;
      if (!labels) {
        labels = std::make_unique<std::vector<std::string>>(mine);
        continue;
      }
      std::vector<std::string> both;
      std::set_intersection(labels->begin(), labels->end(), mine.begin(), mine.end(),
                            std::back_inserter(both));
      *labels = std::move(both);
    }
    it = cache_->labels.emplace(role_bits, std::move(labels)).first;
  }
  return it->second && !it->second->empty() ? it->second.get() : nullptr;
}

Decision Policy::Evaluate(const Request& request) const {
  Decision d;
  const uint32_t bit = Bit(request.interaction);
  auto deny = [&](std::string text) {
    d.allowed = false;
    d.denial = std::move(text);
    d.read_mask = d.write_mask = nullptr;
    d.patient_compartment = false;
    return d;
  };
  // Denial texts name the type only when it is a known R4 type: the name comes from the
  // request URL and is echoed to the client.
  auto permission = [&]() {
    std::string out(InteractionName(request.interaction));
    out += " on ";
    out += fhir::Model::R4().IsResourceType(request.resource_type) ? request.resource_type
                                                                   : "this resource type";
    return out;
  };

  size_t requested = kNoPurpose;
  if (!request.purpose.empty()) {
    requested = PurposeIndex(request.purpose);
    // Not echoed: the value is client-supplied text that is not a known code.
    if (requested == kNoPurpose) return deny("purpose of use is not a PurposeOfUse code");
  }
  if (request.principal == nullptr) return deny("no role grants " + permission());
  // A "*" grant means every R4 resource type, never an arbitrary name.
  if (!fhir::Model::R4().IsResourceType(request.resource_type)) {
    return deny("no role grants " + permission());
  }
  static const size_t etreat = PurposeIndex(kBreakGlassPurpose);

  size_t purpose = requested;
  uint64_t allowing = 0;
  size_t allowing_count = 0;
  const Role* first = nullptr;
  bool all_compartment = true;
  bool any_phi = false;
  bool any_grant = false;
  size_t refused_purpose = kNoPurpose;  // a purpose some granting role does not allow
  for (const std::string& name : request.principal->roles) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) continue;  // roles unknown to this policy grant nothing
    const Role& role = roles_[it->second];
    if (!role.phi) continue;
    any_phi = true;
    if ((role.Bits(request.resource_type) & bit) == 0) continue;
    any_grant = true;
    // Without a requested purpose, the first granting role's default is the purpose of
    // the request; further roles count only if they allow the same purpose.
    size_t p = purpose == kNoPurpose ? role.default_purpose : purpose;
    bool ok = p == etreat ? role.break_glass : role.purposes.test(p);
    if (!ok) {
      if (refused_purpose == kNoPurpose) refused_purpose = p;
      continue;
    }
    purpose = p;
    allowing |= uint64_t{1} << it->second;
    ++allowing_count;
    if (first == nullptr) first = &role;
    all_compartment = all_compartment && role.patient_compartment;
  }

  if (allowing_count == 0) {
    if (!any_phi) {
      bool any_known = std::any_of(request.principal->roles.begin(), request.principal->roles.end(),
                                   [&](const std::string& r) { return HasRole(r); });
      if (any_known) return deny("no role grants access to protected health information");
      return deny("no role grants " + permission());
    }
    if (!any_grant) return deny("no role grants " + permission());
    d.purpose = std::string(PurposeOfUseCodes()[refused_purpose]);
    if (refused_purpose == etreat) {
      return deny("break-glass (purpose of use ETREAT) is not allowed for " + permission());
    }
    return deny("purpose of use " + d.purpose + " is not allowed for " + permission());
  }

  // Role rules ∩ SMART scopes (issue 4 §1). A permission granted only by patient/ scopes
  // is limited to the token's patient compartment (SMART App Launch, scopes).
  const auth::ScopeSet& scopes = request.principal->scopes;
  if (!scopes.Allows(request.resource_type, request.interaction)) {
    return deny("token scopes do not grant " + permission());
  }
  bool scope_compartment =
      !scopes.AllowsIn(auth::ScopeContext::kUser, request.resource_type, request.interaction) &&
      !scopes.AllowsIn(auth::ScopeContext::kSystem, request.resource_type, request.interaction);

  d.allowed = true;
  d.purpose = std::string(PurposeOfUseCodes()[purpose]);  // short: no heap allocation (SSO)
  d.break_glass = purpose == etreat;
  d.patient_compartment = all_compartment || scope_compartment;
  if (allowing_count == 1) {
    d.read_mask = &first->Mask(request.resource_type, false);
    d.write_mask = &first->Mask(request.resource_type, true);
    if (!first->hidden_labels.empty()) d.hidden_labels = &first->hidden_labels;
  } else {
    d.read_mask = CombinedMask(allowing, request.resource_type, false);
    d.write_mask = CombinedMask(allowing, request.resource_type, true);
    d.hidden_labels = CombinedLabels(allowing);
  }
  if (d.break_glass) {
    // Break-glass widens what the allowing roles name in break_glass_lifts (issue 4 §5);
    // the role-level compartment only: a patient/ scope's limit is the token's, not the
    // role's, and stays.
    bool lift_compartment = true;
    bool lift_elements = true;
    bool lift_labels = true;
    for (size_t i = 0; i < roles_.size(); ++i) {
      if ((allowing & (uint64_t{1} << i)) == 0) continue;
      lift_compartment = lift_compartment && roles_[i].lift_compartment;
      lift_elements = lift_elements && roles_[i].lift_elements;
      lift_labels = lift_labels && roles_[i].lift_labels;
    }
    if (lift_compartment) d.patient_compartment = scope_compartment;
    if (lift_elements) d.read_mask = d.write_mask = &EverythingMask();
    if (lift_labels) d.hidden_labels = nullptr;
  }
  return d;
}

}  // namespace phigate::policy
