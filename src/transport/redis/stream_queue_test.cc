#include "transport/redis/stream_queue.h"

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transport/redis/testing/redis_test_server.h"

namespace modeld::transport::redis {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kVisibility = absl::Milliseconds(100);

class StreamQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = RedisTestServer::Start();
    if (absl::IsNotFound(server.status())) GTEST_SKIP() << "no redis-server";
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    reader_ = Connect();
    writer_ = Connect();
    admin_ = Connect();
  }

  std::unique_ptr<RedisConnection> Connect() {
    auto connection = server_->Connect();
    EXPECT_TRUE(connection.ok()) << connection.status();
    return connection.ok() ? *std::move(connection) : nullptr;
  }

  static StreamQueue Queue(const std::string& consumer) {
    QueueOptions options;
    options.consumer = consumer;
    options.visibility_timeout = kVisibility;
    options.forget_idle_consumers = kVisibility;
    options.reply_ttl = absl::Seconds(30);
    return StreamQueue("s", "g", options);
  }

  RedisReply Admin(RedisCommand command) {
    absl::StatusOr<RedisReply> reply = admin_->Command(std::move(command));
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.value_or(RedisReply::Nil());
  }

  std::vector<QueueEntry> Take(StreamQueue& queue, int max = 10) {
    auto entries = queue.Take(*reader_, max, absl::Milliseconds(10));
    EXPECT_TRUE(entries.ok()) << entries.status();
    return entries.value_or(std::vector<QueueEntry>());
  }

  std::vector<CompletionOutcome> Complete(StreamQueue& queue, const QueueEntry& entry,
                                          absl::string_view reply_key,
                                          absl::string_view dead_reason = "") {
    auto outcomes = queue.Complete(*writer_, {{&entry, reply_key, "answer", dead_reason}});
    EXPECT_TRUE(outcomes.ok()) << outcomes.status();
    return outcomes.value_or(std::vector<CompletionOutcome>());
  }

  static std::vector<std::string> Strings(const RedisReply& reply) {
    std::vector<std::string> out;
    for (const RedisReply& e : reply.elements) out.push_back(e.str);
    return out;
  }

  std::unique_ptr<RedisTestServer> server_;
  std::unique_ptr<RedisConnection> reader_, writer_, admin_;
};

TEST_F(StreamQueueTest, GroupStartsAtTheBeginningSoEarlierEntriesAreServed) {
  Admin({"XADD", "s", "*", "envelope", "early"});
  StreamQueue queue = Queue("c1");
  ASSERT_TRUE(queue.Prepare(*reader_, true).ok());
  ASSERT_TRUE(queue.Prepare(*reader_, false).ok());  // the group exists: fine
  std::vector<QueueEntry> entries = Take(queue);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].envelope, "early");
  EXPECT_EQ(entries[0].deliveries, 1);
}

TEST_F(StreamQueueTest, TakesManyAtOnceAndMarksEntriesWithoutEnvelope) {
  StreamQueue queue = Queue("c1");
  ASSERT_TRUE(queue.Prepare(*reader_, true).ok());
  EXPECT_TRUE(Take(queue).empty());  // BLOCK timed out
  Admin({"XADD", "s", "*", "envelope", "a"});
  Admin({"XADD", "s", "*", "other", "x"});
  Admin({"XADD", "s", "*", "x", "y", "envelope", "c"});
  std::vector<QueueEntry> entries = Take(queue, 2);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].envelope, "a");
  EXPECT_FALSE(entries[1].envelope.has_value());
  entries = Take(queue);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].envelope, "c");
}

TEST_F(StreamQueueTest, CompleteRepliesThenAcknowledgesAndDeletes) {
  StreamQueue queue = Queue("c1");
  ASSERT_TRUE(queue.Prepare(*reader_, true).ok());
  Admin({"XADD", "s", "*", "envelope", "a"});
  Admin({"XADD", "s", "*", "envelope", "b"});
  std::vector<QueueEntry> entries = Take(queue);
  ASSERT_EQ(entries.size(), 2u);
  auto outcomes = queue.Complete(
      *writer_, {{&entries[0], "reply:a", "answer-a", ""}, {&entries[1], "", "", ""}});
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_EQ(outcomes->size(), 2u);
  EXPECT_EQ((*outcomes)[0].kind, CompletionOutcome::Kind::kDone);
  EXPECT_EQ((*outcomes)[1].kind, CompletionOutcome::Kind::kDone);
  EXPECT_THAT(Strings(Admin({"LRANGE", "reply:a", "0", "-1"})), ElementsAre("answer-a"));
  const int64_t ttl = Admin({"PTTL", "reply:a"}).integer;
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 30000);
  EXPECT_EQ(Admin({"XLEN", "s"}).integer, 0);                       // deleted
  EXPECT_EQ(Admin({"XPENDING", "s", "g"}).elements[0].integer, 0);  // acknowledged
  EXPECT_EQ(Admin({"DBSIZE"}).integer, 2);  // s and reply:a: no reply key for the second
}

