#include "audit/audit_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/clock.h"
#include "crypto/crypto.h"
#include "crypto/keyring.h"
#include "crypto/temp_dir.h"

namespace phigate::audit {
namespace {

constexpr int64_t kStartMillis = 1700000000000;

// Faults shared by a FaultyDirectory and every file it opens. Each flag fires once (or
// for `failing_syncs` calls); the stall blocks the next Sync until Release().
struct Faults {
  std::atomic<bool> fail_next_append{false};
  std::atomic<int> failing_syncs{0};

  std::mutex mu;
  std::condition_variable cv;
  bool stall_next_sync = false;  // guarded by mu
  bool released = false;         // guarded by mu

  void StallNextSync() {
    std::lock_guard<std::mutex> lock(mu);
    stall_next_sync = true;
    released = false;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
    cv.notify_all();
  }
};

class FaultyFile final : public SegmentFile {
 public:
  FaultyFile(std::unique_ptr<SegmentFile> real, Faults& faults)
      : real_(std::move(real)), faults_(faults) {}

  Status Append(std::string_view bytes) override {
    if (faults_.fail_next_append.exchange(false)) {
      // A short write before the error (ENOSPC mid-batch): the tail must be truncated.
      Status partial = real_->Append(bytes.substr(0, bytes.size() / 2));
      if (!partial.ok()) return partial;
      return Unavailable("injected write failure");
    }
    return real_->Append(bytes);
  }
  Status Sync() override {
    {
      std::unique_lock<std::mutex> lock(faults_.mu);
      if (faults_.stall_next_sync) {
        faults_.stall_next_sync = false;
        faults_.cv.wait(lock, [&] { return faults_.released; });
      }
    }
    if (faults_.failing_syncs.load() > 0) {
      faults_.failing_syncs.fetch_sub(1);
      return Unavailable("injected fsync failure");
    }
    return real_->Sync();
  }
  Status Truncate(int64_t size) override { return real_->Truncate(size); }
  int64_t Size() const override { return real_->Size(); }

 private:
  std::unique_ptr<SegmentFile> real_;
  Faults& faults_;
};

class FaultyDirectory final : public Directory {
 public:
  FaultyDirectory(std::unique_ptr<Directory> real, Faults& faults)
      : real_(std::move(real)), faults_(faults) {}

  Result<std::unique_ptr<SegmentFile>> OpenForAppend(const std::string& name) override {
    ASSIGN_OR_RETURN(std::unique_ptr<SegmentFile> file, real_->OpenForAppend(name));
    return std::unique_ptr<SegmentFile>(std::make_unique<FaultyFile>(std::move(file), faults_));
  }
  Result<std::vector<std::string>> List() override { return real_->List(); }
  Result<std::string> ReadAll(const std::string& name) override { return real_->ReadAll(name); }
  Status SyncDirectory() override { return real_->SyncDirectory(); }

 private:
  std::unique_ptr<Directory> real_;
  Faults& faults_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

class AuditLogTest : public ::testing::Test {
 protected:
  AuditLogTest() {
    Result<std::unique_ptr<crypto::Keyring>> ring =
        crypto::Keyring::Open(crypto::RandomBytes(crypto::kKeyBytes), {});
    EXPECT_TRUE(ring.ok());
    keyring_ = std::move(ring).value();
    EXPECT_TRUE(keyring_->AddVersion().ok());
  }

  std::string Dir() const { return tmp_.path() + "/audit"; }
  std::string Segment(int64_t first_seq) const {
    std::string digits = std::to_string(first_seq);
    return Dir() + "/segment-" + std::string(20 - digits.size(), '0') + digits + ".log";
  }

  std::unique_ptr<Directory> Posix() {
    Result<std::unique_ptr<Directory>> dir = PosixDirectory(Dir());
    EXPECT_TRUE(dir.ok()) << dir.status().message();
    return std::move(dir).value();
  }
  std::unique_ptr<Directory> Faulty() {
    return std::make_unique<FaultyDirectory>(Posix(), faults_);
  }

