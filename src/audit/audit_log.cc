// AuditLog: segments, hash chain, group commit and the fail-closed writer (see audit_log.h).
#include "audit/audit_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "audit/checkpoints.h"
#include "audit/line_parser.h"
#include "core/base64.h"
#include "crypto/crypto.h"

namespace phigate::audit {
namespace {

constexpr std::string_view kZeroHash =
    "0000000000000000000000000000000000000000000000000000000000000000";
constexpr std::string_view kSegmentPrefix = "segment-";
constexpr std::string_view kSegmentSuffix = ".log";
constexpr size_t kSegmentSeqDigits = 20;
constexpr size_t kHashHexChars = 64;
// Domain separation of the record hash: a hash of this log can never be mistaken for a
// hash computed elsewhere over the same fields.
constexpr std::string_view kHashDomain = "phigate-audit-1";
// The one message every failed Append carries (issue 5 §2: the request fails closed).
constexpr std::string_view kUnavailableMessage = "audit trail unavailable";
// The writers' lock file (Directory::Lock); never a segment name.
constexpr std::string_view kLockFileName = "lock";

// ---- Posix file seam ----

std::string ErrnoText(std::string_view what) {
  return std::string(what) + ": " + std::strerror(errno);
}

class PosixSegmentFile final : public SegmentFile {
 public:
  explicit PosixSegmentFile(int fd) : fd_(fd) {}
  ~PosixSegmentFile() override { ::close(fd_); }
  PosixSegmentFile(const PosixSegmentFile&) = delete;
  PosixSegmentFile& operator=(const PosixSegmentFile&) = delete;

  Status Append(std::string_view bytes) override {
    while (!bytes.empty()) {
      ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Unavailable(ErrnoText("audit segment write failed"));
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return Status::Ok();
  }

  Status Sync() override {
    // fdatasync suffices: the size change it makes durable is metadata it covers.
    if (::fdatasync(fd_) != 0) return Unavailable(ErrnoText("audit segment fsync failed"));
    return Status::Ok();
  }

  Status Truncate(int64_t size) override {
    while (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      if (errno != EINTR) return Unavailable(ErrnoText("audit segment truncate failed"));
    }
    return Status::Ok();
  }

  int64_t Size() const override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return -1;
    return static_cast<int64_t>(st.st_size);
  }

 private:
  int fd_;
};

class PosixDirectoryImpl final : public Directory {
 public:
  explicit PosixDirectoryImpl(std::string path) : path_(std::move(path)) {}
  ~PosixDirectoryImpl() override {
    // Closing the last descriptor of the open file description releases the flock.
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }
  PosixDirectoryImpl(const PosixDirectoryImpl&) = delete;
  PosixDirectoryImpl& operator=(const PosixDirectoryImpl&) = delete;

  Status Lock(int64_t timeout_ms) override {
    if (locked_) return Status::Ok();
    if (lock_fd_ < 0) {
      lock_fd_ =
          ::open(Path(std::string(kLockFileName)).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (lock_fd_ < 0) return Unavailable(ErrnoText("cannot open audit lock file"));
    }
    // Non-blocking attempts until the deadline: a writer stalled on a failing disk holds
    // the lock, and a waiting one must fail closed in bounded time, not hang.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    auto pause = std::chrono::microseconds(50);
    for (;;) {
      if (::flock(lock_fd_, LOCK_EX | LOCK_NB) == 0) break;
      if (errno == EINTR) continue;
      if (errno != EWOULDBLOCK) return Unavailable(ErrnoText("cannot lock the audit trail"));
      if (std::chrono::steady_clock::now() >= deadline) {
        return Unavailable("audit trail locked by another writer");
      }
      std::this_thread::sleep_for(pause);
      pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(5));
    }
    locked_ = true;
    return Status::Ok();
  }

  void Unlock() override {
    if (!locked_) return;
    ::flock(lock_fd_, LOCK_UN);
    locked_ = false;
  }

  bool Exists(const std::string& name) override {
    struct stat st {};
    return ::stat(Path(name).c_str(), &st) == 0 || errno != ENOENT;
  }

  Status Remove(const std::string& name) override {
    if (::unlink(Path(name).c_str()) != 0 && errno != ENOENT) {
      return Unavailable(ErrnoText("cannot remove audit segment"));
    }
    return Status::Ok();
  }

