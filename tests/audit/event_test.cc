#include "audit/event.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/base64.h"
#include "crypto/crypto.h"
#include "crypto/keyring.h"
#include "status_matchers.h"

namespace phigate::audit {
namespace {

namespace json = boost::json;

constexpr int64_t kTime = 1795968000123;  // 2026-11-29T16:00:00.123Z

json::value Parse(const std::string& text) {
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  EXPECT_FALSE(ec) << text;
  return value;
}

// A RESTful search with every field set.
Event FullRestEvent() {
  Event e;
  e.kind = EventKind::kRest;
  e.subtype = "search-type";
  e.action = 'E';
  e.time_ms = kTime;
  e.user_id = "u-1";
  e.client_id = "app-1";
  e.roles = {"clinician", "auditor"};
  e.address = "192.0.2.7";
  e.user_agent = "curl/8.0";
  e.baa_counterparty = "Acme Analytics";
  e.method = "GET";
  e.route = "/fhir/{type}";
  e.resource_type = "Observation";
  e.patients = {"p1"};
  e.returned = {"Observation/o1", "Observation/o2"};
  e.query = {{"patient", "p1"}, {"code", "1234-5,9999-9"}};
  e.purpose = "TREAT";
  e.break_glass_reason = "unconscious patient";
  e.break_glass_grant = "g1,g2";
  e.status = 200;
  e.request_id = "req-1";
  e.security = {{"token_issued", "u-1", "app-1", "password grant"}};
  e.detail = "fixed detail";
  return e;
}

TEST(EventJsonTest, FullRestEventHasTheExactElements) {
  const std::string text = EventJson(FullRestEvent());
  EXPECT_EQ(text.find('\n'), std::string::npos);
  EXPECT_EQ(text.find(": "), std::string::npos);  // minified
  const json::value expected = Parse(R"({
    "resourceType": "AuditEvent",
    "extension": [
      {"url": "https://phigate.dev/fhir/StructureDefinition/audit-request-id", "valueString": "req-1"},
      {"url": "https://phigate.dev/fhir/StructureDefinition/audit-http-status", "valueInteger": 200},
      {"url": "https://phigate.dev/fhir/StructureDefinition/audit-http-method", "valueString": "GET"},
      {"url": "https://phigate.dev/fhir/StructureDefinition/audit-route", "valueString": "/fhir/{type}"},
      {"url": "https://phigate.dev/fhir/StructureDefinition/audit-user-agent", "valueString": "curl/8.0"},
      {"url": "https://phigate.dev/fhir/StructureDefinition/audit-break-glass", "extension": [
        {"url": "grant", "valueString": "g1,g2"},
        {"url": "reason", "valueString": "unconscious patient"}]},
      {"url": "https://phigate.dev/fhir/StructureDefinition/audit-security", "extension": [
        {"url": "name", "valueString": "token_issued"},
        {"url": "user", "valueString": "u-1"},
        {"url": "client", "valueString": "app-1"},
        {"url": "reason", "valueString": "password grant"}]},
      {"url": "https://phigate.dev/fhir/StructureDefinition/audit-detail", "valueString": "fixed detail"}
    ],
    "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
             "display": "Restful Operation"},
    "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "search-type"}],
    "action": "E",
    "recorded": "2026-11-29T16:00:00.123Z",
    "outcome": "0",
    "outcomeDesc": "HTTP 200",
    "purposeOfEvent": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                    "code": "TREAT"}]}],
    "agent": [
      {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "IRCP", "display": "information recipient"}]},
       "role": [{"coding": [{"system": "https://phigate.dev/fhir/CodeSystem/role", "code": "clinician"}]},
                {"coding": [{"system": "https://phigate.dev/fhir/CodeSystem/role", "code": "auditor"}]}],
       "purposeOfUse": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                     "code": "TREAT"}]}],
       "who": {"identifier": {"system": "https://phigate.dev/fhir/sid/user", "value": "u-1"}},
       "requestor": true,
       "network": {"address": "192.0.2.7", "type": "2"}},
      {"type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM",
                            "code": "110153", "display": "Source Role ID"}]},
       "who": {"identifier": {"system": "https://phigate.dev/fhir/sid/client", "value": "app-1"}},
       "requestor": false,
       "network": {"address": "192.0.2.7", "type": "2"}},
      {"type": {"coding": [{"system": "https://phigate.dev/fhir/CodeSystem/audit-agent",
                            "code": "baa-counterparty",
                            "display": "business associate agreement counterparty"}]},
       "who": {"display": "Acme Analytics"},
       "requestor": false}
    ],
    "source": {"observer": {"display": "phigate"},
               "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                         "code": "4", "display": "Application Server"}]},
    "entity": [
      {"what": {"reference": "Patient/p1"},
       "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1",
                "display": "Person"},
       "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1",
                "display": "Patient"}},
      {"what": {"type": "Observation"},
       "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
                "display": "System Object"},
       "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4",
                "display": "Domain Resource"}},
      {"what": {"reference": "Observation/o1"},
       "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
                "display": "System Object"},
       "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4",
                "display": "Domain Resource"},
       "description": "returned"},
      {"what": {"reference": "Observation/o2"},
       "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
                "display": "System Object"},
       "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4",
                "display": "Domain Resource"},
       "description": "returned"},
      {"type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
                "display": "System Object"},
       "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24",
                "display": "Query"},
       "query": "cGF0aWVudD1wMSZjb2RlPTEyMzQtNSUyQzk5OTktOQ==",
       "detail": [{"type": "patient", "valueString": "p1"},
                  {"type": "code", "valueString": "1234-5,9999-9"}]}
    ]
  })");
  EXPECT_EQ(Parse(text), expected) << text;
  EXPECT_EQ(*Base64Decode("cGF0aWVudD1wMSZjb2RlPTEyMzQtNSUyQzk5OTktOQ=="),
            "patient=p1&code=1234-5%2C9999-9");
}

TEST(EventJsonTest, MinimalRestEventOmitsEmptyFields) {
  Event e;
  e.kind = EventKind::kRest;
  e.action = 'R';
  e.time_ms = kTime;
  EXPECT_EQ(EventJson(e),
            R"({"resourceType":"AuditEvent","type":{"system":"http://terminology.hl7.org/)"
            R"(CodeSystem/audit-event-type","code":"rest","display":"Restful Operation"},)"
            R"("action":"R","recorded":"2026-11-29T16:00:00.123Z","outcome":"0",)"
            R"("source":{"observer":{"display":"phigate"},"type":[{"system":)"
            R"("http://terminology.hl7.org/CodeSystem/security-source-type","code":"4",)"
            R"("display":"Application Server"}]}})");
}

