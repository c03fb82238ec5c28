// SearchIndex (fhir/search_index.h): string normalization, code point prefixes, number
// buckets, the values each parameter type extracts from real resources, and the blind
// index entries a resource gets (issue 6 §1, §2): deterministic, deduplicated, keyed per
// parameter and key version, years in the clear for dates only, and no plaintext.
#include "fhir/search_index.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/date_range.h"
#include "crypto/crypto.h"
#include "crypto/keyring.h"
#include "fhir/model.h"

namespace phigate::fhir {
namespace {

namespace json = boost::json;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr int64_t kDayMs = 86'400'000;
constexpr int64_t kMinMs = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxMs = std::numeric_limits<int64_t>::max();

int64_t Ms(std::string_view instant) { return ParseDateRange(instant).value().lo; }

// ---- NormalizeSearchString ----

TEST(NormalizeSearchStringTest, FoldsCaseAndRemovesAccents) {
  EXPECT_EQ(NormalizeSearchString("Müller"), "muller");
  EXPECT_EQ(NormalizeSearchString("MÜLLER"), "muller");
  EXPECT_EQ(NormalizeSearchString("ZOË"), "zoe");
  EXPECT_EQ(NormalizeSearchString("Zoë"), "zoe");
  EXPECT_EQ(NormalizeSearchString("Ångström"), "angstrom");
  EXPECT_EQ(NormalizeSearchString("Ĳssel"), "ijssel");  // compatibility ligature
  EXPECT_EQ(NormalizeSearchString("François Çelik"), "francois celik");
  EXPECT_EQ(NormalizeSearchString("İstanbul"), "istanbul");
  EXPECT_EQ(NormalizeSearchString("Straße"), "strasse");  // full case folding
  EXPECT_EQ(NormalizeSearchString("already plain"), "already plain");
  EXPECT_EQ(NormalizeSearchString(""), "");
}

TEST(NormalizeSearchStringTest, DecomposedAndComposedFormsAreEqual) {
  // "é" as one code point (U+00E9) and as e + U+0301.
  EXPECT_EQ(NormalizeSearchString("Ren\xC3\xA9"), "rene");
  EXPECT_EQ(NormalizeSearchString("Rene\xCC\x81"), "rene");
}

TEST(NormalizeSearchStringTest, CompatibilityFormsAreUnfolded) {
  EXPECT_EQ(NormalizeSearchString("\xEF\xAC\x81"), "fi");      // U+FB01 LATIN SMALL LIGATURE FI
  EXPECT_EQ(NormalizeSearchString("\xEF\xAC\x81nn"), "finn");  // ﬁnn
  EXPECT_EQ(NormalizeSearchString("ＡＢＣ１２"), "abc12");     // fullwidth forms
  EXPECT_EQ(NormalizeSearchString("\xE2\x91\xA0"), "1");       // U+2460 CIRCLED DIGIT ONE
}

TEST(NormalizeSearchStringTest, NonLatinScriptsSurviveRecomposition) {
  // NFKD splits Hangul syllables into jamo (letters, not marks); NFC puts them back.
  EXPECT_EQ(NormalizeSearchString("한국"), "한국");
  EXPECT_EQ(NormalizeSearchString("日本語"), "日本語");
  EXPECT_EQ(NormalizeSearchString("ΣΟΦΊΑ"), "σοφια");
}

TEST(NormalizeSearchStringTest, InvalidUtf8BecomesReplacementCharacter) {
  EXPECT_EQ(NormalizeSearchString("ab\xFF"
                                  "cd"),
            "ab\xEF\xBF\xBD"
            "cd");
  EXPECT_EQ(NormalizeSearchString("\xFF"), "\xEF\xBF\xBD");
  // A truncated two-byte sequence at the end.
  EXPECT_EQ(NormalizeSearchString("A\xC3"), "a\xEF\xBF\xBD");
}

// ---- Utf8Prefix / Utf8Length ----

TEST(Utf8Test, PrefixCountsCodePoints) {
  EXPECT_EQ(Utf8Prefix("Müller", 0), "");
  EXPECT_EQ(Utf8Prefix("Müller", 1), "M");
  EXPECT_EQ(Utf8Prefix("Müller", 2), "Mü");  // 3 bytes
  EXPECT_EQ(Utf8Prefix("Müller", 2).size(), 3u);
  EXPECT_EQ(Utf8Prefix("Müller", 6), "Müller");
  EXPECT_EQ(Utf8Prefix("Müller", 100), "Müller");
  EXPECT_EQ(Utf8Prefix("日本語", 2), "日本");
  EXPECT_EQ(Utf8Prefix("😀a", 1), "😀");  // 4 bytes
  EXPECT_EQ(Utf8Prefix("😀a", 1).size(), 4u);
  EXPECT_EQ(Utf8Prefix("", 3), "");
}

TEST(Utf8Test, LengthCountsCodePoints) {
  EXPECT_EQ(Utf8Length(""), 0);
  EXPECT_EQ(Utf8Length("abc"), 3);
  EXPECT_EQ(Utf8Length("Müller"), 6);
  EXPECT_EQ(Utf8Length("日本語"), 3);
  EXPECT_EQ(Utf8Length("😀a"), 2);
}

// ---- NumberBucket / NumberBuckets ----

TEST(NumberBucketTest, SignAndOrderOfMagnitude) {
  EXPECT_EQ(NumberBucket(0), "0");
  EXPECT_EQ(NumberBucket(-0.0), "0");
  EXPECT_EQ(NumberBucket(1), "+0");
  EXPECT_EQ(NumberBucket(9.99), "+0");
  EXPECT_EQ(NumberBucket(10), "+1");
  EXPECT_EQ(NumberBucket(99.999), "+1");
  EXPECT_EQ(NumberBucket(100), "+2");
  EXPECT_EQ(NumberBucket(999.9999), "+2");
  EXPECT_EQ(NumberBucket(1000), "+3");
  EXPECT_EQ(NumberBucket(0.5), "+-1");
  EXPECT_EQ(NumberBucket(0.1), "+-1");
  EXPECT_EQ(NumberBucket(0.01), "+-2");
  EXPECT_EQ(NumberBucket(0.001), "+-3");
  EXPECT_EQ(NumberBucket(0.00099), "+-4");
  EXPECT_EQ(NumberBucket(-1), "-0");
  EXPECT_EQ(NumberBucket(-5), "-0");
  EXPECT_EQ(NumberBucket(-10), "-1");
  EXPECT_EQ(NumberBucket(-1000), "-3");
  EXPECT_EQ(NumberBucket(-0.5), "--1");
  EXPECT_EQ(NumberBucket(-0.001), "--3");
}

TEST(NumberBucketTest, ClampsHugeAndTinyMagnitudes) {
  EXPECT_EQ(NumberBucket(1e20), "+20");
  EXPECT_EQ(NumberBucket(1e21), "+20");
  EXPECT_EQ(NumberBucket(1e300), "+20");
  EXPECT_EQ(NumberBucket(std::numeric_limits<double>::max()), "+20");
  EXPECT_EQ(NumberBucket(std::numeric_limits<double>::infinity()), "+20");
  EXPECT_EQ(NumberBucket(-1e300), "-20");
  EXPECT_EQ(NumberBucket(-std::numeric_limits<double>::infinity()), "-20");
  EXPECT_EQ(NumberBucket(1e-20), "+-20");
  EXPECT_EQ(NumberBucket(1e-21), "+-20");
  EXPECT_EQ(NumberBucket(1e-300), "+-20");
  EXPECT_EQ(NumberBucket(std::numeric_limits<double>::denorm_min()), "+-20");
  EXPECT_EQ(NumberBucket(-1e-300), "--20");
}

TEST(NumberBucketTest, EveryPowerOfTenStartsItsBucket) {
  // log10 rounds near powers of ten; each 10^e (as a decimal literal parses) is "+e" and
  // the double just below it is "+(e-1)".
  for (int e = -19; e <= 20; ++e) {
    const double p = std::stod("1e" + std::to_string(e));
    EXPECT_EQ(NumberBucket(p), "+" + std::to_string(e)) << e;
    EXPECT_EQ(NumberBucket(-p), "-" + std::to_string(e)) << e;
    EXPECT_EQ(NumberBucket(std::nextafter(p, 0.0)), "+" + std::to_string(e - 1)) << e;
  }
}

TEST(NumberBucketsTest, InteriorRangesGetExactlyTheirBuckets) {
  EXPECT_THAT(NumberBuckets(5, 5), ElementsAre("+0"));
  EXPECT_THAT(NumberBuckets(2, 8), ElementsAre("+0"));
  EXPECT_THAT(NumberBuckets(0.5, 50), UnorderedElementsAre("+-1", "+0", "+1"));
  EXPECT_THAT(NumberBuckets(-50, -0.5), UnorderedElementsAre("--1", "-0", "-1"));
  EXPECT_THAT(NumberBuckets(0, 0), ElementsAre("0"));
  EXPECT_THAT(NumberBuckets(-0.0, 0.0), ElementsAre("0"));
  EXPECT_THAT(NumberBuckets(-5, 5),
              UnorderedElementsAre("0", "+0", "-0", "+-1", "--1", "+-2", "--2", "+-3", "--3", "+-4",
                                   "--4", "+-5", "--5", "+-6", "--6", "+-7", "--7", "+-8", "--8",
                                   "+-9", "--9", "+-10", "--10", "+-11", "--11", "+-12", "--12",
                                   "+-13", "--13", "+-14", "--14", "+-15", "--15", "+-16", "--16",
                                   "+-17", "--17", "+-18", "--18", "+-19", "--19", "+-20", "--20"));
  EXPECT_THAT(NumberBuckets(2e25, 3e30), ElementsAre("+20"));
  EXPECT_THAT(NumberBuckets(1e-30, 2e-30), ElementsAre("+-20"));
}

TEST(NumberBucketsTest, ReversedRangeHasNone) {
  EXPECT_THAT(NumberBuckets(5, 4), IsEmpty());
  EXPECT_THAT(NumberBuckets(1, -1), IsEmpty());
}

TEST(NumberBucketsTest, UnboundedRanges) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(NumberBuckets(-kInf, kInf).size(), 83u);  // 0, +-20..+20, -(-20)..-20
  std::vector<std::string> above_150 = NumberBuckets(150, kInf);
  for (int e = 2; e <= 20; ++e) {
    EXPECT_NE(std::find(above_150.begin(), above_150.end(), "+" + std::to_string(e)),
              above_150.end())
        << e;
  }
  EXPECT_EQ(above_150.size(), 19u);
  std::vector<std::string> below_minus_150 = NumberBuckets(-kInf, -150);
  EXPECT_EQ(below_minus_150.size(), 19u);
  EXPECT_NE(std::find(below_minus_150.begin(), below_minus_150.end(), "-2"), below_minus_150.end());
  EXPECT_EQ(std::find(below_minus_150.begin(), below_minus_150.end(), "0"), below_minus_150.end());
}

TEST(NumberBucketsTest, PowerOfTenBoundaryIncludesItsOwnBucket) {
  // 10 is in "+1"; the range [10, 10] must list it (a neighbour listed as well only costs
  // a few extra candidates, refined after decryption).
  const std::vector<std::string> b = NumberBuckets(10, 10);
  EXPECT_NE(std::find(b.begin(), b.end(), "+1"), b.end());
  EXPECT_LE(b.size(), 2u);
  const std::vector<std::string> c = NumberBuckets(-1000, -1000);
  EXPECT_NE(std::find(c.begin(), c.end(), "-3"), c.end());
  EXPECT_LE(c.size(), 2u);
}

TEST(NumberBucketsTest, EveryValueInARangeHasItsBucketListed) {
  // The property narrowing relies on: NumberBucket(v) is among NumberBuckets(lo, hi) for
  // every v in [lo, hi], or a match would be lost.
  std::mt19937_64 rng(20240601);
  std::uniform_real_distribution<double> exponent(-24, 24);
  std::uniform_real_distribution<double> unit(0, 1);
  const auto random_value = [&] {
    const double magnitude = std::pow(10.0, exponent(rng));
    const double r = unit(rng);
    return r < 0.05 ? 0.0 : (r < 0.5 ? -magnitude : magnitude);
  };
  for (int i = 0; i < 3000; ++i) {
    double lo = random_value();
    double hi = random_value();
    if (lo > hi) std::swap(lo, hi);
    const std::vector<std::string> buckets = NumberBuckets(lo, hi);
    const std::set<std::string> listed(buckets.begin(), buckets.end());
    for (double v : {lo, hi, lo + (hi - lo) * unit(rng), lo + (hi - lo) * unit(rng)}) {
      if (v < lo || v > hi) continue;
      EXPECT_TRUE(listed.contains(NumberBucket(v)))
          << "v=" << v << " lo=" << lo << " hi=" << hi << " bucket " << NumberBucket(v);
    }
  }
}

// ---- Tags ----

TEST(TagTest, FormatsAreFixed) {
  // Stored entries are HMACs of these bytes: changing any format orphans every index.
  using namespace std::string_literals;
  EXPECT_EQ(TagPresent(), "m");
  EXPECT_EQ(TagCode("x"), "c\0x"s);
  EXPECT_EQ(TagSystemCode("s", "x"), "s\0s\0x"s);
  EXPECT_EQ(TagSystem("s"), "S\0s"s);
  EXPECT_EQ(TagNoSystemCode("x"), "n\0x"s);
  EXPECT_EQ(TagString("ab"), "e\0ab"s);
  EXPECT_EQ(TagPrefix("a"), "p\0a"s);
  EXPECT_EQ(TagReference("Patient", "1"), "r\0Patient\0001"s);
  EXPECT_EQ(TagId("1"), "i\0001"s);
  EXPECT_EQ(TagUrl("http://x"), "u\0http://x"s);
  EXPECT_EQ(TagBucket("+1"), "b\0+1"s);
  EXPECT_EQ(TagQuantity("sys", "mg", "+0"), "q\0sys\0mg\0+0"s);
  EXPECT_EQ(TagQuantityCode("mg", "+0"), "k\0mg\0+0"s);
  EXPECT_EQ(TagUnit("mg", "+0"), "U\0mg\0+0"s);
  EXPECT_EQ(TagDate(), "d");
  // The separator keeps a value from impersonating another field.
  EXPECT_NE(TagSystemCode("a|b", "c"), TagSystemCode("a", "b|c"));
  EXPECT_NE(TagString("ab"), TagPrefix("ab"));
}

// ---- The index ----

class SearchIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keyring_ = std::move(crypto::Keyring::Open(crypto::RandomBytes(32), {})).value();
    ASSERT_TRUE(keyring_->AddVersion().ok());
    index_ = std::make_unique<SearchIndex>(Model::R4(), *keyring_, SearchIndexOptions{});
  }

  const IndexedParam& Param(std::string_view type, std::string_view code) const {
    const IndexedParam* p = index_->Find(type, code);
    EXPECT_NE(p, nullptr) << type << "." << code;
    EXPECT_TRUE(p->expression.has_value()) << type << "." << code;
    return *p;
  }
  ParamValues Values(std::string_view type, std::string_view code, std::string_view text) const {
    return index_->Values(Param(type, code), json::parse(text));
  }
  // The token of `tagged` for a parameter under the current key version.
  std::string Token(std::string_view type, std::string_view code, std::string_view tagged) const {
    Result<std::vector<std::string>> t = index_->QueryTokens(Param(type, code), tagged);
    EXPECT_TRUE(t.ok()) << t.status().message();
    return t->back();
  }
  std::vector<storage::IndexEntry> Entries(std::string_view text) const {
    Result<std::vector<storage::IndexEntry>> e = index_->Entries(json::parse(text));
    EXPECT_TRUE(e.ok()) << e.status().message();
    return e.ok() ? std::move(e).value() : std::vector<storage::IndexEntry>{};
  }
  static bool Has(const std::vector<storage::IndexEntry>& entries, const std::string& token,
                  int32_t low = 0, int32_t high = 0) {
    return std::any_of(entries.begin(), entries.end(), [&](const storage::IndexEntry& e) {
      return e.token == token && e.low_year == low && e.high_year == high;
    });
  }
  static bool HasToken(const std::vector<storage::IndexEntry>& entries, const std::string& token) {
    return std::any_of(entries.begin(), entries.end(),
                       [&](const storage::IndexEntry& e) { return e.token == token; });
  }

  std::unique_ptr<crypto::Keyring> keyring_;
  std::unique_ptr<SearchIndex> index_;
};

