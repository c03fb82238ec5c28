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
  Status Lock(int64_t timeout_ms) override { return real_->Lock(timeout_ms); }
  void Unlock() override { real_->Unlock(); }
  bool Exists(const std::string& name) override { return real_->Exists(name); }
  Status Remove(const std::string& name) override { return real_->Remove(name); }

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

  // Segment file names, sorted (not the lock file).
  std::vector<std::string> SegmentFiles() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(Dir())) {
      std::string name = entry.path().filename().string();
      if (name.rfind("segment-", 0) == 0) names.push_back(name);
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
  EXPECT_THAT(
      bytes.substr(0, bytes.size() - 1),
      ::testing::MatchesRegex(R"(\{"seq":1,"time":1700000000000,"prev":"0{64}","kv":1,"ix":\[\],)"
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
  // The unsynced bytes were truncated before the failure was reported: no other writer
  // (audit_log.h "Several processes") ever chains onto them.
  EXPECT_EQ(ReadFile(Segment(1)), before);

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
  // The batch's fsync fails, then its immediate truncation's fsync, then the truncation
  // fsyncs of the two following batches.
  faults_.failing_syncs = 4;
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

// AppendAsync (the server's path: the io thread does not wait for the fsync).
class AsyncResults {
 public:
  AppendCallback Callback(int index) {
    return [this, index](Result<int64_t> r) {
      std::lock_guard lock(mu_);
      results_.emplace_back(index, std::move(r));
      cv_.notify_all();
    };
  }
  // Waits until `n` callbacks came (at most 5 s).
  bool WaitFor(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(5), [&] { return results_.size() >= n; });
  }
  std::vector<std::pair<int, Result<int64_t>>> results() {
    std::lock_guard lock(mu_);
    return results_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<int, Result<int64_t>>> results_;
};

TEST_F(AuditLogTest, AppendAsyncCompletesEachOnceWhenDurableAndSharesFsyncs) {
  std::unique_ptr<AuditLog> log = OpenLog(Faulty());
  ASSERT_NE(log, nullptr);
  AsyncResults results;
  faults_.StallNextSync();  // the first batch waits, so the rest queue behind it
  for (int i = 0; i < 20; ++i) {
    log->AppendAsync("async-" + std::to_string(i), {}, results.Callback(i));
  }
  faults_.Release();
  ASSERT_TRUE(results.WaitFor(20));
  std::vector<int64_t> seqs(20, 0);
  for (auto& [index, r] : results.results()) {
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(seqs[index], 0) << "called twice";
    seqs[index] = *r;
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(seqs[i], i + 1);
  // Group commit: 20 records in fewer fsyncs than records.
  EXPECT_EQ(log->stats().records, 20u);
  EXPECT_LT(log->stats().syncs, 20u);
  log.reset();
  EXPECT_EQ(results.results().size(), 20u);
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem;
  EXPECT_EQ(verify.records, 20);
}

TEST_F(AuditLogTest, AppendAsyncPastItsDeadlineFailsOnceAndIsNeverAcknowledged) {
  AuditLogOptions options;
  options.append_deadline_ms = 200;
  std::unique_ptr<AuditLog> log = OpenLog(Faulty(), options);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->Append("event-1").ok());
  AsyncResults results;
  faults_.StallNextSync();
  const auto start = std::chrono::steady_clock::now();
  log->AppendAsync("stalled-event", {}, results.Callback(0));
  // The writer is stuck in the fsync: the deadline watcher answers.
  ASSERT_TRUE(results.WaitFor(1));
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count();
  EXPECT_GE(elapsed, 200);
  EXPECT_LT(elapsed, 3000);
  const std::vector<std::pair<int, Result<int64_t>>> answered = results.results();
  ASSERT_EQ(answered.size(), 1u);
  const Result<int64_t>& failed = answered[0].second;
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(failed.status().message(), "audit trail unavailable");
  EXPECT_FALSE(log->Healthy());
  faults_.Release();
  Result<int64_t> next = log->Append("event-2");
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_EQ(*next, 2);
  log.reset();
  EXPECT_EQ(results.results().size(), 1u);  // the late batch did not call it again
  EXPECT_EQ(Events(), (std::vector<std::string>{"event-1", "event-2"}));
}

TEST_F(AuditLogTest, AppendAsyncRejectsTagsThatAreNotHmacsAtOnce) {
  std::unique_ptr<AuditLog> log = OpenLog(Faulty());
  ASSERT_NE(log, nullptr);
  AsyncResults results;
  log->AppendAsync("event", {"not-a-tag"}, results.Callback(0));
  ASSERT_EQ(results.results().size(), 1u);
  EXPECT_EQ(results.results()[0].second.status().code(), StatusCode::kInvalidArgument);
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

// ---- Lookup tags and the reader ----

constexpr char kTagA[] = "0123456789abcdef0123456789abcdef";
constexpr char kTagB[] = "fedcba9876543210fedcba9876543210";

// Every record ForEachRecord visits from `from_seq` (stopping after `limit`), as
// (seq, tags, line).
struct Visited {
  int64_t seq;
  int64_t time_ms;
  std::vector<std::string> tags;
  std::string line;
};
Result<std::vector<Visited>> Visit(Directory& dir, int64_t from_seq, size_t limit = SIZE_MAX) {
  std::vector<Visited> out;
  Status status = ForEachRecord(dir, from_seq, [&](const StoredRecord& r) {
    out.push_back({r.seq, r.time_ms, std::vector<std::string>(r.tags.begin(), r.tags.end()),
                   std::string(r.line)});
    return out.size() < limit;
  });
  if (!status.ok()) return status;
  return out;
}

TEST_F(AuditLogTest, TagsRoundTripThroughForEachRecord) {
  {
    std::unique_ptr<AuditLog> log = OpenLog(Posix());
    ASSERT_NE(log, nullptr);
    ASSERT_TRUE(log->Append("event-1", {kTagA, kTagB}).ok());
    clock_.Advance(5);
    ASSERT_TRUE(log->Append("event-2").ok());
    ASSERT_TRUE(log->Append("event-3", {kTagB}).ok());
  }
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(
      lines[0].find(std::string(R"("kv":1,"ix":[")") + kTagA + "\",\"" + kTagB + R"("],"ct":")"),
      std::string::npos)
      << lines[0];
  EXPECT_NE(lines[1].find(R"("ix":[],)"), std::string::npos) << lines[1];

  std::unique_ptr<Directory> dir = Posix();
  Result<std::vector<Visited>> visited = Visit(*dir, 1);
  ASSERT_TRUE(visited.ok()) << visited.status().message();
  ASSERT_EQ(visited->size(), 3u);
  EXPECT_EQ((*visited)[0].seq, 1);
  EXPECT_EQ((*visited)[0].time_ms, kStartMillis);
  EXPECT_EQ((*visited)[0].tags, (std::vector<std::string>{kTagA, kTagB}));
  EXPECT_EQ((*visited)[1].seq, 2);
  EXPECT_EQ((*visited)[1].time_ms, kStartMillis + 5);
  EXPECT_TRUE((*visited)[1].tags.empty());
  EXPECT_EQ((*visited)[2].tags, (std::vector<std::string>{kTagB}));
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*visited)[i].line, lines[i]);
    Result<std::string> event = OpenRecord((*visited)[i].line, *keyring_);
    ASSERT_TRUE(event.ok()) << event.status().message();
    EXPECT_EQ(*event, "event-" + std::to_string(i + 1));
  }
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem;
  EXPECT_EQ(verify.records, 3);
}

