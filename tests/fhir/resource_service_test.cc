#include "fhir/resource_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <boost/json.hpp>
#include <filesystem>
#include <thread>

#include "crypto/crypto.h"
#include "fhir/json_pretty.h"
#include "storage/sqlite/sqlite_store.h"

namespace phigate::fhir {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;
using ::testing::Not;

class ResourceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/phigate-rs-XXXXXX";
    dir_ = mkdtemp(tmpl);
    storage::SqliteOptions options;
    options.path = dir_ + "/db";
    store_ = std::move(storage::OpenSqliteStore(options)).value();
    keyring_ = std::move(crypto::Keyring::Open(crypto::RandomBytes(32), {})).value();
    ASSERT_TRUE(keyring_->AddVersion().ok());
    service_ =
        std::make_unique<ResourceService>(*store_, *keyring_, Model::R4(), clock_, config_, 64);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static std::string Patient(const std::string& family) {
    return (R"({"resourceType":"Patient","name":[{"family":")" + family +
            R"("}],"birthDate":"1970-01-02"})");
  }
  static std::string WithId(const std::string& text, const std::string& id) {
    json::value v = json::parse(text);
    v.as_object()["id"] = id;
    return json::serialize(v);
  }
  std::string CreatePatient(const std::string& family) {
    auto r = service_->Create("Patient", Patient(family), kBase);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return json::parse(r->body).at("id").as_string().c_str();
  }

  static constexpr const char* kBase = "https://h/fhir";
  std::string dir_;
  FakeClock clock_{1'700'000'000'123};
  FhirConfig config_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<crypto::Keyring> keyring_;
  std::unique_ptr<ResourceService> service_;
};

TEST_F(ResourceServiceTest, CreateAssignsIdVersionAndHeaders) {
  auto body = WithId(Patient("Alpha"), "client-chosen");
  auto r = service_->Create("Patient", body, kBase);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 201);
  auto created = json::parse(r->body).as_object();
  std::string id = created.at("id").as_string().c_str();
  EXPECT_NE(id, "client-chosen");
  EXPECT_EQ(id.size(), 36u);
  EXPECT_EQ(created.at("meta").at("versionId"), "1");
  EXPECT_EQ(created.at("meta").at("lastUpdated"), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(r->etag, "W/\"1\"");
  EXPECT_EQ(r->last_modified, "Tue, 14 Nov 2023 22:13:20 GMT");
  EXPECT_EQ(r->location, std::string(kBase) + "/Patient/" + id + "/_history/1");

  auto read = service_->Read("Patient", id);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->body, r->body);
}

TEST_F(ResourceServiceTest, StoredCiphertextHoldsNoPlaintext) {
  std::string id = CreatePatient("Canaryfamilyname");
  auto rec = store_->ReadCurrent("Patient", id);
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_THAT((*rec)->ciphertext, Not(HasSubstr("Canaryfamilyname")));
  EXPECT_EQ((*rec)->key_version, keyring_->current_version());
}

TEST_F(ResourceServiceTest, CiphertextMovedToAnotherRowFailsToOpen) {
  std::string a = CreatePatient("A");
  std::string b = CreatePatient("B");
  auto rec_a = std::move(store_->ReadCurrent("Patient", a)).value().value();
  // Put A's ciphertext as version 2 of B: the AAD (type/id/version) no longer matches.
  storage::VersionRecord forged = rec_a;
  forged.id = b;
  forged.version = 2;
  ASSERT_TRUE(store_->AppendVersion(forged, 1).ok());
  auto read = service_->Read("Patient", b);
  EXPECT_EQ(read.status().code(), StatusCode::kInternal);
  EXPECT_EQ(read.status().message(), "the stored resource could not be read");
}

TEST_F(ResourceServiceTest, CreateRejectsMismatchedTypeAndInvalidResources) {
  auto r = service_->Create("Observation", Patient("X"), kBase);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().expression(), "resourceType");
  std::string bad = R"({"resourceType":"Patient","birthDate":"1970-13-45"})";
  auto v = service_->Create("Patient", bad, kBase);
  EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(v.status().expression(), "Patient.birthDate");
  EXPECT_THAT(v.status().message(), Not(HasSubstr("1970-13-45")));
}

