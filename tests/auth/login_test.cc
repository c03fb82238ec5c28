#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "auth/accounts.h"
#include "auth/auth_test_env.h"
#include "auth/authorization_codes.h"
#include "auth/login_endpoints.h"
#include "auth/pages.h"
#include "auth/security_events.h"
#include "auth/totp.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/url.h"
#include "crypto/crypto.h"
#include "crypto/keyring.h"
#include "storage/sqlite/sqlite_store.h"

namespace phigate::auth {
namespace {

constexpr std::string_view kIssuer = "https://phigate.test:8443";
constexpr std::string_view kEncodedIssuer = "https%3A%2F%2Fphigate.test%3A8443";
constexpr std::string_view kForm = "application/x-www-form-urlencoded";
constexpr std::string_view kRedirect = "https://app.example/cb";
constexpr std::string_view kRedirectWithQuery = "http://127.0.0.1:9000/cb?x=1";
constexpr std::string_view kPassword = "violet staple orbit 42";
constexpr std::string_view kVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
constexpr int64_t kStart = kAuthTestStartMs;

// The owned strings behind an EndpointRequest (whose fields are views).
struct Req {
  std::string method = "GET";
  std::string query;
  std::string content_type;
  std::string cookie;
  std::string body;
  std::string address = "192.0.2.10";
  EndpointRequest View() const {
    EndpointRequest r;
    r.method = method;
    r.query = query;
    r.content_type = content_type;
    r.cookie = cookie;
    r.body = body;
    r.remote_address = address;
    return r;
  }
};

std::optional<std::string> Header(const EndpointResponse& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return std::nullopt;
}

// The value attribute of the hidden input `name` in a page.
std::string HiddenValue(const std::string& page, std::string_view name) {
  const std::string marker =
      "name=\"" + std::string(name) + "\" id=\"" + std::string(name) + "\" value=\"";
  const size_t at = page.find(marker);
  if (at == std::string::npos) return {};
  const size_t start = at + marker.size();
  return page.substr(start, page.find('"', start) - start);
}

std::string FormBody(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [k, v] : fields) {
    if (!out.empty()) out += '&';
    out += PercentEncode(k) + "=" + PercentEncode(v);
  }
  return out;
}

std::string Challenge() { return Base64UrlEncode(crypto::Sha256(kVerifier)); }

// One fixture: a real SQLite store, a keyring, fake time; one public app registered with
// two redirect URIs; two enrolled people (a clinician and a patient).
class LoginTest : public AuthTestEnv {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(OpenStore("login", /*store_reads_fake_clock=*/false));
    ASSERT_NO_FATAL_FAILURE(AddKeyring());
    config_.issuer = std::string(kIssuer);
    config_.address_max_failures = 3;
    accounts_ = std::make_unique<Accounts>(*store_, *keyring_, hook_clock_, config_, events_);
    endpoints_ = std::make_unique<LoginEndpoints>(*store_, *accounts_, codes_, clock_, config_,
                                                  std::string(kIssuer), events_);

    AddClient("app1", "Test App",
              "openid fhirUser offline_access user/*.rs patient/*.rs launch/patient",
              std::string(kRedirect) + " " + std::string(kRedirectWithQuery));
    carol_ = Enroll("carol", {"clinician"}, "Practitioner/1");
    pat_ = Enroll("pat", {"patient"}, "Patient/7");
  }

  void AddClient(const std::string& id, const std::string& name, const std::string& scope,
                 const std::string& redirect_uris, bool disabled = false) {
    storage::ClientRecord c;
    c.client_id = id;
    c.name = name;
    c.scope = scope;
    c.auth_method = "none";
    c.redirect_uris = redirect_uris;
    c.disabled = disabled;
    c.created_ms = clock_.NowMillis();
    ASSERT_TRUE(store_->PutClient(c).ok());
  }

  struct Enrolled {
    std::string user_id;
    std::string secret;
  };
  Enrolled Enroll(const std::string& username, std::vector<std::string> roles,
                  const std::string& fhir_user) {
    Result<NewUser> added = accounts_->AddUser(username, roles, fhir_user);
    EXPECT_TRUE(added.ok()) << added.status().message();
    Result<EnrollmentSecret> begun =
        accounts_->BeginEnrollment(added->enrollment_token, kPassword, "cli");
    EXPECT_TRUE(begun.ok()) << begun.status().message();
    std::string secret = Base32Decode(begun->secret_base32).value();
    EXPECT_TRUE(accounts_->ConfirmEnrollment(added->enrollment_token, Code(secret), "cli").ok());
    clock_.Advance(kTotpStepS * 1000);
    return {added->user.user_id, secret};
  }

  std::string Code(const std::string& secret) const {
    return TotpCode(secret, TotpStep(clock_.NowSeconds()));
  }

  // A valid authorization request, with `changes` applied (an empty value removes the
  // parameter).
  static std::string AuthorizeQuery(
      const std::vector<std::pair<std::string, std::string>>& changes = {}) {
    std::vector<std::pair<std::string, std::string>> params = {
        {"response_type", "code"},
        {"client_id", "app1"},
        {"redirect_uri", std::string(kRedirect)},
        {"scope", "openid fhirUser user/*.rs"},
        {"state", "st-123"},
        {"code_challenge", Challenge()},
        {"code_challenge_method", "S256"},
        {"nonce", "n-0S6"}};
    for (const auto& [k, v] : changes) {
      auto it =
          std::find_if(params.begin(), params.end(), [&](const auto& p) { return p.first == k; });
      if (it == params.end()) {
        params.emplace_back(k, v);
      } else if (v.empty()) {
        params.erase(it);
      } else {
        it->second = v;
      }
    }
    return FormBody(params);
  }

