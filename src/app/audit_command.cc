// `phigate audit verify | export | purge` (issue 5 §3, §4; docs/audit-operations.md).
//
// verify checks the whole trail (records and signed checkpoints) and writes nothing to it
// (not even its own record), so it can check a copy. export streams decrypted records for a SIEM
// and is itself recorded first (fail closed). purge removes whole expired segments behind a signed
// purge checkpoint, and only past the configured retention.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "app/audit_trail.h"
#include "app/commands.h"
#include "app/data_dir.h"
#include "audit/audit_log.h"
#include "audit/checkpoints.h"
#include "audit/event.h"
#include "audit/line_parser.h"
#include "audit/query.h"
#include "core/clock.h"
#include "core/log.h"

namespace phigate::app {

namespace {

constexpr const char* kAuditHelp =
    "Usage: phigate audit verify [--checkpoints FILE]\n"
    "       phigate audit export --since T [--until T] [--format jsonl|syslog] [--follow]\n"
    "       phigate audit purge --before T --yes\n"
    "       (each also takes [--data-dir DIR] [--config FILE])\n"
    "\n"
    "The audit trail (<data_dir>/audit) records every request and administrative action\n"
    "encrypted, hash-chained and with signed checkpoints. See docs/audit-operations.md.\n"
    "\n"
    "  verify   checks every record (sequence, chain hash, decryption) and every signed\n"
    "           checkpoint and purge (audit signing key, keys.audit_signing_key_file).\n"
    "           Prints \"audit trail verified: N records, M checkpoints\" and each purge,\n"
    "           exit 0; or \"audit trail verification FAILED at seq S: <problem>\", exit 1.\n"
    "           Exit 2 if the trail cannot be read at all. verify writes no audit record\n"
    "           and changes nothing in the trail, so it can check a copy of the data dir\n"
    "           (the copy's database must be writable: SQLite opens it read-write).\n"
    "  export   prints the records whose time is in [--since, --until), oldest first,\n"
    "           decrypted: one AuditEvent JSON per line (its id is the record's seq), or\n"
    "           RFC 5424 syslog lines (facility 13 log audit, severity 6 informational).\n"
    "           With --follow it then keeps printing new records until SIGINT/SIGTERM.\n"
    "           The export itself is recorded (subtype audit.export) before anything is\n"
    "           printed. A record that cannot be opened stops it (exit 1): run verify.\n"
    "  purge    removes whole segment files whose records are all older than --before,\n"
    "           after writing a signed purge checkpoint (verify then reports the purge).\n"
    "           Refused if --before is within audit.retention_days of now (default 2191\n"
    "           days, the six years of HIPAA 45 CFR 164.316(b)(2)(i)). Recorded as\n"
    "           audit.purge. Purged records are gone for good: --yes is required.\n"
    "\n"
    "  --checkpoints FILE  verify against this copy of checkpoints.log (kept off the machine)\n"
    "                      instead of <data_dir>/audit/checkpoints.log\n"
    "  --since T           export from this time (inclusive); T is a date YYYY-MM-DD (UTC\n"
    "                      midnight), a dateTime YYYY-MM-DDThh:mm:ss[.sss](Z|+hh:mm|-hh:mm),\n"
    "                      or now\n"
    "  --until T           export up to this time (exclusive); not with --follow\n"
    "  --format F          jsonl (default) or syslog\n"
    "  --follow            keep streaming new records (polls every 200 ms)\n"
    "  --before T          purge: segments whose every record is older than T\n"
    "  --yes               purge: confirm that records are deleted permanently\n"
    "  --data-dir DIR      data directory (default ./.phigate)\n"
    "  --config FILE       TOML configuration file\n";

constexpr int64_t kDayMs = 24LL * 60 * 60 * 1000;
// How often --follow looks for new records: a SIEM sees a record within this (plus the
// writer's group commit) of its being durable.
constexpr int64_t kFollowPollMs = 200;
// RFC 5424 §6.2.1: PRI = facility * 8 + severity; facility 13 "log audit", severity 6
// "informational".
constexpr int kSyslogPri = 13 * 8 + 6;
// The SD-ID of the structured data (RFC 5424 §6.3.2: name@<private enterprise number>;
// 32473 is the number RFC 5612 reserves for documentation).
constexpr std::string_view kSyslogSdId = "phigate@32473";

const std::set<std::string> kCommonOptions = {"data-dir", "config"};

std::set<std::string> With(std::set<std::string> extra) {
  extra.insert(kCommonOptions.begin(), kCommonOptions.end());
  return extra;
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool FileExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// The effective config; the data dir and its audit directory must exist (these commands
// never create a data dir: there would be nothing to verify, export or purge).
Config LoadExisting(const ParsedArgs& parsed, const std::string& subcommand) {
  Config config = LoadEffectiveConfig(parsed);
  config.Finalize();
  SetLogLevel(LogLevel::kWarn);
  if (!IsDirectory(config.data_dir)) {
    throw StartupError("audit " + subcommand + ": data dir " + config.data_dir + " does not exist");
  }
  if (!IsDirectory(AuditDirectory(config))) {
    throw StartupError("audit " + subcommand + ": " + AuditDirectory(config) +
                       " does not exist (no audit trail)");
  }
  return config;
}

// The audit signing key, which must exist (LoadOrCreateAuditSigningKey would otherwise
// create a new one, against which nothing verifies).
crypto::PrivateKey LoadSigningKey(const Config& config) {
  const std::string& path = config.keys.audit_signing_key_file;
  if (!FileExists(path)) {
    throw StartupError("keys.audit_signing_key_file: " + path + ": file not found");
  }
  auto key = audit::LoadOrCreateAuditSigningKey(path);
  if (!key.ok()) throw StartupError("keys.audit_signing_key_file: " + key.status().message());
  return std::move(key).value();
}

std::unique_ptr<audit::Directory> OpenDirectory(const Config& config) {
  auto dir = audit::PosixDirectory(AuditDirectory(config));
  if (!dir.ok()) throw StartupError(AuditDirectory(config) + ": " + dir.status().message());
  return std::move(dir).value();
}

// ---- Times ----

// `count` decimal digits at `text[pos]`, or nullopt.
std::optional<int64_t> Digits(std::string_view text, size_t pos, size_t count) {
  if (pos + count > text.size()) return std::nullopt;
  int64_t value = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

// A FHIR date (YYYY-MM-DD, UTC midnight) or dateTime with seconds and a zone
// (YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm); fraction digits beyond milliseconds
// are dropped), or "now": UTC milliseconds. FHIR datatypes.html#dateTime: a time always
// has a zone, so that a range means the same everywhere.
std::optional<int64_t> ParseTime(std::string_view text, int64_t now_ms) {
  if (text == "now") return now_ms;
  if (text.size() < 10) return std::nullopt;
  std::optional<int64_t> day = ParseDateUtc(text.substr(0, 10));
  if (!day) return std::nullopt;
  if (text.size() == 10) return day;
  if (text[10] != 'T' || text.size() < 20 || text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  std::optional<int64_t> h = Digits(text, 11, 2), m = Digits(text, 14, 2), s = Digits(text, 17, 2);
  if (!h || !m || !s || *h > 23 || *m > 59 || *s > 59) return std::nullopt;
  int64_t ms = *day + ((*h * 60 + *m) * 60 + *s) * 1000;
  size_t pos = 19;
  if (text[pos] == '.') {
    ++pos;
    int64_t fraction = 0;
    size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits < 3) fraction = fraction * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (size_t i = digits; i < 3; ++i) fraction *= 10;
    ms += fraction;
  }
  std::string_view zone = text.substr(pos);
  if (zone == "Z") return ms;
  if (zone.size() != 6 || (zone[0] != '+' && zone[0] != '-') || zone[3] != ':') {
    return std::nullopt;
  }
  std::optional<int64_t> zh = Digits(zone, 1, 2), zm = Digits(zone, 4, 2);
  if (!zh || !zm || *zh > 14 || *zm > 59) return std::nullopt;
  const int64_t offset_ms = (*zh * 60 + *zm) * 60 * 1000;
  return zone[0] == '+' ? ms - offset_ms : ms + offset_ms;
}

int64_t TimeOption(const ParsedArgs& parsed, const std::string& subcommand,
                   const std::string& option, int64_t now_ms) {
  std::optional<int64_t> ms = ParseTime(parsed.Get(option), now_ms);
  if (!ms) {
    throw UsageError("audit " + subcommand + ": --" + option +
                     " must be a date YYYY-MM-DD, a dateTime YYYY-MM-DDThh:mm:ssZ or now");
  }
  return *ms;
}

// ---- verify ----

int Verify(const std::vector<std::string>& args) {
  ParsedArgs parsed = ParseArgs({args.begin() + 1, args.end()}, With({"checkpoints"}), {"help"});
  if (parsed.Has("help")) {
    std::cout << kAuditHelp;
    return 0;
  }
  // Exit 1 means "the trail is damaged"; anything that keeps verify from looking is 2, so
  // a monitoring script never mistakes one for the other.
  try {
    Config config = LoadExisting(parsed, "verify");
    const std::string checkpoints_path =
        parsed.Get("checkpoints",
                   AuditDirectory(config) + "/" + std::string(audit::CheckpointSigner::kFileName));
    std::string checkpoints;
    // A trail only commands have written has no checkpoints.log yet (the server writes
    // it); a missing file says no more than an empty one. A named copy must exist.
    if (parsed.Has("checkpoints") || FileExists(checkpoints_path)) {
      std::ifstream in(checkpoints_path, std::ios::binary);
      if (!in) throw StartupError("audit verify: cannot read " + checkpoints_path);
      std::ostringstream text;
      text << in.rdbuf();
      if (in.bad()) throw StartupError("audit verify: cannot read " + checkpoints_path);
      checkpoints = std::move(text).str();
    }
    const crypto::PublicKey key = LoadSigningKey(config).Public();
    DataDir data = OpenDataDir(config, DataDirUse::kCommand);
    std::unique_ptr<audit::Directory> dir = OpenDirectory(config);
    Result<audit::VerifyResult> verified =
        audit::VerifyWithCheckpoints(*dir, *data.keyring, checkpoints, key);
    if (!verified.ok()) {
      throw StartupError("audit verify: cannot read the trail: " + verified.status().message());
    }
    const audit::VerifyResult& result = verified.value();
    if (!result.ok) {
      std::cout << "audit trail verification FAILED at seq " << result.first_bad_seq << ": "
                << result.problem << "\n";
      return 1;
    }
    // Every line verified: the signed checkpoints are the lines that are not purges.
    int64_t lines = 0;
    for (char c : checkpoints) lines += c == '\n' ? 1 : 0;
    const int64_t checkpoint_count = lines - static_cast<int64_t>(result.purges.size());
    std::cout << "audit trail verified: " << result.records << " records, " << checkpoint_count
              << " checkpoints\n";
    for (const audit::PurgeInfo& purge : result.purges) {
      std::cout << "purged at " << FormatInstant(purge.time_ms) << ": records 1-"
                << purge.through_seq << " older than " << FormatInstant(purge.before_ms) << " ("
                << purge.records << " records in " << purge.segments << " segments)\n";
    }
    return 0;
  } catch (const StartupError& e) {
    std::cerr << "phigate: " << e.what() << "\n";
    return 2;
  } catch (const ConfigError& e) {
    std::cerr << "phigate: configuration error: " << e.what() << "\n";
    return 2;
  }
}

// ---- export ----

std::atomic<bool> stop_requested{false};

extern "C" void OnStopSignal(int) { stop_requested.store(true); }

// RFC 5424 §6.2.4: the HOSTNAME is printable US-ASCII without spaces, "-" when unknown.
std::string SyslogHostname() {
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) != 0) return "-";
  std::string host(name.data());
  if (host.empty()) return "-";
  for (char c : host) {
    if (c < 33 || c > 126) return "-";
  }
  return host;
}

enum class Format { kJsonl, kSyslog };

// Prints the records the export covers. The writers' lock (audit_log.h "Several
// processes") is held only while the last durable seq is read: a writer keeps it over
// bytes it has not made durable, so every record up to that seq has been acknowledged and
// can never be truncated away and replaced.
class Exporter {
 public:
  Exporter(audit::Directory& dir, const std::string& path, const crypto::Keyring& keyring,
           Format format, int64_t since_ms, int64_t until_ms, int64_t lock_timeout_ms)
      : dir_(dir),
        path_(path),
        keyring_(keyring),
        format_(format),
        since_ms_(since_ms),
        until_ms_(until_ms),
        lock_timeout_ms_(lock_timeout_ms),
        hostname_(SyslogHostname()) {}

