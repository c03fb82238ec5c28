#!/usr/bin/env node
// Deterministic synthetic FHIR R4 data for phigate's search benchmark (issue 6, part 7):
// Patients and their Observations, realistic in shape and distribution but describing no
// real person. Node >= 20, built-in modules only.
//
// README
// ======
// Usage (from the repository root; bench/out/ is git-ignored):
//   node bench/synth/generate.mjs --patients 1000000 --observations-per-patient 5 \
//       --seed 1 --out bench/out/synth
//   node bench/synth/generate.mjs --patients 1000 --seed 7 --out DIR \
//       --format bundle --bundle-size 500
// Options:
//   --patients N                   required, 1 .. 48,995,100 (the SSN space below)
//   --observations-per-patient K   default 5, 0 .. 999 (exactly K per patient)
//   --seed S                       default 1, an integer 0 .. 4294967295
//   --out DIR                      required; created if missing
//   --format ndjson|bundle         default ndjson
//   --bundle-size M                default 500 entries per Bundle (format bundle only)
//   --force                        replace earlier generator output found in DIR
//   --quiet                        no progress on stderr
//
// Output
// - ndjson: DIR/Patient.ndjson and DIR/Observation.ndjson, one compact resource per line
//   (UTF-8, "\n" after every line), patients in id order, observations in id order.
// - bundle: DIR/bundles-0001.json, ... (at least 4 digits), each one compact transaction
//   Bundle of at most M entries `{"resource": ..., "request": {"method": "PUT",
//   "url": "Patient/p00000001"}}`. PUT to [type]/[id] keeps the ids (FHIR R4 http.html#update,
//   "update as create"), so a later run can find the manifest's ids. Entries go patient 1,
//   its K observations, patient 2, ...: a patient is always in the same or an earlier file
//   than its observations, so loading the files in name order never references a patient
//   not yet written. Entries carry no fullUrl (optional for PUT entries in a transaction,
//   and a relative fullUrl would be invalid). POST each file to the server's /fhir.
//   The default M = 500 keeps a file near 350 KB, well under the server's 8 MiB body limit
//   and the 1,000-entry transaction target.
// - manifest.json (written last, via a rename, so its presence means the run completed):
//   the parameters, counts, each file's byte size and SHA-256, and sample query values with
//   their exact expected match counts (see "Manifest samples" below). It holds no timings,
//   so it is as reproducible as the data. Progress and timing go to stderr.
//
// Determinism
// - Every patient i (0-based) is a pure function of (seed, i), and its observations a pure
//   function of (seed, i, j): each entity draws from its own mulberry32 stream seeded by a
//   32-bit hash of (seed, stream tag, i). So the same arguments give byte-identical files on
//   any machine, a run with more patients starts with the same patients as one with fewer,
//   and the manifest regenerates sampled patients instead of keeping anything in memory.
//   Only two small histograms (per surname, per birth day) are kept while streaming.
// - Writes go through fs write streams and wait for 'drain' when a stream's buffer is full.
//
// Id scheme (sequential, fixed width, so ids never depend on --patients)
// - Patient:     "p" + 8-digit (i + 1)                 e.g. p00000001
// - Observation: "o" + 8-digit (i + 1) + "-" + 3-digit (j + 1)   e.g. o00000001-005
//   (FHIR id is [A-Za-z0-9\-\.]{1,64}. Sequential rather than random hex ids because the
//   manifest, logs and benchmark results are then readable, and an observation id names its
//   patient. MRN and SSN values come from seeded permutations, so neither reveals the id.)
//
// Why the data cannot describe a real person
// - Names are common given names and surnames drawn independently; nothing ties them to a
//   birth date, address or identifier of anyone real.
// - MRN: system urn:oid:1.3.6.1.4.1.32473.1.1, under the IANA Private Enterprise Number
//   32473 that RFC 5612 reserves for documentation. (The brief suggested
//   2.16.840.1.113883.3.1234..., but HL7's 2.16.840.1.113883.3 arc holds OIDs registered to
//   real organisations, so it could collide.) Value "MRN" + 8 digits from a seeded
//   bijection of i, so MRNs are unique and unrelated to ids.
// - SSN (about 70% of patients): system http://hl7.org/fhir/sid/us-ssn, value "9AA-GG-SSSS"
//   with area 900-999, which the SSA never issues as an SSN, and group 01-49, which is also
//   outside every IRS ITIN group (50-65, 70-88, 90-92, 94-99). Unique via a seeded
//   bijection of i over the 100 x 49 x 9999 = 48,995,100 such values (hence the patient cap).
// - Phones: "(AAA) 555-01XX"; 555-0100..0199 are reserved for fictional use in every
//   North American area code.
// - Addresses: invented street and city names, ZIP codes "000XX" (the USPS assigns no ZIP
//   beginning 000). The state is a real USPS code on purpose: a made-up state would fail
//   US Core validation and make `address-state` searches unrealistic, and the invented city
//   and ZIP already make every address non-existent.
//
// Patients: gender is male/female from the list the given name came from (no name is in both
// lists); 45% have a second given name; birthDate uniform 1920-01-01..2024-12-31. Name
// frequencies follow a Zipf-like curve (weight 1/(rank+10)) so prefix selectivity varies as
// in real data. The lists include accented spellings next to plain ones (Müller/Muller,
// Nuñez/Núñez/Nunez, José/Jose, Zoë, Nguyễn, Dvořák ...) to test accent-insensitive search.
// They avoid letters that Unicode NFD does not decompose (ß, ø, ł, æ) and apostrophes,
// hyphens and spaces, so "accent-insensitive" has one unambiguous meaning (see below).
//
// Observations: status final; 31 LOINC codes (9 vital signs, 22 laboratory) weighted so
// vital signs are common; category vital-signs or laboratory; valueQuantity in UCUM with
// plausible ranges (heart rate, respiration, blood pressure, height, weight and BMI depend on
// age; height and BMI follow a per-patient baseline); effectiveDateTime between
// 2015-01-01 and 2025-12-31 local time, never before the birth date, 07:00-19:00, with the
// patient's fixed timezone offset (mostly US, some Z, +01:00, +05:30).
//
// Manifest samples (min(100, what exists) of each)
// - identifiers: {system, value, patient, expected: 1}: 50 MRNs and 50 SSNs that exist.
//   identifierMisses: {system, value, patient: null, expected: 0}: 5 existing values under
//   the other identifier system and 5 SSN-shaped values with group 00 (never generated).
//   Query: identifier=system|value
// - familyPrefixes: {prefix, expected}: `family=prefix` with FHIR's default string match
//   (starts-with, case- and accent-insensitive): a patient matches when
//   normalize(family).startsWith(normalize(prefix)), normalize = NFD, remove \p{M},
//   toLowerCase. Prefixes of 1-6 letters or whole names; some keep accents, some are
//   lower- or upper-case.
// - birthDateRanges: {ge, lt, expected}: birthdate=geYYYY-MM-DD&birthdate=ltYYYY-MM-DD
//   (a day, a month, a year or a decade).
// - observationQueries: {patient, system, code, ge, lt, expected, expectedAnyDate}:
//   subject=Patient/<patient>&code=system|code&date=ge<ge>&date=lt<lt>. The bounds are UTC
//   instants with second precision ("2019-03-01T00:00:00Z") and every effectiveDateTime
//   has second precision, so FHIR's precision rules (search.html#prefix) reduce to
//   ge <= instant < lt. expectedAnyDate is the count without the date parameters.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export const kMrnSystem = 'urn:oid:1.3.6.1.4.1.32473.1.1';
export const kSsnSystem = 'http://hl7.org/fhir/sid/us-ssn';
export const kLoincSystem = 'http://loinc.org';
export const kUcumSystem = 'http://unitsofmeasure.org';
const kIdentifierTypeSystem = 'http://terminology.hl7.org/CodeSystem/v2-0203';
const kCategorySystem = 'http://terminology.hl7.org/CodeSystem/observation-category';

