#include "transport/auth/bearer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::transport::auth {
namespace {

using ::testing::HasSubstr;

TEST(BearerTest, AcceptsAKnownTokenInAnyCaseOfTheScheme) {
  auto tokens = TokenStore::FromTokens({"s3cret"});
  ASSERT_TRUE(tokens.ok());
  EXPECT_TRUE(CheckBearer(**tokens, "Bearer s3cret").ok());
  EXPECT_TRUE(CheckBearer(**tokens, "bearer s3cret").ok());
  EXPECT_TRUE(CheckBearer(**tokens, " BEARER   s3cret ").ok());
}

TEST(BearerTest, RefusesMissingMalformedAndUnknownTokens) {
  auto tokens = TokenStore::FromTokens({"s3cret"});
  ASSERT_TRUE(tokens.ok());
  absl::Status missing = CheckBearer(**tokens, std::nullopt);
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(missing.message(), HasSubstr("missing bearer token"));
  EXPECT_THAT(CheckBearer(**tokens, "Basic czNjcmV0").message(),
              HasSubstr("expected 'Bearer <token>'"));
  EXPECT_THAT(CheckBearer(**tokens, "s3cret").message(), HasSubstr("expected 'Bearer <token>'"));
  absl::Status wrong = CheckBearer(**tokens, "Bearer s3cre");
  EXPECT_EQ(wrong.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(wrong.message(), HasSubstr("invalid bearer token"));
  EXPECT_THAT(wrong.message(), ::testing::Not(HasSubstr("s3cre")));
  EXPECT_EQ(CheckBearer(**tokens, "Bearer ").code(), absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace modeld::transport::auth
