#include "net/https_server.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/log.h"
#include "net/test_tls_files.h"

namespace phigate::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = boost::asio::ssl;
using boost::system::error_code;
using tcp = boost::asio::ip::tcp;
using test_support::RunCommand;
using test_support::TestTlsFiles;
using ::testing::AnyOf;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Not;
using SteadyClock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

// Every wait in these tests is bounded by this; it is far above any deadline under test,
// so slow (sanitized, shared) machines do not make the tests flaky.
constexpr Millis kClientTimeout{20000};
// Deadlines under test are this short; assertions allow a wide margin above them.
constexpr int64_t kShortMs = 300;

Millis Since(SteadyClock::time_point start) {
  return std::chrono::duration_cast<Millis>(SteadyClock::now() - start);
}

// Polls `condition` until it holds or kClientTimeout passes.
bool WaitFor(const std::function<bool()>& condition) {
  const auto deadline = SteadyClock::now() + kClientTimeout;
  while (!condition()) {
    if (SteadyClock::now() > deadline) return false;
    std::this_thread::sleep_for(Millis(10));
  }
  return true;
}

// The connection was closed by the server: with our close_notify (eof), without it
// (stream_truncated), or by a reset.
auto IsClosedByPeer() {
  return AnyOf(Eq(error_code(asio::error::eof)), Eq(error_code(ssl::error::stream_truncated)),
               Eq(error_code(asio::error::connection_reset)));
}

// A blocking-style TLS client whose every operation has a deadline (kClientTimeout), so a
// misbehaving server fails the test instead of hanging it. It verifies the server's
// certificate against the test CA and the name "localhost".
class TestClient {
 public:
  explicit TestClient(uint16_t port) : port_(port), stream_(tcp_stream(ioc_), context()) {}

  error_code Connect() {
    return Await([&](auto handler) {
      stream_.next_layer().async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_),
                                         handler);
    });
  }

  error_code Handshake() {
    SSL_set_tlsext_host_name(stream_.native_handle(), "localhost");
    stream_.set_verify_mode(ssl::verify_peer);
    stream_.set_verify_callback(ssl::host_name_verification("localhost"));
    return Await([&](auto handler) { stream_.async_handshake(ssl::stream_base::client, handler); });
  }

  // Connect and handshake; fails the test on error.
  void Open() {
    ASSERT_FALSE(Connect()) << "connect";
    const error_code ec = Handshake();
    ASSERT_FALSE(ec) << "handshake: " << ec.message();
  }

  error_code Write(const std::string& bytes) {
    return Await([&](auto handler) { asio::async_write(stream_, asio::buffer(bytes), handler); });
  }

  // Reads one response; empty on error (stored in last_error()).
  std::optional<http::response<http::string_body>> ReadResponse() {
    http::response_parser<http::string_body> parser;
    parser.body_limit(boost::none);
    last_error_ = Await([&](auto handler) { http::async_read(stream_, buffer_, parser, handler); });
    if (last_error_) return std::nullopt;
    return parser.release();
  }

  // Writes a request and reads its response.
  std::optional<http::response<http::string_body>> RoundTrip(const std::string& request) {
    last_error_ = Write(request);
    if (last_error_) return std::nullopt;
    return ReadResponse();
  }

  // Reads the raw bytes of the stream until it ends; returns how it ended.
  error_code ReadUntilClosed() {
    for (;;) {
      const error_code ec =
          Await([&](auto handler) { stream_.async_read_some(buffer_.prepare(4096), handler); });
      if (ec) return ec;
    }
  }

  // The same on the TCP layer, for a client that never starts TLS.
  error_code ReadTcpUntilClosed() {
    for (;;) {
      const error_code ec = Await([&](auto handler) {
        stream_.next_layer().async_read_some(buffer_.prepare(4096), handler);
      });
      if (ec) return ec;
    }
  }

  // Reads exactly `size` bytes (e.g. an interim response) without interpreting them.
  std::string ReadExactly(size_t size) {
    std::string bytes(size, '\0');
    last_error_ =
        Await([&](auto handler) { asio::async_read(stream_, asio::buffer(bytes), handler); });
    return bytes;
  }

  [[nodiscard]] error_code last_error() const { return last_error_; }

 private:
  using tcp_stream = beast::tcp_stream;

  static ssl::context& context() {
    static ssl::context ctx = [] {
      ssl::context made(ssl::context::tls_client);
      made.load_verify_file(TestTlsFiles().certificate);
      return made;
    }();
    return ctx;
  }

  template <typename Initiate>
  error_code Await(Initiate&& initiate) {
    error_code result = asio::error::would_block;
    stream_.next_layer().expires_after(kClientTimeout);
    initiate([&result](error_code ec, auto&&...) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result;
  }

  uint16_t port_;
  asio::io_context ioc_;
  ssl::stream<tcp_stream> stream_;
  beast::flat_buffer buffer_;
  error_code last_error_;
};

