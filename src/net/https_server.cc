// The listener (ServerCore) and one Session per TLS connection. This is the only
// translation unit that instantiates Beast's HTTP reader and writer, which keeps the
// build fast.
//
// A session's life: TLS handshake -> (idle wait -> read header -> [100 Continue] -> read
// body -> Handler -> write response)* -> TLS close. Every step that waits on the peer runs
// under a deadline, so a slow or silent client costs a socket and a bounded buffer, never a
// thread.
#include "net/https_server.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/ascii.h"
#include "core/log.h"
#include "net/tls_context.h"

namespace phigate::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

// Bytes asked for while waiting for the first byte of a request: one small read that only
// tells us the client is talking; the header read that follows takes what it needs.
constexpr size_t kFirstReadBytes = 4096;
// Room in the read buffer beyond header_bytes: the parser must be able to see more than
// header_bytes of header to report header_limit (431) instead of a full buffer, and one
// TLS record (16 KiB of plaintext) should fit so body reads are not chopped up.
constexpr size_t kReadBufferSlack = 16384;
// Upper bound on a lingering close (see Session::OnShutdown), whatever read_timeout is:
// long enough for the client to receive the rejection, short enough that a client which
// keeps uploading cannot hold the socket.
constexpr Millis kMaxLinger{2000};
constexpr size_t kLingerReadBytes = 4096;
// After a failed accept (EMFILE, ENFILE, ENOBUFS), retrying at once would spin on the
// same error; wait a little for descriptors to be released.
constexpr Millis kAcceptRetryDelay{50};
// At most one "connection_limit" log line per interval, with the count refused since.
constexpr std::chrono::seconds kLimitLogInterval{1};

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

bool IsPeerClose(const error_code& ec) {
  return ec == asio::error::eof || ec == ssl::error::stream_truncated ||
         ec == asio::error::connection_reset || ec == http::error::end_of_stream ||
         ec == http::error::partial_message;
}

// Connection-level failures are routine on the internet (scanners, dropped phones), so
// they are logged at debug level, and only as error categories: never request content.
void LogConnectionError(std::string_view event, const error_code& ec) {
  Log(LogLevel::kDebug, event,
      {{"category", ec.category().name()}, {"code", ec.value()}, {"reason", ec.message()}});
}

struct Rejection {
  http::status status;
  std::string_view message;
};

// Message framing checks that Beast 1.81's parser leaves to us. Beast refuses
// Content-Length after "Transfer-Encoding: chunked" and the reverse order, but accepts a
// Content-Length next to a Transfer-Encoding that does not end in "chunked" (then frames the
// body by Content-Length), and frames a request whose Transfer-Encoding does not end in
// "chunked" as having no body at all; both disagree with RFC 9112 §6.1/§6.3 and are the
// raw material of request smuggling.
std::optional<Rejection> CheckFraming(const Request& request, bool parser_chunked) {
  // RFC 9112 §3.2: exactly one Host in HTTP/1.1; never more than one.
  const size_t hosts = request.count(http::field::host);
  if (hosts > 1 || (hosts == 0 && request.version() >= 11)) {
    return Rejection{http::status::bad_request, "missing or repeated Host header"};
  }
  if (request.count(http::field::transfer_encoding) == 0) return std::nullopt;
  if (request.count(http::field::content_length) > 0) {
    return Rejection{http::status::bad_request,
                     "request has both Content-Length and Transfer-Encoding"};
  }
  // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing cannot be trusted.
  if (request.version() < 11) {
    return Rejection{http::status::bad_request, "Transfer-Encoding in an HTTP/1.0 request"};
  }
  std::vector<std::string_view> codings;
  // Beast keeps fields of one name together, in arrival order, so the codings below are in
  // the order they were applied (RFC 9110 §5.3: repeated fields form one list).
  const auto [first, last] = request.equal_range(http::field::transfer_encoding);
  for (auto it = first; it != last; ++it) {
    std::string_view value = it->value();
    while (!value.empty()) {
      const size_t comma = value.find(',');
      std::string_view item = TrimOws(value.substr(0, comma));
      if (!item.empty()) codings.push_back(item);
      value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
    }
  }
  // RFC 9112 §6.3 item 4: chunked must be the final coding, else 400 and close.
  if (codings.empty() || !beast::iequals(codings.back(), "chunked") || !parser_chunked) {
    return Rejection{http::status::bad_request, "chunked must be the final transfer coding"};
  }
  // RFC 9112 §6.1: we implement no other transfer coding.
  if (codings.size() > 1) {
    return Rejection{http::status::not_implemented, "transfer coding not supported"};
  }
  return std::nullopt;
}

