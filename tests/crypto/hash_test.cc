#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "core/base64.h"
#include "crypto/crypto.h"
#include "crypto/hex.h"

namespace phigate::crypto {
namespace {

using ::phigate::testing::FromHex;

// FIPS 180-2 Appendix B.1.
TEST(Sha256Test, Abc) {
  EXPECT_EQ(HexEncode(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, Empty) {
  EXPECT_EQ(HexEncode(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

// RFC 4231 §4.3, test case 2 (a key shorter than the block size).
TEST(HmacSha256Test, Rfc4231Case2) {
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// The prepared key gives the one-shot function's MACs, for short, block-sized and long
// (hashed) keys, and for repeated and concurrent use.
TEST(HmacSha256KeyTest, EqualsOneShotHmacForEveryKeyLength) {
  for (size_t key_size : {size_t{0}, size_t{4}, size_t{32}, size_t{64}, size_t{65}, size_t{131}}) {
    const std::string key(key_size, static_cast<char>(0xaa));
    HmacSha256Key prepared(key);
    for (std::string data :
         {std::string(), std::string("what do ya want for nothing?"), std::string(1000, 'x')}) {
      EXPECT_EQ(prepared.Mac(data), HmacSha256(key, data)) << key_size;
      EXPECT_EQ(prepared.Mac(data), HmacSha256(key, data)) << "again " << key_size;
    }
  }
  EXPECT_EQ(HexEncode(HmacSha256Key("Jefe").Mac("what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  HmacSha256Key shared("k");
  const std::string expected = HmacSha256("k", "m");
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) mismatches += shared.Mac("m") != expected;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(HmacSha256Test, EmptyKeyIsAllowed) { EXPECT_EQ(HmacSha256("", "data").size(), 32u); }

// RFC 2202 §3, all seven HMAC-SHA-1 test cases: short and long keys (case 6 and 7 are
// longer than the 64-byte block and are hashed first), and data longer than a block.
struct HmacSha1Vector {
  std::string key;
  std::string data;
  const char* hex;
};

TEST(HmacSha1Test, Rfc2202Vectors) {
  const HmacSha1Vector vectors[] = {
      {std::string(20, '\x0b'), "Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"},
      {"Jefe", "what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
      {std::string(20, '\xaa'), std::string(50, '\xdd'),
       "125d7342b9ac11cd91a39af48aa17b4f63f175d3"},
      {FromHex("0102030405060708090a0b0c0d0e0f10111213141516171819"), std::string(50, '\xcd'),
       "4c9007f4026250c6bc8414f9bf50c86c2d7235da"},
      {std::string(20, '\x0c'), "Test With Truncation", "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"},
      {std::string(80, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First",
       "aa4ae5e15272d00e95705637ce8a3b55ed402112"},
      {std::string(80, '\xaa'),
       "Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
       "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"},
  };
  int index = 1;
  for (const HmacSha1Vector& v : vectors) {
    EXPECT_EQ(HexEncode(HmacSha1(v.key, v.data)), v.hex) << "RFC 2202 case " << index;
    ++index;
  }
}

TEST(HmacSha1Test, EmptyKeyAndDataAreAllowed) { EXPECT_EQ(HmacSha1("", "").size(), 20u); }

// RFC 5869 Appendix A.1, test case 1.
TEST(HkdfSha256Test, Rfc5869Case1) {
  std::string okm =
      HkdfSha256(FromHex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
                 FromHex("000102030405060708090a0b0c"), FromHex("f0f1f2f3f4f5f6f7f8f9"), 42);
  EXPECT_EQ(HexEncode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

// RFC 5869 Appendix A.3, test case 3: empty salt and info, which the keyring relies on.
TEST(HkdfSha256Test, Rfc5869Case3EmptySaltAndInfo) {
  std::string okm = HkdfSha256(FromHex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"), "", "", 42);
  EXPECT_EQ(HexEncode(okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

TEST(ConstantTimeEqualsTest, ComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", ""));
}

}  // namespace
}  // namespace phigate::crypto
