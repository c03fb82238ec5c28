// net::HttpsGet and net::HttpsPost: one request per call, on a private io_context, every step run
// with the same absolute deadline. The only translation unit that instantiates Beast's client-side
// reader and writer (Beast is slow to compile).
//
// Each step (resolve, connect, handshake, write, read header, read body) is started
// asynchronously and the io_context is run until the step completes or the deadline
// passes; on the deadline the socket is closed and the resolver cancelled, the aborted
// handlers are drained, and the call returns "timeout". So a peer that accepts and never
// answers, or answers one byte a second, costs at most timeout_ms.
#include "net/https_client.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/ascii.h"

namespace phigate::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;

// Response header block (status line + fields). Discovery and JWKS responses carry a few
// hundred bytes of header; Beast's default (8 KiB) is kept explicit here.
constexpr uint32_t kMaxHeaderBytes = 8 * 1024;
// Longest host name (RFC 1035 §2.3.4: 255 octets on the wire, 253 as text).
constexpr size_t kMaxHostBytes = 253;
// Longest URL we accept; discovery and JWKS URLs are short.
constexpr size_t kMaxUrlBytes = 2048;
// Longest Content-Type we send ("application/json; charset=utf-8" is 31).
constexpr size_t kMaxContentTypeBytes = 256;

struct ParsedUrl {
  std::string host;         // lower-cased name, or an IP literal without brackets
  bool host_is_ip = false;  // IPv4 dotted quad or IPv6 literal
  bool host_is_v6 = false;
  uint16_t port = 443;
  std::string target;  // origin-form: path [ "?" query ], never empty
};

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// RFC 3986 §3.3/§3.4: pchar = unreserved / pct-encoded / sub-delims / ":" / "@", plus "/"
// in paths and "/" "?" in queries. Everything else (space, controls, non-ASCII, '#', '"',
// '<', '>', '\', '^', '`', '{', '|', '}') makes the URL invalid: we send the target exactly
// as given, so it must already be a valid request-target.
bool IsTargetChar(char c) {
  // unreserved punctuation, sub-delims, then ":" "@" "/" "?" and "%" (checked as an escape)
  constexpr std::string_view kPunctuation = "-._~!$&'()*+,;=:@/?%";
  return IsAlpha(c) || IsDigit(c) || kPunctuation.find(c) != std::string_view::npos;
}

bool IsValidTarget(std::string_view target) {
  for (size_t i = 0; i < target.size(); ++i) {
    const char c = target[i];
    if (!IsTargetChar(c)) return false;
    if (c == '%' &&
        (i + 2 >= target.size() || !IsHexDigit(target[i + 1]) || !IsHexDigit(target[i + 2]))) {
      return false;
    }
  }
  return true;
}

// A DNS name as RFC 1123 §2.1 allows it: labels of letters, digits and '-', not starting
// or ending with '-', 1..63 octets each. No percent-encoding, no IDN U-labels (an A-label
// "xn--..." is fine), no trailing dot.
bool IsValidHostName(std::string_view host) {
  if (host.empty() || host.size() > kMaxHostBytes) return false;
  size_t label = 0;
  for (size_t i = 0; i <= host.size(); ++i) {
    if (i == host.size() || host[i] == '.') {
      if (label == 0 || label > 63 || host[i - 1] == '-' || host[i - label] == '-') return false;
      label = 0;
      continue;
    }
    if (!IsAlpha(host[i]) && !IsDigit(host[i]) && host[i] != '-') return false;
    ++label;
  }
  return true;
}

std::optional<uint16_t> ParsePort(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  uint32_t port = 0;
  for (char c : text) {
    if (!IsDigit(c)) return std::nullopt;
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port == 0 || port > 65535) return std::nullopt;
  return static_cast<uint16_t>(port);
}

