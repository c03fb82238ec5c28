#include "net/https_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <filesystem>
#include <future>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "net/https_server.h"
#include "net/test_tls_files.h"

namespace phigate::net {
namespace {

namespace asio = boost::asio;
using tcp = boost::asio::ip::tcp;
using test_support::RunCommand;
using test_support::TestTlsFiles;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using SteadyClock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

// Certificates that differ only in their subjectAltName, made once per process with the
// openssl CLI (not with the code under test). All have CN=localhost, so the tests also show
// that the CN is never used for the name check.
struct CertFiles {
  std::filesystem::path dir;
  std::string name_only_cert, name_only_key;  // SAN DNS:localhost
  std::string ip_only_cert, ip_only_key;      // SAN IP:127.0.0.1

  ~CertFiles() {
    std::error_code ignored;
    if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
  }
};

void MakeCert(const std::string& cert, const std::string& key, const std::string& san) {
  const auto result = RunCommand(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -days 2 -keyout '" +
      key + "' -out '" + cert + "' -subj /CN=localhost -addext subjectAltName=" + san);
  if (result.exit_code != 0) throw std::runtime_error("openssl req failed: " + result.output);
}

const CertFiles& Certs() {
  static const CertFiles* const files = [] {
    static CertFiles made;
    std::string pattern =
        (std::filesystem::temp_directory_path() / "phigate-client-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    made.dir = pattern;
    made.name_only_cert = (made.dir / "name.pem").string();
    made.name_only_key = (made.dir / "name-key.pem").string();
    made.ip_only_cert = (made.dir / "ip.pem").string();
    made.ip_only_key = (made.dir / "ip-key.pem").string();
    MakeCert(made.name_only_cert, made.name_only_key, "DNS:localhost");
    MakeCert(made.ip_only_cert, made.ip_only_key, "IP:127.0.0.1");
    return &made;
  }();
  return *files;
}

class HttpsClientTest : public ::testing::Test {
 protected:
  void TearDown() override { StopServer(); }

  // Serves: /ok -> "hello", /echo... -> the request target and Host field, /missing -> 404,
  // /big -> big_body_bytes_ bytes, /slow -> waits slow_ms_ first, /post -> the method,
  // Content-Type, Content-Length and body received, /status/NNN -> status NNN.
  void StartServer(const std::string& cert, const std::string& key) {
    ServerOptions options;
    options.port = 0;
    options.threads = 2;
    options.certificate_file = cert;
    options.private_key_file = key;
    options.shutdown_grace_ms = 100;
    options.handle_signals = false;
    server_ = std::make_unique<HttpsServer>(
        options, [this](Request&& request, const ConnectionInfo&) { return Serve(request); },
        [](http::status status, std::string_view message, std::string_view) {
          Response response{status, 11};
          response.body() = std::string(message);
          response.prepare_payload();
          return response;
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

  void StartDefaultServer() { StartServer(TestTlsFiles().certificate, TestTlsFiles().private_key); }

  void StopServer() {
    if (!server_) return;
    server_->Stop();
    ASSERT_EQ(run_done_.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    runner_.join();
    server_.reset();
  }

  Response Serve(const Request& request) {
    Response response{http::status::ok, request.version()};
    const std::string_view target = request.target();
    if (target == "/ok") {
      response.body() = "hello";
    } else if (target.starts_with("/echo") || target.starts_with("/?")) {
      response.body() = std::string(target) + " " + std::string(request[http::field::host]) + " " +
                        std::string(request[http::field::connection]);
    } else if (target == "/big") {
      response.body() = std::string(big_body_bytes_, 'x');
    } else if (target == "/slow") {
      std::this_thread::sleep_for(Millis(slow_ms_));
      response.body() = "late";
    } else if (target == "/post") {
      response.body() = std::string(request.method_string()) + " " +
                        std::string(request[http::field::content_type]) + " " +
                        std::string(request[http::field::content_length]) + " " + request.body();
    } else if (target.starts_with("/status/")) {
      response.result(static_cast<unsigned>(std::stoi(std::string(target.substr(8)))));
      if (response.result() != http::status::no_content) response.body() = "status body";
    } else if (target == "/gzip") {
      response.set(http::field::content_encoding, "gzip");
      response.body() = "not really gzip";
    } else {
      response.result(http::status::not_found);
      response.body() = "no such thing";
    }
    response.keep_alive(request.keep_alive());
    response.prepare_payload();
    return response;
  }

  std::string Url(const std::string& host, std::string_view target) const {
    return "https://" + host + ":" + std::to_string(server_->port()) + std::string(target);
  }

  static HttpsGetOptions Trusting(const std::string& ca_file) {
    HttpsGetOptions options;
    options.ca_file = ca_file;
    options.timeout_ms = 10000;
    return options;
  }

  std::unique_ptr<HttpsServer> server_;
  std::thread runner_;
  std::future<void> run_done_;
  size_t big_body_bytes_ = 2000;
  int64_t slow_ms_ = 1500;
};

// --- Success ---------------------------------------------------------------------------

TEST_F(HttpsClientTest, ReturnsTheBodyOf200ByNameAndByAddress) {
  StartDefaultServer();
  const HttpsGetOptions options = Trusting(TestTlsFiles().certificate);
  for (const std::string host : {"localhost", "127.0.0.1"}) {
    Result<std::string> body = HttpsGet(Url(host, "/ok"), options);
    ASSERT_TRUE(body.ok()) << host << ": " << body.status().message();
    EXPECT_EQ(*body, "hello");
  }
}

TEST_F(HttpsClientTest, SendsTheTargetWithQueryAndHostAndAsksToClose) {
  StartDefaultServer();
  const HttpsGetOptions options = Trusting(TestTlsFiles().certificate);
  const std::string port = std::to_string(server_->port());
  Result<std::string> body = HttpsGet(Url("localhost", "/echo/a%2Fb?x=1&y=:@"), options);
  ASSERT_TRUE(body.ok()) << body.status().message();
  EXPECT_EQ(*body, "/echo/a%2Fb?x=1&y=:@ localhost:" + port + " close");
  // An empty path is "/"; the scheme and host are case-insensitive.
  body = HttpsGet("HTTPS://LocalHost:" + port + "?q", options);
  ASSERT_TRUE(body.ok()) << body.status().message();
  EXPECT_EQ(*body, "/?q localhost:" + port + " close");
}

TEST_F(HttpsClientTest, BodyOfExactlyTheLimitIsReturned) {
  StartDefaultServer();
  HttpsGetOptions options = Trusting(TestTlsFiles().certificate);
  options.max_body_bytes = big_body_bytes_;
  Result<std::string> body = HttpsGet(Url("localhost", "/big"), options);
  ASSERT_TRUE(body.ok()) << body.status().message();
  EXPECT_EQ(body->size(), big_body_bytes_);
}

// --- Peer verification -----------------------------------------------------------------

TEST_F(HttpsClientTest, CertificateNotFromTheCaFileIsRefused) {
  StartDefaultServer();
  // A valid certificate for the right name, but not the one the server presents.
  Result<std::string> body = HttpsGet(Url("localhost", "/ok"), Trusting(Certs().name_only_cert));
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(body.status().message(), "localhost: tls: self-signed certificate");
}

TEST_F(HttpsClientTest, SystemStoreDoesNotTrustATestCertificate) {
  StartDefaultServer();
  Result<std::string> body = HttpsGet(Url("localhost", "/ok"), Trusting(""));
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(body.status().message(), "localhost: tls: self-signed certificate");
}

TEST_F(HttpsClientTest, UnreadableCaFileIsAnError) {
  StartDefaultServer();
  Result<std::string> body =
      HttpsGet(Url("localhost", "/ok"), Trusting((Certs().dir / "absent.pem").string()));
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(body.status().message(), "localhost: tls: cannot load the CA certificates");
}

TEST_F(HttpsClientTest, AddressNotInACertificateWithOnlyADnsNameIsRefused) {
  StartServer(Certs().name_only_cert, Certs().name_only_key);
  const HttpsGetOptions options = Trusting(Certs().name_only_cert);
  Result<std::string> body = HttpsGet(Url("127.0.0.1", "/ok"), options);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(body.status().message(), "127.0.0.1: tls: IP address mismatch");
  // The same server by its name is fine.
  body = HttpsGet(Url("localhost", "/ok"), options);
  ASSERT_TRUE(body.ok()) << body.status().message();
  EXPECT_EQ(*body, "hello");
}

TEST_F(HttpsClientTest, NameNotInACertificateWithOnlyAnAddressIsRefusedDespiteItsCn) {
  StartServer(Certs().ip_only_cert, Certs().ip_only_key);
  const HttpsGetOptions options = Trusting(Certs().ip_only_cert);
  // CN=localhost must not count (RFC 9525 §6.3).
  Result<std::string> body = HttpsGet(Url("localhost", "/ok"), options);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(body.status().message(), "localhost: tls: hostname mismatch");
  body = HttpsGet(Url("127.0.0.1", "/ok"), options);
  ASSERT_TRUE(body.ok()) << body.status().message();
  EXPECT_EQ(*body, "hello");
}

// --- Responses that are not success ----------------------------------------------------

TEST_F(HttpsClientTest, Non200IsAnErrorNamingTheStatusNotTheBody) {
  StartDefaultServer();
  Result<std::string> body =
      HttpsGet(Url("localhost", "/missing"), Trusting(TestTlsFiles().certificate));
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(body.status().message(), "localhost: status 404");
}

TEST_F(HttpsClientTest, BodyOverTheLimitIsAnError) {
  StartDefaultServer();
  HttpsGetOptions options = Trusting(TestTlsFiles().certificate);
  options.max_body_bytes = big_body_bytes_ - 1;
  Result<std::string> body = HttpsGet(Url("localhost", "/big"), options);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(body.status().message(), "localhost: too large");
}

TEST_F(HttpsClientTest, CompressedBodyIsAnError) {
  StartDefaultServer();
  Result<std::string> body =
      HttpsGet(Url("localhost", "/gzip"), Trusting(TestTlsFiles().certificate));
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().message(), "localhost: content-encoding");
}

TEST_F(HttpsClientTest, NothingListeningIsAConnectError) {
  // Bind a port and close it again, so that nothing listens there.
  uint16_t port = 0;
  {
    asio::io_context ioc;
    tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = acceptor.local_endpoint().port();
  }
  Result<std::string> body = HttpsGet("https://127.0.0.1:" + std::to_string(port) + "/",
                                      Trusting(TestTlsFiles().certificate));
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(body.status().message(), "127.0.0.1: connect");
}

// --- The deadline ----------------------------------------------------------------------

Millis Since(SteadyClock::time_point start) {
  return std::chrono::duration_cast<Millis>(SteadyClock::now() - start);
}

TEST_F(HttpsClientTest, PeerThatAcceptsButNeverAnswersTimesOut) {
  // The kernel completes the TCP handshake from the listen backlog; nobody ever reads.
  asio::io_context ioc;
  tcp::acceptor silent(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const std::string port = std::to_string(silent.local_endpoint().port());
  HttpsGetOptions options = Trusting(TestTlsFiles().certificate);
  options.timeout_ms = 300;
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    const auto start = SteadyClock::now();
    Result<std::string> body = HttpsGet("https://" + host + ":" + port + "/", options);
    const Millis elapsed = Since(start);
    ASSERT_FALSE(body.ok());
    EXPECT_EQ(body.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(body.status().message(), host + ": timeout");
    EXPECT_GE(elapsed, Millis(290));
    EXPECT_LT(elapsed, Millis(3000)) << "the deadline was not enforced";
  }
}

TEST_F(HttpsClientTest, DeadlineCoversTheWholeExchangeNotEachStep) {
  slow_ms_ = 1500;
  StartDefaultServer();
  HttpsGetOptions options = Trusting(TestTlsFiles().certificate);
  options.timeout_ms = 400;
  const auto start = SteadyClock::now();
  Result<std::string> body = HttpsGet(Url("localhost", "/slow"), options);
  const Millis elapsed = Since(start);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().message(), "localhost: timeout");
  EXPECT_LT(elapsed, Millis(1400));
}

// --- POST ------------------------------------------------------------------------------

TEST_F(HttpsClientTest, PostSendsTheBodyWithItsContentTypeAndLength) {
  StartDefaultServer();
  const std::string body = R"({"event":"break_glass.opened"})";
  Result<std::string> answer = HttpsPost(Url("localhost", "/post"), "application/json", body,
                                         Trusting(TestTlsFiles().certificate));
  ASSERT_TRUE(answer.ok()) << answer.status().message();
  EXPECT_EQ(*answer, "POST application/json " + std::to_string(body.size()) + " " + body);
}

TEST_F(HttpsClientTest, PostAcceptsEvery2xxButGetOnly200) {
  StartDefaultServer();
  const HttpsPostOptions options = Trusting(TestTlsFiles().certificate);
  for (const std::string status : {"200", "201", "202"}) {
    Result<std::string> answer =
        HttpsPost(Url("localhost", "/status/" + status), "text/plain", "x", options);
    ASSERT_TRUE(answer.ok()) << status << ": " << answer.status().message();
    EXPECT_EQ(*answer, "status body");
  }
  Result<std::string> answer =
      HttpsPost(Url("localhost", "/status/204"), "text/plain", "x", options);
  ASSERT_TRUE(answer.ok()) << answer.status().message();
  EXPECT_EQ(*answer, "");
  // A GET wants the document: 202 is not it.
  answer = HttpsGet(Url("localhost", "/status/202"), options);
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status().message(), "localhost: status 202");
}

TEST_F(HttpsClientTest, PostNon2xxIsAnErrorNamingTheStatusNotTheBody) {
  StartDefaultServer();
  const HttpsPostOptions options = Trusting(TestTlsFiles().certificate);
  for (const std::string status : {"199", "302", "404", "500"}) {
    Result<std::string> answer =
        HttpsPost(Url("localhost", "/status/" + status), "text/plain", "x", options);
    ASSERT_FALSE(answer.ok()) << status;
    EXPECT_EQ(answer.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(answer.status().message(), "localhost: status " + status);
  }
}

TEST_F(HttpsClientTest, PostVerifiesThePeerLikeGet) {
  StartServer(Certs().ip_only_cert, Certs().ip_only_key);
  // Not trusted at all.
  Result<std::string> answer =
      HttpsPost(Url("127.0.0.1", "/post"), "text/plain", "x", Trusting(TestTlsFiles().certificate));
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status().message(), "127.0.0.1: tls: self-signed certificate");
  // Trusted, but the name is not in the certificate (CN=localhost does not count).
  answer = HttpsPost(Url("localhost", "/post"), "text/plain", "x", Trusting(Certs().ip_only_cert));
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status().message(), "localhost: tls: hostname mismatch");
}

TEST_F(HttpsClientTest, PostDeadlineCoversTheWholeExchange) {
  slow_ms_ = 1500;
  StartDefaultServer();
  HttpsPostOptions options = Trusting(TestTlsFiles().certificate);
  options.timeout_ms = 400;
  const auto start = SteadyClock::now();
  Result<std::string> answer = HttpsPost(Url("localhost", "/slow"), "text/plain", "x", options);
  const Millis elapsed = Since(start);
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status().message(), "localhost: timeout");
  EXPECT_LT(elapsed, Millis(1400));
}

TEST(HttpsPostTest, ContentTypeThatCouldInjectAFieldIsInvalidArgument) {
  HttpsPostOptions options;
  options.timeout_ms = 1000;
  for (const std::string& content_type :
       std::initializer_list<std::string>{"", "application/json\r\nX-Injected: 1", "text/plain\n",
                                          "caf\xc3\xa9", "a\tb", std::string(300, 'a')}) {
    Result<std::string> answer = HttpsPost("https://127.0.0.1/", content_type, "x", options);
    ASSERT_FALSE(answer.ok()) << content_type;
    EXPECT_EQ(answer.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(answer.status().message(), "invalid content type");
  }
}

TEST(HttpsPostTest, InvalidUrlIsInvalidArgument) {
  HttpsPostOptions options;
  options.timeout_ms = 1000;
  for (const std::string url : {"http://127.0.0.1/", "https://user@127.0.0.1/"}) {
    Result<std::string> answer = HttpsPost(url, "text/plain", "x", options);
    ASSERT_FALSE(answer.ok()) << url;
    EXPECT_EQ(answer.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(answer.status().message(), "invalid https URL");
  }
}

// --- URLs ------------------------------------------------------------------------------

TEST(HttpsGetUrlTest, AnythingButAPlainHttpsUrlIsInvalidArgument) {
  HttpsGetOptions options;
  options.timeout_ms = 1000;
  const std::string long_host = "https://" + std::string(300, 'a') + "/";
  const std::string long_url = "https://example.org/" + std::string(3000, 'a');
  for (const std::string& url : std::initializer_list<std::string>{
           "",
           "garbage",
           "http://127.0.0.1/",
           "ftp://127.0.0.1/",
           "https://",
           "https:///path",
           "//127.0.0.1/",
           "https://user@127.0.0.1/",
           "https://user:secret@127.0.0.1/",
           "https://evil.example@127.0.0.1/",
           "https://127.0.0.1/#fragment",
           "https://127.0.0.1#",
           "https://127.0.0.1/a b",
           " https://127.0.0.1/",
           "https://127.0.0.1/\t",
           "https://127.0.0.1/\r\nX-Injected: 1",
           "https://127.0.0.1/caf\xc3\xa9",
           "https://127.0.0.1/a\\b",
           "https://127.0.0.1/%zz",
           "https://127.0.0.1/%4",
           "https://127.0.0.1:/",
           "https://127.0.0.1:0/",
           "https://127.0.0.1:65536/",
           "https://127.0.0.1:443x/",
           "https://127.0.0.1:-1/",
           "https://127.1/",
           "https://127.0.0.01/",
           "https://999.0.0.1/",
           "https://ho_st/",
           "https://-host/",
           "https://host-/",
           "https://a..b/",
           "https://host./",
           "https://h%6Fst/",
           "https://[::1/",
           "https://[::1]x/",
           "https://[not-an-address]/",
           "https://[fe80::1%25eth0]/",
           long_host,
           long_url,
       }) {
    Result<std::string> body = HttpsGet(url, options);
    ASSERT_FALSE(body.ok()) << url;
    EXPECT_EQ(body.status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_EQ(body.status().message(), "invalid https URL") << url;
  }
}

TEST(HttpsGetUrlTest, NonPositiveTimeoutIsInvalidArgument) {
  HttpsGetOptions options;
  options.timeout_ms = 0;
  Result<std::string> body = HttpsGet("https://127.0.0.1/", options);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace phigate::net