constexpr std::string_view kPatient = R"({
  "resourceType": "Patient", "id": "p1",
  "identifier": [{"system": "urn:oid:1.2.3", "value": "MRN-CANARY-77"}, {"value": "NOSYS-CANARY"}],
  "name": [{"family": "Müllercanary", "given": ["Zoë", "Anne"], "prefix": ["Dr"]},
           {"text": "Zoe Canarytext"}],
  "telecom": [{"system": "phone", "value": "555-0100-CANARY"},
              {"system": "email", "value": "zoe@canary.example"}],
  "gender": "female",
  "birthDate": "1980-05-02",
  "deceasedBoolean": false,
  "address": [{"line": ["1 Canaryrow"], "city": "Springfieldcanary", "postalCode": "98765"}],
  "generalPractitioner": [{"reference": "Practitioner/pr1"},
                          {"reference": "https://other.example/fhir/Organization/o9"}]
})";

TEST_F(SearchIndexTest, PatientStringValues) {
  EXPECT_THAT(Values("Patient", "name", kPatient).strings,
              ElementsAre("Müllercanary", "Zoë", "Anne", "Dr", "Zoe Canarytext"));
  EXPECT_THAT(Values("Patient", "given", kPatient).strings, ElementsAre("Zoë", "Anne"));
  EXPECT_THAT(Values("Patient", "family", kPatient).strings, ElementsAre("Müllercanary"));
  EXPECT_THAT(Values("Patient", "address-city", kPatient).strings,
              ElementsAre("Springfieldcanary"));
  EXPECT_THAT(Values("Patient", "address", kPatient).strings,
              ElementsAre("1 Canaryrow", "Springfieldcanary", "98765"));
  EXPECT_TRUE(Values("Patient", "family", kPatient).present);
  EXPECT_FALSE(Values("Patient", "address-state", kPatient).present);
  EXPECT_THAT(Values("Patient", "address-state", kPatient).strings, IsEmpty());
}

