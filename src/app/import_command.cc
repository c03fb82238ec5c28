// `phigate import`: bulk load of FHIR resources from NDJSON files (issue 6 §7: the search
// benchmark's million patients; also a migration path). Each line takes the write path of
// the REST API itself: ResourceService::CreateAs (a new id) or Update (an existing one)
// inside a ResourceService::TransactionScope, so it is validated like a request body,
// stored in the server's canonical layout with meta.versionId and meta.lastUpdated set by
// the server, sealed under the keyring's data key with AAD = "<type>/<id>/<version>" and
// indexed by the server's SearchIndex; the gathered writes of a batch are committed with
// ResourceService::CommitPending (Store::AppendVersions: one transaction, one fsync).
//
// It is an administrative action: a record in the audit trail when it starts (before any
// write) and one with counts only (never a value from the files) at the end, also when the
// import stops early.
// Thread-safety: single-threaded command code (TransactionScope is per thread).
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "app/audit_trail.h"
#include "app/commands.h"
#include "app/data_dir.h"
#include "audit/event.h"
#include "core/clock.h"
#include "core/log.h"
#include "fhir/json_parse.h"
#include "fhir/model.h"
#include "fhir/resource_service.h"
#include "fhir/validator.h"
#include "http/status_mapping.h"
#include "storage/store.h"

namespace phigate::app {

namespace {

namespace json = boost::json;

constexpr const char* kImportHelp =
    "Usage: phigate import [--data-dir DIR] [--config FILE] [--batch-size N] [--json]\n"
    "                      FILE.ndjson [FILE.ndjson...]\n"
    "\n"
    "Loads FHIR R4 resources, one JSON resource per line (NDJSON, UTF-8; blank lines are\n"
    "skipped), into the data directory. Every resource needs a resourceType and an id; it\n"
    "is validated, encrypted and indexed for search exactly as a PUT of that resource\n"
    "would be. A new id becomes version 1; an id that exists gets a new version.\n"
    "\n"
    "The server must be stopped: the import holds the data directory's serve lock.\n"
    "Resources are committed in batches of --batch-size, each batch all or nothing. A bad\n"
    "line stops the import with exit 1, naming the file and line number and a fixed\n"
    "reason (never the line's content): every batch before the one holding that line stays\n"
    "committed, nothing from that batch or after it is written. Running the same files\n"
    "again after fixing the line is safe; resources already imported get a new version.\n"
    "Progress goes to stderr; the summary (resources, versions, seconds, resources/s) to\n"
    "stdout. Two administrative records are written to the audit trail, one at the start\n"
    "(before any write) and one with counts only at the end; if one cannot be written the\n"
    "command exits 1 and says so.\n"
    "\n"
    "  --data-dir DIR    data directory (default ./.phigate)\n"
    "  --config FILE     TOML configuration file (limits.body_bytes bounds one line,\n"
    "                    limits.json_depth its nesting)\n"
    "  --batch-size N    resources per transaction, 1-10000 (default 1000)\n"
    "  --json            print the summary as one JSON object\n";

constexpr int kDefaultBatchSize = 1000;
constexpr int kMaxBatchSize = 10'000;
// A progress line at most this often (stderr), so a large import shows it is alive
// without flooding a terminal.
constexpr std::chrono::seconds kProgressInterval{2};
// Bytes read from a file at a time.
constexpr size_t kReadChunk = 1 << 20;

const std::set<std::string> kWithValue = {"data-dir", "config", "batch-size"};
const std::set<std::string> kBooleans = {"help", "json"};

// Splits the arguments into options (for ParseArgs) and the NDJSON files (positional).
std::vector<std::string> TakeFiles(std::vector<std::string>& args) {
  std::vector<std::string> files;
  std::vector<std::string> options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!arg.starts_with("--")) {
      files.push_back(arg);
      continue;
    }
    options.push_back(arg);
    // The value of `--name VALUE` is not a file.
    if (arg.find('=') == std::string::npos && kWithValue.contains(arg.substr(2)) &&
        i + 1 < args.size()) {
      options.push_back(args[++i]);
    }
  }
  args = std::move(options);
  return files;
}

int ParseBatchSize(const ParsedArgs& parsed) {
  if (!parsed.Has("batch-size")) return kDefaultBatchSize;
  const std::string text = parsed.Get("batch-size");
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 1 || value > kMaxBatchSize) {
    throw UsageError("import: --batch-size must be an integer from 1 to " +
                     std::to_string(kMaxBatchSize));
  }
  return value;
}

