#include "http/status_mapping.h"

namespace phigate::http {

HttpError MapStatus(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return {200, "informational", "information"};
    case StatusCode::kInvalidArgument:
      return {400, "invalid", "error"};
    case StatusCode::kUnauthenticated:
      return {401, "login", "error"};
    case StatusCode::kPermissionDenied:
      return {403, "forbidden", "error"};
    case StatusCode::kNotFound:
      return {404, "not-found", "error"};
    case StatusCode::kMethodNotAllowed:
      return {405, "not-supported", "error"};
    case StatusCode::kNotAcceptable:
      return {406, "not-supported", "error"};
    case StatusCode::kConflict:
      return {409, "conflict", "error"};
    case StatusCode::kGone:
      return {410, "deleted", "error"};
    case StatusCode::kPreconditionFailed:
      return {412, "conflict", "error"};
    case StatusCode::kPayloadTooLarge:
      return {413, "too-long", "error"};
    case StatusCode::kUnsupportedMediaType:
      return {415, "not-supported", "error"};
    case StatusCode::kUnprocessable:
      return {422, "processing", "error"};
    case StatusCode::kInternal:
      return {500, "exception", "fatal"};
    case StatusCode::kNotSupported:
      return {501, "not-supported", "error"};
    case StatusCode::kUnavailable:
      return {503, "transient", "error"};
  }
  return {500, "exception", "fatal"};
}

}  // namespace phigate::http
