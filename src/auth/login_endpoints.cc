#include "auth/login_endpoints.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "auth/pages.h"
#include "auth/qr_svg.h"
#include "auth/scope.h"
#include "core/ascii.h"
#include "core/base64.h"
#include "core/log.h"
#include "core/url.h"
#include "crypto/crypto.h"

namespace phigate::auth {

namespace {

constexpr std::string_view kFormUrlEncoded = "application/x-www-form-urlencoded";
constexpr size_t kCookieIdBytes = 32;  // 256 bits: login transaction ids, enroll cookies
constexpr size_t kCsrfBytes = 32;
constexpr size_t kMaxCookieValueChars = 128;
// RFC 7636 §4.1: code_challenge = 43*128unreserved.
constexpr size_t kMinCodeChallenge = 43;
constexpr size_t kMaxCodeChallenge = 128;

// Page texts. Fixed sentences: nothing a person or an app typed is ever repeated.
constexpr std::string_view kWrongPassword = "The username or password is incorrect.";
constexpr std::string_view kWrongCode = "The code is incorrect or has expired.";
constexpr std::string_view kWrongEnrollCode =
    "The code is incorrect or has expired. Check that the time on your device is right, "
    "then enter the current code.";
constexpr std::string_view kFormExpired =
    "This sign-in form has expired or did not come from this site. Go back to the app and "
    "sign in again.";
constexpr std::string_view kEnrollFormExpired =
    "This form has expired or did not come from this site. Open your enrollment link again.";
constexpr std::string_view kLinkInvalid =
    "This enrollment link is invalid, has already been used, or has expired. Ask your "
    "administrator for a new one.";

using Form = std::map<std::string, std::string, std::less<>>;

// Media type without parameters (RFC 9110 §8.3.1: case-insensitive).
bool IsFormUrlEncoded(std::string_view content_type) {
  return EqualsIgnoreCase(TrimOws(content_type.substr(0, content_type.find(';'))), kFormUrlEncoded);
}

std::string_view Field(const Form& form, std::string_view name) {
  auto it = form.find(name);
  return it == form.end() ? std::string_view() : std::string_view(it->second);
}

// Checks a form POST's media type, size and encoding; a repeated field is ambiguous
// (which one did the person mean?) and refused.
std::optional<EndpointResponse> ParseForm(const EndpointRequest& request, Form& form) {
  if (!IsFormUrlEncoded(request.content_type)) {
    return HtmlResponse(415, ErrorPage("Unsupported form",
                                       "The form was sent in a format this "
                                       "page does not accept."));
  }
  if (request.body.size() > kMaxFormBytes) {
    return HtmlResponse(413, ErrorPage("Form too large", "The form was too large."));
  }
  std::optional<QueryParams> parsed = ParseQuery(request.body);
  if (!parsed) {
    return HtmlResponse(400, ErrorPage("Bad form", "The form could not be read."));
  }
  for (auto& [name, value] : *parsed) {
    if (!form.emplace(std::move(name), std::move(value)).second) {
      return HtmlResponse(400, ErrorPage("Bad form", "A form field was sent twice."));
    }
  }
  return std::nullopt;
}

// The value of cookie `name` in a Cookie header (RFC 6265 §5.4: "name=value" pairs
// separated by "; "). The first occurrence wins.
std::optional<std::string_view> CookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    const size_t semi = header.find(';');
    std::string_view pair = TrimOws(header.substr(0, semi));
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
      return pair.substr(eq + 1);
    }
    if (semi == std::string_view::npos) break;
    header.remove_prefix(semi + 1);
  }
  return std::nullopt;
}

// __Host- cookies (RFC 6265bis §4.1.3.2) must be Secure, have Path=/ and no Domain, so no
// sibling host or plain-HTTP page can set or overwrite them.
std::string SetCookie(std::string_view name, std::string_view value, std::string_view same_site) {
  return std::string(name) + "=" + std::string(value) +
         "; Secure; HttpOnly; SameSite=" + std::string(same_site) + "; Path=/";
}
std::string ClearCookie(std::string_view name, std::string_view same_site) {
  return std::string(name) + "=; Max-Age=0; Secure; HttpOnly; SameSite=" + std::string(same_site) +
         "; Path=/";
}

