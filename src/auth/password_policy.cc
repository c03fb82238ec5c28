#include "auth/password_policy.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <string>

#include "core/ascii.h"

namespace phigate::auth {

namespace {

// Commonly used passwords (SP 800-63B §5.1.1.2: "passwords obtained from previous breach
// corpuses", "dictionary words", "repetitive or sequential characters", "context-specific
// words, such as the name of the service"). Lower case; compared case-insensitively, so
// "Password1" is refused too. Entries shorter than the configured minimum length are
// refused by the length rule anyway; they stay listed for deployments that lower it.
// clang-format off
constexpr std::string_view kCommonPasswords[] = {
    "123456", "123456789", "12345678", "12345", "1234567", "1234567890", "123123", "111111",
    "000000", "654321", "666666", "121212", "112233", "123321", "987654321", "1q2w3e4r",
    "1q2w3e4r5t", "1qaz2wsx", "qwerty", "qwerty123", "qwertyuiop", "qwerty1", "qwertyui",
    "qwertyuiopasdfghjkl", "asdfghjkl", "asdfgh", "asdf1234", "zxcvbnm", "zxcvbn", "azerty",
    "password", "password1", "password12", "password123", "password1234", "password12345",
    "passw0rd", "p@ssw0rd", "p@ssword", "pa$$word", "password!", "password1!", "passwordpassword",
    "changeme", "changeme123", "letmein", "letmein123", "welcome", "welcome1", "welcome123",
    "welcome2024", "welcome2025", "admin", "admin123", "admin1234", "administrator", "root", "toor",
    "guest", "default", "secret", "secret123", "iloveyou", "iloveyou1", "iloveyou123",
    "iloveyouforever", "trustno1", "monkey", "dragon", "master", "sunshine", "princess", "football",
    "baseball", "basketball", "soccer", "hockey", "superman", "batman", "spiderman", "starwars",
    "pokemon", "naruto", "shadow", "michael", "jennifer", "jordan", "jordan23", "hunter", "hunter2",
    "ranger", "buster", "thomas", "robert", "charlie", "daniel", "jessica", "ashley", "michelle",
    "nicole", "hannah", "matthew", "andrew", "joshua", "anthony", "william", "freedom", "whatever",
    "qazwsx", "qazwsxedc", "zaq12wsx", "zaq1zaq1", "mustang", "harley", "ginger", "pepper",
    "cookie", "cheese", "chocolate", "banana", "orange", "flower", "summer", "winter", "spring",
    "autumn", "summer2024", "summer2025", "winter2024", "winter2025", "spring2025", "autumn2024",
    "loveme", "lovely", "loveyou", "love123", "iloveu", "babygirl", "angel", "angels", "friends",
    "family", "forever", "computer", "internet", "login", "access", "access14", "letmein1", "hello",
    "hello123", "helloworld", "hello1234", "abc123", "abc1234", "abcd1234", "abcdef", "abcdefg",
    "abcdefgh", "abcdefghij", "abcdefghijkl", "a1b2c3", "a1b2c3d4", "aa123456", "aaaaaa",
    "aaaaaaaa", "aaaaaaaaaaaa", "11111111", "111111111111", "1111111111", "12341234", "123454321",
    "1234512345", "123456123456", "123456789012", "1234567890123", "12345678910", "0123456789",
    "00000000", "000000000000", "987654321987", "999999", "88888888", "77777777", "55555555",
    "159753", "147258369", "741852963", "789456123", "123qwe", "123qweasd", "123qweasdzxc",
    "qwe123", "qweasd", "qweasdzxc", "1234qwer", "qwer1234", "q1w2e3r4", "q1w2e3r4t5y6", "1q2w3e",
    "1q2w3e4r5t6y", "zxcvbnm123", "asdfghjkl123", "password2024", "password2025", "password2023",
    "p4ssw0rd", "passw0rd123", "letmeinplease", "opensesame", "correcthorsebatterystaple",
    "correcthorse", "thequickbrownfox", "iloveyou2", "mypassword", "mypassword123", "yourpassword",
    "nopassword", "newpassword", "oldpassword", "temppassword", "temp1234", "test", "test123",
    "test1234", "testing", "testing123", "tester", "demo", "demo1234", "user", "user1234",
    "username", "login123", "secure", "secure123", "security", "phigate", "phigate123", "fhir",
    "fhirfhir", "hospital", "hospital123", "doctor", "doctor123", "nurse", "nurse123", "clinic",
    "clinic123", "medical", "medical123", "patient", "patient123", "health", "health123",
    "healthcare", "healthcare123", "epic", "cerner", "hipaa", "hipaa123", "hl7fhir", "qwerty12345",
    "qwertyuiop123", "1qaz2wsx3edc", "1qazxsw2", "!qaz2wsx", "zaq!2wsx", "football1", "baseball1",
    "superman1", "monkey123", "dragon123", "sunshine1", "princess1", "shadow123", "master123",
    "michael1", "charlie1", "jordan123", "liverpool", "chelsea", "arsenal", "barcelona",
    "realmadrid", "manchester", "yankees", "cowboys", "steelers", "eagles", "tigers", "lakers"
};
// clang-format on

// Lower-cases ASCII letters only: the list is ASCII, and a non-ASCII password cannot
// equal an entry whatever its case.
std::string Lower(std::string_view s) { return ToLowerAscii(s); }

}  // namespace

std::optional<size_t> CountCodePoints(std::string_view text) {
  size_t count = 0;
  size_t i = 0;
  while (i < text.size()) {
    const auto b0 = static_cast<unsigned char>(text[i]);
    size_t len = 0;
    uint32_t cp = 0;
    if (b0 < 0x80) {
      len = 1;
      cp = b0;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {  // 0xC0, 0xC1 only start overlong forms
      len = 2;
      cp = b0 & 0x1Fu;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      cp = b0 & 0x0Fu;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      cp = b0 & 0x07u;
    } else {
      return std::nullopt;  // a continuation byte without a lead, or 0xF5..0xFF
    }
    if (text.size() - i < len) return std::nullopt;
    for (size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      if ((b & 0xC0u) != 0x80u) return std::nullopt;
      cp = (cp << 6) | (b & 0x3Fu);
    }
    // RFC 3629 §3: the shortest form only, no UTF-16 surrogates, nothing past U+10FFFF.
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return std::nullopt;
    }
    i += len;
    ++count;
  }
  return count;
}

bool IsCommonPassword(std::string_view password) {
  const std::string lower = Lower(password);
  return std::find(std::begin(kCommonPasswords), std::end(kCommonPasswords), lower) !=
         std::end(kCommonPasswords);
}

Status CheckPasswordPolicy(std::string_view password, std::string_view username, int min_length) {
  const std::optional<size_t> length = CountCodePoints(password);
  if (!length) return InvalidArgument("the password is not valid UTF-8 text");
  const size_t min = min_length > 0 ? static_cast<size_t>(min_length) : 1;
  if (*length < min) {
    return InvalidArgument("the password must have at least " + std::to_string(min) +
                           " characters");
  }
  if (*length > kMaxPasswordCodePoints) {
    return InvalidArgument("the password must have at most " +
                           std::to_string(kMaxPasswordCodePoints) + " characters");
  }
  if (!username.empty() && Lower(password).find(Lower(username)) != std::string::npos) {
    return InvalidArgument("the password must not contain the username");
  }
  if (IsCommonPassword(password)) {
    return InvalidArgument("the password is too commonly used; choose another one");
  }
  return Status::Ok();
}

}  // namespace phigate::auth
