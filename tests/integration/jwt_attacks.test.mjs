// JWT attack suite (issue 3 §4): every forged, misused or no-longer-valid bearer token is
// refused with 401 and `WWW-Authenticate: Bearer realm="phigate", error="invalid_token"`,
// and header-directed key loading (jku, x5u, jwk, x5c) never makes phigate connect
// anywhere (RFC 8725 §3.1, §3.10; RFC 9068 §4; RFC 6750 §2.3).
//
// Forged tokens start from the claims of a genuine token. Those that test a claim are
// signed with the server's own key (read from its data dir) and have a control that
// passes, so each refusal is about the one thing changed; those that test the key or the
// algorithm are signed with keys phigate does not trust.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import * as jose from 'jose';
import {
  startServer, addClient, addUser, addApp, runCli, bearer, decodeJwt, assertOutcome,
  enrollThroughPages, openidConfig, authorizationCodeLogin, WWW_AUTHENTICATE, sleep,
} from './harness.mjs';
import { TotpSequence } from './totp.mjs';
import { makeCertificate, signingKey } from './idp.mjs';

const PATIENT = { resourceType: 'Patient', name: [{ family: 'Attacksuite', given: ['Eve'] }], birthDate: '1990-02-03' };
const REDIRECT_URI = 'http://127.0.0.1:47231/cb';  // never contacted: the test takes the URL
const PASSWORD = `lantern-Quarry-${crypto.randomBytes(4).toString('hex')}-harbor`;

let server;
let admin;            // client credentials client, system/*.cruds
let genuine;          // a genuine access token of admin
let genuineClaims;
let patientPath;
let serverKey;        // the server's private signing key (from the data dir)
let serverKid;
let person;           // {access_token, id_token, refresh_token} of alice, from the code flow
let app;              // the registered app alice logs in to
let oidcConfig;

function b64url(obj) { return Buffer.from(JSON.stringify(obj)).toString('base64url'); }

