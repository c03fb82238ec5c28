// Tests for the SQLite Store: the contract in storage/store.h (versioning, conflicts,
// history paging, clients, data keys), durability across reopen, file permissions, the
// on-disk schema, concurrency within and across processes, and failure mapping.
#include "storage/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <latch>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "storage/raw_db.h"
#include "storage/sqlite/connection.h"

extern char** environ;  // NOLINT: POSIX, for passing the environment to a child process

namespace phigate::storage {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

const Status& StatusOf(const Status& status) { return status; }
template <typename T>
const Status& StatusOf(const Result<T>& result) {
  return result.status();
}

MATCHER_P2(StatusIs, code, message, "") {
  const Status& status = StatusOf(arg);
  *result_listener << "code " << static_cast<int>(status.code()) << ", message \""
                   << status.message() << "\"";
  return status.code() == code && status.message().find(message) != std::string::npos;
}

MATCHER(IsOk, "") {
  const Status& status = StatusOf(arg);
  *result_listener << "code " << static_cast<int>(status.code()) << ", message \""
                   << status.message() << "\"";
  return status.ok();
}

VersionRecord MakeVersion(const std::string& type, const std::string& id, int64_t version,
                          std::string ciphertext = "sealed") {
  VersionRecord record;
  record.type = type;
  record.id = id;
  record.version = version;
  record.last_updated_ms = 1'700'000'000'000 + version;
  record.key_version = 3;
  record.ciphertext = std::move(ciphertext);
  return record;
}

VersionRecord MakeTombstone(const std::string& type, const std::string& id, int64_t version) {
  VersionRecord record = MakeVersion(type, id, version, "");
  record.deleted = true;
  return record;
}

ClientRecord MakeClient(const std::string& client_id) {
  ClientRecord client;
  client.client_id = client_id;
  client.name = "Lab integration " + client_id;
  client.secret_hash = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA";
  client.scope = "system/Observation.rs system/Patient.r";
  client.created_ms = 1'700'000'000'123;
  client.disabled = false;
  return client;
}

std::vector<int64_t> VersionsOf(const std::vector<VersionRecord>& records) {
  std::vector<int64_t> versions;
  for (const auto& r : records) versions.push_back(r.version);
  return versions;
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return static_cast<mode_t>(-1);
  return st.st_mode & 07777;
}

using ::phigate::testing::RawDb;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "phigate-storage-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/phigate.db";
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  SqliteOptions Options() const {
    SqliteOptions options;
    options.path = path_;
    options.read_connections = 4;
    options.busy_timeout_ms = 5000;
    return options;
  }

  std::unique_ptr<Store> Open() { return Open(Options()); }
  std::unique_ptr<Store> Open(const SqliteOptions& options) {
    auto store = OpenSqliteStore(options);
    EXPECT_THAT(store, IsOk());
    return store.ok() ? std::move(store).value() : nullptr;
  }

  std::string dir_;
  std::string path_;
};

// --- versions ------------------------------------------------------------------------------

TEST_F(SqliteStoreTest, CreateThenReadCurrentAndVersion) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto seq1 = store->AppendVersion(MakeVersion("Patient", "p1", 1, "ct-v1"), 0);
  ASSERT_THAT(seq1, IsOk());
  auto seq2 = store->AppendVersion(MakeVersion("Patient", "p1", 2, "ct-v2"), 1);
  ASSERT_THAT(seq2, IsOk());
  EXPECT_GT(*seq2, *seq1);

  auto current = store->ReadCurrent("Patient", "p1");
  ASSERT_THAT(current, IsOk());
  ASSERT_TRUE(current->has_value());
  const VersionRecord& c = current->value();
  EXPECT_EQ(c.type, "Patient");
  EXPECT_EQ(c.id, "p1");
  EXPECT_EQ(c.version, 2);
  EXPECT_EQ(c.last_updated_ms, 1'700'000'000'002);
  EXPECT_FALSE(c.deleted);
  EXPECT_EQ(c.key_version, 3u);
  EXPECT_EQ(c.ciphertext, "ct-v2");
  EXPECT_EQ(c.seq, *seq2);

  auto v1 = store->ReadVersion("Patient", "p1", 1);
  ASSERT_THAT(v1, IsOk());
  ASSERT_TRUE(v1->has_value());
  EXPECT_EQ(v1->value().ciphertext, "ct-v1");
  EXPECT_EQ(v1->value().seq, *seq1);
}

TEST_F(SqliteStoreTest, MissingResourceAndVersionReadAsNullopt) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 1), 0), IsOk());

  auto absent = store->ReadCurrent("Patient", "nope");
  ASSERT_THAT(absent, IsOk());
  EXPECT_FALSE(absent->has_value());
  auto other_type = store->ReadCurrent("Observation", "p1");
  ASSERT_THAT(other_type, IsOk());
  EXPECT_FALSE(other_type->has_value());
  auto future = store->ReadVersion("Patient", "p1", 2);
  ASSERT_THAT(future, IsOk());
  EXPECT_FALSE(future->has_value());
}