TEST_F(AuditLogTest, AppendRejectsTagsThatAreNotLowerHexHmacs) {
  std::unique_ptr<AuditLog> log = OpenLog(Posix());
  ASSERT_NE(log, nullptr);
  for (const std::string& bad :
       {std::string("0123456789ABCDEF0123456789abcdef"), std::string(kTagA) + "0",
        std::string(kTagA).substr(1), std::string("Patient/canary-7f3a91"), std::string()}) {
    Result<int64_t> seq = log->Append("event", {kTagA, bad});
    ASSERT_FALSE(seq.ok()) << bad;
    EXPECT_EQ(seq.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(seq.status().message(), "audit tag must be 32 lower-case hex characters");
  }
  EXPECT_TRUE(log->Healthy());
  Result<int64_t> seq = log->Append("event", {kTagA});
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(*seq, 1);
}

TEST_F(AuditLogTest, VerifyDetectsFlippedTagByte) {
  {
    std::unique_ptr<AuditLog> log = OpenLog(Posix());
    ASSERT_NE(log, nullptr);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(log->Append("event", {kTagA, kTagB}).ok());
  }
  std::vector<std::string> lines = Lines();
  size_t pos = lines[1].find(kTagB) + 3;
  ASSERT_EQ(lines[1][pos], 'c');
  lines[1][pos] = 'd';  // still a well-formed tag: only the hash reveals it
  RewriteSegment(lines);
  VerifyResult verify = Verify();
  EXPECT_FALSE(verify.ok);
  EXPECT_EQ(verify.first_bad_seq, 2);
  EXPECT_EQ(verify.problem, "hash mismatch");
  EXPECT_EQ(verify.records, 1);
  Result<std::string> opened = OpenRecord(lines[1], *keyring_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().message(), "hash mismatch");
}

TEST_F(AuditLogTest, VerifyRejectsMalformedTags) {
  {
    std::unique_ptr<AuditLog> log = OpenLog(Posix());
    ASSERT_NE(log, nullptr);
    ASSERT_TRUE(log->Append("event", {kTagA}).ok());
  }
  const std::string original = Lines()[0];
  const std::string tag(kTagA);
  for (const std::string& replacement :
       {tag.substr(0, 31) + "A", tag + "0", tag.substr(1), tag + "\",\"", std::string()}) {
    std::string line = original;
    line.replace(line.find(tag), tag.size(), replacement);
    RewriteSegment({line});
    VerifyResult verify = Verify();
    EXPECT_FALSE(verify.ok) << line;
    EXPECT_EQ(verify.first_bad_seq, 1);
    EXPECT_EQ(verify.problem, "malformed record");
    std::unique_ptr<Directory> dir = Posix();
    Status status = ForEachRecord(*dir, 1, [](const StoredRecord&) { return true; });
    EXPECT_EQ(status.code(), StatusCode::kInternal);
    EXPECT_EQ(status.message(), "malformed audit record");
  }
}

TEST_F(AuditLogTest, ForEachRecordSkipsSegmentsBeforeFromSeq) {
  AuditLogOptions options;
  options.segment_bytes = 700;  // a few records per segment
  {
    std::unique_ptr<AuditLog> log = OpenLog(Posix(), options);
    ASSERT_NE(log, nullptr);
    for (int i = 1; i <= 12; ++i) ASSERT_TRUE(log->Append("event-" + std::to_string(i)).ok());
  }
  std::vector<std::string> files = SegmentFiles();
  ASSERT_GE(files.size(), 3u);
  // The first segment's content is garbled: a reader starting past it never reads it.
  const std::string second = files[1];
  const int64_t second_first = std::stoll(second.substr(8, 20));
  WriteFile(Dir() + "/" + files[0], "garbage\n");

  std::unique_ptr<Directory> dir = Posix();
  Result<std::vector<Visited>> visited = Visit(*dir, second_first + 1);
  ASSERT_TRUE(visited.ok()) << visited.status().message();
  ASSERT_EQ(visited->size(), static_cast<size_t>(12 - second_first));
  for (size_t i = 0; i < visited->size(); ++i) {
    EXPECT_EQ((*visited)[i].seq, second_first + 1 + static_cast<int64_t>(i));
    Result<std::string> event = OpenRecord((*visited)[i].line, *keyring_);
    ASSERT_TRUE(event.ok());
    EXPECT_EQ(*event, "event-" + std::to_string((*visited)[i].seq));
  }
  // From the first segment's range, it is read, and its damage reported.
  Result<std::vector<Visited>> from_start = Visit(*dir, second_first - 1);
  ASSERT_FALSE(from_start.ok());
  EXPECT_EQ(from_start.status().code(), StatusCode::kInternal);
  EXPECT_EQ(from_start.status().message(), "malformed audit record");
}

TEST_F(AuditLogTest, ForEachRecordStopsWhenVisitReturnsFalse) {
  WriteRecords(5);
  std::unique_ptr<Directory> dir = Posix();
  Result<std::vector<Visited>> visited = Visit(*dir, 2, /*limit=*/2);
  ASSERT_TRUE(visited.ok());
  ASSERT_EQ(visited->size(), 2u);
  EXPECT_EQ((*visited)[0].seq, 2);
  EXPECT_EQ((*visited)[1].seq, 3);
  // Past the end: nothing, and no error.
  visited = Visit(*dir, 6);
  ASSERT_TRUE(visited.ok());
  EXPECT_TRUE(visited->empty());
}

TEST_F(AuditLogTest, ForEachRecordSkipsAPartialLastLine) {
  WriteRecords(3);
  WriteFile(Segment(1), ReadFile(Segment(1)) + R"({"seq":4,"time":17000000)");
  std::unique_ptr<Directory> dir = Posix();
  Result<std::vector<Visited>> visited = Visit(*dir, 1);
  ASSERT_TRUE(visited.ok()) << visited.status().message();
  ASSERT_EQ(visited->size(), 3u);
  EXPECT_EQ(visited->back().seq, 3);
}

// ---- Several writers on one trail (two Directory objects: flock excludes them) ----

TEST_F(AuditLogTest, TwoWritersInterleaveOneChain) {
  std::unique_ptr<AuditLog> server = OpenLog(Posix());
  std::unique_ptr<AuditLog> cli = OpenLog(Posix());
  ASSERT_NE(server, nullptr);
  ASSERT_NE(cli, nullptr);
  std::vector<std::string> expected;
  for (int i = 1; i <= 6; ++i) {
    AuditLog& log = i % 3 == 0 ? *cli : *server;
    std::string event = (i % 3 == 0 ? "cli-" : "server-") + std::to_string(i);
    Result<int64_t> seq = log.Append(event, {kTagA});
    ASSERT_TRUE(seq.ok()) << seq.status().message();
    EXPECT_EQ(*seq, i);
    expected.push_back(event);
  }
  server.reset();
  cli.reset();
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem << " at " << verify.first_bad_seq;
  EXPECT_EQ(verify.records, 6);
  EXPECT_EQ(Events(), expected);
}

TEST_F(AuditLogTest, TwoWritersAppendingConcurrentlyKeepSeqsContiguous) {
  constexpr int kPerWriter = 150;
  AuditLogOptions options;
  options.segment_bytes = 4000;  // rotations by both writers
  options.append_deadline_ms = 30000;
  std::unique_ptr<AuditLog> logs[2] = {OpenLog(Posix(), options), OpenLog(Posix(), options)};
  ASSERT_NE(logs[0], nullptr);
  ASSERT_NE(logs[1], nullptr);
  std::vector<int64_t> seqs[2];
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, w, t] {
        for (int i = 0; i < kPerWriter / 2; ++i) {
          Result<int64_t> seq = logs[w]->Append("w" + std::to_string(w) + "-" + std::to_string(t));
          ASSERT_TRUE(seq.ok()) << seq.status().message();
          static std::mutex mu;
          std::lock_guard<std::mutex> lock(mu);
          seqs[w].push_back(*seq);
        }
      });
    }
  }
  for (std::thread& thread : threads) thread.join();
  logs[0].reset();
  logs[1].reset();

  std::vector<int64_t> all = seqs[0];
  all.insert(all.end(), seqs[1].begin(), seqs[1].end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), 2u * kPerWriter);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], static_cast<int64_t>(i + 1));
  EXPECT_GE(SegmentFiles().size(), 3u);
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem << " at " << verify.first_bad_seq;
  EXPECT_EQ(verify.records, 2 * kPerWriter);
  // Each writer's records hold its own events, at the seqs it was told.
  std::vector<std::string> events = Events();
  for (int w = 0; w < 2; ++w) {
    for (int64_t seq : seqs[w]) {
      EXPECT_EQ(events[static_cast<size_t>(seq - 1)].substr(0, 3), "w" + std::to_string(w) + "-");
    }
  }
}

