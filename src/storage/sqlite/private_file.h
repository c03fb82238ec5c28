// Owner-only database files: the database, and the -wal/-shm files beside it, hold
// ciphertext plus plaintext metadata (types, ids, timestamps) and must not be readable by
// the group or others (HIPAA §164.312(a)(1) access control), whatever the process umask.
//
// These functions never open an existing file. SQLite's locks are POSIX fcntl locks, and
// close() on *any* descriptor for a file drops every such lock this process holds on it
// (https://www.sqlite.org/howtocorrupt.html §2.2). Opening and closing the database or its
// -shm file while another Store in this process has it open would silently release that
// Store's locks, letting another process rebuild the WAL index or delete the WAL under it.
// Thread-safety: stateless functions.
#pragma once

#include <string>

#include "core/status.h"

namespace phigate::storage::sqlite {

// Creates `path` with mode 0600 if it does not exist (and fsyncs the parent directory so
// the new entry survives a crash), or tightens an existing file to 0600. Refuses a symlink
// or a non-regular file at `path`.
Status EnsurePrivateFile(const std::string& path);

// Tightens `path` to 0600 if it exists and is group/other accessible; no-op if it does not
// exist. Used for the SQLite -wal and -shm files, which SQLite creates itself.
Status RestrictIfExists(const std::string& path);

}  // namespace phigate::storage::sqlite
