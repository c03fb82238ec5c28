// `phigate audit verify | export | purge` against the real binary (issue 5 §3, §4, §6):
// the tamper matrix (each tampering is detected and the first bad seq is named), export
// in both formats with --since/--until and --follow, purge behind the retention period,
// and the administrative records of `clients add` / `users add`.
//
// Forgeries are made here in JS from the documented formats (src/audit/audit_log.h,
// checkpoints.h): a record's hash is hex SHA-256 of
// "phigate-audit-1|<seq>|<time>|<prev>|<kv>|<ix joined by ','>|<ct>", a checkpoint signs
// "phigate-audit-checkpoint-1|<seq>|<hash>|<time>|<prev_sig>" with Ed25519.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  startServer, runCli, makeTempRoot, addClient, addUser, phigateBin, sleep, withTimeout,
} from './harness.mjs';

const SMALL_TRAIL = '[audit]\nsegment_bytes = 4096\ncheckpoint_every_records = 5\n';
const REQUESTS = 120;

function bearer(token) { return { authorization: `Bearer ${token}` }; }

// A server with a small-segment trail that served REQUESTS audited reads, then stopped.
async function auditedTrail(root, config = SMALL_TRAIL) {
  const srv = await startServer({ root, config });
  const token = await srv.clientToken({ name: 'audit-it', scope: 'system/*.rs' });
  for (let i = 0; i < REQUESTS; i++) {
    // 404s are audited like any other read.
    const res = await srv.request('GET', `/fhir/Patient/missing-${i}`, { headers: bearer(token) });
    assert.equal(res.status, 404, res.body);
  }
  const exit = await srv.stop();
  assert.equal(exit.code, 0);
  return srv;
}

// ---- The trail on disk ----

function auditDir(dataDir) { return path.join(dataDir, 'audit'); }

function segmentNames(dataDir) {
  return fs.readdirSync(auditDir(dataDir)).filter((n) => /^segment-\d{20}\.log$/.test(n)).sort();
}

// Every record line in seq order: {segment, line, rec} (rec parsed from the line).
function readRecords(dataDir) {
  const out = [];
  for (const segment of segmentNames(dataDir)) {
    const text = fs.readFileSync(path.join(auditDir(dataDir), segment), 'utf8');
    for (const line of text.split('\n')) {
      if (line) out.push({ segment, line, rec: JSON.parse(line) });
    }
  }
  return out;
}

// Rewrites the segments from records (each {segment, line}), keeping the segment names.
function writeRecords(dataDir, records) {
  const bySegment = new Map(segmentNames(dataDir).map((n) => [n, '']));
  for (const r of records) bySegment.set(r.segment, bySegment.get(r.segment) + `${r.line}\n`);
  for (const [name, text] of bySegment) fs.writeFileSync(path.join(auditDir(dataDir), name), text);
}

function checkpointsPath(dataDir) { return path.join(auditDir(dataDir), 'checkpoints.log'); }

function readCheckpoints(dataDir) {
  return fs.readFileSync(checkpointsPath(dataDir), 'utf8').split('\n').filter(Boolean)
    .map((line) => JSON.parse(line));
}

function recordHash(r) {
  const input = `phigate-audit-1|${r.seq}|${r.time}|${r.prev}|${r.kv}|${r.ix.join(',')}|${r.ct}`;
  return crypto.createHash('sha256').update(input).digest('hex');
}

// The exact line audit_log.cc writes (key order and no spaces, as JSON.stringify gives).
function recordLine(r) {
  return JSON.stringify({
    seq: r.seq, time: r.time, prev: r.prev, kv: r.kv, ix: r.ix, ct: r.ct, hash: r.hash,
  });
}

function checkpointLine(c) {
  return JSON.stringify({ seq: c.seq, hash: c.hash, time: c.time, prev_sig: c.prev_sig, sig: c.sig });
}

async function copyDataDir(from, to) {
  await fsp.cp(from, to, { recursive: true });
  // The data dir and its key and audit directories must stay private (0700).
  for (const d of [to, path.join(to, 'keys'), path.join(to, 'audit'), path.join(to, 'tls')]) {
    if (fs.existsSync(d)) fs.chmodSync(d, 0o700);
  }
  return to;
}