const kMrnSpace = 100_000_000; // "MRN" + 8 digits
const kSsnGroups = 49; // 01..49
const kSsnSerials = 9999; // 0001..9999
const kSsnSpace = 100 * kSsnGroups * kSsnSerials; // areas 900..999
export const kMaxPatients = kSsnSpace;
export const kMaxObservationsPerPatient = 999;
const kSamples = 100;
const kSsnShare = 0.7;

// ---------------------------------------------------------------------------------------
// Name lists, most common first within each list (the order sets the Zipf weights).

export const kFemaleGiven = [
  'Mary', 'Patricia', 'Jennifer', 'Linda', 'Elizabeth', 'Barbara', 'Susan', 'Jessica', 'Sarah',
  'Karen', 'María', 'Maria', 'Lisa', 'Nancy', 'Betty', 'Sandra', 'Margaret', 'Ashley',
  'Kimberly', 'Emily', 'Donna', 'Michelle', 'Carol', 'Amanda', 'Melissa', 'Deborah', 'Sofía',
  'Stephanie', 'Dorothy', 'Rebecca', 'Sharon', 'Laura', 'Cynthia', 'Amy', 'Kathleen', 'Zoë',
  'Angela', 'Shirley', 'Brenda', 'Emma', 'Anna', 'Pamela', 'Nicole', 'Samantha', 'Katherine',
  'Christine', 'Helen', 'Debra', 'Rachel', 'Carolyn', 'Janet', 'Catherine', 'Heather',
  'Lucía', 'Diane', 'Olivia', 'Julie', 'Joyce', 'Victoria', 'Ruth', 'Virginia', 'Lauren',
  'Kelly', 'Christina', 'Joan', 'Evelyn', 'Judith', 'Andrea', 'Hannah', 'Chloé', 'Megan',
  'Cheryl', 'Jacqueline', 'Martha', 'Madison', 'Teresa', 'Gloria', 'Sara', 'Janice', 'Ann',
  'Kathryn', 'Abigail', 'Sophia', 'Frances', 'Jean', 'Alice', 'Renée', 'Judy', 'Isabella',
  'Julia', 'Grace', 'Amber', 'Denise', 'Danielle', 'Marilyn', 'Beverly', 'Charlotte',
  'Natalie', 'Theresa', 'Diana', 'Brittany', 'Doris', 'Kayla', 'Alexis', 'Inés', 'Lori',
  'Marie', 'Ava', 'Mia', 'Harper', 'Amelia', 'Ella', 'Scarlett', 'Aria', 'Chloe', 'Zoe',
  'Lily', 'Layla', 'Nora', 'Riley', 'Ellie', 'Stella', 'Hazel', 'Aurora', 'Violet', 'Lucy',
  'Paisley', 'Naomi', 'Elena', 'Valentina', 'Camila', 'Gabriela', 'Ximena', 'Isabel', 'Carmen',
  'Rosa', 'Guadalupe', 'Ana', 'Juana', 'Yolanda', 'Leticia', 'Mónica', 'Verónica', 'Raquel',
  'Ángela', 'Noémie', 'Anaïs', 'Zoé', 'Léa', 'Hélène', 'Thérèse', 'Céline', 'Agnès',
  'Françoise', 'Béatrice', 'Mei', 'Yuki', 'Priya', 'Aisha', 'Fatima', 'Amara', 'Ngozi',
  'Leilani', 'Siobhan', 'Ingrid', 'Astrid', 'Freya', 'Greta', 'Annika', 'Katarzyna',
  'Agnieszka', 'Olga', 'Irina', 'Svetlana', 'Mariam', 'Leila', 'Hana', 'Linh', 'Thao',
];

export const kMaleGiven = [
  'James', 'Robert', 'John', 'Michael', 'David', 'William', 'Richard', 'Joseph', 'Thomas',
  'Christopher', 'Charles', 'Daniel', 'José', 'Matthew', 'Anthony', 'Mark', 'Donald', 'Steven',
  'Andrew', 'Paul', 'Joshua', 'Kenneth', 'Kevin', 'Brian', 'George', 'Timothy', 'Ronald',
  'Jose', 'Jason', 'Edward', 'Jeffrey', 'Ryan', 'Jacob', 'Gary', 'Nicholas', 'Eric',
  'Jonathan', 'Stephen', 'Larry', 'Justin', 'Scott', 'Brandon', 'Benjamin', 'Samuel',
  'Gregory', 'Alexander', 'Patrick', 'Frank', 'Raymond', 'Jack', 'Dennis', 'Jerry', 'Tyler',
  'Aaron', 'Adam', 'Nathan', 'Henry', 'Zachary', 'Douglas', 'Peter', 'Kyle', 'Noah', 'Ethan',
  'Jeremy', 'Walter', 'Christian', 'Keith', 'Roger', 'Terry', 'Austin', 'Sean', 'Gerald',
  'Carl', 'Harold', 'Dylan', 'Arthur', 'Lawrence', 'Jordan', 'Jesse', 'Bryan', 'Billy',
  'Bruce', 'Gabriel', 'Joe', 'Logan', 'Alan', 'Juan', 'Albert', 'Willie', 'Elijah', 'Wayne',
  'Randy', 'Vincent', 'Mason', 'Roy', 'Ralph', 'Bobby', 'Russell', 'Bradley', 'Philip',
  'Eugene', 'Liam', 'Oliver', 'Lucas', 'Levi', 'Sebastian', 'Mateo', 'Owen', 'Theodore',
  'Hudson', 'Ezra', 'Miles', 'Leo', 'Julian', 'Luca', 'Carlos', 'Luis', 'Miguel', 'Diego',
  'Javier', 'Alejandro', 'Fernando', 'Ricardo', 'Eduardo', 'Pedro', 'Manuel', 'Francisco',
  'Antonio', 'Jorge', 'Rafael', 'Hugo', 'Pablo', 'Jesús', 'Andrés', 'Ramón', 'Joaquín',
  'Nicolás', 'Agustín', 'Adrián', 'Björn', 'Jürgen', 'François', 'Raphaël', 'Joël', 'Noël',
  'Ángel', 'Óscar', 'Rubén', 'Tomás', 'Matías', 'Sebastián', 'Jérôme', 'Émile', 'Martín',
  'Germán', 'Wei', 'Hiroshi', 'Kenji', 'Raj', 'Arjun', 'Omar', 'Ahmed', 'Mohammed', 'Tariq',
  'Kwame', 'Chidi', 'Kofi', 'Lars', 'Sven', 'Anders', 'Nikolai', 'Dmitri', 'Ivan', 'Pavel',
  'Tomasz', 'Piotr', 'Cian', 'Oisín', 'Declan', 'Hamza', 'Yusuf', 'Minh', 'Duc',
];

