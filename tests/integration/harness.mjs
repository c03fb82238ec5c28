// Integration harness: runs the real phigate binary (PHIGATE_BIN) on 127.0.0.1 port 0 with
// a fresh temporary data dir, and talks to it over TLS that is verified against the
// server's own generated certificate (never with verification turned off).
//
// Every server gets its own port and directory, so test files can run in parallel
// (ctest -j2). Nothing here is shared between servers except the binary.

import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { Client as FhirClient } from 'fhir-kit-client';

export const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 20_000;
const SERVING_LINE = /serving FHIR R4 at (https:\/\/\S+)/;

export function phigateBin() {
  const bin = process.env.PHIGATE_BIN;
  if (!bin) throw new Error('PHIGATE_BIN must name the phigate binary under test');
  if (!fs.existsSync(bin)) throw new Error(`PHIGATE_BIN=${bin} does not exist`);
  return bin;
}

// A scratch directory, removed by the returned cleanup function.
export async function makeTempRoot(prefix = 'phigate-it-') {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

// Runs a phigate subcommand to completion; resolves {code, stdout, stderr}.
export function runCli(args, { timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(phigateBin(), args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(err);
        resolve({ code: err ? err.code : 0, stdout, stderr });
      });
  });
}

// `phigate clients add ... --json`: resolves {client_id, client_secret}.
export async function addClient(dataDir, { name = 'it-client', scope = 'system/*.cruds' } = {}) {
  const r = await runCli(['clients', 'add', '--name', name, '--scope', scope,
    '--data-dir', dataDir, '--json']);
  if (r.code !== 0) {
    throw new Error(`clients add exited ${r.code}: ${r.stderr}`);
  }
  return JSON.parse(r.stdout);
}