  Result<std::unique_ptr<SegmentFile>> OpenForAppend(const std::string& name) override {
    int fd = ::open(Path(name).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return Unavailable(ErrnoText("cannot open audit segment"));
    return std::unique_ptr<SegmentFile>(std::make_unique<PosixSegmentFile>(fd));
  }

  Result<std::vector<std::string>> List() override {
    DIR* dir = ::opendir(path_.c_str());
    if (dir == nullptr) return Unavailable(ErrnoText("cannot list audit directory"));
    std::vector<std::string> names;
    while (const dirent* entry = ::readdir(dir)) {
      std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      names.push_back(std::move(name));
    }
    ::closedir(dir);
    std::sort(names.begin(), names.end());
    return names;
  }

  Result<std::string> ReadAll(const std::string& name) override {
    int fd = ::open(Path(name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Unavailable(ErrnoText("cannot open audit segment"));
    std::string out;
    char buf[64 * 1024];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0) {
        if (errno == EINTR) continue;
        Status status = Unavailable(ErrnoText("cannot read audit segment"));
        ::close(fd);
        return status;
      }
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
  }

  Status SyncDirectory() override {
    int fd = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Unavailable(ErrnoText("cannot open audit directory"));
    int rc = ::fsync(fd);
    Status status = rc == 0 ? Status::Ok() : Unavailable(ErrnoText("audit directory fsync failed"));
    ::close(fd);
    return status;
  }

 private:
  std::string Path(const std::string& name) const { return path_ + "/" + name; }
  std::string path_;
  int lock_fd_ = -1;  // "<dir>/lock", opened at the first Lock
  bool locked_ = false;
};

// ---- Record format ----

constexpr size_t kTagHexChars = 32;

// One parsed record line; the views point into the line.
struct Record {
  int64_t seq = 0;
  int64_t time = 0;
  std::string_view prev;
  uint32_t kv = 0;
  std::vector<std::string_view> tags;
  std::string_view ct;  // base64url text, as stored
  std::string_view hash;
};

bool IsTag(std::string_view tag) {
  return tag.size() == kTagHexChars && LineParser::IsLowerHex(tag);
}

template <typename Tags>
std::string RecordHash(int64_t seq, int64_t time, std::string_view prev, uint32_t kv,
                       const Tags& tags, std::string_view ct) {
  std::string input(kHashDomain);
  input += '|';
  input += std::to_string(seq);
  input += '|';
  input += std::to_string(time);
  input += '|';
  input += prev;
  input += '|';
  input += std::to_string(kv);
  input += '|';
  for (size_t i = 0; i < tags.size(); ++i) {
    if (i > 0) input += ',';
    input += tags[i];
  }
  input += '|';
  input += ct;
  return HexEncode(crypto::Sha256(input));
}

// The line, with its trailing newline.
std::string FormatRecord(int64_t seq, int64_t time, std::string_view prev, uint32_t kv,
                         const std::vector<std::string>& tags, std::string_view ct,
                         std::string_view hash) {
  std::string line =
      "{\"seq\":" + std::to_string(seq) + ",\"time\":" + std::to_string(time) + ",\"prev\":\"";
  line += prev;
  line += "\",\"kv\":" + std::to_string(kv) + ",\"ix\":[";
  for (size_t i = 0; i < tags.size(); ++i) {
    if (i > 0) line += ',';
    line += '"';
    line += tags[i];
    line += '"';
  }
  line += "],\"ct\":\"";
  line += ct;
  line += "\",\"hash\":\"";
  line += hash;
  line += "\"}\n";
  return line;
}

// `line` without its newline.
std::optional<Record> ParseRecord(std::string_view line) {
  Record r;
  LineParser p(line);
  if (!p.Literal("{\"seq\":") || !p.Number(&r.seq) || r.seq < 1) return std::nullopt;
  if (!p.Literal(",\"time\":") || !p.Number(&r.time)) return std::nullopt;
  if (!p.Literal(",\"prev\":\"") || !p.LowerHex(kHashHexChars, &r.prev)) return std::nullopt;
  if (!p.Literal("\",\"kv\":") || !p.Number(&r.kv)) return std::nullopt;
  if (!p.Literal(",\"ix\":") || !p.LowerHexArray(kTagHexChars, &r.tags)) return std::nullopt;
  if (!p.Literal(",\"ct\":\"") || !p.Base64Url(&r.ct, /*allow_empty=*/false)) return std::nullopt;
  if (!p.Literal("\",\"hash\":\"") || !p.LowerHex(kHashHexChars, &r.hash)) return std::nullopt;
  if (!p.Literal("\"}") || !p.AtEnd()) return std::nullopt;
  return r;
}

bool HashMatches(const Record& r) {
  return RecordHash(r.seq, r.time, r.prev, r.kv, r.tags, r.ct) == r.hash;
}

std::string Aad(int64_t seq) { return "audit/" + std::to_string(seq); }

Result<std::string> OpenCiphertext(const Record& r, const crypto::Keyring& keyring) {
  std::optional<std::string> sealed = Base64UrlDecode(r.ct);
  if (!sealed) return Internal("cannot decrypt");
  Result<std::string> plain = keyring.Open(crypto::KeyPurpose::kAudit, r.kv, *sealed, Aad(r.seq));
  if (!plain.ok()) return Internal("cannot decrypt");
  return plain;
}

std::string SegmentName(int64_t first_seq) {
  std::string digits = std::to_string(first_seq);
  return std::string(kSegmentPrefix) + std::string(kSegmentSeqDigits - digits.size(), '0') +
         digits + std::string(kSegmentSuffix);
}

bool IsSegmentName(std::string_view name) {
  if (name.size() != kSegmentPrefix.size() + kSegmentSeqDigits + kSegmentSuffix.size()) {
    return false;
  }
  if (name.substr(0, kSegmentPrefix.size()) != kSegmentPrefix) return false;
  if (name.substr(name.size() - kSegmentSuffix.size()) != kSegmentSuffix) return false;
  std::string_view digits = name.substr(kSegmentPrefix.size(), kSegmentSeqDigits);
  return std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Segment names in seq order (the zero-padded names sort numerically).
Result<std::vector<std::string>> Segments(Directory& dir) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, dir.List());
  std::vector<std::string> segments;
  for (std::string& name : names) {
    if (IsSegmentName(name)) segments.push_back(std::move(name));
  }
  std::sort(segments.begin(), segments.end());
  return segments;
}

// The last newline-terminated line of `text[0, end)`, without its newline, or nullopt.
std::optional<std::string_view> LastCompleteLine(std::string_view text) {
  size_t end = text.rfind('\n');
  if (end == std::string_view::npos) return std::nullopt;
  size_t start = end == 0 ? std::string_view::npos : text.rfind('\n', end - 1);
  start = start == std::string_view::npos ? 0 : start + 1;
  return text.substr(start, end - start);
}

}  // namespace

int64_t SegmentFirstSeq(std::string_view name) {
  int64_t seq = 0;
  if (!IsSegmentName(name)) return 0;
  std::string_view digits = name.substr(kSegmentPrefix.size(), kSegmentSeqDigits);
  std::from_chars(digits.data(), digits.data() + digits.size(), seq);
  return seq;
}

Result<std::vector<std::string>> SegmentNames(Directory& dir) { return Segments(dir); }

Result<SegmentSummary> SummarizeSegment(Directory& dir, const std::string& name) {
  SegmentSummary summary;
  summary.name = name;
  summary.first_seq = SegmentFirstSeq(name);
  ASSIGN_OR_RETURN(std::string text, dir.ReadAll(name));
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t newline = rest.find('\n');
    if (newline == std::string_view::npos) return Internal("malformed audit record");
    std::optional<Record> r = ParseRecord(rest.substr(0, newline));
    rest.remove_prefix(newline + 1);
    if (!r) return Internal("malformed audit record");
    ++summary.records;
    summary.last_seq = r->seq;
    summary.newest_ms = std::max(summary.newest_ms, r->time);
    summary.last_hash.assign(r->hash);
  }
  return summary;
}

bool Directory::Exists(const std::string& name) {
  Result<std::vector<std::string>> names = List();
  if (!names.ok()) return true;
  return std::find(names->begin(), names->end(), name) != names->end();
}

Result<std::unique_ptr<Directory>> PosixDirectory(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return Unavailable(ErrnoText("cannot create audit directory"));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Unavailable("audit path is not a directory");
  }
  return std::unique_ptr<Directory>(std::make_unique<PosixDirectoryImpl>(path));
}

