// Command-line parsing shared by the subcommands: `--flag VALUE`, `--flag=VALUE` and
// boolean `--flag`. Secrets are never accepted here (they would show in `ps`).
// Thread-safety: single-threaded start-up code.
#pragma once

#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace phigate::app {

// A usage error: main prints it with the subcommand's help hint and exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ParsedArgs {
  std::map<std::string, std::string> values;
  std::set<std::string> flags;
  bool Has(const std::string& name) const { return values.count(name) || flags.count(name); }
  std::string Get(const std::string& name, const std::string& fallback = "") const {
    auto it = values.find(name);
    return it == values.end() ? fallback : it->second;
  }
};

// `with_value` names options that take a value; `booleans` those that do not. Anything
// else, a missing value, a repeated option or a positional argument is a UsageError.
ParsedArgs ParseArgs(const std::vector<std::string>& args, const std::set<std::string>& with_value,
                     const std::set<std::string>& booleans);

}  // namespace phigate::app
