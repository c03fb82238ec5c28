#include "policy/minimize.h"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <functional>
#include <optional>
#include <utility>

#include "core/log.h"
#include "fhir/json_parse.h"
#include "fhir/json_text.h"

namespace phigate::policy {

namespace json = boost::json;
using fhir::RawMember;

namespace {

// Backstop only: stored resources and request bodies were already parsed under the
// server's configured (smaller) depth limit before they reach these functions.
constexpr int kMaxResourceDepth = 256;
// Element names are FHIR identifiers; a longer or stranger key is not echoed in errors.
constexpr size_t kMaxEchoedNameLength = 64;

// The SUBSETTED code that marks a resource as incomplete so that it is not used to
// overwrite a complete one (search.html#summary, search.html#elements).
constexpr std::string_view kSubsettedSystem =
    "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";
constexpr std::string_view kSubsettedCode = "SUBSETTED";
constexpr std::string_view kSubsettedTag =
    R"({"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue",)"
    R"("code":"SUBSETTED","display":"subsetted"})";

// A resource as both a parsed object (for decisions) and raw members (for output).
struct ScannedResource {
  json::object object;
  std::vector<RawMember> members;
};

Result<ScannedResource> Scan(std::string_view text) {
  ASSIGN_OR_RETURN(json::value parsed, fhir::ParseJson(text, kMaxResourceDepth));
  if (!parsed.is_object()) return InvalidArgument("a resource must be a JSON object");
  ScannedResource scanned{std::move(parsed.as_object()), fhir::TopLevelMembers(text)};
  // The parser accepted the text, so the scanner must see the same members; output built
  // from a disagreeing scan could drop or leak an element.
  if (scanned.members.size() != scanned.object.size()) return InvalidArgument("malformed JSON");
  return scanned;
}

bool IsSubsetted(const json::value& coding) {
  const json::object* object = coding.if_object();
  if (object == nullptr) return false;
  const json::value* system = object->if_contains("system");
  const json::value* code = object->if_contains("code");
  return system != nullptr && system->is_string() && system->as_string() == kSubsettedSystem &&
         code != nullptr && code->is_string() && code->as_string() == kSubsettedCode;
}

void AppendMember(std::string& out, std::string_view key, std::string_view value) {
  if (out.size() > 1) out += ',';
  AppendJsonEscaped(out, key);
  out += ':';
  out += value;
}

// The `meta` object, or an error if the resource's meta is not one.
Result<const json::object*> MetaObject(const json::object& resource) {
  const json::value* meta = resource.if_contains("meta");
  if (meta == nullptr) return static_cast<const json::object*>(nullptr);
  if (!meta->is_object()) return InvalidArgument("meta is not a JSON object");
  const json::value* tag = meta->as_object().if_contains("tag");
  if (tag != nullptr && !tag->is_array()) return InvalidArgument("meta.tag is not a JSON array");
  return &meta->as_object();
}

// `meta_text` with the SUBSETTED tag appended to meta.tag, unless it is already there;
// every other byte of meta is kept.
std::string MetaWithSubsetted(std::string_view meta_text, const json::object& meta) {
  const json::value* tag = meta.if_contains("tag");
  if (tag != nullptr && std::any_of(tag->as_array().begin(), tag->as_array().end(), IsSubsetted)) {
    return std::string(meta_text);
  }
  std::string out = "{";
  for (const RawMember& member : fhir::TopLevelMembers(meta_text)) {
    if (member.key != "tag") {
      AppendMember(out, member.key, member.value);
      continue;
    }
    // The raw array text ends with its ']': the new tag goes just before it.
    std::string tags;
    if (tag->as_array().empty()) {
      tags = "[";
    } else {
      tags = std::string(member.value.substr(0, member.value.size() - 1));
      tags += ',';
    }
    tags += kSubsettedTag;
    tags += ']';
    AppendMember(out, member.key, tags);
  }
  if (tag == nullptr) AppendMember(out, "tag", "[" + std::string(kSubsettedTag) + "]");
  out += '}';
  return out;
}

// `meta_text` without any SUBSETTED tag, or empty if nothing else remains in meta. Only
// meta.tag is re-serialized, and only when a tag is dropped (codings hold strings and
// booleans, which serialize without loss).
std::string MetaWithoutSubsetted(std::string_view meta_text, const json::object& meta) {
  const json::value* tag = meta.if_contains("tag");
  if (tag == nullptr || std::none_of(tag->as_array().begin(), tag->as_array().end(), IsSubsetted)) {
    return std::string(meta_text);
  }
  json::array kept;
  for (const json::value& coding : tag->as_array()) {
    if (!IsSubsetted(coding)) kept.push_back(coding);
  }
  std::string out = "{";
  for (const RawMember& member : fhir::TopLevelMembers(meta_text)) {
    if (member.key != "tag") {
      AppendMember(out, member.key, member.value);
    } else if (!kept.empty()) {
      AppendMember(out, member.key, json::serialize(kept));
    }
  }
  if (out.size() == 1) return {};  // FHIR JSON has no empty objects (json.html)
  out += '}';
  return out;
}

// The members of `meta` that Minimum Necessary keeps in a resource it narrowed: the
// version and time (needed for conditional updates and caching) and the security labels
// (they decide who may see the resource at all, view.h). Everything else can describe the
// hidden data (a "hiv-registry" profile, the source system of an HIV unit, tags and
// extensions of the author's choosing), so it goes with it.
bool IsMinimumMetaKey(std::string_view key) {
  return key == "versionId" || key == "lastUpdated" || key == "security";
}

// `meta` reduced to its IsMinimumMetaKey members (their bytes kept, in their order) and a
// tag list holding only SUBSETTED. `Member` is RawMember or fhir::MemberView; the two
// produce the same bytes for the same (unescaped) names, which keeps MinimizeByScan and
// the parsing path in step.
template <typename Member>
std::string MinimumMeta(const std::vector<Member>& meta_members) {
  std::string out = "{";
  for (const Member& member : meta_members) {
    if (!IsMinimumMetaKey(member.key)) continue;
    out += '"';
    out += member.key;  // one of three plain names
    out += "\":";
    out += member.value;
    out += ',';
  }
  out += "\"tag\":[";
  out += kSubsettedTag;
  out += "]}";
  return out;
}

// A `meta` that holds nothing the client writes: only the server-assigned versionId and
// lastUpdated (resource.html#Meta), which create and update replace anyway.
bool IsVersionOnlyMeta(const json::value& meta) {
  const json::object* object = meta.if_object();
  if (object == nullptr) return false;
  return std::all_of(object->begin(), object->end(), [](const json::key_value_pair& member) {
    return member.key() == "versionId" || member.key() == "lastUpdated";
  });
}

bool IsEchoableName(std::string_view name) {
  if (name.empty() || name.size() > kMaxEchoedNameLength) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  });
}

