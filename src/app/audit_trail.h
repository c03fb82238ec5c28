// The audit trail of a data directory (issue 5; docs/audit.md): <data_dir>/audit, its
// AuditLog (group commit, fail closed), the checkpoint signer with the audit signing key
// (keys.audit_signing_key_file), the sink the pipeline and the commands record through,
// and a second Directory for the readers (search, disclosures, export).
//
// Test builds (PHIGATE_TEST_HOOKS) wrap the directory in audit::FaultDirectory when the
// PHIGATE_TEST_AUDIT_FAULTS environment variable names a control file.
// Thread-safety: start-up code; the members are thread-safe as documented in audit/.
#pragma once

#include <memory>
#include <string>

#include "audit/audit_log.h"
#include "audit/event.h"
#include "audit/sink.h"
#include "core/clock.h"
#include "core/config.h"
#include "crypto/keyring.h"

namespace phigate::app {

struct AuditTrail {
  std::unique_ptr<audit::AuditLog> log;
  std::unique_ptr<audit::AuditSink> sink;
  std::unique_ptr<audit::Directory> reader;
};

enum class AuditTrailUse {
  kServe,    // checkpoints signed by this process
  kCommand,  // a short-lived command appending a few records (shares the chain: audit_log.h)
};

// Throws StartupError naming the directory or key file.
AuditTrail OpenAuditTrail(const Config& config, const crypto::Keyring& keyring, const Clock& clock,
                          AuditTrailUse use);

// The audit directory of a data dir.
std::string AuditDirectory(const Config& config);

// Records one administrative action of a command (`phigate users add`, ...): kind
// administration, address "cli". Fail closed: throws std::runtime_error if it cannot be
// made durable (the command then exits 1 and says so).
void RecordCommand(AuditTrail& trail, const Clock& clock, audit::Event event);

}  // namespace phigate::app