  // Prints every durable record after the last one printed. kInternal "record S cannot
  // be opened" stops the export; kUnavailable when the lock was not acquired in time.
  Status Pass() {
    ASSIGN_OR_RETURN(int64_t durable, DurableLastSeq());
    if (durable <= last_seq_) return Status::Ok();
    std::string out;
    Status failure;
    Status walked = audit::ForEachRecord(dir_, last_seq_ + 1, [&](const audit::StoredRecord& r) {
      if (r.seq > durable) return false;
      last_seq_ = r.seq;
      if (r.time_ms < since_ms_ || r.time_ms >= until_ms_) return true;
      Result<audit::Event> event = audit::OpenEvent(r.line, keyring_);
      if (!event.ok()) {
        failure = Internal("record " + std::to_string(r.seq) +
                           " cannot be opened: run phigate audit verify");
        return false;
      }
      // As GET /fhir/AuditEvent/{seq} returns it.
      AppendLine(out, r, audit::EventJson(*event, std::to_string(r.seq)));
      // Flush in chunks so that a large export needs little memory.
      if (out.size() >= (1 << 20)) Flush(out);
      return true;
    });
    Flush(out);
    if (!failure.ok()) return failure;
    return walked;
  }

  // Whether the trail changed since the last call (the newest segment's name or size):
  // --follow reads only then.
  bool Changed() {
    Result<std::vector<std::string>> names = audit::SegmentNames(dir_);
    if (!names.ok() || names->empty()) return true;
    struct stat st {};
    const int64_t size = ::stat((path_ + "/" + names->back()).c_str(), &st) == 0 ? st.st_size : -1;
    const bool changed = names->back() != seen_segment_ || size != seen_size_;
    seen_segment_ = names->back();
    seen_size_ = size;
    return changed;
  }

