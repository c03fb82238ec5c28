#include "policy/policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "auth/roles.h"

namespace phigate::policy {
namespace {

using auth::Interaction;

auth::Principal MakePrincipal(std::vector<std::string> roles,
                              std::string_view scopes = "user/*.cruds") {
  auth::Principal p;
  p.kind = auth::PrincipalKind::kPerson;
  p.subject = "u1";
  p.roles = std::move(roles);
  Result<auth::ScopeSet> s = auth::ScopeSet::Parse(scopes);
  EXPECT_TRUE(s.ok()) << s.status().message();
  if (s.ok()) p.scopes = s.value();
  return p;
}

Decision Eval(const Policy& policy, const auth::Principal& p, std::string_view type, Interaction i,
              std::string_view purpose = {}) {
  return policy.Evaluate(Request{&p, type, i, purpose});
}

// ---------------------------------------------------------------------------------------
// The default policy.

TEST(DefaultPolicyTest, LoadsWithTheKnownRoles) {
  const Policy& policy = Policy::Default();
  std::vector<std::string> expected(auth::kKnownRoles.begin(), auth::kKnownRoles.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(policy.RoleNames(), expected);
  EXPECT_EQ(policy.DefaultPurpose("admin"), "");
  EXPECT_EQ(policy.DefaultPurpose("clinician"), "TREAT");
  EXPECT_EQ(policy.DefaultPurpose("billing"), "HPAYMT");
  EXPECT_EQ(policy.DefaultPurpose("auditor"), "HCOMPL");
  EXPECT_EQ(policy.DefaultPurpose("patient"), "PATRQT");
  EXPECT_FALSE(policy.HasRole("nurse"));
  // The same text parses under Parse too (what docs/policy.md shows is loadable).
  EXPECT_TRUE(Policy::Parse(DefaultPolicyToml(), "default").ok());
}

// docs/policy.md shows the default policy verbatim; this keeps the two from drifting.
TEST(DefaultPolicyTest, DocumentedVerbatim) {
  const char* root = std::getenv("PHIGATE_SOURCE_DIR");
  ASSERT_NE(root, nullptr) << "run through ctest, or set PHIGATE_SOURCE_DIR";
  std::ifstream in(std::string(root) + "/docs/policy.md");
  ASSERT_TRUE(in.good());
  std::stringstream doc;
  doc << in.rdbuf();
  EXPECT_NE(doc.str().find("```toml\n" + std::string(DefaultPolicyToml()) + "```"),
            std::string::npos);
}

// Order of the matrix columns.
constexpr Interaction kColumns[] = {
    Interaction::kRead,        Interaction::kVread,
    Interaction::kSearch,      Interaction::kHistoryInstance,
    Interaction::kHistoryType, Interaction::kCreate,
    Interaction::kUpdate,      Interaction::kDelete,
};

struct MatrixRow {
  const char* role;
  const char* type;
  // One flag per kColumns entry: 1 = allowed.
  //            read vread search h-inst h-type create update delete
  const char* allowed;
};

constexpr MatrixRow kMatrix[] = {
    // admin: no PHI at all.
    {"admin", "Patient", "00000000"},
    {"admin", "Observation", "00000000"},
    {"admin", "Condition", "00000000"},
    {"admin", "Encounter", "00000000"},
    {"admin", "Coverage", "00000000"},
    {"admin", "Claim", "00000000"},
    {"admin", "AuditEvent", "00000000"},
    {"admin", "DiagnosticReport", "00000000"},
    {"admin", "Practitioner", "00000000"},
    // clinician: everything clinical and demographic; the audit trail is not theirs.
    {"clinician", "Patient", "11111111"},
    {"clinician", "Observation", "11111111"},
    {"clinician", "Condition", "11111111"},
    {"clinician", "Encounter", "11111111"},
    {"clinician", "Coverage", "11111111"},
    {"clinician", "Claim", "11111111"},
    {"clinician", "AuditEvent", "00000000"},
    {"clinician", "DiagnosticReport", "11111111"},
    {"clinician", "Practitioner", "11111111"},
    // billing: demographics (updating only contact details), read-only encounters,
    // read/write financial resources.
    {"billing", "Patient", "11111010"},
    {"billing", "Observation", "00000000"},
    {"billing", "Condition", "00000000"},
    {"billing", "Encounter", "11111000"},
    {"billing", "Coverage", "11111110"},
    {"billing", "Claim", "11111110"},
    {"billing", "AuditEvent", "00000000"},
    {"billing", "DiagnosticReport", "00000000"},
    {"billing", "Practitioner", "00000000"},
    // auditor: AuditEvent read and search only.
    {"auditor", "Patient", "00000000"},
    {"auditor", "Observation", "00000000"},
    {"auditor", "Condition", "00000000"},
    {"auditor", "Encounter", "00000000"},
    {"auditor", "Coverage", "00000000"},
    {"auditor", "Claim", "00000000"},
    {"auditor", "AuditEvent", "10100000"},
    {"auditor", "DiagnosticReport", "00000000"},
    {"auditor", "Practitioner", "00000000"},
    // patient: read-only, in their compartment (checked below), no audit trail.
    {"patient", "Patient", "11111000"},
    {"patient", "Observation", "11111000"},
    {"patient", "Condition", "11111000"},
    {"patient", "Encounter", "11111000"},
    {"patient", "Coverage", "11111000"},
    {"patient", "Claim", "11111000"},
    {"patient", "AuditEvent", "00000000"},
    {"patient", "DiagnosticReport", "11111000"},
    {"patient", "Practitioner", "11111000"},
};

TEST(DefaultPolicyTest, RoleInteractionTypeMatrix) {
  const Policy& policy = Policy::Default();
  int checked = 0;
  for (const MatrixRow& row : kMatrix) {
    auth::Principal p = MakePrincipal({row.role});
    for (size_t c = 0; c < std::size(kColumns); ++c) {
      Interaction i = kColumns[c];
      Decision d = Eval(policy, p, row.type, i);
      SCOPED_TRACE(std::string(row.role) + " " + std::string(InteractionName(i)) + " " + row.type +
                   " column " + std::to_string(c));
      if (row.allowed[c] == '1') {
        EXPECT_TRUE(d.allowed) << d.denial;
        EXPECT_EQ(d.denial, "");
        EXPECT_EQ(d.purpose, policy.DefaultPurpose(row.role));
        EXPECT_NE(d.read_mask, nullptr);
        EXPECT_NE(d.write_mask, nullptr);
        EXPECT_EQ(d.patient_compartment, std::string(row.role) == "patient");
        EXPECT_FALSE(d.break_glass);
      } else {
        EXPECT_FALSE(d.allowed);
        std::string expected =
            std::string(row.role) == "admin"
                ? "no role grants access to protected health information"
                : "no role grants " + std::string(InteractionName(i)) + " on " + row.type;
        EXPECT_EQ(d.denial, expected);
        EXPECT_EQ(d.read_mask, nullptr);
        EXPECT_EQ(d.write_mask, nullptr);
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 5 * 9 * 8);
}

TEST(DefaultPolicyTest, UnknownOrNoRoleIsDenied) {
  const Policy& policy = Policy::Default();
  auth::Principal nurse = MakePrincipal({"nurse"});
  EXPECT_EQ(Eval(policy, nurse, "Patient", Interaction::kRead).denial,
            "no role grants read on Patient");
  auth::Principal none = MakePrincipal({});
  EXPECT_EQ(Eval(policy, none, "Patient", Interaction::kSearch).denial,
            "no role grants search on Patient");
  Decision d = policy.Evaluate(Request{nullptr, "Patient", Interaction::kRead, {}});
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.denial, "no role grants read on Patient");
  // A type name from the URL that the model does not know is not echoed.
  auth::Principal billing = MakePrincipal({"billing"});
  EXPECT_EQ(Eval(policy, billing, "<script>", Interaction::kRead).denial,
            "no role grants read on this resource type");
  // "*" covers the R4 resource types only.
  auth::Principal clinician = MakePrincipal({"clinician"});
  EXPECT_EQ(Eval(policy, clinician, "Foo", Interaction::kRead).denial,
            "no role grants read on this resource type");
  EXPECT_EQ(Eval(policy, clinician, "", Interaction::kSearch).denial,
            "no role grants search on this resource type");
}

// ---------------------------------------------------------------------------------------
// Purpose of use (issue 4 §4).

TEST(PurposeOfUseTest, AllowedMissingForbidden) {
  const Policy& policy = Policy::Default();
  auth::Principal clinician = MakePrincipal({"clinician"});

  Decision allowed = Eval(policy, clinician, "Observation", Interaction::kRead, "HOPERAT");
  EXPECT_TRUE(allowed.allowed);
  EXPECT_EQ(allowed.purpose, "HOPERAT");

  Decision missing = Eval(policy, clinician, "Observation", Interaction::kRead);
  EXPECT_TRUE(missing.allowed);
  EXPECT_EQ(missing.purpose, "TREAT");

  Decision forbidden = Eval(policy, clinician, "Observation", Interaction::kRead, "HPAYMT");
  EXPECT_FALSE(forbidden.allowed);
  EXPECT_EQ(forbidden.denial, "purpose of use HPAYMT is not allowed for read on Observation");
  EXPECT_EQ(forbidden.purpose, "HPAYMT");
  EXPECT_EQ(forbidden.read_mask, nullptr);

  auth::Principal billing = MakePrincipal({"billing"});
  EXPECT_EQ(Eval(policy, billing, "Claim", Interaction::kCreate, "TREAT").denial,
            "purpose of use TREAT is not allowed for create on Claim");
  EXPECT_EQ(Eval(policy, billing, "Claim", Interaction::kCreate).purpose, "HPAYMT");
}

TEST(PurposeOfUseTest, UnknownCodeIsDeniedWithoutEchoingIt) {
  auth::Principal clinician = MakePrincipal({"clinician"});
  Decision d = Eval(Policy::Default(), clinician, "Patient", Interaction::kRead, "<b>x</b>");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.denial, "purpose of use is not a PurposeOfUse code");
  EXPECT_EQ(d.purpose, "");
}

TEST(PurposeOfUseTest, BreakGlassOnlyForBreakGlassRoles) {
  const Policy& policy = Policy::Default();
  auth::Principal clinician = MakePrincipal({"clinician"});
  Decision d = Eval(policy, clinician, "Condition", Interaction::kRead, "ETREAT");
  EXPECT_TRUE(d.allowed) << d.denial;
  EXPECT_TRUE(d.break_glass);
  EXPECT_EQ(d.purpose, "ETREAT");

  auth::Principal billing = MakePrincipal({"billing"});
  Decision b = Eval(policy, billing, "Patient", Interaction::kRead, "ETREAT");
  EXPECT_FALSE(b.allowed);
  EXPECT_EQ(b.denial, "break-glass (purpose of use ETREAT) is not allowed for read on Patient");
}

TEST(PurposeOfUseTest, CodeList) {
  for (std::string_view c :
       {"TREAT",    "ETREAT",    "HPAYMT",   "HOPERAT",  "PUBHLTH", "HRESCH",   "PATRQT",
        "HMARKT",   "HSYSADMIN", "HLEGAL",   "HQUALIMP", "CAREMGT", "CLINTRCH", "COVERAGE",
        "DISASTER", "FAMRQT",    "PATADMIN", "PATSFTY",  "PWATRNY", "SYSDEV",   "TRAIN",
        "HDIRECT",  "HTEST",     "COC",      "BTG",      "HCOMPL"}) {
    EXPECT_TRUE(IsPurposeOfUseCode(c)) << c;
  }
  EXPECT_FALSE(IsPurposeOfUseCode("treat"));
  EXPECT_FALSE(IsPurposeOfUseCode(""));
}

// ---------------------------------------------------------------------------------------
// SMART scopes and compartments.

TEST(ScopeIntersectionTest, RoleAllowsScopeDoesNot) {
  const Policy& policy = Policy::Default();
  auth::Principal p = MakePrincipal({"clinician"}, "openid user/Patient.rs");
  EXPECT_TRUE(Eval(policy, p, "Patient", Interaction::kRead).allowed);
  EXPECT_TRUE(Eval(policy, p, "Patient", Interaction::kHistoryType).allowed);
  EXPECT_EQ(Eval(policy, p, "Patient", Interaction::kCreate).denial,
            "token scopes do not grant create on Patient");
  EXPECT_EQ(Eval(policy, p, "Observation", Interaction::kRead).denial,
            "token scopes do not grant read on Observation");
  // The role rule is checked first: a scope never widens a role.
  auth::Principal b = MakePrincipal({"billing"}, "user/*.cruds");
  EXPECT_EQ(Eval(policy, b, "Observation", Interaction::kRead).denial,
            "no role grants read on Observation");
  auth::Principal none = MakePrincipal({"clinician"}, "openid");
  EXPECT_EQ(Eval(policy, none, "Patient", Interaction::kRead).denial,
            "token scopes do not grant read on Patient");
}

TEST(CompartmentTest, PatientRoleAndPatientScopes) {
  const Policy& policy = Policy::Default();
  auth::Principal patient = MakePrincipal({"patient"}, "patient/*.rs");
  Decision d = Eval(policy, patient, "Observation", Interaction::kSearch);
  EXPECT_TRUE(d.allowed);
  EXPECT_TRUE(d.patient_compartment);
  EXPECT_EQ(d.purpose, "PATRQT");
  // Even with user/ scopes the role restricts to the compartment.
  auth::Principal patient_user = MakePrincipal({"patient"}, "user/*.rs");
  EXPECT_TRUE(Eval(policy, patient_user, "Observation", Interaction::kRead).patient_compartment);

  // A clinician app launched with patient/ scopes only: the scopes restrict.
  auth::Principal app = MakePrincipal({"clinician"}, "patient/Observation.rs");
  Decision a = Eval(policy, app, "Observation", Interaction::kRead);
  EXPECT_TRUE(a.allowed);
  EXPECT_TRUE(a.patient_compartment);
  // With a user/ scope for the same permission the compartment no longer applies.
  auth::Principal both = MakePrincipal({"clinician"}, "patient/Observation.rs user/Observation.r");
  EXPECT_FALSE(Eval(policy, both, "Observation", Interaction::kRead).patient_compartment);
  // ... but only for what the user/ scope grants (search comes from patient/ only).
  EXPECT_TRUE(Eval(policy, both, "Observation", Interaction::kSearch).patient_compartment);

  // Several roles: the compartment applies only if every allowing role requires it.
  auth::Principal two = MakePrincipal({"patient", "clinician"}, "user/*.cruds");
  EXPECT_FALSE(Eval(policy, two, "Observation", Interaction::kRead, "TREAT").patient_compartment);
  // With PATRQT only the patient role allows, so the compartment applies.
  EXPECT_TRUE(Eval(policy, two, "Observation", Interaction::kRead, "PATRQT").patient_compartment);
}

// ---------------------------------------------------------------------------------------
// Element masks (minimum necessary).

TEST(PolicyMaskTest, BillingPatientAndEncounter) {
  const Policy& policy = Policy::Default();
  auth::Principal billing = MakePrincipal({"billing"});
  Decision d = Eval(policy, billing, "Patient", Interaction::kRead);
  ASSERT_TRUE(d.allowed);
  ASSERT_NE(d.read_mask, nullptr);
  EXPECT_FALSE(d.read_mask->all);
  for (std::string_view e : {"name", "birthDate", "gender", "address", "identifier", "telecom",
                             "id", "meta", "resourceType"}) {
    EXPECT_TRUE(d.read_mask->Allows(e)) << e;
  }
  // Not listed, so hidden: extensions, the narrative, clinical and social fields.
  for (std::string_view e : {"extension", "text", "maritalStatus", "deceasedBoolean", "contact",
                             "generalPractitioner", "photo", "communication"}) {
    EXPECT_FALSE(d.read_mask->Allows(e)) << e;
  }
  // Billing may update only the contact details it bills to.
  EXPECT_FALSE(d.write_mask->all);
  EXPECT_FALSE(d.write_mask->Allows("name"));
  EXPECT_FALSE(d.write_mask->Allows("birthDate"));
  EXPECT_TRUE(d.write_mask->Allows("address"));
  EXPECT_TRUE(d.write_mask->Allows("telecom"));

  Decision e = Eval(policy, billing, "Encounter", Interaction::kSearch);
  ASSERT_TRUE(e.allowed);
  for (std::string_view n : {"status", "class", "type", "period", "serviceProvider"}) {
    EXPECT_TRUE(e.read_mask->Allows(n)) << n;
  }
  for (std::string_view n : {"diagnosis", "reasonCode", "hospitalization", "subject", "text"}) {
    EXPECT_FALSE(e.read_mask->Allows(n)) << n;
  }
  // Financial resources have no element policy, only narrative = false (below).
  Decision c = Eval(policy, billing, "Claim", Interaction::kUpdate);
  ASSERT_TRUE(c.allowed);
  EXPECT_TRUE(c.read_mask->Allows("item"));
  EXPECT_TRUE(c.write_mask->Allows("item"));
  // The allow path hands out the precomputed masks, the same each time.
  EXPECT_EQ(Eval(policy, billing, "Patient", Interaction::kVread).read_mask, d.read_mask);
}

TEST(PolicyMaskTest, BillingSeesNoNarrativeOrNotesOnFinancialResources) {
  const Policy& policy = Policy::Default();
  auth::Principal billing = MakePrincipal({"billing"});
  // Claim has a narrative but no note in R4.
  Decision claim = Eval(policy, billing, "Claim", Interaction::kRead);
  ASSERT_TRUE(claim.allowed);
  EXPECT_FALSE(claim.read_mask->all);
  EXPECT_FALSE(claim.write_mask->all);
  for (const ElementMask* mask : {claim.read_mask, claim.write_mask}) {
    EXPECT_FALSE(mask->Allows("text"));
    EXPECT_FALSE(mask->Allows("_text"));
    for (std::string_view e : {"resourceType", "id", "meta", "identifier", "status", "patient",
                               "item", "total", "extension", "contained", "insurance"}) {
      EXPECT_TRUE(mask->Allows(e)) << e;
    }
  }
  EXPECT_EQ(std::find(claim.read_mask->elements.begin(), claim.read_mask->elements.end(), "note"),
            claim.read_mask->elements.end());
  // Every element of Claim but text, and meta (always visible, never listed, so that
  // billing cannot write it), choice elements by their [x] name.
  EXPECT_EQ(claim.read_mask->elements.size(),
            fhir::Model::R4().FindResourceType("Claim")->elements.elements().size() - 2);
  EXPECT_TRUE(claim.read_mask->Allows("meta"));
  EXPECT_FALSE(claim.write_mask->Lists("meta"));

  Decision response = Eval(policy, billing, "ClaimResponse", Interaction::kSearch);
  ASSERT_TRUE(response.allowed);
  EXPECT_FALSE(response.read_mask->Allows("processNote"));
  EXPECT_FALSE(response.read_mask->Allows("text"));
  EXPECT_TRUE(response.read_mask->Allows("outcome"));
  EXPECT_TRUE(response.read_mask->Allows("item"));

  Decision invoice = Eval(policy, billing, "Invoice", Interaction::kCreate);
  ASSERT_TRUE(invoice.allowed);
  EXPECT_FALSE(invoice.write_mask->Allows("note"));
  EXPECT_FALSE(invoice.write_mask->Allows("text"));
  EXPECT_TRUE(invoice.write_mask->Allows("totalNet"));

  Decision eob = Eval(policy, billing, "ExplanationOfBenefit", Interaction::kRead);
  ASSERT_TRUE(eob.allowed);
  EXPECT_FALSE(eob.read_mask->Allows("processNote"));
  EXPECT_TRUE(eob.read_mask->Allows("benefitPeriod"));
  for (std::string_view type : {"Coverage", "Account"}) {
    Decision d = Eval(policy, billing, type, Interaction::kRead);
    ASSERT_TRUE(d.allowed) << type;
    EXPECT_FALSE(d.read_mask->Allows("text")) << type;
    EXPECT_TRUE(d.read_mask->Allows("status")) << type;
  }
  // The explicit Patient policy keeps its own list (which has no narrative).
  EXPECT_FALSE(Eval(policy, billing, "Patient", Interaction::kRead).read_mask->Allows("text"));
  // Precomputed: the same mask every time.
  EXPECT_EQ(Eval(policy, billing, "Claim", Interaction::kVread).read_mask, claim.read_mask);

  // The clinician is unaffected.
  auth::Principal clinician = MakePrincipal({"clinician"});
  for (std::string_view type : {"Claim", "ClaimResponse", "Invoice", "Observation"}) {
    Decision d = Eval(policy, clinician, type, Interaction::kRead);
    ASSERT_TRUE(d.allowed) << type;
    EXPECT_TRUE(d.read_mask->all) << type;
    EXPECT_TRUE(d.write_mask->all) << type;
  }
}

TEST(PolicyMaskTest, NarrativeFalseWithAStarGrant) {
  constexpr std::string_view kToml = R"(
[roles.patient]
purposes = ["PATRQT"]
default_purpose = "PATRQT"
narrative = false
[[roles.patient.grants]]
types = ["*"]
except = ["AuditEvent"]
interactions = ["read"]
[[roles.patient.grants]]
types = ["AuditEvent"]
interactions = ["search"]
[roles.patient.elements.Patient]
read = ["name", "gender"]

[roles.clinician]
purposes = ["PATRQT"]
default_purpose = "PATRQT"
[[roles.clinician.grants]]
types = ["Observation"]
interactions = ["read"]
)";
  Result<Policy> policy = Policy::Parse(kToml, "n.toml");
  ASSERT_TRUE(policy.ok()) << policy.status().message();
  auth::Principal p = MakePrincipal({"patient"});
  Decision obs = Eval(*policy, p, "Observation", Interaction::kRead);
  ASSERT_TRUE(obs.allowed);
  EXPECT_FALSE(obs.read_mask->Allows("note"));
  EXPECT_FALSE(obs.read_mask->Allows("text"));
  EXPECT_TRUE(obs.read_mask->Allows("valueQuantity"));
  EXPECT_TRUE(obs.read_mask->Allows("effectiveDateTime"));
  EXPECT_FALSE(Eval(*policy, p, "Condition", Interaction::kRead).read_mask->Allows("note"));
  Decision audit = Eval(*policy, p, "AuditEvent", Interaction::kSearch);
  ASSERT_TRUE(audit.allowed);
  EXPECT_FALSE(audit.read_mask->Allows("text"));
  Decision patient = Eval(*policy, p, "Patient", Interaction::kRead);
  EXPECT_TRUE(patient.read_mask->Allows("name"));
  EXPECT_FALSE(patient.read_mask->Allows("birthDate"));
  // Binary has no narrative: nothing to hide, so no restriction.
  Decision binary = Eval(*policy, p, "Binary", Interaction::kRead);
  ASSERT_TRUE(binary.allowed);
  EXPECT_TRUE(binary.read_mask->all);
  // Another allowing role without the restriction widens the union as usual.
  auth::Principal both = MakePrincipal({"patient", "clinician"});
  EXPECT_TRUE(Eval(*policy, both, "Observation", Interaction::kRead).read_mask->all);
}

TEST(PolicyMaskTest, ClinicianSeesEverything) {
  auth::Principal clinician = MakePrincipal({"clinician"});
  Decision d = Eval(Policy::Default(), clinician, "Patient", Interaction::kRead);
  ASSERT_TRUE(d.allowed);
  EXPECT_TRUE(d.read_mask->all);
  EXPECT_TRUE(d.write_mask->all);
}

TEST(PolicyMaskTest, SeveralRolesSeeTheUnionOfElements) {
  constexpr std::string_view kToml = R"(
[roles.billing]
purposes = ["HPAYMT"]
default_purpose = "HPAYMT"
[[roles.billing.grants]]
types = ["Patient"]
interactions = ["read"]
[roles.billing.elements.Patient]
read = ["name", "gender"]
write = ["name"]

[roles.auditor]
purposes = ["HPAYMT"]
default_purpose = "HPAYMT"
compartment = "patient"
[[roles.auditor.grants]]
types = ["Patient"]
interactions = ["read"]
[roles.auditor.elements.Patient]
read = ["birthDate", "deceased[x]"]
write = []
)";
  Result<Policy> policy = Policy::Parse(kToml, "two.toml");
  ASSERT_TRUE(policy.ok()) << policy.status().message();
  auth::Principal p = MakePrincipal({"billing", "auditor"});
  Decision d = Eval(*policy, p, "Patient", Interaction::kRead);
  ASSERT_TRUE(d.allowed) << d.denial;
  EXPECT_FALSE(d.patient_compartment);  // billing does not require it
  for (std::string_view e : {"name", "gender", "birthDate", "deceasedBoolean"}) {
    EXPECT_TRUE(d.read_mask->Allows(e)) << e;
  }
  EXPECT_FALSE(d.read_mask->Allows("address"));
  EXPECT_TRUE(d.write_mask->Allows("name"));
  EXPECT_FALSE(d.write_mask->Allows("gender"));
  // The combined mask is built once and then reused.
  EXPECT_EQ(Eval(*policy, p, "Patient", Interaction::kRead).read_mask, d.read_mask);

