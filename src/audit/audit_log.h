// AuditLog: the durable, fail-closed, tamper-evident store of the audit trail (issue 5
// §2, §3; DESIGN.md "Audit trail"). This is the storage core only: the events (IHE BALP
// content), signed checkpoints, purge, the reader API and the pipeline stage build on it.
//
// On disk (under <data_dir>/audit, directory 0700, files 0600): append-only segment files
// "segment-<first seq, 20 digits>.log", one record per line (JSON, ASCII only):
//   {"seq":N,"time":MS,"prev":"<hex>","kv":K,"ix":["<hex>",...],"ct":"<base64url>",
//    "hash":"<hex>"}
//   - seq: 1, 2, 3, ... across all segments, without gaps;
//   - time: UTC milliseconds when the record was sealed;
//   - prev: the previous record's hash (64 hex zeros for seq 1);
//   - kv: the keyring version of the ciphertext;
//   - ix: the record's lookup tags (event.h: keyed HMACs, 32 lower-case hex characters
//     each, in the clear so readers find records without decrypting them), [] for none;
//   - ct: the AES-256-GCM ciphertext (nonce || ct || tag) of the event under the keyring's
//     audit subkey (KeyPurpose::kAudit), AAD "audit/<seq>";
//   - hash: hex SHA-256 of "phigate-audit-1|<seq>|<time>|<prev>|<kv>|<ix>|<ct>" (<ix>: the
//     tags joined by ','), so it covers every field and the chain.
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
// Several processes (the server, and CLI commands that write administrative records
// while it runs: `phigate users add`, `clients baa`, `audit purge`) share one chain.
// Every write (a batch, a checkpoint, a purge, the recovery truncation at Open) happens
// under Directory::Lock, after re-reading the tail (as at Open) if another writer changed
// it since this one last held the lock. The check costs two syscalls per batch: the
// current segment's size (did someone append to it?) and whether the segment named after
// the next seq exists (did someone start a new one? any segment created after ours must
// be that one or follow it). The checkpoint signer likewise re-reads checkpoints.log when
// its size is not the one it last wrote. A writer never releases the lock while bytes it
// could not make durable are in a file: after a failed write it truncates them at once
// and, if that fails too, keeps the lock until a later attempt succeeds, so another
// writer never chains onto records that were never acknowledged (nor has its own records
// truncated). A crashed writer's partial line is truncated by the next one. A CLI process
// simply Opens an AuditLog, Appends and destroys it; the lock wait is bounded by
// `append_deadline_ms`.
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

  // The writers' lock (see "Several processes" above): an exclusive lock that excludes
  // every other Directory object on the same path, in this process or another (the
  // Posix one: flock of "<dir>/lock", 0600). Not a lock between threads sharing this
  // object. kUnavailable if not acquired within `timeout_ms`. Locking while locked is a
  // no-op. The defaults lock nothing: a wrapper must forward both to the real directory.
  virtual Status Lock(int64_t timeout_ms) {
    (void)timeout_ms;
    return Status::Ok();
  }
  virtual void Unlock() {}
  // Whether `name` exists (an error counts as existing: the caller then looks closer).
  // The default lists the directory; a wrapper should forward it.
  virtual bool Exists(const std::string& name);
  // Deletes `name` (purge); the caller syncs the directory afterwards. The default
  // cannot: a wrapper must forward it.
  virtual Status Remove(const std::string& name) {
    (void)name;
    return NotSupported("audit directory cannot remove files");
  }
};

// The directory `path` (created 0700 if absent).
Result<std::unique_ptr<Directory>> PosixDirectory(const std::string& path);

struct AuditLogOptions {
  int64_t segment_bytes = 64 * 1024 * 1024;
  int64_t append_deadline_ms = 2000;
  int max_batch = 4096;
  // Group commit under load: when the previous batch held more than one record, the next
  // batch's write and fsync begin no sooner than this long after the previous one's, so that
  // at most one fsync per interval serves every request meanwhile; unless max_batch records
  // wait, or no request that will append is still being processed (RequestStarted). After a
  // lone record (no load), the next record is written at once. 0: never wait.
  int64_t commit_interval_us = 0;
};

struct AuditLogStats {
  uint64_t records = 0;  // acknowledged (durable) records
  uint64_t syncs = 0;    // successful fsyncs of batches
  uint64_t failed_batches = 0;
  uint64_t checkpoints = 0;  // checkpoints written (durably) since Open
  uint64_t failed_checkpoints = 0;
};

