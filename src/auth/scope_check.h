// CheckScopes: does an access token's SMART scope set permit one FHIR interaction?
// (issue 3 §3; the authorization issue will intersect the result with roles, the patient
// compartment and element policies.)
//
//   - system/ and user/ scopes grant the interaction on the type, as written;
//   - patient/ scopes are limited to the compartment of the token's patient. The Patient
//     compartment is not applied yet (that is the authorization issue), so until then a
//     patient/ scope reaches only the patient's own Patient resource (read, vread,
//     instance history) and is refused for everything else: never more than the
//     compartment, at the price of less.
// Errors are kPermissionDenied with a fixed message.
// Thread-safety: a pure function.
#pragma once

#include <string_view>

#include "auth/principal.h"
#include "auth/scope.h"
#include "core/status.h"

namespace phigate::auth {

Status CheckScopes(const Principal& principal, std::string_view resource_type,
                   std::string_view resource_id, Interaction interaction);

}  // namespace phigate::auth