 private:
  // Under the writers' lock: the seq of the last complete line of the newest segment.
  Result<int64_t> DurableLastSeq() {
    RETURN_IF_ERROR(dir_.Lock(lock_timeout_ms_));
    Result<int64_t> seq = LastSeqUnlocked();
    dir_.Unlock();
    return seq;
  }

  Result<int64_t> LastSeqUnlocked() {
    ASSIGN_OR_RETURN(std::vector<std::string> names, audit::SegmentNames(dir_));
    if (names.empty()) return int64_t{0};
    const std::string file = path_ + "/" + names.back();
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Internal("cannot open " + file + ": " + std::strerror(errno));
    Result<int64_t> seq = LastSeqIn(fd, audit::SegmentFirstSeq(names.back()));
    ::close(fd);
    return seq;
  }

  // The seq of the last complete line of the segment open as `fd` (first_seq - 1 when it
  // has none). Reads backwards from the end until the line's start is in view: lines are
  // usually a few kilobytes, but a large search's record can be far longer.
  static Result<int64_t> LastSeqIn(int fd, int64_t first_seq) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return Internal(std::string("cannot stat: ") + std::strerror(errno));
    const int64_t size = st.st_size;
    std::string tail;
    for (int64_t want = std::min<int64_t>(size, 64 * 1024);; want = std::min(size, want * 2)) {
      tail.resize(static_cast<size_t>(want));
      const ssize_t n = ::pread(fd, tail.data(), tail.size(), size - want);
      if (n != want) return Internal(std::string("cannot read: ") + std::strerror(errno));
      // A crashed writer's partial line (truncated by the next writer) is not a record.
      const size_t end = tail.rfind('\n');
      if (end == std::string::npos) {
        if (want == size) return first_seq - 1;
        continue;
      }
      const size_t before = end == 0 ? std::string::npos : tail.rfind('\n', end - 1);
      if (before == std::string::npos && want < size) continue;
      const size_t begin = before == std::string::npos ? 0 : before + 1;
      audit::LineParser p(std::string_view(tail).substr(begin, end - begin));
      int64_t seq = 0;
      if (!p.Literal("{\"seq\":") || !p.Number(&seq)) return Internal("malformed audit record");
      return seq;
    }
  }

