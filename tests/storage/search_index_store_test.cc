// Tests for the search index of the SQLite Store (issue 6 §2): AppendVersion replaces a
// resource's index entries in the version's transaction (and rolls them back with it), and
// SearchCurrent returns exactly the current, live resources that satisfy every condition,
// in id byte order, paged by after_id and limit, with the documented validation errors.
// A real SqliteStore in a temp dir; the index rows are inspected with a raw SQLite handle.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdint>
#include <cstdio>
#include <map>
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
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;

constexpr int64_t kT0 = 1'700'000'000'000;  // Nov 2023

// A 16-byte token as the fhir layer makes them (a truncated HMAC): binary, with a NUL
// first and a high byte last, so a text comparison or a C-string copy would show.
std::string Token(uint8_t n) {
  std::string token(16, '\x5a');
  token[0] = '\0';
  token[14] = '\xff';
  token[15] = static_cast<char>(n);
  return token;
}

const std::string kA = Token(1);
const std::string kB = Token(2);
const std::string kC = Token(3);
const std::string kD = Token(4);
const std::string kBirth = Token(9);  // a date parameter: its entries carry years

IndexEntry Entry(const std::string& token, int32_t low_year = 0, int32_t high_year = 0) {
  return IndexEntry{token, low_year, high_year};
}

SearchClause AnyOf(std::vector<std::string> tokens) {
  SearchClause clause;
  clause.any_of = std::move(tokens);
  return clause;
}

SearchClause Not(std::vector<std::string> tokens) {
  SearchClause clause = AnyOf(std::move(tokens));
  clause.negate = true;
  return clause;
}

SearchClause Years(std::vector<std::string> tokens, int32_t low, int32_t high) {
  SearchClause clause = AnyOf(std::move(tokens));
  clause.by_year = true;
  clause.year_low = low;
  clause.year_high = high;
  return clause;
}

SearchQuery Query(const std::string& type, std::vector<SearchClause> all_of, int limit = 100) {
  SearchQuery query;
  query.type = type;
  query.all_of = std::move(all_of);
  query.limit = limit;
  return query;
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

using ::phigate::testing::RawDb;
using ::phigate::testing::TempDir;

class SearchIndexStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen(int64_t current_cache_bytes = 0) {
    store_.reset();
    SqliteOptions options;
    options.path = path_;
    options.read_connections = 2;
    options.current_cache_bytes = current_cache_bytes;
    auto opened = OpenSqliteStore(options);
    ASSERT_THAT(opened, IsOk());
    store_ = std::move(opened).value();
  }

  // Writes the next version of (type, id) with `index`; returns its seq.
  int64_t Put(const std::string& type, const std::string& id, std::vector<IndexEntry> index,
              int64_t last_updated_ms = kT0) {
    VersionRecord record = Next(type, id, last_updated_ms);
    record.ciphertext = "sealed " + type + "/" + id + " v" + std::to_string(record.version);
    record.index = std::move(index);
    return Append(record);
  }

  void Delete(const std::string& type, const std::string& id) {
    VersionRecord record = Next(type, id, kT0);
    record.deleted = true;
    Append(record);
  }

  // The ids SearchCurrent returns for `query` (an empty list if it fails, which is also
  // reported).
  std::vector<std::string> Ids(const SearchQuery& query) {
    auto found = store_->SearchCurrent(query);
    EXPECT_THAT(found, IsOk());
    std::vector<std::string> ids;
    if (!found.ok()) return ids;
    for (const VersionRecord& record : *found) ids.push_back(record.id);
    return ids;
  }

  // Every search_index row, ordered by resource, token and years.
  std::vector<std::string> IndexRows() {
    RawDb db(path_, SQLITE_OPEN_READONLY);
    EXPECT_TRUE(db.ok());
    return db.Column(
        "SELECT type || '/' || id || ' ' || hex(token) || ' ' || low_year || '..' || high_year"
        " FROM search_index ORDER BY type, id, token, low_year, high_year");
  }

  int64_t VersionOf(const std::string& type, const std::string& id) {
    return versions_[type + "/" + id];
  }

  TempDir dir_;  // declared first: removed after the store is closed
  std::string path_ = dir_.File("phigate.db");
  std::unique_ptr<Store> store_;

 private:
  VersionRecord Next(const std::string& type, const std::string& id, int64_t last_updated_ms) {
    VersionRecord record;
    record.type = type;
    record.id = id;
    record.version = versions_[type + "/" + id] + 1;
    record.last_updated_ms = last_updated_ms;
    record.key_version = 7;
    return record;
  }
  int64_t Append(const VersionRecord& record) {
    auto seq = store_->AppendVersion(record, record.version - 1);
    EXPECT_THAT(seq, IsOk());
    if (!seq.ok()) return 0;
    versions_[record.type + "/" + record.id] = record.version;
    return *seq;
  }

  std::map<std::string, int64_t> versions_;  // newest version written per "type/id"
};