  std::unique_ptr<AuditLog> OpenLog(std::unique_ptr<Directory> dir, AuditLogOptions options = {}) {
    Result<std::unique_ptr<AuditLog>> log =
        AuditLog::Open(std::move(dir), *keyring_, clock_, options);
    EXPECT_TRUE(log.ok()) << log.status().message();
    return log.ok() ? std::move(log).value() : nullptr;
  }

  VerifyResult Verify() {
    std::unique_ptr<Directory> dir = Posix();
    Result<VerifyResult> result = VerifyChain(*dir, *keyring_);
    EXPECT_TRUE(result.ok());
    return result.ok() ? *result : VerifyResult{};
  }

  // Segment file names, sorted.
  std::vector<std::string> SegmentFiles() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(Dir())) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  // Every record line of every segment, in order, without newlines.
  std::vector<std::string> Lines() const {
    std::vector<std::string> lines;
    for (const std::string& name : SegmentFiles()) {
      std::string text = ReadFile(Dir() + "/" + name);
      size_t start = 0;
      for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
        lines.push_back(text.substr(start, nl - start));
      }
    }
    return lines;
  }

  // All plaintext events of the log.
  std::vector<std::string> Events() const {
    std::vector<std::string> events;
    for (const std::string& line : Lines()) {
      Result<std::string> event = OpenRecord(line, *keyring_);
      EXPECT_TRUE(event.ok()) << event.status().message();
      if (event.ok()) events.push_back(*event);
    }
    return events;
  }

  // Writes `n` records ("event-1" ...) with a fresh log, then closes it.
  void WriteRecords(int n) {
    std::unique_ptr<AuditLog> log = OpenLog(Posix());
    ASSERT_NE(log, nullptr);
    for (int i = 1; i <= n; ++i) {
      Result<int64_t> seq = log->Append("event-" + std::to_string(i));
      ASSERT_TRUE(seq.ok());
      EXPECT_EQ(*seq, i);
    }
  }

  // Replaces the single segment's content with `lines` (each gets its newline).
  void RewriteSegment(const std::vector<std::string>& lines) {
    std::string text;
    for (const std::string& line : lines) text += line + "\n";
    WriteFile(Segment(1), text);
  }

