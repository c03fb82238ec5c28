// Secret files on disk: the key-encryption key and PEM private keys.
//
// A secret file must be a regular file not readable, writable or executable by group or
// other (mode & 077 == 0); anything else is refused with a message naming the file.
// Thread-safety: stateless functions.
#pragma once

#include <string>

#include "core/status.h"

namespace phigate::crypto {

// Checks existence, type and permissions. kPermissionDenied names the path on "too open".
Status CheckSecretFile(const std::string& path);
// Reads a secret file after CheckSecretFile.
Result<std::string> ReadSecretFile(const std::string& path);
// Creates `path` with mode 0600 (O_EXCL: never overwrites) and writes `contents`, fsynced.
Status WriteSecretFile(const std::string& path, const std::string& contents);

// The 256-bit key-encryption key: exactly 32 raw bytes in a 0600 file.
Result<std::string> LoadKek(const std::string& path);
Status CreateKek(const std::string& path);

}  // namespace phigate::crypto
