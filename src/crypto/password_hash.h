// Argon2id password and client-secret hashing (libargon2), at OWASP's recommended
// parameters (m = 19 MiB, t = 2, p = 1), in PHC string format with a random 16-byte salt.
// Thread-safety: stateless; each call allocates its own memory (~19 MiB).
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace phigate::crypto {

Result<std::string> HashPassword(std::string_view secret);
// False for a wrong secret or a malformed hash; never throws.
bool VerifyPassword(std::string_view phc_hash, std::string_view secret);

// Spends what one VerifyPassword costs, against the hash (made once per process, with the
// parameters above) of a random secret nobody knows, and drops the result: an unknown,
// locked, disabled or secretless account then answers as slowly as a wrong secret, so the
// timing does not tell which case it was. Thread-safe.
void BurnPasswordVerification(std::string_view secret);

}  // namespace phigate::crypto