TEST_F(SearchIndexTest, PatientTokenValues) {
  const ParamValues identifier = Values("Patient", "identifier", kPatient);
  ASSERT_EQ(identifier.tokens.size(), 2u);
  EXPECT_EQ(identifier.tokens[0].system, "urn:oid:1.2.3");
  EXPECT_EQ(identifier.tokens[0].code, "MRN-CANARY-77");
  EXPECT_EQ(identifier.tokens[1].system, std::nullopt);
  EXPECT_EQ(identifier.tokens[1].code, "NOSYS-CANARY");

  const ParamValues telecom = Values("Patient", "telecom", kPatient);
  ASSERT_EQ(telecom.tokens.size(), 2u);
  EXPECT_EQ(telecom.tokens[0].code, "555-0100-CANARY");
  EXPECT_EQ(telecom.tokens[1].code, "zoe@canary.example");
  const ParamValues phone = Values("Patient", "phone", kPatient);
  ASSERT_EQ(phone.tokens.size(), 1u);
  EXPECT_EQ(phone.tokens[0].code, "555-0100-CANARY");
  const ParamValues email = Values("Patient", "email", kPatient);
  ASSERT_EQ(email.tokens.size(), 1u);
  EXPECT_EQ(email.tokens[0].code, "zoe@canary.example");

  const ParamValues gender = Values("Patient", "gender", kPatient);
  ASSERT_EQ(gender.tokens.size(), 1u);
  EXPECT_EQ(gender.tokens[0].system, std::nullopt);
  EXPECT_EQ(gender.tokens[0].code, "female");
}