TEST_F(SqliteStoreTest, WrongExpectedVersionConflictsAndChangesNothing) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto seq1 = store->AppendVersion(MakeVersion("Patient", "p1", 1, "original"), 0);
  ASSERT_THAT(seq1, IsOk());

  // Stale writer: believes the resource is at version 2.
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 3, "stale"), 2),
              StatusIs(StatusCode::kConflict, "version conflict"));
  // Create over an existing resource.
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 1, "again"), 0),
              StatusIs(StatusCode::kConflict, "version conflict"));
  // Update of a resource that does not exist.
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "ghost", 2), 1),
              StatusIs(StatusCode::kConflict, "version conflict"));

  auto current = store->ReadCurrent("Patient", "p1");
  ASSERT_THAT(current, IsOk());
  ASSERT_TRUE(current->has_value());
  EXPECT_EQ(current->value().version, 1);
  EXPECT_EQ(current->value().ciphertext, "original");
  EXPECT_FALSE(store->ReadCurrent("Patient", "ghost")->has_value());
  auto history = store->History({.type = "Patient", .id = "", .before_seq = 0, .limit = 10});
  ASSERT_THAT(history, IsOk());
  EXPECT_THAT(VersionsOf(*history), ElementsAre(1));

  // The conflict left no transaction open: the next append works and gets the next seq.
  auto seq2 = store->AppendVersion(MakeVersion("Patient", "p1", 2), 1);
  ASSERT_THAT(seq2, IsOk());
  EXPECT_GT(*seq2, *seq1);
}

// Issue 5 §2: a change is committed only together with its audit record, which the
// audit stage writes in before_commit.
TEST_F(SqliteStoreTest, BeforeCommitRunsInsideTheTransactionAndItsFailureRollsBack) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 1, "original"), 0), IsOk());

  int calls = 0;
  storage::BeforeCommit fail = [&]() -> Status {
    ++calls;
    return Status(StatusCode::kUnavailable, "audit trail unavailable");
  };
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 2, "changed"), 1, fail),
              StatusIs(StatusCode::kUnavailable, "audit trail unavailable"));
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "p2", 1, "created"), 0, fail),
              StatusIs(StatusCode::kUnavailable, "audit trail unavailable"));
  EXPECT_EQ(calls, 2);
  auto current = store->ReadCurrent("Patient", "p1");
  ASSERT_THAT(current, IsOk());
  EXPECT_EQ(current->value().version, 1);
  EXPECT_EQ(current->value().ciphertext, "original");
  EXPECT_FALSE(store->ReadCurrent("Patient", "p2")->has_value());
  auto history = store->History({.type = "Patient", .id = "", .before_seq = 0, .limit = 10});
  ASSERT_THAT(history, IsOk());
  EXPECT_THAT(VersionsOf(*history), ElementsAre(1));

  // A conflict is found before the guard runs: no record for a write that cannot happen.
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 3, "stale"), 2, fail),
              StatusIs(StatusCode::kConflict, "version conflict"));
  EXPECT_EQ(calls, 2);

  // When the guard succeeds, the write is committed.
  bool called = false;
  storage::BeforeCommit ok = [&]() -> Status {
    called = true;
    return Status::Ok();
  };
  ASSERT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 2, "changed"), 1, ok), IsOk());
  EXPECT_TRUE(called);
  EXPECT_EQ(store->ReadCurrent("Patient", "p1")->value().ciphertext, "changed");
}

TEST_F(SqliteStoreTest, AppendRejectsMalformedRecords) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 2), 0),
              StatusIs(StatusCode::kInvalidArgument, "expected version"));
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 0), -1),
              StatusIs(StatusCode::kInvalidArgument, "expected version"));
  EXPECT_THAT(
      store->AppendVersion(MakeVersion("Patient", "p1", std::numeric_limits<int64_t>::min()),
                           std::numeric_limits<int64_t>::max()),
      StatusIs(StatusCode::kInvalidArgument, "expected version"));
  EXPECT_THAT(store->AppendVersion(MakeVersion("", "p1", 1), 0),
              StatusIs(StatusCode::kInvalidArgument, "type and an id"));
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "", 1), 0),
              StatusIs(StatusCode::kInvalidArgument, "type and an id"));
  VersionRecord tombstone_with_body = MakeVersion("Patient", "p1", 1, "body");
  tombstone_with_body.deleted = true;
  EXPECT_THAT(store->AppendVersion(tombstone_with_body, 0),
              StatusIs(StatusCode::kInvalidArgument, "no content"));
  EXPECT_FALSE(store->ReadCurrent("Patient", "p1")->has_value());
}

TEST_F(SqliteStoreTest, DuplicateCreateSucceedsOnce) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 1, "first"), 0), IsOk());
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 1, "second"), 0),
              StatusIs(StatusCode::kConflict, "version conflict"));
  EXPECT_EQ(store->ReadCurrent("Patient", "p1")->value().ciphertext, "first");
}

// Runs `attempt(i)` on `threads` threads released at the same instant; returns how many
// succeeded, and fails the test on any outcome other than ok or kConflict.
template <typename Attempt>
int RaceCount(int threads, Attempt attempt) {
  std::latch start(threads);
  std::atomic<int> successes{0};
  std::atomic<int> conflicts{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < threads; ++i) {
    workers.emplace_back([&, i] {
      start.arrive_and_wait();
      auto result = attempt(i);
      if (result.ok()) {
        successes.fetch_add(1);
      } else if (result.status().code() == StatusCode::kConflict) {
        conflicts.fetch_add(1);
      }
    });
  }
  for (auto& worker : workers) worker.join();
  EXPECT_EQ(successes.load() + conflicts.load(), threads);
  return successes.load();
}

