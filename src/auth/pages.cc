#include "auth/pages.h"

#include <algorithm>
#include <utility>

namespace phigate::auth {

namespace {

// The head and tail every page shares. The meta referrer repeats the Referrer-Policy
// header for user agents that save the page.
std::string Document(std::string_view title, std::string_view main) {
  std::string out;
  out.reserve(main.size() + 512);
  out +=
      "<!DOCTYPE html>\n"
      "<html lang=\"en\">\n"
      "<head>\n"
      "<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<meta name=\"referrer\" content=\"no-referrer\">\n"
      "<title>";
  out += HtmlEscape(title);
  out += " - phigate</title>\n</head>\n<body>\n<main>\n<h1>";
  out += HtmlEscape(title);
  out += "</h1>\n";
  out += main;
  out += "</main>\n</body>\n</html>\n";
  return out;
}

// role="alert" makes screen readers announce the message when the page loads.
std::string ErrorParagraph(std::string_view error) {
  if (error.empty()) return {};
  return "<p role=\"alert\" id=\"error\">" + HtmlEscape(error) + "</p>\n";
}

std::string Hidden(std::string_view name, std::string_view value) {
  return "<input type=\"hidden\" name=\"" + std::string(name) + "\" id=\"" + std::string(name) +
         "\" value=\"" + HtmlEscape(value) + "\">\n";
}

std::string SubmitButton(std::string_view label) {
  return "<p><button type=\"submit\">" + std::string(label) + "</button></p>\n";
}

std::string CodeInput() {
  // autocomplete one-time-code lets phones offer the code; the pattern only guides the
  // browser, the server checks again.
  return "<p><label for=\"code\">6-digit code from your authenticator app</label><br>\n"
         "<input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" "
         "pattern=\"[0-9]{6}\" minlength=\"6\" maxlength=\"6\" autocomplete=\"one-time-code\" "
         "required autofocus></p>\n";
}

bool IsOriginChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == ':' || c == '/' || c == '[' || c == ']';
}

}  // namespace

std::string PageContentSecurityPolicy(std::string_view app_origin) {
  std::string form_action = "'self'";
  const bool safe = !app_origin.empty() &&
                    (app_origin.starts_with("https://") || app_origin.starts_with("http://")) &&
                    std::all_of(app_origin.begin(), app_origin.end(), IsOriginChar);
  if (safe) {
    form_action += ' ';
    form_action += app_origin;
  }
  return "default-src 'none'; form-action " + form_action +
         "; frame-ancestors 'none'; base-uri 'none'";
}

EndpointResponse HtmlResponse(int status, std::string body, std::string_view app_origin) {
  EndpointResponse r;
  r.status = status;
  r.content_type = "text/html; charset=utf-8";
  r.body = std::move(body);
  r.headers.emplace_back("Content-Security-Policy", PageContentSecurityPolicy(app_origin));
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

std::string LoginPage(std::string_view client_name, std::string_view csrf, std::string_view error) {
  std::string main;
  main +=
      "<p>to continue to <strong id=\"client-name\">" + HtmlEscape(client_name) + "</strong></p>\n";
  main += ErrorParagraph(error);
  main += "<form method=\"post\" action=\"/oauth2/login\">\n";
  main += Hidden("csrf", csrf);
  main +=
      "<p><label for=\"username\">Username</label><br>\n"
      "<input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" "
      "autocapitalize=\"none\" spellcheck=\"false\" maxlength=\"64\" required autofocus></p>\n"
      "<p><label for=\"password\">Password</label><br>\n"
      "<input type=\"password\" id=\"password\" name=\"password\" "
      "autocomplete=\"current-password\" required></p>\n";
  main += SubmitButton("Continue");
  main += "</form>\n";
  return Document("Sign in", main);
}

std::string TotpPage(std::string_view client_name, std::string_view csrf, std::string_view error) {
  std::string main;
  main +=
      "<p>to continue to <strong id=\"client-name\">" + HtmlEscape(client_name) + "</strong></p>\n";
  main += ErrorParagraph(error);
  main += "<form method=\"post\" action=\"/oauth2/login/otp\">\n";
  main += Hidden("csrf", csrf);
  main += CodeInput();
  main += SubmitButton("Sign in");
  main += "</form>\n";
  return Document("Enter your code", main);
}

std::string EnrollPasswordPage(std::string_view token, std::string_view csrf,
                               std::string_view username, int min_password_length,
                               std::string_view error) {
  const std::string min = std::to_string(min_password_length);
  std::string main;
  main += "<p>Choose a password for <strong>" + HtmlEscape(username) + "</strong>: at least " +
          min +
          " characters; a passphrase of several words works well. Common passwords and "
          "passwords containing your username are refused.</p>\n";
  main += ErrorParagraph(error);
  main += "<form method=\"post\" action=\"/oauth2/enroll\">\n";
  main += Hidden("token", token);
  main += Hidden("csrf", csrf);
  // The username field lets password managers store the new password under the right
  // name; the server ignores it.
  main +=
      "<p><label for=\"username\">Username</label><br>\n"
      "<input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" "
      "value=\"" +
      HtmlEscape(username) +
      "\" readonly></p>\n"
      "<p><label for=\"password\">New password</label><br>\n"
      "<input type=\"password\" id=\"password\" name=\"password\" "
      "autocomplete=\"new-password\" minlength=\"" +
      min +
      "\" required autofocus></p>\n"
      "<p><label for=\"password2\">New password again</label><br>\n"
      "<input type=\"password\" id=\"password2\" name=\"password2\" "
      "autocomplete=\"new-password\" minlength=\"" +
      min + "\" required></p>\n";
  main += SubmitButton("Set password");
  main += "</form>\n";
  return Document("Set up your account", main);
}

std::string EnrollTotpPage(std::string_view token, std::string_view csrf,
                           std::string_view secret_base32, std::string_view otpauth_uri,
                           std::string_view qr_svg, std::string_view error) {
  std::string main;
  main +=
      "<p>Add this account to an authenticator app (for example one that follows RFC 6238 "
      "TOTP): scan the QR code, or enter the key by hand.</p>\n";
  if (!qr_svg.empty()) {
    main += "<figure id=\"qr-code\">\n";
    main += qr_svg;
    main += "\n<figcaption>QR code of the authenticator link</figcaption>\n</figure>\n";
  } else {
    main += "<p>The QR code cannot be shown; enter the key by hand.</p>\n";
  }
  main += "<p>Key: <code id=\"totp-secret\">" + HtmlEscape(secret_base32) + "</code></p>\n";
  main += "<p>Link: <a id=\"otpauth-link\" href=\"" + HtmlEscape(otpauth_uri) +
          "\"><code id=\"otpauth-uri\">" + HtmlEscape(otpauth_uri) + "</code></a></p>\n";
  main += "<p>Then enter the code the app shows, to confirm it works.</p>\n";
  main += ErrorParagraph(error);
  main += "<form method=\"post\" action=\"/oauth2/enroll/confirm\">\n";
  main += Hidden("token", token);
  main += Hidden("csrf", csrf);
  main += CodeInput();
  main += SubmitButton("Confirm");
  main += "</form>\n";
  return Document("Set up your authenticator", main);
}

std::string EnrollDonePage() {
  return Document("Your account is ready",
                  "<p id=\"enrollment-complete\">Your password and authenticator are set up. "
                  "Go back to your app and sign in.</p>\n");
}

std::string ErrorPage(std::string_view title, std::string_view message) {
  return Document(title, "<p id=\"error\">" + HtmlEscape(message) + "</p>\n");
}

}  // namespace phigate::auth
