// Durability (issue 2 §5, §8): a create is acknowledged only once it is durable. The server
// is killed with SIGKILL in the middle of a stream of concurrent creates, restarted on the
// same data dir, and every create that received 201 must read back identical.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, addClient, bearer, assertCommonHeaders, sleep } from './harness.mjs';

const LOOPS = 4;
const RUN_MS = 1500;

let server;
let client;
const acknowledged = [];  // {id, text, location, etag}: every 201 seen, across rounds
const servers = [];

after(async () => {
  for (const s of servers) await s.dispose({ removeRoot: false });
  if (servers.length > 0) await servers[0].dispose({ removeRoot: true });
});

function patientBody(loop, n) {
  const nonce = crypto.randomBytes(12).toString('hex');
  return {
    resourceType: 'Patient',
    identifier: [{ system: 'urn:x-crash-test', value: `L${loop}-N${n}-${nonce}` }],
    name: [{ family: `Crash${loop}`, given: [`Loop${loop}`, `Item${n}`] }],
    birthDate: `19${String(10 + (n % 90)).padStart(2, '0')}-0${1 + (loop % 9)}-1${n % 10}`,
    text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${nonce.repeat(1 + (n % 20))}</div>` },
  };
}

// One loop: creates Patients back to back on its own connection until a request fails
// (the server died). Resolves {ok, failed}.
async function createLoop(srv, token, loop, agent) {
  let ok = 0;
  for (let n = 0; ; n++) {
    const body = patientBody(loop, n);
    let res;
    try {
      res = await srv.request('POST', '/fhir/Patient', {
        headers: { ...bearer(token), 'content-type': 'application/fhir+json' }, body, agent, timeoutMs: 10_000,
      });
    } catch {
      return { ok, failed: true };
    }
    if (res.status !== 201) throw new Error(`create answered ${res.status}: ${res.body}`);
    const created = JSON.parse(res.body);
    // The 201 body holds what was sent, plus id and meta.
    const { id, meta, ...sent } = created;
    assert.deepEqual(sent, body);
    assert.equal(res.headers.location, `${srv.baseUrl}/Patient/${id}/_history/1`);
    acknowledged.push({ id, text: res.body, etag: res.headers.etag });
    ok++;
  }
}

async function crashRound(srv) {
  const token = await srv.token(client);
  const before = acknowledged.length;
  const agents = Array.from({ length: LOOPS }, () => srv.newAgent({ keepAlive: true, maxSockets: 1 }));
  const loops = agents.map((agent, i) => createLoop(srv, token, i, agent));
  await sleep(RUN_MS);
  const exit = await srv.kill9();
  assert.equal(exit.signal, 'SIGKILL');
  const results = await Promise.all(loops);
  const made = acknowledged.length - before;
  assert.ok(made >= 8, `only ${made} creates acknowledged before the kill`);
  assert.ok(results.every((r) => r.failed), 'every loop was cut off by the kill');
  return made;
}

async function verifyAll(srv) {
  const token = await srv.token(client);
  const h = bearer(token);
  const agent = srv.newAgent({ keepAlive: true, maxSockets: 4 });
  const queue = [...acknowledged];
  const worker = async () => {
    for (let a = queue.shift(); a; a = queue.shift()) {
      const res = await srv.request('GET', `/fhir/Patient/${a.id}`, { headers: h, agent });
      assert.equal(res.status, 200, `acknowledged Patient/${a.id} lost after kill -9: ${res.status} ${res.body}`);
      assert.equal(res.headers.etag, 'W/"1"');
      assert.equal(a.etag, 'W/"1"');
      // Identical content, element order included (whitespace aside).
      assert.equal(JSON.stringify(JSON.parse(res.body)), JSON.stringify(JSON.parse(a.text)),
        `Patient/${a.id} differs after restart`);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  agent.destroy();
}

test('kill -9 during concurrent creates loses no acknowledged create (two rounds)', async (t) => {
  const first = await startServer();
  servers.push(first);
  client = await addClient(first.dataDir, { name: 'crash', scope: 'system/*.cruds' });

  const made1 = await crashRound(first);

  const second = await startServer({ dataDir: first.dataDir });
  servers.push(second);
  await verifyAll(second);

  // Again, on the recovered database: crash it a second time mid-stream.
  const made2 = await crashRound(second);
  const third = await startServer({ dataDir: first.dataDir });
  servers.push(third);
  await verifyAll(third);
  assert.equal(acknowledged.length, made1 + made2);
  t.diagnostic(`acknowledged creates: ${made1} before the first kill, ${made2} before the second`);

  // Unique ids, and the server is healthy and writable.
  assert.equal(new Set(acknowledged.map((a) => a.id)).size, acknowledged.length, 'ids are unique');
  const health = await third.request('GET', '/healthz');
  assert.equal(health.status, 200);
  assertCommonHeaders(assert, health, { contentType: 'application/json; charset=utf-8' });
  assert.deepEqual((await third.request('GET', '/readyz')).json(), { status: 'ready' });
  const token = await third.token(client);
  const res = await third.request('POST', '/fhir/Patient', {
    headers: { ...bearer(token), 'content-type': 'application/fhir+json' }, body: patientBody(9, 9),
  });
  assert.equal(res.status, 201, res.body);

  // Every acknowledged create is in the type history (there may be more: a commit can
  // land just before the kill without its 201 reaching us).
  const seen = new Set();
  let url = '/fhir/Patient/_history?_count=500';
  while (url) {
    const page = await third.request('GET', url, { headers: bearer(token) });
    assert.equal(page.status, 200, page.body);
    const b = page.json();
    for (const e of b.entry ?? []) seen.add(e.resource.id);
    url = b.link.find((l) => l.relation === 'next')?.url;
  }
  const missing = acknowledged.filter((a) => !seen.has(a.id)).map((a) => a.id);
  assert.deepEqual(missing, [], 'acknowledged creates missing from history');

  const exit = await third.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
});
