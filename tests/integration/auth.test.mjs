// No PHI without a token (issue 2 §6): the client credentials token endpoint, JWKS, the
// bearer check on every /fhir route but metadata, scope enforcement, `clients add`, and
// the unauthenticated health endpoints.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  startServer, addClient, runCli, bearer, decodeJwt, assertCommonHeaders, assertOutcome,
  listFiles, PLAIN_JSON, WWW_AUTHENTICATE,
} from './harness.mjs';

let server;
let admin;          // {client_id, client_secret} with system/*.cruds
let adminToken;
let patientId;      // created by admin
let observationId;  // created by admin
const secrets = []; // every client secret seen, none may be stored in the clear

const PATIENT = { resourceType: 'Patient', name: [{ family: 'Quillfeather', given: ['Test'] }], birthDate: '1980-01-01' };
const OBSERVATION = {
  resourceType: 'Observation', status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '29463-7' }] },
  valueQuantity: { value: 80, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
};

function b64url(obj) { return Buffer.from(JSON.stringify(obj)).toString('base64url'); }

// Signs an ES256 compact JWS with `privateKey`.
function signJwt(header, payload, privateKey) {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const sig = crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

async function jwks() {
  const res = await server.request('GET', '/oauth2/jwks');
  assert.equal(res.status, 200);
  return res.json();
}

function serverSigningKey() {
  const file = path.join(server.dataDir, 'keys', 'token-signing.pem');
  return crypto.createPrivateKey(fs.readFileSync(file));
}

function goodClaims(overrides = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: server.origin,
    aud: `${server.origin}/fhir`,
    sub: admin.client_id,
    client_id: admin.client_id,
    scope: 'system/*.cruds',
    roles: ['clinician'],
    jti: crypto.randomBytes(16).toString('hex'),
    iat: now,
    exp: now + 300,
    ...overrides,
  };
}

async function readPatient(token, extraHeaders = {}) {
  return server.request('GET', `/fhir/Patient/${patientId}`,
    { headers: token === undefined ? extraHeaders : { ...bearer(token), ...extraHeaders } });
}

function assertUnauthorized(res, what) {
  assert.equal(res.status, 401, `${what}: expected 401, got ${res.status}: ${res.body}`);
  assert.equal(res.headers['www-authenticate'], WWW_AUTHENTICATE, `${what}: WWW-Authenticate`);
  assertOutcome(assert, res, 401, 'login');
  assert.ok(!res.body.includes('Quillfeather'), `${what}: no resource content in the answer`);
}

before(async () => {
  server = await startServer();
  admin = await addClient(server.dataDir, { name: 'admin', scope: 'system/*.cruds' });
  secrets.push(admin.client_secret);
  adminToken = await server.token(admin);
  const h = { ...bearer(adminToken), 'content-type': 'application/fhir+json' };
  patientId = (await server.request('POST', '/fhir/Patient', { headers: h, body: PATIENT })).json().id;
  observationId = (await server.request('POST', '/fhir/Observation', { headers: h, body: OBSERVATION })).json().id;
  assert.ok(patientId && observationId);
});

after(async () => {
  if (server) await server.dispose();
});

