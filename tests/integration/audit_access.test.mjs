// Reading the audit trail (issue 5 §4, §6): only the auditor role reads AuditEvent (every
// other role: 403 on search and read); the trail cannot be written or deleted through the
// API (405, Allow: GET, for every role); search results are paged (_count, next links) and
// each record is listed exactly once; the search parameters return exactly the records
// they should (checked against the auditor's full listing); and the accounting of
// disclosures (HIPAA §164.528, GET /fhir/Patient/{id}/$disclosures) lists exactly the
// successful disclosures of one patient's data to two different clients (one a third
// party, with its BAA counterparty), nothing about another patient and no failed attempt,
// for the auditor and for the patient's own token (403 for another patient's).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, addClient, addUser, runCli, bearer } from './harness.mjs';
import { TokenMint, fhirApi, resourceBody, clean, assertDenied, issueText } from './authz_helpers.mjs';
import {
  searchAll, requestId, ext, agentOfType, patientRefs, targetEntity, returnedRefs, complexExts,
  purposeCodes,
} from './audit_helpers.mjs';

const COUNTERPARTY = 'Acme Claims Processing LLC';
const RESTRICTED = [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }];
const DAY_MS = 86_400_000;
const day = (offsetDays) => new Date(Date.now() + offsetDays * DAY_MS).toISOString().slice(0, 10);
const DISCLOSURES_DENIED = 'the accounting of disclosures is available to the auditor, and to a patient for their own record';

let server;
let api;
let mint;
let clinic;   // first-party clinician client C1
let acme;     // third-party clinician client C2 with a BAA
let lab;      // first-party clinician client C3 (patient B only)
let office;   // the auditor's client
let tokens;   // {clinic, acme, lab, auditor, billing, admin, patientA}
let ids;      // {A, B, obsA, obsRestrictedA, obsB}
let patientUserId;  // the user linked to Patient A
const rids = {};  // name -> request id

// One request with its own request id, remembered under `name`.
async function named(name, method, target, token, body, headers = {}) {
  const rid = requestId(name);
  rids[name] = rid;
  const h = { 'x-request-id': rid, ...headers };
  const res = method === 'GET' ? await api.get(target, token, h)
    : method === 'POST' ? await api.post(target, token, body, h)
      : method === 'PUT' ? await api.put(target, token, body, h)
        : await api.del(target, token, h);
  return res;
}

