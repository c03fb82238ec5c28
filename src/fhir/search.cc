#include "fhir/search.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <variant>
#include <vector>

#include "core/base64.h"
#include "core/log.h"
#include "crypto/crypto.h"

namespace phigate::fhir {
namespace json = boost::json;

namespace {

constexpr int64_t kMinMs = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxMs = std::numeric_limits<int64_t>::max();
constexpr int32_t kMinYear = 1;
constexpr int32_t kMaxYear = 9999;
constexpr std::string_view kCursorAad = "phigate search cursor";
// Candidates fetched from the store per round trip.
constexpr int kCandidateBatch = 256;
// Values one parameter may list (comma-separated), and conditions per search.
constexpr size_t kMaxValues = 100;
constexpr size_t kMaxConditions = 50;

enum class Prefix { kEq, kNe, kLt, kGt, kLe, kGe, kSa, kEb, kAp };

struct NumberQuery {
  double value = 0;
  double lo = 0;  // the range the value's precision covers (search.html#number)
  double hi = 0;
};

// One value of a condition (comma-separated values are OR).
struct Value {
  Prefix prefix = Prefix::kEq;
  std::string raw;  // after the prefix, unescaped
  // token
  std::optional<std::string> system;  // nullopt: any system; "": no system ("|code")
  std::string code;                   // "" with a system: any code ("system|")
  // string
  std::string normalized;
  // reference
  std::string ref_type;
  std::string ref_id;
  std::string ref_url;
  // date
  DateRange range;
  // number, quantity
  NumberQuery number;
  std::string q_system;
  std::string q_code;
  bool q_any_system = true;  // "5.4||mg": code or unit, any system
};

struct Condition {
  const IndexedParam* param = nullptr;
  SearchParamType type = SearchParamType::kToken;
  std::string modifier;  // "", "not", "exact", "missing", or a resource type (reference)
  bool missing = false;  // :missing=true
  std::vector<Value> values;
};

struct SortKey {
  std::string code;
  bool descending = false;
  const IndexedParam* param = nullptr;  // nullptr for _id and _lastUpdated
};

struct Include {
  const IndexedParam* param = nullptr;  // a reference parameter of source_type
  std::string source_type;
  std::string target_type;  // empty: any
  bool reverse = false;     // _revinclude
};

struct Plan {
  QueryParams used;   // the parameters the plan was built from (a next link's)
  bool none = false;  // a chain matched nothing: the search matches nothing
  std::vector<SortKey> sort;
  std::vector<Include> includes;
  std::vector<Condition> conditions;
  // Reference conditions of which at least one must hold ($everything: any of a type's
  // compartment parameters names the patient); empty: no such constraint.
  std::vector<Condition> alternatives;
  std::vector<std::string> ids;             // _id
  std::vector<std::vector<Value>> updated;  // _lastUpdated (each AND)
  int count = 50;
  bool total_accurate = false;
};

Status BadValue(std::string_view code) {
  // The value is not echoed: it may be PHI.
  return InvalidArgument("malformed value for search parameter " + std::string(code));
}

// Splits on unescaped commas and unescapes \, \| \$ \\ (search.html#escaping).
std::vector<std::string> SplitValues(std::string_view s) {
  std::vector<std::string> out(1);
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() &&
        (s[i + 1] == ',' || s[i + 1] == '|' || s[i + 1] == '$' || s[i + 1] == '\\')) {
      // Keep escaped '|' escaped for the token split below.
      if (s[i + 1] == '|') out.back().push_back('\\');
      out.back().push_back(s[++i]);
    } else if (s[i] == ',') {
      out.emplace_back();
    } else {
      out.back().push_back(s[i]);
    }
  }
  return out;
}

// Splits "a|b|c" on unescaped '|' and drops the escapes.
std::vector<std::string> SplitBars(std::string_view s) {
  std::vector<std::string> out(1);
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == '|') {
      out.back().push_back('|');
      ++i;
    } else if (s[i] == '|') {
      out.emplace_back();
    } else {
      out.back().push_back(s[i]);
    }
  }
  return out;
}

std::optional<Prefix> ParsePrefix(std::string_view* v) {
  static constexpr std::pair<std::string_view, Prefix> kPrefixes[] = {
      {"eq", Prefix::kEq}, {"ne", Prefix::kNe}, {"lt", Prefix::kLt},
      {"gt", Prefix::kGt}, {"le", Prefix::kLe}, {"ge", Prefix::kGe},
      {"sa", Prefix::kSa}, {"eb", Prefix::kEb}, {"ap", Prefix::kAp}};
  for (const auto& [text, prefix] : kPrefixes) {
    if (v->starts_with(text)) {
      v->remove_prefix(2);
      return prefix;
    }
  }
  return std::nullopt;
}

// "100" covers [99.5, 100.5); "1.50" [1.495, 1.505); "1e2" [50, 150) (search.html#number:
// the precision of the value as written).
std::optional<NumberQuery> ParseNumber(std::string_view s) {
  if (s.empty() || s.size() > 64) return std::nullopt;
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  // The exponent of the last significant digit.
  std::string_view mantissa = s;
  int exponent = 0;
  if (const size_t e = s.find_first_of("eE"); e != std::string_view::npos) {
    mantissa = s.substr(0, e);
    const std::string_view ex = s.substr(e + 1);
    const auto [p, ec2] =
        std::from_chars(ex.data() + (ex.starts_with('+') ? 1 : 0), ex.data() + ex.size(), exponent);
    if (ec2 != std::errc() || p != ex.data() + ex.size()) return std::nullopt;
  }
  int decimals = 0;
  if (const size_t dot = mantissa.find('.'); dot != std::string_view::npos) {
    decimals = static_cast<int>(mantissa.size() - dot - 1);
  }
  // The bounds are computed in decimal and parsed, so that they are the doubles nearest to
  // the exact bounds, as a stored value written with those digits is ("0.8" covers
  // [0.75, 0.85): 0.85 itself is excluded, which 0.8 + 0.05 in binary would not give).
  std::string digits;
  for (char c : mantissa) {
    if (c >= '0' && c <= '9') digits.push_back(c);
  }
  const bool negative = mantissa.starts_with('-');
  const auto bound = [&](bool up) {
    // |value| * 10 +/- 5, in units of 10^(exponent - decimals - 1).
    std::string d = digits + "0";
    int carry = up ? 5 : -5;
    for (size_t i = d.size(); i-- > 0 && carry != 0;) {
      int x = (d[i] - '0') + carry;
      carry = 0;
      if (x >= 10) {
        x -= 10;
        carry = 1;
      } else if (x < 0) {
        x += 10;
        carry = -1;
      }
      d[i] = static_cast<char>('0' + x);
    }
    if (carry > 0) d.insert(d.begin(), '1');
    std::string text = (negative ? "-" : "") + d + "e" +
                       std::to_string(static_cast<int64_t>(exponent) - decimals - 1);
    double out = 0;
    std::from_chars(text.data(), text.data() + text.size(), out);
    return out;
  };
  // |value| - half is below |value| + half; for a negative value they swap ends.
  const double toward_zero = bound(false);
  const double away = bound(true);
  return negative ? NumberQuery{v, away, toward_zero} : NumberQuery{v, toward_zero, away};
}

// The year span a date condition's matches must overlap (a necessary condition, refined
// after decryption).
std::pair<int32_t, int32_t> YearWindow(const Value& v, int64_t now_ms) {
  const auto year = [](int64_t ms) { return std::clamp(UtcYear(ms), kMinYear, kMaxYear); };
  switch (v.prefix) {
    case Prefix::kEq:
      return {year(v.range.lo), year(v.range.hi - 1)};
    case Prefix::kGt:
      return {year(v.range.hi - 1), kMaxYear};
    case Prefix::kGe:
      return {year(v.range.lo), kMaxYear};
    case Prefix::kSa:
      return {year(v.range.hi), kMaxYear};
    case Prefix::kLt:
      return {kMinYear, year(v.range.lo)};
    case Prefix::kLe:
      return {kMinYear, year(v.range.hi - 1)};
    case Prefix::kEb:
      return {kMinYear, year(v.range.lo - 1)};
    case Prefix::kAp: {
      const int64_t gap = std::max<int64_t>(std::llabs(now_ms - v.range.lo) / 10, 86'400'000);
      return {year(v.range.lo - gap), year(v.range.hi - 1 + gap)};
    }
    case Prefix::kNe:
      return {kMinYear, kMaxYear};
  }
  return {kMinYear, kMaxYear};
}