  EndpointResponse Authorize(const std::string& query, const std::string& address = "192.0.2.10") {
    Req r;
    r.query = query;
    r.address = address;
    return endpoints_->Authorize(r.View());
  }

  // A login in progress: the cookie and the page's CSRF token.
  struct Flow {
    std::string cookie;  // "__Host-phigate-login=..."
    std::string csrf;
  };
  Flow Start(const std::string& query = AuthorizeQuery(),
             const std::string& address = "192.0.2.10") {
    EndpointResponse page = Authorize(query, address);
    EXPECT_EQ(page.status, 200) << page.body;
    std::string set_cookie = Header(page, "Set-Cookie").value_or("");
    return {set_cookie.substr(0, set_cookie.find(';')), HiddenValue(page.body, "csrf")};
  }

  EndpointResponse Post(EndpointResponse (LoginEndpoints::*method)(const EndpointRequest&),
                        const std::string& cookie, const std::string& body,
                        const std::string& address = "192.0.2.10",
                        std::string_view content_type = kForm) {
    Req r;
    r.method = "POST";
    r.cookie = cookie;
    r.body = body;
    r.content_type = std::string(content_type);
    r.address = address;
    return (endpoints_.get()->*method)(r.View());
  }

  EndpointResponse PostPassword(const Flow& f, const std::string& username,
                                const std::string& password,
                                const std::string& address = "192.0.2.10") {
    return Post(&LoginEndpoints::Login, f.cookie,
                FormBody({{"csrf", f.csrf}, {"username", username}, {"password", password}}),
                address);
  }
  EndpointResponse PostCode(const Flow& f, const std::string& code) {
    return Post(&LoginEndpoints::LoginOtp, f.cookie, FormBody({{"csrf", f.csrf}, {"code", code}}));
  }

  // Runs the whole login for `who` and returns the final response.
  EndpointResponse FullLogin(const std::string& query, const std::string& username,
                             const Enrolled& who) {
    Flow f = Start(query);
    EndpointResponse totp_page = PostPassword(f, username, std::string(kPassword));
    EXPECT_EQ(totp_page.status, 200) << totp_page.body;
    f.csrf = HiddenValue(totp_page.body, "csrf");
    return PostCode(f, Code(who.secret));
  }

  void ExpectErrorPage(const EndpointResponse& r, int status) const {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
    EXPECT_FALSE(Header(r, "Location").has_value());
    EXPECT_NE(r.body.find("<!DOCTYPE html>"), std::string::npos);
  }

  void ExpectRedirectError(const EndpointResponse& r, std::string_view error,
                           std::string_view redirect = kRedirect,
                           std::string_view state = "st-123") const {
    EXPECT_EQ(r.status, 303) << r.body;
    const char sep = redirect.find('?') == std::string_view::npos ? '?' : '&';
    std::string expected = std::string(redirect) + sep + "error=" + std::string(error);
    if (!state.empty()) expected += "&state=" + std::string(state);
    expected += "&iss=" + std::string(kEncodedIssuer);
    EXPECT_EQ(Header(r, "Location").value_or(""), expected);
  }

  HookClock hook_clock_{clock_};
  AuthorizationCodes codes_{clock_};
  std::unique_ptr<Accounts> accounts_;
  std::unique_ptr<LoginEndpoints> endpoints_;
  Enrolled carol_;
  Enrolled pat_;
};

// --- Authorize ---

TEST_F(LoginTest, AuthorizeShowsTheLoginPageWithACookieAndStrictHeaders) {
  EndpointResponse r = Authorize(AuthorizeQuery());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  const std::string cookie = Header(r, "Set-Cookie").value_or("");
  const std::string id = cookie.substr(std::string("__Host-phigate-login=").size(), 43);
  EXPECT_EQ(cookie, "__Host-phigate-login=" + id + "; Secure; HttpOnly; SameSite=Lax; Path=/");
  EXPECT_TRUE(Base64UrlDecode(id).has_value());
  EXPECT_EQ(Header(r, "Content-Security-Policy").value_or(""),
            "default-src 'none'; form-action 'self' https://app.example; frame-ancestors "
            "'none'; base-uri 'none'");
  EXPECT_EQ(Header(r, "Referrer-Policy").value_or(""), "no-referrer");
  EXPECT_EQ(Header(r, "Cache-Control").value_or(""), "no-store");
  EXPECT_NE(r.body.find("<form method=\"post\" action=\"/oauth2/login\">"), std::string::npos);
  EXPECT_NE(r.body.find("name=\"username\" autocomplete=\"username\""), std::string::npos);
  EXPECT_NE(r.body.find("id=\"password\" name=\"password\""), std::string::npos);
  EXPECT_NE(r.body.find("<button type=\"submit\">"), std::string::npos);
  EXPECT_NE(r.body.find("Test App"), std::string::npos);
  EXPECT_EQ(HiddenValue(r.body, "csrf").size(), 43u);
  EXPECT_EQ(r.body.find("<script"), std::string::npos);
  EXPECT_EQ(r.body.find("src="), std::string::npos);
  EXPECT_EQ(endpoints_->transaction_count(), 1u);
}

TEST_F(LoginTest, AnUnknownClientOrUnregisteredRedirectGetsAPageNeverARedirect) {
  AddClient("off", "Disabled", "openid user/*.rs", std::string(kRedirect), true);
  AddClient("backend", "Backend", "system/*.rs", "");
  const std::vector<std::string> queries = {
      AuthorizeQuery({{"client_id", "nope"}}),
      AuthorizeQuery({{"client_id", ""}}),
      AuthorizeQuery({{"client_id", "off"}}),
      AuthorizeQuery({{"client_id", "backend"}}),
      AuthorizeQuery({{"redirect_uri", "https://app.example/cb/evil"}}),
      AuthorizeQuery({{"redirect_uri", "https://APP.example/cb"}}),
      AuthorizeQuery({{"redirect_uri", "https://app.example/cb?x=1"}}),
      AuthorizeQuery({{"redirect_uri", "https://evil.example/cb"}}),
      AuthorizeQuery({{"redirect_uri", ""}}),
      AuthorizeQuery() + "&client_id=app1",
      AuthorizeQuery() + "&redirect_uri=" + PercentEncode(kRedirect),
      "client_id=%zz",
  };
  for (const std::string& q : queries) {
    SCOPED_TRACE(q);
    ExpectErrorPage(Authorize(q), 400);
  }
  EXPECT_EQ(endpoints_->transaction_count(), 0u);
}

