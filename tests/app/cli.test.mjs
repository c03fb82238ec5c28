// The binary's command line: help, version, exit codes, start-up refusals that name the
// offending key or file, first-start layout of the data dir, and SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const BIN = process.env.PHIGATE_BIN;
assert.ok(BIN, 'PHIGATE_BIN must name the phigate binary');

function run(args, opts = {}) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', timeout: 60_000, ...opts });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'phigate-cli-'));
}

// Starts `serve` and resolves once it prints its URL; returns the child and the URL.
function serve(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no start: ${err}`)), 30_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/serving FHIR R4 at (https:\/\/\S+)\n/);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1], stdout: () => out, stderr: () => err });
      }
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`exited ${code}: ${err}`)); });
  });
}

function exitOf(child) {
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
}

test('--help and --version exit 0', () => {
  const help = run(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: phigate <command>/);
  assert.match(help.stdout, /serve/);
  assert.match(help.stdout, /clients add/);
  const version = run(['--version']);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^phigate \d+\.\d+\.\d+\n$/);
});

test('each subcommand has --help', () => {
  const s = run(['serve', '--help']);
  assert.equal(s.code, 0);
  assert.match(s.stdout, /Usage: phigate serve \[--config FILE\] \[--data-dir DIR\] \[--listen HOST:PORT\]/);
  const c = run(['clients', '--help']);
  assert.equal(c.code, 0);
  assert.match(c.stdout, /Usage: phigate clients add --name NAME --scope SCOPES/);
  const ca = run(['clients', 'add', '--help']);
  assert.equal(ca.code, 0);
  assert.match(ca.stdout, /client_secret/);
});

test('usage errors exit 2 and say what is wrong', () => {
  const none = run([]);
  assert.equal(none.code, 2);
  const unknown = run(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  const opt = run(['serve', '--bogus']);
  assert.equal(opt.code, 2);
  assert.match(opt.stderr, /unknown option --bogus/);
  const missing = run(['serve', '--listen']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /option --listen needs a value/);
  const noName = run(['clients', 'add', '--scope', 'system/*.rs', '--data-dir', tmpDir()]);
  assert.equal(noName.code, 2);
  assert.match(noName.stderr, /--name is required/);
  const badScope = run(['clients', 'add', '--name', 'x', '--scope', 'system/Patient.zz',
    '--data-dir', tmpDir()]);
  assert.equal(badScope.code, 2);
  // Secrets are never command-line options.
  const secret = run(['clients', 'add', '--name', 'x', '--scope', 'system/*.rs', '--secret', 's']);
  assert.equal(secret.code, 2);
  assert.match(secret.stderr, /unknown option --secret/);
});

test('config errors stop start-up naming the key, exit 1', () => {
  const dir = tmpDir();
  const cases = [
    ['[server]\nlisten_port = 1\n', /server\.listen_port: unknown key/],
    ['[limits]\nbody_bytes = "big"\n', /limits\.body_bytes: expected an integer/],
    ['[tls]\nmin_version = "1.1"\n', /tls\.min_version: must be one of 1\.2, 1\.3/],
    ['[auth]\nsystem_token_lifetime_s = 86400\n', /auth\.system_token_lifetime_s: must be between 30 and 900/],
  ];
  for (const [toml, pattern] of cases) {
    const file = path.join(dir, 'c.toml');
    fs.writeFileSync(file, toml);
    const r = run(['serve', '--config', file, '--data-dir', path.join(dir, 'd'), '--listen', '127.0.0.1:0']);
    assert.equal(r.code, 1, toml);
    assert.match(r.stderr, pattern);
    assert.ok(r.stderr.includes(file), 'the message names the file');
  }
  const unreadable = run(['serve', '--config', path.join(dir, 'missing.toml')]);
  assert.equal(unreadable.code, 1);
  assert.match(unreadable.stderr, /missing\.toml: cannot read the config file/);
});

test('first start creates the data dir privately; SIGTERM exits 0', async () => {
  const dir = path.join(tmpDir(), 'data');
  const s = await serve(['--data-dir', dir, '--listen', '127.0.0.1:0']);
  assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+\/fhir$/);
  assert.match(s.stdout(), new RegExp(`data dir: ${dir} \\(created\\)`));
  assert.match(s.stdout(), /phigate clients add --name my-app --scope "system\/\*\.cruds"/);
  const mode = (p) => fs.statSync(path.join(dir, p)).mode & 0o777;
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  assert.equal(mode('keys/kek'), 0o600);
  assert.equal(fs.statSync(path.join(dir, 'keys/kek')).size, 32);
  assert.equal(mode('keys/token-signing.pem'), 0o600);
  assert.equal(mode('tls/key.pem'), 0o600);
  assert.equal(mode('phigate.db'), 0o600);
  const cert = spawnSync('openssl', ['x509', '-in', path.join(dir, 'tls/cert.pem'), '-noout', '-text'],
    { encoding: 'utf8' });
  assert.match(cert.stdout, /ASN1 OID: prime256v1/);
  assert.match(cert.stdout, /DNS:localhost/);
  assert.match(cert.stdout, /IP Address:127\.0\.0\.1/);
  const exited = exitOf(s.child);
  s.child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null });

  // A second start reuses everything and does not say "created".
  const again = await serve(['--data-dir', dir, '--listen', '127.0.0.1:0']);
  assert.match(again.stdout(), new RegExp(`data dir: ${dir}\\n`));
  const exited2 = exitOf(again.child);
  again.child.kill('SIGINT');
  assert.deepEqual(await exited2, { code: 0, signal: null });
});

test('a key file or data dir open to group/other stops start-up naming it', async () => {
  const dir = path.join(tmpDir(), 'data');
  const s = await serve(['--data-dir', dir, '--listen', '127.0.0.1:0']);
  const exited = exitOf(s.child);
  s.child.kill('SIGTERM');
  await exited;

  fs.chmodSync(path.join(dir, 'keys/kek'), 0o644);
  const kek = run(['serve', '--data-dir', dir, '--listen', '127.0.0.1:0']);
  assert.equal(kek.code, 1);
  assert.ok(kek.stderr.includes(`${dir}/keys/kek`), kek.stderr);
  assert.match(kek.stderr, /permissions too open/);
  fs.chmodSync(path.join(dir, 'keys/kek'), 0o600);

  fs.chmodSync(path.join(dir, 'keys/token-signing.pem'), 0o640);
  const sig = run(['serve', '--data-dir', dir, '--listen', '127.0.0.1:0']);
  assert.equal(sig.code, 1);
  assert.ok(sig.stderr.includes('token-signing.pem'), sig.stderr);
  fs.chmodSync(path.join(dir, 'keys/token-signing.pem'), 0o600);

  fs.chmodSync(path.join(dir, 'tls/key.pem'), 0o604);
  const tls = run(['serve', '--data-dir', dir, '--listen', '127.0.0.1:0']);
  assert.equal(tls.code, 1);
  assert.ok(tls.stderr.includes('tls/key.pem'), tls.stderr);
  fs.chmodSync(path.join(dir, 'tls/key.pem'), 0o600);

  fs.chmodSync(dir, 0o755);
  const open = run(['serve', '--data-dir', dir, '--listen', '127.0.0.1:0']);
  assert.equal(open.code, 1);
  assert.match(open.stderr, /accessible by group or others/);
  assert.ok(open.stderr.includes(dir));
  fs.chmodSync(dir, 0o700);

  // A KEK that is not the one that wrapped the data keys is refused, not silently used.
  fs.rmSync(path.join(dir, 'keys/kek'));
  fs.writeFileSync(path.join(dir, 'keys/kek'), Buffer.alloc(32, 7), { mode: 0o600 });
  const wrong = run(['serve', '--data-dir', dir, '--listen', '127.0.0.1:0']);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /key-encryption key does not match the stored data keys/);
});

test('an address that cannot be bound is a runtime error naming it', async () => {
  const dir = path.join(tmpDir(), 'data');
  const s = await serve(['--data-dir', dir, '--listen', '127.0.0.1:0']);
  const port = new URL(s.url).port;
  const clash = run(['serve', '--data-dir', path.join(tmpDir(), 'd2'), '--listen', `127.0.0.1:${port}`]);
  assert.equal(clash.code, 1);
  assert.ok(clash.stderr.includes(`127.0.0.1:${port}`), clash.stderr);
  const exited = exitOf(s.child);
  s.child.kill('SIGTERM');
  await exited;
});

test('one server per data dir: a second serve on the same dir is refused', async () => {
  const dir = path.join(tmpDir(), 'data');
  const s = await serve(['--data-dir', dir, '--listen', '127.0.0.1:0']);
  const second = run(['serve', '--data-dir', dir, '--listen', '127.0.0.1:0']);
  assert.equal(second.code, 1);
  assert.match(second.stderr, /another phigate serve is already using this data dir/);
  // The CLI still works beside the running server.
  const add = run(['clients', 'add', '--name', 'x', '--scope', 'system/*.rs', '--data-dir', dir, '--json']);
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout, /^\{"client_id":"[A-Za-z0-9_-]+","client_secret":"[A-Za-z0-9_-]+"\}\n$/);
  const exited = exitOf(s.child);
  s.child.kill('SIGTERM');
  await exited;
});

test('a concurrent first start (serve and several clients add) ends with one consistent data dir', async () => {
  const dir = path.join(tmpDir(), 'data');
  const runAsync = (args) => new Promise((resolve) => {
    const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => resolve({ code, stdout: out, stderr: err }));
  });
  const adds = [1, 2, 3].map((i) => runAsync(['clients', 'add', '--name', `c${i}`,
    '--scope', 'system/*.cruds', '--data-dir', dir, '--json']));
  const server = serve(['--data-dir', dir, '--listen', '127.0.0.1:0']);
  const results = await Promise.all(adds);
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  const s = await server;
  // Exactly one KEK and one signing key, complete, and no temporary files left behind.
  assert.equal(fs.statSync(path.join(dir, 'keys/kek')).size, 32);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'keys')).sort(),
    ['audit-signing.pem', 'kek', 'token-signing.pem']);
  const exited = exitOf(s.child);
  s.child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null });
  // Every process agreed on the keys: the data dir opens again.
  const again = await serve(['--data-dir', dir, '--listen', '127.0.0.1:0']);
  const exited2 = exitOf(again.child);
  again.child.kill('SIGTERM');
  await exited2;
});
