// fhirpath_eval: the phigate side of the FHIRPath differential test
// (fhirpath_diff.test.mjs, issue 6 §1 "none silently returns a wrong value").
//
//   fhirpath_eval --params   one JSON line per (resource type, search parameter with an
//                            expression): {"type", "code", "base", "expression"}, in
//                            SearchParamsOf order, so the test evaluates exactly the
//                            expressions phigate evaluates.
//   fhirpath_eval            reads NDJSON resources on stdin; for resource number i (from 0)
//                            prints, after it passes ParseJson and ValidateResource (the
//                            server's own checks, so every compared instance is one phigate
//                            would store), one line per parameter of SearchParamsOf(type)
//                            with an expression: {"i", "code", "values": [...]}, or
//                            {"i", "code", "error"} when the expression does not parse
//                            (listed as unsupported). A resource that fails validation
//                            prints one line {"i", "invalid", "path"} instead.
//
// A value is the JSON of the node (a primitive, an object, a whole resource, or a computed
// boolean). What resolve() yields is never a search value in the R4 definitions (they only
// type-test it), but if an expression ends in resolve() the node is printed as
// {"resolvedType": T, "reference": "..."}, which no JSON value of a resource can equal, so a
// difference shows up instead of passing silently.
//
// A test tool, not part of phigate: it links only the model, the FHIRPath evaluator, the
// parameter registry, the JSON reader and the validator (no storage, no crypto), so it builds
// while other layers change. Thread-safety: single-threaded.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "core/status.h"
#include "fhir/fhirpath.h"
#include "fhir/json_parse.h"
#include "fhir/model.h"
#include "fhir/search_param_defs.h"
#include "fhir/validator.h"

namespace {

namespace json = boost::json;
namespace fhir = phigate::fhir;
namespace fhirpath = phigate::fhir::fhirpath;

// The server's default request nesting limit (limits.json_depth), so an instance is
// compared only if the server would accept it.
constexpr int kMaxJsonDepth = 64;

void PrintLine(const json::object& line) { std::cout << json::serialize(line) << '\n'; }

int ListParams() {
  const fhir::Model& model = fhir::Model::R4();
  for (const std::string& type : model.ResourceTypes()) {
    for (const fhir::SearchParamDef* def : fhir::SearchParamsOf(type)) {
      if (def->expression.empty()) continue;
      json::object line;
      line["type"] = type;
      line["code"] = def->code;
      line["base"] = def->base;
      line["expression"] = def->expression;
      PrintLine(line);
    }
  }
  return 0;
}

json::value NodeJson(const fhirpath::Node& node) {
  if (!node.resolved_reference) return *node.value;
  json::object out;
  out["resolvedType"] = node.type != nullptr ? json::string(node.type->name) : json::string();
  out["reference"] = *node.value;
  return out;
}

// Parsed expressions by parameter row; a row that does not parse keeps its error.
class ExpressionCache {
 public:
  const phigate::Result<fhirpath::Expression>& Get(const fhir::SearchParamDef* def) {
    auto it = cache_.find(def);
    if (it == cache_.end()) {
      it = cache_.emplace(def, fhirpath::Expression::Parse(def->expression, fhir::Model::R4()))
               .first;
    }
    return it->second;
  }

 private:
  std::map<const fhir::SearchParamDef*, phigate::Result<fhirpath::Expression>> cache_;
};

int EvaluateStdin() {
  const fhir::Model& model = fhir::Model::R4();
  ExpressionCache cache;
  std::string text;
  for (std::int64_t i = 0; std::getline(std::cin, text); ++i) {
    phigate::Result<json::value> resource = fhir::ParseJson(text, kMaxJsonDepth);
    phigate::Status valid =
        resource.ok() ? fhir::ValidateResource(*resource, model) : resource.status();
    if (!valid.ok()) {
      json::object line;
      line["i"] = i;
      line["invalid"] = valid.message();
      line["path"] = valid.expression();
      PrintLine(line);
      continue;
    }
    const std::string_view type = resource->as_object().at("resourceType").as_string();
    for (const fhir::SearchParamDef* def : fhir::SearchParamsOf(type)) {
      if (def->expression.empty()) continue;
      json::object line;
      line["i"] = i;
      line["code"] = def->code;
      const phigate::Result<fhirpath::Expression>& expr = cache.Get(def);
      if (!expr.ok()) {
        line["error"] = expr.status().message();
      } else {
        json::array values;
        for (const fhirpath::Node& node : expr->Evaluate(*resource)) {
          values.push_back(NodeJson(node));
        }
        line["values"] = std::move(values);
      }
      PrintLine(line);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  if (argc == 2 && std::string_view(argv[1]) == "--params") return ListParams();
  if (argc != 1) {
    std::fprintf(stderr, "usage: fhirpath_eval [--params] < resources.ndjson\n");
    return 2;
  }
  return EvaluateStdin();
}
