// Tests for the synthetic data generator (generate.mjs): determinism, exact counts, FHIR
// shape of every line, uniqueness and fictional-ness of identifiers, the manifest's expected
// counts recomputed independently from the files, and the transaction Bundle format.
// Run: node --test bench/synth/
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  kCodes, kFemaleGiven, kMaleGiven, kMrnSystem, kSsnSystem, kSurnames,
} from './generate.mjs';

const kScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'generate.mjs');
const kPatients = 200;
const kPerPatient = 5;
const kBundleSize = 137;  // not a divisor of 200 * 6, so the last file is short

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phigate-synth-'));
const dir = (name) => path.join(tmp, name);

function run(args) {
  return spawnSync(process.execPath, [kScript, '--quiet', ...args], { encoding: 'utf8' });
}
function generate(name, args) {
  const r = run(['--out', dir(name), ...args]);
  assert.equal(r.status, 0, r.stderr);
  return dir(name);
}
const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const readLines = (file) => {
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text.endsWith('\n'), `${file} ends with a newline`);
  return text.slice(0, -1).split('\n');
};
const normalize = (s) => s.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();

const base = ['--patients', String(kPatients), '--observations-per-patient', String(kPerPatient)];
let a;  // seed 42, ndjson
let patients;
let observations;
let manifest;

