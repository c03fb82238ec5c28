// Seeded data and queries for search_diff.test.mjs (issue 6 §6, the differential search
// test): fictitious FHIR R4 Patients and the Observations, Encounters, Conditions and
// MedicationRequests that refer to them, and a generated set of searches over them.
//
// The data is chosen to exercise what search semantics disagree on: names with and
// without accents and in several cases, one name a substring but not a prefix of another
// ("Ann" in "Joanne"), identifiers with and without a system, codes that differ only in
// case or share a code across systems, dates at year, month (including months shorter
// than 31 days), day, minute and millisecond precision with several zones, Periods open at
// either end, and values missing altogether. No real person is described.
//
// Both generators are pure functions of their seed (and, for the queries, of the stored
// resources), so a failure reproduces exactly.

// ---- Seeded randomness (mulberry32: small, fast and deterministic across platforms) ----

export function makeRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  return {
    next,
    int,
    between: (lo, hi) => lo + int(hi - lo + 1),
    chance: (p) => next() < p,
    pick: (arr) => arr[int(arr.length)],
    // Picks by weight from [[weight, value], ...].
    weighted: (pairs) => {
      const total = pairs.reduce((s, [w]) => s + w, 0);
      let x = next() * total;
      for (const [w, v] of pairs) {
        if ((x -= w) < 0) return v;
      }
      return pairs[pairs.length - 1][1];
    },
  };
}

// ---- Vocabulary ----

export const SYSTEMS = {
  mrn: 'http://hospital.example.org/mrn',
  ssn: 'urn:oid:2.16.840.1.113883.4.1',
  visit: 'http://hospital.example.org/visit',
  order: 'http://hospital.example.org/order',
  loinc: 'http://loinc.org',
  snomed: 'http://snomed.info/sct',
  icd10: 'http://hl7.org/fhir/sid/icd-10',
  rxnorm: 'http://www.nlm.nih.gov/research/umls/rxnorm',
  local: 'http://example.org/local-codes',
  obsCategory: 'http://terminology.hl7.org/CodeSystem/observation-category',
  actCode: 'http://terminology.hl7.org/CodeSystem/v3-ActCode',
  condClinical: 'http://terminology.hl7.org/CodeSystem/condition-clinical',
  condVerification: 'http://terminology.hl7.org/CodeSystem/condition-ver-status',
  condCategory: 'http://terminology.hl7.org/CodeSystem/condition-category',
  medCategory: 'http://terminology.hl7.org/CodeSystem/medicationrequest-category',
};

// Accented and unaccented spellings side by side, case variants, and names that contain
// another name without starting with it.
const FAMILIES = ['García', 'Garcia', 'GARCIA', 'Müller', 'Muller', 'Møller', 'Nguyễn', 'Nguyen',
  'Lefèvre', 'Lefebvre', 'Smith', 'Smithson', 'Johnson', 'Jonsson', 'de la Cruz', 'Cruz',
  'Åström', 'Astrom', 'Brontë', "O'Brien", 'Kowalski', 'Łukasiewicz', 'Sonnenberg'];
const GIVENS = ['José', 'Jose', 'JOSÉ', 'María', 'Maria', 'Zoë', 'Zoe', 'Chloé', 'Renée', 'René',
  'Ann', 'Anna', 'Joanne', 'Marianne', 'Søren', 'Sören', 'Iñaki', 'Inaki', 'Peter', 'Pete', 'Li',
  'Élodie', 'Sonia'];
const PREFIXES = ['Dr.', 'Mr.', 'Ms.', 'Mx.'];
const LINES = ['12 Main St', "7 Rue de l'Église", '221B Baker Street', '1 Maple Ave',
  '45 Elm St', 'Apt 3', '9 Großer Weg'];
const PLACES = [
  { city: 'Montréal', state: 'QC', postalCode: 'H2X 1Y4' },
  { city: 'Montreal', state: 'QC', postalCode: 'H3A 0G4' },
  { city: 'São Paulo', state: 'SP', postalCode: '01310-100' },
  { city: 'Zürich', state: 'ZH', postalCode: '8001' },
  { city: 'Springfield', state: 'IL', postalCode: '62701' },
  { city: 'Spring Valley', state: 'NY', postalCode: '10977' },
  { city: 'Boston', state: 'MA', postalCode: '02118' },
  { city: 'Bristol', state: 'Avon', postalCode: 'BS1 4DJ' },
];

