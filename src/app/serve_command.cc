#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "app/audit_trail.h"
#include "app/commands.h"
#include "app/data_dir.h"
#include "auth/accounts.h"
#include "auth/authorization_codes.h"
#include "auth/login_endpoints.h"
#include "auth/oauth_endpoints.h"
#include "auth/oidc_keys.h"
#include "auth/security_events.h"
#include "auth/session_guard.h"
#include "auth/token_issuer.h"
#include "auth/token_verifier.h"
#include "core/log.h"
#include "fhir/model.h"
#include "fhir/resource_service.h"
#include "http/pipeline.h"
#include "http/security_audit.h"
#include "net/https_client.h"
#include "net/https_server.h"
#include "policy/baa_gate.h"
#include "policy/break_glass.h"
#include "policy/policy.h"

namespace phigate::app {

namespace {

constexpr const char* kServeHelp =
    "Usage: phigate serve [--config FILE] [--data-dir DIR] [--listen HOST:PORT]\n"
    "\n"
    "Runs the FHIR R4 server over HTTPS. Without options it uses the embedded default:\n"
    "data dir ./.phigate (created on first start, mode 0700, with a self-signed TLS\n"
    "certificate, a key-encryption key, a token-signing key and the SQLite database),\n"
    "listening on 127.0.0.1:8443.\n"
    "\n"
    "  --config FILE        TOML configuration file (see docs/configuration.md)\n"
    "  --data-dir DIR       data directory (overrides data_dir)\n"
    "  --listen HOST:PORT   listen address (overrides server.listen; port 0 = any free)\n"
    "\n"
    "SIGTERM or SIGINT stops accepting, finishes in-flight requests and exits 0.\n";

LogLevel ParseLevel(const std::string& s) {
  if (s == "debug") return LogLevel::kDebug;
  if (s == "warn") return LogLevel::kWarn;
  if (s == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

}  // namespace

Config LoadEffectiveConfig(const ParsedArgs& parsed) {
  Config config = parsed.Has("config") ? LoadConfig(parsed.Get("config")) : Config{};
  if (parsed.Has("data-dir")) config.data_dir = parsed.Get("data-dir");
  if (parsed.Has("listen")) config.server.listen = parsed.Get("listen");
  return config;
}

int ServeCommand(const std::vector<std::string>& args) {
  ParsedArgs parsed = ParseArgs(args, {"config", "data-dir", "listen"}, {"help"});
  if (parsed.Has("help")) {
    std::cout << kServeHelp;
    return 0;
  }
  Config config = LoadEffectiveConfig(parsed);
  const bool issuer_configured = !config.auth.issuer.empty();
  std::string host;
  uint16_t port = 0;
  SplitHostPort(config.server.listen, "server.listen", host, port);
  config.Finalize();
  SetLogLevel(ParseLevel(config.log.level));

  DataDir dir = OpenDataDir(config, DataDirUse::kServe);
  const fhir::Model& model = fhir::Model::R4();
  const SystemClock& clock = SystemClock::Instance();
  // The audit trail (issue 5) opens before anything listens: it recovers a torn tail and
  // checks its checkpoints, and a trail that cannot be opened stops start-up.
  AuditTrail trail = OpenAuditTrail(config, *dir.keyring, clock, AuditTrailUse::kServe);
#ifdef PHIGATE_BENCH_NO_AUDIT
  audit::NullAuditSink null_sink;
  audit::AuditSink& audit_sink = null_sink;
#else
  audit::AuditSink& audit_sink = *trail.sink;
#endif

  net::ServerOptions options;
  options.host = host;
  options.port = port;
  options.threads = config.server.threads > 0
                        ? config.server.threads
                        : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options.max_connections = config.server.max_connections;
  options.header_bytes = config.limits.header_bytes;
  options.body_bytes = config.limits.body_bytes;
  options.read_timeout_ms = config.limits.read_timeout_ms;
  options.write_timeout_ms = config.limits.write_timeout_ms;
  options.idle_timeout_ms = config.limits.idle_timeout_ms;
  options.handshake_timeout_ms = config.limits.handshake_timeout_ms;
  options.shutdown_grace_ms = config.server.shutdown_grace_ms;
  options.certificate_file = config.tls.certificate_file;
  options.private_key_file = config.tls.private_key_file;
  options.min_tls_version = config.tls.min_version;
  options.handle_signals = true;

  // The authorization policy (issue 4): validated before anything listens, so a typo in it
  // stops start-up with a message naming the key.
  std::optional<policy::Policy> loaded_policy;
  if (!config.policy.file.empty()) {
    std::ifstream in(config.policy.file, std::ios::binary);
    if (!in) throw StartupError(config.policy.file + ": cannot read the policy file");
    std::stringstream text;
    text << in.rdbuf();
    Result<policy::Policy> from_file = policy::Policy::Parse(text.str(), config.policy.file);
    if (!from_file.ok()) throw StartupError(from_file.status().message());
    loaded_policy.emplace(std::move(from_file.value()));
  }
  const policy::Policy& access_policy = loaded_policy ? *loaded_policy : policy::Policy::Default();

  // The pipeline is built after bind so that, with port 0, URLs name the real port.
  std::unique_ptr<http::Pipeline> pipeline;
  net::HttpsServer server(
      options,
      // Asynchronous: a request waiting for its audit record's fsync frees its io thread,
      // so concurrent requests share the trail's group commit.
      [&pipeline](net::Request&& request, const net::ConnectionInfo& conn, net::Responder respond) {
        pipeline->HandleAsync(std::move(request), conn, std::move(respond));
      },
      [&pipeline](net::http::status status, std::string_view message, std::string_view request_id) {
        return pipeline->TransportError(status, message, request_id);
      });
  Status started = server.Start();
  if (!started.ok()) throw StartupError(started.message());

  if (!issuer_configured) {
    std::string shown = host == "0.0.0.0" || host == "::" ? "localhost" : host;
    if (shown.find(':') != std::string::npos) shown = "[" + shown + "]";
    config.auth.issuer = "https://" + shown + ":" + std::to_string(server.port());
    config.auth.audience.clear();
    config.Finalize();
  }

  fhir::ResourceService resources(*dir.store, *dir.keyring, model, clock, config.fhir,
                                  config.limits.json_depth);
  http::AuditingSecurityEventSink events(audit_sink, clock, "local");
  auth::SessionGuard guard(*dir.store, clock);
  if (Status loaded = guard.Load(); !loaded.ok()) {
    throw StartupError("cannot load revoked tokens: " + loaded.message());
  }
  auth::TokenIssuer issuer(*dir.signing_key, config.auth.issuer, config.auth.audience,
                           config.auth.system_token_lifetime_s, config.auth.person_token_lifetime_s,
                           clock);
  auth::TokenVerifier verifier(*dir.signing_key, config.auth.issuer, config.auth.audience,
                               config.auth.clock_skew_s, clock,
                               static_cast<size_t>(config.auth.token_cache_entries), &guard);
  for (const OidcIssuerConfig& provider : config.auth.oidc) {
    net::HttpsGetOptions fetch_options;
    fetch_options.ca_file = provider.ca_file;
    fetch_options.timeout_ms = provider.http_timeout_ms;
    fetch_options.max_body_bytes = auth::kMaxJwksBytes;
    auto source = std::make_unique<auth::OidcKeySource>(
        provider,
        [fetch_options](const std::string& url) { return net::HttpsGet(url, fetch_options); },
        clock);
    // A provider that is down at start is not fatal: its tokens are refused until its
    // keys can be fetched (oidc_keys.h), and the failure is logged.
    (void)source->Refresh();
    verifier.AddProvider(std::move(source));
  }
  auth::AuthorizationCodes codes(clock);
  auth::Accounts accounts(*dir.store, *dir.keyring, clock, config.auth, events);
  auth::LoginEndpoints login(*dir.store, accounts, codes, clock, config.auth, config.auth.issuer,
                             events);
  auth::OAuthEndpoints oauth(*dir.store, issuer, codes, guard, verifier, clock, config.auth,
                             config.auth.issuer, events);
  http::PipelineDeps deps;
  deps.config = &config;
  deps.store = dir.store.get();
  deps.model = &model;
  deps.resources = &resources;
  deps.verifier = &verifier;
  deps.oauth = &oauth;
  deps.login = &login;
  deps.signing_key = dir.signing_key.get();
  deps.clock = &clock;
  policy::BaaGate baa(*dir.store, clock);
  policy::BreakGlassOptions glass_options;
  glass_options.time_box_ms = config.break_glass.time_box_s * 1000;
  glass_options.mfa_max_age_ms = config.break_glass.mfa_max_age_s * 1000;
  glass_options.webhook_url = config.break_glass.webhook_url;
  glass_options.webhook_ca_file = config.break_glass.webhook_ca_file;
  glass_options.webhook_timeout_ms = config.break_glass.webhook_timeout_ms;
  policy::BreakGlass break_glass(*dir.store, *dir.keyring, clock, glass_options);
  deps.policy = &access_policy;
  deps.baa = &baa;
  deps.break_glass = &break_glass;
  deps.audit = &audit_sink;
  deps.audit_reader = trail.reader.get();
  deps.keyring = dir.keyring.get();
  pipeline = std::make_unique<http::Pipeline>(deps);

  audit::Event start;
  start.kind = audit::EventKind::kSystem;
  start.subtype = "start";
  start.action = 'E';
  start.time_ms = clock.NowMillis();
  start.address = "local";
  start.detail = std::string("phigate ") + PHIGATE_VERSION;
  if (auto recorded = audit_sink.Record(start); !recorded.ok()) {
    throw StartupError("the audit trail cannot record: " + recorded.status().message());
  }

  std::cout
      << "phigate " << PHIGATE_VERSION << " serving FHIR R4 at " << config.auth.issuer << "/fhir\n"
      << "data dir: " << config.data_dir << (dir.created ? " (created)" : "") << "\n"
      << "next: create an API client with\n"
      << "  build/phigate clients add --name my-app --scope \"system/*.cruds\" --roles clinician"
      << (config.data_dir != Config{}.data_dir ? " --data-dir " + config.data_dir : std::string())
      << "\n"
      << std::flush;
#ifdef PHIGATE_BENCH_NO_AUTH
  std::cerr << "WARNING: benchmark build without authentication (PHIGATE_BENCH_NO_AUTH): "
               "every /fhir request is served as a fully privileged client. Never deploy.\n";
#endif
#ifdef PHIGATE_BENCH_NO_AUDIT
  std::cerr << "WARNING: benchmark build without the audit trail (PHIGATE_BENCH_NO_AUDIT): "
               "requests are not recorded. Never deploy.\n";
#endif
  Log(LogLevel::kInfo, "server_started", {{"port", static_cast<int>(server.port())}});
  server.Run();
  audit::Event stop = start;
  stop.subtype = "stop";
  stop.time_ms = clock.NowMillis();
  if (auto recorded = audit_sink.Record(stop); !recorded.ok()) {
    Log(LogLevel::kError, "audit.stop_not_recorded");
  }
  // The trail's threads complete every pending record (posting to the stopped server's
  // io_context, which still exists) before the server is destroyed.
  trail.sink.reset();
  trail.log.reset();
  Log(LogLevel::kInfo, "server_stopped");
  return 0;
}

}  // namespace phigate::app
