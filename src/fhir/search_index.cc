#include "fhir/search_index.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <boost/json/object.hpp>
#include <cmath>
#include <limits>
#include <mutex>
#include <set>
#include <tuple>

namespace phigate::fhir {
namespace json = boost::json;

namespace {

constexpr size_t kTokenBytes = 16;
constexpr int kMaxExponent = 20;
constexpr int32_t kMinYear = 1;
constexpr int32_t kMaxYear = 9999;

std::string Tagged(char tag, std::initializer_list<std::string_view> fields) {
  std::string out(1, tag);
  for (std::string_view f : fields) {
    out.push_back('\0');
    out.append(f);
  }
  return out;
}

std::string_view Str(const json::value* v) {
  if (v == nullptr || !v->is_string()) return {};
  return v->get_string();
}

const json::value* Field(const json::value& v, std::string_view name) {
  const json::object* obj = v.if_object();
  return obj != nullptr ? obj->if_contains(name) : nullptr;
}

// Each string of a string-or-array-of-strings element (HumanName.given, Address.line).
void Strings(const json::value* v, std::vector<std::string>* out) {
  if (v == nullptr) return;
  if (v->is_string()) {
    out->emplace_back(v->get_string());
  } else if (const json::array* arr = v->if_array()) {
    for (const json::value& item : *arr) {
      if (item.is_string()) out->emplace_back(item.get_string());
    }
  }
}

bool IsType(const TypeDef* t, std::string_view name) {
  for (; t != nullptr; t = t->base) {
    if (t->name == name) return true;
    if (t->constrains != nullptr && t->constrains->name == name) return true;
  }
  return false;
}

std::optional<double> Number(const json::value* v) {
  if (v == nullptr || !v->is_number()) return std::nullopt;
  return v->to_number<double>();
}

// "Patient/1", "Patient/1/_history/2" and absolute ".../Patient/1" (references.html).
ReferenceValue ParseReference(std::string_view ref, const Model& model, std::string_view base_url) {
  ReferenceValue out;
  const bool absolute = ref.find("://") != std::string_view::npos || ref.starts_with("urn:");
  if (absolute) {
    out.url = ref;
    // Only the server's own base makes an absolute reference local.
    if (base_url.empty() || !ref.starts_with(base_url) || ref.size() <= base_url.size() ||
        ref[base_url.size()] != '/') {
      return out;
    }
  }
  std::string_view path = absolute ? ref.substr(base_url.size() + 1) : ref;
  if (const size_t h = path.find("/_history/"); h != std::string_view::npos) {
    path = path.substr(0, h);
  }
  // "Type/id" exactly (after the base, for an absolute one).
  const size_t slash = path.find('/');
  if (slash != std::string_view::npos && slash > 0 && slash + 1 < path.size() &&
      path.find('/', slash + 1) == std::string_view::npos) {
    const std::string_view type = path.substr(0, slash);
    if (model.IsResourceType(type)) {
      out.type = type;
      out.id = path.substr(slash + 1);
    }
  }
  return out;
}

}  // namespace

boost::json::parse_options StoredJsonOptions() {
  boost::json::parse_options options;
  options.max_depth = 10'000;  // the validator's limit (limits.json_depth) is far lower
  return options;
}

// ---- strings ----

std::string NormalizeSearchString(std::string_view utf8) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfkd = icu::Normalizer2::getNFKDInstance(status);
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status)) return std::string(utf8);  // ICU data missing: a build defect
  icu::UnicodeString text = icu::UnicodeString::fromUTF8(
      icu::StringPiece(utf8.data(), static_cast<int32_t>(utf8.size())));
  icu::UnicodeString decomposed = nfkd->normalize(text, status);
  icu::UnicodeString stripped;
  for (int32_t i = 0; i < decomposed.length();) {
    const UChar32 c = decomposed.char32At(i);
    if (u_charType(c) != U_NON_SPACING_MARK) stripped.append(c);
    i += U16_LENGTH(c);
  }
  stripped.foldCase(U_FOLD_CASE_DEFAULT);
  icu::UnicodeString composed = nfc->normalize(stripped, status);
  if (U_FAILURE(status)) return std::string(utf8);
  std::string out;
  composed.toUTF8String(out);
  return out;
}