before(async () => {
  server = await startServer();
  api = fhirApi(server);
  mint = await TokenMint.create(server);
  clinic = await addClient(server.dataDir, { name: 'clinic', roles: 'clinician' });
  acme = await addClient(server.dataDir, { name: 'acme', roles: 'clinician', extraArgs: ['--third-party'] });
  const baa = await runCli(['clients', 'baa', acme.client_id, '--counterparty', COUNTERPARTY,
    '--signed', day(-1), '--expires', day(365), '--data-dir', server.dataDir]);
  assert.equal(baa.code, 0, baa.stderr);
  lab = await addClient(server.dataDir, { name: 'lab', roles: 'clinician' });
  office = await addClient(server.dataDir, { name: 'audit-office', roles: 'auditor' });
  tokens = {
    clinic: mint.system({ clientId: clinic.client_id, roles: ['clinician'] }),
    acme: mint.system({ clientId: acme.client_id, roles: ['clinician'] }),
    lab: mint.system({ clientId: lab.client_id, roles: ['clinician'] }),
    auditor: mint.system({ clientId: office.client_id, roles: ['auditor'] }),
    billing: mint.system({ clientId: clinic.client_id, roles: ['billing'] }),
    admin: mint.system({ clientId: clinic.client_id, roles: ['admin'] }),
  };

  // Patients A and B, created by the clinic (creates are not disclosures).
  const create = async (name, type, body, token = tokens.clinic) => {
    const res = await named(name, 'POST', `/fhir/${type}`, token, body);
    assert.equal(res.status, 201, res.body);
    return /\/[A-Za-z]+\/([^/]+)\/_history\/1$/.exec(res.headers.location)[1];
  };
  ids = {};
  ids.A = await create('createA', 'Patient', resourceBody('Patient', { marker: 'AccessAlpha' }));
  ids.B = await create('createB', 'Patient', resourceBody('Patient', { marker: 'AccessBravo' }));
  ids.obsA = await create('createObsA', 'Observation', clean(resourceBody('Observation', { patientId: ids.A, marker: 'AlphaObs' })));
  ids.obsRestrictedA = await create('createObsRA', 'Observation',
    { ...clean(resourceBody('Observation', { patientId: ids.A, marker: 'AlphaSecret' })), meta: { security: RESTRICTED } });

  const patientUser = await addUser(server.dataDir, { username: 'alpha', roles: 'patient', fhirUser: `Patient/${ids.A}` });
  tokens.patientA = mint.person({ userId: patientUser.user_id, clientId: clinic.client_id, roles: ['patient'],
    fhirUser: `Patient/${ids.A}` });
  patientUserId = patientUser.user_id;

  // Disclosures of A: the clinic reads A and A's Observation; acme (BAA) vread A.
  const ok = (res, status = 200) => assert.equal(res.status, status, res.body);
  ok(await named('clinicReadA', 'GET', `/fhir/Patient/${ids.A}`, tokens.clinic));
  ok(await named('clinicReadObsA', 'GET', `/fhir/Observation/${ids.obsA}`, tokens.clinic));
  ok(await named('acmeVreadA', 'GET', `/fhir/Patient/${ids.A}/_history/1`, tokens.acme));
  // Failed attempts on A's data: a restricted Observation (403 after it was looked at),
  // a role without access (403), and a third party reading with a purpose it lacks.
  assertDenied(await named('labRestrictedA', 'GET', `/fhir/Observation/${ids.obsRestrictedA}`, tokens.lab), 403, 'forbidden', ['AlphaSecret']);
  assertDenied(await named('billingObsA', 'GET', `/fhir/Observation/${ids.obsA}`, tokens.billing), 403, 'forbidden', ['AlphaObs']);
  // The lab works on B only: read, purpose HOPERAT, create/update/delete an Observation, a 404.
  ok(await named('labReadB', 'GET', `/fhir/Patient/${ids.B}`, tokens.lab));
  ok(await named('labReadBOperations', 'GET', `/fhir/Patient/${ids.B}`, tokens.lab, undefined, { 'x-purpose-of-use': 'HOPERAT' }));
  const obsB = await named('labCreateObsB', 'POST', '/fhir/Observation', tokens.lab,
    clean(resourceBody('Observation', { patientId: ids.B, marker: 'BravoObs' })));
  ok(obsB, 201);
  ids.obsB = obsB.json().id;
  ok(await named('labUpdateObsB', 'PUT', `/fhir/Observation/${ids.obsB}`, tokens.lab,
    { ...clean(resourceBody('Observation', { patientId: ids.B, marker: 'BravoObs2' })), id: ids.obsB }));
  ok(await named('labHistoryObsB', 'GET', `/fhir/Observation/${ids.obsB}/_history`, tokens.lab));
  ok(await named('labDeleteObsB', 'DELETE', `/fhir/Observation/${ids.obsB}`, tokens.lab), 204);
  ok(await named('lab404', 'GET', '/fhir/Patient/no-such-patient', tokens.lab), 404);
});

after(async () => {
  if (server) await server.dispose();
});