// resourceType, id and meta identify the resource and carry the SUBSETTED tag: never
// removed (element_mask.h).
bool IsMandatory(std::string_view key) {
  return key == "resourceType" || key == "id" || key == "meta";
}

// What SubsetMembers needs to know about a resource: its members as text and its meta.
struct SubsetInput {
  const std::vector<RawMember>* members = nullptr;
  const json::object* meta = nullptr;  // null: the resource has no meta
  bool has_id = false;
  bool has_type = false;
};

// What becomes of `meta` when a resource is narrowed.
enum class MetaRule {
  kAddSubsetted,  // the client's own narrowing (_elements, _summary): only SUBSETTED added
  kMinimum,       // the role's mask (Minimum Necessary): MinimumMeta
};

// The resource with only the members `keep` accepts (plus the mandatory ones) and the
// SUBSETTED tag. The caller has established that something is removed.
std::string SubsetMembers(const SubsetInput& in, size_t text_size,
                          const std::function<bool(std::string_view)>& keep, MetaRule meta_rule) {
  // Without a meta in the input, the new one goes where the server's canonical layout puts
  // it: after id, else after resourceType, else first.
  std::string_view meta_after;
  if (in.meta == nullptr) {
    if (in.has_id) {
      meta_after = "id";
    } else if (in.has_type) {
      meta_after = "resourceType";
    }
  }
  const std::string new_meta = "{\"tag\":[" + std::string(kSubsettedTag) + "]}";

  std::string out;
  out.reserve(text_size + kSubsettedTag.size() + 16);
  out += '{';
  if (in.meta == nullptr && meta_after.empty()) AppendMember(out, "meta", new_meta);
  for (const RawMember& member : *in.members) {
    if (!IsMandatory(member.key) && !keep(member.key)) continue;
    if (member.key == "meta") {
      AppendMember(out, member.key,
                   meta_rule == MetaRule::kMinimum
                       ? MinimumMeta(fhir::TopLevelMembers(member.value))
                       : MetaWithSubsetted(member.value, *in.meta));
    } else {
      AppendMember(out, member.key, member.value);
    }
    if (in.meta == nullptr && member.key == meta_after) AppendMember(out, "meta", new_meta);
  }
  out += '}';
  return out;
}