// Observation codes: the same code under two systems, codes that differ only in case, a
// coding without a system. Displays never equal a code (medplum matches a token search
// against displays too; see the test's deliberate differences).
const OBS_CODES = [
  { system: SYSTEMS.loinc, code: '8867-4', display: 'Heart rate' },
  { system: SYSTEMS.loinc, code: '29463-7', display: 'Body weight' },
  { system: SYSTEMS.loinc, code: '8480-6', display: 'Systolic blood pressure' },
  { system: SYSTEMS.loinc, code: '2339-0', display: 'Glucose [Mass/volume] in Blood' },
  { system: SYSTEMS.loinc, code: '718-7', display: 'Hemoglobin [Mass/volume] in Blood' },
  { system: SYSTEMS.local, code: '8867-4', display: 'Local pulse' },
  { system: SYSTEMS.local, code: 'hr', display: 'Pulse (local)' },
  { system: SYSTEMS.local, code: 'HR', display: 'Pulse, upper case code' },
  { system: SYSTEMS.local, code: 'Glu', display: 'Glucose (local)' },
  { code: 'hr', display: 'Pulse without a system' },
];
const OBS_CATEGORIES = ['vital-signs', 'laboratory', 'social-history', 'survey'];
const OBS_STATUSES = ['registered', 'preliminary', 'final', 'amended', 'cancelled'];

const ENC_CLASSES = [
  { system: SYSTEMS.actCode, code: 'AMB', display: 'ambulatory' },
  { system: SYSTEMS.actCode, code: 'IMP', display: 'inpatient encounter' },
  { system: SYSTEMS.actCode, code: 'EMER', display: 'emergency' },
  { system: SYSTEMS.actCode, code: 'HH', display: 'home health' },
  { system: SYSTEMS.actCode, code: 'amb', display: 'ambulatory (lower case code)' },
];
const ENC_TYPES = [
  { system: SYSTEMS.snomed, code: '185349003', display: 'Encounter for check up' },
  { system: SYSTEMS.snomed, code: '270427003', display: 'Patient-initiated encounter' },
  { system: SYSTEMS.snomed, code: '50849002', display: 'Emergency room admission' },
];
const ENC_STATUSES = ['planned', 'arrived', 'in-progress', 'finished', 'cancelled'];

const COND_CODES = [
  [{ system: SYSTEMS.snomed, code: '38341003', display: 'Hypertensive disorder' },
    { system: SYSTEMS.icd10, code: 'I10', display: 'Essential hypertension' }],
  [{ system: SYSTEMS.snomed, code: '44054006', display: 'Diabetes mellitus type 2' },
    { system: SYSTEMS.icd10, code: 'E11.9', display: 'Type 2 diabetes without complications' }],
  [{ system: SYSTEMS.snomed, code: '195967001', display: 'Asthma' }],
  [{ system: SYSTEMS.icd10, code: 'J45', display: 'Asthma (ICD-10)' }],
  [{ system: SYSTEMS.icd10, code: 'i10', display: 'Hypertension, lower case code' }],
];
const COND_SEVERITIES = [
  { system: SYSTEMS.snomed, code: '24484000', display: 'Severe' },
  { system: SYSTEMS.snomed, code: '6736007', display: 'Moderate' },
  { system: SYSTEMS.snomed, code: '255604002', display: 'Mild' },
];

const MEDS = [
  { system: SYSTEMS.rxnorm, code: '197361', display: 'Amlodipine 5 MG Oral Tablet' },
  { system: SYSTEMS.rxnorm, code: '860975', display: 'Metformin 500 MG Extended Release' },
  { system: SYSTEMS.rxnorm, code: '313782', display: 'Acetaminophen 325 MG Oral Tablet' },
  { system: SYSTEMS.rxnorm, code: '1049221', display: 'Oxycodone 5 MG Oral Tablet' },
];
const MED_STATUSES = ['active', 'on-hold', 'cancelled', 'completed', 'stopped', 'draft'];
const MED_INTENTS = ['proposal', 'plan', 'order', 'original-order'];
const MED_CATEGORIES = ['inpatient', 'outpatient', 'community', 'discharge'];
const MED_PRIORITIES = ['routine', 'urgent', 'asap', 'stat'];

// ---- Dates ----

const ZONES = ['Z', '+00:00', '-05:00', '+09:00', '+05:30', '-11:00', '+14:00'];

function pad(n, w = 2) { return String(n).padStart(w, '0'); }

