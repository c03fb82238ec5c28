#include "auth/qr_svg.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace phigate::auth {
namespace {

// The n in viewBox="0 0 n n".
int ViewBoxSize(const std::string& svg) {
  const std::string_view prefix = R"(viewBox="0 0 )";
  const size_t at = svg.find(prefix);
  if (at == std::string::npos) return -1;
  return std::stoi(svg.substr(at + prefix.size()));
}

size_t Count(const std::string& haystack, std::string_view needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

void ExpectInvalid(const Result<std::string>& r, std::string_view message) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), message);
}

// "hello" fits a version-1 symbol (21 x 21 modules) at level M; with the 4-module quiet
// zone on each side the picture is 29 modules wide.
TEST(QrCodeSvgTest, Version1SizeAndStructure) {
  Result<std::string> svg = QrCodeSvg("hello", 1);
  ASSERT_TRUE(svg.ok()) << svg.status().message();
  EXPECT_TRUE(svg->starts_with(R"(<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 29 29")"))
      << *svg;
  EXPECT_NE(svg->find(R"( width="29" height="29" role="img" aria-label="QR code")"),
            std::string::npos);
  EXPECT_NE(svg->find(R"(<rect width="29" height="29" fill="#fff"/>)"), std::string::npos);
  EXPECT_TRUE(svg->ends_with(R"("/></svg>)"));
  EXPECT_EQ(Count(*svg, "<path"), 1u);
  // The top-left finder pattern's first row is 7 dark modules, just inside the quiet zone,
  // and is the first run drawn; the bottom-left finder's last row starts row 20.
  EXPECT_NE(svg->find(R"(d="M4 4h7v1h-7z)"), std::string::npos) << *svg;
  EXPECT_NE(svg->find("M4 24h7v1h-7z"), std::string::npos) << *svg;
  // Nothing is drawn in the quiet zone.
  EXPECT_EQ(svg->find("M0 "), std::string::npos);
  EXPECT_EQ(svg->find("M3 "), std::string::npos);
  EXPECT_EQ(svg->find(" 3h"), std::string::npos);
  EXPECT_EQ(svg->find(" 25h"), std::string::npos);
  // No script, no external reference: the page's CSP stays default-src 'none'.
  EXPECT_EQ(svg->find("<script"), std::string::npos);
  EXPECT_EQ(svg->find("href"), std::string::npos);
}

TEST(QrCodeSvgTest, ModuleSizeScalesThePictureNotTheViewBox) {
  Result<std::string> svg = QrCodeSvg("hello", 4);
  ASSERT_TRUE(svg.ok()) << svg.status().message();
  EXPECT_EQ(ViewBoxSize(*svg), 29);
  EXPECT_NE(svg->find(R"( width="116" height="116")"), std::string::npos);
}

TEST(QrCodeSvgTest, OtpauthUriPicksALargerVersion) {
  const std::string uri =
      "otpauth://totp/phigate:alice%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
      "&issuer=phigate&algorithm=SHA1&digits=6&period=30";
  Result<std::string> svg = QrCodeSvg(uri);
  ASSERT_TRUE(svg.ok()) << svg.status().message();
  const int modules = ViewBoxSize(*svg) - 8;
  // A version-v symbol is 17 + 4v modules wide (ISO/IEC 18004 §6.3.1); 131 bytes at level
  // M need version 8 (49 modules), as version 7 holds 122.
  EXPECT_EQ(uri.size(), 131u);
  EXPECT_EQ(modules, 49);
  EXPECT_NE(svg->find(R"( width="228" height="228")"), std::string::npos);
}

TEST(QrCodeSvgTest, CaseIsKept) {
  // Case-sensitive 8-bit mode: different case, different symbol.
  Result<std::string> upper = QrCodeSvg("SECRET");
  Result<std::string> lower = QrCodeSvg("secret");
  ASSERT_TRUE(upper.ok() && lower.ok());
  EXPECT_NE(*upper, *lower);
  EXPECT_EQ(*upper, *QrCodeSvg("SECRET"));  // deterministic
}

TEST(QrCodeSvgTest, LongestAcceptedInput) {
  Result<std::string> svg = QrCodeSvg(std::string(1024, 'a'), 1);
  ASSERT_TRUE(svg.ok()) << svg.status().message();
  EXPECT_EQ((ViewBoxSize(*svg) - 8 - 17) % 4, 0);
}

TEST(QrCodeSvgTest, RefusesBadInput) {
  ExpectInvalid(QrCodeSvg(std::string(1025, 'a')), "QR code text is too long");
  ExpectInvalid(QrCodeSvg(""), "QR code text is empty");
  ExpectInvalid(QrCodeSvg(std::string("ab\0cd", 5)), "QR code text contains a NUL");
  ExpectInvalid(QrCodeSvg("hello", 0), "QR code module size must be 1 to 64 pixels");
  ExpectInvalid(QrCodeSvg("hello", 65), "QR code module size must be 1 to 64 pixels");
}

}  // namespace
}  // namespace phigate::auth