test('token endpoint: client_credentials issues an ES256 JWT with the expected claims', async () => {
  const before = Math.floor(Date.now() / 1000);
  const res = await server.tokenResponse(admin);
  const after_ = Math.ceil(Date.now() / 1000);
  assert.equal(res.status, 200, res.body);
  assertCommonHeaders(assert, res, { contentType: PLAIN_JSON });
  const body = res.json();
  assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'scope', 'token_type']);
  assert.equal(body.token_type, 'Bearer');
  assert.equal(body.scope, 'system/*.cruds');
  assert.equal(typeof body.expires_in, 'number');

  assert.match(body.access_token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  const { header, payload } = decodeJwt(body.access_token);
  assert.equal(header.alg, 'ES256');
  assert.equal(header.typ, 'at+jwt');
  assert.equal(typeof header.kid, 'string');
  assert.equal(payload.iss, server.origin);
  const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  assert.ok(aud.includes(server.baseUrl), `aud ${JSON.stringify(payload.aud)} names ${server.baseUrl}`);
  assert.equal(payload.sub, admin.client_id);
  assert.equal(payload.client_id, admin.client_id);
  assert.equal(payload.scope, 'system/*.cruds');
  assert.equal(typeof payload.jti, 'string');
  assert.ok(payload.jti.length >= 16, 'jti has enough entropy to be unique');
  assert.ok(Number.isInteger(payload.iat) && Number.isInteger(payload.exp));
  assert.ok(payload.iat >= before - 1 && payload.iat <= after_ + 1, 'iat is now');
  assert.ok(payload.exp > payload.iat, 'exp after iat');
  assert.ok(payload.exp - payload.iat <= 900, `lifetime ${payload.exp - payload.iat} s <= 900 s`);
  assert.equal(body.expires_in, payload.exp - payload.iat, 'expires_in matches the token');

  const second = (await server.tokenResponse(admin)).json();
  assert.notEqual(decodeJwt(second.access_token).payload.jti, payload.jti, 'jti is unique per token');
});

test('JWKS publishes the public key only, and it verifies issued tokens', async () => {
  const res = await server.request('GET', '/oauth2/jwks');
  assert.equal(res.status, 200);
  assertCommonHeaders(assert, res, { contentType: PLAIN_JSON });
  const { keys } = res.json();
  assert.equal(keys.length, 1);
  const jwk = keys[0];
  assert.equal(jwk.kty, 'EC');
  assert.equal(jwk.crv, 'P-256');
  assert.equal(jwk.d, undefined, 'no private key material');
  for (const k of ['x', 'y', 'kid']) assert.equal(typeof jwk[k], 'string', k);

  const { header, signingInput, signature } = decodeJwt(adminToken);
  assert.equal(header.kid, jwk.kid);
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  assert.equal(signature.length, 64, 'ES256 signature is r||s, 64 bytes');
  assert.equal(crypto.verify('sha256', Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' }, signature), true);
  // The check can fail: a different input does not verify.
  assert.equal(crypto.verify('sha256', Buffer.from(`${signingInput}x`), { key, dsaEncoding: 'ieee-p1363' }, signature), false);

  // The JWKS public key is the public half of keys/token-signing.pem.
  const pub = crypto.createPublicKey(serverSigningKey()).export({ format: 'jwk' });
  assert.equal(pub.x, jwk.x);
  assert.equal(pub.y, jwk.y);
});

test('token endpoint rejects bad client credentials and bad requests', async () => {
  const wrong = await server.tokenResponse({ client_id: admin.client_id, client_secret: `${admin.client_secret}x` });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.json().error, 'invalid_client');
  assert.ok(!wrong.body.includes(admin.client_id), 'the client id is not echoed');
  assertCommonHeaders(assert, wrong, { contentType: PLAIN_JSON });

  const unknown = await server.tokenResponse({ client_id: 'no-such-client', client_secret: 'whatever' });
  assert.equal(unknown.status, 401);
  assert.equal(unknown.json().error, 'invalid_client');

  const inBody = await server.request('POST', '/oauth2/token', {
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: admin.client_id, client_secret: admin.client_secret }).toString(),
  });
  assert.equal(inBody.status, 401, 'client_secret_post is not accepted');
  assert.equal(inBody.json().error, 'invalid_client');

  const noAuth = await server.request('POST', '/oauth2/token', {
    headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials',
  });
  assert.equal(noAuth.status, 401);
  assert.equal(noAuth.json().error, 'invalid_client');

  const grant = await server.tokenResponse(admin, { extra: { grant_type: 'password' } });
  assert.equal(grant.status, 400);
  assert.equal(grant.json().error, 'unsupported_grant_type');

  const tooWide = await server.tokenResponse(await addClient(server.dataDir, { name: 'narrow', scope: 'system/Patient.rs' }),
    { scope: 'system/*.cruds' });
  assert.equal(tooWide.status, 400);
  assert.equal(tooWide.json().error, 'invalid_scope');

  const get = await server.request('GET', '/oauth2/token');
  assert.equal(get.status, 405);
  assert.equal(get.headers.allow, 'POST');
});

