#include "core/config.h"

#include <toml++/toml.h>

#include <fstream>
#include <functional>
#include <map>
#include <sstream>

namespace phigate {

namespace {

// One table of known keys per section; each setter checks type and range and throws
// ConfigError naming the key.
using Setter = std::function<void(const toml::node&, const std::string& key)>;

[[noreturn]] void Fail(const std::string& key, const std::string& why) {
  throw ConfigError(key + ": " + why);
}

Setter Str(std::string& dst) {
  return [&dst](const toml::node& n, const std::string& key) {
    auto v = n.value<std::string>();
    if (!n.is_string() || !v) Fail(key, "expected a string");
    dst = *v;
  };
}

Setter Int(int64_t& dst, int64_t lo, int64_t hi) {
  return [&dst, lo, hi](const toml::node& n, const std::string& key) {
    if (!n.is_integer()) Fail(key, "expected an integer");
    int64_t v = *n.value<int64_t>();
    if (v < lo || v > hi) {
      Fail(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    }
    dst = v;
  };
}

Setter Int32(int& dst, int64_t lo, int64_t hi) {
  return [&dst, lo, hi](const toml::node& n, const std::string& key) {
    int64_t v = 0;
    Int(v, lo, hi)(n, key);
    dst = static_cast<int>(v);
  };
}

Setter Bool(bool& dst) {
  return [&dst](const toml::node& n, const std::string& key) {
    if (!n.is_boolean()) Fail(key, "expected true or false");
    dst = *n.value<bool>();
  };
}

Setter StrList(std::vector<std::string>& dst, bool allow_empty) {
  return [&dst, allow_empty](const toml::node& n, const std::string& key) {
    const toml::array* a = n.as_array();
    if (a == nullptr) Fail(key, "expected an array of strings");
    std::vector<std::string> out;
    for (const toml::node& e : *a) {
      auto v = e.value<std::string>();
      if (!e.is_string() || !v || v->empty()) Fail(key, "expected an array of non-empty strings");
      out.push_back(*v);
    }
    if (out.empty() && !allow_empty) Fail(key, "must not be empty");
    dst = std::move(out);
  };
}

Setter OneOf(std::string& dst, std::vector<std::string> allowed) {
  return [&dst, allowed](const toml::node& n, const std::string& key) {
    std::string v;
    Str(v)(n, key);
    for (const auto& a : allowed) {
      if (a == v) {
        dst = v;
        return;
      }
    }
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    Fail(key, "must be one of " + list);
  };
}

std::map<std::string, Setter> Schema(Config& c) {
  constexpr int64_t kDay = 86'400'000;
  return {
      {"data_dir", Str(c.data_dir)},
      {"server.listen", Str(c.server.listen)},
      {"server.threads", Int32(c.server.threads, 0, 256)},
      {"server.max_connections", Int32(c.server.max_connections, 1, 1'000'000)},
      {"server.shutdown_grace_ms", Int(c.server.shutdown_grace_ms, 0, 600'000)},
      {"limits.header_bytes", Int(c.limits.header_bytes, 1024, 1 << 20)},
      {"limits.body_bytes", Int(c.limits.body_bytes, 1024, int64_t{1} << 30)},
      {"limits.json_depth", Int32(c.limits.json_depth, 8, 512)},
      {"limits.read_timeout_ms", Int(c.limits.read_timeout_ms, 100, kDay)},
      {"limits.write_timeout_ms", Int(c.limits.write_timeout_ms, 100, kDay)},
      {"limits.idle_timeout_ms", Int(c.limits.idle_timeout_ms, 100, kDay)},
      {"limits.handshake_timeout_ms", Int(c.limits.handshake_timeout_ms, 100, kDay)},
      {"tls.certificate_file", Str(c.tls.certificate_file)},
      {"tls.private_key_file", Str(c.tls.private_key_file)},
      {"tls.min_version", OneOf(c.tls.min_version, {"1.2", "1.3"})},
      {"tls.hsts_max_age_s", Int(c.tls.hsts_max_age_s, 86'400, 2 * 31'536'000)},
      {"keys.kek_file", Str(c.keys.kek_file)},
      {"keys.signing_key_file", Str(c.keys.signing_key_file)},
      {"keys.audit_signing_key_file", Str(c.keys.audit_signing_key_file)},
      {"auth.issuer", Str(c.auth.issuer)},
      {"auth.audience", Str(c.auth.audience)},
      {"auth.system_token_lifetime_s", Int(c.auth.system_token_lifetime_s, 30, 900)},
      {"auth.person_token_lifetime_s", Int(c.auth.person_token_lifetime_s, 30, 900)},
      {"auth.session_idle_timeout_s", Int(c.auth.session_idle_timeout_s, 60, 86'400)},
      {"auth.session_max_lifetime_s", Int(c.auth.session_max_lifetime_s, 300, 30 * 86'400)},
      {"auth.enrollment_ttl_s", Int(c.auth.enrollment_ttl_s, 300, 7 * 86'400)},
      {"auth.min_password_length", Int32(c.auth.min_password_length, 8, 64)},
      {"auth.max_failed_attempts", Int32(c.auth.max_failed_attempts, 1, 100)},
      {"auth.lockout_base_s", Int(c.auth.lockout_base_s, 1, 86'400)},
      {"auth.lockout_max_s", Int(c.auth.lockout_max_s, 1, 30 * 86'400)},
      {"auth.address_max_failures", Int32(c.auth.address_max_failures, 1, 1'000'000)},
      {"auth.address_window_s", Int(c.auth.address_window_s, 1, 86'400)},
      {"auth.client_assertion_max_lifetime_s",
       Int(c.auth.client_assertion_max_lifetime_s, 30, 3600)},
      {"auth.token_cache_entries", Int32(c.auth.token_cache_entries, 0, 10'000'000)},
      {"auth.clock_skew_s", Int(c.auth.clock_skew_s, 0, 60)},
      {"fhir.update_create", Bool(c.fhir.update_create)},
      {"fhir.default_page_size", Int32(c.fhir.default_page_size, 1, 1000)},
      {"fhir.max_page_size", Int32(c.fhir.max_page_size, 1, 10'000)},
      {"fhir.search_prefix_max", Int32(c.fhir.search_prefix_max, 1, 32)},
      {"fhir.search_scan_budget", Int32(c.fhir.search_scan_budget, 100, 10'000'000)},
      {"fhir.search_cursor_ttl_s", Int(c.fhir.search_cursor_ttl_s, 10, 86'400)},
      {"storage.cache_bytes", Int(c.storage.cache_bytes, 0, int64_t{1} << 40)},
      {"policy.file", Str(c.policy.file)},
      {"policy.outside_compartment",
       OneOf(c.policy.outside_compartment, {"not_found", "forbidden"})},
      {"break_glass.time_box_s", Int(c.break_glass.time_box_s, 1, 86'400)},
      {"break_glass.mfa_max_age_s", Int(c.break_glass.mfa_max_age_s, 30, 3600)},
      {"break_glass.webhook_url", Str(c.break_glass.webhook_url)},
      {"break_glass.webhook_ca_file", Str(c.break_glass.webhook_ca_file)},
      {"break_glass.webhook_timeout_ms", Int(c.break_glass.webhook_timeout_ms, 100, 60'000)},
      {"audit.checkpoint_every_records", Int(c.audit.checkpoint_every_records, 1, 1'000'000)},
      {"audit.checkpoint_every_ms", Int(c.audit.checkpoint_every_ms, 10, 3'600'000)},
      {"audit.append_deadline_ms", Int(c.audit.append_deadline_ms, 50, 60'000)},
      {"audit.commit_interval_us", Int(c.audit.commit_interval_us, 0, 100'000)},
      {"audit.segment_bytes", Int(c.audit.segment_bytes, 4096, int64_t{1} << 34)},
      {"audit.retention_days", Int(c.audit.retention_days, 0, 36'525)},
      {"audit.max_page", Int(c.audit.max_page, 1, 10'000)},
      {"log.level", OneOf(c.log.level, {"debug", "info", "warn", "error"})},
  };
}

std::map<std::string, Setter> OidcSchema(OidcIssuerConfig& o) {
  return {
      {"issuer", Str(o.issuer)},
      {"audience", Str(o.audience)},
      {"algorithms", StrList(o.algorithms, false)},
      {"ca_file", Str(o.ca_file)},
      {"roles_claim", Str(o.roles_claim)},
      {"require_mfa", Bool(o.require_mfa)},
      {"mfa_amr", StrList(o.mfa_amr, false)},
      {"require_at_jwt", Bool(o.require_at_jwt)},
      {"jwks_min_refresh_s", Int(o.jwks_min_refresh_s, 1, 86'400)},
      {"jwks_max_age_s", Int(o.jwks_max_age_s, 60, 7 * 86'400)},
      {"http_timeout_ms", Int(o.http_timeout_ms, 100, 60'000)},
  };
}

void WalkOidc(const toml::table& table, const std::string& key,
              std::vector<OidcIssuerConfig>& out) {
  OidcIssuerConfig o;
  auto schema = OidcSchema(o);
  for (const auto& [k, node] : table) {
    std::string sub = key + "." + std::string(k.str());
    auto it = schema.find(std::string(k.str()));
    if (it == schema.end()) Fail(sub, "unknown key");
    it->second(node, sub);
  }
  if (o.issuer.rfind("https://", 0) != 0 || o.issuer.size() <= 8) {
    Fail(key + ".issuer", "required, and must be an https:// URL");
  }
  if (o.audience.empty()) Fail(key + ".audience", "required");
  for (const auto& alg : o.algorithms) {
    if (alg != "RS256" && alg != "ES256" && alg != "EdDSA") {
      Fail(key + ".algorithms", "supported algorithms are RS256, ES256 and EdDSA");
    }
  }
  for (const auto& other : out) {
    if (other.issuer == o.issuer) Fail(key + ".issuer", "configured twice");
  }
  out.push_back(std::move(o));
}

void Walk(const toml::table& table, const std::string& prefix,
          const std::map<std::string, Setter>& schema, Config& config) {
  for (const auto& [k, node] : table) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (key == "auth.oidc") {
      // [auth.oidc] (one provider) or [[auth.oidc]] (several).
      if (const toml::table* t = node.as_table()) {
        WalkOidc(*t, key, config.auth.oidc);
      } else if (const toml::array* a = node.as_array(); a != nullptr && a->is_array_of_tables()) {
        for (size_t i = 0; i < a->size(); ++i) {
          WalkOidc(*a->get(i)->as_table(), key + "[" + std::to_string(i) + "]", config.auth.oidc);
        }
      } else {
        Fail(key, "expected a table or an array of tables");
      }
      continue;
    }
    if (node.is_table()) {
      bool known_section = false;
      for (const auto& [name, _] : schema) {
        if (name.rfind(key + ".", 0) == 0) known_section = true;
      }
      if (!known_section) Fail(key, "unknown section");
      Walk(*node.as_table(), key, schema, config);
      continue;
    }
    auto it = schema.find(key);
    if (it == schema.end()) Fail(key, "unknown key");
    it->second(node, key);
  }
}

}  // namespace

Config ParseConfig(const std::string& text, const std::string& origin) {
  Config config;
  toml::table table;
  try {
    table = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << origin << ": line " << e.source().begin.line << ": " << e.description();
    throw ConfigError(msg.str());
  }
  try {
    Walk(table, "", Schema(config), config);
  } catch (const ConfigError& e) {
    throw ConfigError(origin + ": " + e.what());
  }
  if (config.auth.lockout_base_s > config.auth.lockout_max_s) {
    throw ConfigError(origin + ": auth.lockout_base_s: must not exceed auth.lockout_max_s");
  }
  if (config.fhir.default_page_size > config.fhir.max_page_size) {
    throw ConfigError(origin + ": fhir.default_page_size: must not exceed fhir.max_page_size");
  }
  const std::string& hook = config.break_glass.webhook_url;
  if (!hook.empty() && hook.rfind("https://", 0) != 0) {
    throw ConfigError(origin + ": break_glass.webhook_url: must be an https:// URL");
  }
  return config;
}

Config LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read the config file");
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseConfig(buf.str(), path);
}

void SplitHostPort(const std::string& value, const std::string& key, std::string& host,
                   uint16_t& port) {
  size_t colon = value.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == value.size()) {
    Fail(key, "expected HOST:PORT");
  }
  host = value.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::string p = value.substr(colon + 1);
  if (p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) {
    Fail(key, "port must be a number between 0 and 65535");
  }
  int n = std::stoi(p);
  if (n > 65535) Fail(key, "port must be a number between 0 and 65535");
  port = static_cast<uint16_t>(n);
}

void Config::Finalize() {
  if (data_dir.empty()) throw ConfigError("data_dir: must not be empty");
  std::string host;
  uint16_t port = 0;
  SplitHostPort(server.listen, "server.listen", host, port);
  if (tls.certificate_file.empty()) tls.certificate_file = data_dir + "/tls/cert.pem";
  if (tls.private_key_file.empty()) tls.private_key_file = data_dir + "/tls/key.pem";
  if (keys.kek_file.empty()) keys.kek_file = data_dir + "/keys/kek";
  if (keys.signing_key_file.empty()) keys.signing_key_file = data_dir + "/keys/token-signing.pem";
  if (keys.audit_signing_key_file.empty()) {
    keys.audit_signing_key_file = data_dir + "/keys/audit-signing.pem";
  }
  if (auth.issuer.empty()) {
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    if (h == "0.0.0.0" || h == "[::]") h = "localhost";
    auth.issuer = "https://" + h + ":" + std::to_string(port);
  }
  if (auth.audience.empty()) auth.audience = auth.issuer + "/fhir";
  fhir.base_url = auth.issuer + "/fhir";
}

}  // namespace phigate