function daysIn(year, month) { return new Date(Date.UTC(year, month, 0)).getUTCDate(); }

// A random calendar moment in [fromYear, toYear]; times near midnight are favoured so
// that zones move the UTC date across a day, month or year boundary.
function moment(rng, fromYear, toYear) {
  const year = rng.between(fromYear, toYear);
  const month = rng.chance(0.2) ? rng.pick([1, 2, 12]) : rng.between(1, 12);
  const day = rng.chance(0.3) ? rng.pick([1, daysIn(year, month)]) : rng.between(1, daysIn(year, month));
  const hour = rng.chance(0.4) ? rng.pick([0, 1, 22, 23]) : rng.between(0, 23);
  return { year, month, day, hour, minute: rng.int(60), second: rng.int(60), ms: rng.int(1000) };
}

// A FHIR date (year, month or day precision).
function dateAt(m, precision) {
  if (precision === 'year') return `${m.year}`;
  if (precision === 'month') return `${m.year}-${pad(m.month)}`;
  return `${m.year}-${pad(m.month)}-${pad(m.day)}`;
}

// A FHIR dateTime: date precisions, or a time with seconds (and sometimes milliseconds)
// and a zone, as datatypes.html#dateTime requires when a time is given.
function dateTimeAt(rng, m, precision, zone = rng.pick(ZONES)) {
  if (precision !== 'time') return dateAt(m, precision);
  const frac = rng.chance(0.3) ? `.${pad(m.ms, 3)}` : '';
  return `${dateAt(m, 'day')}T${pad(m.hour)}:${pad(m.minute)}:${pad(m.second)}${frac}${zone}`;
}

function instantAt(rng, m) {
  const time = `${pad(m.hour)}:${pad(m.minute)}:${pad(m.second)}.${pad(m.ms, 3)}`;
  return `${dateAt(m, 'day')}T${time}${rng.pick(ZONES)}`;
}

// A moment `days` (may be fractional) after `m`, in UTC.
function later(m, days) {
  const t = Date.UTC(m.year, m.month - 1, m.day, m.hour, m.minute, m.second, m.ms) + days * 86_400_000;
  const d = new Date(t);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(),
    hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds(),
    ms: d.getUTCMilliseconds() };
}

function randomPrecision(rng) {
  return rng.weighted([[1, 'year'], [2, 'month'], [3, 'day'], [5, 'time']]);
}

// A dateTime or a Period (open at either end sometimes) for a [x] element.
function dateOrPeriod(rng, fromYear, toYear) {
  const m = moment(rng, fromYear, toYear);
  if (rng.chance(0.65)) return { dateTime: dateTimeAt(rng, m, randomPrecision(rng)) };
  const end = later(m, rng.pick([0.02, 0.5, 3, 20, 45, 400]));
  const startPrecision = rng.weighted([[1, 'day'], [4, 'time']]);
  const endPrecision = rng.weighted([[1, 'day'], [4, 'time']]);
  const period = {};
  const shape = rng.weighted([[6, 'closed'], [2, 'open-end'], [1, 'open-start']]);
  // One zone for both ends, so the end (written as the same wall clock plus a duration)
  // never precedes the start (per-1).
  const zone = rng.pick(ZONES);
  if (shape !== 'open-start') period.start = dateTimeAt(rng, m, startPrecision, zone);
  if (shape !== 'open-end') period.end = dateTimeAt(rng, end, endPrecision, zone);
  return { period };
}

// ---- Resources ----

function coding(c) {
  const out = {};
  if (c.system) out.system = c.system;
  out.code = c.code;
  if (c.display) out.display = c.display;
  return out;
}

function ref(key) { return { reference: `{{${key}}}` }; }

