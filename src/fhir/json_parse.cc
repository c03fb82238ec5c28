#include "fhir/json_parse.h"

#include <algorithm>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/value_stack.hpp>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace phigate::fhir {

namespace json = boost::json;

namespace {

// A boost::json::basic_parser handler that builds the value (through value_stack, as
// boost::json::parser does) and also remembers the keys of each open object, so that
// duplicates can be rejected: boost::json::parser would silently keep one of them.
//
// Keys live in one arena used as a stack: an object's keys are appended after those of the
// objects enclosing it and dropped when it closes, so a document costs no allocation per key.
class DuplicateCheckingHandler {
 public:
  // Limits equal to what the containers can hold, so oversized input is a parse error
  // rather than an exception from inside the value stack.
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();

  // `scratch` is temporary space for the value stack, so small documents build without
  // growing it on the heap.
  DuplicateCheckingHandler(unsigned char* scratch, std::size_t scratch_size)
      : stack_(json::storage_ptr(), scratch, scratch_size) {}

  bool duplicate_found() const { return duplicate_found_; }
  bool out_of_range() const { return out_of_range_; }
  json::value Release() { return stack_.release(); }

  bool on_document_begin(json::error_code&) {
    stack_.reset();
    return true;
  }
  bool on_document_end(json::error_code&) { return true; }

  bool on_object_begin(json::error_code&) {
    object_starts_.push_back(keys_.size());
    return true;
  }
  bool on_object_end(std::size_t n, json::error_code& ec) {
    const std::size_t first = object_starts_.back();
    object_starts_.pop_back();
    if (HasDuplicate(first)) {
      duplicate_found_ = true;
      ec = json::error::syntax;  // stops the parser; ParseJson reports the duplicate
      return false;
    }
    if (first < keys_.size()) {
      arena_.resize(keys_[first].offset);
      keys_.resize(first);
    }
    stack_.push_object(n);
    return true;
  }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t n, json::error_code&) {
    stack_.push_array(n);
    return true;
  }

  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    if (!key_open_) {
      keys_.push_back({arena_.size(), 0});
      key_open_ = true;
    }
    arena_.append(s.data(), s.size());
    stack_.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    if (!key_open_) keys_.push_back({arena_.size(), 0});
    arena_.append(s.data(), s.size());
    keys_.back().size = arena_.size() - keys_.back().offset;
    key_open_ = false;
    stack_.push_key(s);  // joined with any parts pushed by on_key_part
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    stack_.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    stack_.push_string(s);
    return true;
  }
  bool on_number_part(json::string_view s, json::error_code&) {
    number_text_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
    number_text_.clear();
    stack_.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
    number_text_.clear();
    stack_.push_uint64(u);
    return true;
  }
  bool on_double(double d, json::string_view s, json::error_code& ec) {
    // Boost.JSON 1.81's conversion is not correctly rounded (it can differ by an ulp or
    // more, and even depend on the bytes after the number: boostorg/json#599), so the
    // number's text is converted again with std::from_chars, which rounds correctly.
    number_text_.append(s.data(), s.size());
    double exact = 0;
    const char* first = number_text_.data();
    const char* last = first + number_text_.size();
    const auto [end, error] = std::from_chars(first, last, exact);
    if (error == std::errc() && end == last) d = exact;
    number_text_.clear();
    // A value beyond the double range has no JSON form once parsed (infinity): refused.
    // Underflow (from_chars: out of range, Boost: a finite 0 or subnormal) is kept.
    if (!std::isfinite(d)) {
      out_of_range_ = true;
      ec = json::error::exponent_overflow;
      return false;
    }
    stack_.push_double(d);
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    stack_.push_bool(b);
    return true;
  }
  bool on_null(json::error_code&) {
    stack_.push_null();
    return true;
  }
  // Comments are disabled in the parse options; these are never called.
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  struct KeySpan {
    std::size_t offset;
    std::size_t size;
  };

  std::string_view KeyAt(std::size_t i) const {
    return std::string_view(arena_).substr(keys_[i].offset, keys_[i].size);
  }

  // Keys [first, end) of the object that just closed. Pairwise for the small objects FHIR
  // is made of; sorted beyond that, so a huge object cannot make this quadratic.
  bool HasDuplicate(std::size_t first) {
    const std::size_t count = keys_.size() - first;
    if (count <= 16) {
      for (std::size_t i = first; i < keys_.size(); ++i) {
        for (std::size_t j = i + 1; j < keys_.size(); ++j) {
          if (KeyAt(i) == KeyAt(j)) return true;
        }
      }
      return false;
    }
    sorted_.clear();
    for (std::size_t i = first; i < keys_.size(); ++i) sorted_.push_back(KeyAt(i));
    std::sort(sorted_.begin(), sorted_.end());
    return std::adjacent_find(sorted_.begin(), sorted_.end()) != sorted_.end();
  }

  json::value_stack stack_;
  std::string arena_;                       // characters of the keys of all open objects
  std::vector<KeySpan> keys_;               // their spans, innermost object last
  std::vector<std::size_t> object_starts_;  // index in keys_ of each open object's first key
  std::vector<std::string_view> sorted_;    // scratch for HasDuplicate
  bool key_open_ = false;                   // a key arrived in parts and is not finished
  bool duplicate_found_ = false;
  bool out_of_range_ = false;
  std::string number_text_;  // the current number's text, gathered across parts
};

}  // namespace

Result<json::value> ParseJson(std::string_view text, int max_depth) {
  json::parse_options options;  // strict by default: no comments or trailing commas
  options.max_depth = max_depth > 0 ? static_cast<std::size_t>(max_depth) : 1;
  unsigned char scratch[4096];
  json::basic_parser<DuplicateCheckingHandler> parser(options, scratch, sizeof(scratch));
  json::error_code ec;
  const std::size_t used = parser.write_some(/*more=*/false, text.data(), text.size(), ec);
  if (ec) {
    if (ec == json::error::too_deep) return InvalidArgument("JSON nested too deeply");
    if (parser.handler().duplicate_found()) return InvalidArgument("duplicate JSON property");
    if (parser.handler().out_of_range()) return InvalidArgument("JSON number out of range");
    return InvalidArgument("malformed JSON");
  }
  if (used != text.size()) return InvalidArgument("malformed JSON");  // trailing content
  return parser.handler().Release();
}

}  // namespace phigate::fhir