class Session;

// The listener and the state shared by all sessions. ServerCore is HttpsServer::Impl; it is
// a separate name so that Session (file-local) can refer to it.
class ServerCore {
 public:
  ServerCore(ServerOptions options, Handler handler, AsyncHandler async_handler,
             ErrorResponder error_responder);
  ~ServerCore();

  Status Start();
  void Run();
  void Stop();
  uint16_t port() const { return port_.load(); }
  size_t active_connections() const { return active_.load(); }

  // For sessions.
  const ServerOptions& options() const { return options_; }
  ssl::context& tls() { return *tls_; }
  bool stopping() const { return stopping_.load(); }
  bool async() const { return static_cast<bool>(async_handler_); }
  // Calls the Handler; an escaped exception becomes a 500 and sets `failed`.
  Response Handle(Request&& request, const ConnectionInfo& conn, bool& failed);
  // Calls the AsyncHandler; an exception escaping it before it responded becomes a 500.
  void HandleAsync(Request&& request, const ConnectionInfo& conn, Responder respond);
  // Runs an AsyncHandler's `make`; an escaped exception becomes a 500 and sets `failed`.
  Response Make(const std::function<Response()>& make, bool& failed);
  // The ErrorResponder's answer, or a bare one if it throws.
  Response ErrorResponse(http::status status, std::string_view message,
                         std::string_view request_id = {});
  void OnSessionClosed(uint64_t id) noexcept;

 private:
  void Accept();
  void OnAccept(error_code ec, tcp::socket socket);
  void WaitForSignal();
  void DoStop();
  std::vector<std::shared_ptr<Session>> LiveSessions();
  void RunLoop();

  const ServerOptions options_;
  const Handler handler_;
  const AsyncHandler async_handler_;
  const ErrorResponder error_responder_;
  const int threads_;

  // Declared before ioc_: sessions still alive when the io_context is destroyed unregister
  // themselves from its destructor.
  std::mutex sessions_mutex_;
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions_;  // sessions_mutex_
  std::atomic<size_t> active_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> destroying_{false};
  std::atomic<uint16_t> port_{0};
  bool started_ = false;
  std::unique_ptr<ssl::context> tls_;  // outlives every SSL* made from it

  asio::io_context ioc_;
  // The listener's strand: acceptor_, signals_, the timers and the fields below.
  asio::strand<asio::io_context::executor_type> strand_;
  tcp::acceptor acceptor_;
  std::optional<asio::signal_set> signals_;
  asio::steady_timer grace_timer_;
  asio::steady_timer accept_retry_timer_;
  uint64_t next_session_id_ = 0;
  std::optional<SteadyClock::time_point> last_limit_log_;
  int64_t refused_since_log_ = 0;
};

