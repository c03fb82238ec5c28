// The HTML pages of the built-in authorization server: login (password, then TOTP code),
// enrollment (new password, then authenticator setup) and errors.
//
// Each page is a small, valid HTML5 document with no script, no style sheet and no
// external asset, so its Content-Security-Policy can forbid everything but form posts
// (default-src 'none'). Every interpolated value is HTML-escaped, attribute values are
// always double-quoted, and the only markup not produced here is the QR code SVG (made by
// auth::QrCodeSvg from a URI phigate built). Inputs have stable names and ids (username,
// password, password2, code, csrf, token) that browsers' password managers and the
// end-to-end tests rely on; every input has a <label>.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "auth/endpoint.h"
#include "core/html.h"  // HtmlEscape

namespace phigate::auth {

// The Content-Security-Policy of a page. `app_origin` (scheme://host[:port] of the app's
// redirect_uri) is added to form-action on login pages, because Chrome applies
// form-action to the redirect that follows a form POST; it is left out unless it consists
// of URL origin characters only, so a stored URI cannot inject a directive.
std::string PageContentSecurityPolicy(std::string_view app_origin);
// A text/html response with the page headers: the CSP above, Referrer-Policy no-referrer,
// Cache-Control no-store, X-Content-Type-Options nosniff.
EndpointResponse HtmlResponse(int status, std::string body, std::string_view app_origin = {});

// Login step 1: username + password, posted to /oauth2/login. `error` may be empty.
std::string LoginPage(std::string_view client_name, std::string_view csrf, std::string_view error);
// Login step 2: the TOTP code, posted to /oauth2/login/otp.
std::string TotpPage(std::string_view client_name, std::string_view csrf, std::string_view error);
// Enrollment step 1: the new password twice, posted to /oauth2/enroll.
std::string EnrollPasswordPage(std::string_view token, std::string_view csrf,
                               std::string_view username, int min_password_length,
                               std::string_view error);
// Enrollment step 2: the secret (id totp-secret), the otpauth URI (id otpauth-uri), the
// QR code (`qr_svg`, inline SVG markup; empty shows a note instead) and the first code,
// posted to /oauth2/enroll/confirm.
std::string EnrollTotpPage(std::string_view token, std::string_view csrf,
                           std::string_view secret_base32, std::string_view otpauth_uri,
                           std::string_view qr_svg, std::string_view error);
// Enrollment finished.
std::string EnrollDonePage();
// Any refusal that cannot go back to an app: a title and a sentence.
std::string ErrorPage(std::string_view title, std::string_view message);

}  // namespace phigate::auth