Result<std::string> SubsetScanned(const ScannedResource& resource, size_t text_size,
                                  const std::function<bool(std::string_view)>& keep,
                                  MetaRule meta_rule) {
  ASSIGN_OR_RETURN(const json::object* meta, MetaObject(resource.object));
  SubsetInput in;
  in.members = &resource.members;
  in.meta = meta;
  in.has_id = resource.object.contains("id");
  in.has_type = resource.object.contains("resourceType");
  return SubsetMembers(in, text_size, keep, meta_rule);
}

// The read path's minimization without any parse (issue 4 §9: the element policy must
// cost little): one allocation-free text scan for the top-level members, and a scan of
// `meta` to place the SUBSETTED tag. Returns nullopt whenever the text is anything but the
// plain shape the server itself stores (an escaped or repeated member name, a meta or
// meta.tag of another kind, a tag list that may already hold SUBSETTED); the caller then
// takes the parsing path, which decides, and reports errors, exactly as before.
std::optional<std::string> MinimizeByScan(std::string_view text, const ElementMask& mask) {
  thread_local std::vector<fhir::MemberView> members;
  thread_local std::vector<fhir::MemberView> meta_members;
  if (!fhir::ScanTopLevelMemberViews(text, members)) return std::nullopt;
  bool hides_any = false;
  const fhir::MemberView* meta = nullptr;
  bool has_id = false;
  bool has_type = false;
  for (size_t i = 0; i < members.size(); ++i) {
    const std::string_view key = members[i].key;
    // A repeated name (the parser refuses those): a resource has a few dozen members.
    for (size_t j = 0; j < i; ++j) {
      if (members[j].key == key) return std::nullopt;
    }
    hides_any = hides_any || !mask.Allows(key);
    if (key == "meta") meta = &members[i];
    has_id = has_id || key == "id";
    has_type = has_type || key == "resourceType";
  }
  if (!hides_any && meta != nullptr) {
    // Parts of meta beyond the minimum (profiles, sources, tags) are hidden from a role
    // under an element policy even when every element of the resource is visible.
    if (!fhir::ScanTopLevelMemberViews(meta->value, meta_members)) return std::nullopt;
    hides_any = std::any_of(meta_members.begin(), meta_members.end(),
                            [](const fhir::MemberView& m) { return !IsMinimumMetaKey(m.key); });
  }
  if (!hides_any) return std::string(text);

  // The new meta: MinimumMeta of the stored one. Its shape is checked as the parsing path
  // checks it (an object, a tag list if any, no repeated or escaped names); anything else
  // goes there, to be refused with the same error.
  std::string new_meta;
  if (meta == nullptr) {
    new_meta = "{\"tag\":[" + std::string(kSubsettedTag) + "]}";
  } else {
    if (!fhir::ScanTopLevelMemberViews(meta->value, meta_members)) return std::nullopt;
    for (size_t i = 0; i < meta_members.size(); ++i) {
      const fhir::MemberView& m = meta_members[i];
      for (size_t j = 0; j < i; ++j) {
        if (meta_members[j].key == m.key) return std::nullopt;
      }
      if (m.key == "tag" && (m.value.size() < 2 || m.value.front() != '[')) return std::nullopt;
    }
    new_meta = MinimumMeta(meta_members);
  }

  // Layout as SubsetMembers: a new meta goes after id, else after resourceType, else first.
  const std::string_view meta_after = meta != nullptr ? std::string_view()
                                      : has_id        ? std::string_view("id")
                                      : has_type      ? std::string_view("resourceType")
                                                      : std::string_view();
  std::string out;
  out.reserve(text.size() + kSubsettedTag.size() + 16);
  out += '{';
  auto append = [&out](std::string_view key, std::string_view value) {
    if (out.size() > 1) out += ',';
    out += '"';
    out += key;  // unescaped by construction (the scan refused escapes)
    out += "\":";
    out += value;
  };
  if (meta == nullptr && meta_after.empty()) append("meta", new_meta);
  for (const fhir::MemberView& m : members) {
    // The narrative summarizes the whole resource, hidden parts included (narrative.html).
    const bool keep =
        IsMandatory(m.key) || (m.key != "text" && m.key != "_text" && mask.Allows(m.key));
    if (!keep) continue;
    append(m.key, m.key == "meta" ? std::string_view(new_meta) : m.value);
    if (meta == nullptr && m.key == meta_after) append("meta", new_meta);
  }
  out += '}';
  return out;
}

