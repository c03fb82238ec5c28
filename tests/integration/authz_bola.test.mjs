// Broken object level authorization (OWASP API1:2023; issue 4 §2, §8): patient A's token
// must not reach patient B's data by any path. A compartment-restricted caller gets 404
// for what lies outside its compartment, the same answer as for an id that does not exist
// (existence is not revealed), also for B's deleted resources (404, not 410); with
// [policy] outside_compartment = "forbidden" the answer is 403 instead. Two kinds of
// restricted tokens: the patient role (compartment of fhirUser) and a clinician whose
// token carries only patient/ scopes with the launch patient claim.
//
// Search (issue 6) keeps to the compartment the same way: a match outside it is left out
// of the searchset as if it did not match (search by B's id, B's reference, a chain,
// _include, _revinclude, _total, _sort, paging), and Patient/B/$everything is what a read
// of B is (404, or 403 when forbidden); A's $everything is exactly A's resources. Batch and
// transaction Bundles authorize each entry as a request of its own: never data of B.

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

    // Every searchset page of `target` (following next links): {entries, pages}.
    const searchAll = async (t, method, target, body) => {
      const entries = [];
      const pages = [];
      let res = await server.request(method, target, {
        headers: { authorization: `Bearer ${t}`, 'content-type': 'application/x-www-form-urlencoded' }, body,
      });
      for (;;) {
        assert.equal(res.status, 200, `${name} ${method} ${target}: ${res.body}`);
        for (const s of B_SECRETS) {
          assert.ok(!res.body.includes(s), `${name} ${method} ${target} reveals ${s}: ${res.body}`);
        }
        const b = res.json();
        assert.equal(b.resourceType, 'Bundle');
        assert.equal(b.type, 'searchset');
        pages.push(b);
        entries.push(...(b.entry ?? []).map((e) => [e.search.mode, `${e.resource.resourceType}/${e.resource.id}`]));
        const next = b.link.find((l) => l.relation === 'next');
        if (!next) return { entries, pages };
        assert.ok(pages.length < 20, 'paging terminates');
        res = await api.get(next.url, t);
      }
    };

    test(`${name}: searches never return B's data: B's matches are left out as if they did not match`, async () => {
      const t = restricted[name];
      const A = `Patient/${ids.A}`;
      const obsA = `Observation/${ids.obsA}`;
      const condA = `Condition/${ids.condA}`;
      const m = (ref) => ['match', ref];
      const inc = (ref) => ['include', ref];
      const cases = [
        [`/fhir/Patient?_id=${ids.B}`, []],
        [`/fhir/Patient?_id=${ids.A},${ids.B}`, [m(A)]],
        ['/fhir/Patient', [m(A)]],
        ['/fhir/Patient?name=Bravo', []],
        ['/fhir/Patient?birthdate=1971-02-03', []],
        ['/fhir/Patient?gender=female', [m(A)]],
        ['/fhir/Patient?_count=1', [m(A)]],          // paged: the other pages hold nothing of B
        ['/fhir/Patient?_sort=-birthdate', [m(A)]],
        ['/fhir/Patient?_sort=_id&_count=1', [m(A)]],
        [`/fhir/Observation?subject=Patient/${ids.B}`, []],
        [`/fhir/Observation?patient=${ids.B}`, []],
        [`/fhir/Observation?subject=${server.baseUrl}/Patient/${ids.B}`, []],
        [`/fhir/Observation?_id=${ids.obsB}`, []],
        ['/fhir/Observation', [m(obsA)]],
        ['/fhir/Observation?code=http://loinc.org|29463-7', [m(obsA)]],
        ['/fhir/Observation?subject:Patient.name=BravoPatientName', []],   // a chain into B
        ['/fhir/Observation?subject:Patient.name=AlphaPatientName', [m(obsA)]],
        ['/fhir/Observation?_include=Observation:subject', [m(obsA), inc(A)]],
        [`/fhir/Observation?_id=${ids.obsB}&_include=Observation:subject`, []],
        ['/fhir/Patient?_revinclude=Observation:subject', [m(A), inc(obsA)]],
        [`/fhir/Patient?_id=${ids.A}&_revinclude=Observation:subject`, [m(A), inc(obsA)]],
        [`/fhir/Patient?_id=${ids.A}&_revinclude=Condition:subject`, [m(A), inc(condA)]],
        [`/fhir/Patient?_id=${ids.B}&_revinclude=Observation:subject`, []],
        ['/fhir/Condition', [m(condA)]],
        [`/fhir/Condition?_id=${ids.condB}`, []],   // deleted, and B's
      ];
      for (const [target, want] of cases) {
        const { entries } = await searchAll(t, 'GET', target);
        assert.deepEqual(entries, want, `${name} GET ${target}`);
      }
      // _total counts only what the caller may see.
      for (const [type, n] of [['Patient', 1], ['Observation', 1], ['Condition', 1]]) {
        const { pages } = await searchAll(t, 'GET', `/fhir/${type}?_total=accurate`);
        assert.equal(pages[0].total, n, `${name} ${type}?_total=accurate`);
      }
      // POST _search, the same.
      const post = await searchAll(t, 'POST', '/fhir/Observation/_search', `patient=${ids.B}`);
      assert.deepEqual(post.entries, [], `${name} POST _search patient=B`);
      const postA = await searchAll(t, 'POST', '/fhir/Patient/_search', `_id=${ids.A},${ids.B}`);
      assert.deepEqual(postA.entries, [m(A)], `${name} POST _search _id=A,B`);
    });

    test(`${name}: $everything: B's is 404 like a missing patient; A's is exactly A's resources`, async () => {
      const t = restricted[name];
      const missing = await api.get('/fhir/Patient/no-such-patient/$everything', t);
      assertDenied(missing, 404, 'not-found');
      const b = await api.get(`/fhir/Patient/${ids.B}/$everything`, t);
      assertDenied(b, 404, 'not-found', B_SECRETS, `${name} B/$everything`);
      assert.equal(b.body, missing.body, 'the same answer as for a missing patient');

      const a = await api.get(`/fhir/Patient/${ids.A}/$everything`, t);
      assert.equal(a.status, 200, a.body);
      for (const s of B_SECRETS) assert.ok(!a.body.includes(s), `${name} A/$everything reveals ${s}`);
      const bundle = a.json();
      assert.equal(bundle.type, 'searchset');
      const refs = bundle.entry.map((e) => `${e.resource.resourceType}/${e.resource.id}`);
      assert.equal(refs[0], `Patient/${ids.A}`, 'the patient first');
      assert.deepEqual(refs.slice(1).sort(),
        [`Condition/${ids.condA}`, `Observation/${ids.obsA}`].sort(), `${name} A/$everything`);
    });

    test(`${name}: system history, batch and transaction: no data of B`, async () => {
      const t = restricted[name];
      const headers = { authorization: `Bearer ${t}`, 'content-type': 'application/fhir+json' };
      const history = await server.request('GET', '/fhir/_history', { headers });
      assertDenied(history, 501, 'not-supported', B_SECRETS, `${name} GET /fhir/_history`);
      // Each Bundle entry is authorized as a request of its own: B's resources are out of
      // reach (404, as a read of them answers), and nothing of B is in the response. A
      // batch answers each entry; a transaction fails whole with the first failing entry's
      // answer.
      const body = (type) => ({ resourceType: 'Bundle', type, entry: [
        { request: { method: 'GET', url: `Patient/${ids.B}` } },
        { request: { method: 'GET', url: `Observation/${ids.obsB}` } }] });
      const batch = await server.request('POST', '/fhir', { headers, body: body('batch') });
      assert.equal(batch.status, 200, `${name} batch: ${batch.body}`);
      for (const secret of B_SECRETS) assert.ok(!batch.body.includes(secret), `${name} batch`);
      const bundle = JSON.parse(batch.body);
      assert.equal(bundle.type, 'batch-response');
      assert.deepEqual(bundle.entry.map((e) => e.response.status), ['404 Not Found', '404 Not Found']);
      assert.ok(bundle.entry.every((e) => e.resource === undefined), `${name} batch`);
      const tx = await server.request('POST', '/fhir', { headers, body: body('transaction') });
      assertDenied(tx, 404, 'not-found', B_SECRETS, `${name} transaction`);
      assert.equal(issueText(tx), 'resource not found');
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

  test('$everything of B: 403 like a read of B; searches still leave B out (200, as if no match)', async () => {
    const secrets = [...B_SECRETS.slice(0, 4), ids.B, ids.obsB, ids.condB];
    const res = await api.get(`/fhir/Patient/${ids.B}/$everything`, token);
    assertDenied(res, 403, 'forbidden', secrets, 'B/$everything');
    assert.equal(issueText(res), 'the resource is outside the patient compartment of this token');
    assertDenied(await api.get('/fhir/Patient/no-such-patient/$everything', token), 404, 'not-found');
    for (const [target, want] of [
      [`/fhir/Patient?_id=${ids.B}`, []],
      [`/fhir/Patient?_id=${ids.A},${ids.B}`, [ids.A]],
      [`/fhir/Observation?patient=${ids.B}`, []],
      ['/fhir/Observation', [ids.obsA]],
    ]) {
      const r = await api.get(target, token);
      assert.equal(r.status, 200, `${target}: ${r.body}`);
      for (const s of secrets) assert.ok(!r.body.includes(s), `${target} reveals ${s}`);
      assert.deepEqual((r.json().entry ?? []).map((e) => e.resource.id), want, target);
    }
  });
});
