// AuditSink: the narrow seam between the request pipeline (and the CLI) and the audit
// trail (issue 5 §2; STYLE.md "narrow seams"). Record returns only once the event is
// durable, or fails; the pipeline then fails the request closed (503).
//
// TrailSink is the real one: it encodes the event (EncodeEvent), computes its lookup tags
// (EventTags under the current keyring version's tag key) and appends both to an AuditLog.
// NullAuditSink exists for the benchmark build only (PHIGATE_BENCH_NO_AUDIT), to measure
// what the audit stage costs.
//
// Thread-safety: Record and Healthy may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "audit/audit_log.h"
#include "audit/event.h"
#include "core/status.h"
#include "crypto/keyring.h"

namespace phigate::audit {

class AuditSink {
 public:
  virtual ~AuditSink() = default;
  // The event's seq once durable; kUnavailable "audit trail unavailable" otherwise.
  virtual Result<int64_t> Record(const Event& event) = 0;
  // The same without waiting: `done` gets Record's result exactly once, possibly on
  // another thread (the trail's writer); it must be quick. Default: Record, then done.
  virtual void RecordAsync(const Event& event, AppendCallback done) { done(Record(event)); }
  virtual bool Healthy() const = 0;
  // Group commit hint (AuditLog::RequestStarted): a request has started whose record may
  // come through RecordAsync; RequestEnded if it ends without one (RecordAsync ends it).
  virtual void RequestStarted() {}
  virtual void RequestEnded() {}
  // For /metrics: records and fsyncs so far (group commit: records per fsync).
  virtual AuditLogStats stats() const { return {}; }
};

class TrailSink : public AuditSink {
 public:
  // Both must outlive the sink.
  TrailSink(AuditLog& log, const crypto::Keyring& keyring) : log_(log), keyring_(keyring) {}
  Result<int64_t> Record(const Event& event) override;
  void RecordAsync(const Event& event, AppendCallback done) override;
  bool Healthy() const override { return log_.Healthy(); }
  void RequestStarted() override { log_.RequestStarted(); }
  void RequestEnded() override { log_.RequestEnded(); }
  AuditLogStats stats() const override { return log_.stats(); }

 private:
  // The rendered event and its tags under the current version's tag key (derived once per
  // key version, not per record).
  Result<std::pair<std::string, std::vector<std::string>>> Render(const Event& event);

  AuditLog& log_;
  const crypto::Keyring& keyring_;
  std::mutex key_mu_;
  uint32_t key_version_ = 0;                          // guarded by key_mu_; 0: none derived yet
  std::shared_ptr<const crypto::HmacSha256Key> key_;  // guarded by key_mu_
};

// Records nothing (benchmark build only).
class NullAuditSink : public AuditSink {
 public:
  Result<int64_t> Record(const Event&) override { return ++seq_; }
  bool Healthy() const override { return true; }

 private:
  std::atomic<int64_t> seq_{0};
};

}  // namespace phigate::audit
