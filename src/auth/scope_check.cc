#include "auth/scope_check.h"

namespace phigate::auth {

Status CheckScopes(const Principal& principal, std::string_view resource_type,
                   std::string_view resource_id, Interaction interaction) {
  const ScopeSet& scopes = principal.scopes;
  if (scopes.AllowsIn(ScopeContext::kSystem, resource_type, interaction) ||
      scopes.AllowsIn(ScopeContext::kUser, resource_type, interaction)) {
    return Status::Ok();
  }
  if (scopes.AllowsIn(ScopeContext::kPatient, resource_type, interaction)) {
    const bool own_patient_resource =
        resource_type == "Patient" && !principal.patient.empty() &&
        resource_id == principal.patient &&
        (interaction == Interaction::kRead || interaction == Interaction::kVread ||
         interaction == Interaction::kHistoryInstance);
    if (own_patient_resource) return Status::Ok();
    return {StatusCode::kPermissionDenied,
            "patient/ scopes reach only the patient's own Patient resource until patient "
            "compartments are supported"};
  }
  return {StatusCode::kPermissionDenied,
          "the access token's scope does not permit this interaction"};
}

}  // namespace phigate::auth