// search.html#date: comparing the range of a resource value with the range of the search
// value; "above"/"below" are the ranges after/before the search value.
bool DateMatches(Prefix p, const DateRange& q, const DateRange& r, int64_t now_ms) {
  const bool contains = r.lo >= q.lo && r.hi <= q.hi;
  switch (p) {
    case Prefix::kEq:
      return contains;
    case Prefix::kNe:
      return !contains;
    case Prefix::kGt:
      return r.hi > q.hi;
    case Prefix::kLt:
      return r.lo < q.lo;
    case Prefix::kGe:
      return r.hi > q.hi || contains;
    case Prefix::kLe:
      return r.lo < q.lo || contains;
    case Prefix::kSa:
      return r.lo >= q.hi;
    case Prefix::kEb:
      return r.hi <= q.lo;
    case Prefix::kAp: {
      // Approximately: within 10% of the distance from now, at least a day (the spec
      // leaves the margin to the server).
      const int64_t gap = std::max<int64_t>(std::llabs(now_ms - q.lo) / 10, 86'400'000);
      const int64_t lo = q.lo > kMinMs + gap ? q.lo - gap : kMinMs;
      const int64_t hi = q.hi < kMaxMs - gap ? q.hi + gap : kMaxMs;
      return r.lo < hi && r.hi > lo;
    }
  }
  return false;
}

bool NumberMatches(Prefix p, const NumberQuery& q, double v) {
  switch (p) {
    case Prefix::kEq:
      return v >= q.lo && v < q.hi;
    case Prefix::kNe:
      return !(v >= q.lo && v < q.hi);
    case Prefix::kGt:
    case Prefix::kSa:
      return v > q.value;
    case Prefix::kLt:
    case Prefix::kEb:
      return v < q.value;
    case Prefix::kGe:
      return v >= q.value;
    case Prefix::kLe:
      return v <= q.value;
    case Prefix::kAp: {
      const double margin = std::fabs(q.value) * 0.1;
      return v >= q.value - margin && v <= q.value + margin;
    }
  }
  return false;
}

// A target that is a range [lo, hi] (search.html#number: "the target is explicitly a
// range"): eq and ne compare with the search value's precision range (eq: it contains the
// target); the other prefixes compare the target's ends with the search value itself, as
// they do for a single number (gt: some of the target lies above it).
bool RangeMatches(Prefix p, const NumberQuery& q, double lo, double hi) {
  const bool contains = lo >= q.lo && hi < q.hi;
  switch (p) {
    case Prefix::kEq:
      return contains;
    case Prefix::kNe:
      return !contains;
    case Prefix::kGt:
      return hi > q.value;
    case Prefix::kLt:
      return lo < q.value;
    case Prefix::kGe:
      return hi >= q.value;
    case Prefix::kLe:
      return lo <= q.value;
    case Prefix::kSa:
      return lo > q.value;
    case Prefix::kEb:
      return hi < q.value;
    case Prefix::kAp: {
      const double margin = std::fabs(q.value) * 0.1;
      return lo <= q.value + margin && hi >= q.value - margin;
    }
  }
  return false;
}

// The interval of values a number condition can match, for bucket narrowing.
std::pair<double, double> NumberWindow(Prefix p, const NumberQuery& q) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  switch (p) {
    case Prefix::kEq:
      return {q.lo, q.hi};
    case Prefix::kGt:
    case Prefix::kSa:
    case Prefix::kGe:
      return {q.value, kInf};
    case Prefix::kLt:
    case Prefix::kEb:
    case Prefix::kLe:
      return {-kInf, q.value};
    case Prefix::kAp: {
      const double margin = std::fabs(q.value) * 0.1;
      return {q.value - margin, q.value + margin};
    }
    case Prefix::kNe:
      return {-kInf, kInf};
  }
  return {-kInf, kInf};
}

bool TokenMatches(const Value& q, const TokenValue& t) {
  if (!q.system) return t.code == q.code;
  if (q.system->empty()) return !t.system && t.code == q.code;
  if (!t.system || *t.system != *q.system) return false;
  return q.code.empty() || t.code == q.code;
}

bool ValueMatches(const Condition& c, const Value& q, const ParamValues& values, int64_t now_ms) {
  switch (c.type) {
    case SearchParamType::kToken:
      return std::any_of(values.tokens.begin(), values.tokens.end(),
                         [&](const TokenValue& t) { return TokenMatches(q, t); });
    case SearchParamType::kString:
      return std::any_of(values.strings.begin(), values.strings.end(), [&](const std::string& s) {
        if (c.modifier == "exact") return s == q.raw;
        return NormalizeSearchString(s).starts_with(q.normalized);
      });
    case SearchParamType::kReference:
      return std::any_of(values.references.begin(), values.references.end(),
                         [&](const ReferenceValue& r) {
                           if (!q.ref_url.empty()) return r.url == q.ref_url;
                           if (r.id != q.ref_id) return false;
                           return q.ref_type.empty() || r.type == q.ref_type;
                         });
    case SearchParamType::kDate:
      return std::any_of(values.dates.begin(), values.dates.end(), [&](const DateRange& r) {
        return DateMatches(q.prefix, q.range, r, now_ms);
      });
    case SearchParamType::kNumber:
      return std::any_of(values.numbers.begin(), values.numbers.end(),
                         [&](double v) { return NumberMatches(q.prefix, q.number, v); }) ||
             std::any_of(values.number_ranges.begin(), values.number_ranges.end(),
                         [&](const std::pair<double, double>& r) {
                           return RangeMatches(q.prefix, q.number, r.first, r.second);
                         });
    case SearchParamType::kQuantity:
      return std::any_of(values.quantities.begin(), values.quantities.end(),
                         [&](const QuantityValue& v) {
                           if (!NumberMatches(q.prefix, q.number, v.value)) return false;
                           if (q.q_code.empty()) return true;
                           if (q.q_any_system) return v.code == q.q_code || v.unit == q.q_code;
                           return v.system == q.q_system && v.code == q.q_code;
                         });
    case SearchParamType::kUri:
      return std::any_of(values.uris.begin(), values.uris.end(),
                         [&](const std::string& u) { return u == q.raw; });
    case SearchParamType::kComposite:
    case SearchParamType::kSpecial:
      return false;
  }
  return false;
}

bool ConditionMatches(const Condition& c, const ParamValues& values, int64_t now_ms) {
  if (c.modifier == "missing") return c.missing != values.present;
  const bool any = std::any_of(c.values.begin(), c.values.end(),
                               [&](const Value& q) { return ValueMatches(c, q, values, now_ms); });
  return c.modifier == "not" ? !any : any;
}

}  // namespace

Search::Search(storage::Store& store, const crypto::Keyring& keyring, const SearchIndex& index,
               const Clock& clock, SearchOptions options)
    : store_(store), keyring_(keyring), index_(index), clock_(clock), options_(options) {}