// ---- The writer ----

struct AuditLog::Impl {
  // One Append's rendezvous with the writer; guarded by mu_.
  struct Slot {
    bool done = false;
    bool abandoned = false;  // its Append gave up at the deadline: never acknowledge it
    int64_t seq = 0;
    Status status;
    // AppendAsync: called exactly once (by the writer, or by the deadline watcher when the
    // deadline passes first), outside mu.
    AppendCallback callback;
    std::chrono::steady_clock::time_point deadline;
  };
  struct Pending {
    std::string event;
    std::vector<std::string> tags;
    std::shared_ptr<Slot> slot;
  };
  // What one batch would make durable, committed only once every Append of it still waits.
  struct Outcome {
    Status status;
    size_t count = 0;  // batch entries this run consumed (the rest go back to the queue)
    int64_t new_size = 0;
    std::string new_hash;
    bool wrote = false;
  };

  Impl(std::unique_ptr<Directory> d, const crypto::Keyring& k, const Clock& c, AuditLogOptions o,
       std::unique_ptr<CheckpointSigner> s)
      : dir(std::move(d)), keyring(k), clock(c), options(o), signer(std::move(s)) {}

  Status Recover();
  // Takes the writers' lock and brings the tail state up to date with the files: drops
  // this writer's own residue, re-reads the tail if another writer changed it.
  Status AcquireTail();
  bool TailChanged() const;
  // After a failed batch: truncates its bytes now (once), so the lock can be released.
  void TruncateResidue();
  // Releases the writers' lock unless bytes that are not durable remain in a file.
  void ReleaseTail();
  void WriterLoop();
  // After queueing (under mu): notifies the writer if it waits for work or the queue is full.
  void WakeWriter() {
    if (writer_idle || queue.size() >= static_cast<size_t>(options.max_batch) ||
        (in_interval && Drained())) {
      work_cv.notify_one();
    }
  }
  // No request that will append is being processed: its records are all queued.
  bool Drained() const {
    return hinted.load(std::memory_order_relaxed) && producing.load(std::memory_order_relaxed) <= 0;
  }
  void EndOne() {
    if (hinted.load(std::memory_order_relaxed)) producing.fetch_sub(1, std::memory_order_relaxed);
  }
  // Fails the AppendAsync slots whose deadline passed (a stalled disk blocks the writer,
  // so the writer cannot be the one to give up on them).
  void WatcherLoop();
  // Completes the async slots of a finished batch (outside mu).
  static void Complete(std::vector<std::pair<AppendCallback, Result<int64_t>>>& calls);
  Outcome WriteBatch(std::vector<Pending>& batch);
  // keyring.Seal(kAudit, ...) with the current version's key set up once per version.
  Result<std::string> Seal(std::string_view event, std::string_view aad, uint32_t* kv);
  // Writes the checkpoint of the last durable record (after re-reading the tail: another
  // writer may have added records or checkpoints); `lock` (on mu) is released for the I/O.
  void WriteCheckpoint(std::unique_lock<std::mutex>& lock);

