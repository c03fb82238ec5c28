// The shipped default policy (issue 4 §1): the five roles of auth::kKnownRoles. Embedded so
// a fresh install denies by default without a policy file; docs/policy.md reproduces it
// verbatim and explains each choice. Thread-safety: a constant.
#include "policy/policy.h"

namespace phigate::policy {
namespace {

constexpr std::string_view kDefaultPolicy = R"toml(# phigate default policy (docs/policy.md)

[roles.admin]
description = "Users, clients, keys and configuration; no PHI at all (separation of duties)"
phi = false
purposes = []

[roles.clinician]
description = "Reads and writes clinical and demographic resources for treatment"
purposes = ["TREAT", "HOPERAT"]
default_purpose = "TREAT"
compartment = "none"
# Restricted (R) and very restricted (V) records (meta.security, v3-Confidentiality) need
# emergency access; break-glass lifts that restriction for one patient at a time.
hidden_labels = ["R", "V"]
break_glass = true
break_glass_lifts = ["hidden_labels", "compartment", "elements"]

[[roles.clinician.grants]]
types = ["*"]
except = ["AuditEvent"]
interactions = ["read", "vread", "search", "history", "create", "update", "delete"]

[roles.billing]
description = "Claims and payment: demographics needed for claims, financial resources"
purposes = ["HPAYMT"]
default_purpose = "HPAYMT"
compartment = "none"
hidden_labels = ["R", "V"]
break_glass = false
# No narrative (text) or notes (note, processNote) on any type, financial ones included.
narrative = false

[[roles.billing.grants]]
types = ["Patient"]
interactions = ["read", "vread", "search", "history", "update"]

[[roles.billing.grants]]
types = ["Encounter"]
interactions = ["read", "vread", "search", "history"]

[[roles.billing.grants]]
types = ["Coverage", "Account", "Claim", "ClaimResponse", "ExplanationOfBenefit", "Invoice"]
interactions = ["read", "vread", "search", "history", "create", "update"]

[roles.billing.elements.Patient]
read = ["identifier", "name", "telecom", "gender", "birthDate", "address"]
write = ["telecom", "address"]

[roles.billing.elements.Encounter]
read = ["status", "class", "type", "period", "serviceProvider"]
write = []

[roles.auditor]
description = "Reviews the audit trail; no other PHI"
purposes = ["HCOMPL", "HOPERAT"]
default_purpose = "HCOMPL"
compartment = "none"
break_glass = false

[[roles.auditor.grants]]
types = ["AuditEvent"]
interactions = ["read", "search"]

[roles.patient]
description = "A patient reading their own record (the compartment of their fhirUser)"
purposes = ["PATRQT"]
default_purpose = "PATRQT"
compartment = "patient"
break_glass = false

[[roles.patient.grants]]
types = ["*"]
except = ["AuditEvent"]
interactions = ["read", "vread", "search", "history"]
)toml";

}  // namespace

std::string_view DefaultPolicyToml() { return kDefaultPolicy; }

}  // namespace phigate::policy