  testing::TempDir tmp_;
  FakeClock clock_{kStartMillis};
  std::unique_ptr<crypto::Keyring> keyring_;
  Faults faults_;
};

TEST_F(AuditLogTest, OneAppendWritesOneEncryptedChainedRecord) {
  const std::string event = R"({"patient":"Patient/canary-7f3a91","action":"read"})";
  {
    std::unique_ptr<AuditLog> log = OpenLog(Posix());
    ASSERT_NE(log, nullptr);
    Result<int64_t> seq = log->Append(event);
    ASSERT_TRUE(seq.ok()) << seq.status().message();
    EXPECT_EQ(*seq, 1);
    EXPECT_TRUE(log->Healthy());
    EXPECT_EQ(log->stats().records, 1u);
    EXPECT_EQ(log->stats().syncs, 1u);
    EXPECT_EQ(log->stats().failed_batches, 0u);
  }
  ASSERT_EQ(SegmentFiles(), std::vector<std::string>{"segment-00000000000000000001.log"});
  std::string bytes = ReadFile(Segment(1));
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(bytes.back(), '\n');
  EXPECT_EQ(std::count(bytes.begin(), bytes.end(), '\n'), 1);
  EXPECT_THAT(bytes.substr(0, bytes.size() - 1),
              ::testing::MatchesRegex(R"(\{"seq":1,"time":1700000000000,"prev":"0{64}","kv":1,)"
                                      R"("ct":"[A-Za-z0-9_-]+","hash":"[0-9a-f]{64}"\})"));
  EXPECT_EQ(bytes.find("canary-7f3a91"), std::string::npos);

  struct stat st {};
  ASSERT_EQ(::stat(Dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(Segment(1).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem;
  EXPECT_EQ(verify.records, 1);
  Result<std::string> opened = OpenRecord(bytes, *keyring_);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  EXPECT_EQ(*opened, event);
}

TEST_F(AuditLogTest, ConcurrentAppendsShareFsyncs) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 125;
  AuditLogOptions options;
  options.append_deadline_ms = 30000;  // sanitizer builds on a shared machine are slow
  std::unique_ptr<AuditLog> log = OpenLog(Posix(), options);
  ASSERT_NE(log, nullptr);
  std::vector<std::vector<int64_t>> seqs(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Result<int64_t> seq = log->Append("event-" + std::to_string(t) + "-" + std::to_string(i));
        if (seq.ok()) seqs[t].push_back(*seq);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  std::vector<int64_t> all;
  for (const auto& s : seqs) all.insert(all.end(), s.begin(), s.end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), 1000u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], static_cast<int64_t>(i + 1));
  AuditLogStats stats = log->stats();
  EXPECT_EQ(stats.records, 1000u);
  EXPECT_LT(stats.syncs, stats.records);
  EXPECT_GE(stats.syncs, 1u);
  log.reset();

  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem << " at " << verify.first_bad_seq;
  EXPECT_EQ(verify.records, 1000);
}

TEST_F(AuditLogTest, RotatesSegmentsAndKeepsSeqContinuous) {
  AuditLogOptions options;
  options.segment_bytes = 1000;
  {
    std::unique_ptr<AuditLog> log = OpenLog(Posix(), options);
    ASSERT_NE(log, nullptr);
    for (int i = 1; i <= 20; ++i) {
      clock_.Advance(1);
      Result<int64_t> seq = log->Append("event-" + std::to_string(i));
      ASSERT_TRUE(seq.ok());
      EXPECT_EQ(*seq, i);
    }
  }
  std::vector<std::string> files = SegmentFiles();
  EXPECT_GE(files.size(), 4u);
  // Each segment is named after its first record and stays within segment_bytes.
  int64_t next = 1;
  for (const std::string& name : files) {
    EXPECT_EQ(Dir() + "/" + name, Segment(next));
    std::string text = ReadFile(Dir() + "/" + name);
    EXPECT_LE(text.size(), 1000u);
    next += std::count(text.begin(), text.end(), '\n');
  }
  EXPECT_EQ(next, 21);
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem;
  EXPECT_EQ(verify.records, 20);
  std::vector<std::string> events = Events();
  ASSERT_EQ(events.size(), 20u);
  EXPECT_EQ(events[19], "event-20");
}

TEST_F(AuditLogTest, ReopenContinuesSeqAndChain) {
  WriteRecords(3);
  {
    std::unique_ptr<AuditLog> log = OpenLog(Posix());
    ASSERT_NE(log, nullptr);
    Result<int64_t> seq = log->Append("event-4");
    ASSERT_TRUE(seq.ok());
    EXPECT_EQ(*seq, 4);
    seq = log->Append("event-5");
    ASSERT_TRUE(seq.ok());
    EXPECT_EQ(*seq, 5);
  }
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem;
  EXPECT_EQ(verify.records, 5);
  EXPECT_EQ(Events(),
            (std::vector<std::string>{"event-1", "event-2", "event-3", "event-4", "event-5"}));
}

TEST_F(AuditLogTest, ReopenContinuesAcrossRotation) {
  AuditLogOptions options;
  options.segment_bytes = 600;
  for (int round = 0; round < 3; ++round) {
    std::unique_ptr<AuditLog> log = OpenLog(Posix(), options);
    ASSERT_NE(log, nullptr);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(log->Append("e").ok());
  }
  EXPECT_GE(SegmentFiles().size(), 3u);
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem;
  EXPECT_EQ(verify.records, 12);
}

TEST_F(AuditLogTest, RecoveryTruncatesPartialLastLine) {
  WriteRecords(3);
  const std::string intact = ReadFile(Segment(1));
  WriteFile(Segment(1), intact + R"({"seq":4,"time":17000000)");
  {
    // Before recovery the torn line is visible to verification.
    VerifyResult verify = Verify();
    EXPECT_FALSE(verify.ok);
    EXPECT_EQ(verify.first_bad_seq, 4);
    EXPECT_EQ(verify.problem, "malformed record");
  }
  {
    std::unique_ptr<AuditLog> log = OpenLog(Posix());
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(ReadFile(Segment(1)), intact);
    Result<int64_t> seq = log->Append("event-4");
    ASSERT_TRUE(seq.ok());
    EXPECT_EQ(*seq, 4);
  }
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem;
  EXPECT_EQ(verify.records, 4);
}

TEST_F(AuditLogTest, OpenRefusesGarbledCompleteTail) {
  WriteRecords(2);
  std::vector<std::string> lines = Lines();
  lines[1] = "not a record";
  RewriteSegment(lines);
  Result<std::unique_ptr<AuditLog>> log = AuditLog::Open(Posix(), *keyring_, clock_);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), StatusCode::kInternal);
  EXPECT_EQ(log.status().message(), "audit log tail is corrupt");
}

