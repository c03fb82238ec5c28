#include "audit/query.h"

#include <algorithm>
#include <charconv>
#include <functional>
#include <limits>
#include <optional>
#include <system_error>
#include <utility>

#include "audit/event.h"
#include "core/clock.h"
#include "core/date_range.h"
#include "core/html.h"
#include "crypto/crypto.h"

namespace phigate::audit {

namespace {

// 10000-01-01T00:00:00Z: dates beyond year 9999 are not printed (FormatInstant).
constexpr int64_t kYear10000Ms = 253402300800000;

// ---- date parameter (FHIR search.html#date) ----

// A date or dateTime as the range of instants its precision covers (core/date_range.h);
// the trail holds nothing before 1970, so earlier dates are refused like malformed ones.
std::optional<DateRange> ParseAuditDateRange(std::string_view v) {
  std::optional<DateRange> range = ParseDateRange(v);
  if (!range || range->lo < 0) return std::nullopt;
  return range;
}

Status BadDate() {
  return InvalidArgument(
      "date must be a date or dateTime (yyyy, yyyy-mm, yyyy-mm-dd or yyyy-mm-ddThh:mm[:ss]) "
      "with an optional prefix eq, ge, gt, le or lt",
      "date");
}

Status ApplyDate(std::string_view value, SearchQuery& query) {
  std::string_view prefix = "eq";
  if (value.size() >= 2 && value[0] >= 'a' && value[0] <= 'z') {
    prefix = value.substr(0, 2);
    value.remove_prefix(2);
  }
  std::optional<DateRange> range = ParseAuditDateRange(value);
  if (!range) return BadDate();
  // A record's time is one instant t; search.html#date compares the search value's range
  // with it.
  if (prefix == "eq") {
    query.since_ms = std::max(query.since_ms, range->lo);
    query.until_ms = std::min(query.until_ms, range->hi);
  } else if (prefix == "ge") {
    query.since_ms = std::max(query.since_ms, range->lo);
  } else if (prefix == "gt") {
    query.since_ms = std::max(query.since_ms, range->hi);
  } else if (prefix == "le") {
    query.until_ms = std::min(query.until_ms, range->hi);
  } else if (prefix == "lt") {
    query.until_ms = std::min(query.until_ms, range->lo);
  } else {
    return BadDate();
  }
  return Status::Ok();
}

// ---- the other parameters ----

std::optional<int64_t> PositiveInt(std::string_view s) {
  int64_t n = 0;
  if (s.empty() || s[0] == '0') return std::nullopt;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || ptr != s.data() + s.size() || n <= 0) return std::nullopt;
  return n;
}

// Checks one value of a tag parameter and returns the value the tags were made of.
std::optional<std::string> CriterionValue(std::string_view name, std::string value) {
  if (value.empty()) return std::nullopt;
  if (name == "action") {
    if (value.size() != 1 || std::string_view("CRUDE").find(value[0]) == std::string_view::npos) {
      return std::nullopt;
    }
  } else if (name == "outcome") {
    if (value != "0" && value != "4" && value != "8" && value != "12") return std::nullopt;
  } else if (name == "type") {
    if (value != "rest" && value != "authentication" && value != "administration" &&
        value != "system") {
      return std::nullopt;
    }
  } else if (name == "patient") {
    if (value.rfind("Patient/", 0) == 0) value.erase(0, 8);
    if (value.empty() || value.find('/') != std::string::npos) return std::nullopt;
  } else if (name == "entity") {
    const size_t slash = value.find('/');
    if (slash == 0 || slash == std::string::npos || slash + 1 == value.size()) return std::nullopt;
  }
  return value;
}

// What a bad value of each tag parameter must look like (the message never echoes it).
std::string_view Expected(std::string_view name) {
  if (name == "action") return "action must be C, R, U, D or E";
  if (name == "outcome") return "outcome must be 0, 4, 8 or 12";
  if (name == "type") return "type must be rest, authentication, administration or system";
  if (name == "patient") return "patient must be a patient id or Patient/<id>";
  if (name == "entity") return "entity must be a reference <type>/<id>";
  return {};
}

constexpr std::string_view kTagParams[] = {"agent",  "patient",    "entity",  "entity-type",
                                           "action", "outcome",    "purpose", "subtype",
                                           "type",   "query-value"};

bool IsTagParam(std::string_view name) {
  return std::find(std::begin(kTagParams), std::end(kTagParams), name) != std::end(kTagParams);
}

// ---- reading ----

// The criteria of a search, split: each tagged group as the sorted tags of its values under
// every keyring version (a record carries the tags of the version current when it was
// written), and the groups matched on the opened event (EventHas).
struct Criteria {
  std::vector<std::vector<std::string>> tags;
  std::vector<std::vector<std::pair<std::string, std::string>>> fields;
};

Criteria Prepare(const crypto::Keyring& keyring,
                 const std::vector<std::vector<std::pair<std::string, std::string>>>& criteria) {
  Criteria out;
  std::vector<std::string> keys;
  for (const auto& group : criteria) {
    // A group is of one parameter: all its criteria share the kind.
    if (group.empty() || !IsTaggedKind(group.front().first)) {
      out.fields.push_back(group);
      continue;
    }
    if (keys.empty()) {
      for (uint32_t version = 1; version <= keyring.current_version(); ++version) {
        Result<std::string> key = TagKey(keyring, version);
        if (key.ok()) keys.push_back(std::move(key).value());  // versions may have gaps
      }
    }
    std::vector<std::string> tags;
    for (const std::string& key : keys) {
      for (const auto& [kind, value] : group) tags.push_back(Tag(key, kind, value));
    }
    std::sort(tags.begin(), tags.end());
    out.tags.push_back(std::move(tags));
  }
  for (std::string& key : keys) crypto::Wipe(key);
  return out;
}

bool TagsMatch(const StoredRecord& record, const Criteria& criteria) {
  for (const std::vector<std::string>& group : criteria.tags) {
    const bool any = std::any_of(record.tags.begin(), record.tags.end(), [&](std::string_view t) {
      return std::binary_search(group.begin(), group.end(), t);
    });
    if (!any) return false;
  }
  return true;
}

bool FieldsMatch(const Event& event, const Criteria& criteria) {
  for (const auto& group : criteria.fields) {
    const bool any = std::any_of(group.begin(), group.end(), [&](const auto& criterion) {
      return EventHas(event, criterion.first, criterion.second);
    });
    if (!any) return false;
  }
  return true;
}

Status Unreadable() { return Internal("audit record cannot be read"); }

// One matching record, opened.
struct Found {
  int64_t seq = 0;
  Event event;
};

// Where a walk stops short of the end: after `limit` records were taken, or before opening
// more than `budget` records. *more (may be null) tells whether another match followed or
// the budget ran out; *resume_after (may be null), the seq after which a next page goes on.
struct WalkLimits {
  int64_t limit = std::numeric_limits<int64_t>::max();
  int64_t budget = std::numeric_limits<int64_t>::max();
  bool* more = nullptr;
  int64_t* resume_after = nullptr;
};

// Walks records with seq > after_seq in [since_ms, until_ms) that match `criteria`, opens
// each, and passes it to `take`, which returns false to stop.
Status Walk(Directory& dir, const crypto::Keyring& keyring, const Criteria& criteria,
            int64_t after_seq, int64_t since_ms, int64_t until_ms,
            const std::function<Status(Found)>& take, const WalkLimits& limits) {
  Status failure;
  int64_t taken = 0;
  int64_t opened = 0;
  if (limits.more != nullptr) *limits.more = false;
  RETURN_IF_ERROR(ForEachRecord(dir, after_seq + 1, [&](const StoredRecord& record) {
    if (record.seq <= after_seq) return true;
    if (record.time_ms < since_ms || record.time_ms >= until_ms) return true;
    if (!TagsMatch(record, criteria)) return true;
    if (opened == limits.budget) {
      if (limits.more != nullptr) *limits.more = true;
      if (limits.resume_after != nullptr) *limits.resume_after = record.seq - 1;
      return false;
    }
    ++opened;
    Result<Event> event = OpenEvent(record.line, keyring);
    if (!event.ok()) {
      failure = Unreadable();
      return false;
    }
    if (!FieldsMatch(*event, criteria)) return true;
    if (taken == limits.limit) {
      if (limits.more != nullptr) *limits.more = true;
      return false;
    }
    Found found{record.seq, std::move(event).value()};
    failure = take(std::move(found));
    if (!failure.ok()) return false;
    ++taken;
    if (limits.resume_after != nullptr) *limits.resume_after = record.seq;
    return true;
  }));
  return failure;
}

std::string SearchUrl(std::string_view base_url, std::string_view query, int64_t cursor) {
  std::string url(base_url);
  url += "/AuditEvent";
  std::string q(query);
  if (cursor > 0) q += (q.empty() ? "" : "&") + std::string("_cursor=") + std::to_string(cursor);
  if (!q.empty()) url += "?" + q;
  return url;
}

void AppendLink(std::string& out, bool first, std::string_view relation, std::string_view url) {
  if (!first) out += ',';
  out += "{\"relation\":";
  AppendJsonString(out, relation);
  out += ",\"url\":";
  AppendJsonString(out, url);
  out += '}';
}

void AppendEntry(std::string& out, std::string_view base_url, const Found& found,
                 std::string_view search_mode) {
  out += "{\"fullUrl\":";
  AppendJsonString(out, std::string(base_url) + "/AuditEvent/" + std::to_string(found.seq));
  out += ",\"resource\":";
  out += EventJson(found.event, std::to_string(found.seq));
  if (!search_mode.empty()) {
    out += ",\"search\":{\"mode\":";
    AppendJsonString(out, search_mode);
    out += '}';
  }
  out += '}';
}

// ---- disclosures ----

// One row of the plain summary.
struct Disclosure {
  int64_t seq = 0;
  std::string date;
  std::string recipient;
  std::string counterparty;
  std::string what;
  std::string purpose;
};

// Whether a record's event is a disclosure of `patient_id` (query.h), and if so its
// summary row (the same values its AuditEvent shows: docs/audit.md).
std::optional<Disclosure> AsDisclosure(const Event& event, std::string_view patient_id) {
  if (event.kind != EventKind::kRest) return std::nullopt;
  if (event.action != 'R' && event.action != 'E') return std::nullopt;
  if (event.status < 200 || event.status > 299) return std::nullopt;
  // $disclosures reads the audit trail, like GET /fhir/AuditEvent.
  if (event.route.find("$disclosures") != std::string::npos) return std::nullopt;
  if (std::find(event.patients.begin(), event.patients.end(), patient_id) == event.patients.end()) {
    return std::nullopt;
  }
  if (event.resource_type == "AuditEvent") return std::nullopt;

  Disclosure row;
  row.date = FormatInstant(event.time_ms);
  if (!event.user_id.empty()) row.recipient = "user " + event.user_id;
  if (!event.client_id.empty()) {
    row.recipient += (row.recipient.empty() ? "client " : ", client ") + event.client_id;
  }
  row.counterparty = event.baa_counterparty;
  if (!event.resource_type.empty() && !event.resource_id.empty()) {
    // The resource acted on, as the AuditEvent's entity names it.
    row.what = event.resource_type + "/" + event.resource_id;
    if (event.version > 0) row.what += "/_history/" + std::to_string(event.version);
  } else {
    row.what = event.subtype;
    if (!event.resource_type.empty()) {
      row.what += (row.what.empty() ? "" : " ") + event.resource_type;
    }
  }
  row.purpose = event.purpose;
  for (std::string* field :
       {&row.date, &row.recipient, &row.counterparty, &row.what, &row.purpose}) {
    if (field->empty()) *field = "-";
  }
  return row;
}

std::string SummaryXhtml(std::string_view patient_id, int64_t start_ms, int64_t end_ms,
                         const std::vector<Disclosure>& rows) {
  std::string div =
      "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Accounting of disclosures for Patient/";
  div += HtmlEscape(patient_id);
  if (start_ms >= 0 && start_ms < kYear10000Ms && end_ms >= 0 && end_ms <= kYear10000Ms) {
    div += " from " + FormatInstant(start_ms) + " to " + FormatInstant(end_ms);
  }
  div += "</p>";
  if (rows.empty()) {
    div += "<p>No disclosures.</p></div>";
    return div;
  }
  div +=
      "<table><thead><tr><th>Date</th><th>Recipient</th><th>BAA counterparty</th><th>What</th>"
      "<th>Purpose</th></tr></thead><tbody>";
  for (const Disclosure& row : rows) {
    div += "<tr>";
    for (const std::string* cell :
         {&row.date, &row.recipient, &row.counterparty, &row.what, &row.purpose}) {
      div += "<td>";
      div += HtmlEscape(*cell);
      div += "</td>";
    }
    div += "</tr>";
  }
  div += "</tbody></table></div>";
  return div;
}

}  // namespace

