// The binary itself (issue 2 §2, §7): --help/--version and exit codes, the start-up banner,
// configuration and key-file errors that stop start-up naming the culprit, SIGTERM/SIGINT
// with a request in flight, and PHI-free JSON log lines.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import {
  startServer, addClient, runCli, makeTempRoot, bearer, parseResponse, sleep,
} from './harness.mjs';

let root;

before(async () => { root = await makeTempRoot('phigate-cli-'); });
after(async () => { if (root) await fsp.rm(root, { recursive: true, force: true }); });

test('--help, --version, per-command --help: exit 0; usage errors: exit 2', async () => {
  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /serve/);
  assert.match(help.stdout, /clients add/);
  const version = await runCli(['--version']);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^phigate \d+\.\d+\.\d+\s*$/);
  for (const args of [['serve', '--help'], ['clients', '--help'], ['clients', 'add', '--help']]) {
    const r = await runCli(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /Usage: phigate /, args.join(' '));
  }
  assert.match((await runCli(['serve', '--help'])).stdout, /--data-dir/);
  for (const args of [['bogus'], ['serve', '--bogus'], ['serve', '--listen'], ['clients'], ['clients', 'remove'],
    ['clients', 'add', '--name', 'x']]) {
    const r = await runCli(args, { timeoutMs: 20_000 });
    assert.equal(r.code, 2, `phigate ${args.join(' ')} exits 2 (got ${r.code}): ${r.stderr}`);
    assert.ok(r.stderr.length > 0, `phigate ${args.join(' ')} says why`);
  }
});

test('start-up banner: URL with the real port, the data dir, and the next command', async () => {
  const server = await startServer({ root, dataDir: path.join(root, 'banner') });
  try {
    const lines = server.stdout().split('\n');
    assert.match(lines[0], /^phigate \d+\.\d+\.\d+ serving FHIR R4 at https:\/\/127\.0\.0\.1:\d+\/fhir$/);
    assert.notEqual(server.port, 0, 'port 0 was replaced by the bound port');
    assert.ok(lines[1].startsWith(`data dir: ${server.dataDir}`), lines[1]);
    assert.match(server.stdout(), /phigate clients add --name \S+ --scope "system\/\*\.cruds"/);
    assert.equal((await server.request('GET', '/healthz')).status, 200);
  } finally {
    await server.dispose({ removeRoot: false });
  }
});

test('configuration errors stop start-up and name the key or file', async () => {
  const cases = [
    ['[server]\nbogus = 1\n', 'server.bogus'],
    ['[limits]\nbody_bytes = "big"\n', 'limits.body_bytes'],
    ['[limits]\njson_depth = 0\n', 'limits.json_depth'],
    ['[tls]\nmin_version = "1.0"\n', 'tls.min_version'],
    ['[fhir]\nupdate_create = "yes"\n', 'fhir.update_create'],
    ['[auth]\nsystem_token_lifetime_s = 86400\n', 'auth.system_token_lifetime_s'],
    ['[nope]\nx = 1\n', 'nope'],
    ['this is = = not toml\n', 'phigate-bad-7.toml'],
  ];
  for (const [i, [text, name]] of cases.entries()) {
    const file = path.join(root, `phigate-bad-${i}.toml`);
    await fsp.writeFile(file, text);
    const dataDir = path.join(root, `cfg-${i}`);
    const r = await runCli(['serve', '--config', file, '--data-dir', dataDir, '--listen', '127.0.0.1:0'], { timeoutMs: 20_000 });
    assert.notEqual(r.code, 0, `${name}: start-up must fail`);
    assert.notEqual(r.code, null, `${name}: start-up must fail, not serve`);
    assert.ok(r.stderr.includes(name), `${name} named in: ${r.stderr}`);
    assert.ok(!r.stdout.includes('serving FHIR'), `${name}: never served`);
  }
  const missing = path.join(root, 'does-not-exist.toml');
  const r = await runCli(['serve', '--config', missing, '--data-dir', path.join(root, 'cfg-m'), '--listen', '127.0.0.1:0'], { timeoutMs: 20_000 });
  assert.notEqual(r.code, 0);
  assert.ok(r.stderr.includes(missing), r.stderr);
});

