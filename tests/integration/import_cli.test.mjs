// `phigate import` (issue 6 §7: the search benchmark's loader) with the real binary:
// resources from bench/synth's generator are imported, then the server finds them by the
// manifest's sample searches with exactly the manifest's expected counts (identifier,
// family prefix, birth date range, patient + code + date); a re-import makes new versions
// whose index replaces the old one; a bad line stops the import with exit 1 naming the
// line and a fixed reason, the earlier batches committed and nothing after; the command
// writes an audit record at its start and one with counts only at its end (a killed import
// leaves the first); and a canary value in the files is never
// stored in the clear under the data dir nor printed.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  makeTempRoot, runCli, startServer, addClient, bearer, listFiles, phigateBin,
} from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const GENERATOR = path.resolve(here, '../../bench/synth/generate.mjs');

// Canary values: distinctive, in a Patient and an Observation of their own file.
const CANARY_FAMILY = 'Qwxcanaryfam';
const CANARY_GIVEN = 'Vexcanarygiv';
const CANARY_MRN = 'CANARY-MRN-7421';
const CANARY_NOTE = 'Jqcanary note text';
// Ids are stored in the clear by design (DESIGN.md), so the canary resources' ids are plain.
const NEEDLES = [CANARY_FAMILY, CANARY_GIVEN, CANARY_MRN, CANARY_NOTE,
  CANARY_FAMILY.toLowerCase(), 'Qwxcanary', 'qwxcanary', 'Vexcanary', 'Jqcanary'];
const MRN_SYSTEM = 'urn:oid:1.3.6.1.4.1.32473.1.1';

function canaryPatient() {
  return {
    resourceType: 'Patient', id: 'cx-1',
    identifier: [{ system: MRN_SYSTEM, value: CANARY_MRN }],
    name: [{ family: CANARY_FAMILY, given: [CANARY_GIVEN] }],
    gender: 'other', birthDate: '1901-02-03',
  };
}

function canaryObservation() {
  return {
    resourceType: 'Observation', id: 'cx-obs-1', status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }], text: CANARY_NOTE },
    subject: { reference: 'Patient/cx-1' },
    effectiveDateTime: '2020-05-06T07:08:09Z',
    note: [{ text: `${CANARY_NOTE} ${CANARY_FAMILY}` }],
  };
}

const ndjson = (resources) => resources.map((r) => `${JSON.stringify(r)}\n`).join('');

function generate(outDir) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [GENERATOR, '--patients', '40', '--observations-per-patient', '4',
      '--seed', '1', '--out', outDir, '--quiet'], (err, stdout, stderr) => {
      if (err) reject(new Error(`generator failed: ${stderr}`));
      else resolve();
    });
  });
}

// The manifest's string match (search.html#string): NFD, marks removed, lower case.
const normalize = (s) => s.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();

function findNeedles(bytes) {
  return NEEDLES.filter((n) => bytes.indexOf(Buffer.from(n, 'utf8')) !== -1);
}

async function scanDataDir(dataDir) {
  const hits = [];
  for (const file of await listFiles(dataDir)) {
    const found = findNeedles(await fsp.readFile(file));
    if (found.length) hits.push(`${path.relative(dataDir, file)}: ${found.join(', ')}`);
  }
  return hits;
}

function importArgs(dataDir, files, extra = []) {
  return ['import', '--data-dir', dataDir, ...extra, ...files];
}

