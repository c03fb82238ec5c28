// Fuzz target for the audit record form (audit/event.h): DecodeEvent, which opens every
// record an auditor reads (issue 5). The bytes come from the trail's own ciphertext, but a
// damaged or tampered segment that still authenticates under a leaked key must fail
// cleanly, never crash the reader or render a second meaning.
//
// Invariants:
//   - a rejected input fails with exactly kInvalidArgument "malformed audit event" (event.h:
//     the decoder's only error);
//   - an accepted input is the canonical encoding of what it decodes to: EncodeEvent gives
//     back the same bytes (one encoding per value, so a record's hash names one event);
//   - EventJson of an accepted event is JSON (RFC 8259) that starts as an AuditEvent, for
//     any bytes in its strings (AppendJsonString replaces invalid UTF-8).
// Thread-safety: libFuzzer calls this from one thread.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "audit/event.h"
#include "core/status.h"
#include "fuzz_check.h"

namespace {

constexpr std::string_view kJsonStart = R"({"resourceType":"AuditEvent")";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const phigate::Result<phigate::audit::Event> decoded = phigate::audit::DecodeEvent(input);
  if (!decoded.ok()) {
    FUZZ_CHECK(decoded.status().code() == phigate::StatusCode::kInvalidArgument);
    FUZZ_CHECK(decoded.status().message() == "malformed audit event");
    return 0;
  }

  FUZZ_CHECK(phigate::audit::EncodeEvent(*decoded) == input);

  const std::string text = phigate::audit::EventJson(*decoded);
  FUZZ_CHECK(text.starts_with(kJsonStart));
  boost::system::error_code ec;
  const boost::json::value value = boost::json::parse(text, ec);
  FUZZ_CHECK(!ec);
  FUZZ_CHECK(value.is_object());
  return 0;
}