TEST_F(SearchIndexTest, PatientDeceasedIsABooleanToken) {
  // "Patient.deceased.exists() and Patient.deceased != false": false for a living patient
  // (deceasedBoolean false or no deceased at all), true for a date of death.
  const auto deceased = [&](std::string_view text) {
    const ParamValues v = Values("Patient", "deceased", text);
    std::vector<std::string> codes;
    for (const TokenValue& t : v.tokens) codes.push_back(t.code);
    return codes;
  };
  EXPECT_THAT(deceased(kPatient), ElementsAre("false"));
  EXPECT_THAT(deceased(R"({"resourceType":"Patient","deceasedBoolean":true})"),
              ElementsAre("true"));
  EXPECT_THAT(deceased(R"({"resourceType":"Patient","deceasedDateTime":"2020-01-01"})"),
              ElementsAre("true"));
  EXPECT_THAT(deceased(R"({"resourceType":"Patient"})"), ElementsAre("false"));
}

TEST_F(SearchIndexTest, PatientDateAndReferenceValues) {
  const ParamValues birthdate = Values("Patient", "birthdate", kPatient);
  ASSERT_EQ(birthdate.dates.size(), 1u);
  EXPECT_EQ(birthdate.dates[0].lo, Ms("1980-05-02"));
  EXPECT_EQ(birthdate.dates[0].hi, Ms("1980-05-02") + kDayMs);

  const ParamValues gp = Values("Patient", "general-practitioner", kPatient);
  ASSERT_EQ(gp.references.size(), 2u);
  EXPECT_EQ(gp.references[0].type, "Practitioner");
  EXPECT_EQ(gp.references[0].id, "pr1");
  EXPECT_EQ(gp.references[0].url, "");
  // Another server's resource is only its URL: "Organization/o9" names a local one
  // (search.html#reference).
  EXPECT_EQ(gp.references[1].type, "");
  EXPECT_EQ(gp.references[1].id, "");
  EXPECT_EQ(gp.references[1].url, "https://other.example/fhir/Organization/o9");
}

