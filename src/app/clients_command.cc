#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "app/commands.h"
#include "app/data_dir.h"
#include "auth/client_auth.h"
#include "auth/client_registry.h"
#include "auth/jwk.h"
#include "auth/security_events.h"
#include "core/log.h"

namespace phigate::app {

namespace {

constexpr const char* kClientsHelp =
    "Usage: phigate clients add --name NAME --scope SCOPES [--roles R1,R2]\n"
    "                           [--jwks-file FILE] [--redirect-uri URI]... [--public]\n"
    "                           [--data-dir DIR] [--config FILE] [--json]\n"
    "\n"
    "Registers an OAuth 2.0 client. By default a confidential client with a secret\n"
    "(client_secret_basic): prints its client_id and a generated client_secret once (two\n"
    "lines client_id=... and client_secret=..., or one JSON object with --json). Only an\n"
    "Argon2id hash of the secret is stored. With --jwks-file the client authenticates with\n"
    "signed assertions (private_key_jwt) and with --public it is a public app (PKCE only):\n"
    "then no secret exists and only the client_id is printed. Works while the server runs\n"
    "on the same data dir.\n"
    "\n"
    "  --name NAME         a label for the client (printable ASCII)\n"
    "  --scope SCOPES      space-separated SMART scopes, e.g. \"system/*.cruds\" or\n"
    "                      \"system/Patient.rs system/Observation.rs\"; apps (with\n"
    "                      --redirect-uri) may use patient/ and user/ scopes and openid,\n"
    "                      fhirUser, offline_access, online_access\n"
    "  --roles R1,R2       roles of a system client: admin, clinician, billing, auditor,\n"
    "                      patient\n"
    "  --jwks-file FILE    the client's public keys (JWKS JSON, RS256/ES256/EdDSA):\n"
    "                      private_key_jwt (RFC 7523, SMART Backend Services)\n"
    "  --redirect-uri URI  allows the authorization code flow (repeatable); https://, or\n"
    "                      http://127.0.0.1 / http://localhost with any port; no fragment\n"
    "  --public            a public app: no secret, PKCE only (needs --redirect-uri)\n"
    "  --data-dir DIR      data directory (default ./.phigate)\n"
    "  --config FILE       TOML configuration file\n"
    "  --json              print {\"client_id\":...,\"client_secret\":...}\n";

// The options that take a value (besides the repeatable --redirect-uri).
std::set<std::string> WithValue() {
  return {"name", "scope", "roles", "jwks-file", "data-dir", "config"};
}

// ParseArgs refuses repeated options; --redirect-uri is the one that may repeat, so its
// occurrences are taken out first (skipping the values of the other options, so that
// `--name --redirect-uri` keeps meaning a name).
std::vector<std::string> TakeRedirectUris(std::vector<std::string>& args) {
  std::vector<std::string> uris;
  std::vector<std::string> rest;
  constexpr std::string_view kOption = "--redirect-uri";
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == kOption) {
      if (i + 1 >= args.size()) throw UsageError("option --redirect-uri needs a value");
      uris.push_back(args[++i]);
      continue;
    }
    if (arg.starts_with(std::string(kOption) + "=")) {
      uris.push_back(arg.substr(kOption.size() + 1));
      continue;
    }
    rest.push_back(arg);
    if (arg.starts_with("--") && arg.find('=') == std::string::npos &&
        WithValue().contains(arg.substr(2)) && i + 1 < args.size()) {
      rest.push_back(args[++i]);
    }
  }
  args = std::move(rest);
  return uris;
}

std::string ReadJwksFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("clients add: cannot read --jwks-file '" + path + "'");
  // One byte over the limit is enough to know it is too large.
  std::vector<char> buffer(auth::kMaxJwksBytes + 1);
  in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  if (in.bad()) throw UsageError("clients add: cannot read --jwks-file '" + path + "'");
  const auto n = static_cast<size_t>(in.gcount());
  if (n > auth::kMaxJwksBytes) throw UsageError("clients add: --jwks-file is too large");
  return std::string(buffer.data(), n);
}

}  // namespace

int ClientsCommand(const std::vector<std::string>& args) {
  if (args.empty()) throw UsageError("clients: missing subcommand (add)");
  if (args[0] == "--help") {
    std::cout << kClientsHelp;
    return 0;
  }
  if (args[0] != "add") throw UsageError("clients: unknown subcommand '" + args[0] + "'");
  std::vector<std::string> rest(args.begin() + 1, args.end());
  const std::vector<std::string> redirect_uris = TakeRedirectUris(rest);
  ParsedArgs parsed = ParseArgs(rest, WithValue(), {"json", "help", "public"});
  if (parsed.Has("help")) {
    std::cout << kClientsHelp;
    return 0;
  }
  if (!parsed.Has("name")) throw UsageError("clients add: --name is required");
  if (!parsed.Has("scope")) throw UsageError("clients add: --scope is required");

  auth::ClientRegistration registration;
  registration.name = parsed.Get("name");
  registration.scope = parsed.Get("scope");
  registration.roles = parsed.Get("roles");
  registration.redirect_uris = redirect_uris;
  registration.is_public = parsed.Has("public");
  if (parsed.Has("roles") && registration.roles.empty()) {
    throw UsageError("clients add: --roles needs at least one role");
  }
  if (parsed.Has("jwks-file")) {
    registration.jwks = ReadJwksFile(parsed.Get("jwks-file"));
    if (registration.jwks.empty()) throw UsageError("clients add: --jwks-file is empty");
  }

  Config config = LoadEffectiveConfig(parsed);
  config.Finalize();
  SetLogLevel(LogLevel::kWarn);
  // The whole data dir is initialized (keys included) so that a later `serve` finds it
  // complete, exactly as if the server had created it.
  DataDir dir = OpenDataDir(config, DataDirUse::kCommand);
  auto created = auth::CreateClient(*dir.store, registration, SystemClock::Instance());
  if (!created.ok()) {
    if (created.status().code() == StatusCode::kInvalidArgument) {
      throw UsageError("clients add: " + created.status().message());
    }
    std::cerr << "phigate: clients add: " << created.status().message() << "\n";
    return 1;
  }
  auth::LogSecurityEventSink events;
  auth::SecurityEvent event;
  event.type = auth::SecurityEventType::kClientCreated;
  event.client_id = created->client_id;
  event.address = "cli";
  event.reason = created->auth_method;
  events.Record(event);

  const bool has_secret = !created->client_secret.empty();
  if (parsed.Has("json")) {
    std::cout << "{\"client_id\":\"" << created->client_id << "\"";
    if (has_secret) {
      std::cout << ",\"client_secret\":\"" << created->client_secret << "\"";
    } else {
      std::cout << ",\"token_endpoint_auth_method\":\"" << created->auth_method << "\"";
    }
    std::cout << "}\n";
  } else {
    std::cout << "client_id=" << created->client_id << "\n";
    if (has_secret) {
      std::cout << "client_secret=" << created->client_secret << "\n";
    } else {
      std::cout << "token_endpoint_auth_method=" << created->auth_method << "\n";
    }
  }
  return 0;
}

}  // namespace phigate::app