// One TLS connection. All of its handlers run on its own strand (the socket's executor), so
// its fields need no lock; other threads reach it only through NotifyStop/NotifyForceClose,
// which post onto that strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ServerCore& server, tcp::socket socket, std::string remote_address, uint64_t id)
      : server_(server),
        id_(id),
        stream_(std::move(socket), server.tls()),
        buffer_(static_cast<size_t>(server.options().header_bytes) + kReadBufferSlack) {
    conn_.remote_address = std::move(remote_address);
  }
  ~Session() { server_.OnSessionClosed(id_); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void Start() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&Session::Handshake, shared_from_this()));
  }
  // Stop(): finish what is in flight, close when idle.
  void NotifyStop() {
    asio::post(stream_.get_executor(),
               beast::bind_front_handler(&Session::OnServerStop, shared_from_this()));
  }
  // The shutdown grace period is over.
  void NotifyForceClose() {
    asio::post(stream_.get_executor(),
               beast::bind_front_handler(&Session::ForceClose, shared_from_this()));
  }

 private:
  enum class State { kHandshake, kIdle, kReading, kHandling, kWriting, kClosing };
  enum class After { kNextRequest, kClose, kLingerClose };

  beast::tcp_stream& Tcp() { return stream_.next_layer(); }
  const ServerOptions& options() const { return server_.options(); }

  void Handshake() {
    if (server_.stopping()) return;  // accepted just before Stop(): drop it
    state_ = State::kHandshake;
    Tcp().expires_after(Millis(options().handshake_timeout_ms));
    stream_.async_handshake(ssl::stream_base::server,
                            beast::bind_front_handler(&Session::OnHandshake, shared_from_this()));
  }

  void OnHandshake(error_code ec) {
    if (ec) {
      LogConnectionError(
          ec == beast::error::timeout ? "tls_handshake_timeout" : "tls_handshake_failed", ec);
      return;
    }
    WaitForRequest();
  }

  void WaitForRequest() {
    if (stop_requested_ || server_.stopping()) {
      Shutdown(After::kClose);
      return;
    }
    // A fresh parser per message: limits and parse state never leak between requests.
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(options().header_bytes));
    parser_->body_limit(static_cast<uint64_t>(options().body_bytes));
    if (buffer_.size() > 0) {  // pipelined: the next request has already begun
      ReadHeader();
      return;
    }
    // The idle deadline covers only the wait for the first byte; once the client starts a
    // request, the (shorter) read deadline takes over, so a client that stalls mid-request
    // is dropped after read_timeout, not idle_timeout.
    state_ = State::kIdle;
    Tcp().expires_after(Millis(options().idle_timeout_ms));
    stream_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            beast::bind_front_handler(&Session::OnFirstBytes, shared_from_this()));
  }

  void OnFirstBytes(error_code ec, size_t bytes) {
    if (ec) {
      if (ec == asio::error::operation_aborted && stop_requested_) {
        Shutdown(After::kClose);  // Stop() closing an idle keep-alive connection
      } else if (!IsPeerClose(ec)) {
        LogConnectionError(ec == beast::error::timeout ? "idle_timeout" : "read_failed", ec);
      }
      return;
    }
    buffer_.commit(bytes);
    ReadHeader();
  }

  void ReadHeader() {
    state_ = State::kReading;
    // One deadline for the whole request (header and body), not per read: a client that
    // trickles one byte at a time must not be able to extend it.
    request_deadline_ = SteadyClock::now() + Millis(options().read_timeout_ms);
    Tcp().expires_at(request_deadline_);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(error_code ec, size_t /*bytes*/) {
    if (ec) {
      OnReadError(ec);
      return;
    }
    // A declared Content-Length above body_limit never gets here: Beast's parser reports
    // body_limit as soon as the header is complete, so that 413 goes out unread.
    if (auto rejection = CheckFraming(parser_->get(), parser_->chunked())) {
      Reject(rejection->status, rejection->message);
      return;
    }
    if (parser_->is_done()) {
      Dispatch();
      return;
    }
    // RFC 9110 §10.1.1: a client that sent "Expect: 100-continue" may wait for this
    // before sending the body (curl does, for large bodies). It goes out only after the
    // limits and framing checks above, so an oversized upload is refused unsent.
    if (parser_->get().version() >= 11 &&
        beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      Tcp().expires_after(Millis(options().write_timeout_ms));
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        beast::bind_front_handler(&Session::OnContinueSent, shared_from_this()));
      return;
    }
    ReadBody();
  }

  void OnContinueSent(error_code ec, size_t /*bytes*/) {
    if (ec) {
      LogConnectionError(ec == beast::error::timeout ? "write_timeout" : "write_failed", ec);
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    Tcp().expires_at(request_deadline_);  // back to the request's deadline
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnBody, shared_from_this()));
  }

  void OnBody(error_code ec, size_t /*bytes*/) {
    if (ec) {
      OnReadError(ec);
      return;
    }
    Dispatch();
  }

  void OnReadError(const error_code& ec) {
    if (ec == http::error::header_limit ||
        (ec == http::error::buffer_overflow && !parser_->is_header_done())) {
      Reject(http::status::request_header_fields_too_large, "request header fields too large");
    } else if (ec == http::error::body_limit) {
      Reject(http::status::payload_too_large, "request body too large");
    } else if (IsPeerClose(ec)) {
      // The client went away (between requests, or mid-request); nobody to answer.
    } else if (ec.category() == http::make_error_code(http::error::bad_method).category()) {
      Log(LogLevel::kDebug, "malformed_request", {{"code", ec.value()}});
      Reject(http::status::bad_request, "malformed HTTP request");
    } else {
      // A timeout has already closed the socket (beast::tcp_stream does that), so no 408.
      LogConnectionError(ec == beast::error::timeout ? "read_timeout" : "read_failed", ec);
    }
  }

  void Dispatch() {
    state_ = State::kHandling;
    Request request = parser_->release();
    parser_.reset();
    const bool client_keeps_alive = request.keep_alive();
    if (server_.async()) {
      // The answer comes back through the strand; the io thread is free meanwhile.
      auto self = shared_from_this();
      server_.HandleAsync(std::move(request), conn_,
                          [self, client_keeps_alive](std::function<Response()> make) {
                            asio::post(self->stream_.get_executor(),
                                       [self, client_keeps_alive, make = std::move(make)] {
                                         self->Respond(make, client_keeps_alive);
                                       });
                          });
      return;
    }
    bool failed = false;
    // Synchronous: the handler occupies an io thread for its duration.
    Response response = server_.Handle(std::move(request), conn_, failed);
    const bool keep_alive = client_keeps_alive && response.keep_alive() && !failed &&
                            !stop_requested_ && !server_.stopping();
    Send(std::move(response), keep_alive ? After::kNextRequest : After::kClose);
  }

  void Respond(const std::function<Response()>& make, bool client_keeps_alive) {
    bool failed = false;
    Response response = server_.Make(make, failed);
    const bool keep_alive = client_keeps_alive && response.keep_alive() && !failed &&
                            !stop_requested_ && !server_.stopping();
    Send(std::move(response), keep_alive ? After::kNextRequest : After::kClose);
  }

  // Transport-level rejection: the request was not (fully) read, so the connection's byte
  // stream can no longer be trusted; answer and close.
  void Reject(http::status status, std::string_view message) {
    Log(LogLevel::kDebug, "request_rejected", {{"status", static_cast<int>(status)}});
    std::string request_id;
    // Fields parsed before the failure are complete (Beast stores a field only once it
    // has read all of it), even when the header as a whole was refused (413 by length).
    if (parser_) request_id = parser_->get()["X-Request-Id"];
    parser_.reset();
    Send(server_.ErrorResponse(status, message, request_id), After::kLingerClose);
  }

  void Send(Response&& response, After after) {
    response.keep_alive(after == After::kNextRequest);
    if (!response.has_content_length() && !response.chunked()) {
      try {
        response.prepare_payload();
      } catch (const std::exception&) {
        // A body on a 1xx/204/304: the handler broke HTTP framing; never send that.
        Log(LogLevel::kError, "invalid_response",
            {{"status", static_cast<int>(response.result_int())}});
        response = Response{http::status::internal_server_error, 11};
        response.keep_alive(false);
        response.prepare_payload();
        after = After::kClose;
      }
    }
    state_ = State::kWriting;
    response_.emplace(std::move(response));  // must outlive async_write
    Tcp().expires_after(Millis(options().write_timeout_ms));
    http::async_write(stream_, *response_,
                      beast::bind_front_handler(&Session::OnWritten, shared_from_this(), after));
  }

  void OnWritten(After after, error_code ec, size_t /*bytes*/) {
    response_.reset();
    if (ec) {
      LogConnectionError(ec == beast::error::timeout ? "write_timeout" : "write_failed", ec);
      return;
    }
    if (after == After::kNextRequest) {
      WaitForRequest();
    } else {
      Shutdown(after);
    }
  }

  void Shutdown(After after) {
    state_ = State::kClosing;
    // Send our close_notify without waiting for the client's: RFC 8446 §6.1 (and RFC 5246
    // §7.2.1) let the closing side skip that wait. Asio's async_shutdown would otherwise
    // wait for a reply that an idle pooled client never sends, holding the socket (and a
    // graceful Stop()) until the deadline. Marking the peer's alert as received makes
    // SSL_shutdown finish once ours is written.
    SSL* native = stream_.native_handle();
    SSL_set_shutdown(native, SSL_get_shutdown(native) | SSL_RECEIVED_SHUTDOWN);
    Tcp().expires_after(Millis(options().write_timeout_ms));
    stream_.async_shutdown(
        beast::bind_front_handler(&Session::OnShutdown, shared_from_this(), after));
  }

  void OnShutdown(After after, error_code ec) {
    if (ec || after != After::kLingerClose) {
      Tcp().close();
      return;
    }
    // Lingering close (RFC 9112 §9.6): after a rejection the client may still be sending
    // the request we refused to read. Closing with unread data makes the kernel send a RST,
    // which can destroy our response before the client reads it. So half-close and drain
    // until the client closes or a short deadline passes.
    error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Tcp().expires_after(std::min(Millis(options().read_timeout_ms), kMaxLinger));
    buffer_.consume(buffer_.size());
    Linger();
  }

  void Linger() {
    Tcp().async_read_some(buffer_.prepare(kLingerReadBytes),
                          beast::bind_front_handler(&Session::OnLingerRead, shared_from_this()));
  }

  void OnLingerRead(error_code ec, size_t /*bytes*/) {
    if (ec) {  // EOF, error or deadline: done
      Tcp().close();
      return;
    }
    Linger();  // discard: the bytes were never committed to buffer_
  }

  void OnServerStop() {
    stop_requested_ = true;
    switch (state_) {
      case State::kHandshake:
        Tcp().close();  // no request yet, nothing to finish
        break;
      case State::kIdle:
        Tcp().cancel();  // OnFirstBytes sends close_notify
        break;
      default:
        break;  // in flight: the response goes out with "Connection: close"
    }
  }

  void ForceClose() {
    stop_requested_ = true;
    Tcp().close();
  }

  ServerCore& server_;
  const uint64_t id_;
  // beast::ssl_stream, not asio::ssl::stream: Asio's SSL stream hands only the first
  // buffer of a sequence to each SSL_write, so a response (status line, each header
  // field, body) became many small TLS records and syscalls; Beast's wrapper coalesces
  // small buffers into one record.
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;  // bounded: header_bytes + kReadBufferSlack
  ConnectionInfo conn_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<Response> response_;
  SteadyClock::time_point request_deadline_;
  State state_ = State::kHandshake;
  bool stop_requested_ = false;
};

