// Broken object level authorization (OWASP API1:2023; issue 4 §2, §8): patient A's token
// must not reach patient B's data by any path. A compartment-restricted caller gets 404
// for what lies outside its compartment, the same answer as for an id that does not exist
// (existence is not revealed), also for B's deleted resources (404, not 410); with
// [policy] outside_compartment = "forbidden" the answer is 403 instead. Two kinds of
// restricted tokens: the patient role (compartment of fhirUser) and a clinician whose
// token carries only patient/ scopes with the launch patient claim.
//
// Search, _include/_revinclude, batch and $everything are not built yet (issue 6): they
// must answer 501 (or 403), never data.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, addClient, addUser } from './harness.mjs';
import { TokenMint, fhirApi, resourceBody, clean, assertDenied, issueText } from './authz_helpers.mjs';

// Seeds patients A and B with an Observation each, a Condition of B that is deleted, and
// B updated once (two versions). Resolves the ids and the markers planted in B's data.
async function seed(server, api, seeder) {
  const create = async (type, body) => {
    const res = await api.post(`/fhir/${type}`, seeder, clean(body));
    assert.equal(res.status, 201, `seeding ${type}: ${res.body}`);
    return res.json().id;
  };
  const ids = {};
  ids.A = await create('Patient', resourceBody('Patient', { marker: 'AlphaPatientName' }));
  ids.B = await create('Patient', resourceBody('Patient', { marker: 'BravoPatientName' }));
  const bv2 = { ...resourceBody('Patient', { marker: 'BravoPatientName' }), id: ids.B, birthDate: '1971-02-03' };
  assert.equal((await api.put(`/fhir/Patient/${ids.B}`, seeder, bv2)).status, 200);
  ids.obsA = await create('Observation', resourceBody('Observation', { patientId: ids.A, marker: 'AlphaObservation' }));
  ids.obsB = await create('Observation', resourceBody('Observation', { patientId: ids.B, marker: 'BravoObservation' }));
  ids.condA = await create('Condition', resourceBody('Condition', { patientId: ids.A, marker: 'AlphaCondition' }));
  ids.condB = await create('Condition', resourceBody('Condition', { patientId: ids.B, marker: 'BravoCondition' }));
  assert.equal((await api.del(`/fhir/Condition/${ids.condB}`, seeder)).status, 204);
  return ids;
}

const B_SECRETS = ['BravoPatientName', 'BravoObservation', 'BravoCondition', '1971-02-03'];

