// phigate as a resource server for external OpenID providers ([[auth.oidc]], issue 3):
// access tokens minted by oidc-provider (RS256 and ES256, RFC 9068 JWTs through resource
// indicators, RFC 8707) and fetched with openid-client, keys found through discovery over
// HTTPS verified against the provider's own certificate, audience checks, key caching when
// the provider is down, and a person's token without a second factor (RFC 9470).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import * as client from 'openid-client';
import * as jose from 'jose';
import {
  startServer, makeTempRoot, bearer, decodeJwt, assertOutcome, WWW_AUTHENTICATE,
} from './harness.mjs';
import { startOidcProvider, startFakeIssuer, signingKey, oidcToml, removeDir } from './idp.mjs';

const AUDIENCE = 'urn:phigate:test-fhir';      // what phigate's [[auth.oidc]] expects
const OTHER_AUDIENCE = 'urn:phigate:other-fhir'; // what a second phigate expects
const ELSEWHERE = 'urn:example:not-phigate';     // a resource phigate is not
const SCOPES = 'system/*.cruds system/*.rs';
// RFC 9470 §3.
const INSUFFICIENT = 'Bearer realm="phigate", error="insufficient_user_authentication", '
  + 'error_description="multi-factor authentication is required"';

const PATIENT = { resourceType: 'Patient', name: [{ family: 'Oidcprovider', given: ['Ada'] }], birthDate: '1970-05-06' };

let root;
let rs;       // oidc-provider signing access tokens with RS256
let es;       // oidc-provider signing access tokens with ES256
let fake;     // discovery + JWKS whose key the test holds
let server;   // phigate trusting all three
const others = [];  // further phigate servers, disposed in after()

async function providerToken(idp, { scope = 'system/*.cruds', resource = AUDIENCE } = {}) {
  const c = idp.clients[0];
  const config = await client.discovery(new URL(idp.issuer), c.client_id, undefined,
    client.ClientSecretBasic(c.client_secret), { [client.customFetch]: idp.fetch });
  const res = await client.clientCredentialsGrant(config, { scope, resource });
  assert.equal(res.token_type, 'bearer');
  assert.equal(res.scope, scope);
  return res.access_token;
}

const fhirWrite = (token) => ({ ...bearer(token), 'content-type': 'application/fhir+json' });

// A Patient created once with an ES256 provider token; resolves its path.
let patientPath;
async function patientTarget() {
  if (patientPath) return patientPath;
  const created = await server.request('POST', '/fhir/Patient', { headers: fhirWrite(await providerToken(es)), body: PATIENT });
  assert.equal(created.status, 201, created.body);
  patientPath = `/fhir/Patient/${created.json().id}`;
  return patientPath;
}

function assertInvalidToken(res, what) {
  assert.equal(res.status, 401, `${what}: expected 401, got ${res.status}: ${res.body}`);
  assert.equal(res.headers['www-authenticate'], WWW_AUTHENTICATE, `${what}: WWW-Authenticate`);
  assertOutcome(assert, res, 401, 'login');
  assert.ok(!res.body.includes('Oidcprovider'), `${what}: no resource content`);
}

before(async () => {
  root = await makeTempRoot('phigate-oidc-');
  const resources = { [AUDIENCE]: SCOPES, [OTHER_AUDIENCE]: SCOPES, [ELSEWHERE]: SCOPES };
  [rs, es, fake] = await Promise.all([
    startOidcProvider({ dir: root, alg: 'RS256', resources }),
    startOidcProvider({ dir: root, alg: 'ES256', resources }),
    startFakeIssuer({ dir: root, alg: 'ES256' }),
  ]);
  server = await startServer({
    config: [rs, es, fake].map((p) => oidcToml({ issuer: p.issuer, audience: AUDIENCE, caFile: p.caFile })).join('\n'),
  });
});

after(async () => {
  for (const s of [server, ...others]) await s?.dispose().catch(() => {});
  for (const p of [rs, es, fake]) await p?.stop().catch(() => {});
  await removeDir(root);
});