constexpr std::string_view kObservation = R"({
  "resourceType": "Observation", "id": "o1", "status": "final",
  "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}, {"code": "GLU"}],
           "text": "Glucose"},
  "subject": {"reference": "Patient/p1"},
  "effectivePeriod": {"start": "2020-03-01T10:00:00Z"},
  "valueQuantity": {"value": 5.4, "unit": "mmol/l", "system": "http://unitsofmeasure.org",
                    "code": "mmol/L"}
})";

TEST_F(SearchIndexTest, ObservationValues) {
  const ParamValues code = Values("Observation", "code", kObservation);
  ASSERT_EQ(code.tokens.size(), 2u);
  EXPECT_EQ(code.tokens[0].system, "http://loinc.org");
  EXPECT_EQ(code.tokens[0].code, "2345-7");
  EXPECT_EQ(code.tokens[1].system, std::nullopt);
  EXPECT_EQ(code.tokens[1].code, "GLU");

  // An open-ended Period runs to the end of time.
  const ParamValues date = Values("Observation", "date", kObservation);
  ASSERT_EQ(date.dates.size(), 1u);
  EXPECT_EQ(date.dates[0].lo, Ms("2020-03-01T10:00:00Z"));
  EXPECT_EQ(date.dates[0].hi, kMaxMs);

  const ParamValues quantity = Values("Observation", "value-quantity", kObservation);
  ASSERT_EQ(quantity.quantities.size(), 1u);
  EXPECT_EQ(quantity.quantities[0].value, 5.4);
  EXPECT_EQ(quantity.quantities[0].system, "http://unitsofmeasure.org");
  EXPECT_EQ(quantity.quantities[0].code, "mmol/L");
  EXPECT_EQ(quantity.quantities[0].unit, "mmol/l");

  for (std::string_view code_name : {"subject", "patient"}) {
    const ParamValues ref = Values("Observation", code_name, kObservation);
    ASSERT_EQ(ref.references.size(), 1u) << code_name;
    EXPECT_EQ(ref.references[0].type, "Patient");
    EXPECT_EQ(ref.references[0].id, "p1");
    EXPECT_EQ(ref.references[0].url, "");
  }
}

TEST_F(SearchIndexTest, ObservationPatientOnlyForPatientSubjects) {
  constexpr std::string_view kGroupSubject = R"({"resourceType":"Observation","status":"final",
      "code":{"text":"x"},"subject":{"reference":"Group/g1"}})";
  const ParamValues subject = Values("Observation", "subject", kGroupSubject);
  ASSERT_EQ(subject.references.size(), 1u);
  EXPECT_EQ(subject.references[0].type, "Group");
  EXPECT_EQ(subject.references[0].id, "g1");
  const ParamValues patient = Values("Observation", "patient", kGroupSubject);
  EXPECT_FALSE(patient.present);
  EXPECT_THAT(patient.references, IsEmpty());
}

TEST_F(SearchIndexTest, ObservationDateTimeWithZoneAndPeriodWithoutStart) {
  const ParamValues zoned = Values("Observation", "date", R"({"resourceType":"Observation",
      "status":"final","code":{"text":"x"},"effectiveDateTime":"2021-01-01T01:30:00+02:00"})");
  ASSERT_EQ(zoned.dates.size(), 1u);
  EXPECT_EQ(zoned.dates[0].lo, Ms("2020-12-31T23:30:00Z"));
  EXPECT_EQ(zoned.dates[0].hi, Ms("2020-12-31T23:30:00Z") + 1000);

  const ParamValues open_start = Values("Observation", "date", R"({"resourceType":"Observation",
      "status":"final","code":{"text":"x"},"effectivePeriod":{"end":"2020-06"}})");
  ASSERT_EQ(open_start.dates.size(), 1u);
  EXPECT_EQ(open_start.dates[0].lo, kMinMs);
  EXPECT_EQ(open_start.dates[0].hi, Ms("2020-07"));
}

TEST_F(SearchIndexTest, EncounterDateIsItsPeriod) {
  const ParamValues date = Values("Encounter", "date", R"({"resourceType":"Encounter",
      "status":"finished","class":{"code":"AMB"},
      "period":{"start":"2019-12-31T23:00:00Z","end":"2021-01-01"}})");
  ASSERT_EQ(date.dates.size(), 1u);
  EXPECT_EQ(date.dates[0].lo, Ms("2019-12-31T23:00:00Z"));
  EXPECT_EQ(date.dates[0].hi, Ms("2021-01-02"));
}

TEST_F(SearchIndexTest, RiskAssessmentProbabilityIsANumber) {
  const ParamValues p = Values("RiskAssessment", "probability", R"({
      "resourceType":"RiskAssessment","status":"final","subject":{"reference":"Patient/p1"},
      "prediction":[{"probabilityDecimal":0.8},{"probabilityDecimal":0.02},
                    {"probabilityRange":{"low":{"value":0.1},"high":{"value":0.2}}}]})");
  EXPECT_THAT(p.numbers, ElementsAre(0.8, 0.02));
}

TEST_F(SearchIndexTest, ValueSetUrlIsAUri) {
  const ParamValues u = Values("ValueSet", "url", R"({"resourceType":"ValueSet",
      "status":"active","url":"http://example.org/fhir/ValueSet/vs1"})");
  EXPECT_THAT(u.uris, ElementsAre("http://example.org/fhir/ValueSet/vs1"));
}

