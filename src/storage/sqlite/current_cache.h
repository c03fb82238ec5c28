// CurrentVersionCache: the newest version record of recently read or written resources,
// so that a read of a hot resource needs no SQLite transaction (no file locks, no syscalls).
//
// It holds ciphertext only, exactly as stored; plaintext never enters it. It is coherent
// because every resource write to the database goes through the one SqliteStore of the
// serving process (`phigate serve` holds the data directory's lock; the CLI writes only
// clients and keys), and AppendVersion updates the cache after its commit. A reader that
// filled the cache from SQLite while a write was in flight cannot install a stale record:
// each shard has a generation that every write bumps, and a fill only lands if the
// generation it started under is unchanged.
//
// Thread-safety: all methods may be called concurrently; each shard has its own mutex.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "storage/store.h"

namespace phigate::storage::sqlite {

class CurrentVersionCache {
 public:
  // `max_bytes` bounds the ciphertext bytes held (plus a per-entry overhead); 0 disables.
  explicit CurrentVersionCache(int64_t max_bytes);

  bool enabled() const { return shard_budget_ > 0; }
  std::optional<VersionRecord> Get(const std::string& type, const std::string& id) const;
  // Call before reading from SQLite; pass the result to Fill.
  uint64_t Generation(const std::string& type, const std::string& id) const;
  // Installs a record read from SQLite unless a write happened since `generation`.
  void Fill(const VersionRecord& record, uint64_t generation);
  // Installs a record just committed by this process.
  void Written(const VersionRecord& record);

 private:
  struct Shard {
    mutable std::mutex mutex;  // guards everything below
    std::unordered_map<std::string, VersionRecord> entries;
    int64_t bytes = 0;
    uint64_t generation = 0;
  };
  static constexpr size_t kShards = 16;
  static std::string Key(const std::string& type, const std::string& id);
  Shard& ShardFor(const std::string& key) const;
  void InsertLocked(Shard& shard, std::string key, const VersionRecord& record) const;

  int64_t shard_budget_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace phigate::storage::sqlite