Result<Event> OpenEvent(std::string_view line, const crypto::Keyring& keyring) {
  ASSIGN_OR_RETURN(std::string plain, OpenRecord(line, keyring));
  Result<Event> event = DecodeEvent(plain);
  crypto::Wipe(plain);
  return event;
}

Result<SearchQuery> ParseSearch(const QueryParams& params, int max_count) {
  SearchQuery query;
  QueryParams canonical;
  bool has_count = false;
  bool has_cursor = false;
  for (const auto& [name, value] : params) {
    if (name == "_format" || name == "_pretty") continue;
    if (name == "_cursor") {
      if (has_cursor) return InvalidArgument("_cursor may be given only once", "_cursor");
      has_cursor = true;
      std::optional<int64_t> cursor = PositiveInt(value);
      // A seq never comes near the top of int64 (and after_seq + 1 must not overflow).
      if (!cursor || *cursor >= (int64_t{1} << 62)) {
        return InvalidArgument("invalid _cursor", "_cursor");
      }
      query.after_seq = *cursor;
      continue;
    }
    if (name == "_count") {
      if (has_count) return InvalidArgument("_count may be given only once", "_count");
      has_count = true;
      std::optional<int64_t> count = PositiveInt(value);
      if (!count || *count > max_count) {
        return InvalidArgument("_count must be an integer from 1 to " + std::to_string(max_count),
                               "_count");
      }
      query.count = static_cast<int>(*count);
    } else if (name == "date") {
      RETURN_IF_ERROR(ApplyDate(value, query));
    } else if (IsTagParam(name)) {
      std::vector<std::pair<std::string, std::string>> group;
      for (std::string& part : SplitSearchValues(value)) {
        std::optional<std::string> criterion = CriterionValue(name, std::move(part));
        if (!criterion) {
          std::string_view expected = Expected(name);
          if (expected.empty()) {
            return InvalidArgument(name + " must not have an empty value", name);
          }
          return InvalidArgument(std::string(expected), name);
        }
        group.emplace_back(name, std::move(*criterion));
      }
      query.criteria.push_back(std::move(group));
    } else {
      return InvalidArgument("unknown search parameter", name);
    }
    canonical.emplace_back(name, value);
  }
  query.next_query = CanonicalQuery(canonical);
  return query;
}

