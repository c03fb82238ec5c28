// Reading the audit trail (issue 5 §4): the AuditEvent search of GET /fhir/AuditEvent,
// the read of one record (GET /fhir/AuditEvent/{seq}), and the accounting of disclosures
// of HIPAA §164.528 (GET /fhir/Patient/{id}/$disclosures).
//
// Records are found without decrypting every one: the date range narrows by the record
// time (in the clear), and the criteria that identify someone or something (agent,
// patient, entity, query-value) are matched against the record's lookup tags (event.h:
// keyed HMACs, computed here for each keyring version); only matching records are opened,
// and the remaining criteria (event.h EventHas) are checked on the opened event. Authorization
// (auditor only; the patient for their own disclosures) is the caller's (http/) job.
//
// Thread-safety: functions; they read the trail through `dir` while an AuditLog may
// append to it (a partial last line is not yet a record and is skipped).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit_log.h"
#include "audit/event.h"
#include "core/status.h"
#include "core/url.h"
#include "crypto/keyring.h"

namespace phigate::audit {

struct SearchQuery {
  int64_t since_ms = 0;                                    // records at or after
  int64_t until_ms = std::numeric_limits<int64_t>::max();  // records before
  // Each group lists the acceptable "kind\0value" criteria of one parameter (a
  // comma-separated value gives several, OR); a record must match every group (AND).
  std::vector<std::vector<std::pair<std::string, std::string>>> criteria;
  int count = 50;         // page size
  int64_t after_seq = 0;  // paging: records with a larger seq
  // Records decrypted per page at most: a search by parameters that are not tagged (say
  // action=D alone) opens every record in its date range. A page that reaches the budget
  // ends early, with fewer than `count` entries (possibly none), and a next link that
  // continues after the last record it looked at.
  int64_t scan_budget = 10000;
  std::string next_query;  // the canonical query string of the next page, without _cursor
};

// The event of one stored record line (StoredRecord::line): errors as OpenRecord's, or
// kInvalidArgument "malformed audit event" (event.h DecodeEvent).
Result<Event> OpenEvent(std::string_view line, const crypto::Keyring& keyring);

// The AuditEvent search parameters: date (FHIR date prefixes eq, ge, gt, le, lt; repeated
// = AND; precision as in search.html#date), agent (user or client id), patient ("x" or
// "Patient/x"), entity ("Type/id"), entity-type, action (C|R|U|D|E), outcome (0|4|8|12),
// purpose, subtype, type, query-value (a search parameter value of the audited request),
// _count (1..max_count, default 50), _cursor (paging), and _format/_pretty (ignored here).
// Anything else: kInvalidArgument naming the parameter (in the expression, never its value).
Result<SearchQuery> ParseSearch(const QueryParams& params, int max_count);

// The searchset Bundle of one page, oldest first: each entry an AuditEvent with its seq as
// id and fullUrl <base_url>/AuditEvent/<seq>; a `next` link (<base_url>/AuditEvent?
// <next_query>&_cursor=<seq>) when more may follow; `self` for this page. `returned_ids`
// (may be null) receives "AuditEvent/<seq>" of each entry, for the request's own record.
Result<std::string> SearchBundle(Directory& dir, const crypto::Keyring& keyring,
                                 const SearchQuery& query, std::string_view base_url,
                                 std::vector<std::string>* returned_ids);

// One record as an AuditEvent with id = seq; kNotFound "resource not found" if absent.
Result<std::string> ReadEvent(Directory& dir, const crypto::Keyring& keyring, int64_t seq);

// The accounting of disclosures of `patient_id` in [start_ms, end_ms): every successful
// (2xx) RESTful read-type access (action R or E) that touched the patient's compartment,
// other than reads of the audit trail itself. A Bundle (type collection): entry 0 a List
// whose narrative is the plain summary (date, recipient user/client, BAA counterparty,
// what, purpose, one row per disclosure) and whose entries reference the AuditEvents that
// follow. `returned_ids` as for SearchBundle.
// Without `include_events` (the patient asking for their own accounting) only the List
// with the summary is returned: a whole record can name other patients, query values and
// workforce details that are not the patient's to see.
Result<std::string> DisclosuresBundle(Directory& dir, const crypto::Keyring& keyring,
                                      std::string_view patient_id, int64_t start_ms, int64_t end_ms,
                                      std::string_view base_url,
                                      std::vector<std::string>* returned_ids,
                                      bool include_events = true);

}  // namespace phigate::audit