export const kSurnames = [
  'Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'García', 'Miller', 'Davis',
  'Rodriguez', 'Rodríguez', 'Martinez', 'Martínez', 'Hernandez', 'Hernández', 'Lopez', 'López',
  'Gonzalez', 'González', 'Wilson', 'Anderson', 'Thomas', 'Taylor', 'Moore', 'Jackson',
  'Martin', 'Lee', 'Perez', 'Pérez', 'Thompson', 'White', 'Harris', 'Sanchez', 'Sánchez',
  'Clark', 'Ramirez', 'Ramírez', 'Lewis', 'Robinson', 'Walker', 'Young', 'Allen', 'King',
  'Wright', 'Scott', 'Torres', 'Nguyen', 'Nguyễn', 'Hill', 'Flores', 'Green', 'Adams',
  'Nelson', 'Baker', 'Hall', 'Rivera', 'Campbell', 'Mitchell', 'Carter', 'Roberts', 'Gomez',
  'Gómez', 'Phillips', 'Evans', 'Turner', 'Diaz', 'Díaz', 'Parker', 'Cruz', 'Edwards',
  'Collins', 'Reyes', 'Stewart', 'Morris', 'Morales', 'Murphy', 'Cook', 'Rogers', 'Gutierrez',
  'Gutiérrez', 'Ortiz', 'Morgan', 'Cooper', 'Peterson', 'Bailey', 'Reed', 'Kelly', 'Howard',
  'Ramos', 'Kim', 'Cox', 'Ward', 'Richardson', 'Watson', 'Brooks', 'Chavez', 'Wood', 'James',
  'Bennett', 'Gray', 'Mendoza', 'Ruiz', 'Hughes', 'Price', 'Alvarez', 'Álvarez', 'Castillo',
  'Sanders', 'Patel', 'Myers', 'Long', 'Ross', 'Foster', 'Jimenez', 'Jiménez', 'Powell',
  'Jenkins', 'Perry', 'Russell', 'Sullivan', 'Bell', 'Coleman', 'Butler', 'Henderson',
  'Barnes', 'Gonzales', 'Fisher', 'Vasquez', 'Simmons', 'Romero', 'Jordan', 'Patterson',
  'Alexander', 'Hamilton', 'Graham', 'Reynolds', 'Griffin', 'Wallace', 'Moreno', 'West',
  'Cole', 'Hayes', 'Bryant', 'Herrera', 'Gibson', 'Ellis', 'Tran', 'Trần', 'Medina', 'Aguilar',
  'Stevens', 'Murray', 'Ford', 'Castro', 'Marshall', 'Owens', 'Harrison', 'Fernandez',
  'Fernández', 'McDonald', 'Woods', 'Washington', 'Kennedy', 'Wells', 'Vargas', 'Henry',
  'Chen', 'Freeman', 'Webb', 'Tucker', 'Guzman', 'Burns', 'Crawford', 'Olson', 'Simpson',
  'Porter', 'Hunter', 'Gordon', 'Mendez', 'Méndez', 'Silva', 'Shaw', 'Snyder', 'Mason',
  'Dixon', 'Munoz', 'Muñoz', 'Hunt', 'Hicks', 'Holmes', 'Palmer', 'Wagner', 'Black',
  'Robertson', 'Boyd', 'Rose', 'Stone', 'Salazar', 'Fox', 'Warren', 'Mills', 'Meyer', 'Rice',
  'Schmidt', 'Garza', 'Daniels', 'Ferguson', 'Nichols', 'Stephens', 'Soto', 'Weaver', 'Ryan',
  'Gardner', 'Payne', 'Grant', 'Dunn', 'Kelley', 'Spencer', 'Hawkins', 'Arnold', 'Pierce',
  'Vazquez', 'Vázquez', 'Hansen', 'Peters', 'Santos', 'Hart', 'Bradley', 'Knight', 'Elliott',
  'Cunningham', 'Duncan', 'Armstrong', 'Hudson', 'Carroll', 'Lane', 'Riley', 'Andrews',
  'Alvarado', 'Ray', 'Delgado', 'Berry', 'Perkins', 'Hoffman', 'Johnston', 'Matthews', 'Pena',
  'Peña', 'Richards', 'Contreras', 'Willis', 'Carpenter', 'Lawrence', 'Sandoval', 'Guerrero',
  'George', 'Chapman', 'Rios', 'Ríos', 'Estrada', 'Ortega', 'Watkins', 'Greene', 'Nunez',
  'Nuñez', 'Núñez', 'Wheeler', 'Valdez', 'Harper', 'Burke', 'Larson', 'Santiago', 'Maldonado',
  'Morrison', 'Franklin', 'Carlson', 'Austin', 'Dominguez', 'Domínguez', 'Carr', 'Lawson',
  'Jacobs', 'Lynch', 'Singh', 'Vega', 'Bishop', 'Montgomery', 'Oliver', 'Jensen', 'Harvey',
  'Williamson', 'Gilbert', 'Dean', 'Sims', 'Espinoza', 'Howell', 'Li', 'Wong', 'Reid',
  'Hanson', 'Le', 'Lê', 'Wang', 'Zhang', 'Liu', 'Yang', 'Huang', 'Zhao', 'Wu', 'Zhou', 'Xu',
  'Sun', 'Ma', 'Zhu', 'Hu', 'Guo', 'Tanaka', 'Suzuki', 'Sato', 'Watanabe', 'Takahashi',
  'Yamamoto', 'Nakamura', 'Kobayashi', 'Park', 'Choi', 'Jung', 'Kang', 'Cho', 'Yoon', 'Pham',
  'Phạm', 'Hoang', 'Phan', 'Vu', 'Dang', 'Bui', 'Do', 'Shah', 'Kumar', 'Sharma', 'Gupta',
  'Mehta', 'Reddy', 'Iyer', 'Khan', 'Ali', 'Hussain', 'Ahmed', 'Rahman', 'Okafor', 'Okeke',
  'Adeyemi', 'Mensah', 'Owusu', 'Abebe', 'Haile', 'Cohen', 'Levy', 'Friedman', 'Katz',
  'Schwartz', 'Weiss', 'Rossi', 'Russo', 'Ferrari', 'Esposito', 'Bianchi', 'Romano', 'Colombo',
  'Ricci', 'Marino', 'Greco', 'Novak', 'Kowalski', 'Nowak', 'Wojcik', 'Ivanov', 'Petrov',
  'Smirnov', 'Popov', 'Volkov', 'Kuznetsov', 'Visser', 'Bakker', 'Janssen', 'Larsen',
  'Nielsen', 'Andersen', 'Johansson', 'Karlsson', 'Lindberg', 'Eriksson', 'Virtanen',
  'Korhonen', 'Byrne', 'Kavanagh', 'Doyle', 'Walsh', 'Gallagher', 'Fitzgerald', 'MacLeod',
  'Fraser', 'Sinclair', 'Dubois', 'Lambert', 'Moreau', 'Laurent', 'Girard', 'Bonnet',
  'Rousseau', 'Fontaine', 'Chevalier', 'Lefèvre', 'Lemaître', 'Béranger', 'Weber', 'Fischer',
  'Schneider', 'Becker', 'Schulz', 'Hoffmann', 'Koch', 'Wolf', 'Neumann', 'Zimmermann',
  'Braun', 'Hartmann', 'Lange', 'Muller', 'Müller', 'Schröder', 'Köhler', 'Böhm', 'Krüger',
  'Günther', 'Jäger', 'Ibáñez', 'Zúñiga', 'Cortés', 'Suárez', 'Benítez', 'Beltrán', 'Durán',
  'Kovács', 'Szabó', 'Tóth', 'Horváth', 'Dvořák', 'Novotný', 'Procházka', 'Čapek',
];