  auth::Principal only = MakePrincipal({"auditor"});
  Decision a = Eval(*policy, only, "Patient", Interaction::kRead);
  EXPECT_TRUE(a.patient_compartment);
  EXPECT_FALSE(a.read_mask->Allows("name"));
}

// ---------------------------------------------------------------------------------------
// Load errors name the offending key (issue 4 §1: an unknown name stops start-up).

constexpr const char* kRoleHead =
    "[roles.billing]\npurposes = [\"HPAYMT\"]\ndefault_purpose = \"HPAYMT\"\n";

TEST(PolicyParseTest, ErrorsNameTheKey) {
  const std::string head = kRoleHead;
  const std::string grant =
      "[[roles.billing.grants]]\ntypes = [\"Patient\"]\ninteractions = [\"read\"]\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"version = 1\n", "p.toml: version: unknown key"},
      {"", "p.toml: roles: missing (a table of roles)"},
      {"[roles.nurse]\n",
       "p.toml: roles.nurse: unknown role (known: admin, clinician, billing, auditor, patient)"},
      {head + "colour = \"red\"\n", "p.toml: roles.billing.colour: unknown key"},
      {"[roles.billing]\npurposes = [\"PAYMENT\"]\n",
       "p.toml: roles.billing.purposes: unknown purpose 'PAYMENT'"},
      {"[roles.billing]\npurposes = [\"HPAYMT\"]\ndefault_purpose = \"TREAT\"\n",
       "p.toml: roles.billing.default_purpose: 'TREAT' is not one of the role's purposes"},
      {"[roles.billing]\npurposes = [\"HPAYMT\"]\n",
       "p.toml: roles.billing.default_purpose: missing"},
      {"[roles.billing]\ndefault_purpose = \"HPAYMT\"\n",
       "p.toml: roles.billing.purposes: missing (a role with PHI needs a purpose)"},
      {"[roles.billing]\npurposes = [\"TREAT\", \"ETREAT\"]\ndefault_purpose = \"TREAT\"\n",
       "p.toml: roles.billing.purposes: ETREAT is granted by break_glass = true, not listed"},
      {head + "compartment = \"encounter\"\n",
       "p.toml: roles.billing.compartment: unknown compartment 'encounter' (expected \"none\" "
       "or \"patient\")"},
      {head + "phi = \"no\"\n", "p.toml: roles.billing.phi: must be a boolean"},
      {head + "[[roles.billing.grants]]\ntypes = [\"Patinet\"]\ninteractions = [\"read\"]\n",
       "p.toml: roles.billing.grants[0].types: unknown resource type 'Patinet'"},
      {head + grant + "[[roles.billing.grants]]\ntypes = [\"Claim\"]\ninteractions = [\"patch\"]\n",
       "p.toml: roles.billing.grants[1].interactions: unknown interaction 'patch'"},
      {head + "[[roles.billing.grants]]\ntypes = [\"Claim\"]\n",
       "p.toml: roles.billing.grants[0].interactions: missing"},
      {head + "[[roles.billing.grants]]\ntypes = [\"Claim\"]\ninteractions = [\"read\"]\n"
              "scope = \"x\"\n",
       "p.toml: roles.billing.grants[0].scope: unknown key"},
      {head + "[[roles.billing.grants]]\ntypes = [\"Claim\"]\nexcept = [\"Patient\"]\n"
              "interactions = [\"read\"]\n",
       "p.toml: roles.billing.grants[0].except: only allowed with types = [\"*\"]"},
      {head + grant + "[roles.billing.elements.Patient]\nread = [\"name\", \"foo\"]\n",
       "p.toml: roles.billing.elements.Patient.read: unknown element 'foo'"},
      {head + grant + "[roles.billing.elements.Patient]\nread = [\"name\"]\nwrite = [\"bar\"]\n",
       "p.toml: roles.billing.elements.Patient.write: unknown element 'bar'"},
      {head + grant + "[roles.billing.elements.Patient]\nread = [\"name\"]\nwrite = [\"gender\"]\n",
       "p.toml: roles.billing.elements.Patient.write: element 'gender' is not readable"},
      {head + grant + "[roles.billing.elements.Patient]\nread = [\"deceased\"]\n",
       "p.toml: roles.billing.elements.Patient.read: choice element 'deceased' must be written "
       "'deceased[x]'"},
      {head + grant + "[roles.billing.elements.Patient]\nread = [\"name[x]\"]\n",
       "p.toml: roles.billing.elements.Patient.read: element 'name[x]' is not a choice element"},
      {head + grant + "[roles.billing.elements.Patient]\nwrite = []\n",
       "p.toml: roles.billing.elements.Patient.read: missing"},
      {head + grant + "[roles.billing.elements.Patient]\nread = []\nhide = []\n",
       "p.toml: roles.billing.elements.Patient.hide: unknown key"},
      {head + grant + "[roles.billing.elements.Pateint]\nread = []\n",
       "p.toml: roles.billing.elements: unknown resource type 'Pateint'"},
      {head + grant + "[roles.billing.elements.Observation]\nread = [\"status\"]\n",
       "p.toml: roles.billing.elements.Observation: no grant of the role covers this type"},
      {"[roles.admin]\nphi = false\n[[roles.admin.grants]]\ntypes = [\"*\"]\n"
       "interactions = [\"read\"]\n",
       "p.toml: roles.admin.grants: not allowed with phi = false"},
      {head + "narrative = \"no\"\n", "p.toml: roles.billing.narrative: must be a boolean"},
      {head + "narrative = false\n" + grant +
           "[roles.billing.elements.Patient]\n"
           "read = [\"name\", \"text\"]\n",
       "p.toml: roles.billing.elements.Patient.read: element 'text' is not allowed with "
       "narrative = false"},
      {head + "narrative = false\n" +
           "[[roles.billing.grants]]\ntypes = [\"Invoice\"]\ninteractions = [\"read\"]\n"
           "[roles.billing.elements.Invoice]\nread = [\"status\"]\nwrite = [\"note\"]\n",
       "p.toml: roles.billing.elements.Invoice.write: element 'note' is not allowed with "
       "narrative = false"},
      {"[roles.admin]\nphi = false\nbreak_glass = true\n",
       "p.toml: roles.admin.break_glass: not allowed with phi = false"},
  };
  for (const auto& [toml, message] : cases) {
    Result<Policy> p = Policy::Parse(toml, "p.toml");
    ASSERT_FALSE(p.ok()) << "accepted:\n" << toml;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(p.status().message(), message) << toml;
  }
}