using AppendCallback = std::function<void(Result<int64_t>)>;

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

  // Seals `event_json` (the event's record form, event.h EncodeEvent: the name predates it;
  // may hold PHI: it is only ever stored encrypted) as the next record,
  // with its lookup `tags` (event.h: hex HMACs, stored in the clear in "ix"), and returns
  // its seq once durable. kUnavailable as described above; kInvalidArgument if a tag is
  // not 32 lower-case hex characters.
  Result<int64_t> Append(std::string event_json, std::vector<std::string> tags = {});
  // The same without waiting: `done` is called exactly once, with the seq once the record
  // is durable or kUnavailable (failure, or the deadline passed first), from the writer's
  // or the deadline watcher's thread; it must be quick and must not call into this log.
  void AppendAsync(std::string event_json, std::vector<std::string> tags, AppendCallback done);

  // Group commit hint (see commit_interval_us): a request whose record will come through
  // AppendAsync has started (RequestStarted), or ended without one (RequestEnded); each
  // AppendAsync ends one too. When none is still being processed, nothing more is coming
  // soon, so the writer ends its interval wait and writes what is queued rather than
  // leaving those requests idle. Only a hint, used once RequestStarted was first called:
  // counts that drift cost waiting, never durability.
  void RequestStarted();
  void RequestEnded();

  bool Healthy() const;
  AuditLogStats stats() const;

 private:
  struct Impl;
  explicit AuditLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What one signed purge checkpoint (checkpoints.h, Purge) says was purged.
struct PurgeInfo {
  int64_t through_seq = 0;  // records 1..through_seq are gone
  std::string hash;         // the chain hash of record through_seq
  int64_t before_ms = 0;    // the purge's cut-off: every purged record is older
  int64_t time_ms = 0;      // when the purge ran
  int64_t segments = 0;     // segments and records this purge removed
  int64_t records = 0;
};

// Walks every segment in order and checks each record: its line parses, seq continues
// without gap or repeat, prev equals the previous hash, hash matches the fields, and the
// ciphertext opens under the keyring (AAD "audit/<seq>"). A trail whose first record is
// not seq 1 (purged, or its first segments deleted) fails here with "records before seq S
// were purged or removed: verify with the checkpoints" (first_bad_seq S):
// VerifyWithCheckpoints (checkpoints.h) tells a signed purge from a deletion.
struct VerifyResult {
  bool ok = true;
  int64_t records = 0;            // records that verified
  int64_t first_bad_seq = 0;      // when !ok: the seq where verification failed (the seq the
                                  // record should have had, for a missing or garbled line)
  std::string problem;            // when !ok: what is wrong, e.g. "hash mismatch", "chain broken",
                                  // "sequence gap", "cannot decrypt", "malformed record"
  std::vector<PurgeInfo> purges;  // VerifyWithCheckpoints: the signed purges, in order
};
Result<VerifyResult> VerifyChain(Directory& dir, const crypto::Keyring& keyring);
// The same, calling `on_record(seq, hash)` for each record that verified (in seq order).
Result<VerifyResult> VerifyChain(Directory& dir, const crypto::Keyring& keyring,
                                 const std::function<void(int64_t, std::string_view)>& on_record);

// Where the chain walk starts (VerifyWithCheckpoints after a purge): records up to
// `after_seq` were purged and record after_seq + 1 chains to `hash`. Segments that end at
// or before after_seq are not read (a purge interrupted after its checkpoint leaves them).
// `checkpoints_known`: missing first records are reported as "records missing at the
// start" (first_bad_seq: the first missing seq), as no signed purge explains them.
struct ChainStart {
  int64_t after_seq = 0;
  std::string hash;  // empty: 64 hex zeros
  bool checkpoints_known = false;
};
Result<VerifyResult> VerifyChainFrom(
    Directory& dir, const crypto::Keyring& keyring, const ChainStart& start,
    const std::function<void(int64_t, std::string_view)>& on_record);

// One segment, read whole and parsed but not verified (Purge).
struct SegmentSummary {
  std::string name;
  int64_t first_seq = 0;  // from the name
  int64_t records = 0;    // complete record lines
  int64_t last_seq = 0;   // 0 when empty
  int64_t newest_ms = 0;  // the largest record time
  std::string last_hash;  // of record last_seq
};
// The segment names in seq order, and the first seq a segment's name gives.
Result<std::vector<std::string>> SegmentNames(Directory& dir);
int64_t SegmentFirstSeq(std::string_view name);
// kInternal "malformed audit record" for a garbled or partial line.
Result<SegmentSummary> SummarizeSegment(Directory& dir, const std::string& name);

// One record line as stored, parsed but not verified (the readers: search, export).
struct StoredRecord {
  int64_t seq = 0;
  int64_t time_ms = 0;
  std::vector<std::string_view> tags;  // the "ix" tags
  std::string_view line;               // the whole line, for OpenRecord
};
// Calls `visit` for every complete record line, in seq order, skipping records before
// `from_seq` (whole segments that end before it are not read); stops when visit returns
// false. A final partial line (being written) is skipped. A malformed line: kInternal
// "malformed audit record" (run `phigate audit verify`).
Status ForEachRecord(Directory& dir, int64_t from_seq,
                     const std::function<bool(const StoredRecord&)>& visit);

// The plaintext event of one record line (for export and tests); errors as VerifyChain's
// problems.
Result<std::string> OpenRecord(std::string_view line, const crypto::Keyring& keyring);

}  // namespace phigate::audit
