#include <openssl/rand.h>

#include <climits>
#include <cstdio>
#include <cstdlib>

#include "core/base64.h"
#include "crypto/crypto.h"

namespace phigate::crypto {

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  while (n > 0) {
    int chunk = n > INT_MAX ? INT_MAX : static_cast<int>(n);
    // Continuing with predictable keys, nonces or tokens would be silent and unrecoverable;
    // stopping is the only safe answer (the process supervisor restarts us).
    if (RAND_bytes(p, chunk) != 1) {
      static_cast<void>(
          std::fputs("phigate: fatal: the system random number generator failed\n", stderr));
      std::abort();
    }
    p += chunk;
    n -= static_cast<size_t>(chunk);
  }
  return out;
}

std::string RandomToken(size_t bytes) { return Base64UrlEncode(RandomBytes(bytes)); }

}  // namespace phigate::crypto
