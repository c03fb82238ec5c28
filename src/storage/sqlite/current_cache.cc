#include "storage/sqlite/current_cache.h"

#include <functional>

namespace phigate::storage::sqlite {

namespace {
// Map node, key and record bookkeeping, roughly: what an entry costs beyond its ciphertext.
constexpr int64_t kEntryOverhead = 160;

int64_t Cost(const std::string& key, const VersionRecord& record) {
  return kEntryOverhead + static_cast<int64_t>(key.size() + record.ciphertext.size());
}
}  // namespace

CurrentVersionCache::CurrentVersionCache(int64_t max_bytes)
    : shard_budget_(max_bytes / static_cast<int64_t>(kShards)) {}

std::string CurrentVersionCache::Key(const std::string& type, const std::string& id) {
  std::string key;
  key.reserve(type.size() + id.size() + 1);
  key.append(type).append("/").append(id);
  return key;
}

CurrentVersionCache::Shard& CurrentVersionCache::ShardFor(const std::string& key) const {
  return shards_[std::hash<std::string>{}(key) % kShards];
}

std::optional<VersionRecord> CurrentVersionCache::Get(const std::string& type,
                                                      const std::string& id) const {
  if (!enabled()) return std::nullopt;
  const std::string key = Key(type, id);
  Shard& shard = ShardFor(key);
  std::lock_guard lock(shard.mutex);
  auto it = shard.entries.find(key);
  if (it == shard.entries.end()) return std::nullopt;
  return it->second;
}

uint64_t CurrentVersionCache::Generation(const std::string& type, const std::string& id) const {
  if (!enabled()) return 0;
  Shard& shard = ShardFor(Key(type, id));
  std::lock_guard lock(shard.mutex);
  return shard.generation;
}

void CurrentVersionCache::InsertLocked(Shard& shard, std::string key,
                                       const VersionRecord& record) const {
  if (auto it = shard.entries.find(key); it != shard.entries.end()) {
    if (it->second.version > record.version) return;
    // Dropped before the size check: a version too large to hold must still invalidate
    // the older one, or reads (and If-Match checks) would see a stale version.
    shard.bytes -= Cost(it->first, it->second);
    shard.entries.erase(it);
  }
  const int64_t cost = Cost(key, record);
  if (cost > shard_budget_) return;  // larger than a whole shard: not worth holding
  // Evict arbitrary entries until the new one fits: cheap, and a miss only costs a query.
  while (!shard.entries.empty() && shard.bytes + cost > shard_budget_) {
    auto victim = shard.entries.begin();
    shard.bytes -= Cost(victim->first, victim->second);
    shard.entries.erase(victim);
  }
  shard.bytes += cost;
  shard.entries.emplace(std::move(key), record);
}

void CurrentVersionCache::Fill(const VersionRecord& record, uint64_t generation) {
  if (!enabled()) return;
  std::string key = Key(record.type, record.id);
  Shard& shard = ShardFor(key);
  std::lock_guard lock(shard.mutex);
  if (shard.generation != generation) return;  // a write raced this read: do not install
  InsertLocked(shard, std::move(key), record);
}

void CurrentVersionCache::Written(const VersionRecord& record) {
  if (!enabled()) return;
  std::string key = Key(record.type, record.id);
  Shard& shard = ShardFor(key);
  std::lock_guard lock(shard.mutex);
  ++shard.generation;
  InsertLocked(shard, std::move(key), record);
}

}  // namespace phigate::storage::sqlite