  void AppendLine(std::string& out, const audit::StoredRecord& r, const std::string& json) {
    if (format_ == Format::kSyslog) {
      // RFC 5424 §6: <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG.
      out += "<" + std::to_string(kSyslogPri) + ">1 " + FormatInstant(r.time_ms) + " " + hostname_ +
             " phigate - audit [" + std::string(kSyslogSdId) + " seq=\"" + std::to_string(r.seq) +
             "\"] ";
    }
    out += json;
    out += '\n';
  }

  static void Flush(std::string& out) {
    if (out.empty()) return;
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    out.clear();
  }

  audit::Directory& dir_;
  const std::string path_;
  const crypto::Keyring& keyring_;
  const Format format_;
  const int64_t since_ms_;
  const int64_t until_ms_;
  const int64_t lock_timeout_ms_;
  const std::string hostname_;
  int64_t last_seq_ = 0;  // the last record looked at
  std::string seen_segment_;
  int64_t seen_size_ = -1;
};

int Export(const std::vector<std::string>& args) {
  ParsedArgs parsed = ParseArgs({args.begin() + 1, args.end()}, With({"since", "until", "format"}),
                                {"help", "follow"});
  if (parsed.Has("help")) {
    std::cout << kAuditHelp;
    return 0;
  }
  const int64_t now_ms = SystemClock::Instance().NowMillis();
  if (!parsed.Has("since")) throw UsageError("audit export: --since is required");
  const int64_t since_ms = TimeOption(parsed, "export", "since", now_ms);
  int64_t until_ms = std::numeric_limits<int64_t>::max();
  if (parsed.Has("until")) {
    if (parsed.Has("follow")) throw UsageError("audit export: --follow takes no --until");
    until_ms = TimeOption(parsed, "export", "until", now_ms);
    if (until_ms <= since_ms) throw UsageError("audit export: --until must be after --since");
  }
  const std::string format_name = parsed.Get("format", "jsonl");
  Format format;
  if (format_name == "jsonl") {
    format = Format::kJsonl;
  } else if (format_name == "syslog") {
    format = Format::kSyslog;
  } else {
    throw UsageError("audit export: --format must be jsonl or syslog");
  }
  const bool follow = parsed.Has("follow");

  Config config = LoadExisting(parsed, "export");
  DataDir data = OpenDataDir(config, DataDirUse::kCommand);
  // Signals are handled from here on, so that a stop during start-up still exits cleanly.
  if (follow) {
    struct sigaction action {};
    action.sa_handler = OnStopSignal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, nullptr);
    ::sigaction(SIGTERM, &action, nullptr);
  }
  {
    // Fail closed: no record of this export, no export. The writer is closed at once; the
    // export reads through its own Directory.
    AuditTrail trail =
        OpenAuditTrail(config, *data.keyring, SystemClock::Instance(), AuditTrailUse::kCommand);
    audit::Event event;
    event.subtype = "audit.export";
    event.action = 'R';
    event.detail = "audit records exported since " + FormatInstant(since_ms) +
                   (parsed.Has("until") ? " until " + FormatInstant(until_ms) : "") + " as " +
                   format_name + (follow ? ", following" : "");
    RecordCommand(trail, SystemClock::Instance(), std::move(event));
  }
  std::unique_ptr<audit::Directory> dir = OpenDirectory(config);
  Exporter exporter(*dir, AuditDirectory(config), *data.keyring, format, since_ms, until_ms,
                    config.audit.append_deadline_ms);
  exporter.Changed();
  if (Status status = exporter.Pass(); !status.ok()) {
    std::cerr << "phigate: audit export: " << status.message() << "\n";
    return 1;
  }
  while (follow && !stop_requested.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(kFollowPollMs));
    if (stop_requested.load() || !exporter.Changed()) continue;
    Status status = exporter.Pass();
    // The lock may be busy (a stalled writer): the next poll tries again.
    if (status.code() == StatusCode::kUnavailable) continue;
    if (!status.ok()) {
      std::cerr << "phigate: audit export: " << status.message() << "\n";
      return 1;
    }
  }
  return 0;
}

