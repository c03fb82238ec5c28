// Every kind of event produces exactly one audit record with the right fields (issue 5 §1,
// §6 first bullet), table-driven: each case makes its request with its own X-Request-Id and
// compares the one record carrying that id, element by element (src/audit/event.cc writes
// the IHE BALP mapping), with the record the case expects: type, subtype, action, outcome,
// who (user / client, roles, network address, BAA counterparty), what (the resource, the
// patients touched, the resources returned, the query), why (purpose, break-glass reason),
// the status code and OperationOutcome code. Values that may be PHI (a break-glass reason,
// a search parameter value) are visible to the auditor through the API but are stored in
// no file of the data dir in the clear. The server is restarted on the same data dir at the
// end, and its start and stop records are checked.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { startServer, addClient, addUser, runCli, bearer, formEncode } from './harness.mjs';
import { TokenMint, fhirApi, resourceBody, issueText, clean } from './authz_helpers.mjs';
import {
  AuditView, auditorToken, requestId, summarize, expectedRecord, clientAgent, userAgent,
  counterpartyAgent, searchAll, findInFiles, RESTFUL_INTERACTION, PHIGATE_SUBTYPE, AUTH_TYPE,
  APP_TYPE, ext,
} from './audit_helpers.mjs';

const UA = 'audit-events-test/1.0';
const REASON = 'Unresponsive on arrival, medication history needed now';
const RESTRICTED = [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }];
const COUNTERPARTY = 'Acme Health Analytics Inc';
const CANARY = 'Qzvbnm-AUDIT-CANARY-7731';
const DAY_MS = 86_400_000;
const day = (offsetDays) => new Date(Date.now() + offsetDays * DAY_MS).toISOString().slice(0, 10);
const rest = (code) => [`${RESTFUL_INTERACTION}|${code}`];

let server;
let api;
let mint;
let client;      // the first-party clinician client
let clinician;   // its system token (clinician)
let auditor;
let view;
let patientId;   // Patient P (versions 1, 2 after the update case)
let obsId;       // Observation of P
let version;     // `phigate --version`

// Sends one request with its own X-Request-Id (and a User-Agent); resolves
// {res, rid, t0, t1}.
async function send(label, method, target, token, { body, headers = {} } = {}) {
  const rid = requestId(label);
  const h = { 'x-request-id': rid, 'user-agent': UA, ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined && !h['content-type']) h['content-type'] = 'application/fhir+json';
  const t0 = Date.now();
  const res = await server.request(method, target, { headers: h, body });
  const t1 = Date.now();
  assert.equal(res.headers['x-request-id'], rid, 'the request id is echoed');
  return { res, rid, t0, t1 };
}

// The one record of `sent`, checked against `fields` (the rest default) and its time.
async function assertRecord(sent, fields) {
  const ev = await view.recordOf(sent.rid);
  const recorded = Date.parse(ev.recorded);
  assert.match(ev.recorded, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, 'recorded: UTC with milliseconds');
  assert.ok(recorded >= sent.t0 && recorded <= sent.t1,
    `recorded ${ev.recorded} within the request (${new Date(sent.t0).toISOString()}..${new Date(sent.t1).toISOString()})`);
  assert.match(ev.id, /^[1-9][0-9]*$/, 'the record id is its sequence number');
  assert.deepEqual(summarize(ev), expectedRecord({
    requestId: sent.rid,
    userAgent: UA,
    status: sent.res.status,
    ...fields,
  }));
  return ev;
}

const clin = (extra = {}) => clientAgent(client.client_id, { roles: ['clinician'], purposes: ['TREAT'], ...extra });

before(async () => {
  server = await startServer();
  api = fhirApi(server);
  mint = await TokenMint.create(server);
  client = await addClient(server.dataDir, { name: 'ward', roles: 'clinician' });
  clinician = mint.system({ clientId: client.client_id, roles: ['clinician'] });
  auditor = auditorToken(mint, client.client_id);
  view = new AuditView(server, auditor);
  const v = await runCli(['--version']);
  version = v.stdout.trim();
  assert.match(version, /^phigate \S+$/);
});

after(async () => {
  if (server) await server.dispose();
});