TEST_F(SqliteStoreTest, RacingCreatesOfOneIdExactlyOneWins) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  int winners = RaceCount(8, [&](int i) {
    return store->AppendVersion(MakeVersion("Patient", "p1", 1, "writer-" + std::to_string(i)), 0);
  });
  EXPECT_EQ(winners, 1);
  auto history = store->History({.type = "Patient", .id = "p1", .before_seq = 0, .limit = 50});
  ASSERT_THAT(history, IsOk());
  EXPECT_EQ(history->size(), 1u);
}

TEST_F(SqliteStoreTest, RacingUpdatesFromVersionOneExactlyOneWins) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 1), 0), IsOk());
  int winners = RaceCount(8, [&](int i) {
    return store->AppendVersion(MakeVersion("Patient", "p1", 2, "writer-" + std::to_string(i)), 1);
  });
  EXPECT_EQ(winners, 1);
  auto history = store->History({.type = "Patient", .id = "p1", .before_seq = 0, .limit = 50});
  ASSERT_THAT(history, IsOk());
  EXPECT_THAT(VersionsOf(*history), ElementsAre(2, 1));
  EXPECT_THAT(store->ReadCurrent("Patient", "p1")->value().ciphertext, HasSubstr("writer-"));
}

TEST_F(SqliteStoreTest, TombstoneIsCurrentAndCanBeFollowedByANewVersion) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 1, "alive"), 0), IsOk());
  ASSERT_THAT(store->AppendVersion(MakeTombstone("Patient", "p1", 2), 1), IsOk());

  auto current = store->ReadCurrent("Patient", "p1");
  ASSERT_THAT(current, IsOk());
  ASSERT_TRUE(current->has_value());
  EXPECT_TRUE(current->value().deleted);
  EXPECT_EQ(current->value().version, 2);
  EXPECT_EQ(current->value().ciphertext, "");
  // The version before the delete stays readable (vread of history).
  EXPECT_EQ(store->ReadVersion("Patient", "p1", 1)->value().ciphertext, "alive");

  // FHIR update after delete re-creates the resource as the next version.
  ASSERT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 3, "revived"), 2), IsOk());
  auto history = store->History({.type = "Patient", .id = "p1", .before_seq = 0, .limit = 50});
  ASSERT_THAT(history, IsOk());
  ASSERT_EQ(history->size(), 3u);
  EXPECT_FALSE((*history)[0].deleted);
  EXPECT_TRUE((*history)[1].deleted);
  EXPECT_FALSE((*history)[2].deleted);
}

TEST_F(SqliteStoreTest, CiphertextBytesRoundTripExactly) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));  // includes NUL, 0xff
  std::string large(1 << 20, '\0');
  for (size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>(i * 131 + 7);

  ASSERT_THAT(store->AppendVersion(MakeVersion("Binary", "b1", 1, binary), 0), IsOk());
  ASSERT_THAT(store->AppendVersion(MakeVersion("Binary", "b1", 2, large), 1), IsOk());
  EXPECT_EQ(store->ReadVersion("Binary", "b1", 1)->value().ciphertext, binary);
  EXPECT_EQ(store->ReadCurrent("Binary", "b1")->value().ciphertext, large);
}

TEST_F(SqliteStoreTest, KeyVersionKeepsFullUnsignedRange) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  VersionRecord record = MakeVersion("Patient", "p1", 1);
  record.key_version = std::numeric_limits<uint32_t>::max();
  ASSERT_THAT(store->AppendVersion(record, 0), IsOk());
  EXPECT_EQ(store->ReadCurrent("Patient", "p1")->value().key_version,
            std::numeric_limits<uint32_t>::max());
}

// --- history -------------------------------------------------------------------------------

TEST_F(SqliteStoreTest, InstanceHistoryIsNewestFirstAndPagesWithBeforeSeq) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  for (int64_t v = 1; v <= 5; ++v) {
    ASSERT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", v), v - 1), IsOk());
    // Another resource interleaved: must not appear in p1's history.
    ASSERT_THAT(store->AppendVersion(MakeVersion("Patient", "p2", v), v - 1), IsOk());
  }

  auto page1 = store->History({.type = "Patient", .id = "p1", .before_seq = 0, .limit = 2});
  ASSERT_THAT(page1, IsOk());
  EXPECT_THAT(VersionsOf(*page1), ElementsAre(5, 4));
  for (const auto& r : *page1) EXPECT_EQ(r.id, "p1");

  auto page2 =
      store->History({.type = "Patient", .id = "p1", .before_seq = page1->back().seq, .limit = 2});
  ASSERT_THAT(page2, IsOk());
  EXPECT_THAT(VersionsOf(*page2), ElementsAre(3, 2));

  auto page3 =
      store->History({.type = "Patient", .id = "p1", .before_seq = page2->back().seq, .limit = 2});
  ASSERT_THAT(page3, IsOk());
  EXPECT_THAT(VersionsOf(*page3), ElementsAre(1));

  auto past_end =
      store->History({.type = "Patient", .id = "p1", .before_seq = page3->back().seq, .limit = 2});
  ASSERT_THAT(past_end, IsOk());
  EXPECT_TRUE(past_end->empty());

  auto unknown = store->History({.type = "Patient", .id = "nope", .before_seq = 0, .limit = 2});
  ASSERT_THAT(unknown, IsOk());
  EXPECT_TRUE(unknown->empty());
}

