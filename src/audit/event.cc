#include "audit/event.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "core/base64.h"
#include "core/clock.h"
#include "core/url.h"
#include "crypto/crypto.h"

namespace phigate::audit {

namespace {

// Code systems (IHE BALP, FHIR R4 AuditEvent bindings) and phigate's own identifiers.
constexpr std::string_view kAuditEventType =
    "http://terminology.hl7.org/CodeSystem/audit-event-type";
constexpr std::string_view kDicom = "http://dicom.nema.org/resources/ontology/DCM";
constexpr std::string_view kRestfulInteraction = "http://hl7.org/fhir/restful-interaction";
constexpr std::string_view kPhigateSubtype = "https://phigate.dev/fhir/CodeSystem/audit-subtype";
constexpr std::string_view kActReason = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
constexpr std::string_view kParticipationType =
    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
constexpr std::string_view kPhigateRole = "https://phigate.dev/fhir/CodeSystem/role";
constexpr std::string_view kPhigateAgentType = "https://phigate.dev/fhir/CodeSystem/audit-agent";
constexpr std::string_view kUserSystem = "https://phigate.dev/fhir/sid/user";
constexpr std::string_view kClientSystem = "https://phigate.dev/fhir/sid/client";
constexpr std::string_view kSourceType =
    "http://terminology.hl7.org/CodeSystem/security-source-type";
constexpr std::string_view kEntityType = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
constexpr std::string_view kObjectRole = "http://terminology.hl7.org/CodeSystem/object-role";
constexpr std::string_view kExtension = "https://phigate.dev/fhir/StructureDefinition/audit-";

constexpr std::string_view kTagInfo = "phigate-audit-tag-1";
constexpr size_t kTagBytes = 16;

std::string_view KindName(EventKind kind) {
  switch (kind) {
    case EventKind::kRest:
      return "rest";
    case EventKind::kAuthentication:
      return "authentication";
    case EventKind::kAdministration:
      return "administration";
    case EventKind::kSystem:
      return "system";
  }
  return "system";
}

// Appends the bytes of one valid UTF-8 sequence starting at text[i] and returns its length,
// or 0 if the bytes there are not valid UTF-8 (RFC 3629 §4: no overlongs, no surrogates,
// nothing above U+10FFFF).
size_t Utf8SequenceLength(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = byte(i);
  size_t n = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

// A tiny writer of minified JSON: the event has a fixed shape, and building it as text is
// several times cheaper than a boost::json::object (EventJson runs once per request).
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  // Starts a member of the current object.
  void Key(std::string_view key) {
    Comma();
    out_ += '"';
    out_ += key;  // keys are literals of this file
    out_ += "\":";
    first_ = true;  // the value follows without a comma
  }
  void String(std::string_view key, std::string_view value) {
    Key(key);
    AppendJsonString(out_, value);
    first_ = false;
  }
  void StringIfSet(std::string_view key, std::string_view value) {
    if (!value.empty()) String(key, value);
  }
  void Int(std::string_view key, int64_t value) {
    Key(key);
    out_ += std::to_string(value);
    first_ = false;
  }
  void Bool(std::string_view key, bool value) {
    Key(key);
    out_ += value ? "true" : "false";
    first_ = false;
  }
  void BeginObject(std::string_view key) {
    Key(key);
    BeginObject();
  }
  void BeginObject() {  // as an array element (or the root)
    Comma();
    out_ += '{';
    first_ = true;
  }
  void EndObject() {
    out_ += '}';
    first_ = false;
  }
  void BeginArray(std::string_view key) {
    Key(key);
    out_ += '[';
    first_ = true;
  }
  void EndArray() {
    out_ += ']';
    first_ = false;
  }
  // {"system":..,"code":..[,"display":..]} as a member or an array element.
  void Coding(std::string_view key, std::string_view system, std::string_view code,
              std::string_view display = {}) {
    if (key.empty()) {
      BeginObject();
    } else {
      BeginObject(key);
    }
    String("system", system);
    String("code", code);
    StringIfSet("display", display);
    EndObject();
  }
  // {"coding":[<Coding>]}
  void CodeableConcept(std::string_view key, std::string_view system, std::string_view code,
                       std::string_view display = {}) {
    if (key.empty()) {
      BeginObject();
    } else {
      BeginObject(key);
    }
    BeginArray("coding");
    Coding({}, system, code, display);
    EndArray();
    EndObject();
  }
  // {"url":"<kExtension><name>","valueString":..} as an array element.
  void StringExtension(std::string_view name, std::string_view value) {
    BeginObject();
    String("url", std::string(kExtension) + std::string(name));
    String("valueString", value);
    EndObject();
  }
  // A sub-extension of a complex extension (its url is relative: FHIR extensibility.html).
  void SubExtension(std::string_view url, std::string_view value) {
    if (value.empty()) return;
    BeginObject();
    String("url", url);
    String("valueString", value);
    EndObject();
  }

 private:
  void Comma() {
    if (!first_) out_ += ',';
  }

  std::string& out_;
  bool first_ = true;
};

void WriteType(Writer& w, const Event& event) {
  switch (event.kind) {
    case EventKind::kRest:
      w.Coding("type", kAuditEventType, "rest", "Restful Operation");
      break;
    case EventKind::kAuthentication:
      w.Coding("type", kDicom, "110114", "User Authentication");
      break;
    case EventKind::kAdministration:
    case EventKind::kSystem:
      w.Coding("type", kDicom, "110100", "Application Activity");
      break;
  }
  if (!event.subtype.empty()) {
    w.BeginArray("subtype");
    w.Coding({}, event.kind == EventKind::kRest ? kRestfulInteraction : kPhigateSubtype,
             event.subtype);
    w.EndArray();
  }
}

// "HTTP 403; forbidden; <denial>": only the status, the issue code and the fixed denial
// text, never anything from the request.
std::string OutcomeDesc(const Event& event) {
  std::string desc;
  auto add = [&](std::string_view part) {
    if (part.empty()) return;
    if (!desc.empty()) desc += "; ";
    desc += part;
  };
  if (event.status != 0) add("HTTP " + std::to_string(event.status));
  add(event.outcome_code);
  add(event.denial);
  return desc;
}

void WriteNetwork(Writer& w, const Event& event) {
  if (event.address.empty()) return;
  w.BeginObject("network");
  w.String("address", event.address);
  // AuditEventAgentNetworkType "2" IP address; a CLI command has no network address.
  if (event.address != "cli") w.String("type", "2");
  w.EndObject();
}

void WriteRolesAndPurpose(Writer& w, const Event& event) {
  if (!event.roles.empty()) {
    w.BeginArray("role");
    for (const std::string& role : event.roles) w.CodeableConcept({}, kPhigateRole, role);
    w.EndArray();
  }
  if (!event.purpose.empty()) {
    w.BeginArray("purposeOfUse");
    w.CodeableConcept({}, kActReason, event.purpose);
    w.EndArray();
  }
}

// BALP: the user is the information recipient (v3 IRCP) and the requestor; the client
// application is the source (DICOM 110153 Source Role ID), the requestor only when no user
// acted. A BAA counterparty is the organization the client discloses to. A command run
// on the server (address "cli") is requested by the local operator: the user or client it
// names is the one acted on, never the requestor.
void WriteAgents(Writer& w, const Event& event) {
  const bool command = event.kind == EventKind::kAdministration && event.address == "cli";
  const bool has_user = !event.user_id.empty();
  const bool has_client = !event.client_id.empty();
  const bool has_baa = !event.baa_counterparty.empty();
  if (!command && !has_user && !has_client && !has_baa) return;
  w.BeginArray("agent");
  if (command) {
    w.BeginObject();
    w.CodeableConcept("type", kPhigateAgentType, "operator", "local operator");
    w.BeginObject("who");
    w.String("display", "local operator (phigate command)");
    w.EndObject();
    w.Bool("requestor", true);
    WriteNetwork(w, event);
    w.EndObject();
  }
  if (has_user) {
    w.BeginObject();
    w.CodeableConcept("type", kParticipationType, "IRCP", "information recipient");
    WriteRolesAndPurpose(w, event);
    w.BeginObject("who");
    w.BeginObject("identifier");
    w.String("system", kUserSystem);
    w.String("value", event.user_id);
    w.EndObject();
    w.EndObject();
    w.Bool("requestor", !command);
    WriteNetwork(w, event);
    w.EndObject();
  }
  if (has_client) {
    w.BeginObject();
    w.CodeableConcept("type", kDicom, "110153", "Source Role ID");
    if (!has_user) WriteRolesAndPurpose(w, event);
    w.BeginObject("who");
    w.BeginObject("identifier");
    w.String("system", kClientSystem);
    w.String("value", event.client_id);
    w.EndObject();
    w.EndObject();
    w.Bool("requestor", !has_user && !command);
    WriteNetwork(w, event);
    w.EndObject();
  }
  if (has_baa) {
    w.BeginObject();
    w.CodeableConcept("type", kPhigateAgentType, "baa-counterparty",
                      "business associate agreement counterparty");
    w.BeginObject("who");
    w.String("display", event.baa_counterparty);
    w.EndObject();
    w.Bool("requestor", false);
    w.EndObject();
  }
  w.EndArray();
}

void WriteSource(Writer& w) {
  w.BeginObject("source");
  w.BeginObject("observer");
  w.String("display", "phigate");
  w.EndObject();
  w.BeginArray("type");
  w.Coding({}, kSourceType, "4", "Application Server");
  w.EndArray();
  w.EndObject();
}

void WriteEntityTypeRole(Writer& w, std::string_view type, std::string_view type_display,
                         std::string_view role, std::string_view role_display) {
  w.Coding("type", kEntityType, type, type_display);
  w.Coding("role", kObjectRole, role, role_display);
}

void WriteEntities(Writer& w, const Event& event) {
  const bool has_resource = !event.resource_type.empty();
  if (event.patients.empty() && !has_resource && event.returned.empty() && event.query.empty()) {
    return;
  }
  w.BeginArray("entity");
  // BALP patient entity: type 1 Person, role 1 Patient.
  for (const std::string& patient : event.patients) {
    w.BeginObject();
    w.BeginObject("what");
    w.String("reference", "Patient/" + patient);
    w.EndObject();
    WriteEntityTypeRole(w, "1", "Person", "1", "Patient");
    w.EndObject();
  }
  // The resource acted on (BALP data entity: type 2 System Object, role 4 Domain Resource);
  // a type-level interaction names only its type.
  if (has_resource) {
    w.BeginObject();
    w.BeginObject("what");
    if (event.resource_id.empty()) {
      w.String("type", event.resource_type);
    } else {
      std::string reference = event.resource_type + "/" + event.resource_id;
      if (event.version > 0) reference += "/_history/" + std::to_string(event.version);
      w.String("reference", reference);
    }
    w.EndObject();
    WriteEntityTypeRole(w, "2", "System Object", "4", "Domain Resource");
    w.EndObject();
  }
  // Every resource returned (search, history), marked so it is not taken for the target.
  for (const std::string& returned : event.returned) {
    w.BeginObject();
    w.BeginObject("what");
    w.String("reference", returned);
    w.EndObject();
    WriteEntityTypeRole(w, "2", "System Object", "4", "Domain Resource");
    w.String("description", "returned");
    w.EndObject();
  }
  // BALP query entity: type 2, role 24 Query, query = base64 of the query string, and each
  // parameter as a detail.
  if (!event.query.empty()) {
    w.BeginObject();
    WriteEntityTypeRole(w, "2", "System Object", "24", "Query");
    w.String("query", Base64Encode(CanonicalQuery(event.query)));
    w.BeginArray("detail");
    for (const auto& [name, value] : event.query) {
      w.BeginObject();
      w.String("type", name);
      w.String("valueString", value);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
}

void WriteExtensions(Writer& w, const Event& event) {
  const bool any = !event.request_id.empty() || event.status != 0 || !event.method.empty() ||
                   !event.route.empty() || !event.user_agent.empty() ||
                   !event.break_glass_grant.empty() || !event.break_glass_reason.empty() ||
                   !event.security.empty() || !event.detail.empty();
  if (!any) return;
  w.BeginArray("extension");
  if (!event.request_id.empty()) w.StringExtension("request-id", event.request_id);
  if (event.status != 0) {
    w.BeginObject();
    w.String("url", std::string(kExtension) + "http-status");
    w.Int("valueInteger", event.status);
    w.EndObject();
  }
  if (!event.method.empty()) w.StringExtension("http-method", event.method);
  if (!event.route.empty()) w.StringExtension("route", event.route);
  if (!event.user_agent.empty()) w.StringExtension("user-agent", event.user_agent);
  if (!event.break_glass_grant.empty() || !event.break_glass_reason.empty()) {
    w.BeginObject();
    w.String("url", std::string(kExtension) + "break-glass");
    w.BeginArray("extension");
    w.SubExtension("grant", event.break_glass_grant);
    w.SubExtension("reason", event.break_glass_reason);
    w.EndArray();
    w.EndObject();
  }
  for (const SecurityDetail& detail : event.security) {
    w.BeginObject();
    w.String("url", std::string(kExtension) + "security");
    w.BeginArray("extension");
    w.SubExtension("name", detail.name);
    w.SubExtension("user", detail.user_id);
    w.SubExtension("client", detail.client_id);
    w.SubExtension("reason", detail.reason);
    w.EndArray();
    w.EndObject();
  }
  if (!event.detail.empty()) w.StringExtension("detail", event.detail);
  w.EndArray();
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (size_t i = 0; i < text.size();) {
    // Runs of plain printable ASCII (the common case) are copied in one append.
    size_t run = i;
    while (run < text.size()) {
      const unsigned char r = static_cast<unsigned char>(text[run]);
      if (r < 0x20 || r >= 0x7f || r == '"' || r == '\\') break;
      ++run;
    }
    if (run > i) {
      out.append(text.data() + i, run - i);
      i = run;
      continue;
    }
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const size_t n = Utf8SequenceLength(text, i);
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(text.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}

std::vector<std::string> SplitSearchValues(std::string_view value) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\' && i + 1 < value.size() && value[i + 1] == ',') {
      parts.back() += ',';
      ++i;
    } else if (value[i] == ',') {
      parts.emplace_back();
    } else {
      parts.back() += value[i];
    }
  }
  return parts;
}

std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out += '&';
    out += PercentEncode(name);
    out += '=';
    out += PercentEncode(value);
  }
  return out;
}

std::string_view OutcomeCode(const Event& event) {
  if (event.status == 0) return event.outcome_code.empty() ? "0" : "8";
  if (event.status < 400) return "0";
  if (event.status < 500) return "4";
  return "8";
}

std::string EventJson(const Event& event, std::string_view id) {
  std::string out;
  out.reserve(4096);  // a full event is ~2.5 KB: one allocation
  Writer w(out);
  w.BeginObject();
  w.String("resourceType", "AuditEvent");
  w.StringIfSet("id", id);
  WriteExtensions(w, event);
  WriteType(w, event);
  w.String("action", std::string_view(&event.action, 1));
  w.String("recorded", FormatInstant(event.time_ms));
  w.String("outcome", OutcomeCode(event));
  const std::string desc = OutcomeDesc(event);
  w.StringIfSet("outcomeDesc", desc);
  if (!event.purpose.empty()) {
    w.BeginArray("purposeOfEvent");
    w.CodeableConcept({}, kActReason, event.purpose);
    w.EndArray();
  }
  WriteAgents(w, event);
  WriteSource(w);
  WriteEntities(w, event);
  w.EndObject();
  return out;
}

Result<std::string> TagKey(const crypto::Keyring& keyring, uint32_t version) {
  ASSIGN_OR_RETURN(std::string subkey, keyring.Subkey(crypto::KeyPurpose::kAudit, version));
  std::string key = crypto::HkdfSha256(subkey, "", kTagInfo, crypto::kKeyBytes);
  crypto::Wipe(subkey);
  return key;
}

namespace {

std::string TagData(std::string_view kind, std::string_view value) {
  std::string data;
  data.reserve(kind.size() + 1 + value.size());
  data.append(kind);
  data += '\0';
  data.append(value);
  return data;
}

}  // namespace

std::string Tag(std::string_view key, std::string_view kind, std::string_view value) {
  return HexEncode(crypto::HmacSha256(key, TagData(kind, value)).substr(0, kTagBytes));
}

// ---- the record form ----

namespace {

constexpr char kEventFormat = 1;

// The one list of an event's fields in record order. EncodeEvent walks it with a RecordWriter and
// DecodeEvent with a Reader, so the two cannot disagree. A list's elements take at least
// `min_bytes` each in the record (the Reader's bound on a forged count).
template <typename E, typename Visitor>
void Fields(E& e, Visitor& v) {
  v.Field(e.kind);
  v.Field(e.subtype);
  v.Field(e.action);
  v.Field(e.time_ms);
  v.Field(e.user_id);
  v.Field(e.client_id);
  v.List(e.roles, 1, [&](auto& role) { v.Field(role); });
  v.Field(e.address);
  v.Field(e.user_agent);
  v.Field(e.baa_counterparty);
  v.Field(e.method);
  v.Field(e.route);
  v.Field(e.resource_type);
  v.Field(e.resource_id);
  v.Field(e.version);
  v.List(e.patients, 1, [&](auto& patient) { v.Field(patient); });
  v.List(e.returned, 1, [&](auto& returned) { v.Field(returned); });
  v.List(e.query, 2, [&](auto& param) {
    v.Field(param.first);
    v.Field(param.second);
  });
  v.Field(e.purpose);
  v.Field(e.break_glass_reason);
  v.Field(e.break_glass_grant);
  v.Field(e.status);
  v.Field(e.outcome_code);
  v.Field(e.denial);
  v.Field(e.request_id);
  v.List(e.security, 4, [&](auto& detail) {
    v.Field(detail.name);
    v.Field(detail.user_id);
    v.Field(detail.client_id);
    v.Field(detail.reason);
  });
  v.Field(e.detail);
}

// Integers as LEB128 varints (negative ones as their 64-bit two's complement), a char as
// its byte, strings and lists length-prefixed.
struct RecordWriter {
  std::string& out;

  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out += static_cast<char>((v & 0x7F) | 0x80);
      v >>= 7;
    }
    out += static_cast<char>(v);
  }
  void Field(EventKind kind) { Varint(static_cast<uint64_t>(kind)); }
  void Field(char c) { out += c; }
  void Field(int64_t v) { Varint(static_cast<uint64_t>(v)); }
  void Field(int v) { Field(static_cast<int64_t>(v)); }
  void Field(const std::string& text) {
    Varint(text.size());
    out += text;
  }
  template <typename T, typename Each>
  void List(const std::vector<T>& list, size_t /*min_bytes*/, Each each) {
    Varint(list.size());
    for (const T& element : list) each(element);
  }
};

