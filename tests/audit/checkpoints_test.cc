#include "audit/checkpoints.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "core/base64.h"
#include "core/clock.h"
#include "crypto/crypto.h"
#include "crypto/key_file.h"
#include "crypto/keyring.h"
#include "crypto/temp_dir.h"

namespace phigate::audit {
namespace {

constexpr int64_t kStartMillis = 1700000000000;
constexpr int64_t kNever = int64_t{1} << 40;  // an every_ms no test reaches

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

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    lines.push_back(text.substr(start, nl - start));
  }
  return lines;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  return text;
}

// A string or number field of a record or checkpoint line.
std::string Field(const std::string& line, const std::string& name) {
  std::string key = "\"" + name + "\":";
  size_t at = line.find(key);
  EXPECT_NE(at, std::string::npos) << name;
  if (at == std::string::npos) return "";
  at += key.size();
  if (line[at] == '"') {
    ++at;
    return line.substr(at, line.find('"', at) - at);
  }
  return line.substr(at, line.find_first_of(",}", at) - at);
}
int64_t Seq(const std::string& line) { return std::stoll(Field(line, "seq")); }

// Fails the Sync of the checkpoint file (of segments, with `segments`) while `fail` is set.
class CheckpointFaultFile final : public SegmentFile {
 public:
  CheckpointFaultFile(std::unique_ptr<SegmentFile> real, std::atomic<bool>& fail)
      : real_(std::move(real)), fail_(fail) {}
  Status Append(std::string_view bytes) override {
    // The bytes land, the fsync below fails: the next write must truncate them.
    return real_->Append(bytes);
  }
  Status Sync() override {
    if (fail_.load()) return Unavailable("injected fsync failure");
    return real_->Sync();
  }
  Status Truncate(int64_t size) override { return real_->Truncate(size); }
  int64_t Size() const override { return real_->Size(); }

 private:
  std::unique_ptr<SegmentFile> real_;
  std::atomic<bool>& fail_;
};