std::string Get(std::string_view target, std::string_view extra_headers = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: localhost\r\n" +
         std::string(extra_headers) + "\r\n";
}

std::string Post(std::string_view target, const std::string& body) {
  return "POST " + std::string(target) +
         " HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

class HttpsServerTest : public ::testing::Test {
 protected:
  // Options for a test server: port 0, two threads, generous deadlines (each test shortens
  // the one it is about), no signal handling (the test process owns its signals).
  static ServerOptions BaseOptions() {
    ServerOptions options;
    options.port = 0;
    options.threads = 2;
    options.certificate_file = TestTlsFiles().certificate;
    options.private_key_file = TestTlsFiles().private_key;
    options.read_timeout_ms = 10000;
    options.write_timeout_ms = 10000;
    options.idle_timeout_ms = 30000;
    options.handshake_timeout_ms = 10000;
    options.shutdown_grace_ms = 30000;
    options.handle_signals = false;
    return options;
  }

  void StartServer(const std::function<void(ServerOptions&)>& adjust = {}) {
    ServerOptions options = BaseOptions();
    if (adjust) adjust(options);
    server_ = std::make_unique<HttpsServer>(
        options,
        [this](Request&& request, const ConnectionInfo& conn) {
          return Echo(std::move(request), conn);
        },
        [this](http::status status, std::string_view message, std::string_view request_id) {
          return RespondError(status, message, request_id);
        });
    const Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.message();
    ASSERT_NE(server_->port(), 0);
    std::promise<void> done;
    run_done_ = done.get_future();
    runner_ = std::thread([this, done = std::move(done)]() mutable {
      server_->Run();
      done.set_value();
    });
  }

  // A server whose requests go to `handler` (asynchronous), on `threads` io threads.
  void StartAsyncServer(AsyncHandler handler, int threads) {
    ServerOptions options = BaseOptions();
    options.threads = threads;
    server_ = std::make_unique<HttpsServer>(
        options, std::move(handler),
        [this](http::status status, std::string_view message, std::string_view request_id) {
          return RespondError(status, message, request_id);
        });
    const Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.message();
    std::promise<void> done;
    run_done_ = done.get_future();
    runner_ = std::thread([this, done = std::move(done)]() mutable {
      server_->Run();
      done.set_value();
    });
  }

  // Stops the server and checks that Run() returns within `limit`.
  void StopServer(Millis limit = kClientTimeout) {
    if (!server_) return;
    server_->Stop();
    const bool returned = run_done_.wait_for(limit) == std::future_status::ready;
    EXPECT_TRUE(returned) << "Run() did not return after Stop()";
    if (returned) {
      runner_.join();
      server_.reset();
    } else {
      // Leave the stuck server alone rather than destroy it under a running thread.
      runner_.detach();
      (void)server_.release();
    }
  }

  void TearDown() override { StopServer(); }

  [[nodiscard]] uint16_t port() const { return server_->port(); }

  Response Echo(Request&& request, const ConnectionInfo& conn) {
    if (request.target() == "/slow") {
      slow_started_ = true;
      std::this_thread::sleep_for(Millis(slow_handler_ms_));
    }
    if (request.target().starts_with("/throw")) throw std::runtime_error("handler failure");
    Response response{http::status::ok, request.version()};
    response.set(http::field::content_type, "text/plain");
    response.body() = std::string(request.method_string()) + " " + std::string(request.target()) +
                      " " + std::to_string(request.body().size()) + " " + conn.remote_address;
    response.keep_alive(request.keep_alive());
    response.prepare_payload();
    return response;
  }

  Response RespondError(http::status status, std::string_view message,
                        std::string_view request_id) {
    if (error_responder_throws_) throw std::runtime_error("responder failure");
    Response response{status, 11};
    response.set("X-Error-Responder", "yes");
    response.set("X-Seen-Request-Id", request_id);
    response.body() = "error: " + std::string(message);
    response.keep_alive(false);
    response.prepare_payload();
    return response;
  }

  std::unique_ptr<HttpsServer> server_;
  std::thread runner_;
  std::future<void> run_done_;
  std::atomic<bool> slow_started_{false};
  int64_t slow_handler_ms_ = 1000;
  std::atomic<bool> error_responder_throws_{false};
};

// --- HTTP/1.1 semantics ---------------------------------------------------------------

TEST_F(HttpsServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  StartServer();
  TestClient client(port());
  client.Open();
  auto first = client.RoundTrip(Get("/first"));
  ASSERT_TRUE(first) << client.last_error().message();
  EXPECT_EQ(first->result(), http::status::ok);
  EXPECT_EQ(first->body(), "GET /first 0 127.0.0.1");
  EXPECT_TRUE(first->keep_alive());

  auto second = client.RoundTrip(Post("/second", "hello"));
  ASSERT_TRUE(second) << client.last_error().message();
  EXPECT_EQ(second->body(), "POST /second 5 127.0.0.1");
  EXPECT_EQ(server_->active_connections(), 1u);
}

TEST_F(HttpsServerTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer();
  TestClient client(port());
  client.Open();
  ASSERT_FALSE(client.Write(Get("/one") + Post("/two", "abc") + Get("/three")));
  for (const char* expected : {"GET /one 0", "POST /two 3", "GET /three 0"}) {
    auto response = client.ReadResponse();
    ASSERT_TRUE(response) << client.last_error().message();
    EXPECT_THAT(response->body(), HasSubstr(expected));
  }
}

TEST_F(HttpsServerTest, ConnectionCloseEndsTheConnectionWithCloseNotify) {
  StartServer();
  TestClient client(port());
  client.Open();
  auto response = client.RoundTrip(Get("/", "Connection: close\r\n"));
  ASSERT_TRUE(response) << client.last_error().message();
  EXPECT_EQ(response->result(), http::status::ok);
  EXPECT_FALSE(response->keep_alive());
  // eof (not stream_truncated) means the server sent a TLS close_notify.
  EXPECT_EQ(client.ReadUntilClosed(), error_code(asio::error::eof));
}

TEST_F(HttpsServerTest, Http10WithoutKeepAliveIsClosedAfterTheResponse) {
  StartServer();
  TestClient client(port());
  client.Open();
  auto response = client.RoundTrip("GET /old HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(response) << client.last_error().message();
  EXPECT_EQ(response->body(), "GET /old 0 127.0.0.1");
  EXPECT_THAT(client.ReadUntilClosed(), IsClosedByPeer());
}

// --- Transport-level rejections --------------------------------------------------------

// Sends `request` on a fresh connection; expects a rejection built by the ErrorResponder
// with `status`, and then that the server closes the connection.
void ExpectRejected(uint16_t port, const std::string& request, http::status status,
                    std::string_view message = {}) {
  TestClient client(port);
  client.Open();
  auto response = client.RoundTrip(request);
  ASSERT_TRUE(response) << client.last_error().message();
  EXPECT_EQ(response->result(), status);
  EXPECT_EQ((*response)["X-Error-Responder"], "yes");
  if (!message.empty()) {
    EXPECT_EQ(response->body(), "error: " + std::string(message));
  }
  EXPECT_FALSE(response->keep_alive());
  EXPECT_THAT(client.ReadUntilClosed(), IsClosedByPeer());
}

TEST_F(HttpsServerTest, DeclaredBodyOverTheLimitIsRefusedBeforeItIsSent) {
  StartServer([](ServerOptions& o) { o.body_bytes = 1024; });
  // Only the header is sent: the 413 must not wait for the body.
  ExpectRejected(port(), "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1025\r\n\r\n",
                 http::status::payload_too_large, "request body too large");
  // The header was read, so the rejection can echo the client's request id.
  TestClient rejected(port());
  rejected.Open();
  auto with_id = rejected.RoundTrip(
      "POST /upload HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: rid-413\r\n"
      "Content-Length: 1025\r\n\r\n");
  ASSERT_TRUE(with_id) << rejected.last_error().message();
  EXPECT_EQ(with_id->result(), http::status::payload_too_large);
  EXPECT_EQ((*with_id)["X-Seen-Request-Id"], "rid-413");
  // A body of exactly the limit is fine.
  TestClient client(port());
  client.Open();
  auto response = client.RoundTrip(Post("/upload", std::string(1024, 'x')));
  ASSERT_TRUE(response) << client.last_error().message();
  EXPECT_EQ(response->body(), "POST /upload 1024 127.0.0.1");
}

TEST_F(HttpsServerTest, ChunkedBodyOverTheLimitIs413) {
  StartServer([](ServerOptions& o) { o.body_bytes = 1024; });
  const std::string head =
      "POST /c HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
  ExpectRejected(port(), head + "400\r\n" + std::string(1024, 'x') + "\r\n1\r\nx\r\n0\r\n\r\n",
                 http::status::payload_too_large);
  TestClient client(port());
  client.Open();
  auto response = client.RoundTrip(head + "5\r\nhello\r\n0\r\n\r\n");
  ASSERT_TRUE(response) << client.last_error().message();
  EXPECT_EQ(response->body(), "POST /c 5 127.0.0.1");
}

TEST_F(HttpsServerTest, HeadersOverTheLimitAre431) {
  StartServer([](ServerOptions& o) { o.header_bytes = 1024; });
  ExpectRejected(port(), Get("/", "X-Big: " + std::string(2000, 'h') + "\r\n"),
                 http::status::request_header_fields_too_large, "request header fields too large");
  // Far beyond the read buffer, too. The client is still sending when the server answers;
  // without a lingering close the server's RST often destroys the 431 before the client
  // reads it, hence several rounds.
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE(round);
    ExpectRejected(port(), Get("/", "X-Huge: " + std::string(100000, 'h') + "\r\n"),
                   http::status::request_header_fields_too_large);
  }
}

// Request smuggling (RFC 9112 §6.3, §11.2): a body length that two parsers could read
// differently must be refused, whatever the order of the fields.
TEST_F(HttpsServerTest, ContentLengthWithTransferEncodingIs400) {
  StartServer();
  const std::string body = "5\r\nhello\r\n0\r\n\r\n";
  for (const std::string& fields : {
           std::string("Content-Length: 15\r\nTransfer-Encoding: chunked\r\n"),
           std::string("Transfer-Encoding: chunked\r\nContent-Length: 15\r\n"),
           // Beast 1.81 accepts this one silently and frames the body by Content-Length.
           std::string("Transfer-Encoding: gzip\r\nContent-Length: 15\r\n"),
           std::string("Transfer-Encoding: identity\r\nContent-Length: 15\r\n"),
       }) {
    SCOPED_TRACE(fields);
    std::string request = "POST / HTTP/1.1\r\nHost: localhost\r\n";
    request += fields;
    request += "\r\n";
    request += body;
    ExpectRejected(port(), request, http::status::bad_request);
  }
}

TEST_F(HttpsServerTest, TransferEncodingThatDoesNotEndInChunkedIs400) {
  StartServer();
  for (const std::string& fields : {
           // Beast 1.81 would read this request as having no body and the body as the next
           // request.
           std::string("Transfer-Encoding: gzip\r\n"),
           std::string("Transfer-Encoding: chunked, gzip\r\n"),
           std::string("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
           std::string("Transfer-Encoding: ,\r\n"),
       }) {
    SCOPED_TRACE(fields);
    ExpectRejected(
        port(), "POST / HTTP/1.1\r\nHost: localhost\r\n" + fields + "\r\n5\r\nhello\r\n0\r\n\r\n",
        http::status::bad_request);
  }
  ExpectRejected(port(), "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 http::status::bad_request);
}

TEST_F(HttpsServerTest, TransferCodingsOtherThanChunkedAre501) {
  StartServer();
  for (const std::string& fields : {
           std::string("Transfer-Encoding: gzip, chunked\r\n"),
           // Split over two fields with another field between them.
           std::string("Transfer-Encoding: gzip\r\nX-Other: 1\r\nTransfer-Encoding: chunked\r\n"),
       }) {
    SCOPED_TRACE(fields);
    ExpectRejected(
        port(), "POST / HTTP/1.1\r\nHost: localhost\r\n" + fields + "\r\n5\r\nhello\r\n0\r\n\r\n",
        http::status::not_implemented);
  }
}

TEST_F(HttpsServerTest, GarbageRequestLineIs400) {
  StartServer();
  for (const std::string& request : {
           std::string("this is not HTTP\r\n\r\n"),
           std::string("GET /\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nHost localhost\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n"
                       "Content-Length: 2\r\n\r\nxx"),
       }) {
    SCOPED_TRACE(request);
    ExpectRejected(port(), request, http::status::bad_request, "malformed HTTP request");
  }
}

TEST_F(HttpsServerTest, MissingOrRepeatedHostIs400) {
  StartServer();
  ExpectRejected(port(), "GET / HTTP/1.1\r\n\r\n", http::status::bad_request);
  ExpectRejected(port(), "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", http::status::bad_request);
}

TEST_F(HttpsServerTest, HandlerExceptionBecomes500ViaTheErrorResponder) {
  StartServer();
  TestClient client(port());
  client.Open();
  auto response = client.RoundTrip(Get("/throw"));
  ASSERT_TRUE(response) << client.last_error().message();
  EXPECT_EQ(response->result(), http::status::internal_server_error);
  EXPECT_EQ((*response)["X-Error-Responder"], "yes");
  EXPECT_EQ(response->body(), "error: internal error");
  EXPECT_THAT(client.ReadUntilClosed(), IsClosedByPeer());
}

// --- Asynchronous handlers (issue 5: waiting for an audit record's fsync must not hold an
// io thread, or concurrent requests could never share one group commit) ----------------

TEST_F(HttpsServerTest, AsyncHandlerAnswersLaterWithoutHoldingTheIoThread) {
  std::mutex mu;
  std::condition_variable arrived;
  std::vector<std::pair<std::string, Responder>> pending;  // guarded by mu
  StartAsyncServer(
      [&](Request&& request, const ConnectionInfo&, Responder respond) {
        std::lock_guard lock(mu);
        pending.emplace_back(std::string(request.target()), std::move(respond));
        arrived.notify_all();
      },
      /*threads=*/1);
  // One io thread: the second and third requests are read only because the first
  // handler call returned without an answer.
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<TestClient>(port()));
    clients.back()->Open();
    ASSERT_FALSE(clients.back()->Write(Get("/r" + std::to_string(i))));
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(arrived.wait_for(lock, kClientTimeout, [&] { return pending.size() == 3; }));
  }
  // Answered from this thread (not an io thread), newest first.
  for (size_t i = pending.size(); i-- > 0;) {
    pending[i].second([target = pending[i].first] {
      Response response{http::status::ok, 11};
      response.body() = "answer " + target;
      response.keep_alive(true);
      return response;
    });
  }
  for (int i = 0; i < 3; ++i) {
    auto response = clients[i]->ReadResponse();
    ASSERT_TRUE(response) << clients[i]->last_error().message();
    EXPECT_EQ(response->result(), http::status::ok);
    EXPECT_EQ(response->body(), "answer /r" + std::to_string(i));
    EXPECT_TRUE(response->keep_alive());
  }
}

TEST_F(HttpsServerTest, AsyncHandlerThatThrowsBeforeAnsweringGets500) {
  StartAsyncServer([](Request&&, const ConnectionInfo&,
                      Responder) -> void { throw std::runtime_error("handler failure"); },
                   2);
  TestClient client(port());
  client.Open();
  auto response = client.RoundTrip(Get("/"));
  ASSERT_TRUE(response) << client.last_error().message();
  EXPECT_EQ(response->result(), http::status::internal_server_error);
  EXPECT_EQ(response->body(), "error: internal error");
  EXPECT_THAT(client.ReadUntilClosed(), IsClosedByPeer());
}

TEST_F(HttpsServerTest, AsyncAnswerThatThrowsGets500AndASecondAnswerIsIgnored) {
  StartAsyncServer(
      [](Request&&, const ConnectionInfo&, Responder respond) {
        respond([]() -> Response { throw std::runtime_error("make failure"); });
        respond([] { return Response{http::status::ok, 11}; });  // never sent
      },
      2);
  TestClient client(port());
  client.Open();
  auto response = client.RoundTrip(Get("/"));
  ASSERT_TRUE(response) << client.last_error().message();
  EXPECT_EQ(response->result(), http::status::internal_server_error);
  EXPECT_THAT(client.ReadUntilClosed(), IsClosedByPeer());
}

TEST_F(HttpsServerTest, ErrorResponderExceptionFallsBackToABare500) {
  StartServer();
  error_responder_throws_ = true;
  TestClient client(port());
  client.Open();
  auto response = client.RoundTrip(Get("/throw"));
  ASSERT_TRUE(response) << client.last_error().message();
  EXPECT_EQ(response->result(), http::status::internal_server_error);
  EXPECT_EQ(response->count("X-Error-Responder"), 0u);
  EXPECT_EQ(response->body(), "internal error");
}

// --- Expect: 100-continue --------------------------------------------------------------

TEST_F(HttpsServerTest, ExpectContinueIsAnsweredBeforeTheBody) {
  StartServer();
  TestClient client(port());
  client.Open();
  ASSERT_FALSE(
      client.Write("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\n"
                   "Expect: 100-continue\r\n\r\n"));
  const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
  EXPECT_EQ(client.ReadExactly(interim.size()), interim);
  ASSERT_FALSE(client.last_error()) << client.last_error().message();
  ASSERT_FALSE(client.Write(std::string(5000, 'b')));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response) << client.last_error().message();
  EXPECT_EQ(response->body(), "POST /upload 5000 127.0.0.1");
}

