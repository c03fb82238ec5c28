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

// `phigate clients add ... --json`: resolves {client_id, client_secret}. Deny by default
// (issue 4): a client reaches PHI only through its roles, so tests name one (clinician by
// default; pass roles: '' for a client without any).
export async function addClient(dataDir, { name = 'it-client', scope = 'system/*.cruds',
  roles = 'clinician', extraArgs = [] } = {}) {
  const args = ['clients', 'add', '--name', name, '--scope', scope, '--data-dir', dataDir,
    '--json', ...extraArgs];
  if (roles) args.push('--roles', roles);
  const r = await runCli(args);
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

// ---------------------------------------------------------------------------------------
// The built-in authorization server (issue 3): users, apps, and the HTML pages of
// enrollment and login driven without a browser (fetch-like requests, a cookie jar and a
// small form reader), plus openid-client configured to trust the server's certificate.

// An undici Agent for fetch() that trusts exactly `ca` (see Server.fetchDispatcher for why
// the class is taken from the global dispatcher). `servername` overrides the name the
// certificate is checked against.
export async function undiciAgent({ ca, servername } = {}) {
  const key = Symbol.for('undici.globalDispatcher.1');
  if (!globalThis[key]) await fetch('data:,').then((r) => r.arrayBuffer());
  const UndiciAgent = globalThis[key]?.constructor;
  if (typeof UndiciAgent !== 'function') throw new Error('cannot find the undici Agent class');
  const connect = { ca };
  if (servername !== undefined) connect.servername = servername;
  return new UndiciAgent({ connect });
}

// `phigate users add ...`: resolves {user_id, enrollment_url} from its two output lines.
export async function addUser(dataDir, { username, roles = 'clinician', fhirUser } = {}) {
  const args = ['users', 'add', '--username', username, '--roles', roles];
  if (fhirUser !== undefined) args.push('--fhir-user', fhirUser);
  args.push('--data-dir', dataDir);
  const r = await runCli(args);
  if (r.code !== 0) throw new Error(`users add exited ${r.code}: ${r.stderr}`);
  const id = /^user_id=([0-9a-f]{32})$/m.exec(r.stdout);
  const link = /^enrollment_url=(https:\/\/\S+\/oauth2\/enroll\?token=\S+)$/m.exec(r.stdout);
  if (!id || !link) throw new Error(`users add printed no user_id/enrollment_url: ${r.stdout}`);
  return { user_id: id[1], enrollment_url: link[1], stdout: r.stdout, stderr: r.stderr };
}

// `phigate users list --json`: resolves the parsed array.
export async function listUsers(dataDir) {
  const r = await runCli(['users', 'list', '--json', '--data-dir', dataDir]);
  if (r.code !== 0) throw new Error(`users list exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

// `phigate clients add` for an app of the authorization code flow: resolves
// {client_id, client_secret} (no secret for a public app).
export async function addApp(dataDir, { name = 'app', scope, redirectUris = [], isPublic = false } = {}) {
  const args = ['clients', 'add', '--name', name, '--scope', scope];
  for (const uri of redirectUris) args.push('--redirect-uri', uri);
  if (isPublic) args.push('--public');
  args.push('--data-dir', dataDir, '--json');
  const r = await runCli(args);
  if (r.code !== 0) throw new Error(`clients add exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

// The same path and query on `server` (the CLI does not know the port a port-0 server
// got, so links it prints may name another origin).
export function onServer(server, link) {
  const u = new URL(link);
  return new URL(u.pathname + u.search, server.origin).href;
}

// A cookie jar for one user agent talking to one origin: keeps name=value of every
// Set-Cookie (attributes are recorded, not enforced) and drops cookies set to expire.
export class CookieJar {
  constructor() { this.cookies = new Map(); }

  // Records the Set-Cookie headers of a response made by Server.request.
  store(res) {
    const raw = res.rawHeaders ?? [];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      if (raw[i].toLowerCase() !== 'set-cookie') continue;
      const [pair, ...attrs] = raw[i + 1].split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const attributes = {};
      for (const a of attrs) {
        const j = a.indexOf('=');
        attributes[(j < 0 ? a : a.slice(0, j)).toLowerCase()] = j < 0 ? true : a.slice(j + 1);
      }
      const expired = attributes['max-age'] !== undefined && Number(attributes['max-age']) <= 0;
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, { value, attributes, header: raw[i + 1] });
    }
  }

  get(name) { return this.cookies.get(name); }

  header() {
    return [...this.cookies].map(([n, c]) => `${n}=${c.value}`).join('; ');
  }
}

const HTML_ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", '#39': "'", '#x27': "'", '#47': '/', '#x2F': '/' };

export function decodeHtml(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) => {
    if (HTML_ENTITIES[e] !== undefined) return HTML_ENTITIES[e];
    if (/^#x/i.test(e)) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (/^#/.test(e)) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return m;
  });
}