TEST_F(SqliteStoreTest, TypeHistorySpansResourcesOfOneTypeOnly) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  std::vector<int64_t> patient_seqs;
  for (const char* id : {"a", "b", "c"}) {
    auto seq = store->AppendVersion(MakeVersion("Patient", id, 1), 0);
    ASSERT_THAT(seq, IsOk());
    patient_seqs.push_back(*seq);
    ASSERT_THAT(store->AppendVersion(MakeVersion("Observation", id, 1), 0), IsOk());
  }
  auto seq = store->AppendVersion(MakeVersion("Patient", "a", 2), 1);
  ASSERT_THAT(seq, IsOk());
  patient_seqs.push_back(*seq);

  auto all = store->History({.type = "Patient", .id = "", .before_seq = 0, .limit = 50});
  ASSERT_THAT(all, IsOk());
  std::vector<int64_t> seqs;
  std::vector<std::string> ids;
  for (const auto& r : *all) {
    EXPECT_EQ(r.type, "Patient");
    seqs.push_back(r.seq);
    ids.push_back(r.id + "/" + std::to_string(r.version));
  }
  EXPECT_THAT(ids, ElementsAre("a/2", "c/1", "b/1", "a/1"));
  EXPECT_THAT(seqs,
              ElementsAre(patient_seqs[3], patient_seqs[2], patient_seqs[1], patient_seqs[0]));

  auto older =
      store->History({.type = "Patient", .id = "", .before_seq = patient_seqs[2], .limit = 1});
  ASSERT_THAT(older, IsOk());
  ASSERT_EQ(older->size(), 1u);
  EXPECT_EQ((*older)[0].id, "b");
}

TEST_F(SqliteStoreTest, HistoryLimitZeroIsEmptyAndInvalidQueriesAreRejected) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 1), 0), IsOk());
  auto none = store->History({.type = "Patient", .id = "", .before_seq = 0, .limit = 0});
  ASSERT_THAT(none, IsOk());
  EXPECT_TRUE(none->empty());
  EXPECT_THAT(store->History({.type = "Patient", .id = "", .before_seq = 0, .limit = -1}),
              StatusIs(StatusCode::kInvalidArgument, "history"));
  EXPECT_THAT(store->History({.type = "Patient", .id = "", .before_seq = -5, .limit = 5}),
              StatusIs(StatusCode::kInvalidArgument, "history"));
  EXPECT_THAT(store->History({.type = "", .id = "", .before_seq = 0, .limit = 5}),
              StatusIs(StatusCode::kInvalidArgument, "type"));
}

// --- clients and data keys -----------------------------------------------------------------

TEST_F(SqliteStoreTest, ClientsPutGetAndDuplicate) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ClientRecord client = MakeClient("lab-1");
  client.disabled = true;
  ASSERT_THAT(store->PutClient(client), IsOk());

  auto got = store->GetClient("lab-1");
  ASSERT_THAT(got, IsOk());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(got->value().client_id, "lab-1");
  EXPECT_EQ(got->value().name, client.name);
  EXPECT_EQ(got->value().secret_hash, client.secret_hash);
  EXPECT_EQ(got->value().scope, client.scope);
  EXPECT_EQ(got->value().created_ms, client.created_ms);
  EXPECT_TRUE(got->value().disabled);

  ClientRecord duplicate = MakeClient("lab-1");
  duplicate.name = "impostor";
  EXPECT_THAT(store->PutClient(duplicate),
              StatusIs(StatusCode::kConflict, "client already exists"));
  EXPECT_EQ(store->GetClient("lab-1")->value().name, client.name);

  auto missing = store->GetClient("lab-2");
  ASSERT_THAT(missing, IsOk());
  EXPECT_FALSE(missing->has_value());
  EXPECT_THAT(store->PutClient(MakeClient("")),
              StatusIs(StatusCode::kInvalidArgument, "client_id"));
}

TEST_F(SqliteStoreTest, DataKeysSaveLoadAndDuplicate) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto empty = store->LoadDataKeys();
  ASSERT_THAT(empty, IsOk());
  EXPECT_TRUE(empty->empty());

  const std::string wrapped2("\x00\x01wrapped-two\xff", 15);
  ASSERT_THAT(store->SaveDataKey({.version = 2, .wrapped = wrapped2}), IsOk());
  ASSERT_THAT(store->SaveDataKey({.version = 1, .wrapped = "wrapped-one"}), IsOk());
  EXPECT_THAT(store->SaveDataKey({.version = 2, .wrapped = "other"}),
              StatusIs(StatusCode::kConflict, "data key version already exists"));
  EXPECT_THAT(store->SaveDataKey({.version = 3, .wrapped = ""}),
              StatusIs(StatusCode::kInvalidArgument, "wrapped"));

  auto keys = store->LoadDataKeys();
  ASSERT_THAT(keys, IsOk());
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].version, 1u);
  EXPECT_EQ((*keys)[0].wrapped, "wrapped-one");
  EXPECT_EQ((*keys)[1].version, 2u);
  EXPECT_EQ((*keys)[1].wrapped, wrapped2);
}

// --- durability, files, schema -------------------------------------------------------------

