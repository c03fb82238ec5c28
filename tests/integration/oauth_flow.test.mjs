// The built-in authorization server end to end (issue 3), with clients others wrote:
// a user created by `phigate users add`, enrolled over HTTP (password, then a TOTP code
// computed by otpauth), an app registered by `phigate clients add`, and openid-client (v6)
// doing discovery, the authorization code flow with PKCE (RFC 7636), the token, refresh,
// revocation (RFC 7009) and introspection (RFC 7662) requests; the person's login pages
// driven as a browser would (cookies, CSRF tokens from the forms).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import * as client from 'openid-client';
import {
  startServer, addUser, addApp, listUsers, runCli, bearer, decodeJwt, PageClient, parseForms,
  elementText, pageValues, fillForm, onServer, openidConfig, enrollThroughPages,
  authorizationCodeLogin, WWW_AUTHENTICATE,
} from './harness.mjs';
import { TotpSequence, codeForStep, currentStep } from './totp.mjs';

const REDIRECT_URI = 'http://127.0.0.1:47232/cb';  // never contacted: the test takes the URL
const SCOPE = 'openid fhirUser offline_access user/*.cruds';
const PATIENT = { resourceType: 'Patient', name: [{ family: 'Flowtester', given: ['Alice'] }], birthDate: '1985-07-08' };
// The one message each failed step shows, whatever the cause (docs/authentication.md:
// "even the right password is refused with the same message as a wrong one").
const LOGIN_FAILED = 'The username or password is incorrect.';
const CODE_FAILED = /^The code is incorrect or has expired\./;
const LINK_INVALID = 'This enrollment link is invalid, has already been used, or has expired. Ask your administrator for a new one.';
const CSP = /^default-src 'none'; form-action 'self'( [^;]+)?; frame-ancestors 'none'; base-uri 'none'$/;

let server;
let alice;        // {user_id, enrollment_url}
let alicePassword;
let aliceTotp;    // TotpSequence
let app;          // {client_id, client_secret}
let config;       // openid-client Configuration for app
let login1;       // the first complete login: {tokens, location, checks}

// Unicode on purpose: the policy counts code points and the forms carry UTF-8.
const password = (who) => `${who === 'alice' ? 'Meadow-über' : 'Granite-Straße'}-lantern-${crypto.randomBytes(5).toString('hex')}`;

function assertHtmlPage(res, what) {
  assert.equal(res.headers['content-type'], 'text/html; charset=utf-8', `${what}: Content-Type`);
  assert.match(res.headers['content-security-policy'] ?? '', CSP, `${what}: Content-Security-Policy`);
  assert.equal(res.headers['referrer-policy'], 'no-referrer', `${what}: Referrer-Policy`);
  assert.equal(res.headers['cache-control'], 'no-store', `${what}: Cache-Control`);
  assert.ok(!/<script\b/i.test(res.body), `${what}: no script`);
  assert.ok(!/\b(src|href)\s*=\s*["']?(https?:)?\/\//i.test(res.body), `${what}: no external asset`);
}

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.dispose();
});

test('users add prints a user id and a one-time enrollment link; the user is pending', async () => {
  alice = await addUser(server.dataDir, { username: 'Alice', roles: 'clinician', fhirUser: 'Practitioner/123' });
  assert.match(alice.enrollment_url, /\/oauth2\/enroll\?token=[A-Za-z0-9_-]{43}$/);
  const users = await listUsers(server.dataDir);
  assert.deepEqual(users, [{ user_id: alice.user_id, username: 'alice', roles: 'clinician', state: 'pending', fhir_user: 'Practitioner/123' }]);
  // Usernames are unique, case-insensitively.
  const again = await runCli(['users', 'add', '--username', 'ALICE', '--roles', 'clinician', '--data-dir', server.dataDir]);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /a user with this username exists/);
  assert.ok(!again.stdout.includes('enrollment_url'));
});