int ResolveThreads(int threads) {
  if (threads > 0) return threads;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

Status ValidateOptions(const ServerOptions& o) {
  if (o.threads < 0) return InvalidArgument("server.threads: must be >= 0");
  if (o.max_connections < 1) return InvalidArgument("server.max_connections: must be >= 1");
  if (o.header_bytes < 1 || o.header_bytes > std::numeric_limits<int32_t>::max()) {
    return InvalidArgument("limits.header_bytes: must be between 1 and 2^31-1");
  }
  if (o.body_bytes < 0) return InvalidArgument("limits.body_bytes: must be >= 0");
  const std::array<std::pair<const char*, int64_t>, 4> timeouts = {{
      {"limits.read_timeout_ms", o.read_timeout_ms},
      {"limits.write_timeout_ms", o.write_timeout_ms},
      {"limits.idle_timeout_ms", o.idle_timeout_ms},
      {"limits.handshake_timeout_ms", o.handshake_timeout_ms},
  }};
  for (const auto& [name, value] : timeouts) {
    if (value < 1) return InvalidArgument(std::string(name) + ": must be > 0");
  }
  if (o.shutdown_grace_ms < 0) return InvalidArgument("server.shutdown_grace_ms: must be >= 0");
  return Status::Ok();
}

std::string HostPort(const std::string& host, uint16_t port) {
  const bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

ServerCore::ServerCore(ServerOptions options, Handler handler, AsyncHandler async_handler,
                       ErrorResponder error_responder)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      async_handler_(std::move(async_handler)),
      error_responder_(std::move(error_responder)),
      threads_(ResolveThreads(options_.threads)),
      ioc_(threads_),
      strand_(asio::make_strand(ioc_)),
      acceptor_(strand_),
      grace_timer_(strand_),
      accept_retry_timer_(strand_) {}

ServerCore::~ServerCore() {
  // Sessions destroyed from here on (with the io_context's pending handlers) must not post
  // to a strand that is being torn down.
  destroying_ = true;
  ioc_.stop();
}

Status ServerCore::Start() {
  if (started_) return Internal("server already started");
  RETURN_IF_ERROR(ValidateOptions(options_));
  ASSIGN_OR_RETURN(tls_, MakeServerTlsContext({options_.certificate_file, options_.private_key_file,
                                               options_.min_tls_version}));

  const std::string where = HostPort(options_.host, options_.port);
  error_code ec;
  tcp::endpoint endpoint;
  const asio::ip::address address = asio::ip::make_address(options_.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, options_.port);
  } else {
    tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(options_.host, std::to_string(options_.port), ec);
    if (ec || results.empty()) {
      return InvalidArgument("server.listen: cannot resolve " + where + ": " +
                             (ec ? ec.message() : "no address"));
    }
    endpoint = results.begin()->endpoint();
  }

  auto listen_error = [&](std::string_view step) {
    error_code ignored;
    acceptor_.close(ignored);
    return Unavailable("server.listen: cannot " + std::string(step) + " " + where + ": " +
                       ec.message());
  };
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return listen_error("open a socket for");
  // Lets a restarted server bind while old connections sit in TIME_WAIT; on Linux it does
  // not let two listeners share the port.
  acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return listen_error("configure");
  acceptor_.bind(endpoint, ec);
  if (ec) return listen_error("bind");
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return listen_error("listen on");
  const tcp::endpoint bound = acceptor_.local_endpoint(ec);
  if (ec) return listen_error("read the address of");
  port_ = bound.port();

  if (options_.handle_signals) {
    signals_.emplace(strand_, SIGINT, SIGTERM);
    WaitForSignal();
  }
  Accept();
  started_ = true;
  Log(LogLevel::kInfo, "listening",
      {{"host", options_.host}, {"port", static_cast<int>(port_.load())}});
  return Status::Ok();
}

void ServerCore::RunLoop() {
  for (;;) {
    try {
      ioc_.run();
      return;
    } catch (...) {
      // Handlers do not throw by design; if one does anyway, keep the thread serving.
      Log(LogLevel::kError, "io_exception");
    }
  }
}

void ServerCore::Run() {
  if (!started_) return;
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads_ - 1));
  for (int i = 1; i < threads_; ++i) pool.emplace_back([this] { RunLoop(); });
  RunLoop();
  for (auto& thread : pool) thread.join();
  Log(LogLevel::kInfo, "listener_stopped");
}