TEST_F(HttpsServerTest, ExpectContinueOverTheLimitGets413InsteadOf100) {
  StartServer([](ServerOptions& o) { o.body_bytes = 1024; });
  // ReadResponse would return a 100 Continue as the response, so this fails if one is sent.
  ExpectRejected(port(),
                 "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\n"
                 "Expect: 100-continue\r\n\r\n",
                 http::status::payload_too_large);
}

std::string WriteUploadFile(const std::string& name, size_t size) {
  std::string path = (TestTlsFiles().dir / name).string();
  std::ofstream(path, std::ios::binary) << std::string(size, 'u');
  return path;
}

std::string Curl(uint16_t port, const std::string& file) {
  return "curl -sS -v --max-time 30 --cacert '" + TestTlsFiles().certificate +
         "' --data-binary @'" + file +
         "' -w '\\nstatus=%{http_code}\\n' https://127.0.0.1:" + std::to_string(port) + "/upload";
}

TEST_F(HttpsServerTest, CurlUploadUsesExpectContinue) {
  StartServer();
  const auto result = RunCommand(Curl(port(), WriteUploadFile("upload-2m.bin", 2 << 20)));
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("> Expect: 100-continue"));
  EXPECT_THAT(result.output, HasSubstr("< HTTP/1.1 100 Continue"));
  EXPECT_THAT(result.output, HasSubstr("POST /upload 2097152 127.0.0.1"));
  EXPECT_THAT(result.output, HasSubstr("status=200"));
}