async function verify(dataDir, extra = []) {
  return runCli(['audit', 'verify', '--data-dir', dataDir, ...extra]);
}

function assertFailedAt(r, seq, problem) {
  assert.equal(r.code, 1, `verify exit code: ${r.stdout} ${r.stderr}`);
  assert.equal(r.stdout, `audit trail verification FAILED at seq ${seq}: ${problem}\n`);
}

// ---- Export helpers ----

async function exportJsonl(dataDir, args = []) {
  const r = await runCli(['audit', 'export', '--data-dir', dataDir, ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function subtypeOf(event) { return event.subtype?.[0]?.code; }

const SYSLOG_LINE =
  /^<110>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ([!-~]+) phigate - audit \[phigate@32473 seq="(\d+)"\] (\{.*\})$/;

// =======================================================================================

describe('audit verify: the tamper matrix', () => {
  let root;
  let pristine;
  let records;
  let checkpoints;

  before(async () => {
    root = await makeTempRoot('phigate-audit-tamper-');
    const srv = await auditedTrail(root);
    pristine = srv.dataDir;
    records = readRecords(pristine);
    checkpoints = readCheckpoints(pristine);
    // Enough of a trail for the cases below: many segments and several checkpoints.
    assert.ok(records.length >= REQUESTS + 2, `only ${records.length} records`);
    assert.ok(segmentNames(pristine).length >= 10, 'the small segment_bytes made many segments');
    assert.ok(checkpoints.length >= 5, `only ${checkpoints.length} checkpoints`);
    records.forEach((r, i) => assert.equal(r.rec.seq, i + 1));
  });
  after(async () => { if (root) await fsp.rm(root, { recursive: true, force: true }); });

  let cases = 0;
  async function tampered() { return copyDataDir(pristine, path.join(root, `case-${++cases}`)); }

  test('the untampered trail verifies: exit 0 with the record and checkpoint counts', async () => {
    const r = await verify(await tampered());
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout,
      `audit trail verified: ${records.length} records, ${checkpoints.length} checkpoints\n`);
  });

  test('one flipped byte in a record\'s ciphertext: hash mismatch at that seq', async () => {
    const dir = await tampered();
    const all = readRecords(dir);
    const target = all[29];  // seq 30
    const ct = target.rec.ct;
    const i = Math.floor(ct.length / 2);
    const flipped = ct[i] === 'A' ? 'B' : 'A';
    target.line = target.line.replace(ct, ct.slice(0, i) + flipped + ct.slice(i + 1));
    writeRecords(dir, all);
    assertFailedAt(await verify(dir), 30, 'hash mismatch');
  });

  test('a deleted record line: sequence gap at its seq', async () => {
    const dir = await tampered();
    const all = readRecords(dir);
    writeRecords(dir, all.filter((r) => r.rec.seq !== 41));
    assertFailedAt(await verify(dir), 41, 'sequence gap');
  });

  test('two records swapped: detected at the first of them', async () => {
    const dir = await tampered();
    const all = readRecords(dir);
    const a = all[19];  // seq 20
    const b = all[20];  // seq 21
    [a.line, b.line] = [b.line, a.line];
    writeRecords(dir, all);
    assertFailedAt(await verify(dir), 20, 'sequence gap');
  });

  test('the tail truncated before the last checkpoint: records missing before it', async () => {
    const dir = await tampered();
    // The records from the last checkpoint's seq on go; the earlier checkpoints still hold.
    const last = checkpoints[checkpoints.length - 1].seq;
    const kept = readRecords(dir).filter((r) => r.rec.seq < last);
    for (const name of segmentNames(dir)) {
      if (!kept.some((r) => r.segment === name)) fs.rmSync(path.join(auditDir(dir), name));
    }
    writeRecords(dir, kept);
    assertFailedAt(await verify(dir), last, 'records missing before a checkpoint');
  });

  test('a whole segment replaced by a re-hashed forgery: caught by the signed checkpoints', async () => {
    const dir = await tampered();
    const all = readRecords(dir);
    // A middle segment; every record in it is forged (its time moved, its lookup tags
    // dropped, so an auditor's search would miss it), then the chain re-hashed to the end.
    const segment = all[34].segment;
    const firstForged = all.find((r) => r.segment === segment).rec.seq;
    let prev = all[firstForged - 2].rec.hash;
    for (const r of all.slice(firstForged - 1)) {
      if (r.segment === segment) {
        r.rec.time += 1;
        r.rec.ix = [];
      }
      r.rec.prev = prev;
      r.rec.hash = recordHash(r.rec);
      r.line = recordLine(r.rec);
      prev = r.rec.hash;
    }
    writeRecords(dir, all);
    // Without the checkpoints, the chain itself is consistent: only a signature tells.
    const caught = checkpoints.find((c) => c.seq >= firstForged);
    assert.ok(caught, 'a checkpoint covers the forged segment');
    assertFailedAt(await verify(dir), caught.seq, 'checkpoint hash mismatch');
  });

  test('a checkpoint signed by another key: bad checkpoint signature at its seq', async () => {
    const dir = await tampered();
    const lines = fs.readFileSync(checkpointsPath(dir), 'utf8').split('\n').filter(Boolean);
    const index = 2;
    const c = JSON.parse(lines[index]);
    const { privateKey } = crypto.generateKeyPairSync('ed25519');
    const message = `phigate-audit-checkpoint-1|${c.seq}|${c.hash}|${c.time}|${c.prev_sig}`;
    c.sig = crypto.sign(null, Buffer.from(message), privateKey).toString('base64url');
    lines[index] = checkpointLine(c);
    fs.writeFileSync(checkpointsPath(dir), `${lines.join('\n')}\n`);
    assertFailedAt(await verify(dir), c.seq, 'bad checkpoint signature');
  });

  test('--checkpoints: a copy kept off the machine catches what the live file cannot', async () => {
    const dir = await tampered();
    const offMachine = path.join(root, 'checkpoints-copy.log');
    fs.copyFileSync(checkpointsPath(dir), offMachine);
    // Cut the trail back to the third checkpoint, live checkpoints.log included: consistent
    // on its own (the newest checkpoints of the live file are not detectable from it).
    const keep = checkpoints[2].seq;
    const kept = readRecords(dir).filter((r) => r.rec.seq <= keep);
    for (const name of segmentNames(dir)) {
      if (!kept.some((r) => r.segment === name)) fs.rmSync(path.join(auditDir(dir), name));
    }
    writeRecords(dir, kept);
    const live = fs.readFileSync(checkpointsPath(dir), 'utf8').split('\n').filter(Boolean);
    fs.writeFileSync(checkpointsPath(dir), `${live.slice(0, 3).join('\n')}\n`);
    const alone = await verify(dir);
    assert.equal(alone.code, 0, alone.stdout + alone.stderr);
    assert.equal(alone.stdout, `audit trail verified: ${keep} records, 3 checkpoints\n`);
    assertFailedAt(await verify(dir, ['--checkpoints', offMachine]), checkpoints[3].seq,
      'records missing before a checkpoint');
  });

  test('verify cannot read: exit 2 (missing data dir, missing checkpoints copy, missing key)', async () => {
    const missing = await verify(path.join(root, 'no-such-dir'));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no-such-dir does not exist/);
    assert.equal(fs.existsSync(path.join(root, 'no-such-dir')), false, 'verify created nothing');
    const dir = await tampered();
    const noCopy = await verify(dir, ['--checkpoints', path.join(root, 'nope.log')]);
    assert.equal(noCopy.code, 2);
    assert.match(noCopy.stderr, /cannot read .*nope\.log/);
    fs.rmSync(path.join(dir, 'keys', 'audit-signing.pem'));
    const noKey = await verify(dir);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /audit-signing\.pem: file not found/);
    assert.equal(fs.existsSync(path.join(dir, 'keys', 'audit-signing.pem')), false,
      'verify does not create a signing key');
  });

  test('verify writes nothing: the trail is byte-identical afterwards', async () => {
    const dir = await tampered();
    const snapshot = () => Object.fromEntries(fs.readdirSync(auditDir(dir)).map(
      (n) => [n, fs.readFileSync(path.join(auditDir(dir), n), 'utf8')]));
    const beforeFiles = snapshot();
    assert.equal((await verify(dir)).code, 0);
    assert.deepEqual(snapshot(), beforeFiles);
  });
});