function patient(rng, i) {
  const r = { resourceType: 'Patient' };
  const identifiers = [];
  if (rng.chance(0.9)) identifiers.push({ system: SYSTEMS.mrn, value: `MRN-${pad(10000 + i * 37, 6)}` });
  if (rng.chance(0.3)) {
    const ssn = `999-${pad(rng.int(100))}-${pad(rng.int(10000), 4)}`;  // 999: never issued
    identifiers.push({ system: SYSTEMS.ssn, value: ssn });
  }
  if (rng.chance(0.25)) {
    // No system, values that differ only in case between patients, and a comma (which a
    // search value must escape, search.html#escaping).
    identifiers.push({ value: rng.pick(['ext-ab12', 'EXT-AB12', 'Ext-Cd34', 'ext-cd34', `ext-${i}`]) });
  }
  if (i % 15 === 4) identifiers.push({ value: 'ext,77' });
  if (identifiers.length) r.identifier = identifiers;
  if (rng.chance(0.85)) r.active = rng.chance(0.8);
  const names = [];
  const nameCount = rng.weighted([[1, 0], [12, 1], [4, 2]]);
  for (let n = 0; n < nameCount; ++n) {
    const name = { use: n === 0 ? 'official' : rng.pick(['usual', 'maiden', 'nickname']) };
    if (rng.chance(0.95)) name.family = rng.pick(FAMILIES);
    const givenCount = rng.weighted([[1, 0], [6, 1], [3, 2]]);
    if (givenCount) name.given = Array.from({ length: givenCount }, () => rng.pick(GIVENS));
    if (rng.chance(0.15)) name.prefix = [rng.pick(PREFIXES)];
    if (!name.family && !name.given) name.given = [rng.pick(GIVENS)];
    names.push(name);
  }
  if (names.length) r.name = names;
  if (rng.chance(0.9)) r.gender = rng.pick(['male', 'female', 'other', 'unknown']);
  if (rng.chance(0.9)) {
    const m = moment(rng, 1935, 2020);
    r.birthDate = dateAt(m, rng.weighted([[1, 'year'], [2, 'month'], [6, 'day']]));
  }
  if (rng.chance(0.8)) {
    const place = rng.pick(PLACES);
    const address = { use: rng.pick(['home', 'work']) };
    if (rng.chance(0.9)) {
      address.line = rng.chance(0.2) ? [rng.pick(LINES), rng.pick(['Apt 3', 'Apt 3, Floor 2'])]
        : [rng.pick(LINES)];
    }
    if (rng.chance(0.9)) address.city = place.city;
    if (rng.chance(0.8)) address.state = place.state;
    if (rng.chance(0.8)) address.postalCode = place.postalCode;
    r.address = [address];
  }
  return r;
}

function encounter(rng, i, patientKey) {
  const r = { resourceType: 'Encounter', status: rng.pick(ENC_STATUSES),
    class: coding(rng.pick(ENC_CLASSES)) };
  if (rng.chance(0.7)) r.identifier = [{ system: SYSTEMS.visit, value: `V${pad(i, 4)}` }];
  if (rng.chance(0.7)) r.type = [{ coding: [coding(rng.pick(ENC_TYPES))] }];
  if (patientKey) r.subject = ref(patientKey);
  if (rng.chance(0.85)) {
    const v = dateOrPeriod(rng, 2019, 2023);
    r.period = v.period ?? { start: v.dateTime };
    if (v.dateTime && rng.chance(0.5)) {
      // Start and end the same value: the period is that value's whole precision.
      r.period = { start: v.dateTime, end: v.dateTime };
    }
  }
  return r;
}

function observation(rng, i, patientKey, encounterKey) {
  const r = { resourceType: 'Observation', status: rng.pick(OBS_STATUSES) };
  if (rng.chance(0.3)) r.identifier = [{ system: SYSTEMS.order, value: `OBS-${pad(i, 5)}` }];
  if (rng.chance(0.8)) {
    const cats = [rng.pick(OBS_CATEGORIES)];
    if (rng.chance(0.15)) cats.push(rng.pick(OBS_CATEGORIES));
    r.category = [...new Set(cats)].map((c) => ({ coding: [{ system: SYSTEMS.obsCategory, code: c }] }));
  }
  const codings = [coding(rng.pick(OBS_CODES))];
  if (rng.chance(0.25)) codings.push(coding(rng.pick(OBS_CODES)));
  r.code = { coding: codings };
  if (rng.chance(0.2)) r.code.text = 'Vital sign reading';
  if (patientKey) r.subject = ref(patientKey);
  if (encounterKey) r.encounter = ref(encounterKey);
  const e = rng.weighted([[6, 'dateTime'], [2, 'period'], [1, 'instant'], [1, 'none']]);
  if (e === 'instant') {
    r.effectiveInstant = instantAt(rng, moment(rng, 2019, 2023));
  } else if (e !== 'none') {
    const v = dateOrPeriod(rng, 2019, 2023);
    if (e === 'dateTime' && v.dateTime) r.effectiveDateTime = v.dateTime;
    else if (v.period) r.effectivePeriod = v.period;
    else r.effectiveDateTime = v.dateTime;
  }
  if (rng.chance(0.8)) {
    r.valueQuantity = { value: Math.round(rng.next() * 2000) / 10, unit: 'mg/dL',
      system: 'http://unitsofmeasure.org', code: 'mg/dL' };
  }
  return r;
}