TEST_F(StreamQueueTest, ARefusedReplyStillFinishesTheEntry) {
  StreamQueue queue = Queue("c1");
  ASSERT_TRUE(queue.Prepare(*reader_, true).ok());
  Admin({"SET", "reply:a", "not a list"});
  Admin({"XADD", "s", "*", "envelope", "a"});
  std::vector<QueueEntry> entries = Take(queue);
  ASSERT_EQ(entries.size(), 1u);
  std::vector<CompletionOutcome> outcomes = Complete(queue, entries[0], "reply:a");
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].kind, CompletionOutcome::Kind::kReplyFailed);
  EXPECT_THAT(outcomes[0].error, HasSubstr("WRONGTYPE"));
  EXPECT_EQ(Admin({"XLEN", "s"}).integer, 0);
}

TEST_F(StreamQueueTest, AnEntryTakenOverIsAnsweredOnceByItsNewConsumer) {
  StreamQueue first = Queue("c1");
  StreamQueue second = Queue("c2");
  ASSERT_TRUE(first.Prepare(*reader_, true).ok());
  Admin({"XADD", "s", "*", "envelope", "a"});
  std::vector<QueueEntry> taken = Take(first);
  ASSERT_EQ(taken.size(), 1u);

  // Not yet idle for the visibility timeout: nothing to take over.
  auto none = second.Recover(*reader_, 10, [](absl::string_view) { return false; });
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->entries.empty());

  absl::SleepFor(kVisibility + absl::Milliseconds(20));
  auto recovered = second.Recover(*reader_, 10, [](absl::string_view) { return false; });
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  ASSERT_EQ(recovered->entries.size(), 1u);
  EXPECT_EQ(recovered->entries[0].id, taken[0].id);
  EXPECT_EQ(recovered->entries[0].envelope, "a");
  EXPECT_EQ(recovered->entries[0].deliveries, 2);

  // The first consumer comes back late: its answer is dropped.
  EXPECT_EQ(Complete(first, taken[0], "reply:a")[0].kind, CompletionOutcome::Kind::kStale);
  EXPECT_EQ(Admin({"EXISTS", "reply:a"}).integer, 0);
  EXPECT_EQ(Complete(second, recovered->entries[0], "reply:a")[0].kind,
            CompletionOutcome::Kind::kDone);
  EXPECT_EQ(Admin({"LLEN", "reply:a"}).integer, 1);
}

TEST_F(StreamQueueTest, RecoverSkipsEntriesTheWorkerStillRuns) {
  StreamQueue queue = Queue("c1");
  ASSERT_TRUE(queue.Prepare(*reader_, true).ok());
  Admin({"XADD", "s", "*", "envelope", "a"});
  std::vector<QueueEntry> taken = Take(queue);
  ASSERT_EQ(taken.size(), 1u);
  absl::SleepFor(kVisibility + absl::Milliseconds(20));
  auto recovered =
      queue.Recover(*reader_, 10, [&](absl::string_view id) { return id == taken[0].id; });
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_TRUE(recovered->entries.empty());
  // Still this consumer's to finish.
  EXPECT_EQ(Complete(queue, taken[0], "reply:a")[0].kind, CompletionOutcome::Kind::kDone);
}

TEST_F(StreamQueueTest, DeadLetterKeepsTheEntryAndSaysWhy) {
  StreamQueue queue = Queue("c1");
  ASSERT_TRUE(queue.Prepare(*reader_, true).ok());
  Admin({"XADD", "s", "*", "envelope", "poison"});
  std::vector<QueueEntry> taken = Take(queue);
  ASSERT_EQ(taken.size(), 1u);
  taken[0].deliveries = 4;
  EXPECT_EQ(Complete(queue, taken[0], "reply:p", "too many deliveries")[0].kind,
            CompletionOutcome::Kind::kDone);
  RedisReply dead = Admin({"XRANGE", "s:dead", "-", "+"});
  ASSERT_EQ(dead.elements.size(), 1u);
  EXPECT_THAT(Strings(dead.elements[0].elements[1]),
              ElementsAre("envelope", "poison", "reason", "too many deliveries", "source_id",
                          taken[0].id, "deliveries", "4", "consumer", "c1"));
  EXPECT_EQ(Admin({"LLEN", "reply:p"}).integer, 1);
  EXPECT_EQ(Admin({"XLEN", "s"}).integer, 0);
}

