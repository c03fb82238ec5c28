#include "crypto/keyring.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "crypto/crypto.h"

namespace phigate::crypto {
namespace {

class KeyringTest : public ::testing::Test {
 protected:
  // A keyring with `versions` data keys; their wrapped form lands in stored_.
  std::unique_ptr<Keyring> Make(int versions) {
    Result<std::unique_ptr<Keyring>> ring = Keyring::Open(kek_, {});
    EXPECT_TRUE(ring.ok());
    for (int i = 0; i < versions; ++i) {
      Result<WrappedKey> wrapped = (*ring)->AddVersion();
      EXPECT_TRUE(wrapped.ok());
      stored_.push_back(*wrapped);
    }
    return std::move(ring).value();
  }

  const std::string kek_ = RandomBytes(kKeyBytes);
  std::vector<WrappedKey> stored_;
};

TEST_F(KeyringTest, EmptyKeyringCannotSeal) {
  std::unique_ptr<Keyring> ring = Make(0);
  EXPECT_TRUE(ring->empty());
  uint32_t version = 0;
  Result<std::string> sealed = ring->Seal(KeyPurpose::kData, "x", "aad", &version);
  ASSERT_FALSE(sealed.ok());
  EXPECT_EQ(sealed.status().code(), StatusCode::kInternal);
}

TEST_F(KeyringTest, RoundTripAcrossReopen) {
  std::unique_ptr<Keyring> ring = Make(1);
  EXPECT_EQ(ring->current_version(), 1u);
  uint32_t version = 0;
  Result<std::string> sealed = ring->Seal(KeyPurpose::kData, "phi", "Patient/1/1", &version);
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(version, 1u);

  Result<std::unique_ptr<Keyring>> reopened = Keyring::Open(kek_, stored_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().message();
  Result<std::string> opened =
      (*reopened)->Open(KeyPurpose::kData, version, *sealed, "Patient/1/1");
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, "phi");
}

TEST_F(KeyringTest, RotationKeepsOldVersionsReadable) {
  std::unique_ptr<Keyring> ring = Make(1);
  uint32_t old_version = 0;
  std::string old_sealed = *ring->Seal(KeyPurpose::kData, "old", "aad", &old_version);

  Result<WrappedKey> added = ring->AddVersion();
  ASSERT_TRUE(added.ok());
  stored_.push_back(*added);
  EXPECT_EQ(added->version, 2u);
  EXPECT_EQ(ring->current_version(), 2u);

  uint32_t new_version = 0;
  std::string new_sealed = *ring->Seal(KeyPurpose::kData, "new", "aad", &new_version);
  EXPECT_EQ(new_version, 2u);

  std::unique_ptr<Keyring> reopened = std::move(Keyring::Open(kek_, stored_)).value();
  EXPECT_EQ(reopened->current_version(), 2u);
  EXPECT_EQ(*reopened->Open(KeyPurpose::kData, old_version, old_sealed, "aad"), "old");
  EXPECT_EQ(*reopened->Open(KeyPurpose::kData, new_version, new_sealed, "aad"), "new");
  // A ciphertext opens only under the version it was sealed with.
  EXPECT_FALSE(reopened->Open(KeyPurpose::kData, new_version, old_sealed, "aad").ok());
}

TEST_F(KeyringTest, AadBindsCiphertextToItsIdentity) {
  std::unique_ptr<Keyring> ring = Make(1);
  uint32_t version = 0;
  std::string sealed = *ring->Seal(KeyPurpose::kData, "phi", "Patient/1/1", &version);
  Result<std::string> swapped = ring->Open(KeyPurpose::kData, version, sealed, "Patient/2/1");
  ASSERT_FALSE(swapped.ok());
  EXPECT_EQ(swapped.status().code(), StatusCode::kInternal);
  EXPECT_EQ(swapped.status().message(), "decryption failed");
}

TEST_F(KeyringTest, PurposesAreSeparated) {
  std::unique_ptr<Keyring> ring = Make(1);
  uint32_t version = 0;
  std::string sealed = *ring->Seal(KeyPurpose::kData, "phi", "aad", &version);
  EXPECT_FALSE(ring->Open(KeyPurpose::kAudit, version, sealed, "aad").ok());

  std::set<std::string> subkeys;
  for (KeyPurpose purpose :
       {KeyPurpose::kData, KeyPurpose::kBlindIndex, KeyPurpose::kTokens, KeyPurpose::kAudit}) {
    Result<std::string> subkey = ring->Subkey(purpose, version);
    ASSERT_TRUE(subkey.ok());
    EXPECT_EQ(subkey->size(), kKeyBytes);
    subkeys.insert(*subkey);
  }
  EXPECT_EQ(subkeys.size(), 4u);
}

TEST_F(KeyringTest, SubkeysAreStableAcrossReopenAndDifferPerVersion) {
  std::unique_ptr<Keyring> ring = Make(2);
  std::unique_ptr<Keyring> reopened = std::move(Keyring::Open(kek_, stored_)).value();
  EXPECT_EQ(*ring->Subkey(KeyPurpose::kBlindIndex, 1),
            *reopened->Subkey(KeyPurpose::kBlindIndex, 1));
  EXPECT_NE(*ring->Subkey(KeyPurpose::kBlindIndex, 1), *ring->Subkey(KeyPurpose::kBlindIndex, 2));
}

TEST_F(KeyringTest, UnknownVersionIsInternalError) {
  std::unique_ptr<Keyring> ring = Make(1);
  uint32_t version = 0;
  std::string sealed = *ring->Seal(KeyPurpose::kData, "phi", "aad", &version);
  Result<std::string> opened = ring->Open(KeyPurpose::kData, 7, sealed, "aad");
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kInternal);
  EXPECT_EQ(opened.status().message(), "unknown key version");
  EXPECT_EQ(ring->Subkey(KeyPurpose::kData, 7).status().message(), "unknown key version");
}

TEST_F(KeyringTest, WrongKekRefusesToOpen) {
  Make(2);
  Result<std::unique_ptr<Keyring>> ring = Keyring::Open(RandomBytes(kKeyBytes), stored_);
  ASSERT_FALSE(ring.ok());
  EXPECT_EQ(ring.status().message(), "key-encryption key does not match the stored data keys");
}

TEST_F(KeyringTest, WrappedKeyCannotBeRelabelled) {
  Make(2);
  std::swap(stored_[0].version, stored_[1].version);
  EXPECT_FALSE(Keyring::Open(kek_, stored_).ok());
}

TEST_F(KeyringTest, KekOfWrongLengthIsRefused) {
  Result<std::unique_ptr<Keyring>> ring = Keyring::Open(std::string(16, 'k'), {});
  ASSERT_FALSE(ring.ok());
  EXPECT_EQ(ring.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace phigate::crypto
