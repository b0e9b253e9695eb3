#include "transport/amqp/amqp_url.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::transport::amqp {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(AmqpUrlTest, EveryPart) {
  absl::StatusOr<AmqpUrl> url = ParseAmqpUrl("amqp://web:s%40cret@mq.internal:5673/prod");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_FALSE(url->tls);
  EXPECT_EQ(url->host, "mq.internal");
  EXPECT_EQ(url->port, 5673);
  EXPECT_EQ(url->user, "web");
  EXPECT_EQ(url->password, "s@cret");
  EXPECT_EQ(url->vhost, "prod");
  EXPECT_EQ(url->Redacted(), "amqp://web:***@mq.internal:5673/prod");
}

TEST(AmqpUrlTest, RabbitmqDefaults) {
  absl::StatusOr<AmqpUrl> url = ParseAmqpUrl("amqp://");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->host, "localhost");
  EXPECT_EQ(url->port, 5672);
  EXPECT_EQ(url->user, "guest");
  EXPECT_EQ(url->password, "guest");
  EXPECT_EQ(url->vhost, "/");
  absl::StatusOr<AmqpUrl> tls = ParseAmqpUrl("amqps://mq/%2f");
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_TRUE(tls->tls);
  EXPECT_EQ(tls->port, 5671);
  EXPECT_EQ(tls->vhost, "/");
}

TEST(AmqpUrlTest, IPv6AddressesInBrackets) {
  absl::StatusOr<AmqpUrl> url = ParseAmqpUrl("amqp://u:pw@[::1]:5999/v");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, 5999);
  url = ParseAmqpUrl("amqp://[fe80::1]");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->host, "fe80::1");
  EXPECT_EQ(url->port, 5672);
}

TEST(AmqpUrlTest, AQueryIsRefusedPointingAtTheQueueFlag) {
  absl::StatusOr<AmqpUrl> url = ParseAmqpUrl("amqp://h:5999?queue=x");
  ASSERT_FALSE(url.ok());
  EXPECT_THAT(url.status().message(), HasSubstr("--amqp-queue"));
}

TEST(AmqpUrlTest, MistakesAreNamedWithoutThePassword) {
  for (const char* bad : {"redis://x", "amqp://u:pw@host:99999/", "amqp://u:pw@host:x/",
                          "amqp://u:pw@host/a/b", "amqp://u:p%4@host/", "amqp://u:pw@[::1/",
                          "amqp://u:pw@[::1]x/"}) {
    absl::StatusOr<AmqpUrl> url = ParseAmqpUrl(bad);
    ASSERT_FALSE(url.ok()) << bad;
    EXPECT_THAT(url.status().message(), HasSubstr("--amqp-url")) << bad;
    EXPECT_THAT(url.status().message(), Not(HasSubstr("pw"))) << bad;
  }
}

}  // namespace
}  // namespace modeld::transport::amqp
