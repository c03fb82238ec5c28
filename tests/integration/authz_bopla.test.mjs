// Broken object property level authorization (OWASP API3:2023; issue 4 §3, §8): the billing
// role sees of a Patient only the demographics needed for claims (identifier, name,
// telecom, gender, birthDate, address), through read, vread and history alike, tagged
// SUBSETTED and without the narrative; it never receives an Observation; writing an
// element it may not write is 403 naming it; its update keeps what it cannot see; a
// search by a hidden element is 403. Then the client narrowing parameters _elements and
// _summary (search.html#elements, #summary) on a clinician's read.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, addClient } from './harness.mjs';
import { TokenMint, fhirApi, resourceBody, clean, assertDenied, issueText } from './authz_helpers.mjs';

const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' };
const BILLING_PATIENT = ['address', 'birthDate', 'gender', 'id', 'identifier', 'meta', 'name',
  'resourceType', 'telecom'];
// Clinical content of the Patient billing must never receive.
const HIDDEN_MARKERS = ['Dr Hidden GP', 'MaritalMarker', 'NarrativeMarker', 'ExtensionMarker',
  'ContactMarker'];

let server;
let api;
let clinician;
let billing;
let patientId;
let practitionerId;
let observationId;
let encounterId;

function fullPatient(extra = {}) {
  return {
    resourceType: 'Patient',
    text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">NarrativeMarker</div>' },
    extension: [{ url: 'http://example.org/fhir/StructureDefinition/note', valueString: 'ExtensionMarker' }],
    identifier: [{ system: 'urn:oid:2.16.840.1.113883.4.1', value: '123-45-6789' }],
    active: true,
    name: [{ family: 'Ledger', given: ['Lena'] }],
    telecom: [{ system: 'phone', value: '555-0100' }],
    gender: 'female',
    birthDate: '1980-05-06',
    address: [{ line: ['1 Old Street'], city: 'Springfield' }],
    maritalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'M' }], text: 'MaritalMarker' },
    contact: [{ name: { family: 'ContactMarker' } }],
    generalPractitioner: [{ reference: `Practitioner/${practitionerId}`, display: 'Dr Hidden GP' }],
    ...extra,
  };
}

function hasSubsetted(resource) {
  return (resource.meta?.tag ?? []).some((t) => t.system === SUBSETTED.system && t.code === SUBSETTED.code);
}

// Asserts that `resource` is the billing view of the seeded Patient.
function assertBillingView(resource, what) {
  assert.deepEqual(Object.keys(resource).sort(), BILLING_PATIENT, `${what}: only the billing elements`);
  assert.ok(hasSubsetted(resource), `${what}: meta.tag carries SUBSETTED`);
  assert.equal(resource.text, undefined, `${what}: no narrative`);
  const text = JSON.stringify(resource);
  for (const m of HIDDEN_MARKERS) assert.ok(!text.includes(m), `${what}: reveals ${m}`);
}

before(async () => {
  server = await startServer();
  api = fhirApi(server);
  const mint = await TokenMint.create(server);
  const client = await addClient(server.dataDir, { name: 'bopla', roles: 'clinician' });
  clinician = mint.system({ clientId: client.client_id, roles: ['clinician'] });
  billing = mint.system({ clientId: client.client_id, roles: ['billing'] });
  practitionerId = (await api.post('/fhir/Practitioner', clinician, resourceBody('Practitioner', { marker: 'Gp' }))).json().id;
  const p = await api.post('/fhir/Patient', clinician, fullPatient());
  assert.equal(p.status, 201, p.body);
  patientId = p.json().id;
  const o = await api.post('/fhir/Observation', clinician, clean(resourceBody('Observation', { patientId, marker: 'ObservationMarker' })));
  assert.equal(o.status, 201, o.body);
  observationId = o.json().id;
  const e = await api.post('/fhir/Encounter', clinician, {
    ...clean(resourceBody('Encounter', { patientId, marker: 'EncounterServiceMarker' })),
    period: { start: '2024-01-01T10:00:00Z' },
    reasonCode: [{ text: 'EncounterReasonMarker' }],
  });
  assert.equal(e.status, 201, e.body);
  encounterId = e.json().id;
});

