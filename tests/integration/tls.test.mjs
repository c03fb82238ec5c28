// Transport (issue 2 §3): TLS 1.2 minimum, 1.3 preferred, AEAD suites only, the generated
// certificate valid for localhost and 127.0.0.1, and no plaintext HTTP at all. Checked with
// clients written by others: openssl s_client and curl.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startServer, sleep } from './harness.mjs';

let server;
let certFile;

// Runs a command with stdin closed; resolves {code, stdout, stderr}.
function run(cmd, args, { timeoutMs = 30_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin.on('error', () => {});
    child.stdin.end();
  });
}

// openssl s_client -brief against `port` with extra arguments. Returns the negotiated
// protocol ("TLSv1.3", ...) and suite, or null for both when no session was established.
async function sClient(port, args, { ca = true } = {}) {
  const r = await run('openssl', ['s_client', '-brief', '-connect', `127.0.0.1:${port}`,
    '-servername', 'localhost', ...(ca ? ['-CAfile', certFile] : []), ...args]);
  const text = `${r.stdout}\n${r.stderr}`;
  const established = /^CONNECTION ESTABLISHED$/m.test(text);
  const proto = /^Protocol version: (\S+)$/m.exec(text);
  const suite = /^Ciphersuite: (\S+)$/m.exec(text);
  return {
    protocol: established && proto ? proto[1] : null,
    cipher: established && suite ? suite[1] : null,
    verified: /^Verification: OK$/m.test(text),
    code: r.code,
    text,
  };
}

before(async () => {
  server = await startServer();
  certFile = path.join(server.dataDir, 'tls', 'cert.pem');
});

after(async () => {
  if (server) await server.dispose();
});

test('the generated certificate: self-signed ECDSA P-256 for localhost and 127.0.0.1', () => {
  const cert = new crypto.X509Certificate(fs.readFileSync(certFile));
  assert.equal(cert.publicKey.asymmetricKeyType, 'ec');
  assert.equal(cert.publicKey.asymmetricKeyDetails.namedCurve, 'prime256v1');
  assert.ok(cert.checkHost('localhost'), 'SAN localhost');
  assert.ok(cert.checkIP('127.0.0.1'), 'SAN 127.0.0.1');
  assert.ok(cert.verify(cert.publicKey), 'self-signed');
  assert.ok(new Date(cert.validTo) > new Date(), 'not expired');
  assert.ok(new Date(cert.validFrom) <= new Date(Date.now() + 60_000), 'already valid');
});

test('TLS 1.0 and 1.1 are refused (and the client would have spoken them)', async () => {
  // Control: this openssl s_client does speak TLS 1.0/1.1 to a server that allows them,
  // so a refusal below is phigate's.
  const key = path.join(server.root, 'control-key.pem');
  const cert = path.join(server.root, 'control-cert.pem');
  const gen = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost']);
  assert.equal(gen.code, 0, gen.stderr);
  const port = await freePort();
  const control = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', cert, '-key', key,
    '-cipher', 'DEFAULT@SECLEVEL=0', '-min_protocol', 'TLSv1', '-www'], { stdio: ['pipe', 'ignore', 'ignore'] });
  try {
    await waitForPort(port);
    for (const [flag, want] of [['-tls1', 'TLSv1'], ['-tls1_1', 'TLSv1.1']]) {
      const ok = await sClient(port, [flag, '-cipher', 'DEFAULT@SECLEVEL=0'], { ca: false });
      assert.equal(ok.protocol, want, `control ${flag}:\n${ok.text}`);
    }
  } finally {
    control.kill('SIGKILL');
  }

  for (const [flag, name] of [['-tls1', 'TLS 1.0'], ['-tls1_1', 'TLS 1.1']]) {
    const r = await sClient(server.port, [flag, '-cipher', 'DEFAULT@SECLEVEL=0']);
    assert.equal(r.protocol, null, `${name} must not be negotiated:\n${r.text}`);
    assert.notEqual(r.code, 0, `${name}: s_client fails`);
  }
});

