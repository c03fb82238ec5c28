// The subcommands. Each takes its arguments after the subcommand name, prints its own
// --help, throws UsageError for bad usage and returns the process exit code.
#pragma once

#include <string>
#include <vector>

#include "app/cli.h"
#include "core/config.h"

namespace phigate::app {

int ServeCommand(const std::vector<std::string>& args);
int ClientsCommand(const std::vector<std::string>& args);
// users add | list | disable | reset-mfa (built-in authorization server accounts).
int UsersCommand(const std::vector<std::string>& args);
// audit verify | export | purge (the audit trail of issue 5).
int AuditCommand(const std::vector<std::string>& args);
// import FILE.ndjson...: bulk load of FHIR resources (issue 6 §7), server stopped.
int ImportCommand(const std::vector<std::string>& args);

// --config, --data-dir and --listen, applied in that order over the defaults.
Config LoadEffectiveConfig(const ParsedArgs& parsed);

}  // namespace phigate::app
