// ResourceService: the FHIR R4 RESTful interactions (http.html) on every resource type,
// generic over the model: create, read, vread, update, delete, instance and type history.
//
// Transport-free: the http layer parses the request, authorizes it and maps the result to
// a response. Each stored version is one AES-256-GCM ciphertext sealed under the keyring's
// data subkey with AAD = "<type>/<id>/<version>", so a ciphertext moved to another row
// fails to open. The store sees no plaintext.
// Thread-safety: all methods may be called concurrently; state lives in the Store.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/status.h"
#include "core/url.h"
#include "crypto/keyring.h"
#include "fhir/model.h"
#include "fhir/search_index.h"
#include "storage/store.h"

namespace phigate::fhir {

// The outcome of a successful interaction. `body` is serialized JSON (a resource or a
// Bundle), empty for 204. Headers are filled where the spec asks for them.
struct RestResult {
  int status = 200;
  std::string body;
  std::string etag;           // W/"<versionId>"
  std::string last_modified;  // RFC 7231 date
  std::string location;       // absolute URL of the version (create, update-as-create)
};

// Shapes one history entry before it leaves the server (the authorization layer's view,
// policy/view.h): `text` is the resource's JSON, to be rewritten in place, or null for a
// deletion (tombstone). Returns false to drop the entry.
using EntryFilter =
    std::function<Result<bool>(std::string_view type, std::string_view id, std::string* text)>;

// Called inside the write's transaction, after the version checks, just before COMMIT,
// with the id, the new version and the status the interaction will answer (201, 200,
// 204). A failure rolls the write back and is returned (the audit stage: issue 5 §2).
using WriteGuard = std::function<Status(std::string_view id, int64_t version, int status)>;

// A FHIR transaction's writes (issue 6 §4), gathered instead of applied while a
// TransactionScope is open on the calling thread, then committed at once.
struct PendingWrites {
  std::vector<storage::Store::VersionWrite> writes;
  std::vector<std::function<Status()>> guards;  // each write's WriteGuard, bound
  // The id the next Create takes instead of a new one (a transaction's POST entry whose
  // urn:uuid references were rewritten to it); cleared when used.
  std::string assign_id;
};

class ResourceService {
 public:
  // While alive, writes on this thread (Create, CreateAs, Update, Delete) are checked and
  // prepared as usual but appended to `pending` instead of the store, and report success;
  // their guards run when Commit() runs them. Not nested.
  class TransactionScope {
   public:
    explicit TransactionScope(PendingWrites* pending);
    ~TransactionScope();
    TransactionScope(const TransactionScope&) = delete;
    TransactionScope& operator=(const TransactionScope&) = delete;
  };
  // Appends every pending write in one database transaction, running their guards (the
  // audit records) just before COMMIT; all or nothing.
  Status CommitPending(const PendingWrites& pending);

  // `max_json_depth` bounds the nesting of request bodies (limits.json_depth).
  ResourceService(storage::Store& store, const crypto::Keyring& keyring, const Model& model,
                  const Clock& clock, FhirConfig config, int max_json_depth);