  std::unique_ptr<Directory> dir;
  const crypto::Keyring& keyring;
  const Clock& clock;
  const AuditLogOptions options;
  // Null: no checkpoints. Writer-thread only (and Open, before the thread starts).
  std::unique_ptr<CheckpointSigner> signer;

  // Writer-thread state (also touched by Recover before the thread starts).
  std::unique_ptr<SegmentFile> file;  // the current (last) segment, or null before the first
  int64_t durable_size = 0;           // its length covered by the last successful fsync
  int64_t next_seq = 1;               // of the next record, after the last durable one
  std::string last_hash{kZeroHash};   // of the last durable record
  bool dirty = false;                 // bytes past durable_size may exist: truncate first
  bool locked = false;                // this writer holds Directory::Lock
  bool dir_sync_pending = false;      // a new segment's directory entry is not durable yet
  bool checkpoint_failing = false;    // the last checkpoint attempt failed: not healthy
  bool batch_failing = false;         // the last batch failed: not healthy
  size_t last_batch = 0;              // records in the last batch (group commit interval)
  std::unique_ptr<crypto::AesGcmKey> sealer;  // the audit subkey of sealer_version
  uint32_t sealer_version = 0;
  std::chrono::steady_clock::time_point last_write;  // when the last batch's write began

  // mu guards queue, stop, every Slot and stats.
  mutable std::mutex mu;
  std::condition_variable work_cv;  // the writer waits for work
  std::condition_variable done_cv;  // Appends wait for their slot
  std::deque<Pending> queue;
  bool stop = false;
  // The writer waits for work (not in the group commit interval): an Append must wake it.
  // Otherwise Appends do not notify (a wake-up per record would cost more than the record),
  // unless the queue reached max_batch.
  bool writer_idle = false;
  bool in_interval = false;  // the writer waits out the group commit interval
  // Requests being processed whose record will come (RequestStarted); see the header.
  std::atomic<int64_t> producing{0};
  std::atomic<bool> hinted{false};  // RequestStarted was ever called: the hint is in use
  AuditLogStats stats;
  std::atomic<bool> healthy{true};
  std::thread writer;
  // AppendAsync slots in deadline order (all deadlines are enqueue time + one duration).
  std::deque<std::shared_ptr<Slot>> async_slots;
  std::condition_variable watcher_cv;
  bool watcher_stop = false;
  std::thread watcher;
};

void AuditLog::Impl::Complete(std::vector<std::pair<AppendCallback, Result<int64_t>>>& calls) {
  for (auto& [callback, result] : calls) callback(std::move(result));
  calls.clear();
}

void AuditLog::Impl::WatcherLoop() {
  std::vector<std::pair<AppendCallback, Result<int64_t>>> calls;
  std::unique_lock<std::mutex> lock(mu);
  for (;;) {
    while (!async_slots.empty() && async_slots.front()->done) async_slots.pop_front();
    if (watcher_stop && async_slots.empty()) return;
    if (async_slots.empty()) {
      watcher_cv.wait(lock);
      continue;
    }
    const auto deadline = async_slots.front()->deadline;
    if (std::chrono::steady_clock::now() < deadline) {
      watcher_cv.wait_until(lock, deadline);
      continue;
    }
    // Like a synchronous Append giving up: never acknowledged, and the log is unhealthy.
    std::shared_ptr<Slot> slot = std::move(async_slots.front());
    async_slots.pop_front();
    slot->abandoned = true;
    slot->done = true;
    healthy = false;
    calls.emplace_back(std::move(slot->callback), Unavailable(std::string(kUnavailableMessage)));
    lock.unlock();
    Complete(calls);
    lock.lock();
  }
}

