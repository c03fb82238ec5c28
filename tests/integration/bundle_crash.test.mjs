// Crash (issue 6 §4, §6): a transaction Bundle is committed in one database transaction with
// its audit records, and answered only after. Several clients send a stream of transactions,
// each a Patient and two Observations that reference it by urn:uuid, all three carrying an
// identifier unique to the transaction; the server is killed with SIGKILL in the middle of
// the stream, at three different moments, and restarted on the same data dir each time.
// After every restart:
//   - every transaction that received its 200 is wholly present: the Patient and both
//     Observations read back as answered, and are found by identifier and by subject;
//   - every transaction without an answer is wholly present or wholly absent, never partial;
//   - the search index agrees with the resources: the set a search by identifier system
//     finds is exactly the set the type history holds, and every resource found is readable;
//   - `phigate audit verify` passes, every answered transaction has its Bundle record and
//     one record per entry, and every transaction present has one record per entry (they
//     are written before its COMMIT).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, addClient, runCli, bearer, sleep } from './harness.mjs';
import { TokenMint } from './authz_helpers.mjs';
import { AuditView, auditorToken, requestId, ext } from './audit_helpers.mjs';

const WORKERS = 4;
const KILL_AFTER_MS = [250, 900, 1800];  // three different moments of the stream
const SYS = 'urn:phigate-test:bundle-crash';

const servers = [];
let client;
const txs = [];  // {key, rid, round, acked, pid, o1, o2}: every transaction sent

after(async () => {
  for (const s of servers.slice(1)) await s.dispose({ removeRoot: false });
  if (servers.length > 0) await servers[0].dispose({ removeRoot: true });
});

function transaction(key) {
  const u = `urn:uuid:${crypto.randomUUID()}`;
  const obs = (suffix, value) => ({
    resource: {
      resourceType: 'Observation',
      identifier: [{ system: SYS, value: `${key}-${suffix}` }],
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '29463-7' }] },
      subject: { reference: u },
      valueQuantity: { value, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
    },
    request: { method: 'POST', url: 'Observation' },
  });
  return {
    resourceType: 'Bundle', type: 'transaction', entry: [
      obs('o1', 70),
      {
        fullUrl: u,
        resource: {
          resourceType: 'Patient',
          identifier: [{ system: SYS, value: key }],
          name: [{ family: 'Crash', given: [key.slice(0, 20)] }],
          birthDate: '1980-02-03',
        },
        request: { method: 'POST', url: 'Patient' },
      },
      obs('o2', 71),
    ],
  };
}

// One client's stream of transactions on its own connection, until a request fails because
// the server died. Any answer other than a complete 200 fails the test.
async function stream(srv, token, worker, round, agent) {
  for (let n = 0; ; n++) {
    const key = `r${round}w${worker}n${n}-${crypto.randomBytes(6).toString('hex')}`;
    const tx = { key, rid: requestId(key), round, acked: false };
    txs.push(tx);
    let res;
    try {
      res = await srv.request('POST', '/fhir', {
        headers: { ...bearer(token), 'content-type': 'application/fhir+json', 'x-request-id': tx.rid },
        body: transaction(key), agent, timeoutMs: 10_000,
      });
    } catch {
      return;  // the server is gone: this one has no answer
    }
    if (res.status !== 200) throw new Error(`transaction answered ${res.status}: ${res.body}`);
    const b = res.json();
    assert.equal(b.type, 'transaction-response');
    assert.deepEqual(b.entry.map((e) => e.response.status), ['201 Created', '201 Created', '201 Created']);
    tx.o1 = b.entry[0].resource.id;
    tx.pid = b.entry[1].resource.id;
    tx.o2 = b.entry[2].resource.id;
    assert.deepEqual(b.entry[0].resource.subject, { reference: `Patient/${tx.pid}` });
    assert.deepEqual(b.entry[2].resource.subject, { reference: `Patient/${tx.pid}` });
    tx.acked = true;
  }
}