test('TLS 1.2 and TLS 1.3 are accepted with a verified certificate and AEAD suites', async () => {
  const v12 = await sClient(server.port, ['-tls1_2', '-verify_return_error']);
  assert.equal(v12.code, 0, v12.text);
  assert.equal(v12.protocol, 'TLSv1.2', v12.text);
  assert.equal(v12.verified, true, 'certificate verified against tls/cert.pem');
  assert.match(v12.cipher, /GCM|CHACHA20/, `TLS 1.2 AEAD cipher, got ${v12.cipher}`);

  const v13 = await sClient(server.port, ['-tls1_3', '-verify_return_error']);
  assert.equal(v13.code, 0, v13.text);
  assert.equal(v13.protocol, 'TLSv1.3', v13.text);
  assert.equal(v13.verified, true, 'certificate verified against tls/cert.pem');

  // With no version pinned, 1.3 is preferred.
  const any = await sClient(server.port, []);
  assert.equal(any.protocol, 'TLSv1.3', any.text);
});

test('TLS 1.2 with only CBC (non-AEAD) suites offered: refused', async () => {
  const r = await sClient(server.port, ['-tls1_2', '-cipher',
    'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384']);
  assert.equal(r.protocol, null, `a CBC suite must not be negotiated:\n${r.text}`);
  assert.notEqual(r.code, 0);
});

test('TLS 1.2: client-initiated renegotiation is refused', async () => {
  // s_client renegotiates when it reads "R" on a line of stdin.
  const r = await new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${server.port}`, '-tls1_2',
      '-servername', 'localhost', '-CAfile', certFile], { stdio: ['pipe', 'pipe', 'pipe'] });
    let text = '';
    child.stdin.on('error', () => {});  // s_client may exit before we are done writing
    child.stdout.on('data', (b) => { text += b; });
    child.stderr.on('data', (b) => { text += b; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    let sent = false;
    child.stdout.on('data', () => {
      if (!sent && /Verify return code/.test(text)) {
        sent = true;
        child.stdin.write('R\n');
        // After a refused renegotiation there is nothing more to do; a successful one is
        // followed by a request that must then be answered.
        setTimeout(() => {
          if (!child.stdin.destroyed) child.stdin.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
        }, 1000);
        setTimeout(() => child.stdin.end(), 3000);
      }
    });
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, text }); });
  });
  assert.match(r.text, /RENEGOTIATING/, r.text);
  assert.ok(!/HTTP\/1\.[01] 200/.test(r.text), `renegotiation must not succeed:\n${r.text}`);
});

test('curl with the server certificate as CA, TLS 1.2 pinned, reaches /healthz', async () => {
  const r = await run('curl', ['--silent', '--show-error', '--cacert', certFile, '--tlsv1.2', '--tls-max', '1.2',
    '--write-out', '\n%{http_code} %{ssl_verify_result}', `https://127.0.0.1:${server.port}/healthz`]);
  assert.equal(r.code, 0, r.stderr);
  const [body, status] = r.stdout.split('\n');
  assert.deepEqual(JSON.parse(body), { status: 'ok' });
  assert.equal(status, '200 0');

  // By name too: the certificate names localhost.
  const byName = await run('curl', ['--silent', '--show-error', '--cacert', certFile,
    '--resolve', `localhost:${server.port}:127.0.0.1`, '--write-out', '%{http_code}', '--output', '/dev/null',
    `https://localhost:${server.port}/healthz`]);
  assert.equal(byName.code, 0, byName.stderr);
  assert.equal(byName.stdout, '200');

  // Without the CA, curl refuses the self-signed certificate (exit 60).
  const noCa = await run('curl', ['--silent', '--output', '/dev/null', `https://127.0.0.1:${server.port}/healthz`]);
  assert.equal(noCa.code, 60);
});

test('no plaintext HTTP on the port', async () => {
  const r = await run('curl', ['--silent', '--max-time', '10', '--output', '/dev/null', '--write-out', '%{http_code}',
    `http://127.0.0.1:${server.port}/healthz`]);
  assert.notEqual(r.code, 0, 'curl over http:// must fail');
  assert.equal(r.stdout, '000');

  // Raw: a plaintext request gets no HTTP response (at most a TLS alert), and the
  // connection is closed.
  const got = await new Promise((resolve, reject) => {
    const s = net.connect(server.port, '127.0.0.1', () => {
      s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    });
    const chunks = [];
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => {});
    const timer = setTimeout(() => { s.destroy(); reject(new Error('plaintext connection left open for 15 s')); }, 15_000);
    s.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks)); });
  });
  assert.ok(!got.toString('latin1').includes('HTTP/1.'), `plaintext answer: ${got.toString('latin1')}`);
  assert.ok(!got.toString('latin1').includes('"status"'), 'no health body in the clear');

  // The server still serves TLS afterwards.
  assert.equal((await server.request('GET', '/healthz')).status, 200);
});

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function waitForPort(port) {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`port ${port} never opened`);
}