// --- index maintenance -------------------------------------------------------------------

TEST_F(SearchIndexStoreTest, UpdateReplacesTheIndexRowsAndATombstoneRemovesThem) {
  Put("Patient", "p1", {Entry(kA), Entry(kB), Entry(kBirth, 1980, 1980)});
  Put("Patient", "p2", {Entry(kA)});
  EXPECT_THAT(IndexRows(),
              ElementsAre(Row("Patient", "p1", kA), Row("Patient", "p1", kB),
                          Row("Patient", "p1", kBirth, 1980, 1980), Row("Patient", "p2", kA)));

  Put("Patient", "p1", {Entry(kC), Entry(kBirth, 1981, 1982)});
  EXPECT_THAT(IndexRows(),
              ElementsAre(Row("Patient", "p1", kC), Row("Patient", "p1", kBirth, 1981, 1982),
                          Row("Patient", "p2", kA)));
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({kA})})), ElementsAre("p2"));
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({kC})})), ElementsAre("p1"));

  Delete("Patient", "p1");
  EXPECT_THAT(IndexRows(), ElementsAre(Row("Patient", "p2", kA)));
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({kC})})), IsEmpty());

  // Recreated after the tombstone: indexed again.
  Put("Patient", "p1", {Entry(kA)});
  EXPECT_THAT(IndexRows(), ElementsAre(Row("Patient", "p1", kA), Row("Patient", "p2", kA)));
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({kA})})), ElementsAre("p1", "p2"));
  EXPECT_EQ(VersionOf("Patient", "p1"), 4);
}

TEST_F(SearchIndexStoreTest, RepeatedEntriesAreStoredOnce) {
  Put("Observation", "o1",
      {Entry(kB), Entry(kA), Entry(kB), Entry(kBirth, 2001, 2001), Entry(kBirth, 2001, 2001),
       Entry(kBirth, 2001, 2002)});
  EXPECT_THAT(IndexRows(), ElementsAre(Row("Observation", "o1", kA), Row("Observation", "o1", kB),
                                       Row("Observation", "o1", kBirth, 2001, 2001),
                                       Row("Observation", "o1", kBirth, 2001, 2002)));
  // Two matching entries of one resource still make one result.
  EXPECT_THAT(Ids(Query("Observation", {Years({kBirth}, 2000, 2003)})), ElementsAre("o1"));
  EXPECT_THAT(Ids(Query("Observation", {AnyOf({kA, kB})})), ElementsAre("o1"));
}

TEST_F(SearchIndexStoreTest, MalformedIndexEntriesAreRejectedAndChangeNothing) {
  Put("Patient", "p1", {Entry(kA)});
  VersionRecord record;
  record.type = "Patient";
  record.id = "p1";
  record.version = 2;
  record.last_updated_ms = kT0;
  record.ciphertext = "changed";
  record.index = {Entry(kB), Entry("")};
  EXPECT_THAT(store_->AppendVersion(record, 1),
              StatusIs(StatusCode::kInvalidArgument, "a search index entry needs a token"));
  record.index = {Entry(kBirth, 1991, 1990)};
  EXPECT_THAT(store_->AppendVersion(record, 1),
              StatusIs(StatusCode::kInvalidArgument, "a search index entry's years are reversed"));
  record.ciphertext.clear();
  record.deleted = true;
  record.index = {Entry(kB)};
  EXPECT_THAT(store_->AppendVersion(record, 1),
              StatusIs(StatusCode::kInvalidArgument, "a deleted version carries no content"));

  EXPECT_EQ(store_->ReadCurrent("Patient", "p1")->value().version, 1);
  EXPECT_THAT(IndexRows(), ElementsAre(Row("Patient", "p1", kA)));
}