function hs256(header, payload, secret) {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function es256(header, payload, key) {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const sig = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

// The genuine token's claims with a fresh jti and times, then `changes` (undefined deletes).
function claims(changes = {}) {
  const now = Math.floor(Date.now() / 1000);
  const out = { ...genuineClaims, jti: crypto.randomBytes(16).toString('hex'), iat: now, exp: now + 300 };
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

const ownHeader = () => ({ alg: 'ES256', typ: 'at+jwt', kid: serverKid });

async function read(token) {
  return server.request('GET', patientPath, { headers: token === undefined ? {} : bearer(token) });
}

function assertInvalidToken(res, what) {
  assert.equal(res.status, 401, `${what}: expected 401, got ${res.status}: ${res.body}`);
  assert.equal(res.headers['www-authenticate'], WWW_AUTHENTICATE, `${what}: WWW-Authenticate`);
  assertOutcome(assert, res, 401, 'login');
  assert.ok(!res.body.includes('Attacksuite'), `${what}: no resource content`);
}

before(async () => {
  server = await startServer();
  admin = await addClient(server.dataDir, { name: 'attack-admin', scope: 'system/*.cruds' });
  genuine = await server.token(admin);
  genuineClaims = decodeJwt(genuine).payload;
  const created = await server.request('POST', '/fhir/Patient', {
    headers: { ...bearer(genuine), 'content-type': 'application/fhir+json' }, body: PATIENT,
  });
  assert.equal(created.status, 201, created.body);
  patientPath = `/fhir/Patient/${created.json().id}`;
  serverKey = crypto.createPrivateKey(fs.readFileSync(path.join(server.dataDir, 'keys', 'token-signing.pem')));
  const jwks = (await server.request('GET', '/oauth2/jwks')).json();
  serverKid = jwks.keys[0].kid;

  // A person: alice, enrolled through the pages, logged in through the code flow.
  const alice = await addUser(server.dataDir, { username: 'alice', roles: 'clinician', fhirUser: 'Practitioner/123' });
  let totp;
  await enrollThroughPages(server, alice.enrollment_url, PASSWORD, async (secret) => {
    totp = new TotpSequence(secret);
    return (await totp.next()).code;
  });
  app = await addApp(server.dataDir, {
    name: 'attack-app', scope: 'openid fhirUser offline_access user/*.cruds', redirectUris: [REDIRECT_URI],
  });
  oidcConfig = await openidConfig(server, app);
  const { tokens } = await authorizationCodeLogin(server, oidcConfig, {
    username: 'alice', password: PASSWORD, code: async () => (await totp.next()).code,
    scope: 'openid fhirUser offline_access user/*.cruds', redirectUri: REDIRECT_URI,
  });
  person = tokens;
});

after(async () => {
  await server?.dispose();
});

test('control: the genuine token and a token crafted with the server key are accepted', async () => {
  assert.equal((await read(genuine)).status, 200);
  assert.equal((await read(es256(ownHeader(), claims(), serverKey))).status, 200);
});

test('alg none: refused, whatever its spelling and with or without kid', async () => {
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    for (const header of [{ alg, typ: 'at+jwt' }, { alg, typ: 'at+jwt', kid: serverKid }]) {
      const input = `${b64url(header)}.${b64url(claims())}`;
      assertInvalidToken(await read(`${input}.`), `alg ${alg}${header.kid ? ' with kid' : ''}`);
      // The genuine token's signature kept behind an alg none header.
      assertInvalidToken(await read(`${input}.${genuine.split('.')[2]}`), `alg ${alg} with a signature`);
    }
  }
});

test('HS256 keyed with the server\'s public key (JWK text, JWKS text, PEM, DER): refused', async () => {
  const jwksText = (await server.request('GET', '/oauth2/jwks')).body;
  const jwk = JSON.parse(jwksText).keys[0];
  const publicKey = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' });
  const secrets = {
    'JWK JSON': JSON.stringify(jwk),
    'JWKS document': jwksText,
    PEM: pem,
    'PEM without trailing newline': pem.trimEnd(),
    DER: publicKey.export({ type: 'spki', format: 'der' }),
  };
  for (const [what, secret] of Object.entries(secrets)) {
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const token = await new jose.SignJWT(claims())
        .setProtectedHeader({ alg, typ: 'at+jwt', kid: serverKid })
        .sign(typeof secret === 'string' ? new TextEncoder().encode(secret) : new Uint8Array(secret));
      assertInvalidToken(await read(token), `${alg} keyed with the ${what}`);
    }
  }
});

test('claims: wrong aud, wrong iss, expired, nbf beyond the skew, missing exp: refused (signed with the server key)', async () => {
  const now = Math.floor(Date.now() / 1000);
  const cases = {
    'wrong aud': { aud: `${server.origin}/not-fhir` },
    'aud of another server': { aud: 'https://127.0.0.1:1/fhir' },
    'wrong aud in an array': { aud: ['https://fhir.example.org/fhir'] },
    'wrong iss': { iss: 'https://idp.example.org' },
    'iss with a trailing slash': { iss: `${server.origin}/` },
    expired: { iat: now - 900, exp: now - 120 },
    'nbf 120 s ahead (skew is 60 s)': { nbf: now + 120 },
    'missing exp': { exp: undefined },
  };
  for (const [what, change] of Object.entries(cases)) {
    assertInvalidToken(await read(es256(ownHeader(), claims(change), serverKey)), what);
  }
  // Within the skew: accepted, so the refusals above are not about the crafting.
  assert.equal((await read(es256(ownHeader(), claims({ nbf: now + 30 }), serverKey))).status, 200, 'nbf within the skew');
});

test('kid injection (path traversal, SQL): refused, with HMAC over empty or /dev/null content and with foreign keys', async () => {
  const foreign = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  for (const kid of ['../../../../dev/null', '/dev/null', '../../../../../../etc/passwd',
    "' OR '1'='1", "x' UNION SELECT 'AAAA' --", `${serverKid}' OR '1'='1`]) {
    const c = claims();
    assertInvalidToken(await read(hs256({ alg: 'HS256', typ: 'at+jwt', kid }, c, Buffer.alloc(0))), `HS256 empty secret, kid ${kid}`);
    assertInvalidToken(await read(hs256({ alg: 'HS256', typ: 'at+jwt', kid }, c, 'AAAA')), `HS256 "AAAA", kid ${kid}`);
    assertInvalidToken(await read(es256({ alg: 'ES256', typ: 'at+jwt', kid }, c, foreign)), `ES256 foreign key, kid ${kid}`);
    assertInvalidToken(await read(es256({ alg: 'ES256', typ: 'at+jwt', kid }, c, serverKey)), `ES256 server key, kid ${kid}`);
  }
  // The server still answers normally afterwards.
  assert.equal((await read(genuine)).status, 200);
});

test('jku, x5u, jwk and x5c headers: refused, and phigate connects nowhere', async (t) => {
  const attacker = signingKey('ES256');
  const dir = fs.mkdtempSync(path.join(server.root, 'attacker-'));
  const { cert, key } = await makeCertificate(dir, 'attacker');
  const connections = { http: 0, https: 0 };
  // Both listeners serve the attacker's JWKS or certificate, whatever is asked.
  const serve = (req, res) => {
    if (req.url.endsWith('.pem')) {
      res.writeHead(200, { 'content-type': 'application/pem-certificate-chain' });
      res.end(cert);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [attacker.publicJwk] }));
  };
  const plain = http.createServer(serve);
  const secure = https.createServer({ cert, key }, serve);
  plain.on('connection', () => { connections.http += 1; });
  secure.on('connection', () => { connections.https += 1; });
  await new Promise((r) => plain.listen(0, '127.0.0.1', r));
  await new Promise((r) => secure.listen(0, '127.0.0.1', r));
  t.after(() => {
    plain.close();
    secure.close();
    plain.closeAllConnections();
    secure.closeAllConnections();
  });
  const httpBase = `http://127.0.0.1:${plain.address().port}`;
  const httpsBase = `https://127.0.0.1:${secure.address().port}`;
  const certDer = new crypto.X509Certificate(cert).raw.toString('base64');

  const headers = {
    'jku http': { jku: `${httpBase}/jwks.json` },
    'jku https': { jku: `${httpsBase}/jwks.json` },
    'x5u http': { x5u: `${httpBase}/cert.pem` },
    'x5u https': { x5u: `${httpsBase}/cert.pem` },
    'embedded jwk': { jwk: attacker.publicJwk },
    'x5c (the attacker certificate)': { x5c: [certDer] },
  };
  const certKey = crypto.createPrivateKey(key);
  for (const [what, extra] of Object.entries(headers)) {
    for (const kid of [attacker.kid, serverKid]) {
      // Each token is signed by the key its header points at.
      const signer = extra.x5c || extra.x5u ? certKey : attacker.privateKey;
      const token = es256({ alg: 'ES256', typ: 'at+jwt', kid, ...extra }, claims(), signer);
      assertInvalidToken(await read(token), `${what}, kid ${kid === serverKid ? 'of the server' : 'of the attacker'}`);
    }
  }
  // Give a fetch that would run in the background time to arrive.
  await sleep(500);
  assert.deepEqual(connections, { http: 0, https: 0 }, 'phigate connected to a URL from a token header');
  // Control: the listeners are reachable, so zero connections means phigate never tried.
  await new Promise((resolve, reject) => {
    http.get(`${httpBase}/jwks.json`, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject);
  });
  assert.equal(connections.http, 1);
});