// https://host[:port][/path][?query] (RFC 3986 §3, RFC 9110 §4.2.2), strictly: no
// userinfo (RFC 9110 §4.2.4 deprecates it, and "https://good@evil" is a classic trick), no
// fragment, no whitespace or non-ASCII anywhere, no empty port.
Result<ParsedUrl> ParseHttpsUrl(std::string_view url) {
  const Status invalid = InvalidArgument("invalid https URL");
  constexpr std::string_view kScheme = "https://";
  if (url.size() > kMaxUrlBytes || url.size() <= kScheme.size() ||
      !EqualsIgnoreCase(url.substr(0, kScheme.size()), kScheme)) {  // RFC 3986 §3.1
    return invalid;
  }
  std::string_view rest = url.substr(kScheme.size());
  const size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view target =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) return invalid;  // userinfo

  ParsedUrl parsed;
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    // IP-literal (RFC 3986 §3.2.2); IPvFuture and zone ids (RFC 6874) are not accepted.
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return invalid;
    const std::string literal(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return invalid;
      has_port = true;
      port_text = after.substr(1);
    }
    if (literal.find('%') != std::string::npos) return invalid;
    error_code ec;
    const asio::ip::address_v6 address = asio::ip::make_address_v6(literal, ec);
    if (ec) return invalid;
    parsed.host = address.to_string();
    parsed.host_is_ip = true;
    parsed.host_is_v6 = true;
  } else {
    const size_t colon = authority.find(':');
    std::string_view host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
    if (!IsValidHostName(host)) return invalid;
    parsed.host = ToLowerAscii(host);
    // A name made only of digits and dots is meant as an IPv4 address; accept it only in
    // the canonical dotted-quad form (inet_pton), never "127.1" or octal.
    if (parsed.host.find_first_not_of("0123456789.") == std::string::npos) {
      error_code ec;
      const asio::ip::address_v4 address = asio::ip::make_address_v4(parsed.host, ec);
      if (ec || address.to_string() != parsed.host) return invalid;
      parsed.host_is_ip = true;
    }
  }
  if (has_port) {
    const std::optional<uint16_t> port = ParsePort(port_text);
    if (!port) return invalid;
    parsed.port = *port;
  }

  if (!IsValidTarget(target)) return invalid;  // also refuses '#' (a fragment)
  if (target.empty() || target.front() == '?') {
    parsed.target = "/" + std::string(target);  // RFC 9110 §4.2.3: empty path is "/"
  } else {
    parsed.target = std::string(target);
  }
  return parsed;
}

// The Host field (RFC 9110 §7.2): the authority without userinfo, the port only when it is
// not the default.
std::string HostField(const ParsedUrl& url) {
  std::string field = url.host_is_v6 ? "[" + url.host + "]" : url.host;
  if (url.port != 443) field += ":" + std::to_string(url.port);
  return field;
}

// What to send: a GET, or a POST with a body.
struct Outgoing {
  http::verb method = http::verb::get;
  std::string_view content_type;  // POST only
  std::string_view body;          // POST only
};

// One HttpsGet or HttpsPost call: owns the io_context and everything run on it. Members
// are declared so that the io_context outlives the objects whose handlers it runs.
class Fetch {
 public:
  Fetch(ParsedUrl url, const HttpsGetOptions& options, Outgoing outgoing)
      : url_(std::move(url)),
        options_(options),
        outgoing_(outgoing),
        deadline_(SteadyClock::now() + std::chrono::milliseconds(options.timeout_ms)),
        context_(ssl::context::tls_client) {}

