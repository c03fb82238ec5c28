// `phigate users`: adding people with a one-time enrollment link, listing them without
// secrets, disabling them and resetting their authenticator; usage errors and exit codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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
  return fs.mkdtempSync(path.join(os.tmpdir(), 'phigate-users-'));
}

// Parses "key=value" lines.
function fields(stdout) {
  const out = {};
  for (const line of stdout.trim().split('\n')) {
    const eq = line.indexOf('=');
    out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

const LINK = /^https:\/\/127\.0\.0\.1:8443\/oauth2\/enroll\?token=[A-Za-z0-9_-]{43}$/;

test('help: the main help lists users; each subcommand has --help', () => {
  const main = run(['--help']);
  assert.equal(main.code, 0);
  assert.match(main.stdout, /users\s+add, list, disable, reset-mfa/);
  for (const args of [['users', '--help'], ['users', 'add', '--help'], ['users', 'list', '--help'],
    ['users', 'disable', '--help'], ['users', 'reset-mfa', '--help']]) {
    const r = run(args);
    assert.equal(r.code, 0, args.join(' '));
    assert.match(r.stdout, /Usage: phigate users add --username USERNAME --roles R1,R2/);
    assert.match(r.stdout, /phigate users reset-mfa USERNAME/);
  }
});

test('usage errors exit 2, say what is wrong and create nothing', () => {
  const dir = path.join(tmpDir(), 'data');
  const cases = [
    [['users'], /users: missing subcommand/],
    [['users', 'frobnicate'], /users: unknown subcommand 'frobnicate'/],
    [['users', 'add', '--roles', 'clinician', '--data-dir', dir], /--username is required/],
    [['users', 'add', '--username', 'bob', '--data-dir', dir], /--roles is required/],
    [['users', 'add', '--username', 'bob smith', '--roles', 'clinician', '--data-dir', dir],
      /a username may contain only a-z 0-9 \. _ @ -/],
    [['users', 'add', '--username', 'x'.repeat(65), '--roles', 'clinician', '--data-dir', dir],
      /a username has 1 to 64 characters/],
    [['users', 'add', '--username', 'bob', '--roles', 'clinician,wizard', '--data-dir', dir],
      /unknown role 'wizard'/],
    [['users', 'add', '--username', 'bob', '--roles', 'patient', '--fhir-user', 'Observation/1',
      '--data-dir', dir], /fhir_user must be Patient\/<id>/],
    // Passwords are never command-line options (they would show in `ps`).
    [['users', 'add', '--username', 'bob', '--roles', 'clinician', '--password', 'x'],
      /unknown option --password/],
    [['users', 'disable', '--data-dir', dir], /users disable: the username is required/],
    [['users', 'reset-mfa'], /users reset-mfa: the username is required/],
    [['users', 'disable', 'bob', 'carol'], /unexpected argument 'carol'/],
  ];
  for (const [args, pattern] of cases) {
    const r = run(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  }
  assert.equal(fs.existsSync(dir), false, 'no data dir for a usage error');
});

test('add prints the id and a one-time link; list shows state and no secret', () => {
  const dir = path.join(tmpDir(), 'data');
  const add = run(['users', 'add', '--username', 'Dr.Alice@Example.org', '--roles',
    'clinician,auditor', '--fhir-user', 'Practitioner/123', '--data-dir', dir]);
  assert.equal(add.code, 0, add.stderr);
  const out = fields(add.stdout);
  assert.deepEqual(Object.keys(out), ['user_id', 'enrollment_url']);
  assert.match(out.user_id, /^[0-9a-f]{32}$/);
  assert.match(out.enrollment_url, LINK);
  const token = out.enrollment_url.split('token=')[1];

  const bob = run(['users', 'add', '--username', 'bob', '--roles', 'billing', '--data-dir', dir]);
  assert.equal(bob.code, 0, bob.stderr);
  const bobId = fields(bob.stdout).user_id;
  assert.notEqual(bobId, out.user_id);
  assert.notEqual(fields(bob.stdout).enrollment_url, out.enrollment_url);

  // Usernames are unique whatever their case.
  const dup = run(['users', 'add', '--username', 'BOB', '--roles', 'billing', '--data-dir', dir]);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /users add: a user with this username exists/);

  const list = run(['users', 'list', '--data-dir', dir]);
  assert.equal(list.code, 0, list.stderr);
  assert.equal(list.stdout,
    'user_id\tusername\troles\tstate\tfhir_user\n' +
    `${bobId}\tbob\tbilling\tpending\t-\n` +
    `${out.user_id}\tdr.alice@example.org\tclinician,auditor\tpending\tPractitioner/123\n`);
  assert.ok(!list.stdout.includes(token));

  const json = run(['users', 'list', '--json', '--data-dir', dir]);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout), [
    { user_id: bobId, username: 'bob', roles: 'billing', state: 'pending', fhir_user: '' },
    { user_id: out.user_id, username: 'dr.alice@example.org', roles: 'clinician,auditor',
      state: 'pending', fhir_user: 'Practitioner/123' },
  ]);
  // The token is stored only as a hash: no file of the data dir (WAL included) holds it.
  for (const entry of fs.readdirSync(dir, { recursive: true })) {
    const file = path.join(dir, entry);
    if (!fs.statSync(file).isFile()) continue;
    assert.ok(!fs.readFileSync(file).includes(Buffer.from(token)), `${entry} holds the token`);
  }
});

