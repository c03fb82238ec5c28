// ParseJson: the one place where request bodies become JSON values.
//
// Strict RFC 8259 JSON (no comments, no trailing commas, valid UTF-8), a nesting limit so
// that no later recursive pass can be driven arbitrarily deep, and no duplicate property
// names: FHIR forbids them (json.html), and parsers that disagree on which duplicate wins
// are a classic way to smuggle a value past a check.
//
// Errors are kInvalidArgument with fixed messages: "malformed JSON", "JSON nested too
// deeply", "duplicate JSON property", or "JSON number out of range" (a number beyond the
// range of a double, e.g. 1e400); they never repeat any part of the input.
// Thread-safety: a pure function.
#pragma once

#include <boost/json/value.hpp>
#include <string_view>

#include "core/status.h"

namespace phigate::fhir {

// `max_depth` counts nested arrays and objects: 1 allows `{}` but not `{"a": []}`.
Result<boost::json::value> ParseJson(std::string_view text, int max_depth);

}  // namespace phigate::fhir
