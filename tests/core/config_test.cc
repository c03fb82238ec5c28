#include "core/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace phigate {
namespace {

using ::testing::HasSubstr;

std::string ErrorOf(const std::string& toml) {
  try {
    ParseConfig(toml, "test.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(ConfigTest, DefaultsAreTheStrictOnes) {
  Config c = ParseConfig("", "empty.toml");
  EXPECT_EQ(c.server.listen, "127.0.0.1:8443");
  EXPECT_EQ(c.data_dir, ".phigate");
  EXPECT_EQ(c.limits.body_bytes, 8 * 1024 * 1024);
  EXPECT_EQ(c.limits.json_depth, 64);
  EXPECT_EQ(c.tls.min_version, "1.2");
  EXPECT_EQ(c.auth.system_token_lifetime_s, 900);
  EXPECT_FALSE(c.fhir.update_create);
}

TEST(ConfigTest, ParsesEverySection) {
  Config c = ParseConfig(R"(
data_dir = "/var/lib/phigate"
[server]
listen = "0.0.0.0:9443"
threads = 4
[limits]
body_bytes = 1048576
json_depth = 32
[tls]
min_version = "1.3"
[auth]
system_token_lifetime_s = 300
[fhir]
update_create = true
[log]
level = "warn"
)",
                         "full.toml");
  EXPECT_EQ(c.data_dir, "/var/lib/phigate");
  EXPECT_EQ(c.server.listen, "0.0.0.0:9443");
  EXPECT_EQ(c.server.threads, 4);
  EXPECT_EQ(c.limits.body_bytes, 1048576);
  EXPECT_EQ(c.limits.json_depth, 32);
  EXPECT_EQ(c.tls.min_version, "1.3");
  EXPECT_EQ(c.auth.system_token_lifetime_s, 300);
  EXPECT_TRUE(c.fhir.update_create);
  EXPECT_EQ(c.log.level, "warn");
}

TEST(ConfigTest, UnknownKeyIsNamed) {
  EXPECT_EQ(ErrorOf("[server]\nlisten_port = 1\n"), "test.toml: server.listen_port: unknown key");
  EXPECT_EQ(ErrorOf("[nope]\nx = 1\n"), "test.toml: nope: unknown section");
  EXPECT_EQ(ErrorOf("colour = 1\n"), "test.toml: colour: unknown key");
}

TEST(ConfigTest, BadValuesAreNamed) {
  EXPECT_EQ(ErrorOf("[limits]\nbody_bytes = \"big\"\n"),
            "test.toml: limits.body_bytes: expected an integer");
  EXPECT_EQ(ErrorOf("[limits]\njson_depth = 1\n"),
            "test.toml: limits.json_depth: must be between 8 and 512");
  EXPECT_EQ(ErrorOf("[tls]\nmin_version = \"1.0\"\n"),
            "test.toml: tls.min_version: must be one of 1.2, 1.3");
  EXPECT_EQ(ErrorOf("[auth]\nsystem_token_lifetime_s = 3600\n"),
            "test.toml: auth.system_token_lifetime_s: must be between 30 and 900");
  EXPECT_EQ(ErrorOf("[fhir]\nupdate_create = 1\n"),
            "test.toml: fhir.update_create: expected true or false");
}

TEST(ConfigTest, SyntaxErrorNamesFileAndLine) {
  EXPECT_THAT(ErrorOf("a = \n"), HasSubstr("test.toml: line 1"));
}

TEST(ConfigTest, UnreadableFileIsNamed) {
  try {
    LoadConfig("/nonexistent/phigate.toml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/phigate.toml: cannot read the config file");
  }
}

TEST(ConfigTest, FinalizeDerivesPathsAndIssuer) {
  Config c;
  c.data_dir = "/d";
  c.server.listen = "127.0.0.1:9000";
  c.Finalize();
  EXPECT_EQ(c.tls.certificate_file, "/d/tls/cert.pem");
  EXPECT_EQ(c.keys.kek_file, "/d/keys/kek");
  EXPECT_EQ(c.auth.issuer, "https://127.0.0.1:9000");
  EXPECT_EQ(c.auth.audience, "https://127.0.0.1:9000/fhir");
}

TEST(ConfigTest, ListenMustBeHostPort) {
  Config c;
  c.server.listen = "localhost";
  EXPECT_THROW(c.Finalize(), ConfigError);
  c.server.listen = "127.0.0.1:99999";
  EXPECT_THROW(c.Finalize(), ConfigError);
  std::string host;
  uint16_t port = 0;
  SplitHostPort("[::1]:8443", "k", host, port);
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 8443);
}

}  // namespace
}  // namespace phigate