test('only the auditor reads AuditEvent: clinician, billing, admin and patient tokens get 403', async () => {
  const search = await server.request('GET', '/fhir/AuditEvent', { headers: bearer(tokens.auditor) });
  assert.equal(search.status, 200, search.body);
  const first = search.json().entry[0].resource.id;
  assert.equal((await server.request('GET', `/fhir/AuditEvent/${first}`, { headers: bearer(tokens.auditor) })).status, 200);
  const noGrant = (i) => `no role grants ${i} on AuditEvent`;
  const cases = [
    ['clinician', tokens.clinic, noGrant('search'), noGrant('read')],
    ['billing', tokens.billing, noGrant('search'), noGrant('read')],
    ['admin', tokens.admin, 'no role grants access to protected health information', 'no role grants access to protected health information'],
    ['patient', tokens.patientA, noGrant('search'), noGrant('read')],
    ['third-party clinician', tokens.acme, noGrant('search'), noGrant('read')],
  ];
  const secrets = [ids.A, ids.B, clinic.client_id, lab.client_id, acme.client_id, COUNTERPARTY];
  for (const [role, token, searchText, readText] of cases) {
    for (const [target, text] of [
      ['/fhir/AuditEvent', searchText],
      [`/fhir/AuditEvent?patient=${ids.A}`, searchText],
      [`/fhir/AuditEvent/${first}`, readText],
    ]) {
      const res = await server.request('GET', target, { headers: bearer(token) });
      assertDenied(res, 403, 'forbidden', secrets.filter((s) => !target.includes(s)), `${role} GET ${target}`);
      assert.equal(issueText(res), text, `${role} GET ${target}`);
    }
  }
  // An auditor confined to a patient compartment (patient/ scopes) does not read the trail.
  const confined = mint.system({ clientId: office.client_id, roles: ['auditor'], scope: 'patient/AuditEvent.rs', patient: ids.A });
  const res = await server.request('GET', '/fhir/AuditEvent', { headers: bearer(confined) });
  assertDenied(res, 403, 'forbidden', [clinic.client_id]);
  assert.equal(issueText(res), 'reading the audit trail needs the auditor role');
});

test('POST, PUT, DELETE on AuditEvent: 405 with Allow: GET for every role, the trail unchanged', async () => {
  const firstBefore = await server.request('GET', '/fhir/AuditEvent/1', { headers: bearer(tokens.auditor) });
  assert.equal(firstBefore.status, 200, firstBefore.body);
  const marker = 'ForgedAuditMarker';
  const body = { ...resourceBody('AuditEvent', { marker }), id: '1' };
  const wrong = [];
  for (const [role, token] of Object.entries(tokens)) {
    for (const [method, target] of [['POST', '/fhir/AuditEvent'], ['PUT', '/fhir/AuditEvent/1'],
      ['DELETE', '/fhir/AuditEvent/1'], ['PUT', '/fhir/AuditEvent'], ['DELETE', '/fhir/AuditEvent'],
      ['POST', '/fhir/AuditEvent/1']]) {
      const res = await server.request(method, target, {
        headers: { ...bearer(token), 'content-type': 'application/fhir+json' },
        body: method === 'DELETE' ? undefined : body,
      });
      const got = `${res.status} Allow: ${res.headers.allow} ${res.status === 405 ? JSON.parse(res.body).issue[0].code : res.body}`;
      if (got !== '405 Allow: GET not-supported') wrong.push(`${role} ${method} ${target}: ${got}`);
    }
  }
  const firstAfter = await server.request('GET', '/fhir/AuditEvent/1', { headers: bearer(tokens.auditor) });
  assert.equal(firstAfter.body, firstBefore.body, 'record 1 is unchanged');
  const all = await searchAll(server, tokens.auditor);
  assert.ok(!JSON.stringify(all.events).includes(marker), 'nothing of the posted body is in the trail');
  assert.deepEqual(wrong, [], 'every write of AuditEvent: 405 Allow: GET not-supported');
});

