// QR code rendering (libqrencode) as an inline SVG element, so the enrollment page needs
// no external asset and no image request: the page's Content-Security-Policy can stay
// default-src 'none'.
// Thread-safety: a pure function (libqrencode's QRcode_encodeString is reentrant).
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace phigate::auth {

// <svg xmlns=... viewBox=... width=... height=... role="img" aria-label="QR code">
// with one <path> of the dark modules (error correction level M, 4-module quiet zone,
// `module_px` pixels per module). kInvalidArgument if `text` is empty or too long to
// encode (over 1024 bytes).
Result<std::string> QrCodeSvg(std::string_view text, int module_px = 4);

}  // namespace phigate::auth
