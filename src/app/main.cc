// phigate: a HIPAA-grade FHIR R4 server. Subcommands: serve, clients (add, list, baa), users,
// audit (verify, export, purge), import.
// Exit codes: 0 ok, 2 usage error, 1 runtime error.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "app/cli.h"
#include "app/commands.h"
#include "app/data_dir.h"
#include "core/config.h"

namespace {

constexpr const char* kMainHelp =
    "phigate " PHIGATE_VERSION
    " - HIPAA-grade FHIR R4 server over HTTPS\n"
    "\n"
    "Usage: phigate <command> [options]\n"
    "\n"
    "Commands:\n"
    "  serve         run the server (default data dir ./.phigate, https://127.0.0.1:8443)\n"
    "  clients add   register an API client (OAuth 2.0 client credentials)\n"
    "  clients list  list clients with their roles and business associate agreements\n"
    "  clients baa   record or revoke a client's business associate agreement\n"
    "  users         add, list, disable, reset-mfa: people who log in (password + TOTP)\n"
    "  audit verify  check the audit trail's hash chain and signed checkpoints\n"
    "  audit export  stream decrypted audit records (JSON lines or syslog) to a SIEM\n"
    "  audit purge   delete audit segments older than the retention period\n"
    "  import        load FHIR resources from NDJSON files (server stopped)\n"
    "\n"
    "Options:\n"
    "  --help        show this help (also: phigate <command> --help)\n"
    "  --version     print the version\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << kMainHelp;
    return 2;
  }
  const std::string command = args[0];
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kMainHelp;
    return 0;
  }
  if (command == "--version") {
    std::cout << "phigate " << PHIGATE_VERSION << "\n";
    return 0;
  }
  try {
    if (command == "serve") {
      return phigate::app::ServeCommand({args.begin() + 1, args.end()});
    }
    if (command == "clients") {
      return phigate::app::ClientsCommand({args.begin() + 1, args.end()});
    }
    if (command == "users") {
      return phigate::app::UsersCommand({args.begin() + 1, args.end()});
    }
    if (command == "audit") {
      return phigate::app::AuditCommand({args.begin() + 1, args.end()});
    }
    if (command == "import") {
      return phigate::app::ImportCommand({args.begin() + 1, args.end()});
    }
    throw phigate::app::UsageError("unknown command '" + command + "'");
  } catch (const phigate::app::UsageError& e) {
    std::cerr << "phigate: " << e.what() << "\nRun 'phigate --help' for usage.\n";
    return 2;
  } catch (const phigate::ConfigError& e) {
    std::cerr << "phigate: configuration error: " << e.what() << "\n";
    return 1;
  } catch (const phigate::app::StartupError& e) {
    std::cerr << "phigate: cannot start: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "phigate: error: " << e.what() << "\n";
    return 1;
  }
}