TEST_F(AuditLogTest, WriteFailureFailsClosedThenRecovers) {
  std::unique_ptr<AuditLog> log = OpenLog(Faulty());
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->Append("event-1").ok());
  ASSERT_TRUE(log->Append("event-2").ok());

  faults_.fail_next_append = true;
  Result<int64_t> failed = log->Append("failed-event");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(failed.status().message(), "audit trail unavailable");
  EXPECT_FALSE(log->Healthy());

  Result<int64_t> next = log->Append("event-3");
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_EQ(*next, 3);
  EXPECT_TRUE(log->Healthy());
  EXPECT_EQ(log->stats().records, 3u);
  EXPECT_EQ(log->stats().failed_batches, 1u);
  log.reset();

  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem << " at " << verify.first_bad_seq;
  EXPECT_EQ(verify.records, 3);
  EXPECT_EQ(Events(), (std::vector<std::string>{"event-1", "event-2", "event-3"}));
}

TEST_F(AuditLogTest, FsyncFailureIsNeverAcknowledgedAndItsBytesAreTruncated) {
  std::unique_ptr<AuditLog> log = OpenLog(Faulty());
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->Append("event-1").ok());
  const std::string before = ReadFile(Segment(1));

  faults_.failing_syncs = 1;
  Result<int64_t> failed = log->Append("failed-event");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(failed.status().message(), "audit trail unavailable");
  EXPECT_FALSE(log->Healthy());
  // The unsynced bytes are in the file until the next batch truncates them.
  EXPECT_GT(ReadFile(Segment(1)).size(), before.size());

  Result<int64_t> next = log->Append("event-2");
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_EQ(*next, 2);
  EXPECT_TRUE(log->Healthy());
  log.reset();

  std::string after = ReadFile(Segment(1));
  EXPECT_EQ(after.substr(0, before.size()), before);
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem << " at " << verify.first_bad_seq;
  EXPECT_EQ(verify.records, 2);
  EXPECT_EQ(Events(), (std::vector<std::string>{"event-1", "event-2"}));
}

TEST_F(AuditLogTest, FailsFastWhileTruncationFails) {
  std::unique_ptr<AuditLog> log = OpenLog(Faulty());
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->Append("event-1").ok());
  // The batch's fsync fails, then the two following truncation fsyncs fail too.
  faults_.failing_syncs = 3;
  for (int i = 0; i < 3; ++i) {
    Result<int64_t> failed = log->Append("failed-event");
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
    EXPECT_FALSE(log->Healthy());
  }
  EXPECT_EQ(log->stats().failed_batches, 3u);
  Result<int64_t> next = log->Append("event-2");
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_EQ(*next, 2);
  EXPECT_TRUE(log->Healthy());
  log.reset();
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem;
  EXPECT_EQ(Events(), (std::vector<std::string>{"event-1", "event-2"}));
}

TEST_F(AuditLogTest, StalledFsyncMissesDeadlineAndIsNeverAcknowledged) {
  AuditLogOptions options;
  options.append_deadline_ms = 300;
  std::unique_ptr<AuditLog> log = OpenLog(Faulty(), options);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->Append("event-1").ok());

  faults_.StallNextSync();
  auto start = std::chrono::steady_clock::now();
  Result<int64_t> failed = log->Append("stalled-event");
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - start)
                     .count();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(failed.status().message(), "audit trail unavailable");
  EXPECT_GE(elapsed, 300);
  EXPECT_LT(elapsed, 3000);
  EXPECT_FALSE(log->Healthy());

  faults_.Release();
  // The stalled batch completes its fsync after the deadline, fails whole, and the next
  // batch truncates its record away before continuing the chain.
  Result<int64_t> next = log->Append("event-2");
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_EQ(*next, 2);
  EXPECT_TRUE(log->Healthy());
  EXPECT_EQ(log->stats().failed_batches, 1u);
  log.reset();

  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem << " at " << verify.first_bad_seq;
  EXPECT_EQ(verify.records, 2);
  EXPECT_EQ(Events(), (std::vector<std::string>{"event-1", "event-2"}));
}

