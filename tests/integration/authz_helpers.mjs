// Helpers shared by the authorization end-to-end tests (issue 4 §8, authz_*.test.mjs):
// access tokens crafted with the server's own signing key carrying exactly the claims a
// case needs (roles, scopes, fhirUser, patient, purpose_of_use, amr, auth_time), minimal
// valid resource bodies of the types the tests use, and the assertions of a denial.
//
// Why crafted tokens: the built-in authorization server issues person tokens only after an
// interactive login with TOTP, and system tokens only with the roles and scopes of the
// client record. Authorization is decided from the verified token (auth/principal.h), so
// a token signed with the server's key (keys/token-signing.pem, the key the JWKS
// publishes) is exactly what the policy stage sees after a real login. Person tokens name
// an existing enabled user (the session guard checks it) and an auth_time after the
// user's creation.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { bearer, assertOutcome } from './harness.mjs';

function b64url(obj) { return Buffer.from(JSON.stringify(obj)).toString('base64url'); }

export function nowS() { return Math.floor(Date.now() / 1000); }

// Signs an ES256 compact JWS (r||s signature, RFC 7518 §3.4).
export function signJwt(header, payload, privateKey) {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const sig = crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

// Mints access tokens for `server` with its signing key.
export class TokenMint {
  static async create(server) {
    const key = crypto.createPrivateKey(
      fs.readFileSync(path.join(server.dataDir, 'keys', 'token-signing.pem')));
    const res = await server.request('GET', '/oauth2/jwks');
    assert.equal(res.status, 200, `GET /oauth2/jwks: ${res.body}`);
    return new TokenMint(server, key, res.json().keys[0].kid);
  }

  constructor(server, key, kid) {
    this.server = server;
    this.key = key;
    this.header = { alg: 'ES256', typ: 'at+jwt', kid };
  }

  // The claims of every token; `extra` adds or overrides (undefined values are dropped).
  claims(extra) {
    const now = nowS();
    const c = {
      iss: this.server.origin,
      aud: `${this.server.origin}/fhir`,
      jti: crypto.randomBytes(16).toString('hex'),
      iat: now,
      exp: now + 600,
      ...extra,
    };
    for (const k of Object.keys(c)) if (c[k] === undefined) delete c[k];
    return c;
  }

  // A system (client) token: sub == client_id.
  system({ clientId, roles, scope = 'system/*.cruds', purpose, patient, ttl } = {}) {
    const extra = { sub: clientId, client_id: clientId, scope, roles, purpose_of_use: purpose, patient };
    if (ttl !== undefined) extra.exp = nowS() + ttl;
    return signJwt(this.header, this.claims(extra), this.key);
  }

  // A person token: sub = the user's id, MFA (pwd + otp), auth_time now unless given.
  person({ userId, clientId, roles, scope = 'user/*.cruds', fhirUser, patient, purpose,
    authTime = nowS(), amr = ['pwd', 'otp'] } = {}) {
    return signJwt(this.header, this.claims({
      sub: userId,
      client_id: clientId,
      scope,
      roles,
      amr,
      auth_time: authTime,
      fhirUser,
      patient,
      purpose_of_use: purpose,
    }), this.key);
  }
}

// Request helpers for one server and token.
export function fhirApi(server) {
  const json = { 'content-type': 'application/fhir+json' };
  return {
    get: (target, token, headers = {}) =>
      server.request('GET', target, { headers: { ...bearer(token), ...headers } }),
    post: (target, token, body, headers = {}) =>
      server.request('POST', target, { headers: { ...bearer(token), ...json, ...headers }, body }),
    put: (target, token, body, headers = {}) =>
      server.request('PUT', target, { headers: { ...bearer(token), ...json, ...headers }, body }),
    del: (target, token, headers = {}) =>
      server.request('DELETE', target, { headers: { ...bearer(token), ...headers } }),
  };
}

// Asserts a denial (status + OperationOutcome issue code) whose body carries none of
// `secrets` (marker strings planted in the resources). Returns the outcome.
export function assertDenied(res, status, code, secrets = [], what = '') {
  const oo = assertOutcome(assert, res, status, code);
  for (const s of secrets) {
    assert.ok(!res.body.includes(s), `${what}: the ${status} body reveals resource content (${s}): ${res.body}`);
  }
  return oo;
}

// The text of issue[0] (diagnostics, else details.text).
export function issueText(res) {
  const oo = JSON.parse(res.body);
  return oo.issue?.[0]?.diagnostics ?? oo.issue?.[0]?.details?.text ?? '';
}

// Minimal valid R4 bodies. `patientId` is the Patient whose compartment the resource
// belongs to (through the reference the R4 Patient CompartmentDefinition names for the
// type); `marker` is planted in an element the tests can look for.
export function resourceBody(type, { patientId, marker = 'marker', practitionerId, coverageId } = {}) {
  const subject = patientId ? { reference: `Patient/${patientId}` } : undefined;
  switch (type) {
    case 'Patient':
      return { resourceType: 'Patient', name: [{ family: marker, given: ['Test'] }], gender: 'female', birthDate: '1970-01-01' };
    case 'Practitioner':
      return { resourceType: 'Practitioner', name: [{ family: marker }] };
    case 'Observation':
      return {
        resourceType: 'Observation', status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '29463-7' }], text: marker },
        subject,
        valueQuantity: { value: 80, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
      };
    case 'Condition':
      return {
        resourceType: 'Condition', subject,
        code: { coding: [{ system: 'http://snomed.info/sct', code: '38341003' }], text: marker },
      };
    case 'Encounter':
      return {
        resourceType: 'Encounter', status: 'finished',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
        subject, serviceType: { text: marker },
      };
    case 'DiagnosticReport':
      return {
        resourceType: 'DiagnosticReport', status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '58410-2' }], text: marker },
        subject,
      };
    case 'Coverage':
      return {
        resourceType: 'Coverage', status: 'active',
        beneficiary: subject ?? { display: 'nobody' },
        payor: [{ display: `Payer ${marker}` }],
      };
    case 'Claim':
      return {
        resourceType: 'Claim', status: 'active',
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
        use: 'claim',
        patient: subject ?? { display: 'nobody' },
        created: '2024-01-01',
        provider: practitionerId ? { reference: `Practitioner/${practitionerId}` } : { display: 'Provider' },
        priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/processpriority', code: 'normal' }] },
        insurance: [{ sequence: 1, focal: true, coverage: coverageId ? { reference: `Coverage/${coverageId}` } : { display: 'Coverage' } }],
        identifier: [{ system: 'urn:test', value: marker }],
      };
    case 'AuditEvent':
      return {
        resourceType: 'AuditEvent',
        type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' },
        recorded: '2024-01-01T00:00:00Z',
        agent: [{ requestor: true, who: { display: marker } }],
        source: { observer: { display: 'test' } },
      };
    default:
      throw new Error(`no body for ${type}`);
  }
}

// JSON.stringify drops undefined members, so bodies can be sent as built.
export function clean(obj) { return JSON.parse(JSON.stringify(obj)); }
