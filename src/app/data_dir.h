// The data directory: created on first start (mode 0700) with everything the embedded
// default needs: a self-signed TLS certificate, the key-encryption key, the token-signing
// key and the SQLite database. Existing files are checked, never overwritten.
// Thread-safety: start-up code, single-threaded.
#pragma once

#include <memory>
#include <string>

#include "core/config.h"
#include "crypto/keyring.h"
#include "crypto/signing_key.h"
#include "storage/store.h"

namespace phigate::app {

struct DataDir {
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<crypto::Keyring> keyring;
  std::unique_ptr<crypto::SigningKey> signing_key;
  bool created = false;  // this start created the directory
};

// Creates what is missing and opens the rest. Throws StartupError naming the file.
DataDir OpenDataDir(const Config& config);

// Opens only the database (for CLI commands), creating the directory if needed.
std::unique_ptr<storage::Store> OpenStoreOnly(const Config& config);

class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace phigate::app
