#!/usr/bin/env node
// Search latency client for bench/search_bench.sh (issue 6 §7): runs the sample queries of
// a bench/synth manifest against a phigate server over keep-alive HTTPS and reports p50 and
// p99 per query kind from per-request timings (request written to last body byte).
//
// Kinds (the manifest's samples, cycled in order until N requests were sent):
//   identifier      Patient?identifier=system|value
//   family prefix   Patient?family=prefix&_count=50
//   birthdate range Patient?birthdate=geD&birthdate=ltD&_count=50
//   obs patient+code+date  Observation?subject=Patient/p&code=system|code&date=geT&date=ltT&_count=50
// Every answer is checked against the manifest's expected count (a page holds
// min(expected, 50) entries unless the server ended the page early with a next link), so a
// fast wrong answer is reported, not timed as a success.
//
// Usage: node bench/search_bench.mjs --base https://127.0.0.1:PORT/fhir --ca CERT.pem
//          --client-file CLIENT.json --manifest manifest.json [--requests 1000] [--warmup 50]
//          [--concurrency 1] [--json OUT.json]
// CLIENT.json is `phigate clients add --json` output; a token is taken with the
// client_credentials grant and renewed well before it expires (a slow kind at 1M scale
// can outlast one token).
// Prints a markdown table on stdout. Node >= 20, built-in modules only.
import fs from 'node:fs';
import https from 'node:https';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    base: { type: 'string' },
    ca: { type: 'string' },
    'client-file': { type: 'string' },
    manifest: { type: 'string' },
    requests: { type: 'string', default: '1000' },
    warmup: { type: 'string', default: '50' },
    concurrency: { type: 'string', default: '1' },
    json: { type: 'string' },
  },
});
for (const required of ['base', 'ca', 'client-file', 'manifest']) {
  if (!opts[required]) {
    console.error(`search_bench.mjs: --${required} is required`);
    process.exit(2);
  }
}
const kPage = 50;
const enc = encodeURIComponent;
const base = new URL(opts.base.replace(/\/$/, ''));
const client = JSON.parse(fs.readFileSync(opts['client-file'], 'utf8'));
const manifest = JSON.parse(fs.readFileSync(opts.manifest, 'utf8'));
const requests = Number(opts.requests);
const warmup = Number(opts.warmup);
const concurrency = Number(opts.concurrency);
const ca = fs.readFileSync(opts.ca);
const agent = new https.Agent({ keepAlive: true, maxSockets: concurrency, ca });

