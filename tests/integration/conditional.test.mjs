// Conditional interactions end to end (issue 6 §3; FHIR R4 http.html#ccreate,
// #cond-update, #cdelete): conditional create (If-None-Exist), conditional update
// (PUT [type]?condition) and conditional delete (DELETE [type]?condition), with the status
// of zero, one and several matches, malformed and unknown conditions, the permissions a
// condition needs (search on the type, by elements the role may see), concurrent
// conditional writes decided under one lock, compartment-restricted callers for whom a
// match outside their compartment does not exist, and exactly one audit record per request
// carrying the condition as its query entity.
//
// Two servers: the shipped default policy, and a custom policy (with fhir.update_create on)
// that gives the patient role create rights in its compartment, a role that may create but
// not search, and a Patient element policy that hides generalPractitioner.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  startServer, addClient, addUser, makeTempRoot, assertOutcome, assertCommonHeaders, FHIR_ID,
} from './harness.mjs';
import { TokenMint, fhirApi, resourceBody, clean, issueText } from './authz_helpers.mjs';
import {
  AuditView, auditorToken, requestId, summarize, expectedRecord, clientAgent, RESTFUL_INTERACTION,
} from './audit_helpers.mjs';

const MRN = 'urn:phigate-test:mrn';
const OBS = 'urn:phigate-test:obs';
const rest = (code) => [`${RESTFUL_INTERACTION}|${code}`];

let counter = 0;
// A value unique to this run, for identifiers (so cases on one server never match each other).
function uniq(label) { return `${label}-${process.pid}-${++counter}`; }

function patient(mrn, family = 'Conditional') {
  return {
    resourceType: 'Patient',
    identifier: [{ system: MRN, value: mrn }],
    name: [{ family, given: ['Test'] }],
    gender: 'female',
    birthDate: '1970-01-01',
  };
}

function observation(patientId, value, marker = 'ConditionalObs') {
  return { ...clean(resourceBody('Observation', { patientId, marker })), identifier: [{ system: OBS, value }] };
}

// The resource without the server-managed id and meta.
function content(resource) {
  const { id, meta, ...rest_ } = resource;
  return rest_;
}

// The query string of the audit record's query entity (audit/event.cc CanonicalQuery: RFC
// 3986 unreserved characters kept, everything else %XX in upper case).
function canonical(pairs) {
  const enc = (s) => [...Buffer.from(s, 'utf8')].map((b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }).join('');
  return pairs.map(([n, v]) => `${enc(n)}=${enc(v)}`).join('&');
}

// The query fields of an expected audit record for the condition `pairs`.
function cond(pairs) { return { query: pairs, queryString: canonical(pairs) }; }

// Request and check helpers bound to one server.
function tools(server) {
  const api = fhirApi(server);
  return {
    api,
    // Sends one request with its own X-Request-Id; resolves {res, rid, method}.
    async send(label, method, target, token, { body, headers = {} } = {}) {
      const rid = requestId(label);
      const h = { 'x-request-id': rid, authorization: `Bearer ${token}`, ...headers };
      if (body !== undefined) h['content-type'] = 'application/fhir+json';
      const res = await server.request(method, target, { headers: h, body });
      assert.equal(res.headers['x-request-id'], rid, 'the request id is echoed');
      return { res, rid, method };
    },
    // The ids a search finds (one page, asserted to be the only one), sorted.
    async searchIds(token, type, query) {
      const res = await api.get(`/fhir/${type}?${query}&_count=100`, token);
      assert.equal(res.status, 200, `GET /fhir/${type}?${query}: ${res.body}`);
      const bundle = res.json();
      assert.equal(bundle.type, 'searchset');
      assert.ok(!bundle.link.some((l) => l.relation === 'next'), 'one page');
      return (bundle.entry ?? []).map((e) => e.resource.id).sort();
    },
    // The number of entries of the instance history.
    async historyLength(token, type, id) {
      const res = await api.get(`/fhir/${type}/${id}/_history`, token);
      assert.equal(res.status, 200, `GET /fhir/${type}/${id}/_history: ${res.body}`);
      return (res.json().entry ?? []).length;
    },
  };
}

