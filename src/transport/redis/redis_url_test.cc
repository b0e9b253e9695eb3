#include "transport/redis/redis_url.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::transport::redis {
namespace {

using ::testing::HasSubstr;

TEST(RedisUrlTest, HostAloneTakesTheDefaults) {
  absl::StatusOr<RedisEndpoint> endpoint = ParseRedisUrl("redis://cache.local");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->host, "cache.local");
  EXPECT_EQ(endpoint->port, 6379);
  EXPECT_EQ(endpoint->user, "");
  EXPECT_EQ(endpoint->password, "");
  EXPECT_EQ(endpoint->db, 0);
  EXPECT_EQ(endpoint->ToString(), "cache.local:6379/0");
}

TEST(RedisUrlTest, EveryPart) {
  absl::StatusOr<RedisEndpoint> endpoint = ParseRedisUrl("redis://app:s%40cret@10.0.0.2:6380/3");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->host, "10.0.0.2");
  EXPECT_EQ(endpoint->port, 6380);
  EXPECT_EQ(endpoint->user, "app");
  EXPECT_EQ(endpoint->password, "s@cret");
  EXPECT_EQ(endpoint->db, 3);
  EXPECT_EQ(endpoint->ToString(), "10.0.0.2:6380/3");  // no credentials in logs
}

TEST(RedisUrlTest, PasswordWithoutUser) {
  for (const char* url : {"redis://:pw@h:1/", "redis://pw@h:1"}) {
    absl::StatusOr<RedisEndpoint> endpoint = ParseRedisUrl(url);
    ASSERT_TRUE(endpoint.ok()) << url << ": " << endpoint.status();
    EXPECT_EQ(endpoint->user, "") << url;
    EXPECT_EQ(endpoint->password, "pw") << url;
    EXPECT_EQ(endpoint->port, 1) << url;
    EXPECT_EQ(endpoint->db, 0) << url;
  }
}

TEST(RedisUrlTest, Ipv6HostInBrackets) {
  absl::StatusOr<RedisEndpoint> endpoint = ParseRedisUrl("redis://[::1]:7000/1");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->host, "::1");
  EXPECT_EQ(endpoint->port, 7000);
  EXPECT_EQ(endpoint->ToString(), "[::1]:7000/1");
}

TEST(RedisUrlTest, ErrorsSayWhatIsWrong) {
  auto message = [](const char* url) { return std::string(ParseRedisUrl(url).status().message()); };
  EXPECT_THAT(message("http://h"), HasSubstr("must start with redis://"));
  EXPECT_THAT(message("redis://"), HasSubstr("no host"));
  EXPECT_THAT(message("redis://:pw@"), HasSubstr("no host"));
  EXPECT_THAT(message("redis://h:0"), HasSubstr("port '0' is not in 1..65535"));
  EXPECT_THAT(message("redis://h:99999"), HasSubstr("port '99999'"));
  EXPECT_THAT(message("redis://h:x"), HasSubstr("port 'x'"));
  EXPECT_THAT(message("redis://h:"), HasSubstr("empty port"));
  EXPECT_THAT(message("redis://h/two"), HasSubstr("db 'two'"));
  EXPECT_THAT(message("redis://u:%zz@h"), HasSubstr("percent-encoding"));
  EXPECT_THAT(message("redis://u:%4@h"), HasSubstr("percent-encoding"));
  EXPECT_THAT(message("redis://[::1"), HasSubstr("unclosed"));
  EXPECT_THAT(message("redis://user:@h"), HasSubstr("a user needs a password"));
}

}  // namespace
}  // namespace modeld::transport::redis