test('the link names the configured issuer, or the one --listen implies', () => {
  const dir = tmpDir();
  const config = path.join(dir, 'phigate.toml');
  fs.writeFileSync(config, '[auth]\nissuer = "https://fhir.example.org"\n');
  const a = run(['users', 'add', '--username', 'a', '--roles', 'admin', '--config', config,
    '--data-dir', path.join(dir, 'd')]);
  assert.equal(a.code, 0, a.stderr);
  assert.match(fields(a.stdout).enrollment_url,
    /^https:\/\/fhir\.example\.org\/oauth2\/enroll\?token=[A-Za-z0-9_-]{43}$/);
  const b = run(['users', 'add', '--username', 'b', '--roles', 'admin', '--listen', '0.0.0.0:9443',
    '--data-dir', path.join(dir, 'd')]);
  assert.equal(b.code, 0, b.stderr);
  assert.match(fields(b.stdout).enrollment_url, /^https:\/\/localhost:9443\/oauth2\/enroll\?token=/);
});

test('disable and reset-mfa', () => {
  const dir = path.join(tmpDir(), 'data');
  for (const name of ['carol', 'dave']) {
    const r = run(['users', 'add', '--username', name, '--roles', 'clinician', '--data-dir', dir]);
    assert.equal(r.code, 0, r.stderr);
  }
  const reset = run(['users', 'reset-mfa', 'Dave', '--data-dir', dir]);
  assert.equal(reset.code, 0, reset.stderr);
  assert.deepEqual(Object.keys(fields(reset.stdout)), ['enrollment_url']);
  assert.match(fields(reset.stdout).enrollment_url, LINK);

  const disable = run(['users', 'disable', 'carol', '--data-dir', dir]);
  assert.equal(disable.code, 0, disable.stderr);
  assert.equal(disable.stdout, 'disabled carol\n');
  const states = JSON.parse(run(['users', 'list', '--json', '--data-dir', dir]).stdout)
    .map((u) => `${u.username}:${u.state}`);
  assert.deepEqual(states, ['carol:disabled', 'dave:pending']);

  const again = run(['users', 'reset-mfa', 'carol', '--data-dir', dir]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /users reset-mfa: the user is disabled/);
  const unknown = run(['users', 'disable', 'nobody', '--data-dir', dir]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /users disable: no such user/);
  const unknownReset = run(['users', 'reset-mfa', 'nobody', '--data-dir', dir]);
  assert.equal(unknownReset.code, 1);
  assert.match(unknownReset.stderr, /users reset-mfa: no such user/);
});