  // POST [base]/[type]: the server assigns the id; a client id in the body is ignored.
  // `body` is the request's JSON text: it is parsed and validated here, and every element
  // but id and meta is stored exactly as sent (see json_text.h).
  Result<RestResult> Create(std::string_view type, std::string_view body, std::string_view base_url,
                            const WriteGuard& guard = {});
  // Create with an id the caller chose for the server (a transaction's POST entry, whose
  // id must exist before the Bundle's references to it are rewritten): as Create
  // otherwise; kConflict if the id exists.
  Result<RestResult> CreateAs(std::string_view type, std::string_view id, std::string_view body,
                              std::string_view base_url, const WriteGuard& guard = {});
  // A new server-assigned id (an RFC 4122 version 4 UUID).
  static std::string NewResourceId();
  // GET [base]/[type]/[id]: 404 if never existed, 410 if deleted.
  Result<RestResult> Read(std::string_view type, std::string_view id);
  // GET [base]/[type]/[id]/_history/[vid].
  Result<RestResult> Vread(std::string_view type, std::string_view id, std::string_view vid);
  // PUT [base]/[type]/[id]; `if_match` is the raw If-Match header or empty.
  Result<RestResult> Update(std::string_view type, std::string_view id, std::string_view body,
                            std::string_view if_match, std::string_view base_url,
                            const WriteGuard& guard = {});
  // DELETE [base]/[type]/[id]: writes a versioned tombstone.
  // A delete that writes no version (absent or already deleted) does not call `guard`.
  Result<RestResult> Delete(std::string_view type, std::string_view id, std::string_view if_match,
                            const WriteGuard& guard = {});
  // GET [base]/[type]/[id]/_history or [base]/[type]/_history, newest first, paged by
  // _count with a `next` link. `id` empty = type history. `self_url` is the request URL.
  // `filter` (may be null) shapes or drops each entry; a page keeps its paging position
  // (the next link follows the stored records), so a filtered page may be short.
  // _elements and _summary are accepted here and left to the filter.
  Result<RestResult> History(std::string_view type, std::string_view id, const QueryParams& params,
                             std::string_view base_url, const EntryFilter* filter = nullptr);
  // GET [base]/[type]?params and POST [base]/[type]/_search (search.h): a searchset Bundle.
  // `filter` (may be null) shapes or drops each entry; `visible` (may be null) says
  // whether a match that is only counted (_total) could be seen. `lenient`: unknown
  // parameters are ignored (Prefer: handling=lenient).
  using VisibleFilter = std::function<Result<bool>(std::string_view type, std::string_view id,
                                                   std::string_view text)>;
  Result<RestResult> Search(std::string_view type, const QueryParams& params,
                            std::string_view base_url, bool lenient,
                            const EntryFilter* filter = nullptr,
                            const VisibleFilter* visible = nullptr);

  // The ids of up to `limit` visible current matches of a condition (search.h, Ids).
  Result<std::vector<std::string>> MatchIds(std::string_view type, const QueryParams& params,
                                            int limit, const VisibleFilter* visible);

  // GET [base]/Patient/{id}/$everything (search.h, EverythingRequest).
  Result<RestResult> Everything(
      std::string_view patient_id, const QueryParams& params, std::string_view base_url,
      const std::vector<std::pair<std::string, std::vector<std::string>>>& members,
      const EntryFilter* filter = nullptr);

  // The blind index the service keeps for search (issue 6 §2).
  const SearchIndex& search_index() const { return *search_index_; }

 private:
  Result<std::string> OpenVersion(const storage::VersionRecord& record) const;
  // The read/vread answer for a stored version: 404 absent, 410 tombstone, else the body.
  Result<RestResult> Served(const std::optional<storage::VersionRecord>& record) const;
  // Parses and validates a request body for `type`.
  Result<boost::json::value> ParseResource(std::string_view type, std::string_view body) const;
  Result<RestResult> WriteVersion(std::string_view type, std::string_view id, std::string_view body,
                                  const boost::json::object& resource, int64_t expected_version,
                                  int status, std::string_view base_url, const WriteGuard& guard);
  // The version an If-Match header asks for; nullopt when the header is absent.
  static Result<std::optional<int64_t>> ParseIfMatch(std::string_view if_match);

  storage::Store& store_;
  const crypto::Keyring& keyring_;
  const Model& model_;
  const Clock& clock_;
  FhirConfig config_;
  int max_json_depth_;
  std::unique_ptr<SearchIndex> search_index_;
};

// "Patient/123/4": binds a ciphertext to its identity (DESIGN.md, "Storage and keys").
std::string VersionAad(std::string_view type, std::string_view id, int64_t version);

// Valid FHIR logical id: [A-Za-z0-9\-\.]{1,64} (datatypes.html#id).
bool IsValidId(std::string_view id);

}  // namespace phigate::fhir