// Issue 6 §2: "a crash never leaves an index pointing at a missing version or a version
// missing from the index". A failure at the last step (the audit record) keeps both.
TEST_F(SearchIndexStoreTest, FailedBeforeCommitKeepsTheOldVersionAndItsIndexRows) {
  Put("Patient", "p1", {Entry(kA), Entry(kBirth, 1970, 1970)});
  VersionRecord record;
  record.type = "Patient";
  record.id = "p1";
  record.version = 2;
  record.last_updated_ms = kT0 + 1;
  record.ciphertext = "changed";
  record.index = {Entry(kB)};
  int calls = 0;
  BeforeCommit fail = [&]() -> Status {
    ++calls;
    return Unavailable("audit trail unavailable");
  };
  EXPECT_THAT(store_->AppendVersion(record, 1, fail),
              StatusIs(StatusCode::kUnavailable, "audit trail unavailable"));
  EXPECT_EQ(calls, 1);

  // A new resource that fails the same way leaves no rows either.
  VersionRecord created = record;
  created.id = "p2";
  created.version = 1;
  EXPECT_THAT(store_->AppendVersion(created, 0, fail),
              StatusIs(StatusCode::kUnavailable, "audit trail unavailable"));

  EXPECT_EQ(store_->ReadCurrent("Patient", "p1")->value().version, 1);
  EXPECT_FALSE(store_->ReadCurrent("Patient", "p2")->has_value());
  EXPECT_THAT(IndexRows(),
              ElementsAre(Row("Patient", "p1", kA), Row("Patient", "p1", kBirth, 1970, 1970)));
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({kA})})), ElementsAre("p1"));
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({kB})})), IsEmpty());

  // The rolled-back attempt left the connection usable: the same write now commits.
  ASSERT_THAT(store_->AppendVersion(record, 1), IsOk());
  EXPECT_THAT(IndexRows(), ElementsAre(Row("Patient", "p1", kB)));
}

// A version conflict is found before the index is touched.
TEST_F(SearchIndexStoreTest, VersionConflictLeavesTheIndexAlone) {
  Put("Patient", "p1", {Entry(kA)});
  VersionRecord stale;
  stale.type = "Patient";
  stale.id = "p1";
  stale.version = 3;
  stale.last_updated_ms = kT0;
  stale.ciphertext = "stale";
  stale.index = {Entry(kB)};
  EXPECT_THAT(store_->AppendVersion(stale, 2), StatusIs(StatusCode::kConflict, "version conflict"));
  EXPECT_THAT(IndexRows(), ElementsAre(Row("Patient", "p1", kA)));
}

TEST_F(SearchIndexStoreTest, ReopenedStoreSeesTheSameIndex) {
  Put("Patient", "p1", {Entry(kA), Entry(kBirth, 1950, 1950)});
  Put("Patient", "p2", {Entry(kA), Entry(kBirth, 1960, 1960)});
  Reopen();
  EXPECT_THAT(IndexRows(),
              ElementsAre(Row("Patient", "p1", kA), Row("Patient", "p1", kBirth, 1950, 1950),
                          Row("Patient", "p2", kA), Row("Patient", "p2", kBirth, 1960, 1960)));
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({kA}), Years({kBirth}, 1955, 1965)})), ElementsAre("p2"));
}

TEST_F(SearchIndexStoreTest, IndexTableHasTheExpectedShape) {
  RawDb db(path_, SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok());
  EXPECT_THAT(db.Column("SELECT name || ':' || type || ':' || pk FROM pragma_table_info("
                        "'search_index')"),
              ElementsAre("type:TEXT:1", "id:TEXT:2", "token:BLOB:3", "low_year:INTEGER:4",
                          "high_year:INTEGER:5"));
  // WITHOUT ROWID and STRICT (pragma_table_list: wr, strict).
  EXPECT_THAT(db.Column("SELECT wr || ',' || strict FROM pragma_table_list('search_index')"),
              ElementsAre("1,1"));
  EXPECT_THAT(db.Column("SELECT name FROM pragma_index_list('search_index') ORDER BY name"),
              ElementsAre("search_index_by_token", "sqlite_autoindex_search_index_1"));
  EXPECT_THAT(db.Column("SELECT name FROM pragma_index_info('search_index_by_token')"),
              ElementsAre("token", "type", "id"));
}

// --- SearchCurrent: conditions -----------------------------------------------------------

TEST_F(SearchIndexStoreTest, OneTokenFindsExactlyItsResourcesWithEveryField) {
  const int64_t seq = Put("Patient", "p1", {Entry(kA)}, kT0 + 5);
  Put("Patient", "p2", {Entry(kB)});
  Put("Patient", "p3", {Entry(kA), Entry(kB)});

  auto found = store_->SearchCurrent(Query("Patient", {AnyOf({kA})}));
  ASSERT_THAT(found, IsOk());
  ASSERT_EQ(found->size(), 2u);
  const VersionRecord& first = (*found)[0];
  EXPECT_EQ(first.type, "Patient");
  EXPECT_EQ(first.id, "p1");
  EXPECT_EQ(first.version, 1);
  EXPECT_EQ(first.last_updated_ms, kT0 + 5);
  EXPECT_FALSE(first.deleted);
  EXPECT_EQ(first.key_version, 7u);
  EXPECT_EQ(first.ciphertext, "sealed Patient/p1 v1");
  EXPECT_EQ(first.seq, seq);
  EXPECT_THAT(first.index, IsEmpty());
  EXPECT_EQ((*found)[1].id, "p3");

  // A token that shares all but its last byte, or is a prefix, matches nothing.
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({Token(5)})})), IsEmpty());
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({kA.substr(0, 15)})})), IsEmpty());
}

