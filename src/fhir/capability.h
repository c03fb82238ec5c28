// The CapabilityStatement served at GET [base]/metadata (capabilitystatement.html):
// lists exactly the interactions this build supports, for every R4 resource type.
// Thread-safety: pure function of its inputs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/config.h"
#include "fhir/model.h"
#include "fhir/search_index.h"

namespace phigate::fhir {

// Extension on CapabilityStatement.rest.resource naming (valueCode) an R4 search parameter
// of the type that phigate does not evaluate: a search with it answers 501.
inline constexpr std::string_view kUnsupportedSearchParamUrl =
    "https://phigate.dev/fhir/StructureDefinition/unsupported-search-param";

struct CapabilityInputs {
  std::string base_url;    // https://host:port/fhir
  std::string token_url;   // https://host:port/oauth2/token
  std::string oauth_base;  // https://host:port/oauth2
  int64_t now_ms = 0;
};

// `index` says which search parameters searches accept (SearchIndex::Searchable).
std::string CapabilityStatementJson(const Model& model, const FhirConfig& config,
                                    const SearchIndex& index, const CapabilityInputs& inputs);

}  // namespace phigate::fhir