test('create (Patient): one record, action C, the new Patient listed as touched', async () => {
  const sent = await send('create-patient', 'POST', '/fhir/Patient', clinician,
    { body: resourceBody('Patient', { marker: 'AuditPatientP' }) });
  assert.equal(sent.res.status, 201, sent.res.body);
  patientId = sent.res.json().id;
  await assertRecord(sent, {
    subtype: rest('create'), action: 'C', outcomeDesc: 'HTTP 201', purposeOfEvent: ['TREAT'],
    agents: [clin()], patients: [`Patient/${patientId}`], target: `Patient/${patientId}/_history/1`,
    method: 'POST', route: '/fhir/{type}',
  });
});

test('create (Observation): the subject is the patient touched', async () => {
  const sent = await send('create-obs', 'POST', '/fhir/Observation', clinician,
    { body: clean(resourceBody('Observation', { patientId, marker: 'AuditObs' })) });
  assert.equal(sent.res.status, 201, sent.res.body);
  obsId = sent.res.json().id;
  await assertRecord(sent, {
    subtype: rest('create'), action: 'C', outcomeDesc: 'HTTP 201', purposeOfEvent: ['TREAT'],
    agents: [clin()], patients: [`Patient/${patientId}`], target: `Observation/${obsId}/_history/1`,
    method: 'POST', route: '/fhir/{type}',
  });
});

test('read: action R, the version read, the patient, client, roles, address, purpose', async () => {
  const sent = await send('read', 'GET', `/fhir/Patient/${patientId}`, clinician);
  assert.equal(sent.res.status, 200, sent.res.body);
  await assertRecord(sent, {
    subtype: rest('read'), outcomeDesc: 'HTTP 200', purposeOfEvent: ['TREAT'],
    agents: [clin()], patients: [`Patient/${patientId}`], target: `Patient/${patientId}/_history/1`,
    method: 'GET', route: '/fhir/{type}/{id}',
  });
});

test('update: action U, the new version, the patient', async () => {
  const body = { ...resourceBody('Patient', { marker: 'AuditPatientP2' }), id: patientId };
  const sent = await send('update', 'PUT', `/fhir/Patient/${patientId}`, clinician, { body });
  assert.equal(sent.res.status, 200, sent.res.body);
  assert.equal(sent.res.headers.etag, 'W/"2"');
  await assertRecord(sent, {
    subtype: rest('update'), action: 'U', outcomeDesc: 'HTTP 200', purposeOfEvent: ['TREAT'],
    agents: [clin()], patients: [`Patient/${patientId}`], target: `Patient/${patientId}/_history/2`,
    method: 'PUT', route: '/fhir/{type}/{id}',
  });
});

test('vread: the version named', async () => {
  const sent = await send('vread', 'GET', `/fhir/Patient/${patientId}/_history/1`, clinician);
  assert.equal(sent.res.status, 200, sent.res.body);
  await assertRecord(sent, {
    subtype: rest('vread'), outcomeDesc: 'HTTP 200', purposeOfEvent: ['TREAT'],
    agents: [clin()], patients: [`Patient/${patientId}`], target: `Patient/${patientId}/_history/1`,
    method: 'GET', route: '/fhir/{type}/{id}/_history/{vid}',
  });
});

test('history (instance): every returned resource listed', async () => {
  const sent = await send('history', 'GET', `/fhir/Patient/${patientId}/_history`, clinician);
  assert.equal(sent.res.status, 200, sent.res.body);
  const entries = sent.res.json().entry;
  assert.equal(entries.length, 2);
  await assertRecord(sent, {
    subtype: rest('history-instance'), outcomeDesc: 'HTTP 200', purposeOfEvent: ['TREAT'],
    agents: [clin()], patients: [`Patient/${patientId}`], target: `Patient/${patientId}`,
    returned: [`Patient/${patientId}`, `Patient/${patientId}`],
    method: 'GET', route: '/fhir/{type}/{id}/_history',
  });
});

test('history (type): every returned resource listed, with their patients', async () => {
  const sent = await send('history-type', 'GET', '/fhir/Observation/_history', clinician);
  assert.equal(sent.res.status, 200, sent.res.body);
  assert.deepEqual(sent.res.json().entry.map((e) => `${e.resource.resourceType}/${e.resource.id}`), [`Observation/${obsId}`]);
  await assertRecord(sent, {
    subtype: rest('history-type'), outcomeDesc: 'HTTP 200', purposeOfEvent: ['TREAT'],
    agents: [clin()], patients: [`Patient/${patientId}`], target: 'type:Observation',
    returned: [`Observation/${obsId}`], method: 'GET', route: '/fhir/{type}/_history',
  });
});