class CheckpointFaultDirectory final : public Directory {
 public:
  CheckpointFaultDirectory(std::unique_ptr<Directory> real, std::atomic<bool>& fail,
                           bool segments = false)
      : real_(std::move(real)), fail_(fail), segments_(segments) {}
  Result<std::unique_ptr<SegmentFile>> OpenForAppend(const std::string& name) override {
    ASSIGN_OR_RETURN(std::unique_ptr<SegmentFile> file, real_->OpenForAppend(name));
    if (name != CheckpointSigner::kFileName && !segments_) return file;
    return std::unique_ptr<SegmentFile>(
        std::make_unique<CheckpointFaultFile>(std::move(file), fail_));
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
  std::atomic<bool>& fail_;
  const bool segments_;
};

// Polls `done` (the writer checkpoints after acknowledging, so tests wait for it) for at
// most 10 s of real time; true once it holds.
bool Eventually(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

class CheckpointsTest : public ::testing::Test {
 protected:
  CheckpointsTest() {
    Result<std::unique_ptr<crypto::Keyring>> ring =
        crypto::Keyring::Open(crypto::RandomBytes(crypto::kKeyBytes), {});
    EXPECT_TRUE(ring.ok());
    keyring_ = std::move(ring).value();
    EXPECT_TRUE(keyring_->AddVersion().ok());
    Result<crypto::PrivateKey> key = crypto::PrivateKey::Generate(crypto::JwsAlg::kEdDSA);
    EXPECT_TRUE(key.ok());
    key_pem_ = key->ToPem();
  }

  std::string Dir() const { return tmp_.path() + "/audit"; }
  std::string CheckpointsPath() const { return Dir() + "/checkpoints.log"; }
  crypto::PrivateKey Key() const {
    return std::move(crypto::PrivateKey::FromPem(key_pem_)).value();
  }

  std::unique_ptr<Directory> Posix() {
    Result<std::unique_ptr<Directory>> dir = PosixDirectory(Dir());
    EXPECT_TRUE(dir.ok()) << dir.status().message();
    return std::move(dir).value();
  }

  std::unique_ptr<AuditLog> OpenLog(std::unique_ptr<Directory> dir, CheckpointOptions cp,
                                    AuditLogOptions options = {}) {
    Result<std::unique_ptr<CheckpointSigner>> signer = CheckpointSigner::Create(Key(), cp);
    EXPECT_TRUE(signer.ok()) << signer.status().message();
    Result<std::unique_ptr<AuditLog>> log =
        AuditLog::Open(std::move(dir), *keyring_, clock_, options, std::move(signer).value());
    EXPECT_TRUE(log.ok()) << log.status().message();
    return log.ok() ? std::move(log).value() : nullptr;
  }

  // `n` records with a fresh log checkpointing every `every` records, then closed.
  void WriteRecords(int n, int every, AuditLogOptions options = {}) {
    std::unique_ptr<AuditLog> log = OpenLog(Posix(), {every, kNever}, options);
    ASSERT_NE(log, nullptr);
    for (int i = 1; i <= n; ++i) {
      Result<int64_t> seq = log->Append("event-" + std::to_string(i));
      ASSERT_TRUE(seq.ok());
      clock_.Advance(1);
    }
  }

  std::vector<std::string> Checkpoints() const { return SplitLines(ReadFile(CheckpointsPath())); }
  std::vector<int64_t> CheckpointSeqs() const {
    std::vector<int64_t> seqs;
    for (const std::string& line : Checkpoints()) {
      if (line.rfind("{\"purge\":", 0) != 0) seqs.push_back(Seq(line));  // not purge lines
    }
    return seqs;
  }

  std::vector<std::string> SegmentFiles() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(Dir())) {
      std::string name = entry.path().filename().string();
      if (name.rfind("segment-", 0) == 0) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  std::string Segment1() const { return Dir() + "/" + SegmentFiles().front(); }

  VerifyResult Verify(const std::string& checkpoints_text, const crypto::PublicKey& key) {
    std::unique_ptr<Directory> dir = Posix();
    Result<VerifyResult> result = VerifyWithCheckpoints(*dir, *keyring_, checkpoints_text, key);
    EXPECT_TRUE(result.ok()) << result.status().message();
    return result.ok() ? *result : VerifyResult{};
  }
  VerifyResult Verify() { return Verify(ReadFile(CheckpointsPath()), Key().Public()); }

  testing::TempDir tmp_;
  FakeClock clock_{kStartMillis};
  std::unique_ptr<crypto::Keyring> keyring_;
  std::string key_pem_;
};

TEST_F(CheckpointsTest, CheckpointsEveryNRecordsChainedAndAtShutdown) {
  {
    std::unique_ptr<AuditLog> log = OpenLog(Posix(), {3, kNever});
    ASSERT_NE(log, nullptr);
    for (int i = 1; i <= 7; ++i) ASSERT_TRUE(log->Append("event").ok());
    ASSERT_TRUE(Eventually([&] { return log->stats().checkpoints == 2; }));
    EXPECT_EQ(CheckpointSeqs(), (std::vector<int64_t>{3, 6}));
    EXPECT_TRUE(log->Healthy());
  }
  // The shutdown checkpoint covers the tail.
  std::vector<std::string> lines = Checkpoints();
  ASSERT_EQ(CheckpointSeqs(), (std::vector<int64_t>{3, 6, 7}));
  EXPECT_EQ(Field(lines[0], "prev_sig"), "");
  EXPECT_EQ(Field(lines[1], "prev_sig"), Field(lines[0], "sig"));
  EXPECT_EQ(Field(lines[2], "prev_sig"), Field(lines[1], "sig"));
  std::vector<std::string> records = SplitLines(ReadFile(Segment1()));
  ASSERT_EQ(records.size(), 7u);
  EXPECT_EQ(Field(lines[1], "hash"), Field(records[5], "hash"));
  // Ed25519 signatures are deterministic: the line is exactly CheckpointLine's.
  EXPECT_EQ(lines[0] + "\n", CheckpointLine(Key(), 3, Field(records[2], "hash"), kStartMillis, ""));

  VerifyResult result = Verify();
  EXPECT_TRUE(result.ok) << result.problem;
  EXPECT_EQ(result.records, 7);
  struct stat st {};
  ASSERT_EQ(::stat(CheckpointsPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(CheckpointsTest, TimeTriggerAfterABatch) {
  std::unique_ptr<AuditLog> log = OpenLog(Posix(), {1000, 500});
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->Append("event-1").ok());
  clock_.Advance(499);
  ASSERT_TRUE(log->Append("event-2").ok());
  EXPECT_EQ(log->stats().checkpoints, 0u);
  clock_.Advance(1);
  ASSERT_TRUE(log->Append("event-3").ok());
  ASSERT_TRUE(Eventually([&] { return log->stats().checkpoints == 1; }));
  std::vector<std::string> lines = Checkpoints();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(Seq(lines[0]), 3);
  EXPECT_EQ(Field(lines[0], "time"), std::to_string(kStartMillis + 500));
}

TEST_F(CheckpointsTest, TimeTriggerWakesAnIdleWriter) {
  std::unique_ptr<AuditLog> log = OpenLog(Posix(), {1000, 20});
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->Append("event-1").ok());
  EXPECT_EQ(log->stats().checkpoints, 0u);  // the fake clock has not moved
  clock_.Advance(20);
  // No further Append: the writer's timed wait notices the elapsed (fake) time.
  ASSERT_TRUE(Eventually([&] { return log->stats().checkpoints == 1; }));
  EXPECT_EQ(CheckpointSeqs(), (std::vector<int64_t>{1}));
  // Nothing new: no second checkpoint however much time passes.
  clock_.Advance(1000);
  ASSERT_TRUE(log->Append("event-2").ok());
  ASSERT_TRUE(Eventually([&] { return log->stats().checkpoints == 2; }));
  EXPECT_EQ(CheckpointSeqs(), (std::vector<int64_t>{1, 2}));
}

TEST_F(CheckpointsTest, ReopenContinuesTheSignatureChain) {
  WriteRecords(4, 2);
  ASSERT_EQ(CheckpointSeqs(), (std::vector<int64_t>{2, 4}));
  // A crash mid-write left a partial checkpoint line: truncated at Open.
  WriteFile(CheckpointsPath(), ReadFile(CheckpointsPath()) + "{\"seq\":5,\"ha");
  WriteRecords(2, 2);
  EXPECT_EQ(CheckpointSeqs(), (std::vector<int64_t>{2, 4, 6}));
  VerifyResult result = Verify();
  EXPECT_TRUE(result.ok) << result.problem;
  EXPECT_EQ(result.records, 6);
}

TEST_F(CheckpointsTest, OpenRefusesCheckpointBeyondTheRecords) {
  WriteRecords(4, 2);
  std::vector<std::string> records = SplitLines(ReadFile(Segment1()));
  records.resize(3);
  WriteFile(Segment1(), JoinLines(records));
  Result<std::unique_ptr<CheckpointSigner>> signer = CheckpointSigner::Create(Key(), {2, kNever});
  ASSERT_TRUE(signer.ok());
  Result<std::unique_ptr<AuditLog>> log =
      AuditLog::Open(Posix(), *keyring_, clock_, {}, std::move(signer).value());
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), StatusCode::kInternal);
  EXPECT_EQ(log.status().message(), "audit records missing before a checkpoint");
}

TEST_F(CheckpointsTest, FailedCheckpointMakesUnhealthyButAcknowledgesRecords) {
  std::atomic<bool> fail{false};
  std::unique_ptr<AuditLog> log =
      OpenLog(std::make_unique<CheckpointFaultDirectory>(Posix(), fail), {1, kNever});
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->Append("event-1").ok());
  ASSERT_TRUE(Eventually([&] { return log->stats().checkpoints == 1; }));
  fail = true;
  Result<int64_t> seq = log->Append("event-2");
  ASSERT_TRUE(seq.ok());  // durable before the checkpoint was tried
  EXPECT_EQ(*seq, 2);
  ASSERT_TRUE(Eventually([&] { return log->stats().failed_checkpoints >= 1; }));
  EXPECT_FALSE(log->Healthy());
  fail = false;
  ASSERT_TRUE(log->Append("event-3").ok());
  ASSERT_TRUE(Eventually([&] { return log->Healthy() && CheckpointSeqs().back() == 3; }));
  // The failed attempt's bytes were truncated before the next checkpoint.
  EXPECT_EQ(CheckpointSeqs(), (std::vector<int64_t>{1, 3}));
  log.reset();
  VerifyResult result = Verify();
  EXPECT_TRUE(result.ok) << result.problem;
  EXPECT_EQ(result.records, 3);
}

