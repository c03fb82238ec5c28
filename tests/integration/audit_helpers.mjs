// Helpers shared by the audit trail end-to-end tests (issue 5 §6, audit_*.test.mjs): an
// auditor's view of the trail through the API (GET /fhir/AuditEvent, paged by next links or
// read incrementally with _cursor), finding the one record of a request by the X-Request-Id
// the test sent (the record's request-id extension), reading the elements of an AuditEvent
// as src/audit/event.cc writes them, the fault-injection control file of test builds
// (PHIGATE_TEST_AUDIT_FAULTS, audit/fault_directory.h), and a scan of every byte under a
// directory for values that must never be stored in the clear.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { bearer, listFiles } from './harness.mjs';

export const EXT = 'https://phigate.dev/fhir/StructureDefinition/audit-';
export const USER_SYSTEM = 'https://phigate.dev/fhir/sid/user';
export const CLIENT_SYSTEM = 'https://phigate.dev/fhir/sid/client';
export const REST_TYPE = { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'Restful Operation' };
export const AUTH_TYPE = { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110114', display: 'User Authentication' };
export const APP_TYPE = { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110100', display: 'Application Activity' };
export const RESTFUL_INTERACTION = 'http://hl7.org/fhir/restful-interaction';
export const PHIGATE_SUBTYPE = 'https://phigate.dev/fhir/CodeSystem/audit-subtype';
export const ROLE_SYSTEM = 'https://phigate.dev/fhir/CodeSystem/role';
export const ACT_REASON = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';

// The exact 503 of a request whose record could not be made durable (http/pipeline.cc).
export const AUDIT_UNAVAILABLE = 'the audit trail is unavailable: no data was returned; retry later';

// A request id unique to this run ([A-Za-z0-9._-]{1,64}, so the server keeps it).
export function requestId(label) {
  return `${label.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 40)}-${crypto.randomBytes(6).toString('hex')}`;
}

// The auditor's token (a system token of `clientId` with only the auditor role).
export function auditorToken(mint, clientId, extra = {}) {
  return mint.system({ clientId, roles: ['auditor'], ...extra });
}

// GET `target` as the auditor, asserting 200.
async function auditorGet(server, token, target) {
  const res = await server.request('GET', target, { headers: bearer(token) });
  assert.equal(res.status, 200, `GET ${target} as the auditor: ${res.status} ${res.body}`);
  return res.json();
}

// Every record matching `query` (a query string without _count/_cursor), following the next
// links page by page. Resolves {events, pages} (events oldest first).
export async function searchAll(server, token, query = '', { count = 1000 } = {}) {
  const events = [];
  const pages = [];
  let url = `/fhir/AuditEvent?${query ? `${query}&` : ''}_count=${count}`;
  while (url) {
    const bundle = await auditorGet(server, token, url);
    assert.equal(bundle.resourceType, 'Bundle');
    assert.equal(bundle.type, 'searchset');
    pages.push(bundle);
    for (const e of bundle.entry ?? []) events.push(e.resource);
    url = bundle.link.find((l) => l.relation === 'next')?.url;
  }
  return { events, pages };
}

// The auditor's incremental view of the whole trail: sync() reads the records after the
// last one seen (_cursor), so a test finds a request's record without re-reading the trail.
export class AuditView {
  constructor(server, token) {
    this.server = server;
    this.token = token;
    this.events = [];
    this.lastSeq = 0;
  }

  async sync() {
    for (;;) {
      const cursor = this.lastSeq > 0 ? `&_cursor=${this.lastSeq}` : '';
      const bundle = await auditorGet(this.server, this.token, `/fhir/AuditEvent?_count=1000${cursor}`);
      const entries = bundle.entry ?? [];
      for (const e of entries) {
        const seq = Number(e.resource.id);
        assert.ok(seq > this.lastSeq, `records come in seq order (${seq} after ${this.lastSeq})`);
        this.lastSeq = seq;
        this.events.push(e.resource);
      }
      if (!bundle.link.some((l) => l.relation === 'next')) return this.events;
    }
  }

  // Every record carrying `rid` as its request id.
  async recordsOf(rid) {
    await this.sync();
    return this.events.filter((e) => ext(e, 'request-id') === rid);
  }

  // The one record of the request `rid` (asserting exactly one).
  async recordOf(rid) {
    const found = await this.recordsOf(rid);
    assert.equal(found.length, 1, `exactly one record of request ${rid}, found ${found.length}: ${JSON.stringify(found)}`);
    return found[0];
  }
}

// The value of the phigate extension `name` ("request-id", "http-status", "route", ...).
export function ext(event, name) {
  const e = (event.extension ?? []).find((x) => x.url === EXT + name);
  if (!e) return undefined;
  return e.valueString ?? e.valueInteger ?? e.extension;
}

// The sub-extensions of a complex extension as {name: value}; every instance of `name`.
export function complexExts(event, name) {
  return (event.extension ?? []).filter((x) => x.url === EXT + name)
    .map((x) => Object.fromEntries((x.extension ?? []).map((s) => [s.url, s.valueString])));
}

// The agent whose type is `code` (IRCP user, 110153 client, baa-counterparty).
export function agentOfType(event, code) {
  const found = (event.agent ?? []).filter((a) => a.type?.coding?.[0]?.code === code);
  assert.ok(found.length <= 1, `at most one agent of type ${code}`);
  return found[0];
}

export function roleCodes(agent) {
  return (agent?.role ?? []).map((r) => r.coding[0].code);
}

export function purposeCodes(agentOrEvent, key = 'purposeOfUse') {
  return (agentOrEvent?.[key] ?? []).map((r) => r.coding[0].code);
}

// Entities by role code: "1" patient, "4" domain resource, "24" query.
export function entitiesOfRole(event, role) {
  return (event.entity ?? []).filter((e) => e.role?.code === role);
}

export function patientRefs(event) {
  return entitiesOfRole(event, '1').map((e) => e.what.reference);
}

// The resource acted on (role 4 without description "returned").
export function targetEntity(event) {
  const t = entitiesOfRole(event, '4').filter((e) => e.description === undefined);
  assert.ok(t.length <= 1, `at most one target entity: ${JSON.stringify(event.entity)}`);
  return t[0];
}

export function returnedRefs(event) {
  return entitiesOfRole(event, '4').filter((e) => e.description === 'returned').map((e) => e.what.reference);
}

export function subtypeCodes(event) {
  return (event.subtype ?? []).map((s) => `${s.system}|${s.code}`);
}

// ---- fault injection (test builds: PHIGATE_TEST_AUDIT_FAULTS) ----

// The control file; set before the server starts (the spawn inherits process.env).
export class FaultControl {
  constructor(file) {
    this.file = file;
    fs.writeFileSync(file, 'none\n');
    process.env.PHIGATE_TEST_AUDIT_FAULTS = file;
  }

  set(word) { fs.writeFileSync(this.file, `${word}\n`); }

  clear() { fs.writeFileSync(this.file, 'none\n'); }
}

// ---- bytes at rest ----

// Every file under `dir` whose bytes contain any of `needles`: [{file, needle}].
export async function findInFiles(dir, needles) {
  const hits = [];
  for (const file of await listFiles(dir)) {
    let bytes;
    try {
      bytes = await fsp.readFile(file);
    } catch (err) {
      if (err.code === 'ENOENT') continue;  // removed meanwhile (a SQLite journal)
      throw err;
    }
    for (const n of needles) {
      if (bytes.indexOf(Buffer.from(n, 'utf8')) !== -1) hits.push({ file: path.relative(dir, file), needle: n });
    }
  }
  return hits;
}

// Waits until `fn()` resolves truthy (polling every `every` ms); resolves the last value.
export async function waitUntil(fn, { timeoutMs = 10_000, every = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, every));
  }
}