TEST(EventJsonTest, ReadOfAVersionNamesTheHistoryReference) {
  Event e;
  e.subtype = "vread";
  e.action = 'R';
  e.client_id = "svc";
  e.roles = {"system"};
  e.address = "2001:db8::1";
  e.resource_type = "Patient";
  e.resource_id = "p1";
  e.version = 3;
  e.patients = {"p1"};
  e.status = 200;
  const json::value v = Parse(EventJson(e));
  EXPECT_EQ(v.at("entity").at(1).at("what"), Parse(R"({"reference":"Patient/p1/_history/3"})"));
  EXPECT_FALSE(v.at("entity").at(1).as_object().contains("description"));
  // Without a user, the client is the requestor and carries the roles.
  const json::value& agent = v.at("agent").at(0);
  EXPECT_EQ(agent.at("requestor"), json::value(true));
  EXPECT_EQ(agent.at("who").at("identifier").at("value"), json::value("svc"));
  EXPECT_EQ(agent.at("role").at(0).at("coding").at(0).at("code"), json::value("system"));
  EXPECT_EQ(v.at("agent").as_array().size(), 1u);
}

TEST(EventJsonTest, AuthenticationFailure) {
  Event e;
  e.kind = EventKind::kAuthentication;
  e.subtype = "token";
  e.action = 'E';
  e.time_ms = kTime;
  e.address = "192.0.2.9";
  e.status = 401;
  e.outcome_code = "login";
  e.security = {{"login_password_failure", "u-9", "", "bad password"}};
  const json::value v = Parse(EventJson(e));
  EXPECT_EQ(v.at("type"), Parse(R"({"system":"http://dicom.nema.org/resources/ontology/DCM",
                                    "code":"110114","display":"User Authentication"})"));
  EXPECT_EQ(v.at("subtype"),
            Parse(R"([{"system":"https://phigate.dev/fhir/CodeSystem/audit-subtype",
                       "code":"token"}])"));
  EXPECT_EQ(v.at("outcome"), json::value("4"));
  EXPECT_EQ(v.at("outcomeDesc"), json::value("HTTP 401; login"));
  EXPECT_FALSE(v.as_object().contains("agent"));  // no one was identified
  EXPECT_FALSE(v.as_object().contains("entity"));
  EXPECT_EQ(v.at("extension").at(1),
            Parse(R"({"url":"https://phigate.dev/fhir/StructureDefinition/audit-security",
                      "extension":[{"url":"name","valueString":"login_password_failure"},
                                   {"url":"user","valueString":"u-9"},
                                   {"url":"reason","valueString":"bad password"}]})"));
}

TEST(EventJsonTest, AuthorizationDenialDescribesTheOutcome) {
  Event e;
  e.subtype = "read";
  e.action = 'R';
  e.user_id = "u-1";
  e.status = 403;
  e.outcome_code = "forbidden";
  e.denial = "role may not read this type";
  const json::value v = Parse(EventJson(e));
  EXPECT_EQ(v.at("outcome"), json::value("4"));
  EXPECT_EQ(v.at("outcomeDesc"), json::value("HTTP 403; forbidden; role may not read this type"));
}

TEST(EventJsonTest, AdministrationCommand) {
  Event e;
  e.kind = EventKind::kAdministration;
  e.subtype = "users.add";
  e.action = 'C';
  e.time_ms = kTime;
  e.address = "cli";
  e.detail = "user added";
  const json::value v = Parse(EventJson(e));
  EXPECT_EQ(v.at("type").at("code"), json::value("110100"));
  EXPECT_EQ(v.at("type").at("display"), json::value("Application Activity"));
  EXPECT_EQ(v.at("subtype").at(0).at("code"), json::value("users.add"));
  EXPECT_EQ(v.at("outcome"), json::value("0"));
  EXPECT_FALSE(v.as_object().contains("outcomeDesc"));
  // The local operator requested it; no user or client was acted on.
  EXPECT_EQ(v.at("agent"), Parse(R"j([{"type":{"coding":[{
      "system":"https://phigate.dev/fhir/CodeSystem/audit-agent","code":"operator",
      "display":"local operator"}]},
      "who":{"display":"local operator (phigate command)"},"requestor":true,
      "network":{"address":"cli"}}])j"));
  EXPECT_EQ(v.at("extension"),
            Parse(R"([{"url":"https://phigate.dev/fhir/StructureDefinition/audit-detail",
                       "valueString":"user added"}])"));
}

TEST(EventJsonTest, CommandUserHasACliAddressWithoutNetworkType) {
  Event e;
  e.kind = EventKind::kAdministration;
  e.subtype = "keys.rotate";
  e.user_id = "admin";
  e.address = "cli";
  e.outcome_code = "exception";
  const json::value v = Parse(EventJson(e));
  ASSERT_EQ(v.at("agent").as_array().size(), 2u);
  EXPECT_EQ(v.at("agent").at(0).at("requestor"), json::value(true));  // the operator
  // The user named by the command is the one acted on.
  EXPECT_EQ(v.at("agent").at(1).at("who").at("identifier").at("value"), json::value("admin"));
  EXPECT_EQ(v.at("agent").at(1).at("requestor"), json::value(false));
  EXPECT_EQ(v.at("agent").at(1).at("network"), Parse(R"({"address":"cli"})"));
  EXPECT_EQ(v.at("outcome"), json::value("8"));
  EXPECT_EQ(v.at("outcomeDesc"), json::value("exception"));
}

TEST(EventJsonTest, SystemStart) {
  Event e;
  e.kind = EventKind::kSystem;
  e.subtype = "start";
  e.action = 'E';
  e.time_ms = 0;
  const json::value v = Parse(EventJson(e));
  EXPECT_EQ(v.at("type").at("code"), json::value("110100"));
  EXPECT_EQ(v.at("subtype").at(0).at("system"),
            json::value("https://phigate.dev/fhir/CodeSystem/audit-subtype"));
  EXPECT_EQ(v.at("recorded"), json::value("1970-01-01T00:00:00.000Z"));
  EXPECT_FALSE(v.as_object().contains("extension"));
}