TEST_F(SearchIndexTest, EntriesOfASmallPatientAreExactlyThese) {
  // Patient parameters with a value here: _id (a token without system), gender, and
  // deceased (false: no deceased element); each gives its presence token, the code and
  // the code without system; birthdate gives presence and one dated entry.
  const std::vector<storage::IndexEntry> entries =
      Entries(R"({"resourceType":"Patient","id":"p1","gender":"female","birthDate":"1980-05-02"})");
  std::vector<std::tuple<std::string, int32_t, int32_t>> expected = {
      {Token("Patient", "_id", TagPresent()), 0, 0},
      {Token("Patient", "_id", TagCode("p1")), 0, 0},
      {Token("Patient", "_id", TagNoSystemCode("p1")), 0, 0},
      {Token("Patient", "gender", TagPresent()), 0, 0},
      {Token("Patient", "gender", TagCode("female")), 0, 0},
      {Token("Patient", "gender", TagNoSystemCode("female")), 0, 0},
      {Token("Patient", "deceased", TagPresent()), 0, 0},
      {Token("Patient", "deceased", TagCode("false")), 0, 0},
      {Token("Patient", "deceased", TagNoSystemCode("false")), 0, 0},
      {Token("Patient", "birthdate", TagPresent()), 0, 0},
      {Token("Patient", "birthdate", TagDate()), 1980, 1980},
  };
  std::sort(expected.begin(), expected.end());
  std::vector<std::tuple<std::string, int32_t, int32_t>> actual;
  for (const storage::IndexEntry& e : entries)
    actual.emplace_back(e.token, e.low_year, e.high_year);
  EXPECT_EQ(actual, expected);
}

TEST_F(SearchIndexTest, EntriesAreDeterministicSortedAndUnique) {
  const std::vector<storage::IndexEntry> a = Entries(kPatient);
  const std::vector<storage::IndexEntry> b = Entries(kPatient);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].token, b[i].token);
    EXPECT_EQ(a[i].low_year, b[i].low_year);
    EXPECT_EQ(a[i].high_year, b[i].high_year);
    EXPECT_EQ(a[i].token.size(), 16u);
    if (i > 0) {
      EXPECT_LT(std::tie(a[i - 1].token, a[i - 1].low_year, a[i - 1].high_year),
                std::tie(a[i].token, a[i].low_year, a[i].high_year));
    }
  }
  // Another index over the same keyring derives the same keys.
  SearchIndex other(Model::R4(), *keyring_, SearchIndexOptions{});
  Result<std::vector<storage::IndexEntry>> c = other.Entries(json::parse(kPatient));
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ((*c)[i].token, a[i].token);
}

TEST_F(SearchIndexTest, RepeatedValuesGiveOneEntry) {
  // Two names with the same given name: one "e" entry, one entry per prefix.
  const std::vector<storage::IndexEntry> entries = Entries(
      R"({"resourceType":"Patient","name":[{"given":["Eve"]},{"given":["EVE"]},{"given":["Ève"]}]})");
  const std::string eve = Token("Patient", "given", TagString("eve"));
  EXPECT_EQ(std::count_if(entries.begin(), entries.end(),
                          [&](const storage::IndexEntry& e) { return e.token == eve; }),
            1);
  std::set<std::string> tokens;
  for (const storage::IndexEntry& e : entries) EXPECT_TRUE(tokens.insert(e.token).second);
}

TEST_F(SearchIndexTest, StringEntriesAreNormalizedWithCodePointPrefixes) {
  const std::vector<storage::IndexEntry> entries = Entries(kPatient);
  // family "Müllercanary" -> "mullercanary": the whole value and prefixes of 1..8.
  EXPECT_TRUE(Has(entries, Token("Patient", "family", TagString("mullercanary"))));
  for (std::string_view p : {"m", "mu", "mul", "mull", "mulle", "muller", "mullerc", "mullerca"}) {
    EXPECT_TRUE(Has(entries, Token("Patient", "family", TagPrefix(p)))) << p;
  }
  EXPECT_FALSE(HasToken(entries, Token("Patient", "family", TagPrefix("mullercan"))));
  EXPECT_FALSE(HasToken(entries, Token("Patient", "family", TagString("Müllercanary"))));
  // given "Zoë" -> "zoe": a three-letter value has prefixes 1..3 (the last equals it).
  for (std::string_view p : {"z", "zo", "zoe"}) {
    EXPECT_TRUE(Has(entries, Token("Patient", "given", TagPrefix(p)))) << p;
  }
  EXPECT_TRUE(Has(entries, Token("Patient", "given", TagString("zoe"))));
  EXPECT_TRUE(Has(entries, Token("Patient", "given", TagString("anne"))));
  // name covers given, family, prefix and text.
  EXPECT_TRUE(Has(entries, Token("Patient", "name", TagString("dr"))));
  EXPECT_TRUE(Has(entries, Token("Patient", "name", TagString("zoe canarytext"))));
  EXPECT_TRUE(Has(entries, Token("Patient", "name", TagPrefix("zoe cana"))));
}

TEST_F(SearchIndexTest, MultibytePrefixesCountCodePoints) {
  const std::vector<storage::IndexEntry> entries =
      Entries(R"({"resourceType":"Patient","name":[{"family":"山田太郎花子一二三"}]})");
  EXPECT_TRUE(Has(entries, Token("Patient", "family", TagPrefix("山"))));
  EXPECT_TRUE(Has(entries, Token("Patient", "family", TagPrefix("山田"))));
  EXPECT_TRUE(Has(entries, Token("Patient", "family", TagPrefix("山田太郎花子一二"))));
  EXPECT_FALSE(HasToken(entries, Token("Patient", "family", TagPrefix("山田太郎花子一二三"))));
  EXPECT_TRUE(Has(entries, Token("Patient", "family", TagString("山田太郎花子一二三"))));
}