TEST_F(HttpsServerTest, CurlOversizedUploadGets413WithoutContinue) {
  StartServer([](ServerOptions& o) { o.body_bytes = 1 << 20; });
  const auto result = RunCommand(Curl(port(), WriteUploadFile("upload-too-big.bin", 2 << 20)));
  EXPECT_THAT(result.output, HasSubstr("status=413"));
  EXPECT_THAT(result.output, Not(HasSubstr("100 Continue")));
}

// --- Deadlines -------------------------------------------------------------------------

TEST_F(HttpsServerTest, StalledRequestIsDroppedAfterReadTimeoutWhileOthersAreServed) {
  // The idle deadline is long: only the read deadline can end this connection in time.
  StartServer([](ServerOptions& o) { o.read_timeout_ms = kShortMs; });
  TestClient stalled(port());
  stalled.Open();
  const auto start = SteadyClock::now();
  ASSERT_FALSE(stalled.Write("GET / HTTP/1.1\r\nHost: loc"));

  TestClient other(port());
  other.Open();
  auto response = other.RoundTrip(Get("/other"));
  ASSERT_TRUE(response) << other.last_error().message();
  EXPECT_EQ(response->result(), http::status::ok);

  EXPECT_THAT(stalled.ReadUntilClosed(), IsClosedByPeer());
  const Millis elapsed = Since(start);
  EXPECT_GE(elapsed, Millis(kShortMs * 8 / 10));
  EXPECT_LT(elapsed, Millis(10000));

  // Still serving after the drop.
  auto again = other.RoundTrip(Get("/again"));
  ASSERT_TRUE(again) << other.last_error().message();
  EXPECT_EQ(again->body(), "GET /again 0 127.0.0.1");
}

