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
        '--roles', 'clinician', '--data-dir', server.dataDir, '--json']);
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

// --- business associate agreements (issue 4 §6) ------------------------------------------

// `clients list --json` as an object keyed by client_id.
async function listedClients(dataDir) {
  const r = await runCli(['clients', 'list', '--data-dir', dataDir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return Object.fromEntries(JSON.parse(r.stdout).map((c) => [c.client_id, c]));
}

async function addSystemClient(dataDir, extra = []) {
  const r = await runCli(['clients', 'add', '--name', 'partner', '--scope', 'system/*.rs', '--roles', 'clinician',
    '--data-dir', dataDir, '--json', ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).client_id;
}

// YYYY-MM-DD of today (UTC) plus `days`.
function day(days) {
  return new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
}

test('help describes list, baa and --third-party', async () => {
  const r = await runCli(['clients', '--help']);
  assert.equal(r.code, 0);
  for (const text of ['phigate clients list', 'phigate clients baa CLIENT_ID --counterparty NAME --signed YYYY-MM-DD',
    'phigate clients baa CLIENT_ID --revoke', '--third-party', '--expires DATE']) {
    assert.ok(r.stdout.includes(text), text);
  }
  for (const args of [['clients', 'baa', '--help'], ['clients', 'list', '--help'], ['clients', 'baa', 'x', '--help']]) {
    const h = await runCli(args);
    assert.equal(h.code, 0, args.join(' '));
    assert.match(h.stdout, /phigate clients baa CLIENT_ID --revoke/);
  }
});

test('clients list shows third_party and no agreement for new clients; never a secret', async () => {
  const dir = path.join(tmpDir(), 'data');
  const first = await runCli(['clients', 'add', '--name', 'lab', '--scope', 'system/*.rs', '--data-dir', dir, '--json']);
  assert.equal(first.code, 0, first.stderr);
  const { client_id, client_secret } = JSON.parse(first.stdout);
  const partner = await addSystemClient(dir, ['--third-party']);

  const clients = await listedClients(dir);
  assert.deepEqual(clients[client_id], {
    client_id, name: 'lab', auth_method: 'client_secret_basic', scope: 'system/*.rs', roles: '',
    disabled: false, third_party: false, baa: null,
  });
  assert.equal(clients[partner].third_party, true);
  assert.equal(clients[partner].baa, null);

  const text = await runCli(['clients', 'list', '--data-dir', dir]);
  assert.equal(text.code, 0, text.stderr);
  assert.ok(!text.stdout.includes(client_secret));
  assert.ok(!text.stdout.includes('argon2'));
  const lines = text.stdout.trim().split('\n');
  assert.equal(lines[0], 'client_id\tname\tauth_method\troles\tdisabled\tthird_party\tbaa_status\tbaa_active'
    + '\tbaa_counterparty\tbaa_signed\tbaa_expires');
  assert.equal(lines.length, 3);
  const row = lines.find((l) => l.startsWith(`${partner}\t`));
  assert.equal(row, `${partner}\tpartner\tclient_secret_basic\tclinician\tno\tyes\tnone\tno\t-\t-\t-`);
});

test('clients baa records an active agreement through the end of the expires day', async () => {
  const dir = path.join(tmpDir(), 'data');
  const id = await addSystemClient(dir);  // first party until it gets an agreement
  const signed = day(-30);
  const expires = day(365);
  const r = await runCli(['clients', 'baa', id, '--counterparty', 'Société Acme Analytics, Inc.', '--signed', signed,
    '--expires', expires, '--data-dir', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `client_id=${id}\nbaa_status=active\nbaa_signed=${signed}\nbaa_expires=${expires}\n`);

  const c = (await listedClients(dir))[id];
  assert.equal(c.third_party, true, 'an agreement marks the client third party');
  const nextDay = new Date(Date.parse(`${expires}T00:00:00Z`) + 86_400_000).toISOString();
  assert.deepEqual(c.baa, {
    counterparty: 'Société Acme Analytics, Inc.', signed, expires,
    signed_at: `${signed}T00:00:00.000Z`, expires_at: nextDay, status: 'active', active: true,
  });

  const text = await runCli(['clients', 'list', '--data-dir', dir]);
  const row = text.stdout.split('\n').find((l) => l.startsWith(`${id}\t`));
  assert.ok(row.endsWith(`\tyes\tactive\tyes\tSociété Acme Analytics, Inc.\t${signed}\t${expires}`), row);

  // An agreement that ended, or has not begun, is listed but not active.
  const ended = await runCli(['clients', 'baa', id, '--counterparty', 'Acme', '--signed', '2020-01-01',
    '--expires', '2020-12-31', '--data-dir', dir]);
  assert.equal(ended.code, 0, ended.stderr);
  let baa = (await listedClients(dir))[id].baa;
  assert.equal(baa.expires_at, '2021-01-01T00:00:00.000Z');
  assert.equal(baa.expires, '2020-12-31');
  assert.equal(baa.status, 'active');
  assert.equal(baa.active, false);
  const future = await runCli(['clients', 'baa', id, '--counterparty', 'Acme', '--signed', day(2),
    '--expires', day(2), '--data-dir', dir]);
  assert.equal(future.code, 0, future.stderr);
  baa = (await listedClients(dir))[id].baa;
  assert.equal(baa.signed, day(2));
  assert.equal(baa.expires, day(2), 'a one-day agreement');
  assert.equal(baa.active, false);
  // Today only: active now.
  const today = await runCli(['clients', 'baa', id, '--counterparty', 'Acme', '--signed', day(0),
    '--expires', day(0), '--data-dir', dir]);
  assert.equal(today.code, 0, today.stderr);
  assert.equal((await listedClients(dir))[id].baa.active, true);
});

test('clients baa --revoke keeps the agreement on record, not active', async () => {
  const dir = path.join(tmpDir(), 'data');
  const id = await addSystemClient(dir);
  const set = await runCli(['clients', 'baa', id, '--counterparty', 'Acme', '--signed', day(-1), '--expires', day(30),
    '--data-dir', dir]);
  assert.equal(set.code, 0, set.stderr);
  const r = await runCli(['clients', 'baa', id, '--revoke', '--data-dir', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `client_id=${id}\nbaa_status=revoked\n`);
  const c = (await listedClients(dir))[id];
  assert.equal(c.third_party, true);
  assert.equal(c.baa.status, 'revoked');
  assert.equal(c.baa.active, false);
  assert.equal(c.baa.counterparty, 'Acme');
  assert.equal(c.baa.signed, day(-1));
  assert.equal(c.baa.expires, day(30));
});

test('clients baa usage errors exit 2 and change nothing; an unknown client exits 1', async () => {
  const dir = path.join(tmpDir(), 'data');
  const id = await addSystemClient(dir);
  const ok = ['--counterparty', 'Acme', '--signed', '2026-01-01', '--expires', '2027-01-31'];
  const without = (name) => {
    const i = ok.indexOf(name);
    return [...ok.slice(0, i), ...ok.slice(i + 2)];
  };
  const withValue = (name, value) => ok.map((v, i) => (ok[i - 1] === name ? value : v));
  const cases = [
    [['clients', 'baa'], /clients baa: the client id is required/],
    [['clients', 'baa', '--counterparty', 'Acme'], /clients baa: the client id is required/],
    [['clients', 'baa', id, ...without('--counterparty')], /--counterparty is required/],
    [['clients', 'baa', id, ...without('--signed')], /--signed is required/],
    [['clients', 'baa', id, ...without('--expires')], /--expires is required/],
    [['clients', 'baa', id, '--revoke', '--counterparty', 'Acme'], /--revoke takes no --counterparty/],
    [['clients', 'baa', id, ...withValue('--signed', '2026-02-30')], /--signed is not a calendar date/],
    [['clients', 'baa', id, ...withValue('--signed', '2025-02-29')], /--signed is not a calendar date/],
    [['clients', 'baa', id, ...withValue('--expires', '2027-13-01')], /--expires is not a calendar date/],
    [['clients', 'baa', id, ...withValue('--expires', '2027-04-31')], /--expires is not a calendar date/],
    [['clients', 'baa', id, ...withValue('--signed', '2026-1-01')], /--signed must be a date YYYY-MM-DD/],
    [['clients', 'baa', id, ...withValue('--signed', '2026/01/01')], /--signed must be a date YYYY-MM-DD/],
    [['clients', 'baa', id, ...withValue('--signed', '2026-01-01T00:00:00Z')], /--signed must be a date YYYY-MM-DD/],
    [['clients', 'baa', id, ...withValue('--signed', '+026-01-01')], /--signed must be a date YYYY-MM-DD/],
    [['clients', 'baa', id, ...withValue('--signed', '1969-12-31')], /--signed must not be before 1970/],
    [['clients', 'baa', id, ...withValue('--expires', '2025-12-31')], /--expires must not be before --signed/],
    [['clients', 'baa', id, ...withValue('--counterparty', '')], /--counterparty must not be empty/],
    [['clients', 'baa', id, ...withValue('--counterparty', 'x'.repeat(201))], /--counterparty must have at most 200 characters/],
    [['clients', 'baa', id, ...withValue('--counterparty', 'Acme\nInc')], /--counterparty must not contain control characters/],
    [['clients', 'baa', id, ...withValue('--counterparty', 'Acme\tInc')], /--counterparty must not contain control characters/],
    [['clients', 'baa', id, ...withValue('--counterparty', 'Acme\u202eInc')], /--counterparty must not contain bidirectional/],
    [['clients', 'baa', id, ...ok, '--bogus'], /unknown option --bogus/],
    [['clients', 'frobnicate'], /clients: unknown subcommand 'frobnicate'/],
  ];
  for (const [args, message] of cases) {
    const r = await runCli([...args, '--data-dir', dir]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
  // 200 characters (not bytes) is within the limit; the edges of the calendar are dates.
  const long = await runCli(['clients', 'baa', id, ...withValue('--counterparty', 'é'.repeat(200)), '--data-dir', dir]);
  assert.equal(long.code, 0, long.stderr);
  const leap = await runCli(['clients', 'baa', id, '--counterparty', 'Acme', '--signed', '2024-02-29',
    '--expires', '2024-12-31', '--data-dir', dir]);
  assert.equal(leap.code, 0, leap.stderr);
  const c = (await listedClients(dir))[id];
  assert.equal(c.baa.signed, '2024-02-29');
  assert.equal(c.baa.counterparty, 'Acme');

  for (const args of [['clients', 'baa', 'no-such-client', ...ok], ['clients', 'baa', 'no-such-client', '--revoke']]) {
    const r = await runCli([...args, '--data-dir', dir]);
    assert.equal(r.code, 1, args.join(' '));
    assert.equal(r.stderr, 'phigate: clients baa: client not found\n');
    assert.equal(r.stdout, '');
  }
});

test('a usage error in clients baa creates no data dir', async () => {
  const dir = path.join(tmpDir(), 'data');
  const r = await runCli(['clients', 'baa', 'x', '--counterparty', 'Acme', '--signed', '2026-02-30',
    '--expires', '2027-01-01', '--data-dir', dir]);
  assert.equal(r.code, 2);
  assert.equal(fs.existsSync(dir), false);
});

test('revoking a client that never had an agreement records the revocation without dates', async () => {
  const dir = path.join(tmpDir(), 'data');
  const id = await addSystemClient(dir, ['--third-party']);
  const r = await runCli(['clients', 'baa', id, '--revoke', '--data-dir', dir]);
  assert.equal(r.code, 0, r.stderr);
  const c = (await listedClients(dir))[id];
  assert.equal(c.third_party, true);
  assert.deepEqual(c.baa, {
    counterparty: '', signed: null, expires: null, signed_at: null, expires_at: null, status: 'revoked', active: false,
  });
  const text = await runCli(['clients', 'list', '--data-dir', dir]);
  const row = text.stdout.split('\n').find((l) => l.startsWith(`${id}\t`));
  assert.ok(row.endsWith('\tyes\trevoked\tno\t-\t-\t-'), row);
});
