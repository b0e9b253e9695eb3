#include "transport/redis/list_queue.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transport/redis/testing/redis_test_server.h"

namespace modeld::transport::redis {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ListQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = RedisTestServer::Start();
    if (absl::IsNotFound(server.status())) GTEST_SKIP() << "no redis-server";
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    for (auto* connection : {&reader_, &writer_, &admin_}) {
      auto opened = server_->Connect();
      ASSERT_TRUE(opened.ok()) << opened.status();
      *connection = *std::move(opened);
    }
  }

  static ListQueue Queue(const std::string& consumer) {
    QueueOptions options;
    options.consumer = consumer;
    options.visibility_timeout = absl::Seconds(30);
    options.reply_ttl = absl::Seconds(30);
    return ListQueue("q", options);
  }

  RedisReply Admin(RedisCommand command) {
    absl::StatusOr<RedisReply> reply = admin_->Command(std::move(command));
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.value_or(RedisReply::Nil());
  }

  std::vector<QueueEntry> Take(ListQueue& queue, int max = 10) {
    auto entries = queue.Take(*reader_, max, absl::Milliseconds(10));
    EXPECT_TRUE(entries.ok()) << entries.status();
    return entries.value_or(std::vector<QueueEntry>());
  }

  CompletionOutcome Complete(ListQueue& queue, const QueueEntry& entry, absl::string_view reply_key,
                             absl::string_view dead_reason = "") {
    auto outcomes = queue.Complete(*writer_, {{&entry, reply_key, "answer", dead_reason}});
    EXPECT_TRUE(outcomes.ok()) << outcomes.status();
    return outcomes.ok() ? (*outcomes)[0] : CompletionOutcome();
  }

  static std::vector<std::string> Strings(const RedisReply& reply) {
    std::vector<std::string> out;
    for (const RedisReply& e : reply.elements) out.push_back(e.str);
    return out;
  }

  std::unique_ptr<RedisTestServer> server_;
  std::unique_ptr<RedisConnection> reader_, writer_, admin_;
};

TEST(DeliveryFieldTest, IsFnv1a64InHex) {
  EXPECT_EQ(DeliveryField(""), "cbf29ce484222325");
  EXPECT_EQ(DeliveryField("a"), "af63dc4c8601ec8c");
  EXPECT_EQ(DeliveryField("foobar"), "85944171f73967e8");
}

TEST_F(ListQueueTest, TakesOldestFirstIntoItsProcessingListAndCountsDeliveries) {
  ListQueue queue = Queue("c1");
  ASSERT_TRUE(queue.Prepare(*reader_, true).ok());
  EXPECT_TRUE(Take(queue).empty());  // BLMOVE timed out
  Admin({"LPUSH", "q", "a", "b", "c"});
  std::vector<QueueEntry> entries = Take(queue, 2);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].envelope, "a");
  EXPECT_EQ(entries[1].envelope, "b");
  EXPECT_EQ(entries[0].id, DeliveryField("a"));
  EXPECT_EQ(entries[0].deliveries, 1);
  EXPECT_THAT(Strings(Admin({"LRANGE", "q:processing:c1", "0", "-1"})), ElementsAre("b", "a"));
  EXPECT_EQ(Admin({"HGET", "q:deliveries", DeliveryField("a")}).str, "1");
  EXPECT_EQ(Take(queue).size(), 1u);
  EXPECT_EQ(Admin({"LLEN", "q"}).integer, 0);
}

TEST_F(ListQueueTest, CompleteRepliesAndRemovesTheItem) {
  ListQueue queue = Queue("c1");
  ASSERT_TRUE(queue.Prepare(*reader_, true).ok());
  Admin({"LPUSH", "q", "a"});
  std::vector<QueueEntry> entries = Take(queue);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(Complete(queue, entries[0], "reply:a").kind, CompletionOutcome::Kind::kDone);
  EXPECT_THAT(Strings(Admin({"LRANGE", "reply:a", "0", "-1"})), ElementsAre("answer"));
  EXPECT_GT(Admin({"PTTL", "reply:a"}).integer, 0);
  EXPECT_EQ(Admin({"LLEN", "q:processing:c1"}).integer, 0);
  EXPECT_EQ(Admin({"HLEN", "q:deliveries"}).integer, 0);
}