test('RS256 and ES256 access tokens from oidc-provider create and read a Patient', async () => {
  for (const idp of [rs, es]) {
    const token = await providerToken(idp);
    const { header, payload } = decodeJwt(token);
    assert.equal(header.alg, idp.signing.alg);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(payload.iss, idp.issuer);
    assert.equal(payload.aud, AUDIENCE);
    assert.equal(payload.sub, idp.clients[0].client_id, 'a client credentials token: sub is the client');

    const created = await server.request('POST', '/fhir/Patient', { headers: fhirWrite(token), body: PATIENT });
    assert.equal(created.status, 201, `${header.alg}: ${created.body}`);
    const id = created.json().id;
    assert.equal(created.headers.location, `${server.baseUrl}/Patient/${id}/_history/1`);
    const read = await server.request('GET', `/fhir/Patient/${id}`, { headers: bearer(token) });
    assert.equal(read.status, 200, read.body);
    assert.deepEqual(read.json().name, PATIENT.name);
    assert.equal(read.json().birthDate, PATIENT.birthDate);
  }
});

test('the scope of a provider token limits it: system/*.rs reads but cannot create', async () => {
  const writer = await providerToken(es);
  const created = await server.request('POST', '/fhir/Patient', { headers: fhirWrite(writer), body: PATIENT });
  assert.equal(created.status, 201, created.body);
  const reader = await providerToken(es, { scope: 'system/*.rs' });
  const read = await server.request('GET', `/fhir/Patient/${created.json().id}`, { headers: bearer(reader) });
  assert.equal(read.status, 200, read.body);
  const denied = await server.request('POST', '/fhir/Patient', { headers: fhirWrite(reader), body: PATIENT });
  assertOutcome(assert, denied, 403, 'forbidden');
  assert.equal(denied.headers['www-authenticate'], undefined);
});

test('a provider token for another resource (aud) is refused', async () => {
  for (const idp of [rs, es]) {
    const token = await providerToken(idp, { resource: ELSEWHERE });
    assert.equal(decodeJwt(token).payload.aud, ELSEWHERE);
    assertInvalidToken(await server.request('GET', '/fhir/Patient', { headers: bearer(token) }),
      `${idp.signing.alg} token with aud ${ELSEWHERE}`);
    assertInvalidToken(await server.request('POST', '/fhir/Patient', { headers: fhirWrite(token), body: PATIENT }),
      `${idp.signing.alg} create with aud ${ELSEWHERE}`);
  }
});

test('the same token on a phigate configured with another audience: 401; a token for that audience works there', async () => {
  const other = await startServer({
    config: oidcToml({ issuer: rs.issuer, audience: OTHER_AUDIENCE, caFile: rs.caFile }),
  });
  others.push(other);
  const token = await providerToken(rs);
  // Control: the token is good where its audience is configured.
  const created = await server.request('POST', '/fhir/Patient', { headers: fhirWrite(token), body: PATIENT });
  assert.equal(created.status, 201, created.body);
  assertInvalidToken(await other.request('POST', '/fhir/Patient', { headers: fhirWrite(token), body: PATIENT }),
    'aud urn:phigate:test-fhir at a server expecting urn:phigate:other-fhir');

  const forOther = await providerToken(rs, { resource: OTHER_AUDIENCE });
  const there = await other.request('POST', '/fhir/Patient', { headers: fhirWrite(forOther), body: PATIENT });
  assert.equal(there.status, 201, there.body);
  assertInvalidToken(await server.request('GET', `/fhir/Patient/${created.json().id}`, { headers: bearer(forOther) }),
    'aud urn:phigate:other-fhir at the first server');
  await other.dispose();
});

test('a token with the provider\'s claims signed by a key it does not publish: 401', async () => {
  for (const idp of [rs, es]) {
    const genuine = decodeJwt(await providerToken(idp)).payload;
    const now = Math.floor(Date.now() / 1000);
    const claims = { ...genuine, jti: crypto.randomBytes(16).toString('hex'), iat: now, exp: now + 300 };
    const stranger = signingKey(idp.signing.alg);
    for (const kid of [stranger.kid, idp.signing.kid]) {
      const forged = await new jose.SignJWT(claims)
        .setProtectedHeader({ alg: idp.signing.alg, typ: 'at+jwt', kid })
        .sign(stranger.privateKey);
      assertInvalidToken(await server.request('GET', '/fhir/Patient', { headers: bearer(forged) }),
        `${idp.signing.alg} token signed by an unpublished key, kid ${kid === stranger.kid ? 'new' : 'the provider\'s'}`);
    }
  }
});