TEST_F(CheckpointsTest, SuccessfulCheckpointDoesNotHideAFailedBatch) {
  std::atomic<bool> fail{false};
  std::unique_ptr<AuditLog> log = OpenLog(
      std::make_unique<CheckpointFaultDirectory>(Posix(), fail, /*segments=*/true), {1000, 20});
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->Append("event-1").ok());
  fail = true;  // the segment's fsync fails
  Result<int64_t> failed = log->Append("event-2");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(log->Healthy());
  fail = false;
  clock_.Advance(20);  // the idle writer checkpoints record 1
  ASSERT_TRUE(Eventually([&] { return log->stats().checkpoints == 1; }));
  EXPECT_EQ(CheckpointSeqs(), (std::vector<int64_t>{1}));
  EXPECT_FALSE(log->Healthy());
  ASSERT_TRUE(log->Append("event-3").ok());
  EXPECT_TRUE(log->Healthy());
  log.reset();
  VerifyResult result = Verify();
  EXPECT_TRUE(result.ok) << result.problem;
  EXPECT_EQ(result.records, 2);
}

TEST_F(CheckpointsTest, CreateRejectsNonEd25519KeyAndBadOptions) {
  Result<crypto::PrivateKey> es = crypto::PrivateKey::Generate(crypto::JwsAlg::kES256);
  ASSERT_TRUE(es.ok());
  Result<std::unique_ptr<CheckpointSigner>> signer =
      CheckpointSigner::Create(std::move(es).value(), {});
  ASSERT_FALSE(signer.ok());
  EXPECT_EQ(signer.status().code(), StatusCode::kInvalidArgument);
  signer = CheckpointSigner::Create(Key(), {0, 1000});
  ASSERT_FALSE(signer.ok());
  EXPECT_EQ(signer.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(CheckpointsTest, LoadOrCreateSigningKey) {
  std::string path = tmp_.path() + "/audit-signing.pem";
  Result<crypto::PrivateKey> created = LoadOrCreateAuditSigningKey(path);
  ASSERT_TRUE(created.ok()) << created.status().message();
  EXPECT_EQ(created->alg(), crypto::JwsAlg::kEdDSA);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Result<crypto::PrivateKey> loaded = LoadOrCreateAuditSigningKey(path);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->PublicJwkJson("k"), created->PublicJwkJson("k"));

  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  Result<crypto::PrivateKey> open = LoadOrCreateAuditSigningKey(path);
  ASSERT_FALSE(open.ok());
  EXPECT_EQ(open.status().code(), StatusCode::kPermissionDenied);

  std::string es_path = tmp_.path() + "/es.pem";
  Result<crypto::PrivateKey> es = crypto::PrivateKey::Generate(crypto::JwsAlg::kES256);
  ASSERT_TRUE(es.ok());
  ASSERT_TRUE(crypto::WriteSecretFile(es_path, es->ToPem()).ok());
  Result<crypto::PrivateKey> wrong = LoadOrCreateAuditSigningKey(es_path);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(wrong.status().message(), "audit signing key " + es_path + " is not an Ed25519 key");
}

// ---- The tamper matrix: 10 records, checkpoints at 2, 4, 6, 8, 10. ----

class TamperTest : public CheckpointsTest {
 protected:
  void SetUp() override {
    WriteRecords(10, 2);
    ASSERT_EQ(CheckpointSeqs(), (std::vector<int64_t>{2, 4, 6, 8, 10}));
    records_ = SplitLines(ReadFile(Segment1()));
    ASSERT_EQ(records_.size(), 10u);
  }
  void RewriteRecords() { WriteFile(Segment1(), JoinLines(records_)); }
  void ExpectBad(int64_t seq, const std::string& problem) {
    VerifyResult result = Verify();
    EXPECT_FALSE(result.ok);
    EXPECT_EQ(result.first_bad_seq, seq);
    EXPECT_EQ(result.problem, problem);
  }
  std::vector<std::string> records_;
};

TEST_F(TamperTest, UntouchedTrailVerifies) {
  VerifyResult result = Verify();
  EXPECT_TRUE(result.ok) << result.problem;
  EXPECT_EQ(result.records, 10);
  EXPECT_EQ(result.first_bad_seq, 0);
}

TEST_F(TamperTest, FlippedByteInARecord) {
  std::string& line = records_[4];
  size_t at = line.find("\"ct\":\"") + 10;
  line[at] = line[at] == 'A' ? 'B' : 'A';
  RewriteRecords();
  ExpectBad(5, "hash mismatch");
}

TEST_F(TamperTest, DeletedRecord) {
  records_.erase(records_.begin() + 4);
  RewriteRecords();
  ExpectBad(5, "sequence gap");
}

TEST_F(TamperTest, SwappedRecords) {
  std::swap(records_[2], records_[3]);
  RewriteRecords();
  ExpectBad(3, "sequence gap");
}

TEST_F(TamperTest, TailTruncatedBeforeTheLastCheckpoints) {
  records_.resize(7);
  RewriteRecords();
  // VerifyChain alone cannot see it.
  std::unique_ptr<Directory> dir = Posix();
  Result<VerifyResult> chain = VerifyChain(*dir, *keyring_);
  ASSERT_TRUE(chain.ok());
  EXPECT_TRUE(chain->ok);
  ExpectBad(8, "records missing before a checkpoint");
}

TEST_F(TamperTest, CheckpointResignedByAnotherKey) {
  Result<crypto::PrivateKey> other = crypto::PrivateKey::Generate(crypto::JwsAlg::kEdDSA);
  ASSERT_TRUE(other.ok());
  std::vector<std::string> lines = Checkpoints();
  const std::string& c = lines[2];
  std::string forged = CheckpointLine(*other, Seq(c), Field(c, "hash"),
                                      std::stoll(Field(c, "time")), Field(c, "prev_sig"));
  forged.pop_back();  // its newline
  lines[2] = forged;
  WriteFile(CheckpointsPath(), JoinLines(lines));
  ExpectBad(6, "bad checkpoint signature");
}

TEST_F(TamperTest, WrongPublicKeyFailsAtTheFirstCheckpoint) {
  Result<crypto::PrivateKey> other = crypto::PrivateKey::Generate(crypto::JwsAlg::kEdDSA);
  ASSERT_TRUE(other.ok());
  VerifyResult result = Verify(ReadFile(CheckpointsPath()), other->Public());
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.first_bad_seq, 2);
  EXPECT_EQ(result.problem, "bad checkpoint signature");
}