TEST_F(SqliteStoreTest, EverythingIsReadableAfterReopen) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 1, "one"), 0), IsOk());
    ASSERT_THAT(store->AppendVersion(MakeTombstone("Patient", "p1", 2), 1), IsOk());
    ASSERT_THAT(store->AppendVersion(MakeVersion("Observation", "o1", 1, "obs"), 0), IsOk());
    ASSERT_THAT(store->PutClient(MakeClient("lab-1")), IsOk());
    ASSERT_THAT(store->SaveDataKey({.version = 1, .wrapped = "wrapped"}), IsOk());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto p1 = store->ReadCurrent("Patient", "p1");
  ASSERT_THAT(p1, IsOk());
  ASSERT_TRUE(p1->has_value());
  EXPECT_TRUE(p1->value().deleted);
  EXPECT_EQ(store->ReadVersion("Patient", "p1", 1)->value().ciphertext, "one");
  EXPECT_EQ(store->ReadCurrent("Observation", "o1")->value().ciphertext, "obs");
  EXPECT_TRUE(store->GetClient("lab-1")->has_value());
  EXPECT_EQ(store->LoadDataKeys()->size(), 1u);
  // Versioning continues where it stopped.
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 3), 2), IsOk());
}

TEST_F(SqliteStoreTest, DatabaseFilesAreOwnerOnlyWhateverTheUmask) {
  const mode_t old_umask = ::umask(0);  // the most permissive umask a deployment could have
  auto store = Open();
  ::umask(old_umask);
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 1), 0), IsOk());

  EXPECT_EQ(ModeOf(path_), 0600u);
  // WAL mode: both side files exist while the store is open.
  EXPECT_EQ(ModeOf(path_ + "-wal"), 0600u);
  EXPECT_EQ(ModeOf(path_ + "-shm"), 0600u);
}

TEST_F(SqliteStoreTest, ExistingGroupReadableFileIsTightened) {
  { std::ofstream touch(path_); }
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ModeOf(path_), 0600u);
}

TEST_F(SqliteStoreTest, SymlinkAtDatabasePathIsRefused) {
  const std::string target = dir_ + "/elsewhere.db";
  ASSERT_EQ(::symlink(target.c_str(), path_.c_str()), 0);
  auto store = OpenSqliteStore(Options());
  EXPECT_THAT(store, StatusIs(StatusCode::kInternal, "storage configuration failed"));
  EXPECT_FALSE(fs::exists(target));
}

TEST_F(SqliteStoreTest, SchemaHasExactlyTheExpectedColumns) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 1), 0), IsOk());
  }
  RawDb db(path_, SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok());
  EXPECT_THAT(
      db.Column("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"),
      ElementsAre("break_glass_grants", "client_assertion_jtis", "clients", "data_keys",
                  "refresh_families", "refresh_tokens", "resource_current", "resource_versions",
                  "revoked_access_tokens", "search_index", "sqlite_sequence", "users"));
  // The body exists only as ciphertext: no other column could hold PHI.
  EXPECT_THAT(db.Columns("resource_versions"),
              ElementsAre("seq:INTEGER", "type:TEXT", "id:TEXT", "version:INTEGER",
                          "last_updated_ms:INTEGER", "deleted:INTEGER", "key_version:INTEGER",
                          "ciphertext:BLOB"));
  EXPECT_THAT(db.Columns("resource_current"),
              ElementsAre("type:TEXT", "id:TEXT", "version:INTEGER"));
  EXPECT_THAT(db.Columns("clients"),
              ElementsAre("client_id:TEXT", "name:TEXT", "secret_hash:TEXT", "scope:TEXT",
                          "created_ms:INTEGER", "disabled:INTEGER", "auth_method:TEXT", "jwks:TEXT",
                          "roles:TEXT", "redirect_uris:TEXT", "third_party:INTEGER",
                          "baa_counterparty:TEXT", "baa_signed_ms:INTEGER",
                          "baa_expires_ms:INTEGER", "baa_status:TEXT"));
  EXPECT_THAT(db.Columns("data_keys"), ElementsAre("version:INTEGER", "wrapped:BLOB"));
  // The authentication tables' columns are checked in auth_store_test.cc.
  EXPECT_THAT(db.Column("PRAGMA user_version"), ElementsAre("4"));
  EXPECT_THAT(db.Column("PRAGMA journal_mode"), ElementsAre("wal"));
  EXPECT_THAT(db.Column("SELECT typeof(ciphertext) FROM resource_versions"), ElementsAre("blob"));
}

TEST_F(SqliteStoreTest, HistoryQueriesUseTheirIndexes) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
  }
  RawDb db(path_, SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok());
  // Same shape as the store's history statements; a full scan or a sort step here would
  // make every history page cost O(table). Column 3 of EXPLAIN QUERY PLAN is the detail.
  constexpr int kDetail = 3;
  auto type_plan = db.Column(
      "EXPLAIN QUERY PLAN SELECT * FROM resource_versions WHERE type = 'P' AND seq < 10 "
      "ORDER BY seq DESC LIMIT 5",
      kDetail);
  auto instance_plan = db.Column(
      "EXPLAIN QUERY PLAN SELECT * FROM resource_versions WHERE type = 'P' AND id = 'x' AND "
      "seq < 10 ORDER BY seq DESC LIMIT 5",
      kDetail);
  EXPECT_THAT(type_plan,
              ElementsAre(AllOf(HasSubstr("SEARCH"), HasSubstr("resource_versions_by_type_seq"))));
  EXPECT_THAT(instance_plan, ElementsAre(AllOf(HasSubstr("SEARCH"),
                                               HasSubstr("resource_versions_by_resource_seq"))));
  const auto current_plan = db.Column(
      "EXPLAIN QUERY PLAN SELECT v.* FROM resource_current AS c JOIN resource_versions AS v"
      " ON v.type = c.type AND v.id = c.id AND v.version = c.version"
      " WHERE c.type = 'P' AND c.id = 'x'",
      kDetail);
  for (const auto& step : current_plan) EXPECT_THAT(step, HasSubstr("SEARCH"));
}

