// Config: every option of phigate, with safe defaults, loaded from one TOML file.
//
// LoadConfig throws ConfigError naming the offending key (or file) for an unknown key, a
// value of the wrong type or out of range, or an unreadable file. Secrets are never config
// values: the config names key files, which the loaders check for permissions.
// Thread-safety: a Config is an immutable value after start-up.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace phigate {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ServerConfig {
  std::string listen = "127.0.0.1:8443";  // [server] listen
  int threads = 0;                        // 0 = one per core
  int max_connections = 1024;
  int64_t shutdown_grace_ms = 10'000;  // in-flight requests get this long after SIGTERM
};

struct LimitsConfig {
  int64_t header_bytes = 16 * 1024;
  int64_t body_bytes = 8 * 1024 * 1024;
  int json_depth = 64;
  int64_t read_timeout_ms = 15'000;   // to receive one whole request once it has begun
  int64_t write_timeout_ms = 15'000;  // to send one whole response
  int64_t idle_timeout_ms = 60'000;   // keep-alive wait for the next request
  int64_t handshake_timeout_ms = 10'000;
};

struct TlsConfig {
  std::string certificate_file;     // default <data_dir>/tls/cert.pem
  std::string private_key_file;     // default <data_dir>/tls/key.pem
  std::string min_version = "1.2";  // "1.2" or "1.3"
  int64_t hsts_max_age_s = 31'536'000;
};

struct KeysConfig {
  std::string kek_file;          // default <data_dir>/keys/kek (32 random bytes, 0600)
  std::string signing_key_file;  // default <data_dir>/keys/token-signing.pem (0600)
  // The audit trail's checkpoint key (Ed25519, its own key; issue 5 §3).
  std::string audit_signing_key_file;  // default <data_dir>/keys/audit-signing.pem (0600)
};

// An external OpenID provider whose access tokens phigate accepts ([[auth.oidc]]).
struct OidcIssuerConfig {
  std::string issuer;    // required; https; must equal the discovery document's issuer
  std::string audience;  // required; the aud phigate's tokens must carry (resource indicator)
  std::vector<std::string> algorithms = {"RS256", "ES256", "EdDSA"};
  std::string ca_file;  // PEM bundle that verifies the provider's TLS; empty: system store
  std::string roles_claim = "roles";  // a string array (or space-separated string) claim
  bool require_mfa = true;            // people's tokens must carry a second factor in amr
  // RFC 8176 amr values that count as a second factor.
  std::vector<std::string> mfa_amr = {"mfa", "otp", "hwk",  "swk",  "sms",    "tel",
                                      "sc",  "fpt", "face", "iris", "retina", "vbm"};
  bool require_at_jwt = true;       // header typ must be at+jwt (RFC 9068)
  int64_t jwks_min_refresh_s = 60;  // an unknown kid refetches the JWKS at most this often
  int64_t jwks_max_age_s = 3600;    // cached keys are refetched after this long
  int64_t http_timeout_ms = 5000;   // discovery and JWKS fetches
};

struct AuthConfig {
  std::string issuer;                     // default https://<listen>
  std::string audience;                   // default <issuer>/fhir
  int64_t system_token_lifetime_s = 900;  // client credentials; at most 900
  int64_t person_token_lifetime_s = 300;  // people (authorization code, refresh); <= 900
  int token_cache_entries = 100'000;
  int64_t clock_skew_s = 60;
  // Built-in authorization server: sessions (automatic logoff) and login protection.
  int64_t session_idle_timeout_s = 900;     // a refresh token unused this long expires
  int64_t session_max_lifetime_s = 43'200;  // a session ends this long after login
  int64_t enrollment_ttl_s = 86'400;        // enrollment links expire
  int min_password_length = 12;             // NIST SP 800-63B: at least 8
  int max_failed_attempts = 5;              // consecutive failures before the account locks
  int64_t lockout_base_s = 60;              // first lock; doubles per further failure
  int64_t lockout_max_s = 3600;
  int address_max_failures = 20;  // failures from one address within the window -> 429
  int64_t address_window_s = 300;
  int64_t client_assertion_max_lifetime_s = 300;  // private_key_jwt exp - now (RFC 7523)
  std::vector<OidcIssuerConfig> oidc;
};

