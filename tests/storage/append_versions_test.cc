// Tests for Store::AppendVersions on the SQLite store (issue 6 §4 transactions, §7 bulk
// import): several versions in one transaction, each checked and applied as AppendVersion
// would, all or nothing, with entry-prefixed errors; before_commit runs once; the
// current-version cache only ever sees committed versions.
// A real SqliteStore in a temp dir; index rows are inspected with a raw SQLite handle.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "crypto/temp_dir.h"
#include "status_matchers.h"
#include "storage/raw_db.h"
#include "storage/sqlite/sqlite_store.h"

namespace phigate::storage {
namespace {

using ::phigate::testing::IsOk;
using ::phigate::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using VersionWrite = Store::VersionWrite;

constexpr int64_t kT0 = 1'700'000'000'000;  // Nov 2023

// A 16-byte binary token as the fhir layer makes them (a truncated HMAC).
std::string Token(uint8_t n) {
  std::string token(16, '\x5a');
  token[0] = '\0';
  token[15] = static_cast<char>(n);
  return token;
}

const std::string kA = Token(1);
const std::string kB = Token(2);
const std::string kC = Token(3);

IndexEntry Entry(const std::string& token, int32_t low_year = 0, int32_t high_year = 0) {
  return IndexEntry{token, low_year, high_year};
}

std::string Hex(const std::string& bytes) {
  std::string out;
  char buffer[3];
  for (unsigned char byte : bytes) {
    std::snprintf(buffer, sizeof(buffer), "%02X", byte);
    out += buffer;
  }
  return out;
}

// One search_index row as IndexRows renders it.
std::string Row(const std::string& type, const std::string& id, const std::string& token,
                int32_t low_year = 0, int32_t high_year = 0) {
  return type + "/" + id + " " + Hex(token) + " " + std::to_string(low_year) + ".." +
         std::to_string(high_year);
}

// A write of version `version` of (type, id) over `version - 1`, with `index`.
VersionWrite Write(const std::string& type, const std::string& id, int64_t version,
                   std::vector<IndexEntry> index) {
  VersionWrite write;
  write.record.type = type;
  write.record.id = id;
  write.record.version = version;
  write.record.last_updated_ms = kT0 + version;
  write.record.key_version = 3;
  write.record.ciphertext = "sealed " + type + "/" + id + " v" + std::to_string(version);
  write.record.index = std::move(index);
  write.expected_version = version - 1;
  return write;
}

using ::phigate::testing::RawDb;
using ::phigate::testing::TempDir;

class AppendVersionsTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen(int64_t current_cache_bytes = 0, int busy_timeout_ms = 5000) {
    store_.reset();
    SqliteOptions options;
    options.path = path_;
    options.read_connections = 2;
    options.current_cache_bytes = current_cache_bytes;
    options.busy_timeout_ms = busy_timeout_ms;
    auto opened = OpenSqliteStore(options);
    ASSERT_THAT(opened, IsOk());
    store_ = std::move(opened).value();
  }

  // Every search_index row, ordered by resource, token and years.
  std::vector<std::string> IndexRows() {
    RawDb db(path_, SQLITE_OPEN_READONLY);
    EXPECT_TRUE(db.ok());
    return db.Column(
        "SELECT type || '/' || id || ' ' || hex(token) || ' ' || low_year || '..' || high_year"
        " FROM search_index ORDER BY type, id, token, low_year, high_year");
  }

  // "type/id vN" of every version row, in seq order.
  std::vector<std::string> VersionRows() {
    RawDb db(path_, SQLITE_OPEN_READONLY);
    EXPECT_TRUE(db.ok());
    return db.Column(
        "SELECT type || '/' || id || ' v' || version FROM resource_versions ORDER BY seq");
  }

  // The current version of (type, id), 0 if absent ("error" reported if the read fails).
  int64_t CurrentVersion(const std::string& type, const std::string& id) {
    auto current = store_->ReadCurrent(type, id);
    EXPECT_THAT(current, IsOk());
    if (!current.ok() || !current->has_value()) return 0;
    return (*current)->version;
  }