// Starts `phigate serve`. Options:
//   dataDir: reuse an existing data dir (restart); default: <fresh temp root>/data, which
//            does not exist yet so the server creates it.
//   config:  TOML text written to <root>/phigate.toml and passed with --config.
// Resolves a Server.
export async function startServer({ dataDir, config, root } = {}) {
  const ownsRoot = !root && !dataDir;
  if (!root) root = dataDir ? path.dirname(dataDir) : await makeTempRoot();
  if (!dataDir) dataDir = path.join(root, 'data');
  const args = ['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0'];
  if (config !== undefined) {
    const configFile = path.join(root, `phigate-${process.pid}-${Date.now()}.toml`);
    await fsp.writeFile(configFile, config, { mode: 0o600 });
    args.push('--config', configFile);
  }
  const child = spawn(phigateBin(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const server = new Server({ child, root, dataDir, ownsRoot });
  await server.waitServing();
  return server;
}

export class Server {
  constructor({ child, root, dataDir, ownsRoot }) {
    this.child = child;
    this.root = root;
    this.dataDir = dataDir;
    this.ownsRoot = ownsRoot;
    this.stdoutChunks = [];
    this.stderrChunks = [];
    this.agents = [];
    this.dispatchers = [];
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
    });
    this.exitInfo = null;
    this.exited.then((info) => { this.exitInfo = info; });
    child.stdout.on('data', (b) => this.stdoutChunks.push(b));
    child.stderr.on('data', (b) => this.stderrChunks.push(b));
  }

  stdout() { return Buffer.concat(this.stdoutChunks).toString('utf8'); }
  stderrBytes() { return Buffer.concat(this.stderrChunks); }
  stderr() { return this.stderrBytes().toString('utf8'); }

  async waitServing() {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const m = SERVING_LINE.exec(this.stdout());
      if (m) {
        this.baseUrl = m[1];
        const u = new URL(this.baseUrl);
        this.origin = u.origin;
        this.port = Number(u.port);
        break;
      }
      if (this.exitInfo) {
        throw new Error(`phigate exited before serving (${JSON.stringify(this.exitInfo)}):\n` +
          `stdout: ${this.stdout()}\nstderr: ${this.stderr()}`);
      }
      if (Date.now() > deadline) {
        this.child.kill('SIGKILL');
        throw new Error(`phigate did not print "serving FHIR R4 at" within ` +
          `${START_TIMEOUT_MS} ms:\nstdout: ${this.stdout()}\nstderr: ${this.stderr()}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    this.ca = fs.readFileSync(path.join(this.dataDir, 'tls', 'cert.pem'));
    this.agent = this.newAgent();
  }

  // A keep-alive agent that trusts exactly the server's certificate.
  newAgent(options = {}) {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 32, ca: this.ca, ...options });
    this.agents.push(agent);
    return agent;
  }

  // request(method, path, {headers, body, agent}) over node:https. `path` is relative to
  // the origin ("/fhir/Patient/1") or an absolute https URL on this server (a next link).
  // Resolves {status, headers (lower-cased names), body (string), bodyBytes, json()}.
  request(method, target, { headers = {}, body, agent = this.agent, timeoutMs = 30_000 } = {}) {
    const url = new URL(target, this.origin);
    if (url.origin !== this.origin) {
      return Promise.reject(new Error(`refusing to send a request to ${url.origin}`));
    }
    const payload = body === undefined ? undefined
      : Buffer.isBuffer(body) ? body
        : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
    const h = { ...headers };
    if (payload !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-length')) {
      h['content-length'] = String(payload.length);
    }
    return new Promise((resolve, reject) => {
      const req = https.request({
        method,
        host: '127.0.0.1',
        port: this.port,
        servername: 'localhost',
        path: url.pathname + url.search,
        headers: h,
        agent,
        ca: this.ca,
        timeout: timeoutMs,
      }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const bodyBytes = Buffer.concat(chunks);
          const text = bodyBytes.toString('utf8');
          resolve({
            status: res.statusCode,
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            body: text,
            bodyBytes,
            json() { return JSON.parse(text); },
          });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${target} timed out`)));
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  // POST /oauth2/token with client_secret_basic (RFC 6749 §2.3.1 form-encodes both halves).
  async tokenResponse({ client_id, client_secret }, { scope, extra = {} } = {}) {
    const basic = Buffer.from(`${formEncode(client_id)}:${formEncode(client_secret)}`)
      .toString('base64');
    const form = new URLSearchParams({ grant_type: 'client_credentials', ...extra });
    if (scope !== undefined) form.set('scope', scope);
    return this.request('POST', '/oauth2/token', {
      headers: {
        authorization: `Basic ${basic}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: form.toString(),
    });
  }

  async token(client, options) {
    const res = await this.tokenResponse(client, options);
    if (res.status !== 200) throw new Error(`token endpoint answered ${res.status}: ${res.body}`);
    return res.json().access_token;
  }

  // Creates a client through the CLI (while the server runs) and returns its token.
  async clientToken({ name = 'it-client', scope = 'system/*.cruds' } = {}) {
    const client = await addClient(this.dataDir, { name, scope });
    return this.token(client);
  }

  // An undici dispatcher for fetch() that trusts exactly the server's certificate.
  // Node's fetch (undici) ignores https.Agent; its supported way to set a CA is a
  // dispatcher, an undici Agent with connect.ca. Node bundles undici but does not export
  // it, so the class is taken from the global dispatcher undici registers under its
  // documented cross-version key.
  async fetchDispatcher() {
    const key = Symbol.for('undici.globalDispatcher.1');
    if (!globalThis[key]) await fetch('data:,').then((r) => r.arrayBuffer());
    const UndiciAgent = globalThis[key]?.constructor;
    if (typeof UndiciAgent !== 'function') throw new Error('cannot find the undici Agent class');
    const dispatcher = new UndiciAgent({ connect: { ca: this.ca, servername: 'localhost' } });
    this.dispatchers.push(dispatcher);
    return dispatcher;
  }

  // A fhir-kit-client Client for this server's FHIR base, with `token` as bearer token.
  async fhirClient(token, { customHeaders = {} } = {}) {
    const dispatcher = await this.fetchDispatcher();
    return new FhirClient({
      baseUrl: this.baseUrl,
      bearerToken: token,
      customHeaders,
      requestOptions: { dispatcher },
    });
  }

  closeConnections() {
    for (const a of this.agents) a.destroy();
    this.agents = [];
    for (const d of this.dispatchers) d.destroy().catch(() => {});
    this.dispatchers = [];
  }

  // SIGTERM; resolves {code, signal} once the process has exited.
  async stop() {
    this.closeConnections();
    if (!this.exitInfo) this.child.kill('SIGTERM');
    return withTimeout(this.exited, STOP_TIMEOUT_MS, 'phigate did not exit after SIGTERM');
  }

  // SIGKILL; resolves {code, signal}.
  async kill9() {
    if (!this.exitInfo) this.child.kill('SIGKILL');
    const info = await withTimeout(this.exited, STOP_TIMEOUT_MS, 'phigate survived SIGKILL');
    this.closeConnections();
    return info;
  }

  // Stops the server if it still runs (SIGKILL after a grace period) and removes the
  // temporary root if this server created it.
  async dispose({ removeRoot = this.ownsRoot } = {}) {
    this.closeConnections();
    if (!this.exitInfo) {
      this.child.kill('SIGTERM');
      const done = await withTimeout(this.exited, STOP_TIMEOUT_MS, 'no exit').catch(() => null);
      if (!done) {
        this.child.kill('SIGKILL');
        await this.exited;
      }
    }
    if (removeRoot) await fsp.rm(this.root, { recursive: true, force: true });
  }
}

export function formEncode(s) {
  return new URLSearchParams({ x: s }).toString().slice(2);
}

export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

export async function withTimeout(promise, ms, message) {
  let timer;
  const t = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); });
  try {
    return await Promise.race([promise, t]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------
// Raw HTTP/1.1 over TLS, for requests an HTTP client would refuse to send or would fix up
// (Content-Length together with Transfer-Encoding, dot segments, %00, malformed framing).

// Sends `bytes` (string or Buffer, or an array of them written in turn) on a fresh TLS
// connection and resolves the first response: {status, headers, body, raw, closed}.
// Resolves status 0 if the server closed the connection without an HTTP response.
export function rawRequest(server, bytes, { timeoutMs = 20_000, ignoreWriteErrors = false } = {}) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: server.port,
      servername: 'localhost',
      ca: server.ca,
    });
    const chunks = [];
    let settled = false;
    const finish = (closed) => {
      if (settled) return;
      const buf = Buffer.concat(chunks);
      const parsed = parseResponse(buf);
      if (!parsed && !closed) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (parsed) resolve({ ...parsed, closed });
      else resolve({ status: 0, headers: {}, body: '', raw: buf.toString('latin1'), closed: true });
    };
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(new Error(`no response within ${timeoutMs} ms; got: ${Buffer.concat(chunks)}`));
    }, timeoutMs);
    socket.on('secureConnect', async () => {
      const parts = Array.isArray(bytes) ? bytes : [bytes];
      for (const p of parts) {
        if (socket.destroyed) break;
        if (!socket.write(p)) await drainedOrClosed(socket);
      }
    });
    socket.on('data', (c) => { chunks.push(c); finish(false); });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', (err) => {
      if (ignoreWriteErrors && ['EPIPE', 'ECONNRESET'].includes(err.code)) return;
      if (chunks.length > 0) return;  // the response arrived; a reset after it is fine
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
    });
  });
}

function drainedOrClosed(socket) {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

// Parses one complete HTTP/1.1 response from `buf`; null while incomplete.
export function parseResponse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = buf.subarray(0, end).toString('latin1');
  const lines = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) return { status: -1, headers: {}, body: '', raw: buf.toString('latin1') };
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  let rest = buf.subarray(end + 4);
  let body;
  if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (rest.length < n) return null;
    body = rest.subarray(0, n);
  } else if (/chunked/i.test(headers['transfer-encoding'] || '')) {
    const parts = [];
    for (;;) {
      const le = rest.indexOf('\r\n');
      if (le < 0) return null;
      const size = parseInt(rest.subarray(0, le).toString('latin1'), 16);
      if (rest.length < le + 2 + size + 2) return null;
      if (size === 0) break;
      parts.push(rest.subarray(le + 2, le + 2 + size));
      rest = rest.subarray(le + 2 + size + 2);
    }
    body = Buffer.concat(parts);
  } else {
    body = Buffer.alloc(0);
  }
  return { status: Number(m[1]), headers, body: body.toString('utf8'), raw: buf.toString('latin1') };
}

// ---------------------------------------------------------------------------------------
// Shared assertions of the response contract.

export const FHIR_JSON = 'application/fhir+json; charset=utf-8';
export const PLAIN_JSON = 'application/json; charset=utf-8';
export const WWW_AUTHENTICATE = 'Bearer realm="phigate", error="invalid_token"';
export const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;
// RFC 9110 §5.6.7 IMF-fixdate.
export const IMF_FIXDATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;
// FHIR instant (datatypes.html#instant).
export const FHIR_INSTANT = /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$/;
export const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

export function bearer(token) { return { authorization: `Bearer ${token}` }; }

// Decodes a compact JWS without verifying it.
export function decodeJwt(token) {
  const [h, p, s] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
    signingInput: `${h}.${p}`,
    signature: Buffer.from(s, 'base64url'),
  };
}

// Recursively lists every regular file under `dir` (absolute paths).
export async function listFiles(dir) {
  const out = [];
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...await listFiles(p));
    else out.push(p);
  }
  return out;
}

export async function listDirs(dir) {
  const out = [dir];
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...await listDirs(path.join(dir, e.name)));
  }
  return out;
}

// The headers every response carries (issue 2 §3). `contentType`: the exact expected
// Content-Type when the response has a body.
export function assertCommonHeaders(assert, res, { contentType = FHIR_JSON, requestId } = {}) {
  const h = res.headers;
  const where = `${res.status} response`;
  assert.match(h['strict-transport-security'] ?? '', /^max-age=31536000(; ?includeSubDomains)?$/,
    `${where}: Strict-Transport-Security`);
  assert.equal(h['x-content-type-options'], 'nosniff', `${where}: X-Content-Type-Options`);
  assert.equal(h['cache-control'], 'no-store', `${where}: Cache-Control`);
  assert.match(h['x-request-id'] ?? '', REQUEST_ID, `${where}: X-Request-Id`);
  if (requestId !== undefined) assert.equal(h['x-request-id'], requestId, `${where}: echoed X-Request-Id`);
  if (res.body.length > 0 || res.status !== 204) {
    assert.equal(h['content-type'], contentType, `${where}: Content-Type`);
  }
}

// Asserts an OperationOutcome error response: exact status, issue[0].code and, when
// given, issue[0].expression. Returns the parsed outcome.
export function assertOutcome(assert, res, status, code, expression) {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.body}`);
  assertCommonHeaders(assert, res);
  const oo = JSON.parse(res.body);
  assert.equal(oo.resourceType, 'OperationOutcome');
  assert.ok(Array.isArray(oo.issue) && oo.issue.length >= 1, 'OperationOutcome.issue');
  assert.equal(oo.issue[0].severity === 'error' || oo.issue[0].severity === 'fatal', true,
    `issue[0].severity is ${oo.issue[0].severity}`);
  assert.equal(oo.issue[0].code, code, `issue[0].code for ${status}: ${res.body}`);
  if (expression !== undefined) {
    assert.deepEqual(oo.issue[0].expression, expression, `issue[0].expression: ${res.body}`);
  }
  return oo;
}
