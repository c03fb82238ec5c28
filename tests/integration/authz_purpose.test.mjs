// Purpose of use (issue 4 §4, §8): every PHI request acts under an HL7 v3 PurposeOfUse code
// taken from the token's purpose_of_use claim, else the X-Purpose-Of-Use header, else the
// role's default; a purpose the role does not allow is 403 naming the purpose (never an
// unknown value the client sent). The effective purpose is recorded with the decision
// (the access log's "purpose" field, until the audit trail of issue 5).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, addClient, addUser } from './harness.mjs';
import { TokenMint, fhirApi, resourceBody, clean, assertDenied, issueText } from './authz_helpers.mjs';

let server;
let api;
let mint;
let client;
let patientId;
let coverageId;
let doctor;  // a clinician user

const MARKERS = ['PurposePatient', 'PurposeCoverage'];

before(async () => {
  server = await startServer();
  api = fhirApi(server);
  mint = await TokenMint.create(server);
  client = await addClient(server.dataDir, { name: 'purpose', roles: 'clinician' });
  const seeder = mint.system({ clientId: client.client_id, roles: ['clinician'] });
  patientId = (await api.post('/fhir/Patient', seeder, resourceBody('Patient', { marker: 'PurposePatient' }))).json().id;
  coverageId = (await api.post('/fhir/Coverage', seeder, clean(resourceBody('Coverage', { patientId, marker: 'PurposeCoverage' })))).json().id;
  assert.ok(patientId && coverageId);
  doctor = await addUser(server.dataDir, { username: 'purpose-doctor', roles: 'clinician' });
});

after(async () => {
  if (server) await server.dispose();
});

function clinicianToken(purpose) {
  return mint.person({ userId: doctor.user_id, clientId: client.client_id, roles: ['clinician'], purpose });
}