Status AuditLog::Impl::Recover() {
  file.reset();
  durable_size = 0;
  next_seq = 1;
  last_hash = kZeroHash;
  dir_sync_pending = false;
  ASSIGN_OR_RETURN(std::vector<std::string> segments, Segments(*dir));
  if (segments.empty()) return Status::Ok();  // the first batch creates segment 1

  const std::string& last = segments.back();
  ASSIGN_OR_RETURN(std::string text, dir->ReadAll(last));
  size_t newline = text.rfind('\n');
  int64_t complete = newline == std::string::npos ? 0 : static_cast<int64_t>(newline) + 1;

  // The last complete record, searching back over segments left empty by a crash between
  // creating a segment and writing to it.
  std::optional<std::string_view> tail =
      LastCompleteLine(std::string_view(text).substr(0, complete));
  std::string earlier;
  for (size_t i = segments.size() - 1; !tail && i > 0; --i) {
    ASSIGN_OR_RETURN(earlier, dir->ReadAll(segments[i - 1]));
    tail = LastCompleteLine(earlier);
  }
  if (tail) {
    std::optional<Record> record = ParseRecord(*tail);
    // A garbled complete line is not a crash artifact (those are partial): refuse to
    // extend a chain whose end cannot be trusted.
    if (!record || !HashMatches(*record)) return Internal("audit log tail is corrupt");
    next_seq = record->seq + 1;
    last_hash.assign(record->hash);
  }

  ASSIGN_OR_RETURN(file, dir->OpenForAppend(last));
  if (complete < static_cast<int64_t>(text.size())) {
    // A crash mid-write: the partial line was never acknowledged (acks follow the fsync).
    RETURN_IF_ERROR(file->Truncate(complete));
    RETURN_IF_ERROR(file->Sync());
  }
  durable_size = complete;
  return Status::Ok();
}

bool AuditLog::Impl::TailChanged() const {
  if (file == nullptr) return true;  // nothing written yet, or a failed re-read
  // Another writer either appended to this segment, or started the next one, which is
  // named after the first record it holds: next_seq. (fstat + stat: the hot path's cost.)
  return file->Size() != durable_size || dir->Exists(SegmentName(next_seq));
}

Status AuditLog::Impl::AcquireTail() {
  if (!locked) {
    RETURN_IF_ERROR(dir->Lock(options.append_deadline_ms));
    locked = true;
  }
  if (dirty && file) {
    // The failed batch's bytes must go before anything follows them, or the next record's
    // prev would skip over records that are in the file. This writer has held the lock
    // since they were written: no other writer's records follow them.
    RETURN_IF_ERROR(file->Truncate(durable_size));
    RETURN_IF_ERROR(file->Sync());
  }
  dirty = false;
  if (TailChanged()) RETURN_IF_ERROR(Recover());
  return Status::Ok();
}

void AuditLog::Impl::TruncateResidue() {
  if (!dirty || file == nullptr) return;
  if (file->Truncate(durable_size).ok() && file->Sync().ok()) dirty = false;
}

void AuditLog::Impl::ReleaseTail() {
  if (!locked || dirty || (signer != nullptr && signer->HoldsResidue())) return;
  dir->Unlock();
  locked = false;
}

Result<std::string> AuditLog::Impl::Seal(std::string_view event, std::string_view aad,
                                         uint32_t* kv) {
  const uint32_t version = keyring.current_version();
  if (sealer == nullptr || sealer_version != version) {
    sealer.reset();
    ASSIGN_OR_RETURN(std::string key, keyring.Subkey(crypto::KeyPurpose::kAudit, version));
    Result<std::unique_ptr<crypto::AesGcmKey>> created = crypto::AesGcmKey::Create(key);
    crypto::Wipe(key);
    if (!created.ok()) return created.status();
    sealer = std::move(created).value();
    sealer_version = version;
  }
  *kv = version;
  return sealer->Seal(event, aad);
}

AuditLog::Impl::Outcome AuditLog::Impl::WriteBatch(std::vector<Pending>& batch) {
  Outcome out;
  out.count = batch.size();  // a failure consumes the whole batch
  out.status = AcquireTail();
  if (!out.status.ok()) return out;

  int64_t used = file ? durable_size : 0;
  bool rotate = file == nullptr;
  std::string bytes;
  std::string prev = last_hash;
  size_t taken = 0;
  for (Pending& p : batch) {
    const int64_t seq = next_seq + static_cast<int64_t>(taken);
    const int64_t time = clock.NowMillis();
    uint32_t kv = 0;
    Result<std::string> sealed = Seal(p.event, Aad(seq), &kv);
    if (!sealed.ok()) {
      out.status = sealed.status();
      return out;
    }
    const std::string ct = Base64UrlEncode(*sealed);
    std::string hash = RecordHash(seq, time, prev, kv, p.tags, ct);
    std::string line = FormatRecord(seq, time, prev, kv, p.tags, ct, hash);
    int64_t filled = used + static_cast<int64_t>(bytes.size());
    if (filled > 0 && filled + static_cast<int64_t>(line.size()) > options.segment_bytes) {
      if (!bytes.empty()) break;  // the rest waits for the next batch, in a new segment
      rotate = true;
      used = 0;
    }
    bytes += line;
    prev = std::move(hash);
    ++taken;
  }

  if (rotate) {
    Result<std::unique_ptr<SegmentFile>> opened = dir->OpenForAppend(SegmentName(next_seq));
    if (!opened.ok()) {
      out.status = opened.status();
      return out;
    }
    file = std::move(opened).value();
    durable_size = 0;
    dirty = file->Size() != 0;  // a leftover from a failed attempt
    if (dirty) {
      out.status = file->Truncate(0);
      if (!out.status.ok()) return out;
    }
    dir_sync_pending = true;
  }
  if (dir_sync_pending) {
    out.status = dir->SyncDirectory();
    if (!out.status.ok()) return out;
    dir_sync_pending = false;
  }

  out.wrote = true;
  out.status = file->Append(bytes);
  if (out.status.ok()) out.status = file->Sync();
  if (!out.status.ok()) return out;
  out.count = taken;
  out.new_size = durable_size + static_cast<int64_t>(bytes.size());
  out.new_hash = std::move(prev);
  return out;
}

