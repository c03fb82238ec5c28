// Crash (issue 5 §2, §6): a response is sent only once its audit record is durable. Several
// clients run a stream of audited reads and writes (create, read, update, vread, history);
// the server is killed with SIGKILL in the middle of it, at three different moments, and
// restarted on the same data dir each time. After every restart `phigate audit verify`
// passes (the chain and the signed checkpoints hold, a torn last line was never
// acknowledged), and every request that received a 2xx before the kill has exactly one
// record, found through the auditor's API by the X-Request-Id it was sent with.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, addClient, runCli, sleep } from './harness.mjs';
import { TokenMint, fhirApi, resourceBody } from './authz_helpers.mjs';
import { AuditView, auditorToken, requestId, ext } from './audit_helpers.mjs';

const WORKERS = 4;
const KILL_AFTER_MS = [250, 900, 1800];  // three different moments of the stream

const servers = [];
let client;
const acknowledged = [];  // {rid, what, status, round}: every 2xx seen before a kill

after(async () => {
  for (const s of servers.slice(1)) await s.dispose({ removeRoot: false });
  if (servers.length > 0) await servers[0].dispose({ removeRoot: true });
});

// One client's stream on its own connection: create, read, update, vread, history, again
// and again, until a request fails because the server died. Any other answer than the
// expected 2xx fails the test.
async function stream(srv, api, token, worker, round) {
  let n = 0;
  const call = async (what, expected, fn) => {
    const rid = requestId(`r${round}-w${worker}-${n++}-${what}`);
    let res;
    try {
      res = await fn({ 'x-request-id': rid });
    } catch {
      return null;  // the server is gone
    }
    if (res.status !== expected) throw new Error(`${what} answered ${res.status}: ${res.body}`);
    acknowledged.push({ rid, what, status: res.status, round });
    return res;
  };
  for (;;) {
    const body = resourceBody('Patient', { marker: `Crash${round}W${worker}N${n}` });
    const created = await call('create', 201, (h) => api.post('/fhir/Patient', token, body, h));
    if (!created) return;
    const id = created.json().id;
    if (!await call('read', 200, (h) => api.get(`/fhir/Patient/${id}`, token, h))) return;
    if (!await call('update', 200, (h) => api.put(`/fhir/Patient/${id}`, token, { ...body, id, gender: 'male' }, h))) return;
    if (!await call('vread', 200, (h) => api.get(`/fhir/Patient/${id}/_history/1`, token, h))) return;
    if (!await call('history', 200, (h) => api.get(`/fhir/Patient/${id}/_history`, token, h))) return;
  }
}

// Runs the stream with WORKERS concurrent clients, kills the server after `killAfterMs`,
// and resolves how many requests were acknowledged in this round.
async function crashRound(srv, round, killAfterMs) {
  const mint = await TokenMint.create(srv);
  const token = mint.system({ clientId: client.client_id, roles: ['clinician'] });
  const before = acknowledged.length;
  const streams = [];
  for (let w = 0; w < WORKERS; w++) {
    const agent = srv.newAgent({ keepAlive: true, maxSockets: 1 });
    const api = fhirApi({ request: (m, t, o) => srv.request(m, t, { ...o, agent, timeoutMs: 10_000 }) });
    streams.push(stream(srv, api, token, w, round));
  }
  await sleep(killAfterMs);
  const exit = await srv.kill9();
  assert.equal(exit.signal, 'SIGKILL');
  await Promise.all(streams);
  const made = acknowledged.length - before;
  assert.ok(made >= WORKERS, `only ${made} requests acknowledged before the kill in round ${round}`);
  return made;
}

// `phigate audit verify --data-dir D`: exit 0 with the count of records. Resolves N.
async function verify(dataDir, when) {
  const r = await runCli(['audit', 'verify', '--data-dir', dataDir]);
  assert.equal(r.code, 0, `audit verify ${when}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const m = /^audit trail verified: (\d+) records, (\d+) checkpoints$/m.exec(r.stdout);
  assert.ok(m, `audit verify ${when} printed: ${r.stdout}`);
  return Number(m[1]);
}

// Every acknowledged request has exactly one record (read through the restarted server).
async function assertAllRecorded(srv, when) {
  const mint = await TokenMint.create(srv);
  const view = new AuditView(srv, auditorToken(mint, client.client_id));
  const events = await view.sync();
  const byRid = new Map();
  for (const e of events) {
    const rid = ext(e, 'request-id');
    if (rid !== undefined) byRid.set(rid, [...(byRid.get(rid) ?? []), e]);
  }
  const missing = acknowledged.filter((a) => !byRid.has(a.rid)).map((a) => `${a.rid} (${a.what} ${a.status})`);
  assert.deepEqual(missing, [], `${when}: acknowledged requests without a record`);
  for (const a of acknowledged) {
    const recs = byRid.get(a.rid);
    assert.equal(recs.length, 1, `${when}: ${a.rid} has ${recs.length} records`);
    assert.equal(ext(recs[0], 'http-status'), a.status, `${when}: the record of ${a.rid} names the status sent`);
  }
  return events.length;
}

test('kill -9 at three moments of a stream of audited reads and writes: verify passes, every 2xx is recorded', async (t) => {
  let srv = await startServer();
  servers.push(srv);
  const dataDir = srv.dataDir;
  client = await addClient(dataDir, { name: 'audit-crash', roles: 'clinician' });

  for (let round = 0; round < KILL_AFTER_MS.length; round++) {
    const made = await crashRound(srv, round, KILL_AFTER_MS[round]);
    srv = await startServer({ dataDir });
    servers.push(srv);
    const seen = await assertAllRecorded(srv, `after kill ${round + 1}`);
    const records = await verify(dataDir, `after kill ${round + 1}`);
    assert.ok(records >= seen, `verify counted ${records} records, the API listed ${seen}`);
    t.diagnostic(`round ${round + 1}: killed after ${KILL_AFTER_MS[round]} ms, ${made} requests acknowledged, ${records} records verified`);
  }

  // A clean stop after the last restart: the trail still verifies, with its stop record.
  const exit = await srv.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
  await verify(dataDir, 'after a clean stop');
});