TEST_F(AuditLogTest, ANewSegmentStartedByOneWriterIsContinuedByTheOther) {
  AuditLogOptions options;
  options.segment_bytes = 700;
  std::unique_ptr<AuditLog> a = OpenLog(Posix(), options);
  std::unique_ptr<AuditLog> b = OpenLog(Posix(), options);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->Append("b-1").ok());
  int64_t seq = 1;
  while (SegmentFiles().size() < 2) {
    Result<int64_t> next = a->Append("a");
    ASSERT_TRUE(next.ok());
    seq = *next;
    ASSERT_LT(seq, 100);
  }
  ASSERT_EQ(SegmentFiles().back(), "segment-" + std::string(19, '0') + std::to_string(seq) + ".log")
      << "a started segment " << seq;
  // b's tail was in the first segment: it must continue a's new one, not its old one.
  Result<int64_t> next = b->Append("b-2");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, seq + 1);
  EXPECT_EQ(SegmentFiles().size(), 2u);
  std::string text = ReadFile(Dir() + "/" + SegmentFiles().back());
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
  a.reset();
  b.reset();
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem << " at " << verify.first_bad_seq;
  EXPECT_EQ(verify.records, seq + 1);
}

TEST_F(AuditLogTest, AWriterWaitingForTheLockFailsClosedInBoundedTime) {
  AuditLogOptions options;
  options.append_deadline_ms = 200;
  std::unique_ptr<AuditLog> log = OpenLog(Posix(), options);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->Append("event-1").ok());
  std::unique_ptr<Directory> other = Posix();
  ASSERT_TRUE(other->Lock(1000).ok());
  Result<int64_t> failed = log->Append("event-2");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(failed.status().message(), "audit trail unavailable");
  EXPECT_FALSE(log->Healthy());
  // Open waits for the lock too.
  Result<std::unique_ptr<AuditLog>> blocked = AuditLog::Open(Posix(), *keyring_, clock_, options);
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(blocked.status().message(), "audit trail locked by another writer");
  other->Unlock();
  Result<int64_t> next = log->Append("event-2");
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_EQ(*next, 2);
  EXPECT_TRUE(log->Healthy());
}