  TempDir dir_;  // declared first: removed after the store is closed
  std::string path_ = dir_.File("phigate.db");
  std::unique_ptr<Store> store_;
};

TEST_F(AppendVersionsTest, ThreeWritesCommitTogetherWithIncreasingSeqsAndTheirIndexRows) {
  ASSERT_THAT(store_->AppendVersion(Write("Patient", "p0", 1, {Entry(kA)}).record, 0), IsOk());
  int calls = 0;
  BeforeCommit count = [&]() -> Status {
    ++calls;
    return Status::Ok();
  };
  const std::vector<VersionWrite> writes = {
      Write("Patient", "p1", 1, {Entry(kA, 0, 0), Entry(kB, 1980, 1981)}),
      Write("Patient", "p0", 2, {Entry(kC, 0, 0)}),  // an update: replaces p0's rows
      Write("Observation", "o1", 1, {Entry(kA, 0, 0)}),
  };
  auto seqs = store_->AppendVersions(writes, count);
  ASSERT_THAT(seqs, IsOk());
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(seqs->size(), 3u);
  EXPECT_LT((*seqs)[0], (*seqs)[1]);
  EXPECT_LT((*seqs)[1], (*seqs)[2]);

  for (size_t i = 0; i < writes.size(); ++i) {
    const VersionRecord& wrote = writes[i].record;
    auto read = store_->ReadVersion(wrote.type, wrote.id, wrote.version);
    ASSERT_THAT(read, IsOk());
    ASSERT_TRUE(read->has_value()) << wrote.type << "/" << wrote.id;
    EXPECT_EQ((*read)->seq, (*seqs)[i]);
    EXPECT_EQ((*read)->ciphertext, wrote.ciphertext);
    EXPECT_EQ((*read)->last_updated_ms, wrote.last_updated_ms);
    EXPECT_EQ((*read)->key_version, 3u);
    EXPECT_EQ(CurrentVersion(wrote.type, wrote.id), wrote.version);
  }
  EXPECT_THAT(IndexRows(),
              ElementsAre(Row("Observation", "o1", kA), Row("Patient", "p0", kC),
                          Row("Patient", "p1", kA), Row("Patient", "p1", kB, 1980, 1981)));
  SearchQuery query;
  query.type = "Patient";
  SearchClause clause;
  clause.any_of = {kA};
  query.all_of = {clause};
  auto found = store_->SearchCurrent(query);
  ASSERT_THAT(found, IsOk());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].id, "p1");
}

TEST_F(AppendVersionsTest, ConflictInTheMiddleEntryRollsBackEveryWrite) {
  ASSERT_THAT(store_->AppendVersion(Write("Patient", "p0", 1, {Entry(kA)}).record, 0), IsOk());
  ASSERT_THAT(store_->AppendVersion(Write("Patient", "p1", 1, {Entry(kB)}).record, 0), IsOk());
  int calls = 0;
  BeforeCommit count = [&]() -> Status {
    ++calls;
    return Status::Ok();
  };
  const std::vector<VersionWrite> writes = {
      Write("Patient", "p0", 2, {Entry(kC)}),  // valid, applied first, then rolled back
      Write("Patient", "p1", 3, {Entry(kC)}),  // p1 is at version 1, not 2
      Write("Patient", "p2", 1, {Entry(kC)}),  // never reached
  };
  EXPECT_THAT(store_->AppendVersions(writes, count),
              StatusIs(StatusCode::kConflict, "entry 1: version conflict"));
  EXPECT_EQ(calls, 0);

  EXPECT_EQ(CurrentVersion("Patient", "p0"), 1);
  EXPECT_EQ(CurrentVersion("Patient", "p1"), 1);
  EXPECT_EQ(CurrentVersion("Patient", "p2"), 0);
  EXPECT_FALSE(store_->ReadVersion("Patient", "p0", 2)->has_value());
  EXPECT_THAT(VersionRows(), ElementsAre("Patient/p0 v1", "Patient/p1 v1"));
  EXPECT_THAT(IndexRows(), ElementsAre(Row("Patient", "p0", kA), Row("Patient", "p1", kB)));

  // A creation over an existing resource is a conflict too (expected 0, current 1), and the
  // first entry can fail as well as a later one.
  EXPECT_THAT(store_->AppendVersions({Write("Patient", "p1", 1, {})}, {}),
              StatusIs(StatusCode::kConflict, "entry 0: version conflict"));

  // The connection is usable after the rollback: the corrected batch commits.
  std::vector<VersionWrite> fixed = writes;
  fixed[1] = Write("Patient", "p1", 2, {Entry(kC)});
  ASSERT_THAT(store_->AppendVersions(fixed, {}), IsOk());
  EXPECT_THAT(IndexRows(), ElementsAre(Row("Patient", "p0", kC), Row("Patient", "p1", kC),
                                       Row("Patient", "p2", kC)));
}