namespace {

// Parses one parameter's values for its type.
Status ParseValues(Condition& c, std::string_view code, std::string_view raw,
                   std::string_view base_url) {
  const std::vector<std::string> parts = SplitValues(raw);
  if (parts.size() > kMaxValues) return InvalidArgument("too many values for one parameter");
  for (const std::string& part : parts) {
    Value v;
    std::string_view s = part;
    if (s.empty()) return BadValue(code);
    // search.html#prefix: the ordered types take a comparison prefix (eq when absent).
    if (c.type == SearchParamType::kDate || c.type == SearchParamType::kNumber ||
        c.type == SearchParamType::kQuantity) {
      v.prefix = ParsePrefix(&s).value_or(Prefix::kEq);
    }
    switch (c.type) {
      case SearchParamType::kToken: {
        const std::vector<std::string> bars = SplitBars(s);
        if (bars.size() == 1) {
          v.code = bars[0];
        } else if (bars.size() == 2) {
          v.system = bars[0];
          v.code = bars[1];
          if (bars[0].empty() && bars[1].empty()) return BadValue(code);
        } else {
          return BadValue(code);
        }
        v.raw = part;
        break;
      }
      case SearchParamType::kString: {
        v.raw = std::string(s);
        v.normalized = NormalizeSearchString(s);
        if (v.normalized.empty()) return BadValue(code);
        break;
      }
      case SearchParamType::kReference: {
        std::string ref(s);
        const std::string base = std::string(base_url) + "/";
        if (ref.starts_with(base)) ref.erase(0, base.size());
        if (!c.modifier.empty()) {
          v.ref_type = c.modifier;
          v.ref_id = ref;
          if (ref.find('/') != std::string::npos) return BadValue(code);
        } else if (ref.find("://") != std::string::npos || ref.starts_with("urn:")) {
          v.ref_url = ref;
        } else if (const size_t slash = ref.find('/'); slash != std::string::npos) {
          v.ref_type = ref.substr(0, slash);
          v.ref_id = ref.substr(slash + 1);
          if (v.ref_id.find('/') != std::string::npos) {
            // Type/id/_history/vid: versioned references search like the resource.
            const size_t h = v.ref_id.find("/_history/");
            if (h == std::string::npos) return BadValue(code);
            v.ref_id.resize(h);
          }
          if (!Model::R4().IsResourceType(v.ref_type) || v.ref_id.empty()) return BadValue(code);
        } else {
          v.ref_id = ref;
        }
        if (v.ref_url.empty() && !IsValidId(v.ref_id)) return BadValue(code);
        break;
      }
      case SearchParamType::kDate: {
        std::optional<DateRange> r = ParseDateRange(s);
        if (!r) return BadValue(code);
        v.range = *r;
        break;
      }
      case SearchParamType::kNumber: {
        std::optional<NumberQuery> n = ParseNumber(s);
        if (!n) return BadValue(code);
        v.number = *n;
        break;
      }
      case SearchParamType::kQuantity: {
        const std::vector<std::string> bars = SplitBars(s);
        if (bars.size() != 1 && bars.size() != 3) return BadValue(code);
        std::optional<NumberQuery> n = ParseNumber(bars[0]);
        if (!n) return BadValue(code);
        v.number = *n;
        if (bars.size() == 3) {
          v.q_system = bars[1];
          v.q_code = bars[2];
          v.q_any_system = bars[1].empty();
          if (v.q_code.empty()) return BadValue(code);
        }
        break;
      }
      case SearchParamType::kUri:
        v.raw = std::string(s);
        break;
      case SearchParamType::kComposite:
      case SearchParamType::kSpecial:
        return NotSupported("search parameter " + std::string(code) + " is not supported");
    }
    c.values.push_back(std::move(v));
  }
  return Status::Ok();
}

bool IsResultParam(std::string_view name) {
  return name == "_count" || name == "_total" || name == "_elements" || name == "_summary" ||
         name == "_format" || name == "_pretty" || name == "_cursor" || name == "_sort" ||
         name == "_include" || name == "_revinclude" || name == "_contained" ||
         name == "_containedType";
}

}  // namespace

