#include "app/data_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "crypto/certificate.h"
#include "crypto/key_file.h"
#include "storage/sqlite/sqlite_store.h"

namespace phigate::app {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void Fail(const std::string& what) { throw StartupError(what); }

void Check(const Status& s, const std::string& context) {
  if (!s.ok()) Fail(context.empty() ? s.message() : context + ": " + s.message());
}

// For files created on first start: kConflict means another process (a concurrent first
// `serve` or `clients add`) created it first, which is as good as creating it here.
void CheckCreated(const Status& s, const std::string& context) {
  if (s.code() != StatusCode::kConflict) Check(s, context);
}

// A private directory: created 0700; an existing one must not be open to group/other,
// since it holds keys and the database.
void EnsurePrivateDir(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) Fail(path + ": " + std::strerror(errno));
    std::error_code ec;
    fs::path dir = fs::path(path).lexically_normal();
    if (!dir.has_filename()) dir = dir.parent_path();  // "data/" names "data"
    const fs::path parent = dir.parent_path();
    if (!parent.empty()) fs::create_directories(parent, ec);
    if (ec) Fail(path + ": cannot create directory: " + ec.message());
    // Created 0700 at once (the umask can only remove bits), so a concurrent first start
    // never sees it open to others; EEXIST means that other process made it first.
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      Fail(path + ": cannot create directory: " + std::strerror(errno));
    }
    if (::stat(path.c_str(), &st) != 0) Fail(path + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) Fail(path + ": not a directory");
  if ((st.st_mode & 077) != 0) {
    Fail(path + ": directory is accessible by group or others (chmod 700 it)");
  }
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::unique_ptr<ServeLock> LockForServing(const std::string& data_dir) {
  const std::string path = data_dir + "/serve.lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) Fail(path + ": cannot open: " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    Fail(data_dir + ": another phigate serve is already using this data dir");
  }
  return std::make_unique<ServeLock>(fd);
}

std::unique_ptr<storage::Store> OpenStore(const Config& config, int64_t cache_bytes) {
  storage::SqliteOptions options;
  options.path = config.data_dir + "/phigate.db";
  options.current_cache_bytes = cache_bytes;
  auto store = storage::OpenSqliteStore(options);
  if (!store.ok()) Fail(options.path + ": " + store.status().message());
  return std::move(store).value();
}

}  // namespace

ServeLock::~ServeLock() { ::close(fd_); }

DataDir OpenDataDir(const Config& config, DataDirUse use) {
  DataDir dir;
  dir.created = !Exists(config.data_dir);
  EnsurePrivateDir(config.data_dir);
  const bool serving = use == DataDirUse::kServe;
  if (serving) dir.serve_lock = LockForServing(config.data_dir);
  const std::string default_tls = config.data_dir + "/tls";
  const std::string default_keys = config.data_dir + "/keys";

  // TLS: generate the development certificate only at the default location; a configured
  // certificate that is missing is an error, never silently replaced.
  const bool default_cert = config.tls.certificate_file == default_tls + "/cert.pem" &&
                            config.tls.private_key_file == default_tls + "/key.pem";
  if (!Exists(config.tls.certificate_file) && !Exists(config.tls.private_key_file) &&
      default_cert) {
    EnsurePrivateDir(default_tls);
    CheckCreated(crypto::GenerateSelfSignedCertificate(config.tls.certificate_file,
                                                       config.tls.private_key_file, {"localhost"},
                                                       {"127.0.0.1", "::1"}, 365),
                 "tls certificate");
  }
  // A concurrent first start may be between writing the key and the certificate: give it
  // a moment (generation takes milliseconds) rather than fail.
  for (int i = 0; default_cert && i < 50 && !Exists(config.tls.certificate_file); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!Exists(config.tls.certificate_file)) {
    Fail("tls.certificate_file: " + config.tls.certificate_file + ": file not found");
  }
  Check(crypto::CheckSecretFile(config.tls.private_key_file), "tls.private_key_file");

  // Key-encryption key and token-signing key.
  if (config.keys.kek_file == default_keys + "/kek" ||
      config.keys.signing_key_file == default_keys + "/token-signing.pem") {
    EnsurePrivateDir(default_keys);
  }
  if (!Exists(config.keys.kek_file) && config.keys.kek_file == default_keys + "/kek") {
    CheckCreated(crypto::CreateKek(config.keys.kek_file), "keys.kek_file");
  }
  auto kek = crypto::LoadKek(config.keys.kek_file);
  Check(kek.status(), "keys.kek_file");

  if (!Exists(config.keys.signing_key_file) &&
      config.keys.signing_key_file == default_keys + "/token-signing.pem") {
    auto generated = crypto::SigningKey::Generate();
    Check(generated.status(), "keys.signing_key_file");
    CheckCreated(generated->SavePem(config.keys.signing_key_file), "keys.signing_key_file");
  }
  auto signing = crypto::SigningKey::LoadPem(config.keys.signing_key_file);
  Check(signing.status(), "keys.signing_key_file");
  dir.signing_key = std::make_unique<crypto::SigningKey>(std::move(signing).value());

  // Database and the data keys it holds wrapped under the KEK.
  dir.store = OpenStore(config, serving ? config.storage.cache_bytes : 0);
  auto open_keyring = [&dir, &kek] {
    auto records = dir.store->LoadDataKeys();
    Check(records.status(), "database");
    std::vector<crypto::WrappedKey> wrapped;
    for (auto& r : *records) wrapped.push_back({r.version, r.wrapped});
    auto keyring = crypto::Keyring::Open(kek.value(), wrapped);
    Check(keyring.status(), "keys.kek_file");
    return std::move(keyring).value();
  };
  dir.keyring = open_keyring();
  if (dir.keyring->empty()) {
    auto added = dir.keyring->AddVersion();
    Check(added.status(), "data key");
    Status saved = dir.store->SaveDataKey({added->version, added->wrapped});
    // Another process saved the first data key meanwhile: use the stored one.
    if (saved.code() == StatusCode::kConflict) {
      dir.keyring = open_keyring();
    } else {
      Check(saved, "data key");
    }
  }
  return dir;
}

}  // namespace phigate::app