test('a key file readable by group or other stops start-up, naming the file', async () => {
  const dataDir = path.join(root, 'perm');
  const first = await startServer({ root, dataDir });
  assert.deepEqual(await first.stop(), { code: 0, signal: null });
  for (const rel of ['keys/kek', 'keys/token-signing.pem', 'tls/key.pem']) {
    const file = path.join(dataDir, rel);
    for (const mode of [0o640, 0o604]) {
      fs.chmodSync(file, mode);
      const r = await runCli(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0'], { timeoutMs: 20_000 });
      fs.chmodSync(file, 0o600);
      assert.notEqual(r.code, null, `${rel} ${mode.toString(8)}: start-up must fail, not serve`);
      assert.notEqual(r.code, 0, `${rel} ${mode.toString(8)}: start-up must fail`);
      assert.ok(r.stderr.includes(path.basename(rel)), `${rel} named in: ${r.stderr}`);
    }
  }
  // Restored: it starts again.
  const again = await startServer({ root, dataDir });
  assert.deepEqual(await again.stop(), { code: 0, signal: null });
});

test('SIGTERM finishes the request in flight, stops accepting, exits 0', async () => {
  const dataDir = path.join(root, 'graceful');
  const server = await startServer({ root, dataDir });
  const token = await server.token(await addClient(dataDir, { name: 'graceful', scope: 'system/*.cruds' }));
  const body = Buffer.from(JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Inflight' }], birthDate: '1999-09-09' }));
  const half = Math.floor(body.length / 2);

  const socket = tls.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: server.ca });
  await new Promise((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject); });
  const chunks = [];
  socket.on('data', (c) => chunks.push(c));
  socket.on('error', () => {});
  socket.write(`POST /fhir/Patient HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\n` +
    `Content-Type: application/fhir+json\r\nContent-Length: ${body.length}\r\n\r\n`);
  socket.write(body.subarray(0, half));
  await sleep(300);
  server.child.kill('SIGTERM');
  await sleep(500);
  assert.equal(server.exitInfo, null, 'still running while a request is in flight');

  // No new connections are accepted meanwhile.
  const fresh = await new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: server.ca });
    s.setTimeout(5000, () => { s.destroy(); resolve('timeout'); });
    s.on('secureConnect', () => {
      s.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    const got = [];
    s.on('data', (c) => got.push(c));
    s.on('error', (e) => resolve(e.code ?? 'error'));
    s.on('close', () => resolve(Buffer.concat(got).toString('latin1')));
  });
  assert.ok(!String(fresh).includes('HTTP/1.1 200'), `a new connection was served after SIGTERM: ${fresh}`);

  socket.write(body.subarray(half));
  const res = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no response to the in-flight request')), 15_000);
    const check = () => {
      const parsed = parseResponse(Buffer.concat(chunks));
      if (parsed) { clearTimeout(timer); resolve(parsed); }
    };
    socket.on('data', check);
    socket.on('close', () => { check(); clearTimeout(timer); reject(new Error(`closed: ${Buffer.concat(chunks)}`)); });
    check();
  });
  socket.destroy();
  assert.equal(res.status, 201, res.raw.slice(0, 300));
  const id = JSON.parse(res.body).id;
  const exit = await server.exited;
  assert.deepEqual(exit, { code: 0, signal: null });

  // The create was durable.
  const again = await startServer({ root, dataDir });
  try {
    const t2 = await again.token(await addClient(dataDir, { name: 'graceful-2', scope: 'system/*.cruds' }));
    const read = await again.request('GET', `/fhir/Patient/${id}`, { headers: bearer(t2) });
    assert.equal(read.status, 200);
    assert.equal(read.json().name[0].family, 'Inflight');
    assert.deepEqual(await again.stop(), { code: 0, signal: null });
  } finally {
    await again.dispose({ removeRoot: false });
  }
});

test('SIGINT exits 0', async () => {
  const server = await startServer({ root, dataDir: path.join(root, 'sigint') });
  assert.equal((await server.request('GET', '/healthz')).status, 200);
  server.closeConnections();
  server.child.kill('SIGINT');
  assert.deepEqual(await server.exited, { code: 0, signal: null });
});

