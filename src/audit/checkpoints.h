// Signed checkpoints of the audit trail (issue 5 §3; DESIGN.md "Audit trail"). Every
// `every_records` records or `every_ms` milliseconds (whichever comes first, and only when
// records were added since the last one), the AuditLog writer signs, after a durable
// batch, the seq and chain hash of the last durable record with the audit signing key
// (Ed25519, its own key: <data_dir>/keys/audit-signing.pem, 0600, never the token key),
// chaining the previous checkpoint's signature, and appends it as one line to
// <audit dir>/checkpoints.log (fsynced) so the file can be copied off the machine:
//   {"seq":N,"hash":"<hex>","time":MS,"prev_sig":"<base64url, empty for the first>",
//    "sig":"<base64url Ed25519 signature>"}
// Signed message: "phigate-audit-checkpoint-1|<seq>|<hash>|<time>|<prev_sig>".
// A failed checkpoint write makes the log unhealthy like a failed record write.
//
// Verification with checkpoints (VerifyWithCheckpoints) adds to VerifyChain: every
// checkpoint line parses and its signature verifies under the given public key; each
// chains the previous one's signature; seq increases; the chain hash of the record with
// that seq equals the checkpoint's hash ("checkpoint hash mismatch": a segment replaced by
// a re-hashed forgery is caught here); and no checkpoint names a seq beyond the last
// record ("records missing before a checkpoint": a tail truncated before the last
// checkpoint). A checkpoint signed by another key: "bad checkpoint signature".
// first_bad_seq is the checkpoint's seq for checkpoint problems.
//
// Thread-safety: CheckpointSigner is used by the AuditLog writer thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "audit/audit_log.h"
#include "core/status.h"
#include "crypto/public_key.h"

namespace phigate::audit {

struct CheckpointOptions {
  int64_t every_records = 1000;
  int64_t every_ms = 1000;
};

// The checkpoint state of one AuditLog: hand it to AuditLog::Open, which calls Recover
// and then, from its writer thread only, the rest.
class CheckpointSigner {
 public:
  static constexpr std::string_view kFileName = "checkpoints.log";

  // kInvalidArgument unless `key` is Ed25519 and both options are positive.
  static Result<std::unique_ptr<CheckpointSigner>> Create(crypto::PrivateKey key,
                                                          CheckpointOptions options);

  // Reads the last checkpoint of checkpoints.log in `dir` (its signature chains the next
  // one) after truncating a partial last line (a crash mid-write: never fsynced). Records
  // up to `last_seq` exist; kInternal if the last checkpoint is garbled or names a later
  // record (the trail lost records a checkpoint covered: refuse to extend it).
  Status Recover(Directory& dir, int64_t last_seq, int64_t now_ms);

  // Records after the last checkpoint exist (`last_seq` is the last durable record).
  bool Pending(int64_t last_seq) const { return last_seq > checkpointed_seq_; }
  // A checkpoint is due: pending, and every_records reached, every_ms elapsed since the
  // last one, or the last attempt failed.
  bool Due(int64_t last_seq, int64_t now_ms) const;
  // Milliseconds until the time trigger (the writer's idle wait; at least 1).
  int64_t MillisUntilDue(int64_t now_ms) const;

  // Under the writers' lock (audit_log.h "Several processes"), before Write: drops this
  // signer's own unsynced bytes, and re-reads the last checkpoint if another writer
  // appended to checkpoints.log since (one fstat when nobody did). Errors as Recover's.
  Status Refresh(Directory& dir, int64_t last_seq);

  // Appends and fsyncs the checkpoint of the durable record (seq, hash). On failure the
  // state is unchanged, the bytes it left are truncated at once if possible (else by the
  // next Refresh or Write), and Due stays true so it is retried.
  Status Write(Directory& dir, int64_t seq, std::string_view hash, int64_t now_ms);

  // Bytes this signer could not make durable may remain in checkpoints.log: the writer
  // keeps the lock until they are gone.
  bool HoldsResidue() const { return dirty_; }