void AuditLog::Impl::WriteCheckpoint(std::unique_lock<std::mutex>& lock) {
  // next_seq and last_hash change only on this thread: safe to use without mu.
  lock.unlock();
  bool wrote = false;
  Status status = AcquireTail();
  if (status.ok()) status = signer->Refresh(*dir, next_seq - 1);
  // Another writer's checkpoint may already cover the tail.
  if (status.ok() && signer->Pending(next_seq - 1)) {
    status = signer->Write(*dir, next_seq - 1, last_hash, clock.NowMillis());
    wrote = status.ok();
  }
  ReleaseTail();
  lock.lock();
  if (status.ok()) {
    if (wrote) ++stats.checkpoints;
    checkpoint_failing = false;
    healthy = !batch_failing;  // a checkpoint never hides a failed record write
  } else {
    ++stats.failed_checkpoints;
    checkpoint_failing = true;
    healthy = false;
  }
}

void AuditLog::Impl::WriterLoop() {
  std::unique_lock<std::mutex> lock(mu);
  auto has_work = [&] { return stop || !queue.empty(); };
  for (;;) {
    if (signer != nullptr && signer->Pending(next_seq - 1)) {
      // The time trigger (issue 5 §3): wake when every_ms may have elapsed. The wait is
      // real time, the due check the injected clock, so a fake clock is re-checked
      // periodically rather than missed.
      // Capped so a huge every_ms never overflows the steady-clock deadline.
      int64_t wait_ms = std::min<int64_t>(signer->MillisUntilDue(clock.NowMillis()), 60'000);
      writer_idle = true;
      const bool woke = work_cv.wait_for(lock, std::chrono::milliseconds(wait_ms), has_work);
      writer_idle = false;
      if (!woke) {
        if (signer->Due(next_seq - 1, clock.NowMillis())) WriteCheckpoint(lock);
        continue;
      }
    } else {
      writer_idle = true;
      work_cv.wait(lock, has_work);
      writer_idle = false;
    }
    if (queue.empty()) {
      // stop, and every pending Append completed: a last checkpoint covers the tail,
      // including records other writers added since (WriteCheckpoint re-reads it).
      if (signer != nullptr) WriteCheckpoint(lock);
      return;
    }
    if (options.commit_interval_us > 0 && last_batch > 1 && !stop) {
      // Under load, batches start at most one per interval: the records that arrive
      // meanwhile share the next fsync (an fsync costs the same for one record or many).
      in_interval = true;
      work_cv.wait_until(
          lock, last_write + std::chrono::microseconds(options.commit_interval_us), [&] {
            return stop || queue.size() >= static_cast<size_t>(options.max_batch) || Drained();
          });
      in_interval = false;
    }

    std::vector<Pending> batch;
    while (!queue.empty() && batch.size() < static_cast<size_t>(options.max_batch)) {
      Pending p = std::move(queue.front());
      queue.pop_front();
      if (p.slot->abandoned) continue;  // never written, so never acknowledged
      batch.push_back(std::move(p));
    }
    if (batch.empty()) continue;
    last_batch = batch.size();
    last_write = std::chrono::steady_clock::now();

    lock.unlock();
    Outcome out = WriteBatch(batch);
    lock.lock();

    for (size_t i = batch.size(); i > out.count; --i) queue.push_front(std::move(batch[i - 1]));
    batch.resize(out.count);

    bool abandoned =
        std::any_of(batch.begin(), batch.end(), [](const Pending& p) { return p.slot->abandoned; });
    std::vector<std::pair<AppendCallback, Result<int64_t>>> calls;
    if (out.status.ok() && !abandoned) {
      for (size_t i = 0; i < batch.size(); ++i) {
        batch[i].slot->done = true;
        batch[i].slot->seq = next_seq + static_cast<int64_t>(i);
        if (batch[i].slot->callback) {
          calls.emplace_back(std::move(batch[i].slot->callback), batch[i].slot->seq);
        }
      }
      next_seq += static_cast<int64_t>(batch.size());
      last_hash = std::move(out.new_hash);
      durable_size = out.new_size;
      stats.records += batch.size();
      ++stats.syncs;
      batch_failing = false;
      healthy = !checkpoint_failing;
    } else {
      // A batch that missed an Append's deadline fails whole: the late Append was told
      // kUnavailable, so its record must not stay in the chain (issue 5 §2).
      if (out.wrote) {
        dirty = true;
        // Now, before the Appends learn of the failure, so that the lock is released
        // without leaving unacknowledged records for another writer to chain onto.
        lock.unlock();
        TruncateResidue();
        lock.lock();
      }
      for (Pending& p : batch) {
        // An abandoned async slot was answered by the watcher already.
        const bool answered = p.slot->abandoned && p.slot->done;
        p.slot->done = true;
        p.slot->status = Unavailable(std::string(kUnavailableMessage));
        if (p.slot->callback && !answered) {
          calls.emplace_back(std::move(p.slot->callback), p.slot->status);
        }
      }
      ++stats.failed_batches;
      batch_failing = true;
      healthy = false;
    }
    done_cv.notify_all();
    if (!calls.empty()) {
      lock.unlock();
      Complete(calls);
      lock.lock();
    }
    // After the acknowledgments: a checkpoint covers only records already durable and
    // committed, and its fsync never delays their Appends. It keeps the lock this batch
    // took (one lock per batch and checkpoint).
    if (out.status.ok() && !abandoned && signer != nullptr &&
        signer->Due(next_seq - 1, clock.NowMillis())) {
      WriteCheckpoint(lock);
    } else {
      lock.unlock();
      ReleaseTail();
      lock.lock();
    }
  }
}

AuditLog::AuditLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<AuditLog>> AuditLog::Open(std::unique_ptr<Directory> dir,
                                                 const crypto::Keyring& keyring, const Clock& clock,
                                                 AuditLogOptions options) {
  return Open(std::move(dir), keyring, clock, options, nullptr);
}

Result<std::unique_ptr<AuditLog>> AuditLog::Open(std::unique_ptr<Directory> dir,
                                                 const crypto::Keyring& keyring, const Clock& clock,
                                                 AuditLogOptions options,
                                                 std::unique_ptr<CheckpointSigner> signer) {
  if (dir == nullptr) return InvalidArgument("audit log needs a directory");
  if (keyring.empty()) return InvalidArgument("audit log needs a keyring with a data key");
  if (options.segment_bytes <= 0 || options.append_deadline_ms <= 0 || options.max_batch <= 0 ||
      options.commit_interval_us < 0) {
    return InvalidArgument("audit log options must be positive");
  }
  auto impl = std::make_unique<Impl>(std::move(dir), keyring, clock, options, std::move(signer));
  // Under the writers' lock: recovery truncates, and reads a tail other writers extend.
  RETURN_IF_ERROR(impl->dir->Lock(options.append_deadline_ms));
  Status recovered = impl->Recover();
  if (recovered.ok() && impl->signer != nullptr) {
    recovered = impl->signer->Recover(*impl->dir, impl->next_seq - 1, clock.NowMillis());
  }
  impl->dir->Unlock();
  RETURN_IF_ERROR(recovered);
  Impl* raw = impl.get();
  impl->writer = std::thread([raw] { raw->WriterLoop(); });
  impl->watcher = std::thread([raw] { raw->WatcherLoop(); });
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(impl)));
}

