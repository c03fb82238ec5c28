// Bad input of every kind (issue 2 §3 and §4) gets a clear 4xx with an OperationOutcome,
// never a crash, never an echo of the submitted value; and the server keeps serving.
// Requests that an HTTP client would refuse or repair go over raw TLS sockets.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { startServer, addClient, bearer, rawRequest, assertOutcome } from './harness.mjs';

// Submitted values carry this marker; no response may contain it.
const CANARY = 'Qwzx-BADINPUT-CANARY';

let server;
let token;
let patient;  // a resource created first, read back at the end
const responses = [];  // every response of this file, for the echo check

const PATIENT = { resourceType: 'Patient', name: [{ family: 'Baseline', given: ['Bad', 'Input'] }], birthDate: '1990-02-03' };

function remember(res) { responses.push(res); return res; }

function fhirPost(type, body, headers = {}, srv = server, tok = token) {
  return srv.request('POST', `/fhir/${type}`, {
    headers: { ...bearer(tok), 'content-type': 'application/fhir+json', ...headers }, body,
  }).then(remember);
}

// A raw HTTP/1.1 request: request line, Host, bearer token, extra header lines, body.
function raw(method, target, { headers = [], body = '', auth = true, close = true } = {}) {
  const lines = [`${method} ${target} HTTP/1.1`, `Host: localhost:${server.port}`];
  if (auth) lines.push(`Authorization: Bearer ${token}`);
  lines.push(...headers);
  if (close) lines.push('Connection: close');
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

async function send(bytes, options) {
  return remember(await rawRequest(server, bytes, options));
}

// A raw response's OperationOutcome check (raw responses have the same shape).
function assertRawOutcome(res, status, code) {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.raw.slice(0, 500)}`);
  return assertOutcome(assert, res, status, code);
}

// Patient.extension nested `levels` deep (each level is an object in an array).
function nestedExtensions(levels) {
  let ext = { url: 'http://example.org/ext', valueString: `${CANARY}-deep` };
  for (let i = 1; i < levels; i++) ext = { url: 'http://example.org/ext', extension: [ext] };
  return { resourceType: 'Patient', extension: [ext] };
}

async function assertStillServing() {
  assert.equal(server.exitInfo, null, 'the server process is alive');
  const h = await server.request('GET', '/healthz');
  assert.equal(h.status, 200, 'healthz after bad input');
  assert.deepEqual(h.json(), { status: 'ok' });
  const r = await server.request('GET', `/fhir/Patient/${patient.id}`, { headers: bearer(token) });
  assert.equal(r.status, 200, 'read after bad input');
  assert.deepEqual(r.json(), patient);
}

before(async () => {
  server = await startServer();
  token = await server.token(await addClient(server.dataDir, { name: 'bad-input', scope: 'system/*.cruds' }));
  const res = await fhirPost('Patient', PATIENT);
  assert.equal(res.status, 201, res.body);
  patient = res.json();
});

after(async () => {
  if (server) await server.dispose();
});

test('Content-Length together with Transfer-Encoding: 400', async () => {
  const body = JSON.stringify(PATIENT);
  const chunked = `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
  const res = await send(raw('POST', '/fhir/Patient', {
    headers: ['Content-Type: application/fhir+json', `Content-Length: ${chunked.length}`, 'Transfer-Encoding: chunked'],
    body: chunked,
  }));
  assertRawOutcome(res, 400, 'invalid');

  // Control: the same chunked body without Content-Length is accepted.
  const ok = await send(raw('POST', '/fhir/Patient', {
    headers: ['Content-Type: application/fhir+json', 'Transfer-Encoding: chunked'], body: chunked,
  }));
  assert.equal(ok.status, 201, ok.raw.slice(0, 300));
  assert.deepEqual(JSON.parse(ok.body).name, PATIENT.name);
  await assertStillServing();
});

test('conflicting Content-Length headers and a garbage request line: 400', async () => {
  const body = JSON.stringify(PATIENT);
  const two = await send(raw('POST', '/fhir/Patient', {
    headers: ['Content-Type: application/fhir+json', `Content-Length: ${body.length}`, `Content-Length: ${body.length + 1}`],
    body: `${body} `,
  }));
  assertRawOutcome(two, 400, 'invalid');
  const garbage = await send(`HELLO ${CANARY}\r\n\r\n`);
  assertRawOutcome(garbage, 400, 'invalid');
  await assertStillServing();
});