test('paging: _count=2 walks the records exactly once through next links', async () => {
  // A fixed set: the lab's records.
  const labAll = (await searchAll(server, tokens.auditor, `agent=${lab.client_id}`)).events.map((e) => e.id);
  const walked = (await searchAll(server, tokens.auditor, `agent=${lab.client_id}`, { count: 2 }));
  assert.deepEqual(walked.events.map((e) => e.id), labAll);
  assert.ok(labAll.length >= 8, `the lab's records: ${labAll.length}`);
  assert.equal(walked.pages.length, Math.ceil(labAll.length / 2), 'full pages of 2 and no empty last page');
  for (const [i, page] of walked.pages.entries()) {
    const last = i === walked.pages.length - 1;
    assert.equal((page.entry ?? []).length, last ? labAll.length - 2 * i : 2, `page ${i + 1}`);
    assert.equal(page.link.some((l) => l.relation === 'next'), !last, `page ${i + 1}: next link`);
    assert.ok(page.link.some((l) => l.relation === 'self'), `page ${i + 1}: self link`);
  }
  // The whole trail: every record of a snapshot appears once, in order (the walk's own
  // records follow).
  const snapshot = (await searchAll(server, tokens.auditor)).events.map((e) => Number(e.id));
  const whole = (await searchAll(server, tokens.auditor, '', { count: 2 })).events.map((e) => Number(e.id));
  assert.equal(new Set(whole).size, whole.length, 'no record twice');
  for (let i = 1; i < whole.length; i++) assert.ok(whole[i] > whole[i - 1], 'ascending');
  assert.deepEqual(whole.slice(0, snapshot.length), snapshot);
  assert.deepEqual(snapshot, Array.from({ length: snapshot.length }, (_, i) => i + 1), 'seq 1..n without gaps');
});

// The values of an AuditEvent that the search parameters match (computed here from the
// decrypted record, independently of the server's tags).
function agentValues(e) {
  const v = (e.agent ?? []).map((a) => a.who?.identifier?.value).filter(Boolean);
  for (const s of complexExts(e, 'security')) v.push(...[s.user, s.client].filter(Boolean));
  return v;
}
function entityTypes(e) {
  const t = targetEntity(e);
  const out = [];
  if (t) out.push(t.what.reference ? t.what.reference.split('/')[0] : t.what.type);
  for (const r of returnedRefs(e)) out.push(r.split('/')[0]);
  return out;
}
function entityRefs(e) {
  const t = targetEntity(e);
  const out = [];
  if (t?.what.reference) out.push(t.what.reference.replace(/\/_history\/.*$/, ''));
  out.push(...returnedRefs(e));
  return out;
}