TEST_F(StreamQueueTest, DepthCountsWaitingAndPending) {
  StreamQueue queue = Queue("c1");
  ASSERT_TRUE(queue.Prepare(*reader_, true).ok());
  for (int i = 0; i < 3; ++i) Admin({"XADD", "s", "*", "envelope", "e"});
  std::vector<QueueEntry> taken = Take(queue, 1);
  ASSERT_EQ(taken.size(), 1u);
  auto depth = queue.Depth(*reader_);
  ASSERT_TRUE(depth.ok()) << depth.status();
  EXPECT_EQ(depth->waiting, 2);
  EXPECT_EQ(depth->pending, 1);
  Complete(queue, taken[0], "");  // deletes: lag may become unknown to Redis
  depth = queue.Depth(*reader_);
  ASSERT_TRUE(depth.ok()) << depth.status();
  EXPECT_EQ(depth->waiting, 2);
  EXPECT_EQ(depth->pending, 0);
}

TEST_F(StreamQueueTest, AVanishedStreamIsSetUpAgain) {
  StreamQueue queue = Queue("c1");
  ASSERT_TRUE(queue.Prepare(*reader_, true).ok());
  Admin({"DEL", "s"});
  auto taken = queue.Take(*reader_, 10, absl::Milliseconds(10));
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(taken.status().message(), HasSubstr("NOGROUP"));
  ASSERT_TRUE(queue.Prepare(*reader_, false).ok());
  Admin({"XADD", "s", "*", "envelope", "again"});
  EXPECT_EQ(Take(queue).size(), 1u);
}

TEST_F(StreamQueueTest, AWrongKeyTypeIsRefused) {
  Admin({"SET", "s", "string"});
  StreamQueue queue = Queue("c1");
  absl::Status status = queue.Prepare(*reader_, true);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("WRONGTYPE"));
}

TEST_F(StreamQueueTest, PendingEntriesTrimmedAwayAreCountedLost) {
  StreamQueue first = Queue("c1");
  StreamQueue second = Queue("c2");
  ASSERT_TRUE(first.Prepare(*reader_, true).ok());
  Admin({"XADD", "s", "*", "envelope", "a"});
  ASSERT_EQ(Take(first).size(), 1u);
  Admin({"XTRIM", "s", "MAXLEN", "0"});
  absl::SleepFor(kVisibility + absl::Milliseconds(20));
  auto recovered = second.Recover(*reader_, 10, [](absl::string_view) { return false; });
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_TRUE(recovered->entries.empty());
  EXPECT_EQ(recovered->lost, 1);
  EXPECT_EQ(Admin({"XPENDING", "s", "g"}).elements[0].integer, 0);
}

TEST_F(StreamQueueTest, IdleConsumersWithNothingPendingAreForgotten) {
  StreamQueue queue = Queue("c1");
  ASSERT_TRUE(queue.Prepare(*reader_, true).ok());
  Admin({"XGROUP", "CREATECONSUMER", "s", "g", "gone"});
  Admin({"XADD", "s", "*", "envelope", "a"});
  Admin({"XREADGROUP", "GROUP", "g", "busy", "STREAMS", "s", ">"});  // takes the entry
  absl::SleepFor(kVisibility + absl::Milliseconds(20));
  // Takes over busy's entry, then forgets the consumers left with nothing pending.
  auto recovered = queue.Recover(*reader_, 10, [](absl::string_view) { return false; });
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(recovered->entries.size(), 1u);
  RedisReply consumers = Admin({"XINFO", "CONSUMERS", "s", "g"});
  std::vector<std::string> names;
  for (const RedisReply& consumer : consumers.elements) names.push_back(consumer.elements[1].str);
  // busy's entry is c1's now, so busy too has nothing pending.
  EXPECT_THAT(names, ElementsAre("c1"));
}

}  // namespace
}  // namespace modeld::transport::redis