  Result<std::string> Run() {
    RETURN_IF_ERROR(ConfigureContext());
    stream_.emplace(ioc_, context_);
    RETURN_IF_ERROR(ConfigureConnection());

    // Resolve and connect. An IP literal is not resolved (and a name that merely looks
    // like one was refused by the parser).
    tcp::resolver::results_type endpoints;
    if (url_.host_is_ip) {
      endpoints = tcp::resolver::results_type::create(
          tcp::endpoint(asio::ip::make_address(url_.host), url_.port), url_.host,
          std::to_string(url_.port));
    } else {
      error_code ec = Await([&](auto handler) {
        resolver_.async_resolve(
            url_.host, std::to_string(url_.port),
            [&endpoints, handler](error_code e, tcp::resolver::results_type results) {
              endpoints = std::move(results);
              handler(e);
            });
      });
      if (ec) return Failure("resolve", ec);
    }
    error_code ec = Await([&](auto handler) {
      asio::async_connect(stream_->next_layer(), endpoints,
                          [handler](error_code e, const tcp::endpoint&) { handler(e); });
    });
    if (ec) return Failure("connect", ec);

    ec = Await([&](auto handler) { stream_->async_handshake(ssl::stream_base::client, handler); });
    if (ec) return TlsFailure(ec);

    http::request<http::string_body> request{outgoing_.method, url_.target, 11};
    request.set(http::field::host, HostField(url_));
    if (outgoing_.method == http::verb::post) {
      request.set(http::field::content_type, outgoing_.content_type);
      request.body() = std::string(outgoing_.body);
      request.prepare_payload();  // Content-Length
    }
    request.set(http::field::user_agent, "phigate/" PHIGATE_VERSION);
    // We do not decode compressed bodies (RFC 9110 §12.5.3).
    request.set(http::field::accept_encoding, "identity");
    request.keep_alive(false);
    ec = Await([&](auto handler) {
      http::async_write(*stream_, request, [handler](error_code e, size_t) { handler(e); });
    });
    if (ec) return Failure("write", ec);

    // The header first, so that a failure status is refused without reading its body.
    http::response_parser<http::string_body> parser;
    parser.header_limit(kMaxHeaderBytes);
    parser.body_limit(static_cast<uint64_t>(options_.max_body_bytes));
    beast::flat_buffer buffer;
    ec = Await([&](auto handler) {
      http::async_read_header(*stream_, buffer, parser,
                              [handler](error_code e, size_t) { handler(e); });
    });
    if (ec) return Failure("read", ec);
    const unsigned status = parser.get().result_int();
    // GET wants the document itself (200); a POST is accepted with any 2xx
    // (RFC 9110 §15.3: 200, 201, 202 and 204 all mean the request was received).
    const bool success =
        outgoing_.method == http::verb::get ? status == 200 : status >= 200 && status <= 299;
    if (!success) return Unavailable(url_.host + ": status " + std::to_string(status));
    const auto coding = parser.get().find(http::field::content_encoding);
    if (coding != parser.get().end() && !EqualsIgnoreCase(TrimOws(coding->value()), "identity")) {
      return Unavailable(url_.host + ": content-encoding");
    }
    ec = Await([&](auto handler) {
      http::async_read(*stream_, buffer, parser, [handler](error_code e, size_t) { handler(e); });
    });
    if (ec) return Failure("read", ec);
    // Connection: close was asked for; closing the socket without a TLS close_notify is
    // fine here because the body was complete (its length was known or chunked).
    error_code ignored;
    stream_->next_layer().close(ignored);
    return std::move(parser.release().body());
  }