// scheme://authority of an absolute URI, for a CSP source expression.
std::string OriginOf(std::string_view uri) {
  const size_t scheme_end = uri.find("://");
  if (scheme_end == std::string_view::npos) return {};
  std::string_view authority = uri.substr(scheme_end + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  return ToLowerAscii(uri.substr(0, scheme_end)) + "://" + ToLowerAscii(authority);
}

// Adds query parameters to a registered redirect URI, keeping a query it already has
// (RFC 6749 §3.1.2: "MUST retain" it). Registered URIs carry no fragment.
std::string AppendParams(std::string_view uri,
                         const std::vector<std::pair<std::string_view, std::string_view>>& params) {
  std::string out(uri);
  char sep = '?';
  if (uri.find('?') != std::string_view::npos) {
    sep = (uri.back() == '?' || uri.back() == '&') ? '\0' : '&';
  }
  for (const auto& [name, value] : params) {
    if (sep != '\0') out += sep;
    out += PercentEncode(name);
    out += '=';
    out += PercentEncode(value);
    sep = '&';
  }
  return out;
}

bool IsUnreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// A URI split around its port: "http://127.0.0.1" + ":8080" + "/cb?x=1".
struct PortSplit {
  std::string_view before_port;  // scheme://host
  std::string_view port;         // digits, may be empty
  std::string_view rest;         // path and query
};

// The parts of an http:// URI whose host is a loopback literal or localhost; nullopt for
// anything else (another scheme or host, userinfo, a malformed port).
std::optional<PortSplit> SplitLoopback(std::string_view uri) {
  constexpr std::string_view kHttp = "http://";
  if (!uri.starts_with(kHttp)) return std::nullopt;
  const std::string_view after = uri.substr(kHttp.size());
  const size_t authority_end = std::min(after.find_first_of("/?#"), after.size());
  const std::string_view authority = after.substr(0, authority_end);
  size_t host_end = 0;
  if (authority.starts_with('[')) {
    host_end = authority.find(']');
    if (host_end == std::string_view::npos) return std::nullopt;
    ++host_end;
  } else {
    host_end = std::min(authority.find(':'), authority.size());
  }
  const std::string_view host = authority.substr(0, host_end);
  if (host != "127.0.0.1" && host != "[::1]" && host != "localhost") return std::nullopt;
  std::string_view port = authority.substr(host_end);
  if (!port.empty()) {
    if (port[0] != ':') return std::nullopt;
    port.remove_prefix(1);
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
  }
  return PortSplit{uri.substr(0, kHttp.size() + host_end), port, after.substr(authority_end)};
}

// RFC 8252 §7.3: for a loopback redirect URI "the authorization server MUST allow any port
// to be specified at the time of the request"; everything else still matches exactly.
bool LoopbackMatches(std::string_view registered, std::string_view uri) {
  std::optional<PortSplit> reg = SplitLoopback(registered);
  if (!reg) return false;
  std::optional<PortSplit> req = SplitLoopback(uri);
  return req && req->before_port == reg->before_port && req->rest == reg->rest &&
         req->rest.find('#') == std::string_view::npos;
}

bool IsRegisteredRedirect(std::string_view registered, std::string_view uri) {
  // Space-separated; RFC 6749 §3.1.2.2 and RFC 9700 §4.1.3: exact string comparison, but
  // for the port of a loopback URI (above).
  while (!registered.empty()) {
    const size_t space = registered.find(' ');
    const std::string_view one = registered.substr(0, space);
    if (one == uri || LoopbackMatches(one, uri)) return true;
    if (space == std::string_view::npos) break;
    registered.remove_prefix(space + 1);
  }
  return false;
}

std::vector<std::string> SplitRoles(std::string_view roles) {
  std::vector<std::string> out;
  while (!roles.empty()) {
    const size_t comma = roles.find(',');
    if (comma != 0) out.emplace_back(roles.substr(0, comma));
    if (comma == std::string_view::npos) break;
    roles.remove_prefix(comma + 1);
  }
  return out;
}

// Double-submit CSRF token of the enrollment forms: an HMAC keyed by the random cookie
// over the enrollment token, so a form only works in the browser that opened the link.
std::string EnrollCsrf(std::string_view cookie, std::string_view token) {
  return Base64UrlEncode(crypto::HmacSha256(cookie, "phigate-enroll-csrf:" + std::string(token)));
}

// The "form expired" page when an enrollment form's CSRF token does not match the
// enrollment cookie of this browser (or either is missing); nullopt when it matches.
std::optional<EndpointResponse> CheckEnrollCsrf(std::string_view cookie_header,
                                                std::string_view token, std::string_view csrf) {
  std::optional<std::string_view> cookie = CookieValue(cookie_header, kEnrollCookie);
  if (!cookie || cookie->empty() || cookie->size() > kMaxCookieValueChars || csrf.empty() ||
      !crypto::ConstantTimeEquals(csrf, EnrollCsrf(*cookie, token))) {
    return HtmlResponse(403, ErrorPage("Form expired", kEnrollFormExpired));
  }
  return std::nullopt;
}

// "the password must ..." -> "The password must ...."
std::string Sentence(std::string_view message) {
  std::string out(message);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 32);
  if (!out.empty() && out.back() != '.') out += '.';
  return out;
}