AuditLog::~AuditLog() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->work_cv.notify_one();
  impl_->writer.join();
  // Every queued Append was completed by the writer; the watcher has nothing left to fail.
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->watcher_stop = true;
  }
  impl_->watcher_cv.notify_one();
  impl_->watcher.join();
}

Result<int64_t> AuditLog::Append(std::string event_json, std::vector<std::string> tags) {
  // The tags are stored in the clear: only the fixed HMAC shape may get there, never a
  // value that could be PHI.
  if (!std::all_of(tags.begin(), tags.end(), IsTag)) {
    return InvalidArgument("audit tag must be " + std::to_string(kTagHexChars) +
                           " lower-case hex characters");
  }
  // The deadline runs on the steady clock: a stalled disk is a wall-time matter that the
  // injectable (possibly fake) record clock must not hide.
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(impl_->options.append_deadline_ms);
  auto slot = std::make_shared<Impl::Slot>();
  std::unique_lock<std::mutex> lock(impl_->mu);
  // The group commit hint: while a request waits here (a change recorded inside its
  // transaction, a /readyz probe), it produces nothing else, so it does not hold back the
  // batch its own record is in. It counts again once the wait is over.
  const bool hinted = impl_->hinted.load(std::memory_order_relaxed);
  if (hinted) impl_->EndOne();
  impl_->queue.push_back({std::move(event_json), std::move(tags), slot});
  impl_->WakeWriter();
  const bool done = impl_->done_cv.wait_until(lock, deadline, [&] { return slot->done; });
  if (hinted) impl_->producing.fetch_add(1, std::memory_order_relaxed);
  if (!done) {
    slot->abandoned = true;
    impl_->healthy = false;
    return Unavailable(std::string(kUnavailableMessage));
  }
  if (!slot->status.ok()) return slot->status;
  return slot->seq;
}

void AuditLog::AppendAsync(std::string event_json, std::vector<std::string> tags,
                           AppendCallback done) {
  if (!std::all_of(tags.begin(), tags.end(), IsTag)) {
    RequestEnded();
    done(InvalidArgument("audit tag must be " + std::to_string(kTagHexChars) +
                         " lower-case hex characters"));
    return;
  }
  auto slot = std::make_shared<Impl::Slot>();
  slot->callback = std::move(done);
  slot->deadline = std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(impl_->options.append_deadline_ms);
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->EndOne();  // this request's record is here
  const bool watcher_idle = impl_->async_slots.empty();
  impl_->async_slots.push_back(slot);
  impl_->queue.push_back({std::move(event_json), std::move(tags), std::move(slot)});
  impl_->WakeWriter();
  if (watcher_idle) impl_->watcher_cv.notify_one();
}

