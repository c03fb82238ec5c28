// GoogleTest matchers for core/status.h: StatusIs(code, message) matches a Status or a
// Result whose code and message are exactly those; IsOk() one that is ok. The failure
// message shows the actual code and message.
#pragma once

#include <gmock/gmock.h>

#include "core/status.h"

namespace phigate::testing {

inline const Status& StatusOf(const Status& status) { return status; }
template <typename T>
const Status& StatusOf(const Result<T>& result) {
  return result.status();
}

MATCHER_P2(StatusIs, code, message, "") {
  const Status& status = StatusOf(arg);
  *result_listener << "code " << static_cast<int>(status.code()) << ", message \""
                   << status.message() << "\"";
  return status.code() == code && status.message() == message;
}

MATCHER(IsOk, "") {
  const Status& status = StatusOf(arg);
  *result_listener << "code " << static_cast<int>(status.code()) << ", message \""
                   << status.message() << "\"";
  return status.ok();
}

}  // namespace phigate::testing