TEST(PolicyParseTest, SyntaxErrorNamesTheLine) {
  Result<Policy> p = Policy::Parse("[roles.billing]\npurposes = [\n", "p.toml");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message().rfind("p.toml: line ", 0), 0u) << p.status().message();
}

TEST(PolicyParseTest, ChoiceElementsAndExceptAccepted) {
  constexpr std::string_view kToml = R"(
[roles.clinician]
purposes = ["TREAT"]
default_purpose = "TREAT"
[[roles.clinician.grants]]
types = ["*"]
except = ["Observation"]
interactions = ["read"]
[[roles.clinician.grants]]
types = ["Observation"]
interactions = ["search"]
[roles.clinician.elements.Observation]
read = ["status", "code", "value[x]"]
)";
  Result<Policy> policy = Policy::Parse(kToml, "c.toml");
  ASSERT_TRUE(policy.ok()) << policy.status().message();
  auth::Principal p = MakePrincipal({"clinician"});
  // `except` removes only the "*" grant's interactions; the explicit grant still applies.
  EXPECT_FALSE(Eval(*policy, p, "Observation", Interaction::kRead).allowed);
  Decision s = Eval(*policy, p, "Observation", Interaction::kSearch);
  ASSERT_TRUE(s.allowed);
  EXPECT_TRUE(s.read_mask->Allows("valueQuantity"));
  EXPECT_FALSE(s.read_mask->Allows("interpretation"));
  // write defaults to the read list.
  EXPECT_TRUE(s.write_mask->Allows("valueString"));
  EXPECT_FALSE(s.write_mask->Allows("note"));
  EXPECT_TRUE(Eval(*policy, p, "Condition", Interaction::kRead).allowed);
  EXPECT_FALSE(Eval(*policy, p, "Condition", Interaction::kSearch).allowed);
}

}  // namespace
}  // namespace phigate::policy

