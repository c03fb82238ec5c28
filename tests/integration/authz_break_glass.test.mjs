// Break-glass, emergency access (HIPAA 164.312(a)(2)(ii); issue 4 §5, §8). A record labelled
// restricted (meta.security R, v3-Confidentiality) is hidden from a clinician; purpose
// ETREAT with an X-Break-Glass-Reason of 10-500 characters and a second factor less than
// 5 minutes old opens a grant for that person and patient for the time box (3 s here,
// [break_glass] time_box_s), marks every request under it (the access log's
// break_glass_grant, until the audit trail of issue 5), and alerts exactly once per grant:
// a log line at level alert, the counter phigate_break_glass_alerts_total and a webhook
// POST to a local HTTPS receiver. After the time box the same authentication is denied.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { startServer, addClient, addUser, makeTempRoot, bearer } from './harness.mjs';
import { makeCertificate } from './idp.mjs';
import { TokenMint, fhirApi, resourceBody, assertDenied, issueText, nowS } from './authz_helpers.mjs';
import fsp from 'node:fs/promises';

const TIME_BOX_S = 3;
const REASON = 'Unconscious in ER, allergy history needed';
const RESTRICTED = [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }];
const ETREAT = { 'x-purpose-of-use': 'ETREAT', 'x-break-glass-reason': REASON };

let root;
let hook;          // {server, port, posts: [{headers, body}]}
let server;
let api;
let mint;
let client;
let doctor;        // the clinician user
let restrictedId;  // the labelled Patient
let firstToken;    // the authentication that opens the first grant
let grantId;

function alertLines() {
  return server.stderr().split('\n').filter((l) => l.includes('"level":"alert"'));
}

function accessLog(requestId) {
  const line = server.stderr().split('\n').find((l) => l.includes(`"request_id":"${requestId}"`));
  return line ? JSON.parse(line) : undefined;
}

async function waitFor(predicate, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

function doctorToken(extra = {}) {
  return mint.person({ userId: doctor.user_id, clientId: client.client_id, roles: ['clinician'], ...extra });
}

const read = (token, headers = {}) => api.get(`/fhir/Patient/${restrictedId}`, token, headers);

before(async () => {
  root = await makeTempRoot('phigate-bg-');
  const { certFile, cert, key } = await makeCertificate(root, 'webhook');
  const posts = [];
  const hookServer = https.createServer({ cert, key }, (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      posts.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204);
      res.end();
    });
  });
  await new Promise((resolve) => hookServer.listen(0, '127.0.0.1', resolve));
  hook = { server: hookServer, port: hookServer.address().port, posts };

  server = await startServer({ config: [
    '[break_glass]',
    `time_box_s = ${TIME_BOX_S}`,
    `webhook_url = "https://127.0.0.1:${hook.port}/hooks/break-glass"`,
    `webhook_ca_file = "${certFile}"`,
    '',
  ].join('\n') });
  api = fhirApi(server);
  mint = await TokenMint.create(server);
  client = await addClient(server.dataDir, { name: 'ward', roles: 'clinician' });
  doctor = await addUser(server.dataDir, { username: 'er-doctor', roles: 'clinician' });

  const seeder = mint.system({ clientId: client.client_id, roles: ['clinician'] });
  const created = await api.post('/fhir/Patient', seeder,
    { ...resourceBody('Patient', { marker: 'RestrictedPatientName' }), meta: { security: RESTRICTED } });
  assert.equal(created.status, 201, created.body);
  // The creator may not see what it labelled restricted: the write happened, the body is
  // withheld, the Location names the new resource.
  assert.equal(created.body, '', 'a labelled resource is not returned without break-glass');
  restrictedId = /\/Patient\/([^/]+)\/_history\/1$/.exec(created.headers.location)[1];
});

after(async () => {
  if (server) await server.dispose();
  if (hook) await new Promise((r) => { hook.server.closeAllConnections?.(); hook.server.close(() => r()); });
  if (root) await fsp.rm(root, { recursive: true, force: true });
});

