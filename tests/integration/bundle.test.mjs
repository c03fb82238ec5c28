// Batch and transaction Bundles (issue 6 §4; http.html#transaction): POST /fhir with a
// Bundle of type batch (each entry independent: a failing entry leaves the others alone)
// or transaction (all or nothing in one database transaction; urn:uuid references to the
// Bundle's POST entries rewritten to the ids the server assigns; conditional entries). Each
// entry is authorized and audited as if it came alone (http/pipeline.cc HandleBundle):
// a compartment-restricted caller reaches nobody else's data through a Bundle, every entry
// leaves exactly one audit record under "<X-Request-Id>.<n>" and the Bundle one of its
// own. A transaction of 1,000 entries fits the default body limit and works. Malformed
// Bundles are refused whole with the exact OperationOutcome, before any entry runs.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, addClient, addUser, bearer, assertCommonHeaders, assertOutcome, FHIR_ID } from './harness.mjs';
import { TokenMint, fhirApi, resourceBody, clean, assertDenied } from './authz_helpers.mjs';
import {
  AuditView, auditorToken, requestId, summarize, expectedRecord, clientAgent, RESTFUL_INTERACTION,
} from './audit_helpers.mjs';

const SYS = 'urn:phigate-test:bundle';
const UA = 'bundle-test/1.0';
const BODY_LIMIT = 8 * 1024 * 1024;  // limits.body_bytes default (core/config.h)
const REASON = {
  200: 'OK', 201: 'Created', 204: 'No Content', 400: 'Bad Request', 403: 'Forbidden',
  404: 'Not Found', 410: 'Gone', 412: 'Precondition Failed',
};
const rest = (code) => [`${RESTFUL_INTERACTION}|${code}`];

let server;
let api;
let mint;
let client;
let clinician;
let view;

let counter = 0;
// A value unique to this run, for identifiers (so cases on one server never match each other).
function uniq(label) { return `${label}-${process.pid}-${++counter}`; }
function urn() { return `urn:uuid:${crypto.randomUUID()}`; }

function patient(value, extra = {}) {
  return {
    resourceType: 'Patient',
    identifier: [{ system: SYS, value }],
    name: [{ family: 'Bundle', given: ['Test'] }],
    gender: 'female',
    birthDate: '1970-01-01',
    ...extra,
  };
}

function observation(value, subject, extra = {}) {
  return {
    resourceType: 'Observation',
    identifier: [{ system: SYS, value }],
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '29463-7' }], text: 'Body weight' },
    subject: subject === undefined ? undefined : { reference: subject },
    valueQuantity: { value: 80, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
    ...extra,
  };
}

// The resource without the server-managed id and meta.
function content(resource) {
  const { id, meta, ...rest_ } = resource;
  return rest_;
}

const post = (url, resource, extra = {}) => ({ resource: clean(resource), request: { method: 'POST', url, ...extra } });
const put = (url, resource, extra = {}) => ({ resource: clean(resource), request: { method: 'PUT', url, ...extra } });
const get = (url) => ({ request: { method: 'GET', url } });
const del = (url) => ({ request: { method: 'DELETE', url } });

// POST /fhir with `body` under its own X-Request-Id. Resolves {res, rid}.
async function send(label, token, body, { headers = {}, timeoutMs } = {}) {
  const rid = requestId(label);
  const res = await server.request('POST', '/fhir', {
    headers: {
      ...bearer(token), 'content-type': 'application/fhir+json', 'x-request-id': rid,
      'user-agent': UA, ...headers,
    },
    body, timeoutMs,
  });
  assert.equal(res.headers['x-request-id'], rid, 'the request id is echoed');
  return { res, rid };
}

// A 200 response Bundle of `type` with `n` entries; returns it.
function assertResponseBundle(res, type, n) {
  assert.equal(res.status, 200, res.body);
  assertCommonHeaders(assert, res);
  const b = res.json();
  assert.equal(b.resourceType, 'Bundle');
  assert.equal(b.type, type);
  assert.equal((b.entry ?? []).length, n, `${n} response entries: ${res.body.slice(0, 2000)}`);
  return b;
}

// A response entry of a created resource; returns the resource.
function assertCreated(entry, type, sent, what) {
  assert.equal(entry.response.status, '201 Created', `${what}: ${JSON.stringify(entry)}`);
  const r = entry.resource;
  assert.equal(r.resourceType, type, what);
  assert.match(r.id, FHIR_ID, what);
  assert.equal(r.meta.versionId, '1', what);
  assert.equal(entry.response.location, `${server.baseUrl}/${type}/${r.id}/_history/1`, what);
  assert.equal(entry.response.etag, 'W/"1"', what);
  assert.equal(entry.response.outcome, undefined, what);
  if (sent !== undefined) assert.deepEqual(content(r), clean(sent), `${what}: stored as sent`);
  return r;
}

// A failed response entry: exact status, no resource, the entry's OperationOutcome.
function assertFailedEntry(entry, status, code, diagnostics, expression, what = '') {
  assert.equal(entry.response.status, `${status} ${REASON[status]}`, `${what}: ${JSON.stringify(entry)}`);
  assert.equal(entry.resource, undefined, `${what}: no resource`);
  assert.equal(entry.response.location, undefined, `${what}: no location`);
  assert.equal(entry.response.etag, undefined, `${what}: no etag`);
  const oo = entry.response.outcome;
  assert.equal(oo.resourceType, 'OperationOutcome', what);
  assert.equal(oo.issue[0].severity, 'error', what);
  assert.equal(oo.issue[0].code, code, what);
  assert.equal(oo.issue[0].diagnostics, diagnostics, what);
  assert.deepEqual(oo.issue[0].expression, expression, what);
}

// A whole-request failure with its exact OperationOutcome.
function assertFails(res, status, code, diagnostics, expression) {
  const oo = assertOutcome(assert, res, status, code, expression);
  assert.equal(oo.issue[0].diagnostics, diagnostics, res.body);
  if (expression === undefined) assert.equal(oo.issue[0].expression, undefined, res.body);
  return oo;
}

// The ids a search finds (all pages), sorted.
async function searchIds(type, query, token = clinician) {
  const ids = [];
  let url = `/fhir/${type}?${query}&_count=1000`;
  while (url) {
    const res = await api.get(url, token);
    assert.equal(res.status, 200, `GET ${url}: ${res.body}`);
    const b = res.json();
    assert.equal(b.type, 'searchset');
    for (const e of b.entry ?? []) ids.push(e.resource.id);
    url = b.link.find((l) => l.relation === 'next')?.url;
  }
  return ids.sort();
}

// How many versions the type's history lists (all pages).
async function historyCount(type) {
  let n = 0;
  let url = `/fhir/${type}/_history?_count=1000`;
  while (url) {
    const res = await api.get(url, clinician);
    assert.equal(res.status, 200, `GET ${url}: ${res.body}`);
    const b = res.json();
    n += (b.entry ?? []).length;
    url = b.link.find((l) => l.relation === 'next')?.url;
  }
  return n;
}

async function create(type, body, token = clinician) {
  const res = await api.post(`/fhir/${type}`, token, clean(body));
  assert.equal(res.status, 201, `seeding ${type}: ${res.body}`);
  return res.json();
}

async function read(type, id) {
  const res = await api.get(`/fhir/${type}/${id}`, clinician);
  assert.equal(res.status, 200, `GET ${type}/${id}: ${res.body}`);
  return res.json();
}

const clin = (extra = {}) => clientAgent(client.client_id, { roles: ['clinician'], purposes: ['TREAT'], ...extra });

before(async () => {
  server = await startServer();
  api = fhirApi(server);
  mint = await TokenMint.create(server);
  client = await addClient(server.dataDir, { name: 'bundles', roles: 'clinician' });
  clinician = mint.system({ clientId: client.client_id, roles: ['clinician'] });
  view = new AuditView(server, auditorToken(mint, client.client_id));
});

after(async () => {
  if (server) await server.dispose();
});

