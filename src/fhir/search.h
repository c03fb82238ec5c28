// Search: FHIR search (search.html) over encrypted resources, for one resource type
// (issue 6 §1, §2).
//
// A request's parameters become conditions; each condition narrows the store's candidates
// through blind index tokens (search_index.h) and is then checked exactly on the decrypted
// resource, so a truncated token, a coarse number bucket or a year never decides a result
// alone. Candidates come in id order; a page ends after `_count` matches, or early (with a
// next link) once it has decrypted `scan_budget` candidates, so no request decrypts an
// unbounded number of resources.
//
// Supported: token (code, system|code, |code, system|; :not, :missing), string (starts-with,
// case- and accent-insensitive; :exact, :missing), reference (id, Type/id, absolute URL,
// :<Type>, :missing), date (eq ne lt gt le ge sa eb ap with the precision rules of
// search.html#date), number and quantity (the same prefixes; value|system|code and
// value||code; a Range target by the range rules), uri (exact); _id, _lastUpdated,
// _count, _total (none, estimate, accurate), _sort, _include and _revinclude (not
// iterative), chains one level deep, _elements and _summary (left to the caller's
// filter). Comma-separated values are OR, a repeated parameter is AND. Other modifiers,
// composite and special parameters, _has, _filter, _list, _query, _contained answer
// kNotSupported (501), never a wrong result. docs/search.md is the client's view.
//
// Paging: every link the server writes is `<base>/<type>?_cursor=<opaque>`; the cursor is
// the search's parameters and position sealed (AES-256-GCM, keyring purpose kTokens) with
// an expiry, so search values (possibly PHI) never appear in a URL the server generates,
// and a cursor cannot be forged or replayed after it expires (410).
//
// Thread-safety: a Search is immutable; Run may be called from many threads at once.
#pragma once

#include <cstdint>
#include <functional>
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
#include "fhir/resource_service.h"
#include "fhir/search_index.h"
#include "storage/store.h"

namespace phigate::fhir {

struct SearchOptions {
  int default_count = 50;
  int max_count = 1000;
  int scan_budget = 10000;          // candidates decrypted per page at most
  int64_t cursor_ttl_ms = 600'000;  // how long a next link stays valid
};

struct SearchRequest {
  std::string_view type;
  const QueryParams* params = nullptr;
  std::string_view base_url;  // e.g. https://host/fhir
  bool lenient = false;       // Prefer: handling=lenient: unknown parameters are ignored
  // May be null. Shapes or drops each entry of the page (the authorization view, which
  // also records what is returned for the audit trail).
  const EntryFilter* filter = nullptr;
  // May be null. Whether the caller could see a match that is only counted (_total
  // beyond the page); no side effects. Null: every match counts.
  const std::function<Result<bool>(std::string_view type, std::string_view id,
                                   std::string_view text)>* visible = nullptr;
};

// GET [base]/Patient/{id}/$everything (patient-operation-everything.html).
struct EverythingRequest {
  std::string_view patient_id;
  const QueryParams* params = nullptr;  // _since, _type, _count, _cursor
  std::string_view base_url;
  // The compartment's member types the caller may search, in the order pages list them,
  // each with the search parameters that link it to a patient (the Patient
  // CompartmentDefinition). A member {"Patient", {}} stands for the patient itself.
  const std::vector<std::pair<std::string, std::vector<std::string>>>* members = nullptr;
  const EntryFilter* filter = nullptr;  // may be null: as for a search
};

class Search {
 public:
  Search(storage::Store& store, const crypto::Keyring& keyring, const SearchIndex& index,
         const Clock& clock, SearchOptions options);

  // A searchset Bundle. Errors: kInvalidArgument for an unknown parameter (unless lenient),
  // a malformed value or modifier; kNotSupported for what the header lists; kGone for an
  // expired cursor, kInvalidArgument for a cursor that does not open.
  Result<RestResult> Run(const SearchRequest& request) const;

  // Conditional interactions (http.html#ccreate, #cond-update, #cdelete): the ids of up
  // to `limit` current matches of `request` (its filter is not used; `visible` decides
  // which matches count), in id order. Result parameters (_count, _sort, _include...) are
  // kInvalidArgument here. kPreconditionFailed when the scan budget runs out before
  // `limit` matches or the end are reached (the condition is not selective enough).
  Result<std::vector<std::string>> Ids(const SearchRequest& request, int limit) const;

  // A searchset Bundle of the patient and every resource in their compartment, paged like
  // a search (the cursor holds the member type and id to resume at). kNotFound / kGone for
  // an absent or deleted patient; kInvalidArgument for other parameters or an unknown
  // _type.
  Result<RestResult> Everything(const EverythingRequest& request) const;

 private:
  storage::Store& store_;
  const crypto::Keyring& keyring_;
  const SearchIndex& index_;
  const Clock& clock_;
  SearchOptions options_;
};

}  // namespace phigate::fhir
