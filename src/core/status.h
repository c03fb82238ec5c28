// Status and Result<T>: the error currency at every module boundary.
//
// A Status carries a code, a client-safe message (never PHI, SQL, key material or a
// submitted value) and, for validation failures, the FHIRPath expression of the offending
// element. Internal detail for logs goes through the PHI-free logger, not through Status.
// Thread-safety: values; no shared state.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace phigate {

enum class StatusCode {
  kOk,
  kInvalidArgument,       // 400: malformed or invalid input
  kUnauthenticated,       // 401
  kPermissionDenied,      // 403
  kNotFound,              // 404
  kMethodNotAllowed,      // 405
  kNotAcceptable,         // 406
  kConflict,              // 409: e.g. a version race without If-Match
  kGone,                  // 410: deleted resource
  kPreconditionFailed,    // 412: If-Match mismatch
  kPayloadTooLarge,       // 413
  kUnsupportedMediaType,  // 415
  kUnprocessable,         // 422: well-formed but not processable (FHIR business rules)
  kInternal,              // 500
  kNotSupported,          // 501
  kUnavailable,           // 503
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message, std::string expression = {})
      : code_(code), message_(std::move(message)), expression_(std::move(expression)) {}

  static Status Ok() { return {}; }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  // Client-safe text.
  const std::string& message() const { return message_; }
  // FHIRPath of the offending element, or empty.
  const std::string& expression() const { return expression_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string expression_;
};

inline Status InvalidArgument(std::string msg, std::string expr = {}) {
  return {StatusCode::kInvalidArgument, std::move(msg), std::move(expr)};
}
inline Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
inline Status PermissionDenied(std::string msg) {
  return {StatusCode::kPermissionDenied, std::move(msg)};
}
inline Status Internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }
inline Status Unavailable(std::string msg) { return {StatusCode::kUnavailable, std::move(msg)}; }
inline Status NotSupported(std::string msg) { return {StatusCode::kNotSupported, std::move(msg)}; }

// Result<T>: a T or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace phigate

#define PHIGATE_CONCAT_INNER(a, b) a##b
#define PHIGATE_CONCAT(a, b) PHIGATE_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` (a Status) is not ok.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::phigate::Status phigate_status_ = (expr);        \
    if (!phigate_status_.ok()) return phigate_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, Foo());` binds the value or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(PHIGATE_CONCAT(phigate_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