const kCities = [
  'Alderbrook', 'Ashcombe Falls', 'Bramblecrest', 'Brightwater Glen', 'Cedarholm',
  'Copperfield Junction', 'Dovetail Springs', 'Eastmere', 'Elmsworth Hollow', 'Fairhollow',
  'Fernwick', 'Foxbury Crossing', 'Glenmarrow', 'Greywillow', 'Hartsbridge Landing',
  'Hollowmere', 'Ironleaf', 'Juniper Reach', 'Kestrel Point', 'Larkhaven', 'Lindenmoor',
  'Maplecombe', 'Marrowfield', 'Northbrook Vale', 'Oakenshaw Mills', 'Pebbleford',
  'Quillhaven', 'Ravensmere', 'Rosewick', 'Saltmarsh Bend', 'Silverbirch', 'Stonecroft Heights',
  'Thistledown', 'Umberfield', 'Valewood', 'Westerhollow', 'Willowmere Park', 'Wrenfield',
  'Yarrowby', 'Zephyr Ridge',
];
const kStates = [
  'CA', 'TX', 'FL', 'NY', 'PA', 'IL', 'OH', 'GA', 'NC', 'MI', 'NJ', 'VA', 'WA', 'AZ', 'MA',
  'TN', 'IN', 'MO', 'MD', 'WI', 'CO', 'MN', 'SC', 'AL', 'LA', 'KY', 'OR', 'OK', 'CT', 'UT',
  'IA', 'NV', 'AR', 'MS', 'KS', 'NM', 'NE', 'ID', 'WV', 'HI', 'NH', 'ME', 'MT', 'RI', 'DE',
  'SD', 'ND', 'AK', 'VT', 'WY',
];
const kAreaCodes = [
  '201', '202', '212', '213', '214', '215', '303', '305', '312', '313', '404', '415', '469',
  '503', '512', '602', '608', '612', '617', '702', '704', '713', '720', '808', '816', '901',
  '919', '971',
];
const kStreets = [
  'Maple', 'Oak', 'Pine', 'Cedar', 'Elm', 'Willow', 'Birch', 'Lakeview', 'Hillcrest',
  'Sunset', 'Meadow', 'River', 'Park', 'Church', 'Mill', 'Spring', 'Ridge', 'Forest',
  'Highland', 'Orchard', 'Chestnut', 'Walnut', 'Juniper', 'Magnolia', 'Aspen', 'Sycamore',
  'Hawthorn', 'Linden', 'Bramble', 'Heron', 'Kingfisher', 'Larkspur',
];
const kStreetSuffixes = [
  'Street', 'Avenue', 'Road', 'Lane', 'Drive', 'Court', 'Way', 'Place', 'Boulevard', 'Terrace',
];
// [dateTime suffix, offset in minutes east of UTC, weight]
const kTimezones = [
  ['-05:00', -300, 30], ['-06:00', -360, 20], ['-07:00', -420, 10], ['-08:00', -480, 20],
  ['-04:00', -240, 8], ['-10:00', -600, 2], ['Z', 0, 4], ['+01:00', 60, 4], ['+05:30', 330, 2],
];

// ---------------------------------------------------------------------------------------
// Observation codes. lo/hi give a plausible range; `byAge` overrides it for codes that depend
// on age; `derived` codes are computed from the patient's growth baseline.

const kVital = { code: 'vital-signs', display: 'Vital Signs' };
const kLab = { code: 'laboratory', display: 'Laboratory' };

export const kCodes = [
  { code: '8867-4', display: 'Heart rate', cat: kVital, unit: 'beats/minute', ucum: '/min',
    dec: 0, weight: 10, byAge: [[1, 100, 160], [5, 80, 130], [12, 70, 110], [200, 55, 100]] },
  { code: '8480-6', display: 'Systolic blood pressure', cat: kVital, unit: 'mmHg',
    ucum: 'mm[Hg]', dec: 0, weight: 10, byAge: [[12, 85, 115], [200, 100, 160]] },
  { code: '8462-4', display: 'Diastolic blood pressure', cat: kVital, unit: 'mmHg',
    ucum: 'mm[Hg]', dec: 0, weight: 10, byAge: [[12, 50, 75], [200, 60, 100]] },
  { code: '9279-1', display: 'Respiratory rate', cat: kVital, unit: 'breaths/minute',
    ucum: '/min', dec: 0, weight: 6, byAge: [[1, 30, 50], [5, 22, 34], [12, 18, 26],
      [200, 12, 20]] },
  { code: '8310-5', display: 'Body temperature', cat: kVital, unit: 'Cel', ucum: 'Cel', dec: 1,
    weight: 6, lo: 36.0, hi: 38.6 },
  { code: '29463-7', display: 'Body weight', cat: kVital, unit: 'kg', ucum: 'kg', dec: 1,
    weight: 8, derived: 'weight' },
  { code: '8302-2', display: 'Body height', cat: kVital, unit: 'cm', ucum: 'cm', dec: 1,
    weight: 5, derived: 'height' },
  { code: '39156-5', display: 'Body mass index (BMI) [Ratio]', cat: kVital, unit: 'kg/m2',
    ucum: 'kg/m2', dec: 1, weight: 5, derived: 'bmi' },
  { code: '59408-5', display: 'Oxygen saturation in Arterial blood by Pulse oximetry',
    cat: kVital, unit: '%', ucum: '%', dec: 0, weight: 6, lo: 91, hi: 100 },
  { code: '2339-0', display: 'Glucose [Mass/volume] in Blood', cat: kLab, unit: 'mg/dL',
    ucum: 'mg/dL', dec: 0, weight: 4, lo: 65, hi: 220 },
  { code: '2345-7', display: 'Glucose [Mass/volume] in Serum or Plasma', cat: kLab,
    unit: 'mg/dL', ucum: 'mg/dL', dec: 0, weight: 3, lo: 70, hi: 200 },
  { code: '718-7', display: 'Hemoglobin [Mass/volume] in Blood', cat: kLab, unit: 'g/dL',
    ucum: 'g/dL', dec: 1, weight: 3, lo: 9.5, hi: 18.0 },
  { code: '4548-4', display: 'Hemoglobin A1c/Hemoglobin.total in Blood', cat: kLab, unit: '%',
    ucum: '%', dec: 1, weight: 2, lo: 4.4, hi: 10.5 },
  { code: '2093-3', display: 'Cholesterol [Mass/volume] in Serum or Plasma', cat: kLab,
    unit: 'mg/dL', ucum: 'mg/dL', dec: 0, weight: 2, lo: 120, hi: 300 },
  { code: '2571-8', display: 'Triglyceride [Mass/volume] in Serum or Plasma', cat: kLab,
    unit: 'mg/dL', ucum: 'mg/dL', dec: 0, weight: 2, lo: 45, hi: 400 },
  { code: '2085-9', display: 'Cholesterol in HDL [Mass/volume] in Serum or Plasma', cat: kLab,
    unit: 'mg/dL', ucum: 'mg/dL', dec: 0, weight: 2, lo: 25, hi: 95 },
  { code: '13457-7',
    display: 'Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation', cat: kLab,
    unit: 'mg/dL', ucum: 'mg/dL', dec: 0, weight: 2, lo: 50, hi: 210 },
  { code: '2160-0', display: 'Creatinine [Mass/volume] in Serum or Plasma', cat: kLab,
    unit: 'mg/dL', ucum: 'mg/dL', dec: 2, weight: 3, lo: 0.45, hi: 2.2 },
  { code: '3094-0', display: 'Urea nitrogen [Mass/volume] in Serum or Plasma', cat: kLab,
    unit: 'mg/dL', ucum: 'mg/dL', dec: 0, weight: 2, lo: 6, hi: 32 },
  { code: '2951-2', display: 'Sodium [Moles/volume] in Serum or Plasma', cat: kLab,
    unit: 'mmol/L', ucum: 'mmol/L', dec: 0, weight: 3, lo: 132, hi: 148 },
  { code: '2823-3', display: 'Potassium [Moles/volume] in Serum or Plasma', cat: kLab,
    unit: 'mmol/L', ucum: 'mmol/L', dec: 1, weight: 3, lo: 3.2, hi: 5.4 },
  { code: '2075-0', display: 'Chloride [Moles/volume] in Serum or Plasma', cat: kLab,
    unit: 'mmol/L', ucum: 'mmol/L', dec: 0, weight: 2, lo: 95, hi: 110 },
  { code: '2028-9', display: 'Carbon dioxide, total [Moles/volume] in Serum or Plasma',
    cat: kLab, unit: 'mmol/L', ucum: 'mmol/L', dec: 0, weight: 2, lo: 19, hi: 32 },
  { code: '17861-6', display: 'Calcium [Mass/volume] in Serum or Plasma', cat: kLab,
    unit: 'mg/dL', ucum: 'mg/dL', dec: 1, weight: 2, lo: 8.2, hi: 10.6 },
  { code: '6690-2', display: 'Leukocytes [#/volume] in Blood by Automated count', cat: kLab,
    unit: '10*3/uL', ucum: '10*3/uL', dec: 1, weight: 3, lo: 3.5, hi: 12.5 },
  { code: '789-8', display: 'Erythrocytes [#/volume] in Blood by Automated count', cat: kLab,
    unit: '10*6/uL', ucum: '10*6/uL', dec: 2, weight: 2, lo: 3.8, hi: 6.0 },
  { code: '4544-3', display: 'Hematocrit [Volume Fraction] of Blood by Automated count',
    cat: kLab, unit: '%', ucum: '%', dec: 1, weight: 2, lo: 32, hi: 53 },
  { code: '777-3', display: 'Platelets [#/volume] in Blood by Automated count', cat: kLab,
    unit: '10*3/uL', ucum: '10*3/uL', dec: 0, weight: 2, lo: 130, hi: 460 },
  { code: '1742-6',
    display: 'Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma',
    cat: kLab, unit: 'U/L', ucum: 'U/L', dec: 0, weight: 2, lo: 7, hi: 65 },
  { code: '1920-8',
    display: 'Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma',
    cat: kLab, unit: 'U/L', ucum: 'U/L', dec: 0, weight: 2, lo: 10, hi: 55 },
  { code: '3016-3', display: 'Thyrotropin [Units/volume] in Serum or Plasma', cat: kLab,
    unit: 'm[IU]/L', ucum: 'm[IU]/L', dec: 2, weight: 1, lo: 0.3, hi: 5.5 },
];