// With the current-version cache on, a page is filled from the cache only with the version
// the query found current.
TEST_F(SearchIndexStoreTest, CachedRecordsAreTheCurrentVersions) {
  Reopen(1 << 20);
  Put("Patient", "p1", {Entry(kA)});
  const int64_t seq = Put("Patient", "p1", {Entry(kA)}, kT0 + 2);
  ASSERT_TRUE(store_->ReadCurrent("Patient", "p1")->has_value());
  auto found = store_->SearchCurrent(Query("Patient", {AnyOf({kA})}));
  ASSERT_THAT(found, IsOk());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].version, 2);
  EXPECT_EQ((*found)[0].seq, seq);
  EXPECT_EQ((*found)[0].last_updated_ms, kT0 + 2);
  EXPECT_EQ((*found)[0].ciphertext, "sealed Patient/p1 v2");
  EXPECT_THAT((*found)[0].index, IsEmpty());
  // ReadCurrent from the cache does not hand out the written index entries either.
  EXPECT_THAT(store_->ReadCurrent("Patient", "p1")->value().index, IsEmpty());
}

TEST_F(SearchIndexStoreTest, AnyOfIsAnOrAndAllOfIsAnAnd) {
  Put("Observation", "o1", {Entry(kA)});
  Put("Observation", "o2", {Entry(kB)});
  Put("Observation", "o3", {Entry(kA), Entry(kC)});
  Put("Observation", "o4", {Entry(kB), Entry(kC)});
  Put("Observation", "o5", {Entry(kC)});

  EXPECT_THAT(Ids(Query("Observation", {AnyOf({kA, kB})})), ElementsAre("o1", "o2", "o3", "o4"));
  EXPECT_THAT(Ids(Query("Observation", {AnyOf({kA}), AnyOf({kC})})), ElementsAre("o3"));
  EXPECT_THAT(Ids(Query("Observation", {AnyOf({kC}), AnyOf({kA, kB})})), ElementsAre("o3", "o4"));
  EXPECT_THAT(Ids(Query("Observation", {AnyOf({kA, kB}), AnyOf({kC, kD})})),
              ElementsAre("o3", "o4"));
  EXPECT_THAT(Ids(Query("Observation", {AnyOf({kA}), AnyOf({kB})})), IsEmpty());
  EXPECT_THAT(Ids(Query("Observation", {AnyOf({kA}), AnyOf({kD})})), IsEmpty());
  // No condition: every resource of the type.
  EXPECT_THAT(Ids(Query("Observation", {})), ElementsAre("o1", "o2", "o3", "o4", "o5"));
}

TEST_F(SearchIndexStoreTest, NegatedConditionsExclude) {
  Put("Condition", "c1", {Entry(kA)});
  Put("Condition", "c2", {Entry(kA), Entry(kB)});
  Put("Condition", "c3", {Entry(kC)});
  Put("Condition", "c4", {});

  EXPECT_THAT(Ids(Query("Condition", {AnyOf({kA}), Not({kB})})), ElementsAre("c1"));
  // Only negations: walks every resource, including one with no entries at all.
  EXPECT_THAT(Ids(Query("Condition", {Not({kA})})), ElementsAre("c3", "c4"));
  EXPECT_THAT(Ids(Query("Condition", {Not({kA, kC})})), ElementsAre("c4"));
  EXPECT_THAT(Ids(Query("Condition", {Not({kA}), Not({kC})})), ElementsAre("c4"));
  EXPECT_THAT(Ids(Query("Condition", {Not({kD})})), ElementsAre("c1", "c2", "c3", "c4"));
}

