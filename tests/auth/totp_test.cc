#include "auth/totp.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace phigate::auth {
namespace {

// RFC 6238 Appendix B: the SHA-1 seed is the ASCII string "12345678901234567890".
constexpr std::string_view kRfcSecret = "12345678901234567890";

// --- Base32 (RFC 4648) --------------------------------------------------------------------

// RFC 4648 §10, without the padding (as otpauth URIs carry it).
TEST(Base32Test, Rfc4648Section10Vectors) {
  const std::pair<std::string_view, std::string_view> vectors[] = {
      {"", ""},
      {"f", "MY"},
      {"fo", "MZXQ"},
      {"foo", "MZXW6"},
      {"foob", "MZXW6YQ"},
      {"fooba", "MZXW6YTB"},
      {"foobar", "MZXW6YTBOI"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base32Encode(plain), encoded) << plain;
    Result<std::string> decoded = Base32Decode(encoded);
    ASSERT_TRUE(decoded.ok()) << encoded;
    EXPECT_EQ(*decoded, plain);
  }
}

TEST(Base32Test, DecodesPaddedAndLowerCase) {
  const std::pair<std::string_view, std::string_view> padded[] = {
      {"f", "MY======"},        {"fo", "MZXQ===="},
      {"foo", "MZXW6==="},      {"foob", "MZXW6YQ="},
      {"fooba", "MZXW6YTB"},    {"foobar", "MZXW6YTBOI======"},
      {"foobar", "mzxw6ytboi"}, {"foobar", "mZxW6yTbOi======"},
  };
  for (const auto& [plain, encoded] : padded) {
    Result<std::string> decoded = Base32Decode(encoded);
    ASSERT_TRUE(decoded.ok()) << encoded;
    EXPECT_EQ(*decoded, plain) << encoded;
  }
}

TEST(Base32Test, RefusesMalformedText) {
  for (std::string_view bad : {
           "M",                 // a length no byte count produces
           "MZX",               // likewise (3 mod 8)
           "MZXW6Y",            // likewise (6 mod 8)
           "MZ",                // leftover bits not zero: a second spelling of "f"
           "MY=",               // padding to a length that is not a multiple of 8
           "MZXW6YTB========",  // padding after a full quantum
           "MY==============",  // more than one quantum of padding
           "MY1=====",          // '1' is not in the alphabet
           "MZ XQ",             // whitespace
           "MZ=XQ===",          // padding in the middle
       }) {
    Result<std::string> r = Base32Decode(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(r.status().message(), "invalid base32") << bad;
  }
}

TEST(Base32Test, RoundTripsEveryLengthAndByte) {
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    bytes += static_cast<char>((i * 131 + 7) & 0xFF);
    Result<std::string> decoded = Base32Decode(Base32Encode(bytes));
    ASSERT_TRUE(decoded.ok()) << i;
    EXPECT_EQ(*decoded, bytes) << i;
  }
}

// --- Codes (RFC 4226 / RFC 6238) ----------------------------------------------------------

// RFC 6238 Appendix B, SHA-1 rows: our 6-digit code is the last 6 digits of the RFC's
// 8-digit value (the truncated number is the same; only the modulus differs).
TEST(TotpCodeTest, Rfc6238AppendixBSha1) {
  const std::pair<int64_t, std::string_view> vectors[] = {
      {59, "287082"},         {1111111109, "081804"}, {1111111111, "050471"},
      {1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"},
  };
  for (const auto& [time, code] : vectors) {
    EXPECT_EQ(TotpCode(kRfcSecret, TotpStep(time)), code) << time;
    // And the verifier accepts exactly that code at that time, returning its step.
    EXPECT_EQ(VerifyTotp(kRfcSecret, code, time, -1), TotpStep(time)) << time;
  }
}

TEST(TotpCodeTest, StepsAreThirtySecondsFromTheEpoch) {
  EXPECT_EQ(TotpStep(0), 0);
  EXPECT_EQ(TotpStep(29), 0);
  EXPECT_EQ(TotpStep(30), 1);
  EXPECT_EQ(TotpStep(59), 1);
  EXPECT_EQ(TotpStep(1111111109), 37037036);
}

// --- Verification -------------------------------------------------------------------------

class VerifyTotpTest : public ::testing::Test {
 protected:
  static constexpr int64_t kNow = 1111111111;  // step 37037037, 1 s into the step
  const int64_t step_ = TotpStep(kNow);
  std::string Code(int64_t step) const { return TotpCode(kRfcSecret, step); }
};

TEST_F(VerifyTotpTest, AcceptsTheCurrentStep) {
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_), kNow, 0), step_);
}

