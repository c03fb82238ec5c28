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

// Loads <path> (Ed25519 PKCS#8 PEM, 0600), creating it if absent.
Result<crypto::PrivateKey> LoadOrCreateAuditSigningKey(const std::string& path);

// The checkpoint line for (seq, hash, time, prev_sig), signed with `key`.
std::string CheckpointLine(const crypto::PrivateKey& key, int64_t seq, std::string_view hash,
                           int64_t time_ms, std::string_view prev_sig);

// VerifyChain plus the checkpoints in `checkpoints_text` (the content of checkpoints.log,
// or of a copy kept elsewhere), verified with `key` (the audit signing key's public half).
Result<VerifyResult> VerifyWithCheckpoints(Directory& dir, const crypto::Keyring& keyring,
                                           std::string_view checkpoints_text,
                                           const crypto::PublicKey& key);

}  // namespace phigate::audit
