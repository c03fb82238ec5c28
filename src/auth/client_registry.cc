#include "auth/client_registry.h"

#include <algorithm>

#include "auth/scope.h"
#include "core/log.h"
#include "crypto/crypto.h"
#include "crypto/password_hash.h"

namespace phigate::auth {

namespace {

bool IsPrintableAscii(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x20 && u <= 0x7E;
}

}  // namespace

Result<NewClient> CreateClient(storage::Store& store, std::string_view name, std::string_view scope,
                               const Clock& clock) {
  if (name.empty() || name.size() > kMaxClientNameChars) {
    return InvalidArgument("the client name must be 1 to 200 characters");
  }
  if (!std::all_of(name.begin(), name.end(), IsPrintableAscii)) {
    return InvalidArgument("the client name must be printable ASCII characters");
  }
  ASSIGN_OR_RETURN(ScopeSet scopes, ScopeSet::Parse(scope));
  if (!scopes.GrantsAnyInteraction()) {
    return InvalidArgument("the scope must include at least one system/ scope");
  }

  NewClient created;
  created.client_id = crypto::RandomToken(16);
  created.client_secret = crypto::RandomToken(32);
  ASSIGN_OR_RETURN(std::string secret_hash, crypto::HashPassword(created.client_secret));

  storage::ClientRecord record;
  record.client_id = created.client_id;
  record.name = std::string(name);
  record.secret_hash = std::move(secret_hash);
  record.scope = scopes.ToString();
  record.created_ms = clock.NowMillis();
  record.disabled = false;
  RETURN_IF_ERROR(store.PutClient(record));
  Log(LogLevel::kInfo, "client_created", {{"client_id", created.client_id}});
  return created;
}

}  // namespace phigate::auth
