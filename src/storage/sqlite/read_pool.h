// ReadPool: a fixed set of read-only connections handed out one caller at a time.
//
// In WAL mode readers do not block the writer or each other, so N read connections let N
// threads read at once while the single write connection commits. A connection is not
// thread-safe (see connection.h), hence the lease: whoever holds it is its only user.
// Thread-safety: Acquire may be called from any thread; mutex_ guards idle_.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "core/status.h"
#include "storage/sqlite/connection.h"

namespace phigate::storage::sqlite {

class ReadPool {
 public:
  // Exclusive use of one connection; returns it to the pool when destroyed.
  class Lease {
   public:
    Lease(ReadPool* pool, Connection* connection) : pool_(pool), connection_(connection) {}
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();
    Connection& operator*() const { return *connection_; }
    Connection* operator->() const { return connection_; }

   private:
    ReadPool* pool_;
    Connection* connection_;  // null once moved from
  };

  explicit ReadPool(std::vector<std::unique_ptr<Connection>> connections);
  ReadPool(const ReadPool&) = delete;
  ReadPool& operator=(const ReadPool&) = delete;
  // Every lease must have been returned (the store outlives its callers).
  ~ReadPool();

  // Waits up to `timeout` for an idle connection; kUnavailable if none frees up, so an
  // overloaded store sheds load instead of queueing without bound.
  Result<Lease> Acquire(std::chrono::milliseconds timeout);

 private:
  void Release(Connection* connection);

  const std::vector<std::unique_ptr<Connection>> connections_;  // owned; fixed after ctor
  std::mutex mutex_;                                            // guards idle_
  std::condition_variable idle_cv_;  // signalled when idle_ gains a connection
  std::vector<Connection*> idle_;
};

}  // namespace phigate::storage::sqlite
