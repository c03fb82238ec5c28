// The one mapping from internal StatusCode to HTTP status and FHIR IssueType
// (STYLE.md rule 4). Thread-safety: pure.
#pragma once

#include "core/status.h"

namespace phigate::http {

struct HttpError {
  int http_status;
  const char* issue_code;  // valueset-issue-type
  const char* severity;    // error or fatal
};

HttpError MapStatus(StatusCode code);

}  // namespace phigate::http
