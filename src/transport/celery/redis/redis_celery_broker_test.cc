#include "transport/celery/redis/redis_celery_broker.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/substitute.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "transport/celery/redis/kombu_layout.h"
#include "transport/redis/hiredis_connection.h"
#include "transport/redis/testing/redis_test_server.h"

namespace modeld::transport::celery {
namespace {

// An unacked_index score as kombu writes it: seconds with their fraction. (absl::StrCat keeps
// six significant digits, which moved "two hours ago" by up to 5000 s.)
std::string Score(double unix_seconds) { return absl::StrFormat("%.6f", unix_seconds); }

using redis::RedisCommand;
using redis::RedisConnection;
using redis::RedisReply;
using redis::RedisTestServer;
using ::testing::HasSubstr;

const std::string kSep = kKombuSep;
constexpr char kBody[] = R"([["m", {"x": [[1, 2]]}], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}])";

// A task message as Celery 5 / kombu 5.7 LPUSH it (json.dumps's spacing included).
std::string KombuMessage(const std::string& id, int priority = 0, const std::string& exchange = "",
                         const std::string& routing_key = "q") {
  return absl::Substitute(
      R"({"body": "$0", "content-encoding": "utf-8", "content-type": "application/json", )"
      R"("headers": {"lang": "py", "task": "modeld.infer", "id": "$1", "shadow": null, )"
      R"("eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, )"
      R"j("timelimit": [null, null], "root_id": "$1", "parent_id": null, "argsrepr": "()", )j"
      R"("kwargsrepr": "{}", "origin": "gen1@host", "ignore_result": false, )"
      R"("replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, )"
      R"("properties": {"correlation_id": "$1", "reply_to": "r-$1", "delivery_mode": 2, )"
      R"("delivery_info": {"exchange": "$3", "routing_key": "$4"}, "priority": $2, )"
      R"("body_encoding": "base64", "delivery_tag": "tag-$1"}})",
      absl::Base64Escape(kBody), id, priority, exchange, routing_key);
}

rapidjson::Document Json(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str(), text.size());
  EXPECT_FALSE(doc.HasParseError()) << text;
  return doc;
}

class RedisCeleryBrokerTest : public ::testing::Test {
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

  RedisCeleryBrokerOptions Options() const {
    RedisCeleryBrokerOptions options;
    const redis::RedisEndpoint endpoint = server_->endpoint();
    options.connector = [endpoint](absl::string_view role) {
      return redis::ConnectHiredis(endpoint, redis::HiredisOptions(), role);
    };
    options.where = endpoint.ToString();
    options.brpop_timeout = absl::Milliseconds(200);
    return options;
  }

  std::unique_ptr<RedisCeleryBroker> Start(int prefetch = 10) { return Start(Options(), prefetch); }
  std::unique_ptr<RedisCeleryBroker> Start(RedisCeleryBrokerOptions options, int prefetch = 10) {
    auto broker = std::make_unique<RedisCeleryBroker>(std::move(options));
    EXPECT_TRUE(broker->Open("q").ok());
    EXPECT_TRUE(broker->SetPrefetch(prefetch).ok());
    EXPECT_TRUE(broker->Consume().ok());
    return broker;
  }

  RedisReply Admin(RedisCommand command) {
    absl::StatusOr<RedisReply> reply = admin_->Command(std::move(command));
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.value_or(RedisReply::Nil());
  }
  int64_t Llen(const std::string& key) { return Admin({"LLEN", key}).integer; }

  static std::optional<TaskDelivery> Next(RedisCeleryBroker& broker,
                                          absl::Duration timeout = absl::Seconds(5)) {
    absl::StatusOr<std::optional<TaskDelivery>> next = broker.Next(timeout, -1);
    EXPECT_TRUE(next.ok()) << next.status();
    return next.ok() ? *std::move(next) : std::nullopt;
  }