TEST(EventJsonTest, OddStringsAreEscapedAndInvalidUtf8Replaced) {
  Event e;
  e.user_agent = std::string("q\"b\\s/\n\r\t\x01\x1f\x7f", 12) + "é€😀" + "\xff" + "\xc3" +
                 "\xed\xa0\x80" + "\xe0\x80\xaf";
  e.query = {{"name", std::string("nul\0x", 5)}};
  const std::string text = EventJson(e);
  const json::value v = Parse(text);
  EXPECT_EQ(v.at("extension").at(0).at("valueString"),
            json::value(std::string("q\"b\\s/\n\r\t\x01\x1f\x7f", 12) + "é€😀" +
                        "\xef\xbf\xbd\xef\xbf\xbd" + "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" +
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
  EXPECT_NE(text.find(R"(q\"b\\s/\n\r\t\u0001\u001f\u007fé€😀\ufffd\ufffd)"), std::string::npos)
      << text;
  EXPECT_EQ(v.at("entity").at(0).at("detail").at(0).at("valueString"),
            json::value(std::string("nul\0x", 5)));
}

TEST(OutcomeCodeTest, ByStatus) {
  Event e;
  for (auto [status, code] : std::vector<std::pair<int, std::string>>{{200, "0"},
                                                                      {201, "0"},
                                                                      {304, "0"},
                                                                      {400, "4"},
                                                                      {404, "4"},
                                                                      {499, "4"},
                                                                      {500, "8"},
                                                                      {503, "8"}}) {
    e.status = status;
    EXPECT_EQ(OutcomeCode(e), code) << status;
  }
  e.status = 0;
  EXPECT_EQ(OutcomeCode(e), "0");
  e.outcome_code = "exception";
  EXPECT_EQ(OutcomeCode(e), "8");
}

class TagsTest : public ::testing::Test {
 protected:
  TagsTest() {
    Result<std::unique_ptr<crypto::Keyring>> ring =
        crypto::Keyring::Open(crypto::RandomBytes(crypto::kKeyBytes), {});
    EXPECT_TRUE(ring.ok());
    keyring_ = std::move(ring).value();
    EXPECT_TRUE(keyring_->AddVersion().ok());
    Result<std::string> key = TagKey(*keyring_, 1);
    EXPECT_TRUE(key.ok());
    key_ = *key;
  }
  std::unique_ptr<crypto::Keyring> keyring_;
  std::string key_;
};

TEST_F(TagsTest, TagIsTruncatedHmacOfKindNulValue) {
  const std::string mac = crypto::HmacSha256(key_, std::string("agent\0u-1", 9));
  EXPECT_EQ(Tag(key_, "agent", "u-1"), HexEncode(mac.substr(0, 16)));
  EXPECT_EQ(Tag(key_, "agent", "u-1").size(), 32u);
  // The kind separates equal values of different parameters.
  EXPECT_NE(Tag(key_, "agent", "p1"), Tag(key_, "patient", "p1"));
}

TEST_F(TagsTest, TagKeyIsHkdfOfTheAuditSubkey) {
  Result<std::string> subkey = keyring_->Subkey(crypto::KeyPurpose::kAudit, 1);
  ASSERT_TRUE(subkey.ok());
  EXPECT_EQ(key_, crypto::HkdfSha256(*subkey, "", "phigate-audit-tag-1", 32));
  EXPECT_NE(key_, *subkey);
  Result<std::string> missing = TagKey(*keyring_, 7);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kInternal);
  EXPECT_EQ(missing.status().message(), "unknown key version");
  ASSERT_TRUE(keyring_->AddVersion().ok());
  Result<std::string> second = TagKey(*keyring_, 2);
  ASSERT_TRUE(second.ok());
  EXPECT_NE(*second, key_);
}

// Only values that identify someone or something are tagged (agents, patients, entities,
// query values); the few-valued parameters are matched on the opened event (EventHas).
TEST_F(TagsTest, EventTagsCoverEveryIdentifyingValueSortedAndUnique) {
  const Event e = FullRestEvent();
  std::vector<std::string> expected = {
      Tag(key_, "agent", "u-1"),
      Tag(key_, "agent", "app-1"),
      Tag(key_, "patient", "p1"),
      Tag(key_, "entity", "Observation/o1"),
      Tag(key_, "entity", "Observation/o2"),
      Tag(key_, "query-value", "p1"),
      Tag(key_, "query-value", "1234-5,9999-9"),
      Tag(key_, "query-value", "1234-5"),
      Tag(key_, "query-value", "9999-9"),
  };
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(EventTags(e, key_), expected);
}

TEST_F(TagsTest, ReadTagsTheResourceAndSkipsEmptyValues) {
  Event e;
  e.kind = EventKind::kRest;
  e.subtype = "read";
  e.action = 'R';
  e.client_id = "svc";
  e.resource_type = "Patient";
  e.resource_id = "p1";
  e.version = 2;
  e.patients = {"p1"};
  e.status = 404;
  std::vector<std::string> expected = {
      Tag(key_, "agent", "svc"),
      Tag(key_, "patient", "p1"),
      Tag(key_, "entity", "Patient/p1"),
  };
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(EventTags(e, key_), expected);
}

TEST_F(TagsTest, SecurityDetailAgentsAreTaggedOnce) {
  Event e;
  e.kind = EventKind::kAuthentication;
  e.subtype = "login";
  e.user_id = "u-1";
  e.security = {{"login_password_failure", "u-1", "", "x"}, {"lockout", "u-2", "c-1", "y"}};
  std::vector<std::string> expected = {
      Tag(key_, "agent", "u-1"),
      Tag(key_, "agent", "u-2"),
      Tag(key_, "agent", "c-1"),
  };
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(EventTags(e, key_), expected);
}

TEST(SplitSearchValuesTest, CommasAndEscapedCommas) {
  EXPECT_EQ(SplitSearchValues("a"), std::vector<std::string>({"a"}));
  EXPECT_EQ(SplitSearchValues("a,b"), std::vector<std::string>({"a", "b"}));
  EXPECT_EQ(SplitSearchValues(R"(a\,b,c)"), std::vector<std::string>({"a,b", "c"}));
  EXPECT_EQ(SplitSearchValues("a,"), std::vector<std::string>({"a", ""}));
  EXPECT_EQ(SplitSearchValues(""), std::vector<std::string>({""}));
}

// ---- the record form (EncodeEvent / DecodeEvent) ----

using ::phigate::testing::StatusIs;

// Every field of two events, one EXPECT each, so a field that the record form drops or
// garbles is named in the failure.
void ExpectSameEvent(const Event& actual, const Event& expected) {
  EXPECT_EQ(static_cast<int>(actual.kind), static_cast<int>(expected.kind));
  EXPECT_EQ(actual.subtype, expected.subtype);
  EXPECT_EQ(actual.action, expected.action);
  EXPECT_EQ(actual.time_ms, expected.time_ms);
  EXPECT_EQ(actual.user_id, expected.user_id);
  EXPECT_EQ(actual.client_id, expected.client_id);
  EXPECT_EQ(actual.roles, expected.roles);
  EXPECT_EQ(actual.address, expected.address);
  EXPECT_EQ(actual.user_agent, expected.user_agent);
  EXPECT_EQ(actual.baa_counterparty, expected.baa_counterparty);
  EXPECT_EQ(actual.method, expected.method);
  EXPECT_EQ(actual.route, expected.route);
  EXPECT_EQ(actual.resource_type, expected.resource_type);
  EXPECT_EQ(actual.resource_id, expected.resource_id);
  EXPECT_EQ(actual.version, expected.version);
  EXPECT_EQ(actual.patients, expected.patients);
  EXPECT_EQ(actual.returned, expected.returned);
  EXPECT_EQ(actual.query, expected.query);
  EXPECT_EQ(actual.purpose, expected.purpose);
  EXPECT_EQ(actual.break_glass_reason, expected.break_glass_reason);
  EXPECT_EQ(actual.break_glass_grant, expected.break_glass_grant);
  EXPECT_EQ(actual.status, expected.status);
  EXPECT_EQ(actual.outcome_code, expected.outcome_code);
  EXPECT_EQ(actual.denial, expected.denial);
  EXPECT_EQ(actual.request_id, expected.request_id);
  ASSERT_EQ(actual.security.size(), expected.security.size());
  for (size_t i = 0; i < expected.security.size(); ++i) {
    EXPECT_EQ(actual.security[i].name, expected.security[i].name) << i;
    EXPECT_EQ(actual.security[i].user_id, expected.security[i].user_id) << i;
    EXPECT_EQ(actual.security[i].client_id, expected.security[i].client_id) << i;
    EXPECT_EQ(actual.security[i].reason, expected.security[i].reason) << i;
  }
  EXPECT_EQ(actual.detail, expected.detail);
}

// Encodes, decodes and compares every field.
void ExpectRoundTrip(const Event& event) {
  Result<Event> decoded = DecodeEvent(EncodeEvent(event));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  ExpectSameEvent(*decoded, event);
}

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int byte : bytes) out += static_cast<char>(byte);
  return out;
}

