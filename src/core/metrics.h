// Metrics: process-wide counters exposed in the Prometheus text format (GET /metrics).
// Counters carry no labels taken from requests, so nothing a client sends (and no PHI)
// can reach a metric. Register once (function-local static), then Inc() from any thread.
//
// Thread-safety: Counter::Inc is a relaxed atomic add; registration and rendering take a
// mutex (registration happens once per counter).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace phigate {

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// The counter named `name` ("phigate_..._total"), created on first use with `help`. The
// reference stays valid for the life of the process.
Counter& GetCounter(std::string_view name, std::string_view help);

// Every registered counter, in name order, as Prometheus text exposition format 0.0.4.
std::string RenderMetrics();

}  // namespace phigate