test('phigate\'s own ID token as a bearer token: refused', async () => {
  const { header, payload } = decodeJwt(person.id_token);
  assert.equal(header.typ, 'JWT');
  assert.equal(payload.aud, app.client_id);
  assertInvalidToken(await read(person.id_token), 'ID token');
  // Control: the access token of the same login is accepted.
  assert.equal((await read(person.access_token)).status, 200);
});

test('a refresh token as a bearer token: refused', async () => {
  assert.equal(typeof person.refresh_token, 'string');
  assertInvalidToken(await read(person.refresh_token), 'refresh token');
});

test('a token in the query string: refused, alone and next to a valid header', async () => {
  for (const token of [genuine, person.access_token]) {
    const target = `${patientPath}?access_token=${encodeURIComponent(token)}`;
    assertInvalidToken(await server.request('GET', target), 'access_token in the query');
    assertInvalidToken(await server.request('GET', target, { headers: bearer(token) }), 'access_token in the query and the header');
  }
  // A form-encoded access_token in a POST body (RFC 6750 §2.2) is not accepted either.
  const form = await server.request('POST', '/fhir/Patient', {
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `access_token=${encodeURIComponent(genuine)}`,
  });
  assertInvalidToken(form, 'access_token in a form body');
});

test('a token signed by an unknown key: refused, with the server\'s kid and with another', async () => {
  const stranger = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  assertInvalidToken(await read(es256(ownHeader(), claims(), stranger)), 'unknown key, server kid');
  assertInvalidToken(await read(es256({ ...ownHeader(), kid: 'rotated-2' }, claims(), stranger)), 'unknown key, unknown kid');
  const rsa = signingKey('RS256');
  const rsToken = await new jose.SignJWT(claims()).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: serverKid }).sign(rsa.privateKey);
  assertInvalidToken(await read(rsToken), 'RS256, unknown key');
});

test('a disabled user\'s token stops working within 2 s, and the session cannot be refreshed', async () => {
  // Control: alice's token works now (and is therefore cached by the verifier).
  assert.equal((await read(person.access_token)).status, 200);
  const r = await runCli(['users', 'disable', 'alice', '--data-dir', server.dataDir]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'disabled alice\n');
  const disabledAt = Date.now();
  let res;
  for (;;) {
    res = await read(person.access_token);
    if (res.status !== 200 || Date.now() - disabledAt > 3000) break;
    await sleep(100);
  }
  const elapsed = Date.now() - disabledAt;
  assertInvalidToken(res, 'token of a disabled user');
  assert.ok(elapsed <= 2000, `the token kept working ${elapsed} ms after users disable`);
  // Still refused (not a transient failure).
  assertInvalidToken(await read(person.access_token), 'token of a disabled user, again');

  const oidc = await import('openid-client');
  await assert.rejects(oidc.refreshTokenGrant(oidcConfig, person.refresh_token), (err) => {
    assert.equal(err.error, 'invalid_grant', `${err.message} ${JSON.stringify(err.cause ?? {})}`);
    assert.equal(err.status, 400);
    return true;
  });
});