const std::string kMalformed = "malformed audit event";

// A default event with subtype "read" and client_id "c": the smallest interesting record.
Event TinyEvent() {
  Event e;
  e.subtype = "read";
  e.client_id = "c";
  return e;
}

// TinyEvent's record, one piece per field in EncodeEvent's order, so a malformed test can
// replace exactly one field's bytes.
enum TinyField {
  kFormatField,
  kKindField,
  kSubtypeField,
  kActionField,
  kTimeField,
  kUserIdField,
  kClientIdField,
  kRolesField,
  kAddressField,
  kUserAgentField,
  kBaaField,
  kMethodField,
  kRouteField,
  kResourceTypeField,
  kResourceIdField,
  kVersionField,
  kPatientsField,
  kReturnedField,
  kQueryField,
  kPurposeField,
  kBreakGlassReasonField,
  kBreakGlassGrantField,
  kStatusField,
  kOutcomeCodeField,
  kDenialField,
  kRequestIdField,
  kSecurityField,
  kDetailField,
  kFieldCount,
};

// TinyEvent's record with the bytes of the fields named replaced.
std::string TinyWith(std::initializer_list<std::pair<TinyField, std::string>> fields) {
  std::vector<std::string> pieces(kFieldCount, Bytes({0x00}));
  pieces[kFormatField] = Bytes({0x01});
  pieces[kSubtypeField] = Bytes({0x04, 'r', 'e', 'a', 'd'});
  pieces[kActionField] = "E";
  pieces[kClientIdField] = Bytes({0x01, 'c'});
  for (const auto& [field, bytes] : fields) pieces[field] = bytes;
  std::string out;
  for (const std::string& piece : pieces) out += piece;
  return out;
}

std::string TinyWith(TinyField field, const std::string& bytes) {
  return TinyWith({{field, bytes}});
}

std::string Tiny() { return TinyWith(kFormatField, Bytes({0x01})); }

TEST(RecordFormTest, FullRestEventRoundTrips) { ExpectRoundTrip(FullRestEvent()); }

TEST(RecordFormTest, DefaultEventRoundTrips) { ExpectRoundTrip(Event{}); }

TEST(RecordFormTest, EveryKindRoundTrips) {
  for (EventKind kind : {EventKind::kRest, EventKind::kAuthentication, EventKind::kAdministration,
                         EventKind::kSystem}) {
    SCOPED_TRACE(static_cast<int>(kind));
    Event e = FullRestEvent();
    e.kind = kind;
    ExpectRoundTrip(e);
  }
}

TEST(RecordFormTest, ArbitraryBytesRoundTrip) {
  const std::string odd = std::string("a\0b\xff\xfe", 5) + "\xc3" + "\xed\xa0\x80" +
                          std::string(1, '\0') + "\x80\xbf" + "é😀";
  Event e = FullRestEvent();
  e.subtype = odd;
  e.action = '\0';
  e.user_id = odd;
  e.client_id = std::string(1, '\xff');
  e.roles = {odd, "", std::string(1, '\0')};
  e.address = odd;
  e.user_agent = std::string(100 * 1024, 'x') + odd;  // a 100 KB user agent
  e.baa_counterparty = odd;
  e.method = odd;
  e.route = odd;
  e.resource_type = odd;
  e.resource_id = odd;
  e.patients = {odd, ""};
  e.returned = {odd};
  e.query = {{odd, odd}, {"", ""}, {std::string(1, '\0'), std::string(1, '\xff')}};
  e.purpose = odd;
  e.break_glass_reason = odd;
  e.break_glass_grant = odd;
  e.outcome_code = odd;
  e.denial = odd;
  e.request_id = odd;
  e.security = {{odd, odd, odd, odd}, {"", "", "", ""}};
  e.detail = odd;
  ExpectRoundTrip(e);
  e.action = '\xff';
  ExpectRoundTrip(e);
}

TEST(RecordFormTest, ExtremeIntegersRoundTrip) {
  Event e = FullRestEvent();
  for (int64_t time_ms : {int64_t{-1}, int64_t{-kTime}, std::numeric_limits<int64_t>::min(),
                          std::numeric_limits<int64_t>::max()}) {
    e.time_ms = time_ms;
    SCOPED_TRACE(time_ms);
    ExpectRoundTrip(e);
  }
  for (int64_t version :
       {std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max() - 1, int64_t{-1},
        std::numeric_limits<int64_t>::min()}) {
    e.version = version;
    SCOPED_TRACE(version);
    ExpectRoundTrip(e);
  }
  for (int status : {-1, 0, std::numeric_limits<int>::max(), std::numeric_limits<int>::min()}) {
    e.status = status;
    SCOPED_TRACE(status);
    ExpectRoundTrip(e);
  }
}