TEST_F(ResourceServiceTest, UpdateVersionsAndIfMatch) {
  std::string id = CreatePatient("A");
  auto body = Patient("B");
  body = WithId(body, id);
  clock_.Advance(1000);
  auto u = service_->Update("Patient", id, body, "", kBase);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->status, 200);
  EXPECT_EQ(u->etag, "W/\"2\"");
  auto stale = service_->Update("Patient", id, body, "W/\"1\"", kBase);
  EXPECT_EQ(stale.status().code(), StatusCode::kPreconditionFailed);
  auto ok = service_->Update("Patient", id, body, "W/\"2\"", kBase);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->etag, "W/\"3\"");
  auto malformed = service_->Update("Patient", id, body, "2", kBase);
  EXPECT_EQ(malformed.status().code(), StatusCode::kInvalidArgument);

  auto v1 = service_->Vread("Patient", id, "1");
  ASSERT_TRUE(v1.ok());
  EXPECT_THAT(v1->body, HasSubstr("\"family\":\"A\""));
  EXPECT_EQ(service_->Vread("Patient", id, "9").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(service_->Vread("Patient", id, "x").status().code(), StatusCode::kNotFound);
}

TEST_F(ResourceServiceTest, UpdateRequiresMatchingIdAndRespectsUpdateCreate) {
  std::string id = CreatePatient("A");
  auto body = Patient("B");
  auto missing = service_->Update("Patient", id, body, "", kBase);
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(missing.status().expression(), "Patient.id");
  body = WithId(body, "other");
  EXPECT_EQ(service_->Update("Patient", id, body, "", kBase).status().code(),
            StatusCode::kInvalidArgument);
  body = WithId(body, "new-id");
  EXPECT_EQ(service_->Update("Patient", "new-id", body, "", kBase).status().code(),
            StatusCode::kMethodNotAllowed);
  config_.update_create = true;
  ResourceService permissive(*store_, *keyring_, Model::R4(), clock_, config_, 64);
  auto created = permissive.Update("Patient", "new-id", body, "", kBase);
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(created->status, 201);
}

TEST_F(ResourceServiceTest, DeleteWritesTombstone) {
  std::string id = CreatePatient("A");
  auto d = service_->Delete("Patient", id, "");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->status, 204);
  EXPECT_EQ(d->etag, "W/\"2\"");
  EXPECT_EQ(service_->Read("Patient", id).status().code(), StatusCode::kGone);
  EXPECT_EQ(service_->Vread("Patient", id, "2").status().code(), StatusCode::kGone);
  EXPECT_TRUE(service_->Vread("Patient", id, "1").ok());
  auto again = service_->Delete("Patient", id, "");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->etag, "W/\"2\"");  // no new version
  EXPECT_EQ(service_->Delete("Patient", "never", "")->status, 204);
  EXPECT_EQ(service_->Delete("Patient", id, "W/\"1\"").status().code(),
            StatusCode::kPreconditionFailed);
  EXPECT_EQ(service_->Read("Patient", "never").status().code(), StatusCode::kNotFound);
}