TEST_F(SearchIndexStoreTest, YearRangesMatchOverlappingSpansIncludingTouchingBoundaries) {
  Put("Encounter", "e1", {Entry(kBirth, 1990, 1995)});
  Put("Encounter", "e2", {Entry(kBirth, 2000, 2000)});
  Put("Encounter", "e3", {Entry(kBirth, 1996, 1999), Entry(kA)});
  Put("Encounter", "e4", {Entry(kA)});  // no date at all

  auto years = [&](int32_t low, int32_t high) {
    return Ids(Query("Encounter", {Years({kBirth}, low, high)}));
  };
  EXPECT_THAT(years(1995, 1995), ElementsAre("e1"));              // touches e1's high end
  EXPECT_THAT(years(1985, 1990), ElementsAre("e1"));              // touches e1's low end
  EXPECT_THAT(years(1992, 1993), ElementsAre("e1"));              // inside e1's span
  EXPECT_THAT(years(1980, 2010), ElementsAre("e1", "e2", "e3"));  // covers all spans
  EXPECT_THAT(years(1999, 2000), ElementsAre("e2", "e3"));
  EXPECT_THAT(years(2001, 2100), IsEmpty());
  EXPECT_THAT(years(1900, 1989), IsEmpty());
  // A year condition that is not the driving one, and a negated one.
  EXPECT_THAT(Ids(Query("Encounter", {AnyOf({kA}), Years({kBirth}, 1999, 1999)})),
              ElementsAre("e3"));
  EXPECT_THAT(Ids(Query("Encounter", {AnyOf({kA}), Years({kBirth}, 1990, 1995)})), IsEmpty());
  EXPECT_THAT(Ids(Query("Encounter", {Not({kA}), Years({kBirth}, 1995, 2000)})),
              ElementsAre("e1", "e2"));
  EXPECT_THAT(Ids(Query("Encounter", {AnyOf({kBirth}),
                                      [] {
                                        SearchClause clause = Years({kBirth}, 1995, 1996);
                                        clause.negate = true;
                                        return clause;
                                      }()})),
              ElementsAre("e2"));
  // Without by_year the years are ignored.
  EXPECT_THAT(Ids(Query("Encounter", {AnyOf({kBirth})})), ElementsAre("e1", "e2", "e3"));
}

// --- SearchCurrent: filters and paging ---------------------------------------------------

TEST_F(SearchIndexStoreTest, IdsRestrictTheCandidates) {
  Put("Patient", "p1", {Entry(kA)});
  Put("Patient", "p2", {Entry(kA)});
  Put("Patient", "p3", {Entry(kB)});
  Put("Patient", "p4", {Entry(kA)});
  Delete("Patient", "p4");

  SearchQuery query = Query("Patient", {});
  query.ids = {"p3", "p1", "nope", "p4"};
  EXPECT_THAT(Ids(query), ElementsAre("p1", "p3"));
  query.all_of = {AnyOf({kA})};
  EXPECT_THAT(Ids(query), ElementsAre("p1"));
  query.all_of = {Not({kA})};
  EXPECT_THAT(Ids(query), ElementsAre("p3"));
  query.all_of = {};
  query.after_id = "p1";
  EXPECT_THAT(Ids(query), ElementsAre("p3"));
  query.after_id = "";
  query.limit = 1;
  EXPECT_THAT(Ids(query), ElementsAre("p1"));
}

TEST_F(SearchIndexStoreTest, LastUpdatedRangeIncludesFromAndExcludesTo) {
  Put("Patient", "p1", {Entry(kA)}, kT0 - 1);
  Put("Patient", "p2", {Entry(kA)}, kT0);
  Put("Patient", "p3", {Entry(kA)}, kT0 + 1);
  Put("Patient", "p4", {Entry(kA)}, kT0 + 2);

  for (const bool with_condition : {true, false}) {
    SCOPED_TRACE(with_condition ? "index-driven" : "resource-driven");
    SearchQuery query = Query("Patient", {});
    if (with_condition) query.all_of = {AnyOf({kA})};
    query.updated_from_ms = kT0;
    query.updated_to_ms = kT0 + 2;
    EXPECT_THAT(Ids(query), ElementsAre("p2", "p3"));
    query.updated_from_ms = kT0 + 2;
    query.updated_to_ms = kT0 + 2;
    EXPECT_THAT(Ids(query), IsEmpty());
    query.updated_from_ms = INT64_MIN;
    query.updated_to_ms = kT0;
    EXPECT_THAT(Ids(query), ElementsAre("p1"));
  }
  // The current version's time counts, not the first one's.
  Put("Patient", "p1", {Entry(kA)}, kT0 + 10);
  SearchQuery query = Query("Patient", {AnyOf({kA})});
  query.updated_from_ms = kT0 + 10;
  EXPECT_THAT(Ids(query), ElementsAre("p1"));
}

