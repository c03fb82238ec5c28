#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/base64.h"
#include "crypto/crypto.h"
#include "crypto/hex.h"

namespace phigate::crypto {
namespace {

using ::phigate::testing::FromHex;

// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", Appendix B, test cases
// 13-16 (256-bit keys), as republished in the NIST GCM validation vectors.
struct GcmVector {
  const char* name;
  const char* key;
  const char* iv;
  const char* plaintext;
  const char* aad;
  const char* ciphertext;
  const char* tag;
};

constexpr char kKey15[] = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
constexpr char kIv15[] = "cafebabefacedbaddecaf888";

const GcmVector kVectors[] = {
    {"case13_empty", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"case14_zero_block", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "00000000000000000000000000000000", "",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"case15_no_aad", kKey15, kIv15,
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
     "",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"case16_with_aad", kKey15, kIv15,
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

class GcmKnownAnswerTest : public ::testing::TestWithParam<GcmVector> {};

TEST_P(GcmKnownAnswerTest, SealProducesExactCiphertextAndTag) {
  const GcmVector& v = GetParam();
  Result<std::string> out =
      SealWithNonce(FromHex(v.key), FromHex(v.iv), FromHex(v.plaintext), FromHex(v.aad));
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(HexEncode(*out), std::string(v.ciphertext) + v.tag);
}

TEST_P(GcmKnownAnswerTest, OpenRecoversPlaintext) {
  const GcmVector& v = GetParam();
  Result<std::string> out = OpenWithNonce(
      FromHex(v.key), FromHex(v.iv), FromHex(std::string(v.ciphertext) + v.tag), FromHex(v.aad));
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(HexEncode(*out), v.plaintext);
}

INSTANTIATE_TEST_SUITE_P(McGrewViega, GcmKnownAnswerTest, ::testing::ValuesIn(kVectors),
                         [](const auto& test) { return std::string(test.param.name); });

class AeadTest : public ::testing::Test {
 protected:
  const std::string key_ = RandomBytes(kKeyBytes);
  const std::string plaintext_ = "{\"resourceType\":\"Patient\",\"id\":\"p1\"}";
  const std::string aad_ = "Patient/p1/_history/1";

  void ExpectOpenFails(std::string_view key, std::string_view sealed, std::string_view aad) {
    Result<std::string> out = Open(key, sealed, aad);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kInternal);
    EXPECT_EQ(out.status().message(), "decryption failed");
  }
};

TEST_F(AeadTest, RoundTripHasNoncePrefixAndTagSuffix) {
  Result<std::string> sealed = Seal(key_, plaintext_, aad_);
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->size(), kNonceBytes + plaintext_.size() + kTagBytes);
  Result<std::string> opened = Open(key_, *sealed, aad_);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, plaintext_);
}

TEST_F(AeadTest, EmptyPlaintextRoundTrips) {
  Result<std::string> sealed = Seal(key_, "", "");
  ASSERT_TRUE(sealed.ok());
  Result<std::string> opened = Open(key_, *sealed, "");
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, "");
}

TEST_F(AeadTest, SealingTwiceGivesDifferentOutputs) {
  Result<std::string> a = Seal(key_, plaintext_, aad_);
  Result<std::string> b = Seal(key_, plaintext_, aad_);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_NE(a->substr(0, kNonceBytes), b->substr(0, kNonceBytes));
}

TEST_F(AeadTest, FlippedBitInNonceFails) {
  std::string sealed = *Seal(key_, plaintext_, aad_);
  sealed[0] ^= 0x01;
  ExpectOpenFails(key_, sealed, aad_);
}

TEST_F(AeadTest, FlippedBitInCiphertextFails) {
  std::string sealed = *Seal(key_, plaintext_, aad_);
  sealed[kNonceBytes + 3] ^= 0x80;
  ExpectOpenFails(key_, sealed, aad_);
}

TEST_F(AeadTest, FlippedBitInTagFails) {
  std::string sealed = *Seal(key_, plaintext_, aad_);
  sealed.back() ^= 0x01;
  ExpectOpenFails(key_, sealed, aad_);
}

