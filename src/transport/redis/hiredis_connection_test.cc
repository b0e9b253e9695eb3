#include "transport/redis/hiredis_connection.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transport/redis/testing/redis_test_server.h"

namespace modeld::transport::redis {
namespace {

using ::testing::HasSubstr;

// Starts redis-server for the test, or skips the test when it is not installed.
#define START_REDIS_OR_SKIP(server, ...)                                              \
  auto server##_started = RedisTestServer::Start(__VA_ARGS__);                        \
  if (absl::IsNotFound(server##_started.status())) GTEST_SKIP() << "no redis-server"; \
  ASSERT_TRUE(server##_started.ok()) << server##_started.status();                    \
  std::unique_ptr<RedisTestServer> server = *std::move(server##_started)

TEST(HiredisConnectionTest, RunsCommandsAndPipelines) {
  START_REDIS_OR_SKIP(server);
  absl::StatusOr<std::unique_ptr<RedisConnection>> connection =
      ConnectHiredis(server->endpoint(), HiredisOptions(), "test");
  ASSERT_TRUE(connection.ok()) << connection.status();
  absl::StatusOr<std::vector<RedisReply>> replies =
      (*connection)
          ->Pipeline({{"SET", "k", std::string("a\0b", 3)},
                      {"GET", "k"},
                      {"LPUSH", "k", "x"},
                      {"GET", "none"}});
  ASSERT_TRUE(replies.ok()) << replies.status();
  ASSERT_EQ(replies->size(), 4u);
  EXPECT_EQ((*replies)[0].type, RedisReply::Type::kStatus);
  EXPECT_EQ((*replies)[1].str, std::string("a\0b", 3));  // binary-safe
  EXPECT_TRUE((*replies)[2].IsError());                  // in its place, not a failed call
  EXPECT_THAT((*replies)[2].str, HasSubstr("WRONGTYPE"));
  EXPECT_TRUE((*replies)[3].IsNil());
  absl::StatusOr<RedisReply> name = (*connection)->Command({"CLIENT", "GETNAME"});
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(name->str, "modeld-test");
}

TEST(HiredisConnectionTest, UnreachableRedisIsUnavailable) {
  START_REDIS_OR_SKIP(server);
  RedisEndpoint endpoint = server->endpoint();
  server.reset();  // nothing listens there any more
  absl::StatusOr<std::unique_ptr<RedisConnection>> connection =
      ConnectHiredis(endpoint, HiredisOptions(), "test");
  EXPECT_EQ(connection.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(connection.status().message(), HasSubstr("cannot connect to Redis at 127.0.0.1"));
}

TEST(HiredisConnectionTest, AuthenticatesAndSelectsTheDatabase) {
  START_REDIS_OR_SKIP(server, {"--requirepass", "s3cret"});
  RedisEndpoint endpoint = server->endpoint();
  endpoint.password = "s3cret";
  endpoint.db = 2;
  absl::StatusOr<std::unique_ptr<RedisConnection>> connection =
      ConnectHiredis(endpoint, HiredisOptions(), "test");
  ASSERT_TRUE(connection.ok()) << connection.status();
  ASSERT_TRUE((*connection)->Command({"SET", "where", "db2"}).ok());
  endpoint.db = 0;
  auto other = ConnectHiredis(endpoint, HiredisOptions(), "test");
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE((*other)->Command({"GET", "where"})->IsNil());
  ASSERT_TRUE((*other)->Command({"SELECT", "2"}).ok());
  EXPECT_EQ((*other)->Command({"GET", "where"})->str, "db2");

  endpoint.password = "wrong";
  EXPECT_EQ(ConnectHiredis(endpoint, HiredisOptions(), "test").status().code(),
            absl::StatusCode::kPermissionDenied);
  endpoint.user = "nobody";
  endpoint.password = "s3cret";
  EXPECT_EQ(ConnectHiredis(endpoint, HiredisOptions(), "test").status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(HiredisConnectionTest, ABrokenConnectionStaysBroken) {
  START_REDIS_OR_SKIP(server);
  auto connection = ConnectHiredis(server->endpoint(), HiredisOptions(), "test");
  ASSERT_TRUE(connection.ok());
  ASSERT_TRUE((*connection)->Command({"QUIT"}).ok());  // the server closes the socket
  EXPECT_EQ((*connection)->Command({"PING"}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ((*connection)->Command({"PING"}).status().code(), absl::StatusCode::kUnavailable);
}

TEST(HiredisConnectionTest, ASlowReplyTimesOut) {
  START_REDIS_OR_SKIP(server);
  HiredisOptions options;
  options.command_timeout = absl::Milliseconds(100);
  auto connection = ConnectHiredis(server->endpoint(), options, "test");
  ASSERT_TRUE(connection.ok());
  absl::StatusOr<RedisReply> reply = (*connection)->Command({"BLPOP", "nothing", "2"});
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(reply.status().message(), HasSubstr("timed out"));
}

}  // namespace
}  // namespace modeld::transport::redis