test('a restricted record is 403 for a clinician acting under TREAT', async () => {
  const t = doctorToken();
  for (const target of [`/fhir/Patient/${restrictedId}`, `/fhir/Patient/${restrictedId}/_history/1`,
    `/fhir/Patient/${restrictedId}/_history`]) {
    const res = await api.get(target, t);
    assertDenied(res, 403, 'forbidden', ['RestrictedPatientName'], target);
    assert.equal(issueText(res), 'the resource carries a confidentiality label this role may not see ' +
      'without emergency access (break-glass)');
  }
});

test('ETREAT without a valid reason: 403, the reason is never echoed', async () => {
  const t = doctorToken();
  const cases = [
    {},                                            // no reason at all
    { 'x-break-glass-reason': '' },
    { 'x-break-glass-reason': '123456789' },       // 9 characters
    { 'x-break-glass-reason': 'x'.repeat(501) },   // 501 characters
  ];
  for (const extra of cases) {
    const res = await read(t, { 'x-purpose-of-use': 'ETREAT', ...extra });
    assertDenied(res, 403, 'forbidden', ['RestrictedPatientName', '123456789'], JSON.stringify(extra).slice(0, 40));
    assert.equal(issueText(res), 'emergency access requires an X-Break-Glass-Reason header of 10 to 500 characters');
  }
  assert.equal(alertLines().length, 0, 'no grant, no alert');
});

test('ETREAT with a reason but a second factor older than 5 minutes: 401 step-up', async () => {
  const stale = doctorToken({ authTime: nowS() - 600 });
  const res = await read(stale, ETREAT);
  assertDenied(res, 401, 'login', ['RestrictedPatientName', REASON]);
  const www = res.headers['www-authenticate'] ?? '';
  assert.match(www, /^Bearer /);
  assert.match(www, /error="insufficient_user_authentication"/);
  assert.match(www, /max_age=300\b/);
  assert.equal(alertLines().length, 0, 'no grant, no alert');
});

test('ETREAT with a reason and a fresh second factor: 200 with the record, alerted once', async () => {
  firstToken = doctorToken();
  const res = await read(firstToken, ETREAT);
  assert.equal(res.status, 200, res.body);
  const patient = res.json();
  assert.equal(patient.id, restrictedId);
  assert.equal(patient.name[0].family, 'RestrictedPatientName');
  assert.deepEqual(patient.meta.security, RESTRICTED);

  const again = await read(firstToken, ETREAT);
  assert.equal(again.status, 200, again.body);
  // Within the time box the grant covers this patient's record through other paths too.
  assert.equal((await api.get(`/fhir/Patient/${restrictedId}/_history/1`, firstToken, ETREAT)).status, 200);

  // Exactly one alert line, PHI-free.
  assert.ok(await waitFor(() => alertLines().length >= 1), 'an alert line');
  const lines = alertLines();
  assert.equal(lines.length, 1, `exactly one alert: ${lines.join('\n')}`);
  const alert = JSON.parse(lines[0]);
  assert.equal(alert.event, 'break_glass.opened');
  assert.equal(alert.user_id, doctor.user_id);
  assert.equal(alert.client_id, client.client_id);
  assert.equal(typeof alert.grant_id, 'string');
  grantId = alert.grant_id;
  assert.ok(!lines[0].includes(restrictedId), 'the alert does not name the patient');
  assert.ok(!lines[0].includes(REASON), 'the alert does not carry the reason');
  assert.ok(!server.stderr().includes(REASON), 'the reason is in no log line');

  // Both requests are marked with the grant in the access log.
  for (const r of [res, again]) {
    const entry = accessLog(r.headers['x-request-id']);
    assert.equal(entry?.break_glass_grant, grantId, 'the request is marked with its grant');
    assert.equal(entry?.purpose, 'ETREAT');
  }
});

test('GET /metrics: phigate_break_glass_alerts_total 1 (admin or auditor only)', async () => {
  const admin = mint.system({ clientId: client.client_id, roles: ['admin'] });
  const res = await server.request('GET', '/metrics', { headers: bearer(admin) });
  assert.equal(res.status, 200, res.body);
  assert.match(res.body, /^phigate_break_glass_alerts_total 1$/m);
  const clin = await server.request('GET', '/metrics', { headers: bearer(doctorToken()) });
  assertDenied(clin, 403, 'forbidden');
});

