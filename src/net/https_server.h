// HttpsServer: the TLS listener and HTTP/1.1 sessions that carry every request to the
// http/ layer (DESIGN.md "The request pipeline": TLS accept -> HTTP parse with limits).
//
// The server owns transport only: TLS (1.2+ with AEAD ciphers, see tls_context.h),
// keep-alive, size limits, deadlines, the connection cap and graceful shutdown. It never
// looks at what a request means; each complete request is handed to the Handler, and
// transport-level rejections (malformed, too large, ...) are built by the ErrorResponder so
// that their bodies and security headers come from the http layer.
//
// There is no plaintext listener (DESIGN.md threat model: "PHI in transit").
//
// Thread-safety: Start() and Run() are called once each, from one thread. Stop(), port()
// and active_connections() may be called from any thread, also while Run() is running.
// The Handler and the ErrorResponder run concurrently on the io threads (one call at a
// time per connection) and must be thread-safe.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace phigate::net {

namespace http = boost::beast::http;

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

struct ConnectionInfo {
  std::string remote_address;  // the peer's IP address, as text
};

// Runs on an io thread for each complete request; must not throw (if it does, the server
// logs "handler_exception" and answers 500 via the ErrorResponder as a last resort).
// The response's keep_alive() is honoured (and may be overridden to close the connection).
using Handler = std::function<Response(Request&& request, const ConnectionInfo& conn)>;

// Completes a request that an AsyncHandler answers later: call it exactly once, from any
// thread; `make` then runs on the connection's strand and returns the response (an
// exception escaping it becomes a 500, as with Handler).
using Responder = std::function<void(std::function<Response()> make)>;
// Like Handler, but the answer may come after the call returns (the audit trail's fsync,
// issue 5: the io thread serves other connections meanwhile, so concurrent requests share
// one group commit). Must not throw after calling `respond`.
using AsyncHandler =
    std::function<void(Request&& request, const ConnectionInfo& conn, Responder respond)>;

// Builds transport-level rejections (400 malformed, 413 body too large, 431 headers too
// large, 501 unsupported transfer coding, 500) so that their bodies and security headers
// come from the http layer. `message` is client-safe text. The connection is always closed
// after such a response. `request_id` is the raw X-Request-Id of the request when its header
// was read (empty otherwise), so the rejection can echo it; the responder validates it.
using ErrorResponder = std::function<Response(http::status status, std::string_view message,
                                              std::string_view request_id)>;

// Mirrors ServerConfig, LimitsConfig and TlsConfig (core/config.h); app/ copies them over.
struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8443;  // 0 = any free port (tests); see HttpsServer::port()
  int threads = 0;       // 0 = std::thread::hardware_concurrency()
  int max_connections = 1024;
  int64_t header_bytes = 16384;          // request line + header fields
  int64_t body_bytes = 8 << 20;          // decoded body (Content-Length or the sum of chunks)
  int64_t read_timeout_ms = 15000;       // one whole request, from its first byte
  int64_t write_timeout_ms = 15000;      // one whole response (also bounds the TLS close)
  int64_t idle_timeout_ms = 60000;       // keep-alive wait for the next request's first byte
  int64_t handshake_timeout_ms = 10000;  // the TLS handshake
  int64_t shutdown_grace_ms = 10000;     // Stop(): in-flight requests get this long
  std::string certificate_file;          // PEM, leaf first, then intermediates
  std::string private_key_file;          // PEM
  std::string min_tls_version = "1.2";   // "1.2" | "1.3"
  bool handle_signals = true;            // SIGTERM/SIGINT -> Stop()
};

class HttpsServer {
 public:
  HttpsServer(ServerOptions options, Handler handler, ErrorResponder error_responder);
  HttpsServer(ServerOptions options, AsyncHandler handler, ErrorResponder error_responder);
  // Stops the server; call Stop() and wait for Run() to return before destroying it.
  ~HttpsServer();
  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;

  // Validates the options, builds the TLS context, binds and listens. The error names the
  // offending option, file or address.
  Status Start();
  // The bound port (useful with port 0); 0 before a successful Start().
  [[nodiscard]] uint16_t port() const;
  // Runs the thread pool (the calling thread is one of the `threads`); returns after Stop()
  // has completed: no listener, no connection left.
  void Run();
  // Stops accepting, lets in-flight requests finish and their responses be written, closes
  // idle keep-alive connections, and force-closes the rest after shutdown_grace_ms.
  // Thread-safe and idempotent; returns at once (Run() returns when the work is done).
  void Stop();
  // Open connections (accepted and not yet closed).
  [[nodiscard]] size_t active_connections() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace phigate::net