Result<std::string> SearchBundle(Directory& dir, const crypto::Keyring& keyring,
                                 const SearchQuery& query, std::string_view base_url,
                                 std::vector<std::string>* returned_ids) {
  const Criteria criteria = Prepare(keyring, query.criteria);
  std::string entries;
  int64_t resume_after = query.after_seq;
  bool more = false;
  if (query.since_ms < query.until_ms) {
    WalkLimits limits;
    limits.limit = query.count;
    limits.budget = std::max<int64_t>(1, query.scan_budget);
    limits.more = &more;
    limits.resume_after = &resume_after;
    RETURN_IF_ERROR(Walk(
        dir, keyring, criteria, query.after_seq, query.since_ms, query.until_ms,
        [&](Found found) {
          if (!entries.empty()) entries += ',';
          AppendEntry(entries, base_url, found, "match");
          if (returned_ids != nullptr) {
            returned_ids->push_back("AuditEvent/" + std::to_string(found.seq));
          }
          return Status::Ok();
        },
        limits));
  }
  std::string out = "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"link\":[";
  AppendLink(out, true, "self", SearchUrl(base_url, query.next_query, query.after_seq));
  if (more) AppendLink(out, false, "next", SearchUrl(base_url, query.next_query, resume_after));
  out += "]";
  if (!entries.empty()) out += ",\"entry\":[" + entries + "]";
  out += '}';
  return out;
}