test('enrollment over HTTP: policy, CSRF, the TOTP secret, a wrong then the right first code', async () => {
  const ua = new PageClient(server);
  const link = await ua.get(onServer(server, alice.enrollment_url));
  assert.equal(link.status, 200, link.body);
  assertHtmlPage(link, 'enrollment page');
  assert.equal(parseForms(link.body).filter((f) => f.fields.filter((x) => x.type === 'password').length === 2).length, 1,
    'one form with two password fields');
  const cookies = [...ua.jar.cookies.values()];
  assert.ok(cookies.length >= 1, 'the enrollment page sets a cookie');
  for (const c of cookies) {
    assert.equal(c.attributes.secure, true, `${c.header}: Secure`);
    assert.equal(c.attributes.httponly, true, `${c.header}: HttpOnly`);
  }

  // The password policy (NIST SP 800-63B §5.1.1.2): each refusal shows the form again and
  // no secret.
  let page = link;
  for (const [what, pw] of [['11 characters', 'abcdefghijk'], ['11 code points (one is 4 bytes)', 'abcdefghij\u{1F600}'],
    ['contains the username', 'xxALICE-lantern-99'], ['a common password', 'Password1234'],
    ['129 characters', 'x'.repeat(129)]]) {
    const res = await ua.submit(page, '/oauth2/enroll', pageValues({ password: pw }));
    assert.equal(res.status, 400, `${what}: ${res.status} ${res.body}`);
    assertHtmlPage(res, `policy refusal (${what})`);
    assert.equal(elementText(res.body, 'totp-secret'), undefined, `${what}: no secret shown`);
    assert.ok(!res.body.includes(pw), `${what}: the password is not echoed`);
    page = res;
  }
  // The two fields must match.
  alicePassword = password('alice');
  const form = parseForms(page.body).find((f) => f.action.endsWith('/oauth2/enroll'));
  assert.ok(form, `the refusal page shows the form again: ${page.body}`);
  const pwFields = form.fields.filter((f) => f.type === 'password').map((f) => f.name);
  const mismatch = fillForm(form, pageValues({ password: alicePassword }));
  mismatch.set(pwFields[1], `${alicePassword}x`);
  const mm = await ua.post('/oauth2/enroll', mismatch);
  assert.equal(mm.status, 400, mm.body);
  assert.equal(elementText(mm.body, 'totp-secret'), undefined);

  // CSRF: the same form without the cookie, or with another CSRF token, is refused.
  const lastForm = parseForms(mm.body).find((f) => f.action.endsWith('/oauth2/enroll')) ?? form;
  const good = fillForm(lastForm, pageValues({ password: alicePassword }));
  const stranger = new PageClient(server);
  assert.equal((await stranger.post('/oauth2/enroll', good)).status, 403, 'no cookie');
  const csrfField = lastForm.fields.find((f) => f.type === 'hidden' && /csrf/i.test(f.name));
  assert.ok(csrfField, `a hidden CSRF field: ${JSON.stringify(form.fields)}`);
  const forged = new URLSearchParams(good);
  forged.set(csrfField.name, 'A'.repeat(csrfField.value.length || 43));
  assert.equal((await ua.post('/oauth2/enroll', forged)).status, 403, 'wrong CSRF token');

  const secretPage = await ua.post('/oauth2/enroll', good);
  assert.equal(secretPage.status, 200, secretPage.body);
  assertHtmlPage(secretPage, 'TOTP enrollment page');
  const secret = elementText(secretPage.body, 'totp-secret').replace(/\s+/g, '');
  assert.match(secret, /^[A-Z2-7]{32}$/, '160 bits in base32 without padding');
  const uri = new URL(/otpauth:\/\/totp\/[^"'<\s]+/.exec(secretPage.body)[0].replaceAll('&amp;', '&'));
  assert.equal(uri.searchParams.get('secret'), secret);
  for (const [k, v] of [['algorithm', 'SHA1'], ['digits', '6'], ['period', '30']]) {
    const got = uri.searchParams.get(k);
    assert.ok(got === null || got === v, `otpauth ${k}=${got}`);
  }
  assert.match(secretPage.body, /<svg\b[\s\S]*<\/svg>/, 'the QR code is inline SVG');
  assert.ok(!/<img\b/i.test(secretPage.body), 'no image request for the QR code');

  // A wrong first code does not activate the account; the right one does.
  aliceTotp = new TotpSequence(secret);
  const step = currentStep();
  const wrong = codeForStep(secret, step - 5);
  const refused = await ua.submit(secretPage, '/oauth2/enroll/confirm', pageValues({ code: wrong }));
  assert.equal(refused.status, 401, refused.body);
  assert.match(elementText(refused.body, 'error') ?? '', CODE_FAILED, refused.body);
  assert.equal((await listUsers(server.dataDir))[0].state, 'pending');

  const confirmPage = refused.status === 401 && parseForms(refused.body).some((f) => f.action.endsWith('/oauth2/enroll/confirm'))
    ? refused : secretPage;
  const done = await ua.submit(confirmPage, '/oauth2/enroll/confirm', pageValues({ code: (await aliceTotp.next()).code }));
  assert.equal(done.status, 200, done.body);
  assertHtmlPage(done, 'enrollment done page');
  assert.equal((await listUsers(server.dataDir))[0].state, 'active');

  // The link is spent.
  const spent = await new PageClient(server).get(onServer(server, alice.enrollment_url));
  assert.equal(spent.status, 400, spent.body);
  assert.equal(elementText(spent.body, 'error'), LINK_INVALID);
  assertHtmlPage(spent, 'spent link page');
});

test('clients add registers an app; discovery metadata as openid-client reads it', async () => {
  app = await addApp(server.dataDir, { name: 'app', scope: SCOPE, redirectUris: [REDIRECT_URI] });
  assert.deepEqual(Object.keys(app).sort(), ['client_id', 'client_secret']);
  config = await openidConfig(server, app);
  const m = config.serverMetadata();
  assert.equal(m.issuer, server.origin);
  assert.equal(m.authorization_endpoint, `${server.origin}/oauth2/authorize`);
  assert.equal(m.token_endpoint, `${server.origin}/oauth2/token`);
  assert.equal(m.jwks_uri, `${server.origin}/oauth2/jwks`);
  assert.equal(m.revocation_endpoint, `${server.origin}/oauth2/revoke`);
  assert.equal(m.introspection_endpoint, `${server.origin}/oauth2/introspect`);
  assert.deepEqual(m.response_types_supported, ['code']);
  assert.deepEqual(m.code_challenge_methods_supported, ['S256']);
  assert.deepEqual(m.id_token_signing_alg_values_supported, ['ES256']);
  assert.equal(m.authorization_response_iss_parameter_supported, true);
  assert.deepEqual([...m.grant_types_supported].sort(), ['authorization_code', 'client_credentials', 'refresh_token']);
  assert.equal(m.userinfo_endpoint, undefined);
  assert.equal(m.registration_endpoint, undefined);
});

test('authorization code flow with PKCE: tokens, claims, and a Patient created and read', async () => {
  login1 = await authorizationCodeLogin(server, config, {
    username: 'alice', password: alicePassword, code: async () => (await aliceTotp.next()).code,
    scope: SCOPE, redirectUri: REDIRECT_URI,
  });
  for (const [what, page] of Object.entries({ login: login1.pages.login, otp: login1.pages.otp })) assertHtmlPage(page, what);
  const loginCookie = login1.pages.login.rawHeaders.find((h, i) => i % 2 === 1 && h.startsWith('__Host-phigate-login='));
  assert.ok(loginCookie, 'the login page sets __Host-phigate-login');
  for (const attr of ['Secure', 'HttpOnly', 'SameSite=Lax', 'Path=/']) {
    assert.ok(loginCookie.split(';').map((s) => s.trim()).some((a) => a.toLowerCase() === attr.toLowerCase()), `cookie ${attr}: ${loginCookie}`);
  }

  // The redirect to the app: 303 with code, state and iss (RFC 9207).
  assert.equal(login1.pages.redirect.status, 303);
  const loc = new URL(login1.location);
  assert.equal(`${loc.origin}${loc.pathname}`, REDIRECT_URI);
  assert.deepEqual([...loc.searchParams.keys()].sort(), ['code', 'iss', 'state']);
  assert.equal(loc.searchParams.get('state'), login1.checks.expectedState);
  assert.equal(loc.searchParams.get('iss'), server.origin);

  const t = login1.tokens;
  assert.equal(t.token_type, 'bearer');
  assert.equal(t.expires_in, 300);
  assert.equal(t.scope, SCOPE);
  for (const k of ['access_token', 'id_token', 'refresh_token']) assert.equal(typeof t[k], 'string', k);

  const now = Math.floor(Date.now() / 1000);
  const at = decodeJwt(t.access_token);
  assert.deepEqual(at.header, { alg: 'ES256', typ: 'at+jwt', kid: at.header.kid });
  const c = at.payload;
  assert.equal(c.iss, server.origin);
  assert.equal(c.aud, `${server.origin}/fhir`);
  assert.equal(c.sub, alice.user_id);
  assert.equal(c.client_id, app.client_id);
  assert.equal(c.scope, SCOPE);
  assert.deepEqual(c.amr, ['pwd', 'otp', 'mfa']);
  assert.ok(Number.isInteger(c.auth_time) && c.auth_time <= now && c.auth_time > now - 60, `auth_time ${c.auth_time}`);
  assert.equal(c.fhirUser, `${server.origin}/fhir/Practitioner/123`);
  assert.deepEqual(c.roles, ['clinician']);
  assert.equal(typeof c.sid, 'string');
  assert.equal(c.exp - c.iat, 300);
  assert.match(c.jti, /^[A-Za-z0-9_-]{16,}$/);

  // The ID token, as validated by openid-client (signature, iss, aud, nonce, exp).
  const id = t.claims();
  assert.equal(id.iss, server.origin);
  assert.equal(id.sub, alice.user_id);
  assert.equal(id.aud, app.client_id);
  assert.equal(id.nonce, login1.checks.expectedNonce);
  assert.equal(id.auth_time, c.auth_time);
  assert.deepEqual(id.amr, ['pwd', 'otp', 'mfa']);
  assert.equal(id.fhirUser, `${server.origin}/fhir/Practitioner/123`);
  assert.equal(decodeJwt(t.id_token).header.typ, 'JWT');

  const created = await server.request('POST', '/fhir/Patient', {
    headers: { ...bearer(t.access_token), 'content-type': 'application/fhir+json' }, body: PATIENT,
  });
  assert.equal(created.status, 201, created.body);
  const read = await server.request('GET', `/fhir/Patient/${created.json().id}`, { headers: bearer(t.access_token) });
  assert.equal(read.status, 200, read.body);
  assert.deepEqual(read.json().name, PATIENT.name);

  // The code is single use, and a second use revokes what the first issued (RFC 6749
  // §4.1.2: the code may have been stolen).
  await assert.rejects(client.authorizationCodeGrant(config, new URL(login1.location), login1.checks), (err) => {
    assert.equal(err.error, 'invalid_grant', err.message);
    assert.equal(err.status, 400);
    return true;
  });
  const after = await server.request('GET', `/fhir/Patient/${created.json().id}`, { headers: bearer(t.access_token) });
  assert.equal(after.status, 401, `the access token of a reused code: ${after.body}`);
  await assert.rejects(client.refreshTokenGrant(config, t.refresh_token), (err) => {
    assert.equal(err.error, 'invalid_grant', err.message);
    return true;
  });
});

// Enrolls a new user through the pages and logs them in through the code flow (the
// enrollment code is for the current step, the login code for the next: no waiting).
async function newSession(username) {
  const user = await addUser(server.dataDir, { username, roles: 'clinician', fhirUser: 'Practitioner/456' });
  const pw = password(username);
  let totp;
  await enrollThroughPages(server, user.enrollment_url, pw, async (secret) => {
    totp = new TotpSequence(secret);
    return (await totp.next()).code;
  });
  const { tokens } = await authorizationCodeLogin(server, config, {
    username, password: pw, code: async () => (await totp.next()).code, scope: SCOPE, redirectUri: REDIRECT_URI,
  });
  return { user, tokens };
}

const probe = (token) => server.request('GET', '/fhir/Patient/does-not-exist', { headers: bearer(token) });

test('refresh rotates the tokens; reusing a rotated refresh token revokes the whole family', async () => {
  const { user: carl, tokens: t1 } = await newSession('carl');
  const a1 = t1.access_token;
  const intro1 = await client.tokenIntrospection(config, a1);
  assert.equal(intro1.active, true);
  assert.equal(intro1.sub, carl.user_id);
  assert.equal(intro1.client_id, app.client_id);
  assert.equal(intro1.scope, SCOPE);
  assert.equal(intro1.exp, decodeJwt(a1).payload.exp);

  // Refresh: new access and refresh tokens, the same session and authentication time.
  const t2 = await client.refreshTokenGrant(config, t1.refresh_token);
  assert.notEqual(t2.access_token, a1);
  assert.equal(typeof t2.refresh_token, 'string');
  assert.notEqual(t2.refresh_token, t1.refresh_token);
  const c1 = decodeJwt(a1).payload;
  const c2 = decodeJwt(t2.access_token).payload;
  assert.equal(c2.sid, c1.sid);
  assert.equal(c2.auth_time, c1.auth_time);
  assert.deepEqual(c2.amr, c1.amr);
  assert.equal(c2.sub, carl.user_id);
  assert.equal(c2.scope, SCOPE);
  // Both access tokens work while the family is intact.
  assert.equal((await probe(a1)).status, 404);
  assert.equal((await probe(t2.access_token)).status, 404);

  // Reusing the rotated refresh token: invalid_grant, and the whole family is revoked —
  // the newest refresh token and every access token of the session stop working.
  for (const [what, rt] of [['the rotated refresh token', t1.refresh_token], ['the newest refresh token', t2.refresh_token]]) {
    await assert.rejects(client.refreshTokenGrant(config, rt), (err) => {
      assert.equal(err.error, 'invalid_grant', `${what}: ${err.message}`);
      assert.equal(err.status, 400, what);
      return true;
    });
  }
  for (const [what, at] of [['first', a1], ['refreshed', t2.access_token]]) {
    const res = await probe(at);
    assert.equal(res.status, 401, `the ${what} access token of the revoked family: ${res.body}`);
    assert.equal(res.headers['www-authenticate'], WWW_AUTHENTICATE);
    assert.deepEqual(await client.tokenIntrospection(config, at), { active: false });
  }
});

test('a TOTP code is accepted once: reusing it on a second login is refused', async () => {
  const reused = codeForStep(aliceTotp.secret, aliceTotp.lastStep);
  const ua = new PageClient(server);
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI, scope: SCOPE, state: client.randomState(),
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()), code_challenge_method: 'S256',
  });
  const loginPage = await ua.get(url.href);
  assert.equal(loginPage.status, 200, loginPage.body);
  const otpPage = await ua.submit(loginPage, '/oauth2/login', pageValues({ username: 'alice', password: alicePassword }));
  assert.equal(otpPage.status, 200, otpPage.body);
  const res = await ua.submit(otpPage, '/oauth2/login/otp', pageValues({ code: reused }));
  assert.equal(res.status, 401, `a reused code: ${res.status} ${res.headers.location ?? ''} ${res.body}`);
  assert.equal(res.headers.location, undefined);
  assert.match(elementText(res.body, 'error') ?? '', CODE_FAILED, res.body);
  // The code of the step before the reused one is refused too (the highest accepted step
  // is stored, RFC 6238 §5.2).
  const older = await ua.submit(res, '/oauth2/login/otp', pageValues({ code: codeForStep(aliceTotp.secret, aliceTotp.lastStep - 1) }));
  assert.equal(older.status, 401, older.body);
});