before(() => {
  a = generate('a', [...base, '--seed', '42']);
  generate('b', [...base, '--seed', '42']);
  generate('c', [...base, '--seed', '43']);
  generate('bundle', [...base, '--seed', '42', '--format', 'bundle', '--bundle-size',
    String(kBundleSize)]);
  patients = readLines(path.join(a, 'Patient.ndjson')).map((l) => JSON.parse(l));
  observations = readLines(path.join(a, 'Observation.ndjson')).map((l) => JSON.parse(l));
  manifest = JSON.parse(fs.readFileSync(path.join(a, 'manifest.json'), 'utf8'));
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('determinism', () => {
  test('the same seed gives byte-identical files', () => {
    for (const f of ['Patient.ndjson', 'Observation.ndjson', 'manifest.json']) {
      assert.equal(sha256(path.join(dir('b'), f)), sha256(path.join(a, f)), f);
    }
  });

  test('a different seed gives different files', () => {
    for (const f of ['Patient.ndjson', 'Observation.ndjson', 'manifest.json']) {
      assert.notEqual(sha256(path.join(dir('c'), f)), sha256(path.join(a, f)), f);
    }
  });

  test('the manifest records the size and sha256 of each data file', () => {
    for (const f of manifest.files) {
      assert.equal(f.sha256, sha256(path.join(a, f.name)), f.name);
      assert.equal(f.bytes, fs.statSync(path.join(a, f.name)).size, f.name);
    }
  });

  test('a smaller run is a prefix of a larger one with the same seed', () => {
    const small = generate('small', ['--patients', '50', '--observations-per-patient', '5',
      '--seed', '42']);
    const head = (file, lines) => readLines(file).slice(0, lines).join('\n');
    assert.equal(head(path.join(small, 'Patient.ndjson'), 50),
      head(path.join(a, 'Patient.ndjson'), 50));
    assert.equal(head(path.join(small, 'Observation.ndjson'), 250),
      head(path.join(a, 'Observation.ndjson'), 250));
  });
});

describe('counts and shape', () => {
  test('counts are exact', () => {
    assert.equal(patients.length, kPatients);
    assert.equal(observations.length, kPatients * kPerPatient);
    assert.deepEqual(manifest.counts,
      { Patient: kPatients, Observation: kPatients * kPerPatient, observationsPerPatient: 5 });
    assert.equal(manifest.seed, 42);
  });

  test('every Patient has the required fields', () => {
    const female = new Set(kFemaleGiven);
    const male = new Set(kMaleGiven);
    patients.forEach((p, i) => {
      assert.equal(p.resourceType, 'Patient');
      assert.equal(p.id, `p${String(i + 1).padStart(8, '0')}`);
      assert.equal(p.active, true);
      assert.equal(p.identifier[0].system, kMrnSystem);
      assert.match(p.identifier[0].value, /^MRN\d{8}$/);
      assert.ok(p.identifier.length === 1 || p.identifier[1].system === kSsnSystem, p.id);
      assert.equal(p.name.length, 1);
      assert.ok(kSurnames.includes(p.name[0].family), p.name[0].family);
      assert.ok(p.name[0].given.length >= 1 && p.name[0].given.length <= 2, p.id);
      const list = p.gender === 'female' ? female : p.gender === 'male' ? male : null;
      assert.ok(list, `${p.id} gender ${p.gender}`);
      for (const g of p.name[0].given) assert.ok(list.has(g), `${p.id} ${g} is ${p.gender}`);
      assert.match(p.birthDate, /^\d{4}-\d{2}-\d{2}$/);
      assert.ok(p.birthDate >= '1920-01-01' && p.birthDate <= '2024-12-31', p.birthDate);
      assert.ok(p.telecom.length >= 1);
      for (const t of p.telecom) assert.match(t.value, /^\(\d{3}\) 555-01\d{2}$/);
      const [addr] = p.address;
      assert.match(addr.postalCode, /^000\d{2}$/);
      assert.match(addr.state, /^[A-Z]{2}$/);
      assert.ok(addr.city && addr.line.length >= 1 && addr.country === 'US', p.id);
    });
  });

  test('every Observation has the required fields', () => {
    const byCode = new Map(kCodes.map((c) => [c.code, c]));
    const birth = new Map(patients.map((p) => [p.id, p.birthDate]));
    observations.forEach((o, n) => {
      const i = Math.floor(n / kPerPatient);
      const pid = `p${String(i + 1).padStart(8, '0')}`;
      assert.equal(o.resourceType, 'Observation');
      assert.equal(o.id, `o${pid.slice(1)}-${String((n % kPerPatient) + 1).padStart(3, '0')}`);
      assert.equal(o.status, 'final');
      assert.deepEqual(o.subject, { reference: `Patient/${pid}` });
      const [coding] = o.code.coding;
      assert.equal(coding.system, 'http://loinc.org');
      const c = byCode.get(coding.code);
      assert.ok(c, coding.code);
      assert.equal(coding.display, c.display);
      assert.equal(o.category[0].coding[0].code, c.cat.code);
      assert.match(o.effectiveDateTime,
        /^(\d{4}-\d{2}-\d{2})T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$/);
      const day = o.effectiveDateTime.slice(0, 10);
      assert.ok(day >= '2015-01-01' && day <= '2025-12-31', o.effectiveDateTime);
      assert.ok(day >= birth.get(pid), `${o.id} before birth`);
      assert.equal(o.valueQuantity.system, 'http://unitsofmeasure.org');
      assert.equal(o.valueQuantity.code, c.ucum);
      const v = o.valueQuantity.value;
      assert.equal(typeof v, 'number');
      if (c.lo !== undefined) assert.ok(v >= c.lo && v <= c.hi, `${o.id} ${c.code} ${v}`);
      if (c.byAge) {
        assert.ok(v >= Math.min(...c.byAge.map((b) => b[1])) &&
          v <= Math.max(...c.byAge.map((b) => b[2])), `${o.id} ${c.code} ${v}`);
      }
      if (c.derived === 'height') assert.ok(v > 40 && v < 230, `${o.id} height ${v}`);
      if (c.derived === 'weight') assert.ok(v > 1 && v < 250, `${o.id} weight ${v}`);
      if (c.derived === 'bmi') assert.ok(v > 10 && v < 60, `${o.id} bmi ${v}`);
    });
  });

  test('ids and identifiers are unique; SSNs are never-issued 9xx values', () => {
    const ids = new Set([...patients, ...observations].map((r) => r.id));
    assert.equal(ids.size, patients.length + observations.length);
    const values = patients.flatMap((p) => p.identifier.map((x) => `${x.system}|${x.value}`));
    assert.equal(new Set(values).size, values.length);
    const ssns = patients.flatMap((p) => p.identifier.filter((x) => x.system === kSsnSystem));
    // About 70% of 200: a wrong share (0% or 100%) would fail.
    assert.ok(ssns.length > 110 && ssns.length < 170, `${ssns.length} SSNs`);
    for (const s of ssns) assert.match(s.value, /^9\d{2}-(0[1-9]|[1-4]\d)-\d{4}$/);
  });

  test('the name lists are large, disjoint, NFC, letters only and include accents', () => {
    assert.ok(kFemaleGiven.length + kMaleGiven.length >= 300);
    assert.ok(kFemaleGiven.length >= 150 && kMaleGiven.length >= 150);
    assert.ok(kSurnames.length >= 300);
    for (const list of [kFemaleGiven, kMaleGiven, kSurnames]) {
      assert.equal(new Set(list).size, list.length, 'duplicates');
      for (const s of list) {
        assert.equal(s, s.normalize('NFC'));
        assert.match(s, /^\p{L}+$/u);
        assert.doesNotMatch(s, /[ßøØłŁæÆœŒđĐ]/);
      }
    }
    const male = new Set(kMaleGiven);
    assert.deepEqual(kFemaleGiven.filter((g) => male.has(g)), []);
    for (const s of ['José', 'Zoë']) assert.ok([...kFemaleGiven, ...kMaleGiven].includes(s), s);
    for (const s of ['Müller', 'Muller', 'Nuñez', 'Nunez']) assert.ok(kSurnames.includes(s), s);
  });
});

describe('manifest samples match the files', () => {
  test('identifier samples', () => {
    const ids = manifest.samples.identifiers;
    const misses = manifest.samples.identifierMisses;
    assert.equal(ids.length, 100);
    assert.equal(ids.filter((x) => x.expected === 1 && x.system === kMrnSystem).length, 50);
    assert.equal(ids.filter((x) => x.expected === 1 && x.system === kSsnSystem).length, 50);
    assert.equal(misses.length, 10);
    assert.ok(misses.every((x) => x.expected === 0 && x.patient === null));
    for (const x of [...ids, ...misses]) {
      const hits = patients.filter((p) =>
        p.identifier.some((y) => y.system === x.system && y.value === x.value));
      assert.equal(hits.length, x.expected, `${x.system}|${x.value}`);
      if (x.expected) assert.equal(hits[0].id, x.patient);
    }
  });

  test('family prefix samples', () => {
    const fp = manifest.samples.familyPrefixes;
    assert.equal(fp.length, 100);
    assert.ok(fp.some((x) => normalize(x.prefix) !== x.prefix.toLowerCase()), 'an accented prefix');
    assert.ok(fp.some((x) => x.expected > 0) && fp.some((x) => x.expected > 5));
    for (const x of fp) {
      const want = normalize(x.prefix);
      const count = patients.filter((p) => normalize(p.name[0].family).startsWith(want)).length;
      assert.equal(count, x.expected, x.prefix);
    }
  });

  test('birth date range samples', () => {
    const br = manifest.samples.birthDateRanges;
    assert.equal(br.length, 100);
    for (const x of br) {
      const count = patients.filter((p) => p.birthDate >= x.ge && p.birthDate < x.lt).length;
      assert.equal(count, x.expected, `${x.ge}..${x.lt}`);
    }
  });

  test('observation patient + code + date samples', () => {
    const oq = manifest.samples.observationQueries;
    assert.equal(oq.length, 100);
    assert.ok(oq.filter((x) => x.expected > 0).length >= 80, 'mostly non-empty');
    for (const x of oq) {
      const same = observations.filter((o) => o.subject.reference === `Patient/${x.patient}` &&
        o.code.coding[0].system === x.system && o.code.coding[0].code === x.code);
      const lo = Date.parse(x.ge);
      const hi = Date.parse(x.lt);
      const inRange = same.filter((o) => {
        const t = Date.parse(o.effectiveDateTime);
        return t >= lo && t < hi;
      });
      assert.equal(same.length, x.expectedAnyDate, JSON.stringify(x));
      assert.equal(inRange.length, x.expected, JSON.stringify(x));
    }
  });
});

describe('bundle format', () => {
  test('transaction Bundles of PUT entries hold exactly the ndjson resources', () => {
    const bdir = dir('bundle');
    const bm = JSON.parse(fs.readFileSync(path.join(bdir, 'manifest.json'), 'utf8'));
    const total = kPatients * (kPerPatient + 1);
    const nfiles = Math.ceil(total / kBundleSize);
    const names = Array.from({ length: nfiles },
      (_, k) => `bundles-${String(k + 1).padStart(4, '0')}.json`);
    assert.deepEqual(fs.readdirSync(bdir).sort(), [...names, 'manifest.json'].sort());
    assert.deepEqual(bm.files.map((f) => f.name), names);
    assert.deepEqual(bm.counts, { Patient: kPatients, Observation: kPatients * kPerPatient,
      observationsPerPatient: kPerPatient, bundles: nfiles, entries: total });
    assert.deepEqual(bm.samples, manifest.samples);

    // Expected order: each patient, then its observations.
    const expected = [];
    const patientLines = readLines(path.join(a, 'Patient.ndjson'));
    const obsLines = readLines(path.join(a, 'Observation.ndjson'));
    patientLines.forEach((line, i) => {
      expected.push(line, ...obsLines.slice(i * kPerPatient, (i + 1) * kPerPatient));
    });
    let seen = 0;
    names.forEach((name, k) => {
      const text = fs.readFileSync(path.join(bdir, name), 'utf8');
      const b = JSON.parse(text);
      assert.equal(b.resourceType, 'Bundle');
      assert.equal(b.type, 'transaction');
      const last = total - kBundleSize * (nfiles - 1);
      assert.equal(b.entry.length, k < nfiles - 1 ? kBundleSize : last);
      assert.equal(bm.files[k].entries, b.entry.length);
      assert.equal(bm.files[k].sha256, sha256(path.join(bdir, name)));
      for (const e of b.entry) {
        assert.deepEqual(Object.keys(e), ['resource', 'request']);
        assert.deepEqual(e.request,
          { method: 'PUT', url: `${e.resource.resourceType}/${e.resource.id}` });
        assert.equal(JSON.stringify(e.resource), expected[seen], `entry ${seen}`);
        seen += 1;
      }
    });
    assert.equal(seen, total);
  });
});

describe('command line', () => {
  test('missing --out is a usage error', () => {
    const r = run(['--patients', '10']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^synth: --out is required\n/);
  });

  test('a bad number is a usage error naming the option', () => {
    const r = run(['--patients', '0', '--out', dir('bad')]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^synth: --patients must be an integer in 1 \.\. 48995100, got "0"\n/);
  });

  test('earlier output is kept unless --force', () => {
    const out = generate('again', ['--patients', '3', '--seed', '1']);
    const before3 = sha256(path.join(out, 'Patient.ndjson'));
    const r = run(['--patients', '4', '--seed', '1', '--out', out]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /already holds generator output .*pass --force to replace it/);
    assert.equal(sha256(path.join(out, 'Patient.ndjson')), before3);
    generate('again', ['--patients', '4', '--seed', '1', '--force', '--format', 'bundle']);
    assert.deepEqual(fs.readdirSync(out).sort(), ['bundles-0001.json', 'manifest.json']);
  });
});
