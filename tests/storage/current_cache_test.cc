#include "storage/sqlite/current_cache.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "storage/sqlite/sqlite_store.h"

namespace phigate::storage::sqlite {
namespace {

VersionRecord Rec(const std::string& id, int64_t version, size_t bytes = 10) {
  VersionRecord r;
  r.type = "Patient";
  r.id = id;
  r.version = version;
  r.ciphertext = std::string(bytes, 'c');
  return r;
}

TEST(CurrentVersionCacheTest, DisabledCacheHoldsNothing) {
  CurrentVersionCache cache(0);
  EXPECT_FALSE(cache.enabled());
  cache.Written(Rec("a", 1));
  EXPECT_FALSE(cache.Get("Patient", "a").has_value());
}

TEST(CurrentVersionCacheTest, WrittenAndFilledRecordsAreReturned) {
  CurrentVersionCache cache(1 << 20);
  cache.Written(Rec("a", 1));
  ASSERT_TRUE(cache.Get("Patient", "a").has_value());
  EXPECT_EQ(cache.Get("Patient", "a")->version, 1);
  cache.Fill(Rec("b", 3), cache.Generation("Patient", "b"));
  EXPECT_EQ(cache.Get("Patient", "b")->version, 3);
  EXPECT_FALSE(cache.Get("Observation", "a").has_value());
}

// Regression guard for the read/write race: a reader that read version 1 from SQLite
// before a write of version 2 committed must not install version 1 afterwards, even if
// the written entry was evicted in between.
TEST(CurrentVersionCacheTest, FillAfterAConcurrentWriteIsDropped) {
  CurrentVersionCache cache(1 << 20);
  const uint64_t generation = cache.Generation("Patient", "a");  // reader starts
  cache.Written(Rec("a", 2));                                    // writer commits v2
  cache.Fill(Rec("a", 1), generation);                           // reader finishes with v1
  EXPECT_EQ(cache.Get("Patient", "a")->version, 2);

  CurrentVersionCache tiny(16 * 200);  // one entry per shard at most
  const uint64_t g2 = tiny.Generation("Patient", "a");
  tiny.Written(Rec("a", 2));
  tiny.Written(Rec("a", 3));
  tiny.Fill(Rec("a", 1), g2);
  EXPECT_EQ(tiny.Get("Patient", "a")->version, 3);
}

TEST(CurrentVersionCacheTest, NeverReplacesANewerVersion) {
  CurrentVersionCache cache(1 << 20);
  cache.Written(Rec("a", 5));
  cache.Fill(Rec("a", 4), cache.Generation("Patient", "a"));
  EXPECT_EQ(cache.Get("Patient", "a")->version, 5);
}

TEST(CurrentVersionCacheTest, StaysWithinItsByteBudget) {
  // 16 shards of 1 KiB: entries of ~700 bytes fit one per shard.
  CurrentVersionCache cache(16 * 1024);
  for (int i = 0; i < 1000; ++i) cache.Written(Rec("p" + std::to_string(i), 1, 500));
  int held = 0;
  for (int i = 0; i < 1000; ++i) held += cache.Get("Patient", "p" + std::to_string(i)) ? 1 : 0;
  EXPECT_GT(held, 0);
  EXPECT_LE(held, 16);
  // A record larger than a shard is never held.
  cache.Written(Rec("huge", 1, 4096));
  EXPECT_FALSE(cache.Get("Patient", "huge").has_value());
}

// Regression: writing a version too large to cache left the previous (small) version in
// the cache, so reads returned it and every If-Match/update check saw a stale version.
TEST(CurrentVersionCacheTest, AVersionTooLargeToHoldInvalidatesTheOlderOne) {
  CurrentVersionCache cache(16 * 1024);
  cache.Written(Rec("a", 1, 10));
  ASSERT_EQ(cache.Get("Patient", "a")->version, 1);
  cache.Written(Rec("a", 2, 4096));
  EXPECT_FALSE(cache.Get("Patient", "a").has_value());
}

TEST(CurrentVersionCacheTest, StoreWithCacheSeesItsOwnWrites) {
  char tmpl[] = "/tmp/phigate-cache-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  SqliteOptions options;
  options.path = dir + "/db";
  options.current_cache_bytes = 1 << 20;
  auto store = std::move(OpenSqliteStore(options)).value();
  ASSERT_TRUE(store->AppendVersion(Rec("a", 1), 0).ok());
  EXPECT_EQ((*store->ReadCurrent("Patient", "a"))->version, 1);
  VersionRecord v2 = Rec("a", 2);
  v2.ciphertext = "second";
  ASSERT_TRUE(store->AppendVersion(v2, 1).ok());
  auto current = store->ReadCurrent("Patient", "a");
  ASSERT_TRUE(current.ok() && current->has_value());
  EXPECT_EQ((*current)->version, 2);
  EXPECT_EQ((*current)->ciphertext, "second");
  EXPECT_GT((*current)->seq, 0);
  // A failed (conflicting) append leaves the cached record alone.
  EXPECT_EQ(store->AppendVersion(Rec("a", 2), 1).status().code(), StatusCode::kConflict);
  EXPECT_EQ((*store->ReadCurrent("Patient", "a"))->ciphertext, "second");
  store.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace phigate::storage::sqlite