// ---- purge ----

int PurgeCommand(const std::vector<std::string>& args) {
  ParsedArgs parsed = ParseArgs({args.begin() + 1, args.end()}, With({"before"}), {"help", "yes"});
  if (parsed.Has("help")) {
    std::cout << kAuditHelp;
    return 0;
  }
  const SystemClock& clock = SystemClock::Instance();
  if (!parsed.Has("before")) throw UsageError("audit purge: --before is required");
  const int64_t before_ms = TimeOption(parsed, "purge", "before", clock.NowMillis());
  Config config = LoadExisting(parsed, "purge");
  // HIPAA 45 CFR 164.316(b)(2)(i): the trail is kept for the retention period; nothing
  // younger is ever purged, whatever --before says.
  const int64_t retention_ms = config.audit.retention_days * kDayMs;
  const int64_t latest_ms = clock.NowMillis() - retention_ms;
  if (before_ms > latest_ms) {
    std::cerr << "phigate: audit purge: --before " << FormatInstant(before_ms)
              << " is within the retention period (audit.retention_days = "
              << config.audit.retention_days << "): the latest allowed is "
              << FormatInstant(latest_ms) << "\n";
    return 1;
  }
  if (!parsed.Has("yes")) {
    std::cerr << "phigate: audit purge: purging deletes audit records permanently: add --yes\n";
    return 1;
  }
  const crypto::PrivateKey key = LoadSigningKey(config);
  DataDir data = OpenDataDir(config, DataDirUse::kCommand);
  // The trail opens first: if it cannot record, nothing is purged.
  AuditTrail trail = OpenAuditTrail(config, *data.keyring, clock, AuditTrailUse::kCommand);
  Result<audit::PurgeResult> purged =
      audit::Purge(*trail.reader, key, before_ms, clock.NowMillis());
  audit::Event event;
  event.subtype = "audit.purge";
  event.action = 'D';
  if (!purged.ok()) {
    event.outcome_code = "exception";
    event.detail = "audit purge before " + FormatInstant(before_ms) + " failed";
    RecordCommand(trail, clock, std::move(event));
    std::cerr << "phigate: audit purge: " << purged.status().message() << "\n";
    return 1;
  }
  const audit::PurgeResult& result = purged.value();
  const std::string what = result.records == 0
                               ? "nothing to purge before " + FormatInstant(before_ms)
                               : "purged records " + std::to_string(result.first_seq) + "-" +
                                     std::to_string(result.last_seq) + " (" +
                                     std::to_string(result.records) + " records in " +
                                     std::to_string(result.segments) + " segments) older than " +
                                     FormatInstant(before_ms);
  event.detail = what;
  RecordCommand(trail, clock, std::move(event));
  std::cout << what << "\n";
  return 0;
}

}  // namespace

int AuditCommand(const std::vector<std::string>& args) {
  if (args.empty()) throw UsageError("audit: missing subcommand (verify, export, purge)");
  const std::string& sub = args[0];
  if (sub == "--help") {
    std::cout << kAuditHelp;
    return 0;
  }
  if (sub == "verify") return Verify(args);
  if (sub == "export") return Export(args);
  if (sub == "purge") return PurgeCommand(args);
  throw UsageError("audit: unknown subcommand '" + sub + "'");
}

}  // namespace phigate::app