TEST_F(TamperTest, RemovedMiddleCheckpoint) {
  std::vector<std::string> lines = Checkpoints();
  lines.erase(lines.begin() + 2);  // seq 6
  WriteFile(CheckpointsPath(), JoinLines(lines));
  ExpectBad(8, "checkpoint chain broken");
}

TEST_F(TamperTest, MalformedCheckpoint) {
  std::vector<std::string> lines = Checkpoints();
  lines[1] += " ";
  WriteFile(CheckpointsPath(), JoinLines(lines));
  ExpectBad(3, "malformed checkpoint");
}

// A whole segment replaced by a forgery whose records are re-encrypted and re-chained with
// valid hashes: only the checkpoints reveal it.
TEST_F(CheckpointsTest, ReHashedForgedSegmentIsCaughtByACheckpoint) {
  AuditLogOptions options;
  options.segment_bytes = 1000;  // a few records per segment
  WriteRecords(10, 2, options);
  std::vector<std::string> segments = SegmentFiles();
  ASSERT_GE(segments.size(), 3u);

  // Forge the last segment, chained on from the one before it.
  std::string last = Dir() + "/" + segments.back();
  std::vector<std::string> before =
      SplitLines(ReadFile(Dir() + "/" + segments[segments.size() - 2]));
  std::string prev = Field(before.back(), "hash");
  std::vector<std::string> originals = SplitLines(ReadFile(last));
  ASSERT_FALSE(originals.empty());
  std::vector<std::string> forged;
  for (const std::string& original : originals) {
    int64_t seq = Seq(original);
    std::string time = Field(original, "time");
    uint32_t kv = 0;
    Result<std::string> sealed =
        keyring_->Seal(crypto::KeyPurpose::kAudit, "forged", "audit/" + std::to_string(seq), &kv);
    ASSERT_TRUE(sealed.ok());
    std::string ct = Base64UrlEncode(*sealed);
    std::string hash =
        HexEncode(crypto::Sha256("phigate-audit-1|" + std::to_string(seq) + "|" + time + "|" +
                                 prev + "|" + std::to_string(kv) + "||" + ct));
    forged.push_back("{\"seq\":" + std::to_string(seq) + ",\"time\":" + time + ",\"prev\":\"" +
                     prev + "\",\"kv\":" + std::to_string(kv) + ",\"ix\":[],\"ct\":\"" + ct +
                     "\",\"hash\":\"" + hash + "\"}");
    prev = hash;
  }
  WriteFile(last, JoinLines(forged));

  // The chain itself is intact.
  std::unique_ptr<Directory> dir = Posix();
  Result<VerifyResult> chain = VerifyChain(*dir, *keyring_);
  ASSERT_TRUE(chain.ok());
  EXPECT_TRUE(chain->ok) << chain->problem;

  int64_t first_forged = Seq(originals.front());
  int64_t first_checkpoint_within = 0;
  for (int64_t seq : CheckpointSeqs()) {
    if (seq >= first_forged) {
      first_checkpoint_within = seq;
      break;
    }
  }
  ASSERT_GT(first_checkpoint_within, 0);
  VerifyResult result = Verify();
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.first_bad_seq, first_checkpoint_within);
  EXPECT_EQ(result.problem, "checkpoint hash mismatch");
}