  // Waits (up to 5 s) until `key`'s list has `length` items.
  bool WaitForLength(const std::string& key, int64_t length) {
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (absl::Now() < deadline) {
      if (Llen(key) == length) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }
  // The reader records a message in unacked just after it leaves the list.
  bool WaitForUnacked(int64_t count) {
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (absl::Now() < deadline) {
      if (Admin({"HLEN", "unacked"}).integer == count) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }

  std::unique_ptr<RedisTestServer> server_;
  std::unique_ptr<RedisConnection> admin_;
};

TEST_F(RedisCeleryBrokerTest, OpenBindsTheQueueAsKombuDoes) {
  auto broker = Start();
  EXPECT_EQ(Admin({"SISMEMBER", "_kombu.binding.q", "q" + kSep + kSep + "q"}).integer, 1);
  EXPECT_EQ(Admin({"SISMEMBER", "_kombu.binding_permanent.q", "q" + kSep + kSep + "q"}).integer,
            1);
  RedisCeleryBroker again(Options());
  ASSERT_TRUE(again.Open("q").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(again.Open("q")));
}

TEST_F(RedisCeleryBrokerTest, DeliversAndKeepsItUnackedUntilAck) {
  auto broker = Start();
  const std::string message = KombuMessage("a");
  Admin({"LPUSH", "q", message});
  std::optional<TaskDelivery> delivery = Next(*broker);
  ASSERT_TRUE(delivery.has_value());
  ASSERT_TRUE(delivery->headers.ok()) << delivery->headers.status();
  EXPECT_EQ(delivery->headers->ids.id, "a");
  EXPECT_EQ(delivery->headers->task, "modeld.infer");
  EXPECT_EQ(delivery->headers->reply_to, "r-a");
  EXPECT_EQ(delivery->headers->content_type, "application/json");
  EXPECT_EQ(delivery->body, kBody);
  EXPECT_FALSE(delivery->redelivered);
  EXPECT_EQ(Llen("q"), 0);

  // kombu's QoS.append: [payload, exchange, routing_key] and the delivery time.
  RedisReply entry = Admin({"HGET", "unacked", "tag-a"});
  ASSERT_TRUE(entry.IsText()) << DebugString(entry);
  rapidjson::Document doc = Json(entry.str);
  ASSERT_TRUE(doc.IsArray() && doc.Size() == 3);
  EXPECT_STREQ(doc[0]["properties"]["delivery_tag"].GetString(), "tag-a");
  EXPECT_STREQ(doc[1].GetString(), "");
  EXPECT_STREQ(doc[2].GetString(), "q");
  RedisReply score = Admin({"ZSCORE", "unacked_index", "tag-a"});
  ASSERT_TRUE(score.IsText()) << DebugString(score);
  EXPECT_NEAR(std::stod(score.str), absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()), 10);

  ASSERT_TRUE(broker->Ack(delivery->tag).ok());
  // Buffered: sent by the next Flush (or Next).
  EXPECT_TRUE(Admin({"HGET", "unacked", "tag-a"}).IsText());
  ASSERT_TRUE(broker->Flush().ok());
  EXPECT_TRUE(Admin({"HGET", "unacked", "tag-a"}).IsNil());
  EXPECT_TRUE(Admin({"ZSCORE", "unacked_index", "tag-a"}).IsNil());
  EXPECT_TRUE(absl::IsNotFound(broker->Ack(delivery->tag)));
}

TEST_F(RedisCeleryBrokerTest, TakesPriorityStepZeroFirst) {
  Admin({"LPUSH", "q" + kSep + "9", KombuMessage("p9", 9)});
  Admin({"LPUSH", "q" + kSep + "6", KombuMessage("p6", 6)});
  Admin({"LPUSH", "q", KombuMessage("p0", 0)});
  Admin({"LPUSH", "q" + kSep + "3", KombuMessage("p4", 4)});
  auto broker = Start();
  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) {
    std::optional<TaskDelivery> delivery = Next(*broker);
    ASSERT_TRUE(delivery.has_value());
    ASSERT_TRUE(delivery->headers.ok());
    order.push_back(delivery->headers->ids.id);
    if (delivery->headers->ids.id == "p4") {
      EXPECT_EQ(delivery->priority, 4);
    }
  }
  EXPECT_THAT(order, ::testing::ElementsAre("p0", "p4", "p6", "p9"));
}

TEST_F(RedisCeleryBrokerTest, PrefetchBoundsWhatLeavesTheList) {
  for (int i = 0; i < 5; ++i) Admin({"LPUSH", "q", KombuMessage(absl::StrCat("m", i))});
  auto broker = Start(/*prefetch=*/2);
  ASSERT_TRUE(WaitForLength("q", 3));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Llen("q"), 3);
  EXPECT_EQ(Admin({"HLEN", "unacked"}).integer, 2);
  std::optional<TaskDelivery> first = Next(*broker);
  std::optional<TaskDelivery> second = Next(*broker);
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(first->headers->ids.id, "m0");  // LPUSH + BRPOP: first in, first out
  EXPECT_EQ(Llen("q"), 3);
  ASSERT_TRUE(broker->Ack(first->tag).ok());
  EXPECT_TRUE(WaitForLength("q", 2));
  ASSERT_TRUE(broker->SetPrefetch(4).ok());
  EXPECT_TRUE(WaitForLength("q", 0));
}

