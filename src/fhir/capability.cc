#include "fhir/capability.h"

#include <boost/json.hpp>

#include "core/clock.h"

namespace phigate::fhir {

namespace json = boost::json;

std::string CapabilityStatementJson(const Model& model, const FhirConfig& config,
                                    const CapabilityInputs& inputs) {
  // Only what is implemented: no search (a later issue), no conditional interactions.
  static constexpr const char* kInteractions[] = {
      "read", "vread", "update", "delete", "history-instance", "history-type", "create"};
  json::array resources;
  for (const std::string& type : model.ResourceTypes()) {
    json::array interactions;
    for (const char* code : kInteractions) interactions.push_back(json::object{{"code", code}});
    resources.push_back(json::object{
        {"type", type},
        {"interaction", std::move(interactions)},
        {"versioning", "versioned-update"},
        {"readHistory", true},
        {"updateCreate", config.update_create},
        {"conditionalCreate", false},
        {"conditionalRead", "not-supported"},
        {"conditionalUpdate", false},
        {"conditionalDelete", "not-supported"},
    });
  }
  json::object security{
      {"extension",
       json::array{json::object{
           {"url", "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"},
           {"extension",
            json::array{
                json::object{{"url", "token"}, {"valueUri", inputs.token_url}},
                json::object{{"url", "authorize"}, {"valueUri", inputs.oauth_base + "/authorize"}},
                json::object{{"url", "revoke"}, {"valueUri", inputs.oauth_base + "/revoke"}},
                json::object{{"url", "introspect"},
                             {"valueUri", inputs.oauth_base + "/introspect"}}}}}}},
      {"service",
       json::array{json::object{
           {"coding",
            json::array{json::object{
                {"system", "http://terminology.hl7.org/CodeSystem/restful-security-service"},
                {"code", "SMART-on-FHIR"}}}}}}},
      {"description",
       "OAuth 2.0 bearer tokens are required for every interaction except metadata: SMART "
       "App Launch 2.x (authorization code with PKCE, password + TOTP for every person), "
       "SMART Backend Services (client credentials with client_secret_basic or "
       "private_key_jwt), or access tokens of configured OpenID providers."}};
  json::object cs{
      {"resourceType", "CapabilityStatement"},
      {"status", "active"},
      {"date", FormatInstant(inputs.now_ms)},
      {"publisher", "phigate"},
      {"kind", "instance"},
      {"software", json::object{{"name", "phigate"}, {"version", PHIGATE_VERSION}}},
      {"implementation",
       json::object{{"description", "phigate FHIR R4 server"}, {"url", inputs.base_url}}},
      {"fhirVersion", "4.0.1"},
      {"format", json::array{"application/fhir+json", "json"}},
      {"rest", json::array{json::object{{"mode", "server"},
                                        {"security", std::move(security)},
                                        {"resource", std::move(resources)}}}},
  };
  return json::serialize(cs);
}

}  // namespace phigate::fhir
