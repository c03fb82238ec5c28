// FhirPath: the subset of FHIRPath (fhirpath.html, N1) that the R4 search parameters'
// expressions use, so search extracts parameter values from a resource the way the
// published definitions say (issue 6 §1), typed by the R4 model.
//
// Supported:
//   - paths: `Patient.name.given`, an expression rooted at the resource's type, at
//     Resource/DomainResource, or at an element of the resource (`name.given`); choice
//     elements by base name (`Observation.value` yields valueQuantity, valueString, ...);
//     contained and Bundle entry resources typed by their resourceType;
//   - `|` (union, without duplicates), `and`, `or`, `=`, `!=` on single primitive values,
//     `is` / `as` as operators and functions, parentheses;
//   - functions: where(criteria), exists(), exists(criteria), empty(), not(), first(),
//     ofType(T), as(T), is(T), resolve();
//   - indexers `[n]`; string, boolean and integer/decimal literals; `$this`.
// resolve() does not fetch anything: it yields the referenced resource's *type* (from
// "Patient/123", an absolute ".../Patient/123" URL, or a "#id" contained resource), which
// is all the definitions use it for (`subject.where(resolve() is Patient)`); anything but
// a type test on its result yields nothing.
//
// Anything else (arithmetic, comparisons < >, other functions, environment variables
// such as %resource) fails to parse with kInvalidArgument "unsupported FHIRPath: <what>",
// so a parameter is either evaluated exactly or reported as unsupported, never evaluated
// wrongly. Expressions come from the definitions, never from requests; errors may name
// the construct.
//
// Evaluation never fails: a value whose JSON shape does not match the model (which the
// validator rules out for stored resources) yields nothing.
//
// Thread-safety: an Expression is immutable after Parse and may be evaluated from many
// threads at once.
#pragma once

#include <boost/json/value.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "fhir/model.h"

namespace phigate::fhir::fhirpath {

// One item of an evaluation result: a JSON value inside the evaluated resource (or a
// literal of the expression, or a boolean the expression computed) and its FHIR type.
struct Node {
  const boost::json::value* value = nullptr;  // never null in results
  // The FHIR type (primitive, datatype or resource); nullptr for a System value (a
  // literal or a computed boolean).
  const TypeDef* type = nullptr;
  // The elements of `value` for an object whose elements are not `type`'s own (an inline
  // BackboneElement such as Patient.contact); nullptr otherwise.
  const ElementSet* elements = nullptr;
  // Set for what resolve() produced: `type` is the referenced resource's type and
  // `value` the reference string; only a type test can use it.
  bool resolved_reference = false;
};

class Expression {
 public:
  // Parses `text` for evaluation against resources of the model `model` (kept by
  // reference; Model::R4() lives for the process).
  static Result<Expression> Parse(std::string_view text, const Model& model);

  Expression(Expression&&) noexcept;
  Expression& operator=(Expression&&) noexcept;
  ~Expression();

  // Evaluates against `resource` (a JSON object with "resourceType"). The nodes point
  // into `resource` and into this expression, so both must outlive the result.
  std::vector<Node> Evaluate(const boost::json::value& resource) const;

  struct Ast;

 private:
  Expression(std::unique_ptr<const Ast> ast, const Model& model);
  std::unique_ptr<const Ast> ast_;
  const Model* model_;
};

}  // namespace phigate::fhir::fhirpath
