// PHI never at rest in plaintext and never in logs (DESIGN.md threat model; issue 2 §5, §7,
// §8): resources carrying canary values go in through create and update, and in invalid
// resources, query strings, paths and headers; then, with the server stopped, every byte
// under the data dir and everything the server wrote to stderr/stdout is searched.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  startServer, addClient, bearer, listFiles, listDirs, rawRequest,
} from './harness.mjs';

const NAME = 'Zyxwvut-CANARY-NAME';
const SSN = '987-65-4320';
const PHONE = '+1-555-0199-CANARY';
const NOTE = 'Qjxv-CANARY-NOTE';
const CANARIES = [NAME, SSN, PHONE, NOTE];

// What is searched for: each canary as UTF-8, its lower-case form, and distinctive parts
// a re-formatting could leave behind.
const NEEDLES = [...new Set([
  ...CANARIES,
  ...CANARIES.map((c) => c.toLowerCase()),
  'Zyxwvut', 'zyxwvut', '987654320', '5550199', '555-0199', 'Qjxv-CANARY', 'CANARY', 'canary',
])];

let server;
let token;
const created = [];  // {type, id}

function patient(extra = {}) {
  return {
    resourceType: 'Patient',
    identifier: [{ system: 'http://hl7.org/fhir/sid/us-ssn', value: SSN }],
    name: [{ family: NAME, given: [NAME] }],
    telecom: [{ system: 'phone', value: PHONE, use: 'home' }],
    birthDate: '1961-07-04',
    ...extra,
  };
}

function req(method, target, body, headers = {}) {
  return server.request(method, target, {
    headers: { ...bearer(token), ...(body !== undefined ? { 'content-type': 'application/fhir+json' } : {}), ...headers },
    body,
  });
}

function findNeedles(bytes) {
  return NEEDLES.filter((n) => bytes.indexOf(Buffer.from(n, 'utf8')) !== -1);
}

before(async () => {
  server = await startServer();
  token = await server.token(await addClient(server.dataDir, { name: 'scan-1', scope: 'system/*.cruds' }));
});

after(async () => {
  if (server) await server.dispose();
});