namespace phigate {
namespace {

TEST(ConfigTest, PolicyAndBreakGlassKeys) {
  Config d = ParseConfig("", "empty.toml");
  EXPECT_EQ(d.policy.file, "");
  EXPECT_EQ(d.policy.outside_compartment, "not_found");
  EXPECT_EQ(d.break_glass.time_box_s, 3600);
  EXPECT_EQ(d.break_glass.mfa_max_age_s, 300);
  EXPECT_EQ(d.break_glass.webhook_url, "");

  Config c = ParseConfig(R"(
[policy]
file = "/etc/phigate/policy.toml"
outside_compartment = "forbidden"
[break_glass]
time_box_s = 900
mfa_max_age_s = 120
webhook_url = "https://alerts.example.org/hook"
webhook_ca_file = "/etc/ca.pem"
webhook_timeout_ms = 2000
)",
                         "p.toml");
  EXPECT_EQ(c.policy.file, "/etc/phigate/policy.toml");
  EXPECT_EQ(c.policy.outside_compartment, "forbidden");
  EXPECT_EQ(c.break_glass.time_box_s, 900);
  EXPECT_EQ(c.break_glass.mfa_max_age_s, 120);
  EXPECT_EQ(c.break_glass.webhook_url, "https://alerts.example.org/hook");
  EXPECT_EQ(c.break_glass.webhook_ca_file, "/etc/ca.pem");
  EXPECT_EQ(c.break_glass.webhook_timeout_ms, 2000);

  EXPECT_EQ(ErrorOf("[policy]\noutside_compartment = \"hide\"\n"),
            "test.toml: policy.outside_compartment: must be one of not_found, forbidden");
  EXPECT_EQ(ErrorOf("[break_glass]\nwebhook_url = \"http://alerts.example.org\"\n"),
            "test.toml: break_glass.webhook_url: must be an https:// URL");
  EXPECT_EQ(ErrorOf("[break_glass]\ntime_box_s = 0\n"),
            "test.toml: break_glass.time_box_s: must be between 1 and 86400");
  EXPECT_EQ(ErrorOf("[break_glass]\nmfa_max_age_s = 7200\n"),
            "test.toml: break_glass.mfa_max_age_s: must be between 30 and 3600");
}

TEST(ConfigTest, AuditKeys) {
  Config d = ParseConfig("", "empty.toml");
  d.Finalize();
  EXPECT_EQ(d.audit.checkpoint_every_records, 1000);
  EXPECT_EQ(d.audit.checkpoint_every_ms, 1000);
  EXPECT_EQ(d.audit.append_deadline_ms, 2000);
  EXPECT_EQ(d.audit.commit_interval_us, 1000);
  EXPECT_EQ(d.audit.segment_bytes, 64 * 1024 * 1024);
  EXPECT_EQ(d.audit.retention_days, 2191);
  EXPECT_EQ(d.audit.max_page, 1000);
  EXPECT_EQ(d.keys.audit_signing_key_file, ".phigate/keys/audit-signing.pem");

  Config c = ParseConfig(R"(
[keys]
audit_signing_key_file = "/etc/phigate/audit.pem"
[audit]
checkpoint_every_records = 5
checkpoint_every_ms = 250
append_deadline_ms = 100
commit_interval_us = 0
segment_bytes = 4096
retention_days = 0
max_page = 20
)",
                         "a.toml");
  EXPECT_EQ(c.keys.audit_signing_key_file, "/etc/phigate/audit.pem");
  EXPECT_EQ(c.audit.checkpoint_every_records, 5);
  EXPECT_EQ(c.audit.checkpoint_every_ms, 250);
  EXPECT_EQ(c.audit.append_deadline_ms, 100);
  EXPECT_EQ(c.audit.commit_interval_us, 0);
  EXPECT_EQ(c.audit.segment_bytes, 4096);
  EXPECT_EQ(c.audit.retention_days, 0);
  EXPECT_EQ(c.audit.max_page, 20);

  EXPECT_EQ(ErrorOf("[audit]\ncheckpoint_every_records = 0\n"),
            "test.toml: audit.checkpoint_every_records: must be between 1 and 1000000");
  EXPECT_EQ(ErrorOf("[audit]\nappend_deadline_ms = 10\n"),
            "test.toml: audit.append_deadline_ms: must be between 50 and 60000");
  EXPECT_EQ(ErrorOf("[audit]\nretention_days = -1\n"),
            "test.toml: audit.retention_days: must be between 0 and 36525");
  EXPECT_EQ(ErrorOf("[audit]\nsegment = 1\n"), "test.toml: audit.segment: unknown key");
}

}  // namespace
}  // namespace phigate
