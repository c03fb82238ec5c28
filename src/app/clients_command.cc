#include <iostream>

#include "app/commands.h"
#include "app/data_dir.h"
#include "auth/client_registry.h"
#include "core/log.h"

namespace phigate::app {

namespace {

constexpr const char* kClientsHelp =
    "Usage: phigate clients add --name NAME --scope SCOPES [--data-dir DIR] [--config FILE]\n"
    "                           [--json]\n"
    "\n"
    "Registers an API client for the OAuth 2.0 client credentials grant and prints its\n"
    "client_id and a generated client_secret once (two lines client_id=... and\n"
    "client_secret=..., or one JSON object with --json). Only an Argon2id hash of the\n"
    "secret is stored. Works while the server runs on the same data dir.\n"
    "\n"
    "  --name NAME       a label for the client\n"
    "  --scope SCOPES    space-separated SMART system scopes, e.g. \"system/*.cruds\"\n"
    "                    or \"system/Patient.rs system/Observation.rs\"\n"
    "  --data-dir DIR    data directory (default ./.phigate)\n"
    "  --config FILE     TOML configuration file\n"
    "  --json            print {\"client_id\":...,\"client_secret\":...}\n";

}  // namespace

int ClientsCommand(const std::vector<std::string>& args) {
  if (args.empty()) throw UsageError("clients: missing subcommand (add)");
  if (args[0] == "--help") {
    std::cout << kClientsHelp;
    return 0;
  }
  if (args[0] != "add") throw UsageError("clients: unknown subcommand '" + args[0] + "'");
  ParsedArgs parsed = ParseArgs({args.begin() + 1, args.end()},
                                {"name", "scope", "data-dir", "config"}, {"json", "help"});
  if (parsed.Has("help")) {
    std::cout << kClientsHelp;
    return 0;
  }
  if (!parsed.Has("name")) throw UsageError("clients add: --name is required");
  if (!parsed.Has("scope")) throw UsageError("clients add: --scope is required");
  Config config = LoadEffectiveConfig(parsed);
  config.Finalize();
  SetLogLevel(LogLevel::kWarn);
  // The whole data dir is initialized (keys included) so that a later `serve` finds it
  // complete, exactly as if the server had created it.
  DataDir dir = OpenDataDir(config, DataDirUse::kCommand);
  auto created = auth::CreateClient(*dir.store, parsed.Get("name"), parsed.Get("scope"),
                                    SystemClock::Instance());
  if (!created.ok()) {
    if (created.status().code() == StatusCode::kInvalidArgument) {
      throw UsageError("clients add: " + created.status().message());
    }
    std::cerr << "phigate: clients add: " << created.status().message() << "\n";
    return 1;
  }
  if (parsed.Has("json")) {
    std::cout << "{\"client_id\":\"" << created->client_id << "\",\"client_secret\":\""
              << created->client_secret << "\"}\n";
  } else {
    std::cout << "client_id=" << created->client_id << "\n"
              << "client_secret=" << created->client_secret << "\n";
  }
  return 0;
}

}  // namespace phigate::app