describe('phigate import of bench/synth data', () => {
  let root;
  let dataDir;
  let synth;
  let manifest;
  let canaryFile;
  let firstImport;
  let server;
  let token;

  const search = async (query) => {
    const res = await server.request('GET', `/fhir/${query}`, { headers: bearer(token) });
    assert.equal(res.status, 200, `${query}: ${res.body}`);
    const bundle = res.json();
    assert.equal(bundle.link?.find((l) => l.relation === 'next'), undefined,
      `${query}: one page holds every match`);
    return (bundle.entry ?? []).map((e) => e.resource);
  };

  before(async () => {
    root = await makeTempRoot('phigate-import-');
    dataDir = path.join(root, 'data');
    synth = path.join(root, 'synth');
    await generate(synth);
    manifest = JSON.parse(await fsp.readFile(path.join(synth, 'manifest.json'), 'utf8'));
    assert.deepEqual(manifest.counts, { Patient: 40, Observation: 160, observationsPerPatient: 4 });
    canaryFile = path.join(root, 'canary.ndjson');
    await fsp.writeFile(canaryFile, ndjson([canaryPatient(), canaryObservation()]));
    // Batches of 64: several transactions, the last one partial.
    firstImport = await runCli(importArgs(dataDir, [path.join(synth, 'Patient.ndjson'),
      path.join(synth, 'Observation.ndjson'), canaryFile], ['--batch-size', '64', '--json']));
  });

  after(async () => {
    if (server) await server.dispose({ removeRoot: false });
    if (root) await fsp.rm(root, { recursive: true, force: true });
  });

  test('imports every line and prints the counts', () => {
    assert.equal(firstImport.code, 0, firstImport.stderr);
    const summary = JSON.parse(firstImport.stdout);
    assert.deepEqual(
      { ...summary, seconds: undefined, resources_per_second: undefined },
      { resources: 202, created: 202, updated: 0, by_type: { Observation: 161, Patient: 41 },
        files: 3, seconds: undefined, resources_per_second: undefined });
    assert.ok(summary.seconds > 0 && summary.resources_per_second > 0, firstImport.stdout);
    assert.deepEqual(findNeedles(Buffer.from(firstImport.stderr + firstImport.stdout)), []);
  });

  test('the server finds the imported resources with the manifest\'s expected counts', async () => {
    server = await startServer({ dataDir });
    token = await server.token(await addClient(dataDir, { name: 'import-it' }));
    const { samples } = manifest;

    for (const s of [...samples.identifiers, ...samples.identifierMisses]) {
      const found = await search(`Patient?identifier=${encodeURIComponent(`${s.system}|${s.value}`)}`);
      assert.deepEqual(found.map((p) => p.id), s.patient ? [s.patient] : [],
        `identifier ${s.system}|${s.value}`);
    }
    for (const s of samples.familyPrefixes) {
      const canary = normalize(CANARY_FAMILY).startsWith(normalize(s.prefix)) ? 1 : 0;
      const found = await search(`Patient?family=${encodeURIComponent(s.prefix)}&_count=100`);
      assert.equal(found.length, s.expected + canary, `family=${s.prefix}`);
    }
    for (const s of samples.birthDateRanges) {
      const found = await search(`Patient?birthdate=ge${s.ge}&birthdate=lt${s.lt}&_count=100`);
      assert.equal(found.length, s.expected, `birthdate ge${s.ge} lt${s.lt}`);
    }
    for (const s of samples.observationQueries) {
      const base = `Observation?subject=Patient/${s.patient}` +
        `&code=${encodeURIComponent(`${s.system}|${s.code}`)}&_count=50`;
      const dated = await search(`${base}&date=ge${s.ge}&date=lt${s.lt}`);
      assert.equal(dated.length, s.expected, `${base} ge${s.ge} lt${s.lt}`);
      const anyDate = await search(base);
      assert.equal(anyDate.length, s.expectedAnyDate, base);
      for (const o of anyDate) assert.equal(o.subject.reference, `Patient/${s.patient}`);
    }

    // The canary resources were imported too, found by their own values.
    const canary = await search(`Patient?identifier=${encodeURIComponent(`${MRN_SYSTEM}|${CANARY_MRN}`)}`);
    assert.deepEqual(canary.map((p) => [p.id, p.name[0].family]), [['cx-1', CANARY_FAMILY]]);

    // Stored as a write would store it: the server's meta first, everything else as sent.
    const read = await server.request('GET', '/fhir/Patient/p00000001', { headers: bearer(token) });
    assert.equal(read.status, 200, read.body);
    assert.equal(read.headers.etag, 'W/"1"');
    const original = JSON.parse(
      (await fsp.readFile(path.join(synth, 'Patient.ndjson'), 'utf8')).split('\n')[0]);
    const stored = read.json();
    assert.equal(stored.meta.versionId, '1');
    assert.match(stored.meta.lastUpdated, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual({ ...stored, meta: undefined }, { ...original, meta: undefined });
  });

  test('refuses to run while the server holds the data dir', async () => {
    const r = await runCli(importArgs(dataDir, [canaryFile]));
    assert.equal(r.code, 1);
    assert.equal(r.stderr,
      `phigate: cannot start: ${dataDir}: another phigate serve is already using this data dir\n`);
    assert.equal(r.stdout, '');
  });

  test('a re-import makes new versions whose index replaces the old entries', async () => {
    await server.stop();
    const changed = canaryPatient();
    changed.identifier[0].value = 'REPLACED-MRN-1';
    const changedFile = path.join(root, 'changed.ndjson');
    await fsp.writeFile(changedFile, ndjson([changed]));
    const r = await runCli(importArgs(dataDir, [path.join(synth, 'Patient.ndjson'), changedFile]));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout,
      /^imported 41 resources \(0 created, 41 new versions of existing ids; Patient 41\) in \d+\.\d\d s: \d+ resources\/s\n$/);

    server = await startServer({ dataDir });
    token = await server.token(await addClient(dataDir, { name: 'import-it-2' }));
    const read = await server.request('GET', '/fhir/Patient/p00000001', { headers: bearer(token) });
    assert.equal(read.status, 200, read.body);
    assert.equal(read.headers.etag, 'W/"2"');
    const s = manifest.samples.identifiers[0];
    const found = await search(`Patient?identifier=${encodeURIComponent(`${s.system}|${s.value}`)}`);
    assert.deepEqual(found.map((p) => p.id), [s.patient], 'one match, not one per version');
    assert.deepEqual(
      await search(`Patient?identifier=${encodeURIComponent(`${MRN_SYSTEM}|${CANARY_MRN}`)}`), []);
    const replaced = await search(`Patient?identifier=${encodeURIComponent(`${MRN_SYSTEM}|REPLACED-MRN-1`)}`);
    assert.deepEqual(replaced.map((p) => p.id), ['cx-1']);
  });

  test('writes two audit records per run (at the start, before any write; at the end, with counts only)', async () => {
    await server.stop();
    const r = await runCli(['audit', 'export', '--data-dir', dataDir, '--since', '2000-01-01']);
    assert.equal(r.code, 0, r.stderr);
    const records = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l))
      .filter((e) => e.subtype?.[0]?.code === 'import');
    assert.equal(records.length, 4, JSON.stringify(records));
    const details = records.map((e) => e.extension.find((x) => x.url.endsWith('audit-detail')).valueString);
    assert.deepEqual(details, [
      'bulk import started: 3 files',
      'bulk import: 202 resources committed (202 created, 0 new versions; Observation 161, Patient 41) from 3 files',
      'bulk import started: 2 files',
      'bulk import: 41 resources committed (0 created, 41 new versions; Patient 41) from 2 files',
    ]);
    for (const e of records) {
      assert.equal(e.action, 'C');
      assert.equal(e.outcome, '0');
      assert.deepEqual(findNeedles(Buffer.from(JSON.stringify(e))), []);
      assert.ok(!JSON.stringify(e).includes('ndjson'), 'no file names');
    }
  });

  test('no canary value is stored in the clear under the data dir', async () => {
    assert.deepEqual(await scanDataDir(dataDir), []);
  });
});