test('logs: JSON lines with request id, method, route template, status, duration, client id; no PHI, query values, tokens or secrets', async () => {
  const dataDir = path.join(root, 'logs');
  const server = await startServer({ root, dataDir });
  const client = await addClient(dataDir, { name: 'logger', scope: 'system/*.cruds' });
  const token = await server.token(client);
  const FAMILY = 'Vrkplogfamily';
  const created = await server.request('POST', '/fhir/Patient', {
    headers: { ...bearer(token), 'content-type': 'application/fhir+json', 'x-request-id': 'log-test-1' },
    body: { resourceType: 'Patient', name: [{ family: FAMILY }], birthDate: '1950-05-05' },
  });
  assert.equal(created.status, 201);
  const id = created.json().id;
  await server.request('GET', `/fhir/Patient/${id}?_pretty=true`, { headers: { ...bearer(token), 'x-request-id': 'log-test-2' } });
  // A search by the family name (PHI): it finds the Patient; neither the value nor the
  // query string reaches the log.
  const search = await server.request('GET', `/fhir/Patient?family=${FAMILY}`, { headers: { ...bearer(token), 'x-request-id': 'log-test-3' } });
  assert.equal(search.status, 200, search.body);
  assert.equal(search.json().type, 'searchset');
  assert.deepEqual(search.json().entry.map((e) => e.resource.id), [id]);
  await server.request('POST', '/fhir/Patient', {
    headers: { ...bearer(token), 'content-type': 'application/fhir+json', 'x-request-id': 'log-test-4' },
    body: { resourceType: 'Patient', birthDate: `${FAMILY}-bad` },
  });
  await server.request('GET', `/fhir/Patient/${id}`, { headers: { authorization: `Bearer ${token}x`, 'x-request-id': 'log-test-5' } });
  assert.deepEqual(await server.stop(), { code: 0, signal: null });

  const lines = server.stderr().split('\n').filter((l) => l.trim() !== '');
  const records = lines.map((l) => {
    try { return JSON.parse(l); } catch { assert.fail(`not a JSON line: ${l.slice(0, 200)}`); }
    return null;
  });
  for (const r of records) {
    assert.equal(typeof r.time, 'string', 'time');
    assert.ok(!Number.isNaN(Date.parse(r.time)), `time ${r.time}`);
    assert.ok(['debug', 'info', 'warn', 'error'].includes(r.level), `level ${r.level}`);
  }
  const byId = (rid) => records.find((r) => r.request_id === rid);
  const expect = [
    ['log-test-1', 'POST', 201, client.client_id],
    ['log-test-2', 'GET', 200, client.client_id],
    ['log-test-3', 'GET', 200, client.client_id],
    ['log-test-4', 'POST', 400, client.client_id],
    ['log-test-5', 'GET', 401, undefined],
  ];
  for (const [rid, method, status, clientId] of expect) {
    const r = byId(rid);
    assert.ok(r, `a log line for ${rid}`);
    assert.equal(r.method, method, `${rid} method`);
    assert.equal(r.status, status, `${rid} status`);
    assert.equal(typeof r.route, 'string', `${rid} route`);
    assert.ok(r.route.startsWith('/fhir/'), `${rid} route ${r.route}`);
    assert.ok(!r.route.includes(id) && !r.route.includes('?'), `${rid}: route is a template, not the path: ${r.route}`);
    assert.ok(typeof r.duration_ms === 'number' || typeof r.duration === 'number', `${rid} duration`);
    if (clientId) assert.equal(r.client_id, clientId, `${rid} client id`);
  }
  assert.match(byId('log-test-1').route, /^\/fhir\/(\{type\}|Patient)$/);
  assert.match(byId('log-test-2').route, /^\/fhir\/(\{type\}|Patient)\/\{id\}$/);

  const log = server.stderr();
  for (const secret of [FAMILY, '1950-05-05', token, token.split('.')[2], client.client_secret, id]) {
    assert.ok(!log.includes(secret), `the log holds ${secret.slice(0, 24)}`);
  }
});