function parseAttributes(text) {
  const attrs = {};
  const re = /([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  let m;
  while ((m = re.exec(text)) !== null) {
    attrs[m[1].toLowerCase()] = decodeHtml(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

// The forms of an HTML page: [{action, method, fields: [{name, type, value, attrs}]}].
export function parseForms(html) {
  const forms = [];
  const re = /<form\b([^>]*)>([\s\S]*?)<\/form>/gi;
  let m;
  while ((m = re.exec(html)) !== null) {
    const attrs = parseAttributes(m[1]);
    const fields = [];
    const inputRe = /<(input|textarea|select|button)\b([^>]*)>/gi;
    let f;
    while ((f = inputRe.exec(m[2])) !== null) {
      const a = parseAttributes(f[2]);
      const tag = f[1].toLowerCase();
      if (a.name === undefined) continue;
      const type = (a.type ?? (tag === 'button' ? 'submit' : 'text')).toLowerCase();
      fields.push({ name: a.name, type, value: a.value ?? '', attrs: a, tag });
    }
    forms.push({ action: attrs.action ?? '', method: (attrs.method ?? 'get').toLowerCase(), fields, attrs });
  }
  return forms;
}

// The text content of the element with id `id` (tags inside removed, whitespace kept).
export function elementText(html, id) {
  const re = new RegExp(`<([a-z0-9]+)\\b[^>]*\\bid\\s*=\\s*["']${id}["'][^>]*>([\\s\\S]*?)</\\1>`, 'i');
  const m = re.exec(html);
  return m ? decodeHtml(m[2].replace(/<[^>]*>/g, '')) : undefined;
}

// Fills a parsed form: hidden fields keep their values; visible fields are chosen by
// `fill(field)` (return undefined to leave a field out). Returns URLSearchParams.
export function fillForm(form, fill) {
  const body = new URLSearchParams();
  for (const field of form.fields) {
    if (field.type === 'submit' || field.type === 'button' || field.type === 'reset') {
      continue;
    }
    if (field.type === 'hidden') {
      body.append(field.name, field.value);
      continue;
    }
    const v = fill(field);
    if (v !== undefined) body.append(field.name, v);
  }
  return body;
}

// A fill function for the pages of phigate: password fields get `password`, the
// username field `username`, a code field `code`.
export function pageValues({ username, password, code }) {
  return (field) => {
    if (field.type === 'password') return password;
    if (/user/i.test(field.name)) return username;
    if (/code|otp|totp/i.test(field.name)) return code;
    return undefined;
  };
}

// One user agent (cookies, Origin on POST like a browser) talking to `server`'s pages.
export class PageClient {
  constructor(server) {
    this.server = server;
    this.jar = new CookieJar();
    this.agent = server.newAgent({ keepAlive: false });
  }

  async get(target, { headers = {} } = {}) {
    const cookie = this.jar.header();
    const res = await this.server.request('GET', target, {
      headers: { accept: 'text/html', ...(cookie ? { cookie } : {}), ...headers },
      agent: this.agent,
    });
    this.jar.store(res);
    res.url = new URL(target, this.server.origin).href;
    return res;
  }

  // Posts a form body (URLSearchParams or string) to `target`.
  async post(target, body, { headers = {}, origin = this.server.origin } = {}) {
    const cookie = this.jar.header();
    const res = await this.server.request('POST', target, {
      headers: {
        accept: 'text/html',
        'content-type': 'application/x-www-form-urlencoded',
        ...(origin ? { origin } : {}),
        ...(cookie ? { cookie } : {}),
        ...headers,
      },
      body: body.toString(),
      agent: this.agent,
    });
    this.jar.store(res);
    res.url = new URL(target, this.server.origin).href;
    return res;
  }

  // Submits the one form of `page` whose action path is `actionPath`, filled by `fill`.
  async submit(page, actionPath, fill, options) {
    const form = parseForms(page.body).find((f) => new URL(f.action || page.url, page.url).pathname === actionPath);
    if (!form) {
      throw new Error(`no form posting to ${actionPath} on the ${page.status} page ${page.url}:\n${page.body}`);
    }
    if (form.method !== 'post') throw new Error(`the form to ${actionPath} is not method=post`);
    const target = new URL(form.action || page.url, page.url);
    return this.post(target.pathname + target.search, fillForm(form, fill), options);
  }
}

// Enrolls a user through the enrollment pages (password twice, then the first TOTP code).
// `codeFor(secret)` computes (or resolves) the confirmation code. Resolves
// {secret, otpauthUri, pages: {link, secret, done}}.
export async function enrollThroughPages(server, enrollmentUrl, password, codeFor, { client } = {}) {
  const ua = client ?? new PageClient(server);
  const link = await ua.get(onServer(server, enrollmentUrl));
  if (link.status !== 200) throw new Error(`enrollment link answered ${link.status}: ${link.body}`);
  const set = await ua.submit(link, '/oauth2/enroll', pageValues({ password }));
  if (set.status !== 200) throw new Error(`POST /oauth2/enroll answered ${set.status}: ${set.body}`);
  const secretText = elementText(set.body, 'totp-secret');
  if (secretText === undefined) throw new Error(`no #totp-secret on the page: ${set.body}`);
  const secret = secretText.replace(/\s+/g, '');
  const uri = /otpauth:\/\/totp\/[^"'<\s]+/.exec(set.body);
  const done = await ua.submit(set, '/oauth2/enroll/confirm', pageValues({ code: await codeFor(secret) }));
  if (done.status !== 200) throw new Error(`POST /oauth2/enroll/confirm answered ${done.status}: ${done.body}`);
  return { secret, otpauthUri: uri ? decodeHtml(uri[0]) : undefined, pages: { link, secret: set, done }, client: ua };
}

// Drives the login pages from an authorization URL to the redirect to the app. `code` is
// the TOTP code or a function resolving it, called once the password step passed. Resolves
// {location, pages: {login, otp, redirect}}; throws if a step does not answer as a
// successful login does (callers that expect failures use PageClient directly).
export async function loginThroughPages(server, authorizationUrl, { username, password, code, client } = {}) {
  const ua = client ?? new PageClient(server);
  const login = await ua.get(authorizationUrl);
  if (login.status !== 200) throw new Error(`authorize answered ${login.status}: ${login.body}`);
  const otp = await ua.submit(login, '/oauth2/login', pageValues({ username, password }));
  if (otp.status !== 200) throw new Error(`POST /oauth2/login answered ${otp.status}: ${otp.body}`);
  const totpCode = typeof code === 'function' ? await code() : code;
  const redirect = await ua.submit(otp, '/oauth2/login/otp', pageValues({ code: totpCode }));
  if (redirect.status !== 303) throw new Error(`POST /oauth2/login/otp answered ${redirect.status}: ${redirect.body}`);
  return { location: redirect.headers.location, pages: { login, otp, redirect }, client: ua };
}

// openid-client (v6) Configuration for `client` at `server`, discovered from the server's
// issuer over TLS verified against the server's certificate.
export async function openidConfig(server, { client_id, client_secret }, { issuer = server.origin } = {}) {
  const oidc = await import('openid-client');
  const dispatcher = await server.fetchDispatcher();
  const fetchWithCa = (url, options) => fetch(url, { ...options, dispatcher });
  const auth = client_secret ? oidc.ClientSecretBasic(client_secret) : oidc.None();
  return oidc.discovery(new URL(issuer), client_id, undefined, auth,
    { [oidc.customFetch]: fetchWithCa });
}

// base64 SHA-256 of the server certificate's SubjectPublicKeyInfo (Chromium's
// --ignore-certificate-errors-spki-list pins exactly this key).
export async function spkiSha256(pem) {
  const { X509Certificate, createHash } = await import('node:crypto');
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

// The authorization code flow with PKCE as an app using openid-client does it, the person
// driven through the pages by loginThroughPages. `config` from openidConfig. Resolves
// {tokens (openid-client's response), location (the redirect to the app), checks
// ({pkceCodeVerifier, expectedState, expectedNonce}), authorizationUrl, pages}.
export async function authorizationCodeLogin(server, config, {
  username, password, code, scope, redirectUri, client: ua,
} = {}) {
  const oidc = await import('openid-client');
  const pkceCodeVerifier = oidc.randomPKCECodeVerifier();
  const expectedState = oidc.randomState();
  const expectedNonce = oidc.randomNonce();
  const authorizationUrl = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: 'S256',
    state: expectedState,
    nonce: expectedNonce,
  });
  const { location, pages } = await loginThroughPages(server, authorizationUrl.href,
    { username, password, code, client: ua });
  const checks = { pkceCodeVerifier, expectedState, expectedNonce };
  const tokens = await oidc.authorizationCodeGrant(config, new URL(location), checks);
  return { tokens, location, checks, authorizationUrl, pages };
}