TEST_F(RedisCeleryBrokerTest, CancelStopsTakingAndConsumeResumes) {
  auto broker = Start();
  ASSERT_TRUE(broker->Cancel().ok());
  absl::SleepFor(absl::Milliseconds(300));  // a BRPOP already sent may still take one
  Admin({"LPUSH", "q", KombuMessage("c")});
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(Llen("q"), 1);
  ASSERT_TRUE(broker->Consume().ok());
  std::optional<TaskDelivery> delivery = Next(*broker);
  ASSERT_TRUE(delivery.has_value());
  EXPECT_EQ(delivery->headers->ids.id, "c");
}

TEST_F(RedisCeleryBrokerTest, NextTimesOutAndWakeFdEndsItEarly) {
  auto broker = Start();
  absl::Time start = absl::Now();
  EXPECT_FALSE(Next(*broker, absl::Milliseconds(100)).has_value());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));

  const int wake = eventfd(1, EFD_NONBLOCK);
  start = absl::Now();
  absl::StatusOr<std::optional<TaskDelivery>> next = broker->Next(absl::Seconds(10), wake);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_FALSE(next->has_value());
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  close(wake);
}

TEST_F(RedisCeleryBrokerTest, DeadLetterMovesTheItemWithItsReason) {
  auto broker = Start();
  // Headers that do not parse: delivered with the error, so the worker dead-letters it.
  std::string bad = KombuMessage("bad");
  bad.replace(bad.find(R"("retries": 0)"), 12, R"("retries": "x")");
  Admin({"LPUSH", "q", bad});
  Admin({"LPUSH", "q", "not json at all"});
  for (const char* kind : {"object", "text"}) {
    SCOPED_TRACE(kind);
    std::optional<TaskDelivery> delivery = Next(*broker);
    ASSERT_TRUE(delivery.has_value());
    EXPECT_TRUE(absl::IsInvalidArgument(delivery->headers.status()));
    ASSERT_TRUE(broker->DeadLetter(delivery->tag, "cannot parse").ok());
  }
  ASSERT_TRUE(broker->Flush().ok());
  RedisReply dead = Admin({"LRANGE", "q.dead-letters", "0", "-1"});
  ASSERT_EQ(dead.elements.size(), 2u);
  EXPECT_EQ(dead.elements[0].str, "not json at all");
  rapidjson::Document doc = Json(dead.elements[1].str);
  EXPECT_STREQ(doc["modeld-dead-letter-reason"].GetString(), "cannot parse");
  EXPECT_STREQ(doc["properties"]["delivery_tag"].GetString(), "tag-bad");
  EXPECT_EQ(Admin({"HLEN", "unacked"}).integer, 0);
  EXPECT_EQ(Admin({"ZCARD", "unacked_index"}).integer, 0);
}

TEST_F(RedisCeleryBrokerTest, ClosePutsHeldMessagesBackMarkedRedelivered) {
  Admin({"LPUSH", "q", KombuMessage("a")});
  Admin({"LPUSH", "q", KombuMessage("b")});
  Admin({"LPUSH", "q" + kSep + "6", KombuMessage("c", 7)});
  auto broker = Start();
  std::optional<TaskDelivery> a = Next(*broker);
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(WaitForLength("q", 0));
  ASSERT_TRUE(WaitForLength("q" + kSep + "6", 0));
  EXPECT_TRUE(WaitForUnacked(3));
  broker->Close();
  EXPECT_EQ(Admin({"HLEN", "unacked"}).integer, 0);
  EXPECT_EQ(Admin({"ZCARD", "unacked_index"}).integer, 0);
  EXPECT_EQ(Llen("q"), 2);
  EXPECT_EQ(Llen("q" + kSep + "6"), 1);
  rapidjson::Document doc = Json(Admin({"LINDEX", "q", "-1"}).str);
  EXPECT_TRUE(doc["headers"]["redelivered"].GetBool());
  EXPECT_TRUE(doc["properties"]["delivery_info"]["redelivered"].GetBool());

  // Taken again in the original order, marked redelivered.
  auto again = Start();
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    std::optional<TaskDelivery> delivery = Next(*again);
    ASSERT_TRUE(delivery.has_value());
    EXPECT_TRUE(delivery->redelivered);
    order.push_back(delivery->headers->ids.id);
  }
  EXPECT_THAT(order, ::testing::ElementsAre("a", "b", "c"));
}