TEST_F(ListQueueTest, ADeadConsumersItemsGoBackAndItsLateAnswerIsDropped) {
  ListQueue first = Queue("c1");
  ListQueue second = Queue("c2");
  ASSERT_TRUE(first.Prepare(*reader_, true).ok());
  ASSERT_TRUE(second.Prepare(*reader_, true).ok());
  Admin({"LPUSH", "q", "a"});
  std::vector<QueueEntry> taken = Take(first);
  ASSERT_EQ(taken.size(), 1u);

  // c1 is alive: its list stays.
  auto recovered = second.Recover(*reader_, 10, [](absl::string_view) { return false; });
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(recovered->requeued, 0);

  Admin({"DEL", "q:alive:c1"});  // its heartbeat expired
  recovered = second.Recover(*reader_, 10, [](absl::string_view) { return false; });
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(recovered->requeued, 1);
  EXPECT_EQ(Admin({"SISMEMBER", "q:consumers", "c1"}).integer, 0);

  EXPECT_EQ(Complete(first, taken[0], "reply:a").kind, CompletionOutcome::Kind::kStale);
  EXPECT_EQ(Admin({"EXISTS", "reply:a"}).integer, 0);
  std::vector<QueueEntry> again = Take(second);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].deliveries, 2);
  EXPECT_EQ(Complete(second, again[0], "reply:a").kind, CompletionOutcome::Kind::kDone);
  EXPECT_EQ(Admin({"LLEN", "reply:a"}).integer, 1);
}

TEST_F(ListQueueTest, FirstPrepareTakesBackItsOwnLeftovers) {
  Admin({"LPUSH", "q:processing:c1", "old", "older"});  // left by an earlier c1
  Admin({"LPUSH", "q", "new"});
  ListQueue queue = Queue("c1");
  ASSERT_TRUE(queue.Prepare(*reader_, true).ok());
  EXPECT_EQ(Admin({"LLEN", "q:processing:c1"}).integer, 0);
  std::vector<QueueEntry> entries = Take(queue);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].envelope, "old");  // taken before, so taken first again
  EXPECT_EQ(entries[2].envelope, "new");
}

TEST_F(ListQueueTest, HeartbeatRegistersTheConsumer) {
  ListQueue queue = Queue("c1");
  ASSERT_TRUE(queue.Heartbeat(*writer_).ok());
  EXPECT_EQ(Admin({"SISMEMBER", "q:consumers", "c1"}).integer, 1);
  const int64_t ttl = Admin({"PTTL", "q:alive:c1"}).integer;
  EXPECT_GT(ttl, 29000);
  EXPECT_LE(ttl, 30000);
  EXPECT_EQ(queue.HeartbeatInterval(), absl::Seconds(10));
}

TEST_F(ListQueueTest, DeadLetterKeepsTheItemAndSaysWhy) {
  ListQueue queue = Queue("c1");
  ASSERT_TRUE(queue.Prepare(*reader_, true).ok());
  Admin({"LPUSH", "q", "poison"});
  std::vector<QueueEntry> taken = Take(queue);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(Complete(queue, taken[0], "", "too many").kind, CompletionOutcome::Kind::kDone);
  RedisReply dead = Admin({"XRANGE", "q:dead", "-", "+"});
  ASSERT_EQ(dead.elements.size(), 1u);
  EXPECT_THAT(
      Strings(dead.elements[0].elements[1]),
      ElementsAre("envelope", "poison", "reason", "too many", "deliveries", "1", "consumer", "c1"));
}

TEST_F(ListQueueTest, DepthCountsWaitingAndEveryProcessingList) {
  ListQueue first = Queue("c1");
  ListQueue second = Queue("c2");
  ASSERT_TRUE(first.Prepare(*reader_, true).ok());
  ASSERT_TRUE(second.Prepare(*reader_, true).ok());
  Admin({"LPUSH", "q", "a", "b", "c", "d"});
  ASSERT_EQ(Take(first, 1).size(), 1u);
  ASSERT_EQ(Take(second, 2).size(), 2u);
  auto depth = first.Depth(*reader_);
  ASSERT_TRUE(depth.ok()) << depth.status();
  EXPECT_EQ(depth->waiting, 1);
  EXPECT_EQ(depth->pending, 3);
}

TEST_F(ListQueueTest, AWrongKeyTypeIsRefused) {
  Admin({"SET", "q", "string"});
  ListQueue queue = Queue("c1");
  ASSERT_TRUE(queue.Prepare(*reader_, true).ok());
  auto taken = queue.Take(*reader_, 10, absl::Milliseconds(10));
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(taken.status().message(), HasSubstr("WRONGTYPE"));
}

}  // namespace
}  // namespace modeld::transport::redis