describe('default: outside the compartment is 404', () => {
  let server;
  let api;
  let mint;
  let ids;
  let clinician;       // unrestricted, for checks
  const restricted = {}; // name -> token limited to A's compartment

  before(async () => {
    server = await startServer();
    api = fhirApi(server);
    mint = await TokenMint.create(server);
    const client = await addClient(server.dataDir, { name: 'bola', roles: 'clinician' });
    clinician = mint.system({ clientId: client.client_id, roles: ['clinician'] });
    ids = await seed(server, api, clinician);
    B_SECRETS.push(ids.B, ids.obsB, ids.condB);

    const patientUser = await addUser(server.dataDir, { username: 'alpha', roles: 'patient',
      fhirUser: `Patient/${ids.A}` });
    restricted['patient role (fhirUser Patient/A)'] = mint.person({
      userId: patientUser.user_id, clientId: client.client_id, roles: ['patient'],
      fhirUser: `Patient/${ids.A}`,
    });
    const doctor = await addUser(server.dataDir, { username: 'doctor', roles: 'clinician' });
    restricted['clinician with patient/*.rs and patient=A'] = mint.person({
      userId: doctor.user_id, clientId: client.client_id, roles: ['clinician'],
      scope: 'patient/*.rs', patient: ids.A,
    });
    restricted.writer = mint.person({
      userId: doctor.user_id, clientId: client.client_id, roles: ['clinician'],
      scope: 'patient/*.cruds', patient: ids.A,
    });
  });

  after(async () => {
    if (server) await server.dispose();
  });

  test('control: an unrestricted clinician sees B, and B\'s deleted Condition is 410', async () => {
    assert.equal((await api.get(`/fhir/Patient/${ids.B}`, clinician)).status, 200);
    assert.equal((await api.get(`/fhir/Observation/${ids.obsB}`, clinician)).status, 200);
    assertDenied(await api.get(`/fhir/Condition/${ids.condB}`, clinician), 410, 'deleted');
  });

  for (const name of ['patient role (fhirUser Patient/A)', 'clinician with patient/*.rs and patient=A']) {
    test(`${name}: A's own data is readable`, async () => {
      const t = restricted[name];
      const p = await api.get(`/fhir/Patient/${ids.A}`, t);
      assert.equal(p.status, 200, p.body);
      assert.equal(p.json().name[0].family, 'AlphaPatientName');
      assert.equal((await api.get(`/fhir/Patient/${ids.A}/_history/1`, t)).status, 200);
      assert.equal((await api.get(`/fhir/Patient/${ids.A}/_history`, t)).status, 200);
      assert.equal((await api.get(`/fhir/Observation/${ids.obsA}`, t)).status, 200);
      assert.equal((await api.get(`/fhir/Observation/${ids.obsA}/_history/1`, t)).status, 200);
    });

    test(`${name}: B's data is 404 through read, vread, history; deleted is 404, not 410`, async () => {
      const t = restricted[name];
      const absent = await api.get('/fhir/Patient/no-such-patient', t);
      assertDenied(absent, 404, 'not-found');
      const targets = [
        `/fhir/Patient/${ids.B}`,
        `/fhir/Patient/${ids.B}/_history/1`,
        `/fhir/Patient/${ids.B}/_history/2`,
        `/fhir/Patient/${ids.B}/_history`,
        `/fhir/Observation/${ids.obsB}`,
        `/fhir/Observation/${ids.obsB}/_history/1`,
        `/fhir/Observation/${ids.obsB}/_history`,
        `/fhir/Condition/${ids.condB}`,             // deleted: 404, not 410
        `/fhir/Condition/${ids.condB}/_history/1`,
        `/fhir/Condition/${ids.condB}/_history/2`,  // the deletion itself
        `/fhir/Condition/${ids.condB}/_history`,
      ];
      for (const target of targets) {
        const res = await api.get(target, t);
        assertDenied(res, 404, 'not-found', B_SECRETS, `${name} GET ${target}`);
        // Indistinguishable from an id that does not exist.
        assert.equal(res.body, absent.body, `${name} GET ${target}: the same answer as for a missing id`);
      }
    });

    test(`${name}: type history lists only A's entries`, async () => {
      const t = restricted[name];
      for (const [type, own] of [['Patient', [ids.A]], ['Observation', [ids.obsA]], ['Condition', [ids.condA]]]) {
        const res = await api.get(`/fhir/${type}/_history`, t);
        assert.equal(res.status, 200, `${type}/_history: ${res.body}`);
        const bundle = res.json();
        assert.equal(bundle.type, 'history');
        const seen = (bundle.entry ?? []).map((e) => e.resource?.id ?? e.request?.url);
        assert.deepEqual([...new Set(seen)], own, `${name} ${type}/_history: only A's entries`);
        if (bundle.total !== undefined) assert.equal(bundle.total, bundle.entry.length, 'total counts only what is visible');
        for (const s of B_SECRETS) assert.ok(!res.body.includes(s), `${type}/_history reveals ${s}`);
      }
    });

    test(`${name}: search, _include, _revinclude, batch, $everything answer 501 or 403, never data`, async () => {
      const t = restricted[name];
      const reqs = [
        ['GET', `/fhir/Patient?_id=${ids.B}`],
        ['GET', `/fhir/Observation?subject=Patient/${ids.B}`],
        ['GET', `/fhir/Observation?patient=${ids.B}`],
        ['GET', `/fhir/Observation?_include=Observation:subject`],
        ['GET', `/fhir/Patient?_revinclude=Observation:subject`],
        ['GET', `/fhir/Patient?_id=${ids.A}&_revinclude=Observation:subject`],
        ['GET', `/fhir/Patient/${ids.B}/$everything`],
        ['GET', '/fhir/_history'],
        ['POST', '/fhir', { resourceType: 'Bundle', type: 'batch', entry: [
          { request: { method: 'GET', url: `Patient/${ids.B}` } },
          { request: { method: 'GET', url: `Observation/${ids.obsB}` } }] }],
        ['POST', '/fhir', { resourceType: 'Bundle', type: 'transaction', entry: [
          { request: { method: 'GET', url: `Patient/${ids.B}` } }] }],
      ];
      for (const [method, target, body] of reqs) {
        const res = await server.request(method, target, {
          headers: { authorization: `Bearer ${t}`, 'content-type': 'application/fhir+json' }, body,
        });
        assert.ok([403, 501].includes(res.status), `${name} ${method} ${target}: ${res.status} ${res.body}`);
        assertDenied(res, res.status, res.status === 403 ? 'forbidden' : 'not-supported', B_SECRETS,
          `${name} ${method} ${target}`);
      }
    });
  }

  test('patient role: every write is 403, and an Observation of B cannot be created', async () => {
    const t = restricted['patient role (fhirUser Patient/A)'];
    const obsB = clean(resourceBody('Observation', { patientId: ids.B, marker: 'Injected' }));
    const create = await api.post('/fhir/Observation', t, obsB);
    assertDenied(create, 403, 'forbidden', B_SECRETS);
    assert.equal(issueText(create), 'no role grants create on Observation');
    assertDenied(await api.put(`/fhir/Patient/${ids.B}`, t, { ...resourceBody('Patient', { marker: 'X' }), id: ids.B }), 403, 'forbidden', B_SECRETS);
    assertDenied(await api.del(`/fhir/Observation/${ids.obsB}`, t), 403, 'forbidden', B_SECRETS);
  });

  test('patient/*.cruds clinician: writes are held to the compartment', async () => {
    const t = restricted.writer;
    // Creating in A's compartment works; in B's it is 403 naming the compartment.
    const own = await api.post('/fhir/Observation', t, clean(resourceBody('Observation', { patientId: ids.A, marker: 'AlphaNew' })));
    assert.equal(own.status, 201, own.body);
    const other = await api.post('/fhir/Observation', t, clean(resourceBody('Observation', { patientId: ids.B, marker: 'Injected' })));
    assertDenied(other, 403, 'forbidden', B_SECRETS);
    assert.equal(issueText(other), 'the resource would be outside the patient compartment of this token');
    // Moving A's Observation to B: 403, and it stays A's.
    const move = await api.put(`/fhir/Observation/${own.json().id}`, t,
      { ...clean(resourceBody('Observation', { patientId: ids.B, marker: 'AlphaNew' })), id: own.json().id });
    assertDenied(move, 403, 'forbidden', B_SECRETS);
    // Updating or deleting B's resources: as if absent.
    const upd = await api.put(`/fhir/Observation/${ids.obsB}`, t,
      { ...clean(resourceBody('Observation', { patientId: ids.A, marker: 'Stolen' })), id: ids.obsB });
    assertDenied(upd, 404, 'not-found', B_SECRETS, 'update of B\'s Observation');
    assertDenied(await api.del(`/fhir/Observation/${ids.obsB}`, t), 404, 'not-found', B_SECRETS, 'delete of B\'s Observation');
    assertDenied(await api.del(`/fhir/Patient/${ids.B}`, t), 404, 'not-found', B_SECRETS, 'delete of B');
    // Nothing of B changed.
    const b = (await api.get(`/fhir/Observation/${ids.obsB}`, clinician)).json();
    assert.equal(b.meta.versionId, '1');
    assert.equal(b.subject.reference, `Patient/${ids.B}`);
    assert.equal((await api.get(`/fhir/Patient/${ids.B}`, clinician)).json().meta.versionId, '2');
    const moved = (await api.get(`/fhir/Observation/${own.json().id}`, clinician)).json();
    assert.equal(moved.subject.reference, `Patient/${ids.A}`);
  });
});

