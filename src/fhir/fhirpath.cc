#include "fhir/fhirpath.h"

#include <algorithm>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>

namespace phigate::fhir::fhirpath {
namespace json = boost::json;

// The expression tree. An invocation (member, function, indexer) applies to the result of
// `input`, or to the focus ($this) when `input` is null.
struct Expression::Ast {
  enum class Kind : std::uint8_t {
    kMember,    // name
    kFunction,  // name(args); type-taking functions keep the type in `type_name`
    kIndexer,   // input[index]
    kLiteral,   // literal (an empty `is_empty_literal` collection is {})
    kThis,      // $this
    kUnion,     // args[0] | args[1]
    kAnd,
    kOr,
    kEqual,
    kNotEqual,
    kIs,  // input is type_name
    kAs,  // input as type_name
  };
  Kind kind = Kind::kMember;
  std::string name;
  std::string type_name;  // kIs, kAs, and ofType/as/is functions: unqualified type name
  std::unique_ptr<const Ast> input;
  std::vector<std::unique_ptr<const Ast>> args;
  json::value literal;
  bool is_empty_literal = false;
  std::size_t index = 0;
};

namespace {

using Ast = Expression::Ast;
using Kind = Ast::Kind;
using Nodes = std::vector<Node>;

const json::value kTrue(true);
constexpr std::size_t kMaxDeduplicated = 1000;
const json::value kFalse(false);

// ---- Tokenizer ----

enum class Tok : std::uint8_t {
  kEnd,
  kIdentifier,  // also keywords (and, or, is, as, true, false); `text` holds the name
  kDelimitedIdentifier,
  kString,
  kNumber,
  kThis,  // $this
  kSymbol,
};

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;
};

Status Unsupported(std::string_view what) {
  return InvalidArgument("unsupported FHIRPath: " + std::string(what));
}

bool IsIdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || std::isdigit(static_cast<unsigned char>(c)); }

Result<std::vector<Token>> Tokenize(std::string_view text) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ++i;
    } else if (IsIdentStart(c)) {
      std::size_t j = i + 1;
      while (j < text.size() && IsIdentChar(text[j])) ++j;
      out.push_back({Tok::kIdentifier, std::string(text.substr(i, j - i))});
      i = j;
    } else if (c == '`') {
      const std::size_t end = text.find('`', i + 1);
      if (end == std::string_view::npos || end == i + 1) {
        return InvalidArgument("malformed FHIRPath: bad delimited identifier");
      }
      out.push_back({Tok::kDelimitedIdentifier, std::string(text.substr(i + 1, end - i - 1))});
      i = end + 1;
    } else if (c == '\'') {
      std::string value;
      std::size_t j = i + 1;
      for (;; ++j) {
        if (j >= text.size()) return InvalidArgument("malformed FHIRPath: unterminated string");
        if (text[j] == '\'') break;
        if (text[j] != '\\') {
          value.push_back(text[j]);
          continue;
        }
        if (++j >= text.size()) return InvalidArgument("malformed FHIRPath: unterminated string");
        switch (text[j]) {
          case '\'':
          case '"':
          case '`':
          case '\\':
          case '/':
            value.push_back(text[j]);
            break;
          case 'f':
            value.push_back('\f');
            break;
          case 'n':
            value.push_back('\n');
            break;
          case 'r':
            value.push_back('\r');
            break;
          case 't':
            value.push_back('\t');
            break;
          default:
            return Unsupported("string escape");
        }
      }
      out.push_back({Tok::kString, std::move(value)});
      i = j + 1;
    } else if (std::isdigit(static_cast<unsigned char>(c)) != 0) {
      std::size_t j = i;
      while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j])) != 0) ++j;
      if (j + 1 < text.size() && text[j] == '.' &&
          std::isdigit(static_cast<unsigned char>(text[j + 1])) != 0) {
        ++j;
        while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j])) != 0) ++j;
      }
      out.push_back({Tok::kNumber, std::string(text.substr(i, j - i))});
      i = j;
    } else if (c == '$') {
      std::size_t j = i + 1;
      while (j < text.size() && IsIdentChar(text[j])) ++j;
      if (text.substr(i, j - i) != "$this") return Unsupported(text.substr(i, j - i));
      out.push_back({Tok::kThis, "$this"});
      i = j;
    } else if (c == '%') {
      return Unsupported("environment variable");
    } else if (c == '!' && i + 1 < text.size() && text[i + 1] == '=') {
      out.push_back({Tok::kSymbol, "!="});
      i += 2;
    } else if (c == '.' || c == '(' || c == ')' || c == '[' || c == ']' || c == '|' || c == '=' ||
               c == ',') {
      out.push_back({Tok::kSymbol, std::string(1, c)});
      ++i;
    } else if (std::string_view("<>+-*/&~!{}").find(c) != std::string_view::npos) {
      if (c == '{' && i + 1 < text.size() && text[i + 1] == '}') {
        out.push_back({Tok::kSymbol, "{}"});
        i += 2;
        continue;
      }
      return Unsupported(std::string("operator ") + c);
    } else {
      return InvalidArgument("malformed FHIRPath: unexpected character");
    }
  }
  out.push_back({Tok::kEnd, ""});
  return out;
}