test('unsupported methods: 405 with Allow', async () => {
  const cases = [
    ['PATCH', `/fhir/Patient/${patient.id}`, ['DELETE', 'GET', 'PUT']],
    ['POST', `/fhir/Patient/${patient.id}`, ['DELETE', 'GET', 'PUT']],
    // PUT and DELETE on a type are conditional interactions (issue 6 §3); PATCH is not.
    ['PATCH', '/fhir/Patient', ['DELETE', 'GET', 'POST', 'PUT']],
    ['DELETE', `/fhir/Patient/${patient.id}/_history/1`, ['GET']],
    ['PUT', '/fhir/metadata', ['GET']],
    ['DELETE', '/healthz', ['GET']],
  ];
  for (const [method, target, allow] of cases) {
    const res = remember(await server.request(method, target, {
      headers: { ...bearer(token), 'content-type': 'application/json-patch+json' },
      body: method === 'DELETE' ? undefined : `[{"op":"replace","path":"/birthDate","value":"${CANARY}"}]`,
    }));
    assertOutcome(assert, res, 405, 'not-supported');
    assert.deepEqual(res.headers.allow.split(',').map((s) => s.trim()).sort(), allow, `${method} ${target}: Allow`);
  }
  // A conditional delete without a condition is refused, and deletes nothing.
  const unconditional = remember(await server.request('DELETE', '/fhir/Patient', { headers: bearer(token) }));
  assertOutcome(assert, unconditional, 412, 'conflict');
  assert.equal(JSON.parse(unconditional.body).issue[0].diagnostics,
    'a conditional interaction needs a condition');
  // Raw PATCH too.
  const rawPatch = await send(raw('PATCH', `/fhir/Patient/${patient.id}`, {
    headers: ['Content-Type: application/json-patch+json', 'Content-Length: 2'], body: '[]',
  }));
  assertRawOutcome(rawPatch, 405, 'not-supported');
  assert.ok(rawPatch.headers.allow, 'Allow on a raw PATCH');
  await assertStillServing();
});

test('HEAD: the response carries no body, so the next response on the connection is intact', async () => {
  // RFC 9110 §9.3.2: a response to HEAD has no content, whatever its status. Bytes after the
  // header block would be read as the next response by the client (response splitting).
  for (const target of ['/healthz', `/fhir/Patient/${patient.id}`, '/fhir/metadata']) {
    const bytes = await new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: server.ca }, () => {
        s.write(`HEAD ${target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\n\r\n` +
          'GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      });
      const chunks = [];
      const timer = setTimeout(() => { s.destroy(); reject(new Error('no close within 10 s')); }, 10_000);
      s.on('data', (c) => chunks.push(c));
      s.on('error', () => {});
      s.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('latin1')); });
    });
    const end = bytes.indexOf('\r\n\r\n');
    assert.ok(end > 0, `HEAD ${target}: a response: ${bytes.slice(0, 200)}`);
    assert.match(bytes, /^HTTP\/1\.1 (200|405) /, `HEAD ${target}`);
    const after = bytes.slice(end + 4);
    assert.ok(after.startsWith('HTTP/1.1 200 '),
      `HEAD ${target}: body bytes after the HEAD response head: ${JSON.stringify(after.slice(0, 120))}`);
    assert.ok(after.includes('{"status":"ready"}'), 'the pipelined GET was answered');
  }
});

test('rejections made while reading the request still echo a well-formed X-Request-Id', async () => {
  const tooBig = await send(raw('POST', '/fhir/Patient', {
    headers: ['X-Request-Id: rid-too-large', 'Content-Type: application/fhir+json', `Content-Length: ${9 * 1024 * 1024}`],
  }), { ignoreWriteErrors: true });
  assert.equal(tooBig.status, 413);
  assert.equal(tooBig.headers['x-request-id'], 'rid-too-large', '413 echoes X-Request-Id');
  const clte = await send(raw('POST', '/fhir/Patient', {
    headers: ['X-Request-Id: rid-cl-te', 'Content-Type: application/fhir+json', 'Content-Length: 5', 'Transfer-Encoding: chunked'],
    body: '0\r\n\r\n',
  }));
  assert.equal(clte.status, 400);
  assert.equal(clte.headers['x-request-id'], 'rid-cl-te', 'CL+TE 400 echoes X-Request-Id');
});

test('targets with dot segments or an encoded NUL: 400', async () => {
  const targets = [
    '/fhir/../healthz',
    '/fhir/Patient/../Patient/x',
    `/fhir/Patient/${patient.id}/..`,
    '/fhir/%2e%2e/healthz',
    '/fhir/%2E%2E/fhir/metadata',
    '/fhir/Patient/.%2e/x',
    '/%2e%2e/%2e%2e/etc/passwd',
    `/fhir/Patient/${patient.id}%00`,
    '/fhir/Patient%00/x',
    '/healthz?x=%00',
    `/fhir/Patient/${patient.id}?_pretty=%00true`,
  ];
  for (const t of targets) {
    const res = await send(raw('GET', t));
    assertRawOutcome(res, 400, 'invalid');
  }
  await assertStillServing();
});