namespace {

// What a search needs besides its parameters.
struct Deps {
  storage::Store& store;
  const crypto::Keyring& keyring;
  const SearchIndex& index;
  const SearchOptions& options;
  int64_t now;
  std::string_view base_url;
  bool lenient;
  // May be null: whether the caller could see a resource (of any type) that decides a
  // result without being returned (a chain's target, a counted match).
  const std::function<Result<bool>(std::string_view, std::string_view, std::string_view)>* visible =
      nullptr;
};

// Chains nest at most this deep (search.html#chaining: phigate supports one level).
constexpr int kMaxChainDepth = 1;
// A chain's inner search may match at most this many resources.
constexpr int kMaxChainMatches = 1000;
// Included resources per page at most.
constexpr size_t kMaxIncluded = 1000;

Result<Plan> BuildPlan(const Deps& d, const std::string& type, const QueryParams& params,
                       int depth);
Result<storage::SearchQuery> Narrow(const Deps& d, const std::string& type, const Plan& plan);

bool Matches(const Deps& d, const Plan& plan, const storage::VersionRecord& rec,
             const json::value& resource) {
  for (const std::vector<Value>& values : plan.updated) {
    const DateRange point{rec.last_updated_ms, rec.last_updated_ms + 1};
    const bool any = std::any_of(values.begin(), values.end(), [&](const Value& v) {
      return DateMatches(v.prefix, v.range, point, d.now);
    });
    if (!any) return false;
  }
  for (const Condition& c : plan.conditions) {
    if (!ConditionMatches(c, d.index.Values(*c.param, resource), d.now)) return false;
  }
  if (!plan.alternatives.empty() &&
      std::none_of(plan.alternatives.begin(), plan.alternatives.end(), [&](const Condition& c) {
        return ConditionMatches(c, d.index.Values(*c.param, resource), d.now);
      })) {
    return false;
  }
  return true;
}

// A candidate that matched, decrypted.
struct Match {
  storage::VersionRecord record;
  std::string text;
  json::value resource;
};

struct WalkState {
  std::string last_scanned;  // the last candidate decrypted (where a walk resumes)
  int scanned = 0;
  bool budget_hit = false;  // stopped because `budget` candidates were decrypted
  bool stopped = false;     // stopped because keep_going said so, a candidate remaining
};

// Walks the plan's matches in id order after `after`: before each candidate keep_going()
// may stop the walk; each match is handed to visit(). Decrypts at most `budget`.
Status Walk(const Deps& d, const Plan& plan, storage::SearchQuery query, std::string after,
            int budget, const std::function<bool()>& keep_going,
            const std::function<Status(Match&)>& visit, WalkState* state) {
  state->last_scanned = std::move(after);
  for (;;) {
    query.after_id = state->last_scanned;
    query.limit = kCandidateBatch;
    ASSIGN_OR_RETURN(std::vector<storage::VersionRecord> batch, d.store.SearchCurrent(query));
    for (storage::VersionRecord& rec : batch) {
      if (!keep_going()) {
        state->stopped = true;
        return Status::Ok();
      }
      if (state->scanned >= budget) {
        state->budget_hit = true;
        return Status::Ok();
      }
      ++state->scanned;
      state->last_scanned = rec.id;
      Result<std::string> text =
          d.keyring.Open(crypto::KeyPurpose::kData, rec.key_version, rec.ciphertext,
                         VersionAad(rec.type, rec.id, rec.version));
      if (!text.ok()) return Internal("a stored resource could not be read");
      std::error_code ec;
      json::value resource = json::parse(text.value(), ec, {}, StoredJsonOptions());
      if (ec) return Internal("a stored resource could not be read");
      if (!Matches(d, plan, rec, resource)) continue;
      Match m{std::move(rec), std::move(text).value(), std::move(resource)};
      RETURN_IF_ERROR(visit(m));
    }
    if (static_cast<int>(batch.size()) < kCandidateBatch) return Status::Ok();
  }
}

// _sort=a,-b (search.html#sort): _id, _lastUpdated, or a date, string, number, quantity,
// token, reference or uri parameter of the type.
Status ParseSort(const Deps& d, const std::string& type, std::string_view value, Plan* plan) {
  for (const std::string& key : SplitValues(value)) {
    SortKey k;
    std::string_view code = key;
    if (code.starts_with('-')) {
      k.descending = true;
      code.remove_prefix(1);
    }
    k.code = std::string(code);
    if (code != "_id" && code != "_lastUpdated") {
      k.param = d.index.Find(type, code);
      if (k.param == nullptr || !SearchIndex::Searchable(*k.param)) {
        return InvalidArgument("_sort names a parameter this type cannot be sorted by", "_sort");
      }
    }
    plan->sort.push_back(std::move(k));
  }
  if (plan->sort.empty() || plan->sort.size() > 5) {
    return InvalidArgument("_sort must name one to five parameters", "_sort");
  }
  return Status::Ok();
}

// _include=Source:param[:Target] and _revinclude=Source:param[:Target]
// (search.html#include), not iterative.
Status ParseInclude(const Deps& d, const std::string& type, std::string_view value, bool reverse,
                    Plan* plan) {
  const std::string_view what = reverse ? "_revinclude" : "_include";
  if (value == "*") return NotSupported(std::string(what) + "=* is not supported");
  const size_t c1 = value.find(':');
  if (c1 == std::string_view::npos) {
    return InvalidArgument(std::string(what) + " must be Source:parameter[:Target]");
  }
  const size_t c2 = value.find(':', c1 + 1);
  Include inc;
  inc.reverse = reverse;
  inc.source_type = std::string(value.substr(0, c1));
  const std::string code(
      value.substr(c1 + 1, c2 == std::string_view::npos ? value.npos : c2 - c1 - 1));
  if (c2 != std::string_view::npos) inc.target_type = std::string(value.substr(c2 + 1));
  if (!Model::R4().IsResourceType(inc.source_type) ||
      (!inc.target_type.empty() && !Model::R4().IsResourceType(inc.target_type))) {
    return InvalidArgument(std::string(what) + " names an unknown resource type");
  }
  // An _include starts from the searched type; a _revinclude ends at it.
  if (!reverse && inc.source_type != type) {
    return InvalidArgument("_include must start from the searched type");
  }
  if (reverse && !inc.target_type.empty() && inc.target_type != type) {
    return InvalidArgument("_revinclude must point at the searched type");
  }
  inc.param = d.index.Find(inc.source_type, code);
  if (inc.param == nullptr || inc.param->def->type != SearchParamType::kReference ||
      !inc.param->expression) {
    return InvalidArgument(std::string(what) + " must name a reference parameter");
  }
  if (plan->includes.size() >= 10) return InvalidArgument("too many _include and _revinclude");
  plan->includes.push_back(std::move(inc));
  return Status::Ok();
}

// subject:Patient.name=x / subject.name=x (search.html#chaining): the inner search runs on
// the target type, and the outer condition becomes a reference to any of its matches.
Status AddChain(const Deps& d, const std::string& type, const std::string& name,
                const std::string& value, int depth, Plan* plan) {
  if (depth >= kMaxChainDepth) {
    return NotSupported("chained parameters are supported one level deep");
  }
  const size_t dot = name.find('.');
  const std::string head = name.substr(0, dot);
  const std::string tail = name.substr(dot + 1);
  const size_t colon = head.find(':');
  const std::string code = head.substr(0, colon);
  std::string target = colon == std::string::npos ? "" : head.substr(colon + 1);
  const IndexedParam* param = d.index.Find(type, code);
  if (param == nullptr || param->def->type != SearchParamType::kReference || !param->expression) {
    if (param == nullptr && d.lenient) {
      plan->used.pop_back();
      return Status::Ok();
    }
    return InvalidArgument("a chained search must start with a reference parameter");
  }
  if (target.empty()) {
    const std::string_view targets = param->def->targets;
    if (targets.empty() || targets.find(' ') != std::string_view::npos) {
      return InvalidArgument(
          "the chained parameter may point to several types: name one (param:Type.name)");
    }
    target = std::string(targets);
  }
  if (!Model::R4().IsResourceType(target)) {
    return InvalidArgument("a chained search names an unknown resource type");
  }
  // A lenient search ignores a chain whose tail is unknown, as a whole (otherwise the
  // chain would become "points at any resource of the type").
  const std::string tail_code = tail.substr(0, tail.find(':'));
  if (d.lenient && d.index.Find(target, tail_code) == nullptr && !tail_code.starts_with('_')) {
    plan->used.pop_back();
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(Plan inner, BuildPlan(d, target, QueryParams{{tail, value}}, depth + 1));
  ASSIGN_OR_RETURN(storage::SearchQuery query, Narrow(d, target, inner));
  Condition c;
  c.param = param;
  c.type = SearchParamType::kReference;
  WalkState state;
  int found = 0;
  RETURN_IF_ERROR(Walk(
      d, inner, query, "", d.options.scan_budget, [] { return true; },
      [&](Match& m) -> Status {
        // Only targets the caller may see count: a chain must not reveal what a search of
        // the target type would hide.
        if (d.visible != nullptr) {
          ASSIGN_OR_RETURN(bool visible, (*d.visible)(m.record.type, m.record.id, m.text));
          if (!visible) return Status::Ok();
        }
        if (++found > kMaxChainMatches) {
          return InvalidArgument("the chained search matches too many resources; narrow it");
        }
        Value v;
        v.ref_type = target;
        v.ref_id = m.record.id;
        c.values.push_back(std::move(v));
        return Status::Ok();
      },
      &state));
  if (state.budget_hit) {
    return InvalidArgument("the chained search matches too many resources; narrow it");
  }
  if (c.values.empty()) {
    plan->none = true;  // nothing the chain points at exists: nothing matches
    return Status::Ok();
  }
  plan->conditions.push_back(std::move(c));
  return Status::Ok();
}

Result<Plan> BuildPlan(const Deps& d, const std::string& type, const QueryParams& params,
                       int depth) {
  Plan plan;
  plan.count = d.options.default_count;
  bool has_ids = false;
  for (const auto& [name, value] : params) {
    // What a next link carries: every parameter but those a lenient search ignored.
    plan.used.emplace_back(name, value);
    if (name == "_count") {
      int n = -1;
      const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || p != value.data() + value.size() || n < 0) {
        return InvalidArgument("_count must be a non-negative integer", "_count");
      }
      plan.count = std::min(n, d.options.max_count);
      continue;
    }
    if (name == "_total") {
      if (value != "none" && value != "estimate" && value != "accurate") {
        return InvalidArgument("_total must be none, estimate or accurate", "_total");
      }
      plan.total_accurate = value == "accurate";
      continue;
    }
    if (name == "_sort") {
      RETURN_IF_ERROR(ParseSort(d, type, value, &plan));
      continue;
    }
    if (name == "_include" || name == "_revinclude") {
      RETURN_IF_ERROR(ParseInclude(d, type, value, name == "_revinclude", &plan));
      continue;
    }
    if (name == "_contained" || name == "_containedType") {
      return NotSupported("search parameter " + name + " is not supported");
    }
    if (IsResultParam(name)) continue;  // _elements, _summary, _format, _pretty: the caller's
    const size_t colon = name.find(':');
    const std::string code = name.substr(0, colon);
    const std::string modifier = colon == std::string::npos ? "" : name.substr(colon + 1);
    if (name.find('.') != std::string::npos) {
      RETURN_IF_ERROR(AddChain(d, type, name, value, depth, &plan));
      continue;
    }
    if (code == "_id") {
      if (!modifier.empty()) return NotSupported("modifiers on _id are not supported");
      std::vector<std::string> ids;
      for (const std::string& id : SplitValues(value)) {
        if (!IsValidId(id)) return BadValue(code);
        ids.push_back(id);
      }
      if (has_ids) {
        // A repeated parameter is AND: only ids both name.
        std::erase_if(plan.ids, [&](const std::string& id) {
          return std::find(ids.begin(), ids.end(), id) == ids.end();
        });
        if (plan.ids.empty()) plan.none = true;
      } else {
        plan.ids = std::move(ids);
        has_ids = true;
      }
      continue;
    }
    if (code == "_lastUpdated") {
      if (!modifier.empty()) return NotSupported("modifiers on _lastUpdated are not supported");
      Condition c;
      c.type = SearchParamType::kDate;
      RETURN_IF_ERROR(ParseValues(c, code, value, d.base_url));
      plan.updated.push_back(std::move(c.values));
      continue;
    }
    // Search features of the spec that phigate does not offer (search.html#has, #filter,
    // #list, #query): 501, never ignored, even when lenient.
    if (code == "_has" || code == "_filter" || code == "_list" || code == "_query" ||
        code == "_type") {
      return NotSupported("search parameter " + code + " is not supported");
    }
    const IndexedParam* param = d.index.Find(type, code);
    if (param == nullptr) {
      if (d.lenient) {
        plan.used.pop_back();
        continue;
      }
      // The name is not echoed: a client may put anything, PHI included, in a name.
      return InvalidArgument("unknown search parameter for this resource type");
    }
    Condition c;
    c.param = param;
    c.type = param->def->type;
    c.modifier = modifier;
    if (!SearchIndex::Searchable(*param)) {
      return NotSupported("search parameter " + code + " is not supported");
    }
    if (modifier == "missing") {
      if (value != "true" && value != "false") return BadValue(code);
      c.missing = value == "true";
    } else {
      const bool ok_modifier =
          modifier.empty() || (modifier == "not" && c.type == SearchParamType::kToken) ||
          (modifier == "exact" && c.type == SearchParamType::kString) ||
          (c.type == SearchParamType::kReference && Model::R4().IsResourceType(modifier));
      if (!ok_modifier) {
        // The modifier is client text (a name could carry PHI): named only when it is one of
        // the spec's modifiers or a resource type.
        static constexpr std::string_view kSpecModifiers[] = {
            "missing", "exact", "contains", "text",    "not",        "above",
            "below",   "in",    "not-in",   "of-type", "identifier", "iterate"};
        const bool known = std::find(std::begin(kSpecModifiers), std::end(kSpecModifiers),
                                     modifier) != std::end(kSpecModifiers) ||
                           Model::R4().IsResourceType(modifier);
        return NotSupported((known ? "modifier :" + modifier : std::string("this modifier")) +
                            " is not supported for parameter " + code);
      }
      RETURN_IF_ERROR(ParseValues(c, code, value, d.base_url));
    }
    plan.conditions.push_back(std::move(c));
    if (plan.conditions.size() > kMaxConditions) return InvalidArgument("too many parameters");
  }

  return plan;
}

Result<storage::SearchQuery> Narrow(const Deps& d, const std::string& type, const Plan& plan) {
  storage::SearchQuery query;
  query.type = type;
  query.ids = plan.ids;
  for (const std::vector<Value>& values : plan.updated) {
    if (values.size() != 1 || values[0].prefix == Prefix::kNe || values[0].prefix == Prefix::kAp) {
      continue;  // refined after the fetch
    }
    const Value& v = values[0];
    int64_t from = kMinMs;
    int64_t to = kMaxMs;
    switch (v.prefix) {
      case Prefix::kEq:
        from = v.range.lo, to = v.range.hi;
        break;
      case Prefix::kGt:
      case Prefix::kSa:
        from = v.range.hi;
        break;
      case Prefix::kGe:
        from = v.range.lo;
        break;
      case Prefix::kLt:
      case Prefix::kEb:
        to = v.range.lo;
        break;
      case Prefix::kLe:
        to = v.range.hi;
        break;
      default:
        break;
    }
    query.updated_from_ms = std::max(query.updated_from_ms, from);
    query.updated_to_ms = std::min(query.updated_to_ms, to);
  }
  for (const Condition& c : plan.conditions) {
    storage::SearchClause clause;
    const IndexedParam& p = *c.param;
    auto tokens = [&](const std::string& tagged) -> Status {
      ASSIGN_OR_RETURN(std::vector<std::string> t, d.index.QueryTokens(p, tagged));
      for (std::string& token : t) clause.any_of.push_back(std::move(token));
      return Status::Ok();
    };
    if (c.modifier == "missing") {
      RETURN_IF_ERROR(tokens(TagPresent()));
      clause.negate = c.missing;
      query.all_of.push_back(std::move(clause));
      continue;
    }
    bool narrow = true;
    for (const Value& v : c.values) {
      switch (c.type) {
        case SearchParamType::kToken:
          if (!v.system) {
            RETURN_IF_ERROR(tokens(TagCode(v.code)));
          } else if (v.system->empty()) {
            RETURN_IF_ERROR(tokens(TagNoSystemCode(v.code)));
          } else if (v.code.empty()) {
            RETURN_IF_ERROR(tokens(TagSystem(*v.system)));
          } else {
            RETURN_IF_ERROR(tokens(TagSystemCode(*v.system, v.code)));
          }
          break;
        case SearchParamType::kString:
          if (c.modifier == "exact") {
            RETURN_IF_ERROR(tokens(TagString(NormalizeSearchString(v.raw))));
          } else if (Utf8Length(v.normalized) <= d.index.options().string_prefix_max) {
            RETURN_IF_ERROR(tokens(TagPrefix(v.normalized)));
          } else {
            RETURN_IF_ERROR(
                tokens(TagPrefix(Utf8Prefix(v.normalized, d.index.options().string_prefix_max))));
          }
          break;
        case SearchParamType::kReference:
          if (!v.ref_url.empty()) {
            RETURN_IF_ERROR(tokens(TagUrl(v.ref_url)));
          } else if (!v.ref_type.empty()) {
            RETURN_IF_ERROR(tokens(TagReference(v.ref_type, v.ref_id)));
          } else {
            RETURN_IF_ERROR(tokens(TagId(v.ref_id)));
          }
          break;
        case SearchParamType::kUri:
          RETURN_IF_ERROR(tokens(TagUrl(v.raw)));
          break;
        case SearchParamType::kNumber:
        case SearchParamType::kQuantity: {
          const auto [lo, hi] = NumberWindow(v.prefix, v.number);
          for (const std::string& bucket : NumberBuckets(lo, hi)) {
            if (c.type == SearchParamType::kNumber || v.q_code.empty()) {
              RETURN_IF_ERROR(tokens(TagBucket(bucket)));
            } else if (v.q_any_system) {
              RETURN_IF_ERROR(tokens(TagQuantityCode(v.q_code, bucket)));
              RETURN_IF_ERROR(tokens(TagUnit(v.q_code, bucket)));
            } else {
              RETURN_IF_ERROR(tokens(TagQuantity(v.q_system, v.q_code, bucket)));
            }
          }
          if (v.prefix == Prefix::kNe) narrow = false;
          break;
        }
        case SearchParamType::kDate: {
          const auto [lo, hi] = YearWindow(v, d.now);
          if (clause.any_of.empty()) {
            RETURN_IF_ERROR(tokens(TagDate()));
            clause.by_year = true;
            clause.year_low = lo;
            clause.year_high = hi;
          } else {  // several values (OR): one window covering them all
            clause.year_low = std::min(clause.year_low, lo);
            clause.year_high = std::max(clause.year_high, hi);
          }
          break;
        }
        case SearchParamType::kComposite:
        case SearchParamType::kSpecial:
          break;
      }
    }
    // :not and ne match resources without a matching value (or without any): no narrowing.
    if (c.modifier == "not" || !narrow) continue;
    query.all_of.push_back(std::move(clause));
  }

  if (!plan.alternatives.empty()) {
    // One clause: a resource with any alternative's token is a candidate.
    storage::SearchClause clause;
    for (const Condition& c : plan.alternatives) {
      for (const Value& v : c.values) {
        ASSIGN_OR_RETURN(std::vector<std::string> t,
                         d.index.QueryTokens(*c.param, TagReference(v.ref_type, v.ref_id)));
        for (std::string& token : t) clause.any_of.push_back(std::move(token));
      }
    }
    query.all_of.push_back(std::move(clause));
  }
  return query;
}

// The value a resource sorts by for one key (search.html#sort: the lowest value for an
// ascending sort, the highest for a descending one); nullopt sorts last.
using SortValue = std::variant<std::monostate, int64_t, double, std::string>;

SortValue SortValueOf(const Deps& d, const SortKey& key, const Match& m) {
  if (key.code == "_id") return m.record.id;
  if (key.code == "_lastUpdated") return m.record.last_updated_ms;
  const ParamValues v = d.index.Values(*key.param, m.resource);
  std::vector<SortValue> values;
  for (const DateRange& r : v.dates) values.emplace_back(key.descending ? r.hi : r.lo);
  for (const std::string& s : v.strings) values.emplace_back(NormalizeSearchString(s));
  for (double n : v.numbers) values.emplace_back(n);
  for (const QuantityValue& q : v.quantities) values.emplace_back(q.value);
  for (const TokenValue& t : v.tokens) values.emplace_back(t.code);
  for (const ReferenceValue& r : v.references) values.emplace_back(r.type + "/" + r.id);
  for (const std::string& u : v.uris) values.emplace_back(u);
  if (values.empty()) return SortValue();
  return key.descending ? *std::max_element(values.begin(), values.end())
                        : *std::min_element(values.begin(), values.end());
}

// The state a link carries (search.h, "Paging"): what the search is over (a type, or
// "Patient/<id>/$everything"), its parameters, and where the next page starts.
struct Cursor {
  std::string scope;
  QueryParams params;
  std::string after_id;
  int64_t offset = -1;     // sorted searches: the page's first position
  int64_t total = -1;      // the total the first page counted, -1 if none
  int64_t type_index = 0;  // $everything: the member type the page starts in
};

Result<std::string> SealCursor(const Deps& d, const Cursor& c) {
  json::array p;
  for (const auto& [name, value] : c.params) {
    if (name == "_cursor") continue;
    p.push_back(json::array{json::string(name), json::string(value)});
  }
  json::object o;
  o["t"] = c.scope;
  o["p"] = std::move(p);
  o["a"] = c.after_id;
  o["o"] = c.offset;
  o["k"] = c.type_index;
  o["x"] = d.now + d.options.cursor_ttl_ms;
  if (c.total >= 0) o["n"] = c.total;
  uint32_t version = 0;
  ASSIGN_OR_RETURN(std::string sealed, d.keyring.Seal(crypto::KeyPurpose::kTokens,
                                                      json::serialize(o), kCursorAad, &version));
  std::string framed;
  framed.push_back(static_cast<char>(version >> 24));
  framed.push_back(static_cast<char>(version >> 16));
  framed.push_back(static_cast<char>(version >> 8));
  framed.push_back(static_cast<char>(version));
  framed += sealed;
  return Base64UrlEncode(framed);
}

// The cursor among `params` (it must be alone), for `scope`; nullopt without one.
Result<std::optional<Cursor>> OpenCursor(const Deps& d, const QueryParams& params,
                                         std::string_view scope) {
  const auto it = std::find_if(params.begin(), params.end(),
                               [](const auto& p) { return p.first == "_cursor"; });
  if (it == params.end()) return std::optional<Cursor>();
  if (params.size() != 1) {
    return InvalidArgument("_cursor cannot be combined with other parameters");
  }
  std::optional<std::string> sealed = Base64UrlDecode(it->second);
  if (!sealed || sealed->size() < 5) return InvalidArgument("invalid _cursor");
  uint32_t version = 0;
  for (int i = 0; i < 4; ++i) version = (version << 8) | static_cast<uint8_t>((*sealed)[i]);
  Result<std::string> opened = d.keyring.Open(crypto::KeyPurpose::kTokens, version,
                                              std::string_view(*sealed).substr(4), kCursorAad);
  if (!opened.ok()) return InvalidArgument("invalid _cursor");
  std::error_code ec;
  json::value value = json::parse(opened.value(), ec);
  const json::object* obj = ec ? nullptr : value.if_object();
  const auto str = [&](std::string_view k) {
    const json::value* v = obj->if_contains(k);
    return v != nullptr && v->is_string();
  };
  const auto num = [&](std::string_view k) {
    const json::value* v = obj->if_contains(k);
    return v != nullptr && v->is_int64();
  };
  if (obj == nullptr || !str("t") || !str("a") || !num("x") || !num("o") || !num("k") ||
      !obj->contains("p") || !obj->at("p").is_array()) {
    return InvalidArgument("invalid _cursor");
  }
  // A cursor of another search (another type, another patient) is not this one's.
  if (obj->at("t").get_string() != scope) return InvalidArgument("invalid _cursor");
  if (obj->at("x").get_int64() <= d.now) {
    return Status(StatusCode::kGone, "the search cursor has expired; search again");
  }
  Cursor c;
  c.scope = std::string(scope);
  c.after_id = std::string(obj->at("a").get_string());
  c.offset = std::max<int64_t>(0, obj->at("o").get_int64());
  c.type_index = std::max<int64_t>(0, obj->at("k").get_int64());
  if (const json::value* n = obj->if_contains("n"); n != nullptr && n->is_int64()) {
    c.total = n->get_int64();
  }
  for (const json::value& p : obj->at("p").get_array()) {
    const json::array* pair = p.if_array();
    if (pair == nullptr || pair->size() != 2 || !(*pair)[0].is_string() ||
        !(*pair)[1].is_string()) {
      return InvalidArgument("invalid _cursor");
    }
    c.params.emplace_back(std::string((*pair)[0].get_string()),
                          std::string((*pair)[1].get_string()));
  }
  return std::optional<Cursor>(std::move(c));
}

}  // namespace