TEST_F(LoginTest, InvalidRequestsAreRedirectedWithTheExactError) {
  struct Case {
    std::vector<std::pair<std::string, std::string>> changes;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{{"response_type", "token"}}, "unsupported_response_type"},
      {{{"response_type", "code id_token"}}, "unsupported_response_type"},
      {{{"response_type", ""}}, "invalid_request"},
      {{{"code_challenge", ""}}, "invalid_request"},
      {{{"code_challenge_method", "plain"}}, "invalid_request"},
      {{{"code_challenge_method", ""}}, "invalid_request"},
      {{{"code_challenge", std::string(42, 'a')}}, "invalid_request"},
      {{{"code_challenge", std::string(129, 'a')}}, "invalid_request"},
      {{{"code_challenge", std::string(42, 'a') + "+"}}, "invalid_request"},
      {{{"response_mode", "fragment"}}, "invalid_request"},
      {{{"nonce", std::string(513, 'n')}}, "invalid_request"},
      {{{"scope", ""}}, "invalid_request"},
      {{{"scope", "openid user/*.cruds"}}, "invalid_scope"},  // beyond the registration
      {{{"scope", "openid system/*.rs"}}, "invalid_scope"},   // not for a person's login
      {{{"scope", "openid email"}}, "invalid_scope"},         // not registered
      {{{"scope", "user/Patient.zz"}}, "invalid_scope"},      // malformed
      {{{"scope", "openid  user/*.rs"}}, "invalid_scope"},    // two spaces
      {{{"request", "eyJhbGciOiJub25lIn0.e30."}}, "request_not_supported"},
      {{{"request_uri", "https://app.example/r"}}, "request_uri_not_supported"},
      {{{"prompt", "none"}}, "login_required"},
      {{{"prompt", "consent none"}}, "login_required"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.error + " " + (c.changes[0].first + "=" + c.changes[0].second));
    ExpectRedirectError(Authorize(AuthorizeQuery(c.changes)), c.error);
  }
  // A repeated parameter.
  ExpectRedirectError(Authorize(AuthorizeQuery() + "&scope=openid"), "invalid_request");
  // No state: none is sent back; a state too long to echo is not echoed.
  ExpectRedirectError(Authorize(AuthorizeQuery({{"state", ""}, {"response_type", "token"}})),
                      "unsupported_response_type", kRedirect, "");
  ExpectRedirectError(Authorize(AuthorizeQuery({{"state", std::string(1025, 's')}})),
                      "invalid_request", kRedirect, "");
  // A registered redirect URI with a query keeps it.
  ExpectRedirectError(Authorize(AuthorizeQuery({{"redirect_uri", std::string(kRedirectWithQuery)},
                                                {"response_type", "token"}})),
                      "unsupported_response_type", kRedirectWithQuery);
  EXPECT_EQ(endpoints_->transaction_count(), 0u);
}

// --- The whole login ---

TEST_F(LoginTest, FullFlowRedirectsWithACodeTheTokenEndpointCanRedeem) {
  Flow f = Start();
  EndpointResponse totp_page = PostPassword(f, "Carol", std::string(kPassword));
  ASSERT_EQ(totp_page.status, 200) << totp_page.body;
  EXPECT_NE(totp_page.body.find("action=\"/oauth2/login/otp\""), std::string::npos);
  EXPECT_NE(totp_page.body.find("name=\"code\""), std::string::npos);
  EXPECT_EQ(Header(totp_page, "Content-Security-Policy").value_or(""),
            "default-src 'none'; form-action 'self' https://app.example; frame-ancestors "
            "'none'; base-uri 'none'");
  const std::string csrf2 = HiddenValue(totp_page.body, "csrf");
  EXPECT_EQ(csrf2.size(), 43u);
  EXPECT_NE(csrf2, f.csrf);  // a new token per step

  const int64_t auth_time = clock_.NowSeconds();
  EndpointResponse done = PostCode({f.cookie, csrf2}, Code(carol_.secret));
  ASSERT_EQ(done.status, 303) << done.body;
  const std::string location = Header(done, "Location").value_or("");
  const std::string prefix = std::string(kRedirect) + "?code=";
  ASSERT_TRUE(location.starts_with(prefix)) << location;
  const size_t amp = location.find('&');
  const std::string code = location.substr(prefix.size(), amp - prefix.size());
  EXPECT_EQ(location.substr(amp), "&state=st-123&iss=" + std::string(kEncodedIssuer));
  EXPECT_EQ(Header(done, "Set-Cookie").value_or(""),
            "__Host-phigate-login=; Max-Age=0; Secure; HttpOnly; SameSite=Lax; Path=/");
  EXPECT_EQ(endpoints_->transaction_count(), 0u);

  AuthorizationCodes::Redeemed redeemed = codes_.Redeem(code);
  ASSERT_EQ(redeemed.outcome, AuthorizationCodes::Outcome::kOk);
  const AuthorizationGrant& g = redeemed.grant;
  EXPECT_EQ(g.client_id, "app1");
  EXPECT_EQ(g.redirect_uri, kRedirect);
  EXPECT_EQ(g.scope, "openid fhirUser user/*.rs");
  EXPECT_EQ(g.code_challenge, Challenge());
  EXPECT_EQ(g.nonce, "n-0S6");
  EXPECT_EQ(g.user_id, carol_.user_id);
  EXPECT_EQ(g.roles, std::vector<std::string>{"clinician"});
  EXPECT_EQ(g.fhir_user, "Practitioner/1");
  EXPECT_EQ(g.patient, "");
  EXPECT_EQ(g.amr, (std::vector<std::string>{"pwd", "otp", "mfa"}));
  EXPECT_EQ(g.auth_time_s, auth_time);
  EXPECT_EQ(g.expires_s, auth_time + kAuthorizationCodeTtlS);
  EXPECT_EQ(codes_.Redeem(code).outcome, AuthorizationCodes::Outcome::kAlreadyUsed);

  // The transaction is over: its cookie and token are worthless now.
  ExpectErrorPage(PostCode({f.cookie, csrf2}, Code(carol_.secret)), 403);
  const SecurityEvent last = events_.events().back();
  EXPECT_EQ(last.type, SecurityEventType::kLoginSuccess);
  EXPECT_EQ(last.client_id, "app1");
  EXPECT_EQ(last.address, "192.0.2.10");
}