// ---- Parser (precedence per fhirpath.html#operator-precedence, low to high:
// or, and, = !=, |, is as, then invocations and indexers) ----

constexpr int kMaxDepth = 64;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Result<std::unique_ptr<const Ast>> ParseAll() {
    ASSIGN_OR_RETURN(auto ast, ParseOr());
    if (Peek().kind != Tok::kEnd) return InvalidArgument("malformed FHIRPath: trailing input");
    return ast;
  }

 private:
  const Token& Peek(std::size_t ahead = 0) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  bool IsSymbol(std::string_view s, std::size_t ahead = 0) const {
    return Peek(ahead).kind == Tok::kSymbol && Peek(ahead).text == s;
  }
  bool IsKeyword(std::string_view s) const {
    return Peek().kind == Tok::kIdentifier && Peek().text == s;
  }
  Status Expect(std::string_view symbol) {
    if (!IsSymbol(symbol)) {
      return InvalidArgument("malformed FHIRPath: expected '" + std::string(symbol) + "'");
    }
    ++pos_;
    return Status::Ok();
  }

  static std::unique_ptr<Ast> Binary(Kind kind, std::unique_ptr<const Ast> lhs,
                                     std::unique_ptr<const Ast> rhs) {
    auto node = std::make_unique<Ast>();
    node->kind = kind;
    node->args.push_back(std::move(lhs));
    node->args.push_back(std::move(rhs));
    return node;
  }

  Result<std::unique_ptr<const Ast>> ParseOr() {
    if (++depth_ > kMaxDepth) return InvalidArgument("malformed FHIRPath: nested too deeply");
    ASSIGN_OR_RETURN(auto lhs, ParseAnd());
    while (IsKeyword("or") || IsKeyword("xor") || IsKeyword("implies")) {
      if (!IsKeyword("or")) return Unsupported(Peek().text);
      ++pos_;
      ASSIGN_OR_RETURN(auto rhs, ParseAnd());
      lhs = Binary(Kind::kOr, std::move(lhs), std::move(rhs));
    }
    --depth_;
    return lhs;
  }

  Result<std::unique_ptr<const Ast>> ParseAnd() {
    ASSIGN_OR_RETURN(auto lhs, ParseEquality());
    while (IsKeyword("and")) {
      ++pos_;
      ASSIGN_OR_RETURN(auto rhs, ParseEquality());
      lhs = Binary(Kind::kAnd, std::move(lhs), std::move(rhs));
    }
    return lhs;
  }

  Result<std::unique_ptr<const Ast>> ParseEquality() {
    ASSIGN_OR_RETURN(auto lhs, ParseUnion());
    if (IsKeyword("in") || IsKeyword("contains")) return Unsupported(Peek().text);
    while (IsSymbol("=") || IsSymbol("!=")) {
      const Kind kind = IsSymbol("=") ? Kind::kEqual : Kind::kNotEqual;
      ++pos_;
      ASSIGN_OR_RETURN(auto rhs, ParseUnion());
      lhs = Binary(kind, std::move(lhs), std::move(rhs));
    }
    return lhs;
  }

  Result<std::unique_ptr<const Ast>> ParseUnion() {
    ASSIGN_OR_RETURN(auto lhs, ParseType());
    while (IsSymbol("|")) {
      ++pos_;
      ASSIGN_OR_RETURN(auto rhs, ParseType());
      lhs = Binary(Kind::kUnion, std::move(lhs), std::move(rhs));
    }
    return lhs;
  }

  // A type specifier: `Patient`, `FHIR.Patient`, `System.String`; returns the unqualified
  // name (System types are named as FHIRPath spells them: String, Boolean, ...).
  Result<std::string> ParseTypeSpecifier() {
    if (Peek().kind != Tok::kIdentifier && Peek().kind != Tok::kDelimitedIdentifier) {
      return InvalidArgument("malformed FHIRPath: expected a type name");
    }
    std::string name = Peek().text;
    ++pos_;
    if (IsSymbol(".") && (Peek(1).kind == Tok::kIdentifier)) {
      if (name != "FHIR" && name != "System") return Unsupported("type namespace " + name);
      ++pos_;
      name = Peek().text;
      ++pos_;
    }
    return name;
  }

  Result<std::unique_ptr<const Ast>> ParseType() {
    ASSIGN_OR_RETURN(auto lhs, ParsePostfix());
    if (IsKeyword("is") || IsKeyword("as")) {
      const Kind kind = IsKeyword("is") ? Kind::kIs : Kind::kAs;
      ++pos_;
      auto node = std::make_unique<Ast>();
      node->kind = kind;
      node->input = std::move(lhs);
      ASSIGN_OR_RETURN(node->type_name, ParseTypeSpecifier());
      lhs = std::move(node);
    }
    return lhs;
  }

  Result<std::unique_ptr<const Ast>> ParsePostfix() {
    ASSIGN_OR_RETURN(auto lhs, ParseTerm());
    for (;;) {
      if (IsSymbol(".")) {
        ++pos_;
        ASSIGN_OR_RETURN(auto inv, ParseInvocation());
        inv->input = std::move(lhs);
        lhs = std::move(inv);
      } else if (IsSymbol("[")) {
        ++pos_;
        if (Peek().kind != Tok::kNumber || Peek().text.find('.') != std::string::npos) {
          return Unsupported("indexer other than an integer literal");
        }
        auto node = std::make_unique<Ast>();
        node->kind = Kind::kIndexer;
        const std::string& digits = Peek().text;
        const auto [end, ec] =
            std::from_chars(digits.data(), digits.data() + digits.size(), node->index);
        if (ec != std::errc() || end != digits.data() + digits.size()) {
          return InvalidArgument("malformed FHIRPath: bad index");
        }
        ++pos_;
        RETURN_IF_ERROR(Expect("]"));
        node->input = std::move(lhs);
        lhs = std::move(node);
      } else {
        return lhs;
      }
    }
  }

  Result<std::unique_ptr<const Ast>> ParseTerm() {
    const Token& t = Peek();
    if (IsSymbol("(")) {
      ++pos_;
      ASSIGN_OR_RETURN(auto inner, ParseOr());
      RETURN_IF_ERROR(Expect(")"));
      return inner;
    }
    auto node = std::make_unique<Ast>();
    if (t.kind == Tok::kString) {
      node->kind = Kind::kLiteral;
      node->literal = json::string(t.text);
      ++pos_;
      return std::unique_ptr<const Ast>(std::move(node));
    }
    if (t.kind == Tok::kNumber) {
      node->kind = Kind::kLiteral;
      if (t.text.find('.') == std::string::npos) {
        std::int64_t v = 0;
        const auto [end, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
        if (ec != std::errc() || end != t.text.data() + t.text.size()) {
          return InvalidArgument("malformed FHIRPath: bad number");
        }
        node->literal = v;
      } else {
        double v = 0;
        const auto [end, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
        if (ec != std::errc() || end != t.text.data() + t.text.size()) {
          return InvalidArgument("malformed FHIRPath: bad number");
        }
        node->literal = v;
      }
      ++pos_;
      return std::unique_ptr<const Ast>(std::move(node));
    }
    if (t.kind == Tok::kThis) {
      node->kind = Kind::kThis;
      ++pos_;
      return std::unique_ptr<const Ast>(std::move(node));
    }
    if (IsSymbol("{}")) {
      node->kind = Kind::kLiteral;
      node->is_empty_literal = true;
      ++pos_;
      return std::unique_ptr<const Ast>(std::move(node));
    }
    if (t.kind == Tok::kIdentifier && (t.text == "true" || t.text == "false")) {
      node->kind = Kind::kLiteral;
      node->literal = t.text == "true";
      ++pos_;
      return std::unique_ptr<const Ast>(std::move(node));
    }
    if (t.kind == Tok::kIdentifier || t.kind == Tok::kDelimitedIdentifier) {
      ASSIGN_OR_RETURN(auto inv, ParseInvocation());
      return std::unique_ptr<const Ast>(std::move(inv));
    }
    if (t.kind == Tok::kEnd) return InvalidArgument("malformed FHIRPath: unexpected end");
    return InvalidArgument("malformed FHIRPath: unexpected '" + t.text + "'");
  }

  // identifier | identifier '(' args ')'
  Result<std::unique_ptr<Ast>> ParseInvocation() {
    const Token& t = Peek();
    if (t.kind != Tok::kIdentifier && t.kind != Tok::kDelimitedIdentifier) {
      return InvalidArgument("malformed FHIRPath: expected a name");
    }
    auto node = std::make_unique<Ast>();
    node->name = t.text;
    ++pos_;
    if (t.kind == Tok::kDelimitedIdentifier || !IsSymbol("(")) {
      node->kind = Kind::kMember;
      return node;
    }
    ++pos_;  // '('
    node->kind = Kind::kFunction;
    const std::string& fn = node->name;
    if (fn == "ofType" || fn == "as" || fn == "is") {
      ASSIGN_OR_RETURN(node->type_name, ParseTypeSpecifier());
      RETURN_IF_ERROR(Expect(")"));
      return node;
    }
    if (fn != "where" && fn != "exists" && fn != "empty" && fn != "not" && fn != "first" &&
        fn != "resolve") {
      return Unsupported("function " + fn + "()");
    }
    if (!IsSymbol(")")) {
      for (;;) {
        ASSIGN_OR_RETURN(auto arg, ParseOr());
        node->args.push_back(std::move(arg));
        if (!IsSymbol(",")) break;
        ++pos_;
      }
    }
    RETURN_IF_ERROR(Expect(")"));
    const std::size_t n = node->args.size();
    const bool arity_ok = fn == "where" ? n == 1 : fn == "exists" ? n <= 1 : n == 0;
    if (!arity_ok) return InvalidArgument("malformed FHIRPath: wrong arguments to " + fn + "()");
    return node;
  }

  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

// ---- Evaluation ----

class Evaluator {
 public:
  Evaluator(const Model& model, const json::value& root) : model_(model), root_(root) {}

  Nodes Eval(const Ast& ast, const Nodes& focus) const {
    switch (ast.kind) {
      case Kind::kLiteral:
        if (ast.is_empty_literal) return {};
        return {Node{&ast.literal, nullptr, nullptr, false}};
      case Kind::kThis:
        return focus;
      case Kind::kMember:
        return ast.input != nullptr ? Children(Eval(*ast.input, focus), ast.name)
                                    : Start(focus, ast.name);
      case Kind::kFunction:
        return Function(ast, ast.input != nullptr ? Eval(*ast.input, focus) : focus);
      case Kind::kIndexer: {
        Nodes in = Eval(*ast.input, focus);
        if (ast.index >= in.size()) return {};
        return {in[ast.index]};
      }
      case Kind::kUnion: {
        // N1 §6.4 `|`: the merged collection without duplicate values, by `=` (so equal
        // values from two nodes, or twice in one operand, appear once).
        Nodes out;
        std::unordered_set<const boost::json::value*> nodes;  // the same node twice
        for (const auto& side : ast.args) {
          for (const Node& n : Eval(*side, focus)) {
            if (!nodes.insert(n.value).second) continue;
            // Value comparison is quadratic: past kMaxDeduplicated items (far beyond what a
            // valid resource holds at one path) only the same node counts as a duplicate,
            // which search indexing, a set, does not notice.
            if (out.size() < kMaxDeduplicated &&
                std::any_of(out.begin(), out.end(),
                            [&](const Node& m) { return SameValue(m, n); })) {
              continue;
            }
            out.push_back(n);
          }
        }
        return out;
      }
      case Kind::kAnd:
      case Kind::kOr: {
        const std::optional<bool> a = ToBool(Eval(*ast.args[0], focus));
        const std::optional<bool> b = ToBool(Eval(*ast.args[1], focus));
        if (ast.kind == Kind::kAnd) {
          if (a == false || b == false) return Bool(false);
          if (a == true && b == true) return Bool(true);
        } else {
          if (a == true || b == true) return Bool(true);
          if (a == false && b == false) return Bool(false);
        }
        return {};
      }
      case Kind::kEqual:
      case Kind::kNotEqual: {
        const Nodes a = Eval(*ast.args[0], focus);
        const Nodes b = Eval(*ast.args[1], focus);
        if (a.empty() || b.empty()) return {};
        bool equal = a.size() == b.size();
        for (std::size_t i = 0; equal && i < a.size(); ++i) equal = Equal(a[i], b[i]);
        return Bool(ast.kind == Kind::kEqual ? equal : !equal);
      }
      case Kind::kIs: {
        const Nodes in = Eval(*ast.input, focus);
        if (in.size() != 1) return {};
        return Bool(IsType(in[0], ast.type_name));
      }
      case Kind::kAs:
        return OfType(Eval(*ast.input, focus), ast.type_name);
    }
    return {};
  }

 private:
  static Nodes Bool(bool b) { return {Node{b ? &kTrue : &kFalse, nullptr, nullptr, false}}; }

  // FHIRPath singleton evaluation of a collection in a boolean context (N1 §4.5).
  static std::optional<bool> ToBool(const Nodes& nodes) {
    if (nodes.size() != 1) return std::nullopt;
    if (nodes[0].value->is_bool()) return nodes[0].value->get_bool();
    return true;
  }

  // JSON equality with numbers compared by value (72 and 72.0 are one decimal).
  static bool JsonEqual(const json::value& x, const json::value& y) {
    if (x.is_number() && y.is_number()) return x.to_number<double>() == y.to_number<double>();
    if (x.is_object() && y.is_object()) {
      const json::object& a = x.get_object();
      const json::object& b = y.get_object();
      if (a.size() != b.size()) return false;
      for (const auto& [key, v] : a) {
        const json::value* w = b.if_contains(key);
        if (w == nullptr || !JsonEqual(v, *w)) return false;
      }
      return true;
    }
    if (x.is_array() && y.is_array()) {
      const json::array& a = x.get_array();
      const json::array& b = y.get_array();
      if (a.size() != b.size()) return false;
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (!JsonEqual(a[i], b[i])) return false;
      }
      return true;
    }
    return x == y;
  }

  // FHIRPath `=` for union deduplication (N1 §6.1): primitives by value, complex values
  // when every child is equal; what resolve() produced only equals itself.
  static bool SameValue(const Node& a, const Node& b) {
    if (a.value == b.value && a.type == b.type) return true;
    if (a.resolved_reference || b.resolved_reference) return false;
    return JsonEqual(*a.value, *b.value);
  }

  static bool Equal(const Node& a, const Node& b) {
    const json::value& x = *a.value;
    const json::value& y = *b.value;
    if (x.is_string() && y.is_string()) return x.get_string() == y.get_string();
    if (x.is_bool() && y.is_bool()) return x.get_bool() == y.get_bool();
    if (x.is_number() && y.is_number()) return x.to_number<double>() == y.to_number<double>();
    return false;  // different kinds, or objects (complex values are not compared here)
  }

  // The type a JSON value of declared type `type` has: a Resource-typed value (contained,
  // Bundle.entry.resource) has the type its resourceType names.
  Node Typed(const json::value* value, const TypeDef* type, const ElementSet* elements) const {
    if (type != nullptr && type->kind == TypeKind::kResource && type->is_abstract) {
      const json::object* obj = value->if_object();
      const json::value* rt = obj != nullptr ? obj->if_contains("resourceType") : nullptr;
      const TypeDef* concrete =
          rt != nullptr && rt->is_string() ? model_.FindResourceType(rt->get_string()) : nullptr;
      if (concrete != nullptr) return Node{value, concrete, nullptr, false};
    }
    return Node{value, type, elements, false};
  }

  static const ElementSet* ElementsOf(const Node& n) {
    if (n.resolved_reference) return nullptr;
    if (n.elements != nullptr) return n.elements;
    if (n.type != nullptr && n.type->kind != TypeKind::kPrimitive) return &n.type->elements;
    return nullptr;
  }

  static bool DerivesFrom(const TypeDef* t, std::string_view name) {
    for (; t != nullptr; t = t->base) {
      if (t->name == name) return true;
      if (t->constrains != nullptr && t->constrains->name == name) return true;
    }
    return false;
  }

  static bool IsType(const Node& n, std::string_view name) {
    if (n.type != nullptr) return DerivesFrom(n.type, name);
    const json::value& v = *n.value;  // a System value
    if (v.is_string()) return name == "String";
    if (v.is_bool()) return name == "Boolean";
    if (v.is_int64() || v.is_uint64()) return name == "Integer";
    if (v.is_double()) return name == "Decimal";
    return false;
  }

  static Nodes OfType(const Nodes& in, std::string_view name) {
    Nodes out;
    for (const Node& n : in) {
      if (IsType(n, name)) out.push_back(n);
    }
    return out;
  }

  // The first identifier of a path: the focus itself when it names the focus's type (or
  // an ancestor: Resource.id), else the focus's element of that name.
  Nodes Start(const Nodes& focus, const std::string& name) const {
    Nodes out;
    bool typed = false;
    for (const Node& n : focus) {
      if (!n.resolved_reference && n.type != nullptr && n.type->kind == TypeKind::kResource &&
          DerivesFrom(n.type, name)) {
        out.push_back(n);
        typed = true;
      }
    }
    if (typed) return out;
    // A type name that does not match (Observation.code evaluated on a Patient) selects
    // nothing; otherwise the name is an element.
    const TypeDef* as_type = model_.FindType(name);
    if (as_type != nullptr && as_type->kind == TypeKind::kResource) return {};
    return Children(focus, name);
  }

  Nodes Children(const Nodes& in, std::string_view name) const {
    Nodes out;
    for (const Node& n : in) {
      const ElementSet* set = ElementsOf(n);
      const json::object* obj = n.value->if_object();
      if (set == nullptr || obj == nullptr) continue;
      const ElementDef* e = set->FindElement(name);
      if (e == nullptr) continue;
      if (e->choice) {
        for (const TypeRef& t : e->types) {
          std::string key(name);
          key += t.type->choice_suffix;
          if (const json::value* v = obj->if_contains(key)) Append(*v, t.type, e->children, &out);
        }
        continue;
      }
      if (const json::value* v = obj->if_contains(name)) {
        const TypeDef* type = e->types.empty() ? nullptr : e->types[0].type;
        Append(*v, type, e->children, &out);
      }
    }
    return out;
  }

  void Append(const json::value& v, const TypeDef* type, const ElementSet* elements,
              Nodes* out) const {
    if (const json::array* arr = v.if_array()) {
      for (const json::value& item : *arr) {
        if (!item.is_null()) out->push_back(Typed(&item, type, elements));
      }
    } else if (!v.is_null()) {
      out->push_back(Typed(&v, type, elements));
    }
  }

  Nodes Function(const Ast& ast, const Nodes& in) const {
    const std::string& fn = ast.name;
    if (fn == "where" || (fn == "exists" && !ast.args.empty())) {
      Nodes out;
      for (const Node& n : in) {
        if (ToBool(Eval(*ast.args[0], Nodes{n})) == true) out.push_back(n);
      }
      if (fn == "where") return out;
      return Bool(!out.empty());
    }
    if (fn == "exists") return Bool(!in.empty());
    if (fn == "empty") return Bool(in.empty());
    if (fn == "not") {
      if (in.size() != 1 || !in[0].value->is_bool()) return {};
      return Bool(!in[0].value->get_bool());
    }
    if (fn == "first") return in.empty() ? Nodes{} : Nodes{in[0]};
    if (fn == "ofType" || fn == "as") return OfType(in, ast.type_name);
    if (fn == "is") {
      if (in.size() != 1) return {};
      return Bool(IsType(in[0], ast.type_name));
    }
    if (fn == "resolve") {
      Nodes out;
      for (const Node& n : in) {
        if (std::optional<Node> r = Resolve(n)) out.push_back(*r);
      }
      return out;
    }
    return {};  // unreachable: the parser admits only the functions above
  }

  // resolve() as a type test (see the header): the type a Reference, canonical or uri
  // points to.
  std::optional<Node> Resolve(const Node& n) const {
    const json::value* ref = nullptr;
    if (n.type != nullptr && n.type->name == "Reference") {
      const json::object* obj = n.value->if_object();
      ref = obj != nullptr ? obj->if_contains("reference") : nullptr;
    } else if (n.type != nullptr && (DerivesFrom(n.type, "uri"))) {
      ref = n.value;
    }
    if (ref == nullptr || !ref->is_string()) return std::nullopt;
    const std::string_view s = ref->get_string();
    const TypeDef* target = nullptr;
    if (!s.empty() && s[0] == '#') {
      target = ContainedType(s.substr(1));
    } else {
      target = ReferencedType(s);
    }
    if (target == nullptr) return std::nullopt;
    return Node{ref, target, nullptr, true};
  }

  const TypeDef* ContainedType(std::string_view id) const {
    const json::object* root = root_.if_object();
    const json::value* contained = root != nullptr ? root->if_contains("contained") : nullptr;
    if (contained == nullptr || !contained->is_array()) return nullptr;
    for (const json::value& c : contained->get_array()) {
      const json::object* obj = c.if_object();
      if (obj == nullptr) continue;
      const json::value* cid = obj->if_contains("id");
      const json::value* rt = obj->if_contains("resourceType");
      if (cid != nullptr && cid->is_string() && cid->get_string() == id && rt != nullptr &&
          rt->is_string()) {
        return model_.FindResourceType(rt->get_string());
      }
    }
    return nullptr;
  }

  // "Patient/1", "Patient/1/_history/2", "https://h/fhir/Patient/1": the last
  // "<ResourceType>/<id>" pair of the path (references.html#literal).
  const TypeDef* ReferencedType(std::string_view s) const {
    if (s.starts_with("urn:")) return nullptr;
    if (const std::size_t q = s.find_first_of("?#"); q != std::string_view::npos) {
      s = s.substr(0, q);
    }
    if (const std::size_t h = s.find("/_history/"); h != std::string_view::npos) {
      s = s.substr(0, h);
    }
    const std::size_t slash = s.rfind('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == s.size()) return nullptr;
    std::string_view head = s.substr(0, slash);
    const std::size_t prev = head.rfind('/');
    const std::string_view type = prev == std::string_view::npos ? head : head.substr(prev + 1);
    return model_.FindResourceType(type);
  }

  const Model& model_;
  const json::value& root_;
};

}  // namespace

Result<Expression> Expression::Parse(std::string_view text, const Model& model) {
  ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(text));
  Parser parser(std::move(tokens));
  ASSIGN_OR_RETURN(std::unique_ptr<const Ast> ast, parser.ParseAll());
  return Expression(std::move(ast), model);
}

Expression::Expression(std::unique_ptr<const Ast> ast, const Model& model)
    : ast_(std::move(ast)), model_(&model) {}
Expression::Expression(Expression&&) noexcept = default;
Expression& Expression::operator=(Expression&&) noexcept = default;
Expression::~Expression() = default;

std::vector<Node> Expression::Evaluate(const json::value& resource) const {
  const json::object* obj = resource.if_object();
  const json::value* rt = obj != nullptr ? obj->if_contains("resourceType") : nullptr;
  const TypeDef* type =
      rt != nullptr && rt->is_string() ? model_->FindResourceType(rt->get_string()) : nullptr;
  if (type == nullptr) return {};
  Evaluator evaluator(*model_, resource);
  return evaluator.Eval(*ast_, Nodes{Node{&resource, type, nullptr, false}});
}

}  // namespace phigate::fhir::fhirpath