TEST_F(AuditLogTest, VerifyDetectsFlippedCiphertextByte) {
  WriteRecords(5);
  std::vector<std::string> lines = Lines();
  std::string& line = lines[2];
  size_t pos = line.find(R"("ct":")") + 10;
  line[pos] = line[pos] == 'A' ? 'B' : 'A';
  RewriteSegment(lines);
  VerifyResult verify = Verify();
  EXPECT_FALSE(verify.ok);
  EXPECT_EQ(verify.first_bad_seq, 3);
  EXPECT_EQ(verify.problem, "hash mismatch");
  EXPECT_EQ(verify.records, 2);
  Result<std::string> opened = OpenRecord(line, *keyring_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().message(), "hash mismatch");
}

TEST_F(AuditLogTest, VerifyDetectsDeletedLine) {
  WriteRecords(5);
  std::vector<std::string> lines = Lines();
  lines.erase(lines.begin() + 2);
  RewriteSegment(lines);
  VerifyResult verify = Verify();
  EXPECT_FALSE(verify.ok);
  EXPECT_EQ(verify.first_bad_seq, 3);
  EXPECT_EQ(verify.problem, "sequence gap");
}

TEST_F(AuditLogTest, VerifyDetectsSwappedLines) {
  WriteRecords(5);
  std::vector<std::string> lines = Lines();
  std::swap(lines[2], lines[3]);
  RewriteSegment(lines);
  VerifyResult verify = Verify();
  EXPECT_FALSE(verify.ok);
  EXPECT_EQ(verify.first_bad_seq, 3);
  EXPECT_EQ(verify.problem, "sequence gap");
}

TEST_F(AuditLogTest, VerifyDetectsDuplicatedLine) {
  WriteRecords(3);
  std::vector<std::string> lines = Lines();
  lines.insert(lines.begin() + 2, lines[1]);
  RewriteSegment(lines);
  VerifyResult verify = Verify();
  EXPECT_FALSE(verify.ok);
  EXPECT_EQ(verify.first_bad_seq, 3);
  EXPECT_EQ(verify.problem, "sequence repeat");
}

TEST_F(AuditLogTest, VerifyDetectsRecordFromAnotherChain) {
  WriteRecords(3);
  std::vector<std::string> original = Lines();
  // A second log under the same key: its record 2 is valid on its own but chains to a
  // different record 1.
  std::filesystem::remove_all(Dir());
  WriteRecords(3);
  std::vector<std::string> other = Lines();
  original[1] = other[1];
  RewriteSegment(original);
  VerifyResult verify = Verify();
  EXPECT_FALSE(verify.ok);
  EXPECT_EQ(verify.first_bad_seq, 2);
  EXPECT_EQ(verify.problem, "chain broken");
}

TEST_F(AuditLogTest, VerifyNeedsTheAuditKey) {
  WriteRecords(2);
  Result<std::unique_ptr<crypto::Keyring>> other =
      crypto::Keyring::Open(crypto::RandomBytes(crypto::kKeyBytes), {});
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->AddVersion().ok());
  std::unique_ptr<Directory> dir = Posix();
  Result<VerifyResult> verify = VerifyChain(*dir, **other);
  ASSERT_TRUE(verify.ok());
  EXPECT_FALSE(verify->ok);
  EXPECT_EQ(verify->first_bad_seq, 1);
  EXPECT_EQ(verify->problem, "cannot decrypt");
}

TEST_F(AuditLogTest, VerifyRejectsNonCanonicalLine) {
  WriteRecords(1);
  std::vector<std::string> lines = Lines();
  lines[0].insert(1, " ");
  RewriteSegment(lines);
  VerifyResult verify = Verify();
  EXPECT_FALSE(verify.ok);
  EXPECT_EQ(verify.first_bad_seq, 1);
  EXPECT_EQ(verify.problem, "malformed record");
}

}  // namespace
}  // namespace phigate::audit
