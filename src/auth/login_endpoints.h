// The person-facing endpoints of the built-in authorization server, transport-free:
//   GET  /oauth2/authorize       validates the authorization request (RFC 6749 §4.1.1,
//                                PKCE RFC 7636, RFC 9207 iss) and shows the login page
//   POST /oauth2/login           step 1: username + password
//   POST /oauth2/login/otp       step 2: TOTP code; 303 to the app with a code
//   GET  /oauth2/enroll          enrollment page behind a one-time link
//   POST /oauth2/enroll          enrollment step 1: the new password; shows the TOTP secret
//   POST /oauth2/enroll/confirm  enrollment step 2: the first code activates the account
// See docs/authentication.md (Endpoints, Login, Enrollment, Failed attempts).
//
// Authorize validates the client and redirect_uri before anything else: an unknown or
// disabled client, or a redirect_uri not registered exactly, gets a 400 error page and
// never a redirect (RFC 6749 §4.1.2.1, RFC 9700 §4.1.1). Every later error goes back to
// the app by a 303 redirect with error, state and iss.
//
// A login is a server-side *transaction* (kLoginTransactionTtlS, at most
// kMaxLoginTransactions in memory) named by a random id in the cookie __Host-phigate-login
// (Secure; HttpOnly; SameSite=Lax; Path=/). It holds the validated request, the step
// reached and a CSRF token that the page's form posts back; the token changes with every
// page shown. A POST whose cookie or CSRF token does not match is refused with 403.
// Transactions are in memory only: `serve` is one process per data dir, and a restart
// merely makes a person start the login again.
// Starting a transaction needs only public data (a client id and its redirect URI), so
// nobody may evict anybody else's: one network address holds at most
// kMaxTransactionsPerAddress (its own oldest gives way), and when the table is full of
// live transactions a new one is refused with a 503 page and Retry-After (the time until
// the next expiry) instead of evicting. Expired transactions are swept in expiry order
// through an ordered index, so eviction never scans the table.
//
// Redirect URIs match the registration exactly (RFC 9700 §4.1.3), except that for a
// registered loopback URI (http://127.0.0.1, http://[::1], http://localhost) the port may
// differ (RFC 8252 §7.3: native apps bind an ephemeral port); scheme, host, path and query
// still match exactly, and the URI used is the one requested. A SMART `aud` parameter, if
// present, must be the FHIR base URL (AuthConfig::audience), else invalid_request.
//
// Throttling per network address: more than AuthConfig::address_max_failures failed
// passwords or codes within address_window_s -> 429 with Retry-After, whatever the
// account (an in-memory sliding window, at most kMaxTrackedAddresses addresses). Each
// attempt is counted *before* its check runs (a reservation, given back on success), so
// parallel requests from one address cannot run more checks than the limit allows.
//
// Forms must be application/x-www-form-urlencoded (else 415) with no repeated field
// (else 400) and at most kMaxFormBytes (else 413).
//
// Thread-safety: every method is safe from any thread (one mutex guards the transactions
// and the throttle; password hashing and storage calls run outside it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "auth/accounts.h"
#include "auth/authorization_codes.h"
#include "auth/endpoint.h"
#include "auth/security_events.h"
#include "core/clock.h"
#include "core/config.h"
#include "storage/store.h"

namespace phigate::auth {

inline constexpr int64_t kLoginTransactionTtlS = 600;
inline constexpr size_t kMaxLoginTransactions = 10'000;
inline constexpr size_t kMaxTransactionsPerAddress = 20;
inline constexpr size_t kMaxTrackedAddresses = 100'000;
inline constexpr size_t kMaxFormBytes = 16 * 1024;
// Bounds on values the app sends that phigate stores and sends back.
inline constexpr size_t kMaxStateBytes = 1024;
inline constexpr size_t kMaxNonceBytes = 512;
inline constexpr std::string_view kLoginCookie = "__Host-phigate-login";
inline constexpr std::string_view kEnrollCookie = "__Host-phigate-enroll";

class LoginEndpoints {
 public:
  LoginEndpoints(storage::Store& store, Accounts& accounts, AuthorizationCodes& codes,
                 const Clock& clock, const AuthConfig& config, std::string issuer,
                 SecurityEventSink& events);