test('revoking an access token (RFC 7009) refuses it on the next request; introspection turns inactive', async () => {
  const { tokens } = await newSession('dave');
  const a = tokens.access_token;
  assert.equal((await probe(a)).status, 404, 'works (and is cached) before the revocation');
  assert.equal((await client.tokenIntrospection(config, a)).active, true);
  await client.tokenRevocation(config, a, { token_type_hint: 'access_token' });
  const res = await probe(a);
  assert.equal(res.status, 401, `a revoked access token: ${res.body}`);
  assert.equal(res.headers['www-authenticate'], WWW_AUTHENTICATE);
  assert.deepEqual(await client.tokenIntrospection(config, a), { active: false });
  // Revoking it again, or an unknown token, is not an error (RFC 7009 §2.2).
  await client.tokenRevocation(config, a);
  await client.tokenRevocation(config, 'no-such-token');
});

test('revoking a refresh token ends its session: refresh refused, access token refused', async () => {
  const { user, tokens } = await newSession('erin');
  assert.equal((await probe(tokens.access_token)).status, 404);
  const intro = await client.tokenIntrospection(config, tokens.refresh_token);
  assert.equal(intro.active, true);
  assert.equal(intro.sub, user.user_id);
  await client.tokenRevocation(config, tokens.refresh_token, { token_type_hint: 'refresh_token' });
  assert.deepEqual(await client.tokenIntrospection(config, tokens.refresh_token), { active: false });
  await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token), (err) => {
    assert.equal(err.error, 'invalid_grant', err.message);
    assert.equal(err.status, 400);
    return true;
  });
  const res = await probe(tokens.access_token);
  assert.equal(res.status, 401, `the access token of a session whose refresh token was revoked: ${res.body}`);
});

