// SMART on FHIR scopes (SMART App Launch 2.x, "Scopes for requesting FHIR resources").
//
// Accepted forms of a scope token, with <ctx> one of patient, user, system:
//   <ctx>/<Type|*>.<v2>    v2 is a non-empty subset of the letters c, r, u, d, s written in
//                          that canonical order ("rs", "cud", "cruds"); "sr" or "rr" is
//                          malformed, so that one permission set has one spelling.
//   <ctx>/<Type|*>.<v1>    v1 is "read" (= rs), "write" (= cud) or "*" (= cruds).
// v2 letters: c = create; r = read, vread, history-instance; u = update; d = delete;
// s = search, history-type.
// <Type> is checked for FHIR type-name syntax only ([A-Z][A-Za-z]{0,63}); whether the
// model knows the type is the caller's business.
//
// patient/ scopes are limited to the compartment of the token's patient; user/ scopes to
// what the user may see; system/ scopes to what the client may see. Which contexts a
// grant may request is decided by the token endpoint (system/ only for client
// credentials); the authorization issue applies the compartment. Any other token (openid, fhirUser,
// launch, launch/patient, offline_access, ...) is kept verbatim in ToString() and grants nothing.
// SMART v2 granular scopes with a query
// (`?category=...`) are not supported yet and are malformed.
//
// Thread-safety: an immutable value after Parse; const methods are safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace phigate::auth {

// The FHIR RESTful interactions a scope can grant (FHIR R4 http.html).
enum class Interaction {
  kRead,
  kVread,
  kUpdate,
  kDelete,
  kHistoryInstance,
  kHistoryType,
  kCreate,
  kSearch,
};

enum class ScopeContext { kPatient, kUser, kSystem };

// Limits on untrusted scope strings (a token request carries one).
inline constexpr size_t kMaxScopeChars = 4096;
inline constexpr size_t kMaxScopeTokens = 128;

class ScopeSet {
 public:
  // The empty set: allows nothing, covers only the empty set.
  ScopeSet() = default;

  // Parses an RFC 6749 §3.3 scope string: tokens separated by exactly one space.
  // Errors are kInvalidArgument and name the position of the bad token, never its text.
  static Result<ScopeSet> Parse(std::string_view space_separated);

  // True if some resource scope (any context) grants `interaction` on `resource_type` (or
  // on `*`).
  bool Allows(std::string_view resource_type, Interaction interaction) const;
  // The same, counting only scopes of one context.
  bool AllowsIn(ScopeContext context, std::string_view resource_type,
                Interaction interaction) const;
  // True if at least one resource scope of `context` is present.
  bool HasContext(ScopeContext context) const;
  // True if the non-resource token (e.g. "openid", "offline_access") is present verbatim.
  bool Contains(std::string_view token) const;

  // True if every permission `requested` grants is granted by this set, and every
  // non-FHIR token of `requested` (e.g. `openid`) is also present here verbatim. The
  // union of several scopes counts: `system/Patient.r system/*.s` covers
  // `system/Patient.rs`; only a `*` scope here can cover a `*` scope in `requested`.
  bool Covers(const ScopeSet& requested) const;

  // The tokens as written, in first-seen order, duplicates removed, joined by one space.
  std::string ToString() const;

  bool empty() const { return tokens_.empty(); }
  // True if at least one resource scope grants at least one interaction.
  bool GrantsAnyInteraction() const { return !grants_.empty(); }

 private:
  struct Grant {
    ScopeContext context = ScopeContext::kSystem;
    std::string resource_type;  // a FHIR type name or "*"
    uint32_t interactions = 0;  // bit (1 << Interaction)
  };

  // `context` nullopt: any context.
  bool AllowsBits(std::optional<ScopeContext> context, std::string_view resource_type,
                  uint32_t bits) const;

  std::vector<std::string> tokens_;  // verbatim, deduplicated, in order
  std::vector<Grant> grants_;        // one per resource scope token
  std::vector<std::string> other_;   // tokens that grant nothing (openid, launch, ...)
};

}  // namespace phigate::auth