test('batch: independent entries; a 400, a 404 and a 403 leave the others alone', async () => {
  const seed = await create('Patient', patient(uniq('seed')));
  const toUpdate = await create('Patient', patient(uniq('upd')));
  const toDelete = await create('Observation', observation(uniq('del'), `Patient/${seed.id}`));
  const kOk = uniq('ok');
  const kBad = uniq('bad');
  const kObs = uniq('obs');
  const okPatient = patient(kOk);
  const okObs = observation(kObs, `Patient/${seed.id}`);
  const { res } = await send('batch', clinician, {
    resourceType: 'Bundle', type: 'batch', entry: [
      post('Patient', okPatient),
      post('Patient', patient(kBad, { birthDate: '1974-13-45' })),
      get('Patient/no-such-patient'),
      get('AuditEvent'),
      put(`Patient/${toUpdate.id}`, { ...content(toUpdate), id: toUpdate.id, gender: 'male' }),
      del(`Observation/${toDelete.id}`),
      post('Observation', okObs),
      get(`Patient/${seed.id}`),
      get(`Patient?identifier=${SYS}|${seed.identifier[0].value}`),
    ],
  });
  const b = assertResponseBundle(res, 'batch-response', 9);
  const e = b.entry;
  const created = assertCreated(e[0], 'Patient', okPatient, 'entry 0');
  assertFailedEntry(e[1], 400, 'invalid', 'invalid date value', ['Patient.birthDate'], 'entry 1');
  assertFailedEntry(e[2], 404, 'not-found', 'resource not found', undefined, 'entry 2');
  assertFailedEntry(e[3], 403, 'forbidden', 'no role grants search on AuditEvent', undefined, 'entry 3');
  assert.equal(e[4].response.status, '200 OK', JSON.stringify(e[4]));
  assert.equal(e[4].response.etag, 'W/"2"');
  assert.equal(e[4].response.location, undefined, 'an update has no location (as PUT answers)');
  assert.equal(e[4].resource.gender, 'male');
  assert.equal(e[4].resource.meta.versionId, '2');
  assert.deepEqual(e[5].response, { status: '204 No Content', etag: 'W/"2"' });
  assert.equal(e[5].resource, undefined);
  const createdObs = assertCreated(e[6], 'Observation', okObs, 'entry 6');
  assert.equal(e[7].response.status, '200 OK');
  assert.equal(e[7].response.etag, 'W/"1"');
  assert.deepEqual(e[7].resource, seed);
  assert.deepEqual(e[8].response, { status: '200 OK' });
  assert.equal(e[8].resource.type, 'searchset');
  assert.deepEqual(e[8].resource.entry.map((x) => x.resource.id), [seed.id]);

  // The effects: what succeeded is there, what failed is not.
  assert.deepEqual(await read('Patient', created.id), created);
  assert.deepEqual(await read('Observation', createdObs.id), createdObs);
  assert.deepEqual(await searchIds('Patient', `identifier=${SYS}|${kOk}`), [created.id]);
  assert.deepEqual(await searchIds('Patient', `identifier=${SYS}|${kBad}`), []);
  assert.deepEqual(await searchIds('Observation', `identifier=${SYS}|${kObs}`), [createdObs.id]);
  const updated = await read('Patient', toUpdate.id);
  assert.equal(updated.meta.versionId, '2');
  assert.equal(updated.gender, 'male');
  assertOutcome(assert, await api.get(`/fhir/Observation/${toDelete.id}`, clinician), 410, 'deleted');
});

test('transaction: urn:uuid references become the new Type/id, wherever they are; GETs see the commit', async () => {
  const other = await create('Patient', patient(uniq('other')));
  const moved = await create('Observation', observation(uniq('moved'), `Patient/${other.id}`));
  const doomed = await create('Condition', resourceBody('Condition', { patientId: other.id }));
  const kP = uniq('p');
  const kO = uniq('o');
  const uP = urn();
  const uE = urn();
  const { res } = await send('tx-happy', clinician, {
    resourceType: 'Bundle', type: 'transaction', entry: [
      // References come before the entries they point to: resolution does not depend on order.
      get(`Patient?identifier=${SYS}|${kP}`),
      post('Observation', observation(kO, uP, {
        encounter: { reference: uE },
        performer: [{ reference: uP, display: 'the patient' }],
      })),
      // A client id in a POST entry is ignored (http.html#create).
      { fullUrl: uP, ...post('Patient', { ...patient(kP), id: 'client-chosen' }) },
      put(`Observation/${moved.id}`, { ...content(moved), id: moved.id, subject: { reference: uP } }),
      del(`Condition/${doomed.id}`),
      { fullUrl: uE, ...post('Encounter', { ...resourceBody('Encounter'), subject: { reference: uP } }) },
      // A reference that is no entry's fullUrl is left as it is.
      post('Observation', observation(uniq('untouched'), `Patient/${other.id}`)),
    ],
  });
  const b = assertResponseBundle(res, 'transaction-response', 7);
  const e = b.entry;
  const p = assertCreated(e[2], 'Patient');
  assert.notEqual(p.id, 'client-chosen');
  assert.deepEqual(content(p), patient(kP));
  const enc = assertCreated(e[5], 'Encounter');
  assert.deepEqual(enc.subject, { reference: `Patient/${p.id}` });
  const o = assertCreated(e[1], 'Observation');
  assert.deepEqual(o.subject, { reference: `Patient/${p.id}` });
  assert.deepEqual(o.encounter, { reference: `Encounter/${enc.id}` });
  assert.deepEqual(o.performer, [{ reference: `Patient/${p.id}`, display: 'the patient' }]);
  assert.equal(e[3].response.status, '200 OK');
  assert.equal(e[3].response.etag, 'W/"2"');
  assert.deepEqual(e[3].resource.subject, { reference: `Patient/${p.id}` });
  assert.deepEqual(e[4].response, { status: '204 No Content', etag: 'W/"2"' });
  const untouched = assertCreated(e[6], 'Observation');
  assert.deepEqual(untouched.subject, { reference: `Patient/${other.id}` });
  // The GET ran after the commit: it finds the Patient the transaction created.
  assert.deepEqual(e[0].response, { status: '200 OK' });
  assert.deepEqual(e[0].resource.entry.map((x) => x.resource.id), [p.id]);

  // Stored as answered; nothing stored still names a urn:uuid.
  for (const [type, r] of [['Patient', p], ['Observation', o], ['Encounter', enc], ['Observation', e[3].resource]]) {
    const stored = await api.get(`/fhir/${type}/${r.id}`, clinician);
    assert.equal(stored.status, 200);
    assert.deepEqual(stored.json(), r);
    assert.ok(!stored.body.includes('urn:uuid'), stored.body);
  }
  // The index holds the rewritten references.
  assert.deepEqual(await searchIds('Observation', `subject=Patient/${p.id}`), [o.id, moved.id].sort());
  assert.deepEqual(await searchIds('Observation', `subject=Patient/${other.id}`), [untouched.id]);
  assert.deepEqual(await searchIds('Encounter', `subject=Patient/${p.id}`), [enc.id]);
  assert.deepEqual(await searchIds('Observation', `encounter=Encounter/${enc.id}`), [o.id]);
  assert.deepEqual(await searchIds('Patient', `identifier=${SYS}|${kP}`), [p.id]);
  assertOutcome(assert, await api.get(`/fhir/Condition/${doomed.id}`, clinician), 410, 'deleted');
});