test('search: the query entity, every returned resource and their patients', async () => {
  const sent = await send('search', 'GET', `/fhir/Observation?subject=Patient/${patientId}&code=29463-7`, clinician);
  assert.equal(sent.res.status, 200, sent.res.body);
  assert.equal(sent.res.json().type, 'searchset');
  assert.deepEqual(sent.res.json().entry.map((e) => `${e.resource.resourceType}/${e.resource.id}`), [`Observation/${obsId}`]);
  await assertRecord(sent, {
    subtype: rest('search-type'), outcomeDesc: 'HTTP 200', purposeOfEvent: ['TREAT'],
    agents: [clin()], patients: [`Patient/${patientId}`], target: 'type:Observation',
    returned: [`Observation/${obsId}`],
    query: [['subject', `Patient/${patientId}`], ['code', '29463-7']],
    queryString: `subject=Patient%2F${patientId}&code=29463-7`,
    method: 'GET', route: '/fhir/{type}',
  });
});

test('a compartment-restricted search: only the caller\'s patient is recorded, not those of the matches left out', async () => {
  // Patient Q with an Observation of the same code: a match of the query, but outside the
  // compartment of P's own token, so left out of the answer as if it did not match.
  const q = await api.post('/fhir/Patient', clinician, resourceBody('Patient', { marker: 'AuditPatientQ' }));
  assert.equal(q.status, 201, q.body);
  const qId = q.json().id;
  const qObs = await api.post('/fhir/Observation', clinician, clean(resourceBody('Observation', { patientId: qId, marker: 'AuditObsQ' })));
  assert.equal(qObs.status, 201, qObs.body);
  const user = await addUser(server.dataDir, { username: 'audit-patient-p', roles: 'patient', fhirUser: `Patient/${patientId}` });
  const token = mint.person({ userId: user.user_id, clientId: client.client_id, roles: ['patient'], fhirUser: `Patient/${patientId}` });
  const sent = await send('search-compartment', 'GET', '/fhir/Observation?code=29463-7', token);
  assert.equal(sent.res.status, 200, sent.res.body);
  assert.deepEqual(sent.res.json().entry.map((e) => `${e.resource.resourceType}/${e.resource.id}`), [`Observation/${obsId}`]);
  const ev = await view.recordOf(sent.rid);
  const got = summarize(ev);
  // Nothing of Q was disclosed: Q is not a patient of this record (its accounting of
  // disclosures, HIPAA §164.528, would otherwise list P's search).
  assert.deepEqual(got.returned, [`Observation/${obsId}`]);
  assert.deepEqual(got.query, [['code', '29463-7']]);
  assert.equal(got.outcome, '0');
  // Nor does Q's accounting of disclosures list it.
  const acct = await server.request('GET', `/fhir/Patient/${qId}/$disclosures?start=${day(-1)}&end=${day(1)}`,
    { headers: bearer(auditor) });
  assert.equal(acct.status, 200, acct.body);
  const disclosed = acct.json().entry.slice(1).map((e) => ext(e.resource, 'request-id'));
  // Removed before the last assertions, so that a failure there leaves the later cases
  // (which count the Observations of P only) unaffected.
  assert.equal((await api.del(`/fhir/Observation/${qObs.json().id}`, clinician)).status, 204);
  assert.ok(!disclosed.includes(sent.rid), `Q's accounting lists P's search: ${disclosed}`);
  assert.deepEqual(got.patients, [`Patient/${patientId}`], `patients of the record: ${got.patients}`);
});

