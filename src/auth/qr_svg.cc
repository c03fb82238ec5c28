#include "auth/qr_svg.h"

#include <qrencode.h>

#include <memory>

namespace phigate::auth {

namespace {

constexpr size_t kMaxQrTextBytes = 1024;
constexpr int kQuietZoneModules = 4;  // ISO/IEC 18004 §6.3.8: 4 modules on every side
constexpr int kMaxModulePx = 64;

}  // namespace

Result<std::string> QrCodeSvg(std::string_view text, int module_px) {
  if (text.empty()) return InvalidArgument("QR code text is empty");
  if (text.size() > kMaxQrTextBytes) return InvalidArgument("QR code text is too long");
  // libqrencode takes a C string: an embedded NUL would silently cut the text short.
  if (text.find('\0') != std::string_view::npos) {
    return InvalidArgument("QR code text contains a NUL");
  }
  if (module_px < 1 || module_px > kMaxModulePx) {
    return InvalidArgument("QR code module size must be 1 to 64 pixels");
  }
  const std::string c_text(text);
  // Version 0 lets libqrencode pick the smallest symbol; 8-bit mode, case-sensitive, keeps
  // the text byte for byte (an otpauth URI's secret and label are case-sensitive).
  std::unique_ptr<QRcode, decltype(&QRcode_free)> code(
      QRcode_encodeString(c_text.c_str(), 0, QR_ECLEVEL_M, QR_MODE_8, 1), QRcode_free);
  // The input is bounded above, so the only failure left is a text that does not fit a
  // version-40 symbol at level M (ERANGE), or memory exhaustion.
  if (!code) return InvalidArgument("QR code text is too long");

  const int width = code->width;
  const int size = width + 2 * kQuietZoneModules;
  const std::string size_text = std::to_string(size);
  const std::string px_text = std::to_string(size * module_px);
  std::string svg = R"(<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 )" + size_text + ' ' +
                    size_text + R"(" width=")" + px_text + R"(" height=")" + px_text +
                    R"(" role="img" aria-label="QR code" shape-rendering="crispEdges">)";
  // A light background, so the code scans on any page colour.
  svg += R"(<rect width=")" + size_text + R"(" height=")" + size_text + R"(" fill="#fff"/>)";
  svg += R"(<path fill="#000" d=")";
  // One sub-path per horizontal run of dark modules, in module units.
  for (int y = 0; y < width; ++y) {
    const unsigned char* row = code->data + static_cast<size_t>(y) * static_cast<size_t>(width);
    for (int x = 0; x < width;) {
      // Bit 0 of each byte is the module's colour (1 = dark); the others are libqrencode's
      // bookkeeping.
      if ((row[x] & 1) == 0) {
        ++x;
        continue;
      }
      int run = 1;
      while (x + run < width && (row[x + run] & 1) != 0) ++run;
      svg += 'M' + std::to_string(x + kQuietZoneModules) + ' ' +
             std::to_string(y + kQuietZoneModules) + 'h' + std::to_string(run) + "v1h-" +
             std::to_string(run) + 'z';
      x += run;
    }
  }
  svg += R"("/></svg>)";
  return svg;
}

}  // namespace phigate::auth