TEST(RecordFormTest, LongListsRoundTrip) {
  Event e = FullRestEvent();
  e.roles.clear();
  e.patients.clear();
  e.returned.clear();
  e.query.clear();
  e.security.clear();
  for (int i = 0; i < 300; ++i) {
    const std::string n = std::to_string(i);
    e.roles.push_back("role-" + n);
    e.patients.push_back("p" + n);
    e.returned.push_back("Observation/o" + n);
    e.query.emplace_back("name-" + n, "value-" + n);
    e.security.push_back({"name-" + n, "u-" + n, "c-" + n, "reason-" + n});
  }
  ExpectRoundTrip(e);
}

// What a reader renders from a record is what the writer would have rendered.
TEST(RecordFormTest, JsonOfTheDecodedEventIsTheJsonOfTheEvent) {
  Event auth;
  auth.kind = EventKind::kAuthentication;
  auth.subtype = "token";
  auth.time_ms = kTime;
  auth.user_id = "u-9";
  auth.address = "192.0.2.9";
  auth.user_agent = "okhttp/4";
  auth.status = 401;
  auth.outcome_code = "login";
  auth.request_id = "req-9";
  auth.security = {{"login_password_failure", "u-9", "", "bad password"},
                   {"lockout", "u-9", "app-2", "too many failures"}};
  for (const Event& e : {FullRestEvent(), auth}) {
    Result<Event> decoded = DecodeEvent(EncodeEvent(e));
    ASSERT_TRUE(decoded.ok()) << decoded.status().message();
    EXPECT_EQ(EventJson(*decoded), EventJson(e));
    EXPECT_EQ(EventJson(*decoded, "42"), EventJson(e, "42"));
  }
}

// Format 1, byte for byte: a change of the record form must be deliberate (records already
// on disk are read with the old one).
TEST(RecordFormTest, TinyEventHasTheExactBytes) {
  const std::string expected = Bytes({
      0x01,                         // format
      0x00,                         // kind: kRest
      0x04, 'r',  'e',  'a',  'd',  // subtype
      'E',                          // action
      0x00,                         // time_ms
      0x00,                         // user_id
      0x01, 'c',                    // client_id
      0x00,                         // roles
      0x00, 0x00, 0x00,             // address, user_agent, baa_counterparty
      0x00, 0x00, 0x00, 0x00,       // method, route, resource_type, resource_id
      0x00,                         // version
      0x00, 0x00, 0x00,             // patients, returned, query
      0x00, 0x00, 0x00,             // purpose, break_glass_reason, break_glass_grant
      0x00,                         // status
      0x00, 0x00, 0x00,             // outcome_code, denial, request_id
      0x00,                         // security
      0x00,                         // detail
  });
  EXPECT_EQ(EncodeEvent(TinyEvent()), expected);
  EXPECT_EQ(Tiny(), expected);  // the base of the malformed cases below
  Result<Event> decoded = DecodeEvent(expected);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  ExpectSameEvent(*decoded, TinyEvent());
}

// Every list with one element and integers of several bytes, including a negative one.
TEST(RecordFormTest, EventWithEveryListHasTheExactBytes) {
  Event e;
  e.kind = EventKind::kSystem;
  e.action = 'C';
  e.time_ms = 300;
  e.user_id = "u";
  e.roles = {"r"};
  e.address = "a";
  e.baa_counterparty = "b";
  e.method = "M";
  e.route = "/";
  e.resource_type = "T";
  e.resource_id = "i";
  e.version = -1;
  e.patients = {"p"};
  e.returned = {"T/i"};
  e.query = {{"n", "v"}};
  e.purpose = "P";
  e.break_glass_grant = "g";
  e.status = 503;
  e.outcome_code = "x";
  e.request_id = "q";
  e.security = {{"s", "", "c", "w"}};
  e.detail = "d";
  const std::string expected = Bytes({
      0x01,                                                        // format
      0x03,                                                        // kind: kSystem
      0x00,                                                        // subtype
      'C',                                                         // action
      0xAC, 0x02,                                                  // time_ms 300
      0x01, 'u',                                                   // user_id
      0x00,                                                        // client_id
      0x01, 0x01, 'r',                                             // roles
      0x01, 'a',                                                   // address
      0x00,                                                        // user_agent
      0x01, 'b',                                                   // baa_counterparty
      0x01, 'M',                                                   // method
      0x01, '/',                                                   // route
      0x01, 'T',                                                   // resource_type
      0x01, 'i',                                                   // resource_id
      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,  // version -1
      0x01, 0x01, 'p',                                             // patients
      0x01, 0x03, 'T',  '/',  'i',                                 // returned
      0x01, 0x01, 'n',  0x01, 'v',                                 // query
      0x01, 'P',                                                   // purpose
      0x00,                                                        // break_glass_reason
      0x01, 'g',                                                   // break_glass_grant
      0xF7, 0x03,                                                  // status 503
      0x01, 'x',                                                   // outcome_code
      0x00,                                                        // denial
      0x01, 'q',                                                   // request_id
      0x01, 0x01, 's',  0x00, 0x01, 'c',  0x01, 'w',               // security
      0x01, 'd',                                                   // detail
  });
  EXPECT_EQ(EncodeEvent(e), expected);
  Result<Event> decoded = DecodeEvent(expected);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  ExpectSameEvent(*decoded, e);
}

TEST(RecordFormTest, EmptyInputIsMalformed) {
  EXPECT_THAT(DecodeEvent(""), StatusIs(StatusCode::kInvalidArgument, kMalformed));
}

TEST(RecordFormTest, UnknownFormatIsMalformed) {
  for (int format : {0x00, 0x02, 0x81, 0xFF}) {
    std::string bytes = EncodeEvent(FullRestEvent());
    bytes[0] = static_cast<char>(format);
    EXPECT_THAT(DecodeEvent(bytes), StatusIs(StatusCode::kInvalidArgument, kMalformed)) << format;
    EXPECT_THAT(DecodeEvent(TinyWith(kFormatField, Bytes({format}))),
                StatusIs(StatusCode::kInvalidArgument, kMalformed))
        << format;
  }
}

TEST(RecordFormTest, EveryStrictPrefixIsMalformed) {
  const std::string bytes = EncodeEvent(FullRestEvent());
  ASSERT_GT(bytes.size(), 100u);
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_THAT(DecodeEvent(std::string_view(bytes).substr(0, n)),
                StatusIs(StatusCode::kInvalidArgument, kMalformed))
        << "prefix of " << n << " of " << bytes.size() << " bytes";
  }
  const std::string tiny = Tiny();
  for (size_t n = 0; n < tiny.size(); ++n) {
    EXPECT_THAT(DecodeEvent(std::string_view(tiny).substr(0, n)),
                StatusIs(StatusCode::kInvalidArgument, kMalformed))
        << "prefix of " << n << " of " << tiny.size() << " bytes";
  }
}

