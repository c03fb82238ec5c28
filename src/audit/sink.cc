#include "audit/sink.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "crypto/crypto.h"

namespace phigate::audit {

Result<std::pair<std::string, std::vector<std::string>>> TrailSink::Render(const Event& event) {
  const uint32_t version = keyring_.current_version();
  std::shared_ptr<const crypto::HmacSha256Key> key;
  {
    std::lock_guard<std::mutex> lock(key_mu_);
    if (key_version_ != version || key_ == nullptr) {
      // A tag key that cannot be derived (an unknown current version: keyring
      // misconfigured) is a failure to record, so the request fails closed like any other
      // audit failure.
      Result<std::string> derived = TagKey(keyring_, version);
      if (!derived.ok()) return Unavailable("audit trail unavailable");
      key_ = std::make_shared<const crypto::HmacSha256Key>(*derived);
      crypto::Wipe(*derived);
      key_version_ = version;
    }
    key = key_;
  }
  std::vector<std::string> tags = EventTags(event, *key);
  return std::make_pair(EncodeEvent(event), std::move(tags));
}

Result<int64_t> TrailSink::Record(const Event& event) {
  ASSIGN_OR_RETURN(auto rendered, Render(event));
  return log_.Append(std::move(rendered.first), std::move(rendered.second));
}

void TrailSink::RecordAsync(const Event& event, AppendCallback done) {
  auto rendered = Render(event);
  if (!rendered.ok()) {
    log_.RequestEnded();
    done(rendered.status());
    return;
  }
  log_.AppendAsync(std::move(rendered->first), std::move(rendered->second), std::move(done));
}

}  // namespace phigate::audit