async function crashRound(srv, round, killAfterMs) {
  const mint = await TokenMint.create(srv);
  const token = mint.system({ clientId: client.client_id, roles: ['clinician'] });
  const before = txs.length;
  const streams = [];
  for (let w = 0; w < WORKERS; w++) {
    streams.push(stream(srv, token, w, round, srv.newAgent({ keepAlive: true, maxSockets: 1 })));
  }
  await sleep(killAfterMs);
  const exit = await srv.kill9();
  assert.equal(exit.signal, 'SIGKILL');
  await Promise.all(streams);
  const sent = txs.slice(before);
  const acked = sent.filter((t) => t.acked).length;
  assert.ok(acked >= WORKERS, `only ${acked} transactions answered before the kill in round ${round}`);
  return { sent: sent.length, acked };
}

// Runs `fn` over `items` with `n` concurrent workers.
async function forEachConcurrently(items, n, fn) {
  const queue = [...items];
  const worker = async () => {
    for (let it = queue.shift(); it; it = queue.shift()) await fn(it);
  };
  await Promise.all(Array.from({ length: n }, worker));
}

// Checks every transaction of `round` and the whole index; resolves the counts.
async function verifyData(srv, round, when) {
  const mint = await TokenMint.create(srv);
  const token = mint.system({ clientId: client.client_id, roles: ['clinician'] });
  const agent = srv.newAgent({ keepAlive: true, maxSockets: 4 });
  const getJson = async (target) => {
    const res = await srv.request('GET', target, { headers: bearer(token), agent });
    assert.equal(res.status, 200, `${when}: GET ${target}: ${res.status} ${res.body}`);
    return res.json();
  };
  const searchIds = async (type, query) => {
    const ids = [];
    let url = `/fhir/${type}?${query}&_count=1000`;
    while (url) {
      const b = await getJson(url);
      for (const e of b.entry ?? []) ids.push(e.resource.id);
      url = b.link.find((l) => l.relation === 'next')?.url;
    }
    return ids.sort();
  };
  const historyIds = async (type) => {
    const ids = new Set();
    let url = `/fhir/${type}/_history?_count=1000`;
    while (url) {
      const b = await getJson(url);
      for (const e of b.entry ?? []) {
        assert.equal(e.request?.method ?? 'POST', 'POST', `${when}: only creates in history`);
        ids.add(e.resource.id);
      }
      url = b.link.find((l) => l.relation === 'next')?.url;
    }
    return ids;
  };

  let whole = 0;
  let absent = 0;
  await forEachConcurrently(txs.filter((t) => t.round === round), 4, async (tx) => {
    const p = await searchIds('Patient', `identifier=${SYS}|${tx.key}`);
    const o1 = await searchIds('Observation', `identifier=${SYS}|${tx.key}-o1`);
    const o2 = await searchIds('Observation', `identifier=${SYS}|${tx.key}-o2`);
    const found = [p.length, o1.length, o2.length];
    if (tx.acked) {
      assert.deepEqual([p, o1, o2], [[tx.pid], [tx.o1], [tx.o2]], `${when}: answered transaction ${tx.key} is not wholly present`);
    } else {
      assert.ok(found.every((c) => c === 0) || found.every((c) => c === 1),
        `${when}: unanswered transaction ${tx.key} is partial: Patient ${p.length}, Observations ${o1.length}+${o2.length}`);
      if (found[0] === 0) {
        tx.present = false;
        absent++;
        return;
      }
      [tx.pid, tx.o1, tx.o2] = [p[0], o1[0], o2[0]];
    }
    tx.present = true;
    whole++;
    const patient = await getJson(`/fhir/Patient/${tx.pid}`);
    assert.deepEqual(patient.identifier, [{ system: SYS, value: tx.key }]);
    for (const [id, suffix] of [[tx.o1, 'o1'], [tx.o2, 'o2']]) {
      const o = await getJson(`/fhir/Observation/${id}`);
      assert.deepEqual(o.identifier, [{ system: SYS, value: `${tx.key}-${suffix}` }]);
      assert.deepEqual(o.subject, { reference: `Patient/${tx.pid}` }, `${when}: ${tx.key} ${suffix}`);
    }
    assert.deepEqual(await searchIds('Observation', `subject=Patient/${tx.pid}`), [tx.o1, tx.o2].sort(),
      `${when}: ${tx.key}: the Observations by subject`);
  });

  // The whole index against the resources: what a search by the identifier system finds is
  // exactly what history holds, and is exactly the transactions found present.
  const expected = { Patient: new Set(), Observation: new Set() };
  for (const tx of txs.filter((t) => t.present)) {
    expected.Patient.add(tx.pid);
    expected.Observation.add(tx.o1);
    expected.Observation.add(tx.o2);
  }
  for (const type of ['Patient', 'Observation']) {
    const history = await historyIds(type);
    const searched = await searchIds(type, `identifier=${SYS}|`);
    assert.equal(new Set(searched).size, searched.length, `${when}: ${type} search lists each once`);
    assert.deepEqual(searched, [...history].sort(), `${when}: ${type}: search by identifier vs history`);
    assert.deepEqual(searched, [...expected[type]].sort(), `${when}: ${type}: the transactions present`);
    // Everything found is readable.
    await forEachConcurrently(searched, 4, async (id) => { await getJson(`/fhir/${type}/${id}`); });
  }
  agent.destroy();
  return { whole, absent };
}