// A client_credentials token (RFC 6749 §4.4), renewed after half its lifetime.
let token = '';
let tokenRenewAt = 0;
async function currentToken() {
  if (Date.now() < tokenRenewAt) return token;
  const form = new URLSearchParams({ grant_type: 'client_credentials' }).toString();
  const basic = Buffer.from(`${enc(client.client_id)}:${enc(client.client_secret)}`)
    .toString('base64');
  const answer = await new Promise((resolve, reject) => {
    const req = https.request({
      host: base.hostname, port: base.port, servername: 'localhost', ca, method: 'POST',
      path: '/oauth2/token',
      headers: {
        authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded',
        'content-length': Buffer.byteLength(form),
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(form);
  });
  if (answer.status !== 200) throw new Error(`token endpoint: HTTP ${answer.status}: ${answer.body}`);
  const parsed = JSON.parse(answer.body);
  token = parsed.access_token;
  tokenRenewAt = Date.now() + (parsed.expires_in * 1000) / 2;
  return token;
}

const s = manifest.samples;
const kinds = [
  {
    name: 'identifier',
    queries: s.identifiers.map((q) => ({
      path: `Patient?identifier=${enc(`${q.system}|${q.value}`)}`, expected: q.expected,
    })),
  },
  {
    name: 'family name prefix',
    queries: s.familyPrefixes.map((q) => ({
      path: `Patient?family=${enc(q.prefix)}&_count=${kPage}`, expected: q.expected,
    })),
  },
  {
    name: 'birthdate range',
    queries: s.birthDateRanges.map((q) => ({
      path: `Patient?birthdate=ge${q.ge}&birthdate=lt${q.lt}&_count=${kPage}`, expected: q.expected,
    })),
  },
  {
    name: 'Observation patient+code+date',
    queries: s.observationQueries.map((q) => ({
      path: `Observation?subject=Patient/${q.patient}&code=${enc(`${q.system}|${q.code}`)}` +
        `&date=ge${enc(q.ge)}&date=lt${enc(q.lt)}&_count=${kPage}`,
      expected: q.expected,
    })),
  },
];

function get(path, bearer) {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const req = https.request({
      host: base.hostname, port: base.port, servername: 'localhost', agent,
      path: `${base.pathname}/${path}`, method: 'GET',
      headers: { authorization: `Bearer ${bearer}`, accept: 'application/fhir+json' },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - start) / 1e6;
        resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8'), ms });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

// Whether `bundle` is a right answer to a query with `expected` matches.
function correct(bundle, expected) {
  const entries = (bundle.entry ?? []).length;
  const next = (bundle.link ?? []).some((l) => l.relation === 'next');
  // A page the server ended early (scan budget) has a next link and may hold fewer.
  return next ? entries <= Math.min(expected, kPage) : entries === Math.min(expected, kPage);
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

async function runKind(kind) {
  const timings = [];
  let errors = 0;
  let wrong = 0;
  let short = 0;
  let next = 0;
  const total = warmup + requests;
  const worker = async () => {
    for (;;) {
      const n = next++;
      if (n >= total) return;
      const q = kind.queries[n % kind.queries.length];
      let r;
      try {
        r = await get(q.path, await currentToken());
      } catch (err) {
        errors += 1;
        if (errors <= 3) console.error(`${kind.name}: ${err.message}`);
        continue;
      }
      if (r.status !== 200) {
        errors += 1;
        if (errors <= 3) console.error(`${kind.name}: HTTP ${r.status} for ${q.path}: ${r.body.slice(0, 300)}`);
        continue;
      }
      const bundle = JSON.parse(r.body);
      if (!correct(bundle, q.expected)) {
        wrong += 1;
        if (wrong <= 3) {
          console.error(`${kind.name}: ${(bundle.entry ?? []).length} entries, expected ` +
            `${q.expected}, for ${q.path}`);
        }
      } else if ((bundle.entry ?? []).length < Math.min(q.expected, kPage)) {
        short += 1;  // a right but partial page (the server's scan budget ended it)
      }
      if (n >= warmup) timings.push(r.ms);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  timings.sort((a, b) => a - b);
  return {
    kind: kind.name,
    queries: kind.queries.length,
    requests: timings.length,
    p50_ms: percentile(timings, 50),
    p99_ms: percentile(timings, 99),
    max_ms: timings[timings.length - 1],
    mean_ms: timings.reduce((a, b) => a + b, 0) / Math.max(1, timings.length),
    errors,
    wrong,
    short_pages: short,
  };
}

const results = [];
for (const kind of kinds) {
  if (kind.queries.length === 0) continue;
  results.push(await runKind(kind));
}
agent.destroy();

const f = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
console.log(`| search (${requests} requests each, ${concurrency} keep-alive connection(s)) | ` +
  'p50 ms | p99 ms | max ms | sample queries | wrong | errors |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const r of results) {
  console.log(`| ${r.kind} | ${f(r.p50_ms)} | ${f(r.p99_ms)} | ${f(r.max_ms)} | ${r.queries} | ` +
    `${r.wrong} | ${r.errors} |`);
}
if (opts.json) fs.writeFileSync(opts.json, `${JSON.stringify(results, null, 2)}\n`);
process.exit(results.some((r) => r.errors > 0 || r.wrong > 0) ? 1 : 0);