test('resources with canaries are stored and served back intact', async () => {
  // create: enough resources, some large, that pages of the store must hold them
  for (let i = 0; i < 20; i++) {
    const res = await req('POST', '/fhir/Patient', patient({ text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${NAME} ${SSN} ${PHONE} ${'x'.repeat(i * 300)}</div>` } }));
    assert.equal(res.status, 201, res.body);
    created.push({ type: 'Patient', id: res.json().id });
  }
  const pid = created[0].id;
  const obs = await req('POST', '/fhir/Observation', {
    resourceType: 'Observation', status: 'final',
    code: { text: NOTE },
    subject: { reference: `Patient/${pid}`, display: NAME },
    valueString: `${NOTE} ${SSN}`,
    note: [{ text: `${NAME} called from ${PHONE}` }],
  });
  assert.equal(obs.status, 201, obs.body);
  created.push({ type: 'Observation', id: obs.json().id });

  // update: the canaries again, in other elements
  const upd = await req('PUT', `/fhir/Patient/${pid}`, patient({
    id: pid,
    contact: [{ name: { family: NAME }, telecom: [{ system: 'phone', value: PHONE }] }],
    identifier: [{ system: 'http://hl7.org/fhir/sid/us-ssn', value: SSN }, { system: 'urn:x-mrn', value: `MRN-${SSN}` }],
  }));
  assert.equal(upd.status, 200, upd.body);

  // delete one: its versions stay (as ciphertext)
  assert.equal((await req('DELETE', `/fhir/Patient/${created[1].id}`)).status, 204);

  // served back intact
  const read = (await req('GET', `/fhir/Patient/${pid}`)).json();
  assert.equal(read.name[0].family, NAME);
  assert.equal(read.identifier[0].value, SSN);
  assert.equal(read.telecom[0].value, PHONE);
  const hist = (await req('GET', `/fhir/Patient/${pid}/_history`)).json();
  assert.equal(hist.entry.length, 2);
  assert.equal((await req('GET', `/fhir/Observation/${obs.json().id}`)).json().valueString, `${NOTE} ${SSN}`);
});

test('canaries in invalid resources, queries, paths and headers are not echoed', async () => {
  const pid = created[0].id;
  const attempts = [
    ['POST', '/fhir/Patient', { resourceType: 'Patient', birthDate: SSN, name: [{ family: NAME }] }, 400],
    ['POST', '/fhir/Patient', { resourceType: 'Patient', bogus: NAME, telecom: [{ value: PHONE }] }, 400],
    ['POST', '/fhir/Patient', `{"resourceType":"Patient","name":[{"family":"${NAME}"}],`, 400],  // malformed
    ['POST', '/fhir/Patient', { resourceType: 'Patient', name: [{ family: NAME, given: NAME }] }, 400],
    ['POST', '/fhir/Patient', { resourceType: 'Observation', status: 'final', code: { text: NOTE } }, 400],
    ['PUT', `/fhir/Patient/${pid}`, { ...patient(), id: pid, birthDate: PHONE }, 400],
    ['PUT', `/fhir/Patient/${pid}`, { ...patient(), id: NAME }, 400],
    ['PUT', `/fhir/Patient/${NAME}`, { ...patient(), id: NAME }, 405],
    ['GET', `/fhir/Patient/${pid}/_history?_count=${encodeURIComponent(SSN)}`, undefined, 400],
    ['GET', `/fhir/Patient/${pid}/_history?_since=${encodeURIComponent(NAME)}`, undefined, 501],
    ['GET', `/fhir/Patient/${pid}/_history?_page=${encodeURIComponent(PHONE)}`, undefined, 400],
    ['GET', `/fhir/Patient/${encodeURIComponent(NAME)}`, undefined, 404],
    ['GET', `/fhir/Patient/${pid}/_history/${encodeURIComponent(SSN)}`, undefined, 404],
    ['GET', `/fhir/${encodeURIComponent(NAME)}/1`, undefined, 404],
    ['GET', `/fhir/Patient/${pid}?_format=${encodeURIComponent(NOTE)}`, undefined, 406],
    ['GET', `/fhir/Patient/${pid}?access_token=${encodeURIComponent(NOTE)}`, undefined, 401],
  ];
  for (const [method, target, body, status] of attempts) {
    const res = await req(method, target, body);
    assert.equal(res.status, status, `${method} ${target.slice(0, 80)}: ${res.body}`);
    const text = `${JSON.stringify(res.headers)}${res.body}`;
    assert.deepEqual(findNeedles(Buffer.from(text)), [], `${method} ${target.slice(0, 60)} echoed: ${text.slice(0, 300)}`);
  }
  // Nothing above wrote a version.
  assert.equal((await req('GET', `/fhir/Patient/${pid}`)).headers.etag, 'W/"2"');
  // A canary as a bearer token, and in a header the server does not use.
  const bad = await server.request('GET', `/fhir/Patient/${pid}`, { headers: { authorization: `Bearer ${NAME}`, 'x-note': PHONE } });
  assert.equal(bad.status, 401);
  assert.deepEqual(findNeedles(Buffer.from(bad.body)), []);
  // Malformed X-Request-Id carrying a canary is replaced, not echoed.
  const rid = await req('GET', `/fhir/Patient/${pid}`, undefined, { 'x-request-id': `${PHONE} ${NAME}` });
  assert.equal(rid.status, 200);
  assert.ok(!rid.headers['x-request-id'].includes('CANARY'));
  // Token endpoint with a canary as scope and as client id.
  const tok = await server.request('POST', '/oauth2/token', {
    headers: { authorization: `Basic ${Buffer.from(`${NAME}:${SSN}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: `grant_type=client_credentials&scope=${encodeURIComponent(PHONE)}`,
  });
  assert.ok(tok.status === 400 || tok.status === 401, `token endpoint: ${tok.status}`);
  assert.deepEqual(findNeedles(Buffer.from(tok.body)), []);
  // A raw request with a canary in a bad target.
  const r = await rawRequest(server, `GET /fhir/Patient/${encodeURIComponent(NAME)}/..%00 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
  assert.equal(r.status, 400);
  assert.deepEqual(findNeedles(Buffer.from(r.raw)), []);
  // A made-up HTTP method carrying a canary: refused, and its name is not logged.
  const m = await rawRequest(server, `${NAME} /fhir/Patient/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
  assert.equal(m.status, 405);
  assert.deepEqual(findNeedles(Buffer.from(m.raw)), []);
});

test('searches by canary values find the canaries; no canary in a link, an error, a header or the log', async () => {
  // The live Patients: all 20 but the deleted one carry the canary name, SSN and phone.
  const live = created.filter((c, i) => c.type === 'Patient' && i !== 1).map((c) => c.id).sort();
  assert.equal(live.length, 19);
  const query = `name=${encodeURIComponent(NAME)}&identifier=${encodeURIComponent(SSN)}&phone=${encodeURIComponent(PHONE)}`;
  // The resources themselves carry the canaries (the caller may read them); nothing else
  // in the response may: not the links, the headers, or anything outside the resources.
  const outsideResources = (res) => {
    const b = res.json();
    const shell = { ...b, entry: (b.entry ?? []).map((e) => ({ ...e, resource: undefined })) };
    return `${JSON.stringify(res.headers)}${JSON.stringify(shell)}`;
  };
  const assertPage = (res, what) => {
    assert.equal(res.status, 200, `${what}: ${res.body}`);
    const b = res.json();
    assert.equal(b.type, 'searchset', what);
    assert.deepEqual(findNeedles(Buffer.from(outsideResources(res))), [], `${what}: ${outsideResources(res).slice(0, 400)}`);
    for (const l of b.link) {
      assert.match(l.url, /^https:\/\/[^/]+\/fhir\/Patient\?_cursor=[^&=]+$/, `${what}: ${l.relation} link`);
    }
    return b;
  };
  const get = await req('GET', `/fhir/Patient?${query}`);
  const all = assertPage(get, 'GET search');
  assert.deepEqual(all.entry.map((e) => e.resource.id).sort(), live);
  for (const e of all.entry) assert.equal(e.resource.name[0].family, NAME);

  // The form body of POST _search keeps the values out of the URL; the same result.
  const post = await server.request('POST', '/fhir/Patient/_search', {
    headers: { ...bearer(token), 'content-type': 'application/x-www-form-urlencoded' }, body: query,
  });
  assert.deepEqual(assertPage(post, 'POST _search').entry.map((e) => e.resource.id).sort(), live);

  // Paged: the next links carry only a sealed cursor, and following them reaches every match.
  let page = assertPage(await req('GET', `/fhir/Patient?${query}&_count=5`), 'page 1');
  const seen = page.entry.map((e) => e.resource.id);
  for (let n = 2; page.link.some((l) => l.relation === 'next'); n++) {
    assert.ok(n <= 10, 'paging terminates');
    page = assertPage(await req('GET', page.link.find((l) => l.relation === 'next').url), `page ${n}`);
    seen.push(...(page.entry ?? []).map((e) => e.resource.id));
  }
  assert.deepEqual(seen.sort(), live);

  // The Observation of the canary patient through a chain on the subject's identifier,
  // with an _include of the subject.
  const chained = await req('GET', `/fhir/Observation?subject:Patient.identifier=${encodeURIComponent(SSN)}&_include=Observation:subject`);
  assert.equal(chained.status, 200, chained.body);
  assert.deepEqual(findNeedles(Buffer.from(JSON.stringify(chained.json().link))), [], 'chain: links');
  const obs = chained.json();
  assert.deepEqual(obs.entry.map((e) => [e.search.mode, e.resource.resourceType, e.resource.id]),
    [['match', 'Observation', created[20].id], ['include', 'Patient', created[0].id]]);

  // Searches that match nothing or fail: no canary in the answer at all.
  const misses = [
    [`/fhir/Patient?name=${encodeURIComponent(`${NAME}x`)}`, 200],
    [`/fhir/Patient?family:exact=${encodeURIComponent(NAME.toLowerCase())}`, 200],
    [`/fhir/Patient?identifier=${encodeURIComponent(`${SSN}0`)}`, 200],
    [`/fhir/Patient?bogus-${encodeURIComponent(NAME)}=${encodeURIComponent(SSN)}`, 400],
    [`/fhir/Patient?birthdate=${encodeURIComponent(NAME)}`, 400],
    [`/fhir/Patient?name:contains=${encodeURIComponent(NAME)}`, 501],
  ];
  for (const [target, status] of misses) {
    const res = await req('GET', target);
    assert.equal(res.status, status, `${target}: ${res.body}`);
    if (status === 200) assert.equal(res.json().entry, undefined, `${target}: ${res.body.slice(0, 200)}`);
    assert.deepEqual(findNeedles(Buffer.from(`${JSON.stringify(res.headers)}${res.body}`)), [],
      `${target} echoed: ${res.body.slice(0, 300)}`);
  }
  // Nothing the server logged so far (the rest is checked after it stops).
  assert.deepEqual(findNeedles(server.stderrBytes()), [], 'canary in stderr');
  assert.deepEqual(findNeedles(Buffer.from(server.stdout())), [], 'canary in stdout');
});

test('while running: no canary in the data dir (WAL included); permissions are tight', async () => {
  const files = await listFiles(server.dataDir);
  assert.ok(files.some((f) => f.endsWith('phigate.db-wal')), 'the WAL exists while running');
  for (const f of files) {
    assert.deepEqual(findNeedles(fs.readFileSync(f)), [], `canary bytes in ${path.relative(server.dataDir, f)}`);
  }
  await assertPermissions();
});

test('after SIGTERM: no canary in any file under the data dir, nor in stderr/stdout', async () => {
  const exit = await server.stop();
  assert.deepEqual(exit, { code: 0, signal: null });

  const files = await listFiles(server.dataDir);
  const names = files.map((f) => path.relative(server.dataDir, f));
  for (const want of ['phigate.db', 'tls/cert.pem', 'tls/key.pem', 'keys/kek', 'keys/token-signing.pem']) {
    assert.ok(names.includes(want), `${want} exists (${names.join(', ')})`);
  }
  let scanned = 0;
  for (const f of files) {
    const bytes = fs.readFileSync(f);
    scanned += bytes.length;
    assert.deepEqual(findNeedles(bytes), [], `canary bytes in ${path.relative(server.dataDir, f)}`);
  }
  assert.ok(scanned > 20 * 1024, `scanned ${scanned} bytes: the resources went somewhere`);

  const stderr = server.stderrBytes();
  assert.ok(stderr.length > 0, 'the server logged something');
  assert.deepEqual(findNeedles(stderr), [], 'canary in stderr');
  assert.deepEqual(findNeedles(Buffer.from(server.stdout())), [], 'canary in stdout');
  // The log is JSON lines (ASan reports, if any, would break this and fail the test).
  for (const line of server.stderr().split('\n').filter((l) => l.trim() !== '')) {
    assert.doesNotThrow(() => JSON.parse(line), `stderr line is not JSON: ${line.slice(0, 200)}`);
  }
  await assertPermissions();
});

test('restart on the same data dir: the canaries decrypt again', async () => {
  const again = await startServer({ dataDir: server.dataDir });
  try {
    const t = await again.token(await addClient(again.dataDir, { name: 'scan-2', scope: 'system/*.cruds' }));
    const read = await again.request('GET', `/fhir/Patient/${created[0].id}`, { headers: bearer(t) });
    assert.equal(read.status, 200, read.body);
    assert.equal(read.json().name[0].family, NAME);
    assert.equal(read.json().identifier[1].value, `MRN-${SSN}`);
  } finally {
    const exit = await again.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.deepEqual(findNeedles(again.stderrBytes()), [], 'canary in the second run\'s stderr');
  }
});

async function assertPermissions() {
  const mode = (p) => fs.statSync(p).mode & 0o777;
  assert.equal(mode(server.dataDir).toString(8), '700', 'data dir mode');
  for (const d of await listDirs(server.dataDir)) {
    assert.equal(mode(d) & 0o077, 0, `${d} is open to group/other (${mode(d).toString(8)})`);
  }
  for (const f of ['tls/key.pem', 'keys/kek', 'keys/token-signing.pem', 'phigate.db']) {
    assert.equal(mode(path.join(server.dataDir, f)).toString(8), '600', `${f} mode`);
  }
  for (const f of await listFiles(server.dataDir)) {
    if (path.relative(server.dataDir, f) === 'tls/cert.pem') continue;  // public by nature
    assert.equal(mode(f) & 0o077, 0, `${f} is open to group/other (${mode(f).toString(8)})`);
  }
}