function condition(rng, i, patientKey, encounterKey) {
  const r = { resourceType: 'Condition' };
  if (rng.chance(0.3)) r.identifier = [{ system: SYSTEMS.order, value: `COND-${pad(i, 5)}` }];
  const abated = rng.chance(0.3);
  // con-4: an abatement implies an inactive, resolved or in-remission clinical status.
  const clinical = abated ? rng.pick(['inactive', 'remission', 'resolved'])
    : rng.pick(['active', 'recurrence', 'relapse', 'inactive', 'remission', 'resolved']);
  if (abated || rng.chance(0.9)) {
    r.clinicalStatus = { coding: [{ system: SYSTEMS.condClinical, code: clinical }] };
  }
  if (rng.chance(0.8)) {
    r.verificationStatus = { coding: [{ system: SYSTEMS.condVerification,
      code: rng.pick(['unconfirmed', 'provisional', 'differential', 'confirmed', 'refuted']) }] };
  }
  if (rng.chance(0.85)) {
    r.category = [{ coding: [{ system: SYSTEMS.condCategory,
      code: rng.pick(['problem-list-item', 'encounter-diagnosis']) }] }];
  }
  if (rng.chance(0.4)) r.severity = { coding: [coding(rng.pick(COND_SEVERITIES))] };
  if (rng.chance(0.95)) r.code = { coding: rng.pick(COND_CODES).map(coding) };
  r.subject = ref(patientKey);
  if (encounterKey) r.encounter = ref(encounterKey);
  const onset = rng.weighted([[5, 'dateTime'], [2, 'period'], [1, 'string'], [1, 'none']]);
  if (onset === 'string') {
    r.onsetString = 'in childhood';
  } else if (onset !== 'none') {
    const v = dateOrPeriod(rng, 2000, 2022);
    if (onset === 'dateTime' && v.dateTime) r.onsetDateTime = v.dateTime;
    else if (v.period) r.onsetPeriod = v.period;
    else r.onsetDateTime = v.dateTime;
  }
  if (rng.chance(0.8)) r.recordedDate = dateTimeAt(rng, moment(rng, 2019, 2023), randomPrecision(rng));
  if (abated && rng.chance(0.8)) {
    r.abatementDateTime = dateTimeAt(rng, moment(rng, 2023, 2024), randomPrecision(rng));
  }
  return r;
}

function medicationRequest(rng, i, patientKey, encounterKey) {
  const r = { resourceType: 'MedicationRequest', status: rng.pick(MED_STATUSES),
    intent: rng.pick(MED_INTENTS) };
  if (rng.chance(0.4)) r.identifier = [{ system: SYSTEMS.order, value: `RX-${pad(i, 5)}` }];
  if (rng.chance(0.6)) {
    r.category = [{ coding: [{ system: SYSTEMS.medCategory, code: rng.pick(MED_CATEGORIES) }] }];
  }
  if (rng.chance(0.7)) r.priority = rng.pick(MED_PRIORITIES);
  r.medicationCodeableConcept = rng.chance(0.9) ? { coding: [coding(rng.pick(MEDS))] }
    : { text: 'Compounded cream' };
  r.subject = ref(patientKey);
  if (encounterKey) r.encounter = ref(encounterKey);
  if (rng.chance(0.85)) r.authoredOn = dateTimeAt(rng, moment(rng, 2019, 2023), randomPrecision(rng));
  return r;
}