after(async () => {
  if (server) await server.dispose();
});

test('billing reads a Patient: only the claim demographics, SUBSETTED, no narrative', async () => {
  const res = await api.get(`/fhir/Patient/${patientId}`, billing);
  assert.equal(res.status, 200, res.body);
  const r = res.json();
  assertBillingView(r, 'read');
  assert.deepEqual(r.name, [{ family: 'Ledger', given: ['Lena'] }]);
  assert.deepEqual(r.address, [{ line: ['1 Old Street'], city: 'Springfield' }]);
  // The clinician sees everything, untagged.
  const full = (await api.get(`/fhir/Patient/${patientId}`, clinician)).json();
  assert.equal(hasSubsetted(full), false);
  assert.equal(full.maritalStatus.text, 'MaritalMarker');
  assert.ok(full.text.div.includes('NarrativeMarker'));
});

test('billing: the same view through vread, instance history and type history', async () => {
  const v = await api.get(`/fhir/Patient/${patientId}/_history/1`, billing);
  assert.equal(v.status, 200, v.body);
  assertBillingView(v.json(), 'vread');
  for (const target of [`/fhir/Patient/${patientId}/_history`, '/fhir/Patient/_history']) {
    const h = await api.get(target, billing);
    assert.equal(h.status, 200, h.body);
    const entries = h.json().entry.filter((e) => e.resource?.id === patientId);
    assert.ok(entries.length >= 1, `${target}: lists the Patient`);
    for (const e of entries) assertBillingView(e.resource, target);
    for (const m of HIDDEN_MARKERS) assert.ok(!h.body.includes(m), `${target} reveals ${m}`);
  }
});

test('billing: Encounter limited to status, class, type, period, serviceProvider', async () => {
  const res = await api.get(`/fhir/Encounter/${encounterId}`, billing);
  assert.equal(res.status, 200, res.body);
  const r = res.json();
  assert.deepEqual(Object.keys(r).sort(), ['class', 'id', 'meta', 'period', 'resourceType', 'status']);
  assert.ok(hasSubsetted(r));
  assert.ok(!res.body.includes('EncounterReasonMarker') && !res.body.includes(patientId), 'no reason, no subject');
});

test('billing never receives an Observation: read, vread, history → 403', async () => {
  for (const target of [`/fhir/Observation/${observationId}`, `/fhir/Observation/${observationId}/_history/1`,
    `/fhir/Observation/${observationId}/_history`, '/fhir/Observation/_history', '/fhir/Observation']) {
    const res = await api.get(target, billing);
    assertDenied(res, 403, 'forbidden', ['ObservationMarker', '29463-7'], target);
  }
  assert.equal(issueText(await api.get(`/fhir/Observation/${observationId}`, billing)),
    'no role grants read on Observation');
});

test('billing writing an element it may not write: 403 naming it, nothing changes', async () => {
  const before_ = (await api.get(`/fhir/Patient/${patientId}`, clinician)).json();
  // Changing the name (visible, not writable for billing).
  const view = (await api.get(`/fhir/Patient/${patientId}`, billing)).json();
  const renamed = await api.put(`/fhir/Patient/${patientId}`, billing, { ...view, name: [{ family: 'Changed' }] });
  assertDenied(renamed, 403, 'forbidden', HIDDEN_MARKERS);
  assert.equal(issueText(renamed), 'writing Patient.name is not permitted for this role');
  // Sending a hidden element (one billing cannot see) is no way around it either: the
  // stored value is kept (PreserveHidden), so the update changes nothing.
  const sneaky = await api.put(`/fhir/Patient/${patientId}`, billing,
    { ...view, maritalStatus: { text: 'Overwritten' } });
  assert.equal(sneaky.status, 200, sneaky.body);
  assert.ok(!sneaky.body.includes('Overwritten') && !sneaky.body.includes('MaritalMarker'));
  // Creating a Patient: billing has no create grant.
  assertDenied(await api.post('/fhir/Patient', billing, { resourceType: 'Patient', name: [{ family: 'New' }] }), 403, 'forbidden');
  const after_ = (await api.get(`/fhir/Patient/${patientId}`, clinician)).json();
  assert.deepEqual(after_.name, before_.name);
  assert.deepEqual(after_.maritalStatus, before_.maritalStatus, 'a hidden element cannot be overwritten');
});