TEST_F(VerifyTotpTest, WindowOfOneAcceptsAdjacentStepsOnly) {
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_ - 1), kNow, 0), step_ - 1);
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_ + 1), kNow, 0), step_ + 1);
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_ - 2), kNow, 0), std::nullopt);
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_ + 2), kNow, 0), std::nullopt);
}

TEST_F(VerifyTotpTest, WindowEdgesFollowTheClock) {
  // The last second of the step: step+1's code is one step ahead, still accepted; the
  // first second of step+1 makes step-1 two steps old.
  const int64_t last_second = step_ * kTotpStepS + kTotpStepS - 1;
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_ - 1), last_second, 0), step_ - 1);
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_ - 1), last_second + 1, 0), std::nullopt);
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_ + 2), last_second + 1, 0), step_ + 2);
}

TEST_F(VerifyTotpTest, WindowZeroAndWiderWindows) {
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_), kNow, 0, 0), step_);
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_ - 1), kNow, 0, 0), std::nullopt);
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_ + 1), kNow, 0, 0), std::nullopt);
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_ - 2), kNow, 0, 2), step_ - 2);
  // A negative window is window 0, never "everything".
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_), kNow, 0, -5), step_);
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_ - 1), kNow, 0, -5), std::nullopt);
  // A huge window is clamped to 10 steps.
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_ - 10), kNow, 0, 1000), step_ - 10);
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_ - 11), kNow, 0, 1000), std::nullopt);
}

TEST_F(VerifyTotpTest, ReplayOfTheSameStepIsRefused) {
  const std::optional<int64_t> first = VerifyTotp(kRfcSecret, Code(step_), kNow, 0);
  ASSERT_EQ(first, step_);
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_), kNow, *first), std::nullopt);
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_), kNow + 20, *first), std::nullopt);
}

TEST_F(VerifyTotpTest, OlderStepAfterANewerOneIsRefused) {
  // step+1 was used (a fast clock); step's code, though within the window, is older.
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_), kNow, step_ + 1), std::nullopt);
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_ - 1), kNow, step_), std::nullopt);
  // The next step is still accepted.
  EXPECT_EQ(VerifyTotp(kRfcSecret, Code(step_ + 1), kNow, step_), step_ + 1);
}

TEST_F(VerifyTotpTest, WrongCodeIsRefused) {
  std::string wrong = Code(step_);
  wrong[5] = wrong[5] == '9' ? '0' : static_cast<char>(wrong[5] + 1);
  EXPECT_EQ(VerifyTotp(kRfcSecret, wrong, kNow, 0), std::nullopt);
  EXPECT_EQ(VerifyTotp("another secret......", Code(step_), kNow, 0), std::nullopt);
}

TEST_F(VerifyTotpTest, MalformedCodesAreRefused) {
  const std::string good = Code(step_);
  for (const std::string& bad :
       {std::string("12345"), std::string("1234567"), std::string("12a456"), std::string(" 123456"),
        std::string("123456 "), std::string(""), good.substr(0, 5), good + "0",
        " " + good.substr(1), "+" + good.substr(1), "-" + good.substr(1),
        good.substr(0, 5) + std::string(1, '\0'),
        std::string("\xef\xbc\x91") + good.substr(3)}) {  // a full-width digit
    EXPECT_EQ(VerifyTotp(kRfcSecret, bad, kNow, 0), std::nullopt) << '"' << bad << '"';
  }
}

// --- otpauth URI --------------------------------------------------------------------------

TEST(TotpUriTest, ExactUriForAFixedSecret) {
  EXPECT_EQ(TotpUri("phigate", "alice@example.org", kRfcSecret),
            "otpauth://totp/phigate:alice%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
            "&issuer=phigate&algorithm=SHA1&digits=6&period=30");
}

TEST(TotpUriTest, IssuerAndAccountArePercentEncoded) {
  EXPECT_EQ(TotpUri("Acme Health: FHIR", "bob/x?&=", "\x01\x02"),
            "otpauth://totp/Acme%20Health%3A%20FHIR:bob%2Fx%3F%26%3D?secret=AEBA"
            "&issuer=Acme%20Health%3A%20FHIR&algorithm=SHA1&digits=6&period=30");
}

}  // namespace
}  // namespace phigate::auth