// ---- one record as a plain object, for exact table-driven comparison ----

// An AuditEvent reduced to what the tests assert, every key always present (null or [] when
// absent) so that deepStrictEqual compares the whole record.
export function summarize(ev) {
  const query = entitiesOfRole(ev, '24');
  assert.ok(query.length <= 1, 'at most one query entity');
  const target = targetEntity(ev);
  const otherEntities = (ev.entity ?? []).filter((e) => !['1', '4', '24'].includes(e.role?.code));
  assert.deepEqual(otherEntities, [], 'no entity of another role');
  return {
    type: ev.type ? `${ev.type.system}|${ev.type.code}|${ev.type.display}` : null,
    subtype: subtypeCodes(ev),
    action: ev.action,
    outcome: ev.outcome,
    outcomeDesc: ev.outcomeDesc ?? null,
    purposeOfEvent: purposeCodes(ev, 'purposeOfEvent'),
    agents: (ev.agent ?? []).map((a) => ({
      type: a.type?.coding?.[0]?.code ?? null,
      system: a.who?.identifier?.system ?? null,
      who: a.who?.identifier?.value ?? a.who?.display ?? null,
      requestor: a.requestor,
      roles: roleCodes(a),
      purposes: purposeCodes(a),
      network: a.network ?? null,
    })),
    patients: patientRefs(ev),
    target: target ? (target.what.reference ?? `type:${target.what.type}`) : null,
    returned: returnedRefs(ev),
    query: query.length ? query[0].detail.map((d) => [d.type, d.valueString]) : [],
    queryString: query.length ? Buffer.from(query[0].query, 'base64').toString('utf8') : null,
    requestId: ext(ev, 'request-id') ?? null,
    status: ext(ev, 'http-status') ?? null,
    method: ext(ev, 'http-method') ?? null,
    route: ext(ev, 'route') ?? null,
    userAgent: ext(ev, 'user-agent') ?? null,
    breakGlass: complexExts(ev, 'break-glass'),
    security: complexExts(ev, 'security'),
    detail: ext(ev, 'detail') ?? null,
  };
}

// Expected agents (as summarize writes them).
export const NET = { address: '127.0.0.1', type: '2' };
export function clientAgent(clientId, { roles = [], purposes = [], requestor = true, network = NET } = {}) {
  return { type: '110153', system: CLIENT_SYSTEM, who: clientId, requestor, roles, purposes, network };
}
export function userAgent(userId, { roles = [], purposes = [], network = NET } = {}) {
  return { type: 'IRCP', system: USER_SYSTEM, who: userId, requestor: true, roles, purposes, network };
}
export function counterpartyAgent(name) {
  return { type: 'baa-counterparty', system: null, who: name, requestor: false, roles: [], purposes: [], network: null };
}

// The expected summary of a record: defaults for every key, `fields` override.
export function expectedRecord(fields) {
  return {
    type: `${REST_TYPE.system}|${REST_TYPE.code}|${REST_TYPE.display}`,
    subtype: [],
    action: 'R',
    outcome: '0',
    outcomeDesc: null,
    purposeOfEvent: [],
    agents: [],
    patients: [],
    target: null,
    returned: [],
    query: [],
    queryString: null,
    requestId: null,
    status: null,
    method: null,
    route: null,
    userAgent: null,
    breakGlass: [],
    security: [],
    detail: null,
    ...fields,
  };
}