test('billing update of the address, hidden elements omitted: 200, hidden elements intact', async () => {
  const newAddress = [{ line: ['2 New Road'], city: 'Shelbyville' }];
  // What billing sends: only elements it knows of (as a claims system would).
  const res = await api.put(`/fhir/Patient/${patientId}`, billing, {
    resourceType: 'Patient', id: patientId,
    identifier: [{ system: 'urn:oid:2.16.840.1.113883.4.1', value: '123-45-6789' }],
    name: [{ family: 'Ledger', given: ['Lena'] }],
    telecom: [{ system: 'phone', value: '555-0100' }],
    gender: 'female', birthDate: '1980-05-06',
    address: newAddress,
  });
  assert.equal(res.status, 200, res.body);
  assertBillingView(res.json(), 'update response');
  assert.deepEqual(res.json().address, newAddress);

  const full = (await api.get(`/fhir/Patient/${patientId}`, clinician)).json();
  assert.deepEqual(full.address, newAddress, 'the new address');
  const original = fullPatient();
  for (const k of ['maritalStatus', 'generalPractitioner', 'contact', 'extension', 'text', 'active']) {
    assert.deepEqual(full[k], original[k], `${k} is preserved`);
  }
  assert.equal(hasSubsetted(full), false, 'the stored resource is complete, not SUBSETTED');

  // Echoing back a SUBSETTED read with a new phone number: also fine, and still complete.
  const view = (await api.get(`/fhir/Patient/${patientId}`, billing)).json();
  const echoed = await api.put(`/fhir/Patient/${patientId}`, billing, { ...view, telecom: [{ system: 'phone', value: '555-0199' }] });
  assert.equal(echoed.status, 200, echoed.body);
  const full2 = (await api.get(`/fhir/Patient/${patientId}`, clinician)).json();
  assert.deepEqual(full2.telecom, [{ system: 'phone', value: '555-0199' }]);
  assert.deepEqual(full2.maritalStatus, original.maritalStatus);
  assert.deepEqual(full2.generalPractitioner, original.generalPractitioner);
  assert.equal(hasSubsetted(full2), false, 'an echoed SUBSETTED tag is not stored');
});

// The ids of a searchset's entries of search mode `mode`.
function idsOf(res, mode = 'match') {
  assert.equal(res.status, 200, res.body);
  const b = res.json();
  assert.equal(b.resourceType, 'Bundle');
  assert.equal(b.type, 'searchset');
  return (b.entry ?? []).filter((e) => e.search.mode === mode).map((e) => `${e.resource.resourceType}/${e.resource.id}`);
}