test('a person\'s token without a second factor: 401 insufficient_user_authentication; with one: accepted', async () => {
  const target = await patientTarget();

  const now = Math.floor(Date.now() / 1000);
  const person = (extra) => new jose.SignJWT({
    iss: fake.issuer, aud: AUDIENCE, sub: 'person-7c1e', client_id: 'some-app',
    scope: 'user/*.rs', roles: ['clinician'], jti: crypto.randomBytes(16).toString('hex'),
    iat: now, exp: now + 300, auth_time: now - 5, ...extra,
  }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: fake.key.kid }).sign(fake.key.privateKey);

  // Control: the same shape with a second factor is accepted, so the refusals below are
  // about amr alone.
  const withMfa = await server.request('GET', target, { headers: bearer(await person({ amr: ['pwd', 'otp'] })) });
  assert.equal(withMfa.status, 200, `a person's token with amr otp: ${withMfa.body}`);

  for (const amr of [['pwd'], [], undefined, ['pwd', 'kba']]) {
    const res = await server.request('GET', target, { headers: bearer(await person({ amr })) });
    assert.equal(res.status, 401, `amr ${JSON.stringify(amr)}: ${res.body}`);
    assert.equal(res.headers['www-authenticate'], INSUFFICIENT, `amr ${JSON.stringify(amr)}: WWW-Authenticate`);
    assertOutcome(assert, res, 401, 'login');
    assert.ok(!res.body.includes('Oidcprovider'), 'no resource content');
  }
  // The fake issuer was asked for discovery and keys over TLS; nothing else.
  assert.ok(fake.stats.requests.includes('GET /.well-known/openid-configuration'), JSON.stringify(fake.stats.requests));
  assert.ok(fake.stats.requests.includes('GET /jwks'), JSON.stringify(fake.stats.requests));
  assert.deepEqual([...new Set(fake.stats.requests)].sort(), ['GET /.well-known/openid-configuration', 'GET /jwks']);
});

test('a provider token typed JWT (an ID token shape) is refused: require_at_jwt', async () => {
  const now = Math.floor(Date.now() / 1000);
  const token = await new jose.SignJWT({
    iss: fake.issuer, aud: AUDIENCE, sub: 'svc', client_id: 'svc', scope: 'system/*.rs', roles: ['clinician'],
    jti: crypto.randomBytes(16).toString('hex'), iat: now, exp: now + 300,
  }).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: fake.key.kid }).sign(fake.key.privateKey);
  assertInvalidToken(await server.request('GET', '/fhir/Patient', { headers: bearer(token) }), 'typ JWT');
  const typed = await new jose.SignJWT({
    iss: fake.issuer, aud: AUDIENCE, sub: 'svc', client_id: 'svc', scope: 'system/*.rs', roles: ['clinician'],
    jti: crypto.randomBytes(16).toString('hex'), iat: now, exp: now + 300,
  }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: fake.key.kid }).sign(fake.key.privateKey);
  const res = await server.request('GET', await patientTarget(), { headers: bearer(typed) });
  assert.equal(res.status, 200, `control: the same token typed at+jwt is accepted: ${res.body}`);
});

test('provider stopped: a new token signed with a cached key still works, an unknown key is refused', async () => {
  // Both tokens are minted now but the second is first presented after the provider is
  // gone, so its verification needs the key phigate cached (not a cached verification).
  const first = await providerToken(rs);
  const unused = await providerToken(rs);
  const created = await server.request('POST', '/fhir/Patient', { headers: fhirWrite(first), body: PATIENT });
  assert.equal(created.status, 201, created.body);
  const target = `/fhir/Patient/${created.json().id}`;
  const genuine = decodeJwt(unused).payload;

  await rs.stop();
  const read = await server.request('GET', target, { headers: bearer(unused) });
  assert.equal(read.status, 200, `a token signed by a cached key after the provider stopped: ${read.body}`);

  const now = Math.floor(Date.now() / 1000);
  const rotated = signingKey('RS256');
  const fromNewKey = await new jose.SignJWT({ ...genuine, jti: crypto.randomBytes(16).toString('hex'), iat: now, exp: now + 300 })
    .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: rotated.kid })
    .sign(rotated.privateKey);
  assertInvalidToken(await server.request('GET', target, { headers: bearer(fromNewKey) }),
    'a token signed by a key no fetch has produced, provider unreachable');
  // Still refused on a second try (no key appears out of nowhere), and the first token
  // and the cached key keep working.
  assertInvalidToken(await server.request('GET', target, { headers: bearer(fromNewKey) }), 'second try');
  assert.equal((await server.request('GET', target, { headers: bearer(first) })).status, 200);
});