TEST_F(HttpsServerTest, TricklingClientCannotExtendTheReadDeadline) {
  StartServer([](ServerOptions& o) { o.read_timeout_ms = kShortMs; });
  TestClient client(port());
  client.Open();
  const auto start = SteadyClock::now();
  const std::string request = Get("/", "X-Padding: " + std::string(200, 'p') + "\r\n");
  // One byte every 50 ms would take over 10 s; the server must not wait that long.
  for (char byte : request) {
    if (client.Write(std::string(1, byte))) break;  // the server has closed
    std::this_thread::sleep_for(Millis(50));
    if (Since(start) > Millis(5000)) break;
  }
  EXPECT_LT(Since(start), Millis(5000));
  EXPECT_THAT(client.ReadUntilClosed(),
              AnyOf(IsClosedByPeer(), Eq(error_code(asio::error::broken_pipe))));
}

TEST_F(HttpsServerTest, IdleKeepAliveConnectionIsDroppedAfterIdleTimeout) {
  StartServer([](ServerOptions& o) { o.idle_timeout_ms = kShortMs; });
  TestClient client(port());
  client.Open();
  ASSERT_TRUE(client.RoundTrip(Get("/")));
  const auto start = SteadyClock::now();
  EXPECT_THAT(client.ReadUntilClosed(), IsClosedByPeer());
  const Millis elapsed = Since(start);
  EXPECT_GE(elapsed, Millis(kShortMs * 8 / 10));
  EXPECT_LT(elapsed, Millis(10000));
  EXPECT_TRUE(WaitFor([&] { return server_->active_connections() == 0; }));
}