Result<RestResult> Search::Run(const SearchRequest& request) const {
  const std::string type(request.type);
  const Deps d{store_,           keyring_,        index_,         options_, clock_.NowMillis(),
               request.base_url, request.lenient, request.visible};

  // A next link carries the search's own parameters and position, sealed.
  QueryParams params = *request.params;
  std::string after_id;
  int64_t carried_total = -1;  // the total the first page counted, for later pages
  int64_t offset = 0;          // sorted searches: the page's first position
  ASSIGN_OR_RETURN(std::optional<Cursor> cursor, OpenCursor(d, *request.params, type));
  if (cursor) {
    params = std::move(cursor->params);
    after_id = std::move(cursor->after_id);
    carried_total = cursor->total;
    offset = cursor->offset;
  }

  ASSIGN_OR_RETURN(Plan plan, BuildPlan(d, type, params, 0));
  ASSIGN_OR_RETURN(storage::SearchQuery query, Narrow(d, type, plan));

  std::vector<Match> page;
  bool more = false;
  bool budget_hit = false;
  int64_t total = 0;
  std::string resume_after;  // unsorted: where the next page starts
  int64_t next_offset = -1;  // sorted: where the next page starts
  int64_t prev_offset = -1;  // sorted: where the previous page starts
  if (plan.none) {
    // A chain that matched nothing: an empty searchset.
  } else if (plan.sort.empty()) {
    // Id order: a page walks the candidates after the cursor's position. _total=accurate
    // is counted on the first page and carried in the cursor after that.
    const bool counting = plan.total_accurate && after_id.empty();
    std::string page_last;
    WalkState state;
    RETURN_IF_ERROR(Walk(
        d, plan, query, after_id, options_.scan_budget,
        [&] {
          // Past a full page only a count needs more; otherwise a remaining candidate is
          // enough for a next link (the next page checks it).
          return counting || static_cast<int>(page.size()) < plan.count;
        },
        [&](Match& m) -> Status {
          if (static_cast<int>(page.size()) >= plan.count) {  // counting past the page
            bool visible = true;
            if (request.visible != nullptr) {
              ASSIGN_OR_RETURN(visible, (*request.visible)(m.record.type, m.record.id, m.text));
            }
            if (visible) {
              ++total;
              more = true;
            }
            return Status::Ok();
          }
          if (request.filter != nullptr) {
            ASSIGN_OR_RETURN(bool keep, (*request.filter)(m.record.type, m.record.id, &m.text));
            if (!keep) return Status::Ok();
          }
          ++total;
          page_last = m.record.id;
          page.push_back(std::move(m));
          return Status::Ok();
        },
        &state));
    more = more || state.stopped || state.budget_hit;
    budget_hit = state.budget_hit;
    // A full page resumes after its last entry; a page the budget cut short after the
    // last candidate it looked at.
    resume_after = static_cast<int>(page.size()) >= plan.count && !page.empty()
                       ? page_last
                       : state.last_scanned;
    if (plan.total_accurate && !after_id.empty()) total = carried_total;
  } else {
    // Sorted: every match is needed to place a page, so the whole result is collected
    // (within the scan budget) and sorted, and the cursor holds an offset.
    std::vector<Match> all;
    WalkState state;
    RETURN_IF_ERROR(Walk(
        d, plan, query, "", options_.scan_budget, [] { return true; },
        [&](Match& m) -> Status {
          bool visible = true;
          if (request.visible != nullptr) {
            ASSIGN_OR_RETURN(visible, (*request.visible)(m.record.type, m.record.id, m.text));
          }
          if (visible) all.push_back(std::move(m));
          return Status::Ok();
        },
        &state));
    if (state.budget_hit) {
      return InvalidArgument(
          "too many candidates to sort; add search parameters that narrow the search");
    }
    std::vector<std::vector<SortValue>> keys(all.size());
    for (size_t i = 0; i < all.size(); ++i) {
      for (const SortKey& k : plan.sort) keys[i].push_back(SortValueOf(d, k, all[i]));
    }
    std::vector<size_t> order(all.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      for (size_t k = 0; k < plan.sort.size(); ++k) {
        const SortValue& x = keys[a][k];
        const SortValue& y = keys[b][k];
        const bool x_none = std::holds_alternative<std::monostate>(x);
        const bool y_none = std::holds_alternative<std::monostate>(y);
        if (x_none != y_none) return y_none;  // missing values last
        if (x == y) continue;
        return plan.sort[k].descending ? y < x : x < y;
      }
      return all[a].record.id < all[b].record.id;  // a stable, total order
    });
    total = static_cast<int64_t>(all.size());
    const int64_t end = std::min<int64_t>(offset + plan.count, total);
    for (int64_t i = offset; i < end; ++i) {
      Match& m = all[order[static_cast<size_t>(i)]];
      if (request.filter != nullptr) {
        ASSIGN_OR_RETURN(bool keep, (*request.filter)(m.record.type, m.record.id, &m.text));
        if (!keep) continue;
      }
      page.push_back(std::move(m));
    }
    if (end < total) {
      more = true;
      next_offset = end;
    }
    if (offset > 0) prev_offset = std::max<int64_t>(0, offset - plan.count);
  }
  const bool total_known = plan.total_accurate && total >= 0 && (!after_id.empty() || !budget_hit);

  // _include / _revinclude: the resources the page's matches point to, or that point to
  // them, each authorized like a read (the filter).
  std::vector<Match> included;
  std::set<std::string> seen;
  for (const Match& m : page) seen.insert(m.record.type + "/" + m.record.id);
  for (const Include& inc : plan.includes) {
    for (const Match& m : page) {
      if (included.size() >= kMaxIncluded) break;
      if (!inc.reverse) {
        for (const ReferenceValue& r : d.index.Values(*inc.param, m.resource).references) {
          if (r.type.empty() || (!inc.target_type.empty() && r.type != inc.target_type)) continue;
          const std::string key = r.type + "/" + r.id;
          if (!seen.insert(key).second || !IsValidId(r.id)) continue;
          ASSIGN_OR_RETURN(std::optional<storage::VersionRecord> rec,
                           store_.ReadCurrent(r.type, r.id));
          if (!rec || rec->deleted) continue;
          Result<std::string> text =
              keyring_.Open(crypto::KeyPurpose::kData, rec->key_version, rec->ciphertext,
                            VersionAad(rec->type, rec->id, rec->version));
          if (!text.ok()) return Internal("a stored resource could not be read");
          Match inc_match{std::move(*rec), std::move(text).value(), json::value()};
          if (request.filter != nullptr) {
            ASSIGN_OR_RETURN(bool keep, (*request.filter)(inc_match.record.type,
                                                          inc_match.record.id, &inc_match.text));
            if (!keep) continue;
          }
          included.push_back(std::move(inc_match));
        }
      } else {
        // Resources of the source type whose parameter references this match.
        Plan rev;
        Condition c;
        c.param = inc.param;
        c.type = SearchParamType::kReference;
        Value v;
        v.ref_type = m.record.type;
        v.ref_id = m.record.id;
        c.values.push_back(std::move(v));
        rev.conditions.push_back(std::move(c));
        ASSIGN_OR_RETURN(storage::SearchQuery rq, Narrow(d, inc.source_type, rev));
        WalkState state;
        RETURN_IF_ERROR(Walk(
            d, rev, rq, "", options_.scan_budget, [&] { return included.size() < kMaxIncluded; },
            [&](Match& r) -> Status {
              if (!seen.insert(r.record.type + "/" + r.record.id).second) return Status::Ok();
              if (request.filter != nullptr) {
                ASSIGN_OR_RETURN(bool keep, (*request.filter)(r.record.type, r.record.id, &r.text));
                if (!keep) return Status::Ok();
              }
              included.push_back(std::move(r));
              return Status::Ok();
            },
            &state));
      }
    }
  }

  // Links: every URL written carries only a sealed cursor (see the header).
  const auto link = [&](std::string_view position, int64_t at) -> Result<std::string> {
    Cursor c;
    c.scope = type;
    c.params = plan.used;
    c.after_id = std::string(position);
    c.offset = at;
    c.total = total_known ? total : -1;
    ASSIGN_OR_RETURN(std::string sealed, SealCursor(d, c));
    return std::string(request.base_url) + "/" + type + "?_cursor=" + sealed;
  };

  std::string out;
  out.reserve(256 + (page.size() + included.size()) * 2048);
  out += R"({"resourceType":"Bundle","type":"searchset")";
  if (total_known) {
    out += ",\"total\":";
    out += std::to_string(total);
  }
  out += R"(,"link":[{"relation":"self","url":)";
  ASSIGN_OR_RETURN(std::string self, link(after_id, offset));
  AppendJsonEscaped(out, self);
  out += '}';
  if (more) {
    out += R"(,{"relation":"next","url":)";
    ASSIGN_OR_RETURN(std::string next, link(resume_after, next_offset));
    AppendJsonEscaped(out, next);
    out += '}';
  }
  if (prev_offset >= 0) {
    out += R"(,{"relation":"previous","url":)";
    ASSIGN_OR_RETURN(std::string prev, link("", prev_offset));
    AppendJsonEscaped(out, prev);
    out += '}';
  }
  out += ']';
  bool first = true;
  const auto entry = [&](const Match& m, std::string_view mode) {
    out += first ? ",\"entry\":[" : ",";
    first = false;
    out += "{\"fullUrl\":";
    AppendJsonEscaped(out, std::string(request.base_url) + "/" + m.record.type + "/" + m.record.id);
    out += ",\"resource\":";
    out += m.text;
    out += R"(,"search":{"mode":")";
    out += mode;
    out += R"("}})";
  };
  for (const Match& m : page) entry(m, "match");
  for (const Match& m : included) entry(m, "include");
  if (!first) out += ']';
  out += '}';
  RestResult result;
  result.body = std::move(out);
  return result;
}