describe('audit export', () => {
  let root;
  let srv;

  before(async () => {
    root = await makeTempRoot('phigate-audit-export-');
    const stopped = await auditedTrail(root);
    srv = await startServer({ root, dataDir: stopped.dataDir, config: SMALL_TRAIL });
  });
  after(async () => {
    if (srv) await srv.dispose({ removeRoot: false });
    if (root) await fsp.rm(root, { recursive: true, force: true });
  });

  test('jsonl: one AuditEvent per line, ids increasing, id the second member', async () => {
    const events = await exportJsonl(srv.dataDir, ['--since', '2000-01-01']);
    assert.ok(events.length >= REQUESTS + 3, `${events.length} events`);
    let last = 0;
    for (const e of events) {
      assert.equal(e.resourceType, 'AuditEvent');
      assert.deepEqual(Object.keys(e).slice(0, 2), ['resourceType', 'id']);
      assert.match(e.id, /^\d+$/);
      assert.ok(Number(e.id) > last, `id ${e.id} after ${last}`);
      last = Number(e.id);
    }
    // Exported from record 1 on (nothing purged) and ending with this export's own record.
    assert.equal(events[0].id, '1');
    const own = events[events.length - 1];
    assert.equal(subtypeOf(own), 'audit.export');
    assert.equal(own.action, 'R');
    const reads = events.filter((e) => e.entity?.some((x) => /^Patient\/missing-\d+$/.test(x.what?.reference)));
    assert.equal(reads.length, REQUESTS);
  });

  test('syslog: RFC 5424 lines whose seq, time and JSON agree', async () => {
    const r = await runCli(['audit', 'export', '--data-dir', srv.dataDir, '--since', '2000-01-01',
      '--format', 'syslog']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n').filter(Boolean);
    assert.ok(lines.length >= REQUESTS + 3);
    for (const line of lines) {
      const m = SYSLOG_LINE.exec(line);
      assert.ok(m, `not an RFC 5424 line: ${line.slice(0, 200)}`);
      const event = JSON.parse(m[4]);
      assert.equal(event.id, m[3]);
      assert.equal(event.resourceType, 'AuditEvent');
    }
  });

  test('--since/--until select records by their time, [since, until)', async () => {
    const r = await runCli(['audit', 'export', '--data-dir', srv.dataDir, '--since', '2000-01-01',
      '--format', 'syslog']);
    const all = r.stdout.split('\n').filter(Boolean).map((l) => {
      const m = SYSLOG_LINE.exec(l);
      return { time: m[1], seq: Number(m[3]) };
    });
    const since = all[10].time;
    const until = all[40].time;
    const expected = all.filter((x) => x.time >= since && x.time < until).map((x) => String(x.seq));
    assert.ok(expected.length >= 20, `${expected.length} records in the window`);
    const got = await exportJsonl(srv.dataDir, ['--since', since, '--until', until]);
    assert.deepEqual(got.map((e) => e.id), expected);
    // A date is its UTC midnight; an offset is applied: the same instant, two spellings.
    const day = since.slice(0, 10);
    const zoned = new Date(Date.parse(since) + 2 * 3600_000).toISOString().replace('Z', '+02:00');
    const a = await exportJsonl(srv.dataDir, ['--since', since, '--until', until]);
    const b = await exportJsonl(srv.dataDir, ['--since', zoned, '--until', until]);
    assert.deepEqual(b.map((e) => e.id), a.map((e) => e.id));
    const fromDay = await exportJsonl(srv.dataDir, ['--since', day, '--until', until]);
    assert.equal(fromDay[0].id, '1');
    // Nothing in a window before the trail began.
    assert.deepEqual(await exportJsonl(srv.dataDir, ['--since', '2001-01-01', '--until', '2001-01-02']), []);
  });

  test('usage: --since required, bad times and formats, --follow with --until: exit 2', async () => {
    for (const args of [[], ['--since', 'yesterday'], ['--since', '2026-02-30'],
      ['--since', '2026-01-01T10:00:00'], ['--since', '2026-01-01', '--format', 'xml'],
      ['--since', '2026-01-01', '--until', '2026-01-02', '--follow'],
      ['--since', '2026-01-02', '--until', '2026-01-01']]) {
      const r = await runCli(['audit', 'export', '--data-dir', srv.dataDir, ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /audit export: /);
    }
  });

  test('--follow prints a record made after it started; SIGTERM ends it with exit 0', async () => {
    const token = await srv.clientToken({ name: 'follow-it', scope: 'system/*.rs' });
    const child = spawn(phigateBin(), ['audit', 'export', '--data-dir', srv.dataDir,
      '--since', 'now', '--follow'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b) => { out += b; });
    child.stderr.on('data', (b) => { err += b; });
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const events = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const waitFor = async (predicate, what) => {
      const deadline = Date.now() + 15_000;
      while (!predicate(events())) {
        if (Date.now() > deadline) throw new Error(`--follow never printed ${what}: ${out} ${err}`);
        await sleep(50);
      }
    };
    try {
      // Its own record comes first (since = now).
      await waitFor((e) => e.some((x) => subtypeOf(x) === 'audit.export'), 'its own record');
      const res = await srv.request('GET', '/fhir/Patient/followed', { headers: bearer(token) });
      assert.equal(res.status, 404);
      await waitFor((e) => e.some((x) => x.entity?.some((y) => y.what?.reference === 'Patient/followed')),
        'the new read');
      child.kill('SIGTERM');
      const exit = await withTimeout(exited, 10_000, '--follow did not exit after SIGTERM');
      assert.deepEqual(exit, { code: 0, signal: null }, err);
      const ids = events().map((e) => Number(e.id));
      assert.deepEqual(ids, [...ids].sort((x, y) => x - y), 'oldest first');
      assert.equal(new Set(ids).size, ids.length, 'each record once');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });

  test('a record that cannot be opened stops the export: exit 1, run verify', async () => {
    const dir = await copyDataDir(srv.dataDir, path.join(root, 'damaged'));
    const all = readRecords(dir);
    const target = all[4];  // seq 5
    const ct = target.rec.ct;
    target.line = target.line.replace(ct, ct.slice(0, 3) + (ct[3] === 'A' ? 'B' : 'A') + ct.slice(4));
    writeRecords(dir, all);
    const r = await runCli(['audit', 'export', '--data-dir', dir, '--since', '2000-01-01']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'phigate: audit export: record 5 cannot be opened: run phigate audit verify\n');
    assert.deepEqual(r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l).id), ['1', '2', '3', '4']);
  });

  test('clients add and users add each make exactly one administrative record', async () => {
    const lastId = async () => {
      const e = await exportJsonl(srv.dataDir, ['--since', '2000-01-01']);
      return Number(e[e.length - 1].id);  // this export's own record
    };
    const newSince = async (id) => (await exportJsonl(srv.dataDir, ['--since', '2000-01-01']))
      .filter((e) => Number(e.id) > id && subtypeOf(e) !== 'audit.export');

    let mark = await lastId();
    const client = await addClient(srv.dataDir, { name: 'admin-record-it', roles: 'clinician' });
    let made = await newSince(mark);
    assert.equal(made.length, 1, JSON.stringify(made));
    assert.equal(subtypeOf(made[0]), 'clients.add');
    assert.equal(made[0].type.code, '110100');
    assert.equal(made[0].action, 'C');
    assert.equal(made[0].outcome, '0');
    assert.ok(JSON.stringify(made[0]).includes(client.client_id), 'names the client');
    assert.ok(!JSON.stringify(made[0]).includes(client.client_secret), 'never the secret');
    assert.ok(!JSON.stringify(made[0]).includes('admin-record-it'), 'never the free-text name');

    mark = await lastId();
    const user = await addUser(srv.dataDir, { username: 'audited.person', roles: 'auditor' });
    made = await newSince(mark);
    assert.equal(made.length, 1, JSON.stringify(made));
    assert.equal(subtypeOf(made[0]), 'users.add');
    assert.equal(made[0].action, 'C');
    assert.ok(JSON.stringify(made[0]).includes(user.user_id), 'names the user id');
    assert.ok(!JSON.stringify(made[0]).includes('audited.person'), 'never the username');

    mark = await lastId();
    const list = await runCli(['users', 'list', '--data-dir', srv.dataDir]);
    assert.equal(list.code, 0);
    made = await newSince(mark);
    assert.deepEqual(made.map((e) => [subtypeOf(e), e.action]), [['users.list', 'R']]);
  });
});

describe('audit purge', () => {
  let root;
  let dataDir;
  let r0Config;

  before(async () => {
    root = await makeTempRoot('phigate-audit-purge-');
    const srv = await auditedTrail(root, `${SMALL_TRAIL}retention_days = 0\n`);
    dataDir = srv.dataDir;
    r0Config = path.join(root, 'retention0.toml');
    fs.writeFileSync(r0Config, `${SMALL_TRAIL}retention_days = 0\n`);
  });
  after(async () => { if (root) await fsp.rm(root, { recursive: true, force: true }); });

  test('within the default retention: refused, exit 1, naming audit.retention_days', async () => {
    const r = await runCli(['audit', 'purge', '--before', 'now', '--yes', '--data-dir', dataDir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /within the retention period \(audit\.retention_days = 2191\)/);
  });

  test('without --yes: refused, exit 1, nothing removed', async () => {
    const segments = segmentNames(dataDir);
    const r = await runCli(['audit', 'purge', '--before', 'now', '--config', r0Config,
      '--data-dir', dataDir]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr,
      'phigate: audit purge: purging deletes audit records permanently: add --yes\n');
    assert.deepEqual(segmentNames(dataDir), segments);
  });

  test('purge --before now --yes removes whole old segments; verify passes and shows it', async () => {
    const records = readRecords(dataDir);
    const segments = segmentNames(dataDir);
    const r = await runCli(['audit', 'purge', '--before', 'now', '--yes', '--config', r0Config,
      '--data-dir', dataDir]);
    assert.equal(r.code, 0, r.stderr);
    const m = /^purged records 1-(\d+) \((\d+) records in (\d+) segments\) older than (\S+)\n$/.exec(r.stdout);
    assert.ok(m, r.stdout);
    const through = Number(m[1]);
    // Every segment but the last (current) one: all of its records are older than now.
    const lastSegment = segments[segments.length - 1];
    const expectedThrough = records.filter((x) => x.segment !== lastSegment).length;
    assert.equal(through, expectedThrough);
    assert.equal(Number(m[2]), through);
    assert.equal(Number(m[3]), segments.length - 1);
    // What remains starts with that segment (the purge's own record may start another).
    assert.equal(segmentNames(dataDir)[0], lastSegment);
    assert.ok(segments.slice(0, -1).every((n) => !fs.existsSync(path.join(auditDir(dataDir), n))));

    const v = await verify(dataDir);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const lines = v.stdout.split('\n').filter(Boolean);
    assert.match(lines[0], /^audit trail verified: \d+ records, \d+ checkpoints$/);
    assert.equal(lines.length, 2);
    assert.match(lines[1], new RegExp(`^purged at \\S+: records 1-${through} older than ${m[4]} ` +
      `\\(${through} records in ${segments.length - 1} segments\\)$`));

    // The purge is itself an administrative record.
    const events = await exportJsonl(dataDir, ['--since', '2000-01-01']);
    assert.equal(Number(events[0].id), through + 1, 'the export starts after the purge');
    const purge = events.filter((e) => subtypeOf(e) === 'audit.purge');
    assert.equal(purge.length, 1);
    assert.equal(purge[0].action, 'D');
    assert.ok(JSON.stringify(purge[0]).includes(`purged records 1-${through}`));
  });
});