TEST_F(SqliteStoreTest, DatabaseFromANewerBuildIsRefused) {
  { ASSERT_NE(Open(), nullptr); }
  {
    RawDb db(path_, SQLITE_OPEN_READWRITE);
    ASSERT_TRUE(db.ok());
    ASSERT_EQ(db.Exec("PRAGMA user_version = 99"), SQLITE_OK);
  }
  EXPECT_THAT(OpenSqliteStore(Options()), StatusIs(StatusCode::kInternal, "newer version"));
}

TEST_F(SqliteStoreTest, FileThatIsNotADatabaseIsRefusedWithoutDetail) {
  {
    std::ofstream junk(path_, std::ios::binary);
    junk << std::string(8192, 'x');
  }
  auto store = OpenSqliteStore(Options());
  EXPECT_THAT(store, StatusIs(StatusCode::kInternal, "storage error"));
}

TEST_F(SqliteStoreTest, InvalidOptionsAreRejected) {
  SqliteOptions no_path = Options();
  no_path.path.clear();
  EXPECT_THAT(OpenSqliteStore(no_path), StatusIs(StatusCode::kInvalidArgument, "path"));
  SqliteOptions no_readers = Options();
  no_readers.read_connections = 0;
  EXPECT_THAT(OpenSqliteStore(no_readers),
              StatusIs(StatusCode::kInvalidArgument, "read_connections"));
  SqliteOptions negative_timeout = Options();
  negative_timeout.busy_timeout_ms = -1;
  EXPECT_THAT(OpenSqliteStore(negative_timeout),
              StatusIs(StatusCode::kInvalidArgument, "busy_timeout_ms"));
  SqliteOptions negative_cache = Options();
  negative_cache.write_cache_bytes = -1;
  EXPECT_THAT(
      OpenSqliteStore(negative_cache),
      StatusIs(StatusCode::kInvalidArgument, "storage: write_cache_bytes must not be negative"));
}

// The page cache a connection is opened with (SqliteOptions::write_cache_bytes for the
// writer): cache_size in KiB, rounded up; 0 keeps SQLite's default (-2000: about 2 MB).
TEST_F(SqliteStoreTest, ConnectionCacheSizeFollowsTheOption) {
  ASSERT_NE(Open(), nullptr);  // creates the file
  constexpr sqlite::Sql kCacheSize{"cache_size", "PRAGMA cache_size"};
  auto sized =
      sqlite::Connection::Open(path_, sqlite::ConnectionRole::kWrite, 1000, 8 * 1024 * 1024 + 1);
  ASSERT_THAT(sized, IsOk());
  auto kib = (*sized)->QueryInt64(kCacheSize);
  ASSERT_THAT(kib, IsOk());
  EXPECT_EQ(*kib, -8193);
  auto unsized = sqlite::Connection::Open(path_, sqlite::ConnectionRole::kRead, 1000);
  ASSERT_THAT(unsized, IsOk());
  kib = (*unsized)->QueryInt64(kCacheSize);
  ASSERT_THAT(kib, IsOk());
  EXPECT_EQ(*kib, -2000);
}

TEST_F(SqliteStoreTest, MissingDirectoryIsUnavailable) {
  SqliteOptions options = Options();
  options.path = dir_ + "/does/not/exist.db";
  EXPECT_THAT(OpenSqliteStore(options), StatusIs(StatusCode::kUnavailable, "storage unavailable"));
}

TEST_F(SqliteStoreTest, HealthyWhenOpen) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Healthy());
}

// --- error mapping -------------------------------------------------------------------------

TEST(SqliteErrorMappingTest, ResultCodesMapToClientSafeStatuses) {
  struct Case {
    int rc;
    StatusCode code;
    const char* message;
  };
  const Case cases[] = {
      {SQLITE_FULL, StatusCode::kUnavailable, "storage unavailable"},
      {SQLITE_IOERR_WRITE, StatusCode::kUnavailable, "storage unavailable"},
      {SQLITE_IOERR_FSYNC, StatusCode::kUnavailable, "storage unavailable"},
      {SQLITE_CANTOPEN, StatusCode::kUnavailable, "storage unavailable"},
      {SQLITE_READONLY_DBMOVED, StatusCode::kUnavailable, "storage unavailable"},
      {SQLITE_NOMEM, StatusCode::kUnavailable, "storage unavailable"},
      {SQLITE_BUSY, StatusCode::kUnavailable, "storage busy"},
      {SQLITE_BUSY_SNAPSHOT, StatusCode::kUnavailable, "storage busy"},
      {SQLITE_LOCKED, StatusCode::kUnavailable, "storage busy"},
      {SQLITE_CONSTRAINT_UNIQUE, StatusCode::kConflict, "conflict"},
      {SQLITE_CONSTRAINT_PRIMARYKEY, StatusCode::kConflict, "conflict"},
      {SQLITE_CONSTRAINT_CHECK, StatusCode::kInternal, "storage error"},
      {SQLITE_CONSTRAINT_FOREIGNKEY, StatusCode::kInternal, "storage error"},
      {SQLITE_TOOBIG, StatusCode::kPayloadTooLarge, "record too large"},
      {SQLITE_CORRUPT, StatusCode::kInternal, "storage error"},
      {SQLITE_NOTADB, StatusCode::kInternal, "storage error"},
      {SQLITE_MISUSE, StatusCode::kInternal, "storage error"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.rc);
    Status status = sqlite::StatusFromSqlite(c.rc, nullptr, "test");
    EXPECT_EQ(status.code(), c.code);
    EXPECT_EQ(status.message(), c.message);  // exact: nothing from SQLite leaks through
  }
}

