// Fuzz target for the TOML config loader (core/config.h): ParseConfig, then Finalize on
// what it accepts, as `phigate serve` does at start-up.
//
// Config errors may throw, but only ConfigError (config.h promises it names the key or the
// file); any other exception escaping is a bug, and so libFuzzer reports it as a crash.
// An accepted config must respect the ranges that config.cc enforces.
// Thread-safety: libFuzzer calls this from one thread.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/config.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  phigate::Config config;
  try {
    config = phigate::ParseConfig(text, "fuzz.toml");
  } catch (const phigate::ConfigError& e) {
    FUZZ_CHECK(std::string(e.what()).starts_with("fuzz.toml: "));
    return 0;
  }
  FUZZ_CHECK(config.server.threads >= 0 && config.server.threads <= 256);
  FUZZ_CHECK(config.limits.json_depth >= 8 && config.limits.json_depth <= 512);
  FUZZ_CHECK(config.limits.body_bytes >= 1024);
  FUZZ_CHECK(config.auth.system_token_lifetime_s >= 30 &&
             config.auth.system_token_lifetime_s <= 900);
  FUZZ_CHECK(config.fhir.default_page_size <= config.fhir.max_page_size);
  FUZZ_CHECK(config.tls.min_version == "1.2" || config.tls.min_version == "1.3");
  try {
    config.Finalize();
  } catch (const phigate::ConfigError&) {
    return 0;
  }
  FUZZ_CHECK(!config.auth.issuer.empty() && !config.auth.audience.empty());
  FUZZ_CHECK(!config.tls.certificate_file.empty() && !config.keys.kek_file.empty());
  return 0;
}
