// Throwaway TLS material and shell helpers for the net/ tests.
//
// TestTlsFiles() makes, once per test process, an ECDSA P-256 self-signed certificate for
// localhost/127.0.0.1 and a second, unrelated key (for mismatch tests) in a temporary
// directory that is removed at exit. It uses the openssl CLI: the tests must not depend on
// the code they test to produce their inputs. Thread-safety: call from test threads only.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace phigate::net::test_support {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr, interleaved
};

// Runs `command` through /bin/sh with stderr merged into stdout.
inline CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> chunk;
  size_t n = 0;
  while ((n = std::fread(chunk.data(), 1, chunk.size(), pipe)) > 0) {
    result.output.append(chunk.data(), n);
  }
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

struct TlsFiles {
  std::filesystem::path dir;
  std::string certificate;  // PEM, CN=localhost, SAN DNS:localhost, IP:127.0.0.1
  std::string private_key;  // PEM, matches `certificate`
  std::string other_key;    // PEM, matches nothing

  ~TlsFiles() {
    std::error_code ignored;
    if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
  }
};

inline const TlsFiles& TestTlsFiles() {
  static const TlsFiles* const files = [] {
    static TlsFiles made;
    std::string pattern =
        (std::filesystem::temp_directory_path() / "phigate-net-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    made.dir = pattern;
    made.certificate = (made.dir / "cert.pem").string();
    made.private_key = (made.dir / "key.pem").string();
    made.other_key = (made.dir / "other-key.pem").string();
    const CommandResult cert = RunCommand(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -days 2"
        " -keyout '" +
        made.private_key + "' -out '" + made.certificate +
        "' -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1");
    if (cert.exit_code != 0) throw std::runtime_error("openssl req failed: " + cert.output);
    const CommandResult key =
        RunCommand("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out '" +
                   made.other_key + "'");
    if (key.exit_code != 0) throw std::runtime_error("openssl genpkey failed: " + key.output);
    return &made;
  }();
  return *files;
}

}  // namespace phigate::net::test_support
