#include "net/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <array>
#include <cstring>
#include <exception>
#include <string_view>

namespace phigate::net {
namespace {

namespace ssl = boost::asio::ssl;

// OpenSSL's reason for the most recent failure, then an empty error queue, so that a later
// failure is not blamed on this one. The reason is library text ("no such file", "key
// values mismatch"), never file content.
std::string TakeOpenSslReason() {
  const unsigned long code = ERR_peek_last_error();
  std::string reason;
  if (code != 0) {
    const char* text = ERR_reason_error_string(code);
    if (text != nullptr) {
      reason = text;
    } else {
      std::array<char, 256> buffer{};
      ERR_error_string_n(code, buffer.data(), buffer.size());
      reason = buffer.data();
    }
  }
  ERR_clear_error();
  return reason.empty() ? "unknown OpenSSL error" : reason;
}

Status FileError(std::string_view option, const std::string& path, std::string_view what) {
  return InvalidArgument(std::string(option) + ": cannot " + std::string(what) + " '" + path +
                         "': " + TakeOpenSslReason());
}

// ALPN (RFC 7301): we speak HTTP/1.1 only. Select it when the client offers it; otherwise
// acknowledge nothing and let the handshake continue, as RFC 7301 §3.2 allows for servers
// that do not insist on ALPN. The list is parsed by hand instead of with
// SSL_select_next_proto, whose no-overlap behaviour is easy to misuse (CVE-2024-5535).
int SelectAlpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* out_len,
               const unsigned char* in, unsigned int in_len, void* /*arg*/) {
  static constexpr std::string_view kHttp11 = "http/1.1";
  unsigned int i = 0;
  while (i < in_len) {
    const unsigned int len = in[i];
    if (len == 0 || len > in_len - i - 1) break;  // malformed list
    if (len == kHttp11.size() && std::memcmp(in + i + 1, kHttp11.data(), len) == 0) {
      *out = in + i + 1;
      *out_len = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

Result<std::unique_ptr<ssl::context>> MakeServerTlsContext(const TlsSettings& settings) {
  int min_version = 0;
  if (settings.min_version == "1.2") {
    min_version = TLS1_2_VERSION;
  } else if (settings.min_version == "1.3") {
    min_version = TLS1_3_VERSION;
  } else {
    return InvalidArgument(R"(tls.min_version: must be "1.2" or "1.3")");
  }
  if (settings.certificate_file.empty()) {
    return InvalidArgument("tls.certificate_file: not set");
  }
  if (settings.private_key_file.empty()) {
    return InvalidArgument("tls.private_key_file: not set");
  }

  ERR_clear_error();
  std::unique_ptr<ssl::context> context;
  try {
    context = std::make_unique<ssl::context>(ssl::context::tls_server);
  } catch (const std::exception&) {
    return Internal("tls: cannot create an OpenSSL context: " + TakeOpenSslReason());
  }
  SSL_CTX* ctx = context->native_handle();

  // Asio's tls_server starts at TLS 1.0; narrow the range explicitly. The SSL_OP_NO_*
  // version flags are redundant with the minimum but keep the intent visible in
  // SSL_CTX_get_options for audits.
  if (SSL_CTX_set_min_proto_version(ctx, min_version) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
    return Internal("tls: cannot set the protocol versions: " + TakeOpenSslReason());
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                               SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
  // With SSL_OP_NO_TICKET, TLS 1.3 resumption uses stateful tickets in the server-side
  // session cache, whose entries expire; the context id scopes that cache to phigate.
  static constexpr std::string_view kSessionIdContext = "phigate";
  SSL_CTX_set_session_id_context(ctx,
                                 reinterpret_cast<const unsigned char*>(kSessionIdContext.data()),
                                 static_cast<unsigned int>(kSessionIdContext.size()));

  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, kTls13Ciphersuites) != 1) {
    return Internal("tls: cannot set the cipher suites: " + TakeOpenSslReason());
  }
  if (SSL_CTX_set1_groups_list(ctx, kGroups) != 1) {
    return Internal("tls: cannot set the key exchange groups: " + TakeOpenSslReason());
  }
  SSL_CTX_set_alpn_select_cb(ctx, SelectAlpn, nullptr);

  if (SSL_CTX_use_certificate_chain_file(ctx, settings.certificate_file.c_str()) != 1) {
    return FileError("tls.certificate_file", settings.certificate_file, "load certificate");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, settings.private_key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return FileError("tls.private_key_file", settings.private_key_file, "load private key");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return FileError("tls.private_key_file", settings.private_key_file,
                     "use private key (does not match tls.certificate_file)");
  }
  return context;
}

}  // namespace phigate::net