// The one denial of a write (CheckWritable, CheckWritableUpdate); `element` is a member
// name, its primitive extension sibling `_x` reported as `x`.
Status DeniedWrite(const std::string& type_name, std::string_view element) {
  if (!element.empty() && element.front() == '_') element.remove_prefix(1);
  if (!IsEchoableName(element)) {
    return {StatusCode::kPermissionDenied,
            "writing an element of " + type_name + " is not permitted for this role"};
  }
  const std::string path = type_name + "." + std::string(element);
  return {StatusCode::kPermissionDenied, "writing " + path + " is not permitted for this role",
          path};
}

// The resource's type name, fit to appear in a message.
Result<std::string> EchoableType(const json::object& resource) {
  const json::value* type = resource.if_contains("resourceType");
  if (type == nullptr || !type->is_string() || !IsEchoableName(type->as_string())) {
    return InvalidArgument("the resource has no valid resourceType");
  }
  return std::string(type->as_string());
}

}  // namespace

Result<std::string> MinimizeResource(std::string_view resource_json, const ElementMask& mask) {
  if (mask.all) return std::string(resource_json);
  if (std::optional<std::string> fast = MinimizeByScan(resource_json, mask)) {
    return std::move(*fast);
  }
  return internal::MinimizeResourceByParse(resource_json, mask);
}

Result<std::string> internal::MinimizeResourceByParse(std::string_view resource_json,
                                                      const ElementMask& mask) {
  if (mask.all) return std::string(resource_json);
  ASSIGN_OR_RETURN(ScannedResource resource, Scan(resource_json));
  bool hides_any =
      std::any_of(resource.members.begin(), resource.members.end(),
                  [&mask](const RawMember& member) { return !mask.Allows(member.key); });
  if (const json::value* meta = resource.object.if_contains("meta");
      !hides_any && meta != nullptr && meta->is_object()) {
    // As in MinimizeByScan: meta beyond the minimum is hidden too.
    hides_any =
        std::any_of(meta->as_object().begin(), meta->as_object().end(),
                    [](const json::key_value_pair& m) { return !IsMinimumMetaKey(m.key()); });
  }
  if (!hides_any) return std::string(resource_json);
  // The narrative summarizes the whole resource, hidden parts included (narrative.html).
  return SubsetScanned(
      resource, resource_json.size(),
      [&mask](std::string_view key) { return key != "text" && key != "_text" && mask.Allows(key); },
      MetaRule::kMinimum);
}

Result<std::string> SubsetResource(std::string_view resource_json,
                                   const std::function<bool(std::string_view)>& keep) {
  ASSIGN_OR_RETURN(ScannedResource resource, Scan(resource_json));
  const bool removes_any = std::any_of(
      resource.members.begin(), resource.members.end(),
      [&keep](const RawMember& member) { return !IsMandatory(member.key) && !keep(member.key); });
  if (!removes_any) return std::string(resource_json);
  return SubsetScanned(resource, resource_json.size(), keep, MetaRule::kAddSubsetted);
}

Status CheckWritable(std::string_view resource_json, const ElementMask& write_mask) {
  if (write_mask.all) return Status::Ok();
  ASSIGN_OR_RETURN(ScannedResource resource, Scan(resource_json));
  ASSIGN_OR_RETURN(const std::string type_name, EchoableType(resource.object));
  for (const RawMember& member : resource.members) {
    if (member.key == "meta") {
      // The server sets versionId and lastUpdated itself; anything else in meta (profile,
      // source, tag, security, extension) is data the client writes, and Allows' mandatory
      // `meta` does not extend to it.
      const json::value* meta = resource.object.if_contains("meta");
      if (!write_mask.Lists("meta") && (meta == nullptr || !IsVersionOnlyMeta(*meta))) {
        return DeniedWrite(type_name, member.key);
      }
      continue;
    }
    if (!write_mask.Allows(member.key)) return DeniedWrite(type_name, member.key);
  }
  return Status::Ok();
}