describe('[policy] outside_compartment = "forbidden": 403 instead of 404', () => {
  let server;
  let api;
  let ids;
  let token;

  before(async () => {
    server = await startServer({ config: '[policy]\noutside_compartment = "forbidden"\n' });
    api = fhirApi(server);
    const mint = await TokenMint.create(server);
    const client = await addClient(server.dataDir, { name: 'bola', roles: 'clinician' });
    ids = await seed(server, api, mint.system({ clientId: client.client_id, roles: ['clinician'] }));
    const user = await addUser(server.dataDir, { username: 'alpha', roles: 'patient', fhirUser: `Patient/${ids.A}` });
    token = mint.person({ userId: user.user_id, clientId: client.client_id, roles: ['patient'],
      fhirUser: `Patient/${ids.A}` });
  });

  after(async () => {
    if (server) await server.dispose();
  });

  test('B through read, vread, history, deleted: 403 forbidden; a missing id stays 404', async () => {
    assert.equal((await api.get(`/fhir/Patient/${ids.A}`, token)).status, 200);
    const secrets = [...B_SECRETS.slice(0, 4), ids.B, ids.obsB, ids.condB];
    for (const target of [
      `/fhir/Patient/${ids.B}`,
      `/fhir/Patient/${ids.B}/_history/1`,
      `/fhir/Patient/${ids.B}/_history`,
      `/fhir/Observation/${ids.obsB}`,
      `/fhir/Condition/${ids.condB}`,
      `/fhir/Condition/${ids.condB}/_history/1`,
    ]) {
      const res = await api.get(target, token);
      assertDenied(res, 403, 'forbidden', secrets, `GET ${target}`);
      assert.equal(issueText(res), 'the resource is outside the patient compartment of this token', target);
    }
    assertDenied(await api.get('/fhir/Patient/no-such-patient', token), 404, 'not-found');
    const hist = await api.get('/fhir/Observation/_history', token);
    assert.equal(hist.status, 200);
    assert.deepEqual((hist.json().entry ?? []).map((e) => e.resource.id), [ids.obsA]);
  });
});