describe('transaction atomicity: one failing entry, nothing committed', () => {
  // Seeds the targets of a PUT and a DELETE and counts the versions of both types.
  async function baseline() {
    const target = await create('Patient', patient(uniq('target')));
    const keep = await create('Observation', observation(uniq('keep'), `Patient/${target.id}`));
    return {
      target, keep,
      patients: await historyCount('Patient'),
      observations: await historyCount('Observation'),
    };
  }

  async function assertNothingCommitted(base, keys) {
    for (const k of keys) {
      assert.deepEqual(await searchIds('Patient', `identifier=${SYS}|${k}`), [], `Patient ${k}`);
      assert.deepEqual(await searchIds('Observation', `identifier=${SYS}|${k}`), [], `Observation ${k}`);
    }
    assert.equal(await historyCount('Patient'), base.patients, 'no new Patient version');
    assert.equal(await historyCount('Observation'), base.observations, 'no new Observation version');
    assert.deepEqual(await read('Patient', base.target.id), base.target, 'the PUT target is unchanged');
    assert.deepEqual(await read('Observation', base.keep.id), base.keep, 'the DELETE target still exists');
  }

  test('an invalid resource in the middle: the whole transaction answers its 400', async () => {
    const base = await baseline();
    const keys = [uniq('k1'), uniq('k2'), uniq('k3')];
    const u = urn();
    const { res } = await send('tx-invalid', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { fullUrl: u, ...post('Patient', patient(keys[0])) },
        post('Patient', patient(keys[1], { birthDate: '1974-13-45' })),
        post('Observation', observation(keys[2], u)),
        put(`Patient/${base.target.id}`, { ...content(base.target), id: base.target.id, gender: 'male' }),
        del(`Observation/${base.keep.id}`),
      ],
    });
    assertFails(res, 400, 'invalid', 'invalid date value', ['Patient.birthDate']);
    assert.ok(!res.body.includes('1974-13-45'), 'the value is not echoed');
    await assertNothingCommitted(base, keys);
  });

  test('a wrong ifMatch in the middle: 412, nothing committed; with the right one it commits', async () => {
    const second = await create('Patient', patient(uniq('second')));
    const base = await baseline();
    const keys = [uniq('k1'), uniq('k2')];
    const bundle = (secondIfMatch) => ({
      resourceType: 'Bundle', type: 'transaction', entry: [
        post('Patient', patient(keys[0])),
        put(`Patient/${base.target.id}`, { ...content(base.target), id: base.target.id, gender: 'male' }, { ifMatch: 'W/"1"' }),
        put(`Patient/${second.id}`, { ...content(second), id: second.id, gender: 'other' }, { ifMatch: secondIfMatch }),
        post('Observation', observation(keys[1], `Patient/${base.target.id}`)),
        del(`Observation/${base.keep.id}`),
      ],
    });
    const { res } = await send('tx-ifmatch', clinician, bundle('W/"7"'));
    assertFails(res, 412, 'conflict', 'the resource version does not match If-Match');
    await assertNothingCommitted(base, keys);
    assert.deepEqual(await read('Patient', second.id), second);

    // Control: the same Bundle with the right version commits every entry.
    const ok = await send('tx-ifmatch-ok', clinician, bundle('W/"1"'));
    const b = assertResponseBundle(ok.res, 'transaction-response', 5);
    assert.deepEqual(b.entry.map((x) => x.response.status),
      ['201 Created', '200 OK', '200 OK', '201 Created', '204 No Content']);
    assert.equal((await read('Patient', second.id)).gender, 'other');
    assert.equal((await read('Patient', base.target.id)).meta.versionId, '2');
    assertOutcome(assert, await api.get(`/fhir/Observation/${base.keep.id}`, clinician), 410, 'deleted');
  });

  test('the same resource written twice: 400 naming the second entry, nothing committed', async () => {
    // http.html#trules: overlapping resource identities fail the transaction. The PUTs are
    // entries 0 and 1; the POST (entry 2) is prepared first (POST before PUT), so an index
    // into the prepared writes would name the wrong entry.
    const base = await baseline();
    const keys = [uniq('k1')];
    const { res } = await send('tx-twice', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        put(`Patient/${base.target.id}`, { ...content(base.target), id: base.target.id, gender: 'male' }),
        put(`Patient/${base.target.id}`, { ...content(base.target), id: base.target.id, gender: 'other' }),
        post('Patient', patient(keys[0])),
      ],
    });
    assertFails(res, 400, 'invalid', 'entry 1: the resource is written twice');
    await assertNothingCommitted(base, keys);
  });

  // GET entries run after the writes (they see them), but a GET that fails fails the
  // transaction before anything is committed.
  const writes = (base, keys) => [
    post('Patient', patient(keys[0])),
    put(`Patient/${base.target.id}`, { ...content(base.target), id: base.target.id, gender: 'male' }),
    del(`Observation/${base.keep.id}`),
  ];

  test('a GET of a missing resource: the whole transaction answers its 404', async () => {
    const base = await baseline();
    const keys = [uniq('k1')];
    const { res } = await send('tx-get-404', clinician, {
      resourceType: 'Bundle', type: 'transaction',
      entry: [get('Patient/no-such-patient'), ...writes(base, keys)],
    });
    assertFails(res, 404, 'not-found', 'resource not found');
    await assertNothingCommitted(base, keys);
  });

  test('a GET the caller may not make (search AuditEvent): 403, nothing committed', async () => {
    const base = await baseline();
    const keys = [uniq('k1')];
    const { res } = await send('tx-get-403', clinician, {
      resourceType: 'Bundle', type: 'transaction',
      entry: [...writes(base, keys), get('AuditEvent')],
    });
    assertFails(res, 403, 'forbidden', 'no role grants search on AuditEvent');
    await assertNothingCommitted(base, keys);
  });

  test('a GET with an unknown search parameter: 400, nothing committed', async () => {
    const base = await baseline();
    const keys = [uniq('k1')];
    const { res } = await send('tx-get-400', clinician, {
      resourceType: 'Bundle', type: 'transaction',
      entry: [...writes(base, keys), get('Patient?no-such-param=1')],
    });
    assertFails(res, 400, 'invalid', 'unknown search parameter for this resource type');
    assert.ok(!res.body.includes('no-such-param'), res.body);
    await assertNothingCommitted(base, keys);
  });

  test('a GET of what the transaction deletes: 409 naming the entry, nothing committed', async () => {
    const base = await baseline();
    const keys = [uniq('k1')];
    const { res } = await send('tx-get-deleted', clinician, {
      resourceType: 'Bundle', type: 'transaction',
      entry: [...writes(base, keys), get(`Observation/${base.keep.id}`)],
    });
    assertFails(res, 409, 'conflict', 'entry 3 reads a resource the transaction deletes');
    await assertNothingCommitted(base, keys);
  });

  test('control: GETs of existing, updated and created resources succeed and see the writes', async () => {
    const base = await baseline();
    const keys = [uniq('k1')];
    const other = await create('Patient', patient(uniq('other')));
    const { res } = await send('tx-get-ok', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        get(`Patient/${other.id}`),
        get(`Patient/${base.target.id}`),
        get(`Patient?identifier=${SYS}|${keys[0]}`),
        ...writes(base, keys),
      ],
    });
    const b = assertResponseBundle(res, 'transaction-response', 6);
    assert.deepEqual(b.entry.map((x) => x.response.status),
      ['200 OK', '200 OK', '200 OK', '201 Created', '200 OK', '204 No Content']);
    assert.deepEqual(b.entry[0].resource, other);
    assert.equal(b.entry[1].resource.gender, 'male');
    assert.equal(b.entry[1].resource.meta.versionId, '2');
    assert.deepEqual(b.entry[2].resource.entry.map((x) => x.resource.id), [b.entry[3].resource.id]);
  });
});

