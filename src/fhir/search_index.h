// SearchIndex: what a resource's search parameters hold (issue 6 §1) and the keyed blind
// index entries the store keeps for them (§2), so a search can be answered while the
// database holds only ciphertext.
//
// Values: each parameter's FHIRPath expression (fhirpath.h) is evaluated on the resource
// and the results are converted per parameter type (search.html#ptypes): tokens from
// Coding, CodeableConcept, Identifier, ContactPoint, code/boolean/string primitives;
// strings from string primitives and the parts of HumanName and Address; references from
// Reference.reference and canonical/uri; dates from date, dateTime, instant, Period and
// Timing.event; numbers; quantities; uris.
//
// Blind index entries (docs/search-security.md says what they reveal): each is
// HMAC-SHA256 truncated to 16 bytes under a per-parameter subkey (HMAC of the parameter's
// base and code under the keyring's blind-index subkey) of a tagged, normalized value:
//   m                       the parameter has a value (for :missing)
//   c code | s system code | S system | n code (no system)          tokens
//   e whole | p prefix (1..string_prefix_max code points)           strings, normalized
//   r Type/id | i id | u url                                        references
//   u uri                                                           uris
//   b bucket | q system code bucket | k code bucket | U unit bucket numbers, quantities
//   d (with the value's first and last UTC year in the clear)       dates
// Numbers fall in coarse buckets (sign and decimal order of magnitude); the exact value,
// like the exact date, is checked after decryption. A query computes the same tokens under
// every key version in the ring, so entries written before a rotation still match.
//
// Thread-safety: a SearchIndex is immutable after construction except for an internal,
// mutex-guarded cache of per-version parameter keys; every method may be called from many
// threads at once.
#pragma once

#include <boost/json/parse_options.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/date_range.h"
#include "crypto/crypto.h"
#include "crypto/keyring.h"
#include "fhir/fhirpath.h"
#include "fhir/model.h"
#include "fhir/search_param_defs.h"
#include "storage/store.h"

namespace phigate::fhir {

// The form string search compares (search.html#string: case- and accent-insensitive):
// Unicode NFKD, combining marks removed, case folded, then NFC; invalid UTF-8 bytes are
// replaced by U+FFFD.
std::string NormalizeSearchString(std::string_view utf8);

// Sign and decimal order of magnitude of `value`, the coarse bucket numbers and quantities
// are indexed under: "0" for zero, else "+e" / "-e" with e = floor(log10(|value|))
// clamped to [-20, 20].
std::string NumberBucket(double value);
// Every bucket a value in [lo, hi] (inclusive, may be infinite) can fall in.
std::vector<std::string> NumberBuckets(double lo, double hi);

struct TokenValue {
  std::optional<std::string> system;  // nullopt: the value has no system
  std::string code;
};
struct ReferenceValue {
  std::string type;  // "Patient" for "Patient/1" and ".../Patient/1"; empty if none
  std::string id;
  std::string url;  // the reference as written when it is absolute, a canonical or a uri
};
struct QuantityValue {
  double value = 0;
  std::string system;
  std::string code;
  std::string unit;
};

// The values of one parameter in one resource.
struct ParamValues {
  bool present = false;  // the expression yielded anything at all
  std::vector<TokenValue> tokens;
  std::vector<std::string> strings;  // as written
  std::vector<ReferenceValue> references;
  // Open Period ends are INT64_MIN / INT64_MAX. A Timing is one range: its outer limits
  // (events and repeat.boundsPeriod; search.html#date).
  std::vector<DateRange> dates;
  std::vector<double> numbers;
  // Number parameters on a Range (RiskAssessment.prediction.probabilityRange): the target
  // is a range, compared with the prefix rules for ranges. Open ends are infinite.
  std::vector<std::pair<double, double>> number_ranges;
  std::vector<QuantityValue> quantities;
  std::vector<std::string> uris;
};

// One search parameter ready to use: its definition and its parsed expression (nullopt
// when the expression is empty or not supported: such a parameter cannot be searched).
struct IndexedParam {
  const SearchParamDef* def = nullptr;
  std::optional<fhirpath::Expression> expression;
  int slot = 0;  // position in the per-version key cache
};

struct SearchIndexOptions {
  int string_prefix_max = 8;  // prefixes of 1..n code points get an entry
  // The server's FHIR base: an absolute reference under it is the local Type/id; one to
  // another server is only its URL (search.html#reference). Empty: none is local.
  std::string base_url;
};

class SearchIndex {
 public:
  SearchIndex(const Model& model, const crypto::Keyring& keyring, SearchIndexOptions options);
  ~SearchIndex();
  SearchIndex(const SearchIndex&) = delete;
  SearchIndex& operator=(const SearchIndex&) = delete;