TEST_F(AuditLogTest, FailedBatchKeepsTheLockUntilItsBytesAreTruncated) {
  AuditLogOptions options;
  options.append_deadline_ms = 300;
  std::unique_ptr<AuditLog> faulty = OpenLog(Faulty(), options);
  ASSERT_NE(faulty, nullptr);
  ASSERT_TRUE(faulty->Append("event-1").ok());
  // The batch's fsync and its immediate truncation's fsync fail: the truncation is not
  // known to be durable.
  faults_.failing_syncs = 2;
  ASSERT_FALSE(faulty->Append("failed-event").ok());
  // Another writer cannot chain onto (or be truncated after) them: it waits, and fails.
  std::unique_ptr<Directory> other = Posix();
  Status locked = other->Lock(100);
  EXPECT_EQ(locked.code(), StatusCode::kUnavailable);
  EXPECT_EQ(locked.message(), "audit trail locked by another writer");
  // The next batch truncates, writes, and lets go.
  ASSERT_TRUE(faulty->Append("event-2").ok());
  ASSERT_TRUE(other->Lock(1000).ok());
  other->Unlock();
  std::unique_ptr<AuditLog> second = OpenLog(std::move(other), options);
  ASSERT_NE(second, nullptr);
  Result<int64_t> seq = second->Append("event-3");
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(*seq, 3);
  faulty.reset();
  second.reset();
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem << " at " << verify.first_bad_seq;
  EXPECT_EQ(Events(), (std::vector<std::string>{"event-1", "event-2", "event-3"}));
}