// What a RecordWriter would append, give or take the varints' lengths (for one allocation).
struct Sizer {
  size_t bytes = 0;

  void Field(EventKind) { bytes += 1; }
  void Field(char) { bytes += 1; }
  void Field(int64_t) { bytes += 10; }
  void Field(int) { bytes += 10; }
  void Field(const std::string& text) { bytes += text.size() + 2; }
  template <typename T, typename Each>
  void List(const std::vector<T>& list, size_t /*min_bytes*/, Each each) {
    bytes += 2;
    for (const T& element : list) each(element);
  }
};

// Reads what a RecordWriter wrote; the first failure sticks (ok false), after which every field
// reads as empty.
struct Reader {
  std::string_view in;
  size_t pos = 0;
  bool ok = true;

  // Only the encoding RecordWriter::Varint writes is accepted (one encoding per value): no zero
  // last byte after the first, nothing past bit 63.
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= in.size()) break;
      const auto byte = static_cast<unsigned char>(in[pos++]);
      if (shift == 63 && byte > 1) break;
      v |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) {
        if (byte == 0 && shift > 0) break;
        return v;
      }
    }
    ok = false;
    return 0;
  }
  // A length, bounded by the bytes left at `unit` bytes per counted thing (so a forged
  // length or count cannot make the decoder allocate far beyond its input).
  size_t Length(size_t unit) {
    const uint64_t n = Varint();
    if (!ok || n > (in.size() - pos) / unit) {
      ok = false;
      return 0;
    }
    return n;
  }
  void Field(EventKind& kind) {
    const uint64_t v = Varint();
    if (v > static_cast<uint64_t>(EventKind::kSystem)) ok = false;
    kind = static_cast<EventKind>(v);
  }
  void Field(char& c) {
    if (pos < in.size()) {
      c = in[pos++];
    } else {
      ok = false;
    }
  }
  void Field(int64_t& v) { v = static_cast<int64_t>(Varint()); }
  void Field(int& v) {
    int64_t wide = 0;
    Field(wide);
    if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max()) {
      ok = false;
    }
    v = static_cast<int>(wide);
  }
  void Field(std::string& text) {
    const size_t n = Length(1);
    text.assign(in.substr(pos, n));
    pos += n;
  }
  template <typename T, typename Each>
  void List(std::vector<T>& list, size_t min_bytes, Each each) {
    list.resize(Length(min_bytes));
    for (T& element : list) each(element);
  }
};

}  // namespace