test('token endpoint: a narrower requested scope is granted as asked', async () => {
  const res = await server.tokenResponse(admin, { scope: 'system/Patient.r' });
  assert.equal(res.status, 200, res.body);
  const body = res.json();
  assert.equal(body.scope, 'system/Patient.r');
  assert.equal(decodeJwt(body.access_token).payload.scope, 'system/Patient.r');
  assert.equal((await readPatient(body.access_token)).status, 200);
  const create = await server.request('POST', '/fhir/Patient', {
    headers: { ...bearer(body.access_token), 'content-type': 'application/fhir+json' }, body: PATIENT,
  });
  assertOutcome(assert, create, 403, 'forbidden');
});

test('a valid token reads; the scheme name is case-insensitive', async () => {
  const res = await readPatient(adminToken);
  assert.equal(res.status, 200, res.body);
  assert.equal(res.json().id, patientId);
  const lower = await server.request('GET', `/fhir/Patient/${patientId}`, { headers: { authorization: `bearer ${adminToken}` } });
  assert.equal(lower.status, 200);
});

test('missing or malformed Authorization: 401 with WWW-Authenticate, on every /fhir route but metadata', async () => {
  const routes = [
    ['GET', `/fhir/Patient/${patientId}`],
    ['GET', `/fhir/Patient/${patientId}/_history/1`],
    ['GET', `/fhir/Patient/${patientId}/_history`],
    ['GET', '/fhir/Patient/_history'],
    ['GET', '/fhir/Patient'],
    ['GET', '/fhir/Patient/no-such-id'],
    ['DELETE', `/fhir/Patient/${patientId}`],
    ['GET', '/fhir/_history'],
    ['GET', `/fhir/Patient/${patientId}/$everything`],
    ['POST', '/fhir'],
  ];
  for (const [method, target] of routes) {
    assertUnauthorized(await server.request(method, target), `${method} ${target} without a token`);
  }
  const write = { 'content-type': 'application/fhir+json' };
  assertUnauthorized(await server.request('POST', '/fhir/Patient', { headers: write, body: PATIENT }), 'create without a token');
  assertUnauthorized(await server.request('PUT', `/fhir/Patient/${patientId}`,
    { headers: write, body: { ...PATIENT, id: patientId } }), 'update without a token');

  for (const authorization of ['Bearer', 'Bearer ', 'Bearer abc', 'Bearer a.b.c', `Basic ${Buffer.from('a:b').toString('base64')}`,
    `Bearer ${adminToken}x`, `Token ${adminToken}`, `Bearer ${adminToken.split('.').slice(0, 2).join('.')}`]) {
    assertUnauthorized(await readPatient(undefined, { authorization }), `Authorization: ${authorization.slice(0, 20)}`);
  }
  // The patient is still there and unchanged: nothing above deleted or wrote it.
  assert.equal((await readPatient(adminToken)).json().meta.versionId, '1');

  const meta = await server.request('GET', '/fhir/metadata');
  assert.equal(meta.status, 200, 'metadata needs no token');
});

test('tampered tokens: 401', async () => {
  const [h, p, s] = adminToken.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  // Payload changed, signature kept.
  const widened = `${h}.${b64url({ ...claims, scope: 'system/*.cruds system/Patient.cruds', exp: claims.exp + 1 })}.${s}`;
  assertUnauthorized(await readPatient(widened), 'payload tampered');
  // One signature bit flipped.
  const sig = Buffer.from(s, 'base64url');
  sig[10] ^= 0x01;
  assertUnauthorized(await readPatient(`${h}.${p}.${sig.toString('base64url')}`), 'signature flipped');
  // alg none, no signature.
  const none = `${b64url({ alg: 'none', typ: 'at+jwt' })}.${p}.`;
  assertUnauthorized(await readPatient(none), 'alg none');
  // HS256 "signed" with the public key (algorithm confusion).
  const jwk = (await jwks()).keys[0];
  const hsInput = `${b64url({ alg: 'HS256', typ: 'at+jwt', kid: jwk.kid })}.${p}`;
  const hs = crypto.createHmac('sha256', JSON.stringify(jwk)).update(hsInput).digest('base64url');
  assertUnauthorized(await readPatient(`${hsInput}.${hs}`), 'alg HS256');
});