// Reads a file line by line ("\n", an optional "\r" before it is dropped) without ever
// holding more than one line, so an oversized line is refused without reading it whole.
class LineReader {
 public:
  enum class Next { kLine, kEnd, kTooLong, kError };

  explicit LineReader(const std::string& path) : in_(path, std::ios::binary), buffer_(kReadChunk) {}
  bool is_open() const { return in_.is_open(); }

  // On kTooLong the rest of the line is not read: the caller stops.
  Next Read(std::string& line, size_t max_bytes) {
    line.clear();
    while (true) {
      if (begin_ == end_ && !Fill()) {
        if (in_.bad()) return Next::kError;
        if (line.empty()) return Next::kEnd;
        return Finish(line);  // a last line without "\n"
      }
      const char* start = buffer_.data() + begin_;
      const void* newline = std::memchr(start, '\n', end_ - begin_);
      const size_t take = newline != nullptr
                              ? static_cast<size_t>(static_cast<const char*>(newline) - start)
                              : end_ - begin_;
      if (line.size() + take > max_bytes + 1) return Next::kTooLong;  // +1: a trailing "\r"
      line.append(start, take);
      if (newline != nullptr) {
        begin_ += take + 1;
        return Finish(line);
      }
      begin_ = end_;
    }
  }

 private:
  bool Fill() {
    in_.read(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
    begin_ = 0;
    end_ = static_cast<size_t>(in_.gcount());
    return end_ > 0;
  }
  static Next Finish(std::string& line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return Next::kLine;
  }

  std::ifstream in_;
  std::vector<char> buffer_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

bool IsBlank(std::string_view line) {
  return line.find_first_not_of(" \t") == std::string_view::npos;
}

// Where a pending write came from, to name it if its batch fails.
struct Origin {
  size_t file = 0;  // index into the file list
  int64_t line = 0;
};

struct Counts {
  int64_t resources = 0;  // versions committed
  int64_t created = 0;    // of which version 1 of a new id
  int64_t updated = 0;    // of which a new version of an existing id
  std::map<std::string, int64_t> by_type;
};

// A failure that stops the import: where, and the fixed reason.
struct Stop {
  std::optional<Origin> origin;  // none: not tied to one line (storage)
  Status status;
};

class Importer {
 public:
  Importer(fhir::ResourceService& service, storage::Store& store, const fhir::Model& model,
           const Config& config, int batch_size)
      : service_(service),
        store_(store),
        model_(model),
        max_line_bytes_(static_cast<size_t>(config.limits.body_bytes)),
        max_json_depth_(config.limits.json_depth),
        batch_size_(static_cast<size_t>(batch_size)),
        start_(std::chrono::steady_clock::now()),
        last_progress_(start_) {}

  const Counts& committed() const { return committed_; }
  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

  // Imports `path` (the file at `file_index` of the command line); nullopt when it was
  // read to the end and every batch so far committed.
  std::optional<Stop> ImportFile(size_t file_index, const std::string& path) {
    LineReader reader(path);
    if (!reader.is_open()) {
      return Stop{std::nullopt, Unavailable("cannot open " + path)};
    }
    std::string line;
    for (int64_t line_number = 1;; ++line_number) {
      const Origin origin{file_index, line_number};
      switch (reader.Read(line, max_line_bytes_)) {
        case LineReader::Next::kEnd:
          return std::nullopt;
        case LineReader::Next::kError:
          return Stop{origin, Unavailable("the file could not be read")};
        case LineReader::Next::kTooLong:
          return Stop{origin, InvalidArgument("the line is longer than limits.body_bytes")};
        case LineReader::Next::kLine:
          break;
      }
      if (IsBlank(line)) continue;
      if (auto stop = Add(origin, line)) return stop;
    }
  }

  // Commits what is pending.
  std::optional<Stop> Flush() {
    if (pending_.writes.empty()) return std::nullopt;
    if (Status committed = service_.CommitPending(pending_); !committed.ok()) {
      // "entry <i>: ..." names a write of the batch: report its line instead.
      std::optional<Origin> origin;
      std::string message = committed.message();
      if (message.starts_with("entry ")) {
        size_t i = 0;
        const char* begin = message.data() + 6;
        const auto [end, ec] = std::from_chars(begin, message.data() + message.size(), i);
        if (ec == std::errc() && i < origins_.size() && std::string_view(end).starts_with(": ")) {
          origin = origins_[i];
          message = std::string(end + 2);
        }
      }
      return Stop{origin, Status(committed.code(), message)};
    }
    for (const storage::Store::VersionWrite& write : pending_.writes) {
      ++committed_.resources;
      ++(write.expected_version == 0 ? committed_.created : committed_.updated);
      ++committed_.by_type[write.record.type];
    }
    pending_ = fhir::PendingWrites();
    origins_.clear();
    pending_keys_.clear();
    const auto now = std::chrono::steady_clock::now();
    if (now - last_progress_ >= kProgressInterval) {
      last_progress_ = now;
      std::cerr << "import: " << committed_.resources << " resources committed ("
                << static_cast<int64_t>(committed_.resources / Seconds()) << "/s)\n";
    }
    return std::nullopt;
  }

 private:
  // Parses, validates, seals and indexes one line and queues its write; flushes a full batch.
  std::optional<Stop> Add(const Origin& origin, const std::string& line) {
    auto parsed = fhir::ParseJson(line, max_json_depth_);
    if (!parsed.ok()) return Stop{origin, parsed.status()};
    // The audit trail is written by the server alone (issue 5 §3), as over HTTP: refused
    // whatever the content.
    if (const json::object* object = parsed->if_object()) {
      const json::value* type = object->if_contains("resourceType");
      if (type != nullptr && type->is_string() && type->get_string() == "AuditEvent") {
        return Stop{origin, InvalidArgument("AuditEvent resources cannot be imported")};
      }
    }
    // The validator's expression (the element's path) is left out: for an unknown property
    // it repeats the property's name, which is content of the file.
    if (Status valid = fhir::ValidateResource(*parsed, model_); !valid.ok()) {
      return Stop{origin, Status(valid.code(), valid.message())};
    }
    const json::object& resource = parsed->as_object();
    const std::string type(resource.at("resourceType").as_string());
    const json::value* id_value = resource.if_contains("id");
    if (id_value == nullptr) return Stop{origin, InvalidArgument("the resource has no id")};
    const std::string id(id_value->as_string());  // the validator made it a string
    if (!fhir::IsValidId(id)) {
      return Stop{origin, InvalidArgument("the resource id is not a valid FHIR id")};
    }
    // AppendVersions takes one write per resource: a repeat within the batch first commits
    // the batch, so the repeat becomes the next version.
    std::string key = type + "/" + id;
    if (pending_keys_.contains(key)) {
      if (auto stop = Flush()) return stop;
    }

    // The REST write path, gathered into pending_ instead of committed (TransactionScope):
    // a new id is created with it (whatever fhir.update_create says of client ids over
    // HTTP: choosing ids is the point of an import), an existing one updated.
    auto current = store_.ReadCurrent(type, id);
    if (!current.ok()) return Stop{origin, current.status()};
    const size_t before = pending_.writes.size();
    Result<fhir::RestResult> written = [&] {
      const fhir::ResourceService::TransactionScope scope(&pending_);
      return current->has_value() ? service_.Update(type, id, line, "", "")
                                  : service_.CreateAs(type, id, line, "");
    }();
    // The expression (an element's path) is left out, as above.
    if (!written.ok())
      return Stop{origin, Status(written.status().code(), written.status().message())};
    if (pending_.writes.size() != before + 1) {
      return Stop{origin, Internal("the resource could not be stored")};
    }
    origins_.push_back(origin);
    pending_keys_.insert(std::move(key));
    if (pending_.writes.size() >= batch_size_) return Flush();
    return std::nullopt;
  }

  fhir::ResourceService& service_;
  storage::Store& store_;
  const fhir::Model& model_;
  const size_t max_line_bytes_;
  const int max_json_depth_;
  const size_t batch_size_;
  const std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_progress_;

  fhir::PendingWrites pending_;
  std::vector<Origin> origins_;                   // of each pending write
  std::unordered_set<std::string> pending_keys_;  // "type/id" of each pending write
  Counts committed_;
};

std::string TypeCounts(const Counts& counts) {
  std::string out;
  for (const auto& [type, n] : counts.by_type) {
    if (!out.empty()) out += ", ";
    out += type + " " + std::to_string(n);
  }
  return out.empty() ? "none" : out;
}

std::string FormatSeconds(double seconds) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.2f", seconds);
  return buffer;
}

}  // namespace