EndpointResponse BadRequestPage(std::string_view message) {
  return HtmlResponse(400, ErrorPage("Sign-in request not valid", message));
}

}  // namespace

LoginEndpoints::LoginEndpoints(storage::Store& store, Accounts& accounts, AuthorizationCodes& codes,
                               const Clock& clock, const AuthConfig& config, std::string issuer,
                               SecurityEventSink& events)
    : store_(store),
      accounts_(accounts),
      codes_(codes),
      clock_(clock),
      config_(config),
      issuer_(std::move(issuer)),
      events_(events) {}

size_t LoginEndpoints::transaction_count() {
  std::lock_guard<std::mutex> lock(mu_);
  SweepTransactionsLocked(clock_.NowMillis());
  return transactions_.size();
}

EndpointResponse LoginEndpoints::ErrorRedirect(const std::string& redirect_uri,
                                               std::string_view error,
                                               std::string_view state) const {
  // RFC 6749 §4.1.2.1 error response; RFC 9207 §2 iss lets the app detect mix-up attacks.
  std::vector<std::pair<std::string_view, std::string_view>> params = {{"error", error}};
  if (!state.empty()) params.emplace_back("state", state);
  params.emplace_back("iss", issuer_);
  EndpointResponse r;
  r.status = 303;
  r.headers.emplace_back("Location", AppendParams(redirect_uri, params));
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  return r;
}