TEST_F(AeadTest, WrongAadFails) {
  std::string sealed = *Seal(key_, plaintext_, aad_);
  ExpectOpenFails(key_, sealed, "Patient/p2/_history/1");
  ExpectOpenFails(key_, sealed, "");
}

TEST_F(AeadTest, WrongKeyFails) {
  std::string sealed = *Seal(key_, plaintext_, aad_);
  ExpectOpenFails(RandomBytes(kKeyBytes), sealed, aad_);
}

TEST_F(AeadTest, TruncatedInputFails) {
  std::string sealed = *Seal(key_, plaintext_, aad_);
  ExpectOpenFails(key_, sealed.substr(0, sealed.size() - 1), aad_);
  ExpectOpenFails(key_, sealed.substr(0, kNonceBytes + kTagBytes - 1), aad_);
  ExpectOpenFails(key_, "", aad_);
}

TEST_F(AeadTest, WrongKeyLengthIsInvalidArgument) {
  Result<std::string> sealed = Seal(std::string(16, 'k'), plaintext_, aad_);
  ASSERT_FALSE(sealed.ok());
  EXPECT_EQ(sealed.status().code(), StatusCode::kInvalidArgument);
  Result<std::string> opened = Open(std::string(33, 'k'), *Seal(key_, plaintext_, aad_), aad_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument);
}

// The prepared key's output is crypto::Seal's: what one seals the other opens, and the
// known answers hold with the nonce that Seal chose.
TEST_F(AeadTest, PreparedKeySealsWhatOpenOpensWithAFreshNonceEachTime) {
  Result<std::unique_ptr<AesGcmKey>> prepared = AesGcmKey::Create(key_);
  ASSERT_TRUE(prepared.ok());
  std::vector<std::string> nonces;
  for (int i = 0; i < 200; ++i) {
    // Different lengths and AADs on one context: each message stands alone.
    const std::string plaintext = plaintext_.substr(0, static_cast<size_t>(i) % plaintext_.size());
    const std::string aad = "audit/" + std::to_string(i);
    Result<std::string> sealed = (*prepared)->Seal(plaintext, aad);
    ASSERT_TRUE(sealed.ok());
    ASSERT_EQ(sealed->size(), kNonceBytes + plaintext.size() + kTagBytes);
    Result<std::string> opened = Open(key_, *sealed, aad);
    ASSERT_TRUE(opened.ok()) << i;
    EXPECT_EQ(*opened, plaintext);
    ExpectOpenFails(key_, *sealed, aad + "x");
    // Equal to sealing with the one-shot function under the nonce it used.
    Result<std::string> expected =
        SealWithNonce(key_, sealed->substr(0, kNonceBytes), plaintext, aad);
    ASSERT_TRUE(expected.ok());
    EXPECT_EQ(sealed->substr(kNonceBytes), *expected);
    nonces.push_back(sealed->substr(0, kNonceBytes));
  }
  std::sort(nonces.begin(), nonces.end());
  EXPECT_EQ(std::unique(nonces.begin(), nonces.end()), nonces.end());
}

TEST_F(AeadTest, PreparedKeyNeedsA32ByteKey) {
  for (size_t size : {0, 16, 31, 33}) {
    Result<std::unique_ptr<AesGcmKey>> prepared = AesGcmKey::Create(std::string(size, 'k'));
    ASSERT_FALSE(prepared.ok());
    EXPECT_EQ(prepared.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(prepared.status().message(), "AES-256-GCM key must be 32 bytes");
  }
}

TEST_F(AeadTest, ErrorsNeverContainKeyMaterial) {
  Result<std::string> opened = Open(key_, std::string(64, 'x'), aad_);
  ASSERT_FALSE(opened.ok());
  EXPECT_THAT(opened.status().message(), ::testing::Not(::testing::HasSubstr(key_)));
  EXPECT_THAT(opened.status().message(), ::testing::Not(::testing::HasSubstr(HexEncode(key_))));
}

}  // namespace
}  // namespace phigate::crypto
