// Regressions for the security review of the authorization work (issue 4): each test is
// one finding, reproduced against the real server, with the answer it must now get.
//   - a confidentiality label on the current version covers older versions (vread,
//     instance and type history);
//   - a patient/-scoped writer cannot create a Patient, nor a resource that also names
//     another patient;
//   - roles under an element policy cannot change meta (labels, tags) and do not see it
//     beyond versionId, lastUpdated and security;
//   - update of a deleted resource needs the create permission;
//   - existence outside a compartment is not revealed by PUT or by the history of a
//     deleted resource;
//   - /admin/break-glass is authorized like a search of the audit trail (role + scopes);
//   - billing gets no narrative or notes of financial resources.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, addClient, addUser } from './harness.mjs';
import { TokenMint, fhirApi, resourceBody, clean, assertDenied, issueText } from './authz_helpers.mjs';

const R_LABEL = { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' };

let server;
let api;
let mint;
let client;
let clinician;
let billing;
let ids = {};

before(async () => {
  server = await startServer();
  api = fhirApi(server);
  mint = await TokenMint.create(server);
  client = await addClient(server.dataDir, { name: 'review', roles: 'clinician' });
  clinician = mint.system({ clientId: client.client_id, roles: ['clinician'] });
  billing = mint.system({ clientId: client.client_id, roles: ['billing'] });
  const create = async (type, body) => {
    const res = await api.post(`/fhir/${type}`, clinician, clean(body));
    assert.equal(res.status, 201, `seeding ${type}: ${res.body}`);
    return res.json().id;
  };
  ids.A = await create('Patient', resourceBody('Patient', { marker: 'AlphaName' }));
  ids.B = await create('Patient', resourceBody('Patient', { marker: 'BravoName' }));
});

after(async () => {
  if (server) await server.dispose();
});

test('a label on the current version covers older versions', async () => {
  const id = (await api.post('/fhir/Patient', clinician,
    clean(resourceBody('Patient', { marker: 'DeltaSecret' })))).json().id;
  const v1 = (await api.get(`/fhir/Patient/${id}`, clinician)).json();
  const labelled = { ...v1, meta: { security: [R_LABEL] } };
  assert.equal((await api.put(`/fhir/Patient/${id}`, clinician, labelled)).status, 200);
  for (const [token, who] of [[clinician, 'clinician'], [billing, 'billing']]) {
    assertDenied(await api.get(`/fhir/Patient/${id}`, token), 403, 'forbidden', ['DeltaSecret'], who);
    assertDenied(await api.get(`/fhir/Patient/${id}/_history/1`, token), 403, 'forbidden',
      ['DeltaSecret'], `${who} vread v1`);
    assertDenied(await api.get(`/fhir/Patient/${id}/_history`, token), 403, 'forbidden',
      ['DeltaSecret'], `${who} history`);
    const all = await api.get('/fhir/Patient/_history', token);
    assert.equal(all.status, 200);
    assert.ok(!all.body.includes('DeltaSecret'), `${who} type history shows the labelled record`);
  }
});

test('a patient/-scoped writer cannot create a Patient or write into another record', async () => {
  const doctor = await addUser(server.dataDir, { username: 'writer', roles: 'clinician' });
  const writer = mint.person({ userId: doctor.user_id, clientId: client.client_id,
    roles: ['clinician'], scope: 'patient/*.cruds', patient: ids.A });
  const patient = { ...resourceBody('Patient', { marker: 'Sneaky' }), id: ids.A };
  const p = await api.post('/fhir/Patient', writer, clean(patient));
  assertDenied(p, 403, 'forbidden', [], 'create Patient with id A');
  assert.equal(issueText(p), 'the resource would be outside the patient compartment of this token');
  const obs = resourceBody('Observation', { patientId: ids.B, marker: 'IntoBravo' });
  obs.performer = [{ reference: `Patient/${ids.A}` }];
  assertDenied(await api.post('/fhir/Observation', writer, clean(obs)), 403, 'forbidden', [],
    'subject B, performer A');
  const own = await api.post('/fhir/Observation', writer,
    clean(resourceBody('Observation', { patientId: ids.A, marker: 'OwnObs' })));
  assert.equal(own.status, 201, own.body);
  // PUT to B's record or to an id that does not exist: the same 404.
  const obsB = (await api.post('/fhir/Observation', clinician,
    clean(resourceBody('Observation', { patientId: ids.B, marker: 'BravoObs' })))).json().id;
  const putB = await api.put(`/fhir/Observation/${obsB}`, writer,
    { ...clean(resourceBody('Observation', { patientId: ids.A })), id: obsB });
  const putNone = await api.put('/fhir/Observation/does-not-exist', writer,
    { ...clean(resourceBody('Observation', { patientId: ids.A })), id: 'does-not-exist' });
  assert.equal(putB.status, 404, putB.body);
  assert.equal(putNone.status, 404, putNone.body);
  assert.equal(putB.body, putNone.body);
  // The history of B's deleted Observation answers like a missing id.
  assert.equal((await api.del(`/fhir/Observation/${obsB}`, clinician)).status, 204);
  const reader = mint.person({ userId: doctor.user_id, clientId: client.client_id,
    roles: ['clinician'], scope: 'patient/*.rs', patient: ids.A });
  const hist = await api.get(`/fhir/Observation/${obsB}/_history?_count=1`, reader);
  assert.equal(hist.status, 404, hist.body);
});

test('billing cannot change meta, and sees only versionId, lastUpdated, security of it', async () => {
  const body = { ...clean(resourceBody('Patient', { marker: 'MetaCase' })),
    meta: { tag: [{ system: 'http://example.org/t', code: 'PSY' }], source: 'http://clinic/hiv-unit',
      profile: ['http://example.org/hiv-registry-patient'] },
    address: [{ city: 'Old' }], maritalStatus: { text: 'HiddenStatus' } };
  const id = (await api.post('/fhir/Patient', clinician, body)).json().id;
  const seen = await api.get(`/fhir/Patient/${id}`, billing);
  assert.equal(seen.status, 200);
  const meta = seen.json().meta;
  assert.deepEqual(Object.keys(meta).sort(), ['lastUpdated', 'tag', 'versionId']);
  assert.deepEqual(meta.tag.map((t) => t.code), ['SUBSETTED']);
  assert.ok(!seen.body.includes('hiv') && !seen.body.includes('HiddenStatus'), seen.body);
  // An update adding a label and dropping the tags: the stored meta is kept.
  const update = { ...seen.json(), address: [{ city: 'New' }],
    meta: { security: [R_LABEL] } };
  const up = await api.put(`/fhir/Patient/${id}`, billing, update);
  assert.equal(up.status, 200, up.body);
  const after = (await api.get(`/fhir/Patient/${id}`, clinician)).json();
  assert.equal(after.address[0].city, 'New');
  assert.equal(after.meta.security, undefined, 'billing added a label');
  assert.deepEqual(after.meta.tag.map((t) => t.code), ['PSY']);
  assert.equal(after.meta.source, 'http://clinic/hiv-unit');
  assert.equal(after.maritalStatus.text, 'HiddenStatus');
  // A create with meta by a role whose write mask does not list meta: 403.
  const claim = await api.post('/fhir/Coverage', billing,
    { ...clean(resourceBody('Coverage', { patientId: ids.A })), meta: { security: [R_LABEL] } });
  assertDenied(claim, 403, 'forbidden', [], 'create with meta');
  assert.equal(issueText(claim), 'writing Coverage.meta is not permitted for this role');
});

test('updating a deleted resource is a create and needs the create permission', async () => {
  const id = (await api.post('/fhir/Patient', clinician,
    clean(resourceBody('Patient', { marker: 'Deleted' })))).json().id;
  assert.equal((await api.del(`/fhir/Patient/${id}`, clinician)).status, 204);
  const res = await api.put(`/fhir/Patient/${id}`, billing, { resourceType: 'Patient', id,
    telecom: [{ system: 'phone', value: '555' }] });
  assertDenied(res, 403, 'forbidden', [], 'billing recreates');
  assert.equal(issueText(res), 'no role grants create on Patient');
});

test('/admin/break-glass needs scopes that grant search on AuditEvent', async () => {
  const narrow = mint.system({ clientId: client.client_id, roles: ['auditor'], scope: 'openid' });
  assertDenied(await api.get('/admin/break-glass', narrow), 403, 'forbidden', [], 'auditor, scope openid');
  const auditor = mint.system({ clientId: client.client_id, roles: ['auditor'],
    scope: 'system/AuditEvent.rs' });
  const ok = await api.get('/admin/break-glass', auditor);
  assert.equal(ok.status, 200, ok.body);
  assert.deepEqual(ok.json(), { grants: [] });
});

test('billing gets no narrative or notes of financial resources', async () => {
  const inv = { resourceType: 'Invoice', status: 'issued', subject: { reference: `Patient/${ids.A}` },
    text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">NarrativeSecret</div>' },
    note: [{ text: 'NoteSecret' }] };
  const id = (await api.post('/fhir/Invoice', clinician, inv)).json().id;
  const res = await api.get(`/fhir/Invoice/${id}`, billing);
  assert.equal(res.status, 200, res.body);
  assert.ok(!res.body.includes('NarrativeSecret') && !res.body.includes('NoteSecret'), res.body);
  assert.equal(res.json().status, 'issued');
  assert.ok(res.json().meta.tag.some((t) => t.code === 'SUBSETTED'));
});