Result<std::string> KeepStoredMeta(std::string_view new_json, std::string_view stored_json) {
  ASSIGN_OR_RETURN(ScannedResource incoming, Scan(new_json));
  ASSIGN_OR_RETURN(ScannedResource stored, Scan(stored_json));
  const auto stored_meta =
      std::find_if(stored.members.begin(), stored.members.end(),
                   [](const RawMember& member) { return member.key == "meta"; });
  const bool has_stored_meta = stored_meta != stored.members.end();
  if (!has_stored_meta && !incoming.object.contains("meta")) return std::string(new_json);

  // Where the stored meta goes if the client sent none: the canonical layout (after id,
  // else after resourceType, else first), as SubsetMembers places a new meta.
  std::string_view meta_after;
  if (!incoming.object.contains("meta")) {
    if (incoming.object.contains("id")) {
      meta_after = "id";
    } else if (incoming.object.contains("resourceType")) {
      meta_after = "resourceType";
    }
  }
  std::string out;
  out.reserve(new_json.size() + (has_stored_meta ? stored_meta->value.size() : 0) + 8);
  out += '{';
  const bool insert = has_stored_meta && !incoming.object.contains("meta");
  if (insert && meta_after.empty()) AppendMember(out, "meta", stored_meta->value);
  for (const RawMember& member : incoming.members) {
    if (member.key == "meta") {
      if (has_stored_meta) AppendMember(out, member.key, stored_meta->value);
    } else {
      AppendMember(out, member.key, member.value);
    }
    if (insert && member.key == meta_after) AppendMember(out, "meta", stored_meta->value);
  }
  out += '}';
  return out;
}

Status CheckWritableUpdate(std::string_view new_json, std::string_view stored_json,
                           const ElementMask& write_mask) {
  if (write_mask.all) return Status::Ok();
  ASSIGN_OR_RETURN(ScannedResource incoming, Scan(new_json));
  ASSIGN_OR_RETURN(ScannedResource stored, Scan(stored_json));
  ASSIGN_OR_RETURN(const std::string type_name, EchoableType(incoming.object));
  // Element by element: `x` and its extension sibling `_x` are compared separately, and a
  // difference in either is a change of x (Allows treats them alike). Values are compared
  // parsed, so layout and key order do not count as changes; a number's spelling does
  // when its kind differs (1 vs 1.0), which FHIR also treats as different decimals.
  const auto changed = [](const json::object& from, const json::object& to, std::string_view key) {
    const json::value* before = from.if_contains(key);
    const json::value* after = to.if_contains(key);
    if (before == nullptr || after == nullptr) return before != after;
    return *before != *after;
  };
  for (const ScannedResource* side : {&incoming, &stored}) {
    for (const RawMember& member : side->members) {
      // Server-owned or identifying: the update handler decides those, not the element
      // policy (resourceType and id must match the URL; meta is rewritten by the server).
      if (IsMandatory(member.key) || write_mask.Allows(member.key)) continue;
      if (changed(stored.object, incoming.object, member.key)) {
        return DeniedWrite(type_name, member.key);
      }
    }
  }
  return Status::Ok();
}

Result<std::string> PreserveHidden(std::string_view new_json, std::string_view stored_json,
                                   const ElementMask& read_mask) {
  if (read_mask.all) return std::string(new_json);
  ASSIGN_OR_RETURN(ScannedResource incoming, Scan(new_json));
  ASSIGN_OR_RETURN(ScannedResource stored, Scan(stored_json));
  ASSIGN_OR_RETURN(const json::object* meta, MetaObject(incoming.object));

  std::string out;
  out.reserve(new_json.size() + stored_json.size());
  out += '{';
  // What the role can see comes from the client, whatever it sent; what it cannot see
  // comes from the stored version, whatever the client sent in its place.
  for (const RawMember& member : incoming.members) {
    if (!read_mask.Allows(member.key)) continue;
    if (member.key == "meta") {
      const std::string kept_meta = MetaWithoutSubsetted(member.value, *meta);
      if (!kept_meta.empty()) AppendMember(out, member.key, kept_meta);
    } else {
      AppendMember(out, member.key, member.value);
    }
  }
  for (const RawMember& member : stored.members) {
    if (!read_mask.Allows(member.key)) AppendMember(out, member.key, member.value);
  }
  out += '}';
  return out;
}

Result<std::string> ApplyElementsParam(std::string_view resource_json,
                                       const std::vector<std::string>& elements) {
  return MinimizeResource(resource_json, ElementMask::Only(elements));
}

}  // namespace phigate::policy
