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

// An exclusive flock on <data_dir>/serve.lock, held while the process lives: one server
// per data directory (the store's read cache relies on seeing every resource write).
class ServeLock {
 public:
  explicit ServeLock(int fd) : fd_(fd) {}
  ~ServeLock();
  ServeLock(const ServeLock&) = delete;
  ServeLock& operator=(const ServeLock&) = delete;

 private:
  int fd_;
};

struct DataDir {
  std::unique_ptr<ServeLock> serve_lock;  // set for `serve` only
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<crypto::Keyring> keyring;
  std::unique_ptr<crypto::SigningKey> signing_key;
  bool created = false;  // this start created the directory
};

enum class DataDirUse { kServe, kCommand };

// Creates what is missing and opens the rest. Throws StartupError naming the file. kServe
// takes the data dir's serve lock (a second server on the same dir is refused) and turns
// on the store's cache; kCommand (CLI) does neither.
DataDir OpenDataDir(const Config& config, DataDirUse use);

class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace phigate::app
