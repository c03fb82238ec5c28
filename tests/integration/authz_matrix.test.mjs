// The authorization matrix (issue 4 §8): every default role (docs/policy.md) × every
// interaction × nine resource types, against the real server with the shipped default
// policy, each cell asserting the exact status (and for denials the OperationOutcome code
// and text, with no resource content in the body).
//
// Statuses of an allowed interaction: read/vread/history 200, create 201, update 200,
// delete 204; search 200 with a searchset Bundle of exactly the resources of the type that
// exist at that point and the role may see (a denied search is 403). The patient role is limited to the compartment of its fhirUser
// (Patient/<seeded patient>): every seeded resource but the Practitioner references that
// patient, so its reads are 200 and the Practitioner (no Patient compartment membership
// in R4) is 404, as if absent; its searches list only what is in that compartment (not
// the victim Patient, no Practitioner).
//
// AuditEvent: the audit trail (issue 5) is written by the server alone, so create, update
// and delete are 405 for every role. The column's read targets an id that is not a record
// (records are numbered): for the auditor, whose role grants read and search, read is 404
// not-found (allowed, then absent) and search a searchset Bundle; every other cell is 403,
// which also shows that a denial is decided before the resource is looked up.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, addClient, addUser } from './harness.mjs';
import { TokenMint, fhirApi, resourceBody, clean, assertDenied, issueText } from './authz_helpers.mjs';

const TYPES = ['Patient', 'Observation', 'Condition', 'Encounter', 'Coverage', 'Claim',
  'AuditEvent', 'Practitioner', 'DiagnosticReport'];
const INTERACTIONS = ['read', 'vread', 'search', 'history-instance', 'history-type', 'create',
  'update', 'delete'];
// The policy file's names, which denial texts use (docs/policy.md, Evaluation).
const POLICY_NAME = {
  read: 'read', vread: 'vread', search: 'search', 'history-instance': 'history',
  'history-type': 'history', create: 'create', update: 'update', delete: 'delete',
};

const ALLOWED = { read: 200, vread: 200, search: 200, 'history-instance': 200,
  'history-type': 200, create: 201, update: 200, delete: 204 };
const DENIED = Object.fromEntries(INTERACTIONS.map((i) => [i, 403]));
// Read-only access (read, vread, search, history), everything else denied.
const READ_ONLY = { ...ALLOWED, create: 403, update: 403, delete: 403 };

// The expected status of every cell.
const EXPECTED = {
  admin: Object.fromEntries(TYPES.map((t) => [t, DENIED])),
  clinician: Object.fromEntries(TYPES.map((t) => [t, t === 'AuditEvent' ? DENIED : ALLOWED])),
  billing: Object.fromEntries(TYPES.map((t) => {
    if (t === 'Patient') return [t, { ...READ_ONLY, update: 200 }];
    if (t === 'Encounter') return [t, READ_ONLY];
    if (t === 'Coverage' || t === 'Claim') return [t, { ...ALLOWED, delete: 403 }];
    return [t, DENIED];
  })),
  auditor: Object.fromEntries(TYPES.map((t) => [t,
    t === 'AuditEvent' ? { ...DENIED, read: 404, search: 200 } : DENIED])),
  patient: Object.fromEntries(TYPES.map((t) => {
    if (t === 'AuditEvent') return [t, DENIED];
    if (t === 'Practitioner') {
      // Outside every Patient compartment: as if absent, except the type history, which
      // simply lists nothing of it.
      return [t, { ...READ_ONLY, read: 404, vread: 404, 'history-instance': 404 }];
    }
    return [t, READ_ONLY];
  })),
};
for (const cells of Object.values(EXPECTED)) {
  cells.AuditEvent = { ...cells.AuditEvent, create: 405, update: 405, delete: 405 };
}

let server;
let api;
let mint;
let client;
let patientId;
let practitionerId;
const tokens = {};
const seeded = {};   // type -> id of the resource every role reads, updates
const victims = {};  // type -> id of a resource the clinician deletes
const markers = [];  // planted in every seeded resource; never in a denial
const live = {};     // type -> Set of the ids that exist now (created, not deleted)

function bodyFor(type, marker) {
  return clean(resourceBody(type, { patientId, marker, practitionerId }));
}

before(async () => {
  server = await startServer();
  api = fhirApi(server);
  mint = await TokenMint.create(server);
  client = await addClient(server.dataDir, { name: 'matrix', roles: 'clinician' });
  const seeder = mint.system({ clientId: client.client_id, roles: ['clinician'] });

  const create = async (type, marker) => {
    markers.push(marker);
    const res = await api.post(`/fhir/${type}`, seeder, bodyFor(type, marker));
    assert.equal(res.status, 201, `seeding ${type}: ${res.body}`);
    (live[type] ??= new Set()).add(res.json().id);
    return res.json().id;
  };
  patientId = await create('Patient', 'MatrixSeedPatient');
  practitionerId = await create('Practitioner', 'MatrixSeedPractitioner');
  seeded.Patient = patientId;
  seeded.Practitioner = practitionerId;
  for (const type of TYPES) {
    if (type === 'AuditEvent') {
      seeded[type] = 'no-such-audit-event';
      victims[type] = 'no-such-audit-event';
      continue;
    }
    if (!seeded[type]) seeded[type] = await create(type, `MatrixSeed${type}`);
    victims[type] = await create(type, `MatrixVictim${type}`);
  }
  // The victim Patient must not be the patient of the compartment.
  assert.notEqual(victims.Patient, patientId);

  const user = await addUser(server.dataDir, { username: 'matrix-patient', roles: 'patient',
    fhirUser: `Patient/${patientId}` });
  tokens.patient = mint.person({ userId: user.user_id, clientId: client.client_id,
    roles: ['patient'], fhirUser: `Patient/${patientId}` });
  for (const role of ['admin', 'clinician', 'billing', 'auditor']) {
    tokens[role] = mint.system({ clientId: client.client_id, roles: [role] });
  }
});