struct FhirConfig {
  bool update_create = false;  // PUT to a new id creates it
  int default_page_size = 50;
  int max_page_size = 1000;
  // Search (issue 6; docs/search-security.md): string prefixes of 1..n code points get a
  // blind index entry, so a starts-with search narrows exactly up to n characters.
  int search_prefix_max = 8;
  // Candidates one search page decrypts at most before it ends early with a next link.
  int search_scan_budget = 10000;
  // How long a search's next link stays valid.
  int64_t search_cursor_ttl_s = 600;
  // Not a setting: the server's FHIR base URL (auth.issuer + "/fhir"), filled in when the
  // configuration is loaded. Search resolves absolute references under it to local
  // Type/id; absolute references to other servers match only by URL. Empty: none resolve.
  std::string base_url;
};

struct StorageConfig {
  // Ciphertext of hot resources' newest versions kept in memory by `serve`, so reads skip
  // SQLite; 0 disables. Never plaintext.
  int64_t cache_bytes = 64 * 1024 * 1024;
};

// [policy] (issue 4, docs/policy.md).
struct PolicyConfig {
  std::string file;  // TOML role policy; empty: the shipped default policy
  // A compartment-restricted caller asking for a resource outside its compartment gets
  // 404 (existence not revealed) by default; "forbidden" answers 403 instead.
  std::string outside_compartment = "not_found";  // "not_found" | "forbidden"
};

// [break_glass] (issue 4 §5).
struct BreakGlassConfig {
  int64_t time_box_s = 3600;    // a grant lasts this long per user and patient
  int64_t mfa_max_age_s = 300;  // opening a grant needs a second factor this recent
  std::string webhook_url;      // optional https:// URL; POSTed once per new grant
  std::string webhook_ca_file;  // PEM bundle for the webhook's TLS; empty: system store
  int64_t webhook_timeout_ms = 5000;
};

// [audit] (issue 5, docs/audit.md).
struct AuditConfig {
  int64_t checkpoint_every_records = 1000;   // a signed checkpoint every N records ...
  int64_t checkpoint_every_ms = 1000;        // ... or T milliseconds, whichever comes first
  int64_t append_deadline_ms = 2000;         // a record not durable by then fails (503)
  int64_t commit_interval_us = 1000;         // under load, at most one fsync per interval (0: none)
  int64_t segment_bytes = 64 * 1024 * 1024;  // a new segment file beyond this size
  // HIPAA §164.316(b)(2)(i): documentation is kept six years; `audit purge` refuses younger.
  int64_t retention_days = 2191;
  int64_t max_page = 1000;  // the largest _count of GET /fhir/AuditEvent
};

struct LogConfig {
  std::string level = "info";  // debug, info, warn, error
};

struct Config {
  std::string data_dir = ".phigate";
  ServerConfig server;
  LimitsConfig limits;
  TlsConfig tls;
  KeysConfig keys;
  AuthConfig auth;
  FhirConfig fhir;
  StorageConfig storage;
  PolicyConfig policy;
  BreakGlassConfig break_glass;
  AuditConfig audit;
  LogConfig log;

  // Fills the defaults that derive from other values (paths under data_dir, issuer from
  // listen). Call after command-line overrides. Throws ConfigError.
  void Finalize();
};

// Parses a TOML file. Throws ConfigError("<file>: <key>: <reason>").
Config LoadConfig(const std::string& path);
// Parses TOML text; `origin` names it in errors.
Config ParseConfig(const std::string& text, const std::string& origin);

// Splits "host:port" ("[::1]:8443" for IPv6). Throws ConfigError naming `key`.
void SplitHostPort(const std::string& value, const std::string& key, std::string& host,
                   uint16_t& port);

}  // namespace phigate