 private:
  Status ConfigureContext() {
    SSL_CTX* ctx = context_.native_handle();
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
      return Internal("tls: cannot set the minimum version");
    }
    // Renegotiation and compression have no use here and a history of attacks.
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    error_code ec;
    context_.set_verify_mode(ssl::verify_peer, ec);
    if (options_.ca_file.empty()) {
      context_.set_default_verify_paths(ec);
    } else {
      context_.load_verify_file(options_.ca_file, ec);
    }
    if (ec) return Unavailable(url_.host + ": tls: cannot load the CA certificates");
    return Status::Ok();
  }

  // Peer identity for this connection (RFC 9525 §6): the DNS name or IP address from the
  // URL must be in the certificate's subjectAltName. The subject CN is never consulted
  // (RFC 9525 §6.3 drops CN-ID), and partial-label wildcards ("f*.example") are refused.
  Status ConfigureConnection() {
    SSL* ssl = stream_->native_handle();
    SSL_set_hostflags(ssl,
                      X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (url_.host_is_ip) {
      // SNI carries host names only (RFC 6066 §3), so none is sent for an IP literal.
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), url_.host.c_str()) != 1) {
        return Internal("tls: cannot set the expected IP address");
      }
    } else {
      if (SSL_set1_host(ssl, url_.host.c_str()) != 1 ||
          SSL_set_tlsext_host_name(ssl, url_.host.c_str()) != 1) {
        return Internal("tls: cannot set the expected host name");
      }
    }
    return Status::Ok();
  }

  // Starts one asynchronous step and runs the io_context until it completes or the
  // deadline passes. `initiate` receives a completion function taking an error_code.
  template <typename Initiate>
  error_code Await(Initiate&& initiate) {
    std::optional<error_code> result;
    initiate([&result](error_code ec) { result = ec; });
    ioc_.restart();
    ioc_.run_until(deadline_);
    if (result) return *result;
    // Deadline: abort whatever is pending and drain its handlers before returning, as they
    // refer to this frame. (A system resolver already inside getaddrinfo() is not
    // interruptible; the drain waits for it to return.)
    resolver_.cancel();
    error_code ignored;
    if (stream_) stream_->next_layer().close(ignored);
    ioc_.restart();
    ioc_.run();
    return asio::error::timed_out;
  }

  Status Failure(std::string_view stage, const error_code& ec) {
    if (ec == asio::error::timed_out) return Unavailable(url_.host + ": timeout");
    if (ec == http::error::body_limit) return Unavailable(url_.host + ": too large");
    if (ec == http::error::header_limit) return Unavailable(url_.host + ": header too large");
    return Unavailable(url_.host + ": " + std::string(stage));
  }

  // Names the verification failure when there was one ("certificate verify failed" alone
  // does not tell an operator whether the CA or the name is wrong).
  Status TlsFailure(const error_code& ec) {
    if (ec == asio::error::timed_out) return Unavailable(url_.host + ": timeout");
    const long verify = SSL_get_verify_result(stream_->native_handle());  // NOLINT(runtime/int)
    if (verify != X509_V_OK) {
      return Unavailable(url_.host + ": tls: " + X509_verify_cert_error_string(verify));
    }
    return Unavailable(url_.host + ": tls");
  }

  ParsedUrl url_;
  const HttpsGetOptions& options_;
  const Outgoing outgoing_;
  const SteadyClock::time_point deadline_;
  asio::io_context ioc_;
  ssl::context context_;
  tcp::resolver resolver_{ioc_};
  std::optional<ssl::stream<tcp::socket>> stream_;
};

// A Content-Type value we send as given: visible ASCII and spaces only, so that nothing
// can end the field or inject another one (RFC 9110 §5.5).
bool IsValidContentType(std::string_view value) {
  if (value.empty() || value.size() > kMaxContentTypeBytes) return false;
  for (char c : value) {
    if (c < 0x20 || c > 0x7E) return false;
  }
  return true;
}

Result<std::string> Send(const std::string& url, const HttpsGetOptions& options,
                         Outgoing outgoing) {
  ASSIGN_OR_RETURN(ParsedUrl parsed, ParseHttpsUrl(url));
  if (options.timeout_ms <= 0) return InvalidArgument("timeout_ms must be positive");
  const std::string host = parsed.host;
  // Asio reports resource exhaustion in constructors (an io_context without a free file
  // descriptor, an SSL_CTX without memory) by throwing; callers get a Status instead.
  try {
    Fetch fetch(std::move(parsed), options, outgoing);
    return fetch.Run();
  } catch (const std::exception&) {
    return Unavailable(host + ": internal error");
  }
}

}  // namespace

Result<std::string> HttpsGet(const std::string& url, const HttpsGetOptions& options) {
  return Send(url, options, Outgoing{});
}

Result<std::string> HttpsPost(const std::string& url, std::string_view content_type,
                              std::string_view body, const HttpsPostOptions& options) {
  if (!IsValidContentType(content_type)) return InvalidArgument("invalid content type");
  return Send(url, options, Outgoing{http::verb::post, content_type, body});
}

}  // namespace phigate::net