// Asserts a successful write answer: status, common headers, ETag and meta of `version`.
// Returns the parsed resource.
function assertWritten(res, status, version) {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.body}`);
  assertCommonHeaders(assert, res);
  const r = res.json();
  assert.match(r.id, FHIR_ID);
  assert.equal(res.headers.etag, `W/"${version}"`);
  assert.equal(r.meta.versionId, String(version));
  return r;
}

// An OperationOutcome answer with the exact diagnostics text.
function assertFails(res, status, code, text, expression) {
  assertOutcome(assert, res, status, code, expression);
  assert.equal(issueText(res), text);
}

describe('default policy', () => {
  let server;
  let t;            // tools(server)
  let mint;
  let client;
  let clinician;    // system token, clinician
  let billing;      // system token, billing (Patient: search and update, no create)
  let view;         // the auditor's view of the trail

  const clin = () => clientAgent(client.client_id, { roles: ['clinician'], purposes: ['TREAT'] });

  // The one record of `sent`, compared with the whole expected record (clinician defaults).
  async function assertAudit(sent, fields) {
    const ev = await view.recordOf(sent.rid);
    assert.deepEqual(summarize(ev), expectedRecord({
      requestId: sent.rid,
      status: sent.res.status,
      method: sent.method,
      route: '/fhir/{type}',
      purposeOfEvent: ['TREAT'],
      agents: [clin()],
      ...fields,
    }));
    return ev;
  }

  async function createPatient(mrn, family) {
    const res = await t.api.post('/fhir/Patient', clinician, patient(mrn, family));
    assert.equal(res.status, 201, res.body);
    return res.json().id;
  }

  before(async () => {
    // More handler threads than cores, so that the parallel cases really overlap.
    server = await startServer({ config: '[server]\nthreads = 8\n' });
    t = tools(server);
    mint = await TokenMint.create(server);
    client = await addClient(server.dataDir, { name: 'conditional', roles: 'clinician' });
    clinician = mint.system({ clientId: client.client_id, roles: ['clinician'] });
    billing = mint.system({ clientId: client.client_id, roles: ['billing'] });
    view = new AuditView(server, auditorToken(mint, client.client_id));
  });

  after(async () => {
    if (server) await server.dispose();
  });

  // ---- conditional create (http.html#ccreate) ----

  test('conditional create, no match: 201, Location, the resource created; one audit record with the condition', async () => {
    const mrn = uniq('cc-none');
    const body = patient(mrn);
    const sent = await t.send('cc-none', 'POST', '/fhir/Patient', clinician,
      { body, headers: { 'if-none-exist': `identifier=${MRN}|${mrn}` } });
    const created = assertWritten(sent.res, 201, 1);
    assert.equal(sent.res.headers.location, `${server.baseUrl}/Patient/${created.id}/_history/1`);
    assert.deepEqual(content(created), body);
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), [created.id]);
    await assertAudit(sent, {
      subtype: rest('create'), action: 'C', outcomeDesc: 'HTTP 201',
      patients: [`Patient/${created.id}`], target: `Patient/${created.id}/_history/1`,
      ...cond([['identifier', `${MRN}|${mrn}`]]),
    });
  });

  test('conditional create, one match: 200 with the existing resource, version unchanged, nothing new in history', async () => {
    const mrn = uniq('cc-one');
    const id = await createPatient(mrn, 'Existing');
    const before_ = await t.api.get(`/fhir/Patient/${id}`, clinician);
    assert.equal(before_.status, 200);
    // A different body: nothing of it may be stored.
    const sent = await t.send('cc-one', 'POST', '/fhir/Patient', clinician,
      { body: patient(mrn, 'Intruder'), headers: { 'if-none-exist': `identifier=${MRN}|${mrn}&family=Existing` } });
    const found = assertWritten(sent.res, 200, 1);
    assert.equal(found.id, id);
    assert.equal(found.name[0].family, 'Existing');
    assert.equal(sent.res.body, before_.body, 'the answer is the stored resource, as a read returns it');
    assert.equal(sent.res.headers.location, undefined, 'no Location: nothing was created');
    const after_ = await t.api.get(`/fhir/Patient/${id}`, clinician);
    assert.equal(after_.body, before_.body, 'the stored resource is unchanged');
    assert.equal(await t.historyLength(clinician, 'Patient', id), 1, 'nothing new in history');
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), [id], 'nothing created');
    assert.deepEqual(await t.searchIds(clinician, 'Patient', 'family=Intruder'), []);
    await assertAudit(sent, {
      subtype: rest('create'), action: 'C', outcomeDesc: 'HTTP 200',
      patients: [`Patient/${id}`], target: `Patient/${id}/_history/1`,
      ...cond([['identifier', `${MRN}|${mrn}`], ['family', 'Existing']]),
    });
  });

  test('conditional create, several matches: 412 OperationOutcome, nothing created', async () => {
    const mrn = uniq('cc-many');
    const ids = [await createPatient(mrn), await createPatient(mrn)].sort();
    const sent = await t.send('cc-many', 'POST', '/fhir/Patient', clinician,
      { body: patient(mrn), headers: { 'if-none-exist': `identifier=${MRN}|${mrn}` } });
    assertFails(sent.res, 412, 'conflict', 'the If-None-Exist condition matches more than one resource');
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), ids);
    await assertAudit(sent, {
      subtype: rest('create'), action: 'C', outcome: '4', outcomeDesc: 'HTTP 412; conflict',
      target: 'type:Patient', ...cond([['identifier', `${MRN}|${mrn}`]]),
    });
  });

  test('conditional create: a deleted resource does not match', async () => {
    const mrn = uniq('cc-deleted');
    const gone = await createPatient(mrn);
    assert.equal((await t.api.del(`/fhir/Patient/${gone}`, clinician)).status, 204);
    const res = await t.api.post('/fhir/Patient', clinician, patient(mrn), { 'if-none-exist': `identifier=${MRN}|${mrn}` });
    const created = assertWritten(res, 201, 1);
    assert.notEqual(created.id, gone);
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), [created.id]);
  });

  test('conditional create, bad conditions: 400 and nothing created', async () => {
    const mrn = uniq('cc-bad');
    const cases = [
      // A malformed percent escape (ParseQuery refuses the whole header).
      [`identifier=${MRN}|${mrn}%zz`, 'malformed If-None-Exist condition', undefined],
      [`identifier=${MRN}|${mrn}%00`, 'malformed If-None-Exist condition', undefined],
      // Strict handling (search.html#errors): an unknown parameter is an error, not ignored
      // (ignoring it would widen the condition and match an unrelated resource).
      [`identifier=${MRN}|${mrn}&no-such-param=1`, 'unknown search parameter for this resource type', undefined],
      // A condition selects; result parameters have no place in it.
      [`identifier=${MRN}|${mrn}&_count=1`, 'a condition may hold search parameters only', ['_count']],
    ];
    for (const [header, text, expression] of cases) {
      const res = await t.api.post('/fhir/Patient', clinician, patient(mrn), { 'if-none-exist': header });
      assertFails(res, 400, 'invalid', text, expression);
    }
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), [], 'nothing created');
    // The record of one of them: a failed create, the condition as sent.
    const sent = await t.send('cc-unknown', 'POST', '/fhir/Patient', clinician,
      { body: patient(mrn), headers: { 'if-none-exist': 'no-such-param=1' } });
    assertFails(sent.res, 400, 'invalid', 'unknown search parameter for this resource type');
    await assertAudit(sent, {
      subtype: rest('create'), action: 'C', outcome: '4', outcomeDesc: 'HTTP 400; invalid',
      target: 'type:Patient', ...cond([['no-such-param', '1']]),
    });
  });

  test('conditional create without the search permission (token scopes): 403, while a plain create is allowed', async () => {
    const createOnly = mint.system({ clientId: client.client_id, roles: ['clinician'], scope: 'system/Patient.c' });
    const mrn = uniq('cc-noscope');
    const sent = await t.send('cc-noscope', 'POST', '/fhir/Patient', createOnly,
      { body: patient(mrn), headers: { 'if-none-exist': `identifier=${MRN}|${mrn}` } });
    const text = 'a conditional interaction needs the search permission on Patient';
    assertFails(sent.res, 403, 'forbidden', text);
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), [], 'nothing created');
    await assertAudit(sent, {
      subtype: rest('create'), action: 'C', outcome: '4', outcomeDesc: `HTTP 403; forbidden; ${text}`,
      target: 'type:Patient', ...cond([['identifier', `${MRN}|${mrn}`]]),
    });
    // Control: the same token may create without a condition.
    assertWritten(await t.api.post('/fhir/Patient', createOnly, patient(mrn)), 201, 1);
  });

  test('a condition on an element the role may not see: 403 (billing hides Patient.generalPractitioner and Coverage.text)', async () => {
    // Billing may update Patient but sees none of generalPractitioner (docs/policy.md):
    // a condition on it would reveal what a read hides.
    const mrn = uniq('billing');
    const id = await createPatient(mrn, 'Billed');
    const gpText = 'searching by general-practitioner is not permitted: it reads Patient.generalPractitioner, which this role may not see';
    const sent = await t.send('cu-hidden', 'PUT', '/fhir/Patient?general-practitioner=Practitioner/x', billing,
      { body: patient(mrn, 'Billed') });
    assertFails(sent.res, 403, 'forbidden', gpText);
    const ev = summarize(await view.recordOf(sent.rid));
    assert.deepEqual([ev.subtype, ev.action, ev.outcome, ev.outcomeDesc, ev.query, ev.patients],
      [rest('update'), 'U', '4', `HTTP 403; forbidden; ${gpText}`, [['general-practitioner', 'Practitioner/x']], []]);
    // Control: by an element billing sees, the same conditional update goes through.
    const ok = await t.api.put(`/fhir/Patient?identifier=${MRN}|${mrn}`, billing,
      { ...patient(mrn, 'Billed'), telecom: [{ system: 'phone', value: '555-0100' }] });
    assert.equal(assertWritten(ok, 200, 2).id, id);
    // Conditional create of a Coverage (billing may create and search it) by its narrative.
    const covText = 'searching by _text is not permitted: it reads Coverage.text, which this role may not see';
    assertFails(await t.api.post('/fhir/Coverage', billing, clean(resourceBody('Coverage', {})),
      { 'if-none-exist': '_text=anything' }), 403, 'forbidden', covText);
  });

  test('concurrency: 10 parallel conditional creates with the same condition give one 201 and nine 200 with the same id', async () => {
    const mrn = uniq('cc-race');
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => t.send(`cc-race-${i}`, 'POST',
      '/fhir/Patient', clinician, { body: patient(mrn, `Racer${i}`), headers: { 'if-none-exist': `identifier=${MRN}|${mrn}` } })));
    const statuses = results.map((r) => r.res.status).sort();
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 200, 201],
      results.map((r) => `${r.res.status} ${r.res.body.slice(0, 200)}`).join('\n'));
    const ids = new Set(results.map((r) => r.res.json().id));
    assert.equal(ids.size, 1, `one id: ${[...ids]}`);
    const [id] = ids;
    for (const r of results) assert.equal(r.res.headers.etag, 'W/"1"');
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), [id], 'exactly one exists');
    assert.equal(await t.historyLength(clinician, 'Patient', id), 1);
    for (const r of results) {
      const ev = summarize(await view.recordOf(r.rid));
      assert.deepEqual([ev.action, ev.status, ev.outcome, ev.target, ev.query],
        ['C', r.res.status, '0', `Patient/${id}/_history/1`, [['identifier', `${MRN}|${mrn}`]]]);
    }
  });

  // ---- conditional update (http.html#cond-update) ----

  test('conditional update, no match and no id: 201 with a server id; one audit record', async () => {
    const mrn = uniq('cu-none');
    const body = patient(mrn);
    const sent = await t.send('cu-none', 'PUT', `/fhir/Patient?identifier=${MRN}|${mrn}`, clinician, { body });
    const created = assertWritten(sent.res, 201, 1);
    assert.equal(sent.res.headers.location, `${server.baseUrl}/Patient/${created.id}/_history/1`);
    assert.deepEqual(content(created), body);
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), [created.id]);
    await assertAudit(sent, {
      subtype: rest('update'), action: 'U', outcomeDesc: 'HTTP 201',
      patients: [`Patient/${created.id}`], target: `Patient/${created.id}/_history/1`,
      ...cond([['identifier', `${MRN}|${mrn}`]]),
    });
  });

  test('conditional update, no match and a new id in the body: answered as a plain PUT to a new id (405 with update_create off)', async () => {
    const mrn = uniq('cu-newid');
    const newId = uniq('cu-client-id');
    const plainId = uniq('cu-plain-id');
    const plain = await t.api.put(`/fhir/Patient/${plainId}`, clinician, { ...patient(mrn), id: plainId });
    const text = 'this server does not create resources with client-assigned ids';
    assertFails(plain, 405, 'not-supported', text);
    const res = await t.api.put(`/fhir/Patient?identifier=${MRN}|${mrn}`, clinician, { ...patient(mrn), id: newId });
    assertFails(res, 405, 'not-supported', text);
    assert.equal(res.body, plain.body, 'the same OperationOutcome as the plain PUT');
    // RFC 9110 §15.5.6: a 405 carries Allow.
    assert.ok(res.headers.allow, 'Allow on the 405');
    assertOutcome(assert, await t.api.get(`/fhir/Patient/${newId}`, clinician), 404, 'not-found');
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), [], 'nothing created');
  });

  test('conditional update, no match and the id of an existing resource that does not match: 409, nothing changed', async () => {
    // R4 http.html#cond-update treats "no matches, id provided" as update-as-create, which
    // is about an id that does not exist (and this configuration does not support it); R5
    // (http.html#cond-update) states the case of an id that exists: "The server rejects the
    // conditional update with a 409 Conflict error". Updating that other resource would
    // apply a write the condition did not select.
    const other = await createPatient(uniq('cu-other'), 'Bystander');
    const before_ = await t.api.get(`/fhir/Patient/${other}`, clinician);
    const mrn = uniq('cu-nomatch');
    const res = await t.api.put(`/fhir/Patient?identifier=${MRN}|${mrn}`, clinician,
      { ...patient(mrn, 'Overwriter'), id: other });
    assertOutcome(assert, res, 409, 'conflict');
    const after_ = await t.api.get(`/fhir/Patient/${other}`, clinician);
    assert.equal(after_.body, before_.body, 'the resource the condition did not select is unchanged');
  });

  test('conditional update, one match: 200, that resource updated to version 2; body without id, with its id, with another id (400)', async () => {
    const mrn = uniq('cu-one');
    const id = await createPatient(mrn, 'Before');
    const target = `/fhir/Patient?identifier=${MRN}|${mrn}`;
    // No id in the body: the match's id is used.
    const sent = await t.send('cu-one', 'PUT', target, clinician, { body: patient(mrn, 'After') });
    const updated = assertWritten(sent.res, 200, 2);
    assert.equal(updated.id, id);
    assert.equal(updated.name[0].family, 'After');
    assert.equal(sent.res.headers.location, undefined);
    const read = await t.api.get(`/fhir/Patient/${id}`, clinician);
    assert.equal(read.json().meta.versionId, '2');
    assert.equal(read.json().name[0].family, 'After');
    assert.equal(await t.historyLength(clinician, 'Patient', id), 2);
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), [id], 'nothing created');
    await assertAudit(sent, {
      subtype: rest('update'), action: 'U', outcomeDesc: 'HTTP 200',
      patients: [`Patient/${id}`], target: `Patient/${id}/_history/2`,
      ...cond([['identifier', `${MRN}|${mrn}`]]),
    });
    // The match's own id in the body: the same.
    const same = await t.api.put(target, clinician, { ...patient(mrn, 'Again'), id });
    assert.equal(assertWritten(same, 200, 3).id, id);
    // Another id: 400 (http.html#cond-update), nothing written.
    const wrong = await t.api.put(target, clinician, { ...patient(mrn, 'Wrong'), id: 'some-other-id' });
    assertFails(wrong, 400, 'invalid', 'the resource id does not match the resource the condition found', ['Patient.id']);
    const unchanged = await t.api.get(`/fhir/Patient/${id}`, clinician);
    assert.equal(unchanged.json().meta.versionId, '3');
    assert.equal(unchanged.json().name[0].family, 'Again');
    assertOutcome(assert, await t.api.get('/fhir/Patient/some-other-id', clinician), 404, 'not-found');
  });

  test('conditional update, several matches: 412, nothing changed', async () => {
    const mrn = uniq('cu-many');
    const ids = [await createPatient(mrn, 'Twin'), await createPatient(mrn, 'Twin')].sort();
    const sent = await t.send('cu-many', 'PUT', `/fhir/Patient?identifier=${MRN}|${mrn}`, clinician,
      { body: patient(mrn, 'Changed') });
    assertFails(sent.res, 412, 'conflict', 'the condition matches more than one resource');
    for (const id of ids) {
      const r = await t.api.get(`/fhir/Patient/${id}`, clinician);
      assert.equal(r.json().meta.versionId, '1');
      assert.equal(r.json().name[0].family, 'Twin');
    }
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), ids, 'nothing created');
    await assertAudit(sent, {
      subtype: rest('update'), action: 'U', outcome: '4', outcomeDesc: 'HTTP 412; conflict',
      target: 'type:Patient', ...cond([['identifier', `${MRN}|${mrn}`]]),
    });
  });

  test('conditional update: If-Match is checked against the matched resource', async () => {
    const mrn = uniq('cu-ifmatch');
    const id = await createPatient(mrn, 'Versioned');
    const target = `/fhir/Patient?identifier=${MRN}|${mrn}`;
    const sent = await t.send('cu-ifmatch', 'PUT', target, clinician,
      { body: patient(mrn, 'Stale'), headers: { 'if-match': 'W/"2"' } });
    assertOutcome(assert, sent.res, 412, 'conflict');
    const r = await t.api.get(`/fhir/Patient/${id}`, clinician);
    assert.equal(r.json().meta.versionId, '1');
    assert.equal(r.json().name[0].family, 'Versioned');
    await assertAudit(sent, {
      subtype: rest('update'), action: 'U', outcome: '4', outcomeDesc: 'HTTP 412; conflict',
      patients: [`Patient/${id}`], target: `Patient/${id}`, ...cond([['identifier', `${MRN}|${mrn}`]]),
    });
    const ok = await t.api.put(target, clinician, patient(mrn, 'Fresh'), { 'if-match': 'W/"1"' });
    assert.equal(assertWritten(ok, 200, 2).id, id);
  });

  test('conditional update, no match, by a role that may update but not create: 403, nothing created', async () => {
    const mrn = uniq('cu-nocreate');
    const res = await t.api.put(`/fhir/Patient?identifier=${MRN}|${mrn}`, billing, patient(mrn));
    assertFails(res, 403, 'forbidden', 'no role grants create on Patient');
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), []);
  });

  test('conditional update without a condition: 412', async () => {
    const mrn = uniq('cu-nocond');
    const res = await t.api.put('/fhir/Patient', clinician, patient(mrn));
    assertFails(res, 412, 'conflict', 'a conditional interaction needs a condition');
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), []);
  });

  test('concurrency: 10 parallel conditional updates of nothing yet give one 201 and nine 200 of the same resource', async () => {
    const mrn = uniq('cu-race');
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      t.api.put(`/fhir/Patient?identifier=${MRN}|${mrn}`, clinician, patient(mrn, `Racer${i}`))));
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 200, 201],
      results.map((r) => `${r.status} ${r.body.slice(0, 200)}`).join('\n'));
    const ids = new Set(results.map((r) => r.json().id));
    assert.equal(ids.size, 1);
    const [id] = ids;
    assert.deepEqual(results.map((r) => r.json().meta.versionId).sort((a, b) => a - b),
      ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), [id]);
    assert.equal(await t.historyLength(clinician, 'Patient', id), 10);
  });

  // ---- conditional delete (http.html#cdelete) ----

  test('conditional delete, no match: 204, nothing deleted; one audit record', async () => {
    const mrn = uniq('cd-none');
    const bystander = await createPatient(uniq('cd-bystander'));
    const sent = await t.send('cd-none', 'DELETE', `/fhir/Patient?identifier=${MRN}|${mrn}`, clinician);
    assert.equal(sent.res.status, 204, sent.res.body);
    assert.equal(sent.res.body, '');
    assertCommonHeaders(assert, sent.res);
    assert.equal((await t.api.get(`/fhir/Patient/${bystander}`, clinician)).status, 200);
    await assertAudit(sent, {
      subtype: rest('delete'), action: 'D', outcomeDesc: 'HTTP 204',
      target: 'type:Patient', ...cond([['identifier', `${MRN}|${mrn}`]]),
    });
  });

  test('conditional delete, one match: 204 and the resource is gone (410)', async () => {
    const mrn = uniq('cd-one');
    const id = await createPatient(mrn);
    const keep = await createPatient(uniq('cd-keep'));
    const sent = await t.send('cd-one', 'DELETE', `/fhir/Patient?identifier=${MRN}|${mrn}`, clinician);
    assert.equal(sent.res.status, 204, sent.res.body);
    assert.equal(sent.res.body, '');
    assertOutcome(assert, await t.api.get(`/fhir/Patient/${id}`, clinician), 410, 'deleted');
    assert.equal((await t.api.get(`/fhir/Patient/${keep}`, clinician)).status, 200);
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), []);
    await assertAudit(sent, {
      subtype: rest('delete'), action: 'D', outcomeDesc: 'HTTP 204',
      patients: [`Patient/${id}`], target: `Patient/${id}/_history/2`,
      ...cond([['identifier', `${MRN}|${mrn}`]]),
    });
    // Again: nothing matches any more.
    assert.equal((await t.api.del(`/fhir/Patient?identifier=${MRN}|${mrn}`, clinician)).status, 204);
    assert.equal(await t.historyLength(clinician, 'Patient', id), 2, 'no second deletion');
  });

  test('conditional delete, several matches: 412 and nothing deleted', async () => {
    const mrn = uniq('cd-many');
    const ids = [await createPatient(mrn), await createPatient(mrn)].sort();
    const sent = await t.send('cd-many', 'DELETE', `/fhir/Patient?identifier=${MRN}|${mrn}`, clinician);
    assertFails(sent.res, 412, 'conflict', 'the condition matches more than one resource');
    for (const id of ids) {
      const r = await t.api.get(`/fhir/Patient/${id}`, clinician);
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json().meta.versionId, '1');
    }
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), ids);
    await assertAudit(sent, {
      subtype: rest('delete'), action: 'D', outcome: '4', outcomeDesc: 'HTTP 412; conflict',
      target: 'type:Patient', ...cond([['identifier', `${MRN}|${mrn}`]]),
    });
  });

  test('conditional delete without a condition: 412, nothing deleted', async () => {
    const id = await createPatient(uniq('cd-nocond'));
    const sent = await t.send('cd-nocond', 'DELETE', '/fhir/Patient', clinician);
    assertFails(sent.res, 412, 'conflict', 'a conditional interaction needs a condition');
    assert.equal((await t.api.get(`/fhir/Patient/${id}`, clinician)).status, 200);
    await assertAudit(sent, {
      subtype: rest('delete'), action: 'D', outcome: '4', outcomeDesc: 'HTTP 412; conflict',
      target: 'type:Patient',
    });
  });

  test('conditional delete: If-Match is checked against the matched resource', async () => {
    const mrn = uniq('cd-ifmatch');
    const id = await createPatient(mrn);
    const stale = await t.api.del(`/fhir/Patient?identifier=${MRN}|${mrn}`, clinician, { 'if-match': 'W/"7"' });
    assertOutcome(assert, stale, 412, 'conflict');
    assert.equal((await t.api.get(`/fhir/Patient/${id}`, clinician)).status, 200);
    const ok = await t.api.del(`/fhir/Patient?identifier=${MRN}|${mrn}`, clinician, { 'if-match': 'W/"1"' });
    assert.equal(ok.status, 204, ok.body);
    assertOutcome(assert, await t.api.get(`/fhir/Patient/${id}`, clinician), 410, 'deleted');
  });

  // ---- a compartment-restricted writer (clinician with patient/ scopes, patient=A) ----

  test('patient/-scoped writer: a condition matching only patient B\'s resource is 0 matches; B\'s resource untouched', async () => {
    const A = await createPatient(uniq('cmp-A'), 'Alpha');
    const B = await createPatient(uniq('cmp-B'), 'Bravo');
    const shared = uniq('cmp-obs');
    const obsBRes = await t.api.post('/fhir/Observation', clinician, observation(B, shared, 'BravoSecretObs'));
    assert.equal(obsBRes.status, 201, obsBRes.body);
    const obsB = obsBRes.json().id;
    const obsBBody = (await t.api.get(`/fhir/Observation/${obsB}`, clinician)).body;
    const doctor = await addUser(server.dataDir, { username: uniq('cmp-doctor'), roles: 'clinician' });
    const writer = mint.person({
      userId: doctor.user_id, clientId: client.client_id, roles: ['clinician'],
      scope: 'patient/*.cruds', patient: A,
    });
    const cases = `identifier=${OBS}|${shared}`;

    // Create: 201 in A's compartment, B's existence not revealed.
    const sent = await t.send('cmp-create', 'POST', '/fhir/Observation', writer,
      { body: observation(A, shared, 'AlphaObs'), headers: { 'if-none-exist': cases } });
    const created = assertWritten(sent.res, 201, 1);
    assert.notEqual(created.id, obsB);
    assert.equal(created.subject.reference, `Patient/${A}`);
    assert.ok(!sent.res.body.includes('BravoSecretObs') && !sent.res.body.includes(B), 'nothing of B');
    const ev = summarize(await view.recordOf(sent.rid));
    assert.deepEqual([ev.action, ev.outcome, ev.status, ev.patients, ev.target, ev.query],
      ['C', '0', 201, [`Patient/${A}`], `Observation/${created.id}/_history/1`, [['identifier', `${OBS}|${shared}`]]]);

    // Now the condition matches B's and A's: only A's counts, 200 with A's.
    const again = await t.api.post('/fhir/Observation', writer, observation(A, shared, 'AlphaObs2'), { 'if-none-exist': cases });
    assert.equal(assertWritten(again, 200, 1).id, created.id);

    // Conditional update and delete by a condition matching only B's: B's is not the match.
    const onlyB = uniq('cmp-onlyB');
    const obsB2Res = await t.api.post('/fhir/Observation', clinician, observation(B, onlyB, 'BravoSecretObs2'));
    assert.equal(obsB2Res.status, 201, obsB2Res.body);
    const obsB2 = obsB2Res.json().id;
    const obsB2Body = (await t.api.get(`/fhir/Observation/${obsB2}`, clinician)).body;
    const upd = await t.api.put(`/fhir/Observation?identifier=${OBS}|${onlyB}`, writer, observation(A, onlyB, 'AlphaObs3'));
    const createdByUpdate = assertWritten(upd, 201, 1);
    assert.notEqual(createdByUpdate.id, obsB2);
    assert.equal(createdByUpdate.subject.reference, `Patient/${A}`);
    // Deleting by the identifier now matches A's new one only (B's is out of reach).
    const del = await t.api.del(`/fhir/Observation?identifier=${OBS}|${onlyB}`, writer);
    assert.equal(del.status, 204, del.body);
    assertOutcome(assert, await t.api.get(`/fhir/Observation/${createdByUpdate.id}`, clinician), 410, 'deleted');
    // And with nothing of A's left, a delete matching only B's deletes nothing.
    assert.equal((await t.api.del(`/fhir/Observation?identifier=${OBS}|${onlyB}`, writer)).status, 204);

    for (const [id, body] of [[obsB, obsBBody], [obsB2, obsB2Body]]) {
      const r = await t.api.get(`/fhir/Observation/${id}`, clinician);
      assert.equal(r.status, 200, `B's Observation ${id}: ${r.body}`);
      assert.equal(r.body, body, 'B\'s Observation is untouched');
      assert.equal(await t.historyLength(clinician, 'Observation', id), 1);
    }
  });
});