// `phigate audit verify --data-dir D`: exit 0 with the count of records. Resolves N.
async function verifyTrail(dataDir, when) {
  const r = await runCli(['audit', 'verify', '--data-dir', dataDir]);
  assert.equal(r.code, 0, `audit verify ${when}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const m = /^audit trail verified: (\d+) records, (\d+) checkpoints$/m.exec(r.stdout);
  assert.ok(m, `audit verify ${when} printed: ${r.stdout}`);
  return Number(m[1]);
}

// Records: an answered transaction has its Bundle record (200) and one 201 per entry; one
// present without an answer has one 201 per entry (written before COMMIT); one absent has
// at most one per entry.
async function verifyRecords(srv, when) {
  const mint = await TokenMint.create(srv);
  const view = new AuditView(srv, auditorToken(mint, client.client_id));
  const byRid = new Map();
  for (const e of await view.sync()) {
    const rid = ext(e, 'request-id');
    if (rid !== undefined) byRid.set(rid, [...(byRid.get(rid) ?? []), ext(e, 'http-status')]);
  }
  for (const tx of txs.filter((t) => t.present !== undefined)) {
    const entries = [1, 2, 3].map((n) => byRid.get(`${tx.rid}.${n}`) ?? []);
    if (tx.present) {
      assert.deepEqual(entries, [[201], [201], [201]], `${when}: records of the entries of ${tx.key}`);
    } else {
      assert.ok(entries.every((r) => r.length <= 1), `${when}: ${tx.key}: ${JSON.stringify(entries)}`);
    }
    if (tx.acked) assert.deepEqual(byRid.get(tx.rid), [200], `${when}: the Bundle record of ${tx.key}`);
  }
  return byRid.size;
}

test('kill -9 at three moments of a stream of transactions: all or nothing, index consistent, trail verifies', async (t) => {
  let srv = await startServer();
  servers.push(srv);
  const dataDir = srv.dataDir;
  client = await addClient(dataDir, { name: 'bundle-crash', roles: 'clinician' });

  for (let round = 0; round < KILL_AFTER_MS.length; round++) {
    const { sent, acked } = await crashRound(srv, round, KILL_AFTER_MS[round]);
    srv = await startServer({ dataDir });
    servers.push(srv);
    const when = `after kill ${round + 1}`;
    const { whole, absent } = await verifyData(srv, round, when);
    await verifyRecords(srv, when);
    const records = await verifyTrail(dataDir, when);
    t.diagnostic(`round ${round + 1}: killed after ${KILL_AFTER_MS[round]} ms; ${sent} transactions sent, ` +
      `${acked} answered; present ${whole} (${whole - acked} without an answer), absent ${absent}; ` +
      `${records} records verified`);
  }

  // The recovered server takes a transaction, and stops cleanly; the trail still verifies.
  const mint = await TokenMint.create(srv);
  const token = mint.system({ clientId: client.client_id, roles: ['clinician'] });
  const res = await srv.request('POST', '/fhir', {
    headers: { ...bearer(token), 'content-type': 'application/fhir+json' }, body: transaction(`final-${process.pid}`),
  });
  assert.equal(res.status, 200, res.body);
  assert.deepEqual(res.json().entry.map((e) => e.response.status), ['201 Created', '201 Created', '201 Created']);
  const exit = await srv.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
  await verifyTrail(dataDir, 'after a clean stop');
});
