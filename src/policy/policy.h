// Policy: the declarative authorization policy of issue 4 (§1 roles and grants, §4 purpose
// of use), compiled once from TOML and evaluated for every request. Deny by default: a
// request is allowed only when some role of the caller grants the interaction on the
// resource type for the purpose of use, and the token's SMART scopes grant it too.
// The file format and the evaluation rules are documented in docs/policy.md.
//
// Evaluation is cheap: each role is precompiled into a type -> interaction bitmask map and
// per-type element masks; the allow path does no heap allocation for a caller whose
// allowing roles are a single role (the common case) and returns pointers to precomputed
// masks. Strings are built only on the denial path.
//
// Thread-safety: a Policy is immutable after Parse; Evaluate may be called from any thread.
// (The cache of combined masks for callers with several allowing roles is guarded by its
// own mutex, see MaskCache in policy.cc.)
#pragma once

#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/principal.h"
#include "auth/scope.h"
#include "core/status.h"
#include "fhir/model.h"
#include "policy/element_mask.h"

namespace phigate::policy {

// The HL7 v3 PurposeOfUse code system (terminology.hl7.org CodeSystem v3-PurposeOfUse,
// the PurposeOfUse branch of v3 ActReason), all levels of the hierarchy.
const std::vector<std::string_view>& PurposeOfUseCodes();
bool IsPurposeOfUseCode(std::string_view code);

// The HL7 v3 Confidentiality codes (U, L, M, N, R, V) a role's hidden_labels may name.
bool IsConfidentialityCode(std::string_view code);

// The purpose of use of emergency ("break-glass") treatment; only roles with
// `break_glass = true` may request it (issue 4 §5).
inline constexpr std::string_view kBreakGlassPurpose = "ETREAT";

// The policy-file name of an interaction ("history" for both history interactions,
// "search" for search-type), as used in denial texts.
std::string_view InteractionName(auth::Interaction interaction);

// The shipped default policy (src/policy/default_policy.cc), TOML text.
std::string_view DefaultPolicyToml();

struct Request {
  const auth::Principal* principal = nullptr;
  std::string_view resource_type;
  auth::Interaction interaction = auth::Interaction::kRead;
  std::string_view purpose;  // a PurposeOfUse code; empty = the role's default
};

struct Decision {
  bool allowed = false;
  // When !allowed: fixed text naming the missing permission, never PHI, e.g.
  // "no role grants read on Observation". Empty when allowed.
  std::string denial;
  // The effective purpose of use (the requested one or the allowing role's default);
  // carried to the audit stage. Set when allowed, and on a purpose denial.
  std::string purpose;
  // True when the purpose is ETREAT: the caller must enforce the break-glass conditions
  // (reason header, recent MFA, time box; issue 4 §5) before acting on the decision.
  bool break_glass = false;
  // The request must be restricted to the compartment of principal->patient.
  bool patient_compartment = false;
  // Elements the caller may see / write for resource_type; valid for the life of the
  // Policy. Never null when allowed.
  const ElementMask* read_mask = nullptr;
  const ElementMask* write_mask = nullptr;
  // v3-Confidentiality codes whose resources the caller may not see (view.h); null: none.
  // Valid for the life of the Policy.
  const std::vector<std::string>* hidden_labels = nullptr;
};

class Policy {
 public:
  // Parses and validates a policy. Errors are kInvalidArgument with a message of the form
  // "<origin>: roles.billing.elements.Patient.read: unknown element 'foo'".
  static Result<Policy> Parse(std::string_view toml, std::string_view origin);
  // The shipped default policy, parsed on first use. Aborts if it does not parse (a build
  // defect; tests load it).
  static const Policy& Default();

  Policy(Policy&&) noexcept;
  Policy& operator=(Policy&&) noexcept;
  ~Policy();

  bool HasRole(std::string_view name) const;
  // Role names, sorted.
  std::vector<std::string> RoleNames() const;
  // The role's default purpose of use; empty for an unknown role or a role without PHI.
  std::string_view DefaultPurpose(std::string_view role) const;

  Decision Evaluate(const Request& request) const;

 private:
  struct Role;
  struct MaskCache;
  Policy();

  const Role* FindRole(std::string_view name) const;
  // The union of the masks of the roles in `role_bits` for `type` (several allowing roles).
  const ElementMask* CombinedMask(uint64_t role_bits, std::string_view type, bool write) const;
  // The labels hidden from every role in `role_bits`; null when none.
  const std::vector<std::string>* CombinedLabels(uint64_t role_bits) const;

  std::vector<Role> roles_;
  fhir::StringMap<size_t> by_name_;
  std::unique_ptr<MaskCache> cache_;
};

}  // namespace phigate::policy
