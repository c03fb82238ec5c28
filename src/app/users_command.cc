#include <boost/json.hpp>
#include <functional>
#include <iostream>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "app/audit_trail.h"
#include "app/commands.h"
#include "app/data_dir.h"
#include "audit/event.h"
#include "auth/accounts.h"
#include "auth/roles.h"
#include "core/clock.h"
#include "core/log.h"
#include "http/security_audit.h"
#include "http/status_mapping.h"

namespace phigate::app {

namespace {

constexpr const char* kUsersHelp =
    "Usage: phigate users add --username USERNAME --roles R1,R2 [--fhir-user TYPE/ID]\n"
    "       phigate users list [--json]\n"
    "       phigate users disable USERNAME\n"
    "       phigate users reset-mfa USERNAME\n"
    "       (each also takes [--data-dir DIR] [--config FILE] [--listen HOST:PORT])\n"
    "\n"
    "Manages the people who log in to the built-in authorization server, always with a\n"
    "password and a TOTP authenticator. Works while the server runs on the same data dir.\n"
    "Each command writes one administrative record to the audit trail (user ids, never\n"
    "usernames); if that record cannot be written the command exits 1 and says so.\n"
    "\n"
    "  add        creates a user and prints user_id=... and enrollment_url=...: a one-time\n"
    "             link, valid for auth.enrollment_ttl_s (24 h), where the person sets a\n"
    "             password and an authenticator app. Send it over a trusted channel.\n"
    "  list       prints each user's id, username, roles, state (pending, active, locked,\n"
    "             disabled) and FHIR user; never a secret\n"
    "  disable    the user can no longer log in; their sessions and tokens stop working\n"
    "  reset-mfa  removes the password and authenticator, ends the user's sessions and\n"
    "             prints a new enrollment link\n"
    "\n"
    "  --username USERNAME  1-64 of a-z 0-9 . _ @ - (case-insensitive, stored lower-case)\n"
    "  --roles R1,R2        admin, clinician, billing, auditor, patient\n"
    "  --fhir-user TYPE/ID  the person's own resource, e.g. Practitioner/123 or Patient/7\n"
    "  --json               list: one JSON array\n"
    "  --data-dir DIR       data directory (default ./.phigate)\n"
    "  --config FILE        TOML configuration file (auth.issuer names the link's server)\n"
    "  --listen HOST:PORT   the server's listen address, when the link's issuer derives\n"
    "                       from it (as for `serve --listen`)\n";

const std::set<std::string> kCommonOptions = {"data-dir", "config", "listen"};

std::set<std::string> With(std::set<std::string> extra) {
  extra.insert(kCommonOptions.begin(), kCommonOptions.end());
  return extra;
}

// The effective config and the opened data dir, as `clients add` does it: a complete
// data dir (keys included) so that a later `serve` finds it as if it had created it.
struct Opened {
  Config config;
  DataDir dir;
};

Opened Open(const ParsedArgs& parsed) {
  Opened out;
  out.config = LoadEffectiveConfig(parsed);
  out.config.Finalize();
  SetLogLevel(LogLevel::kWarn);
  out.dir = OpenDataDir(out.config, DataDirUse::kCommand);
  return out;
}

// The opened data dir, its audit trail and the Accounts on it, as every subcommand uses
// them. The Accounts' security events go to the trail: inside Audited (below) they join the
// command's one record; anything emitted outside it would be recorded on its own.
struct OpenedAccounts {
  explicit OpenedAccounts(const ParsedArgs& parsed)
      : opened(Open(parsed)),
        trail(OpenAuditTrail(opened.config, *opened.dir.keyring, SystemClock::Instance(),
                             AuditTrailUse::kCommand)),
        events(*trail.sink, SystemClock::Instance(), "cli"),
        accounts(*opened.dir.store, *opened.dir.keyring, SystemClock::Instance(),
                 opened.config.auth, events) {}
  Opened opened;
  AuditTrail trail;
  http::AuditingSecurityEventSink events;
  auth::Accounts accounts;
};

// The command's administrative record (issue 5 §1): `subtype` "users.<subcommand>", the
// fixed PHI-free `detail`, never a username.
audit::Event CommandEvent(std::string subtype, char action, std::string detail) {
  audit::Event event;
  event.subtype = std::move(subtype);
  event.action = action;
  event.detail = std::move(detail);
  return event;
}

// Runs `action` (the change) collecting the security events it emits into `event`, then
// records `event` with the action's outcome (a failed attempt is recorded too, with
// its OperationOutcome code). Throws StartupError if the record cannot be made durable.
template <typename Action>
auto Audited(OpenedAccounts& data, audit::Event& event, Action&& action) {
  auto result = [&] {
    http::SecurityEventScope scope(&event.security);
    return action();
  }();
  Status status;
  if constexpr (std::is_same_v<decltype(result), Status>) {
    status = result;
  } else {
    status = result.status();
  }
  // The account acted on: its id as the security events name it (Disable and ResetMfa
  // take a username, which stays out of the record).
  for (const audit::SecurityDetail& detail : event.security) {
    if (event.user_id.empty()) event.user_id = detail.user_id;
  }
  if (!status.ok()) {
    event.outcome_code = http::MapStatus(status.code()).issue_code;
    event.detail += " (failed)";
  }
  RecordCommand(data.trail, SystemClock::Instance(), std::move(event));
  return result;
}

// "users disable U": the username is the one positional argument.
std::string TakeUsername(const std::vector<std::string>& args, const std::string& subcommand) {
  if (args.size() < 2 || args[1].starts_with("--")) {
    throw UsageError("users " + subcommand + ": the username is required");
  }
  return args[1];
}

int Fail(const std::string& subcommand, const Status& status) {
  std::cerr << "phigate: users " << subcommand << ": " << status.message() << "\n";
  return 1;
}

int Add(const std::vector<std::string>& args) {
  ParsedArgs parsed =
      ParseArgs({args.begin() + 1, args.end()}, With({"username", "roles", "fhir-user"}), {"help"});
  if (parsed.Has("help")) {
    std::cout << kUsersHelp;
    return 0;
  }
  if (!parsed.Has("username")) throw UsageError("users add: --username is required");
  if (!parsed.Has("roles")) throw UsageError("users add: --roles is required");
  // Syntax first, so that a typo does not create a data dir.
  Result<std::string> username = auth::NormalizeUsername(parsed.Get("username"));
  if (!username.ok()) throw UsageError("users add: " + username.status().message());
  Result<std::vector<std::string>> roles = auth::ParseRoles(parsed.Get("roles"));
  if (!roles.ok()) throw UsageError("users add: " + roles.status().message());
  Status fhir_user = auth::ValidateFhirUser(parsed.Get("fhir-user"));
  if (!fhir_user.ok()) throw UsageError("users add: " + fhir_user.message());

  OpenedAccounts data(parsed);
  std::string role_list;
  for (const std::string& role : roles.value()) role_list += (role_list.empty() ? "" : ",") + role;
  audit::Event event = CommandEvent("users.add", 'C', "user added with roles " + role_list);
  Result<auth::NewUser> added = Audited(data, event, [&] {
    return data.accounts.AddUser(username.value(), roles.value(), parsed.Get("fhir-user"));
  });
  if (!added.ok()) {
    if (added.status().code() == StatusCode::kInvalidArgument) {
      throw UsageError("users add: " + added.status().message());
    }
    return Fail("add", added.status());
  }
  std::cout << "user_id=" << added->user.user_id << "\n"
            << "enrollment_url="
            << auth::EnrollmentUrl(data.opened.config.auth.issuer, added->enrollment_token) << "\n";
  return 0;
}

int List(const std::vector<std::string>& args) {
  ParsedArgs parsed = ParseArgs({args.begin() + 1, args.end()}, With({}), {"help", "json"});
  if (parsed.Has("help")) {
    std::cout << kUsersHelp;
    return 0;
  }
  OpenedAccounts data(parsed);
  // A read of the accounts, recorded before anything is shown (fail closed).
  audit::Event event = CommandEvent("users.list", 'R', "users listed");
  Result<std::vector<auth::UserSummary>> users =
      Audited(data, event, [&] { return data.accounts.ListUsers(); });
  if (!users.ok()) return Fail("list", users.status());
  if (parsed.Has("json")) {
    boost::json::array out;
    for (const auth::UserSummary& u : users.value()) {
      out.push_back(boost::json::object{{"user_id", u.user_id},
                                        {"username", u.username},
                                        {"roles", u.roles},
                                        {"state", u.state},
                                        {"fhir_user", u.fhir_user}});
    }
    std::cout << boost::json::serialize(out) << "\n";
    return 0;
  }
  // One user per line, tab-separated, under a header: easy to read and to cut(1).
  std::cout << "user_id\tusername\troles\tstate\tfhir_user\n";
  for (const auth::UserSummary& u : users.value()) {
    std::cout << u.user_id << "\t" << u.username << "\t" << u.roles << "\t" << u.state << "\t"
              << (u.fhir_user.empty() ? "-" : u.fhir_user) << "\n";
  }
  return 0;
}

// "users disable U" and "users reset-mfa U": the username is the one positional argument,
// then the common options; `action` runs on the opened data dir's accounts. --help (first
// or among the options) prints the help and opens nothing.
int OnOneUser(const std::vector<std::string>& args, const std::string& subcommand,
              const std::function<int(OpenedAccounts& data, const std::string& username)>& action) {
  if (args.size() >= 2 && args[1] == "--help") {
    std::cout << kUsersHelp;
    return 0;
  }
  const std::string username = TakeUsername(args, subcommand);
  ParsedArgs parsed = ParseArgs({args.begin() + 2, args.end()}, With({}), {"help"});
  if (parsed.Has("help")) {
    std::cout << kUsersHelp;
    return 0;
  }
  OpenedAccounts data(parsed);
  return action(data, username);
}

int Disable(const std::vector<std::string>& args) {
  return OnOneUser(args, "disable", [](OpenedAccounts& data, const std::string& username) {
    audit::Event event =
        CommandEvent("users.disable", 'U', "user disabled; sessions and tokens revoked");
    Status disabled = Audited(data, event, [&] { return data.accounts.Disable(username); });
    if (!disabled.ok()) return Fail("disable", disabled);
    std::cout << "disabled " << username << "\n";
    return 0;
  });
}

int ResetMfa(const std::vector<std::string>& args) {
  return OnOneUser(args, "reset-mfa", [](OpenedAccounts& data, const std::string& username) {
    audit::Event event = CommandEvent(
        "users.reset-mfa", 'U',
        "password and authenticator removed; sessions revoked; enrollment link issued");
    Result<std::string> token =
        Audited(data, event, [&] { return data.accounts.ResetMfa(username); });
    if (!token.ok()) return Fail("reset-mfa", token.status());
    std::cout << "enrollment_url="
              << auth::EnrollmentUrl(data.opened.config.auth.issuer, token.value()) << "\n";
    return 0;
  });
}

}  // namespace

int UsersCommand(const std::vector<std::string>& args) {
  if (args.empty()) throw UsageError("users: missing subcommand (add, list, disable, reset-mfa)");
  const std::string& sub = args[0];
  if (sub == "--help") {
    std::cout << kUsersHelp;
    return 0;
  }
  if (sub == "add") return Add(args);
  if (sub == "list") return List(args);
  if (sub == "disable") return Disable(args);
  if (sub == "reset-mfa") return ResetMfa(args);
  throw UsageError("users: unknown subcommand '" + sub + "'");
}

}  // namespace phigate::app
