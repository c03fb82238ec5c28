// Fail closed (issue 5 §2, §6 second bullet): when the audit record of a request cannot be
// made durable, the request fails with 503 and the exact OperationOutcome, carries no PHI,
// commits no change, and /readyz reports not ready; when the fault clears, the server
// recovers by itself. Faults: an injected write failure, an injected fsync failure and a
// stalled writer (test builds: the PHIGATE_TEST_AUDIT_FAULTS control file,
// audit/fault_directory.h), then a real full file system: a small tmpfs mounted as the data
// dir's audit directory and filled up (where mounting is not permitted, the injection seam
// stands in, and the test says so).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { startServer, addClient, makeTempRoot, bearer } from './harness.mjs';
import { TokenMint, fhirApi, resourceBody } from './authz_helpers.mjs';
import { AUDIT_UNAVAILABLE, FaultControl, AuditView, auditorToken, requestId, ext, waitUntil } from './audit_helpers.mjs';

const DEADLINE_MS = 300;  // [audit] append_deadline_ms: a stalled writer fails requests fast
const CONFIG = `[audit]\nappend_deadline_ms = ${DEADLINE_MS}\n`;
const SECRET = 'FailClosedSecretName';

let root;
let fault;
let server;
let api;
let mint;
let client;
let token;
let mounted;  // the tmpfs mount point, if mounted

function sh(cmd, args) {
  return new Promise((resolve) => {
    execFile(cmd, args, (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }));
  });
}

function assertUnavailable(res, what) {
  assert.equal(res.status, 503, `${what}: expected 503, got ${res.status}: ${res.body}`);
  assert.equal(res.headers['content-type'], 'application/fhir+json; charset=utf-8', what);
  assert.equal(res.headers['retry-after'], '5', `${what}: Retry-After`);
  assert.deepEqual(JSON.parse(res.body), {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code: 'transient', diagnostics: AUDIT_UNAVAILABLE }],
  }, what);
  assert.ok(!res.body.includes(SECRET), `${what}: no PHI in the body`);
}

async function readyz() {
  return server.request('GET', '/readyz');
}

// Every entry of the type history: ["id/versionId", ...] (what is committed).
async function committed() {
  const out = [];
  let url = '/fhir/Patient/_history?_count=500';
  while (url) {
    const page = await server.request('GET', url, { headers: bearer(token) });
    assert.equal(page.status, 200, page.body);
    const b = page.json();
    for (const e of b.entry ?? []) {
      out.push(e.resource ? `${e.resource.id}/${e.resource.meta.versionId}` : `${e.request?.url} (deleted)`);
    }
    url = b.link.find((l) => l.relation === 'next')?.url;
  }
  return out.sort();
}

const withRid = (label) => ({ 'x-request-id': requestId(label) });

// Asserts the whole fail-closed behaviour while the trail cannot write, for one existing
// Patient `id` at version `v`; `label` names the fault; `before` is what was committed
// before the fault (reading it is itself audited). Resolves the state for assertRecovers.
async function assertFailsClosed(label, id, v, before) {
  const rids = [];
  const h = (what) => {
    const x = withRid(`${label}-${what}`);
    rids.push(x['x-request-id']);
    return x;
  };
  assertUnavailable(await api.get(`/fhir/Patient/${id}`, token, h('read')), `${label}: read`);
  assertUnavailable(await api.get(`/fhir/Patient/${id}/_history/1`, token, h('vread')), `${label}: vread`);
  assertUnavailable(await api.get(`/fhir/Patient/${id}/_history`, token, h('history')), `${label}: history`);
  assertUnavailable(await api.post('/fhir/Patient', token, resourceBody('Patient', { marker: `${SECRET}New` }), h('create')),
    `${label}: create`);
  assertUnavailable(await api.put(`/fhir/Patient/${id}`, token,
    { ...resourceBody('Patient', { marker: `${SECRET}Changed` }), id }, h('update')), `${label}: update`);
  assertUnavailable(await api.del(`/fhir/Patient/${id}`, token, h('delete')), `${label}: delete`);
  // Checked at the end of the test (after recovery), so that a wrong readiness answer
  // does not hide how the rest behaves.
  const ready = await readyz();
  const readiness = `${ready.status} ${ready.body}`;
  // Still failing on the next request: the trail is not ready, so nothing leaves.
  assertUnavailable(await api.get(`/fhir/Patient/${id}`, token, h('read-again')), `${label}: read again`);
  return { before, rids, id, v, readiness };
}

