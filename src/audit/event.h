// Event: the content of one audit record (issue 5 §1), following the IHE Basic Audit Log
// Patterns (BALP) profile of the FHIR R4 AuditEvent: who (user, client, roles, network
// address, user agent, the client's BAA counterparty), what (interaction, resource,
// patients touched, the resources returned), when (UTC milliseconds), why (purpose of
// use, break-glass reason), outcome (HTTP status, OperationOutcome code) and request id.
//
// EncodeEvent gives the compact record form that the trail seals (encrypts) into a record;
// readers decode it and render the AuditEvent JSON with EventJson (its `id` the record's
// seq). Values that may be PHI (search parameter values, a break-glass reason, user agents)
// exist only inside that ciphertext. EventTags computes the record's lookup tags: a keyed
// HMAC of each identifying value (agent, patient, entity, query value), so an auditor finds
// records by value without the value being stored in the clear; the few-valued search
// parameters are matched on the decrypted event (EventHas). docs/audit.md says what equal
// tags reveal.
//
// Thread-safety: value types and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "crypto/crypto.h"
#include "crypto/keyring.h"

namespace phigate::audit {

// AuditEvent.type (BALP): a RESTful operation, an authentication event (DICOM 110114 User
// Authentication), an administrative action (110100 Application Activity, subtype the
// command) or a server start/stop (110100, subtype "start"/"stop").
enum class EventKind { kRest, kAuthentication, kAdministration, kSystem };

// One security event of authentication that happened while serving a request (or a CLI
// command): auth::SecurityEvent, flattened so that audit/ does not depend on auth/.
struct SecurityDetail {
  std::string name;       // auth::SecurityEventName, e.g. "login_password_failure"
  std::string user_id;    // may be empty
  std::string client_id;  // may be empty
  std::string reason;     // fixed text chosen by the emitter
};

struct Event {
  EventKind kind = EventKind::kRest;
  // The FHIR restful interaction code (http://hl7.org/fhir/restful-interaction: "read",
  // "vread", "update", "delete", "history-instance", "history-type", "create",
  // "search-type", "operation", "capabilities") for kRest; otherwise the endpoint or
  // command ("token", "login", "users.add", "clients.baa", "start", "stop", ...).
  std::string subtype;
  char action = 'E';    // AuditEvent.action: C, R, U, D or E
  int64_t time_ms = 0;  // when the request arrived (UTC, milliseconds)

  // Who.
  std::string user_id;    // a person's user id; empty for a system client
  std::string client_id;  // the OAuth client; empty if none was identified
  std::vector<std::string> roles;
  std::string address;           // the peer's IP address, or "cli" for a command
  std::string user_agent;        // may be empty
  std::string baa_counterparty;  // the third-party client's BAA counterparty, if any

  // What.
  std::string method;                 // HTTP method ("GET"), empty for commands and system events
  std::string route;                  // the route template ("/fhir/{type}/{id}"), never the path
  std::string resource_type;          // the FHIR type acted on, if any
  std::string resource_id;            // may be empty (type-level interactions)
  int64_t version = 0;                // the version read or written, 0 if none
  std::vector<std::string> patients;  // ids of the patients whose compartments were touched
  std::vector<std::string> returned;  // "Type/id" of every resource returned (search, history)
  std::vector<std::pair<std::string, std::string>> query;  // search parameters (may be PHI)

  // Why.
  std::string purpose;             // v3 PurposeOfUse code
  std::string break_glass_reason;  // may be PHI
  std::string break_glass_grant;   // grant ids, comma-separated

  // Outcome.
  int status = 0;            // the HTTP status sent (0 for commands: see outcome_code)
  std::string outcome_code;  // the OperationOutcome issue code of an error, empty on success
  std::string denial;        // the fixed text of an authorization denial, if any
  std::string request_id;
  std::vector<SecurityDetail> security;  // authentication events of this request
  std::string detail;                    // fixed PHI-free text (commands: what was done)
};

// AuditEvent.outcome for an HTTP status: 0 success (< 400), 4 minor failure (4xx),
// 8 serious failure (5xx). Commands: 0, or 8 when outcome_code is set.
std::string_view OutcomeCode(const Event& event);

// The AuditEvent JSON (minified; `id` the record's seq once stored, none if empty). See
// docs/audit.md for the element mapping.
std::string EventJson(const Event& event, std::string_view id = {});

// The record form of an event, what the trail seals (encrypts) into a record: a compact
// binary encoding (format 1: a format byte, then every field in declaration order; integers
// as LEB128 varints, strings and lists length-prefixed), lossless for any bytes. The
// AuditEvent JSON is rendered from it when a record is read (EventJson(DecodeEvent(...))),
// so that writing a record, on every request's path, costs a fraction of rendering it.
std::string EncodeEvent(const Event& event);
// kInvalidArgument "malformed audit event" for anything EncodeEvent did not produce
// (truncated, trailing bytes, an unknown format or kind).
Result<Event> DecodeEvent(std::string_view bytes);

// The HMAC key of the lookup tags for keyring version `version`: HKDF of that version's
// audit subkey, info "phigate-audit-tag-1".
Result<std::string> TagKey(const crypto::Keyring& keyring, uint32_t version);
// One tag: lower-case hex of the first 16 bytes of HMAC-SHA256(key, kind "\0" value).
std::string Tag(std::string_view key, std::string_view kind, std::string_view value);
// The tags of `event` under `key`, sorted and without duplicates. Kinds (search parameters
// of GET /fhir/AuditEvent whose values identify someone or something): "agent" (user_id,
// client_id, and those of each security detail), "patient" (each patient id), "entity"
// ("Type/id" of the resource and of each returned one), "query-value" (each search parameter
// value). The other parameters (entity-type, action, outcome, purpose, subtype, type) take
// one of a few values each: a tag would only tell which records share one, so they are
// matched on the opened event instead (EventHas).
std::vector<std::string> EventTags(const Event& event, std::string_view key);
// The same with the key prepared once (TrailSink: one per key version).
std::vector<std::string> EventTags(const Event& event, const crypto::HmacSha256Key& key);

// Whether search parameter `kind` is matched by tag (IsTaggedKind: agent, patient, entity,
// query-value) or on the opened event (EventHas: entity-type, action, outcome, purpose,
// subtype, type), and whether `event` has `value` for such a kind: entity-type the resource
// type or that of a returned resource; outcome OutcomeCode; type the EventKind's name
// (rest, authentication, administration, system). False for a tagged or unknown kind.
bool IsTaggedKind(std::string_view kind);
bool EventHas(const Event& event, std::string_view kind, std::string_view value);

// The values of one search parameter value: split at unescaped commas, "\," unescaped to
// "," (FHIR search.html#escaping). "query-value" tags cover each part (and the whole value).
std::vector<std::string> SplitSearchValues(std::string_view value);

// Appends `text` as a JSON string (quotes included, RFC 8259 §7): `"` `\` and control
// characters escaped, invalid UTF-8 replaced by U+FFFD so the output always parses. Shared by
// EventJson and the readers (query.cc), which build their Bundles as text.
void AppendJsonString(std::string& out, std::string_view text);

// The canonical query string of search parameters: name=value pairs percent-encoded (RFC
// 3986 unreserved characters kept) in their order, joined by '&'. Base64 of it is the
// `query` of the AuditEvent's query entity (BALP).
std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace phigate::audit