// ---------------------------------------------------------------------------------------
// Confidentiality labels and what break-glass lifts (issue 4 §5).

namespace phigate::policy {
namespace {

TEST(BreakGlassPolicyTest, DefaultClinicianHidesRestrictedUntilBreakGlass) {
  const Policy& policy = Policy::Default();
  auth::Principal clinician = MakePrincipal({"clinician"});
  Decision normal = Eval(policy, clinician, "Patient", Interaction::kRead);
  ASSERT_TRUE(normal.allowed);
  ASSERT_NE(normal.hidden_labels, nullptr);
  EXPECT_EQ(*normal.hidden_labels, (std::vector<std::string>{"R", "V"}));
  Decision glass = Eval(policy, clinician, "Patient", Interaction::kRead, "ETREAT");
  ASSERT_TRUE(glass.allowed);
  EXPECT_TRUE(glass.break_glass);
  EXPECT_EQ(glass.hidden_labels, nullptr);
  EXPECT_TRUE(glass.read_mask->all);
  // The patient role sees its own restricted records: no labels hidden.
  EXPECT_EQ(Eval(policy, MakePrincipal({"patient"}), "Patient", Interaction::kRead).hidden_labels,
            nullptr);
}

constexpr std::string_view kLiftPolicy = R"toml(
[roles.clinician]
purposes = ["TREAT"]
default_purpose = "TREAT"
compartment = "patient"
hidden_labels = ["V"]
break_glass = true
break_glass_lifts = ["elements"]

[[roles.clinician.grants]]
types = ["Patient"]
interactions = ["read"]

[roles.clinician.elements.Patient]
read = ["name"]

[roles.billing]
purposes = ["TREAT"]
default_purpose = "TREAT"
hidden_labels = ["R", "V"]

[[roles.billing.grants]]
types = ["Patient"]
interactions = ["read"]
)toml";

TEST(BreakGlassPolicyTest, LiftsOnlyWhatThePolicyNames) {
  Result<Policy> policy = Policy::Parse(kLiftPolicy, "p.toml");
  ASSERT_TRUE(policy.ok()) << policy.status().message();
  auth::Principal c = MakePrincipal({"clinician"});
  Decision normal = Eval(policy.value(), c, "Patient", Interaction::kRead);
  ASSERT_TRUE(normal.allowed);
  EXPECT_TRUE(normal.patient_compartment);
  EXPECT_FALSE(normal.read_mask->all);
  Decision glass = Eval(policy.value(), c, "Patient", Interaction::kRead, "ETREAT");
  ASSERT_TRUE(glass.allowed);
  EXPECT_TRUE(glass.patient_compartment);   // not lifted
  EXPECT_TRUE(glass.read_mask->all);        // lifted
  ASSERT_NE(glass.hidden_labels, nullptr);  // not lifted
  EXPECT_EQ(*glass.hidden_labels, std::vector<std::string>{"V"});

  // Two allowing roles: only labels hidden from both stay hidden.
  auth::Principal both = MakePrincipal({"clinician", "billing"});
  Decision d = Eval(policy.value(), both, "Patient", Interaction::kRead);
  ASSERT_TRUE(d.allowed);
  ASSERT_NE(d.hidden_labels, nullptr);
  EXPECT_EQ(*d.hidden_labels, std::vector<std::string>{"V"});
}

TEST(BreakGlassPolicyTest, LabelAndLiftValidation) {
  const std::string head =
      "[roles.clinician]\npurposes = [\"TREAT\"]\ndefault_purpose = \"TREAT\"\n";
  struct Case {
    std::string toml;
    std::string error;
  } cases[] = {
      {head + "hidden_labels = [\"X\"]\n",
       "p.toml: roles.clinician.hidden_labels: unknown v3-Confidentiality code 'X' (expected U, "
       "L, M, N, R or V)"},
      {head + "hidden_labels = [\"R\", \"R\"]\n",
       "p.toml: roles.clinician.hidden_labels: duplicate code"},
      {head + "break_glass_lifts = [\"elements\"]\n",
       "p.toml: roles.clinician.break_glass_lifts: only allowed with break_glass = true"},
      {head + "break_glass = true\nbreak_glass_lifts = [\"scopes\"]\n",
       "p.toml: roles.clinician.break_glass_lifts: unknown restriction 'scopes' (expected "
       "compartment, elements or hidden_labels)"},
  };
  for (const Case& c : cases) {
    Result<Policy> p = Policy::Parse(c.toml, "p.toml");
    ASSERT_FALSE(p.ok()) << c.toml;
    EXPECT_EQ(p.status().message(), c.error);
  }
}

}  // namespace
}  // namespace phigate::policy