TEST_F(SearchIndexStoreTest, AfterIdPagesThroughThreePagesInIdOrder) {
  // Written out of order; seven match, two do not.
  for (const char* id : {"r5", "r1", "r7", "r3", "x9", "r2", "r6", "r4", "x8"}) {
    const bool match = id[0] == 'r';
    Put("Patient", id, {Entry(match ? kA : kB), Entry(kC), Entry(match ? kB : kD)});
  }
  struct Shape {
    const char* name;
    std::vector<SearchClause> all_of;
  };
  const std::vector<Shape> shapes = {
      {"one token", {AnyOf({kA})}},
      {"several tokens, sorted", {AnyOf({kA, Token(42)})}},
      {"two conditions", {AnyOf({kC}), AnyOf({kA})}},
      {"negation only", {Not({kD})}},
  };
  for (const Shape& shape : shapes) {
    SCOPED_TRACE(shape.name);
    SearchQuery query = Query("Patient", shape.all_of, 3);
    EXPECT_THAT(Ids(query), ElementsAre("r1", "r2", "r3"));
    query.after_id = "r3";
    EXPECT_THAT(Ids(query), ElementsAre("r4", "r5", "r6"));
    query.after_id = "r6";
    EXPECT_THAT(Ids(query), ElementsAre("r7"));
    query.after_id = "r7";
    EXPECT_THAT(Ids(query), IsEmpty());
  }
}

TEST_F(SearchIndexStoreTest, IdsAreInByteOrder) {
  // Byte order: 'B' (0x42) < 'Z' (0x5a) < '_' (0x5f) < 'a' (0x61); NOCASE would differ.
  for (const char* id : {"a", "_", "Z", "B", "B-1"}) Put("Patient", id, {Entry(kA)});
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({kA})})), ElementsAre("B", "B-1", "Z", "_", "a"));
  EXPECT_THAT(Ids(Query("Patient", {})), ElementsAre("B", "B-1", "Z", "_", "a"));
  SearchQuery query = Query("Patient", {AnyOf({kA})});
  query.after_id = "B";
  EXPECT_THAT(Ids(query), ElementsAre("B-1", "Z", "_", "a"));
}

TEST_F(SearchIndexStoreTest, LimitCapsThePage) {
  for (const char* id : {"p1", "p2", "p3"}) Put("Patient", id, {Entry(kA)});
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({kA})}, 1)), ElementsAre("p1"));
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({kA})}, 2)), ElementsAre("p1", "p2"));
  EXPECT_THAT(Ids(Query("Patient", {}, 2)), ElementsAre("p1", "p2"));
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({kA})}, 1000)), ElementsAre("p1", "p2", "p3"));
}

TEST_F(SearchIndexStoreTest, DeletedResourcesAreNeverCandidates) {
  Put("Patient", "p1", {Entry(kA)});
  Put("Patient", "p2", {Entry(kA)});
  Delete("Patient", "p1");
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({kA})})), ElementsAre("p2"));
  EXPECT_THAT(Ids(Query("Patient", {})), ElementsAre("p2"));
  EXPECT_THAT(Ids(Query("Patient", {Not({kB})})), ElementsAre("p2"));
}

TEST_F(SearchIndexStoreTest, TypesAreIsolated) {
  Put("Patient", "x1", {Entry(kA)});
  Put("Observation", "x1", {Entry(kB)});
  Put("Observation", "x2", {Entry(kA)});
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({kA})})), ElementsAre("x1"));
  EXPECT_THAT(Ids(Query("Observation", {AnyOf({kA})})), ElementsAre("x2"));
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({kB})})), IsEmpty());
  EXPECT_THAT(Ids(Query("Patient", {Not({kB})})), ElementsAre("x1"));
  EXPECT_THAT(Ids(Query("Observation", {})), ElementsAre("x1", "x2"));
  EXPECT_THAT(Ids(Query("Encounter", {})), IsEmpty());
  auto found = store_->SearchCurrent(Query("Observation", {AnyOf({kB})}));
  ASSERT_THAT(found, IsOk());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].type, "Observation");
  EXPECT_EQ((*found)[0].ciphertext, "sealed Observation/x1 v1");
}

TEST_F(SearchIndexStoreTest, InvalidQueriesAreRejectedWithFixedMessages) {
  auto rejects = [&](const SearchQuery& query, const char* message) {
    EXPECT_THAT(store_->SearchCurrent(query), StatusIs(StatusCode::kInvalidArgument, message));
  };
  rejects(Query("", {AnyOf({kA})}), "a search needs a resource type");
  rejects(Query("Patient", {AnyOf({kA})}, 0), "a search needs a positive limit");
  rejects(Query("Patient", {AnyOf({kA})}, -1), "a search needs a positive limit");
  rejects(Query("Patient", {AnyOf({kA}), AnyOf({})}), "a search condition needs a value");
  rejects(Query("Patient", {Not({})}), "a search condition needs a value");
  rejects(Query("Patient", {AnyOf({kA, ""})}), "a search value must not be empty");
  rejects(Query("Patient", {Years({kBirth}, 2001, 2000)}), "a search year range is reversed");

  // Bounds: 64 conditions and 1000 values (tokens plus ids) are accepted, one more is not.
  std::vector<SearchClause> conditions(64, AnyOf({kA}));
  EXPECT_THAT(store_->SearchCurrent(Query("Patient", conditions)), IsOk());
  conditions.push_back(AnyOf({kA}));
  rejects(Query("Patient", conditions), "too many search conditions");
  std::vector<std::string> tokens;
  for (int i = 0; i < 999; ++i)
    tokens.push_back(Token(static_cast<uint8_t>(i)) + "-" + std::to_string(i));
  SearchQuery many = Query("Patient", {AnyOf(tokens)});
  many.ids = {"p1"};
  EXPECT_THAT(store_->SearchCurrent(many), IsOk());
  many.ids.push_back("p2");
  rejects(many, "too many search values");

  // A year range of one year and an empty page range are fine.
  EXPECT_THAT(store_->SearchCurrent(Query("Patient", {Years({kBirth}, 2000, 2000)})), IsOk());
}