describe('phigate import of bad input', () => {
  let root;

  before(async () => { root = await makeTempRoot('phigate-import-bad-'); });
  after(async () => { if (root) await fsp.rm(root, { recursive: true, force: true }); });

  const patient = (id, extra = {}) => ({ resourceType: 'Patient', id, gender: 'female', ...extra });

  // Writes `lines` (strings) as a file, imports it in batches of 2 into a fresh data dir and
  // returns the run and the data dir.
  async function importLines(name, lines, extra = ['--batch-size', '2']) {
    const file = path.join(root, `${name}.ndjson`);
    await fsp.writeFile(file, lines.map((l) => `${l}\n`).join(''));
    const dataDir = path.join(root, `${name}-data`);
    return { file, dataDir, run: await runCli(importArgs(dataDir, [file], extra)) };
  }

  const stopped = (committed) => `phigate: import: stopped; ${committed} resources were ` +
    'committed in earlier batches; nothing from the failed batch or after it was written\n';

  test('a malformed line stops the import: earlier batches stay, the rest is not written', async () => {
    const lines = [
      JSON.stringify(patient('a1')),
      JSON.stringify(patient('a2')),
      JSON.stringify(patient('a3')),  // in the batch of the bad line: not written
      `{"resourceType":"Patient","id":"a4","name":[{"family":"${CANARY_FAMILY}"}]`,  // no closing }
      JSON.stringify(patient('a5')),
    ];
    const { file, dataDir, run } = await importLines('malformed', lines);
    assert.equal(run.code, 1);
    assert.equal(run.stderr, `phigate: import: ${file}:4: malformed JSON\n${stopped(2)}`);
    assert.equal(run.stdout, '');

    const server = await startServer({ dataDir, root });
    try {
      const token = await server.token(await addClient(dataDir, { name: 'import-bad' }));
      const status = async (id) => (await server.request('GET', `/fhir/Patient/${id}`,
        { headers: bearer(token) })).status;
      assert.deepEqual([await status('a1'), await status('a2'), await status('a3'),
        await status('a4'), await status('a5')], [200, 200, 404, 404, 404]);
    } finally {
      await server.dispose({ removeRoot: false });
    }
    // The failed run is recorded too, with what was committed and where it stopped.
    const r = await runCli(['audit', 'export', '--data-dir', dataDir, '--since', '2000-01-01']);
    const records = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l))
      .filter((e) => e.subtype?.[0]?.code === 'import');
    assert.equal(records.length, 2);
    assert.deepEqual(records.map((e) => e.outcome), ['0', '8']);
    assert.deepEqual(records.map((e) => e.extension.find((x) => x.url.endsWith('audit-detail')).valueString), [
      'bulk import started: 1 file',
      'bulk import: 2 resources committed (2 created, 0 new versions; Patient 2) from 1 file ' +
      '(failed at line 4 of file 1)']);
    assert.deepEqual(await scanDataDir(dataDir), []);
  });

  test('each kind of bad line has its fixed reason and never echoes the content', async () => {
    const cases = [
      ['no-id', JSON.stringify({ resourceType: 'Patient', name: [{ family: CANARY_FAMILY }] }),
        'the resource has no id'],
      ['bad-id', JSON.stringify(patient(`${CANARY_FAMILY}_x`)),
        'invalid id value'],
      ['unknown-element', JSON.stringify(patient('u1', { [CANARY_FAMILY]: 'x' })),
        'unknown element'],
      ['no-type', JSON.stringify({ id: 'x1', name: [{ family: CANARY_FAMILY }] }),
        'missing resourceType'],
      ['bad-date', JSON.stringify(patient('d1', { birthDate: `${CANARY_FAMILY}` })),
        'invalid date value'],
      ['audit-event', JSON.stringify({ resourceType: 'AuditEvent', id: 'ae1' }),
        'AuditEvent resources cannot be imported'],
      ['duplicate-key', `{"resourceType":"Patient","id":"k1","gender":"male","gender":"${CANARY_FAMILY}"}`,
        'duplicate JSON property'],
    ];
    for (const [name, line, reason] of cases) {
      const { file, run } = await importLines(name, [JSON.stringify(patient('ok1')), line]);
      assert.equal(run.code, 1, `${name}: ${run.stderr}`);
      assert.equal(run.stderr, `phigate: import: ${file}:2: ${reason}\n${stopped(0)}`, name);
      assert.deepEqual(findNeedles(Buffer.from(run.stderr + run.stdout)), [], name);
    }
  });

  test('a line longer than limits.body_bytes is refused without reading it whole', async () => {
    const config = path.join(root, 'small.toml');
    await fsp.writeFile(config, '[limits]\nbody_bytes = 1024\n');
    const big = JSON.stringify(patient('big', { name: [{ family: 'x'.repeat(2000) }] }));
    const { file, run } = await importLines('too-long', [JSON.stringify(patient('s1')), big],
      ['--config', config]);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(run.stderr,
      `phigate: import: ${file}:2: the line is longer than limits.body_bytes\n${stopped(0)}`);
  });

  test('blank lines and CRLF line ends are accepted; a repeated id becomes its next version', async () => {
    const lines = ['', JSON.stringify(patient('c1')) + '\r', '   ',
      JSON.stringify(patient('c1', { gender: 'male' }))];
    const { dataDir, run } = await importLines('crlf', lines, ['--json']);
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(run.stdout);
    assert.deepEqual([summary.resources, summary.created, summary.updated], [2, 1, 1]);
    const server = await startServer({ dataDir, root });
    try {
      const token = await server.token(await addClient(dataDir, { name: 'import-crlf' }));
      const read = await server.request('GET', '/fhir/Patient/c1', { headers: bearer(token) });
      assert.equal(read.headers.etag, 'W/"2"');
      assert.equal(read.json().gender, 'male');
    } finally {
      await server.dispose({ removeRoot: false });
    }
  });

  test('killed mid-import (kill -9): the start record is in the trail, the committed batches are readable', async () => {
    const file = path.join(root, 'killed.ndjson');
    const n = 200_000;
    await fsp.writeFile(file, Array.from({ length: n }, (_, i) => `${JSON.stringify(patient(`k${i}`))}\n`).join(''));
    const dataDir = path.join(root, 'killed-data');
    const child = spawn(phigateBin(), importArgs(dataDir, [file], ['--batch-size', '100']),
      { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    // The first progress line: batches are committed, the import is under way.
    await new Promise((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        if (/^import: \d+ resources committed/m.test(stderr)) resolve();
      });
      exited.then(() => reject(new Error(`the import ended before it was killed: ${stderr}`)));
    });
    child.kill('SIGKILL');
    assert.deepEqual(await exited, { code: null, signal: 'SIGKILL' });

    const r = await runCli(['audit', 'export', '--data-dir', dataDir, '--since', '2000-01-01']);
    assert.equal(r.code, 0, r.stderr);
    const records = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l))
      .filter((e) => e.subtype?.[0]?.code === 'import');
    assert.deepEqual(records.map((e) => [e.outcome,
      e.extension.find((x) => x.url.endsWith('audit-detail')).valueString]), [['0', 'bulk import started: 1 file']]);
    const server = await startServer({ dataDir, root });
    try {
      const token = await server.token(await addClient(dataDir, { name: 'import-killed' }));
      const status = async (id) => (await server.request('GET', `/fhir/Patient/${id}`,
        { headers: bearer(token) })).status;
      assert.equal(await status('k0'), 200, 'the first batch was committed');
      assert.equal(await status(`k${n - 1}`), 404, 'the last line was never reached');
    } finally {
      await server.dispose({ removeRoot: false });
    }
  });

  test('usage errors exit 2 and create no data dir', async () => {
    const dataDir = path.join(root, 'never-created');
    let r = await runCli(['import', '--data-dir', dataDir]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'phigate: import: at least one NDJSON file is required\n' +
      "Run 'phigate --help' for usage.\n");
    r = await runCli(['import', '--data-dir', dataDir, path.join(root, 'missing.ndjson')]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `phigate: import: cannot read '${path.join(root, 'missing.ndjson')}'\n` +
      "Run 'phigate --help' for usage.\n");
    r = await runCli(['import', '--data-dir', dataDir, '--batch-size', '0', 'x.ndjson']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'phigate: import: --batch-size must be an integer from 1 to 10000\n' +
      "Run 'phigate --help' for usage.\n");
    assert.equal(fs.existsSync(dataDir), false);
    r = await runCli(['import', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: phigate import /);
    assert.match(r.stdout, /every batch before the one holding that line stays\ncommitted/);
  });
});
