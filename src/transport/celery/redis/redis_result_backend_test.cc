#include "transport/celery/redis/redis_result_backend.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transport/celery/redis/redis_celery_broker.h"
#include "transport/redis/hiredis_connection.h"
#include "transport/redis/testing/redis_test_server.h"

namespace modeld::transport::celery {
namespace {

using redis::RedisConnection;
using redis::RedisReply;
using redis::RedisTestServer;
using ::testing::ElementsAre;
using ::testing::Field;

class RedisResultBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = RedisTestServer::Start();
    if (absl::IsNotFound(server.status())) GTEST_SKIP() << "no redis-server";
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto admin = server_->Connect();
    ASSERT_TRUE(admin.ok()) << admin.status();
    admin_ = *std::move(admin);
  }

  RedisResultBackendOptions Options() {
    RedisResultBackendOptions options;
    const redis::RedisEndpoint endpoint = server_->endpoint();
    options.connector = [this, endpoint](absl::string_view role) {
      ++connects_;
      return redis::ConnectHiredis(endpoint, redis::HiredisOptions(), role);
    };
    options.where = endpoint.ToString();
    return options;
  }

  RedisReply Admin(redis::RedisCommand command) {
    absl::StatusOr<RedisReply> reply = admin_->Command(std::move(command));
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.value_or(RedisReply::Nil());
  }

  std::unique_ptr<RedisTestServer> server_;
  std::unique_ptr<RedisConnection> admin_;
  int connects_ = 0;
  RedisCeleryBroker unused_broker_{RedisCeleryBrokerOptions{}};
};

TEST_F(RedisResultBackendTest, StoresWithExpiryAndPublishes) {
  // A subscriber, as AsyncResult.get() is.
  auto subscriber = server_->Connect();
  ASSERT_TRUE(subscriber.ok());
  ASSERT_TRUE((*subscriber)->Command({"SUBSCRIBE", "celery-task-meta-a"}).ok());

  RedisResultBackend backend(Options());
  EXPECT_EQ(backend.Describe(), "redis://" + server_->endpoint().ToString());
  ASSERT_TRUE(backend
                  .Store({{"a", "", R"({"status": "SUCCESS", "task_id": "a"})"},
                          {"", "", "no id: skipped"},
                          {"b", "", R"({"status": "FAILURE", "task_id": "b"})"}},
                         unused_broker_)
                  .ok());
  EXPECT_EQ(Admin({"GET", "celery-task-meta-a"}).str, R"({"status": "SUCCESS", "task_id": "a"})");
  EXPECT_EQ(Admin({"GET", "celery-task-meta-b"}).str, R"({"status": "FAILURE", "task_id": "b"})");
  const int64_t ttl = Admin({"TTL", "celery-task-meta-a"}).integer;
  EXPECT_GT(ttl, 86400 - 10);
  EXPECT_LE(ttl, 86400);
  EXPECT_EQ(Admin({"DBSIZE"}).integer, 2);

  // In subscribed mode the next reply read is the pushed message (PING's reply follows it).
  absl::StatusOr<RedisReply> pushed = (*subscriber)->Command({"PING"});
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_THAT(pushed->elements,
              ElementsAre(Field(&RedisReply::str, "message"),
                          Field(&RedisReply::str, "celery-task-meta-a"),
                          Field(&RedisReply::str, R"({"status": "SUCCESS", "task_id": "a"})")));
}

TEST_F(RedisResultBackendTest, NoExpiryKeepsResultsAndSubSecondRoundsUp) {
  RedisResultBackendOptions options = Options();
  options.expiry = absl::ZeroDuration();
  RedisResultBackend forever(options);
  ASSERT_TRUE(forever.Store({{"a", "", "{}"}}, unused_broker_).ok());
  EXPECT_EQ(Admin({"TTL", "celery-task-meta-a"}).integer, -1);

  options.expiry = absl::Milliseconds(1500);
  RedisResultBackend short_lived(options);
  ASSERT_TRUE(short_lived.Store({{"b", "", "{}"}}, unused_broker_).ok());
  EXPECT_EQ(Admin({"TTL", "celery-task-meta-b"}).integer, 2);
}

TEST_F(RedisResultBackendTest, ConnectsLazilyAndAgainAfterAFailure) {
  RedisResultBackend backend(Options());
  ASSERT_TRUE(backend.Store({}, unused_broker_).ok());
  ASSERT_TRUE(backend.Store({{"", "", "skipped"}}, unused_broker_).ok());
  EXPECT_EQ(connects_, 0);
  ASSERT_TRUE(backend.Store({{"a", "", "{}"}}, unused_broker_).ok());
  ASSERT_TRUE(backend.Store({{"b", "", "{}"}}, unused_broker_).ok());
  EXPECT_EQ(connects_, 1);

  // The server closes the connection: the call fails, the next one connects anew.
  Admin({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  EXPECT_TRUE(absl::IsUnavailable(backend.Store({{"c", "", "{}"}}, unused_broker_)));
  ASSERT_TRUE(backend.Store({{"c", "", "{}"}}, unused_broker_).ok());
  EXPECT_EQ(connects_, 2);
}

TEST_F(RedisResultBackendTest, RefusalsAndALostServerAreUnavailable) {
  RedisResultBackend backend(Options());
  Admin({"CONFIG", "SET", "maxmemory", "1"});
  absl::Status refused = backend.Store({{"a", "", "{}"}}, unused_broker_);
  EXPECT_TRUE(absl::IsUnavailable(refused)) << refused;
  EXPECT_THAT(refused.message(), ::testing::HasSubstr("OOM"));
  Admin({"CONFIG", "SET", "maxmemory", "0"});
  server_.reset();
  EXPECT_TRUE(absl::IsUnavailable(backend.Store({{"a", "", "{}"}}, unused_broker_)));
}

}  // namespace
}  // namespace modeld::transport::celery