TEST_F(HttpsServerTest, ClientThatNeverHandshakesIsDropped) {
  StartServer([](ServerOptions& o) { o.handshake_timeout_ms = kShortMs; });
  TestClient client(port());
  ASSERT_FALSE(client.Connect());
  const auto start = SteadyClock::now();
  EXPECT_THAT(client.ReadTcpUntilClosed(), AnyOf(Eq(error_code(asio::error::eof)),
                                                 Eq(error_code(asio::error::connection_reset))));
  const Millis elapsed = Since(start);
  EXPECT_GE(elapsed, Millis(kShortMs * 8 / 10));
  EXPECT_LT(elapsed, Millis(10000));
  EXPECT_TRUE(WaitFor([&] { return server_->active_connections() == 0; }));
}

// --- Connection limit ------------------------------------------------------------------

// Redirects the process log to a file for the lifetime of the object.
class LogCapture {
 public:
  LogCapture(const std::string& name, LogLevel level)
      : path_((TestTlsFiles().dir / name).string()),
        fd_(::open(path_.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600)) {
    SetLogLevel(level);
    SetLogFd(fd_);
  }
  ~LogCapture() { Release(); }
  // Restores stderr and returns everything logged.
  std::string Release() {
    if (fd_ >= 0) {
      SetLogFd(2);
      SetLogLevel(LogLevel::kInfo);
      ::close(fd_);
      fd_ = -1;
    }
    std::ifstream in(path_);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

 private:
  std::string path_;
  int fd_;
};

size_t CountOccurrences(const std::string& text, std::string_view needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

TEST_F(HttpsServerTest, MaxConnectionsIsEnforced) {
  StartServer([](ServerOptions& o) { o.max_connections = 2; });
  auto first = std::make_unique<TestClient>(port());
  first->Open();
  TestClient second(port());
  second.Open();
  ASSERT_TRUE(WaitFor([&] { return server_->active_connections() == 2; }));

  LogCapture log("max-connections.log", LogLevel::kInfo);
  const auto start = SteadyClock::now();
  for (int i = 0; i < 3; ++i) {
    TestClient refused(port());
    ASSERT_FALSE(refused.Connect());  // the kernel accepts; the server then closes at once
    EXPECT_TRUE(refused.Handshake()) << "connection over the limit was served";
  }
  const Millis elapsed = Since(start);
  const std::string logged = log.Release();
  // Once per second at most.
  const size_t lines = CountOccurrences(logged, R"("event":"connection_limit")");
  EXPECT_GE(lines, 1u) << logged;
  EXPECT_LE(lines, 1u + static_cast<size_t>(elapsed.count() / 1000)) << logged;

  first.reset();  // frees a slot once the server notices
  ASSERT_TRUE(WaitFor([&] { return server_->active_connections() == 1; }));
  TestClient third(port());
  third.Open();
  auto response = third.RoundTrip(Get("/third"));
  ASSERT_TRUE(response) << third.last_error().message();
  EXPECT_EQ(response->result(), http::status::ok);
}

// --- Shutdown --------------------------------------------------------------------------

TEST_F(HttpsServerTest, StopLetsTheInFlightRequestFinishAndClosesIdleConnections) {
  StartServer();  // grace 30 s: Run() must return long before it
  TestClient idle(port());
  idle.Open();
  ASSERT_TRUE(idle.RoundTrip(Get("/")));
  TestClient busy(port());
  busy.Open();
  ASSERT_FALSE(busy.Write(Get("/slow")));
  ASSERT_TRUE(WaitFor([&] { return slow_started_.load(); }));

  const auto start = SteadyClock::now();
  server_->Stop();
  server_->Stop();  // idempotent
  auto response = busy.ReadResponse();
  ASSERT_TRUE(response) << busy.last_error().message();
  EXPECT_EQ(response->result(), http::status::ok);
  EXPECT_EQ(response->body(), "GET /slow 0 127.0.0.1");
  EXPECT_FALSE(response->keep_alive()) << "a stopping server must not keep connections";
  EXPECT_EQ(busy.ReadUntilClosed(), error_code(asio::error::eof));
  EXPECT_EQ(idle.ReadUntilClosed(), error_code(asio::error::eof));

  EXPECT_EQ(run_done_.wait_for(Millis(10000)), std::future_status::ready);
  EXPECT_LT(Since(start), Millis(10000));
  TestClient late(port());
  EXPECT_TRUE(late.Connect()) << "the listener is still open after Stop()";
}

TEST_F(HttpsServerTest, StopForceClosesWhatIsLeftAfterTheGracePeriod) {
  StartServer([](ServerOptions& o) {
    o.read_timeout_ms = 60000;
    o.shutdown_grace_ms = kShortMs;
  });
  TestClient stalled(port());
  stalled.Open();
  ASSERT_FALSE(stalled.Write("GET / HTTP/1.1\r\nHost: loc"));
  ASSERT_TRUE(WaitFor([&] { return server_->active_connections() == 1; }));
  // Give the server time to start reading the partial request.
  std::this_thread::sleep_for(Millis(100));

  const auto start = SteadyClock::now();
  server_->Stop();
  EXPECT_THAT(stalled.ReadUntilClosed(), IsClosedByPeer());
  EXPECT_EQ(run_done_.wait_for(Millis(10000)), std::future_status::ready);
  const Millis elapsed = Since(start);
  EXPECT_GE(elapsed, Millis(kShortMs * 8 / 10));
  EXPECT_LT(elapsed, Millis(10000));
}

TEST_F(HttpsServerTest, SigtermStopsTheServer) {
  StartServer([](ServerOptions& o) { o.handle_signals = true; });
  TestClient client(port());
  client.Open();
  ASSERT_TRUE(client.RoundTrip(Get("/")));
  ASSERT_EQ(std::raise(SIGTERM), 0);
  EXPECT_EQ(run_done_.wait_for(kClientTimeout), std::future_status::ready);
  EXPECT_THAT(client.ReadUntilClosed(), IsClosedByPeer());
}

// --- Start-up errors -------------------------------------------------------------------

TEST_F(HttpsServerTest, StartNamesTheMissingCertificateFile) {
  ServerOptions options = BaseOptions();
  options.certificate_file = (TestTlsFiles().dir / "no-such-cert.pem").string();
  HttpsServer server(options, Handler(), nullptr);
  const Status status = server.Start();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(options.certificate_file));
}

TEST_F(HttpsServerTest, StartNamesTheAddressInUse) {
  StartServer();
  ServerOptions options = BaseOptions();
  options.port = port();
  HttpsServer second(options, Handler(), nullptr);
  const Status status = second.Start();
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("127.0.0.1:" + std::to_string(port())));
}