Result<RestResult> Search::Everything(const EverythingRequest& request) const {
  const Deps d{store_, keyring_, index_, options_, clock_.NowMillis(), request.base_url, false};
  const std::string patient(request.patient_id);
  const std::string scope = "Patient/" + patient + "/$everything";
  QueryParams params = *request.params;
  std::string after_id;
  size_t type_index = 0;
  ASSIGN_OR_RETURN(std::optional<Cursor> cursor, OpenCursor(d, *request.params, scope));
  if (cursor) {
    params = std::move(cursor->params);
    after_id = std::move(cursor->after_id);
    type_index = static_cast<size_t>(cursor->type_index);
  }
  int count = options_.default_count;
  std::vector<Value> since;
  std::set<std::string, std::less<>> types;
  for (const auto& [name, value] : params) {
    if (name == "_count") {
      int n = -1;
      const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || p != value.data() + value.size() || n < 1) {
        return InvalidArgument("_count must be a positive integer", "_count");
      }
      count = std::min(n, options_.max_count);
    } else if (name == "_since") {
      std::optional<DateRange> r = ParseDateRange(value);
      if (!r) return InvalidArgument("_since must be an instant", "_since");
      Value v;
      v.prefix = Prefix::kGe;
      v.range = *r;
      since.push_back(v);
    } else if (name == "_type") {
      for (const std::string& t : SplitValues(value)) {
        if (!Model::R4().IsResourceType(t)) {
          return InvalidArgument("_type names an unknown resource type", "_type");
        }
        types.insert(t);
      }
    } else if (name == "_format" || name == "_pretty" || name == "_elements" ||
               name == "_summary") {
      continue;  // the caller's view
    } else {
      return InvalidArgument("unknown parameter for $everything");
    }
  }
  if (!IsValidId(patient)) return NotFound("resource not found");
  ASSIGN_OR_RETURN(std::optional<storage::VersionRecord> current,
                   store_.ReadCurrent("Patient", patient));
  if (!current) return NotFound("resource not found");
  if (current->deleted) return Status(StatusCode::kGone, "the resource has been deleted");

  // One plan per member type: the patient itself, then each type whose compartment
  // parameters name the patient.
  std::vector<std::pair<std::string, Plan>> plans;
  for (const auto& [type, codes] : *request.members) {
    if (!types.empty() && !types.contains(type)) continue;
    Plan plan;
    if (!since.empty()) plan.updated.push_back(since);
    if (codes.empty()) {
      plan.ids.push_back(patient);
    } else {
      for (const std::string& code : codes) {
        const IndexedParam* param = index_.Find(type, code);
        if (param == nullptr || !param->expression ||
            param->def->type != SearchParamType::kReference) {
          continue;
        }
        Condition c;
        c.param = param;
        c.type = SearchParamType::kReference;
        Value v;
        v.ref_type = "Patient";
        v.ref_id = patient;
        c.values.push_back(std::move(v));
        plan.alternatives.push_back(std::move(c));
      }
      if (plan.alternatives.empty()) continue;
    }
    plans.emplace_back(type, std::move(plan));
  }

  std::vector<Match> page;
  std::set<std::string> seen;  // a Patient linking to this one must not repeat it
  int budget = options_.scan_budget;
  bool more = false;
  size_t resume_index = type_index;
  std::string resume_after = after_id;
  for (size_t k = type_index; k < plans.size(); ++k) {
    const auto& [type, plan] = plans[k];
    ASSIGN_OR_RETURN(storage::SearchQuery query, Narrow(d, type, plan));
    if (static_cast<int>(page.size()) >= count) {
      // The page is full: a next link only if some later type has a candidate.
      query.limit = 1;
      query.after_id = k == type_index ? after_id : "";
      ASSIGN_OR_RETURN(std::vector<storage::VersionRecord> probe, store_.SearchCurrent(query));
      if (!probe.empty()) {
        more = true;
        if (k != resume_index) {
          resume_index = k;
          resume_after.clear();
        }
        break;
      }
      continue;
    }
    WalkState state;
    std::string page_last;
    RETURN_IF_ERROR(Walk(
        d, plan, query, k == type_index ? after_id : "", budget,
        [&] { return static_cast<int>(page.size()) < count; },
        [&](Match& m) -> Status {
          if (!seen.insert(m.record.type + "/" + m.record.id).second) return Status::Ok();
          if (request.filter != nullptr) {
            ASSIGN_OR_RETURN(bool keep, (*request.filter)(m.record.type, m.record.id, &m.text));
            if (!keep) return Status::Ok();
          }
          page_last = m.record.id;
          page.push_back(std::move(m));
          return Status::Ok();
        },
        &state));
    budget -= state.scanned;
    resume_index = k;
    resume_after = static_cast<int>(page.size()) >= count && !page_last.empty()
                       ? page_last
                       : state.last_scanned;
    if (state.stopped || state.budget_hit) {
      more = true;
      break;
    }
    if (static_cast<int>(page.size()) < count) {
      // This type is done: the next page would start at the next type.
      resume_index = k + 1;
      resume_after.clear();
    }
  }

  Cursor self;
  self.scope = scope;
  self.params = params;
  self.after_id = after_id;
  self.type_index = static_cast<int64_t>(type_index);
  ASSIGN_OR_RETURN(std::string self_cursor, SealCursor(d, self));
  const std::string base = std::string(request.base_url) + "/" + scope + "?_cursor=";
  std::string out;
  out.reserve(256 + page.size() * 2048);
  out += R"({"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":)";
  AppendJsonEscaped(out, base + self_cursor);
  out += '}';
  if (more) {
    Cursor next = self;
    next.after_id = resume_after;
    next.type_index = static_cast<int64_t>(resume_index);
    ASSIGN_OR_RETURN(std::string next_cursor, SealCursor(d, next));
    out += R"(,{"relation":"next","url":)";
    AppendJsonEscaped(out, base + next_cursor);
    out += '}';
  }
  out += ']';
  bool first = true;
  for (const Match& m : page) {
    out += first ? ",\"entry\":[" : ",";
    first = false;
    out += "{\"fullUrl\":";
    AppendJsonEscaped(out, std::string(request.base_url) + "/" + m.record.type + "/" + m.record.id);
    out += ",\"resource\":";
    out += m.text;
    out += R"(,"search":{"mode":"match"}})";
  }
  if (!first) out += ']';
  out += '}';
  RestResult result;
  result.body = std::move(out);
  return result;
}

