// Signed checkpoints of the audit trail (see checkpoints.h; issue 5 §3).
#include "audit/checkpoints.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <optional>
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

bool SignatureValid(std::string_view b64_sig, std::string_view message,
                    const crypto::PublicKey& key) {
  std::optional<std::string> sig = Base64UrlDecode(b64_sig);
  if (!sig || sig->size() != kEd25519SignatureBytes) return false;
  return key.Verify(crypto::JwsAlg::kEdDSA, message, *sig);
}

bool SignatureValid(const Checkpoint& c, const crypto::PublicKey& key) {
  return SignatureValid(c.sig, SignedMessage(c.seq, c.hash, c.time, c.prev_sig), key);
}

// ---- Purge checkpoints ----
// {"purge":S,"hash":"<hex>","before":MS,"time":MS,"segments":N,"records":R,
//  "prev_sig":"<base64url>","sig":"<base64url>"}, signed over
// "phigate-audit-purge-1|S|hash|before|time|segments|records|prev_sig": its own domain,
// so a purge signature can never pass for a checkpoint's or the reverse.
constexpr std::string_view kPurgeDomain = "phigate-audit-purge-1";

struct PurgeLine {
  PurgeInfo info;
  std::string prev_sig;
  std::string sig;
};

std::string PurgeMessage(const PurgeInfo& p, std::string_view prev_sig) {
  return std::string(kPurgeDomain) + "|" + std::to_string(p.through_seq) + "|" + p.hash + "|" +
         std::to_string(p.before_ms) + "|" + std::to_string(p.time_ms) + "|" +
         std::to_string(p.segments) + "|" + std::to_string(p.records) + "|" + std::string(prev_sig);
}

std::string FormatPurgeLine(const crypto::PrivateKey& key, const PurgeInfo& p,
                            std::string_view prev_sig) {
  std::string sig = Base64UrlEncode(key.Sign(PurgeMessage(p, prev_sig)));
  return "{\"purge\":" + std::to_string(p.through_seq) + ",\"hash\":\"" + p.hash +
         "\",\"before\":" + std::to_string(p.before_ms) + ",\"time\":" + std::to_string(p.time_ms) +
         ",\"segments\":" + std::to_string(p.segments) +
         ",\"records\":" + std::to_string(p.records) + ",\"prev_sig\":\"" + std::string(prev_sig) +
         "\",\"sig\":\"" + sig + "\"}\n";
}

std::optional<PurgeLine> ParsePurge(std::string_view line) {
  PurgeLine l;
  PurgeInfo& p = l.info;
  LineParser r(line);
  if (!r.Literal("{\"purge\":") || !r.Number(&p.through_seq) || p.through_seq < 1) {
    return std::nullopt;
  }
  if (!r.Literal(",\"hash\":\"") || !r.LowerHex(kHashHexChars, &p.hash)) return std::nullopt;
  if (!r.Literal("\",\"before\":") || !r.Number(&p.before_ms)) return std::nullopt;
  if (!r.Literal(",\"time\":") || !r.Number(&p.time_ms)) return std::nullopt;
  if (!r.Literal(",\"segments\":") || !r.Number(&p.segments)) return std::nullopt;
  if (!r.Literal(",\"records\":") || !r.Number(&p.records)) return std::nullopt;
  if (!r.Literal(",\"prev_sig\":\"") || !r.Base64Url(&l.prev_sig, /*allow_empty=*/true)) {
    return std::nullopt;
  }
  if (!r.Literal("\",\"sig\":\"") || !r.Base64Url(&l.sig, /*allow_empty=*/false)) {
    return std::nullopt;
  }
  if (!r.Literal("\"}") || !r.AtEnd()) return std::nullopt;
  return l;
}

bool SignatureValid(const PurgeLine& l, const crypto::PublicKey& key) {
  return SignatureValid(l.sig, PurgeMessage(l.info, l.prev_sig), key);
}

// One line of checkpoints.log: a checkpoint or a purge checkpoint.
struct Entry {
  std::optional<Checkpoint> checkpoint;
  std::optional<PurgeLine> purge;
  const std::string& sig() const { return checkpoint ? checkpoint->sig : purge->sig; }
  const std::string& prev_sig() const {
    return checkpoint ? checkpoint->prev_sig : purge->prev_sig;
  }
};

std::optional<Entry> ParseEntry(std::string_view line) {
  Entry e;
  if (line.substr(0, 9) == "{\"purge\":") {
    e.purge = ParsePurge(line);
    if (!e.purge) return std::nullopt;
  } else {
    e.checkpoint = ParseCheckpoint(line);
    if (!e.checkpoint) return std::nullopt;
  }
  return e;
}

