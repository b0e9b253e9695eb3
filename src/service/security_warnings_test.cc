#include "service/security_warnings.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::service {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(SecurityWarningsTest, LoopbackAddresses) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:8001"));
  EXPECT_TRUE(IsLoopbackAddress("127.1.2.3:0"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:8000"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:8000"));
  EXPECT_TRUE(IsLoopbackAddress("unix:/run/modeld.sock"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:8001"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:8001"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.5:8001"));
  EXPECT_FALSE(IsLoopbackAddress("modeld.internal:8001"));
  EXPECT_FALSE(IsLoopbackAddress("128.0.0.1:8001"));
}

TEST(SecurityWarningsTest, TheDefaultsWarnOfNothing) {
  EXPECT_THAT(SecurityWarnings(ServerOptions()), IsEmpty());
}

TEST(SecurityWarningsTest, WarnsOfEachExposedPortWithoutTlsOrTokens) {
  ServerOptions options;
  options.grpc_address = "0.0.0.0:8001";
  options.model_control_mode = "explicit";
  EXPECT_THAT(
      SecurityWarnings(options),
      ElementsAre(AllOf(HasSubstr("gRPC on 0.0.0.0:8001"), HasSubstr("without TLS"),
                        HasSubstr("--grpc-tls-cert")),
                  AllOf(HasSubstr("gRPC on 0.0.0.0:8001"), HasSubstr("without bearer tokens"),
                        HasSubstr("--auth-token-file"), HasSubstr("load and unload models"))));

  options.grpc_tls_cert = "server.crt";
  options.auth_token_file = "tokens";
  options.http_address = "[::]:8000";
  EXPECT_THAT(SecurityWarnings(options),
              ElementsAre(AllOf(HasSubstr("HTTP on [::]:8000"), HasSubstr("--http-tls-cert"))));
  options.http_tls_cert = "server.crt";
  EXPECT_THAT(SecurityWarnings(options), IsEmpty());
}

}  // namespace
}  // namespace modeld::service
