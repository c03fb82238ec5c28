#include "http/router.h"

#include <gtest/gtest.h>

namespace phigate::http {
namespace {

class RouterTest : public ::testing::Test {
 protected:
  Result<Route> R(std::string_view target) { return RouteTarget(target, fhir::Model::R4()); }
};

TEST_F(RouterTest, FhirRoutes) {
  auto r = R("/fhir/Patient/abc-1.2/_history/3?_pretty=true");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, RouteKind::kFhirVersion);
  EXPECT_EQ(r->type, "Patient");
  EXPECT_EQ(r->id, "abc-1.2");
  EXPECT_EQ(r->vid, "3");
  EXPECT_EQ(r->query, "_pretty=true");
  EXPECT_STREQ(r->name, "/fhir/{type}/{id}/_history/{vid}");

  EXPECT_EQ(R("/fhir/Observation")->kind, RouteKind::kFhirType);
  EXPECT_STREQ(R("/fhir/Observation")->allow, "GET, POST, PUT, DELETE");
  EXPECT_EQ(R("/fhir/Observation/_history")->kind, RouteKind::kFhirTypeHistory);
  EXPECT_EQ(R("/fhir/Observation/o1")->kind, RouteKind::kFhirInstance);
  EXPECT_STREQ(R("/fhir/Observation/o1")->allow, "GET, PUT, DELETE");
  EXPECT_EQ(R("/fhir/Observation/o1/_history")->kind, RouteKind::kFhirInstanceHistory);
  EXPECT_EQ(R("/fhir/metadata")->kind, RouteKind::kMetadata);
  EXPECT_EQ(R("/fhir")->kind, RouteKind::kFhirSystem);
  EXPECT_EQ(R("/fhir/Patient/1/$everything")->kind, RouteKind::kEverything);
  EXPECT_EQ(R("/fhir/Patient/1/$everything")->id, "1");
  EXPECT_STREQ(R("/fhir/Patient/1/$everything")->allow, "GET");
  EXPECT_EQ(R("/fhir/Observation/1/$everything")->kind, RouteKind::kFhirOperation);
  EXPECT_EQ(R("/fhir/Patient/1/$validate")->kind, RouteKind::kFhirOperation);
  EXPECT_EQ(R("/fhir/Patient/_search")->kind, RouteKind::kFhirSearch);
  EXPECT_EQ(R("/fhir/Patient/_search")->type, "Patient");
  EXPECT_STREQ(R("/fhir/Patient/_search")->allow, "POST");
  EXPECT_EQ(R("/fhir/Nope/_search").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(R("/fhir/Patient/")->kind, RouteKind::kFhirType);  // one trailing slash
}

TEST_F(RouterTest, ServiceRoutes) {
  EXPECT_EQ(R("/healthz")->kind, RouteKind::kHealthz);
  EXPECT_EQ(R("/readyz")->kind, RouteKind::kReadyz);
  EXPECT_EQ(R("/oauth2/token")->kind, RouteKind::kToken);
  EXPECT_STREQ(R("/oauth2/token")->allow, "POST");
  EXPECT_EQ(R("/oauth2/jwks")->kind, RouteKind::kJwks);
  EXPECT_EQ(R("/oauth2/authorize?client_id=x")->kind, RouteKind::kAuthorize);
  EXPECT_EQ(R("/oauth2/authorize?client_id=x")->query, "client_id=x");
  EXPECT_EQ(R("/oauth2/login")->kind, RouteKind::kLogin);
  EXPECT_EQ(R("/oauth2/login/otp")->kind, RouteKind::kLoginOtp);
  EXPECT_EQ(R("/oauth2/revoke")->kind, RouteKind::kRevoke);
  EXPECT_EQ(R("/oauth2/introspect")->kind, RouteKind::kIntrospect);
  EXPECT_EQ(R("/oauth2/enroll?token=t")->kind, RouteKind::kEnroll);
  EXPECT_STREQ(R("/oauth2/enroll")->allow, "GET, POST");
  EXPECT_EQ(R("/oauth2/enroll/confirm")->kind, RouteKind::kEnrollConfirm);
  EXPECT_EQ(R("/.well-known/openid-configuration")->kind, RouteKind::kOpenIdConfiguration);
  EXPECT_EQ(R("/fhir/.well-known/smart-configuration")->kind, RouteKind::kSmartConfiguration);
  EXPECT_EQ(R("/fhir/.well-known/other").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(R("/oauth2/login/other").status().code(), StatusCode::kNotFound);
}

TEST_F(RouterTest, UnknownTypeAndPathAreNotFound) {
  EXPECT_EQ(R("/fhir/Patientx/1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(R("/fhir/Patientx/1").status().message(), "unknown resource type");
  EXPECT_EQ(R("/fhir/Resource").status().code(), StatusCode::kNotFound);  // abstract
  EXPECT_EQ(R("/nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(R("/fhir/Patient/1/_history/2/x").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(R("/fhir//Patient").status().code(), StatusCode::kNotFound);
}

TEST_F(RouterTest, RejectsTraversalNulAndNonOriginForm) {
  for (const char* bad :
       {"/fhir/../etc/passwd", "/fhir/Patient/..", "/fhir/%2e%2e/x", "/fhir/%2E%2e",
        "/fhir/Patient/a%00b", "/fhir/Patient?x=%00", "/fhir/Patient/a%2fb", "/fhir/./Patient",
        "http://evil/fhir", "*", "", "/fhir/Patient/%zz", "/fhir/Patient/a%5cb"}) {
    auto r = R(bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(r.status().message(), "invalid request target") << bad;
  }
}

}  // namespace
}  // namespace phigate::http