// The data set: [{key, resource}] in dependency order. References are written as
// "{{key}}" and become "Type/<server id>" once the referenced resource is stored.
export function generateDataset(seed, { patients = 60, encounters = 60, observations = 130,
  conditions = 60, medicationRequests = 60 } = {}) {
  const rng = makeRng(seed);
  const out = [];
  const patientKeys = [];
  const encounterKeys = [];
  for (let i = 0; i < patients; ++i) {
    const key = `Patient#${i}`;
    patientKeys.push(key);
    out.push({ key, resource: patient(rng, i) });
  }
  // Patients referred to by more resources than others, so searches by patient hit.
  const somePatient = () => (rng.chance(0.5) ? patientKeys[rng.int(8)] : rng.pick(patientKeys));
  for (let i = 0; i < encounters; ++i) {
    const key = `Encounter#${i}`;
    encounterKeys.push(key);
    out.push({ key, resource: encounter(rng, i, rng.chance(0.92) ? somePatient() : undefined) });
  }
  const someEncounter = () => (rng.chance(0.6) ? rng.pick(encounterKeys) : undefined);
  for (let i = 0; i < observations; ++i) {
    out.push({ key: `Observation#${i}`,
      resource: observation(rng, i, rng.chance(0.93) ? somePatient() : undefined, someEncounter()) });
  }
  for (let i = 0; i < conditions; ++i) {
    out.push({ key: `Condition#${i}`, resource: condition(rng, i, somePatient(), someEncounter()) });
  }
  for (let i = 0; i < medicationRequests; ++i) {
    out.push({ key: `MedicationRequest#${i}`,
      resource: medicationRequest(rng, i, somePatient(), someEncounter()) });
  }
  return out;
}

// Replaces "{{key}}" references with "Type/id" from `ids` (key -> server id).
export function resolveReferences(resource, ids) {
  return JSON.parse(JSON.stringify(resource), (k, v) => {
    if (k === 'reference' && typeof v === 'string' && v.startsWith('{{')) {
      const key = v.slice(2, -2);
      const id = ids.get(key);
      if (!id) throw new Error(`reference to ${key} before it was stored`);
      return `${key.split('#')[0]}/${id}`;
    }
    return v;
  });
}

// ---- Searches ----

// The parameters searched, per type and kind. `targets` is the number of target types of
// a reference parameter (a bare id is searched on both kinds).
export const PARAMS = {
  Patient: {
    string: ['name', 'family', 'given', 'address', 'address-city', 'address-state',
      'address-postalcode'],
    token: ['identifier', 'gender', 'active'],
    reference: [],
    date: ['birthdate'],
  },
  Observation: {
    string: [],
    token: ['code', 'category', 'status', 'identifier'],
    reference: ['subject', 'patient', 'encounter'],
    date: ['date'],
  },
  Encounter: {
    string: [],
    token: ['status', 'class', 'type', 'identifier'],
    reference: ['subject', 'patient'],
    date: ['date'],
  },
  Condition: {
    string: [],
    token: ['code', 'clinical-status', 'verification-status', 'category', 'severity', 'identifier'],
    reference: ['subject', 'patient', 'encounter'],
    date: ['onset-date', 'recorded-date', 'abatement-date'],
  },
  MedicationRequest: {
    string: [],
    token: ['status', 'intent', 'code', 'category', 'priority', 'identifier'],
    reference: ['subject', 'patient', 'encounter'],
    date: ['authoredon'],
  },
};

export const TYPES = Object.keys(PARAMS);

// search.html#escaping: a comma or backslash inside one value.
function escape(v) { return v.replace(/[\\,]/g, (c) => `\\${c}`); }

// Removes combining marks (the inverse of what a user who types without accents does).
function unaccent(s) { return s.normalize('NFKD').replace(/\p{Mn}/gu, '').normalize('NFC'); }

function varyCase(rng, s) {
  return rng.pick([s, s.toLowerCase(), s.toUpperCase(),
    s.charAt(0).toUpperCase() + s.slice(1).toLowerCase()]);
}

// A search value from a string the data holds: a prefix (the common case), the whole
// value, or a piece from the middle (a "contains" match that is not a "starts with" one).
function stringValue(rng, s) {
  const chars = [...s];
  const form = rng.weighted([[6, 'prefix'], [2, 'whole'], [2, 'middle']]);
  let v;
  if (form === 'whole' || chars.length < 3) {
    v = s;
  } else if (form === 'prefix') {
    v = chars.slice(0, rng.between(1, Math.min(chars.length, 7))).join('');
  } else {
    const from = rng.between(1, chars.length - 2);
    v = chars.slice(from, from + rng.between(2, 4)).join('');
  }
  v = v.trim();
  if (!v) v = s.trim();
  if (rng.chance(0.3)) v = unaccent(v);
  if (rng.chance(0.5)) v = varyCase(rng, v);
  return v;
}