// Clears the fault (by `clear()`), then asserts recovery: /readyz 200 within a few seconds,
// nothing was committed under the fault, no record claims a success for a failed request,
// and the same requests succeed.
async function assertRecovers(label, state, clear) {
  await clear();
  const ok = await waitUntil(async () => (await readyz()).status === 200, { timeoutMs: 5000 });
  assert.ok(ok, `${label}: /readyz is 200 within 5 s of the fault clearing`);
  assert.deepEqual((await readyz()).json(), { status: 'ready' });

  // Nothing was committed under the fault.
  assert.deepEqual(await committed(), state.before, `${label}: no change committed`);
  const read = await api.get(`/fhir/Patient/${state.id}`, token);
  assert.equal(read.status, 200, read.body);
  assert.equal(read.json().meta.versionId, String(state.v), `${label}: the update left the old version`);
  assert.equal(read.json().name[0].family, SECRET);

  // No record claims that a failed request succeeded.
  const view = new AuditView(server, auditorToken(mint, client.client_id));
  await view.sync();
  for (const rid of state.rids) {
    for (const ev of view.events.filter((e) => ext(e, 'request-id') === rid)) {
      assert.equal(ext(ev, 'http-status'), 503, `${label}: the record of ${rid} says ${ext(ev, 'http-status')}`);
    }
  }

  // The same requests succeed again.
  const created = await api.post('/fhir/Patient', token, resourceBody('Patient', { marker: SECRET }));
  assert.equal(created.status, 201, created.body);
  const newId = created.json().id;
  const vread = await api.get(`/fhir/Patient/${state.id}/_history/1`, token);
  assert.equal(vread.status, 200, vread.body);
  const updated = await api.put(`/fhir/Patient/${newId}`, token, { ...resourceBody('Patient', { marker: SECRET }), id: newId });
  assert.equal(updated.status, 200, updated.body);
  assert.equal(updated.headers.etag, 'W/"2"');
  const hist = await api.get(`/fhir/Patient/${newId}/_history`, token);
  assert.equal(hist.status, 200, hist.body);
  assert.equal(hist.json().entry.length, 2);
  const del = await api.del(`/fhir/Patient/${newId}`, token);
  assert.equal(del.status, 204, del.body);
  // Each of them has its one record.
  for (const res of [created, vread, updated, hist, del]) {
    const rid = res.headers['x-request-id'];
    assert.equal((await view.recordsOf(rid)).length, 1, `${label}: the record of ${rid} after recovery`);
  }
}

async function seedPatient() {
  const res = await api.post('/fhir/Patient', token, resourceBody('Patient', { marker: SECRET }));
  assert.equal(res.status, 201, res.body);
  return res.json().id;
}

before(async () => {
  root = await makeTempRoot('phigate-audit-fc-');
  fault = new FaultControl(path.join(root, 'audit-faults'));
  server = await startServer({ root, config: CONFIG });
  api = fhirApi(server);
  mint = await TokenMint.create(server);
  client = await addClient(server.dataDir, { name: 'fail-closed', roles: 'clinician' });
  token = mint.system({ clientId: client.client_id, roles: ['clinician'] });
});

after(async () => {
  fault?.clear();
  if (server) await server.dispose({ removeRoot: false });
  if (mounted) {
    const u = await sh('umount', [mounted]);
    if (u.code !== 0) await sh('umount', ['-l', mounted]);
  }
  if (root) await fsp.rm(root, { recursive: true, force: true });
});

for (const word of ['write', 'fsync', 'stall']) {
  test(`injected ${word} fault: 503 without PHI, no change, not ready; recovers when cleared`, async () => {
    const id = await seedPatient();
    assert.equal((await readyz()).status, 200);
    const before = await committed();
    fault.set(word);
    const state = await assertFailsClosed(word, id, 1, before);
    await assertRecovers(word, state, async () => fault.clear());
    assert.equal(state.readiness, '503 {"status":"not ready"}', `${word}: /readyz while the trail failed`);
  });
}

test('a real full file system (tmpfs as the audit directory): 503, not ready; recovers when space returns', async (t) => {
  // Restart on the same data dir with <data_dir>/audit on a small tmpfs.
  const dataDir = server.dataDir;
  await server.dispose({ removeRoot: false });
  server = undefined;
  const auditDir = path.join(dataDir, 'audit');
  const saved = path.join(root, 'audit-saved');
  await fsp.rename(auditDir, saved);
  await fsp.mkdir(auditDir, { mode: 0o700 });
  const m = await sh('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', auditDir]);
  const real = m.code === 0;
  if (real) {
    mounted = auditDir;
    for (const f of await fsp.readdir(saved)) await fsp.cp(path.join(saved, f), path.join(auditDir, f), { recursive: true });
  } else {
    t.diagnostic(`mount -t tmpfs failed (${m.stderr.trim()}): the real-disk variant ran as injection ("write")`);
    await fsp.rmdir(auditDir);
    await fsp.rename(saved, auditDir);
  }
  server = await startServer({ dataDir, config: CONFIG });
  api = fhirApi(server);
  mint = await TokenMint.create(server);
  token = mint.system({ clientId: client.client_id, roles: ['clinician'] });
  const id = await seedPatient();
  assert.equal((await readyz()).status, 200);
  const before = await committed();

  const filler = path.join(auditDir, 'filler');
  if (real) {
    // Fill the file system: big writes, then ever smaller ones, until not a byte fits.
    const fd = fs.openSync(filler, 'w');
    try {
      for (const size of [1 << 20, 1 << 16, 4096, 512, 1]) {
        const buf = Buffer.alloc(size, 0x61);
        for (;;) {
          try {
            fs.writeSync(fd, buf);
          } catch (err) {
            if (err.code === 'ENOSPC') break;
            throw err;
          }
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    // The last page of the current segment may still hold a record or two: audited
    // requests without PHI use it up until the trail reports the disk full.
    let failed = false;
    for (let i = 0; i < 20 && !failed; i++) {
      failed = (await api.get('/fhir/Patient/no-such-patient', token)).status === 503;
    }
    assert.ok(failed, 'the full file system fails audited requests within 20 requests');
  } else {
    fault.set('write');
  }
  const state = await assertFailsClosed(real ? 'tmpfs' : 'tmpfs-as-injection', id, 1, before);
  await assertRecovers(real ? 'tmpfs' : 'tmpfs-as-injection', state, async () => {
    if (real) await fsp.rm(filler);
    else fault.clear();
  });
  assert.equal(state.readiness, '503 {"status":"not ready"}', '/readyz while the file system was full');
});
