// AuditLog: the durable, fail-closed, tamper-evident store of the audit trail (issue 5
// §2, §3; DESIGN.md "Audit trail"). This is the storage core only: the events (IHE BALP
// content), signed checkpoints, purge, the reader API and the pipeline stage build on it.
//
// On disk (under <data_dir>/audit, directory 0700, files 0600): append-only segment files
// "segment-<first seq, 20 digits>.log", one record per line (JSON, ASCII only):
//   {"seq":N,"time":MS,"prev":"<hex>","kv":K,"ct":"<base64url>","hash":"<hex>"}
//   - seq: 1, 2, 3, ... across all segments, without gaps;
//   - time: UTC milliseconds when the record was sealed;
//   - prev: the previous record's hash (64 hex zeros for seq 1);
//   - kv, ct: the keyring version and the AES-256-GCM ciphertext (nonce || ct || tag) of
//     the event under the keyring's audit subkey (KeyPurpose::kAudit), AAD "audit/<seq>";
//   - hash: hex SHA-256 of "phigate-audit-1|<seq>|<time>|<prev>|<kv>|<ct>", so it covers
//     every field and the chain.
// A new segment starts when the current one would pass `segment_bytes`.
//
// Durability and group commit: Append() hands its event to one writer thread and waits.
// The writer takes every pending event (up to max_batch), seals and chains them, writes
// them with one write and one fsync, and only then completes their Appends. No Append
// returns ok before the fsync that covers its record has succeeded.
//
// Failure (issue 5 §2): if the write or the fsync fails, or the batch is not durable
// within `append_deadline_ms` (a stalled disk), every Append of the batch gets
// kUnavailable ("audit trail unavailable") and the log becomes unhealthy. An fsync error is
// never retried into a success: the records of a failed batch are never acknowledged. To
// keep the chain exact, the next batch first truncates the segment back to its last
// durable length (and fsyncs that), then continues; while that fails, every Append fails
// fast and Healthy() is false. Service resumes by itself once the file system works.
//
// Recovery at Open: the last segment's records are read back; a final partial line (a
// crash mid-write: never acknowledged, since acknowledgment follows the fsync) is
// truncated off; seq and the chain continue from the last complete record.
//
// The file seam: every file operation goes through Directory / SegmentFile so tests inject
// write failures, fsync failures and stalls (PosixDirectory is the real one).
//
// Signed checkpoints (checkpoints.h, issue 5 §3): when Open is given a CheckpointSigner,
// the writer, after acknowledging a durable batch, appends a signed checkpoint when one is
// due; it also wakes while idle for the time trigger, and writes a last one at shutdown.
// A failed checkpoint write never fails the Appends of the batch (their records are
// already durable and acknowledged): it makes Healthy() false until a later checkpoint
// succeeds, and is retried after every batch and every `every_ms` while idle.
//
// Thread-safety: Append and Healthy may be called from any thread; one writer thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "crypto/keyring.h"

namespace phigate::audit {

class CheckpointSigner;  // checkpoints.h

class SegmentFile {
 public:
  virtual ~SegmentFile() = default;
  virtual Status Append(std::string_view bytes) = 0;  // one write (retried on EINTR/short)
  virtual Status Sync() = 0;                          // fdatasync/fsync
  virtual Status Truncate(int64_t size) = 0;          // ftruncate
  virtual int64_t Size() const = 0;
};

class Directory {
 public:
  virtual ~Directory() = default;
  // Creates the file (0600) if absent; positioned for append.
  virtual Result<std::unique_ptr<SegmentFile>> OpenForAppend(const std::string& name) = 0;
  virtual Result<std::vector<std::string>> List() = 0;  // file names, sorted
  virtual Result<std::string> ReadAll(const std::string& name) = 0;
  virtual Status SyncDirectory() = 0;  // makes a new file's directory entry durable
};

// The directory `path` (created 0700 if absent).
Result<std::unique_ptr<Directory>> PosixDirectory(const std::string& path);

struct AuditLogOptions {
  int64_t segment_bytes = 64 * 1024 * 1024;
  int64_t append_deadline_ms = 2000;
  int max_batch = 4096;
};

struct AuditLogStats {
  uint64_t records = 0;  // acknowledged (durable) records
  uint64_t syncs = 0;    // successful fsyncs of batches
  uint64_t failed_batches = 0;
  uint64_t checkpoints = 0;  // checkpoints written (durably) since Open
  uint64_t failed_checkpoints = 0;
};

class AuditLog {
 public:
  static Result<std::unique_ptr<AuditLog>> Open(std::unique_ptr<Directory> dir,
                                                const crypto::Keyring& keyring, const Clock& clock,
                                                AuditLogOptions options = {});
  // With signed checkpoints (`signer` may be null: none).
  static Result<std::unique_ptr<AuditLog>> Open(std::unique_ptr<Directory> dir,
                                                const crypto::Keyring& keyring, const Clock& clock,
                                                AuditLogOptions options,
                                                std::unique_ptr<CheckpointSigner> signer);
  ~AuditLog();  // completes pending Appends (durably, or with kUnavailable), joins the writer
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Seals `event_json` (may hold PHI: it is only ever stored encrypted) as the next record
  // and returns its seq once durable. kUnavailable as described above.
  Result<int64_t> Append(std::string event_json);

  bool Healthy() const;
  AuditLogStats stats() const;

 private:
  struct Impl;
  explicit AuditLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Walks every segment in order and checks each record: its line parses, seq continues
// without gap or repeat, prev equals the previous hash, hash matches the fields, and the
// ciphertext opens under the keyring (AAD "audit/<seq>").
struct VerifyResult {
  bool ok = true;
  int64_t records = 0;        // records that verified
  int64_t first_bad_seq = 0;  // when !ok: the seq where verification failed (the seq the
                              // record should have had, for a missing or garbled line)
  std::string problem;        // when !ok: what is wrong, e.g. "hash mismatch", "chain broken",
                              // "sequence gap", "cannot decrypt", "malformed record"
};
Result<VerifyResult> VerifyChain(Directory& dir, const crypto::Keyring& keyring);
// The same, calling `on_record(seq, hash)` for each record that verified (in seq order).
Result<VerifyResult> VerifyChain(Directory& dir, const crypto::Keyring& keyring,
                                 const std::function<void(int64_t, std::string_view)>& on_record);

// The plaintext event of one record line (for export and tests); errors as VerifyChain's
// problems.
Result<std::string> OpenRecord(std::string_view line, const crypto::Keyring& keyring);

}  // namespace phigate::audit