test('search with _include (POST _search): matches and included resources returned, the form body as the query', async () => {
  const form = `_id=${obsId}&_include=Observation:subject`;
  const sent = await send('search-post', 'POST', '/fhir/Observation/_search', clinician,
    { body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  assert.equal(sent.res.status, 200, sent.res.body);
  assert.deepEqual(sent.res.json().entry.map((e) => [e.search.mode, `${e.resource.resourceType}/${e.resource.id}`]),
    [['match', `Observation/${obsId}`], ['include', `Patient/${patientId}`]]);
  await assertRecord(sent, {
    subtype: rest('search-type'), outcomeDesc: 'HTTP 200', purposeOfEvent: ['TREAT'],
    agents: [clin()], patients: [`Patient/${patientId}`], target: 'type:Observation',
    returned: [`Observation/${obsId}`, `Patient/${patientId}`],
    query: [['_id', obsId], ['_include', 'Observation:subject']],
    queryString: `_id=${obsId}&_include=Observation%3Asubject`,
    method: 'POST', route: '/fhir/{type}/_search',
  });
});

test('$everything: an operation record listing the patient and everything returned', async () => {
  const sent = await send('everything', 'GET', `/fhir/Patient/${patientId}/$everything`, clinician);
  assert.equal(sent.res.status, 200, sent.res.body);
  const returned = sent.res.json().entry.map((e) => `${e.resource.resourceType}/${e.resource.id}`);
  assert.deepEqual(returned, [`Patient/${patientId}`, `Observation/${obsId}`]);
  await assertRecord(sent, {
    subtype: rest('operation'), outcomeDesc: 'HTTP 200', purposeOfEvent: ['TREAT'],
    agents: [clin()], patients: [`Patient/${patientId}`], target: `Patient/${patientId}`,
    returned, method: 'GET', route: '/fhir/Patient/{id}/$everything',
  });
});

test('a 403 authorization denial: the denial text recorded', async () => {
  const billing = mint.system({ clientId: client.client_id, roles: ['billing'] });
  const sent = await send('denied', 'GET', `/fhir/Observation/${obsId}`, billing);
  assert.equal(sent.res.status, 403, sent.res.body);
  assert.equal(issueText(sent.res), 'no role grants read on Observation');
  await assertRecord(sent, {
    subtype: rest('read'), outcome: '4',
    outcomeDesc: 'HTTP 403; forbidden; no role grants read on Observation',
    agents: [clientAgent(client.client_id, { roles: ['billing'] })], target: `Observation/${obsId}`,
    method: 'GET', route: '/fhir/{type}/{id}',
  });
});

test('a 404: outcome 4, not-found', async () => {
  const sent = await send('not-found', 'GET', '/fhir/Patient/no-such-patient', clinician);
  assert.equal(sent.res.status, 404, sent.res.body);
  await assertRecord(sent, {
    subtype: rest('read'), outcome: '4', outcomeDesc: 'HTTP 404; not-found', purposeOfEvent: ['TREAT'],
    agents: [clin()], target: 'Patient/no-such-patient', method: 'GET', route: '/fhir/{type}/{id}',
  });
});

test('delete: action D, the deletion version, the patient', async () => {
  const sent = await send('delete', 'DELETE', `/fhir/Observation/${obsId}`, clinician);
  assert.equal(sent.res.status, 204, sent.res.body);
  await assertRecord(sent, {
    subtype: rest('delete'), action: 'D', outcomeDesc: 'HTTP 204', purposeOfEvent: ['TREAT'],
    agents: [clin()], patients: [`Patient/${patientId}`], target: `Observation/${obsId}/_history/2`,
    method: 'DELETE', route: '/fhir/{type}/{id}',
  });
});

test('break-glass: user, purpose ETREAT, grant and reason in the record; the reason in no file in the clear', async () => {
  const created = await api.post('/fhir/Patient', clinician,
    { ...resourceBody('Patient', { marker: 'AuditRestricted' }), meta: { security: RESTRICTED } });
  assert.equal(created.status, 201, created.body);
  const restrictedId = /\/Patient\/([^/]+)\/_history\/1$/.exec(created.headers.location)[1];
  const doctor = await addUser(server.dataDir, { username: 'audit-er-doctor', roles: 'clinician' });
  const token = mint.person({ userId: doctor.user_id, clientId: client.client_id, roles: ['clinician'] });
  const sent = await send('break-glass', 'GET', `/fhir/Patient/${restrictedId}`, token,
    { headers: { 'x-purpose-of-use': 'ETREAT', 'x-break-glass-reason': REASON } });
  assert.equal(sent.res.status, 200, sent.res.body);
  const grants = (await server.request('GET', '/admin/break-glass', { headers: bearer(auditor) })).json().grants;
  assert.equal(grants.length, 1);
  await assertRecord(sent, {
    subtype: rest('read'), outcomeDesc: 'HTTP 200', purposeOfEvent: ['ETREAT'],
    agents: [
      userAgent(doctor.user_id, { roles: ['clinician'], purposes: ['ETREAT'] }),
      clientAgent(client.client_id, { requestor: false }),
    ],
    patients: [`Patient/${restrictedId}`], target: `Patient/${restrictedId}/_history/1`,
    method: 'GET', route: '/fhir/{type}/{id}',
    breakGlass: [{ grant: grants[0].grant_id, reason: REASON }],
  });
  // Searchable by the auditor by user and purpose, but stored only encrypted.
  const byUser = await searchAll(server, auditor, `agent=${doctor.user_id}&purpose=ETREAT`);
  assert.deepEqual(byUser.events.map((e) => ext(e, 'request-id')), [sent.rid]);
  const auditDir = path.join(server.dataDir, 'audit');
  const segments = (await fsp.readdir(auditDir)).filter((f) => /^segment-.*\.log$/.test(f));
  assert.ok(segments.length >= 1, `segment files in ${auditDir}: ${segments}`);
  assert.deepEqual(await findInFiles(server.dataDir, [REASON, 'medication history']), [],
    'the break-glass reason is stored nowhere in the clear');
  assert.ok(!server.stderr().includes(REASON), 'nor logged');
});

test('token issuance (client credentials): type 110114, subtype token, token_issued', async () => {
  const basic = Buffer.from(`${formEncode(client.client_id)}:${formEncode(client.client_secret)}`).toString('base64');
  const sent = await send('token', 'POST', '/oauth2/token', undefined, {
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  assert.equal(sent.res.status, 200, sent.res.body);
  await assertRecord(sent, {
    type: `${AUTH_TYPE.system}|${AUTH_TYPE.code}|${AUTH_TYPE.display}`,
    subtype: [`${PHIGATE_SUBTYPE}|token`], action: 'E', outcomeDesc: 'HTTP 200',
    agents: [clientAgent(client.client_id)], method: 'POST', route: '/oauth2/token',
    security: [{ name: 'token_issued', client: client.client_id, reason: 'client_credentials' }],
  });
});

test('a failed client authentication: 401 invalid_client, client_auth_failure', async () => {
  const basic = Buffer.from(`${formEncode(client.client_id)}:${formEncode('not-the-secret')}`).toString('base64');
  const sent = await send('bad-secret', 'POST', '/oauth2/token', undefined, {
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  assert.equal(sent.res.status, 401, sent.res.body);
  const ev = await view.recordOf(sent.rid);
  const security = summarize(ev).security;
  assert.equal(security.length, 1, JSON.stringify(security));
  assert.equal(typeof security[0].reason, 'string');
  assert.ok(security[0].reason.length > 0 && !security[0].reason.includes('not-the-secret'));
  await assertRecord(sent, {
    type: `${AUTH_TYPE.system}|${AUTH_TYPE.code}|${AUTH_TYPE.display}`,
    subtype: [`${PHIGATE_SUBTYPE}|token`], action: 'E', outcome: '4',
    outcomeDesc: 'HTTP 401; invalid_client',
    agents: [clientAgent(client.client_id)], method: 'POST', route: '/oauth2/token',
    security: [{ name: 'client_auth_failure', client: client.client_id, reason: security[0].reason }],
  });
});

test('a third-party client with a BAA: its counterparty recorded', async () => {
  const third = await addClient(server.dataDir, { name: 'acme', roles: 'clinician', extraArgs: ['--third-party'] });
  const r = await runCli(['clients', 'baa', third.client_id, '--counterparty', COUNTERPARTY,
    '--signed', day(-1), '--expires', day(365), '--data-dir', server.dataDir]);
  assert.equal(r.code, 0, r.stderr);
  const token = mint.system({ clientId: third.client_id, roles: ['clinician'] });
  const sent = await send('baa-read', 'GET', `/fhir/Patient/${patientId}`, token);
  assert.equal(sent.res.status, 200, sent.res.body);
  await assertRecord(sent, {
    subtype: rest('read'), outcomeDesc: 'HTTP 200', purposeOfEvent: ['TREAT'],
    agents: [clientAgent(third.client_id, { roles: ['clinician'], purposes: ['TREAT'] }), counterpartyAgent(COUNTERPARTY)],
    patients: [`Patient/${patientId}`], target: `Patient/${patientId}/_history/2`,
    method: 'GET', route: '/fhir/{type}/{id}',
  });
});

test('a search of the audit trail by the auditor is itself recorded, with what it returned', async () => {
  const sent = await send('audit-search', 'GET', '/fhir/AuditEvent?subtype=read&_count=5', auditor);
  assert.equal(sent.res.status, 200, sent.res.body);
  const ids = (sent.res.json().entry ?? []).map((e) => `AuditEvent/${e.resource.id}`);
  assert.ok(ids.length >= 3, `the read records so far: ${ids}`);
  await assertRecord(sent, {
    subtype: rest('search-type'), outcomeDesc: 'HTTP 200', purposeOfEvent: ['HCOMPL'],
    agents: [clientAgent(client.client_id, { roles: ['auditor'], purposes: ['HCOMPL'] })],
    target: 'type:AuditEvent', returned: ids,
    query: [['subtype', 'read'], ['_count', '5']], queryString: 'subtype=read&_count=5',
    method: 'GET', route: '/fhir/{type}',
  });
  // And the auditor's read of one record.
  const one = await send('audit-read', 'GET', `/fhir/${ids[0]}`, auditor);
  assert.equal(one.res.status, 200, one.res.body);
  await assertRecord(one, {
    subtype: rest('read'), outcomeDesc: 'HTTP 200', purposeOfEvent: ['HCOMPL'],
    agents: [clientAgent(client.client_id, { roles: ['auditor'], purposes: ['HCOMPL'] })],
    target: ids[0], method: 'GET', route: '/fhir/{type}/{id}',
  });
});

test('a PHI canary in a search value: found by query-value, stored nowhere in the clear', async () => {
  const sent = await send('canary', 'GET', `/fhir/Patient?name=${CANARY}&birthdate=1961-07-04`, clinician);
  assert.equal(sent.res.status, 200, sent.res.body);
  assert.equal(sent.res.json().type, 'searchset');
  assert.equal(sent.res.json().entry, undefined, 'no Patient matches');
  await assertRecord(sent, {
    subtype: rest('search-type'), outcomeDesc: 'HTTP 200',
    purposeOfEvent: ['TREAT'], agents: [clin()], target: 'type:Patient',
    query: [['name', CANARY], ['birthdate', '1961-07-04']],
    queryString: `name=${CANARY}&birthdate=1961-07-04`, method: 'GET', route: '/fhir/{type}',
  });
  const found = await searchAll(server, auditor, `query-value=${CANARY}`);
  assert.deepEqual(found.events.map((e) => ext(e, 'request-id')), [sent.rid]);
  const needles = [CANARY, CANARY.toLowerCase(), 'Qzvbnm', 'AUDIT-CANARY'];
  assert.deepEqual(await findInFiles(server.dataDir, needles), [], 'the canary in a file in the clear');
  assert.ok(!needles.some((n) => server.stderr().includes(n) || server.stdout().includes(n)), 'nor logged');
});

test('probes and public documents are not recorded', async () => {
  const rids = [];
  for (const target of ['/healthz', '/readyz', '/oauth2/jwks', '/.well-known/openid-configuration',
    '/fhir/.well-known/smart-configuration', '/fhir/metadata']) {
    const sent = await send('public', 'GET', target, undefined, { headers: { accept: 'application/fhir+json, application/json' } });
    assert.equal(sent.res.status, 200, `${target}: ${sent.res.body}`);
    rids.push(sent.rid);
  }
  for (const rid of rids) assert.deepEqual(await view.recordsOf(rid), [], `no record of ${rid}`);
});

test('server start and stop: records of type 110100, subtype start / stop, around the requests', async () => {
  const dataDir = server.dataDir;
  const lastOfFirst = (await view.sync()).at(-1);
  const exit = await server.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
  await server.dispose({ removeRoot: false });
  server = await startServer({ dataDir });
  server.ownsRoot = true;  // removed by after()
  const again = await TokenMint.create(server);
  const token = auditorToken(again, client.client_id);
  const system = (await searchAll(server, token, 'type=system')).events
    .filter((e) => ['start', 'stop'].includes(e.subtype?.[0]?.code));
  const app = `${APP_TYPE.system}|${APP_TYPE.code}|${APP_TYPE.display}`;
  const expected = (code) => expectedRecord({
    type: app, subtype: [`${PHIGATE_SUBTYPE}|${code}`], action: 'E', detail: version,
  });
  assert.deepEqual(system.map(summarize), [expected('start'), expected('stop'), expected('start')]);
  const seqs = system.map((e) => Number(e.id));
  const firstRequest = view.events.find((e) => ext(e, 'request-id') !== undefined);
  assert.ok(seqs[0] < Number(firstRequest.id), 'the first start precedes every request');
  assert.ok(seqs[1] > Number(lastOfFirst.id), 'the stop follows every request of the first run');
  const all = (await searchAll(server, token)).events;
  assert.deepEqual(all.filter((e) => Number(e.id) > seqs[1] && Number(e.id) < seqs[2]), [],
    'nothing between the stop and the next start');
});