TEST_F(HttpsServerTest, StartNamesTheInvalidOption) {
  ServerOptions options = BaseOptions();
  options.read_timeout_ms = 0;
  HttpsServer server(options, Handler(), nullptr);
  EXPECT_THAT(server.Start().message(), HasSubstr("limits.read_timeout_ms"));
  options = BaseOptions();
  options.max_connections = 0;
  HttpsServer no_connections(options, Handler(), nullptr);
  EXPECT_THAT(no_connections.Start().message(), HasSubstr("server.max_connections"));
}

// --- PHI-free logging ------------------------------------------------------------------

TEST_F(HttpsServerTest, DebugLogsCarryNoRequestContent) {
  StartServer([](ServerOptions& o) { o.header_bytes = 1024; });
  const std::string marker = "SECRET-PATIENT-4711";
  LogCapture log("phi.log", LogLevel::kDebug);
  ExpectRejected(
      port(),
      "GET /" + marker + " HTTP/1.1\r\nHost: localhost\r\nBad header " + marker + "\r\n\r\n",
      http::status::bad_request);
  ExpectRejected(port(), Get("/" + marker, "X-Big: " + marker + std::string(2000, 'h') + "\r\n"),
                 http::status::request_header_fields_too_large);
  {
    TestClient client(port());
    client.Open();
    ASSERT_TRUE(client.RoundTrip(Get("/throw?name=" + marker)));
  }
  const std::string logged = log.Release();
  EXPECT_THAT(logged, HasSubstr(R"("event":"malformed_request")"));
  EXPECT_THAT(logged, HasSubstr(R"("event":"handler_exception")"));
  EXPECT_THAT(logged, Not(HasSubstr(marker)));
}

