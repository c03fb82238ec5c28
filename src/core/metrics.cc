#include "core/metrics.h"

#include <map>
#include <memory>
#include <mutex>

namespace phigate {
namespace {

struct Entry {
  std::string help;
  std::unique_ptr<Counter> counter;
};

std::mutex& Mu() {
  static std::mutex mu;
  return mu;
}

std::map<std::string, Entry, std::less<>>& Registry() {
  static std::map<std::string, Entry, std::less<>> registry;
  return registry;
}

}  // namespace

Counter& GetCounter(std::string_view name, std::string_view help) {
  std::lock_guard lock(Mu());
  auto& registry = Registry();
  auto it = registry.find(name);
  if (it == registry.end()) {
    it = registry.emplace(std::string(name), Entry{std::string(help), std::make_unique<Counter>()})
             .first;
  }
  return *it->second.counter;
}

std::string RenderMetrics() {
  std::lock_guard lock(Mu());
  std::string out;
  for (const auto& [name, entry] : Registry()) {
    out += "# HELP " + name + " " + entry.help + "\n";
    out += "# TYPE " + name + " counter\n";
    out += name + " " + std::to_string(entry.counter->Value()) + "\n";
  }
  return out;
}

}  // namespace phigate