test('search parameters return exactly the expected records', async () => {
  const snapshot = (await searchAll(server, tokens.auditor)).events;
  const maxSeq = Number(snapshot.at(-1).id);
  const ridOf = (e) => ext(e, 'request-id');
  const byRid = (names) => names.map((n) => rids[n]).sort();

  // Dates: a window holding exactly three new requests of the lab.
  await new Promise((r) => setTimeout(r, 20));
  // Records are timed in milliseconds: step off the neighbours' milliseconds.
  await new Promise((r) => setTimeout(r, 5));
  const t0 = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 5));
  const windowed = [];
  for (let i = 0; i < 3; i++) {
    const res = await named(`labWindow${i}`, 'GET', `/fhir/Patient/${ids.B}`, tokens.lab);
    assert.equal(res.status, 200);
    windowed.push(rids[`labWindow${i}`]);
  }
  await new Promise((r) => setTimeout(r, 5));
  const t1 = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 20));
  const inWindow = (await searchAll(server, tokens.auditor, `date=ge${t0}&date=lt${t1}`)).events;
  assert.deepEqual(inWindow.map(ridOf), windowed, 'date=ge..&date=lt.. holds exactly the window');
  const full = (await searchAll(server, tokens.auditor)).events;
  const beforeWindow = (await searchAll(server, tokens.auditor, `date=lt${t0}`)).events;
  assert.deepEqual(beforeWindow.map((e) => e.id), full.filter((e) => e.recorded < t0).map((e) => e.id),
    'date=lt<t0>: exactly the earlier records');
  const fromWindow = (await searchAll(server, tokens.auditor, `date=ge${t0}`)).events;
  assert.deepEqual(fromWindow.slice(0, 3).map(ridOf), windowed, 'date=ge<t0> starts with the window');
  const fullMax = Number(full.at(-1).id);
  assert.deepEqual(fromWindow.filter((e) => Number(e.id) <= fullMax).map((e) => e.id),
    full.filter((e) => e.recorded >= t0).map((e) => e.id), 'date=ge<t0>: exactly the later records');

  const cases = [
    [`agent=${lab.client_id}`, (e) => agentValues(e).includes(lab.client_id)],
    [`agent=${acme.client_id}`, (e) => agentValues(e).includes(acme.client_id)],
    [`agent=${patientUserId}`, (e) => agentValues(e).includes(patientUserId)],
    [`patient=${ids.A}`, (e) => patientRefs(e).includes(`Patient/${ids.A}`)],
    [`patient=Patient/${ids.B}`, (e) => patientRefs(e).includes(`Patient/${ids.B}`)],
    ['entity-type=Observation', (e) => entityTypes(e).includes('Observation')],
    [`entity=Observation/${ids.obsB}`, (e) => entityRefs(e).includes(`Observation/${ids.obsB}`)],
    ['action=C', (e) => e.action === 'C'],
    ['action=U', (e) => e.action === 'U'],
    ['action=D', (e) => e.action === 'D'],
    ['action=C,D', (e) => e.action === 'C' || e.action === 'D'],
    ['outcome=4', (e) => e.outcome === '4'],
    ['outcome=0', (e) => e.outcome === '0'],
    ['purpose=HOPERAT', (e) => purposeCodes(e, 'purposeOfEvent').includes('HOPERAT')],
    [`agent=${lab.client_id}&action=R&outcome=0`, (e) => agentValues(e).includes(lab.client_id) && e.action === 'R' && e.outcome === '0'],
  ];
  for (const [query, pred] of cases) {
    const got = (await searchAll(server, tokens.auditor, query)).events.filter((e) => Number(e.id) <= maxSeq);
    const expected = snapshot.filter(pred);
    assert.ok(expected.length > 0, `${query}: the data set has records to find`);
    assert.deepEqual(got.map((e) => e.id), expected.map((e) => e.id), query);
  }

  // And the named requests of the setup each filter must hold (what the test did, not just
  // what the listing says; other requests carry ids the server generated).
  const namedRids = new Set(Object.values(rids));
  const ridsOf = async (query) => (await searchAll(server, tokens.auditor, query)).events
    .filter((e) => Number(e.id) <= maxSeq).map(ridOf).filter((r) => namedRids.has(r)).sort();
  assert.deepEqual(await ridsOf(`agent=${lab.client_id}`), byRid(['labRestrictedA', 'labReadB', 'labReadBOperations',
    'labCreateObsB', 'labUpdateObsB', 'labHistoryObsB', 'labDeleteObsB', 'lab404']));
  assert.deepEqual(await ridsOf(`entity=Observation/${ids.obsB}`), byRid(['labCreateObsB', 'labUpdateObsB', 'labHistoryObsB', 'labDeleteObsB']));
  assert.deepEqual(await ridsOf(`patient=${ids.B}`), byRid(['createB', 'labReadB', 'labReadBOperations',
    'labCreateObsB', 'labUpdateObsB', 'labHistoryObsB', 'labDeleteObsB']));
  assert.deepEqual(await ridsOf('purpose=HOPERAT'), byRid(['labReadBOperations']));
  assert.deepEqual(await ridsOf('action=D'), byRid(['labDeleteObsB']));
  assert.deepEqual(await ridsOf('action=U'), byRid(['labUpdateObsB']));
  assert.deepEqual(await ridsOf('outcome=4'), byRid(['labRestrictedA', 'billingObsA', 'lab404']));
  // A bad value is refused without echoing it.
  const bad = await server.request('GET', '/fhir/AuditEvent?action=Zebra', { headers: bearer(tokens.auditor) });
  assert.equal(bad.status, 400, bad.body);
  assert.ok(!bad.body.includes('Zebra'));
});

