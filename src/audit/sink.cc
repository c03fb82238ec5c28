#include "audit/sink.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace phigate::audit {

Result<int64_t> TrailSink::Record(const Event& event) {
  // A tag key that cannot be derived (an unknown current version: keyring misconfigured) is
  // a failure to record, so the request fails closed like any other audit failure.
  Result<std::string> key = TagKey(keyring_, keyring_.current_version());
  if (!key.ok()) return Unavailable("audit trail unavailable");
  std::vector<std::string> tags = EventTags(event, *key);
  std::fill(key->begin(), key->end(), '\0');
  return log_.Append(EventJson(event), std::move(tags));
}

void TrailSink::RecordAsync(const Event& event, AppendCallback done) {
  Result<std::string> key = TagKey(keyring_, keyring_.current_version());
  if (!key.ok()) {
    done(Unavailable("audit trail unavailable"));
    return;
  }
  std::vector<std::string> tags = EventTags(event, *key);
  std::fill(key->begin(), key->end(), '\0');
  log_.AppendAsync(EventJson(event), std::move(tags), std::move(done));
}

}  // namespace phigate::audit