// --- scale ---------------------------------------------------------------------------------

// One resource as BulkLoad writes it.
struct BulkResource {
  std::string id;
  std::vector<IndexEntry> index;
};

// Writes version 1 of each resource, its current pointer and its index rows straight into
// the file in one transaction, laid out exactly as AppendVersion writes them: thousands of
// AppendVersion calls would each wait for an fsync, which on a busy disk takes seconds.
// Returns false (and reports) on any SQLite error.
bool BulkLoad(const std::string& path, const std::string& type,
              const std::vector<BulkResource>& resources) {
  sqlite3* db = nullptr;
  bool ok = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK &&
            sqlite3_exec(db, "PRAGMA foreign_keys=ON; BEGIN IMMEDIATE", nullptr, nullptr,
                         nullptr) == SQLITE_OK;
  sqlite3_stmt* version = nullptr;
  sqlite3_stmt* current = nullptr;
  sqlite3_stmt* entry = nullptr;
  ok = ok &&
       sqlite3_prepare_v2(db,
                          "INSERT INTO resource_versions (type, id, version, last_updated_ms,"
                          " deleted, key_version, ciphertext) VALUES (?1, ?2, 1, ?3, 0, 7, ?4)",
                          -1, &version, nullptr) == SQLITE_OK &&
       sqlite3_prepare_v2(db, "INSERT INTO resource_current (type, id, version) VALUES (?1, ?2, 1)",
                          -1, &current, nullptr) == SQLITE_OK &&
       sqlite3_prepare_v2(db,
                          "INSERT INTO search_index (type, id, token, low_year, high_year)"
                          " VALUES (?1, ?2, ?3, ?4, ?5)",
                          -1, &entry, nullptr) == SQLITE_OK;
  auto run = [&](sqlite3_stmt* stmt) {
    const bool done = sqlite3_step(stmt) == SQLITE_DONE;
    sqlite3_reset(stmt);
    return done;
  };
  for (size_t i = 0; ok && i < resources.size(); ++i) {
    const BulkResource& resource = resources[i];
    const std::string ciphertext = "sealed " + type + "/" + resource.id + " v1";
    sqlite3_bind_text(version, 1, type.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(version, 2, resource.id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(version, 3, kT0);
    sqlite3_bind_blob(version, 4, ciphertext.data(), static_cast<int>(ciphertext.size()),
                      SQLITE_TRANSIENT);
    sqlite3_bind_text(current, 1, type.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(current, 2, resource.id.c_str(), -1, SQLITE_TRANSIENT);
    ok = run(version) && run(current);
    for (const IndexEntry& index : resource.index) {
      sqlite3_bind_text(entry, 1, type.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(entry, 2, resource.id.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_blob(entry, 3, index.token.data(), static_cast<int>(index.token.size()),
                        SQLITE_TRANSIENT);
      sqlite3_bind_int(entry, 4, index.low_year);
      sqlite3_bind_int(entry, 5, index.high_year);
      ok = ok && run(entry);
    }
  }
  if (!ok) ADD_FAILURE() << "bulk load: " << sqlite3_errmsg(db);
  sqlite3_finalize(version);
  sqlite3_finalize(current);
  sqlite3_finalize(entry);
  ok = ok && sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK;
  sqlite3_close_v2(db);
  return ok;
}

// 20,000 resources with rare and common tokens, so every way of driving a query is taken:
// one rare token, a rare token among common ones, several tokens with few rows (sorted),
// common one-token conditions (walked in id order), several common tokens each (walked by
// resource), a year range on a common token, and paging through a larger result. Expected
// ids are computed from the same formulas.
TEST_F(SearchIndexStoreTest, AtScaleEveryPlanReturnsExactlyTheMatchingIds) {
  constexpr int kResources = 20000;
  const std::string common = Token(100);
  auto identifier = [](int i) { return "id-" + std::to_string(i); };
  auto parity = [](int i) { return Token(static_cast<uint8_t>(110 + i % 2)); };
  auto mod7 = [](int i) { return Token(static_cast<uint8_t>(120 + i % 7)); };
  auto mod97 = [](int i) { return "m97-" + std::to_string(i % 97); };  // ~206 rows each
  auto year = [](int i) { return 1900 + i % 100; };
  auto id_of = [](int i) {
    char buffer[16];
    std::snprintf(buffer, sizeof(buffer), "r%05d", i);
    return std::string(buffer);
  };
  std::vector<BulkResource> resources;
  // Loaded in a scrambled order, as random ids would arrive.
  for (int n = 0; n < kResources; ++n) {
    const int i = static_cast<int>((static_cast<int64_t>(n) * 7919) % kResources);
    resources.push_back({id_of(i),
                         {Entry(identifier(i)), Entry(common), Entry(parity(i)), Entry(mod7(i)),
                          Entry(mod97(i)), Entry(kBirth, year(i), year(i))}});
  }
  store_.reset();
  ASSERT_TRUE(BulkLoad(path_, "Patient", resources));
  Reopen();
  auto expected = [&](auto predicate, int limit) {
    std::vector<std::string> ids;
    for (int i = 0; i < kResources && static_cast<int>(ids.size()) < limit; ++i) {
      if (predicate(i)) ids.push_back(id_of(i));
    }
    return ids;
  };

  EXPECT_THAT(Ids(Query("Patient", {AnyOf({identifier(12345)})})), ElementsAre("r12345"));
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({common}), AnyOf({identifier(17)}), Not({mod7(0)})})),
              ElementsAre("r00017"));
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({identifier(5), identifier(19999), "id-none"})})),
              ElementsAre("r00005", "r19999"));
  // A condition with fewer rows than the sort bound (1000) drives, sorted by id.
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({common}), AnyOf({mod97(3), mod97(4)})}, 500)),
              ElementsAreArray(expected([](int i) { return i % 97 == 3 || i % 97 == 4; }, 500)));
  // Only common one-token conditions: the index is walked in id order.
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({common}), AnyOf({parity(1)}), Not({mod7(3)})}, 5)),
              ElementsAreArray(expected([](int i) { return i % 2 == 1 && i % 7 != 3; }, 5)));
  // Common conditions of several tokens each: walked by resource.
  const std::vector<std::string> mod7_123 = {mod7(1), mod7(2), mod7(3)};
  auto in_mod7_123 = [](int i) { return i % 7 >= 1 && i % 7 <= 3; };
  EXPECT_THAT(Ids(Query("Patient", {AnyOf(mod7_123), AnyOf({parity(0), parity(1)})}, 10)),
              ElementsAreArray(expected(in_mod7_123, 10)));
  // Several common tokens and a year range on a common token: the year token is walked.
  EXPECT_THAT(
      Ids(Query("Patient", {AnyOf(mod7_123), Years({kBirth}, 1950, 1951)}, 1000)),
      ElementsAreArray(expected(
          [&](int i) { return in_mod7_123(i) && year(i) >= 1950 && year(i) <= 1951; }, 1000)));
  // Paging through the 200 matches of a year range, 50 at a time.
  std::vector<std::string> all;
  SearchQuery page = Query("Patient", {Years({kBirth}, 1999, 1999)}, 50);
  for (int pages = 0; pages < 10; ++pages) {
    std::vector<std::string> ids = Ids(page);
    if (ids.empty()) break;
    all.insert(all.end(), ids.begin(), ids.end());
    page.after_id = ids.back();
  }
  EXPECT_THAT(all, ElementsAreArray(expected([&](int i) { return year(i) == 1999; }, kResources)));
  EXPECT_EQ(all.size(), 200u);

  // The bulk-loaded rows are what AppendVersion keeps up to date: an update moves r00017.
  VersionRecord update;
  update.type = "Patient";
  update.id = "r00017";
  update.version = 2;
  update.last_updated_ms = kT0 + 1;
  update.ciphertext = "sealed Patient/r00017 v2";
  update.index = {Entry(identifier(20017))};
  ASSERT_THAT(store_->AppendVersion(update, 1), IsOk());
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({identifier(17)})})), IsEmpty());
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({identifier(20017)})})), ElementsAre("r00017"));
  EXPECT_THAT(Ids(Query("Patient", {AnyOf({mod97(17)})}, 2)), ElementsAre("r00114", "r00211"));
}

}  // namespace
}  // namespace phigate::storage