// The complete lines of `text` (a final partial line is left out).
std::vector<std::string_view> CompleteLines(std::string_view text) {
  std::vector<std::string_view> lines;
  for (size_t nl; (nl = text.find('\n')) != std::string_view::npos;) {
    lines.push_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
  return lines;
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
  return ReadTail(dir, last_seq, now_ms);
}

Status CheckpointSigner::Refresh(Directory& dir, int64_t last_seq) {
  if (file_ == nullptr) RETURN_IF_ERROR(OpenFile(dir));
  if (dirty_) {
    RETURN_IF_ERROR(file_->Truncate(durable_size_));
    RETURN_IF_ERROR(file_->Sync());
    dirty_ = false;
  }
  if (file_->Size() == durable_size_) return Status::Ok();
  // Another writer appended (a checkpoint or a purge): chain on from its last line. The
  // time trigger keeps counting from this signer's own last checkpoint.
  return ReadTail(dir, last_seq, checkpointed_ms_);
}

Status CheckpointSigner::ReadTail(Directory& dir, int64_t last_seq, int64_t now_ms) {
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

  std::vector<std::string_view> lines = CompleteLines(text);
  std::optional<Entry> last = ParseEntry(lines.back());
  if (!last) return Internal("audit checkpoints tail is corrupt");
  // The next line chains the last one, a checkpoint or a purge.
  prev_sig_ = last->sig();
  // The records covered: by the last checkpoint (a purge line follows the checkpoints it
  // does not replace), at least through the last purge.
  checkpointed_seq_ = last->purge ? last->purge->info.through_seq : 0;
  for (size_t i = lines.size(); i > 0; --i) {
    std::optional<Entry> e = i == lines.size() ? last : ParseEntry(lines[i - 1]);
    if (!e) return Internal("audit checkpoints tail is corrupt");
    if (!e->checkpoint) continue;
    checkpointed_seq_ = std::max(checkpointed_seq_, e->checkpoint->seq);
    checkpointed_ms_ = e->checkpoint->time;
    break;
  }
  if (checkpointed_seq_ > last_seq) return Internal("audit records missing before a checkpoint");
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
  Status status = file_->Append(line);
  if (status.ok()) status = file_->Sync();
  if (!status.ok()) {
    // Now, so that the writers' lock need not be kept over a line that is not durable.
    if (file_->Truncate(durable_size_).ok() && file_->Sync().ok()) dirty_ = false;
    return status;
  }
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

// ---- Purge ----

Result<PurgeResult> Purge(Directory& dir, const crypto::PrivateKey& key, int64_t before_ms,
                          int64_t now_ms) {
  if (key.alg() != crypto::JwsAlg::kEdDSA) {
    return InvalidArgument("the audit signing key must be Ed25519");
  }
  RETURN_IF_ERROR(dir.Lock(kPurgeLockTimeoutMs));
  struct Unlocker {
    Directory& dir;
    ~Unlocker() { dir.Unlock(); }
  } unlocker{dir};

  // The checkpoint file's tail: the purge line chains its last line.
  const std::string file_name(CheckpointSigner::kFileName);
  ASSIGN_OR_RETURN(std::vector<std::string> names, dir.List());
  const bool existed = std::find(names.begin(), names.end(), file_name) != names.end();
  ASSIGN_OR_RETURN(std::unique_ptr<SegmentFile> file, dir.OpenForAppend(file_name));
  ASSIGN_OR_RETURN(std::string text, dir.ReadAll(file_name));
  int64_t complete = static_cast<int64_t>(text.rfind('\n') + 1);  // npos + 1 == 0
  if (complete < static_cast<int64_t>(text.size())) {
    // A crashed writer's partial line (we hold the lock: nobody is writing it).
    RETURN_IF_ERROR(file->Truncate(complete));
    RETURN_IF_ERROR(file->Sync());
  }
  std::string prev_sig;
  int64_t purged_through = 0;
  for (std::string_view line : CompleteLines(text)) {
    std::optional<Entry> e = ParseEntry(line);
    if (!e) return Internal("audit checkpoints tail is corrupt");
    prev_sig = e->sig();
    if (e->purge) purged_through = std::max(purged_through, e->purge->info.through_seq);
  }

  ASSIGN_OR_RETURN(std::vector<std::string> segments, SegmentNames(dir));
  // Segments an earlier purge covered but did not get to remove (a crash after its line
  // was durable): remove them now, without a new line.
  size_t first = 0;
  bool removed_leftovers = false;
  while (first + 1 < segments.size() &&
         SegmentFirstSeq(segments[first + 1]) <= purged_through + 1) {
    RETURN_IF_ERROR(dir.Remove(segments[first]));
    removed_leftovers = true;
    ++first;
  }

  // Whole segments whose every record is older than before_ms, oldest first and never
  // the last (current) one: a purge removes a prefix of the chain, so what remains
  // still chains on from the purge line's hash.
  PurgeResult result;
  PurgeInfo info;
  size_t end = first;
  for (; end + 1 < segments.size(); ++end) {
    ASSIGN_OR_RETURN(SegmentSummary summary, SummarizeSegment(dir, segments[end]));
    if (summary.records == 0 || summary.newest_ms >= before_ms) break;
    if (result.first_seq == 0) result.first_seq = summary.first_seq;
    result.last_seq = summary.last_seq;
    result.records += summary.records;
    ++result.segments;
    info.hash = summary.last_hash;
  }
  if (result.segments == 0) {
    if (removed_leftovers) RETURN_IF_ERROR(dir.SyncDirectory());
    return result;
  }

  info.through_seq = result.last_seq;
  info.before_ms = before_ms;
  info.time_ms = now_ms;
  info.segments = result.segments;
  info.records = result.records;
  // The signed line first, durably; only then the removal. A crash in between leaves
  // segments the line covers: verification skips them and the next purge removes them.
  const std::string line = FormatPurgeLine(key, info, prev_sig);
  Status written = file->Append(line);
  if (written.ok()) written = file->Sync();
  if (written.ok() && !existed) written = dir.SyncDirectory();
  if (!written.ok()) {
    // Never leave a line that is not durable for another writer to chain onto.
    RETURN_IF_ERROR(file->Truncate(complete));
    RETURN_IF_ERROR(file->Sync());
    return written;
  }
  for (size_t i = first; i < end; ++i) RETURN_IF_ERROR(dir.Remove(segments[i]));
  RETURN_IF_ERROR(dir.SyncDirectory());
  return result;
}

// ---- Verification ----

Result<VerifyResult> VerifyWithCheckpoints(Directory& dir, const crypto::Keyring& keyring,
                                           std::string_view checkpoints_text,
                                           const crypto::PublicKey& key) {
  // Parse first, so the chain walk keeps only the hashes the checkpoints name, and starts
  // after the last purge.
  std::vector<std::optional<Entry>> entries;
  std::string_view rest = checkpoints_text;
  while (!rest.empty()) {
    size_t newline = rest.find('\n');
    if (newline == std::string_view::npos) {
      entries.push_back(std::nullopt);  // a partial line is never a written checkpoint
      break;
    }
    entries.push_back(ParseEntry(rest.substr(0, newline)));
    rest.remove_prefix(newline + 1);
  }
  std::unordered_map<int64_t, std::string> hashes;
  ChainStart start;
  start.checkpoints_known = true;
  for (const std::optional<Entry>& e : entries) {
    if (e && e->checkpoint) hashes.emplace(e->checkpoint->seq, std::string());
    // Unverified yet: a forged purge line fails its signature below, after the records.
    if (e && e->purge && e->purge->info.through_seq > start.after_seq) {
      start.after_seq = e->purge->info.through_seq;
      start.hash = e->purge->info.hash;
    }
  }

  // The records come first: a damaged record is reported where it is, even when a
  // checkpoint covering it would also disagree.
  ASSIGN_OR_RETURN(VerifyResult result,
                   VerifyChainFrom(dir, keyring, start, [&](int64_t seq, std::string_view hash) {
                     auto it = hashes.find(seq);
                     if (it != hashes.end()) it->second.assign(hash);
                   }));
  if (!result.ok) return result;
  const int64_t last_seq = start.after_seq + result.records;

  auto fail = [&](int64_t seq, std::string problem) {
    result.ok = false;
    result.first_bad_seq = seq;
    result.problem = std::move(problem);
    return result;
  };
  std::string prev_sig;
  int64_t prev_seq = 0;
  int64_t prev_purge = 0;
  for (const std::optional<Entry>& e : entries) {
    // A garbled line has no trustworthy seq: the one after the last good checkpoint.
    if (!e) return fail(prev_seq + 1, "malformed checkpoint");
    if (e->purge) {
      const PurgeInfo& p = e->purge->info;
      if (!SignatureValid(*e->purge, key)) return fail(p.through_seq, "bad checkpoint signature");
      if (e->purge->prev_sig != prev_sig) return fail(p.through_seq, "checkpoint chain broken");
      if (p.through_seq <= prev_purge) return fail(p.through_seq, "checkpoint out of order");
      if (p.through_seq > last_seq) {
        return fail(p.through_seq, "records missing before a checkpoint");
      }
      // Its hash is what the first remaining record chains to (checked by the walk) when
      // it is the last purge; an earlier one's records are gone with it.
      result.purges.push_back(p);
      prev_purge = p.through_seq;
    } else {
      const Checkpoint& c = *e->checkpoint;
      if (!SignatureValid(c, key)) return fail(c.seq, "bad checkpoint signature");
      // A removed (or reordered) checkpoint breaks the signature chain (issue 5 §3).
      if (c.prev_sig != prev_sig) return fail(c.seq, "checkpoint chain broken");
      if (c.seq <= prev_seq) return fail(c.seq, "checkpoint out of order");
      if (c.seq > last_seq) return fail(c.seq, "records missing before a checkpoint");
      // A checkpoint of purged records: nothing left to compare its hash with.
      if (c.seq > start.after_seq && hashes[c.seq] != c.hash) {
        return fail(c.seq, "checkpoint hash mismatch");
      }
      prev_seq = c.seq;
    }
    prev_sig = e->sig();
  }
  return result;
}

}  // namespace phigate::audit