void AuditLog::RequestStarted() {
  impl_->hinted.store(true, std::memory_order_relaxed);
  impl_->producing.fetch_add(1, std::memory_order_relaxed);
}

void AuditLog::RequestEnded() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->EndOne();
  if (!impl_->queue.empty()) impl_->WakeWriter();
}

bool AuditLog::Healthy() const { return impl_->healthy.load(); }

AuditLogStats AuditLog::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

// ---- Verification ----

Result<VerifyResult> VerifyChain(Directory& dir, const crypto::Keyring& keyring) {
  return VerifyChain(dir, keyring, [](int64_t, std::string_view) {});
}

Result<VerifyResult> VerifyChain(Directory& dir, const crypto::Keyring& keyring,
                                 const std::function<void(int64_t, std::string_view)>& on_record) {
  return VerifyChainFrom(dir, keyring, ChainStart{}, on_record);
}

Result<VerifyResult> VerifyChainFrom(
    Directory& dir, const crypto::Keyring& keyring, const ChainStart& start,
    const std::function<void(int64_t, std::string_view)>& on_record) {
  VerifyResult result;
  auto fail = [&](int64_t seq, std::string problem) {
    result.ok = false;
    result.first_bad_seq = seq;
    result.problem = std::move(problem);
    return result;
  };
  ASSIGN_OR_RETURN(std::vector<std::string> segments, Segments(dir));
  int64_t expected = start.after_seq + 1;
  std::string prev = start.hash.empty() ? std::string(kZeroHash) : start.hash;
  bool first = true;
  for (size_t i = 0; i < segments.size(); ++i) {
    // Purged records whose segments are still there: the purge's checkpoint is durable,
    // its removal of them was interrupted.
    if (i + 1 < segments.size() && SegmentFirstSeq(segments[i + 1]) <= expected) continue;
    ASSIGN_OR_RETURN(std::string text, dir.ReadAll(segments[i]));
    std::string_view rest = text;
    while (!rest.empty()) {
      size_t newline = rest.find('\n');
      if (newline == std::string_view::npos) return fail(expected, "malformed record");
      std::optional<Record> r = ParseRecord(rest.substr(0, newline));
      rest.remove_prefix(newline + 1);
      if (!r) return fail(expected, "malformed record");
      if (first && r->seq > expected) {
        // The first segments are gone: only signed purge checkpoints can vouch for that.
        if (start.checkpoints_known) return fail(expected, "records missing at the start");
        if (start.after_seq == 0) {
          return fail(r->seq, "records before seq " + std::to_string(r->seq) +
                                  " were purged or removed: verify with the checkpoints");
        }
      }
      first = false;
      if (r->seq > expected) return fail(expected, "sequence gap");
      if (r->seq < expected) return fail(expected, "sequence repeat");
      if (r->prev != prev) return fail(expected, "chain broken");
      if (!HashMatches(*r)) return fail(expected, "hash mismatch");
      if (!OpenCiphertext(*r, keyring).ok()) return fail(expected, "cannot decrypt");
      on_record(r->seq, r->hash);
      prev = r->hash;
      ++expected;
      ++result.records;
    }
  }
  return result;
}

// ---- Reading ----

Status ForEachRecord(Directory& dir, int64_t from_seq,
                     const std::function<bool(const StoredRecord&)>& visit) {
  ASSIGN_OR_RETURN(std::vector<std::string> segments, Segments(dir));
  for (size_t i = 0; i < segments.size(); ++i) {
    // Segment i holds the records before segment i + 1's first seq (its name): when that
    // is at or before from_seq, none of them is wanted and the file is not read.
    if (i + 1 < segments.size() && SegmentFirstSeq(segments[i + 1]) <= from_seq) continue;
    ASSIGN_OR_RETURN(std::string text, dir.ReadAll(segments[i]));
    const bool last = i + 1 == segments.size();
    std::string_view rest = text;
    while (!rest.empty()) {
      size_t newline = rest.find('\n');
      // Only the current segment may end in a line still being written.
      if (newline == std::string_view::npos) {
        if (last) break;
        return Internal("malformed audit record");
      }
      std::string_view line = rest.substr(0, newline);
      rest.remove_prefix(newline + 1);
      std::optional<Record> r = ParseRecord(line);
      if (!r) return Internal("malformed audit record");
      if (r->seq < from_seq) continue;
      StoredRecord stored;
      stored.seq = r->seq;
      stored.time_ms = r->time;
      stored.tags = std::move(r->tags);
      stored.line = line;
      if (!visit(stored)) return Status::Ok();
    }
  }
  return Status::Ok();
}

Result<std::string> OpenRecord(std::string_view line, const crypto::Keyring& keyring) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  std::optional<Record> r = ParseRecord(line);
  if (!r) return Internal("malformed record");
  if (!HashMatches(*r)) return Internal("hash mismatch");
  return OpenCiphertext(*r, keyring);
}

}  // namespace phigate::audit