TEST(RecordFormTest, TrailingBytesAreMalformed) {
  for (const std::string& tail : {Bytes({0x00}), std::string("x"), Bytes({0x01, 0x02})}) {
    EXPECT_THAT(DecodeEvent(EncodeEvent(FullRestEvent()) + tail),
                StatusIs(StatusCode::kInvalidArgument, kMalformed));
    EXPECT_THAT(DecodeEvent(Tiny() + tail), StatusIs(StatusCode::kInvalidArgument, kMalformed));
  }
}

TEST(RecordFormTest, UnknownKindIsMalformed) {
  EXPECT_THAT(DecodeEvent(TinyWith(kKindField, Bytes({0x04}))),
              StatusIs(StatusCode::kInvalidArgument, kMalformed));
  EXPECT_THAT(DecodeEvent(TinyWith(kKindField, Bytes({0x7F}))),
              StatusIs(StatusCode::kInvalidArgument, kMalformed));
  // 2^32: a kind that a 32-bit cast would turn into kRest.
  EXPECT_THAT(DecodeEvent(TinyWith(kKindField, Bytes({0x80, 0x80, 0x80, 0x80, 0x10}))),
              StatusIs(StatusCode::kInvalidArgument, kMalformed));
  // The last kind is accepted.
  Result<Event> system = DecodeEvent(TinyWith(kKindField, Bytes({0x03})));
  ASSERT_TRUE(system.ok()) << system.status().message();
  EXPECT_EQ(system->kind, EventKind::kSystem);
}

// A count or length that claims more than the record holds fails before anything of that
// size is allocated.
TEST(RecordFormTest, CountsBeyondTheRemainingBytesAreMalformed) {
  const std::string huge = Bytes({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01});
  for (TinyField field :
       {kRolesField, kPatientsField, kReturnedField, kQueryField, kSecurityField}) {
    EXPECT_THAT(DecodeEvent(TinyWith(field, Bytes({0x7F}))),
                StatusIs(StatusCode::kInvalidArgument, kMalformed))
        << field;
    EXPECT_THAT(DecodeEvent(TinyWith(field, huge)),
                StatusIs(StatusCode::kInvalidArgument, kMalformed))
        << field;
  }
  for (TinyField field : {kSubtypeField, kUserIdField, kUserAgentField, kDetailField}) {
    EXPECT_THAT(DecodeEvent(TinyWith(field, Bytes({0x7F}))),
                StatusIs(StatusCode::kInvalidArgument, kMalformed))
        << field;
    EXPECT_THAT(DecodeEvent(TinyWith(field, huge)),
                StatusIs(StatusCode::kInvalidArgument, kMalformed))
        << field;
  }
  // A count that fits the remaining bytes but whose elements run past the end.
  EXPECT_THAT(DecodeEvent(TinyWith(kRolesField, Bytes({0x02, 0x01, 'r'}))),
              StatusIs(StatusCode::kInvalidArgument, kMalformed));
  // A string length one past the end.
  EXPECT_THAT(DecodeEvent(TinyWith(kDetailField, Bytes({0x02, 'd'}))),
              StatusIs(StatusCode::kInvalidArgument, kMalformed));
}

TEST(RecordFormTest, VarintLongerThanTenBytesIsMalformed) {
  // Ten bytes is the longest a 64-bit value needs (and what -1 takes).
  Result<Event> ten = DecodeEvent(
      TinyWith(kTimeField, Bytes({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01})));
  ASSERT_TRUE(ten.ok()) << ten.status().message();
  EXPECT_EQ(ten->time_ms, -1);
  EXPECT_THAT(DecodeEvent(TinyWith(kTimeField, Bytes({0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                                      0x80, 0x80, 0x80, 0x00}))),
              StatusIs(StatusCode::kInvalidArgument, kMalformed));
  EXPECT_THAT(DecodeEvent(TinyWith(kVersionField, Bytes({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                                         0xFF, 0xFF, 0xFF, 0x01}))),
              StatusIs(StatusCode::kInvalidArgument, kMalformed));
  EXPECT_THAT(DecodeEvent(TinyWith(kRolesField, Bytes({0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                                       0x80, 0x80, 0x80, 0x80, 0x00}))),
              StatusIs(StatusCode::kInvalidArgument, kMalformed));
}

TEST(RecordFormTest, StatusBeyondIntIsMalformed) {
  // 2^31 and -2^31 - 1.
  EXPECT_THAT(DecodeEvent(TinyWith(kStatusField, Bytes({0x80, 0x80, 0x80, 0x80, 0x08}))),
              StatusIs(StatusCode::kInvalidArgument, kMalformed));
  EXPECT_THAT(DecodeEvent(TinyWith(kStatusField, Bytes({0xFF, 0xFF, 0xFF, 0xFF, 0xF7, 0xFF, 0xFF,
                                                        0xFF, 0xFF, 0x01}))),
              StatusIs(StatusCode::kInvalidArgument, kMalformed));
  // INT_MAX and INT_MIN are accepted.
  Result<Event> max = DecodeEvent(TinyWith(kStatusField, Bytes({0xFF, 0xFF, 0xFF, 0xFF, 0x07})));
  ASSERT_TRUE(max.ok()) << max.status().message();
  EXPECT_EQ(max->status, std::numeric_limits<int>::max());
  Result<Event> min = DecodeEvent(
      TinyWith(kStatusField, Bytes({0x80, 0x80, 0x80, 0x80, 0xF8, 0xFF, 0xFF, 0xFF, 0xFF, 0x01})));
  ASSERT_TRUE(min.ok()) << min.status().message();
  EXPECT_EQ(min->status, std::numeric_limits<int>::min());
}

// A varint of ten bytes: nine continuation bytes `fill` (0x80: groups of zeros, 0xFF: of
// ones), then `last`, the byte that holds bit 63.
std::string TenByteVarint(int fill, int last) {
  std::string out(9, static_cast<char>(fill));
  out += static_cast<char>(last);
  return out;
}

// EncodeEvent writes each value one way (the shortest LEB128), so any other encoding of it
// is a record EncodeEvent did not produce (event.h: malformed). A zero written with extra
// zero groups: two bytes, three, and the ten-byte length.
TEST(RecordFormTest, OverLongZeroIsMalformed) {
  for (const std::string& zero :
       {Bytes({0x80, 0x00}), Bytes({0x80, 0x80, 0x00}), TenByteVarint(0x80, 0x00)}) {
    SCOPED_TRACE(zero.size());
    EXPECT_THAT(DecodeEvent(TinyWith(kTimeField, zero)),
                StatusIs(StatusCode::kInvalidArgument, kMalformed));
    // The same in every other varint of the record that TinyEvent has as zero: kind,
    // integers, string lengths and list counts.
    for (TinyField field : {kKindField, kUserIdField, kRolesField, kVersionField, kQueryField,
                            kStatusField, kSecurityField, kDetailField}) {
      EXPECT_THAT(DecodeEvent(TinyWith(field, zero)),
                  StatusIs(StatusCode::kInvalidArgument, kMalformed))
          << field;
    }
  }
}