describe('transaction: conditional create entries (ifNoneExist)', () => {
  test('one match: the entry stands for the existing resource; references point to it; no duplicate', async () => {
    const k = uniq('existing');
    const existing = await create('Patient', patient(k));
    const kObs = uniq('obs');
    const u = urn();
    const { res } = await send('tx-cond-match', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { fullUrl: u, ...post('Patient', patient(k, { gender: 'male' }), { ifNoneExist: `identifier=${SYS}|${k}` }) },
        post('Observation', observation(kObs, u)),
      ],
    });
    const b = assertResponseBundle(res, 'transaction-response', 2);
    assert.equal(b.entry[0].response.status, '200 OK', JSON.stringify(b.entry[0]));
    assert.deepEqual(b.entry[0].resource, existing, 'the existing Patient, unchanged');
    const o = assertCreated(b.entry[1], 'Observation');
    assert.deepEqual(o.subject, { reference: `Patient/${existing.id}` },
      'the urn:uuid of a conditional create that matched names the resource it matched');
    assert.deepEqual(await searchIds('Patient', `identifier=${SYS}|${k}`), [existing.id], 'no duplicate');
    assert.deepEqual(await read('Patient', existing.id), existing);
    assert.deepEqual(await searchIds('Observation', `subject=Patient/${existing.id}`), [o.id]);
    assert.deepEqual((await read('Observation', o.id)).subject, { reference: `Patient/${existing.id}` });
  });

  test('one match: the matched entry has its one record too (it writes nothing to carry one)', async () => {
    const k = uniq('existing');
    const existing = await create('Patient', patient(k));
    const { res, rid } = await send('tx-cond-audit', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        post('Patient', patient(k), { ifNoneExist: `identifier=${SYS}|${k}` }),
        post('Observation', observation(uniq('obs'), `Patient/${existing.id}`)),
      ],
    });
    const b = assertResponseBundle(res, 'transaction-response', 2);
    assert.deepEqual(b.entry.map((x) => x.response.status), ['200 OK', '201 Created']);
    await view.sync();
    const records = view.events.map(summarize).filter((s) => s.requestId === rid || s.requestId?.startsWith(`${rid}.`));
    assert.deepEqual(records.map((r) => `${r.requestId} ${r.status}`).sort(),
      [`${rid} 200`, `${rid}.1 200`, `${rid}.2 201`]);
    const matched = records.find((r) => r.requestId === `${rid}.1`);
    assert.deepEqual(matched, expectedRecord({
      subtype: rest('create'), action: 'C', outcomeDesc: 'HTTP 200', purposeOfEvent: ['TREAT'],
      agents: [clin()], patients: [`Patient/${existing.id}`], target: `Patient/${existing.id}/_history/1`,
      query: [['identifier', `${SYS}|${k}`]], queryString: `identifier=${encodeURIComponent(`${SYS}|${k}`)}`,
      requestId: `${rid}.1`, status: 200, method: 'POST', route: '/fhir/{type}', userAgent: UA,
    }));
  });

  test('no match: the entry creates, and its references name the new resource', async () => {
    const k = uniq('fresh');
    const u = urn();
    const { res } = await send('tx-cond-none', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        post('Observation', observation(uniq('obs'), u)),
        { fullUrl: u, ...post('Patient', patient(k), { ifNoneExist: `identifier=${SYS}|${k}` }) },
      ],
    });
    const b = assertResponseBundle(res, 'transaction-response', 2);
    const p = assertCreated(b.entry[1], 'Patient', patient(k));
    const o = assertCreated(b.entry[0], 'Observation');
    assert.deepEqual(o.subject, { reference: `Patient/${p.id}` });
    assert.deepEqual(await searchIds('Patient', `identifier=${SYS}|${k}`), [p.id]);
    assert.deepEqual(await searchIds('Observation', `subject=Patient/${p.id}`), [o.id]);
  });

  test('concurrent transactions with the same ifNoneExist: one resource, the others match it', async () => {
    // http.html#ccreate: the condition is decided and the create made as one step, in a
    // transaction too; else two transactions both find nothing and both create. Thirty
    // more entries each keep the transactions open long enough to overlap.
    const k = uniq('race');
    const tx = () => server.request('POST', '/fhir', {
      agent: server.newAgent({ keepAlive: false }),
      headers: { ...bearer(clinician), 'content-type': 'application/fhir+json' },
      body: {
        resourceType: 'Bundle', type: 'transaction', entry: [
          post('Patient', patient(k), { ifNoneExist: `identifier=${SYS}|${k}` }),
          ...Array.from({ length: 30 }, () => post('Observation', observation(uniq('race-obs')))),
        ],
      },
    });
    const answers = await Promise.all(Array.from({ length: 8 }, tx));
    assert.deepEqual(answers.map((r) => r.status), Array(8).fill(200), answers.map((r) => r.body.slice(0, 300)).join('\n'));
    const found = await searchIds('Patient', `identifier=${SYS}|${k}`);
    assert.equal(found.length, 1, `one Patient with the identifier, found ${found.length}`);
    const first = answers.map((r) => r.json().entry[0]);
    assert.deepEqual(first.map((e) => e.response.status).sort(), [...Array(7).fill('200 OK'), '201 Created'],
      'one transaction created the Patient; the seven others matched it');
    assert.ok(first.every((e) => e.resource.id === found[0]), 'every transaction stands for the one Patient');
  });

  test('several matches: 412 for the whole transaction, nothing created', async () => {
    const k = uniq('twice');
    await create('Patient', patient(k));
    await create('Patient', patient(k));
    const subject = await create('Patient', patient(uniq('subject')));
    const kObs = uniq('obs');
    const { res } = await send('tx-cond-many', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        post('Observation', observation(kObs, `Patient/${subject.id}`)),
        post('Patient', patient(k), { ifNoneExist: `identifier=${SYS}|${k}` }),
      ],
    });
    assertFails(res, 412, 'conflict', 'the If-None-Exist condition matches more than one resource');
    assert.equal((await searchIds('Patient', `identifier=${SYS}|${k}`)).length, 2);
    assert.deepEqual(await searchIds('Observation', `identifier=${SYS}|${kObs}`), []);
  });
});

describe('transaction: conditional update and delete entries, and fullUrls decided by them', () => {
  test('conditional PUT, one match: that resource updated; a POST referring to its fullUrl names it', async () => {
    const k = uniq('cput');
    const existing = await create('Patient', patient(k));
    const u = urn();
    const kObs = uniq('obs');
    const { res } = await send('tx-cput-match', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        // The POST is prepared before the PUT (POST before PUT) and refers to it.
        post('Observation', observation(kObs, u)),
        { fullUrl: u, ...put(`Patient?identifier=${SYS}|${k}`, patient(k, { gender: 'male' })) },
      ],
    });
    const b = assertResponseBundle(res, 'transaction-response', 2);
    assert.equal(b.entry[1].response.status, '200 OK', JSON.stringify(b.entry[1]));
    assert.equal(b.entry[1].resource.id, existing.id);
    assert.equal(b.entry[1].resource.meta.versionId, '2');
    assert.equal(b.entry[1].resource.gender, 'male');
    const o = assertCreated(b.entry[0], 'Observation');
    assert.deepEqual(o.subject, { reference: `Patient/${existing.id}` });
    assert.deepEqual((await read('Observation', o.id)).subject, { reference: `Patient/${existing.id}` });
    assert.deepEqual(await searchIds('Patient', `identifier=${SYS}|${k}`), [existing.id]);
    assert.deepEqual(await searchIds('Observation', `subject=Patient/${existing.id}`), [o.id]);
  });

  test('conditional PUT, no match: created; references to its fullUrl name the new resource', async () => {
    const k = uniq('cput-new');
    const u = urn();
    const { res } = await send('tx-cput-new', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        post('Observation', observation(uniq('obs'), u)),
        { fullUrl: u, ...put(`Patient?identifier=${SYS}|${k}`, patient(k)) },
      ],
    });
    const b = assertResponseBundle(res, 'transaction-response', 2);
    const p = assertCreated(b.entry[1], 'Patient', patient(k));
    const o = assertCreated(b.entry[0], 'Observation');
    assert.deepEqual(o.subject, { reference: `Patient/${p.id}` });
    assert.deepEqual(await searchIds('Patient', `identifier=${SYS}|${k}`), [p.id]);
    assert.deepEqual(await read('Patient', p.id), p);
  });

  test('conditional creates referring to each other by fullUrl, in either order: both resolved', async () => {
    const existing = await create('Patient', patient(uniq('cc-existing')));
    const kNew = uniq('cc-new');
    const uP = urn();
    const uE = urn();
    const { res } = await send('tx-cc-mutual', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        // The Encounter (no match: created) names the Patient (a match) before it is decided.
        { fullUrl: uE, ...post('Encounter', { ...resourceBody('Encounter'), identifier: [{ system: SYS, value: kNew }], subject: { reference: uP } },
          { ifNoneExist: `identifier=${SYS}|${kNew}` }) },
        { fullUrl: uP, ...post('Patient', patient(existing.identifier[0].value), { ifNoneExist: `identifier=${SYS}|${existing.identifier[0].value}` }) },
        post('Observation', observation(uniq('obs'), uP, { encounter: { reference: uE } })),
      ],
    });
    const b = assertResponseBundle(res, 'transaction-response', 3);
    assert.deepEqual(b.entry.map((x) => x.response.status), ['201 Created', '200 OK', '201 Created']);
    const enc = b.entry[0].resource;
    assert.deepEqual(enc.subject, { reference: `Patient/${existing.id}` });
    assert.deepEqual((await read('Encounter', enc.id)).subject, { reference: `Patient/${existing.id}` });
    assert.deepEqual(b.entry[2].resource.subject, { reference: `Patient/${existing.id}` });
    assert.deepEqual(b.entry[2].resource.encounter, { reference: `Encounter/${enc.id}` });
    assert.deepEqual(await searchIds('Encounter', `identifier=${SYS}|${kNew}`), [enc.id], 'one Encounter, not two');
  });

  test('a plain PUT\'s fullUrl stands for its Type/id', async () => {
    const target = await create('Patient', patient(uniq('put-full')));
    const u = urn();
    const { res } = await send('tx-put-fullurl', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        post('Observation', observation(uniq('obs'), u)),
        { fullUrl: u, ...put(`Patient/${target.id}`, { ...content(target), id: target.id }) },
      ],
    });
    const b = assertResponseBundle(res, 'transaction-response', 2);
    assert.deepEqual(assertCreated(b.entry[0], 'Observation').subject, { reference: `Patient/${target.id}` });
  });

  test('conditional PUT or DELETE with several matches: 412 for the whole transaction, nothing written', async () => {
    const k = uniq('cmany');
    const a = await create('Patient', patient(k));
    const c = await create('Patient', patient(uniq('other'), { identifier: [{ system: SYS, value: k }] }));
    const kNew = uniq('not-created');
    for (const entry of [put(`Patient?identifier=${SYS}|${k}`, patient(k)), del(`Patient?identifier=${SYS}|${k}`)]) {
      const { res } = await send('tx-cmany', clinician, {
        resourceType: 'Bundle', type: 'transaction', entry: [post('Patient', patient(kNew)), entry],
      });
      assertFails(res, 412, 'conflict', 'the condition matches more than one resource');
      assert.deepEqual(await searchIds('Patient', `identifier=${SYS}|${kNew}`), []);
      assert.deepEqual(await read('Patient', a.id), a);
      assert.deepEqual(await read('Patient', c.id), c);
    }
  });

  test('Prefer: return=minimal: a matched conditional entry still resolves its fullUrl', async () => {
    const k = uniq('cput-min');
    const existing = await create('Patient', patient(k));
    const uPut = urn();
    const uPost = urn();
    const { res } = await send('tx-cput-minimal', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        post('Observation', observation(uniq('obs'), uPut, { performer: [{ reference: uPost }] })),
        { fullUrl: uPut, ...put(`Patient?identifier=${SYS}|${k}`, patient(k, { gender: 'male' })) },
        { fullUrl: uPost, ...post('Patient', patient(k), { ifNoneExist: `identifier=${SYS}|${k}` }) },
      ],
    }, { headers: { prefer: 'return=minimal' } });
    const b = assertResponseBundle(res, 'transaction-response', 3);
    assert.deepEqual(b.entry.map((x) => x.response.status), ['201 Created', '200 OK', '200 OK']);
    assert.ok(b.entry.every((x) => x.resource === undefined), 'minimal: no bodies');
    const oid = b.entry[0].response.location.split('/').at(-3);
    const o = await read('Observation', oid);
    assert.deepEqual(o.subject, { reference: `Patient/${existing.id}` });
    assert.deepEqual(o.performer, [{ reference: `Patient/${existing.id}` }]);
  });

  test('a GET of the history of what the transaction deletes is tried after the commit (not refused)', async () => {
    const doomed = await create('Observation', observation(uniq('hist'), 'Patient/x'));
    const { res } = await send('tx-get-history', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        del(`Observation/${doomed.id}`),
        get(`Observation/${doomed.id}/_history/1`),
      ],
    });
    const b = assertResponseBundle(res, 'transaction-response', 2);
    assert.deepEqual(b.entry.map((x) => x.response.status), ['204 No Content', '200 OK']);
    assert.deepEqual(b.entry[1].resource, doomed);
  });

  test('conditional DELETE, one match: gone after the commit; no match: 204, nothing deleted', async () => {
    const k = uniq('cdel');
    const doomed = await create('Observation', observation(k, 'Patient/x'));
    const { res } = await send('tx-cdel', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        del(`Observation?identifier=${SYS}|${k}`),
        del(`Observation?identifier=${SYS}|${uniq('nothing')}`),
      ],
    });
    const b = assertResponseBundle(res, 'transaction-response', 2);
    assert.deepEqual(b.entry.map((x) => x.response.status), ['204 No Content', '204 No Content']);
    assertOutcome(assert, await api.get(`/fhir/Observation/${doomed.id}`, clinician), 410, 'deleted');
    assert.deepEqual(await searchIds('Observation', `identifier=${SYS}|${k}`), []);
  });
});