// --- concurrency and other writers ---------------------------------------------------------

// Appends rather than `"w" + std::to_string(n)`, which trips GCC 12's -Wrestrict false
// positive at -O3 (https://gcc.gnu.org/bugzilla/show_bug.cgi?id=105329).
std::string WriterId(int n) {
  std::string id = "w";
  id += std::to_string(n);
  return id;
}

TEST_F(SqliteStoreTest, ParallelWritersAndReadersSeeConsistentVersions) {
  SqliteOptions options = Options();
  options.read_connections = 2;  // fewer connections than reader threads: leases must queue
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  constexpr int kWriters = 4;
  constexpr int kVersions = 15;
  constexpr int kReaders = 4;
  std::atomic<bool> done{false};
  std::atomic<int> read_errors{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      const std::string id = WriterId(w);
      for (int64_t v = 1; v <= kVersions; ++v) {
        EXPECT_THAT(store->AppendVersion(
                        MakeVersion("Patient", id, v, id + ":" + std::to_string(v)), v - 1),
                    IsOk());
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      while (!done.load()) {
        const std::string id = WriterId(r % kWriters);
        auto current = store->ReadCurrent("Patient", id);
        if (!current.ok()) {
          read_errors.fetch_add(1);
          continue;
        }
        // A reader sees a whole version or none: body always matches its version number.
        if (current->has_value()) {
          EXPECT_EQ(current->value().ciphertext,
                    id + ":" + std::to_string(current->value().version));
        }
      }
    });
  }
  for (int w = 0; w < kWriters; ++w) threads[static_cast<size_t>(w)].join();
  done.store(true);
  for (size_t t = kWriters; t < threads.size(); ++t) threads[t].join();
  EXPECT_EQ(read_errors.load(), 0);

  auto all = store->History(
      {.type = "Patient", .id = "", .before_seq = 0, .limit = kWriters * kVersions + 10});
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(all->size(), static_cast<size_t>(kWriters * kVersions));
  for (size_t i = 1; i < all->size(); ++i) EXPECT_GT((*all)[i - 1].seq, (*all)[i].seq);
}

TEST_F(SqliteStoreTest, SecondStoreWritesClientWhileFirstReads) {
  auto server = Open();
  ASSERT_NE(server, nullptr);
  std::atomic<bool> seen{false};
  std::atomic<int> read_errors{0};
  std::thread reader([&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!seen.load() && std::chrono::steady_clock::now() < deadline) {
      auto client = server->GetClient("cli-added");
      if (!client.ok()) {
        read_errors.fetch_add(1);
      } else if (client->has_value()) {
        seen.store(true);
      }
    }
  });
  {
    // What `phigate clients add` does while the server runs: its own Store on the same file.
    auto cli = Open();
    ASSERT_NE(cli, nullptr);
    EXPECT_THAT(cli->PutClient(MakeClient("cli-added")), IsOk());
  }
  reader.join();
  EXPECT_TRUE(seen.load());
  EXPECT_EQ(read_errors.load(), 0);
  // The server keeps writing normally after the other writer went away.
  EXPECT_THAT(server->PutClient(MakeClient("server-added")), IsOk());
}

constexpr char kChildDbEnv[] = "PHIGATE_STORAGE_TEST_CHILD_DB";

// Child of ClientWrittenByAnotherProcessIsVisible: writes a client and a version as
// another process would; the exit code says whether both succeeded.
int ChildWritesClient(const char* path) {
  SqliteOptions options;
  options.path = path;
  auto store = OpenSqliteStore(options);
  if (!store.ok()) return 2;
  if (!(*store)->PutClient(MakeClient("from-child")).ok()) return 3;
  if (!(*store)->AppendVersion(MakeVersion("Patient", "shared", 2, "child"), 1).ok()) return 4;
  return 0;
}

// Starts this test binary again as another process with `env_name`=`db_path` in its
// environment, which selects the child's job (see kChildHookRan).
pid_t SpawnChild(const char* env_name, const std::string& db_path) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.push_back(std::string(env_name) + "=" + db_path);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  std::vector<char*> argv = {exe.data(), nullptr};
  pid_t pid = -1;
  if (::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), envp.data()) != 0) {
    return -1;
  }
  return pid;
}