// ---- Several writers (audit_log.h "Several processes") ----

TEST_F(CheckpointsTest, CliWriterWithoutSignerAndServerCheckpointsShareOneChain) {
  std::unique_ptr<AuditLog> server = OpenLog(Posix(), {2, kNever});
  ASSERT_NE(server, nullptr);
  // Who writes each seq, and the server's checkpoint count once it has (each checkpoint
  // follows its batch: waiting for it keeps the seqs deterministic).
  const std::string writers = "SSCSSCSC";
  const uint64_t checkpoints_after[] = {0, 1, 0, 2, 2, 0, 3, 0};
  for (size_t i = 0; i < writers.size(); ++i) {
    const int64_t expected = static_cast<int64_t>(i) + 1;
    if (writers[i] == 'C') {
      // A short-lived CLI command: Open (no signer), Append, destroy.
      Result<std::unique_ptr<AuditLog>> cli = AuditLog::Open(Posix(), *keyring_, clock_);
      ASSERT_TRUE(cli.ok()) << cli.status().message();
      Result<int64_t> seq = (*cli)->Append("cli");
      ASSERT_TRUE(seq.ok());
      EXPECT_EQ(*seq, expected);
    } else {
      Result<int64_t> seq = server->Append("server");
      ASSERT_TRUE(seq.ok());
      EXPECT_EQ(*seq, expected);
      ASSERT_TRUE(Eventually([&] { return server->stats().checkpoints == checkpoints_after[i]; }));
    }
  }
  server.reset();
  // The server's checkpoints cover the CLI's records: 4 (after the CLI's 3), 7 (after its
  // 6), and at shutdown 8, the CLI's last.
  EXPECT_EQ(CheckpointSeqs(), (std::vector<int64_t>{2, 4, 7, 8}));
  VerifyResult result = Verify();
  EXPECT_TRUE(result.ok) << result.problem << " at " << result.first_bad_seq;
  EXPECT_EQ(result.records, 8);
}