// The rows of the summary table: [[date, recipient, counterparty, what, purpose], ...].
function summaryRows(div) {
  const body = /<tbody>(.*)<\/tbody>/s.exec(div);
  if (!body) return [];
  return [...body[1].matchAll(/<tr>(.*?)<\/tr>/gs)].map((m) => [...m[1].matchAll(/<td>(.*?)<\/td>/gs)].map((c) => c[1]));
}

// The auditor's accounting of A (the List and the AuditEvents); with `patientToken`, also
// A's own: the same summary rows, but only the List (a whole record can name other
// patients and workforce details).
async function assertDisclosuresOfA(auditorToken, who, patientToken) {
  const res = await server.request('GET', `/fhir/Patient/${ids.A}/$disclosures?start=${day(-1)}&end=${day(0)}`,
    { headers: bearer(auditorToken) });
  assert.equal(res.status, 200, `${who}: ${res.body}`);
  const bundle = res.json();
  assert.equal(bundle.resourceType, 'Bundle');
  assert.equal(bundle.type, 'collection');
  const [list, ...events] = bundle.entry.map((e) => e.resource);
  assert.equal(list.resourceType, 'List');
  assert.deepEqual(list.subject, { reference: `Patient/${ids.A}` });
  assert.equal(list.text.status, 'generated');
  // Exactly the three disclosures of A, oldest first.
  assert.deepEqual(events.map((e) => ext(e, 'request-id')), [rids.clinicReadA, rids.clinicReadObsA, rids.acmeVreadA], who);
  assert.deepEqual(list.entry.map((e) => e.item.reference), events.map((e) => `AuditEvent/${e.id}`));
  for (const e of events) assert.equal(e.resourceType, 'AuditEvent');
  assert.deepEqual(summaryRows(list.text.div), [
    [events[0].recorded, `client ${clinic.client_id}`, '-', `Patient/${ids.A}/_history/1`, 'TREAT'],
    [events[1].recorded, `client ${clinic.client_id}`, '-', `Observation/${ids.obsA}/_history/1`, 'TREAT'],
    [events[2].recorded, `client ${acme.client_id}`, COUNTERPARTY, `Patient/${ids.A}/_history/1`, 'TREAT'],
  ], `${who}: the summary`);
  assert.equal(agentOfType(events[2], 'baa-counterparty').who.display, COUNTERPARTY);
  // Nothing about B, the lab, or the failed attempts.
  for (const s of [ids.B, lab.client_id, ids.obsRestrictedA, rids.billingObsA, 'AlphaSecret']) {
    assert.ok(!res.body.includes(s), `${who}: the accounting mentions ${s}`);
  }
  if (patientToken) {
    const own = await server.request('GET', `/fhir/Patient/${ids.A}/$disclosures?start=${day(-1)}&end=${day(0)}`,
      { headers: bearer(patientToken) });
    assert.equal(own.status, 200, `${who}: ${own.body}`);
    const ownBundle = own.json();
    assert.equal(ownBundle.entry.length, 1, `${who}: the List alone`);
    const ownList = ownBundle.entry[0].resource;
    assert.equal(ownList.resourceType, 'List');
    assert.equal(ownList.entry, undefined);
    assert.deepEqual(summaryRows(ownList.text.div), summaryRows(list.text.div), `${who}: the same rows`);
    assert.ok(!own.body.includes('AuditEvent'), `${who}: no records`);
  }
  return bundle;
}