// --- TLS policy, checked with a client we did not write --------------------------------

class TlsPolicyTest : public HttpsServerTest {
 protected:
  test_support::CommandResult SClient(const std::string& flags) {
    return RunCommand("timeout 20 openssl s_client -connect 127.0.0.1:" + std::to_string(port()) +
                      " -servername localhost " + flags + " </dev/null");
  }
};

TEST_F(TlsPolicyTest, Tls12AndTls13AreAccepted) {
  StartServer();
  const auto tls13 = SClient("-tls1_3");
  EXPECT_EQ(tls13.exit_code, 0) << tls13.output;
  EXPECT_THAT(tls13.output, HasSubstr("New, TLSv1.3, Cipher is TLS_AES_"));
  EXPECT_THAT(tls13.output, HasSubstr("Compression: NONE"));

  const auto tls12 = SClient("-tls1_2");
  EXPECT_EQ(tls12.exit_code, 0) << tls12.output;
  EXPECT_THAT(tls12.output, HasSubstr("New, TLSv1.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"));
  EXPECT_THAT(tls12.output, HasSubstr("Compression: NONE"));

  // With no version forced, the client gets 1.3.
  const auto preferred = SClient("");
  EXPECT_THAT(preferred.output, HasSubstr("New, TLSv1.3"));
}

TEST_F(TlsPolicyTest, Tls10AndTls11AreRefusedByTheServer) {
  StartServer();
  // SECLEVEL=0 lifts Debian's client-side floor, so the ClientHello is really sent and the
  // refusal ("protocol version" alert) comes from the server.
  for (const char* version : {"-tls1", "-tls1_1"}) {
    SCOPED_TRACE(version);
    const auto result = SClient(std::string(version) + " -cipher DEFAULT@SECLEVEL=0");
    EXPECT_NE(result.exit_code, 0) << result.output;
    EXPECT_THAT(result.output, Not(HasSubstr("New, TLSv1")));
    EXPECT_THAT(result.output, HasSubstr("alert protocol version"));
  }
}

TEST_F(TlsPolicyTest, NonAeadTls12CiphersAreRefused) {
  StartServer();
  for (const char* cipher :
       {"ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA"}) {
    SCOPED_TRACE(cipher);
    const auto result = SClient(std::string("-tls1_2 -cipher ") + cipher);
    EXPECT_NE(result.exit_code, 0) << result.output;
    EXPECT_THAT(result.output, Not(HasSubstr("New, TLSv1.2")));
    EXPECT_THAT(result.output, HasSubstr("handshake failure"));
  }
}

TEST_F(TlsPolicyTest, MinimumVersion13RefusesTls12) {
  StartServer([](ServerOptions& o) { o.min_tls_version = "1.3"; });
  const auto tls12 = SClient("-tls1_2");
  EXPECT_NE(tls12.exit_code, 0) << tls12.output;
  EXPECT_THAT(tls12.output, HasSubstr("alert protocol version"));
  const auto tls13 = SClient("-tls1_3");
  EXPECT_EQ(tls13.exit_code, 0) << tls13.output;
  EXPECT_THAT(tls13.output, HasSubstr("New, TLSv1.3"));
}

TEST_F(TlsPolicyTest, AlpnSelectsHttp11OnlyWhenOffered) {
  StartServer();
  EXPECT_THAT(SClient("-alpn h2,http/1.1").output, HasSubstr("ALPN protocol: http/1.1"));
  const auto h2_only = SClient("-alpn h2");
  EXPECT_EQ(h2_only.exit_code, 0) << h2_only.output;
  EXPECT_THAT(h2_only.output, HasSubstr("No ALPN negotiated"));
}

}  // namespace
}  // namespace phigate::net
