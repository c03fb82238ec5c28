// Enrollment and login in a real browser (issue 3): headless Debian Chromium driven by
// playwright-core opens the enrollment link, sets a password, reads the TOTP secret next to
// its QR code, confirms a code computed by otpauth, then logs in through an authorization
// URL built with PKCE and lands on the app's redirect_uri (a local HTTP listener) with
// code, state and iss. The server certificate is pinned by its SPKI hash, not ignored.
// Every page is screenshotted under the build tree; pages must carry the CSP and load
// nothing but themselves.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import * as client from 'openid-client';
import { chromium } from 'playwright-core';
import {
  startServer, addUser, addApp, listUsers, onServer, openidConfig, spkiSha256, bearer, phigateBin,
} from './harness.mjs';
import { TotpSequence } from './totp.mjs';

const CHROMIUM = process.env.PHIGATE_CHROMIUM ?? '/usr/bin/chromium';
const SCOPE = 'openid fhirUser offline_access user/*.cruds';
const PASSWORD = `Orchard-${crypto.randomBytes(4).toString('hex')}-Kestrel-Lamp`;

let server;
let browser;
let context;
let page;
let callback;        // the app's redirect_uri listener
const callbackHits = [];
let redirectUri;
let app;
let carol;
let totp;
let screenshotDir;
const requests = []; // every request the browser made: {url, type, method}
const documents = []; // every document response: {url, status, headers}

function cspFor(appOrigin) {
  const formAction = appOrigin ? `'self' ${appOrigin}` : "'self'";
  return `default-src 'none'; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`;
}

async function shot(name) {
  await page.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: true });
}

// Clicks the submit button of the form posting to `actionPath` and waits for the page the
// POST leads to. Resolves the main response of that navigation.
async function submit(actionPath) {
  const form = page.locator(`form[action$="${actionPath}"]`);
  assert.equal(await form.count(), 1, `one form posting to ${actionPath} on ${page.url()}`);
  const [response] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    form.locator('button[type=submit], input[type=submit], button:not([type])').first().click(),
  ]);
  return response;
}

function lastDocument(pathname) {
  return documents.filter((d) => new URL(d.url).pathname === pathname).at(-1);
}

before(async () => {
  screenshotDir = process.env.PHIGATE_SCREENSHOT_DIR ?? path.join(path.dirname(phigateBin()), 'screenshots');
  fs.mkdirSync(screenshotDir, { recursive: true });

  callback = http.createServer((req, res) => {
    callbackHits.push(req.url);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    // The icon link keeps Chromium from asking the app for /favicon.ico.
    res.end('<!doctype html><link rel="icon" href="data:,"><title>app</title><p>signed in</p>');
  });
  await new Promise((r) => callback.listen(0, '127.0.0.1', r));
  redirectUri = `http://127.0.0.1:${callback.address().port}/cb`;

  server = await startServer();
  app = await addApp(server.dataDir, { name: 'browser-app', scope: SCOPE, redirectUris: [redirectUri] });
  carol = await addUser(server.dataDir, { username: 'carol', roles: 'clinician', fhirUser: 'Practitioner/77' });

  const spki = await spkiSha256(server.ca);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [`--ignore-certificate-errors-spki-list=${spki}`],
  });
  context = await browser.newContext({ viewport: { width: 900, height: 900 } });
  page = await context.newPage();
  page.on('request', (r) => requests.push({ url: r.url(), type: r.resourceType(), method: r.method() }));
  page.on('response', (r) => {
    if (r.request().resourceType() === 'document') {
      documents.push({ url: r.url(), status: r.status(), headers: r.headers() });
    }
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.dispose();
  if (callback) {
    callback.closeAllConnections();
    await new Promise((r) => callback.close(r));
  }
});

test('enrollment in Chromium: password, TOTP secret with QR code, first code', async () => {
  const link = onServer(server, carol.enrollment_url);
  const first = await page.goto(link);
  assert.equal(first.status(), 200);
  assert.equal(first.headers()['content-security-policy'], cspFor());
  assert.equal(first.headers()['referrer-policy'], 'no-referrer');
  await shot('01-enroll');

  const passwords = page.locator('form[action$="/oauth2/enroll"] input[type=password]');
  assert.equal(await passwords.count(), 2);
  await passwords.nth(0).fill(PASSWORD);
  await passwords.nth(1).fill(PASSWORD);
  const set = await submit('/oauth2/enroll');
  assert.equal(set.status(), 200);
  assert.equal(set.headers()['content-security-policy'], cspFor());

  const secret = (await page.locator('#totp-secret').textContent()).replace(/\s+/g, '');
  assert.match(secret, /^[A-Z2-7]{32}$/);
  const qr = page.locator('svg').first();
  assert.equal(await qr.isVisible(), true, 'the QR code is shown');
  const box = await qr.boundingBox();
  assert.ok(box.width >= 100 && box.height >= 100, `the QR code is big enough to scan: ${JSON.stringify(box)}`);
  await shot('02-totp-enrollment');

  totp = new TotpSequence(secret);
  await page.locator('form[action$="/oauth2/enroll/confirm"] input:not([type=hidden]):not([type=submit])').first()
    .fill((await totp.next()).code);
  const done = await submit('/oauth2/enroll/confirm');
  assert.equal(done.status(), 200);
  await shot('03-enrolled');
  const users = await listUsers(server.dataDir);
  assert.equal(users.find((u) => u.username === 'carol').state, 'active');
});

