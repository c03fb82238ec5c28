// FaultDirectory: a Directory that forwards to a real one but fails or stalls segment
// writes on command, so that integration tests can make the audit trail of the real
// binary fail (issue 5 §6: injected write failure, fsync failure, a stalled writer).
// The command is the first word of a control file, read before every write and sync:
//   "write"  -> Append fails (as EIO would)
//   "fsync"  -> Sync fails
//   "stall"  -> Append and Sync wait until the file says something else (at most 30 s)
//   anything else, or no file -> pass through.
// The server uses it only in builds with PHIGATE_TEST_HOOKS and only when the
// PHIGATE_TEST_AUDIT_FAULTS environment variable names the control file.
// Thread-safety: as the wrapped Directory (used by the AuditLog writer thread).
#pragma once

#include <memory>
#include <string>

#include "audit/audit_log.h"

namespace phigate::audit {

std::unique_ptr<Directory> FaultDirectory(std::unique_ptr<Directory> real,
                                          std::string control_file);

}  // namespace phigate::audit