describe('custom policy: patient role with create, a create-only role, a Patient element policy; update_create on', () => {
  let server;
  let root;
  let t;
  let mint;
  let client;
  let clinician;   // Patient elements limited: generalPractitioner hidden
  let registrar;   // billing role redefined: Patient create and read, no search

  const POLICY = `
[roles.clinician]
description = "test: every interaction, but Patient.generalPractitioner (among others) hidden"
purposes = ["TREAT"]
default_purpose = "TREAT"
compartment = "none"

[[roles.clinician.grants]]
types = ["*"]
except = ["AuditEvent"]
interactions = ["read", "vread", "search", "history", "create", "update", "delete"]

[roles.clinician.elements.Patient]
read = ["identifier", "name", "telecom", "gender", "birthDate", "address"]

[roles.billing]
description = "test: registers patients but may not search them"
purposes = ["HPAYMT"]
default_purpose = "HPAYMT"
compartment = "none"

[[roles.billing.grants]]
types = ["Patient"]
interactions = ["read", "create"]

[roles.patient]
description = "test: a patient recording their own observations"
purposes = ["PATRQT"]
default_purpose = "PATRQT"
compartment = "patient"

[[roles.patient.grants]]
types = ["Patient"]
interactions = ["read", "search"]

[[roles.patient.grants]]
types = ["Observation"]
interactions = ["read", "vread", "search", "history", "create", "update", "delete"]
`;

  before(async () => {
    root = await makeTempRoot('phigate-cond-');
    const policyFile = path.join(root, 'policy.toml');
    await fsp.writeFile(policyFile, POLICY, { mode: 0o600 });
    server = await startServer({ root, config: `[policy]\nfile = "${policyFile}"\n\n[fhir]\nupdate_create = true\n` });
    t = tools(server);
    mint = await TokenMint.create(server);
    client = await addClient(server.dataDir, { name: 'custom', roles: 'clinician' });
    clinician = mint.system({ clientId: client.client_id, roles: ['clinician'] });
    registrar = mint.system({ clientId: client.client_id, roles: ['billing'] });
  });

  after(async () => {
    if (server) await server.dispose({ removeRoot: true });
  });

  test('a role that may create but not search: conditional create 403, plain create 201', async () => {
    const mrn = uniq('reg');
    assertFails(await t.api.post('/fhir/Patient', registrar, patient(mrn), { 'if-none-exist': `identifier=${MRN}|${mrn}` }),
      403, 'forbidden', 'a conditional interaction needs the search permission on Patient');
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), [], 'nothing created');
    assertWritten(await t.api.post('/fhir/Patient', registrar, patient(mrn)), 201, 1);
  });

  test('conditional create by an element the role may not see: 403; by one it sees: 201', async () => {
    const mrn = uniq('hidden');
    assertFails(await t.api.post('/fhir/Patient', clinician, patient(mrn), { 'if-none-exist': 'general-practitioner=Practitioner/x' }),
      403, 'forbidden',
      'searching by general-practitioner is not permitted: it reads Patient.generalPractitioner, which this role may not see');
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), [], 'nothing created');
    assertWritten(await t.api.post('/fhir/Patient', clinician, patient(mrn), { 'if-none-exist': `identifier=${MRN}|${mrn}&birthdate=1970-01-01` }), 201, 1);
  });

  test('conditional update, no match, a new id in the body, update_create on: 201 with that id', async () => {
    const mrn = uniq('uc');
    const id = uniq('uc-id');
    const res = await t.api.put(`/fhir/Patient?identifier=${MRN}|${mrn}`, clinician, { ...patient(mrn), id });
    const created = assertWritten(res, 201, 1);
    assert.equal(created.id, id);
    assert.equal(res.headers.location, `${server.baseUrl}/Patient/${id}/_history/1`);
    assert.deepEqual(await t.searchIds(clinician, 'Patient', `identifier=${MRN}|${mrn}`), [id]);
  });

  test('patient role (fhirUser Patient/A): conditions never see patient B\'s resources; A\'s writes land in A\'s compartment', async () => {
    const A = (await t.api.post('/fhir/Patient', clinician, patient(uniq('pA'), 'Alpha'))).json().id;
    const B = (await t.api.post('/fhir/Patient', clinician, patient(uniq('pB'), 'Bravo'))).json().id;
    const value = uniq('p-obs');
    const obsBRes = await t.api.post('/fhir/Observation', clinician, observation(B, value, 'BravoSecretObs'));
    assert.equal(obsBRes.status, 201, obsBRes.body);
    const obsB = obsBRes.json().id;
    const obsBBody = (await t.api.get(`/fhir/Observation/${obsB}`, clinician)).body;
    const user = await addUser(server.dataDir, { username: uniq('alpha'), roles: 'patient', fhirUser: `Patient/${A}` });
    const alpha = mint.person({ userId: user.user_id, clientId: client.client_id, roles: ['patient'], fhirUser: `Patient/${A}` });
    const condition = `identifier=${OBS}|${value}`;

    // Control: A cannot find B's Observation by search either.
    assert.deepEqual(await t.searchIds(alpha, 'Observation', condition), []);

    // Conditional delete matching only B's: nothing of A's matches: 204, B's untouched.
    const del = await t.api.del(`/fhir/Observation?${condition}`, alpha);
    assert.equal(del.status, 204, del.body);

    // Conditional create: 0 matches for A, so created (201) in A's compartment.
    const res = await t.api.post('/fhir/Observation', alpha, observation(A, value, 'AlphaObs'), { 'if-none-exist': condition });
    const created = assertWritten(res, 201, 1);
    assert.notEqual(created.id, obsB);
    assert.equal(created.subject.reference, `Patient/${A}`);
    assert.ok(!res.body.includes('BravoSecretObs') && !res.body.includes(B), 'nothing of B in the answer');

    // Again: now A's own is the one match (200), B's still not counted.
    const again = await t.api.post('/fhir/Observation', alpha, observation(A, value, 'AlphaObs2'), { 'if-none-exist': condition });
    assert.equal(assertWritten(again, 200, 1).id, created.id);

    // Conditional update by the same condition: A's is the one match (B's would make 412).
    const upd = await t.api.put(`/fhir/Observation?${condition}`, alpha, observation(A, value, 'AlphaObs3'));
    assert.equal(assertWritten(upd, 200, 2).id, created.id);

    // A clinician sees both; B's is exactly as it was.
    assert.deepEqual(await t.searchIds(clinician, 'Observation', condition), [created.id, obsB].sort());
    const r = await t.api.get(`/fhir/Observation/${obsB}`, clinician);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.body, obsBBody, 'B\'s Observation is untouched');
    assert.equal(await t.historyLength(clinician, 'Observation', obsB), 1);
  });
});