test('search by a hidden element: 403 naming it; by a visible one: the matches, in the billing view', async () => {
  for (const [param, element] of [['general-practitioner', 'generalPractitioner'], ['organization', 'managingOrganization']]) {
    const res = await api.get(`/fhir/Patient?${param}=Practitioner/${practitionerId}`, billing);
    assertDenied(res, 403, 'forbidden', HIDDEN_MARKERS, param);
    assert.equal(issueText(res),
      `searching by ${param} is not permitted: it reads Patient.${element}, which this role may not see`);
    assert.ok(!res.body.includes(practitionerId), 'the search value is not echoed');
  }
  // Sorting or testing presence by a hidden element reads it too.
  for (const q of ['_sort=general-practitioner', 'general-practitioner:missing=false']) {
    const res = await api.get(`/fhir/Patient?${q}`, billing);
    assertDenied(res, 403, 'forbidden', HIDDEN_MARKERS, q);
    assert.equal(issueText(res),
      'searching by general-practitioner is not permitted: it reads Patient.generalPractitioner, which this role may not see');
  }
  // The current address (billing changed it above): a search finds the current version only.
  const city = (await api.get(`/fhir/Patient/${patientId}`, clinician)).json().address[0].city;
  assert.notEqual(city, 'Springfield');
  const P = `Patient/${patientId}`;
  for (const [q, want] of [
    ['name=Ledger', [P]], ['name=lena', [P]], ['family:exact=Ledger', [P]], ['name=Nobody', []],
    ['birthdate=1980-05-06', [P]], ['birthdate=1980-05-07', []],
    [`address-city=${city}`, [P]], ['address-city=Springfield', []],
    ['identifier=urn:oid:2.16.840.1.113883.4.1|123-45-6789', [P]], ['gender=female', [P]],
  ]) {
    const res = await api.get(`/fhir/Patient?${q}`, billing);
    assert.deepEqual(idsOf(res), want, q);
    for (const e of res.json().entry ?? []) assertBillingView(e.resource, `search ${q}`);
    for (const m of HIDDEN_MARKERS) assert.ok(!res.body.includes(m), `${q} reveals ${m}`);
  }
  // The clinician may search by it: the Patient, whole.
  const gp = await api.get(`/fhir/Patient?general-practitioner=Practitioner/${practitionerId}`, clinician);
  assert.deepEqual(idsOf(gp), [P]);
  const full = gp.json().entry[0].resource;
  assert.equal(full.generalPractitioner[0].display, 'Dr Hidden GP');
  assert.equal(hasSubsetted(full), false);
  assert.deepEqual(idsOf(await api.get(`/fhir/Patient?general-practitioner=${practitionerId}`, clinician)), [P]);
  assert.deepEqual(idsOf(await api.get('/fhir/Patient?general-practitioner=x', clinician)), []);
});

// _include and _revinclude (search.html#include): each included resource is authorized and
// shaped as a read of its own type would be, and following an element is reading it.
let claimId;  // a Claim of the Patient, provider the Practitioner
async function seededClaim() {
  if (!claimId) {
    const claim = await api.post('/fhir/Claim', clinician,
      clean(resourceBody('Claim', { patientId, marker: 'ClaimMarker', practitionerId })));
    assert.equal(claim.status, 201, claim.body);
    claimId = claim.json().id;
  }
  return claimId;
}
const included = (res) => res.json().entry.find((e) => e.search.mode === 'include').resource;

test('_include / _revinclude along a hidden element: 403 naming it, as a search by it is', async () => {
  for (const [q, param, element] of [
    ['/fhir/Patient?_include=Patient:general-practitioner', 'general-practitioner', 'Patient.generalPractitioner'],
    ['/fhir/Encounter?_include=Encounter:subject', 'subject', 'Encounter.subject'],
    ['/fhir/Patient?_revinclude=Encounter:subject', 'subject', 'Encounter.subject'],
  ]) {
    const res = await api.get(q, billing);
    assertDenied(res, 403, 'forbidden', [...HIDDEN_MARKERS, 'Gp', practitionerId, encounterId], q);
    assert.equal(issueText(res),
      `searching by ${param} is not permitted: it reads ${element}, which this role may not see`, q);
  }
});

test('_include / _revinclude of a type the role may not read: left out, as if nothing pointed to it', async () => {
  // As $everything leaves out the types the caller may not search.
  const obs = await api.get('/fhir/Patient?_revinclude=Observation:subject', billing);
  assert.deepEqual(idsOf(obs), [`Patient/${patientId}`]);
  assert.deepEqual(idsOf(obs, 'include'), [], 'billing never receives an Observation');
  assert.ok(!obs.body.includes(observationId) && !obs.body.includes('ObservationMarker'));
  const claim = await seededClaim();
  const prov = await api.get('/fhir/Claim?_include=Claim:provider', billing);
  assert.deepEqual(idsOf(prov), [`Claim/${claim}`]);
  assert.deepEqual(idsOf(prov, 'include'), [], 'nor a Practitioner');
  assert.ok(!JSON.stringify(prov.json().entry.filter((e) => e.search.mode === 'include')).includes('Gp'));
});

