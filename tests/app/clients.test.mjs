// `phigate clients add`: the three kinds of client (secret, private_key_jwt keys, public
// app), redirect URI rules, and a key client getting a token from a running server with
// assertions signed by node:crypto (RFC 7523, SMART Backend Services).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli, startServer } from '../integration/harness.mjs';

function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'phigate-clients-'));
}

function b64url(data) {
  return Buffer.from(data).toString('base64url');
}

// A key pair as a backend service would make it, and its public JWKS file.
function keyClientFiles(dir, { type = 'ec', kid = 'k1' } = {}) {
  const { publicKey, privateKey } = type === 'ec'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : crypto.generateKeyPairSync('ed25519');
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: type === 'ec' ? 'ES256' : 'EdDSA' };
  const file = path.join(dir, `${kid}.jwks.json`);
  fs.writeFileSync(file, JSON.stringify({ keys: [jwk] }));
  return { file, privateKey, kid, alg: jwk.alg, privateJwk: privateKey.export({ format: 'jwk' }) };
}

function signAssertion({ privateKey, kid, alg }, claims) {
  const header = b64url(JSON.stringify({ alg, typ: 'JWT', kid }));
  const payload = b64url(JSON.stringify(claims));
  const input = `${header}.${payload}`;
  const signature = alg === 'ES256'
    ? crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' })
    : crypto.sign(null, Buffer.from(input), privateKey);
  return `${input}.${b64url(signature)}`;
}

test('a secret client keeps the two-line output', async () => {
  const dir = tmpDir();
  const r = await runCli(['clients', 'add', '--name', 'lab', '--scope', 'system/*.rs', '--roles', 'clinician,auditor', '--data-dir', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^client_id=[A-Za-z0-9_-]{22}\nclient_secret=[A-Za-z0-9_-]{43}\n$/);
});

test('--help names every option', async () => {
  const r = await runCli(['clients', 'add', '--help']);
  assert.equal(r.code, 0);
  for (const option of ['--jwks-file', '--redirect-uri', '--public', '--roles', 'private_key_jwt']) {
    assert.ok(r.stdout.includes(option), option);
  }
});

test('--jwks-file registers a key client: no secret is made or printed', async () => {
  const dir = tmpDir();
  const key = keyClientFiles(dir);
  const r = await runCli(['clients', 'add', '--name', 'backend', '--scope', 'system/*.rs', '--jwks-file', key.file, '--data-dir', path.join(dir, 'data')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^client_id=[A-Za-z0-9_-]{22}\ntoken_endpoint_auth_method=private_key_jwt\n$/);
  const json = await runCli(['clients', 'add', '--name', 'backend', '--scope', 'system/*.rs', '--jwks-file', key.file, '--data-dir', path.join(dir, 'data'), '--json']);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(Object.keys(JSON.parse(json.stdout)), ['client_id', 'token_endpoint_auth_method']);
});

test('a JWKS with private key material, no usable key, or unreadable is refused', async () => {
  const dir = tmpDir();
  const key = keyClientFiles(dir);
  const privateFile = path.join(dir, 'private.json');
  fs.writeFileSync(privateFile, JSON.stringify({ keys: [{ ...key.privateJwk, kid: 'k1' }] }));
  const r = await runCli(['clients', 'add', '--name', 'x', '--scope', 'system/*.rs', '--jwks-file', privateFile, '--data-dir', path.join(dir, 'data')]);
  assert.equal(r.code, 2);
  assert.ok(!r.stderr.includes(key.privateJwk.d), 'no key material in the message');
  // A P-384 key is skipped (not an algorithm phigate verifies), leaving no usable key.
  const p384 = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' });
  const p384File = path.join(dir, 'p384.json');
  fs.writeFileSync(p384File, JSON.stringify({ keys: [p384] }));
  const unusable = await runCli(['clients', 'add', '--name', 'x', '--scope', 'system/*.rs', '--jwks-file', p384File, '--data-dir', path.join(dir, 'data')]);
  assert.equal(unusable.code, 2);
  assert.match(unusable.stderr, /no usable/);
  const missing = await runCli(['clients', 'add', '--name', 'x', '--scope', 'system/*.rs', '--jwks-file', path.join(dir, 'nope.json'), '--data-dir', path.join(dir, 'data')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read --jwks-file/);
});

test('public apps and redirect URIs', async () => {
  const dir = path.join(tmpDir(), 'data');
  const app = await runCli(['clients', 'add', '--name', 'spa', '--scope', 'openid offline_access patient/*.rs', '--public',
    '--redirect-uri', 'https://spa.example/cb', '--redirect-uri=http://127.0.0.1:4000/cb', '--data-dir', dir, '--json']);
  assert.equal(app.code, 0, app.stderr);
  assert.deepEqual(Object.keys(JSON.parse(app.stdout)), ['client_id', 'token_endpoint_auth_method']);
  assert.equal(JSON.parse(app.stdout).token_endpoint_auth_method, 'none');

  const cases = [
    [['--public'], /redirect URI/],
    [['--redirect-uri', 'http://app.example/cb'], /loopback/],
    [['--redirect-uri', 'https://app.example/cb#x'], /fragment/],
    [['--redirect-uri'], /needs a value/],
  ];
  for (const [extra, message] of cases) {
    const r = await runCli(['clients', 'add', '--name', 'x', '--scope', 'user/*.rs', '--data-dir', dir, ...extra]);
    assert.equal(r.code, 2, `${extra.join(' ')}: ${r.stdout}`);
    assert.match(r.stderr, message, extra.join(' '));
  }
  // user/ scopes need a redirect URI; a name that looks like an option stays a name.
  const noUri = await runCli(['clients', 'add', '--name', 'x', '--scope', 'user/*.rs', '--data-dir', dir]);
  assert.equal(noUri.code, 2);
  const odd = await runCli(['clients', 'add', '--name', '--redirect-uri', '--scope', 'system/*.rs', '--data-dir', dir]);
  assert.equal(odd.code, 0, odd.stderr);
});

test('a key client gets tokens with signed assertions; a replayed assertion is refused', async () => {
  const server = await startServer();
  try {
    const dir = tmpDir();
    for (const type of ['ec', 'ed25519']) {
      const key = keyClientFiles(dir, { type, kid: `kid-${type}` });
      const add = await runCli(['clients', 'add', '--name', 'backend', '--scope', 'system/Patient.rs', '--jwks-file', key.file,
        '--roles', 'auditor', '--data-dir', server.dataDir, '--json']);
      assert.equal(add.code, 0, add.stderr);
      const { client_id } = JSON.parse(add.stdout);
      const discovery = (await server.request('GET', '/.well-known/openid-configuration')).json();
      const now = Math.floor(Date.now() / 1000);
      const assertion = signAssertion(key, {
        iss: client_id, sub: client_id, aud: discovery.token_endpoint, exp: now + 120, iat: now, jti: crypto.randomUUID(),
      });
      const form = new URLSearchParams({
        grant_type: 'client_credentials',
        scope: 'system/Patient.rs',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      }).toString();
      const post = () => server.request('POST', '/oauth2/token', {
        headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form,
      });
      const ok = await post();
      assert.equal(ok.status, 200, ok.body);
      assert.equal(ok.headers['cache-control'], 'no-store');
      const token = ok.json().access_token;
      const read = await server.request('GET', '/fhir/Patient/none', { headers: { authorization: `Bearer ${token}` } });
      assert.equal(read.status, 404, read.body);
      const replay = await post();
      assert.equal(replay.status, 401, replay.body);
      assert.equal(replay.json().error, 'invalid_client');
    }
  } finally {
    await server.dispose();
  }
});