  EndpointResponse Authorize(const EndpointRequest& request);
  EndpointResponse Login(const EndpointRequest& request);
  EndpointResponse LoginOtp(const EndpointRequest& request);
  EndpointResponse EnrollPage(const EndpointRequest& request);
  EndpointResponse Enroll(const EndpointRequest& request);
  EndpointResponse EnrollConfirm(const EndpointRequest& request);

  // Live login transactions (for tests and metrics).
  size_t transaction_count();

 private:
  struct Transaction {
    std::string client_id;
    std::string client_name;
    std::string redirect_uri;  // exactly as registered and requested
    std::string app_origin;    // of redirect_uri, for the pages' form-action
    std::string scope;         // requested scope, ScopeSet::ToString()
    bool patient_scopes = false;
    std::string state;  // may be empty
    std::string nonce;  // may be empty
    std::string code_challenge;
    std::string csrf;
    std::string user_id;  // set when the password step succeeded
    bool password_ok = false;
    int64_t expires_ms = 0;
    std::string address;  // the remote address that started it (per-address cap)
  };

  // Finds the transaction of the request's cookie and checks the form's CSRF token. On
  // failure `error` is the response (403) and nullopt is returned. `key` receives the
  // transaction's map key.
  std::optional<Transaction> FindTransaction(const EndpointRequest& request, std::string_view csrf,
                                             std::string& key, EndpointResponse& error);
  // Stores a fresh CSRF token in the transaction and returns it ("" if it has ended).
  std::string RotateCsrf(const std::string& key);
  void EndTransaction(const std::string& key);
  void SweepTransactionsLocked(int64_t now_ms);
  // Removes a transaction and its index entries; holds mu_.
  void EraseTransactionLocked(const std::string& key);

  // Counts an attempt from `address` against its failure window before the check runs.
  // Returns the seconds until the address may try again if it is throttled now (nothing
  // is counted then); otherwise the time of the reservation, for ReleaseAddressAttempt
  // when the attempt succeeds (or fails for a reason that is not a wrong guess).
  struct Reservation {
    std::optional<int64_t> retry_after_s;
    int64_t at_ms = 0;
  };
  Reservation ReserveAddressAttempt(std::string_view address);
  void ReleaseAddressAttempt(std::string_view address, int64_t at_ms);
  EndpointResponse Throttled(std::string_view address, int64_t retry_after_s,
                             std::string_view client_id);

  EndpointResponse ErrorRedirect(const std::string& redirect_uri, std::string_view error,
                                 std::string_view state) const;
  EndpointResponse StorageErrorPage(const Status& status) const;

  storage::Store& store_;
  Accounts& accounts_;
  AuthorizationCodes& codes_;
  const Clock& clock_;
  const AuthConfig& config_;
  std::string issuer_;
  SecurityEventSink& events_;

  std::mutex mu_;
  // SHA-256(cookie id) -> transaction, so a memory dump shows no usable cookie; guarded
  // by mu_.
  std::unordered_map<std::string, Transaction> transactions_;
  // (expires_ms, key) of every transaction, for sweeping in expiry order; guarded by mu_.
  std::set<std::pair<int64_t, std::string>> transactions_by_expiry_;
  // address -> keys of its transactions, oldest first; guarded by mu_.
  std::unordered_map<std::string, std::deque<std::string>> transactions_by_address_;
  // address -> times (ms) of its recent failures, oldest first; guarded by mu_.
  std::unordered_map<std::string, std::deque<int64_t>> address_failures_;
};

}  // namespace phigate::auth