Result<std::string> ReadEvent(Directory& dir, const crypto::Keyring& keyring, int64_t seq) {
  if (seq <= 0) return NotFound("resource not found");
  std::optional<std::string> json;
  Status failure;
  RETURN_IF_ERROR(ForEachRecord(dir, seq, [&](const StoredRecord& record) {
    if (record.seq == seq) {
      Result<Event> opened = OpenEvent(record.line, keyring);
      if (opened.ok()) {
        json = EventJson(*opened, std::to_string(seq));
      } else {
        failure = Unreadable();
      }
    }
    return false;
  }));
  RETURN_IF_ERROR(failure);
  if (!json) return NotFound("resource not found");
  return std::move(*json);
}

Result<std::string> DisclosuresBundle(Directory& dir, const crypto::Keyring& keyring,
                                      std::string_view patient_id, int64_t start_ms, int64_t end_ms,
                                      std::string_view base_url,
                                      std::vector<std::string>* returned_ids, bool include_events) {
  // The patient's tag narrows to records that touched the patient; the rest of the
  // definition (kind rest, 2xx, action R/E, not the audit trail) is checked on the opened
  // event.
  const Criteria criteria =
      Prepare(keyring, {{{"patient", std::string(patient_id)}}, {{"outcome", "0"}}});
  std::vector<Disclosure> rows;
  std::string entries;
  if (start_ms < end_ms) {
    RETURN_IF_ERROR(Walk(
        dir, keyring, criteria, 0, start_ms, end_ms,
        [&](Found found) {
          std::optional<Disclosure> row = AsDisclosure(found.event, patient_id);
          if (!row) return Status::Ok();
          row->seq = found.seq;
          rows.push_back(std::move(*row));
          if (!include_events) return Status::Ok();
          entries += ',';
          AppendEntry(entries, base_url, found, {});
          if (returned_ids != nullptr) {
            returned_ids->push_back("AuditEvent/" + std::to_string(found.seq));
          }
          return Status::Ok();
        },
        WalkLimits{}));
  }

  std::string list = "{\"resourceType\":\"List\",\"text\":{\"status\":\"generated\",\"div\":";
  AppendJsonString(list, SummaryXhtml(patient_id, start_ms, end_ms, rows));
  list +=
      "},\"status\":\"current\",\"mode\":\"snapshot\",\"title\":\"Accounting of disclosures\","
      "\"subject\":{\"reference\":";
  AppendJsonString(list, "Patient/" + std::string(patient_id));
  list += '}';
  if (rows.empty()) {
    list +=
        ",\"emptyReason\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
        "list-empty-reason\",\"code\":\"nilknown\",\"display\":\"Nil Known\"}]}";
  } else if (include_events) {
    list += ",\"entry\":[";
    for (size_t i = 0; i < rows.size(); ++i) {
      if (i > 0) list += ',';
      list += "{\"item\":{\"reference\":\"AuditEvent/" + std::to_string(rows[i].seq) + "\"}}";
    }
    list += ']';
  }
  list += '}';

  std::string out =
      "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"resource\":";
  out += list;
  out += '}';
  out += entries;
  out += "]}";
  return out;
}

}  // namespace phigate::audit
