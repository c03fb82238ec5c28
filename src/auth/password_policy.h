// The password policy of the built-in authorization server (NIST SP 800-63B §5.1.1.2,
// "Memorized Secret Verifiers"): a length floor and ceiling counted in Unicode code
// points, every character allowed, no composition rules (they make passwords worse, not
// stronger), and a refusal of passwords that are commonly used or contain the username.
//
// Errors name the rule that failed and never echo the password.
// Thread-safety: pure functions over a constant list.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "core/status.h"

namespace phigate::auth {

// SP 800-63B §5.1.1.2: verifiers "SHOULD permit ... at least 64 characters"; 128 keeps
// the Argon2id input bounded while leaving room for long passphrases.
inline constexpr size_t kMaxPasswordCodePoints = 128;

// Number of code points of UTF-8 `text` (RFC 3629); nullopt for invalid UTF-8 (overlong
// forms, surrogates, code points above U+10FFFF, truncated or stray continuation bytes).
std::optional<size_t> CountCodePoints(std::string_view text);

// True if `password` (compared case-insensitively over ASCII) is on the built-in list of
// commonly used passwords.
bool IsCommonPassword(std::string_view password);

// kInvalidArgument naming the rule: invalid UTF-8, too short (fewer than `min_length`
// code points), too long, contains the username (case-insensitive), or commonly used.
// `username` is the normalized (lower-case) username; empty skips that rule.
Status CheckPasswordPolicy(std::string_view password, std::string_view username, int min_length);

}  // namespace phigate::auth