test('transaction of 1,000 entries (500 Patients, 500 Observations by urn:uuid): within the body limit, all searchable', async (t) => {
  const system = `${SYS}:big:${process.pid}`;
  const N = 500;
  const urns = Array.from({ length: N }, () => urn());
  const entry = [];
  for (let i = 0; i < N; i++) {
    entry.push({ fullUrl: urns[i], ...post('Patient', { ...patient(`p${i}`), identifier: [{ system, value: `p${i}` }], name: [{ family: `Big${i}`, given: ['Bundle'] }] }) });
  }
  for (let i = 0; i < N; i++) {
    // In reverse order, so no Observation follows its Patient.
    const j = N - 1 - i;
    entry.push(post('Observation', { ...observation('', urns[j]), identifier: [{ system, value: `o${j}` }] }));
  }
  const body = JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry });
  assert.ok(Buffer.byteLength(body) < BODY_LIMIT, `the Bundle (${Buffer.byteLength(body)} bytes) is within limits.body_bytes`);
  const t0 = Date.now();
  const { res, rid } = await send('tx-1000', clinician, body, { timeoutMs: 120_000 });
  const ms = Date.now() - t0;
  t.diagnostic(`1,000-entry transaction: ${Buffer.byteLength(body)} bytes in, ${res.bodyBytes.length} bytes out, ${ms} ms`);
  const b = assertResponseBundle(res, 'transaction-response', 2 * N);
  const patientIds = [];
  const obsOf = new Map();  // patient index -> observation id
  for (let i = 0; i < N; i++) {
    const p = assertCreated(b.entry[i], 'Patient', undefined, `entry ${i}`);
    assert.deepEqual(p.identifier, [{ system, value: `p${i}` }]);
    patientIds.push(p.id);
  }
  for (let i = 0; i < N; i++) {
    const j = N - 1 - i;
    const o = assertCreated(b.entry[N + i], 'Observation', undefined, `entry ${N + i}`);
    assert.deepEqual(o.subject, { reference: `Patient/${patientIds[j]}` }, `entry ${N + i}`);
    obsOf.set(j, o.id);
  }
  assert.equal(new Set([...patientIds, ...obsOf.values()]).size, 2 * N, 'ids are unique');

  // Every resource is found by its identifier, and every Observation by its subject.
  assert.deepEqual(await searchIds('Patient', `identifier=${system}|`), [...patientIds].sort());
  assert.deepEqual(await searchIds('Observation', `identifier=${system}|`), [...obsOf.values()].sort());
  for (let from = 0; from < N; from += 50) {
    const idx = Array.from({ length: 50 }, (_, k) => from + k);
    const byId = await searchIds('Patient', `identifier=${idx.map((i) => `${system}|p${i}`).join(',')}`);
    assert.deepEqual(byId, idx.map((i) => patientIds[i]).sort());
    const bySubject = await searchIds('Observation', `subject=${idx.map((i) => `Patient/${patientIds[i]}`).join(',')}`);
    assert.deepEqual(bySubject, idx.map((i) => obsOf.get(i)).sort());
  }
  // One record per entry, each with its own status, and one for the Bundle.
  await view.sync();
  const records = view.events.filter((ev) => summarize(ev).requestId?.startsWith(`${rid}.`));
  assert.equal(records.length, 2 * N);
  assert.deepEqual(new Set(records.map((ev) => summarize(ev).requestId)).size, 2 * N);
  assert.ok(records.every((ev) => summarize(ev).status === 201));
  assert.equal(summarize(await view.recordOf(rid)).status, 200);
});