test('tokens crafted with the server key: valid ones pass, expired/wrong aud/wrong iss fail', async () => {
  const key = serverSigningKey();
  const { kid } = (await jwks()).keys[0];
  const header = { alg: 'ES256', typ: 'at+jwt', kid };
  const now = Math.floor(Date.now() / 1000);

  // Control: the crafting is right, so the failures below are about the one claim changed.
  const valid = signJwt(header, goodClaims(), key);
  assert.equal((await readPatient(valid)).status, 200, 'a correctly crafted token is accepted');

  assertUnauthorized(await readPatient(signJwt(header, goodClaims({ iat: now - 1200, exp: now - 300 }), key)), 'expired');
  assertUnauthorized(await readPatient(signJwt(header, goodClaims({ aud: 'https://other.example/fhir' }), key)), 'wrong aud');
  assertUnauthorized(await readPatient(signJwt(header, goodClaims({ aud: [`${server.origin}/other`] }), key)), 'wrong aud array');
  assertUnauthorized(await readPatient(signJwt(header, goodClaims({ iss: 'https://evil.example' }), key)), 'wrong iss');
  assertUnauthorized(await readPatient(signJwt(header, goodClaims({ exp: now + 3600 }), key)), 'lifetime over 900 s');
  assertUnauthorized(await readPatient(signJwt(header, goodClaims({ nbf: now + 3600 }), key)), 'not yet valid');
  assertUnauthorized(await readPatient(signJwt(header, goodClaims({ iat: now + 3600, exp: now + 3900 }), key)), 'issued in the future');
  assertUnauthorized(await readPatient(signJwt({ ...header, typ: 'JWT' }, goodClaims(), key)), 'typ is not at+jwt');
  assertUnauthorized(await readPatient(signJwt({ ...header, kid: 'other-kid' }, goodClaims(), key)), 'unknown kid');
  for (const claim of ['exp', 'iat', 'iss', 'aud', 'sub', 'client_id', 'scope', 'jti']) {
    const claims = goodClaims();
    delete claims[claim];
    assertUnauthorized(await readPatient(signJwt(header, claims, key)), `no ${claim}`);
  }
  // A scope the token does not grant is not widened by the header or anything else.
  const narrow = signJwt(header, goodClaims({ scope: 'system/Observation.rs' }), key);
  assertOutcome(assert, await readPatient(narrow), 403, 'forbidden');
});

test('token lifetime is configurable, and a cached token stops working at exp', async () => {
  const short = await startServer({ config: '[auth]\nsystem_token_lifetime_s = 30\nclock_skew_s = 0\n' });
  try {
    const c = await addClient(short.dataDir, { name: 'short', scope: 'system/*.cruds' });
    const res = await short.tokenResponse(c);
    assert.equal(res.status, 200, res.body);
    const { access_token: issued, expires_in: expiresIn } = res.json();
    assert.equal(expiresIn, 30);
    const { payload } = decodeJwt(issued);
    assert.equal(payload.exp - payload.iat, 30);

    // A token that expires in 2 s, signed with this server's key: accepted (and so cached),
    // then refused once exp has passed, cache or not.
    const key = crypto.createPrivateKey(fs.readFileSync(path.join(short.dataDir, 'keys', 'token-signing.pem')));
    const { kid } = (await short.request('GET', '/oauth2/jwks')).json().keys[0];
    const now = Math.floor(Date.now() / 1000);
    const soon = signJwt({ alg: 'ES256', typ: 'at+jwt', kid }, {
      iss: short.origin, aud: `${short.origin}/fhir`, sub: c.client_id, client_id: c.client_id,
      scope: 'system/*.cruds', roles: ['clinician'], jti: crypto.randomBytes(16).toString('hex'),
      iat: now, exp: now + 2,
    }, key);
    const h = { ...bearer(soon), 'content-type': 'application/fhir+json' };
    const created = await short.request('POST', '/fhir/Patient', { headers: h, body: PATIENT });
    assert.equal(created.status, 201, created.body);
    const target = `/fhir/Patient/${created.json().id}`;
    assert.equal((await short.request('GET', target, { headers: bearer(soon) })).status, 200);
    await new Promise((r) => setTimeout(r, (now + 3) * 1000 - Date.now() + 200));
    const late = await short.request('GET', target, { headers: bearer(soon) });
    assert.equal(late.status, 401, `a token past exp was accepted: ${late.body}`);
    assert.equal(late.headers['www-authenticate'], WWW_AUTHENTICATE);
    // The issued 30 s token still works.
    assert.equal((await short.request('GET', target, { headers: bearer(issued) })).status, 200);
  } finally {
    await short.dispose();
  }
});

