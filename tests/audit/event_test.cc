#include "audit/event.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>

#include "core/base64.h"
#include "crypto/crypto.h"
#include "crypto/keyring.h"

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

TEST_F(TagsTest, EventTagsCoverEverySearchableValueSortedAndUnique) {
  const Event e = FullRestEvent();
  std::vector<std::string> expected = {
      Tag(key_, "agent", "u-1"),
      Tag(key_, "agent", "app-1"),
      Tag(key_, "patient", "p1"),
      Tag(key_, "entity-type", "Observation"),
      Tag(key_, "entity", "Observation/o1"),
      Tag(key_, "entity", "Observation/o2"),
      Tag(key_, "action", "E"),
      Tag(key_, "outcome", "0"),
      Tag(key_, "purpose", "TREAT"),
      Tag(key_, "subtype", "search-type"),
      Tag(key_, "type", "rest"),
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
      Tag(key_, "entity-type", "Patient"),
      Tag(key_, "entity", "Patient/p1"),
      Tag(key_, "action", "R"),
      Tag(key_, "outcome", "4"),
      Tag(key_, "subtype", "read"),
      Tag(key_, "type", "rest"),
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
      Tag(key_, "agent", "u-1"),           Tag(key_, "agent", "u-2"),
      Tag(key_, "agent", "c-1"),           Tag(key_, "action", "E"),
      Tag(key_, "outcome", "0"),           Tag(key_, "subtype", "login"),
      Tag(key_, "type", "authentication"),
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

}  // namespace
}  // namespace phigate::audit
