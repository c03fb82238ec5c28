// Minimum Necessary at the element level (issue 4 §3): pure functions over the text of one
// FHIR resource that hide, check and preserve top-level elements according to an
// ElementMask. Every path that returns or accepts a resource goes through these, so what a
// read hides is hidden everywhere.
//
// They work on text, not on a re-serialized tree: stored resources keep the client's bytes
// (fhir/json_text.h), so every member these functions do not touch is copied byte for
// byte, and only `meta` is rewritten (tagged, or cut to the minimum). A primitive's extension
// sibling (`_birthDate`, json.html#primitive) follows its element.
//
// Errors: kInvalidArgument for text that is not a JSON object resource (the messages are
// fixed and never repeat any part of the input), kPermissionDenied from CheckWritable.
// Thread-safety: pure functions.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "policy/element_mask.h"

namespace phigate::policy {

// The resource without the top-level elements `mask` does not allow. When anything was
// removed, the narrative (`text`) is removed as well (it would describe the hidden data),
// and `meta` is cut to the minimum: its `versionId`, `lastUpdated` and `security` (bytes
// kept, in their order) and a `tag` of exactly [SUBSETTED] (search.html#elements); every
// other tag, `profile`, `source`, `extension` and `id` of meta is dropped, since those can
// name what was hidden (a "hiv-registry" profile, the source system of an HIV unit).
// `meta` is created (after id) if absent. Under a restricting mask, meta parts beyond that
// minimum count as hidden on their own: a resource whose elements are all visible is still
// cut (and tagged) when its meta holds more. When nothing is removed the input is returned
// byte-identical.
Result<std::string> MinimizeResource(std::string_view resource_json, const ElementMask& mask);

// kPermissionDenied "writing <Type>.<element> is not permitted for this role" for the
// first top-level element present that `write_mask` does not allow (the narrative counts
// as the element `text`); ok otherwise. A `meta` holding anything but versionId and
// lastUpdated (which the server assigns) is a write of `meta`, denied unless the mask is
// unrestricted or lists "meta" (ElementMask::Lists).
Status CheckWritable(std::string_view resource_json, const ElementMask& write_mask);

// For an update: writing means changing. kPermissionDenied, with CheckWritable's message,
// for the first top-level element whose value differs between `new_json` and
// `stored_json` (added, changed or removed; compared as parsed JSON, so whitespace and key
// order are no change) that `write_mask` does not allow; ok otherwise. A primitive's
// extension sibling `_x` counts as element x and the narrative as element `text`;
// resourceType, id and meta are ignored (the update handler owns them). Order of use:
// merge first (`PreserveHidden(new, stored, read_mask)`), then check the merged resource
// against the stored one, so elements the role cannot see (and so could not send) are
// never reported as removed.
Status CheckWritableUpdate(std::string_view new_json, std::string_view stored_json,
                           const ElementMask& write_mask);

// For an update by a role whose write mask is restricted and does not list "meta": the new
// resource with its `meta` member replaced by the stored one's (removed if the stored
// resource has none; added after id, else after resourceType, if only the stored one has
// one), so such a role cannot change profiles, tags, labels or source. Every other member
// keeps its bytes; when neither has a meta, `new_json` is returned byte-identical.
Result<std::string> KeepStoredMeta(std::string_view new_json, std::string_view stored_json);

// For an update by a role whose `read_mask` hides elements: the client's resource, with
// every element the role cannot see taken from `stored_json` instead (a client cannot
// delete or overwrite what it was never shown). Visible elements are exactly as sent (a
// visible element the client omitted stays omitted), and a SUBSETTED tag echoed back from
// a minimized read is dropped, since the merged resource is complete. With an
// unrestricted mask, `new_json` is returned byte-identical.
Result<std::string> PreserveHidden(std::string_view new_json, std::string_view stored_json,
                                   const ElementMask& read_mask);

// The resource with only the top-level members for which `keep(member name)` is true
// (`_x` siblings are asked by their own name); resourceType, id and meta are always kept.
// When anything was removed, `meta.tag` carries the SUBSETTED code, added once (meta is
// created if absent); otherwise the input is returned byte-identical. Unlike
// MinimizeResource, the narrative is kept or removed as `keep` says (`_summary=text`).
Result<std::string> SubsetResource(std::string_view resource_json,
                                   const std::function<bool(std::string_view)>& keep);

// FHIR `_elements` (search.html#elements): keeps the listed top-level elements plus the
// mandatory resourceType, id and meta, and marks the result SUBSETTED if anything was left
// out.
Result<std::string> ApplyElementsParam(std::string_view resource_json,
                                       const std::vector<std::string>& elements);

namespace internal {
// MinimizeResource always through the full parse, without the read path's text-scan fast
// path; for tests that hold the two to the same output.
Result<std::string> MinimizeResourceByParse(std::string_view resource_json,
                                            const ElementMask& mask);
}  // namespace internal

}  // namespace phigate::policy
