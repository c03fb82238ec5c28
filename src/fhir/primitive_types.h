// Lexical checks for the FHIR R4 primitive types (datatypes.html#primitive).
//
// Each checker implements the regular expression that the R4 StructureDefinitions publish
// for the type (the model keeps those expressions; tests compare both on sample inputs),
// written by hand on purpose: libstdc++'s std::regex matches by recursion, one stack frame
// per input character or so, so a long value from a client could overflow the stack. These
// checkers run in linear time with constant stack and never allocate.
//
// "Whitespace" is ASCII whitespace (space, TAB, LF, VT, FF, CR), as in the XML Schema and
// Java readings of `\s` that FHIR validators use; other Unicode spaces count as content.
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace phigate::fhir {

// The R4 primitive types. The validator dispatches on this, never on type-name strings.
enum class PrimitiveKind : std::uint8_t {
  kBase64Binary,
  kBoolean,
  kCanonical,
  kCode,
  kDate,
  kDateTime,
  kDecimal,
  kId,
  kInstant,
  kInteger,
  kMarkdown,
  kOid,
  kPositiveInt,
  kString,
  kTime,
  kUnsignedInt,
  kUri,
  kUrl,
  kUuid,
  kXhtml,
};

// "dateTime" -> kDateTime; nullopt for a name that is not an R4 primitive type.
std::optional<PrimitiveKind> PrimitiveKindFromName(std::string_view name);

// FHIR string (and markdown): at least one non-whitespace character, and no control
// characters other than TAB, LF and CR. The published pattern `[ \r\n\t\S]+` forbids VT and
// FF; the spec text (datatypes.html#string) says strings SHOULD NOT contain other C0
// controls either, and phigate rejects them because they only ever cause harm downstream
// (log and terminal injection). Length limits are checked by the caller (the model knows
// them); see CodePointCount.
bool MatchesString(std::string_view text);
// code: `[^\s]+(\s[^\s]+)*`, plus the string rules above.
bool MatchesCode(std::string_view text);
// id: `[A-Za-z0-9\-\.]{1,64}`.
bool MatchesId(std::string_view text);
// uri, url, canonical: `\S*`, and non-empty (json.html: empty strings are not values);
// control characters are rejected too.
bool MatchesUri(std::string_view text);
// oid: `urn:oid:[0-2](\.(0|[1-9][0-9]*))+`.
bool MatchesOid(std::string_view text);
// uuid: `urn:uuid:` + lowercase 8-4-4-4-12 hex.
bool MatchesUuid(std::string_view text);
// date: YYYY, YYYY-MM or YYYY-MM-DD; year 0000 is invalid and the day must exist in that
// month (the spec requires valid dates; the pattern alone would accept 2023-02-31).
bool MatchesDate(std::string_view text);
// dateTime: a date, or YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm); a time needs a zone.
bool MatchesDateTime(std::string_view text);
// instant: YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm), all parts required.
bool MatchesInstant(std::string_view text);
// time: hh:mm:ss[.fff], no zone.
bool MatchesTime(std::string_view text);
// base64Binary: `(\s*([0-9a-zA-Z\+/=]){4}\s*)+`: groups of four alphabet characters,
// whitespace allowed only between groups.
bool MatchesBase64Binary(std::string_view text);
// xhtml (narrative.html#xhtml): a string holding one <div> element: it starts with "<div"
// followed by whitespace, '>' or '/', and ends with "</div>" (trailing whitespace allowed).
// This is a structural check only; the content is not parsed or sanitized.
bool MatchesXhtml(std::string_view text);
// The textual forms of the numeric types, for parameters that arrive as text (search):
// decimal `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, integer `-?([0]|([1-9][0-9]*))`
// within 32 bits, positiveInt `[1-9][0-9]*` and unsignedInt `[0]|([1-9][0-9]*)`, both up
// to 2^31-1 (datatypes.html#integer).
bool MatchesDecimalText(std::string_view text);
bool MatchesIntegerText(std::string_view text);
bool MatchesPositiveIntText(std::string_view text);
bool MatchesUnsignedIntText(std::string_view text);

// Number of Unicode code points in well-formed UTF-8 (the JSON parser guarantees it), for
// maximum lengths that the spec states in characters.
std::size_t CodePointCount(std::string_view utf8);

}  // namespace phigate::fhir
