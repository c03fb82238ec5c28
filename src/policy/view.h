// View: the one function that shapes every resource leaving the server (issue 4 §2, §3):
// read, vread, history entries, and later search results, _include/_revinclude, Bundle
// entries of batch/transaction responses, $everything and export. No path may return a
// stored resource without passing it through ApplyView.
//
// In order, for one resource of type `type`:
//   1. compartment: when `compartment_patient` is set, a resource outside that patient's
//      compartment (compartment.h, InPatientCompartment) is kOutsideCompartment;
//   2. confidentiality: a resource whose meta.security carries a code of the HL7
//      v3-Confidentiality system (http://terminology.hl7.org/CodeSystem/v3-Confidentiality)
//      listed in `hidden_labels` is kRestricted;
//   3. Minimum Necessary: elements `read_mask` does not allow are removed
//      (MinimizeResource: narrative dropped, SUBSETTED tag);
//   4. client narrowing: `_elements` (ApplyElementsParam) and `_summary` (search.html
//      #summary: true = the elements the R4 definition marks isSummary, plus mandatory
//      ones; text = text, id, meta and the mandatory top-level elements; data = all but
//      text; false = all), each marking the result SUBSETTED when it removed anything.
// Steps 1 and 2 look into the JSON only when they apply (a fast substring test precedes
// parsing for labels); a caller with no restriction and no narrowing pays for nothing but
// the checks, and `json` is left byte-identical.
//
// Thread-safety: pure functions over the immutable R4 model.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/url.h"
#include "policy/element_mask.h"

namespace phigate::policy {

enum class SummaryMode { kNone, kTrue, kText, kData, kCount, kFalse };

// The client's narrowing parameters for one request.
struct Narrowing {
  bool has_elements = false;
  std::vector<std::string> elements;  // top-level element names of `_elements`
  SummaryMode summary = SummaryMode::kNone;
  bool empty() const { return !has_elements && summary == SummaryMode::kNone; }
};

// Extracts `_elements` and `_summary` from `params` (other parameters are ignored).
// kInvalidArgument (fixed messages that never repeat the value, expression `_summary` or
// `_elements`) for: an unknown _summary value, both parameters given (search.html: they
// cannot be combined), a repeated parameter, or an _elements entry that is not a
// syntactically valid element name. Unknown-but-well-formed element names are accepted
// and simply match nothing (search.html#elements leaves this to the server).
// `allow_count`: _summary=count is meaningful only for search; false -> kInvalidArgument.
Result<Narrowing> ParseNarrowing(const QueryParams& params, bool allow_count);

struct View {
  const ElementMask* read_mask = nullptr;  // required (ElementMask::Everything() = none)
  std::string_view compartment_patient;    // non-empty: restrict to this patient
  const std::vector<std::string>* hidden_labels = nullptr;  // may be null: none
  const Narrowing* narrowing = nullptr;                     // may be null: none
};

enum class Visibility {
  kVisible,             // `json` now holds what the caller may see
  kOutsideCompartment,  // not in the caller's patient compartment: answer as if absent
  kRestricted,          // carries a hidden confidentiality label (break-glass may lift it)
};

// Applies `view` to `json` (the text of one resource of `type`) in place. On anything but
// kVisible, `json` is unspecified and must not be sent. kInvalidArgument for text that is
// not a JSON object (stored resources always are; the message is fixed).
Result<Visibility> ApplyView(std::string_view type, std::string& json, const View& view);

// The ids of the patients whose compartments `resource` (of `type`) belongs to: a
// Patient's own id only (not the patients it links to), else every patient referenced at the type's
// compartment paths (see compartment.h for what counts as a reference), deduplicated, in order of
// appearance. Empty for types outside the compartment. Used to key break-glass grants per patient.
std::vector<std::string> CompartmentPatients(std::string_view type, std::string_view json);

}  // namespace phigate::policy