// The purpose recorded in the access log line of the response with `requestId`.
async function loggedPurpose(requestId) {
  for (let i = 0; i < 40; i += 1) {
    const line = server.stderr().split('\n').find((l) => l.includes(`"request_id":"${requestId}"`));
    if (line) return JSON.parse(line).purpose;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no access log line for ${requestId}`);
}

const readPatient = (token, headers = {}) => api.get(`/fhir/Patient/${patientId}`, token, headers);

test('clinician without a purpose: allowed under the role default TREAT', async () => {
  const res = await readPatient(clinicianToken());
  assert.equal(res.status, 200, res.body);
  assert.equal(res.json().id, patientId);
  assert.equal(await loggedPurpose(res.headers['x-request-id']), 'TREAT');
});

test('clinician with X-Purpose-Of-Use: TREAT or HOPERAT allowed', async () => {
  for (const purpose of ['TREAT', 'HOPERAT']) {
    const res = await readPatient(clinicianToken(), { 'x-purpose-of-use': purpose });
    assert.equal(res.status, 200, `${purpose}: ${res.body}`);
    assert.equal(await loggedPurpose(res.headers['x-request-id']), purpose);
  }
});

test('clinician with HPAYMT: 403 naming the purpose, for reads and writes', async () => {
  const res = await readPatient(clinicianToken(), { 'x-purpose-of-use': 'HPAYMT' });
  assertDenied(res, 403, 'forbidden', MARKERS);
  assert.equal(issueText(res), 'purpose of use HPAYMT is not allowed for read on Patient');
  const write = await api.post('/fhir/Observation', clinicianToken(),
    clean(resourceBody('Observation', { patientId, marker: 'x' })), { 'x-purpose-of-use': 'HPAYMT' });
  assertDenied(write, 403, 'forbidden', MARKERS);
  assert.equal(issueText(write), 'purpose of use HPAYMT is not allowed for create on Observation');
  // A child code is not its parent: TREAT's child COC is not listed for the clinician.
  const child = await readPatient(clinicianToken(), { 'x-purpose-of-use': 'COC' });
  assertDenied(child, 403, 'forbidden', MARKERS);
  assert.equal(issueText(child), 'purpose of use COC is not allowed for read on Patient');
});

test('an unknown purpose code: 403, the value is not echoed', async () => {
  for (const value of ['NOTACODE', 'treat', 'TREAT,HPAYMT', 'Patient/123']) {
    const res = await readPatient(clinicianToken(), { 'x-purpose-of-use': value });
    assertDenied(res, 403, 'forbidden', [...MARKERS, value], `X-Purpose-Of-Use: ${value}`);
    assert.equal(issueText(res), 'purpose of use is not a PurposeOfUse code', value);
  }
  // The same from the token's claim.
  const claim = await readPatient(clinicianToken('NOTACODE'));
  assertDenied(claim, 403, 'forbidden', [...MARKERS, 'NOTACODE']);
  assert.equal(issueText(claim), 'purpose of use is not a PurposeOfUse code');
});

test('the token\'s purpose_of_use claim wins over the header', async () => {
  const allowed = await readPatient(clinicianToken('TREAT'), { 'x-purpose-of-use': 'HPAYMT' });
  assert.equal(allowed.status, 200, allowed.body);
  assert.equal(await loggedPurpose(allowed.headers['x-request-id']), 'TREAT');
  const hoperat = await readPatient(clinicianToken('HOPERAT'), { 'x-purpose-of-use': 'NOTACODE' });
  assert.equal(hoperat.status, 200, hoperat.body);
  assert.equal(await loggedPurpose(hoperat.headers['x-request-id']), 'HOPERAT');
  const denied = await readPatient(clinicianToken('HPAYMT'), { 'x-purpose-of-use': 'TREAT' });
  assertDenied(denied, 403, 'forbidden', MARKERS);
  assert.equal(issueText(denied), 'purpose of use HPAYMT is not allowed for read on Patient');
});

test('billing: HPAYMT by default and explicitly; TREAT is 403', async () => {
  const billing = mint.system({ clientId: client.client_id, roles: ['billing'] });
  const byDefault = await api.get(`/fhir/Coverage/${coverageId}`, billing);
  assert.equal(byDefault.status, 200, byDefault.body);
  assert.equal(await loggedPurpose(byDefault.headers['x-request-id']), 'HPAYMT');
  assert.equal((await api.get(`/fhir/Coverage/${coverageId}`, billing, { 'x-purpose-of-use': 'HPAYMT' })).status, 200);
  for (const [target, type] of [[`/fhir/Coverage/${coverageId}`, 'Coverage'], [`/fhir/Patient/${patientId}`, 'Patient']]) {
    const res = await api.get(target, billing, { 'x-purpose-of-use': 'TREAT' });
    assertDenied(res, 403, 'forbidden', MARKERS, `billing TREAT ${type}`);
    assert.equal(issueText(res), `purpose of use TREAT is not allowed for read on ${type}`);
  }
  const claimed = mint.system({ clientId: client.client_id, roles: ['billing'], purpose: 'TREAT' });
  assertDenied(await api.get(`/fhir/Coverage/${coverageId}`, claimed), 403, 'forbidden', MARKERS);
  // Emergency access is not billing's: break-glass is denied by the policy.
  const etreat = await api.get(`/fhir/Patient/${patientId}`, billing,
    { 'x-purpose-of-use': 'ETREAT', 'x-break-glass-reason': 'a reason that is long enough' });
  assertDenied(etreat, 403, 'forbidden', MARKERS);
  assert.equal(issueText(etreat), 'break-glass (purpose of use ETREAT) is not allowed for read on Patient');
});

test('patient and auditor roles: their own defaults; a foreign purpose is 403', async () => {
  const user = await addUser(server.dataDir, { username: 'purpose-patient', roles: 'patient',
    fhirUser: `Patient/${patientId}` });
  const patient = (purpose) => mint.person({ userId: user.user_id, clientId: client.client_id,
    roles: ['patient'], fhirUser: `Patient/${patientId}`, purpose });
  const own = await readPatient(patient());
  assert.equal(own.status, 200, own.body);
  assert.equal(await loggedPurpose(own.headers['x-request-id']), 'PATRQT');
  assertDenied(await readPatient(patient('TREAT')), 403, 'forbidden', MARKERS);

  const auditor = mint.system({ clientId: client.client_id, roles: ['auditor'] });
  const a = await api.get('/fhir/AuditEvent/none', auditor);
  assertDenied(a, 404, 'not-found');  // allowed (HCOMPL), and there is no such record
  assert.equal(await loggedPurpose(a.headers['x-request-id']), 'HCOMPL');
  const t = await api.get('/fhir/AuditEvent/none', auditor, { 'x-purpose-of-use': 'TREAT' });
  assertDenied(t, 403, 'forbidden');
  assert.equal(issueText(t), 'purpose of use TREAT is not allowed for read on AuditEvent');
});

test('a principal with two roles: the purpose selects the role that counts', async () => {
  // clinician + billing: TREAT reads an Observation (clinician); HPAYMT does not (billing
  // has no Observation grant), and HPAYMT on the Patient shows the billing view.
  const both = mint.system({ clientId: client.client_id, roles: ['clinician', 'billing'] });
  const obs = await api.post('/fhir/Observation', both, clean(resourceBody('Observation', { patientId, marker: 'TwoRoles' })));
  assert.equal(obs.status, 201, obs.body);
  const id = obs.json().id;
  assert.equal((await api.get(`/fhir/Observation/${id}`, both)).status, 200);
  const paid = await api.get(`/fhir/Observation/${id}`, both, { 'x-purpose-of-use': 'HPAYMT' });
  assertDenied(paid, 403, 'forbidden', ['TwoRoles']);
  assert.equal(issueText(paid), 'purpose of use HPAYMT is not allowed for read on Observation');
  const married = await api.post('/fhir/Patient', both, { ...resourceBody('Patient', { marker: 'TwoRolesPatient' }),
    maritalStatus: { text: 'TwoRolesMarital' } });
  assert.equal(married.status, 201, married.body);
  const target = `/fhir/Patient/${married.json().id}`;
  const view = await api.get(target, both, { 'x-purpose-of-use': 'HPAYMT' });
  assert.equal(view.status, 200, view.body);
  assert.equal(view.json().maritalStatus, undefined, 'the billing view under HPAYMT');
  assert.ok(view.json().meta.tag?.some((t) => t.code === 'SUBSETTED'), 'the billing view under HPAYMT');
  const treat = await api.get(target, both);
  assert.equal(treat.json().maritalStatus.text, 'TwoRolesMarital', 'the clinician view under TREAT');
});