EndpointResponse LoginEndpoints::StorageErrorPage(const Status& status) const {
  Log(LogLevel::kError, "login_endpoint_error",
      {{"code", static_cast<int>(status.code())}, {"message", status.message()}});
  if (status.code() == StatusCode::kUnavailable) {
    EndpointResponse r =
        HtmlResponse(503, ErrorPage("Service busy", "The service is busy. Try again in a moment."));
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  return HtmlResponse(500, ErrorPage("Something went wrong",
                                     "The request could not be completed. Try again later."));
}

// --- Login transactions ---

void LoginEndpoints::SweepTransactionsLocked(int64_t now_ms) {
  // In expiry order: each expired transaction costs O(log n), the live ones nothing.
  while (!transactions_by_expiry_.empty() && transactions_by_expiry_.begin()->first <= now_ms) {
    const std::string key = transactions_by_expiry_.begin()->second;
    EraseTransactionLocked(key);
  }
}

void LoginEndpoints::EraseTransactionLocked(const std::string& key) {
  auto it = transactions_.find(key);
  if (it == transactions_.end()) return;
  transactions_by_expiry_.erase({it->second.expires_ms, key});
  auto by_address = transactions_by_address_.find(it->second.address);
  if (by_address != transactions_by_address_.end()) {
    std::deque<std::string>& keys = by_address->second;  // at most kMaxTransactionsPerAddress
    keys.erase(std::remove(keys.begin(), keys.end(), key), keys.end());
    if (keys.empty()) transactions_by_address_.erase(by_address);
  }
  transactions_.erase(it);
}

std::optional<LoginEndpoints::Transaction> LoginEndpoints::FindTransaction(
    const EndpointRequest& request, std::string_view csrf, std::string& key,
    EndpointResponse& error) {
  error = HtmlResponse(403, ErrorPage("Sign-in expired", kFormExpired));
  std::optional<std::string_view> cookie = CookieValue(request.cookie, kLoginCookie);
  if (!cookie || cookie->empty() || cookie->size() > kMaxCookieValueChars || csrf.empty()) {
    return std::nullopt;
  }
  key = crypto::Sha256(*cookie);
  const int64_t now = clock_.NowMillis();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = transactions_.find(key);
  if (it == transactions_.end()) return std::nullopt;
  if (now >= it->second.expires_ms) {
    EraseTransactionLocked(key);
    return std::nullopt;
  }
  if (!crypto::ConstantTimeEquals(csrf, it->second.csrf)) return std::nullopt;
  return it->second;
}

std::string LoginEndpoints::RotateCsrf(const std::string& key) {
  std::string csrf = crypto::RandomToken(kCsrfBytes);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = transactions_.find(key);
  if (it == transactions_.end()) return {};
  it->second.csrf = csrf;
  return csrf;
}

void LoginEndpoints::EndTransaction(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  EraseTransactionLocked(key);
}

// --- Address throttle ---

LoginEndpoints::Reservation LoginEndpoints::ReserveAddressAttempt(std::string_view address) {
  const int64_t now = clock_.NowMillis();
  const int64_t window_ms = config_.address_window_s * 1000;
  const size_t max_failures = static_cast<size_t>(std::max(1, config_.address_max_failures));
  const std::string key(address);
  std::lock_guard<std::mutex> lock(mu_);
  // Check and count in one step: checking first and counting after the (slow) password
  // check would let parallel requests all pass the check.
  auto it = address_failures_.find(key);
  if (it != address_failures_.end()) {
    std::deque<int64_t>& times = it->second;
    while (!times.empty() && times.front() <= now - window_ms) times.pop_front();
    if (times.size() >= max_failures) {
      // The window slides: the oldest counted failure leaves it first.
      const int64_t wait_ms = times.front() + window_ms - now;
      return {std::max<int64_t>(1, (wait_ms + 999) / 1000), 0};
    }
  } else if (address_failures_.size() >= kMaxTrackedAddresses) {
    std::erase_if(address_failures_, [&](const auto& kv) {
      return kv.second.empty() || kv.second.back() <= now - window_ms;
    });
    // Still full of recent failures: forget an arbitrary address rather than grow.
    if (address_failures_.size() >= kMaxTrackedAddresses) {
      address_failures_.erase(address_failures_.begin());
    }
  }
  address_failures_[key].push_back(now);
  return {std::nullopt, now};
}

void LoginEndpoints::ReleaseAddressAttempt(std::string_view address, int64_t at_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = address_failures_.find(std::string(address));
  if (it == address_failures_.end()) return;
  std::deque<int64_t>& times = it->second;
  // The newest entry with this time (times are appended in order, so search backwards).
  for (auto t = times.rbegin(); t != times.rend(); ++t) {
    if (*t == at_ms) {
      times.erase(std::next(t).base());
      break;
    }
  }
  if (times.empty()) address_failures_.erase(it);
}

EndpointResponse LoginEndpoints::Throttled(std::string_view address, int64_t retry_after_s,
                                           std::string_view client_id) {
  events_.Record(SecurityEvent{SecurityEventType::kAddressThrottled,
                               {},
                               std::string(client_id),
                               std::string(address),
                               "too_many_failures_from_address"});
  EndpointResponse r = HtmlResponse(
      429, ErrorPage("Too many attempts",
                     "Too many failed sign-in attempts came from your network. Wait a few "
                     "minutes, then try again."));
  // RFC 6585 §4.
  r.headers.emplace_back("Retry-After", std::to_string(retry_after_s));
  return r;
}

// --- GET /oauth2/authorize ---

EndpointResponse LoginEndpoints::Authorize(const EndpointRequest& request) {
  std::optional<QueryParams> parsed = ParseQuery(request.query);
  if (!parsed) return BadRequestPage("The sign-in request is malformed.");
  std::map<std::string, std::string, std::less<>> params;
  std::vector<std::string> repeated;
  for (auto& [name, value] : *parsed) {
    auto [it, inserted] = params.emplace(name, std::move(value));
    if (!inserted) repeated.push_back(name);
  }
  auto has = [&](std::string_view name) { return params.contains(name); };
  auto get = [&](std::string_view name) -> std::string_view {
    auto it = params.find(name);
    return it == params.end() ? std::string_view() : std::string_view(it->second);
  };
  auto is_repeated = [&](std::string_view name) {
    return std::find(repeated.begin(), repeated.end(), name) != repeated.end();
  };

  // 1. The client and its redirect URI, before anything can be sent to that URI
  //    (RFC 6749 §4.1.2.1: "MUST NOT automatically redirect the user-agent to the
  //    invalid redirection URI").
  if (is_repeated("client_id") || is_repeated("redirect_uri")) {
    return BadRequestPage("The sign-in request repeats a parameter.");
  }
  const std::string_view client_id = get("client_id");
  if (client_id.empty()) return BadRequestPage("The app did not identify itself.");
  Result<std::optional<storage::ClientRecord>> found = store_.GetClient(std::string(client_id));
  if (!found.ok()) return StorageErrorPage(found.status());
  const std::optional<storage::ClientRecord>& client = found.value();
  if (!client || client->disabled || client->redirect_uris.empty()) {
    return BadRequestPage("The app is not registered for sign-in here.");
  }
  const std::string redirect_uri(get("redirect_uri"));
  if (redirect_uri.empty() || !IsRegisteredRedirect(client->redirect_uris, redirect_uri)) {
    return BadRequestPage("The app's return address is not registered.");
  }

  // 2. Everything else is reported to the app (RFC 6749 §4.1.2.1).
  std::string_view state = get("state");
  if (state.size() > kMaxStateBytes || is_repeated("state")) {
    return ErrorRedirect(redirect_uri, "invalid_request", {});
  }
  if (!repeated.empty()) return ErrorRedirect(redirect_uri, "invalid_request", state);
  // Request objects (OpenID Connect Core §6) are not supported; §6.1/§6.2 errors.
  if (has("request")) return ErrorRedirect(redirect_uri, "request_not_supported", state);
  if (has("request_uri")) return ErrorRedirect(redirect_uri, "request_uri_not_supported", state);
  const std::string_view response_type = get("response_type");
  if (response_type.empty()) return ErrorRedirect(redirect_uri, "invalid_request", state);
  if (response_type != "code") {
    return ErrorRedirect(redirect_uri, "unsupported_response_type", state);
  }
  if (has("response_mode") && get("response_mode") != "query") {
    return ErrorRedirect(redirect_uri, "invalid_request", state);
  }
  // SMART App Launch 2.x ("aud"): the FHIR server the app means to talk to; a token for
  // another resource server must not come from here (a phishing guard).
  if (has("aud")) {
    const std::string audience =
        config_.audience.empty() ? issuer_ + "/fhir" : std::string(config_.audience);
    if (get("aud") != audience) return ErrorRedirect(redirect_uri, "invalid_request", state);
  }
  // PKCE (RFC 7636 §4.3), S256 only: "plain" would expose the verifier (RFC 9700 §2.1.1).
  const std::string_view challenge = get("code_challenge");
  if (get("code_challenge_method") != "S256" || challenge.size() < kMinCodeChallenge ||
      challenge.size() > kMaxCodeChallenge ||
      !std::all_of(challenge.begin(), challenge.end(), IsUnreserved)) {
    return ErrorRedirect(redirect_uri, "invalid_request", state);
  }
  const std::string_view nonce = get("nonce");
  if (nonce.size() > kMaxNonceBytes) return ErrorRedirect(redirect_uri, "invalid_request", state);
  // SMART App Launch requires scope; a missing one is a missing parameter.
  if (get("scope").empty()) return ErrorRedirect(redirect_uri, "invalid_request", state);
  Result<ScopeSet> requested = ScopeSet::Parse(get("scope"));
  Result<ScopeSet> registered = ScopeSet::Parse(client->scope);
  // system/ scopes belong to the client credentials grant: a person's login gives
  // patient/ and user/ scopes only.
  if (!requested.ok() || !registered.ok() || requested->empty() ||
      requested->HasContext(ScopeContext::kSystem) || !registered->Covers(*requested)) {
    return ErrorRedirect(redirect_uri, "invalid_scope", state);
  }
  // OpenID Connect Core §3.1.2.6: nobody is logged in without a page, so prompt=none
  // cannot succeed.
  const std::string_view prompt = get("prompt");
  if (prompt == "none" || prompt.starts_with("none ") || prompt.ends_with(" none") ||
      prompt.find(" none ") != std::string_view::npos) {
    return ErrorRedirect(redirect_uri, "login_required", state);
  }

  // 3. A login transaction and the login page.
  Transaction txn;
  txn.client_id = client->client_id;
  txn.client_name = client->name;
  txn.redirect_uri = redirect_uri;
  txn.app_origin = OriginOf(redirect_uri);
  txn.scope = requested->ToString();
  txn.patient_scopes = requested->HasContext(ScopeContext::kPatient);
  txn.state = std::string(state);
  txn.nonce = std::string(nonce);
  txn.code_challenge = std::string(challenge);
  txn.csrf = crypto::RandomToken(kCsrfBytes);
  const int64_t now = clock_.NowMillis();
  txn.expires_ms = now + kLoginTransactionTtlS * 1000;
  const std::string id = crypto::RandomToken(kCookieIdBytes);
  EndpointResponse page =
      HtmlResponse(200, LoginPage(txn.client_name, txn.csrf, {}), txn.app_origin);
  txn.address = std::string(request.remote_address);
  {
    std::lock_guard<std::mutex> lock(mu_);
    SweepTransactionsLocked(now);
    // An address's own oldest login gives way to its newest: one address cannot hold more
    // than its share of the table.
    auto own = transactions_by_address_.find(txn.address);
    while (own != transactions_by_address_.end() &&
           own->second.size() >= kMaxTransactionsPerAddress) {
      const std::string oldest = own->second.front();
      EraseTransactionLocked(oldest);
      own = transactions_by_address_.find(txn.address);
    }
    // Full of live logins of others: refuse this one rather than end theirs.
    if (transactions_.size() >= kMaxLoginTransactions) {
      const int64_t wait_ms = transactions_by_expiry_.begin()->first - now;
      EndpointResponse busy = HtmlResponse(
          503, ErrorPage("Too many sign-ins",
                         "Too many sign-ins are in progress. Wait a minute, then try again."));
      busy.headers.emplace_back("Retry-After",
                                std::to_string(std::max<int64_t>(1, (wait_ms + 999) / 1000)));
      return busy;
    }
    std::string key = crypto::Sha256(id);
    transactions_by_expiry_.emplace(txn.expires_ms, key);
    transactions_by_address_[txn.address].push_back(key);
    transactions_.insert_or_assign(std::move(key), std::move(txn));
  }
  page.headers.emplace_back("Set-Cookie", SetCookie(kLoginCookie, id, "Lax"));
  return page;
}

// --- POST /oauth2/login ---

EndpointResponse LoginEndpoints::Login(const EndpointRequest& request) {
  Form form;
  if (std::optional<EndpointResponse> bad = ParseForm(request, form)) return std::move(*bad);
  std::string key;
  EndpointResponse refused;
  std::optional<Transaction> txn = FindTransaction(request, Field(form, "csrf"), key, refused);
  if (!txn) return refused;
  const std::string_view address = request.remote_address;
  const Reservation reserved = ReserveAddressAttempt(address);
  if (reserved.retry_after_s) return Throttled(address, *reserved.retry_after_s, txn->client_id);

  Result<std::string> user_id = accounts_.CheckPassword(
      Field(form, "username"), Field(form, "password"), address, txn->client_id);
  if (!user_id.ok()) {
    if (user_id.status().code() != StatusCode::kUnauthenticated) {
      ReleaseAddressAttempt(address, reserved.at_ms);
      return StorageErrorPage(user_id.status());
    }
    // The reservation stays: it was a failed attempt.
    const std::string csrf = RotateCsrf(key);
    if (csrf.empty()) return refused;
    return HtmlResponse(401, LoginPage(txn->client_name, csrf, kWrongPassword), txn->app_origin);
  }
  ReleaseAddressAttempt(address, reserved.at_ms);

  const std::string csrf = crypto::RandomToken(kCsrfBytes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = transactions_.find(key);
    if (it == transactions_.end()) return refused;
    it->second.user_id = user_id.value();
    it->second.password_ok = true;
    it->second.csrf = csrf;
  }
  return HtmlResponse(200, TotpPage(txn->client_name, csrf, {}), txn->app_origin);
}

// --- POST /oauth2/login/otp ---

EndpointResponse LoginEndpoints::LoginOtp(const EndpointRequest& request) {
  Form form;
  if (std::optional<EndpointResponse> bad = ParseForm(request, form)) return std::move(*bad);
  std::string key;
  EndpointResponse refused;
  std::optional<Transaction> txn = FindTransaction(request, Field(form, "csrf"), key, refused);
  if (!txn) return refused;
  if (!txn->password_ok || txn->user_id.empty()) return refused;
  const std::string_view address = request.remote_address;
  const Reservation reserved = ReserveAddressAttempt(address);
  if (reserved.retry_after_s) return Throttled(address, *reserved.retry_after_s, txn->client_id);

  Status checked = accounts_.CheckTotp(txn->user_id, Field(form, "code"), address, txn->client_id);
  if (!checked.ok()) {
    if (checked.code() != StatusCode::kUnauthenticated) {
      ReleaseAddressAttempt(address, reserved.at_ms);
      return StorageErrorPage(checked);
    }
    const std::string csrf = RotateCsrf(key);
    if (csrf.empty()) return refused;
    return HtmlResponse(401, TotpPage(txn->client_name, csrf, kWrongCode), txn->app_origin);
  }

  ReleaseAddressAttempt(address, reserved.at_ms);
  // The person is authenticated: the transaction ends whatever happens next, so its
  // cookie and CSRF token cannot be used again.
  EndTransaction(key);
  const std::string clear_cookie = ClearCookie(kLoginCookie, "Lax");
  Result<std::optional<storage::UserRecord>> user = store_.GetUser(txn->user_id);
  if (!user.ok()) return StorageErrorPage(user.status());
  if (!user.value()) return refused;

  // patient/ scopes need a patient in context (SMART App Launch "launch context"): for a
  // standalone login that is the person's own Patient record.
  std::string patient;
  constexpr std::string_view kPatientPrefix = "Patient/";
  if (txn->patient_scopes) {
    if (!user.value()->fhir_user.starts_with(kPatientPrefix)) {
      EndpointResponse r = ErrorRedirect(txn->redirect_uri, "invalid_scope", txn->state);
      r.headers.emplace_back("Set-Cookie", clear_cookie);
      return r;
    }
    patient = user.value()->fhir_user.substr(kPatientPrefix.size());
  }

  AuthorizationGrant grant;
  grant.client_id = txn->client_id;
  grant.redirect_uri = txn->redirect_uri;
  grant.scope = txn->scope;
  grant.code_challenge = txn->code_challenge;
  grant.nonce = txn->nonce;
  grant.user_id = txn->user_id;
  grant.roles = SplitRoles(user.value()->roles);
  grant.fhir_user = user.value()->fhir_user;
  grant.patient = std::move(patient);
  grant.amr = {"pwd", "otp", "mfa"};  // RFC 8176 §2
  grant.auth_time_s = clock_.NowSeconds();
  const std::string code = codes_.Issue(std::move(grant));

  // RFC 6749 §4.1.2 (code, state), RFC 9207 §2 (iss). 303 so the browser follows with
  // GET and never re-posts the form (RFC 9700 §4.12).
  std::vector<std::pair<std::string_view, std::string_view>> params = {{"code", code}};
  if (!txn->state.empty()) params.emplace_back("state", txn->state);
  params.emplace_back("iss", issuer_);
  EndpointResponse r;
  r.status = 303;
  r.headers.emplace_back("Location", AppendParams(txn->redirect_uri, params));
  r.headers.emplace_back("Set-Cookie", clear_cookie);
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  return r;
}

// --- Enrollment ---

EndpointResponse LoginEndpoints::EnrollPage(const EndpointRequest& request) {
  std::optional<QueryParams> parsed = ParseQuery(request.query);
  const EndpointResponse invalid = HtmlResponse(400, ErrorPage("Link not valid", kLinkInvalid));
  if (!parsed) return invalid;
  std::string_view token;
  int tokens = 0;
  for (const auto& [name, value] : *parsed) {
    if (name == "token") {
      token = value;
      ++tokens;
    }
  }
  if (tokens != 1) return invalid;
  Result<std::string> username = accounts_.EnrollmentUsername(token);
  if (!username.ok()) {
    if (username.status().code() == StatusCode::kNotFound) return invalid;
    return StorageErrorPage(username.status());
  }
  const std::string cookie = crypto::RandomToken(kCookieIdBytes);
  EndpointResponse page =
      HtmlResponse(200, EnrollPasswordPage(token, EnrollCsrf(cookie, token), username.value(),
                                           config_.min_password_length, {}));
  // Strict: the forms post from this site only; the link itself is a top-level GET.
  page.headers.emplace_back("Set-Cookie", SetCookie(kEnrollCookie, cookie, "Strict"));
  return page;
}

EndpointResponse LoginEndpoints::Enroll(const EndpointRequest& request) {
  Form form;
  if (std::optional<EndpointResponse> bad = ParseForm(request, form)) return std::move(*bad);
  const std::string_view token = Field(form, "token");
  const std::string_view csrf = Field(form, "csrf");
  if (std::optional<EndpointResponse> expired = CheckEnrollCsrf(request.cookie, token, csrf)) {
    return std::move(*expired);
  }
  const EndpointResponse invalid = HtmlResponse(400, ErrorPage("Link not valid", kLinkInvalid));
  const std::string_view password = Field(form, "password");

  // The password page again, with what was wrong.
  auto again = [&](std::string_view error) {
    Result<std::string> username = accounts_.EnrollmentUsername(token);
    if (!username.ok()) {
      return username.status().code() == StatusCode::kNotFound
                 ? invalid
                 : StorageErrorPage(username.status());
    }
    return HtmlResponse(
        400, EnrollPasswordPage(token, csrf, username.value(), config_.min_password_length, error));
  };
  if (password != Field(form, "password2")) return again("The two passwords are not the same.");

  Result<EnrollmentSecret> begun =
      accounts_.BeginEnrollment(token, password, request.remote_address);
  if (!begun.ok()) {
    switch (begun.status().code()) {
      case StatusCode::kNotFound:
        return invalid;
      case StatusCode::kInvalidArgument:
        return again(Sentence(begun.status().message()));
      default:
        return StorageErrorPage(begun.status());
    }
  }
  Result<std::string> qr = QrCodeSvg(begun->otpauth_uri);
  return HtmlResponse(200, EnrollTotpPage(token, csrf, begun->secret_base32, begun->otpauth_uri,
                                          qr.ok() ? std::string_view(qr.value()) : "", {}));
}

EndpointResponse LoginEndpoints::EnrollConfirm(const EndpointRequest& request) {
  Form form;
  if (std::optional<EndpointResponse> bad = ParseForm(request, form)) return std::move(*bad);
  const std::string_view token = Field(form, "token");
  const std::string_view csrf = Field(form, "csrf");
  if (std::optional<EndpointResponse> expired = CheckEnrollCsrf(request.cookie, token, csrf)) {
    return std::move(*expired);
  }
  const EndpointResponse invalid = HtmlResponse(400, ErrorPage("Link not valid", kLinkInvalid));

  Status confirmed =
      accounts_.ConfirmEnrollment(token, Field(form, "code"), request.remote_address);
  if (confirmed.ok()) {
    EndpointResponse done = HtmlResponse(200, EnrollDonePage());
    done.headers.emplace_back("Set-Cookie", ClearCookie(kEnrollCookie, "Strict"));
    return done;
  }
  switch (confirmed.code()) {
    case StatusCode::kNotFound:
      return invalid;
    case StatusCode::kInvalidArgument:
      return HtmlResponse(400, ErrorPage("Set a password first",
                                         "Open your enrollment link again and set a password "
                                         "first."));
    case StatusCode::kUnauthenticated: {
      Result<EnrollmentSecret> pending = accounts_.PendingEnrollment(token);
      if (!pending.ok()) {
        return pending.status().code() == StatusCode::kNotFound
                   ? invalid
                   : StorageErrorPage(pending.status());
      }
      Result<std::string> qr = QrCodeSvg(pending->otpauth_uri);
      return HtmlResponse(
          401, EnrollTotpPage(token, csrf, pending->secret_base32, pending->otpauth_uri,
                              qr.ok() ? std::string_view(qr.value()) : "", kWrongEnrollCode));
    }
    default:
      return StorageErrorPage(confirmed);
  }
}

}  // namespace phigate::auth