test('lockout: after 5 wrong passwords the right one is refused with the same message', async () => {
  const bob = await addUser(server.dataDir, { username: 'bob', roles: 'clinician' });
  const bobPassword = password('bob');
  let bobTotp;
  await enrollThroughPages(server, bob.enrollment_url, bobPassword, async (secret) => {
    bobTotp = new TotpSequence(secret);
    return (await bobTotp.next()).code;
  });
  const authUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI, scope: SCOPE, state: client.randomState(),
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()), code_challenge_method: 'S256',
  }).href;
  const attempt = async (pw) => {
    const ua = new PageClient(server);
    const page = await ua.get(authUrl);
    assert.equal(page.status, 200, page.body);
    return ua.submit(page, '/oauth2/login', pageValues({ username: 'bob', password: pw }));
  };
  // Control: the right password passes the first step now.
  const control = await attempt(bobPassword);
  assert.equal(control.status, 200, control.body);
  assert.ok(parseForms(control.body).some((f) => f.action.endsWith('/oauth2/login/otp')), 'the code form follows');

  for (let i = 1; i <= 5; i += 1) {
    const res = await attempt(`${bobPassword}-wrong-${i}`);
    assert.equal(res.status, 401, `wrong password ${i}: ${res.body}`);
    assert.equal(elementText(res.body, 'error'), LOGIN_FAILED, `wrong password ${i}`);
    assert.ok(!parseForms(res.body).some((f) => f.action.endsWith('/oauth2/login/otp')));
  }
  const locked = await attempt(bobPassword);
  assert.equal(locked.status, 401, `the right password on a locked account: ${locked.body}`);
  assert.equal(elementText(locked.body, 'error'), LOGIN_FAILED, 'locked: the same message as a wrong password');
  assert.ok(!parseForms(locked.body).some((f) => f.action.endsWith('/oauth2/login/otp')), 'no code form while locked');
  const users = await listUsers(server.dataDir);
  assert.equal(users.find((u) => u.username === 'bob').state, 'locked');
  // An unknown username reads the same.
  const unknown = await attempt('whatever-password-123');
  assert.equal(unknown.status, 401);
  assert.equal(elementText(unknown.body, 'error'), LOGIN_FAILED);
});