TEST_F(RedisCeleryBrokerTest, OpenRestoresStaleDeliveriesOfOthers) {
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  auto stale = [&](const std::string& id, const std::string& entry, double age) {
    Admin({"HSET", "unacked", "tag-" + id, entry});
    Admin({"ZADD", "unacked_index", Score(now - age), "tag-" + id});
  };
  // Published by Celery to the direct exchange "q": routed back through the binding.
  stale("old", absl::StrCat("[", KombuMessage("old", 6, "q", "q"), ", \"q\", \"q\"]"), 7200);
  // Published to the default exchange: back to the queue named by the routing key.
  stale("anon", absl::StrCat("[", KombuMessage("anon", 0, "", "other"), ", \"\", \"other\"]"),
        7200);
  stale("fresh", absl::StrCat("[", KombuMessage("fresh"), ", \"\", \"q\"]"), 10);
  stale("unrouted", absl::StrCat("[", KombuMessage("unrouted", 0, "nowhere", "x"),
                                 ", \"nowhere\", \"x\"]"),
        7200);
  Admin({"ZADD", "unacked_index", Score(now - 7200), "tag-gone"});  // no payload

  RedisCeleryBroker broker(Options());
  ASSERT_TRUE(broker.Open("q").ok());
  EXPECT_EQ(Llen("q" + kSep + "6"), 1);
  EXPECT_EQ(Llen("other"), 1);
  EXPECT_EQ(Llen("q"), 0);
  rapidjson::Document doc = Json(Admin({"LINDEX", "q" + kSep + "6", "0"}).str);
  EXPECT_TRUE(doc["headers"]["redelivered"].GetBool());
  EXPECT_TRUE(doc["properties"]["delivery_info"]["redelivered"].GetBool());
  EXPECT_TRUE(Admin({"HGET", "unacked", "tag-old"}).IsNil());
  EXPECT_TRUE(Admin({"ZSCORE", "unacked_index", "tag-old"}).IsNil());
  EXPECT_TRUE(Admin({"ZSCORE", "unacked_index", "tag-gone"}).IsNil());
  EXPECT_FALSE(Admin({"HGET", "unacked", "tag-fresh"}).IsNil());
  EXPECT_FALSE(Admin({"HGET", "unacked", "tag-unrouted"}).IsNil());
  EXPECT_EQ(Admin({"EXISTS", "unacked_mutex"}).integer, 0);  // released
}

TEST_F(RedisCeleryBrokerTest, RestoreWaitsForAnotherConsumersMutex) {
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  Admin({"HSET", "unacked", "tag-old", absl::StrCat("[", KombuMessage("old"), ", \"\", \"q\"]")});
  Admin({"ZADD", "unacked_index", Score(now - 7200), "tag-old"});
  Admin({"SET", "unacked_mutex", "someone-else", "PX", "60000"});
  RedisCeleryBroker broker(Options());
  ASSERT_TRUE(broker.Open("q").ok());
  EXPECT_EQ(Llen("q"), 0);
  absl::StatusOr<int> restored = broker.RestoreVisible();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(*restored, 0);
  EXPECT_EQ(Admin({"GET", "unacked_mutex"}).str, "someone-else");
  Admin({"DEL", "unacked_mutex"});
  restored = broker.RestoreVisible();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(*restored, 1);
  EXPECT_EQ(Llen("q"), 1);
}

TEST_F(RedisCeleryBrokerTest, RestoreLeavesWhatThisBrokerHoldsAndRefreshesIt) {
  RedisCeleryBrokerOptions options = Options();
  options.visibility_timeout = absl::ZeroDuration();  // everything is stale at once
  auto broker = Start(options);
  Admin({"LPUSH", "q", KombuMessage("mine")});
  std::optional<TaskDelivery> delivery = Next(*broker);
  ASSERT_TRUE(delivery.has_value());
  Admin({"ZADD", "unacked_index", "1", "tag-mine"});  // as if held for ages
  absl::StatusOr<int> restored = broker->RestoreVisible();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(*restored, 0);
  EXPECT_EQ(Llen("q"), 0);
  EXPECT_GT(std::stod(Admin({"ZSCORE", "unacked_index", "tag-mine"}).str), 1e9);
  EXPECT_TRUE(broker->Ack(delivery->tag).ok());
}