// A date search value near `iso` (a value the data holds) at year, month, day or minute
// precision, sometimes moved by one unit so that boundaries are crossed.
function dateValue(rng, iso) {
  const d = new Date(iso.length === 4 ? `${iso}-01-01T00:00:00Z`
    : iso.length === 7 ? `${iso}-01T00:00:00Z` : iso.length === 10 ? `${iso}T00:00:00Z` : iso);
  const shift = rng.weighted([[6, 0], [1, -1], [1, 1]]);
  const precision = rng.weighted([[3, 'year'], [4, 'month'], [4, 'day'], [1, 'minute']]);
  if (precision === 'year') d.setUTCFullYear(d.getUTCFullYear() + shift);
  if (precision === 'month') d.setUTCMonth(d.getUTCMonth() + shift, 1);
  if (precision === 'day') d.setUTCDate(d.getUTCDate() + shift);
  if (precision === 'minute') d.setUTCMinutes(d.getUTCMinutes() + shift * 30);
  const y = pad(d.getUTCFullYear(), 4);
  const mo = pad(d.getUTCMonth() + 1);
  const day = pad(d.getUTCDate());
  if (precision === 'year') return y;
  if (precision === 'month') return `${y}-${mo}`;
  if (precision === 'day') return `${y}-${mo}-${day}`;
  const zone = rng.pick(['Z', '+02:00', '-05:00']);
  const shifted = new Date(d.getTime() + (zone === 'Z' ? 0 : (zone === '+02:00' ? 2 : -5) * 3_600_000));
  return `${shifted.toISOString().slice(0, 16)}${zone}`;
}

const DATE_PREFIXES = ['', 'eq', 'ne', 'lt', 'gt', 'le', 'ge', 'sa', 'eb'];

