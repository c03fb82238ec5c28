// The set-up the built-in authorization server's tests share: a fresh SqliteStore in its
// own temp dir, fake time, an optional keyring with one data key, an AuthConfig and an
// in-memory security event sink; and HookClock, to act "concurrently" at a known point.
// Thread-safety: a fixture belongs to one test; HookClock is not thread-safe.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "auth/security_events.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/status.h"
#include "crypto/crypto.h"
#include "crypto/keyring.h"
#include "storage/sqlite/sqlite_store.h"

namespace phigate::auth {

// Where every fixture's FakeClock starts: at a TOTP step boundary, so that "the next step"
// is exactly 30 s away.
inline constexpr int64_t kAuthTestStartMs = 1'800'000'000'000;

// A clock that runs `hook` once, at the next reading after it is armed, then reads like
// `base`. Accounts reads the clock while a check holds its account, so the hook can act
// "concurrently" (another request, another process) at a known point, deterministically.
class HookClock final : public Clock {
 public:
  explicit HookClock(const FakeClock& base) : base_(base) {}
  void Arm(std::function<void()> hook) { hook_ = std::move(hook); }
  int64_t NowMillis() const override {
    if (hook_) {
      std::function<void()> hook = std::move(hook_);
      hook_ = nullptr;
      hook();
    }
    return base_.NowMillis();
  }

 private:
  const FakeClock& base_;
  mutable std::function<void()> hook_;
};

// A fixture's base. Its SetUp calls OpenStore (and AddKeyring if it needs one) under
// ASSERT_NO_FATAL_FAILURE. The store is closed and the temp dir removed when the fixture
// is destroyed, after the derived fixture's members (which refer to the store) are gone.
class AuthTestEnv : public ::testing::Test {
 protected:
  ~AuthTestEnv() override {
    store_.reset();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  // A new owner-only temp dir "phigate-<name>-test-<random>" holding a new store.
  // `store_reads_fake_clock`: the store's own time reads (sessions, revocations) use
  // clock_ rather than the system clock.
  void OpenStore(std::string_view name, bool store_reads_fake_clock) {
    dir_ = std::filesystem::temp_directory_path() /
           ("phigate-" + std::string(name) + "-test-" + crypto::RandomToken(12));
    std::filesystem::create_directory(dir_);
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all);
    storage::SqliteOptions options;
    options.path = (dir_ / "phigate.db").string();
    options.read_connections = 1;
    if (store_reads_fake_clock) options.clock = &clock_;
    Result<std::unique_ptr<storage::Store>> store = storage::OpenSqliteStore(options);
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(store).value();
  }

  // A keyring with one data key, as Accounts needs to seal TOTP secrets.
  void AddKeyring() {
    keyring_ = std::move(crypto::Keyring::Open(crypto::RandomBytes(32), {})).value();
    ASSERT_TRUE(keyring_->AddVersion().ok());
  }

  std::filesystem::path dir_;
  FakeClock clock_{kAuthTestStartMs};
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<crypto::Keyring> keyring_;
  AuthConfig config_;
  MemorySecurityEventSink events_;
};

}  // namespace phigate::auth