TEST_F(CheckpointsTest, TwoSignersChainOneCheckpointFile) {
  std::unique_ptr<AuditLog> a = OpenLog(Posix(), {1, kNever});
  std::unique_ptr<AuditLog> b = OpenLog(Posix(), {1, kNever});
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  for (int i = 1; i <= 6; ++i) {
    AuditLog& log = i % 2 == 0 ? *b : *a;
    ASSERT_TRUE(log.Append("event").ok());
    ASSERT_TRUE(Eventually([&] { return CheckpointSeqs().size() == static_cast<size_t>(i); }));
  }
  a.reset();
  b.reset();
  EXPECT_EQ(CheckpointSeqs(), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  std::vector<std::string> lines = Checkpoints();
  for (size_t i = 1; i < lines.size(); ++i) {
    EXPECT_EQ(Field(lines[i], "prev_sig"), Field(lines[i - 1], "sig")) << i;
  }
  VerifyResult result = Verify();
  EXPECT_TRUE(result.ok) << result.problem << " at " << result.first_bad_seq;
  EXPECT_EQ(result.records, 6);
}

// ---- Purge (issue 5 §3) ----

class PurgeTest : public CheckpointsTest {
 protected:
  // 20 records (record i sealed at kStartMillis + i - 1) in segments of a few records,
  // checkpointed every 3.
  void SetUp() override {
    options_.segment_bytes = 1000;
    WriteRecords(20, 3, options_);
    segments_ = SegmentFiles();
    ASSERT_GE(segments_.size(), 4u);
  }
  int64_t FirstSeq(size_t segment) const { return std::stoll(segments_[segment].substr(8, 20)); }
  // The time of record `seq`.
  static int64_t TimeOf(int64_t seq) { return kStartMillis + seq - 1; }
  std::string RecordLine(int64_t seq) const {
    for (const std::string& name : segments_) {
      for (const std::string& line : SplitLines(ReadFile(Dir() + "/" + name))) {
        if (Seq(line) == seq) return line;
      }
    }
    ADD_FAILURE() << "no record " << seq;
    return "";
  }
  Result<PurgeResult> RunPurge(int64_t before_ms) {
    std::unique_ptr<Directory> dir = Posix();
    return Purge(*dir, Key(), before_ms, clock_.NowMillis());
  }

  AuditLogOptions options_;
  std::vector<std::string> segments_;  // before the purge
};

TEST_F(PurgeTest, PurgedTrailVerifiesAndListsThePurge) {
  // Records before the third segment's first one: the first two segments exactly.
  const int64_t keep_from = FirstSeq(2);
  const std::string purged_hash = Field(RecordLine(keep_from - 1), "hash");
  const size_t checkpoints_before = Checkpoints().size();
  clock_.Advance(1000);
  Result<PurgeResult> purged = RunPurge(TimeOf(keep_from));
  ASSERT_TRUE(purged.ok()) << purged.status().message();
  EXPECT_EQ(purged->segments, 2);
  EXPECT_EQ(purged->records, keep_from - 1);
  EXPECT_EQ(purged->first_seq, 1);
  EXPECT_EQ(purged->last_seq, keep_from - 1);
  std::vector<std::string> remaining(segments_.begin() + 2, segments_.end());
  EXPECT_EQ(SegmentFiles(), remaining);

  std::vector<std::string> lines = Checkpoints();
  ASSERT_EQ(lines.size(), checkpoints_before + 1);
  EXPECT_EQ(Field(lines.back(), "prev_sig"), Field(lines[lines.size() - 2], "sig"));
  EXPECT_EQ(Field(lines.back(), "purge"), std::to_string(keep_from - 1));

  VerifyResult result = Verify();
  EXPECT_TRUE(result.ok) << result.problem << " at " << result.first_bad_seq;
  EXPECT_EQ(result.records, 20 - (keep_from - 1));
  ASSERT_EQ(result.purges.size(), 1u);
  const PurgeInfo& info = result.purges[0];
  EXPECT_EQ(info.through_seq, keep_from - 1);
  EXPECT_EQ(info.hash, purged_hash);
  EXPECT_EQ(info.before_ms, TimeOf(keep_from));
  EXPECT_EQ(info.time_ms, clock_.NowMillis());
  EXPECT_EQ(info.segments, 2);
  EXPECT_EQ(info.records, keep_from - 1);

  // Without the checkpoints the missing start cannot be vouched for.
  std::unique_ptr<Directory> dir = Posix();
  Result<VerifyResult> chain = VerifyChain(*dir, *keyring_);
  ASSERT_TRUE(chain.ok());
  EXPECT_FALSE(chain->ok);
  EXPECT_EQ(chain->first_bad_seq, keep_from);
  EXPECT_EQ(chain->problem, "records before seq " + std::to_string(keep_from) +
                                " were purged or removed: verify with the checkpoints");
}

TEST_F(PurgeTest, NothingOlderPurgesNothingAndWritesNoLine) {
  const std::string checkpoints = ReadFile(CheckpointsPath());
  // Record 1 is not older than its own time.
  Result<PurgeResult> purged = RunPurge(TimeOf(1));
  ASSERT_TRUE(purged.ok()) << purged.status().message();
  EXPECT_EQ(purged->segments, 0);
  EXPECT_EQ(purged->records, 0);
  EXPECT_EQ(purged->first_seq, 0);
  EXPECT_EQ(purged->last_seq, 0);
  EXPECT_EQ(SegmentFiles(), segments_);
  EXPECT_EQ(ReadFile(CheckpointsPath()), checkpoints);
  // A segment with one record too young is kept, and so is everything after it.
  purged = RunPurge(TimeOf(FirstSeq(1) - 1));
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(purged->segments, 0);
  EXPECT_EQ(ReadFile(CheckpointsPath()), checkpoints);
}

TEST_F(PurgeTest, NeverPurgesTheLastSegment) {
  Result<PurgeResult> purged = RunPurge(TimeOf(1000));
  ASSERT_TRUE(purged.ok()) << purged.status().message();
  EXPECT_EQ(purged->segments, static_cast<int64_t>(segments_.size()) - 1);
  EXPECT_EQ(purged->last_seq, FirstSeq(segments_.size() - 1) - 1);
  EXPECT_EQ(SegmentFiles(), std::vector<std::string>{segments_.back()});
  VerifyResult result = Verify();
  EXPECT_TRUE(result.ok) << result.problem << " at " << result.first_bad_seq;
  EXPECT_EQ(result.records, 20 - purged->last_seq);
  // Again: only the last segment is left, so nothing more.
  purged = RunPurge(TimeOf(1000));
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(purged->segments, 0);
  EXPECT_EQ(Verify().purges.size(), 1u);
}

TEST_F(PurgeTest, CheckpointsContinueToChainAfterAPurgeByAnotherWriter) {
  std::unique_ptr<AuditLog> log = OpenLog(Posix(), {2, kNever}, options_);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->Append("event-21").ok());
  ASSERT_TRUE(log->Append("event-22").ok());
  ASSERT_TRUE(Eventually([&] { return CheckpointSeqs().back() == 22; }));
  Result<PurgeResult> purged = RunPurge(TimeOf(FirstSeq(2)));
  ASSERT_TRUE(purged.ok()) << purged.status().message();
  ASSERT_EQ(purged->segments, 2);
  // The running log chains its next checkpoints on the purge line.
  for (int i = 23; i <= 30; ++i) ASSERT_TRUE(log->Append("event-" + std::to_string(i)).ok());
  ASSERT_TRUE(Eventually([&] { return CheckpointSeqs().back() == 30; }));
  log.reset();
  std::vector<std::string> lines = Checkpoints();
  size_t purge_at = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind("{\"purge\":", 0) == 0) purge_at = i;
  }
  ASSERT_GT(purge_at, 0u);
  ASSERT_LT(purge_at + 1, lines.size());
  EXPECT_EQ(Field(lines[purge_at + 1], "prev_sig"), Field(lines[purge_at], "sig"));
  VerifyResult result = Verify();
  EXPECT_TRUE(result.ok) << result.problem << " at " << result.first_bad_seq;
  EXPECT_EQ(result.records, 30 - purged->last_seq);
  EXPECT_EQ(result.purges.size(), 1u);
  // And a reopened log (recovering from a purge line's neighbourhood) continues too.
  WriteRecords(3, 1, options_);
  result = Verify();
  EXPECT_TRUE(result.ok) << result.problem << " at " << result.first_bad_seq;
  EXPECT_EQ(CheckpointSeqs().back(), 33);
}