// Generates `count` searches: [{type, params: [[name, value], ...], kind}], each a pure
// function of the seed and of `stored` (type -> stored resources) through `values`
// (resource, code) -> {tokens: [{system, code}], strings: [..], references: ["Type/id"],
// dates: ["iso", ...]}, which tells what the data holds so most searches match something.
// `base` is the server's FHIR base URL: some reference values are absolute URLs on it.
export function generateQueries(seed, stored, values, count, { base } = {}) {
  const rng = makeRng(seed);
  const pool = (type, code, kind) => {
    const out = [];
    for (const r of stored[type]) out.push(...values(r, code)[kind]);
    return out;
  };
  const cache = new Map();
  const poolOf = (type, code, kind) => {
    const k = `${type}\0${code}\0${kind}`;
    if (!cache.has(k)) cache.set(k, pool(type, code, kind));
    return cache.get(k);
  };

  const tokenValue = (type, code) => {
    const tokens = poolOf(type, code, 'tokens');
    if (!tokens.length || rng.chance(0.05)) return 'no-such-code';
    // Values with a comma (escaped in the search) are rare in the data: favour them.
    const commas = tokens.filter((x) => x.code.includes(','));
    const t = rng.pick(commas.length && rng.chance(0.15) ? commas : tokens);
    const form = rng.weighted([[10, 'code'], [4, 'system|code'], [2, '|code'], [2, 'system|'],
      [2, 'case']]);
    if (form === 'system|code' && t.system) return `${t.system}|${escape(t.code)}`;
    if (form === '|code') return `|${escape(t.code)}`;
    if (form === 'system|' && t.system) return `${t.system}|`;
    if (form === 'case') return escape(rng.chance(0.5) ? t.code.toUpperCase() : t.code.toLowerCase());
    return escape(t.code);
  };
  const stringOf = (type, code) => {
    const strings = poolOf(type, code, 'strings');
    if (!strings.length || rng.chance(0.04)) return 'Zzyzx';
    // Values with letters outside ASCII are favoured: accents and case folding are where
    // string matching most often goes wrong.
    const accented = strings.filter((x) => /[^\x00-\x7f]/.test(x));
    const commas = strings.filter((x) => x.includes(','));
    const from = commas.length && rng.chance(0.25) ? commas
      : accented.length && rng.chance(0.4) ? accented : strings;
    return escape(stringValue(rng, rng.pick(from)));
  };
  const referenceOf = (type, code) => {
    const refs = poolOf(type, code, 'references');
    if (!refs.length || rng.chance(0.05)) {
      return rng.chance(0.5) ? 'Patient/does-not-exist' : 'does-not-exist';
    }
    const r = rng.pick(refs);
    const form = rng.weighted([[9, 'relative'], [9, 'id'], [2, 'absolute']]);
    if (form === 'absolute' && base) return `${base}/${r}`;
    return form === 'id' ? r.split('/')[1] : r;
  };
  const dateOf = (type, code) => {
    const dates = poolOf(type, code, 'dates');
    const iso = dates.length ? rng.pick(dates) : '2021-06-15';
    return rng.pick(DATE_PREFIXES) + dateValue(rng, iso);
  };
  const orOf = (make) => (rng.chance(0.15) ? `${make()},${make()}` : make());

  // One [name, value] for a parameter of the given kind.
  const condition = (type, kind, code) => {
    switch (kind) {
      case 'token': {
        const modifier = rng.weighted([[8, ''], [2, ':not'], [1, ':missing']]);
        if (modifier === ':missing') return [`${code}:missing`, rng.pick(['true', 'false'])];
        return [code + modifier, orOf(() => tokenValue(type, code))];
      }
      case 'string': {
        const modifier = rng.weighted([[10, ''], [4, ':exact'], [1, ':missing']]);
        if (modifier === ':missing') return [`${code}:missing`, rng.pick(['true', 'false'])];
        if (modifier === ':exact') {
          // The value as held, or another case or accents, or a prefix: only the first is an
          // exact match.
          const strings = poolOf(type, code, 'strings');
          const s = strings.length ? rng.pick(strings) : 'Zzyzx';
          const form = rng.weighted([[5, 'same'], [3, 'varied'], [2, 'prefix']]);
          if (form === 'varied') return [`${code}:exact`, escape(varyCase(rng, unaccent(s)))];
          if (form === 'prefix' && s.length > 2) return [`${code}:exact`, escape(s.slice(0, -1))];
          return [`${code}:exact`, escape(s)];
        }
        return [code, orOf(() => stringOf(type, code))];
      }
      case 'reference': {
        if (rng.chance(0.1)) return [`${code}:missing`, rng.pick(['true', 'false'])];
        return [code, orOf(() => referenceOf(type, code))];
      }
      case 'date':
        if (rng.chance(0.06)) return [`${code}:missing`, rng.pick(['true', 'false'])];
        if (rng.chance(0.08)) {
          // Two values, OR (search.html#combining), without prefixes: medplum applies the
          // first value's prefix to every value, which the specification does not.
          const plain = () => dateOf(type, code).replace(/^[a-z]{2}/, '').replace(/T.*$/, '');
          return [code, `${plain()},${plain()}`];
        }
        return [code, dateOf(type, code)];
      case '_id': {
        const ids = stored[type].map((r) => r.id);
        return ['_id', rng.chance(0.3) ? `${rng.pick(ids)},${rng.pick(ids)}` : rng.pick(ids)];
      }
      default:
        throw new Error(kind);
    }
  };
  const kindsOf = (type) => Object.entries(PARAMS[type]).filter(([, codes]) => codes.length)
    .map(([kind]) => kind);
  // Kinds by weight: strings (Patient only) are favoured, _id is rare.
  const KIND_WEIGHTS = { string: 7, token: 3, reference: 2, date: 3, _id: 0.5 };
  const anyCondition = (type, except = new Set()) => {
    for (;;) {
      const kind = rng.weighted([...kindsOf(type), '_id'].map((k) => [KIND_WEIGHTS[k], k]));
      const code = kind === '_id' ? '_id' : rng.pick(PARAMS[type][kind]);
      if (except.has(code)) continue;
      return { code, param: condition(type, kind, code) };
    }
  };

  const queries = [];
  for (let i = 0; i < count; ++i) {
    const type = TYPES[i % TYPES.length];
    const shape = rng.weighted([[7, 'single'], [2, 'and'], [1, 'range']]);
    if (shape === 'single') {
      const c = anyCondition(type);
      queries.push({ type, params: [c.param] });
    } else if (shape === 'and') {
      const a = anyCondition(type);
      const b = anyCondition(type, new Set([a.code]));
      queries.push({ type, params: [a.param, b.param] });
    } else {
      // A date range: the same date parameter twice (a repeated parameter is AND).
      const code = rng.pick(PARAMS[type].date);
      const lo = dateOf(type, code).replace(/^[a-z]{2}/, '');
      const hi = dateOf(type, code).replace(/^[a-z]{2}/, '');
      const [a, b] = lo < hi ? [lo, hi] : [hi, lo];
      queries.push({ type, params: [[code, `${rng.pick(['ge', 'gt', 'sa'])}${a}`],
        [code, `${rng.pick(['le', 'lt', 'eb'])}${b}`]] });
    }
  }
  return queries;
}