TEST_F(LoginTest, PatientScopesCarryThePatientOrFailWithInvalidScope) {
  const std::string query = AuthorizeQuery({{"scope", "openid patient/*.rs launch/patient"}});
  EndpointResponse r = FullLogin(query, "pat", pat_);
  ASSERT_EQ(r.status, 303) << r.body;
  const std::string location = Header(r, "Location").value_or("");
  const std::string code =
      location.substr(location.find("code=") + 5, location.find('&') - location.find("code=") - 5);
  AuthorizationCodes::Redeemed redeemed = codes_.Redeem(code);
  ASSERT_EQ(redeemed.outcome, AuthorizationCodes::Outcome::kOk);
  EXPECT_EQ(redeemed.grant.patient, "7");
  EXPECT_EQ(redeemed.grant.fhir_user, "Patient/7");
  EXPECT_EQ(redeemed.grant.roles, std::vector<std::string>{"patient"});

  // A practitioner has no patient of their own to put in context.
  EndpointResponse refused = FullLogin(query, "carol", carol_);
  ExpectRedirectError(refused, "invalid_scope");
  EXPECT_EQ(Header(refused, "Set-Cookie").value_or(""),
            "__Host-phigate-login=; Max-Age=0; Secure; HttpOnly; SameSite=Lax; Path=/");
}

TEST_F(LoginTest, AWrongPasswordShowsTheLoginPageAgainWithAGenericMessage) {
  Flow f = Start();
  EndpointResponse r = PostPassword(f, "carol", "not my password");
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("The username or password is incorrect."), std::string::npos);
  EXPECT_NE(r.body.find("action=\"/oauth2/login\""), std::string::npos);
  EXPECT_EQ(r.body.find("not my password"), std::string::npos);
  const std::string csrf = HiddenValue(r.body, "csrf");
  EXPECT_NE(csrf, f.csrf);
  // An unknown user reads the same.
  EndpointResponse unknown = PostPassword({f.cookie, csrf}, "mallory", std::string(kPassword));
  EXPECT_EQ(unknown.status, 401);
  EXPECT_NE(unknown.body.find("The username or password is incorrect."), std::string::npos);
  EXPECT_EQ(unknown.body.find("mallory"), std::string::npos);
  // The old token is void; the newest works.
  ExpectErrorPage(PostPassword(f, "carol", std::string(kPassword)), 403);
  EXPECT_EQ(
      PostPassword({f.cookie, HiddenValue(unknown.body, "csrf")}, "carol", std::string(kPassword))
          .status,
      200);
}

TEST_F(LoginTest, AWrongCodeShowsTheCodePageAgain) {
  Flow f = Start();
  EndpointResponse page = PostPassword(f, "carol", std::string(kPassword));
  ASSERT_EQ(page.status, 200);
  f.csrf = HiddenValue(page.body, "csrf");
  EndpointResponse wrong = PostCode(f, "000000" == Code(carol_.secret) ? "111111" : "000000");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_NE(wrong.body.find("The code is incorrect or has expired."), std::string::npos);
  f.csrf = HiddenValue(wrong.body, "csrf");
  EXPECT_EQ(PostCode(f, Code(carol_.secret)).status, 303);
}

TEST_F(LoginTest, CsrfOrCookieMismatchIsForbidden) {
  Flow f = Start();
  ExpectErrorPage(PostPassword({f.cookie, "forged"}, "carol", std::string(kPassword)), 403);
  ExpectErrorPage(PostPassword({"", f.csrf}, "carol", std::string(kPassword)), 403);
  ExpectErrorPage(
      PostPassword({"__Host-phigate-login=abc", f.csrf}, "carol", std::string(kPassword)), 403);
  ExpectErrorPage(Post(&LoginEndpoints::Login, f.cookie,
                       FormBody({{"username", "carol"}, {"password", std::string(kPassword)}})),
                  403);
  // Another login's token does not fit this cookie.
  Flow other = Start();
  ExpectErrorPage(PostPassword({f.cookie, other.csrf}, "carol", std::string(kPassword)), 403);
  // The code step before the password step.
  ExpectErrorPage(PostCode(f, Code(carol_.secret)), 403);
  // None of that counted as a failed password.
  EXPECT_EQ(store_->GetUser(carol_.user_id).value()->failed_attempts, 0);
  // A cookie among others is found.
  EXPECT_EQ(
      PostPassword({"a=b; " + f.cookie + "; c=d", f.csrf}, "carol", std::string(kPassword)).status,
      200);
}