describe('authorization per entry: a compartment-restricted caller reaches only its patient', () => {
  const ids = {};
  let patientToken;  // the patient role, fhirUser Patient/A
  let writer;        // a clinician with patient/*.cruds and patient=A
  let secrets;

  before(async () => {
    ids.A = (await create('Patient', resourceBody('Patient', { marker: 'AlphaBundle' }))).id;
    ids.B = (await create('Patient', resourceBody('Patient', { marker: 'BravoBundle' }))).id;
    ids.obsA = (await create('Observation', resourceBody('Observation', { patientId: ids.A, marker: 'AlphaObsBundle' }))).id;
    ids.obsB = (await create('Observation', resourceBody('Observation', { patientId: ids.B, marker: 'BravoObsBundle' }))).id;
    secrets = ['BravoBundle', 'BravoObsBundle', ids.B, ids.obsB];
    const alpha = await addUser(server.dataDir, { username: 'bundle-alpha', roles: 'patient', fhirUser: `Patient/${ids.A}` });
    patientToken = mint.person({ userId: alpha.user_id, clientId: client.client_id, roles: ['patient'], fhirUser: `Patient/${ids.A}` });
    const doctor = await addUser(server.dataDir, { username: 'bundle-doctor', roles: 'clinician' });
    writer = mint.person({ userId: doctor.user_id, clientId: client.client_id, roles: ['clinician'], scope: 'patient/*.cruds', patient: ids.A });
  });

  async function assertBUnchanged() {
    const obsB = await read('Observation', ids.obsB);
    assert.equal(obsB.meta.versionId, '1');
    assert.deepEqual(obsB.subject, { reference: `Patient/${ids.B}` });
    assert.equal((await read('Patient', ids.B)).meta.versionId, '1');
  }

  test('patient role, batch: own data 200; B\'s data 404 like a missing id; search leaves B out; writes 403', async () => {
    const { res } = await send('bola-batch', patientToken, {
      resourceType: 'Bundle', type: 'batch', entry: [
        get(`Patient/${ids.A}`),
        get(`Patient/${ids.B}`),
        get(`Observation/${ids.obsB}`),
        get(`Observation?subject=Patient/${ids.B}`),
        get('Patient/no-such-patient'),
        post('Observation', resourceBody('Observation', { patientId: ids.B, marker: 'Injected' })),
        get(`Observation?subject=Patient/${ids.A}`),
      ],
    });
    const b = assertResponseBundle(res, 'batch-response', 7);
    for (const s of secrets) assert.ok(!res.body.includes(s), `the batch response reveals ${s}`);
    assert.equal(b.entry[0].response.status, '200 OK');
    assert.equal(b.entry[0].resource.id, ids.A);
    for (const i of [1, 2, 4]) assertFailedEntry(b.entry[i], 404, 'not-found', 'resource not found', undefined, `entry ${i}`);
    assert.deepEqual(b.entry[1].response.outcome, b.entry[4].response.outcome, 'the same answer as for a missing id');
    assert.equal(b.entry[3].response.status, '200 OK');
    assert.deepEqual(b.entry[3].resource.entry ?? [], [], 'B\'s Observation is left out of the searchset');
    assertFailedEntry(b.entry[5], 403, 'forbidden', 'no role grants create on Observation', undefined, 'entry 5');
    assert.deepEqual(b.entry[6].resource.entry.map((x) => x.resource.id), [ids.obsA]);
    assert.deepEqual(await searchIds('Observation', `subject=Patient/${ids.B}`), [ids.obsB], 'nothing injected');
  });

  test('patient role, transaction: B\'s data fails it 404 like a missing id; a write fails it 403', async () => {
    // A transaction is all or nothing: a GET that fails fails it, with that entry's answer.
    for (const target of [`Patient/${ids.B}`, `Observation/${ids.obsB}`]) {
      const reads = await send('bola-tx-read', patientToken, {
        resourceType: 'Bundle', type: 'transaction', entry: [get(`Patient/${ids.A}`), get(target)],
      });
      for (const s of secrets) assert.ok(!reads.res.body.includes(s), `the transaction response reveals ${s}`);
      assertFails(reads.res, 404, 'not-found', 'resource not found');
    }
    const own = await send('bola-tx-own', patientToken, {
      resourceType: 'Bundle', type: 'transaction', entry: [get(`Patient/${ids.A}`), get(`Observation/${ids.obsA}`)],
    });
    const b = assertResponseBundle(own.res, 'transaction-response', 2);
    assert.deepEqual(b.entry.map((x) => x.resource.id), [ids.A, ids.obsA]);

    const k = uniq('patient-write');
    const { res } = await send('bola-tx-write', patientToken, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        get(`Patient/${ids.A}`),
        post('Observation', { ...resourceBody('Observation', { patientId: ids.A }), identifier: [{ system: SYS, value: k }] }),
      ],
    });
    assertDenied(res, 403, 'forbidden', secrets);
    assert.equal(res.json().issue[0].diagnostics, 'no role grants create on Observation');
    assert.deepEqual(await searchIds('Observation', `identifier=${SYS}|${k}`), []);
  });

  test('patient/*.cruds, batch: writes held to the compartment entry by entry', async () => {
    const kA = uniq('own');
    const { res } = await send('bola-writer-batch', writer, {
      resourceType: 'Bundle', type: 'batch', entry: [
        post('Observation', { ...resourceBody('Observation', { patientId: ids.A }), identifier: [{ system: SYS, value: kA }] }),
        post('Observation', resourceBody('Observation', { patientId: ids.B, marker: 'Injected' })),
        put(`Observation/${ids.obsB}`, { ...resourceBody('Observation', { patientId: ids.A, marker: 'Stolen' }), id: ids.obsB }),
        del(`Observation/${ids.obsB}`),
        del(`Patient/${ids.B}`),
        get(`Observation/${ids.obsB}`),
      ],
    });
    const b = assertResponseBundle(res, 'batch-response', 6);
    for (const s of secrets) assert.ok(!res.body.includes(s), `the batch response reveals ${s}`);
    const own = assertCreated(b.entry[0], 'Observation');
    assertFailedEntry(b.entry[1], 403, 'forbidden', 'the resource would be outside the patient compartment of this token', undefined, 'entry 1');
    for (const i of [2, 3, 4, 5]) assertFailedEntry(b.entry[i], 404, 'not-found', 'resource not found', undefined, `entry ${i}`);
    assert.deepEqual(await searchIds('Observation', `identifier=${SYS}|${kA}`), [own.id]);
    await assertBUnchanged();
  });

  test('patient/*.cruds, transaction: an entry naming a conditional entry decided later is authorized as resolved', async () => {
    // The Observation's subject is the fullUrl of a conditional create that finds A; it is
    // rewritten to Patient/A before the Observation is prepared and held to A's compartment.
    const k = uniq('own-cond');
    const u = urn();
    const { res } = await send('bola-writer-cond', writer, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        post('Observation', { ...resourceBody('Observation', { patientId: ids.A }), identifier: [{ system: SYS, value: k }], subject: { reference: u } },
          { ifNoneExist: `identifier=${SYS}|${k}` }),
        { fullUrl: u, ...post('Patient', resourceBody('Patient'), { ifNoneExist: `_id=${ids.A}` }) },
      ],
    });
    const b = assertResponseBundle(res, 'transaction-response', 2);
    assert.deepEqual(b.entry.map((x) => x.response.status), ['201 Created', '200 OK']);
    assert.deepEqual(b.entry[0].resource.subject, { reference: `Patient/${ids.A}` });
    assert.deepEqual(await searchIds('Observation', `identifier=${SYS}|${k}`), [b.entry[0].resource.id]);
  });

  test('patient/*.cruds, transaction: one entry outside the compartment fails it wholly', async () => {
    const cases = [
      ['an Observation of B among A\'s', (k) => [
        post('Observation', { ...resourceBody('Observation', { patientId: ids.A }), identifier: [{ system: SYS, value: k[0] }] }),
        post('Observation', { ...resourceBody('Observation', { patientId: ids.B }), identifier: [{ system: SYS, value: k[1] }] }),
        post('Observation', { ...resourceBody('Observation', { patientId: ids.A }), identifier: [{ system: SYS, value: k[2] }] }),
      ], 403, 'forbidden', 'the resource would be outside the patient compartment of this token'],
      // The urn:uuid is resolved before the entry is authorized: a new Patient is not A.
      ['a new Patient and its Observation by urn:uuid', (k) => {
        const u = urn();
        return [
          { fullUrl: u, ...post('Patient', patient(k[0])) },
          post('Observation', { ...resourceBody('Observation'), subject: { reference: u }, identifier: [{ system: SYS, value: k[1] }] }),
        ];
      }, 403, 'forbidden', 'the resource would be outside the patient compartment of this token'],
      ['an update of B\'s Observation', (k) => [
        post('Observation', { ...resourceBody('Observation', { patientId: ids.A }), identifier: [{ system: SYS, value: k[0] }] }),
        put(`Observation/${ids.obsB}`, { ...resourceBody('Observation', { patientId: ids.A, marker: 'Stolen' }), id: ids.obsB }),
      ], 404, 'not-found', 'resource not found'],
      ['a delete of B', (k) => [
        post('Observation', { ...resourceBody('Observation', { patientId: ids.A }), identifier: [{ system: SYS, value: k[0] }] }),
        del(`Patient/${ids.B}`),
      ], 404, 'not-found', 'resource not found'],
    ];
    for (const [what, entries, status, code, text] of cases) {
      const k = [uniq('w0'), uniq('w1'), uniq('w2')];
      const { res } = await send('bola-writer-tx', writer, { resourceType: 'Bundle', type: 'transaction', entry: entries(k) });
      assertDenied(res, status, code, secrets, what);
      assert.equal(res.json().issue[0].diagnostics, text, what);
      for (const v of k) {
        assert.deepEqual(await searchIds('Observation', `identifier=${SYS}|${v}`), [], `${what}: ${v}`);
        assert.deepEqual(await searchIds('Patient', `identifier=${SYS}|${v}`), [], `${what}: ${v}`);
      }
    }
    await assertBUnchanged();
  });
});

