#include "storage/sqlite/read_pool.h"

#include <cassert>
#include <utility>

#include "core/log.h"

namespace phigate::storage::sqlite {

ReadPool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), connection_(std::exchange(other.connection_, nullptr)) {}

ReadPool::Lease::~Lease() {
  if (connection_ != nullptr) pool_->Release(connection_);
}

ReadPool::ReadPool(std::vector<std::unique_ptr<Connection>> connections)
    : connections_(std::move(connections)) {
  idle_.reserve(connections_.size());
  for (const auto& connection : connections_) idle_.push_back(connection.get());
}

ReadPool::~ReadPool() {
  // A missing connection means a lease outlives the pool and would use a closed handle.
  assert(idle_.size() == connections_.size());
}

Result<ReadPool::Lease> ReadPool::Acquire(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!idle_cv_.wait_for(lock, timeout, [this] { return !idle_.empty(); })) {
    Log(LogLevel::kWarn, "storage.read_pool_exhausted");
    return Unavailable("storage busy");
  }
  Connection* connection = idle_.back();
  idle_.pop_back();
  return Lease(this, connection);
}

void ReadPool::Release(Connection* connection) {
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(connection);
  }
  idle_cv_.notify_one();
}

}  // namespace phigate::storage::sqlite