test('an included resource is the role\'s view of its own type, whatever the type searched', async () => {
  const claim = await seededClaim();
  const pat = await api.get('/fhir/Claim?_include=Claim:patient', billing);
  assert.deepEqual(idsOf(pat, 'include'), [`Patient/${patientId}`]);
  assertBillingView(included(pat), 'included Patient');
  assert.deepEqual(included(pat).name, [{ family: 'Ledger', given: ['Lena'] }]);
  // A Claim has no element policy for billing: whole, without the narrative.
  const rev = await api.get(`/fhir/Patient?_id=${patientId}&_revinclude=Claim:patient`, billing);
  assert.deepEqual(idsOf(rev, 'include'), [`Claim/${claim}`]);
  assert.equal(included(rev).patient.reference, `Patient/${patientId}`);
  assert.equal(included(rev).provider.reference, `Practitioner/${practitionerId}`);
  assert.equal(hasSubsetted(included(rev)), false);

  // The clinician sees the included resources whole.
  const inc = await api.get('/fhir/Patient?_include=Patient:general-practitioner', clinician);
  assert.deepEqual(idsOf(inc, 'include'), [`Practitioner/${practitionerId}`]);
  assert.deepEqual(included(inc).name, [{ family: 'Gp' }]);
  const revObs = await api.get(`/fhir/Patient?_id=${patientId}&_revinclude=Observation:subject`, clinician);
  assert.deepEqual(idsOf(revObs, 'include'), [`Observation/${observationId}`]);
  assert.equal(included(revObs).code.text, 'ObservationMarker');
});

test('_elements and _summary narrow a clinician\'s read as FHIR says', async () => {
  const get = (q) => api.get(`/fhir/Patient/${patientId}?${q}`, clinician);
  const keys = (r) => Object.keys(r).sort();

  const el = (await get('_elements=name')).json();
  assert.deepEqual(keys(el), ['id', 'meta', 'name', 'resourceType']);
  assert.ok(hasSubsetted(el));

  const el2 = (await get('_elements=name,birthDate')).json();
  assert.deepEqual(keys(el2), ['birthDate', 'id', 'meta', 'name', 'resourceType']);

  // _summary=true: the isSummary elements of R4 Patient (identifier, active, name, telecom,
  // gender, birthDate, deceased[x], address, managingOrganization, link).
  const sum = (await get('_summary=true')).json();
  assert.deepEqual(keys(sum), ['active', 'address', 'birthDate', 'gender', 'id', 'identifier', 'meta',
    'name', 'resourceType', 'telecom']);
  assert.ok(hasSubsetted(sum));

  // _summary=text: text, id, meta (and mandatory elements: Patient has none).
  const txt = (await get('_summary=text')).json();
  assert.deepEqual(keys(txt), ['id', 'meta', 'resourceType', 'text']);
  assert.ok(hasSubsetted(txt));

  // _summary=data: everything but the narrative.
  const data = (await get('_summary=data')).json();
  assert.deepEqual(keys(data), ['active', 'address', 'birthDate', 'contact', 'extension', 'gender',
    'generalPractitioner', 'id', 'identifier', 'maritalStatus', 'meta', 'name', 'resourceType', 'telecom']);
  assert.ok(hasSubsetted(data));

  // _summary=false: the whole resource, not SUBSETTED.
  const all = (await get('_summary=false')).json();
  assert.ok('text' in all && 'maritalStatus' in all);
  assert.equal(hasSubsetted(all), false);

  assertDenied(await get('_summary=count'), 400, 'invalid');
  assertDenied(await get('_summary=bogus'), 400, 'invalid');
  assertDenied(await get('_summary=true&_elements=name'), 400, 'invalid');
});

test('narrowing never widens: billing asking _elements for hidden elements gets none', async () => {
  const r = await api.get(`/fhir/Patient/${patientId}?_elements=maritalStatus,generalPractitioner,name`, billing);
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(Object.keys(r.json()).sort(), ['id', 'meta', 'name', 'resourceType']);
  const d = await api.get(`/fhir/Patient/${patientId}?_summary=data`, billing);
  assertBillingView(d.json(), '_summary=data');
  const t = await api.get(`/fhir/Patient/${patientId}?_summary=text`, billing);
  assert.equal(t.status, 200);
  assert.equal(t.json().text, undefined, 'no narrative even when asked for it');
  for (const m of HIDDEN_MARKERS) assert.ok(!t.body.includes(m));
});