TEST_F(RedisCeleryBrokerTest, PublishWritesWhatKombuReads) {
  auto broker = Start();
  OutgoingTask task;
  task.queue = "other";
  task.headers_json = R"({"lang": "py", "task": "modeld.infer", "id": "n1", "root_id": "r",
                          "parent_id": "p"})";
  task.body = kBody;
  task.correlation_id = "n1";
  task.reply_to = "replies";
  task.priority = 4;
  ASSERT_TRUE(broker->Publish(task).ok());
  EXPECT_EQ(Llen("other" + kSep + "3"), 0);  // buffered until Flush
  ASSERT_TRUE(broker->Flush().ok());
  RedisReply item = Admin({"RPOP", "other" + kSep + "3"});
  ASSERT_TRUE(item.IsText());
  absl::StatusOr<KombuRedisMessage> parsed = ParseKombuRedisMessage(item.str);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->body, kBody);
  EXPECT_EQ(parsed->headers.ids.id, "n1");
  EXPECT_EQ(parsed->headers.ids.root_id, "r");
  EXPECT_EQ(parsed->headers.ids.parent_id, "p");
  EXPECT_EQ(parsed->headers.correlation_id, "n1");
  EXPECT_EQ(parsed->headers.reply_to, "replies");
  EXPECT_EQ(parsed->routing_key, "other");
  EXPECT_EQ(parsed->priority, 4);
  EXPECT_EQ(parsed->delivery_tag.size(), 36u);

  // Published to its own queue, it comes back through the reader.
  task.queue = "q";
  task.priority = 0;
  ASSERT_TRUE(broker->Publish(task).ok());
  ASSERT_TRUE(broker->Flush().ok());
  std::optional<TaskDelivery> delivery = Next(*broker);
  ASSERT_TRUE(delivery.has_value());
  ASSERT_TRUE(delivery->headers.ok()) << delivery->headers.status();
  EXPECT_EQ(delivery->headers->ids.id, "n1");
  EXPECT_EQ(delivery->body, kBody);

  task.headers_json = "not an object";
  EXPECT_TRUE(absl::IsInvalidArgument(broker->Publish(task)));
}

TEST_F(RedisCeleryBrokerTest, ReplyIsTheRpcBackendsMessage) {
  auto broker = Start();
  const std::string document = R"({"status": "SUCCESS", "result": 1, "task_id": "t"})";
  ASSERT_TRUE(broker->Reply("client-reply-q", "t", document).ok());
  ASSERT_TRUE(broker->Flush().ok());
  RedisReply item = Admin({"RPOP", "client-reply-q"});
  ASSERT_TRUE(item.IsText());
  absl::StatusOr<KombuRedisMessage> parsed = ParseKombuRedisMessage(item.str);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->body, document);
  EXPECT_EQ(parsed->headers.correlation_id, "t");
  EXPECT_EQ(parsed->headers.content_type, "application/json");
  EXPECT_EQ(parsed->routing_key, "client-reply-q");
  rapidjson::Document doc = Json(item.str);
  EXPECT_TRUE(doc["headers"].IsObject() && doc["headers"].ObjectEmpty());
  EXPECT_FALSE(doc["properties"].HasMember("reply_to"));
}

TEST_F(RedisCeleryBrokerTest, FlushReportsARefusedPublish) {
  auto broker = Start();
  Admin({"SET", "blocked", "a string, not a list"});
  OutgoingTask task;
  task.queue = "blocked";
  task.headers_json = "{}";
  ASSERT_TRUE(broker->Publish(task).ok());
  absl::Status flushed = broker->Flush();
  EXPECT_TRUE(absl::IsFailedPrecondition(flushed)) << flushed;
  EXPECT_THAT(flushed.message(), HasSubstr("WRONGTYPE"));
  EXPECT_TRUE(broker->Flush().ok());  // the buffer was dropped
}

TEST_F(RedisCeleryBrokerTest, LostConnectionIsUnavailable) {
  Admin({"LPUSH", "q", KombuMessage("a")});
  auto broker = Start();
  std::optional<TaskDelivery> delivery = Next(*broker);
  ASSERT_TRUE(delivery.has_value());
  server_.reset();  // SIGKILL
  absl::StatusOr<std::optional<TaskDelivery>> next = broker->Next(absl::Seconds(5), -1);
  EXPECT_TRUE(absl::IsUnavailable(next.status())) << next.status();
  // The acknowledgement is buffered; sending it fails.
  (void)broker->Ack(delivery->tag);
  EXPECT_TRUE(absl::IsUnavailable(broker->Flush()));
  OutgoingTask task;
  task.queue = "q";
  task.headers_json = "{}";
  EXPECT_TRUE(absl::IsUnavailable(broker->Publish(task)));
  const absl::Time start = absl::Now();
  broker->Close();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST_F(RedisCeleryBrokerTest, OpenWithoutAServerIsUnavailable) {
  RedisCeleryBrokerOptions options = Options();
  server_.reset();
  RedisCeleryBroker broker(std::move(options));
  EXPECT_TRUE(absl::IsUnavailable(broker.Open("q")));
  EXPECT_TRUE(absl::IsFailedPrecondition(broker.Consume()));
}

}  // namespace
}  // namespace modeld::transport::celery