test('$disclosures: the auditor gets exactly the disclosures of A to the two clients, nothing about B', async () => {
  await assertDisclosuresOfA(tokens.auditor, 'auditor');
  // B's accounting names only the lab, and nothing of A.
  const b = await server.request('GET', `/fhir/Patient/${ids.B}/$disclosures`, { headers: bearer(tokens.auditor) });
  assert.equal(b.status, 200, b.body);
  const bEvents = b.json().entry.slice(1).map((e) => e.resource);
  assert.deepEqual(bEvents.map((e) => ext(e, 'request-id')),
    // (the date window's reads exist once the search parameter test made them)
    [rids.labReadB, rids.labReadBOperations, rids.labHistoryObsB,
      ...['labWindow0', 'labWindow1', 'labWindow2'].filter((n) => rids[n]).map((n) => rids[n])],
    'B: the lab\'s reads (the history of B\'s Observation, too)');
  assert.ok(!b.body.includes(ids.A) && !b.body.includes(clinic.client_id) && !b.body.includes(acme.client_id));
  // A window without disclosures.
  const empty = await server.request('GET', `/fhir/Patient/${ids.A}/$disclosures?start=2021-01-01&end=2021-12-31`, { headers: bearer(tokens.auditor) });
  assert.equal(empty.status, 200, empty.body);
  const emptyBundle = empty.json();
  assert.equal(emptyBundle.entry.length, 1);
  assert.equal(emptyBundle.entry[0].resource.emptyReason.coding[0].code, 'nilknown');
  assert.match(emptyBundle.entry[0].resource.text.div, /<p>No disclosures\.<\/p>/);
});

test('$disclosures: the patient reads their own accounting, not another patient\'s; others 403', async () => {
  await assertDisclosuresOfA(tokens.auditor, 'patient A', tokens.patientA);
  const other = await server.request('GET', `/fhir/Patient/${ids.B}/$disclosures`, { headers: bearer(tokens.patientA) });
  assertDenied(other, 403, 'forbidden', [ids.A, lab.client_id]);
  assert.equal(issueText(other), DISCLOSURES_DENIED);
  for (const [role, token] of [['clinician', tokens.clinic], ['billing', tokens.billing], ['admin', tokens.admin], ['third party', tokens.acme]]) {
    const res = await server.request('GET', `/fhir/Patient/${ids.A}/$disclosures`, { headers: bearer(token) });
    assertDenied(res, 403, 'forbidden', [clinic.client_id, acme.client_id, COUNTERPARTY], role);
    assert.equal(issueText(res), DISCLOSURES_DENIED, role);
  }
  // Reading the accounting is not itself a disclosure: A's list is unchanged.
  await assertDisclosuresOfA(tokens.auditor, 'auditor, again');
});

test('a custom policy that grants another role the audit trail does not open it: auditor by name', async () => {
  const policy = [
    '[roles.clinician]',
    'description = "test: a clinician granted everything, the audit trail included"',
    'purposes = ["TREAT"]',
    'default_purpose = "TREAT"',
    'compartment = "none"',
    '[[roles.clinician.grants]]',
    'types = ["*"]',
    'interactions = ["read", "search"]',
    '',
  ].join('\n');
  const own = await startServer({ config: '' });
  const policyFile = `${own.dataDir}.policy.toml`;
  await own.stop();
  const fsp = await import('node:fs/promises');
  await fsp.writeFile(policyFile, policy, { mode: 0o600 });
  const custom = await startServer({ dataDir: own.dataDir, config: `[policy]\nfile = "${policyFile}"\n` });
  try {
    const customMint = await TokenMint.create(custom);
    const client = await addClient(custom.dataDir, { name: 'custom', roles: 'clinician' });
    const token = customMint.system({ clientId: client.client_id, roles: ['clinician'] });
    for (const target of ['/fhir/AuditEvent', '/fhir/AuditEvent/1', '/fhir/Patient/p1/$disclosures']) {
      const res = await custom.request('GET', target, { headers: bearer(token) });
      assertDenied(res, 403, 'forbidden', [], target);
      assert.equal(issueText(res), target.includes('$disclosures') ? DISCLOSURES_DENIED
        : 'reading the audit trail needs the auditor role', target);
    }
  } finally {
    await custom.stop();
  }
});
