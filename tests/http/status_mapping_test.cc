#include "http/status_mapping.h"

#include <gtest/gtest.h>

namespace phigate::http {
namespace {

TEST(StatusMappingTest, EveryCodeHasItsHttpStatusAndIssueType) {
  struct Case {
    StatusCode code;
    int http;
    const char* issue;
  };
  const Case cases[] = {
      {StatusCode::kInvalidArgument, 400, "invalid"},
      {StatusCode::kUnauthenticated, 401, "login"},
      {StatusCode::kPermissionDenied, 403, "forbidden"},
      {StatusCode::kNotFound, 404, "not-found"},
      {StatusCode::kMethodNotAllowed, 405, "not-supported"},
      {StatusCode::kNotAcceptable, 406, "not-supported"},
      {StatusCode::kConflict, 409, "conflict"},
      {StatusCode::kGone, 410, "deleted"},
      {StatusCode::kPreconditionFailed, 412, "conflict"},
      {StatusCode::kPayloadTooLarge, 413, "too-long"},
      {StatusCode::kUnsupportedMediaType, 415, "not-supported"},
      {StatusCode::kUnprocessable, 422, "processing"},
      {StatusCode::kInternal, 500, "exception"},
      {StatusCode::kNotSupported, 501, "not-supported"},
      {StatusCode::kUnavailable, 503, "transient"},
  };
  for (const Case& c : cases) {
    HttpError e = MapStatus(c.code);
    EXPECT_EQ(e.http_status, c.http);
    EXPECT_STREQ(e.issue_code, c.issue);
  }
}

}  // namespace
}  // namespace phigate::http
