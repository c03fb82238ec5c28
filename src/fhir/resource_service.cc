#include "fhir/resource_service.h"

#include <boost/json.hpp>
#include <charconv>
#include <utility>

#include "core/base64.h"
#include "core/log.h"
#include "crypto/crypto.h"
#include "fhir/json_parse.h"
#include "fhir/json_text.h"
#include "fhir/search.h"
#include "fhir/validator.h"

namespace phigate::fhir {

namespace json = boost::json;

namespace {

// Without If-Match, an update that loses a version race re-reads and tries again: the
// client asked for last-writer-wins. Bounded so a hot resource cannot spin a thread.
constexpr int kUpdateRetries = 8;

std::string NewId() {
  // RFC 4122 version 4 UUID: a valid FHIR id (36 chars of [0-9a-f-]) that reveals nothing.
  std::string b = crypto::RandomBytes(16);
  b[6] = static_cast<char>((b[6] & 0x0F) | 0x40);
  b[8] = static_cast<char>((b[8] & 0x3F) | 0x80);
  std::string h = HexEncode(b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

thread_local PendingWrites* t_pending = nullptr;

std::string WeakEtag(int64_t version) { return "W/\"" + std::to_string(version) + "\""; }

std::optional<int64_t> ParsePositive(std::string_view s) {
  int64_t v = 0;
  if (s.empty() || s.size() > 18) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v <= 0) return std::nullopt;
  return v;
}

SearchOptions SearchOptionsOf(const FhirConfig& config) {
  SearchOptions options;
  options.default_count = config.default_page_size;
  options.max_count = config.max_page_size;
  options.scan_budget = config.search_scan_budget;
  options.cursor_ttl_ms = config.search_cursor_ttl_s * 1000;
  return options;
}

Status Gone() { return {StatusCode::kGone, "the resource has been deleted"}; }
Status ResourceNotFound() { return NotFound("resource not found"); }
Status VersionMismatch() {
  return {StatusCode::kPreconditionFailed, "the resource version does not match If-Match"};
}

}  // namespace

std::string VersionAad(std::string_view type, std::string_view id, int64_t version) {
  std::string aad;
  aad.reserve(type.size() + id.size() + 24);
  aad.append(type).append("/").append(id).append("/").append(std::to_string(version));
  return aad;
}

bool IsValidId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

ResourceService::ResourceService(storage::Store& store, const crypto::Keyring& keyring,
                                 const Model& model, const Clock& clock, FhirConfig config,
                                 int max_json_depth)
    : store_(store),
      keyring_(keyring),
      model_(model),
      clock_(clock),
      config_(config),
      max_json_depth_(max_json_depth),
      search_index_(std::make_unique<SearchIndex>(
          model, keyring,
          SearchIndexOptions{.string_prefix_max = config.search_prefix_max,
                             .base_url = config.base_url})) {}

Result<json::value> ResourceService::ParseResource(std::string_view type,
                                                   std::string_view body) const {
  ASSIGN_OR_RETURN(json::value parsed, ParseJson(body, max_json_depth_));
  RETURN_IF_ERROR(ValidateResource(parsed, model_));
  if (parsed.as_object().at("resourceType").as_string() != type) {
    return InvalidArgument("resourceType does not match the URL", "resourceType");
  }
  return parsed;
}

Result<std::string> ResourceService::OpenVersion(const storage::VersionRecord& record) const {
  auto plain = keyring_.Open(crypto::KeyPurpose::kData, record.key_version, record.ciphertext,
                             VersionAad(record.type, record.id, record.version));
  if (!plain.ok()) {
    // Type, id and version are not PHI; the body never reaches the log.
    Log(LogLevel::kError, "decrypt_failed",
        {{"type", record.type}, {"id", record.id}, {"version", record.version}});
    return Internal("the stored resource could not be read");
  }
  return plain;
}

Result<RestResult> ResourceService::WriteVersion(
    std::string_view type, std::string_view id, std::string_view body, const json::object& resource,
    int64_t expected_version, int status, std::string_view base_url, const WriteGuard& guard) {
  const int64_t version = expected_version + 1;
  const int64_t now = clock_.NowMillis();

  // Canonical layout: resourceType, id, meta first (the server owns versionId and
  // lastUpdated; the client's tags, profiles, security labels and extensions are kept),
  // then the client's elements in order, byte for byte (decimal precision survives).
  const std::vector<RawMember> members = TopLevelMembers(body);
  // The parser accepted `body`, so the scanner must see the same members; if it does not,
  // storing would silently drop data.
  if (members.size() != resource.size()) return Internal("the resource could not be stored");
  std::string text;
  text.reserve(body.size() + 160);
  text += "{\"resourceType\":";
  AppendJsonEscaped(text, type);
  text += ",\"id\":";
  AppendJsonEscaped(text, id);
  text += ",\"meta\":{\"versionId\":";
  AppendJsonEscaped(text, std::to_string(version));
  text += ",\"lastUpdated\":";
  AppendJsonEscaped(text, FormatInstant(now));
  for (const RawMember& member : members) {
    if (member.key != "meta") continue;
    const std::vector<RawMember> meta = TopLevelMembers(member.value);
    if (meta.size() != resource.at("meta").as_object().size()) {
      return Internal("the resource could not be stored");
    }
    for (const RawMember& m : meta) {
      // The server's values replace the client's, together with their extensions.
      if (m.key == "versionId" || m.key == "lastUpdated" || m.key == "_versionId" ||
          m.key == "_lastUpdated") {
        continue;
      }
      text += ',';
      AppendJsonEscaped(text, m.key);
      text += ':';
      AppendMinified(text, m.value);
    }
  }
  text += '}';
  for (const RawMember& member : members) {
    if (member.key == "resourceType" || member.key == "id" || member.key == "meta") continue;
    text += ',';
    AppendJsonEscaped(text, member.key);
    text += ':';
    AppendMinified(text, member.value);
  }
  text += '}';

  storage::VersionRecord record;
  record.type = std::string(type);
  record.id = std::string(id);
  record.version = version;
  record.last_updated_ms = now;
  auto sealed = keyring_.Seal(crypto::KeyPurpose::kData, text, VersionAad(type, id, version),
                              &record.key_version);
  if (!sealed.ok()) return Internal("the resource could not be stored");
  record.ciphertext = std::move(sealed).value();
  // The index describes exactly this version, written in the same transaction (§2).
  {
    std::error_code ec;
    const json::value stored = json::parse(text, ec, {}, StoredJsonOptions());
    if (ec) return Internal("the resource could not be stored");
    ASSIGN_OR_RETURN(record.index, search_index_->Entries(stored));
  }
  if (t_pending != nullptr) {  // a transaction's write: appended with the others
    if (guard) {
      t_pending->guards.push_back(
          [guard, id = std::string(id), version, status] { return guard(id, version, status); });
    }
    t_pending->writes.push_back({std::move(record), expected_version});
  } else {
    storage::BeforeCommit before_commit;
    if (guard) before_commit = [&] { return guard(id, version, status); };
    auto appended = store_.AppendVersion(record, expected_version, before_commit);
    if (!appended.ok()) return appended.status();
  }

  RestResult result;
  result.status = status;
  result.body = std::move(text);
  result.etag = WeakEtag(version);
  result.last_modified = FormatHttpDate(now);
  result.location = std::string(base_url) + "/" + std::string(type) + "/" + std::string(id) +
                    "/_history/" + std::to_string(version);
  return result;
}

Result<RestResult> ResourceService::Create(std::string_view type, std::string_view body,
                                           std::string_view base_url, const WriteGuard& guard) {
  ASSIGN_OR_RETURN(json::value parsed, ParseResource(type, body));
  if (t_pending != nullptr && !t_pending->assign_id.empty()) {
    const std::string id = std::exchange(t_pending->assign_id, std::string());
    return WriteVersion(type, id, body, parsed.as_object(), 0, 201, base_url, guard);
  }
  // http.html#create: the server ignores a client-supplied id and assigns its own.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto r = WriteVersion(type, NewId(), body, parsed.as_object(), 0, 201, base_url, guard);
    if (r.ok() || r.status().code() != StatusCode::kConflict) return r;
  }
  return Internal("could not assign a resource id");
}

Result<RestResult> ResourceService::CreateAs(std::string_view type, std::string_view id,
                                             std::string_view body, std::string_view base_url,
                                             const WriteGuard& guard) {
  if (!IsValidId(id)) return InvalidArgument("invalid resource id");
  ASSIGN_OR_RETURN(json::value parsed, ParseResource(type, body));
  return WriteVersion(type, id, body, parsed.as_object(), 0, 201, base_url, guard);
}

std::string ResourceService::NewResourceId() { return NewId(); }

ResourceService::TransactionScope::TransactionScope(PendingWrites* pending) { t_pending = pending; }
ResourceService::TransactionScope::~TransactionScope() { t_pending = nullptr; }

Status ResourceService::CommitPending(const PendingWrites& pending) {
  if (pending.writes.empty()) return Status::Ok();
  const storage::BeforeCommit before_commit = [&]() -> Status {
    for (const auto& guard : pending.guards) RETURN_IF_ERROR(guard());
    return Status::Ok();
  };
  return store_.AppendVersions(pending.writes, before_commit).status();
}

Result<RestResult> ResourceService::Served(
    const std::optional<storage::VersionRecord>& record) const {
  if (!record) return ResourceNotFound();
  if (record->deleted) return Gone();
  ASSIGN_OR_RETURN(std::string text, OpenVersion(*record));
  RestResult result;
  result.body = std::move(text);
  result.etag = WeakEtag(record->version);
  result.last_modified = FormatHttpDate(record->last_updated_ms);
  return result;
}

Result<RestResult> ResourceService::Read(std::string_view type, std::string_view id) {
  if (!IsValidId(id)) return ResourceNotFound();
  ASSIGN_OR_RETURN(auto current, store_.ReadCurrent(std::string(type), std::string(id)));
  return Served(current);
}

Result<RestResult> ResourceService::Vread(std::string_view type, std::string_view id,
                                          std::string_view vid) {
  auto version = ParsePositive(vid);
  if (!IsValidId(id) || !version) return ResourceNotFound();
  ASSIGN_OR_RETURN(auto record, store_.ReadVersion(std::string(type), std::string(id), *version));
  return Served(record);
}

Result<std::optional<int64_t>> ResourceService::ParseIfMatch(std::string_view if_match) {
  // RFC 7232 §3.1 with FHIR's weak version ETags: W/"3" (a strong "3" is accepted too).
  if (if_match.empty()) return std::optional<int64_t>();
  std::string_view v = if_match;
  if (v.size() >= 2 && v.substr(0, 2) == "W/") v.remove_prefix(2);
  if (v.size() < 3 || v.front() != '"' || v.back() != '"') {
    return InvalidArgument("If-Match must be a version ETag such as W/\"1\"");
  }
  auto version = ParsePositive(v.substr(1, v.size() - 2));
  if (!version) return InvalidArgument("If-Match must be a version ETag such as W/\"1\"");
  return std::optional<int64_t>(*version);
}

Result<RestResult> ResourceService::Update(std::string_view type, std::string_view id,
                                           std::string_view body, std::string_view if_match,
                                           std::string_view base_url, const WriteGuard& guard) {
  if (!IsValidId(id)) return InvalidArgument("invalid resource id in the URL");
  ASSIGN_OR_RETURN(json::value parsed, ParseResource(type, body));
  const auto& obj = parsed.as_object();
  // http.html#update: the body's id must be present and equal the URL's id.
  const auto* body_id = obj.if_contains("id");
  if (body_id == nullptr || !body_id->is_string() || body_id->as_string() != id) {
    return InvalidArgument("the resource id must match the id in the URL",
                           std::string(type) + ".id");
  }
  ASSIGN_OR_RETURN(const std::optional<int64_t> wanted, ParseIfMatch(if_match));
  for (int attempt = 0; attempt < kUpdateRetries; ++attempt) {
    ASSIGN_OR_RETURN(auto current, store_.ReadCurrent(std::string(type), std::string(id)));
    if (!current && !config_.update_create) {
      return Status(StatusCode::kMethodNotAllowed,
                    "this server does not create resources with client-assigned ids");
    }
    int64_t current_version = current ? current->version : 0;
    if (wanted && *wanted != current_version) {
      return VersionMismatch();
    }
    int status = current && !current->deleted ? 200 : 201;
    auto r = WriteVersion(type, id, body, obj, current_version, status, base_url, guard);
    if (r.ok() || r.status().code() != StatusCode::kConflict) return r;
    if (wanted) {
      return VersionMismatch();
    }
  }
  return Status(StatusCode::kConflict, "the resource is being updated concurrently; retry");
}

Result<RestResult> ResourceService::Delete(std::string_view type, std::string_view id,
                                           std::string_view if_match, const WriteGuard& guard) {
  if (!IsValidId(id)) return ResourceNotFound();
  ASSIGN_OR_RETURN(const std::optional<int64_t> wanted, ParseIfMatch(if_match));
  for (int attempt = 0; attempt < kUpdateRetries; ++attempt) {
    ASSIGN_OR_RETURN(auto current, store_.ReadCurrent(std::string(type), std::string(id)));
    if (wanted && (!current || *wanted != current->version)) {
      return VersionMismatch();
    }
    RestResult result;
    result.status = 204;
    // http.html#delete: deleting a resource that does not exist, or is already deleted,
    // succeeds without creating a version.
    if (!current) return result;
    if (current->deleted) {
      result.etag = WeakEtag(current->version);
      return result;
    }
    storage::VersionRecord tombstone;
    tombstone.type = std::string(type);
    tombstone.id = std::string(id);
    tombstone.version = current->version + 1;
    tombstone.last_updated_ms = clock_.NowMillis();
    tombstone.deleted = true;
    Result<int64_t> appended = int64_t{0};
    if (t_pending != nullptr) {  // a transaction's write: appended with the others
      if (guard) {
        t_pending->guards.push_back(
            [guard, id = std::string(id), v = tombstone.version] { return guard(id, v, 204); });
      }
      t_pending->writes.push_back({tombstone, current->version});
    } else {
      storage::BeforeCommit before_commit;
      if (guard) before_commit = [&] { return guard(id, tombstone.version, 204); };
      appended = store_.AppendVersion(tombstone, current->version, before_commit);
    }
    if (appended.ok()) {
      result.etag = WeakEtag(tombstone.version);
      result.last_modified = FormatHttpDate(tombstone.last_updated_ms);
      return result;
    }
    if (appended.status().code() != StatusCode::kConflict) return appended.status();
    if (wanted) {
      return VersionMismatch();
    }
  }
  return Status(StatusCode::kConflict, "the resource is being updated concurrently; retry");
}

Result<RestResult> ResourceService::History(std::string_view type, std::string_view id,
                                            const QueryParams& params, std::string_view base_url,
                                            const EntryFilter* filter) {
  int count = config_.default_page_size;
  int64_t cursor = 0;
  for (const auto& [name, value] : params) {
    if (name == "_count") {
      auto n = ParsePositive(value);
      if (!n) return InvalidArgument("_count must be a positive integer", "_count");
      count = static_cast<int>(std::min<int64_t>(*n, config_.max_page_size));
    } else if (name == "_page") {
      auto n = ParsePositive(value);
      if (!n) return InvalidArgument("invalid _page cursor", "_page");
      cursor = *n;
    } else if (name == "_format" || name == "_pretty" || name == "_elements" ||
               name == "_summary") {
      continue;  // handled by the http layer
    } else if (name == "_since" || name == "_at" || name == "_list" || name == "_sort") {
      return NotSupported("history parameter " + name + " is not supported");
    } else {
      // The name is not echoed: a client may put anything, PHI included, in a name.
      return InvalidArgument("unknown history parameter");
    }
  }
  if (!id.empty() && !IsValidId(id)) return ResourceNotFound();

  storage::HistoryQuery query;
  query.type = std::string(type);
  query.id = std::string(id);
  query.before_seq = cursor;
  query.limit = count + 1;  // one extra tells whether a next page exists
  ASSIGN_OR_RETURN(auto records, store_.History(query));
  if (!id.empty() && records.empty() && cursor == 0) return ResourceNotFound();
  bool has_next = static_cast<int>(records.size()) > count;
  if (has_next) records.resize(static_cast<size_t>(count));

  std::string path = std::string(base_url) + "/" + std::string(type) +
                     (id.empty() ? "" : "/" + std::string(id)) + "/_history";
  std::string self = path + "?_count=" + std::to_string(count) +
                     (cursor ? "&_page=" + std::to_string(cursor) : "");

  // The Bundle is assembled as text so each stored resource is spliced in as stored.
  std::string out;
  out.reserve(256 + records.size() * 2048);
  out += R"({"resourceType":"Bundle","id":")";
  out += NewId();
  out += R"(","meta":{"lastUpdated":")";
  out += FormatInstant(clock_.NowMillis());
  out += R"("},"type":"history","link":[{"relation":"self","url":)";
  AppendJsonEscaped(out, self);
  out += '}';
  if (has_next) {
    out += R"(,{"relation":"next","url":)";
    AppendJsonEscaped(out, path + "?_count=" + std::to_string(count) +
                               "&_page=" + std::to_string(records.back().seq));
    out += '}';
  }
  out += ']';
  // FHIR JSON has no empty arrays: a page without entries has no `entry` at all.
  bool first = true;
  for (const auto& rec : records) {
    std::string text;
    if (!rec.deleted) {
      ASSIGN_OR_RETURN(text, OpenVersion(rec));
    }
    if (filter != nullptr) {
      ASSIGN_OR_RETURN(bool keep, (*filter)(rec.type, rec.id, rec.deleted ? nullptr : &text));
      if (!keep) continue;
    }
    out += first ? ",\"entry\":[" : ",";
    first = false;
    std::string rel = rec.type + "/" + rec.id;
    out += "{\"fullUrl\":";
    AppendJsonEscaped(out, std::string(base_url) + "/" + rel);
    if (!rec.deleted) {
      out += ",\"resource\":";
      out += text;
    }
    const char* method = rec.deleted ? "DELETE" : rec.version == 1 ? "POST" : "PUT";
    const char* status = rec.deleted ? "204" : rec.version == 1 ? "201" : "200";
    out += ",\"request\":{\"method\":\"";
    out += method;
    out += "\",\"url\":";
    AppendJsonEscaped(out, rec.version == 1 && !rec.deleted ? rec.type : rel);
    out += "},\"response\":{\"status\":\"";
    out += status;
    out += "\",\"etag\":";
    AppendJsonEscaped(out, WeakEtag(rec.version));
    out += ",\"lastModified\":";
    AppendJsonEscaped(out, FormatInstant(rec.last_updated_ms));
    out += "}}";
  }
  if (!first) out += ']';
  out += '}';
  RestResult result;
  result.body = std::move(out);
  return result;
}

Result<RestResult> ResourceService::Search(std::string_view type, const QueryParams& params,
                                           std::string_view base_url, bool lenient,
                                           const EntryFilter* filter,
                                           const VisibleFilter* visible) {
  const fhir::Search search(store_, keyring_, *search_index_, clock_, SearchOptionsOf(config_));
  SearchRequest request;
  request.type = type;
  request.params = &params;
  request.base_url = base_url;
  request.lenient = lenient;
  request.filter = filter;
  request.visible = visible;
  return search.Run(request);
}

Result<RestResult> ResourceService::Everything(
    std::string_view patient_id, const QueryParams& params, std::string_view base_url,
    const std::vector<std::pair<std::string, std::vector<std::string>>>& members,
    const EntryFilter* filter) {
  const fhir::Search search(store_, keyring_, *search_index_, clock_, SearchOptionsOf(config_));
  EverythingRequest request;
  request.patient_id = patient_id;
  request.params = &params;
  request.base_url = base_url;
  request.members = &members;
  request.filter = filter;
  return search.Everything(request);
}

Result<std::vector<std::string>> ResourceService::MatchIds(std::string_view type,
                                                           const QueryParams& params, int limit,
                                                           const VisibleFilter* visible) {
  const fhir::Search search(store_, keyring_, *search_index_, clock_, SearchOptionsOf(config_));
  SearchRequest request;
  request.type = type;
  request.params = &params;
  request.visible = visible;
  return search.Ids(request, limit);
}

}  // namespace phigate::fhir
