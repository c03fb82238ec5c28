// Business associate agreements (HIPAA 45 CFR 164.502(e), 164.504(e); issue 4 §6, §8): a
// client registered as a third party receives no PHI unless its BAA is active now. The
// agreement is changed with `phigate clients baa` while the server runs, and every change
// (recorded, revoked, expired, not yet in effect) takes effect on the very next request
// without a restart. First-party clients are unaffected. Tokens come from the real token
// endpoint (client credentials), as a business associate's system would get them.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, addClient, runCli } from './harness.mjs';
import { TokenMint, fhirApi, resourceBody, clean, assertDenied, issueText } from './authz_helpers.mjs';

const COUNTERPARTY = 'Acme Billing LLC';
const DAY_MS = 86_400_000;
const day = (offsetDays) => new Date(Date.now() + offsetDays * DAY_MS).toISOString().slice(0, 10);
const REQUIRED = 'a business associate agreement is required: ';

let server;
let api;
let patientId;
let firstParty;   // token of a first-party clinician client
let thirdParty;   // {client_id, client_secret}
let thirdToken;

async function baa(args) {
  const r = await runCli(['clients', 'baa', thirdParty.client_id, ...args, '--data-dir', server.dataDir]);
  assert.equal(r.code, 0, `clients baa ${args.join(' ')}: ${r.stderr}`);
  assert.ok(!r.stderr.includes(COUNTERPARTY));
  return r;
}

const readAs = (token) => api.get(`/fhir/Patient/${patientId}`, token);

function assertBaaDenied(res, why) {
  assertDenied(res, 403, 'forbidden', ['BaaPatientName', COUNTERPARTY], why);
  assert.equal(issueText(res), REQUIRED + why);
}

before(async () => {
  server = await startServer();
  api = fhirApi(server);
  const first = await addClient(server.dataDir, { name: 'in-house', roles: 'clinician' });
  firstParty = await server.token(first);
  const created = await api.post('/fhir/Patient', firstParty, resourceBody('Patient', { marker: 'BaaPatientName' }));
  assert.equal(created.status, 201, created.body);
  patientId = created.json().id;
  thirdParty = await addClient(server.dataDir, { name: 'acme', roles: 'clinician', extraArgs: ['--third-party'] });
  thirdToken = await server.token(thirdParty);
});

after(async () => {
  if (server) await server.dispose();
});

test('a third-party client without a BAA: 403 on every interaction, first party unaffected', async () => {
  assertBaaDenied(await readAs(thirdToken), 'this third-party client has none');
  assertBaaDenied(await api.get(`/fhir/Patient/${patientId}/_history`, thirdToken), 'this third-party client has none');
  assertBaaDenied(await api.post('/fhir/Observation', thirdToken,
    clean(resourceBody('Observation', { patientId, marker: 'x' }))), 'this third-party client has none');
  assertBaaDenied(await api.get('/fhir/Patient?name=x', thirdToken), 'this third-party client has none');
  assert.equal((await readAs(firstParty)).status, 200);
});

test('a BAA signed yesterday, expiring next year: allowed at once', async () => {
  const r = await baa(['--counterparty', COUNTERPARTY, '--signed', day(-1), '--expires', day(365)]);
  assert.match(r.stdout, /^baa_status=active$/m);
  const res = await readAs(thirdToken);
  assert.equal(res.status, 200, res.body);
  assert.equal(res.json().id, patientId);
  // A newly issued token works as well.
  assert.equal((await readAs(await server.token(thirdParty))).status, 200);
});

test('clients baa --revoke: 403 on the very next request, no restart', async () => {
  await baa(['--revoke']);
  assertBaaDenied(await readAs(thirdToken), 'its agreement was revoked');
  assert.equal((await readAs(firstParty)).status, 200, 'first party unaffected');
});

test('a BAA that expired yesterday: 403; one not yet in effect: 403; renewed: allowed', async () => {
  await baa(['--counterparty', COUNTERPARTY, '--signed', day(-365), '--expires', day(-1)]);
  assertBaaDenied(await readAs(thirdToken), 'its agreement has expired');

  await baa(['--counterparty', COUNTERPARTY, '--signed', day(2), '--expires', day(365)]);
  assertBaaDenied(await readAs(thirdToken), 'its agreement is not yet in effect');

  // An agreement whose last day is today still covers today (--expires is inclusive).
  await baa(['--counterparty', COUNTERPARTY, '--signed', day(-30), '--expires', day(0)]);
  assert.equal((await readAs(thirdToken)).status, 200);
  assert.equal((await readAs(firstParty)).status, 200);
});

test('clients list shows the agreement; the server log never names the counterparty', async () => {
  const r = await runCli(['clients', 'list', '--json', '--data-dir', server.dataDir]);
  assert.equal(r.code, 0, r.stderr);
  const clients = JSON.parse(r.stdout);
  const acme = clients.find((c) => c.client_id === thirdParty.client_id);
  assert.equal(acme.third_party, true);
  assert.equal(acme.baa.counterparty, COUNTERPARTY);
  assert.equal(acme.baa.status, 'active');
  assert.equal(acme.baa.expires, day(0));
  const inHouse = clients.find((c) => c.name === 'in-house');
  assert.equal(inHouse.third_party, false);
  assert.equal(inHouse.baa, null);
  assert.ok(!server.stderr().includes(COUNTERPARTY), 'the counterparty is not logged');
});

test('a third-party system token with the admin-side paths: the BAA gate applies there too', async () => {
  await baa(['--revoke']);
  // Crafted token of the third-party client with the auditor role: /admin is gated too.
  const mint = await TokenMint.create(server);
  const auditor = mint.system({ clientId: thirdParty.client_id, roles: ['auditor'] });
  const res = await server.request('GET', '/admin/break-glass', { headers: { authorization: `Bearer ${auditor}` } });
  assertBaaDenied(res, 'its agreement was revoked');
});