after(async () => {
  if (server) await server.dispose();
});

// Performs one interaction as `role` on `type`.
async function perform(role, type, interaction) {
  const token = tokens[role];
  const id = seeded[type];
  switch (interaction) {
    case 'read': return api.get(`/fhir/${type}/${id}`, token);
    case 'vread': return api.get(`/fhir/${type}/${id}/_history/1`, token);
    case 'search': return api.get(`/fhir/${type}`, token);
    case 'history-instance': return api.get(`/fhir/${type}/${id}/_history`, token);
    case 'history-type': return api.get(`/fhir/${type}/_history`, token);
    case 'create': {
      const marker = `MatrixCreated${role}${type}`;
      markers.push(marker);
      return api.post(`/fhir/${type}`, token, bodyFor(type, marker));
    }
    case 'update':
      // The seeded content again: a role that may update but not write some elements
      // (billing on Patient) changes nothing it may not write.
      return api.put(`/fhir/${type}/${id}`, token,
        { ...bodyFor(type, `MatrixSeed${type}`), id });
    case 'delete': return api.del(`/fhir/${type}/${victims[type]}`, token);
    default: throw new Error(interaction);
  }
}

function expectedDenial(role, type, interaction) {
  if (role === 'admin') return 'no role grants access to protected health information';
  return `no role grants ${POLICY_NAME[interaction]} on ${type}`;
}

for (const role of Object.keys(EXPECTED)) {
  describe(`role ${role}`, () => {
    for (const type of TYPES) {
      for (const interaction of INTERACTIONS) {
        const status = EXPECTED[role][type][interaction];
        test(`${role} ${interaction} ${type} -> ${status}`, async () => {
          const res = await perform(role, type, interaction);
          const what = `${role} ${interaction} ${type}`;
          assert.equal(res.status, status, `${what}: expected ${status}, got ${res.status}: ${res.body}`);
          if (interaction === 'create' && status === 201) live[type].add(res.json().id);
          if (interaction === 'delete' && status === 204) live[type].delete(victims[type]);
          switch (status) {
            case 403:
              assertDenied(res, 403, 'forbidden', [...markers, patientId], what);
              assert.equal(issueText(res), expectedDenial(role, type, interaction), what);
              break;
            case 404:
              assertDenied(res, 404, 'not-found', [...markers, patientId], what);
              assert.equal(issueText(res), 'resource not found', what);
              break;
            case 405:
              assertDenied(res, 405, 'not-supported', markers, what);
              assert.equal(res.headers.allow, 'GET', what);
              assert.equal(issueText(res),
                'the audit trail cannot be created, changed or deleted through the API', what);
              break;
            case 204:
              assert.equal(res.body, '', `${what}: a 204 has no body`);
              break;
            default: {
              const body = res.json();
              if (type === 'AuditEvent') {
                assert.equal(body.resourceType, 'Bundle', what);
                assert.equal(body.type, 'searchset', what);
              } else if (interaction === 'search') {
                assert.equal(body.resourceType, 'Bundle', what);
                assert.equal(body.type, 'searchset', what);
                assert.deepEqual(body.entry?.map((e) => e.search.mode).filter((m) => m !== 'match') ?? [], [], what);
                const ids = (body.entry ?? []).map((e) => e.resource.id).sort();
                // Every seeded and created resource but the Practitioner and the victim
                // Patient references the patient of the compartment.
                const visible = role !== 'patient' ? [...live[type]]
                  : type === 'Practitioner' ? []
                    : type === 'Patient' ? [patientId] : [...live[type]];
                assert.deepEqual(ids, visible.sort(), `${what}: exactly what exists and the role may see`);
                assert.ok(ids.length > 0 || (role === 'patient' && type === 'Practitioner'), `${what}: not empty`);
              } else if (interaction.startsWith('history')) {
                assert.equal(body.resourceType, 'Bundle', what);
                assert.equal(body.type, 'history', what);
                const ids = (body.entry ?? []).map((e) => e.resource?.id);
                if (role === 'patient' && type === 'Practitioner') {
                  assert.deepEqual(ids, [], `${what}: nothing outside the compartment`);
                } else {
                  assert.ok(ids.includes(seeded[type]), `${what}: lists the seeded resource`);
                }
              } else {
                assert.equal(body.resourceType, type, what);
                if (interaction !== 'create') assert.equal(body.id, seeded[type], what);
              }
            }
          }
        });
      }
    }
  });
}

test('the matrix left the data as the table says: clinician deletes happened, nothing else was deleted', async () => {
  const reader = tokens.clinician;
  for (const type of TYPES) {
    if (type === 'AuditEvent') continue;
    const victim = await api.get(`/fhir/${type}/${victims[type]}`, reader);
    assertDenied(victim, 410, 'deleted', [], `${type} victim`);
    const kept = await api.get(`/fhir/${type}/${seeded[type]}`, reader);
    assert.equal(kept.status, 200, `${type} seeded resource: ${kept.body}`);
  }
  // Billing's no-op update of the Patient kept every element (nothing it may not write
  // changed) and made a new version.
  const p = (await api.get(`/fhir/Patient/${patientId}`, reader)).json();
  assert.equal(p.name[0].family, 'MatrixSeedPatient');
  assert.equal(p.meta.versionId, '3', 'clinician and billing each updated the Patient once');
});
