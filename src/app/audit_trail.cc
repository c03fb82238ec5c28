#include "app/audit_trail.h"

#include <cstdlib>
#include <stdexcept>

#include "app/data_dir.h"
#include "audit/checkpoints.h"
#include "audit/fault_directory.h"

namespace phigate::app {

std::string AuditDirectory(const Config& config) { return config.data_dir + "/audit"; }

namespace {

std::unique_ptr<audit::Directory> OpenDirectory(const std::string& path) {
  auto dir = audit::PosixDirectory(path);
  if (!dir.ok()) throw StartupError(path + ": " + dir.status().message());
  return std::move(dir.value());
}

}  // namespace

AuditTrail OpenAuditTrail(const Config& config, const crypto::Keyring& keyring, const Clock& clock,
                          AuditTrailUse use) {
  const std::string path = AuditDirectory(config);
  std::unique_ptr<audit::Directory> dir = OpenDirectory(path);
#ifdef PHIGATE_TEST_HOOKS
  if (const char* control = std::getenv("PHIGATE_TEST_AUDIT_FAULTS"); control && *control) {
    dir = audit::FaultDirectory(std::move(dir), control);
  }
#endif
  audit::AuditLogOptions options;
  options.segment_bytes = config.audit.segment_bytes;
  options.append_deadline_ms = config.audit.append_deadline_ms;
  options.commit_interval_us = config.audit.commit_interval_us;
  std::unique_ptr<audit::CheckpointSigner> signer;
  if (use == AuditTrailUse::kServe) {
    auto key = audit::LoadOrCreateAuditSigningKey(config.keys.audit_signing_key_file);
    if (!key.ok()) {
      throw StartupError(config.keys.audit_signing_key_file + ": " + key.status().message());
    }
    audit::CheckpointOptions checkpoints;
    checkpoints.every_records = config.audit.checkpoint_every_records;
    checkpoints.every_ms = config.audit.checkpoint_every_ms;
    auto created = audit::CheckpointSigner::Create(std::move(key.value()), checkpoints);
    if (!created.ok()) throw StartupError("audit checkpoints: " + created.status().message());
    signer = std::move(created.value());
  }
  auto log = audit::AuditLog::Open(std::move(dir), keyring, clock, options, std::move(signer));
  if (!log.ok()) throw StartupError(path + ": " + log.status().message());
  AuditTrail trail;
  trail.log = std::move(log.value());
  trail.sink = std::make_unique<audit::TrailSink>(*trail.log, keyring);
  trail.reader = OpenDirectory(path);
  return trail;
}

void RecordCommand(AuditTrail& trail, const Clock& clock, audit::Event event) {
  event.kind = audit::EventKind::kAdministration;
  event.time_ms = clock.NowMillis();
  event.address = "cli";
  auto recorded = trail.sink->Record(event);
  if (!recorded.ok()) {
    // Not a start-up failure: main reports it as "phigate: error: ...", exit 1.
    throw std::runtime_error(
        "the audit trail is unavailable: this command's record could not "
        "be made durable (" +
        recorded.status().message() + "); check the disk of the data directory");
  }
}

}  // namespace phigate::app
