// Store: durable storage of resource versions, API clients and wrapped data keys.
//
// The store never sees plaintext PHI: a resource version arrives as an opaque AEAD
// ciphertext (sealed by the fhir layer with AAD = type/id/version). Plaintext columns are
// only type, id, version, lastUpdated, deleted flag, key version and a global sequence
// number that orders history.
//
// Every mutating call returns only after its commit is durable (fsync). Implementations
// must be safe to call from many threads at once, and safe while another process (the
// `phigate clients add` CLI) writes to the same database.
//
// Errors (client-safe messages, never SQL or values): kInvalidArgument for a malformed
// record or query; kConflict as documented per call; kUnavailable ("storage busy",
// "storage unavailable") when the database is locked past the busy timeout, the disk is
// full or I/O fails (retry later); kInternal for damage or defects.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace phigate::storage {

struct VersionRecord {
  std::string type;
  std::string id;
  int64_t version = 0;          // 1, 2, 3... per (type, id)
  int64_t last_updated_ms = 0;  // UTC milliseconds
  bool deleted = false;         // a tombstone: ciphertext is empty
  uint32_t key_version = 0;     // DEK version that sealed ciphertext
  std::string ciphertext;       // nonce || ct || tag
  int64_t seq = 0;              // assigned by the store on append; global, increasing
};

struct HistoryQuery {
  std::string type;        // required
  std::string id;          // empty: type-level history
  int64_t before_seq = 0;  // 0: from the newest; else only records with seq < before_seq
  int limit = 50;          // at most this many records
};

struct ClientRecord {
  std::string client_id;
  std::string name;
  std::string secret_hash;  // Argon2id PHC string
  std::string scope;        // space-separated SMART scopes
  int64_t created_ms = 0;
  bool disabled = false;
};

struct DataKeyRecord {
  uint32_t version = 0;
  std::string wrapped;  // DEK wrapped by the KEK
};

class Store {
 public:
  virtual ~Store() = default;

  // The newest version of (type, id), tombstone included; nullopt if it never existed.
  virtual Result<std::optional<VersionRecord>> ReadCurrent(const std::string& type,
                                                           const std::string& id) = 0;
  virtual Result<std::optional<VersionRecord>> ReadVersion(const std::string& type,
                                                           const std::string& id,
                                                           int64_t version) = 0;
  // Appends `record` (its seq is ignored) if and only if the newest version of
  // (record.type, record.id) is `expected_version` (0: the resource must not exist yet).
  // Otherwise returns kConflict ("version conflict") and changes nothing. record.version
  // must be expected_version + 1, type and id non-empty, and a tombstone's ciphertext empty
  // (else kInvalidArgument). Durable when it returns ok. Returns the assigned seq.
  virtual Result<int64_t> AppendVersion(const VersionRecord& record, int64_t expected_version) = 0;
  // Versions newest first (by seq), for one resource or one type. limit 0 yields nothing;
  // a negative limit or before_seq, or an empty type, is kInvalidArgument.
  virtual Result<std::vector<VersionRecord>> History(const HistoryQuery& query) = 0;

  virtual Status PutClient(const ClientRecord& client) = 0;  // insert; kConflict if exists
  virtual Result<std::optional<ClientRecord>> GetClient(const std::string& client_id) = 0;

  virtual Result<std::vector<DataKeyRecord>> LoadDataKeys() = 0;
  virtual Status SaveDataKey(const DataKeyRecord& key) = 0;  // kConflict if version exists

  // True when the database answers (readiness).
  virtual bool Healthy() = 0;
};

}  // namespace phigate::storage
