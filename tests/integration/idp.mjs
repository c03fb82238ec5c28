// OpenID providers for the tests of phigate as a resource server ([[auth.oidc]]):
//   - startOidcProvider(): the real oidc-provider (v9) over HTTPS on 127.0.0.1 port 0, with
//     resource indicators (RFC 8707) so that a token for phigate's audience is a JWT access
//     token (RFC 9068), and the client credentials grant;
//   - startFakeIssuer(): a minimal discovery + JWKS server whose keys the test holds, to sign
//     tokens oidc-provider would not mint (a person's token without a second factor).
// Each provider has its own certificate, made with the openssl CLI, that phigate is told to
// trust through ca_file; nothing turns certificate verification off.

import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { promisify } from 'node:util';
import { undiciAgent } from './harness.mjs';

const run = promisify(execFile);

// A self-signed certificate for 127.0.0.1 (SAN IP:127.0.0.1), valid one day, written to
// <dir>/<name>-cert.pem and <name>-key.pem. Resolves {certFile, keyFile, cert, key}.
export async function makeCertificate(dir, name = 'idp') {
  const keyFile = path.join(dir, `${name}-key.pem`);
  const certFile = path.join(dir, `${name}-cert.pem`);
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,digitalSignature,keyCertSign']);
  return { certFile, keyFile, cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) };
}

// A signing key pair as JWKs: {privateJwk, publicJwk, privateKey, publicKey, kid, alg}.
export function signingKey(alg, kid = `${alg.toLowerCase()}-${crypto.randomBytes(6).toString('hex')}`) {
  const pair = alg.startsWith('RS')
    ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    : alg === 'ES256' ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'EdDSA' ? crypto.generateKeyPairSync('ed25519') : null;
  if (!pair) throw new Error(`no key type for ${alg}`);
  const meta = { kid, alg, use: 'sig' };
  return {
    privateJwk: { ...pair.privateKey.export({ format: 'jwk' }), ...meta },
    publicJwk: { ...pair.publicKey.export({ format: 'jwk' }), ...meta },
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    kid,
    alg,
  };
}

// An HTTPS listener on 127.0.0.1:0 that counts connections and requests and can be
// closed with every open connection.
async function listen(cert, key, handler) {
  const sockets = new Set();
  const stats = { connections: 0, requests: [] };
  const server = https.createServer({ cert, key }, (req, res) => {
    stats.requests.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  server.on('connection', (s) => {
    stats.connections += 1;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const close = async () => {
    const closed = new Promise((r) => server.close(() => r()));
    for (const s of sockets) s.destroy();
    await closed;
  };
  return { server, port: server.address().port, stats, close };
}

// Starts oidc-provider. Options:
//   dir:        a temp dir for the certificate;
//   alg:        the JWS algorithm of the access tokens (RS256, ES256);
//   resources:  {<resource indicator>: <scope string>} the provider issues JWTs for;
//   clients:    oidc-provider client metadata; default one client_secret_basic client
//               allowed the client credentials grant and the scope of every resource;
//   roles:      the `roles` claim of every access token (phigate denies by default, so
//               the provider grants its clients a role; [] for none).
// Resolves {issuer, caFile, ca, clients, keys, port, stats, fetch, stop()}.
export async function startOidcProvider({ dir, alg = 'RS256', resources, clients, roles = ['clinician'] } = {}) {
  const { default: Provider, errors } = await import('oidc-provider');
  const { certFile, cert, key } = await makeCertificate(dir, `oidc-${alg.toLowerCase()}`);
  let callback = (req, res) => { res.statusCode = 503; res.end(); };
  const listener = await listen(cert, key, (req, res) => callback(req, res));
  const issuer = `https://127.0.0.1:${listener.port}`;

  const signing = signingKey(alg);
  // oidc-provider signs ID tokens with RS256 by default and refuses to start without an
  // RS256 key; the access tokens use `alg` (the resource server's jwt.sign.alg).
  const keys = alg === 'RS256' ? [signing] : [signingKey('RS256'), signing];
  const allScopes = [...new Set(Object.values(resources).flatMap((s) => s.split(' ')))].join(' ');
  const clientList = clients ?? [{
    client_id: `phigate-it-${alg.toLowerCase()}`,
    client_secret: crypto.randomBytes(32).toString('base64url'),
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: allScopes,
  }];

  const provider = new Provider(issuer, {
    clients: clientList,
    jwks: { keys: keys.map((k) => k.privateJwk) },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    scopes: ['openid', ...allScopes.split(' ')],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator) => {
          const scope = resources[resourceIndicator];
          if (scope === undefined) throw new errors.InvalidTarget();
          return {
            scope,
            audience: resourceIndicator,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          };
        },
      },
    },
    ttl: { ClientCredentials: 300 },
    extraTokenClaims: async () => (roles.length ? { roles } : undefined),
  });
  callback = provider.callback();

  const dispatcher = await undiciAgent({ ca: cert });
  const fetchWithCa = (url, options) => fetch(url, { ...options, dispatcher });
  return {
    issuer,
    caFile: certFile,
    ca: cert,
    clients: clientList,
    keys,
    signing,
    port: listener.port,
    stats: listener.stats,
    provider,
    fetch: fetchWithCa,
    async stop() {
      await listener.close();
      await dispatcher.destroy().catch(() => {});
    },
  };
}

// A provider made of a discovery document and a JWKS only, for tokens the test signs
// itself. Resolves {issuer, caFile, key (signingKey), stats, sign(header, payload), stop()}.
export async function startFakeIssuer({ dir, alg = 'ES256' } = {}) {
  const { certFile, cert, key } = await makeCertificate(dir, `fake-${alg.toLowerCase()}`);
  const signing = signingKey(alg);
  let issuer;
  const listener = await listen(cert, key, (req, res) => {
    const send = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === '/.well-known/openid-configuration') {
      send(200, {
        issuer,
        jwks_uri: `${issuer}/jwks`,
        token_endpoint: `${issuer}/token`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: [alg],
      });
    } else if (req.method === 'GET' && req.url === '/jwks') {
      send(200, { keys: [signing.publicJwk] });
    } else {
      send(404, { error: 'not_found' });
    }
  });
  issuer = `https://127.0.0.1:${listener.port}`;
  return {
    issuer,
    caFile: certFile,
    ca: cert,
    key: signing,
    stats: listener.stats,
    async stop() { await listener.close(); },
  };
}

// TOML for one [[auth.oidc]] table; values are TOML basic strings (JSON string syntax is a
// subset for the characters used here).
export function oidcToml({ issuer, audience, caFile, extra = {} }) {
  const lines = ['[[auth.oidc]]', `issuer = ${JSON.stringify(issuer)}`,
    `audience = ${JSON.stringify(audience)}`, `ca_file = ${JSON.stringify(caFile)}`];
  for (const [k, v] of Object.entries(extra)) lines.push(`${k} = ${JSON.stringify(v)}`);
  return `${lines.join('\n')}\n`;
}

export async function removeDir(dir) {
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
}