TEST_F(LoginTest, FormsMustBeUrlEncodedWithoutRepeatedFields) {
  Flow f = Start();
  const std::string body =
      FormBody({{"csrf", f.csrf}, {"username", "carol"}, {"password", std::string(kPassword)}});
  ExpectErrorPage(Post(&LoginEndpoints::Login, f.cookie, body, "192.0.2.10", "application/json"),
                  415);
  ExpectErrorPage(Post(&LoginEndpoints::Login, f.cookie, body, "192.0.2.10", ""), 415);
  ExpectErrorPage(Post(&LoginEndpoints::Login, f.cookie, body + "&username=dave"), 400);
  ExpectErrorPage(Post(&LoginEndpoints::Login, f.cookie, body + "&x=%zz"), 400);
  ExpectErrorPage(Post(&LoginEndpoints::Login, f.cookie, body + "&x=" + std::string(20000, 'a')),
                  413);
  EXPECT_EQ(Post(&LoginEndpoints::Login, f.cookie, body, "192.0.2.10",
                 "Application/X-WWW-Form-Urlencoded; charset=UTF-8")
                .status,
            200);
}

TEST_F(LoginTest, TheTransactionExpiresAfterTenMinutes) {
  Flow f = Start();
  clock_.Advance(kLoginTransactionTtlS * 1000);
  ExpectErrorPage(PostPassword(f, "carol", std::string(kPassword)), 403);
  EXPECT_EQ(endpoints_->transaction_count(), 0u);
}

