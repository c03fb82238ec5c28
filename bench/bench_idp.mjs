// A minimal OpenID provider for bench/auth_bench.sh: serves discovery and a JWKS (one
// RS256 and one ES256 key) over HTTPS on 127.0.0.1, and writes one system access token per
// algorithm (RFC 9068 at+jwt) for the audience given. Runs until killed.
// Usage: node bench/bench_idp.mjs WORKDIR AUDIENCE
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { SignJWT, exportJWK } from 'jose';

const [work, audience] = process.argv.slice(2);
const key = path.join(work, 'idp-key.pem');
const cert = path.join(work, 'idp-cert.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
  '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1',
  '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });

const keys = {
  RS256: crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }),
  ES256: crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }),
};
const jwks = { keys: [] };
for (const [alg, pair] of Object.entries(keys)) {
  jwks.keys.push({ ...(await exportJWK(pair.publicKey)), kid: `bench-${alg}`, alg, use: 'sig' });
}

let issuer = '';
const server = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) },
  (req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/openid-configuration') {
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    } else if (req.url === '/jwks') {
      res.end(JSON.stringify(jwks));
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
server.listen(0, '127.0.0.1', async () => {
  issuer = `https://127.0.0.1:${server.address().port}`;
  for (const [alg, pair] of Object.entries(keys)) {
    const token = await new SignJWT({ scope: 'system/*.rs', client_id: 'bench' })
      .setProtectedHeader({ alg, kid: `bench-${alg}`, typ: 'at+jwt' })
      .setIssuer(issuer).setAudience(audience).setSubject('bench')
      .setIssuedAt().setExpirationTime('2h').setJti(crypto.randomUUID())
      .sign(pair.privateKey);
    fs.writeFileSync(path.join(work, `token-${alg}`), token);
  }
  fs.writeFileSync(path.join(work, 'idp-issuer'), issuer);
});