// Everything but id, subject, time and value, serialized once: JSON.stringify per
// observation would dominate the run time.
for (const c of kCodes) {
  c.head = `"status":"final","category":[{"coding":[{"system":"${kCategorySystem}",` +
    `"code":"${c.cat.code}","display":"${c.cat.display}"}]}],"code":{"coding":[{"system":` +
    `"${kLoincSystem}","code":"${c.code}","display":${JSON.stringify(c.display)}}],` +
    `"text":${JSON.stringify(c.display)}}`;
  c.tail = `,"unit":${JSON.stringify(c.unit)},"system":"${kUcumSystem}",` +
    `"code":${JSON.stringify(c.ucum)}}}`;
}

// ---------------------------------------------------------------------------------------
// Deterministic randomness.

function fmix32(h) {  // MurmurHash3's finalizer: a bijection on 32 bits with full avalanche.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const kTagPatient = 1;
const kTagObservations = 2;
const kTagSamples = 3;
const kTagPermutations = 4;

function streamSeed(seed, tag, i) {
  return fmix32((fmix32((seed ^ Math.imul(tag, 0x9e3779b1)) >>> 0) + i) >>> 0);
}

// mulberry32: one 32-bit state, fast, and plenty for tens of draws per stream.
export function mulberry32(state) {
  let a = state | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const randInt = (rng, n) => Math.floor(rng() * n);  // 0 .. n-1
const triangular = (rng, lo, hi) => lo + ((rng() + rng()) / 2) * (hi - lo);

// Maps a uniform draw to an index with probability proportional to its weight, through a
// 65,536-slot table (one lookup instead of a search).
function weightedTable(weights) {
  const total = weights.reduce((a, b) => a + b, 0);
  const slots = new Uint16Array(65536);
  let acc = 0;
  let slot = 0;
  for (let k = 0; k < weights.length; ++k) {
    acc += weights[k];
    const end = k === weights.length - 1 ? 65536 : Math.round((acc / total) * 65536);
    for (; slot < end; ++slot) slots[slot] = k;
  }
  return (rng) => slots[Math.floor(rng() * 65536)];
}
const zipfWeights = (n) => Array.from({ length: n }, (_, r) => 1 / (r + 10));

const pickFemale = weightedTable(zipfWeights(kFemaleGiven.length));
const pickMale = weightedTable(zipfWeights(kMaleGiven.length));
const pickSurname = weightedTable(zipfWeights(kSurnames.length));
const pickTimezone = weightedTable(kTimezones.map((t) => t[2]));
const pickCode = weightedTable(kCodes.map((c) => c.weight));

// (a * x) mod m without leaving exact double arithmetic (a, x < m <= 2^27).
function mulMod(a, x, m) {
  const hi = Math.floor(a / 65536);
  const lo = a % 65536;
  return (((hi * x) % m) * 65536 + lo * x) % m;
}
function gcd(a, b) {
  while (b) [a, b] = [b, a % b];
  return a;
}
// x -> (a x + b) mod m with gcd(a, m) = 1 is a bijection of 0 .. m-1.
function affinePermutation(rng, m) {
  let a;
  do a = 1 + randInt(rng, m - 1); while (gcd(a, m) !== 1);
  const b = randInt(rng, m);
  return (x) => (mulMod(a, x, m) + b) % m;
}

// ---------------------------------------------------------------------------------------
// Dates, as days since 1970-01-01 (H. Hinnant's civil calendar algorithms).

export function daysFromCivil(y, m, d) {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}
function civilFromDays(z) {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) -
    Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [era * 400 + yoe + (m <= 2 ? 1 : 0), m, d];
}
const pad = (n, w) => String(n).padStart(w, '0');
export function dayString(z) {
  const [y, m, d] = civilFromDays(z);
  return `${pad(y, 4)}-${pad(m, 2)}-${pad(d, 2)}`;
}

const kBirthFirstDay = daysFromCivil(1920, 1, 1);
const kBirthLastDay = daysFromCivil(2024, 12, 31);
const kObsFirstDay = daysFromCivil(2015, 1, 1);
const kObsLastDay = daysFromCivil(2025, 12, 31);

// ---------------------------------------------------------------------------------------
// Resources.

export const patientId = (i) => `p${pad(i + 1, 8)}`;
export const observationId = (i, j) => `o${pad(i + 1, 8)}-${pad(j + 1, 3)}`;

// Case- and accent-insensitive form used for the manifest's expected counts.
export const normalize = (s) => s.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();

// Seed-wide state: the identifier permutations.
export function makeContext(seed) {
  const rng = mulberry32(streamSeed(seed, kTagPermutations, 0));
  return { seed, mrn: affinePermutation(rng, kMrnSpace), ssn: affinePermutation(rng, kSsnSpace) };
}

function ssnString(s) {
  const area = 900 + Math.floor(s / (kSsnGroups * kSsnSerials));
  const rest = s % (kSsnGroups * kSsnSerials);
  const group = pad(1 + Math.floor(rest / kSsnSerials), 2);
  return `${area}-${group}-${pad(1 + (rest % kSsnSerials), 4)}`;
}

// Patient i, plus the hidden attributes its observations need.
export function makePatient(ctx, i) {
  const rng = mulberry32(streamSeed(ctx.seed, kTagPatient, i));
  const female = rng() < 0.51;
  const list = female ? kFemaleGiven : kMaleGiven;
  const pick = female ? pickFemale : pickMale;
  const given = [list[pick(rng)]];
  if (rng() < 0.45) {
    let second = list[pick(rng)];
    if (second === given[0]) second = list[pick(rng)];
    if (second !== given[0]) given.push(second);
  }
  const surname = pickSurname(rng);
  const birthDay = kBirthFirstDay + randInt(rng, kBirthLastDay - kBirthFirstDay + 1);
  const id = patientId(i);

  const identifier = [{
    use: 'usual',
    type: { coding: [{ system: kIdentifierTypeSystem, code: 'MR',
      display: 'Medical record number' }] },
    system: kMrnSystem,
    value: `MRN${pad(ctx.mrn(i), 8)}`,
  }];
  if (rng() < kSsnShare) {
    identifier.push({
      use: 'official',
      type: { coding: [{ system: kIdentifierTypeSystem, code: 'SS',
        display: 'Social Security number' }] },
      system: kSsnSystem,
      value: ssnString(ctx.ssn(i)),
    });
  }
  const area = kAreaCodes[randInt(rng, kAreaCodes.length)];
  const phone = () => `(${area}) 555-01${pad(randInt(rng, 100), 2)}`;
  const telecom = [{ system: 'phone', value: phone(), use: 'home' }];
  if (rng() < 0.5) telecom.push({ system: 'phone', value: phone(), use: 'mobile' });
  const line = [`${1 + randInt(rng, 9999)} ${kStreets[randInt(rng, kStreets.length)]} ` +
    `${kStreetSuffixes[randInt(rng, kStreetSuffixes.length)]}`];
  if (rng() < 0.15) line.push(`Apt ${1 + randInt(rng, 400)}`);
  const address = [{
    use: 'home',
    line,
    city: kCities[randInt(rng, kCities.length)],
    state: kStates[randInt(rng, kStates.length)],
    postalCode: `000${pad(randInt(rng, 100), 2)}`,
    country: 'US',
  }];
  const tz = pickTimezone(rng);
  // Growth baseline: adult height by sex and an adult BMI, so a patient's height and weight
  // observations agree with each other over time.
  const adultHeight = (female ? 163 : 177) + (rng() + rng() + rng() - 1.5) * 14;
  const adultBmi = triangular(rng, 18.5, 38);

  const resource = {
    resourceType: 'Patient',
    id,
    identifier,
    active: true,
    name: [{ use: 'official', family: kSurnames[surname], given }],
    telecom,
    gender: female ? 'female' : 'male',
    birthDate: dayString(birthDay),
    address,
  };
  return { i, id, resource, json: JSON.stringify(resource), surname, birthDay, tz, adultHeight,
    adultBmi };
}

// Height (cm) and BMI at an age, from the patient's adult baseline: a rough growth curve
// that gives ~50 cm at birth, ~105 cm at 5, ~135 cm at 10; BMI ~16 in childhood.
function growth(p, age) {
  const height = age >= 18 ? p.adultHeight : 50 + (p.adultHeight - 50) * Math.pow(age / 18, 0.6);
  const bmi = age >= 18 ? p.adultBmi : age < 10 ? 16 : 16 + (p.adultBmi - 16) * ((age - 10) / 8);
  return { height, bmi };
}

function roundTo(x, dec) {
  return Number(x.toFixed(dec));
}

function drawValue(c, rng, p, age) {
  if (c.derived) {
    const { height, bmi } = growth(p, age);
    const jitter = () => 1 + (rng() - 0.5) * 0.04;
    const h = height * (c.derived === 'height' ? jitter() : 1);
    const b = bmi * jitter();
    if (c.derived === 'height') return roundTo(h, c.dec);
    if (c.derived === 'bmi') return roundTo(b, c.dec);
    return roundTo(b * (h / 100) * (h / 100), c.dec);
  }
  let lo = c.lo;
  let hi = c.hi;
  if (c.byAge) {
    const band = c.byAge.find((b) => age < b[0]);
    lo = band[1];
    hi = band[2];
  }
  return roundTo(triangular(rng, lo, hi), c.dec);
}

// Observations of patient p, in j order; calls emit(obs) with
// {id, code (index into kCodes), instant (ms since epoch), json}.
export function makeObservations(ctx, p, count, emit) {
  const rng = mulberry32(streamSeed(ctx.seed, kTagObservations, p.i));
  const [tzText, tzMinutes] = kTimezones[p.tz];
  const first = Math.max(kObsFirstDay, p.birthDay);
  const subject = `"subject":{"reference":"Patient/${p.id}"}`;
  for (let j = 0; j < count; ++j) {
    const code = pickCode(rng);
    const c = kCodes[code];
    const day = first + randInt(rng, kObsLastDay - first + 1);
    const seconds = 7 * 3600 + randInt(rng, 12 * 3600);
    const age = (day - p.birthDay) / 365.25;
    const value = drawValue(c, rng, p, age);
    const id = observationId(p.i, j);
    const local = `${dayString(day)}T${pad(Math.floor(seconds / 3600), 2)}:` +
      `${pad(Math.floor(seconds / 60) % 60, 2)}:${pad(seconds % 60, 2)}${tzText}`;
    const json = `{"resourceType":"Observation","id":"${id}",${c.head},${subject},` +
      `"effectiveDateTime":"${local}","valueQuantity":{"value":${value}${c.tail}`;
    emit({ id, code, instant: (day * 86400 + seconds - tzMinutes * 60) * 1000, json });
  }
}

// ---------------------------------------------------------------------------------------
// Output.

// A file written through a write stream, hashed and counted on the way.
class Sink {
  constructor(file) {
    this.name = path.basename(file);
    this.stream = fs.createWriteStream(file, { highWaterMark: 1 << 20 });
    this.hash = crypto.createHash('sha256');
    this.bytes = 0;
  }
  async write(text) {
    if (!text) return;
    const buf = Buffer.from(text, 'utf8');
    this.hash.update(buf);
    this.bytes += buf.length;
    if (!this.stream.write(buf)) await once(this.stream, 'drain');
  }
  async close() {
    this.stream.end();
    await finished(this.stream);
    return { name: this.name, bytes: this.bytes, sha256: this.hash.digest('hex') };
  }
}

// Splits a stream of entries into transaction Bundle files of at most `size` entries.
class BundleWriter {
  constructor(dir, size, total) {
    this.dir = dir;
    this.size = size;
    this.width = Math.max(4, String(Math.ceil(total / size)).length);
    this.file = 0;
    this.inFile = 0;
    this.parts = [];
    this.sink = null;
    this.done = [];  // [sink, text] of completed files not yet flushed
    this.files = [];
  }
  push(type, id, json) {
    if (this.inFile === 0) {
      this.file += 1;
      const name = `bundles-${pad(this.file, this.width)}.json`;
      this.sink = new Sink(path.join(this.dir, name));
      this.parts.push('{"resourceType":"Bundle","type":"transaction","entry":[');
    } else {
      this.parts.push(',');
    }
    this.parts.push(`{"resource":${json},"request":{"method":"PUT","url":"${type}/${id}"}}`);
    this.inFile += 1;
    if (this.inFile === this.size) this.endFile();
  }
  endFile() {
    this.parts.push(']}\n');
    this.done.push([this.sink, this.parts.join(''), this.inFile]);
    this.parts = [];
    this.inFile = 0;
    this.sink = null;
  }
  async flush() {
    for (const [sink, text, entries] of this.done) {
      await sink.write(text);
      const { name, bytes, sha256 } = await sink.close();
      this.files.push({ name, entries, bytes, sha256 });
    }
    this.done = [];
    if (this.sink) {
      await this.sink.write(this.parts.join(''));
      this.parts = [];
    }
  }
  async close() {
    if (this.sink) this.endFile();
    await this.flush();
    return this.files;
  }
}

const kOutputName =
  /^(Patient\.ndjson|Observation\.ndjson|manifest\.json(\.tmp)?|bundles-\d+\.json)$/;

function prepareDir(dir, force) {
  fs.mkdirSync(dir, { recursive: true });
  const earlier = fs.readdirSync(dir).filter((f) => kOutputName.test(f));
  if (earlier.length && !force) {
    throw new UsageError(`${dir} already holds generator output (${earlier[0]} ...); ` +
      'pass --force to replace it');
  }
  for (const f of earlier) fs.unlinkSync(path.join(dir, f));
}

// ---------------------------------------------------------------------------------------
// Manifest samples: drawn from their own stream, computed by regenerating the sampled
// patients (pure functions of seed and index), plus the two histograms kept while streaming.

function distinctIndices(rng, n, k) {
  k = Math.min(k, n);
  if (n <= 4 * k) {  // small n: a partial Fisher-Yates shuffle
    const all = Array.from({ length: n }, (_, x) => x);
    for (let x = 0; x < k; ++x) {
      const y = x + randInt(rng, n - x);
      [all[x], all[y]] = [all[y], all[x]];
    }
    return all.slice(0, k);
  }
  const seen = new Set();
  const out = [];
  while (out.length < k) {
    const x = randInt(rng, n);
    if (!seen.has(x)) {
      seen.add(x);
      out.push(x);
    }
  }
  return out;
}

function identifierSamples(ctx, rng, n) {
  const half = kSamples / 2;
  const mrn = [];
  const ssn = [];
  for (const i of distinctIndices(rng, n, 4 * kSamples)) {
    const p = makePatient(ctx, i);
    const ids = p.resource.identifier;
    // Alternate MRN and SSN while both quotas are open; a patient without an SSN gives an MRN.
    const hasSsn = ids.length > 1;
    if (hasSsn && ssn.length < half && (ssn.length < mrn.length || mrn.length === half)) {
      ssn.push({ system: kSsnSystem, value: ids[1].value, patient: p.id, expected: 1 });
    } else if (mrn.length < half) {
      mrn.push({ system: kMrnSystem, value: ids[0].value, patient: p.id, expected: 1 });
    }
    if (mrn.length === half && ssn.length === half) break;
  }
  const hits = [];
  for (let k = 0; k < Math.max(mrn.length, ssn.length); ++k) {
    if (k < mrn.length) hits.push(mrn[k]);
    if (k < ssn.length) hits.push(ssn[k]);
  }
  const misses = [];
  // An existing value under the other system: a token search must not ignore the system.
  for (let k = 0; k < 5 && k < hits.length; ++k) {
    const h = hits[k];
    misses.push({ system: h.system === kMrnSystem ? kSsnSystem : kMrnSystem, value: h.value,
      patient: null, expected: 0 });
  }
  // Group 00 is never generated (nor issued by the SSA).
  for (let k = 0; k < 5; ++k) {
    const value = `${900 + randInt(rng, 100)}-00-${pad(1 + randInt(rng, 9999), 4)}`;
    misses.push({ system: kSsnSystem, value, patient: null, expected: 0 });
  }
  return { hits, misses };
}

function familyPrefixSamples(rng, surnameCounts) {
  const normalized = kSurnames.map(normalize);
  const accented = kSurnames.map((s, k) => k).filter((k) => normalize(kSurnames[k]) !==
    kSurnames[k].toLowerCase());
  const seen = new Set();
  const out = [];
  for (let attempt = 0; out.length < kSamples && attempt < 100 * kSamples; ++attempt) {
    // The first tenth come from accented surnames, so accent folding is always exercised.
    const k = out.length < kSamples / 10 ? accented[randInt(rng, accented.length)]
      : rng() < 0.7 ? pickSurname(rng) : randInt(rng, kSurnames.length);
    let name = kSurnames[k];
    if (out.length >= kSamples / 10 && rng() < 0.5) {
      name = name.normalize('NFD').replace(/\p{M}/gu, '');
    }
    const chars = [...name.normalize('NFC')];
    const r = rng();
    const len = r < 0.1 ? chars.length : r < 0.2 ? 1 : r < 0.4 ? 2 : r < 0.7 ? 3 : r < 0.9 ? 4
      : 5 + randInt(rng, 2);
    let prefix = chars.slice(0, Math.min(len, chars.length)).join('');
    const c = rng();
    if (c < 0.1) prefix = prefix.toLowerCase();
    else if (c < 0.2) prefix = prefix.toUpperCase();
    if (seen.has(prefix)) continue;
    seen.add(prefix);
    const np = normalize(prefix);
    let expected = 0;
    for (let s = 0; s < kSurnames.length; ++s) {
      if (normalized[s].startsWith(np)) expected += surnameCounts[s];
    }
    out.push({ prefix, expected });
  }
  return out;
}

function birthDateSamples(rng, birthHist) {
  const out = [];
  for (let k = 0; k < kSamples; ++k) {
    const day = kBirthFirstDay + randInt(rng, kBirthLastDay - kBirthFirstDay + 1);
    const [y, m] = civilFromDays(day);
    const r = rng();
    let ge;
    let lt;
    if (r < 0.2) {
      [ge, lt] = [day, day + 1];
    } else if (r < 0.5) {
      ge = daysFromCivil(y, m, 1);
      lt = m === 12 ? daysFromCivil(y + 1, 1, 1) : daysFromCivil(y, m + 1, 1);
    } else if (r < 0.8) {
      [ge, lt] = [daysFromCivil(y, 1, 1), daysFromCivil(y + 1, 1, 1)];
    } else {
      const decade = y - (y % 10);
      [ge, lt] = [daysFromCivil(decade, 1, 1), daysFromCivil(decade + 10, 1, 1)];
    }
    let expected = 0;
    for (let d = Math.max(ge, kBirthFirstDay); d < Math.min(lt, kBirthLastDay + 1); ++d) {
      expected += birthHist[d - kBirthFirstDay];
    }
    out.push({ ge: dayString(ge), lt: dayString(lt), expected });
  }
  return out;
}

const monthStart = (monthIndex) =>
  daysFromCivil(Math.floor(monthIndex / 12), (monthIndex % 12) + 1, 1);
const instantString = (day) => `${dayString(day)}T00:00:00Z`;

function observationSamples(ctx, rng, n, perPatient) {
  const out = [];
  for (const i of distinctIndices(rng, n, kSamples)) {
    const p = makePatient(ctx, i);
    const obs = [];
    makeObservations(ctx, p, perPatient, (o) => obs.push(o));
    let code;
    let geMonth;
    let ltMonth;
    if (obs.length && rng() < 0.9) {
      const o = obs[randInt(rng, obs.length)];
      const [y, m] = civilFromDays(Math.floor(o.instant / 86400000));
      const month = y * 12 + (m - 1);
      code = o.code;
      geMonth = month - randInt(rng, 13);
      ltMonth = month + 1 + randInt(rng, 25);
    } else {
      // Usually a code this patient has no observation of: an empty result.
      const have = new Set(obs.map((o) => o.code));
      const missing = kCodes.map((_, k) => k).filter((k) => !have.has(k));
      code = missing.length ? missing[randInt(rng, missing.length)] : randInt(rng, kCodes.length);
      geMonth = 2015 * 12 + randInt(rng, 60);
      ltMonth = geMonth + 60;
    }
    const geMs = monthStart(geMonth) * 86400000;
    const ltMs = monthStart(ltMonth) * 86400000;
    const same = obs.filter((o) => o.code === code);
    out.push({
      patient: p.id,
      system: kLoincSystem,
      code: kCodes[code].code,
      ge: instantString(monthStart(geMonth)),
      lt: instantString(monthStart(ltMonth)),
      expected: same.filter((o) => o.instant >= geMs && o.instant < ltMs).length,
      expectedAnyDate: same.length,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Main.

class UsageError extends Error {}

const kUsage = `usage: node bench/synth/generate.mjs --patients N --out DIR
  [--observations-per-patient K] [--seed S] [--format ndjson|bundle] [--bundle-size M]
  [--force] [--quiet]   (see the header of this file)`;

function parseIntOption(values, name, fallback, lo, hi) {
  const text = values[name];
  if (text === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`);
    return fallback;
  }
  if (!/^\d+$/.test(text) || Number(text) < lo || Number(text) > hi) {
    throw new UsageError(`--${name} must be an integer in ${lo} .. ${hi}, got "${text}"`);
  }
  return Number(text);
}

export function parseOptions(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      options: {
        patients: { type: 'string' },
        'observations-per-patient': { type: 'string' },
        seed: { type: 'string' },
        out: { type: 'string' },
        format: { type: 'string' },
        'bundle-size': { type: 'string' },
        force: { type: 'boolean' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    });
  } catch (e) {
    throw new UsageError(e.message);
  }
  const v = parsed.values;
  if (v.help) return { help: true };
  const format = v.format ?? 'ndjson';
  if (format !== 'ndjson' && format !== 'bundle') {
    throw new UsageError(`--format must be ndjson or bundle, got "${format}"`);
  }
  if (v['bundle-size'] !== undefined && format !== 'bundle') {
    throw new UsageError('--bundle-size needs --format bundle');
  }
  if (!v.out) throw new UsageError('--out is required');
  return {
    patients: parseIntOption(v, 'patients', undefined, 1, kMaxPatients),
    perPatient: parseIntOption(v, 'observations-per-patient', 5, 0, kMaxObservationsPerPatient),
    seed: parseIntOption(v, 'seed', 1, 0, 0xffffffff),
    out: v.out,
    format,
    bundleSize: parseIntOption(v, 'bundle-size', 500, 1, 100000),
    force: Boolean(v.force),
    quiet: Boolean(v.quiet),
  };
}

export async function generate(opt) {
  const started = process.hrtime.bigint();
  prepareDir(opt.out, opt.force);
  const ctx = makeContext(opt.seed);
  const n = opt.patients;
  const k = opt.perPatient;
  const surnameCounts = new Float64Array(kSurnames.length);
  const birthHist = new Uint32Array(kBirthLastDay - kBirthFirstDay + 1);

  const ndjson = opt.format === 'ndjson';
  const patientSink = ndjson ? new Sink(path.join(opt.out, 'Patient.ndjson')) : null;
  const obsSink = ndjson ? new Sink(path.join(opt.out, 'Observation.ndjson')) : null;
  const bundles = ndjson ? null : new BundleWriter(opt.out, opt.bundleSize, n * (k + 1));

  const kBatch = 512;
  let nextReport = n / 10;
  for (let start = 0; start < n; start += kBatch) {
    const end = Math.min(n, start + kBatch);
    const pLines = [];
    const oLines = [];
    for (let i = start; i < end; ++i) {
      const p = makePatient(ctx, i);
      surnameCounts[p.surname] += 1;
      birthHist[p.birthDay - kBirthFirstDay] += 1;
      if (ndjson) {
        pLines.push(p.json);
        makeObservations(ctx, p, k, (o) => oLines.push(o.json));
      } else {
        bundles.push('Patient', p.id, p.json);
        makeObservations(ctx, p, k, (o) => bundles.push('Observation', o.id, o.json));
      }
    }
    if (ndjson) {
      pLines.push('');
      if (oLines.length) oLines.push('');
      await Promise.all([patientSink.write(pLines.join('\n')), obsSink.write(oLines.join('\n'))]);
    } else {
      await bundles.flush();
    }
    if (!opt.quiet && end >= nextReport && end < n) {
      process.stderr.write(`synth: ${end} / ${n} patients\n`);
      nextReport += n / 10;
    }
  }
  const files = ndjson
    ? [{ resourceType: 'Patient', count: n, ...(await patientSink.close()) },
      { resourceType: 'Observation', count: n * k, ...(await obsSink.close()) }]
    : await bundles.close();

  // One stream for all samples, drawn in this order.
  const rng = mulberry32(streamSeed(opt.seed, kTagSamples, 0));
  const identifiers = identifierSamples(ctx, rng, n);
  const familyPrefixes = familyPrefixSamples(rng, surnameCounts);
  const birthDateRanges = birthDateSamples(rng, birthHist);
  const observationQueries = observationSamples(ctx, rng, n, k);
  const manifest = {
    generator: 'phigate bench/synth/generate.mjs',
    manifestVersion: 1,
    fhirVersion: '4.0.1',
    seed: opt.seed,
    format: opt.format,
    ...(ndjson ? {} : { bundleSize: opt.bundleSize }),
    counts: { Patient: n, Observation: n * k, observationsPerPatient: k,
      ...(ndjson ? {} : { bundles: files.length, entries: n * (k + 1) }) },
    idScheme: {
      Patient: 'p + 8-digit (index + 1), e.g. p00000001',
      Observation: 'o + 8-digit (patient index + 1) + - + 3-digit (observation index + 1), ' +
        'e.g. o00000001-001',
    },
    systems: { mrn: kMrnSystem, ssn: kSsnSystem, code: kLoincSystem, unit: kUcumSystem },
    stringNormalization: 'NFD, remove \\p{M}, toLowerCase; a family matches when its ' +
      'normalized form starts with the normalized prefix',
    files,
    samples: {
      identifiers: identifiers.hits,
      identifierMisses: identifiers.misses,
      familyPrefixes,
      birthDateRanges,
      observationQueries,
    },
  };
  const tmp = path.join(opt.out, 'manifest.json.tmp');
  fs.writeFileSync(tmp, `${JSON.stringify(manifest, null, 2)}\n`);
  fs.renameSync(tmp, path.join(opt.out, 'manifest.json'));

  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const bytes = files.reduce((a, f) => a + f.bytes, 0);
  if (!opt.quiet) {
    process.stderr.write(`synth: ${n} patients, ${n * k} observations, ${files.length} files, ` +
      `${(bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s\n`);
  }
  return manifest;
}

async function main() {
  let opt;
  try {
    opt = parseOptions(process.argv.slice(2));
    if (opt.help) {
      process.stdout.write(`${kUsage}\n`);
      return;
    }
    await generate(opt);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`synth: ${e.message}\n${kUsage}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