TEST(RecordFormTest, OverLongEncodingIsMalformed) {
  struct Case {
    TinyField field;
    std::string shortest;   // what EncodeEvent writes: accepted
    std::string over_long;  // the same value with a zero last group: malformed
  };
  const std::vector<Case> cases = {
      {kTimeField, Bytes({0x01}), Bytes({0x81, 0x00})},              // time_ms 1
      {kTimeField, Bytes({0xAC, 0x02}), Bytes({0xAC, 0x82, 0x00})},  // time_ms 300
      {kKindField, Bytes({0x01}), Bytes({0x81, 0x00})},              // kind kAuthentication
      {kVersionField, Bytes({0x01}), Bytes({0x81, 0x00})},
      {kStatusField, Bytes({0x01}), Bytes({0x81, 0x00})},
      {kClientIdField, Bytes({0x01, 'c'}), Bytes({0x81, 0x00, 'c'})},           // a string's length
      {kRolesField, Bytes({0x01, 0x01, 'r'}), Bytes({0x81, 0x00, 0x01, 'r'})},  // a count
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    // The shortest form decodes, so the over-long one fails for its encoding alone.
    Result<Event> shortest = DecodeEvent(TinyWith(c.field, c.shortest));
    ASSERT_TRUE(shortest.ok()) << shortest.status().message();
    EXPECT_THAT(DecodeEvent(TinyWith(c.field, c.over_long)),
                StatusIs(StatusCode::kInvalidArgument, kMalformed));
  }
}

// The tenth byte holds bit 63 alone (7 * 9 = 63 bits before it): anything above 1 names bits
// a 64-bit value does not have, which a decoder that shifts them out would turn into another
// value (0xFF... 0x7F into -1, 0x80... 0x02 into 0).
TEST(RecordFormTest, TenthVarintByteAboveOneIsMalformed) {
  for (int last : {0x02, 0x7F}) {
    for (int fill : {0x80, 0xFF}) {
      SCOPED_TRACE(::testing::Message() << "fill " << fill << " last " << last);
      EXPECT_THAT(DecodeEvent(TinyWith(kTimeField, TenByteVarint(fill, last))),
                  StatusIs(StatusCode::kInvalidArgument, kMalformed));
      EXPECT_THAT(DecodeEvent(TinyWith(kVersionField, TenByteVarint(fill, last))),
                  StatusIs(StatusCode::kInvalidArgument, kMalformed));
    }
  }
  // A count and a length: zero groups and an even tenth byte, whose dropped bits would leave
  // 0, an empty list or string that the rest of the record agrees with.
  for (int last : {0x02, 0x7E}) {
    EXPECT_THAT(DecodeEvent(TinyWith(kRolesField, TenByteVarint(0x80, last))),
                StatusIs(StatusCode::kInvalidArgument, kMalformed))
        << last;
    EXPECT_THAT(DecodeEvent(TinyWith(kUserIdField, TenByteVarint(0x80, last))),
                StatusIs(StatusCode::kInvalidArgument, kMalformed))
        << last;
  }
}

// 0x01 as the tenth byte is bit 63 set: how EncodeEvent writes every value >= 2^63, which
// is each negative time_ms and version.
TEST(RecordFormTest, TenthVarintByteOneIsAccepted) {
  struct Case {
    std::string bytes;
    int64_t value;
  };
  const std::vector<Case> cases = {
      {TenByteVarint(0xFF, 0x01), -1},
      {TenByteVarint(0x80, 0x01), std::numeric_limits<int64_t>::min()},
      {Bytes({0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}), -2},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.value);
    const std::string time_record = TinyWith(kTimeField, c.bytes);
    Result<Event> time = DecodeEvent(time_record);
    ASSERT_TRUE(time.ok()) << time.status().message();
    EXPECT_EQ(time->time_ms, c.value);
    EXPECT_EQ(EncodeEvent(*time), time_record);  // and is what EncodeEvent writes
    const std::string version_record = TinyWith(kVersionField, c.bytes);
    Result<Event> version = DecodeEvent(version_record);
    ASSERT_TRUE(version.ok()) << version.status().message();
    EXPECT_EQ(version->version, c.value);
    EXPECT_EQ(EncodeEvent(*version), version_record);
  }
}

// A zero last byte is rejected after the first byte only: 0x00 alone is 0. Here kind,
// time_ms, version and status are each 0x00 between non-zero fields, so a decoder that
// rejected the byte, read it as another value or took a byte of a neighbour is caught.
TEST(RecordFormTest, SingleZeroByteIsZero) {
  const std::string zero = Bytes({0x00});
  const std::string record = TinyWith({
      {kKindField, zero},  // after the format byte 0x01
      {kTimeField, zero},  // between action 'E' and user_id "u"
      {kUserIdField, Bytes({0x01, 'u'})},
      {kResourceIdField, Bytes({0x01, 'i'})},
      {kVersionField, zero},  // between resource_id "i" and patients {"p"}
      {kPatientsField, Bytes({0x01, 0x01, 'p'})},
      {kBreakGlassGrantField, Bytes({0x01, 'g'})},
      {kStatusField, zero},  // between break_glass_grant "g" and outcome_code "x"
      {kOutcomeCodeField, Bytes({0x01, 'x'})},
  });
  Event expected = TinyEvent();
  expected.user_id = "u";
  expected.resource_id = "i";
  expected.patients = {"p"};
  expected.break_glass_grant = "g";
  expected.outcome_code = "x";
  Result<Event> decoded = DecodeEvent(record);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(decoded->kind, EventKind::kRest);
  EXPECT_EQ(decoded->time_ms, 0);
  EXPECT_EQ(decoded->version, 0);
  EXPECT_EQ(decoded->status, 0);
  ExpectSameEvent(*decoded, expected);
  EXPECT_EQ(EncodeEvent(expected), record);
}