Result<std::vector<std::string>> Search::Ids(const SearchRequest& request, int limit) const {
  const std::string type(request.type);
  const Deps d{store_,           keyring_,        index_,         options_, clock_.NowMillis(),
               request.base_url, request.lenient, request.visible};
  for (const auto& [name, value] : *request.params) {
    if (IsResultParam(name)) {
      return InvalidArgument("a condition may hold search parameters only", name);
    }
  }
  if (request.params->empty()) {
    return Status(StatusCode::kPreconditionFailed, "a conditional interaction needs a condition");
  }
  ASSIGN_OR_RETURN(Plan plan, BuildPlan(d, type, *request.params, 0));
  std::vector<std::string> ids;
  if (plan.none) return ids;
  ASSIGN_OR_RETURN(storage::SearchQuery query, Narrow(d, type, plan));
  WalkState state;
  RETURN_IF_ERROR(Walk(
      d, plan, query, "", options_.scan_budget,
      [&] { return static_cast<int>(ids.size()) < limit; },
      [&](Match& m) -> Status {
        bool visible = true;
        if (request.visible != nullptr) {
          ASSIGN_OR_RETURN(visible, (*request.visible)(m.record.type, m.record.id, m.text));
        }
        if (visible) ids.push_back(m.record.id);
        return Status::Ok();
      },
      &state));
  if (state.budget_hit) {
    return Status(StatusCode::kPreconditionFailed,
                  "the condition matches too many candidates to decide; make it more selective");
  }
  return ids;
}

}  // namespace phigate::fhir
