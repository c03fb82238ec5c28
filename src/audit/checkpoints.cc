// Signed checkpoints of the audit trail (see checkpoints.h; issue 5 §3).
#include "audit/checkpoints.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <unordered_map>
#include <utility>
#include <vector>

#include "audit/line_parser.h"
#include "core/base64.h"
#include "crypto/key_file.h"

namespace phigate::audit {
namespace {

// Domain separation of the signed message: a checkpoint signature can never be replayed
// as a signature over anything else made with the same key.
constexpr std::string_view kSignDomain = "phigate-audit-checkpoint-1";
constexpr size_t kHashHexChars = 64;
constexpr size_t kEd25519SignatureBytes = 64;

std::string SignedMessage(int64_t seq, std::string_view hash, int64_t time_ms,
                          std::string_view prev_sig) {
  std::string msg(kSignDomain);
  msg += '|';
  msg += std::to_string(seq);
  msg += '|';
  msg += hash;
  msg += '|';
  msg += std::to_string(time_ms);
  msg += '|';
  msg += prev_sig;
  return msg;
}

struct Checkpoint {
  int64_t seq = 0;
  std::string hash;
  int64_t time = 0;
  std::string prev_sig;
  std::string sig;
};

// `line` without its newline.
std::optional<Checkpoint> ParseCheckpoint(std::string_view line) {
  Checkpoint c;
  LineParser p(line);
  if (!p.Literal("{\"seq\":") || !p.Number(&c.seq) || c.seq < 1) return std::nullopt;
  if (!p.Literal(",\"hash\":\"") || !p.LowerHex(kHashHexChars, &c.hash)) return std::nullopt;
  if (!p.Literal("\",\"time\":") || !p.Number(&c.time)) return std::nullopt;
  if (!p.Literal(",\"prev_sig\":\"") || !p.Base64Url(&c.prev_sig, /*allow_empty=*/true))
    return std::nullopt;
  if (!p.Literal("\",\"sig\":\"") || !p.Base64Url(&c.sig, /*allow_empty=*/false))
    return std::nullopt;
  if (!p.Literal("\"}") || !p.AtEnd()) return std::nullopt;
  return c;
}

bool SignatureValid(const Checkpoint& c, const crypto::PublicKey& key) {
  std::optional<std::string> sig = Base64UrlDecode(c.sig);
  if (!sig || sig->size() != kEd25519SignatureBytes) return false;
  return key.Verify(crypto::JwsAlg::kEdDSA, SignedMessage(c.seq, c.hash, c.time, c.prev_sig), *sig);
}

}  // namespace

// ---- Signing key ----

Result<crypto::PrivateKey> LoadOrCreateAuditSigningKey(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return Unavailable("cannot stat audit signing key " + path);
    ASSIGN_OR_RETURN(crypto::PrivateKey key, crypto::PrivateKey::Generate(crypto::JwsAlg::kEdDSA));
    RETURN_IF_ERROR(crypto::WriteSecretFile(path, key.ToPem()));
    return key;
  }
  ASSIGN_OR_RETURN(std::string pem, crypto::ReadSecretFile(path));
  Result<crypto::PrivateKey> key = crypto::PrivateKey::FromPem(pem);
  // The PEM itself is a secret: never echo it or the parser's view of it.
  if (!key.ok()) return InvalidArgument("audit signing key " + path + " is not a PKCS#8 PEM key");
  if (key->alg() != crypto::JwsAlg::kEdDSA) {
    return InvalidArgument("audit signing key " + path + " is not an Ed25519 key");
  }
  return key;
}

std::string CheckpointLine(const crypto::PrivateKey& key, int64_t seq, std::string_view hash,
                           int64_t time_ms, std::string_view prev_sig) {
  std::string sig = Base64UrlEncode(key.Sign(SignedMessage(seq, hash, time_ms, prev_sig)));
  return "{\"seq\":" + std::to_string(seq) + ",\"hash\":\"" + std::string(hash) +
         "\",\"time\":" + std::to_string(time_ms) + ",\"prev_sig\":\"" + std::string(prev_sig) +
         "\",\"sig\":\"" + sig + "\"}\n";
}

// ---- The writer's signer ----

CheckpointSigner::CheckpointSigner(crypto::PrivateKey key, CheckpointOptions options)
    : key_(std::move(key)), options_(options) {}

Result<std::unique_ptr<CheckpointSigner>> CheckpointSigner::Create(crypto::PrivateKey key,
                                                                   CheckpointOptions options) {
  if (key.alg() != crypto::JwsAlg::kEdDSA) {
    return InvalidArgument("the audit signing key must be Ed25519");
  }
  if (options.every_records <= 0 || options.every_ms <= 0) {
    return InvalidArgument("checkpoint options must be positive");
  }
  return std::unique_ptr<CheckpointSigner>(new CheckpointSigner(std::move(key), options));
}

Status CheckpointSigner::OpenFile(Directory& dir) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, dir.List());
  bool existed = false;
  for (const std::string& name : names) existed = existed || name == kFileName;
  ASSIGN_OR_RETURN(file_, dir.OpenForAppend(std::string(kFileName)));
  // A new file's directory entry must be durable before a checkpoint counts as written.
  if (!existed) RETURN_IF_ERROR(dir.SyncDirectory());
  return Status::Ok();
}