TEST_F(AppendVersionsTest, FailingBeforeCommitRollsBackEveryWrite) {
  ASSERT_THAT(store_->AppendVersion(Write("Patient", "p0", 1, {Entry(kA)}).record, 0), IsOk());
  int calls = 0;
  BeforeCommit fail = [&]() -> Status {
    ++calls;
    return Unavailable("audit trail unavailable");
  };
  const std::vector<VersionWrite> writes = {
      Write("Patient", "p1", 1, {Entry(kB)}),
      Write("Patient", "p0", 2, {Entry(kB)}),
  };
  // before_commit's status comes back as it is: it is no entry's fault.
  EXPECT_THAT(store_->AppendVersions(writes, fail),
              StatusIs(StatusCode::kUnavailable, "audit trail unavailable"));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(CurrentVersion("Patient", "p0"), 1);
  EXPECT_EQ(CurrentVersion("Patient", "p1"), 0);
  EXPECT_THAT(VersionRows(), ElementsAre("Patient/p0 v1"));
  EXPECT_THAT(IndexRows(), ElementsAre(Row("Patient", "p0", kA)));
}

TEST_F(AppendVersionsTest, TheSameResourceTwiceIsRejectedAndNothingIsWritten) {
  int calls = 0;
  BeforeCommit count = [&]() -> Status {
    ++calls;
    return Status::Ok();
  };
  const std::vector<VersionWrite> writes = {
      Write("Patient", "p1", 1, {Entry(kA)}),
      Write("Observation", "p1", 1, {Entry(kA)}),  // same id, other type: a different resource
      Write("Patient", "p1", 2, {Entry(kB)}),
  };
  EXPECT_THAT(store_->AppendVersions(writes, count),
              StatusIs(StatusCode::kInvalidArgument, "entry 2: the resource is written twice"));
  EXPECT_EQ(calls, 0);
  EXPECT_THAT(VersionRows(), IsEmpty());
  EXPECT_THAT(IndexRows(), IsEmpty());

  ASSERT_THAT(store_->AppendVersions({writes[0], writes[1]}, count), IsOk());
  EXPECT_EQ(calls, 1);
}

