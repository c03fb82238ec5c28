// Microbenchmark of the authorization policy stage alone (issue 4 §9): what one
// `GET /fhir/Patient/{id}` pays for Policy::Evaluate + ApplyView, for the billing role
// (element policy: 6 of Patient's elements visible, narrative removed, SUBSETTED tag) and
// the clinician role (nothing hidden), on a realistic stored Patient of about 2 KB.
// bench/policy_bench.sh relates these figures to the whole request's cost measured with wrk.
//
// `policy_eval_bench --patient_json` prints the Patient (without id and meta) and exits:
// the wrk benchmark seeds the server with exactly the resource measured here.
#include <benchmark/benchmark.h>

#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "auth/principal.h"
#include "auth/scope.h"
#include "core/url.h"
#include "fhir/json_parse.h"
#include "fhir/json_text.h"
#include "policy/policy.h"
#include "policy/view.h"

namespace phigate::policy {
namespace {

// A stored Patient as phigate returns it (id and meta set by the server): identifiers,
// names, telecom, address, demographics, a general practitioner, a contact, US Core
// extensions and a generated narrative of a few hundred bytes; about 2.3 KB.
constexpr std::string_view kPatient =
    R"j({"resourceType":"Patient",)j"
    R"j("id":"5d1c2a0e-7f3b-4c8e-9a61-2b4f0e8d7c35",)j"
    R"j("meta":{"versionId":"1","lastUpdated":"2025-01-15T09:30:12.345Z"},)j"
    R"j("text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">)j"
    R"j(<p><b>Alexandra Marie Okonkwo-Schmidt</b>, female, born 1968-04-17 (MRN 00482913)</p>)j"
    R"j(<p>Address: 1204 Benchmark Avenue, Apartment 17, Springfield, IL 62704, US</p>)j"
    R"j(<p>Married. General practitioner: )j"
    R"j(Dr. Priya Raman. Next of kin: Jordan Schmidt (spouse), +1-555-0100.</p></div>"},)j"
    R"j("extension":[{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",)j"
    R"j("extension":[{"url":"ombCategory","valueCoding":{"system":"urn:oid:2.16.840.1.113883.6.238",)j"
    R"j("code":"2054-5","display":"Black or African American"}},{"url":"text",)j"
    R"j("valueString":"Black or African American"}]},)j"
    R"j({"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"F"}],)j"
    R"j("identifier":[{"use":"usual","type":{"coding":[{"system":)j"
    R"j("http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR","display":"Medical record number"}]},)j"
    R"j("system":"http://hospital.example.org/mrn","value":"00482913"},)j"
    R"j({"use":"official","system":"http://hl7.org/fhir/sid/us-ssn","value":"999-48-2913"}],)j"
    R"j("active":true,)j"
    R"j("name":[{"use":"official","family":"Okonkwo-Schmidt","given":["Alexandra","Marie"],)j"
    R"j("prefix":["Ms."]},{"use":"maiden","family":"Okonkwo","given":["Alexandra"]}],)j"
    R"j("telecom":[{"system":"phone","value":"+1-555-0142","use":"home","rank":1},)j"
    R"j({"system":"phone","value":"+1-555-0199","use":"mobile"},)j"
    R"j({"system":"email","value":"a.okonkwo@example.org","use":"home"}],)j"
    R"j("gender":"female","birthDate":"1968-04-17",)j"
    R"j("address":[{"use":"home","type":"both","line":["1204 Benchmark Avenue","Apartment 17"],)j"
    R"j("city":"Springfield","state":"IL","postalCode":"62704",)j"
    R"j("country":"US","period":{"start":"2012-06-01"}}],)j"
    R"j("maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",)j"
    R"j("code":"M","display":"Married"}]},)j"
    R"j("contact":[{"relationship":[{"coding":[{"system":)j"
    R"j("http://terminology.hl7.org/CodeSystem/v2-0131","code":"N","display":"Next-of-Kin"}]}],)j"
    R"j("name":{"family":"Schmidt","given":["Jordan"]},)j"
    R"j("telecom":[{"system":"phone","value":"+1-555-0100","use":"mobile"}],)j"
    R"j("address":{"line":["1204 Benchmark Avenue"],"city":"Springfield","state":"IL",)j"
    R"j("postalCode":"62704"},"gender":"male"}],)j"
    R"j("generalPractitioner":[{"reference":"Practitioner/3f9a1c44-0b7e-4d2a-8c55-6e1d2f7a9b10",)j"
    R"j("display":"Dr. Priya Raman"}]})j";

// What the billing view must leave (issue 4 §1: name, birthDate, gender, address,
// identifier, telecom), besides resourceType, id and meta.
constexpr const char* kBillingVisible[] = {"resourceType", "id",        "meta",
                                           "identifier",   "name",      "telecom",
                                           "gender",       "birthDate", "address"};

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "policy_eval_bench: %s\n", what);
  std::abort();
}