TEST_F(LoginTest, AnAddressWithTooManyFailuresIsThrottled) {
  Flow f = Start();
  for (int i = 0; i < config_.address_max_failures; ++i) {
    EndpointResponse r = PostPassword(f, "nobody" + std::to_string(i), "wrong wrong");
    ASSERT_EQ(r.status, 401);
    f.csrf = HiddenValue(r.body, "csrf");
  }
  // Even the right password, for any account, from that address.
  EndpointResponse throttled = PostPassword(f, "carol", std::string(kPassword));
  ExpectErrorPage(throttled, 429);
  EXPECT_EQ(Header(throttled, "Retry-After").value_or(""), "300");
  EXPECT_EQ(events_.events().back().type, SecurityEventType::kAddressThrottled);
  EXPECT_EQ(events_.events().back().address, "192.0.2.10");
  // Another address is not affected.
  EXPECT_EQ(PostPassword(f, "carol", std::string(kPassword), "192.0.2.99").status, 200);
  // The window slides.
  clock_.Advance(100'000);
  Flow g = Start();
  EndpointResponse later = PostPassword(g, "carol", std::string(kPassword));
  EXPECT_EQ(later.status, 429);
  EXPECT_EQ(Header(later, "Retry-After").value_or(""), "200");
  clock_.Advance(200'000);
  EXPECT_EQ(PostPassword(g, "carol", std::string(kPassword)).status, 200);
}

// Regression (security review H1): an address's attempt is counted before its password is
// checked, so requests running in parallel cannot all pass the throttle.
TEST_F(LoginTest, ParallelAttemptsFromOneAddressCannotExceedTheThrottle) {
  ASSERT_EQ(config_.address_max_failures, 3);
  std::vector<Flow> others;
  for (int i = 0; i < 3; ++i) others.push_back(Start());
  std::vector<int> nested;
  hook_clock_.Arm([&] {
    // While the first check runs: three more from the same address.
    for (int i = 0; i < 3; ++i) {
      nested.push_back(PostPassword(others[i], "nobody" + std::to_string(i), "wrong wrong").status);
    }
  });
  Flow f = Start();
  EXPECT_EQ(PostPassword(f, "carol", "wrong wrong").status, 401);
  // Two fit besides the one in flight; the third is throttled without a check.
  EXPECT_EQ(nested, (std::vector<int>{401, 401, 429}));
}

// Regression (security review H1): a second attempt on an account whose password check is
// running is refused (same page as a wrong password) even with the right password, and
// counts against its address.
TEST_F(LoginTest, AnAttemptOnAnAccountWithACheckInFlightIsRefused) {
  Flow other = Start(AuthorizeQuery(), "192.0.2.77");
  int nested = 0;
  std::string nested_body;
  hook_clock_.Arm([&] {
    EndpointResponse r = PostPassword(other, "carol", std::string(kPassword), "192.0.2.77");
    nested = r.status;
    nested_body = r.body;
  });
  Flow f = Start();
  EXPECT_EQ(PostPassword(f, "carol", "wrong wrong").status, 401);
  EXPECT_EQ(nested, 401);
  EXPECT_NE(nested_body.find("The username or password is incorrect."), std::string::npos);
  // Two more failures from 192.0.2.77 reach the limit of 3: the refusal counted.
  other.csrf = HiddenValue(nested_body, "csrf");
  for (int i = 0; i < 2; ++i) {
    EndpointResponse r = PostPassword(other, "nobody", "wrong wrong", "192.0.2.77");
    ASSERT_EQ(r.status, 401);
    other.csrf = HiddenValue(r.body, "csrf");
  }
  EXPECT_EQ(PostPassword(other, "carol", std::string(kPassword), "192.0.2.77").status, 429);
}

// A successful step gives its reservation back (the H1 fix must not throttle people).
TEST_F(LoginTest, SuccessfulStepsDoNotCountAgainstTheAddress) {
  for (int i = 0; i < 4; ++i) {
    clock_.Advance(kTotpStepS * 1000);
    EXPECT_EQ(FullLogin(AuthorizeQuery(), "carol", carol_).status, 303);
  }
}

// Regression (security review M1): one address cannot push other people's logins out.
TEST_F(LoginTest, AnAddressEvictsOnlyItsOwnOldestLogins) {
  Flow victim = Start(AuthorizeQuery(), "198.51.100.1");
  Flow first = Start(AuthorizeQuery(), "203.0.113.9");
  for (size_t i = 1; i < kMaxTransactionsPerAddress + 5; ++i) {
    Start(AuthorizeQuery(), "203.0.113.9");
  }
  EXPECT_EQ(endpoints_->transaction_count(), kMaxTransactionsPerAddress + 1);
  ExpectErrorPage(PostPassword(first, "carol", std::string(kPassword), "203.0.113.9"), 403);
  EXPECT_EQ(PostPassword(victim, "carol", std::string(kPassword), "198.51.100.1").status, 200);
}

// Regression (security review M1): a full table refuses new logins (503, Retry-After)
// rather than evicting live ones; expired ones are swept first.
TEST_F(LoginTest, AFullTableRefusesNewLoginsInsteadOfEvicting) {
  Flow victim = Start(AuthorizeQuery(), "198.51.100.1");
  clock_.Advance(1000);
  for (size_t i = 1; i < kMaxLoginTransactions; ++i) {
    Req r;
    r.query = AuthorizeQuery();
    r.address = "10." + std::to_string(i / kMaxTransactionsPerAddress / 256) + "." +
                std::to_string(i / kMaxTransactionsPerAddress % 256) + ".1";
    ASSERT_EQ(endpoints_->Authorize(r.View()).status, 200);
  }
  ASSERT_EQ(endpoints_->transaction_count(), kMaxLoginTransactions);
  EndpointResponse busy = Authorize(AuthorizeQuery(), "192.0.2.200");
  ExpectErrorPage(busy, 503);
  // The victim's login, the oldest, expires in 599 s.
  EXPECT_EQ(Header(busy, "Retry-After").value_or(""), "599");
  EXPECT_EQ(PostPassword(victim, "carol", std::string(kPassword), "198.51.100.1").status, 200);
  // Once the oldest has expired there is room again.
  clock_.Advance(599'000);
  EXPECT_EQ(Authorize(AuthorizeQuery(), "192.0.2.200").status, 200);
  EXPECT_EQ(endpoints_->transaction_count(), kMaxLoginTransactions);
}

// Regression (security review L7): SMART's aud must name this FHIR server.
TEST_F(LoginTest, TheAudParameterMustBeThisFhirServer) {
  EXPECT_EQ(Authorize(AuthorizeQuery({{"aud", std::string(kIssuer) + "/fhir"}})).status, 200);
  ExpectRedirectError(Authorize(AuthorizeQuery({{"aud", "https://evil.example/fhir"}})),
                      "invalid_request");
  ExpectRedirectError(Authorize(AuthorizeQuery({{"aud", std::string(kIssuer)}})),
                      "invalid_request");
  config_.audience = "https://fhir.example.org/r4";
  EXPECT_EQ(Authorize(AuthorizeQuery({{"aud", "https://fhir.example.org/r4"}})).status, 200);
  ExpectRedirectError(Authorize(AuthorizeQuery({{"aud", std::string(kIssuer) + "/fhir"}})),
                      "invalid_request");
}

// RFC 8252 §7.3: a loopback redirect URI matches with any port; nothing else varies.
TEST_F(LoginTest, LoopbackRedirectUrisMayUseAnyPort) {
  for (const std::string uri : {"http://127.0.0.1:51234/cb?x=1", "http://127.0.0.1/cb?x=1",
                                "http://127.0.0.1:9000/cb?x=1"}) {
    SCOPED_TRACE(uri);
    EXPECT_EQ(Authorize(AuthorizeQuery({{"redirect_uri", uri}})).status, 200);
  }
  for (const std::string uri :
       {"http://127.0.0.1:51234/cb", "http://127.0.0.1:51234/cb?x=2",
        "http://127.0.0.1:51234/cb?x=1#f", "http://localhost:51234/cb?x=1",
        "https://127.0.0.1:51234/cb?x=1", "http://127.0.0.1:abc/cb?x=1", "http://127.0.0.1:/cb?x=1",
        "http://127.0.0.1:123456/cb?x=1", "http://127.0.0.1:1@evil.example/cb?x=1",
        "http://127.0.0.1.evil.example/cb?x=1", "https://app.example:444/cb"}) {
    SCOPED_TRACE(uri);
    ExpectErrorPage(Authorize(AuthorizeQuery({{"redirect_uri", uri}})), 400);
  }
  AddClient("native", "Native", "openid fhirUser user/*.rs",
            "http://[::1]/cb http://localhost:8/done");
  EXPECT_EQ(
      Authorize(AuthorizeQuery({{"client_id", "native"}, {"redirect_uri", "http://[::1]:7/cb"}}))
          .status,
      200);
  EXPECT_EQ(Authorize(AuthorizeQuery({{"client_id", "native"},
                                      {"redirect_uri", "http://localhost:65000/done"}}))
                .status,
            200);
  ExpectErrorPage(
      Authorize(AuthorizeQuery({{"client_id", "native"}, {"redirect_uri", "http://[::2]:7/cb"}})),
      400);

  // The app is sent back to the port it asked for, and the code is bound to that URI.
  const std::string asked = "http://127.0.0.1:51234/cb?x=1";
  EndpointResponse done = FullLogin(AuthorizeQuery({{"redirect_uri", asked}}), "carol", carol_);
  ASSERT_EQ(done.status, 303) << done.body;
  const std::string location = Header(done, "Location").value_or("");
  EXPECT_TRUE(location.starts_with(asked + "&code=")) << location;
  const size_t at = location.find("code=") + 5;
  AuthorizationCodes::Redeemed redeemed =
      codes_.Redeem(location.substr(at, location.find('&', at) - at));
  ASSERT_EQ(redeemed.outcome, AuthorizationCodes::Outcome::kOk);
  EXPECT_EQ(redeemed.grant.redirect_uri, asked);
}

TEST_F(LoginTest, HostileClientNamesAndStatesAreEscaped) {
  AddClient("evil", "<script>alert(\"x\")</script>&'", "openid fhirUser user/*.rs",
            std::string(kRedirect));
  const std::string state = "\"><script>alert(1)</script>";
  EndpointResponse page = Authorize(AuthorizeQuery({{"client_id", "evil"}, {"state", state}}));
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"),
            std::string::npos);
  EXPECT_EQ(page.body.find("<script"), std::string::npos);
  EXPECT_EQ(page.body.find("alert(1)"), std::string::npos);  // the state is never shown

  EndpointResponse redirect = Authorize(
      AuthorizeQuery({{"client_id", "evil"}, {"state", state}, {"response_type", "token"}}));
  ExpectRedirectError(redirect, "unsupported_response_type", kRedirect,
                      "%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E");
}

TEST(AuthorizationCodesTest, SingleUseAndSixtySeconds) {
  FakeClock clock(kStart);
  AuthorizationCodes codes(clock);
  AuthorizationGrant grant;
  grant.client_id = "app1";
  grant.user_id = "u1";
  const std::string code = codes.Issue(grant);
  EXPECT_EQ(code.size(), 43u);  // 256 bits, base64url
  EXPECT_NE(codes.Issue(grant), code);
  EXPECT_EQ(codes.Redeem("not-a-code").outcome, AuthorizationCodes::Outcome::kUnknown);

  AuthorizationCodes::Redeemed first = codes.Redeem(code);
  ASSERT_EQ(first.outcome, AuthorizationCodes::Outcome::kOk);
  EXPECT_EQ(first.grant.client_id, "app1");
  EXPECT_EQ(first.grant.expires_s, kStart / 1000 + 60);
  AuthorizationCodes::Redeemed second = codes.Redeem(code);
  EXPECT_EQ(second.outcome, AuthorizationCodes::Outcome::kAlreadyUsed);
  EXPECT_EQ(second.grant.client_id, "");  // nothing to use

  const std::string late = codes.Issue(grant);
  clock.Advance(59'999);
  const std::string in_time = codes.Issue(grant);
  clock.Advance(1);
  EXPECT_EQ(codes.Redeem(late).outcome, AuthorizationCodes::Outcome::kExpired);
  EXPECT_EQ(codes.Redeem(late).outcome, AuthorizationCodes::Outcome::kUnknown);
  EXPECT_EQ(codes.Redeem(in_time).outcome, AuthorizationCodes::Outcome::kOk);
}

// Regression (security review L1): the session a redemption creates is recorded by the
// redemption itself, so a replay at any moment after it finds the session to revoke; the
// access token, known only later, is reported back if a replay came first.
TEST(AuthorizationCodesTest, ARedemptionRecordsItsSessionAndAccessToken) {
  FakeClock clock(kStart);
  AuthorizationCodes codes(clock);
  AuthorizationGrant grant;
  grant.client_id = "app1";
  const std::string code = codes.Issue(grant);
  ASSERT_EQ(codes.Redeem(code, "session-1").outcome, AuthorizationCodes::Outcome::kOk);
  AuthorizationCodes::Redeemed replay = codes.Redeem(code, "session-2");
  EXPECT_EQ(replay.outcome, AuthorizationCodes::Outcome::kAlreadyUsed);
  EXPECT_EQ(replay.family_id, "session-1");
  EXPECT_EQ(replay.access_jti, "");  // not issued yet
  // The first redemption's token, issued after the replay: the caller must revoke it.
  EXPECT_TRUE(codes.RecordAccessToken(code, "jti-1", kStart / 1000 + 300));
  AuthorizationCodes::Redeemed again = codes.Redeem(code);
  EXPECT_EQ(again.family_id, "session-1");
  EXPECT_EQ(again.access_jti, "jti-1");
  EXPECT_EQ(again.access_expires_at_s, kStart / 1000 + 300);

  const std::string other = codes.Issue(grant);
  ASSERT_EQ(codes.Redeem(other, "session-3").outcome, AuthorizationCodes::Outcome::kOk);
  EXPECT_FALSE(codes.RecordAccessToken(other, "jti-3", kStart / 1000 + 300));
  EXPECT_FALSE(codes.RecordAccessToken("not-a-code", "jti-4", kStart / 1000 + 300));
}

TEST(PagesTest, EscapingAndPolicy) {
  EXPECT_EQ(HtmlEscape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(PageContentSecurityPolicy(""),
            "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
  EXPECT_EQ(PageContentSecurityPolicy("http://127.0.0.1:9000"),
            "default-src 'none'; form-action 'self' http://127.0.0.1:9000; frame-ancestors "
            "'none'; base-uri 'none'");
  // A stored URI cannot inject a directive.
  EXPECT_EQ(PageContentSecurityPolicy("https://a.example; script-src *"),
            "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
}

// --- Enrollment pages ---

class EnrollPagesTest : public LoginTest {
 protected:
  struct Started {
    std::string token;
    std::string cookie;  // "__Host-phigate-enroll=..."
    std::string csrf;
  };
  Started OpenLink() {
    Result<NewUser> added = accounts_->AddUser("erin", {"billing"}, "");
    EXPECT_TRUE(added.ok());
    Req r;
    r.query = "token=" + added->enrollment_token;
    EndpointResponse page = endpoints_->EnrollPage(r.View());
    EXPECT_EQ(page.status, 200) << page.body;
    const std::string set_cookie = Header(page, "Set-Cookie").value_or("");
    EXPECT_TRUE(set_cookie.starts_with("__Host-phigate-enroll="));
    EXPECT_TRUE(set_cookie.ends_with("; Secure; HttpOnly; SameSite=Strict; Path=/"));
    EXPECT_EQ(HiddenValue(page.body, "token"), added->enrollment_token);
    EXPECT_NE(page.body.find("action=\"/oauth2/enroll\""), std::string::npos);
    EXPECT_NE(page.body.find("id=\"password2\" name=\"password2\""), std::string::npos);
    EXPECT_NE(page.body.find("value=\"erin\""), std::string::npos);
    return {added->enrollment_token, set_cookie.substr(0, set_cookie.find(';')),
            HiddenValue(page.body, "csrf")};
  }
  EndpointResponse SetPassword(const Started& s, const std::string& p1, const std::string& p2) {
    return Post(&LoginEndpoints::Enroll, s.cookie,
                FormBody({{"token", s.token},
                          {"csrf", s.csrf},
                          {"username", "erin"},
                          {"password", p1},
                          {"password2", p2}}));
  }
  EndpointResponse Confirm(const Started& s, const std::string& code) {
    return Post(&LoginEndpoints::EnrollConfirm, s.cookie,
                FormBody({{"token", s.token}, {"csrf", s.csrf}, {"code", code}}));
  }
  static std::string Between(const std::string& body, const std::string& open,
                             const std::string& close) {
    const size_t a = body.find(open);
    if (a == std::string::npos) return {};
    const size_t b = body.find(close, a + open.size());
    return body.substr(a + open.size(), b - a - open.size());
  }
};

TEST_F(EnrollPagesTest, TheWholeEnrollmentThroughThePages) {
  Started s = OpenLink();
  EndpointResponse mismatch = SetPassword(s, "one good passphrase", "another passphrase");
  EXPECT_EQ(mismatch.status, 400);
  EXPECT_NE(mismatch.body.find("The two passwords are not the same."), std::string::npos);
  EndpointResponse weak = SetPassword(s, "short", "short");
  EXPECT_EQ(weak.status, 400);
  EXPECT_NE(weak.body.find("The password must have at least 12 characters."), std::string::npos);
  EXPECT_EQ(weak.body.find("value=\"short\""), std::string::npos);

  EndpointResponse totp = SetPassword(s, "one good passphrase", "one good passphrase");
  ASSERT_EQ(totp.status, 200) << totp.body;
  const std::string secret_b32 = Between(totp.body, "<code id=\"totp-secret\">", "</code>");
  ASSERT_EQ(secret_b32.size(), 32u);
  const std::string uri = Between(totp.body, "<code id=\"otpauth-uri\">", "</code>");
  EXPECT_TRUE(uri.starts_with("otpauth://totp/")) << uri;
  EXPECT_NE(uri.find("secret=" + secret_b32), std::string::npos);
  EXPECT_NE(totp.body.find("<svg"), std::string::npos);
  EXPECT_NE(totp.body.find("action=\"/oauth2/enroll/confirm\""), std::string::npos);
  EXPECT_EQ(Header(totp, "Content-Security-Policy").value_or(""),
            "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
  const std::string secret = Base32Decode(secret_b32).value();

  EndpointResponse wrong = Confirm(s, "abcdef");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_NE(wrong.body.find("The code is incorrect or has expired."), std::string::npos);
  EXPECT_NE(wrong.body.find(secret_b32), std::string::npos);  // shown again

  EndpointResponse done = Confirm(s, Code(secret));
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_NE(done.body.find("id=\"enrollment-complete\""), std::string::npos);
  EXPECT_EQ(Header(done, "Set-Cookie").value_or(""),
            "__Host-phigate-enroll=; Max-Age=0; Secure; HttpOnly; SameSite=Strict; Path=/");

  // The link is spent.
  Req again;
  again.query = "token=" + s.token;
  ExpectErrorPage(endpoints_->EnrollPage(again.View()), 400);
  ExpectErrorPage(SetPassword(s, "one good passphrase", "one good passphrase"), 400);

  // And the person can log in.
  clock_.Advance(kTotpStepS * 1000);
  Flow f = Start();
  EndpointResponse page = PostPassword(f, "erin", "one good passphrase");
  ASSERT_EQ(page.status, 200);
  f.csrf = HiddenValue(page.body, "csrf");
  EXPECT_EQ(PostCode(f, Code(secret)).status, 303);
}

TEST_F(EnrollPagesTest, EnrollmentFormsNeedTheirCookieAndToken) {
  Started s = OpenLink();
  ExpectErrorPage(SetPassword({s.token, "", s.csrf}, "one good passphrase", "one good passphrase"),
                  403);
  ExpectErrorPage(
      SetPassword({s.token, s.cookie, "forged"}, "one good passphrase", "one good passphrase"),
      403);
  ExpectErrorPage(SetPassword({s.token, "__Host-phigate-enroll=other", s.csrf},
                              "one good passphrase", "one good passphrase"),
                  403);
  ExpectErrorPage(Confirm({s.token, s.cookie, "forged"}, "123456"), 403);
  // A form of one link cannot be replayed against another link.
  Result<NewUser> other = accounts_->AddUser("frank", {"billing"}, "");
  ASSERT_TRUE(other.ok());
  ExpectErrorPage(SetPassword({other->enrollment_token, s.cookie, s.csrf}, "one good passphrase",
                              "one good passphrase"),
                  403);
  // Bad links.
  for (const std::string& q :
       {std::string("token=nope"), std::string(""), "token=" + s.token + "&token=" + s.token}) {
    Req r;
    r.query = q;
    ExpectErrorPage(endpoints_->EnrollPage(r.View()), 400);
  }
  clock_.Advance(config_.enrollment_ttl_s * 1000);
  ExpectErrorPage(SetPassword(s, "one good passphrase", "one good passphrase"), 400);
}

}  // namespace
}  // namespace phigate::auth