TEST_F(AppendVersionsTest, MalformedEntriesAreRejectedWithTheirIndexAndAsAppendVersionWould) {
  ASSERT_THAT(store_->AppendVersion(Write("Patient", "p0", 1, {Entry(kA)}).record, 0), IsOk());
  VersionWrite skipped = Write("Patient", "p1", 3, {});
  skipped.expected_version = 1;  // version must be expected + 1
  VersionWrite nameless = Write("Patient", "", 1, {});
  VersionWrite tombstone = Write("Patient", "p2", 1, {});  // deleted, but carries ciphertext
  tombstone.record.deleted = true;
  VersionWrite bad_token = Write("Patient", "p3", 1, {Entry("")});
  VersionWrite reversed = Write("Patient", "p4", 1, {Entry(kA, 1991, 1990)});
  const VersionWrite ok = Write("Patient", "p0", 2, {Entry(kB)});

  EXPECT_THAT(store_->AppendVersions({ok, skipped}, {}),
              StatusIs(StatusCode::kInvalidArgument,
                       "entry 1: the new version must follow the expected version"));
  EXPECT_THAT(
      store_->AppendVersions({ok, nameless}, {}),
      StatusIs(StatusCode::kInvalidArgument, "entry 1: a resource version needs a type and an id"));
  EXPECT_THAT(
      store_->AppendVersions({tombstone, ok}, {}),
      StatusIs(StatusCode::kInvalidArgument, "entry 0: a deleted version carries no content"));
  EXPECT_THAT(
      store_->AppendVersions({ok, Write("Patient", "p5", 1, {}), bad_token}, {}),
      StatusIs(StatusCode::kInvalidArgument, "entry 2: a search index entry needs a token"));
  EXPECT_THAT(
      store_->AppendVersions({ok, reversed}, {}),
      StatusIs(StatusCode::kInvalidArgument, "entry 1: a search index entry's years are reversed"));

  EXPECT_EQ(CurrentVersion("Patient", "p0"), 1);
  EXPECT_THAT(VersionRows(), ElementsAre("Patient/p0 v1"));
  EXPECT_THAT(IndexRows(), ElementsAre(Row("Patient", "p0", kA)));
}

// The first failure in `writes` is the one returned, whatever its kind: a conflict in
// entry 0 is reported even though entry 1 is malformed, and a malformed entry 0 even though
// entry 1 conflicts.
TEST_F(AppendVersionsTest, TheFirstFailingEntryInOrderIsReported) {
  ASSERT_THAT(store_->AppendVersion(Write("Patient", "p0", 1, {Entry(kA)}).record, 0), IsOk());
  VersionWrite malformed = Write("Patient", "p1", 1, {Entry("")});
  const VersionWrite conflict = Write("Patient", "p0", 1, {});  // p0 exists: expected 0 is stale
  EXPECT_THAT(store_->AppendVersions({conflict, malformed}, {}),
              StatusIs(StatusCode::kConflict, "entry 0: version conflict"));
  EXPECT_THAT(
      store_->AppendVersions({malformed, conflict}, {}),
      StatusIs(StatusCode::kInvalidArgument, "entry 0: a search index entry needs a token"));
  EXPECT_THAT(store_->AppendVersions({Write("Patient", "p2", 1, {}), conflict, conflict}, {}),
              StatusIs(StatusCode::kConflict, "entry 1: version conflict"));
  EXPECT_THAT(VersionRows(), ElementsAre("Patient/p0 v1"));
}

TEST_F(AppendVersionsTest, EmptyWritesDoNothing) {
  int calls = 0;
  BeforeCommit count = [&]() -> Status {
    ++calls;
    return Status::Ok();
  };
  auto seqs = store_->AppendVersions({}, count);
  ASSERT_THAT(seqs, IsOk());
  EXPECT_THAT(*seqs, IsEmpty());
  EXPECT_EQ(calls, 0);
  EXPECT_THAT(VersionRows(), IsEmpty());
}