TEST_F(PurgeTest, ForgedPurgeLineIsABadSignature) {
  const int64_t keep_from = FirstSeq(2);
  ASSERT_TRUE(RunPurge(TimeOf(keep_from)).ok());
  std::vector<std::string> lines = Checkpoints();
  std::string& purge = lines.back();
  // Claims an earlier cut-off than the one signed.
  const std::string before = "\"before\":" + std::to_string(TimeOf(keep_from));
  size_t at = purge.find(before);
  ASSERT_NE(at, std::string::npos);
  purge.replace(at, before.size(), "\"before\":" + std::to_string(TimeOf(keep_from) - 1));
  WriteFile(CheckpointsPath(), JoinLines(lines));
  VerifyResult result = Verify();
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.first_bad_seq, keep_from - 1);
  EXPECT_EQ(result.problem, "bad checkpoint signature");
}

TEST_F(PurgeTest, PurgeLineSignedByAnotherKeyIsABadSignature) {
  // Someone deletes the first segments and adds a purge line of their own making.
  Result<crypto::PrivateKey> other = crypto::PrivateKey::Generate(crypto::JwsAlg::kEdDSA);
  ASSERT_TRUE(other.ok());
  std::unique_ptr<Directory> dir = Posix();
  Result<PurgeResult> purged = Purge(*dir, *other, TimeOf(FirstSeq(2)), clock_.NowMillis());
  ASSERT_TRUE(purged.ok());
  VerifyResult result = Verify();
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.first_bad_seq, FirstSeq(2) - 1);
  EXPECT_EQ(result.problem, "bad checkpoint signature");
}