test('GET /admin/break-glass: the auditor reviews the grant with its reason; others 403', async () => {
  const auditor = mint.system({ clientId: client.client_id, roles: ['auditor'] });
  const res = await server.request('GET', '/admin/break-glass', { headers: bearer(auditor) });
  assert.equal(res.status, 200, res.body);
  const { grants } = res.json();
  assert.equal(grants.length, 1);
  const g = grants[0];
  assert.equal(g.grant_id, grantId);
  assert.equal(g.user_id, doctor.user_id);
  assert.equal(g.client_id, client.client_id);
  assert.equal(g.patient, `Patient/${restrictedId}`);
  assert.equal(g.reason, REASON);
  assert.equal(g.active, true);
  const boxMs = Date.parse(g.expires) - Date.parse(g.opened);
  assert.equal(boxMs, TIME_BOX_S * 1000, 'the configured time box');

  for (const [role, token] of [['clinician', doctorToken()],
    ['admin', mint.system({ clientId: client.client_id, roles: ['admin'] })]]) {
    const denied = await server.request('GET', '/admin/break-glass', { headers: bearer(token) });
    assertDenied(denied, 403, 'forbidden', [REASON, restrictedId], role);
    assert.equal(issueText(denied), 'reviewing break-glass grants needs a role and scopes that grant search on AuditEvent');
  }
});

test('the webhook received exactly one POST, without PHI', async () => {
  assert.ok(await waitFor(() => hook.posts.length >= 1), 'the webhook was called');
  await new Promise((r) => setTimeout(r, 200));  // a second POST would have arrived by now
  assert.equal(hook.posts.length, 1, 'exactly one POST');
  const post = hook.posts[0];
  assert.equal(post.method, 'POST');
  assert.equal(post.url, '/hooks/break-glass');
  assert.match(post.headers['content-type'] ?? '', /^application\/json/);
  const body = JSON.parse(post.body);
  assert.deepEqual(Object.keys(body).sort(), ['client_id', 'event', 'expires', 'grant_id', 'opened', 'user_id']);
  assert.equal(body.event, 'break_glass.opened');
  assert.equal(body.grant_id, grantId);
  assert.equal(body.user_id, doctor.user_id);
  assert.ok(!post.body.includes(restrictedId) && !post.body.includes(REASON));
});

test('after the time box: the same authentication is denied; a new one opens a new grant', async () => {
  const auditor = mint.system({ clientId: client.client_id, roles: ['auditor'] });
  const g = (await server.request('GET', '/admin/break-glass', { headers: bearer(auditor) })).json().grants[0];
  const wait = Date.parse(g.expires) - Date.now() + 300;
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));

  const late = await read(firstToken, ETREAT);
  assertDenied(late, 403, 'forbidden', ['RestrictedPatientName', REASON]);
  assert.equal(issueText(late), 'the break-glass time box for this patient has ended; authenticate again to open a new one');
  // A fresh token minted with the same auth_time is the same authentication.
  const sameAuth = doctorToken({ authTime: JSON.parse(Buffer.from(firstToken.split('.')[1], 'base64url')).auth_time });
  assertDenied(await read(sameAuth, ETREAT), 403, 'forbidden', ['RestrictedPatientName']);
  // Without ETREAT the label applies again.
  assertDenied(await read(firstToken), 403, 'forbidden', ['RestrictedPatientName']);
  const listed = (await server.request('GET', '/admin/break-glass', { headers: bearer(auditor) })).json().grants;
  assert.equal(listed.length, 1);
  assert.equal(listed[0].active, false, 'the grant has ended');
  assert.equal(alertLines().length, 1, 'denials do not alert');

  // Authenticating again (a later auth_time: the time box has passed since the first)
  // opens a second grant, alerted once more.
  const renewed = await read(doctorToken(), ETREAT);
  assert.equal(renewed.status, 200, renewed.body);
  assert.ok(await waitFor(() => alertLines().length === 2), 'a second alert');
  const grants = (await server.request('GET', '/admin/break-glass', { headers: bearer(auditor) })).json().grants;
  assert.equal(grants.length, 2);
  assert.equal(grants[0].active, true, 'newest first, active');
});

test('a system client cannot break the glass', async () => {
  const system = mint.system({ clientId: client.client_id, roles: ['clinician'] });
  const res = await read(system, ETREAT);
  assertDenied(res, 403, 'forbidden', ['RestrictedPatientName', REASON]);
  assert.equal(issueText(res), 'break-glass is only for people');
});