test('body over 8 MiB: 413, by Content-Length and by chunks', async () => {
  const limit = 8 * 1024 * 1024;
  const head = raw('POST', '/fhir/Patient', {
    headers: ['Content-Type: application/fhir+json', `Content-Length: ${limit + 1}`],
  });
  const piece = Buffer.alloc(1024 * 1024, 'a');
  const parts = [head];
  for (let i = 0; i < 8; i++) parts.push(piece);
  parts.push('a');
  const res = await send(parts, { ignoreWriteErrors: true });
  assertRawOutcome(res, 413, 'too-long');

  const chunkHead = raw('POST', '/fhir/Patient', {
    headers: ['Content-Type: application/fhir+json', 'Transfer-Encoding: chunked'],
  });
  const chunk = Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]);
  const chunkedParts = [chunkHead];
  for (let i = 0; i < 9; i++) chunkedParts.push(chunk);
  chunkedParts.push('0\r\n\r\n');
  const res2 = await send(chunkedParts, { ignoreWriteErrors: true });
  assertRawOutcome(res2, 413, 'too-long');
  await assertStillServing();
});

test('request headers over the limit: 431', async () => {
  const res = await send(raw('GET', '/healthz', { headers: [`X-Big: ${'b'.repeat(20 * 1024)}`] }), { ignoreWriteErrors: true });
  assertRawOutcome(res, 431, 'too-long');
  await assertStillServing();
});

test('malformed JSON bodies: 400', async () => {
  const bodies = [
    `{"resourceType":"Patient","name":[{"family":"${CANARY}"}]`,   // truncated
    `{"resourceType":"Patient","birthDate":"${CANARY}",}`,          // trailing comma
    `{"resourceType":"Patient"} ${CANARY}`,                          // trailing garbage
    `{'resourceType':'Patient','name':'${CANARY}'}`,                 // single quotes
    '',                                                              // empty
    `["${CANARY}"]`,                                                 // not an object
    `"${CANARY}"`,
    'null',
    `{"resourceType":"Patient","name":[{"family":"${CANARY}\u0001"}]}`,  // raw control char
  ];
  for (const b of bodies) {
    const res = await fhirPost('Patient', b);
    assertOutcome(assert, res, 400, 'invalid');
  }
  // Invalid UTF-8 inside a string.
  const bad = Buffer.concat([Buffer.from(`{"resourceType":"Patient","name":[{"family":"${CANARY}`), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}]}')]);
  assertOutcome(assert, await fhirPost('Patient', bad), 400, 'invalid');
  await assertStillServing();
});