// Issue 5 §2: each write calls its guard (the audit record) with what it is about to
// commit; a failing guard leaves nothing changed.
TEST_F(ResourceServiceTest, WriteGuardSeesEachChangeAndItsFailureCommitsNothing) {
  struct Call {
    std::string id;
    int64_t version;
    int status;
  };
  std::vector<Call> calls;
  Status verdict = Status::Ok();
  WriteGuard guard = [&](std::string_view id, int64_t version, int status) {
    calls.push_back({std::string(id), version, status});
    return verdict;
  };
  auto created = service_->Create("Patient", Patient("A"), kBase, guard);
  ASSERT_TRUE(created.ok());
  const std::string id = json::parse(created->body).at("id").as_string().c_str();
  auto updated = service_->Update("Patient", id, WithId(Patient("B"), id), "", kBase, guard);
  ASSERT_TRUE(updated.ok());
  auto deleted = service_->Delete("Patient", id, "", guard);
  ASSERT_TRUE(deleted.ok());
  // Deleting what is already deleted writes nothing, so there is nothing to guard.
  ASSERT_TRUE(service_->Delete("Patient", id, "", guard).ok());
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].id, id);
  EXPECT_EQ(calls[0].version, 1);
  EXPECT_EQ(calls[0].status, 201);
  EXPECT_EQ(calls[1].version, 2);
  EXPECT_EQ(calls[1].status, 200);
  EXPECT_EQ(calls[2].version, 3);
  EXPECT_EQ(calls[2].status, 204);

  verdict = Status(StatusCode::kUnavailable, "audit trail unavailable");
  const std::string other = CreatePatient("C");
  EXPECT_EQ(service_->Update("Patient", other, WithId(Patient("D"), other), "", kBase, guard)
                .status()
                .message(),
            "audit trail unavailable");
  EXPECT_EQ(service_->Delete("Patient", other, "", guard).status().code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(service_->Create("Patient", Patient("E"), kBase, guard).status().code(),
            StatusCode::kUnavailable);
  auto still = service_->Read("Patient", other);
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->etag, "W/\"1\"");
  auto history = service_->History("Patient", "", {}, kBase);
  ASSERT_TRUE(history.ok());
  // Versions: A (3) + C (1); E was never created.
  EXPECT_EQ(json::parse(history->body).at("entry").as_array().size(), 4u);
}

TEST_F(ResourceServiceTest, HistoryNewestFirstWithPaging) {
  std::string id = CreatePatient("A");
  auto body = Patient("B");
  body = WithId(body, id);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(service_->Update("Patient", id, body, "", kBase).ok());
  ASSERT_TRUE(service_->Delete("Patient", id, "").ok());
  auto h = service_->History("Patient", id, {{"_count", "2"}}, kBase);
  ASSERT_TRUE(h.ok());
  auto bundle = json::parse(h->body).as_object();
  EXPECT_EQ(bundle.at("type"), "history");
  auto& entries = bundle.at("entry").as_array();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].at("request").at("method"), "DELETE");
  EXPECT_EQ(entries[0].at("response").at("etag"), "W/\"5\"");
  EXPECT_FALSE(entries[0].as_object().contains("resource"));
  EXPECT_EQ(entries[1].at("resource").at("meta").at("versionId"), "4");
  auto& links = bundle.at("link").as_array();
  ASSERT_EQ(links.size(), 2u);
  EXPECT_EQ(links[1].at("relation"), "next");
  std::string next = links[1].at("url").as_string().c_str();
  std::string page = next.substr(next.find("_page=") + 6);

  auto h2 = service_->History("Patient", id, {{"_count", "2"}, {"_page", page}}, kBase);
  ASSERT_TRUE(h2.ok());
  auto e2 = json::parse(h2->body).at("entry").as_array();
  ASSERT_EQ(e2.size(), 2u);
  EXPECT_EQ(e2[0].at("resource").at("meta").at("versionId"), "3");
  EXPECT_EQ(e2[1].at("resource").at("meta").at("versionId"), "2");
  auto links2 = json::parse(h2->body).at("link").as_array();
  ASSERT_EQ(links2.size(), 2u);
  std::string next2 = links2[1].at("url").as_string().c_str();
  auto h3 = service_->History(
      "Patient", id, {{"_count", "2"}, {"_page", next2.substr(next2.find("_page=") + 6)}}, kBase);
  auto last = json::parse(h3->body).as_object();
  ASSERT_EQ(last.at("entry").as_array().size(), 1u);
  EXPECT_EQ(last.at("entry").as_array()[0].at("request").at("method"), "POST");
  EXPECT_EQ(last.at("link").as_array().size(), 1u);  // no next
}