 private:
  CheckpointSigner(crypto::PrivateKey key, CheckpointOptions options);
  Status OpenFile(Directory& dir);
  // Reads checkpoints.log's last checkpoint into the state, truncating a partial line.
  Status ReadTail(Directory& dir, int64_t last_seq, int64_t now_ms);

  crypto::PrivateKey key_;
  const CheckpointOptions options_;
  std::unique_ptr<SegmentFile> file_;
  int64_t durable_size_ = 0;
  bool dirty_ = false;  // bytes past durable_size_ may exist
  bool failed_ = false;
  int64_t checkpointed_seq_ = 0;
  int64_t checkpointed_ms_ = 0;  // time of the last checkpoint (or of Recover)
  std::string prev_sig_;         // base64url signature of the last checkpoint
};

// Loads <path> (Ed25519 PKCS#8 PEM, 0600), creating it if absent.
Result<crypto::PrivateKey> LoadOrCreateAuditSigningKey(const std::string& path);

// The checkpoint line for (seq, hash, time, prev_sig), signed with `key`.
std::string CheckpointLine(const crypto::PrivateKey& key, int64_t seq, std::string_view hash,
                           int64_t time_ms, std::string_view prev_sig);

// Purge (issue 5 §3 "Retention"): under the writers' lock, removes every whole segment
// whose records are all older than `before_ms`, oldest first (a prefix of the chain) and
// never the last (current) segment. Before removing anything it appends to
// checkpoints.log, chained like a checkpoint (prev_sig = the last line's sig) and fsynced,
// a signed purge checkpoint, signed over "phigate-audit-purge-1|S|hash|before|time|
// segments|records|prev_sig":
//   {"purge":S,"hash":"<hex>","before":MS,"time":MS,"segments":N,"records":R,
//    "prev_sig":"<base64url>","sig":"<base64url>"}
// (S: the last purged seq, hash: its chain hash). Only once that line is durable are the
// segments removed (then the directory fsynced); a crash in between leaves segments the
// line covers, which verification skips and the next Purge removes. Nothing to purge: no
// line, a zero result. Refusing to purge records younger than the retention is the
// caller's (the CLI's) job. `key` must be the audit signing key.
struct PurgeResult {
  int64_t segments = 0;   // segments removed
  int64_t records = 0;    // records removed
  int64_t first_seq = 0;  // the seq range removed (0, 0 when nothing)
  int64_t last_seq = 0;
};
inline constexpr int64_t kPurgeLockTimeoutMs = 10'000;
Result<PurgeResult> Purge(Directory& dir, const crypto::PrivateKey& key, int64_t before_ms,
                          int64_t now_ms);

// VerifyChain plus the checkpoints in `checkpoints_text` (the content of checkpoints.log,
// or of a copy kept elsewhere), verified with `key` (the audit signing key's public half).
// The records are checked first (a damaged record is reported as VerifyChain reports it),
// then the checkpoints in file order, each: "malformed checkpoint" (first_bad_seq: the
// seq after the previous good checkpoint; a final partial line counts), "bad checkpoint
// signature", "checkpoint chain broken" (prev_sig is not the previous line's sig: a
// removed, inserted or reordered checkpoint), "checkpoint out of order", "records missing
// before a checkpoint", "checkpoint hash mismatch". Purge lines are checked the same way
// (signature, chain; first_bad_seq their S) and listed in `purges`; the records are walked
// from after the last purge (its S + 1, chaining to its hash), so a purged trail verifies,
// while first records missing without a purge line fail "records missing at the start"
// (first_bad_seq 1). Checkpoints of purged records are checked for signature and chain
// only. Removing the newest checkpoints of
// the live file is not detectable from the file alone: that is what the copy kept
// elsewhere is for.
Result<VerifyResult> VerifyWithCheckpoints(Directory& dir, const crypto::Keyring& keyring,
                                           std::string_view checkpoints_text,
                                           const crypto::PublicKey& key);

}  // namespace phigate::audit