test('authorize validates the client and redirect_uri before showing anything, then redirects errors', async () => {
  const challenge = await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier());
  const base = {
    response_type: 'code', client_id: app.client_id, redirect_uri: REDIRECT_URI, scope: SCOPE,
    state: 'st-1', code_challenge: challenge, code_challenge_method: 'S256',
  };
  const authorize = (params) => server.request('GET', `/oauth2/authorize?${new URLSearchParams(params)}`, { headers: { accept: 'text/html' } });

  for (const [what, params] of [['unknown client', { ...base, client_id: 'no-such-client' }],
    ['unregistered redirect_uri', { ...base, redirect_uri: 'http://127.0.0.1:47232/cb2' }],
    ['redirect_uri with a different host', { ...base, redirect_uri: 'http://localhost:1/cb' }]]) {
    const res = await authorize(params);
    assert.equal(res.status, 400, `${what}: ${res.body}`);
    assert.equal(res.headers.location, undefined, `${what}: never a redirect`);
    assertHtmlPage(res, what);
  }
  for (const [what, params, error] of [
    ['plain PKCE', { ...base, code_challenge_method: 'plain', code_challenge: 'a'.repeat(43) }, 'invalid_request'],
    ['no code_challenge', { ...base, code_challenge: undefined, code_challenge_method: undefined }, 'invalid_request'],
    ['response_type token', { ...base, response_type: 'token' }, 'unsupported_response_type'],
    ['scope beyond the registration', { ...base, scope: `${SCOPE} system/*.cruds` }, 'invalid_scope'],
  ]) {
    const clean = Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined));
    const res = await authorize(clean);
    assert.equal(res.status, 303, `${what}: ${res.body}`);
    const loc = new URL(res.headers.location);
    assert.equal(`${loc.origin}${loc.pathname}`, REDIRECT_URI, what);
    assert.equal(loc.searchParams.get('error'), error, `${what}: ${loc}`);
    assert.equal(loc.searchParams.get('state'), 'st-1', what);
    assert.equal(loc.searchParams.get('iss'), server.origin, what);
    assert.equal(loc.searchParams.get('code'), null, what);
  }
});