void ServerCore::Stop() {
  if (stopping_.exchange(true)) return;
  asio::post(strand_, [this] { DoStop(); });
}

void ServerCore::WaitForSignal() {
  signals_->async_wait([this](error_code ec, int signal_number) {
    if (ec) return;
    Log(LogLevel::kInfo, "shutdown_signal", {{"signal", signal_number}});
    Stop();
  });
}

void ServerCore::Accept() {
  // Each connection gets its own strand: its handlers never run concurrently, while
  // different connections use every thread of the pool.
  acceptor_.async_accept(asio::make_strand(ioc_), [this](error_code ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void ServerCore::OnAccept(error_code ec, tcp::socket socket) {
  if (stopping_) return;  // `socket` closes as it goes out of scope
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    Log(LogLevel::kWarn, "accept_failed",
        {{"category", ec.category().name()}, {"code", ec.value()}});
    accept_retry_timer_.expires_after(kAcceptRetryDelay);
    accept_retry_timer_.async_wait([this](error_code wait_ec) {
      if (!wait_ec && !stopping_) Accept();
    });
    return;
  }
  if (active_.load() >= static_cast<size_t>(options_.max_connections)) {
    ++refused_since_log_;
    const auto now = SteadyClock::now();
    if (!last_limit_log_ || now - *last_limit_log_ >= kLimitLogInterval) {
      Log(LogLevel::kWarn, "connection_limit",
          {{"refused", refused_since_log_}, {"max_connections", options_.max_connections}});
      last_limit_log_ = now;
      refused_since_log_ = 0;
    }
    // Closed without a TLS alert: the handshake has not begun, and an alert would cost
    // the work the limit is there to avoid.
    error_code ignored;
    socket.close(ignored);
    Accept();
    return;
  }
  error_code endpoint_ec;
  const tcp::endpoint remote = socket.remote_endpoint(endpoint_ec);
  if (endpoint_ec) {  // the client is already gone
    Accept();
    return;
  }
  // A response goes out in one write; Nagle would only delay its last segment.
  socket.set_option(tcp::no_delay(true), endpoint_ec);

  const uint64_t id = ++next_session_id_;
  try {
    // Registered before it starts, so Stop() cannot miss it.
    auto session =
        std::make_shared<Session>(*this, std::move(socket), remote.address().to_string(), id);
    {
      std::lock_guard<std::mutex> lock(sessions_mutex_);
      sessions_.emplace(id, session);
      ++active_;
    }
    session->Start();
  } catch (const std::exception&) {
    // Out of memory, or OpenSSL could not make an SSL object: drop this connection but
    // keep the accept loop alive.
    Log(LogLevel::kError, "session_create_failed");
  }
  Accept();
}

void ServerCore::OnSessionClosed(uint64_t id) noexcept {
  try {
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(sessions_mutex_);
      if (sessions_.erase(id) == 1) --active_;
      last = sessions_.empty();
    }
    // The last connection after Stop(): nothing left for the grace timer to force, and
    // cancelling it lets Run() return now instead of at the end of the grace period.
    if (last && stopping_ && !destroying_) {
      asio::post(strand_, [this] { grace_timer_.cancel(); });
    }
  } catch (...) {
    // Called from ~Session, which must not throw. Only a failed allocation in post() can
    // land here; the grace timer then ends the shutdown instead.
    Log(LogLevel::kError, "session_close_failed");
  }
}

std::vector<std::shared_ptr<Session>> ServerCore::LiveSessions() {
  std::vector<std::shared_ptr<Session>> live;
  std::lock_guard<std::mutex> lock(sessions_mutex_);
  live.reserve(sessions_.size());
  for (auto& [id, weak] : sessions_) {
    if (auto session = weak.lock()) live.push_back(std::move(session));
  }
  return live;
}

void ServerCore::DoStop() {
  error_code ignored;
  acceptor_.close(ignored);
  accept_retry_timer_.cancel();
  if (signals_) {
    // Back to the default disposition: a second SIGTERM ends a stuck shutdown.
    signals_->cancel(ignored);
    signals_->clear(ignored);
  }
  const std::vector<std::shared_ptr<Session>> live = LiveSessions();
  Log(LogLevel::kInfo, "server_stopping", {{"connections", static_cast<uint64_t>(live.size())}});
  if (live.empty()) return;
  for (const auto& session : live) session->NotifyStop();
  grace_timer_.expires_after(Millis(options_.shutdown_grace_ms));
  grace_timer_.async_wait([this](error_code ec) {
    if (ec) return;  // cancelled: every connection closed in time
    const std::vector<std::shared_ptr<Session>> remaining = LiveSessions();
    Log(LogLevel::kWarn, "shutdown_grace_expired",
        {{"connections", static_cast<uint64_t>(remaining.size())}});
    for (const auto& session : remaining) session->NotifyForceClose();
  });
}

Response ServerCore::Handle(Request&& request, const ConnectionInfo& conn, bool& failed) {
  try {
    return handler_(std::move(request), conn);
  } catch (...) {
    Log(LogLevel::kError, "handler_exception");
    failed = true;
    return ErrorResponse(http::status::internal_server_error, "internal error");
  }
}

void ServerCore::HandleAsync(Request&& request, const ConnectionInfo& conn, Responder respond) {
  // Exactly once: a throw after `respond` ran must not answer twice.
  auto responded = std::make_shared<std::atomic<bool>>(false);
  Responder once = [responded, respond](std::function<Response()> make) {
    if (!responded->exchange(true)) respond(std::move(make));
  };
  try {
    async_handler_(std::move(request), conn, once);
  } catch (...) {
    Log(LogLevel::kError, "handler_exception");
    once([]() -> Response { throw std::runtime_error("handler_exception"); });
  }
}

Response ServerCore::Make(const std::function<Response()>& make, bool& failed) {
  try {
    return make();
  } catch (...) {
    failed = true;
    return ErrorResponse(http::status::internal_server_error, "internal error");
  }
}

Response ServerCore::ErrorResponse(http::status status, std::string_view message,
                                   std::string_view request_id) {
  if (error_responder_) {
    try {
      return error_responder_(status, message, request_id);
    } catch (...) {
      Log(LogLevel::kError, "error_responder_exception");
    }
  }
  Response response{status, 11};
  response.set(http::field::content_type, "text/plain; charset=utf-8");
  response.set(http::field::cache_control, "no-store");
  response.body() = std::string(message);
  return response;
}

}  // namespace

class HttpsServer::Impl : public ServerCore {
 public:
  using ServerCore::ServerCore;
};

HttpsServer::HttpsServer(ServerOptions options, Handler handler, ErrorResponder error_responder)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler), AsyncHandler(),
                                   std::move(error_responder))) {}

HttpsServer::HttpsServer(ServerOptions options, AsyncHandler handler,
                         ErrorResponder error_responder)
    : impl_(std::make_unique<Impl>(std::move(options), Handler(), std::move(handler),
                                   std::move(error_responder))) {}

HttpsServer::~HttpsServer() = default;

Status HttpsServer::Start() { return impl_->Start(); }
uint16_t HttpsServer::port() const { return impl_->port(); }
void HttpsServer::Run() { impl_->Run(); }
void HttpsServer::Stop() { impl_->Stop(); }
size_t HttpsServer::active_connections() const { return impl_->active_connections(); }

}  // namespace phigate::net