test('a token signed by another key: 401', async () => {
  const { kid } = (await jwks()).keys[0];
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  assertUnauthorized(await readPatient(signJwt({ alg: 'ES256', typ: 'at+jwt', kid }, goodClaims(), privateKey)), 'foreign key');
});

test('an access token in the query string: 401, even next to a valid header', async () => {
  const target = `/fhir/Patient/${patientId}?access_token=${encodeURIComponent(adminToken)}`;
  assertUnauthorized(await server.request('GET', target), 'token in the query only');
  assertUnauthorized(await server.request('GET', target, { headers: bearer(adminToken) }), 'token in the query and header');
});

test('scope system/Patient.rs: Patient read allowed, everything else 403', async () => {
  const client = await addClient(server.dataDir, { name: 'reader', scope: 'system/Patient.rs' });
  secrets.push(client.client_secret);
  const t = await server.token(client);
  assert.equal(decodeJwt(t).payload.scope, 'system/Patient.rs');
  const h = bearer(t);
  const w = { ...h, 'content-type': 'application/fhir+json' };

  assert.equal((await server.request('GET', `/fhir/Patient/${patientId}`, { headers: h })).status, 200);
  assert.equal((await server.request('GET', `/fhir/Patient/${patientId}/_history/1`, { headers: h })).status, 200);
  assert.equal((await server.request('GET', `/fhir/Patient/${patientId}/_history`, { headers: h })).status, 200);
  // Search (the s of .rs): a searchset Bundle; the name search is a case-insensitive
  // starts-with (search.html#string), so 'x' matches nothing and 'quill' the one Patient.
  const none = await server.request('GET', '/fhir/Patient?name=x', { headers: h });
  assert.equal(none.status, 200, none.body);
  assert.equal(none.json().resourceType, 'Bundle');
  assert.equal(none.json().type, 'searchset');
  assert.equal(none.json().entry, undefined, `no match for name=x: ${none.body}`);
  const some = await server.request('GET', '/fhir/Patient?name=quill', { headers: h });
  assert.equal(some.status, 200, some.body);
  assert.equal(some.json().type, 'searchset');
  assert.deepEqual(some.json().entry.map((e) => [e.resource.id, e.search.mode]), [[patientId, 'match']]);
  assert.equal(some.json().entry[0].resource.name[0].family, 'Quillfeather');

  const denied = [
    ['POST', '/fhir/Patient', PATIENT],
    ['POST', '/fhir/Patient', { resourceType: 'Patient', birthDate: 'not-a-date' }],  // 403 before validation
    ['PUT', `/fhir/Patient/${patientId}`, { ...PATIENT, id: patientId }],
    ['DELETE', `/fhir/Patient/${patientId}`],
    ['GET', `/fhir/Observation/${observationId}`],
    ['GET', `/fhir/Observation/${observationId}/_history/1`],
    ['GET', `/fhir/Observation/${observationId}/_history`],
    ['GET', '/fhir/Observation/_history'],
    ['GET', '/fhir/Observation'],
    ['GET', '/fhir/Observation/no-such-id'],
    ['POST', '/fhir/Observation', OBSERVATION],
  ];
  for (const [method, target, body] of denied) {
    const res = await server.request(method, target, { headers: body ? w : h, body });
    assertOutcome(assert, res, 403, 'forbidden');
    assert.equal(res.headers['www-authenticate'], undefined, `${method} ${target}: 403 is not a 401`);
    assert.ok(!res.body.includes('29463-7') && !res.body.includes('Quillfeather'), 'no resource content in a 403');
  }
  // Nothing changed.
  const p = await readPatient(adminToken);
  assert.equal(p.json().meta.versionId, '1');
});