// The cache must never serve a version that was rolled back, and must serve the committed
// one (not the older cached one) after a commit.
TEST_F(AppendVersionsTest, CurrentVersionCacheSeesOnlyCommittedVersions) {
  Reopen(/*current_cache_bytes=*/1 << 20);
  ASSERT_THAT(store_->AppendVersion(Write("Patient", "p0", 1, {Entry(kA)}).record, 0), IsOk());
  ASSERT_EQ(CurrentVersion("Patient", "p0"), 1);  // cached now

  BeforeCommit fail = [] { return Unavailable("audit trail unavailable"); };
  const std::vector<VersionWrite> writes = {Write("Patient", "p0", 2, {Entry(kB)}),
                                            Write("Patient", "p1", 1, {Entry(kB)})};
  ASSERT_THAT(store_->AppendVersions(writes, fail),
              StatusIs(StatusCode::kUnavailable, "audit trail unavailable"));
  EXPECT_EQ(CurrentVersion("Patient", "p0"), 1);
  EXPECT_EQ(CurrentVersion("Patient", "p1"), 0);

  ASSERT_THAT(store_->AppendVersions(writes, {}), IsOk());
  auto current = store_->ReadCurrent("Patient", "p0");
  ASSERT_THAT(current, IsOk());
  ASSERT_TRUE(current->has_value());
  EXPECT_EQ((*current)->version, 2);
  EXPECT_EQ((*current)->ciphertext, "sealed Patient/p0 v2");
  EXPECT_THAT((*current)->index, IsEmpty());  // reads leave index empty (store.h)
  EXPECT_EQ(CurrentVersion("Patient", "p1"), 1);
}

TEST_F(AppendVersionsTest, ForeignWriteLockIsStorageBusyAndWritesNothing) {
  Reopen(0, /*busy_timeout_ms=*/100);
  RawDb other(path_, SQLITE_OPEN_READWRITE);
  ASSERT_TRUE(other.ok());
  ASSERT_EQ(other.Exec("BEGIN IMMEDIATE"), SQLITE_OK);  // another process holds the write lock
  EXPECT_THAT(store_->AppendVersions({Write("Patient", "p1", 1, {Entry(kA)})}, {}),
              StatusIs(StatusCode::kUnavailable, "storage busy"));
  ASSERT_EQ(other.Exec("ROLLBACK"), SQLITE_OK);
  ASSERT_THAT(store_->AppendVersions({Write("Patient", "p1", 1, {Entry(kA)})}, {}), IsOk());
}

// Bulk import appends 1,000 resources per call: one transaction (one fsync) for all of
// them. Bounded generously so a Debug+ASan build on a shared machine passes; the time is
// printed for the record.
TEST_F(AppendVersionsTest, AThousandWritesInOneCall) {
  constexpr int kWrites = 1000;
  std::vector<VersionWrite> writes;
  writes.reserve(kWrites);
  for (int i = 0; i < kWrites; ++i) {
    const std::string id = "p" + std::to_string(i);
    writes.push_back(Write("Patient", id, 1,
                           {Entry(kA), Entry(kB, 1900 + i % 100, 1900 + i % 100),
                            Entry(Token(static_cast<uint8_t>(i % 200 + 10)))}));
    writes.back().record.ciphertext.append(600, 'x');  // about a small Patient's size
  }
  int calls = 0;
  BeforeCommit count = [&]() -> Status {
    ++calls;
    return Status::Ok();
  };
  const auto start = std::chrono::steady_clock::now();
  auto seqs = store_->AppendVersions(writes, count);
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  ASSERT_THAT(seqs, IsOk());
  std::cout << "[ timing   ] AppendVersions of " << kWrites << " writes: " << elapsed.count()
            << " ms\n";
  RecordProperty("append_versions_1000_ms", static_cast<int>(elapsed.count()));
  EXPECT_LT(elapsed, std::chrono::seconds(10));
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(seqs->size(), static_cast<size_t>(kWrites));
  for (size_t i = 1; i < seqs->size(); ++i) ASSERT_LT((*seqs)[i - 1], (*seqs)[i]);

  RawDb db(path_, SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok());
  EXPECT_THAT(db.Column("SELECT count(*) FROM resource_current"), ElementsAre("1000"));
  EXPECT_THAT(db.Column("SELECT count(*) FROM search_index"), ElementsAre("3000"));
  EXPECT_EQ(CurrentVersion("Patient", "p0"), 1);
  EXPECT_EQ(CurrentVersion("Patient", "p999"), 1);
}

}  // namespace
}  // namespace phigate::storage