std::string EncodeEvent(const Event& e) {
  Sizer sizer;
  Fields(e, sizer);
  std::string out;
  out.reserve(sizer.bytes + 1);
  out += kEventFormat;
  RecordWriter writer{out};
  Fields(e, writer);
  return out;
}

Result<Event> DecodeEvent(std::string_view bytes) {
  if (bytes.empty() || bytes[0] != kEventFormat) return InvalidArgument("malformed audit event");
  Reader reader{bytes, 1};
  Event e;
  Fields(e, reader);
  if (!reader.ok || reader.pos != bytes.size()) return InvalidArgument("malformed audit event");
  return e;
}

bool IsTaggedKind(std::string_view kind) {
  return kind == "agent" || kind == "patient" || kind == "entity" || kind == "query-value";
}

bool EventHas(const Event& event, std::string_view kind, std::string_view value) {
  if (kind == "entity-type") {
    if (!event.resource_type.empty() && event.resource_type == value) return true;
    return std::any_of(event.returned.begin(), event.returned.end(), [&](const std::string& r) {
      return std::string_view(r).substr(0, r.find('/')) == value;
    });
  }
  if (kind == "action") return value.size() == 1 && value[0] == event.action;
  if (kind == "outcome") return OutcomeCode(event) == value;
  if (kind == "purpose") return !event.purpose.empty() && event.purpose == value;
  if (kind == "subtype") return !event.subtype.empty() && event.subtype == value;
  if (kind == "type") return KindName(event.kind) == value;
  return false;
}

std::vector<std::string> EventTags(const Event& event, std::string_view key) {
  const crypto::HmacSha256Key prepared(key);
  return EventTags(event, prepared);
}

std::vector<std::string> EventTags(const Event& event, const crypto::HmacSha256Key& key) {
  std::vector<std::string> tags;
  auto add = [&](std::string_view kind, std::string_view value) {
    if (!value.empty()) {
      tags.push_back(HexEncode(key.Mac(TagData(kind, value)).substr(0, kTagBytes)));
    }
  };
  add("agent", event.user_id);
  add("agent", event.client_id);
  for (const SecurityDetail& detail : event.security) {
    add("agent", detail.user_id);
    add("agent", detail.client_id);
  }
  for (const std::string& patient : event.patients) add("patient", patient);
  if (!event.resource_type.empty() && !event.resource_id.empty()) {
    add("entity", event.resource_type + "/" + event.resource_id);
  }
  for (const std::string& returned : event.returned) add("entity", returned);
  for (const auto& [name, value] : event.query) {
    add("query-value", value);
    if (value.find(',') != std::string::npos) {
      for (const std::string& part : SplitSearchValues(value)) add("query-value", part);
    }
  }
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  return tags;
}

}  // namespace phigate::audit