test('clients add --json prints one JSON object; the plain form prints two lines', async () => {
  const j = await runCli(['clients', 'add', '--name', 'json-client', '--scope', 'system/*.rs',
    '--roles', 'clinician', '--data-dir', server.dataDir, '--json']);
  assert.equal(j.code, 0, j.stderr);
  const obj = JSON.parse(j.stdout);
  assert.deepEqual(Object.keys(obj).sort(), ['client_id', 'client_secret']);
  assert.ok(obj.client_id.length > 0 && obj.client_secret.length >= 32, 'a long generated secret');
  assert.equal(j.stdout.trim().split('\n').length, 1);
  secrets.push(obj.client_secret);

  const p = await runCli(['clients', 'add', '--name', 'plain-client', '--scope', 'system/*.rs',
    '--roles', 'clinician', '--data-dir', server.dataDir]);
  assert.equal(p.code, 0, p.stderr);
  const m = /^client_id=(\S+)\nclient_secret=(\S+)\n$/.exec(p.stdout);
  assert.ok(m, `two lines client_id=... and client_secret=...: ${JSON.stringify(p.stdout)}`);
  const plain = { client_id: m[1], client_secret: m[2] };
  secrets.push(plain.client_secret);
  assert.notEqual(plain.client_id, obj.client_id);
  assert.notEqual(plain.client_secret, obj.client_secret);

  // Both work at once against the running server, with the registered scope.
  for (const c of [obj, plain]) {
    const res = await server.tokenResponse(c);
    assert.equal(res.status, 200, res.body);
    assert.equal(res.json().scope, 'system/*.rs');
    assert.equal((await readPatient(res.json().access_token)).status, 200);
  }
});

test('clients add: usage errors exit 2', async () => {
  const noName = await runCli(['clients', 'add', '--scope', 'system/*.rs', '--data-dir', server.dataDir]);
  assert.equal(noName.code, 2, noName.stderr);
  const badScope = await runCli(['clients', 'add', '--name', 'x', '--scope', 'user/Patient.rs', '--data-dir', server.dataDir]);
  assert.equal(badScope.code, 2, badScope.stderr);
});

test('/healthz and /readyz answer without a token and reveal nothing else', async () => {
  for (const [target, body] of [['/healthz', { status: 'ok' }], ['/readyz', { status: 'ready' }]]) {
    const res = await server.request('GET', target);
    assert.equal(res.status, 200, `${target}: ${res.body}`);
    assertCommonHeaders(assert, res, { contentType: PLAIN_JSON });
    assert.deepEqual(res.json(), body, `${target} body`);
    const withJunk = await server.request('GET', target, { headers: { authorization: 'Bearer junk' } });
    assert.equal(withJunk.status, 200);
    assert.deepEqual(withJunk.json(), body);
    const post = await server.request('POST', target, { headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET');
  }
});

test('SIGTERM exits 0; no client secret is stored in the clear', async () => {
  const exit = await server.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(secrets.length >= 4);
  const files = await listFiles(server.dataDir);
  assert.ok(files.some((f) => f.endsWith('phigate.db')), 'the database is there');
  for (const f of files) {
    const bytes = fs.readFileSync(f);
    for (const s of secrets) assert.equal(bytes.indexOf(s), -1, `a client secret in ${f}`);
  }
  for (const s of secrets) {
    assert.equal(server.stderrBytes().indexOf(s), -1, 'a client secret in the server log');
    assert.equal(server.stderrBytes().indexOf(adminToken), -1, 'a token in the server log');
  }
});