test('login in Chromium lands on the redirect_uri with code, state and iss; the code is good', async () => {
  const config = await openidConfig(server, app);
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const expectedState = client.randomState();
  const expectedNonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope: SCOPE, state: expectedState, nonce: expectedNonce,
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier), code_challenge_method: 'S256',
  });

  const login = await page.goto(url.href);
  assert.equal(login.status(), 200);
  const appOrigin = new URL(redirectUri).origin;
  assert.equal(login.headers()['content-security-policy'], cspFor(appOrigin));
  assert.equal(login.headers()['referrer-policy'], 'no-referrer');
  const cookies = await context.cookies(server.origin);
  const loginCookie = cookies.find((c) => c.name === '__Host-phigate-login');
  assert.ok(loginCookie, `the browser kept __Host-phigate-login: ${JSON.stringify(cookies.map((c) => c.name))}`);
  assert.equal(loginCookie.secure, true);
  assert.equal(loginCookie.httpOnly, true);
  assert.equal(loginCookie.sameSite, 'Lax');
  assert.equal(loginCookie.path, '/');
  await page.locator('form[action$="/oauth2/login"] input[type=password]').fill(PASSWORD);
  await page.locator('form[action$="/oauth2/login"] input:not([type=hidden]):not([type=password]):not([type=submit])').first().fill('carol');
  await shot('04-login');

  const otp = await submit('/oauth2/login');
  assert.equal(otp.status(), 200);
  assert.equal(otp.headers()['content-security-policy'], cspFor(appOrigin));
  // A code of a new time step (the enrollment used the current one; ±1 step is accepted).
  await page.locator('form[action$="/oauth2/login/otp"] input:not([type=hidden]):not([type=submit])').first()
    .fill((await totp.next()).code);
  await shot('05-otp');

  const landed = await submit('/oauth2/login/otp');
  assert.equal(landed.status(), 200, 'the app answered');
  await shot('06-callback');
  const at = new URL(page.url());
  assert.equal(`${at.origin}${at.pathname}`, redirectUri);
  assert.deepEqual([...at.searchParams.keys()].sort(), ['code', 'iss', 'state']);
  assert.equal(at.searchParams.get('state'), expectedState);
  assert.equal(at.searchParams.get('iss'), server.origin);
  assert.equal(callbackHits.length, 1, JSON.stringify(callbackHits));
  assert.equal(callbackHits[0], `${at.pathname}${at.search}`);
  // The hop to the app was a 303 from the code step.
  const redirect = lastDocument('/oauth2/login/otp');
  assert.equal(redirect.status, 303);
  assert.equal(redirect.headers.location, page.url());

  // The code the browser carried works once, with the verifier.
  const tokens = await client.authorizationCodeGrant(config, at, { pkceCodeVerifier, expectedState, expectedNonce });
  assert.equal(tokens.claims().sub, carol.user_id);
  const read = await server.request('GET', '/fhir/Patient/none', { headers: bearer(tokens.access_token) });
  assert.equal(read.status, 404, read.body);
});

test('the pages loaded nothing but themselves, and every page carried the CSP', async () => {
  const bad = requests.filter((r) => r.type !== 'document');
  assert.deepEqual(bad, [], 'only documents were requested (no script, style, image, font, favicon)');
  const origins = new Set(requests.map((r) => new URL(r.url).origin));
  assert.deepEqual([...origins].sort(), [new URL(redirectUri).origin, server.origin].sort());
  assert.deepEqual(requests.map((r) => `${r.method} ${new URL(r.url).pathname}`), [
    'GET /oauth2/enroll', 'POST /oauth2/enroll', 'POST /oauth2/enroll/confirm',
    'GET /oauth2/authorize', 'POST /oauth2/login', 'POST /oauth2/login/otp', 'GET /cb',
  ]);
  // Every page phigate showed (the 303 to the app is not a page).
  const pages = documents.filter((x) => x.url.startsWith(server.origin) && x.status !== 303);
  assert.equal(pages.length, 5, JSON.stringify(pages.map((x) => x.url)));
  for (const d of pages) {
    assert.match(d.headers['content-security-policy'] ?? '', /^default-src 'none'; form-action 'self'/, `${d.url}: CSP`);
    assert.equal(d.headers['x-frame-options'], 'DENY', `${d.url}: X-Frame-Options`);
    assert.equal(d.headers['cache-control'], 'no-store', `${d.url}: Cache-Control`);
  }
  for (const name of ['01-enroll', '02-totp-enrollment', '03-enrolled', '04-login', '05-otp', '06-callback']) {
    const file = path.join(screenshotDir, `${name}.png`);
    assert.ok(fs.statSync(file).size > 1000, `${file} written`);
  }
});