TEST_F(ResourceServiceTest, TypeHistoryAndParameters) {
  CreatePatient("A");
  CreatePatient("B");
  auto h = service_->History("Patient", "", {}, kBase);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(json::parse(h->body).at("entry").as_array().size(), 2u);
  auto empty = service_->History("Observation", "", {}, kBase);
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(json::parse(empty->body).as_object().contains("entry"));
  EXPECT_EQ(service_->History("Patient", "", {{"_count", "0"}}, kBase).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(service_->History("Patient", "", {{"_since", "2020"}}, kBase).status().code(),
            StatusCode::kNotSupported);
  EXPECT_EQ(service_->History("Patient", "", {{"name", "x"}}, kBase).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(service_->History("Patient", "nope", {}, kBase).status().code(), StatusCode::kNotFound);
}

TEST_F(ResourceServiceTest, ConcurrentIfMatchUpdatesExactlyOneWins) {
  std::string id = CreatePatient("A");
  auto body = Patient("B");
  body = WithId(body, id);
  std::atomic<int> ok{0}, precondition{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto r = service_->Update("Patient", id, body, "W/\"1\"", kBase);
      if (r.ok()) ++ok;
      if (r.status().code() == StatusCode::kPreconditionFailed) ++precondition;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(precondition.load(), 7);
}

TEST_F(ResourceServiceTest, ElementsAreStoredAsSentSoDecimalsKeepTheirPrecision) {
  const std::string body = R"({ "resourceType" : "Observation", "id": "ignored",
    "meta": {"versionId": "7", "tag": [{"code": "t"}]},
    "status": "final", "code": {"text": "heart rate \u00e9"},
    "valueQuantity": {"value": 72.50, "unit": "/min"},
    "referenceRange": [{"low": {"value": 1.2345678901234567890123}}] })";
  auto r = service_->Create("Observation", body, kBase);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::string id = json::parse(r->body).at("id").as_string().c_str();
  EXPECT_EQ(r->body, R"({"resourceType":"Observation","id":")" + id +
                         R"(","meta":{"versionId":"1","lastUpdated":"2023-11-14T22:13:20.123Z",)"
                         R"("tag":[{"code":"t"}]},"status":"final",)"
                         R"("code":{"text":"heart rate \u00e9"},)"
                         R"("valueQuantity":{"value":72.50,"unit":"/min"},)"
                         R"("referenceRange":[{"low":{"value":1.2345678901234567890123}}]})");
  EXPECT_EQ(service_->Read("Observation", id)->body, r->body);
}

TEST_F(ResourceServiceTest, MetaKeepsClientElementsVerbatimButServerOwnsVersionAndTime) {
  const std::string body = R"({"resourceType":"Patient","meta":{"versionId":"9",
    "_versionId":{"extension":[{"url":"http://x","valueString":"s"}]},
    "lastUpdated":"2001-01-01T00:00:00Z",
    "extension":[{"url":"http://e","valueDecimal":72.50}],
    "profile":["http://p"]},"active":true})";
  auto r = service_->Create("Patient", body, kBase);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::string id = json::parse(r->body).at("id").as_string().c_str();
  EXPECT_EQ(r->body, R"({"resourceType":"Patient","id":")" + id +
                         R"(","meta":{"versionId":"1","lastUpdated":"2023-11-14T22:13:20.123Z",)"
                         R"("extension":[{"url":"http://e","valueDecimal":72.50}],)"
                         R"("profile":["http://p"]},"active":true})");
}

TEST_F(ResourceServiceTest, MalformedAndTooDeepBodiesAreRejected) {
  EXPECT_EQ(service_->Create("Patient", "{", kBase).status().message(), "malformed JSON");
  std::string deep = R"({"resourceType":"Patient","extension":)";
  for (int i = 0; i < 70; ++i) deep += "[";
  EXPECT_EQ(service_->Create("Patient", deep, kBase).status().message(), "JSON nested too deeply");
}

TEST(JsonPrettyTest, IndentsAndKeepsStrings) {
  EXPECT_EQ(PrettyPrintJson(R"({"a":[1,{"b":"x,{}:\"y"}],"c":{}})"),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"x,{}:\\\"y\"\n    }\n  ],\n"
            "  \"c\": {}\n}");
}

}  // namespace
}  // namespace phigate::fhir
