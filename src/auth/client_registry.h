// Registration of API clients for the client credentials grant (RFC 6749 §2, §4.4).
//
// The server generates both halves of the credential: a client_id of 128 random bits and
// a client_secret of 256 random bits (so secrets are never weak or reused), and stores
// only the secret's Argon2id hash. The secret is returned once, to be shown once.
//
// Thread-safety: safe from any thread if `store` is.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/status.h"
#include "storage/store.h"

namespace phigate::auth {

inline constexpr size_t kMaxClientNameChars = 200;

struct NewClient {
  std::string client_id;
  std::string client_secret;
};

// `name`: 1..kMaxClientNameChars printable ASCII characters (0x20-0x7E) — ASCII only, so
// that a name shown to an administrator cannot hide bidirectional overrides, control
// characters or look-alike letters. `scope`: parsed by ScopeSet::Parse and must grant at
// least one system/ interaction; it is stored in ScopeSet::ToString() form. Errors:
// kInvalidArgument for bad input; storage errors as the store reports them.
Result<NewClient> CreateClient(storage::Store& store, std::string_view name, std::string_view scope,
                               const Clock& clock);

}  // namespace phigate::auth