// Zero groups before the last byte are the shortest encoding of their value (128 is
// 0x80 0x01): only a zero last byte makes an encoding over-long.
TEST(RecordFormTest, ZeroGroupsBeforeTheLastByteAreAccepted) {
  struct Case {
    std::string bytes;
    int64_t value;
  };
  const std::vector<Case> cases = {
      {Bytes({0x80, 0x01}), 128},
      {Bytes({0x80, 0x80, 0x01}), 16384},
      {Bytes({0x80, 0x80, 0x80, 0x80, 0x10}), int64_t{1} << 32},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.value);
    const std::string record = TinyWith(kTimeField, c.bytes);
    Result<Event> decoded = DecodeEvent(record);
    ASSERT_TRUE(decoded.ok()) << decoded.status().message();
    EXPECT_EQ(decoded->time_ms, c.value);
    EXPECT_EQ(EncodeEvent(*decoded), record);
  }
}

// ---- matching on the opened event (EventHas) ----

TEST(IsTaggedKindTest, ExactlyTheIdentifyingKinds) {
  for (std::string_view kind : {"agent", "patient", "entity", "query-value"}) {
    EXPECT_TRUE(IsTaggedKind(kind)) << kind;
  }
  for (std::string_view kind : {"entity-type", "action", "outcome", "purpose", "subtype", "type",
                                "date", "", "Agent", "agent ", "query", "entity-"}) {
    EXPECT_FALSE(IsTaggedKind(kind)) << kind;
  }
}

TEST(EventHasTest, EntityTypeIsTheResourceTypeOrAReturnedType) {
  const Event search = FullRestEvent();  // Observation, returned Observation/o1, /o2
  EXPECT_TRUE(EventHas(search, "entity-type", "Observation"));
  EXPECT_FALSE(EventHas(search, "entity-type", "Patient"));
  EXPECT_FALSE(EventHas(search, "entity-type", "Observation/o1"));
  EXPECT_FALSE(EventHas(search, "entity-type", "Obs"));
  EXPECT_FALSE(EventHas(search, "entity-type", "observation"));
  EXPECT_FALSE(EventHas(search, "entity-type", ""));

  Event history;  // a system-wide interaction: no resource type, returned ones of two types
  history.subtype = "history-system";
  history.returned = {"Patient/p1", "Encounter/e1"};
  EXPECT_TRUE(EventHas(history, "entity-type", "Patient"));
  EXPECT_TRUE(EventHas(history, "entity-type", "Encounter"));
  EXPECT_FALSE(EventHas(history, "entity-type", "Observation"));
  EXPECT_FALSE(EventHas(history, "entity-type", "p1"));
  EXPECT_FALSE(EventHas(history, "entity-type", ""));

  EXPECT_FALSE(EventHas(Event{}, "entity-type", ""));
}

TEST(EventHasTest, Action) {
  Event e = FullRestEvent();
  e.action = 'R';
  EXPECT_TRUE(EventHas(e, "action", "R"));
  for (std::string_view other : {"E", "C", "U", "D", "r", "", "RR"}) {
    EXPECT_FALSE(EventHas(e, "action", other)) << other;
  }
}

TEST(EventHasTest, OutcomeFollowsTheStatus) {
  Event e = FullRestEvent();
  for (auto [status, code] :
       std::vector<std::pair<int, std::string>>{{200, "0"}, {404, "4"}, {503, "8"}}) {
    e.status = status;
    SCOPED_TRACE(status);
    for (std::string_view value : {"0", "4", "8", "12", ""}) {
      EXPECT_EQ(EventHas(e, "outcome", value), value == code) << value;
    }
  }
}

TEST(EventHasTest, Purpose) {
  Event e = FullRestEvent();  // TREAT
  EXPECT_TRUE(EventHas(e, "purpose", "TREAT"));
  EXPECT_FALSE(EventHas(e, "purpose", "ETREAT"));
  EXPECT_FALSE(EventHas(e, "purpose", "treat"));
  EXPECT_FALSE(EventHas(e, "purpose", ""));
  e.purpose.clear();
  EXPECT_FALSE(EventHas(e, "purpose", "TREAT"));
  EXPECT_FALSE(EventHas(e, "purpose", ""));
}

TEST(EventHasTest, Subtype) {
  Event e = FullRestEvent();  // search-type
  EXPECT_TRUE(EventHas(e, "subtype", "search-type"));
  EXPECT_FALSE(EventHas(e, "subtype", "read"));
  EXPECT_FALSE(EventHas(e, "subtype", "search"));
  EXPECT_FALSE(EventHas(e, "subtype", ""));
  e.subtype.clear();
  EXPECT_FALSE(EventHas(e, "subtype", ""));
}

TEST(EventHasTest, TypeIsTheKindName) {
  const std::vector<std::pair<EventKind, std::string>> kinds = {
      {EventKind::kRest, "rest"},
      {EventKind::kAuthentication, "authentication"},
      {EventKind::kAdministration, "administration"},
      {EventKind::kSystem, "system"}};
  for (const auto& [kind, name] : kinds) {
    Event e;
    e.kind = kind;
    for (const auto& [other_kind, other_name] : kinds) {
      EXPECT_EQ(EventHas(e, "type", other_name), other_kind == kind) << name << " " << other_name;
    }
    EXPECT_FALSE(EventHas(e, "type", "")) << name;
    EXPECT_FALSE(EventHas(e, "type", "110114")) << name;
  }
}

// Tagged kinds are matched by tag, never on the opened event, even where the event has the
// value; an unknown parameter matches nothing.
TEST(EventHasTest, FalseForTaggedAndUnknownKinds) {
  const Event e = FullRestEvent();
  EXPECT_FALSE(EventHas(e, "agent", "u-1"));
  EXPECT_FALSE(EventHas(e, "agent", "app-1"));
  EXPECT_FALSE(EventHas(e, "patient", "p1"));
  EXPECT_FALSE(EventHas(e, "entity", "Observation/o1"));
  EXPECT_FALSE(EventHas(e, "query-value", "p1"));
  EXPECT_FALSE(EventHas(e, "date", "2026-11-29"));
  EXPECT_FALSE(EventHas(e, "status", "200"));
  EXPECT_FALSE(EventHas(e, "", ""));
  EXPECT_FALSE(EventHas(e, "Action", "E"));
}

// What a reader does: open the record, then match.
TEST(EventHasTest, MatchesTheDecodedEvent) {
  Result<Event> decoded = DecodeEvent(EncodeEvent(FullRestEvent()));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_TRUE(EventHas(*decoded, "entity-type", "Observation"));
  EXPECT_TRUE(EventHas(*decoded, "action", "E"));
  EXPECT_TRUE(EventHas(*decoded, "outcome", "0"));
  EXPECT_TRUE(EventHas(*decoded, "purpose", "TREAT"));
  EXPECT_TRUE(EventHas(*decoded, "subtype", "search-type"));
  EXPECT_TRUE(EventHas(*decoded, "type", "rest"));
  EXPECT_FALSE(EventHas(*decoded, "type", "system"));
}

}  // namespace
}  // namespace phigate::audit