std::string_view Utf8Prefix(std::string_view s, int n) {
  size_t i = 0;
  for (int k = 0; k < n && i < s.size(); ++k) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
  }
  return s.substr(0, i);
}

int Utf8Length(std::string_view s) {
  int n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// ---- numbers ----

std::string NumberBucket(double value) {
  if (value == 0 || !std::isfinite(value)) {
    if (value == 0) return "0";
    return value > 0 ? "+" + std::to_string(kMaxExponent) : "-" + std::to_string(kMaxExponent);
  }
  const double magnitude = std::fabs(value);
  int e = static_cast<int>(std::floor(std::log10(magnitude)));
  // log10 rounding at exact powers of ten: 1000 must be e=3, 999.9999 e=2.
  if (std::pow(10.0, e) > magnitude) --e;
  if (std::pow(10.0, e + 1) <= magnitude) ++e;
  e = std::clamp(e, -kMaxExponent, kMaxExponent);
  return (value > 0 ? "+" : "-") + std::to_string(e);
}

std::vector<std::string> NumberBuckets(double lo, double hi) {
  std::vector<std::string> out;
  if (lo > hi) return out;
  if (lo <= 0 && hi >= 0) out.emplace_back("0");
  for (int e = -kMaxExponent; e <= kMaxExponent; ++e) {
    // The bucket +e holds [10^e, 10^(e+1)), widened to everything beyond at the clamps.
    const double b_lo = e == -kMaxExponent ? 0 : std::pow(10.0, e);
    const double b_hi =
        e == kMaxExponent ? std::numeric_limits<double>::infinity() : std::pow(10.0, e + 1);
    if (hi >= b_lo && lo <= b_hi && hi > 0) out.push_back("+" + std::to_string(e));
    if (-b_hi <= hi && -b_lo >= lo && lo < 0) out.push_back("-" + std::to_string(e));
  }
  return out;
}

// ---- tags ----

std::string TagPresent() { return "m"; }
std::string TagCode(std::string_view code) { return Tagged('c', {code}); }
std::string TagSystemCode(std::string_view system, std::string_view code) {
  return Tagged('s', {system, code});
}
std::string TagSystem(std::string_view system) { return Tagged('S', {system}); }
std::string TagNoSystemCode(std::string_view code) { return Tagged('n', {code}); }
std::string TagString(std::string_view normalized) { return Tagged('e', {normalized}); }
std::string TagPrefix(std::string_view normalized_prefix) {
  return Tagged('p', {normalized_prefix});
}
std::string TagReference(std::string_view type, std::string_view id) {
  return Tagged('r', {type, id});
}
std::string TagId(std::string_view id) { return Tagged('i', {id}); }
std::string TagUrl(std::string_view url) { return Tagged('u', {url}); }
std::string TagBucket(std::string_view bucket) { return Tagged('b', {bucket}); }
std::string TagQuantity(std::string_view system, std::string_view code, std::string_view bucket) {
  return Tagged('q', {system, code, bucket});
}
std::string TagQuantityCode(std::string_view code, std::string_view bucket) {
  return Tagged('k', {code, bucket});
}
std::string TagUnit(std::string_view unit, std::string_view bucket) {
  return Tagged('U', {unit, bucket});
}
std::string TagDate() { return "d"; }

// ---- the index ----

struct SearchIndex::TypeParams {
  std::map<std::string_view, IndexedParam, std::less<>> by_code;
};

SearchIndex::SearchIndex(const Model& model, const crypto::Keyring& keyring,
                         SearchIndexOptions options)
    : model_(model), keyring_(keyring), options_(options) {
  for (const std::string& type : model.ResourceTypes()) {
    auto params = std::make_unique<TypeParams>();
    for (const SearchParamDef* def : SearchParamsOf(type)) {
      IndexedParam p;
      p.def = def;
      p.slot = slots_++;
      if (!def->expression.empty()) {
        Result<fhirpath::Expression> expr = fhirpath::Expression::Parse(def->expression, model);
        if (expr.ok()) p.expression.emplace(std::move(expr).value());
      }
      params->by_code.emplace(def->code, std::move(p));
    }
    types_.emplace(type, std::move(params));
  }
}

SearchIndex::~SearchIndex() = default;

const IndexedParam* SearchIndex::Find(std::string_view type, std::string_view code) const {
  const auto t = types_.find(type);
  if (t == types_.end()) return nullptr;
  const auto p = t->second->by_code.find(code);
  return p == t->second->by_code.end() ? nullptr : &p->second;
}

bool SearchIndex::Searchable(const IndexedParam& param) {
  return param.expression.has_value() && param.def->type != SearchParamType::kComposite &&
         param.def->type != SearchParamType::kSpecial;
}

ParamValues SearchIndex::Values(const IndexedParam& param, const json::value& resource) const {
  ParamValues out;
  if (!param.expression) return out;
  const std::vector<fhirpath::Node> nodes = param.expression->Evaluate(resource);
  out.present = !nodes.empty();
  const SearchParamType kind = param.def->type;
  for (const fhirpath::Node& n : nodes) {
    if (n.resolved_reference) continue;
    const json::value& v = *n.value;
    const TypeDef* t = n.type;
    switch (kind) {
      case SearchParamType::kToken:
        if (t == nullptr || t->kind == TypeKind::kPrimitive) {
          if (v.is_bool()) {
            out.tokens.push_back({std::nullopt, v.get_bool() ? "true" : "false"});
          } else if (v.is_string()) {
            out.tokens.push_back({std::nullopt, std::string(v.get_string())});
          }
        } else if (IsType(t, "Coding")) {
          const json::value* system = Field(v, "system");
          out.tokens.push_back({system != nullptr && system->is_string()
                                    ? std::optional<std::string>(Str(system))
                                    : std::nullopt,
                                std::string(Str(Field(v, "code")))});
        } else if (IsType(t, "CodeableConcept")) {
          const json::value* codings = Field(v, "coding");
          if (codings != nullptr && codings->is_array()) {
            for (const json::value& c : codings->get_array()) {
              const json::value* system = Field(c, "system");
              if (Field(c, "code") == nullptr) continue;
              out.tokens.push_back({system != nullptr && system->is_string()
                                        ? std::optional<std::string>(Str(system))
                                        : std::nullopt,
                                    std::string(Str(Field(c, "code")))});
            }
          }
        } else if (IsType(t, "Identifier") || IsType(t, "ContactPoint")) {
          const json::value* system = Field(v, "system");
          if (Field(v, "value") == nullptr) continue;
          out.tokens.push_back({system != nullptr && system->is_string()
                                    ? std::optional<std::string>(Str(system))
                                    : std::nullopt,
                                std::string(Str(Field(v, "value")))});
        }
        break;
      case SearchParamType::kString:
        if (t == nullptr || t->kind == TypeKind::kPrimitive) {
          if (v.is_string()) out.strings.emplace_back(v.get_string());
        } else if (IsType(t, "HumanName")) {
          for (std::string_view f : {"family", "given", "prefix", "suffix", "text"}) {
            Strings(Field(v, f), &out.strings);
          }
        } else if (IsType(t, "Address")) {
          for (std::string_view f :
               {"line", "city", "district", "state", "postalCode", "country", "text"}) {
            Strings(Field(v, f), &out.strings);
          }
        }
        break;
      case SearchParamType::kReference:
        if (t != nullptr && IsType(t, "Reference")) {
          const std::string_view ref = Str(Field(v, "reference"));
          if (ref.empty() || ref.starts_with("#")) continue;
          out.references.push_back(ParseReference(ref, model_, options_.base_url));
        } else if (v.is_string()) {
          ReferenceValue r = ParseReference(v.get_string(), model_, options_.base_url);
          r.url = v.get_string();
          out.references.push_back(std::move(r));
        }
        break;
      case SearchParamType::kDate:
        if (v.is_string()) {
          if (std::optional<DateRange> r = ParseDateRange(v.get_string())) out.dates.push_back(*r);
        } else if (t != nullptr && IsType(t, "Period")) {
          const std::optional<DateRange> start = ParseDateRange(Str(Field(v, "start")));
          const std::optional<DateRange> end = ParseDateRange(Str(Field(v, "end")));
          if (!start && !end) continue;
          out.dates.push_back({start ? start->lo : std::numeric_limits<int64_t>::min(),
                               end ? end->hi : std::numeric_limits<int64_t>::max()});
        } else if (t != nullptr && IsType(t, "Timing")) {
          // Only the outer limits matter (search.html#date): one range from the earliest
          // start to the latest end of the events and repeat.boundsPeriod.
          std::vector<std::string> events;
          Strings(Field(v, "event"), &events);
          std::optional<DateRange> outer;
          const auto widen = [&](DateRange r) {
            if (!outer) {
              outer = r;
            } else {
              outer->lo = std::min(outer->lo, r.lo);
              outer->hi = std::max(outer->hi, r.hi);
            }
          };
          for (const std::string& e : events) {
            if (std::optional<DateRange> r = ParseDateRange(e)) widen(*r);
          }
          const json::value* repeat = Field(v, "repeat");
          const json::value* bounds = repeat != nullptr ? Field(*repeat, "boundsPeriod") : nullptr;
          if (bounds != nullptr) {
            const std::optional<DateRange> start = ParseDateRange(Str(Field(*bounds, "start")));
            const std::optional<DateRange> end = ParseDateRange(Str(Field(*bounds, "end")));
            if (start || end) {
              widen({start ? start->lo : std::numeric_limits<int64_t>::min(),
                     end ? end->hi : std::numeric_limits<int64_t>::max()});
            }
          }
          if (outer) out.dates.push_back(*outer);
        }
        break;
      case SearchParamType::kNumber:
        if (std::optional<double> d = Number(&v)) {
          out.numbers.push_back(*d);
        } else if (t != nullptr && IsType(t, "Range")) {
          const json::value* low = Field(v, "low");
          const json::value* high = Field(v, "high");
          const std::optional<double> lo =
              low != nullptr ? Number(Field(*low, "value")) : std::nullopt;
          const std::optional<double> hi =
              high != nullptr ? Number(Field(*high, "value")) : std::nullopt;
          if (!lo && !hi) continue;
          out.number_ranges.emplace_back(lo.value_or(-std::numeric_limits<double>::infinity()),
                                         hi.value_or(std::numeric_limits<double>::infinity()));
        }
        break;
      case SearchParamType::kQuantity:
        if (t != nullptr && IsType(t, "Quantity")) {
          const std::optional<double> d = Number(Field(v, "value"));
          if (!d) continue;
          out.quantities.push_back({*d, std::string(Str(Field(v, "system"))),
                                    std::string(Str(Field(v, "code"))),
                                    std::string(Str(Field(v, "unit")))});
        }
        break;
      case SearchParamType::kUri:
        if (v.is_string()) out.uris.emplace_back(v.get_string());
        break;
      case SearchParamType::kComposite:
      case SearchParamType::kSpecial:
        break;
    }
  }
  return out;
}

Result<std::string> SearchIndex::Token(const IndexedParam& param, uint32_t version,
                                       std::string_view tagged) const {
  {
    std::shared_lock lock(keys_mu_);
    const auto it = keys_.find(version);
    if (it != keys_.end()) return it->second[param.slot]->Mac(tagged).substr(0, kTokenBytes);
  }
  ASSIGN_OR_RETURN(std::string subkey, keyring_.Subkey(crypto::KeyPurpose::kBlindIndex, version));
  std::vector<std::unique_ptr<crypto::HmacSha256Key>> keys(slots_);
  for (const auto& [type, params] : types_) {
    for (const auto& [code, p] : params->by_code) {
      std::string name("phigate search parameter");
      name.push_back('\0');
      name.append(p.def->base).push_back('\0');
      name.append(p.def->code);
      std::string key = crypto::HmacSha256(subkey, name);
      keys[p.slot] = std::make_unique<crypto::HmacSha256Key>(key);
      crypto::Wipe(key);
    }
  }
  crypto::Wipe(subkey);
  std::unique_lock lock(keys_mu_);
  auto [it, inserted] = keys_.emplace(version, std::move(keys));
  return it->second[param.slot]->Mac(tagged).substr(0, kTokenBytes);
}

Result<std::vector<std::string>> SearchIndex::QueryTokens(const IndexedParam& param,
                                                          std::string_view tagged) const {
  std::vector<std::string> out;
  for (uint32_t v = 1; v <= keyring_.current_version(); ++v) {
    Result<std::string> token = Token(param, v, tagged);
    if (token.ok()) out.push_back(std::move(token).value());
  }
  if (out.empty()) return Internal("no blind-index key");
  return out;
}

void SearchIndex::AddEntries(const IndexedParam& param, const ParamValues& values, uint32_t version,
                             std::vector<storage::IndexEntry>* out, Status* status) const {
  const auto add = [&](const std::string& tagged, int32_t low_year = 0, int32_t high_year = 0) {
    if (!status->ok()) return;
    Result<std::string> token = Token(param, version, tagged);
    if (!token.ok()) {
      *status = token.status();
      return;
    }
    out->push_back({std::move(token).value(), low_year, high_year});
  };
  if (values.present) add(TagPresent());
  for (const TokenValue& t : values.tokens) {
    add(TagCode(t.code));
    if (t.system) {
      add(TagSystemCode(*t.system, t.code));
      add(TagSystem(*t.system));
    } else {
      add(TagNoSystemCode(t.code));
    }
  }
  for (const std::string& s : values.strings) {
    const std::string normalized = NormalizeSearchString(s);
    add(TagString(normalized));
    const int n = std::min(Utf8Length(normalized), options_.string_prefix_max);
    for (int k = 1; k <= n; ++k) add(TagPrefix(Utf8Prefix(normalized, k)));
  }
  for (const ReferenceValue& r : values.references) {
    if (!r.type.empty()) {
      add(TagReference(r.type, r.id));
      add(TagId(r.id));
    }
    if (!r.url.empty()) add(TagUrl(r.url));
  }
  for (const std::string& u : values.uris) add(TagUrl(u));
  for (const DateRange& d : values.dates) {
    const int32_t lo = d.lo == std::numeric_limits<int64_t>::min() ? kMinYear : UtcYear(d.lo);
    const int32_t hi = d.hi == std::numeric_limits<int64_t>::max() ? kMaxYear : UtcYear(d.hi - 1);
    add(TagDate(), std::clamp(lo, kMinYear, kMaxYear), std::clamp(hi, kMinYear, kMaxYear));
  }
  for (double n : values.numbers) add(TagBucket(NumberBucket(n)));
  for (const auto& [lo, hi] : values.number_ranges) {
    for (const std::string& bucket : NumberBuckets(lo, hi)) add(TagBucket(bucket));
  }
  for (const QuantityValue& q : values.quantities) {
    const std::string bucket = NumberBucket(q.value);
    add(TagBucket(bucket));
    if (!q.code.empty()) {
      add(TagQuantity(q.system, q.code, bucket));
      add(TagQuantityCode(q.code, bucket));
    }
    if (!q.unit.empty()) add(TagUnit(q.unit, bucket));
  }
}

Result<std::vector<storage::IndexEntry>> SearchIndex::Entries(const json::value& resource) const {
  const json::value* rt = Field(resource, "resourceType");
  const auto t = types_.find(Str(rt));
  if (t == types_.end()) return InvalidArgument("unknown resource type");
  std::vector<storage::IndexEntry> out;
  Status status;
  const uint32_t version = keyring_.current_version();
  for (const auto& [code, param] : t->second->by_code) {
    if (!param.expression) continue;
    AddEntries(param, Values(param, resource), version, &out, &status);
    RETURN_IF_ERROR(status);
  }
  std::sort(out.begin(), out.end(), [](const storage::IndexEntry& a, const storage::IndexEntry& b) {
    return std::tie(a.token, a.low_year, a.high_year) < std::tie(b.token, b.low_year, b.high_year);
  });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const storage::IndexEntry& a, const storage::IndexEntry& b) {
                          return a.token == b.token && a.low_year == b.low_year &&
                                 a.high_year == b.high_year;
                        }),
            out.end());
  return out;
}

}  // namespace phigate::fhir