Status CheckpointSigner::Recover(Directory& dir, int64_t last_seq, int64_t now_ms) {
  RETURN_IF_ERROR(OpenFile(dir));
  ASSIGN_OR_RETURN(std::string text, dir.ReadAll(std::string(kFileName)));
  size_t newline = text.rfind('\n');
  int64_t complete = newline == std::string::npos ? 0 : static_cast<int64_t>(newline) + 1;
  if (complete < static_cast<int64_t>(text.size())) {
    RETURN_IF_ERROR(file_->Truncate(complete));
    RETURN_IF_ERROR(file_->Sync());
  }
  durable_size_ = complete;
  checkpointed_ms_ = now_ms;
  if (complete == 0) return Status::Ok();

  std::string_view lines = std::string_view(text).substr(0, static_cast<size_t>(complete) - 1);
  size_t start = lines.rfind('\n');
  std::string_view last = start == std::string_view::npos ? lines : lines.substr(start + 1);
  std::optional<Checkpoint> c = ParseCheckpoint(last);
  if (!c) return Internal("audit checkpoints tail is corrupt");
  if (c->seq > last_seq) return Internal("audit records missing before a checkpoint");
  checkpointed_seq_ = c->seq;
  checkpointed_ms_ = c->time;
  prev_sig_ = std::move(c->sig);
  return Status::Ok();
}

bool CheckpointSigner::Due(int64_t last_seq, int64_t now_ms) const {
  if (!Pending(last_seq)) return false;
  return failed_ || last_seq - checkpointed_seq_ >= options_.every_records ||
         now_ms - checkpointed_ms_ >= options_.every_ms;
}

int64_t CheckpointSigner::MillisUntilDue(int64_t now_ms) const {
  // After a failure: retry every every_ms (in the writer's real-time wait), never hot.
  if (failed_) return options_.every_ms;
  int64_t left = checkpointed_ms_ + options_.every_ms - now_ms;
  return std::clamp<int64_t>(left, 1, options_.every_ms);
}

Status CheckpointSigner::Write(Directory& dir, int64_t seq, std::string_view hash, int64_t now_ms) {
  failed_ = true;  // until this write is durable
  if (file_ == nullptr) RETURN_IF_ERROR(OpenFile(dir));
  if (dirty_) {
    RETURN_IF_ERROR(file_->Truncate(durable_size_));
    RETURN_IF_ERROR(file_->Sync());
    dirty_ = false;
  }
  std::string line = CheckpointLine(key_, seq, hash, now_ms, prev_sig_);
  dirty_ = true;
  RETURN_IF_ERROR(file_->Append(line));
  RETURN_IF_ERROR(file_->Sync());
  dirty_ = false;
  failed_ = false;
  durable_size_ += static_cast<int64_t>(line.size());
  checkpointed_seq_ = seq;
  checkpointed_ms_ = now_ms;
  // The signature is the line's last field: "...,\"sig\":\"<sig>\"}\n".
  size_t sig_end = line.size() - 3;
  size_t sig_start = line.rfind('"', sig_end - 1) + 1;
  prev_sig_ = line.substr(sig_start, sig_end - sig_start);
  return Status::Ok();
}

// ---- Verification ----

Result<VerifyResult> VerifyWithCheckpoints(Directory& dir, const crypto::Keyring& keyring,
                                           std::string_view checkpoints_text,
                                           const crypto::PublicKey& key) {
  // Parse first, so the chain walk keeps only the hashes the checkpoints name.
  std::vector<std::optional<Checkpoint>> checkpoints;
  std::string_view rest = checkpoints_text;
  while (!rest.empty()) {
    size_t newline = rest.find('\n');
    if (newline == std::string_view::npos) {
      checkpoints.push_back(std::nullopt);  // a partial line is never a written checkpoint
      break;
    }
    checkpoints.push_back(ParseCheckpoint(rest.substr(0, newline)));
    rest.remove_prefix(newline + 1);
  }
  std::unordered_map<int64_t, std::string> hashes;
  for (const std::optional<Checkpoint>& c : checkpoints) {
    if (c) hashes.emplace(c->seq, std::string());
  }

  // The records come first: a damaged record is reported where it is, even when a
  // checkpoint covering it would also disagree.
  ASSIGN_OR_RETURN(VerifyResult result,
                   VerifyChain(dir, keyring, [&](int64_t seq, std::string_view hash) {
                     auto it = hashes.find(seq);
                     if (it != hashes.end()) it->second.assign(hash);
                   }));
  if (!result.ok) return result;

  auto fail = [&](int64_t seq, std::string problem) {
    result.ok = false;
    result.first_bad_seq = seq;
    result.problem = std::move(problem);
    return result;
  };
  std::string prev_sig;
  int64_t prev_seq = 0;
  for (const std::optional<Checkpoint>& c : checkpoints) {
    // A garbled line has no trustworthy seq: the one after the last good checkpoint.
    if (!c) return fail(prev_seq + 1, "malformed checkpoint");
    if (!SignatureValid(*c, key)) return fail(c->seq, "bad checkpoint signature");
    // A removed (or reordered) checkpoint breaks the signature chain (issue 5 §3).
    if (c->prev_sig != prev_sig) return fail(c->seq, "checkpoint chain broken");
    if (c->seq <= prev_seq) return fail(c->seq, "checkpoint out of order");
    if (c->seq > result.records) return fail(c->seq, "records missing before a checkpoint");
    if (hashes[c->seq] != c->hash) return fail(c->seq, "checkpoint hash mismatch");
    prev_sig = c->sig;
    prev_seq = c->seq;
  }
  return result;
}

}  // namespace phigate::audit