test('JSON nested deeper than limits.json_depth (64): 400; shallower: accepted', async () => {
  const shallow = await fhirPost('Patient', nestedExtensions(20));  // depth ~42
  assert.equal(shallow.status, 201, shallow.body);
  const deep = await fhirPost('Patient', nestedExtensions(40));    // depth ~82
  assertOutcome(assert, deep, 400, 'invalid');
  // Pathological nesting must not exhaust the stack.
  const brackets = `{"resourceType":"Patient","extension":${'['.repeat(200_000)}${']'.repeat(200_000)}}`;
  assertOutcome(assert, await fhirPost('Patient', brackets), 400, 'invalid');
  const objects = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`;
  assertOutcome(assert, await fhirPost('Patient', objects), 400, 'invalid');
  await assertStillServing();
});

test('invalid resources: 400 with the element path, never the value', async () => {
  const cases = [
    [{ resourceType: 'Patient', foo: CANARY }, ['Patient.foo']],
    [{ resourceType: 'Patient', birthDate: `1974-13-45${CANARY}` }, ['Patient.birthDate']],
    [{ resourceType: 'Patient', birthDate: '1974-13-45' }, ['Patient.birthDate']],
    [{ resourceType: 'Patient', active: `yes-${CANARY}` }, ['Patient.active']],
    [{ resourceType: 'Patient', gender: [`${CANARY}`] }, ['Patient.gender']],
    [{ resourceType: 'Patient', name: { family: CANARY } }, ['Patient.name']],
    [{ resourceType: 'Patient', name: [{ family: 42 }] }, ['Patient.name[0].family']],
    [{ resourceType: 'Patient', name: [{ family: CANARY, nickname: CANARY }] }, ['Patient.name[0].nickname']],
    [{ resourceType: 'Patient', multipleBirthInteger: `${CANARY}` }, ['Patient.multipleBirthInteger']],
    [{ resourceType: 'Observation', code: { text: CANARY } }, ['Observation.status']],
    [{ resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueFoo: CANARY }, ['Observation.valueFoo']],
    [{ resourceType: 'Observation', status: 'final', code: { text: 'x' }, effectiveDateTime: `2024-02-30T25:00:00Z${CANARY}` }, ['Observation.effectiveDateTime']],
    [{ resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueQuantity: { value: `${CANARY}` } }, ['Observation.valueQuantity.value']],
    [{ resourceType: 'Encounter', status: 'finished' }, ['Encounter.class']],
    [{ resourceType: 'Condition', subject: { reference: 'Patient/1' }, onsetDateTime: `${CANARY}` }, ['Condition.onsetDateTime']],
  ];
  for (const [body, expression] of cases) {
    const res = await fhirPost(body.resourceType, body);
    const oo = assertOutcome(assert, res, 400, 'invalid', expression);
    assert.ok(!res.body.includes('1974-13-45') && !res.body.includes('2024-02-30'), `value echoed: ${res.body}`);
    assert.ok(oo.issue[0].diagnostics === undefined || typeof oo.issue[0].diagnostics === 'string');
  }

  // value[x] twice (choice types allow one).
  const twoValues = await fhirPost('Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueString: CANARY, valueBoolean: true });
  const oo2 = assertOutcome(assert, twoValues, 400, 'invalid');
  assert.match(oo2.issue[0].expression[0], /^Observation\.value/);

  // Structure inside extensions and contained resources is checked too.
  const ext = await fhirPost('Patient', { resourceType: 'Patient', extension: [{ valueString: CANARY }] });
  const oo3 = assertOutcome(assert, ext, 400, 'invalid');
  assert.match(oo3.issue[0].expression[0], /^Patient\.extension/);
  const contained = await fhirPost('Patient', { resourceType: 'Patient', contained: [{ resourceType: 'Patient', id: 'c1', bogus: CANARY }] });
  const oo4 = assertOutcome(assert, contained, 400, 'invalid');
  assert.match(oo4.issue[0].expression[0], /^Patient\.contained/);

  // resourceType missing, unknown, or not the URL's type.
  assertOutcome(assert, await fhirPost('Patient', { name: [{ family: CANARY }] }), 400, 'invalid');
  assertOutcome(assert, await fhirPost('Patient', { resourceType: `Nope${CANARY}` }), 400, 'invalid');
  assertOutcome(assert, await fhirPost('Patient', { resourceType: 'Observation', status: 'final', code: { text: CANARY } }), 400, 'invalid');

  // The same on update.
  const upd = remember(await server.request('PUT', `/fhir/Patient/${patient.id}`, {
    headers: { ...bearer(token), 'content-type': 'application/fhir+json' },
    body: { ...PATIENT, id: patient.id, birthDate: CANARY },
  }));
  assertOutcome(assert, upd, 400, 'invalid', ['Patient.birthDate']);
  await assertStillServing();
});

test('duplicate JSON member names: 400 (no parser disagreement about which one counts)', async () => {
  const body = `{"resourceType":"Patient","birthDate":"1970-01-01","birthDate":"1980-01-01"}`;
  assertOutcome(assert, await fhirPost('Patient', body), 400, 'invalid');
});

test('wrong Content-Type on POST and PUT: 415', async () => {
  const body = JSON.stringify(PATIENT);
  for (const ct of ['text/plain', 'application/xml', 'application/fhir+xml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
    assertOutcome(assert, await fhirPost('Patient', body, { 'content-type': ct }), 415, 'not-supported');
    const put = remember(await server.request('PUT', `/fhir/Patient/${patient.id}`, {
      headers: { ...bearer(token), 'content-type': ct }, body: { ...PATIENT, id: patient.id },
    }));
    assertOutcome(assert, put, 415, 'not-supported');
  }
  const none = await send(raw('POST', '/fhir/Patient', { headers: [`Content-Length: ${Buffer.byteLength(body)}`], body }));
  assertRawOutcome(none, 415, 'not-supported');
  // Accepted spellings.
  for (const ct of ['application/json', 'application/fhir+json; charset=utf-8', 'Application/FHIR+JSON']) {
    const ok = await fhirPost('Patient', body, { 'content-type': ct });
    assert.equal(ok.status, 201, `${ct}: ${ok.body}`);
  }
  await assertStillServing();
});

test('XML requested by Accept or _format: 406', async () => {
  const h = bearer(token);
  for (const accept of ['application/xml', 'application/fhir+xml', 'text/html']) {
    const res = remember(await server.request('GET', `/fhir/Patient/${patient.id}`, { headers: { ...h, accept } }));
    assertOutcome(assert, res, 406, 'not-supported');
  }
  for (const f of ['xml', 'application/fhir%2Bxml', 'text/xml', 'html']) {
    const res = remember(await server.request('GET', `/fhir/Patient/${patient.id}?_format=${f}`, { headers: h }));
    assertOutcome(assert, res, 406, 'not-supported');
  }
  assertOutcome(assert, remember(await server.request('GET', '/fhir/metadata?_format=xml')), 406, 'not-supported');
  for (const accept of ['*/*', 'application/json', 'application/fhir+json', 'application/fhir+xml;q=0.9, application/fhir+json']) {
    const res = await server.request('GET', `/fhir/Patient/${patient.id}`, { headers: { ...h, accept } });
    assert.equal(res.status, 200, `Accept: ${accept}`);
  }
  await assertStillServing();
});

test('unknown resource types and paths: 404', async () => {
  const h = { ...bearer(token), 'content-type': 'application/fhir+json' };
  const cases = [
    ['GET', '/fhir/Foo/1'],
    ['GET', '/fhir/patient/1'],
    ['GET', '/fhir/Foo/_history'],
    ['POST', '/fhir/Foo'],
    ['GET', '/fhir/Resource/1'],
    ['GET', '/fhir/DomainResource/1'],
    ['GET', '/nope'],
  ];
  for (const [method, target] of cases) {
    const res = remember(await server.request(method, target, { headers: h, body: method === 'POST' ? { resourceType: 'Foo' } : undefined }));
    assertOutcome(assert, res, 404, 'not-found');
  }
  await assertStillServing();
});

test('configured limits: body_bytes and json_depth apply exactly; a stalled request is cut off', async () => {
  const small = await startServer({ config: '[limits]\nbody_bytes = 2048\njson_depth = 16\nread_timeout_ms = 1000\n' });
  try {
    const t = await small.token(await addClient(small.dataDir, { name: 'small', scope: 'system/*.cruds' }));
    const padded = (n) => {
      const base = JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Limit' }] });
      return `${base.slice(0, -1)}${' '.repeat(n - base.length)}}`;
    };
    assert.equal(Buffer.byteLength(padded(2048)), 2048);
    const atLimit = await fhirPost('Patient', padded(2048), {}, small, t);
    assert.equal(atLimit.status, 201, `a body of exactly body_bytes is accepted: ${atLimit.body}`);
    const over = await fhirPost('Patient', padded(2049), {}, small, t);
    assertOutcome(assert, over, 413, 'too-long');

    assert.equal((await fhirPost('Patient', nestedExtensions(5), {}, small, t)).status, 201);
    assertOutcome(assert, await fhirPost('Patient', nestedExtensions(10), {}, small, t), 400, 'invalid');

    // A client that sends half a request and stalls is disconnected after read_timeout.
    const started = Date.now();
    const closed = await new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: small.port, servername: 'localhost', ca: small.ca }, () => {
        s.write(`POST /fhir/Patient HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{"resourceType"`);
      });
      s.on('data', () => {});
      s.on('error', () => {});
      const timer = setTimeout(() => { s.destroy(); reject(new Error('a stalled request held its connection for 10 s')); }, 10_000);
      s.on('close', () => { clearTimeout(timer); resolve(Date.now() - started); });
    });
    assert.ok(closed >= 900, `closed after ${closed} ms, not before the deadline`);
    const h = await small.request('GET', '/healthz');
    assert.equal(h.status, 200);
  } finally {
    await small.dispose();
  }
});

test('after all of it the server still serves, and nothing echoed a submitted value', async () => {
  await assertStillServing();
  assert.ok(responses.length > 60, `${responses.length} responses checked`);
  for (const res of responses) {
    if (res.status === 201) continue;  // a created resource legitimately holds what was sent
    const text = `${JSON.stringify(res.headers)}\n${res.body}`;
    assert.ok(!text.includes(CANARY), `a ${res.status} response echoed a submitted value: ${text.slice(0, 400)}`);
    assert.ok(!text.includes(CANARY.toLowerCase()), `a ${res.status} response echoed a submitted value (lower-case)`);
  }
  const exit = await server.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(!server.stderr().includes(CANARY), 'the log holds a submitted value');
});