describe('audit: one record per entry under <request id>.<n>, and one for the Bundle', () => {
  const base = (sent) => ({ userAgent: UA, agents: [clin()], purposeOfEvent: ['TREAT'], method: 'POST', route: '/fhir/{type}', ...sent });
  const bundleRecord = (rid, kind, status, outcomeDesc) => expectedRecord({
    subtype: rest(kind), action: 'E', outcome: status < 400 ? '0' : '4', outcomeDesc,
    agents: [clientAgent(client.client_id, { roles: ['clinician'] })], target: 'type:Bundle',
    requestId: rid, status, method: 'POST', route: '/fhir', userAgent: UA,
  });
  // Every record whose request id is `rid` or `rid.<n>`.
  const recordsUnder = async (rid) => {
    await view.sync();
    return view.events.map(summarize).filter((s) => s.requestId === rid || s.requestId?.startsWith(`${rid}.`));
  };

  test('batch: each entry\'s record carries its own outcome', async () => {
    const { res, rid } = await send('audit-batch', clinician, {
      resourceType: 'Bundle', type: 'batch', entry: [
        post('Patient', patient(uniq('audit'))),
        get('Patient/no-such-patient'),
        get('AuditEvent'),
      ],
    });
    const b = assertResponseBundle(res, 'batch-response', 3);
    const pid = b.entry[0].resource.id;
    const records = await recordsUnder(rid);
    assert.deepEqual(records.map((r) => r.requestId).sort(), [rid, `${rid}.1`, `${rid}.2`, `${rid}.3`]);
    const byRid = Object.fromEntries(records.map((r) => [r.requestId, r]));
    assert.deepEqual(byRid[`${rid}.1`], expectedRecord(base({
      subtype: rest('create'), action: 'C', outcomeDesc: 'HTTP 201', patients: [`Patient/${pid}`],
      target: `Patient/${pid}/_history/1`, requestId: `${rid}.1`, status: 201,
    })));
    assert.deepEqual(byRid[`${rid}.2`], expectedRecord(base({
      subtype: rest('read'), outcome: '4', outcomeDesc: 'HTTP 404; not-found', target: 'Patient/no-such-patient',
      requestId: `${rid}.2`, status: 404, method: 'GET', route: '/fhir/{type}/{id}',
    })));
    assert.deepEqual(byRid[`${rid}.3`], expectedRecord(base({
      subtype: rest('search-type'), outcome: '4', outcomeDesc: 'HTTP 403; forbidden; no role grants search on AuditEvent',
      agents: [clin({ purposes: [] })], purposeOfEvent: [], target: 'type:AuditEvent',
      requestId: `${rid}.3`, status: 403, method: 'GET',
    })));
    assert.deepEqual(byRid[rid], bundleRecord(rid, 'batch', 200, 'HTTP 200'));
  });

  test('transaction: the writes\' records name the new ids; the GET\'s runs after the commit', async () => {
    const k = uniq('audit-tx');
    const u = urn();
    const { res, rid } = await send('audit-tx', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        post('Observation', observation(uniq('audit-obs'), u)),
        { fullUrl: u, ...post('Patient', patient(k)) },
        get(`Patient?identifier=${SYS}|${k}`),
      ],
    });
    const b = assertResponseBundle(res, 'transaction-response', 3);
    const oid = b.entry[0].resource.id;
    const pid = b.entry[1].resource.id;
    const records = await recordsUnder(rid);
    assert.deepEqual(records.map((r) => r.requestId).sort(), [rid, `${rid}.1`, `${rid}.2`, `${rid}.3`]);
    const byRid = Object.fromEntries(records.map((r) => [r.requestId, r]));
    assert.deepEqual(byRid[`${rid}.1`], expectedRecord(base({
      subtype: rest('create'), action: 'C', outcomeDesc: 'HTTP 201', patients: [`Patient/${pid}`],
      target: `Observation/${oid}/_history/1`, requestId: `${rid}.1`, status: 201,
    })));
    assert.deepEqual(byRid[`${rid}.2`], expectedRecord(base({
      subtype: rest('create'), action: 'C', outcomeDesc: 'HTTP 201', patients: [`Patient/${pid}`],
      target: `Patient/${pid}/_history/1`, requestId: `${rid}.2`, status: 201,
    })));
    assert.deepEqual(byRid[`${rid}.3`], expectedRecord(base({
      subtype: rest('search-type'), outcomeDesc: 'HTTP 200', patients: [`Patient/${pid}`], target: 'type:Patient',
      returned: [`Patient/${pid}`], query: [['identifier', `${SYS}|${k}`]],
      // audit/event.cc CanonicalQuery: unreserved characters kept, the rest %XX.
      queryString: `identifier=${encodeURIComponent(`${SYS}|${k}`)}`,
      requestId: `${rid}.3`, status: 200, method: 'GET',
    })));
    assert.deepEqual(byRid[rid], bundleRecord(rid, 'transaction', 200, 'HTTP 200'));
  });

  test('transaction: an entry that writes nothing (a DELETE of a deleted resource) has its record too', async () => {
    // http.html#delete: deleting a deleted resource succeeds without a new version, so no
    // write carries the entry's record into the commit; it must be recorded all the same.
    const gone = await create('Patient', patient(uniq('gone')));
    assert.equal((await api.del(`/fhir/Patient/${gone.id}`, clinician)).status, 204);
    const { res, rid } = await send('audit-tx-nowrite', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        del(`Patient/${gone.id}`),
        post('Patient', patient(uniq('alongside'))),
      ],
    });
    const b = assertResponseBundle(res, 'transaction-response', 2);
    assert.deepEqual(b.entry.map((x) => x.response.status), ['204 No Content', '201 Created']);
    const records = await recordsUnder(rid);
    assert.deepEqual(records.map((r) => `${r.requestId} ${r.status} ${r.subtype[0]}`).sort(), [
      `${rid} 200 ${RESTFUL_INTERACTION}|transaction`,
      `${rid}.1 204 ${RESTFUL_INTERACTION}|delete`,
      `${rid}.2 201 ${RESTFUL_INTERACTION}|create`,
    ]);
  });

  test('failed transaction: the entries it prepared are recorded with the failure status', async () => {
    // POST entries are prepared in order; the invalid second one stops the transaction, so
    // the third is never dispatched (nothing of it was looked at or written) and has no
    // record. The first was prepared, then rolled back: its record says 400, not 201.
    const { res, rid } = await send('audit-tx-fail', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        post('Patient', patient(uniq('a1'))),
        post('Patient', patient(uniq('a2'), { birthDate: '1974-13-45' })),
        post('Patient', patient(uniq('a3'))),
      ],
    });
    assertFails(res, 400, 'invalid', 'invalid date value', ['Patient.birthDate']);
    const records = await recordsUnder(rid);
    assert.deepEqual(records.map((r) => r.requestId).sort(), [rid, `${rid}.1`, `${rid}.2`]);
    const byRid = Object.fromEntries(records.map((r) => [r.requestId, r]));
    const failedCreate = (n, outcomeDesc) => expectedRecord(base({
      subtype: rest('create'), action: 'C', outcome: '4', outcomeDesc, target: 'type:Patient',
      requestId: `${rid}.${n}`, status: 400,
    }));
    assert.deepEqual(byRid[`${rid}.1`], failedCreate(1, 'HTTP 400'));
    assert.deepEqual(byRid[`${rid}.2`], failedCreate(2, 'HTTP 400; invalid'));
    assert.deepEqual(byRid[rid], bundleRecord(rid, 'transaction', 400, 'HTTP 400; invalid'));

    // A wrong ifMatch: every entry was prepared before the PUT failed; all say 412.
    const target = await create('Patient', patient(uniq('audit-target')));
    const m = await send('audit-tx-412', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        post('Patient', patient(uniq('b1'))),
        put(`Patient/${target.id}`, { ...content(target), id: target.id }, { ifMatch: 'W/"9"' }),
        post('Patient', patient(uniq('b3'))),
      ],
    });
    assertFails(m.res, 412, 'conflict', 'the resource version does not match If-Match');
    const r412 = Object.fromEntries((await recordsUnder(m.rid)).map((r) => [r.requestId, r]));
    assert.deepEqual(Object.keys(r412).sort(), [m.rid, `${m.rid}.1`, `${m.rid}.2`, `${m.rid}.3`]);
    assert.deepEqual([1, 2, 3].map((n) => [r412[`${m.rid}.${n}`].status, r412[`${m.rid}.${n}`].outcome]),
      [[412, '4'], [412, '4'], [412, '4']]);
    assert.equal(r412[`${m.rid}.2`].outcomeDesc, 'HTTP 412; conflict');
    assert.equal(r412[`${m.rid}.2`].target, `Patient/${target.id}`);
    assert.deepEqual(r412[m.rid], bundleRecord(m.rid, 'transaction', 412, 'HTTP 412; conflict'));

    // A failing GET (tried before the commit): recorded once with its 404, the prepared
    // POST with the same status; the later GET was never run and has no record.
    const g = await send('audit-tx-get', clinician, {
      resourceType: 'Bundle', type: 'transaction', entry: [
        post('Patient', patient(uniq('c1'))),
        get('Patient/no-such-patient'),
        get('Patient?_count=1'),
      ],
    });
    assertFails(g.res, 404, 'not-found', 'resource not found');
    const rGet = await recordsUnder(g.rid);
    assert.deepEqual(rGet.map((r) => r.requestId).sort(), [g.rid, `${g.rid}.1`, `${g.rid}.2`]);
    const byGet = Object.fromEntries(rGet.map((r) => [r.requestId, r]));
    assert.deepEqual(byGet[`${g.rid}.1`], expectedRecord(base({
      subtype: rest('create'), action: 'C', outcome: '4', outcomeDesc: 'HTTP 404', target: 'type:Patient',
      requestId: `${g.rid}.1`, status: 404,
    })));
    assert.deepEqual(byGet[`${g.rid}.2`], expectedRecord(base({
      subtype: rest('read'), outcome: '4', outcomeDesc: 'HTTP 404; not-found', target: 'Patient/no-such-patient',
      requestId: `${g.rid}.2`, status: 404, method: 'GET', route: '/fhir/{type}/{id}',
    })));
    assert.deepEqual(byGet[g.rid], bundleRecord(g.rid, 'transaction', 404, 'HTTP 404; not-found'));
  });
});