TEST_F(SearchIndexTest, TokenEntries) {
  const std::vector<storage::IndexEntry> entries = Entries(kPatient);
  const auto id = [&](const std::string& tagged) { return Token("Patient", "identifier", tagged); };
  EXPECT_TRUE(Has(entries, id(TagCode("MRN-CANARY-77"))));
  EXPECT_TRUE(Has(entries, id(TagSystemCode("urn:oid:1.2.3", "MRN-CANARY-77"))));
  EXPECT_TRUE(Has(entries, id(TagSystem("urn:oid:1.2.3"))));
  EXPECT_FALSE(HasToken(entries, id(TagNoSystemCode("MRN-CANARY-77"))));
  EXPECT_TRUE(Has(entries, id(TagCode("NOSYS-CANARY"))));
  EXPECT_TRUE(Has(entries, id(TagNoSystemCode("NOSYS-CANARY"))));
  EXPECT_TRUE(Has(entries, id(TagPresent())));
  EXPECT_FALSE(HasToken(entries, Token("Patient", "address-state", TagPresent())));
}

TEST_F(SearchIndexTest, ReferenceEntries) {
  const std::vector<storage::IndexEntry> entries = Entries(kPatient);
  const auto gp = [&](const std::string& tagged) {
    return Token("Patient", "general-practitioner", tagged);
  };
  EXPECT_TRUE(Has(entries, gp(TagReference("Practitioner", "pr1"))));
  EXPECT_TRUE(Has(entries, gp(TagId("pr1"))));
  EXPECT_TRUE(Has(entries, gp(TagUrl("https://other.example/fhir/Organization/o9"))));
}

TEST_F(SearchIndexTest, NumberAndQuantityEntriesAreBuckets) {
  const std::vector<storage::IndexEntry> obs = Entries(kObservation);
  const auto vq = [&](const std::string& tagged) {
    return Token("Observation", "value-quantity", tagged);
  };
  EXPECT_TRUE(Has(obs, vq(TagBucket("+0"))));
  EXPECT_TRUE(Has(obs, vq(TagQuantity("http://unitsofmeasure.org", "mmol/L", "+0"))));
  EXPECT_TRUE(Has(obs, vq(TagQuantityCode("mmol/L", "+0"))));
  EXPECT_TRUE(Has(obs, vq(TagUnit("mmol/l", "+0"))));
  EXPECT_FALSE(HasToken(obs, vq(TagBucket("+1"))));

  const std::vector<storage::IndexEntry> risk = Entries(R"({"resourceType":"RiskAssessment",
      "status":"final","subject":{"reference":"Patient/p1"},
      "prediction":[{"probabilityDecimal":0.8},{"probabilityDecimal":0.02}]})");
  EXPECT_TRUE(Has(risk, Token("RiskAssessment", "probability", TagBucket("+-1"))));
  EXPECT_TRUE(Has(risk, Token("RiskAssessment", "probability", TagBucket("+-2"))));
  EXPECT_FALSE(HasToken(risk, Token("RiskAssessment", "probability", TagBucket("+0"))));
}

TEST_F(SearchIndexTest, DateEntriesCarryUtcYears) {
  EXPECT_TRUE(Has(Entries(kPatient), Token("Patient", "birthdate", TagDate()), 1980, 1980));
  // An open end runs to 9999.
  EXPECT_TRUE(Has(Entries(kObservation), Token("Observation", "date", TagDate()), 2020, 9999));
  // An open start runs from 0001.
  EXPECT_TRUE(Has(Entries(R"({"resourceType":"Observation","status":"final",
      "code":{"text":"x"},"effectivePeriod":{"end":"2020-06"}})"),
                  Token("Observation", "date", TagDate()), 1, 2020));
  // The years of the UTC instants: 01:30 at +02:00 on New Year's day is still 2020.
  EXPECT_TRUE(Has(Entries(R"({"resourceType":"Observation","status":"final",
      "code":{"text":"x"},"effectiveDateTime":"2021-01-01T01:30:00+02:00"})"),
                  Token("Observation", "date", TagDate()), 2020, 2020));
  // A Period's end is inclusive of its whole precision: "2021-01-01" ends in 2021.
  EXPECT_TRUE(Has(Entries(R"({"resourceType":"Encounter","status":"finished",
      "class":{"code":"AMB"},"period":{"start":"2019-12-31T23:00:00Z","end":"2021-01-01"}})"),
                  Token("Encounter", "date", TagDate()), 2019, 2021));
  // Only dates carry years.
  for (const storage::IndexEntry& e : Entries(R"({"resourceType":"Patient","gender":"male"})")) {
    EXPECT_EQ(e.low_year, 0);
    EXPECT_EQ(e.high_year, 0);
  }
}

TEST_F(SearchIndexTest, SameValueUnderDifferentParametersGivesDifferentTokens) {
  const std::vector<storage::IndexEntry> entries =
      Entries(R"({"resourceType":"Patient","name":[{"family":"Smith","given":["Smith"]}]})");
  const std::string family = Token("Patient", "family", TagString("smith"));
  const std::string given = Token("Patient", "given", TagString("smith"));
  const std::string name = Token("Patient", "name", TagString("smith"));
  EXPECT_NE(family, given);
  EXPECT_NE(family, name);
  EXPECT_NE(given, name);
  EXPECT_TRUE(Has(entries, family));
  EXPECT_TRUE(Has(entries, given));
  EXPECT_TRUE(Has(entries, name));
  // The same parameter code on another type is another parameter.
  EXPECT_NE(Token("Patient", "identifier", TagCode("X")),
            Token("Practitioner", "identifier", TagCode("X")));
  // And the same value under different tags differs.
  EXPECT_NE(Token("Patient", "family", TagString("smith")),
            Token("Patient", "family", TagPrefix("smith")));
}