auth::Principal SystemPrincipal(const char* role) {
  auth::Principal p;
  p.kind = auth::PrincipalKind::kSystem;
  p.subject = p.client_id = "bench";
  p.roles = {role};
  auto scopes = auth::ScopeSet::Parse("system/*.cruds");
  if (!scopes.ok()) Fail("scope parse failed");
  p.scopes = std::move(scopes).value();
  return p;
}

// The stage as the pipeline runs it for a read (src/http/pipeline.cc, HandleFhir and
// Shape): evaluate the policy, parse the (empty) narrowing, shape the stored resource.
Visibility PolicyStage(const auth::Principal& principal, const QueryParams& params,
                       std::string& json) {
  Decision d = Policy::Default().Evaluate(
      {&principal, "Patient", auth::Interaction::kRead, principal.purpose_of_use});
  if (!d.allowed) Fail("policy denied the read");
  auto narrowing = ParseNarrowing(params, false);
  if (!narrowing.ok()) Fail("narrowing failed");
  View view;
  view.read_mask = d.read_mask;
  view.hidden_labels = d.hidden_labels;
  view.narrowing = narrowing->empty() ? nullptr : &narrowing.value();
  auto visibility = ApplyView("Patient", json, view);
  if (!visibility.ok()) Fail("ApplyView failed");
  return *visibility;
}

// Checks once that the billing view is what the benchmark claims it is, and that the
// clinician view leaves the bytes untouched.
void CheckViews() {
  const QueryParams none;
  std::string billing(kPatient);
  if (PolicyStage(SystemPrincipal("billing"), none, billing) != Visibility::kVisible) {
    Fail("billing view not visible");
  }
  boost::json::object out = boost::json::parse(billing).as_object();
  if (out.size() != std::size(kBillingVisible)) Fail("billing view: unexpected elements");
  for (const char* key : kBillingVisible) {
    if (!out.contains(key)) Fail("billing view: an allowed element is missing");
  }
  if (boost::json::serialize(out["meta"]).find("SUBSETTED") == std::string::npos) {
    Fail("billing view: no SUBSETTED tag");
  }
  std::string clinician(kPatient);
  if (PolicyStage(SystemPrincipal("clinician"), none, clinician) != Visibility::kVisible ||
      clinician != kPatient) {
    Fail("clinician view changed the resource");
  }
  std::fprintf(stderr, "Patient %zu bytes; billing view %zu bytes, clinician view %zu bytes\n",
               kPatient.size(), billing.size(), clinician.size());
}

// `json` is refilled from kPatient every iteration (ApplyView works in place); the buffer
// keeps its capacity, so that costs one ~2 KB memcpy, measured alone by BM_RefillOnly.
void RunStage(benchmark::State& state, const char* role) {
  const auth::Principal principal = SystemPrincipal(role);
  const QueryParams none;
  std::string json;
  json.reserve(kPatient.size());
  for (auto _ : state) {
    json.assign(kPatient);
    benchmark::DoNotOptimize(PolicyStage(principal, none, json));
    benchmark::DoNotOptimize(json.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kPatient.size()));
}

void RunEvaluate(benchmark::State& state, const char* role) {
  const auth::Principal principal = SystemPrincipal(role);
  for (auto _ : state) {
    benchmark::DoNotOptimize(Policy::Default().Evaluate(
        {&principal, "Patient", auth::Interaction::kRead, principal.purpose_of_use}));
  }
}

void BM_StageBilling(benchmark::State& s) { RunStage(s, "billing"); }
void BM_StageClinician(benchmark::State& s) { RunStage(s, "clinician"); }
void BM_EvaluateBilling(benchmark::State& s) { RunEvaluate(s, "billing"); }
void BM_EvaluateClinician(benchmark::State& s) { RunEvaluate(s, "clinician"); }
void BM_RefillOnly(benchmark::State& state) {
  std::string json;
  json.reserve(kPatient.size());
  for (auto _ : state) {
    json.assign(kPatient);
    benchmark::DoNotOptimize(json.data());
  }
}

// Where the billing stage's time goes: MinimizeResource (policy/minimize.cc) parses the
// whole resource into a tree (fhir::ParseJson) and scans its top-level members
// (fhir::TopLevelMembers) before it copies the kept members.
void BM_ParseJsonOnly(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(fhir::ParseJson(kPatient, 256));
}
void BM_TopLevelMembersOnly(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(fhir::TopLevelMembers(kPatient));
}

BENCHMARK(BM_StageBilling);
BENCHMARK(BM_StageClinician);
BENCHMARK(BM_EvaluateBilling);
BENCHMARK(BM_EvaluateClinician);
BENCHMARK(BM_RefillOnly);
BENCHMARK(BM_ParseJsonOnly);
BENCHMARK(BM_TopLevelMembersOnly);

}  // namespace
}  // namespace phigate::policy

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--patient_json") == 0) {
    boost::json::object body = boost::json::parse(phigate::policy::kPatient).as_object();
    body.erase("id");
    body.erase("meta");
    std::printf("%s\n", boost::json::serialize(body).c_str());
    return 0;
  }
  phigate::policy::Policy::Default();  // parse the default policy before timing
  phigate::policy::CheckViews();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
