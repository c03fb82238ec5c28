#include "fhir/capability.h"

#include <boost/json.hpp>

#include "core/clock.h"
#include "fhir/search_param_defs.h"

namespace phigate::fhir {

namespace json = boost::json;

std::string CapabilityStatementJson(const Model& model, const FhirConfig& config,
                                    const SearchIndex& index, const CapabilityInputs& inputs) {
  // Only what is implemented: no conditional interactions yet.
  static constexpr const char* kInteractions[] = {
      "read",         "vread",  "update",     "delete", "history-instance",
      "history-type", "create", "search-type"};
  json::array resources;
  for (const std::string& type : model.ResourceTypes()) {
    json::array interactions;
    for (const char* code : kInteractions) interactions.push_back(json::object{{"code", code}});
    // Search parameters (issue 6 §1): every R4 parameter of the type whose expression
    // phigate evaluates; the rest are named in an extension and answer 501.
    json::array params;
    json::array unsupported;
    for (const SearchParamDef* def : SearchParamsOf(type)) {
      const IndexedParam* param = index.Find(type, def->code);
      if (param == nullptr || !SearchIndex::Searchable(*param)) {
        unsupported.push_back(json::string(def->code));
        continue;
      }
      params.push_back(json::object{
          {"name", def->code},
          {"definition", "http://hl7.org/fhir/SearchParameter/" + std::string(def->id)},
          {"type", SearchParamTypeName(def->type)}});
    }
    json::object resource{
        {"type", type},
        {"interaction", std::move(interactions)},
        {"versioning", "versioned-update"},
        {"readHistory", true},
        {"updateCreate", config.update_create},
        {"conditionalCreate", false},
        {"conditionalRead", "not-supported"},
        {"conditionalUpdate", false},
        {"conditionalDelete", "not-supported"},
        {"searchParam", std::move(params)},
    };
    if (!unsupported.empty()) {
      json::array ext;
      for (json::value& code : unsupported) {
        ext.push_back(
            json::object{{"url", json::string(kUnsupportedSearchParamUrl)}, {"valueCode", code}});
      }
      resource["extension"] = std::move(ext);
    }
    resources.push_back(std::move(resource));
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
