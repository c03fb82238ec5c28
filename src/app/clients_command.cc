#include <algorithm>
#include <boost/json.hpp>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "app/audit_trail.h"
#include "app/commands.h"
#include "app/data_dir.h"
#include "audit/event.h"
#include "auth/client_auth.h"
#include "auth/client_registry.h"
#include "auth/jwk.h"
#include "auth/security_events.h"
#include "core/clock.h"
#include "core/log.h"
#include "http/security_audit.h"
#include "http/status_mapping.h"
#include "storage/store.h"

namespace phigate::app {

namespace {

constexpr const char* kClientsHelp =
    "Usage: phigate clients add --name NAME --scope SCOPES [--roles R1,R2]\n"
    "                           [--jwks-file FILE] [--redirect-uri URI]... [--public]\n"
    "                           [--third-party] [--json]\n"
    "       phigate clients list [--json]\n"
    "       phigate clients baa CLIENT_ID --counterparty NAME --signed YYYY-MM-DD\n"
    "                           --expires YYYY-MM-DD\n"
    "       phigate clients baa CLIENT_ID --revoke\n"
    "       (each also takes [--data-dir DIR] [--config FILE])\n"
    "\n"
    "add registers an OAuth 2.0 client. By default a confidential client with a secret\n"
    "(client_secret_basic): prints its client_id and a generated client_secret once (two\n"
    "lines client_id=... and client_secret=..., or one JSON object with --json). Only an\n"
    "Argon2id hash of the secret is stored. With --jwks-file the client authenticates with\n"
    "signed assertions (private_key_jwt) and with --public it is a public app (PKCE only):\n"
    "then no secret exists and only the client_id is printed.\n"
    "list prints every client with its business associate agreement (BAA), never a secret.\n"
    "baa records a third-party client's BAA (HIPAA 45 CFR 164.504(e)) and marks the client\n"
    "third party: it receives PHI only from the start of the --signed day through the end\n"
    "of the --expires day (UTC), until --revoke. All work while the server runs on the\n"
    "same data dir; a revocation takes effect on the server's next request. Each command\n"
    "writes one administrative record to the audit trail; if that record cannot be written\n"
    "the command exits 1 and says so.\n"
    "\n"
    "  --name NAME         a label for the client (printable ASCII)\n"
    "  --scope SCOPES      space-separated SMART scopes, e.g. \"system/*.cruds\" or\n"
    "                      \"system/Patient.rs system/Observation.rs\"; apps (with\n"
    "                      --redirect-uri) may use patient/ and user/ scopes and openid,\n"
    "                      fhirUser, offline_access, online_access\n"
    "  --roles R1,R2       roles of a system client: admin, clinician, billing, auditor,\n"
    "                      patient. Access is deny by default: a system client without\n"
    "                      a role reaches no PHI (see docs/policy.md)\n"
    "  --jwks-file FILE    the client's public keys (JWKS JSON, RS256/ES256/EdDSA):\n"
    "                      private_key_jwt (RFC 7523, SMART Backend Services)\n"
    "  --redirect-uri URI  allows the authorization code flow (repeatable); https://, or\n"
    "                      http://127.0.0.1 / http://localhost with any port; no fragment\n"
    "  --public            a public app: no secret, PKCE only (needs --redirect-uri)\n"
    "  --third-party       a business associate's client: no PHI until `clients baa`\n"
    "                      records an agreement\n"
    "  --counterparty NAME the business associate's legal name (1-200 characters)\n"
    "  --signed DATE       the first day the agreement is in effect (UTC)\n"
    "  --expires DATE      the last day the agreement is in effect (UTC), not before --signed\n"
    "  --revoke            ends the agreement now\n"
    "  --data-dir DIR      data directory (default ./.phigate)\n"
    "  --config FILE       TOML configuration file\n"
    "  --json              add: print {\"client_id\":...,\"client_secret\":...};\n"
    "                      list: one JSON array\n";

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

const std::set<std::string> kCommonOptions = {"data-dir", "config"};

std::set<std::string> With(std::set<std::string> extra) {
  extra.insert(kCommonOptions.begin(), kCommonOptions.end());
  return extra;
}

// The effective config, the data dir and its audit trail. The whole data dir is
// initialized (keys included) so that a later `serve` finds it complete, exactly as if
// the server had created it.
struct Opened {
  Config config;
  DataDir dir;
  AuditTrail trail;
};

Opened Open(const ParsedArgs& parsed) {
  Opened out;
  out.config = LoadEffectiveConfig(parsed);
  out.config.Finalize();
  SetLogLevel(LogLevel::kWarn);
  out.dir = OpenDataDir(out.config, DataDirUse::kCommand);
  out.trail = OpenAuditTrail(out.config, *out.dir.keyring, SystemClock::Instance(),
                             AuditTrailUse::kCommand);
  return out;
}

// The command's administrative record (issue 5 §1): `subtype` "clients.<subcommand>", the
// client acted on, a fixed PHI-free `detail`.
audit::Event CommandEvent(std::string subtype, char action, std::string client_id,
                          std::string detail) {
  audit::Event event;
  event.subtype = std::move(subtype);
  event.action = action;
  event.client_id = std::move(client_id);
  event.detail = std::move(detail);
  return event;
}

// Records `event` with the outcome of `status` (a failed attempt is recorded too, with its
// OperationOutcome code). Throws StartupError if the record cannot be made durable.
void Record(Opened& opened, audit::Event event, const Status& status) {
  if (!status.ok()) {
    event.outcome_code = http::MapStatus(status.code()).issue_code;
    event.detail += " (failed)";
  }
  RecordCommand(opened.trail, SystemClock::Instance(), std::move(event));
}

// The client-administration security event of a command, as one detail of its record.
void EmitSecurityEvent(Opened& opened, auth::SecurityEventType type, const std::string& client_id,
                       const std::string& reason) {
  http::AuditingSecurityEventSink events(*opened.trail.sink, SystemClock::Instance(), "cli");
  auth::SecurityEvent event;
  event.type = type;
  event.client_id = client_id;
  event.address = "cli";
  event.reason = reason;
  events.Record(event);
}

int Fail(const std::string& subcommand, const Status& status) {
  std::cerr << "phigate: clients " << subcommand << ": " << status.message() << "\n";
  return 1;
}

constexpr int64_t kDayMs = 24LL * 60 * 60 * 1000;
constexpr size_t kMaxCounterpartyChars = 200;

// A calendar date YYYY-MM-DD (exactly that form; a real date, 1970 or later) as days since
// the Unix epoch: core's ParseDateUtc decides; this only words the UsageError for `option`.
int64_t ParseDay(const std::string& text, const char* option) {
  if (std::optional<int64_t> ms = ParseDateUtc(text)) return *ms / kDayMs;
  const std::string prefix = std::string("clients baa: ") + option;
  const bool shaped = text.size() == 10 && text[4] == '-' && text[7] == '-' &&
                      std::all_of(text.begin(), text.end(),
                                  [](char c) { return c == '-' || (c >= '0' && c <= '9'); });
  if (!shaped) throw UsageError(prefix + " must be a date YYYY-MM-DD, e.g. 2027-01-31");
  if (text < "1970") throw UsageError(prefix + " must not be before 1970");
  throw UsageError(prefix + " is not a calendar date");
}

// "YYYY-MM-DD" of the UTC day containing `ms`.
std::string FormatDay(int64_t ms) { return FormatInstant(ms).substr(0, 10); }
// The last day an exclusive end covers: an agreement ending at 2027-02-01T00:00Z covers
// 2027-01-31, which is the date `clients baa --expires` was given.
std::string FormatLastDay(int64_t exclusive_end_ms) { return FormatDay(exclusive_end_ms - 1); }

bool HasDates(const storage::ClientRecord& client) { return client.baa_expires_ms > 0; }

const char* YesNo(bool value) { return value ? "yes" : "no"; }

// As BaaGate (policy/baa_gate.h) decides it, for display.
bool BaaActive(const storage::ClientRecord& client, int64_t now_ms) {
  return client.baa_status == "active" && client.baa_signed_ms <= now_ms &&
         now_ms < client.baa_expires_ms;
}

// Why `name` is not an acceptable counterparty, or "". A legal name may need letters
// beyond ASCII, so UTF-8 is accepted; control characters (C0, DEL, C1) and bidirectional
// formatting characters are not, so a listing cannot be garbled or made to read
// differently from what is stored.
std::string CounterpartyProblem(std::string_view name) {
  size_t chars = 0;
  for (size_t i = 0; i < name.size();) {
    const auto lead = static_cast<unsigned char>(name[i]);
    uint32_t code = 0;
    size_t length = 0;
    if (lead < 0x80) {
      code = lead;
      length = 1;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      code = lead & 0x1Fu;
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      code = lead & 0x0Fu;
      length = 3;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      code = lead & 0x07u;
      length = 4;
    } else {
      return "must be UTF-8 text";
    }
    if (i + length > name.size()) return "must be UTF-8 text";
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(name[i + k]);
      if ((next & 0xC0u) != 0x80u) return "must be UTF-8 text";
      code = (code << 6) | (next & 0x3Fu);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8 (RFC 3629 §3).
    if ((length == 3 && code < 0x800) || (length == 4 && (code < 0x10000 || code > 0x10FFFF)) ||
        (code >= 0xD800 && code <= 0xDFFF)) {
      return "must be UTF-8 text";
    }
    if (code < 0x20 || (code >= 0x7F && code <= 0x9F)) {
      return "must not contain control characters";
    }
    if ((code >= 0x202A && code <= 0x202E) || (code >= 0x2066 && code <= 0x2069) ||
        code == 0x200E || code == 0x200F || code == 0x061C) {
      return "must not contain bidirectional formatting characters";
    }
    i += length;
    ++chars;
  }
  if (chars == 0) return "must not be empty";
  if (chars > kMaxCounterpartyChars) return "must have at most 200 characters";
  return "";
}

int Add(const std::vector<std::string>& args) {
  std::vector<std::string> rest(args.begin() + 1, args.end());
  const std::vector<std::string> redirect_uris = TakeRedirectUris(rest);
  ParsedArgs parsed = ParseArgs(rest, WithValue(), {"json", "help", "public", "third-party"});
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
  registration.third_party = parsed.Has("third-party");
  if (parsed.Has("roles") && registration.roles.empty()) {
    throw UsageError("clients add: --roles needs at least one role");
  }
  if (parsed.Has("jwks-file")) {
    registration.jwks = ReadJwksFile(parsed.Get("jwks-file"));
    if (registration.jwks.empty()) throw UsageError("clients add: --jwks-file is empty");
  }

  Opened opened = Open(parsed);
  if (registration.roles.empty() && registration.redirect_uris.empty()) {
    // Not an error (such a client can still be used for tests of denial), but a likely slip.
    std::cerr << "phigate: clients add: note: no --roles, so this client's own tokens reach "
                 "no PHI (deny by default)\n";
  }
  // Fixed words and the client's own settings: never its name (free text).
  audit::Event record = CommandEvent(
      "clients.add", 'C', "",
      std::string("client added; roles ") +
          (registration.roles.empty() ? "none" : registration.roles) + "; third party " +
          YesNo(registration.third_party) + "; scope " + registration.scope);
  auto created = [&] {
    http::SecurityEventScope scope(&record.security);
    auto result = auth::CreateClient(*opened.dir.store, registration, SystemClock::Instance());
    if (result.ok()) {
      EmitSecurityEvent(opened, auth::SecurityEventType::kClientCreated, result->client_id,
                        result->auth_method);
    }
    return result;
  }();
  if (created.ok()) {
    record.client_id = created->client_id;
    record.detail += "; " + created->auth_method;
  }
  Record(opened, std::move(record), created.status());
  if (!created.ok()) {
    if (created.status().code() == StatusCode::kInvalidArgument) {
      throw UsageError("clients add: " + created.status().message());
    }
    std::cerr << "phigate: clients add: " << created.status().message() << "\n";
    return 1;
  }

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

int List(const std::vector<std::string>& args) {
  ParsedArgs parsed = ParseArgs({args.begin() + 1, args.end()}, With({}), {"help", "json"});
  if (parsed.Has("help")) {
    std::cout << kClientsHelp;
    return 0;
  }
  Opened opened = Open(parsed);
  Result<std::vector<storage::ClientRecord>> clients = opened.dir.store->ListClients();
  // A read of the client registry, recorded before anything is shown (fail closed).
  Record(opened, CommandEvent("clients.list", 'R', "", "clients listed"), clients.status());
  if (!clients.ok()) return Fail("list", clients.status());
  const int64_t now_ms = SystemClock::Instance().NowMillis();
  if (parsed.Has("json")) {
    boost::json::array out;
    for (const storage::ClientRecord& c : clients.value()) {
      boost::json::value baa = nullptr;
      if (c.baa_status != "none") {
        // A revocation of a client that never had an agreement has no dates.
        const bool dated = HasDates(c);
        baa = boost::json::object{
            {"counterparty", c.baa_counterparty},
            {"signed", dated ? boost::json::value(FormatDay(c.baa_signed_ms)) : nullptr},
            {"expires", dated ? boost::json::value(FormatLastDay(c.baa_expires_ms)) : nullptr},
            {"signed_at", dated ? boost::json::value(FormatInstant(c.baa_signed_ms)) : nullptr},
            {"expires_at", dated ? boost::json::value(FormatInstant(c.baa_expires_ms)) : nullptr},
            {"status", c.baa_status},
            {"active", BaaActive(c, now_ms)}};
      }
      out.push_back(boost::json::object{{"client_id", c.client_id},
                                        {"name", c.name},
                                        {"auth_method", c.auth_method},
                                        {"scope", c.scope},
                                        {"roles", c.roles},
                                        {"disabled", c.disabled},
                                        {"third_party", c.third_party},
                                        {"baa", std::move(baa)}});
    }
    std::cout << boost::json::serialize(out) << "\n";
    return 0;
  }
  // One client per line, tab-separated, under a header (as `users list`). Neither a name
  // nor a counterparty can hold a tab or a line break (both refuse control characters).
  std::cout << "client_id\tname\tauth_method\troles\tdisabled\tthird_party\tbaa_status"
               "\tbaa_active\tbaa_counterparty\tbaa_signed\tbaa_expires\n";
  for (const storage::ClientRecord& c : clients.value()) {
    const bool has_baa = c.baa_status != "none";
    const bool dated = has_baa && HasDates(c);
    std::cout << c.client_id << "\t" << c.name << "\t" << c.auth_method << "\t"
              << (c.roles.empty() ? "-" : c.roles) << "\t" << YesNo(c.disabled) << "\t"
              << YesNo(c.third_party) << "\t" << c.baa_status << "\t" << YesNo(BaaActive(c, now_ms))
              << "\t" << (has_baa && !c.baa_counterparty.empty() ? c.baa_counterparty : "-") << "\t"
              << (dated ? FormatDay(c.baa_signed_ms) : "-") << "\t"
              << (dated ? FormatLastDay(c.baa_expires_ms) : "-") << "\n";
  }
  return 0;
}

int Baa(const std::vector<std::string>& args) {
  if (args.size() >= 2 && args[1] == "--help") {
    std::cout << kClientsHelp;
    return 0;
  }
  if (args.size() < 2 || args[1].starts_with("--")) {
    throw UsageError("clients baa: the client id is required");
  }
  const std::string& client_id = args[1];
  ParsedArgs parsed = ParseArgs({args.begin() + 2, args.end()},
                                With({"counterparty", "signed", "expires"}), {"help", "revoke"});
  if (parsed.Has("help")) {
    std::cout << kClientsHelp;
    return 0;
  }
  storage::BaaRecord baa;
  bool third_party = false;
  // Everything is checked before the data dir is opened, so a typo changes nothing.
  if (parsed.Has("revoke")) {
    if (parsed.Has("counterparty") || parsed.Has("signed") || parsed.Has("expires")) {
      throw UsageError("clients baa: --revoke takes no --counterparty, --signed or --expires");
    }
    baa.status = "revoked";
  } else {
    for (const char* required : {"counterparty", "signed", "expires"}) {
      if (!parsed.Has(required)) {
        throw UsageError(std::string("clients baa: --") + required + " is required (or --revoke)");
      }
    }
    baa.counterparty = parsed.Get("counterparty");
    if (std::string problem = CounterpartyProblem(baa.counterparty); !problem.empty()) {
      throw UsageError("clients baa: --counterparty " + problem);
    }
    const int64_t signed_day = ParseDay(parsed.Get("signed"), "--signed");
    const int64_t expires_day = ParseDay(parsed.Get("expires"), "--expires");
    if (expires_day < signed_day) {
      throw UsageError("clients baa: --expires must not be before --signed");
    }
    // From the start of the signed day to the end of the expires day: an agreement that
    // "expires 2027-01-31" still covers that day (expires_ms is exclusive).
    baa.signed_ms = signed_day * kDayMs;
    baa.expires_ms = (expires_day + 1) * kDayMs;
    baa.status = "active";
    third_party = true;
  }

  Opened opened = Open(parsed);
  // The dates are the agreement's, not PHI; the counterparty (a legal name) goes in its own
  // field, which exists only inside the encrypted record.
  audit::Event record =
      CommandEvent("clients.baa", 'U', client_id,
                   baa.status == "active"
                       ? "business associate agreement recorded, in effect " +
                             FormatDay(baa.signed_ms) + " through " + FormatLastDay(baa.expires_ms)
                       : std::string("business associate agreement revoked"));
  record.baa_counterparty = baa.counterparty;
  Status set = [&] {
    http::SecurityEventScope scope(&record.security);
    Status result = opened.dir.store->SetClientBaa(client_id, baa, third_party);
    // Ids and fixed words only: never the counterparty.
    if (result.ok()) {
      EmitSecurityEvent(opened, auth::SecurityEventType::kClientBaaChanged, client_id, baa.status);
    }
    return result;
  }();
  Record(opened, std::move(record), set);
  if (!set.ok()) {
    if (set.code() == StatusCode::kInvalidArgument) {
      throw UsageError("clients baa: " + set.message());
    }
    return Fail("baa", set);
  }
  std::cout << "client_id=" << client_id << "\n"
            << "baa_status=" << baa.status << "\n";
  if (baa.status == "active") {
    std::cout << "baa_signed=" << FormatDay(baa.signed_ms) << "\n"
              << "baa_expires=" << FormatLastDay(baa.expires_ms) << "\n";
  }
  return 0;
}

}  // namespace

int ClientsCommand(const std::vector<std::string>& args) {
  if (args.empty()) throw UsageError("clients: missing subcommand (add, list, baa)");
  const std::string& sub = args[0];
  if (sub == "--help") {
    std::cout << kClientsHelp;
    return 0;
  }
  if (sub == "add") return Add(args);
  if (sub == "list") return List(args);
  if (sub == "baa") return Baa(args);
  throw UsageError("clients: unknown subcommand '" + sub + "'");
}

}  // namespace phigate::app