  const SearchIndexOptions& options() const { return options_; }

  // The parameter `code` of resource type `type`; nullptr if the type has none.
  const IndexedParam* Find(std::string_view type, std::string_view code) const;
  // Whether searches may use `param`: its expression parsed and it is neither composite
  // nor special (those answer 501, and the CapabilityStatement lists them as unsupported).
  static bool Searchable(const IndexedParam& param);

  ParamValues Values(const IndexedParam& param, const boost::json::value& resource) const;

  // Every entry of `resource` (a JSON object of a known type) under the current key
  // version, deduplicated.
  Result<std::vector<storage::IndexEntry>> Entries(const boost::json::value& resource) const;

  // The tokens of `tagged` (a tag and value, as listed above; see Tag* below) for `param`
  // under every key version of the ring.
  Result<std::vector<std::string>> QueryTokens(const IndexedParam& param,
                                               std::string_view tagged) const;

 private:
  struct TypeParams;
  Result<std::string> Token(const IndexedParam& param, uint32_t version,
                            std::string_view tagged) const;
  void AddEntries(const IndexedParam& param, const ParamValues& values, uint32_t version,
                  std::vector<storage::IndexEntry>* out, Status* status) const;

  const Model& model_;
  const crypto::Keyring& keyring_;
  SearchIndexOptions options_;
  std::map<std::string, std::unique_ptr<TypeParams>, std::less<>> types_;
  int slots_ = 0;
  // Per key version, one prepared HMAC key per parameter slot (created on first use).
  mutable std::shared_mutex keys_mu_;
  mutable std::map<uint32_t, std::vector<std::unique_ptr<crypto::HmacSha256Key>>> keys_;
};

// Tagged values for QueryTokens and the entries (the formats above, fields separated by a
// NUL byte so no value can impersonate another field).
std::string TagPresent();
std::string TagCode(std::string_view code);
std::string TagSystemCode(std::string_view system, std::string_view code);
std::string TagSystem(std::string_view system);
std::string TagNoSystemCode(std::string_view code);
std::string TagString(std::string_view normalized);
std::string TagPrefix(std::string_view normalized_prefix);
std::string TagReference(std::string_view type, std::string_view id);
std::string TagId(std::string_view id);
std::string TagUrl(std::string_view url);
std::string TagBucket(std::string_view bucket);
std::string TagQuantity(std::string_view system, std::string_view code, std::string_view bucket);
std::string TagQuantityCode(std::string_view code, std::string_view bucket);
std::string TagUnit(std::string_view unit, std::string_view bucket);
std::string TagDate();

// Parse options for JSON the server itself stored (already validated, within the request
// depth limit): Boost.JSON's default depth of 32 is below what a valid resource may nest.
boost::json::parse_options StoredJsonOptions();

// The first `n` code points of a UTF-8 string (all of it when shorter).
std::string_view Utf8Prefix(std::string_view s, int n);
// Number of code points of a UTF-8 string.
int Utf8Length(std::string_view s);

}  // namespace phigate::fhir