TEST_F(SearchIndexTest, EntriesHoldNoPlaintext) {
  const std::vector<storage::IndexEntry> entries = Entries(kPatient);
  ASSERT_GT(entries.size(), 50u);
  for (const storage::IndexEntry& e : entries) {
    EXPECT_EQ(e.token.size(), 16u);
    for (std::string_view canary :
         {"anary",  "ANARY", "Müller", "muller", "MRN-C",  "NOSYS", "555-0",  "zoe@",
          "Spring", "sprin", "98765",  "1980-",  "female", "Zoë",   "Anne",   "anne",
          "Pract",  "pr1/",  "other.", "urn:o",  "phone",  "email", "Patient"}) {
      EXPECT_EQ(e.token.find(canary), std::string::npos) << canary;
    }
  }
}

TEST_F(SearchIndexTest, TokenIsTheDocumentedKeyedHmac) {
  // token = HMAC-SHA256(HMAC-SHA256(blind-index subkey, label \0 base \0 code), tagged)[:16]:
  // a change in the derivation orphans every stored index, so it is pinned here.
  const std::string subkey = keyring_->Subkey(crypto::KeyPurpose::kBlindIndex, 1).value();
  const auto expected = [&](std::string_view base, std::string_view code, std::string_view tagged) {
    std::string name("phigate search parameter");
    name.push_back('\0');
    name.append(base).push_back('\0');
    name.append(code);
    return crypto::HmacSha256(crypto::HmacSha256(subkey, name), tagged).substr(0, 16);
  };
  EXPECT_EQ(Token("Patient", "family", TagString("smith")),
            expected("Patient", "family", TagString("smith")));
  // _id is defined on Resource: its key is the Resource one, shared by every type.
  EXPECT_EQ(Token("Patient", "_id", TagCode("p1")), expected("Resource", "_id", TagCode("p1")));
  EXPECT_EQ(Token("Observation", "_id", TagCode("p1")), Token("Patient", "_id", TagCode("p1")));
}

TEST_F(SearchIndexTest, QueryTokensCoverEveryKeyVersion) {
  const IndexedParam& family = Param("Patient", "family");
  Result<std::vector<std::string>> one = index_->QueryTokens(family, TagString("smith"));
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  const std::vector<storage::IndexEntry> before =
      Entries(R"({"resourceType":"Patient","name":[{"family":"Smith"}]})");
  EXPECT_TRUE(Has(before, (*one)[0]));

  ASSERT_TRUE(keyring_->AddVersion().ok());
  Result<std::vector<std::string>> two = index_->QueryTokens(family, TagString("smith"));
  ASSERT_TRUE(two.ok());
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[0], (*one)[0]);  // entries written before the rotation still match
  EXPECT_NE((*two)[1], (*one)[0]);
  // New entries are written under the current version only.
  const std::vector<storage::IndexEntry> after =
      Entries(R"({"resourceType":"Patient","name":[{"family":"Smith"}]})");
  EXPECT_TRUE(Has(after, (*two)[1]));
  EXPECT_FALSE(HasToken(after, (*two)[0]));
  EXPECT_EQ(after.size(), before.size());
}

TEST_F(SearchIndexTest, AnotherKeyringGivesOtherTokens) {
  std::unique_ptr<crypto::Keyring> other_ring =
      std::move(crypto::Keyring::Open(crypto::RandomBytes(32), {})).value();
  ASSERT_TRUE(other_ring->AddVersion().ok());
  SearchIndex other(Model::R4(), *other_ring, SearchIndexOptions{});
  Result<std::vector<std::string>> t =
      other.QueryTokens(*other.Find("Patient", "family"), TagString("smith"));
  ASSERT_TRUE(t.ok());
  EXPECT_NE((*t)[0], Token("Patient", "family", TagString("smith")));
}

TEST_F(SearchIndexTest, PrefixLengthIsConfigurable) {
  SearchIndex short_prefixes(Model::R4(), *keyring_,
                             SearchIndexOptions{.string_prefix_max = 3, .base_url = ""});
  Result<std::vector<storage::IndexEntry>> entries = short_prefixes.Entries(
      json::parse(R"({"resourceType":"Patient","name":[{"family":"Abcdef"}]})"));
  ASSERT_TRUE(entries.ok());
  const auto has = [&](const std::string& tagged) {
    const std::string token =
        short_prefixes.QueryTokens(*short_prefixes.Find("Patient", "family"), tagged)->back();
    return HasToken(*entries, token);
  };
  EXPECT_TRUE(has(TagPrefix("abc")));
  EXPECT_FALSE(has(TagPrefix("abcd")));
  EXPECT_TRUE(has(TagString("abcdef")));
}

TEST_F(SearchIndexTest, UnknownResourceTypeIsRejected) {
  Result<std::vector<storage::IndexEntry>> e =
      index_->Entries(json::parse(R"({"resourceType":"NotAType"})"));
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e.status().message(), "unknown resource type");
  EXPECT_EQ(index_->Find("NotAType", "name"), nullptr);
  EXPECT_EQ(index_->Find("Patient", "no-such-parameter"), nullptr);
}

}  // namespace
}  // namespace phigate::fhir