int ImportCommand(const std::vector<std::string>& args_in) {
  std::vector<std::string> args = args_in;
  const std::vector<std::string> files = TakeFiles(args);
  ParsedArgs parsed = ParseArgs(args, kWithValue, kBooleans);
  if (parsed.Has("help")) {
    std::cout << kImportHelp;
    return 0;
  }
  const int batch_size = ParseBatchSize(parsed);
  if (files.empty()) throw UsageError("import: at least one NDJSON file is required");
  // Before the data dir is opened (or created), so that a typo changes nothing.
  for (const std::string& file : files) {
    std::ifstream probe(file, std::ios::binary);
    if (!probe) throw UsageError("import: cannot read '" + file + "'");
  }

  Config config = LoadEffectiveConfig(parsed);
  config.Finalize();
  SetLogLevel(LogLevel::kWarn);
  // The serve lock: the server's current-version cache assumes it sees every resource
  // write (data_dir.h), so the import runs only while no server does. The import itself
  // reads each resource once, so it keeps no cache.
  config.storage.cache_bytes = 0;
  DataDir dir = OpenDataDir(config, DataDirUse::kServe);
  const Clock& clock = SystemClock::Instance();
  AuditTrail trail = OpenAuditTrail(config, *dir.keyring, clock, AuditTrailUse::kCommand);
  const fhir::Model& model = fhir::Model::R4();
  // Built as `serve` builds it (the same model, keyring, fhir settings and JSON depth), so
  // an imported version is stored and indexed exactly as one written over HTTP.
  fhir::ResourceService service(*dir.store, *dir.keyring, model, clock, config.fhir,
                                config.limits.json_depth);
  Importer importer(service, *dir.store, model, config, batch_size);

  // A record before anything is written, so that an import that never ends (killed, a
  // crash) is in the trail too; the closing record below carries the counts.
  audit::Event started;
  started.subtype = "import";
  started.action = 'C';
  started.detail = "bulk import started: " + std::to_string(files.size()) +
                   (files.size() == 1 ? " file" : " files");
  RecordCommand(trail, clock, std::move(started));

  std::optional<Stop> stop;
  for (size_t i = 0; i < files.size() && !stop; ++i) stop = importer.ImportFile(i, files[i]);
  if (!stop) stop = importer.Flush();
  const double seconds = importer.Seconds();
  const Counts& counts = importer.committed();

  // The administrative record (issue 5 §1): counts and types only, never a file name or
  // a value from the files.
  audit::Event event;
  event.subtype = "import";
  event.action = 'C';
  event.detail = "bulk import: " + std::to_string(counts.resources) + " resources committed (" +
                 std::to_string(counts.created) + " created, " + std::to_string(counts.updated) +
                 " new versions; " + TypeCounts(counts) + ") from " + std::to_string(files.size()) +
                 (files.size() == 1 ? " file" : " files");
  if (stop) {
    event.outcome_code = http::MapStatus(stop->status.code()).issue_code;
    event.detail += " (failed";
    if (stop->origin) {
      event.detail += " at line " + std::to_string(stop->origin->line) + " of file " +
                      std::to_string(stop->origin->file + 1);
    }
    event.detail += ")";
  }
  RecordCommand(trail, clock, std::move(event));

  if (stop) {
    std::cerr << "phigate: import: ";
    if (stop->origin) {
      std::cerr << files[stop->origin->file] << ":" << stop->origin->line << ": ";
    }
    std::cerr << stop->status.message() << "\n"
              << "phigate: import: stopped; " << counts.resources
              << " resources were committed in earlier batches; nothing from the failed batch "
                 "or after it was written\n";
    return 1;
  }

  const double rate = seconds > 0 ? static_cast<double>(counts.resources) / seconds : 0;
  if (parsed.Has("json")) {
    json::object by_type;
    for (const auto& [type, n] : counts.by_type) by_type[type] = n;
    std::cout << json::serialize(json::object{{"resources", counts.resources},
                                              {"created", counts.created},
                                              {"updated", counts.updated},
                                              {"by_type", by_type},
                                              {"files", files.size()},
                                              {"seconds", seconds},
                                              {"resources_per_second", rate}})
              << "\n";
  } else {
    std::cout << "imported " << counts.resources << " resources (" << counts.created << " created, "
              << counts.updated << " new versions of existing ids; " << TypeCounts(counts)
              << ") in " << FormatSeconds(seconds) << " s: " << static_cast<int64_t>(rate)
              << " resources/s\n";
  }
  return 0;
}

}  // namespace phigate::app