// The child's exit code, or -1 if it did not exit normally.
int WaitExitCode(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

TEST_F(SqliteStoreTest, ClientWrittenByAnotherProcessIsVisible) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->AppendVersion(MakeVersion("Patient", "shared", 1, "parent"), 0), IsOk());

  pid_t pid = SpawnChild(kChildDbEnv, path_);
  ASSERT_GT(pid, 0);
  // Read while the other process opens, migrates (a no-op) and writes.
  int reads = 0;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    EXPECT_THAT(store->ReadCurrent("Patient", "shared"), IsOk());
    ++reads;
  }
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_GT(reads, 0);

  auto client = store->GetClient("from-child");
  ASSERT_THAT(client, IsOk());
  EXPECT_TRUE(client->has_value());
  EXPECT_EQ(store->ReadCurrent("Patient", "shared")->value().ciphertext, "child");
  // The other process's append is seen by this process's version check.
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "shared", 2, "stale"), 1),
              StatusIs(StatusCode::kConflict, "version conflict"));
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "shared", 3, "parent"), 2), IsOk());
}

constexpr char kProbeDbEnv[] = "PHIGATE_STORAGE_TEST_PROBE_DB";

// True if another process holds any fcntl lock on `path` (F_GETLK cannot see this
// process's own locks, hence the child process).
bool LockedByAnotherProcess(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock probe {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  probe.l_start = 0;
  probe.l_len = 0;  // the whole file
  const bool locked = ::fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
  ::close(fd);  // this process holds no SQLite locks on the file, so closing is harmless
  return locked;
}

// Child of OpeningAnotherStoreKeepsTheFirstStoresFileLocks: 0 iff the parent still holds
// its SQLite locks on the database and its shared-memory file.
int ChildProbesParentLocks(const char* path) {
  if (!LockedByAnotherProcess(path)) return 1;
  if (!LockedByAnotherProcess(std::string(path) + "-shm")) return 2;
  return 0;
}

// When a cross-process test re-executes this binary with one of the child variables set,
// the child's job runs here, before GoogleTest starts, and the process exits with its
// result: no test is registered that only makes sense as a child.
const bool kChildHookRan = [] {
  if (const char* path = std::getenv(kChildDbEnv)) std::_Exit(ChildWritesClient(path));
  if (const char* path = std::getenv(kProbeDbEnv)) std::_Exit(ChildProbesParentLocks(path));
  return false;
}();

// Regression: opening the store opened and closed the database and -shm files with its own
// descriptors to check their modes. close() drops every fcntl lock the process holds on a
// file, including SQLite's, so another process then believed it was the only user, rebuilt
// the shared-memory index under the running server and crashed it (SIGBUS) or could have
// checkpointed and deleted the WAL under it.
TEST_F(SqliteStoreTest, OpeningAnotherStoreKeepsTheFirstStoresFileLocks) {
  auto server = Open();
  ASSERT_NE(server, nullptr);
  ASSERT_THAT(server->AppendVersion(MakeVersion("Patient", "p1", 1), 0), IsOk());
  auto second = Open();  // e.g. a restart path or an embedded CLI in the same process
  ASSERT_NE(second, nullptr);
  ASSERT_THAT(server->ReadCurrent("Patient", "p1"), IsOk());

  pid_t pid = SpawnChild(kProbeDbEnv, path_);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(WaitExitCode(pid), 0);
}

TEST_F(SqliteStoreTest, ForeignWriteLockTimesOutAsUnavailableThenRecovers) {
  SqliteOptions options = Options();
  options.busy_timeout_ms = 200;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 1), 0), IsOk());

  RawDb other(path_, SQLITE_OPEN_READWRITE);
  ASSERT_TRUE(other.ok());
  ASSERT_EQ(other.Exec("BEGIN IMMEDIATE"), SQLITE_OK);  // another process holds the write lock

  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 2), 1),
              StatusIs(StatusCode::kUnavailable, "storage busy"));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
  EXPECT_THAT(store->PutClient(MakeClient("lab-1")),
              StatusIs(StatusCode::kUnavailable, "storage busy"));
  // WAL: readers are not blocked by the other writer.
  EXPECT_THAT(store->ReadCurrent("Patient", "p1"), IsOk());
  EXPECT_TRUE(store->Healthy());

  ASSERT_EQ(other.Exec("ROLLBACK"), SQLITE_OK);
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 2), 1), IsOk());
  EXPECT_THAT(store->PutClient(MakeClient("lab-1")), IsOk());
}

// Simulates a full disk: RLIMIT_FSIZE makes writes past a size fail (EFBIG) like ENOSPC.
TEST_F(SqliteStoreTest, WriteFailureIsUnavailableAndChangesNothing) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 1, "before"), 0), IsOk());

  std::error_code ignored;
  const uintmax_t db_size = fs::file_size(path_, ignored);
  const uintmax_t wal_size = fs::file_size(path_ + "-wal", ignored);
  rlimit old_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  rlimit small = old_limit;
  small.rlim_cur = static_cast<rlim_t>(std::max(db_size, wal_size) + (256 << 10));
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of process death
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  auto failed = store->AppendVersion(MakeVersion("Patient", "p1", 2, std::string(4 << 20, 'z')), 1);
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::signal(SIGXFSZ, old_handler);

  EXPECT_THAT(failed, StatusIs(StatusCode::kUnavailable, "storage unavailable"));
  auto current = store->ReadCurrent("Patient", "p1");
  ASSERT_THAT(current, IsOk());
  EXPECT_EQ(current->value().version, 1);
  EXPECT_EQ(current->value().ciphertext, "before");
  // Space is back: the same store writes again (no transaction left open, no stuck state).
  EXPECT_THAT(store->AppendVersion(MakeVersion("Patient", "p1", 2, "after"), 1), IsOk());
  EXPECT_TRUE(store->Healthy());
}

}  // namespace
}  // namespace phigate::storage
