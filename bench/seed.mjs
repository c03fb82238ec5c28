// Seeds N Patients of about 2 KiB each into a running phigate over keep-alive HTTPS and
// writes their ids, one per line, to the file given. Usage:
//   node seed.mjs BASE_URL CA_FILE TOKEN COUNT IDS_FILE
import fs from 'node:fs';
import https from 'node:https';

const [baseUrl, caFile, token, countArg, idsFile] = process.argv.slice(2);
const count = Number(countArg);
const agent = new https.Agent({ keepAlive: true, maxSockets: 8, ca: fs.readFileSync(caFile) });

function patient(i) {
  const pad = 'x'.repeat(40);
  return {
    resourceType: 'Patient',
    active: true,
    identifier: [
      { system: 'urn:oid:2.16.840.1.113883.4.1', value: `bench-ssn-${i}` },
      { system: 'http://hospital.example.org/mrn', value: `MRN-${i}-${pad}` },
    ],
    name: [
      { use: 'official', family: `Benchfamily${i}`, given: ['Alexandra', 'Marie'], prefix: ['Ms.'] },
      { use: 'nickname', given: [`Bench${i}`] },
    ],
    telecom: [
      { system: 'phone', value: `+1-555-01${String(i % 100).padStart(2, '0')}`, use: 'home' },
      { system: 'email', value: `bench${i}@example.org`, use: 'work' },
    ],
    gender: i % 2 ? 'female' : 'male',
    birthDate: `19${String(50 + (i % 50)).padStart(2, '0')}-0${1 + (i % 9)}-1${i % 10}`,
    address: [
      {
        use: 'home', line: [`${i} Benchmark Avenue`, `Apartment ${i % 500}`], city: 'Springfield',
        state: 'IL', postalCode: '62704', country: 'US',
      },
    ],
    maritalStatus: {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'M', display: 'Married' }],
    },
    communication: [
      { language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'en-US', display: 'English (United States)' }] }, preferred: true },
    ],
    contact: [
      {
        relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0131', code: 'N', display: 'Next-of-Kin' }] }],
        name: { family: `Contact${i}`, given: ['Jordan'] },
        telecom: [{ system: 'phone', value: '+1-555-0100' }],
        address: { line: [`${i} Contact Street`], city: 'Springfield', state: 'IL', postalCode: '62701' },
      },
    ],
    extension: [
      { url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex', valueCode: i % 2 ? 'F' : 'M' },
      { url: 'http://example.org/fhir/StructureDefinition/bench-note', valueString: 'n'.repeat(480) },
    ],
  };
}

function post(body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = https.request(`${baseUrl}/Patient`, {
      method: 'POST', agent,
      headers: {
        authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json',
        'content-length': Buffer.byteLength(data), prefer: 'return=minimal',
      },
    }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode !== 201) reject(new Error(`create failed: ${res.statusCode}`));
        else resolve(res.headers.location.split('/_history')[0].split('/').pop());
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

const ids = [];
let next = 0;
async function worker() {
  while (next < count) {
    const i = next++;
    ids.push(await post(patient(i)));
  }
}
await Promise.all(Array.from({ length: 8 }, worker));
fs.writeFileSync(idsFile, ids.join('\n') + '\n');
console.log(`seeded ${ids.length} patients (${JSON.stringify(patient(0)).length} bytes each before meta)`);
agent.destroy();
