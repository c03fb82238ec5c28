// TOTP (RFC 6238) as authenticator apps implement it: HMAC-SHA-1, 6 digits, 30-second
// steps from the Unix epoch (T0 = 0), and the otpauth:// URI those apps scan
// (Key Uri Format: otpauth://totp/<issuer>:<account>?secret=..&issuer=..&algorithm=SHA1
// &digits=6&period=30).
//
// Single use (RFC 6238 §5.2): Verify takes the highest time step already accepted for the
// account and accepts only a later one, so a code cannot be replayed within its window;
// the caller stores the returned step.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace phigate::auth {

inline constexpr int64_t kTotpStepS = 30;
inline constexpr int kTotpDigits = 6;
inline constexpr size_t kTotpSecretBytes = 20;  // 160 bits, RFC 4226 §4 R6

// RFC 4648 §6 base32, upper case, without padding (as otpauth URIs carry it).
std::string Base32Encode(std::string_view bytes);
// Accepts upper or lower case, optional '=' padding; kInvalidArgument otherwise.
Result<std::string> Base32Decode(std::string_view text);

// The 6-digit code (zero-padded) for time step `step` (RFC 4226 §5.3 dynamic truncation).
std::string TotpCode(std::string_view secret, int64_t step);
inline int64_t TotpStep(int64_t unix_seconds) { return unix_seconds / kTotpStepS; }

// Checks `code` against steps now-window .. now+window (window 1 = ±30 s, RFC 6238 §5.2
// "at most one time step" of delay). Returns the matched step if the code matches a
// step greater than `last_used_step`; nullopt otherwise (wrong, malformed — anything but
// exactly 6 ASCII digits — outside the window, or replayed). Comparison is constant-time
// per candidate. `window` is clamped to 0..10.
std::optional<int64_t> VerifyTotp(std::string_view secret, std::string_view code,
                                  int64_t unix_seconds, int64_t last_used_step, int window = 1);

// otpauth://totp/ URI; issuer and account are percent-encoded. `secret` is the raw secret
// (as for TotpCode); the URI carries it base32-encoded.
std::string TotpUri(std::string_view issuer, std::string_view account, std::string_view secret);

}  // namespace phigate::auth