// ---- Group commit interval (commit_interval_us: real steady-clock time) ----

// Blocks until the writer is inside the stalled Sync (the stall flag is consumed there),
// so the batch being written is exactly what was queued before. At most 5 s.
bool WaitUntilStalled(Faults& faults) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < until) {
    {
      std::lock_guard<std::mutex> lock(faults.mu);
      if (!faults.stall_next_sync) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

TEST_F(AuditLogTest, LoneRecordIsWrittenAtOnce) {
  AuditLogOptions options;
  options.commit_interval_us = 2'000'000;
  std::unique_ptr<AuditLog> log = OpenLog(Posix(), options);
  ASSERT_NE(log, nullptr);
  // Each Append waits for its own durability, so every batch holds one record: none waits
  // for the interval (5 waits would take 8 s).
  const auto start = std::chrono::steady_clock::now();
  for (int i = 1; i <= 5; ++i) {
    Result<int64_t> seq = log->Append("event-" + std::to_string(i));
    ASSERT_TRUE(seq.ok()) << seq.status().message();
    EXPECT_EQ(*seq, i);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_EQ(log->stats().records, 5u);
  EXPECT_EQ(log->stats().syncs, 5u);
}

TEST_F(AuditLogTest, UnderLoadBatchesWaitForTheInterval) {
  AuditLogOptions options;
  options.commit_interval_us = 300'000;
  std::unique_ptr<AuditLog> log = OpenLog(Faulty(), options);
  ASSERT_NE(log, nullptr);
  AsyncResults results;
  // Completion times, written by the writer before the AsyncResults callback (whose mutex
  // publishes them to WaitFor).
  std::vector<std::chrono::steady_clock::time_point> done_at(41);
  auto timed = [&](int index) {
    return [&done_at, index, callback = results.Callback(index)](Result<int64_t> r) {
      done_at[static_cast<size_t>(index)] = std::chrono::steady_clock::now();
      callback(std::move(r));
    };
  };
  // Batch 1: record 0 alone, held in its fsync while records 1..20 queue behind it.
  faults_.StallNextSync();
  log->AppendAsync("event-0", {}, timed(0));
  ASSERT_TRUE(WaitUntilStalled(faults_));
  for (int i = 1; i <= 20; ++i) log->AppendAsync("event-" + std::to_string(i), {}, timed(i));
  const auto released = std::chrono::steady_clock::now();
  faults_.Release();
  // Batch 2 follows a lone record: written at once, all 20 records in one fsync, and it
  // begins after `released` (it needs batch 1's fsync to return).
  ASSERT_TRUE(results.WaitFor(21));
  EXPECT_EQ(log->stats().syncs, 2u);
  // Batches 3..: they follow a batch of 20, so none begins before batch 2's write began
  // plus the interval, whenever these records arrive.
  for (int i = 21; i <= 40; ++i) log->AppendAsync("event-" + std::to_string(i), {}, timed(i));
  ASSERT_TRUE(results.WaitFor(41));
  for (auto& [index, r] : results.results()) {
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(*r, index + 1);
  }
  for (int i = 21; i <= 40; ++i) {
    EXPECT_GE(done_at[static_cast<size_t>(i)] - released, std::chrono::milliseconds(300))
        << "record " << i;
    EXPECT_LT(done_at[static_cast<size_t>(i)] - released, std::chrono::seconds(3))
        << "record " << i;
  }
  // The 20 late records share one fsync (two if queuing them outlasted the interval).
  EXPECT_EQ(log->stats().records, 41u);
  EXPECT_GE(log->stats().syncs, 3u);
  EXPECT_LE(log->stats().syncs, 4u);
  log.reset();
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem;
  EXPECT_EQ(verify.records, 41);
}

TEST_F(AuditLogTest, MaxBatchEndsTheIntervalEarly) {
  AuditLogOptions options;
  options.commit_interval_us = 5'000'000;
  options.max_batch = 4;
  options.append_deadline_ms = 10'000;  // a missed wake-up shows as time, not a deadline
  std::unique_ptr<AuditLog> log = OpenLog(Faulty(), options);
  ASSERT_NE(log, nullptr);
  AsyncResults results;
  // Batch 1: record 1 alone (stalled); batch 2: records 2..5, a full batch of 4.
  faults_.StallNextSync();
  log->AppendAsync("event-1", {}, results.Callback(1));
  ASSERT_TRUE(WaitUntilStalled(faults_));
  for (int i = 2; i <= 5; ++i)
    log->AppendAsync("event-" + std::to_string(i), {}, results.Callback(i));
  faults_.Release();
  ASSERT_TRUE(results.WaitFor(5));
  EXPECT_EQ(log->stats().syncs, 2u);
  // After a multi-record batch the writer waits up to 5 s, but a full queue (max_batch)
  // starts the batch at once: 8 records, two full batches, well under the interval.
  const auto start = std::chrono::steady_clock::now();
  for (int i = 6; i <= 13; ++i) {
    log->AppendAsync("event-" + std::to_string(i), {}, results.Callback(i));
  }
  ASSERT_TRUE(results.WaitFor(13));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  for (auto& [index, r] : results.results()) {
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(*r, index);
  }
  EXPECT_EQ(log->stats().records, 13u);
  EXPECT_EQ(log->stats().syncs, 4u);
}

// ---- Group commit hint (RequestStarted / RequestEnded) ----

// Leaves `log` just past a batch of four records, so that its next batch waits for the
// commit interval unless the hint ends the wait: record 1 alone (held in its fsync while
// records 2..5 queue), then records 2..5 in one batch. Every record is announced with
// RequestStarted first, as the server does, so the hint is in use and its count is back
// at zero. `released`: a time before batch 2's write began (the interval counts from it).
void HintedBatchOfFour(AuditLog& log, Faults& faults, AsyncResults& results,
                       std::chrono::steady_clock::time_point& released) {
  faults.StallNextSync();
  log.RequestStarted();
  log.AppendAsync("event-1", {}, results.Callback(1));
  ASSERT_TRUE(WaitUntilStalled(faults));
  for (int i = 2; i <= 5; ++i) {
    log.RequestStarted();
    log.AppendAsync("event-" + std::to_string(i), {}, results.Callback(i));
  }
  released = std::chrono::steady_clock::now();
  faults.Release();
  ASSERT_TRUE(results.WaitFor(5));
  ASSERT_EQ(log.stats().syncs, 2u);
  ASSERT_EQ(log.stats().records, 5u);
}

TEST_F(AuditLogTest, DrainedRequestsEndTheIntervalEarly) {
  AuditLogOptions options;
  options.commit_interval_us = 5'000'000;
  options.append_deadline_ms = 10'000;  // a missed wake-up shows as time, not a deadline
  std::unique_ptr<AuditLog> log = OpenLog(Faulty(), options);
  ASSERT_NE(log, nullptr);
  AsyncResults results;
  std::chrono::steady_clock::time_point released;
  ASSERT_NO_FATAL_FAILURE(HintedBatchOfFour(*log, faults_, results, released));
  // Three requests in flight; each appends. The writer may take nothing while one of them
  // is still producing (the interval is 5 s), and once the third record is queued none is:
  // all three share one fsync, written at once rather than after the interval.
  const auto start = std::chrono::steady_clock::now();
  for (int i = 6; i <= 8; ++i) log->RequestStarted();
  for (int i = 6; i <= 8; ++i) {
    log->AppendAsync("event-" + std::to_string(i), {}, results.Callback(i));
  }
  ASSERT_TRUE(results.WaitFor(8));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  for (auto& [index, r] : results.results()) {
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(*r, index);
  }
  EXPECT_EQ(log->stats().records, 8u);
  EXPECT_EQ(log->stats().syncs, 3u);
  log.reset();
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem;
  EXPECT_EQ(verify.records, 8);
}

TEST_F(AuditLogTest, AStillProducingRequestHoldsTheBatchForTheInterval) {
  AuditLogOptions options;
  options.commit_interval_us = 600'000;
  options.append_deadline_ms = 10'000;
  std::unique_ptr<AuditLog> log = OpenLog(Faulty(), options);
  ASSERT_NE(log, nullptr);
  AsyncResults results;
  std::chrono::steady_clock::time_point released;
  ASSERT_NO_FATAL_FAILURE(HintedBatchOfFour(*log, faults_, results, released));
  // Two requests in flight, one appends: the other may still append, so the record waits
  // out the interval, counted from batch 2's write (which began after `released`).
  std::chrono::steady_clock::time_point done_at;
  log->RequestStarted();
  log->RequestStarted();
  log->AppendAsync("event-6", {}, [&done_at, callback = results.Callback(6)](Result<int64_t> r) {
    done_at = std::chrono::steady_clock::now();
    callback(std::move(r));
  });
  ASSERT_TRUE(results.WaitFor(6));
  EXPECT_GE(done_at - released, std::chrono::milliseconds(600));
  EXPECT_LT(done_at - released, std::chrono::seconds(3));
  EXPECT_EQ(log->stats().syncs, 3u);
  // The other request ends without a record; the count is back at zero, and the next
  // request's record (after a lone record: no interval) is written as usual.
  log->RequestEnded();
  log->RequestStarted();
  log->AppendAsync("event-7", {}, results.Callback(7));
  ASSERT_TRUE(results.WaitFor(7));
  for (auto& [index, r] : results.results()) {
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(*r, index);
  }
  EXPECT_EQ(log->stats().records, 7u);
  EXPECT_EQ(log->stats().syncs, 4u);
  log.reset();
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem;
  EXPECT_EQ(verify.records, 7);
}

TEST_F(AuditLogTest, RequestEndedWithQueuedRecordsWakesTheWriter) {
  AuditLogOptions options;
  options.commit_interval_us = 5'000'000;
  options.append_deadline_ms = 10'000;
  std::unique_ptr<AuditLog> log = OpenLog(Faulty(), options);
  ASSERT_NE(log, nullptr);
  AsyncResults results;
  std::chrono::steady_clock::time_point released;
  ASSERT_NO_FATAL_FAILURE(HintedBatchOfFour(*log, faults_, results, released));
  // Two requests in flight, one appends: its record waits (the other may still append).
  log->RequestStarted();
  log->RequestStarted();
  log->AppendAsync("event-6", {}, results.Callback(6));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(results.results().size(), 5u);  // not written before the interval's end
  EXPECT_EQ(log->stats().syncs, 2u);
  // The other ends without a record: nothing more is coming, so the writer stops waiting.
  const auto ended = std::chrono::steady_clock::now();
  log->RequestEnded();
  ASSERT_TRUE(results.WaitFor(6));
  EXPECT_LT(std::chrono::steady_clock::now() - ended, std::chrono::seconds(2));
  for (auto& [index, r] : results.results()) {
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(*r, index);
  }
  EXPECT_EQ(log->stats().records, 6u);
  EXPECT_EQ(log->stats().syncs, 3u);
}

// A request that records synchronously (a change inside its transaction, a /readyz probe)
// waits in Append: meanwhile it produces nothing else, so its own record is not held for
// the interval; once the wait is over it counts again until it ends.
TEST_F(AuditLogTest, ASynchronousAppendDoesNotHoldItsOwnBatch) {
  AuditLogOptions options;
  options.commit_interval_us = 5'000'000;
  options.append_deadline_ms = 10'000;  // a held batch shows as time, not a deadline
  std::unique_ptr<AuditLog> log = OpenLog(Faulty(), options);
  ASSERT_NE(log, nullptr);
  AsyncResults results;
  std::chrono::steady_clock::time_point released;
  ASSERT_NO_FATAL_FAILURE(HintedBatchOfFour(*log, faults_, results, released));

  log->RequestStarted();
  const auto start = std::chrono::steady_clock::now();
  Result<int64_t> seq = log->Append("event-6");
  ASSERT_TRUE(seq.ok()) << seq.status().message();
  EXPECT_EQ(*seq, 6);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(log->stats().syncs, 3u);

  // Still in flight after its Append: a record of another request, after a lone record,
  // is written at once; then this request ends, and the counts are back at zero.
  log->RequestEnded();
  log->RequestStarted();
  log->AppendAsync("event-7", {}, results.Callback(7));
  ASSERT_TRUE(results.WaitFor(6));  // 1-5 and 7
  EXPECT_EQ(log->stats().records, 7u);
  log.reset();
  VerifyResult verify = Verify();
  EXPECT_TRUE(verify.ok) << verify.problem;
  EXPECT_EQ(verify.records, 7);
}

}  // namespace
}  // namespace phigate::audit