TEST_F(PurgeTest, FirstSegmentDeletedWithoutAPurgeIsDetected) {
  ASSERT_TRUE(std::filesystem::remove(Dir() + "/" + segments_[0]));
  VerifyResult result = Verify();
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.first_bad_seq, 1);
  EXPECT_EQ(result.problem, "records missing at the start");
}

TEST_F(PurgeTest, MoreDeletedThanThePurgeSaysIsDetected) {
  const int64_t keep_from = FirstSeq(2);
  ASSERT_TRUE(RunPurge(TimeOf(keep_from)).ok());
  ASSERT_TRUE(std::filesystem::remove(Dir() + "/" + segments_[2]));
  VerifyResult result = Verify();
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.first_bad_seq, keep_from);
  EXPECT_EQ(result.problem, "records missing at the start");
}

TEST_F(PurgeTest, CrashBetweenThePurgeLineAndTheRemovalStillVerifies) {
  // The state a crash after the purge line's fsync leaves: the line, and every segment.
  std::vector<std::string> contents;
  for (const std::string& name : segments_) contents.push_back(ReadFile(Dir() + "/" + name));
  Result<PurgeResult> purged = RunPurge(TimeOf(FirstSeq(2)));
  ASSERT_TRUE(purged.ok());
  ASSERT_EQ(purged->segments, 2);
  for (size_t i = 0; i < 2; ++i) WriteFile(Dir() + "/" + segments_[i], contents[i]);
  ASSERT_EQ(SegmentFiles(), segments_);

  VerifyResult result = Verify();
  EXPECT_TRUE(result.ok) << result.problem << " at " << result.first_bad_seq;
  EXPECT_EQ(result.records, 20 - purged->last_seq);
  EXPECT_EQ(result.purges.size(), 1u);
  // The next purge completes the removal, without a second line.
  const size_t lines = Checkpoints().size();
  Result<PurgeResult> again = RunPurge(TimeOf(FirstSeq(2)));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->segments, 0);
  EXPECT_EQ(Checkpoints().size(), lines);
  EXPECT_EQ(SegmentFiles(), std::vector<std::string>(segments_.begin() + 2, segments_.end()));
  result = Verify();
  EXPECT_TRUE(result.ok) << result.problem;
}

}  // namespace
}  // namespace phigate::audit