describe('malformed Bundles: refused whole, before any entry runs', () => {
  const WHOLE = 'the body must be a Bundle';
  const URL_TEXT = 'a Bundle entry url must be relative to the base: Type, Type/id or Type?query';
  const METHODS = 'Bundle entries support GET, POST, PUT and DELETE';
  // [what, entries or a whole body, status, code, diagnostics, expression]
  const withEntry = (e) => (k) => ({ resourceType: 'Bundle', type: 'batch', entry: [post('Patient', patient(k)), e] });
  const cases = [
    ['not a Bundle', () => ({ resourceType: 'Patient' }), 400, 'invalid', WHOLE],
    ['a JSON array', () => [1], 400, 'invalid', WHOLE],
    ['type history', (k) => ({ resourceType: 'Bundle', type: 'history', entry: [post('Patient', patient(k))] }), 400, 'invalid', 'the Bundle type must be batch or transaction', ['Bundle.type']],
    ['type searchset', (k) => ({ resourceType: 'Bundle', type: 'searchset', entry: [post('Patient', patient(k))] }), 400, 'invalid', 'the Bundle type must be batch or transaction', ['Bundle.type']],
    ['no type', (k) => ({ resourceType: 'Bundle', entry: [post('Patient', patient(k))] }), 400, 'invalid', 'the Bundle type must be batch or transaction', ['Bundle.type']],
    ['entry not an array', () => ({ resourceType: 'Bundle', type: 'transaction', entry: {} }), 400, 'invalid', 'Bundle.entry must be an array'],
    ['an entry without request', withEntry({ resource: patient('x') }), 400, 'invalid', 'a Bundle entry needs a request', ['Bundle.entry[1].request']],
    ['an entry that is not an object', withEntry(5), 400, 'invalid', 'a Bundle entry needs a request', ['Bundle.entry[1].request']],
    ['an absolute url', withEntry(get('https://elsewhere.example/fhir/Patient/1')), 400, 'invalid', URL_TEXT, ['Bundle.entry[1].request.url']],
    ['a url starting with /', withEntry(get('/fhir/Patient')), 400, 'invalid', URL_TEXT, ['Bundle.entry[1].request.url']],
    ['an empty url', withEntry(get('')), 400, 'invalid', URL_TEXT, ['Bundle.entry[1].request.url']],
    ['a system-level operation url', withEntry(get('$export')), 400, 'invalid', URL_TEXT, ['Bundle.entry[1].request.url']],
    // "?…" is the base itself: a nested Bundle, which would run (and commit) on its own.
    ['a url of the base with a query (a nested Bundle)', withEntry(post('?', { resourceType: 'Bundle', type: 'transaction', entry: [post('Patient', patient('nested'))] })), 400, 'invalid', URL_TEXT, ['Bundle.entry[1].request.url']],
    ['a url that is only a query', withEntry(get('?_id=x')), 400, 'invalid', URL_TEXT, ['Bundle.entry[1].request.url']],
    ['PATCH', withEntry({ request: { method: 'PATCH', url: 'Patient/1' } }), 501, 'not-supported', METHODS],
    ['HEAD', withEntry({ request: { method: 'HEAD', url: 'Patient/1' } }), 501, 'not-supported', METHODS],
    ['no method', withEntry({ request: { url: 'Patient' } }), 501, 'not-supported', METHODS],
    ['POST without a resource', withEntry({ request: { method: 'POST', url: 'Patient' } }), 400, 'invalid', 'a POST or PUT entry needs a resource', ['Bundle.entry[1].resource']],
    ['PUT with an array for a resource', withEntry({ resource: [], request: { method: 'PUT', url: 'Patient/1' } }), 400, 'invalid', 'a POST or PUT entry needs a resource', ['Bundle.entry[1].resource']],
    ['10,001 entries', (k) => ({ resourceType: 'Bundle', type: 'batch', entry: [post('Patient', patient(k)), ...Array.from({ length: 10_000 }, () => get('Patient/x'))] }), 400, 'invalid', 'too many Bundle entries'],
  ];

  for (const [what, make, status, code, text, expression] of cases) {
    test(`${what}: ${status} "${text}"`, async () => {
      const k = uniq('malformed');
      const { res } = await send('malformed', clinician, make(k));
      assertFails(res, status, code, text, expression);
      // The valid entry before the malformed one did not run.
      assert.deepEqual(await searchIds('Patient', `identifier=${SYS}|${k}`), [], `${what}: nothing ran`);
    });
  }

  test('not FHIR JSON: 415; malformed JSON: 400', async () => {
    const text = await server.request('POST', '/fhir', {
      headers: { ...bearer(clinician), 'content-type': 'text/plain' },
      body: JSON.stringify({ resourceType: 'Bundle', type: 'batch' }),
    });
    assertFails(text, 415, 'not-supported', 'the body must be application/fhir+json');
    const bad = await server.request('POST', '/fhir', {
      headers: { ...bearer(clinician), 'content-type': 'application/fhir+json' },
      body: '{"resourceType":"Bundle","type":"batch","entry":[',
    });
    assertFails(bad, 400, 'invalid', 'malformed JSON');
  });

  test('an empty batch and an empty transaction: 200 with an empty response Bundle', async () => {
    for (const type of ['batch', 'transaction']) {
      const { res } = await send('empty', clinician, { resourceType: 'Bundle', type });
      assertResponseBundle(res, `${type}-response`, 0);
      assert.deepEqual(res.json(), { resourceType: 'Bundle', type: `${type}-response` });
    }
  });

  test('without a token: 401, nothing runs', async () => {
    const k = uniq('anon');
    const res = await server.request('POST', '/fhir', {
      headers: { 'content-type': 'application/fhir+json' },
      body: { resourceType: 'Bundle', type: 'batch', entry: [post('Patient', patient(k))] },
    });
    assert.equal(res.status, 401, res.body);
    assert.deepEqual(await searchIds('Patient', `identifier=${SYS}|${k}`), []);
  });
});
