#include "transport/celery/amqp/amqp_celery_broker.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transport/amqp/testing/fake_amqp_link.h"

namespace modeld::transport::celery {
namespace {

using amqp::FakeBroker;
using amqp::Outgoing;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Op = FakeBroker::Op;

constexpr char kQueue[] = "modeld";

// The headers Celery 5.7's send_task writes (py-amqp puts None as void, lists as arrays).
constexpr char kCeleryHeaders[] =
    R"({"lang":"py","task":"modeld.infer","id":"t-1","shadow":null,"eta":null,)"
    R"("expires":null,"group":null,"group_index":null,"retries":2,"timelimit":[null,30],)"
    R"json("root_id":"r-1","parent_id":"p-1","argsrepr":"('m', {})","kwargsrepr":"{}",)json"
    R"("origin":"gen1@host","ignore_result":false,"replaced_task_nesting":0,)"
    R"("stamped_headers":null,"stamps":{}})";
constexpr char kBody[] = R"([["m", {"x": [[1]]}], {}, {"callbacks": null, "errbacks": null, )"
                         R"("chain": null, "chord": null}])";

class AmqpCeleryBrokerTest : public ::testing::Test {
 protected:
  AmqpCeleryBrokerOptions Options() {
    AmqpCeleryBrokerOptions options;
    options.links = fake_.factory();
    options.flush_timeout = absl::Seconds(5);
    return options;
  }

  // What a Celery client publishes for send_task(..., queue="modeld"): to the exchange named
  // like the queue, with the queue's name as routing key.
  void ClientSends(const std::string& id, const std::string& headers_json = kCeleryHeaders) {
    Outgoing message;
    message.exchange = kQueue;
    message.routing_key = kQueue;
    message.body = kBody;
    message.content_type = "application/json";
    message.content_encoding = "utf-8";
    message.correlation_id = id;
    message.reply_to = "reply-queue";
    message.priority = 3;
    message.persistent = true;
    message.headers_json = headers_json;
    fake_.Publish(std::move(message));
  }

  // The binding the client publishes through exists once the broker has declared it.
  void Start(AmqpCeleryBroker& broker) {
    EXPECT_TRUE(broker.Open(kQueue).ok());
    EXPECT_TRUE(broker.Consume().ok());
  }

  TaskDelivery TakeOne(AmqpCeleryBroker& broker) {
    absl::StatusOr<std::optional<TaskDelivery>> next = broker.Next(absl::Seconds(5), -1);
    EXPECT_TRUE(next.ok()) << next.status();
    EXPECT_TRUE(next.ok() && next->has_value());
    return next.ok() && next->has_value() ? std::move(**next) : TaskDelivery();
  }

  FakeBroker fake_;
};

TEST_F(AmqpCeleryBrokerTest, DeclaresTheQueueAsCeleryClientsDo) {
  AmqpCeleryBroker broker(Options());
  ASSERT_TRUE(broker.Open(kQueue).ok());
  const amqp::Topology topology = fake_.topology();
  EXPECT_EQ(topology.queue, kQueue);
  EXPECT_FALSE(topology.dead_letters);
  EXPECT_EQ(topology.bind_exchange, kQueue);
  EXPECT_FALSE(topology.quorum);
  EXPECT_EQ(topology.max_priority, 0);
  // The exchange of the queue's name routes to it, as the clients publish.
  ClientSends("t-1");
  EXPECT_EQ(fake_.Messages(kQueue).size(), 1u);
  EXPECT_TRUE(fake_.errors().empty());
}

TEST_F(AmqpCeleryBrokerTest, AQueueDeclaredOtherwiseIsRefusedAndOpenMayBeRetried) {
  fake_.DeclareQueue(kQueue, /*quorum=*/false, /*max_priority=*/10);
  AmqpCeleryBroker broker(Options());
  const absl::Status status = broker.Open(kQueue);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("PRECONDITION_FAILED"));
  EXPECT_EQ(broker.Consume().code(), absl::StatusCode::kFailedPrecondition);  // closed again

  AmqpCeleryBrokerOptions options = Options();
  options.max_priority = 10;  // task_queue_max_priority = 10 in the clients
  AmqpCeleryBroker matching(options);
  EXPECT_TRUE(matching.Open(kQueue).ok());
}

TEST_F(AmqpCeleryBrokerTest, CallsBeforeOpenAndASecondOpenAreRefused) {
  AmqpCeleryBroker broker(Options());
  EXPECT_EQ(broker.Consume().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(broker.Next(absl::ZeroDuration(), -1).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(broker.Flush().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(broker.Open(kQueue).ok());
  EXPECT_EQ(broker.Open(kQueue).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(AmqpCeleryBrokerTest, ADeliveryWithCeleryHeadersBecomesTaskHeaders) {
  AmqpCeleryBroker broker(Options());
  Start(broker);
  ClientSends("t-1");
  TaskDelivery task = TakeOne(broker);
  ASSERT_TRUE(task.headers.ok()) << task.headers.status();
  const TaskHeaders& headers = *task.headers;
  EXPECT_EQ(headers.task, "modeld.infer");
  EXPECT_EQ(headers.ids.id, "t-1");
  EXPECT_EQ(headers.ids.root_id, "r-1");
  EXPECT_EQ(headers.ids.parent_id, "p-1");
  EXPECT_EQ(headers.lang, "py");
  EXPECT_EQ(headers.retries, 2);
  EXPECT_FALSE(headers.eta.has_value());
  EXPECT_EQ(headers.hard_time_limit, std::nullopt);
  EXPECT_EQ(headers.soft_time_limit, absl::Seconds(30));
  EXPECT_FALSE(headers.ignore_result);
  EXPECT_EQ(headers.correlation_id, "t-1");
  EXPECT_EQ(headers.reply_to, "reply-queue");
  EXPECT_EQ(headers.content_type, "application/json");
  EXPECT_EQ(headers.content_encoding, "utf-8");
  EXPECT_EQ(task.body, kBody);
  EXPECT_EQ(task.priority, 3);
  EXPECT_FALSE(task.redelivered);
  EXPECT_NE(task.tag, 0u);
}

TEST_F(AmqpCeleryBrokerTest, AMessageWithoutHeadersIsAnErrorDelivery) {
  AmqpCeleryBroker broker(Options());
  Start(broker);
  ClientSends("none", "");
  ClientSends("empty", "{}");
  TaskDelivery first = TakeOne(broker);
  EXPECT_EQ(first.headers.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(first.headers.status().message(),
              HasSubstr("not a Celery task message (no headers)"));
  absl::StatusOr<std::optional<TaskDelivery>> second = broker.Next(absl::Seconds(5), -1);
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_THAT((*second)->headers.status().message(), HasSubstr("no headers"));
  // The worker dead-letters them: gone for good (no dead-letter exchange here).
  EXPECT_TRUE(broker.DeadLetter(first.tag, "no headers").ok());
  EXPECT_TRUE(broker.DeadLetter((*second)->tag, "no headers").ok());
  EXPECT_EQ(fake_.unacked(), 0);
  EXPECT_EQ(fake_.requeued(), 0);
  EXPECT_TRUE(fake_.Messages(kQueue).empty());
  EXPECT_TRUE(fake_.errors().empty());
}

TEST_F(AmqpCeleryBrokerTest, HeadersThatAreNotCeleryOnesAreAnErrorDelivery) {
  AmqpCeleryBroker broker(Options());
  Start(broker);
  ClientSends("bad", R"({"task":"modeld.infer","id":"x","retries":-1})");
  TaskDelivery task = TakeOne(broker);
  EXPECT_EQ(task.headers.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(task.headers.status().message(), HasSubstr("retries"));
}

TEST_F(AmqpCeleryBrokerTest, HeadersNestedTooDeeplyAreAnErrorDelivery) {
  AmqpCeleryBroker broker(Options());
  Start(broker);
  ClientSends("deep", absl::StrCat(R"({"id":"x","stamps":)", std::string(100, '['),
                                   std::string(100, ']'), "}"));
  TaskDelivery task = TakeOne(broker);
  EXPECT_EQ(task.headers.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(task.headers.status().message(), HasSubstr("headers cannot be read"));
}

TEST_F(AmqpCeleryBrokerTest, PublishesATaskMessageToTheDefaultExchange) {
  fake_.DeclareQueue("next");
  AmqpCeleryBroker broker(Options());
  ASSERT_TRUE(broker.Open(kQueue).ok());
  OutgoingTask task;
  task.queue = "next";
  task.headers_json = R"({"lang":"py","task":"post.process","id":"t-2","parent_id":"t-1"})";
  task.body = "[[1], {}, null]";
  task.correlation_id = "t-2";
  task.reply_to = "reply-queue";
  task.priority = 4;
  ASSERT_TRUE(broker.Publish(task).ok());
  ASSERT_TRUE(broker.Flush().ok());
  const std::vector<Outgoing> published = fake_.Published("next");
  ASSERT_EQ(published.size(), 1u);
  const Outgoing& message = published[0];
  EXPECT_EQ(message.exchange, "");
  EXPECT_EQ(message.routing_key, "next");
  EXPECT_EQ(message.content_type, "application/json");
  EXPECT_EQ(message.content_encoding, "utf-8");
  EXPECT_EQ(message.headers_json, task.headers_json);
  EXPECT_EQ(message.body, task.body);
  EXPECT_EQ(message.correlation_id, "t-2");
  EXPECT_EQ(message.reply_to, "reply-queue");
  EXPECT_EQ(message.priority, 4);
  EXPECT_TRUE(message.persistent);
  EXPECT_TRUE(message.mandatory);
  EXPECT_EQ(fake_.Messages("next").size(), 1u);

  // A consumer of "next" sees the headers as they went out.
  AmqpCeleryBroker consumer(Options());
  ASSERT_TRUE(consumer.Open("next").ok());
  ASSERT_TRUE(consumer.Consume().ok());
  absl::StatusOr<std::optional<TaskDelivery>> next = consumer.Next(absl::Seconds(5), -1);
  ASSERT_TRUE(next.ok() && next->has_value());
  ASSERT_TRUE((*next)->headers.ok()) << (*next)->headers.status();
  EXPECT_EQ((*next)->headers->task, "post.process");
  EXPECT_EQ((*next)->headers->ids.parent_id, "t-1");
  EXPECT_EQ((*next)->priority, 4);
}

TEST_F(AmqpCeleryBrokerTest, HeadersThatAreNotAJsonObjectAreRefusedBeforeSending) {
  fake_.DeclareQueue("next");
  AmqpCeleryBroker broker(Options());
  ASSERT_TRUE(broker.Open(kQueue).ok());
  OutgoingTask task;
  task.queue = "next";
  task.headers_json = "[1, 2]";
  EXPECT_EQ(broker.Publish(task).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(broker.Flush().ok());  // nothing owed
  EXPECT_TRUE(fake_.Published("next").empty());
}

TEST_F(AmqpCeleryBrokerTest, RepliesAsTheRpcBackendDoes) {
  fake_.DeclareQueue("reply-queue");
  AmqpCeleryBroker broker(Options());
  ASSERT_TRUE(broker.Open(kQueue).ok());
  ASSERT_TRUE(broker.Reply("reply-queue", "t-1", R"({"status":"SUCCESS"})").ok());
  ASSERT_TRUE(broker.Flush().ok());
  const std::vector<Outgoing> published = fake_.Published("reply-queue");
  ASSERT_EQ(published.size(), 1u);
  const Outgoing& message = published[0];
  EXPECT_EQ(message.exchange, "");
  EXPECT_EQ(message.correlation_id, "t-1");
  EXPECT_EQ(message.body, R"({"status":"SUCCESS"})");
  EXPECT_EQ(message.content_type, "application/json");
  EXPECT_EQ(message.content_encoding, "utf-8");
  EXPECT_EQ(message.headers_json, "");
  EXPECT_FALSE(message.persistent);
  EXPECT_FALSE(message.mandatory);
  EXPECT_EQ(fake_.Messages("reply-queue").size(), 1u);
}

TEST_F(AmqpCeleryBrokerTest, FlushWaitsForConfirmsAndKeepsWhatIsDeliveredMeanwhile) {
  fake_.DeclareQueue("next");
  AmqpCeleryBroker broker(Options());
  ASSERT_TRUE(broker.Open(kQueue).ok());
  ASSERT_TRUE(broker.Consume().ok());
  fake_.HoldConfirms();
  OutgoingTask task;
  task.queue = "next";
  task.headers_json = kCeleryHeaders;
  ASSERT_TRUE(broker.Publish(task).ok());
  ASSERT_TRUE(broker.Reply("next", "t-0", "{}").ok());
  ClientSends("t-1");
  ClientSends("t-2");
  std::thread releaser([&] {
    // Once Flush has taken both deliveries, the confirms come.
    const absl::Time give_up = absl::Now() + absl::Seconds(5);
    while (fake_.unacked() < 2 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(1));
    absl::SleepFor(absl::Milliseconds(20));
    fake_.ReleaseConfirms(/*multiple=*/true);
  });
  const absl::Status flushed = broker.Flush();
  releaser.join();
  ASSERT_TRUE(flushed.ok()) << flushed;
  EXPECT_EQ(fake_.unacked(), 2);
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::optional<TaskDelivery>> next = broker.Next(absl::ZeroDuration(), -1);
    ASSERT_TRUE(next.ok() && next->has_value());
    ASSERT_TRUE((*next)->headers.ok());
    ids.push_back((*next)->headers->correlation_id);
    EXPECT_TRUE(broker.Ack((*next)->tag).ok());
  }
  EXPECT_THAT(ids, ElementsAre("t-1", "t-2"));
  EXPECT_THAT(fake_.Acked(), ElementsAre("t-1", "t-2"));
  absl::StatusOr<std::optional<TaskDelivery>> none = broker.Next(absl::Milliseconds(10), -1);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST_F(AmqpCeleryBrokerTest, ARefusedPublishFailsFlushNamingTheQueue) {
  fake_.DeclareQueue("next");
  AmqpCeleryBroker broker(Options());
  ASSERT_TRUE(broker.Open(kQueue).ok());
  fake_.RefusePublishes(1);
  OutgoingTask task;
  task.queue = "next";
  task.correlation_id = "t-2";
  ASSERT_TRUE(broker.Publish(task).ok());
  ASSERT_TRUE(broker.Publish(task).ok());
  const absl::Status status = broker.Flush();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("basic.nack"));
  EXPECT_THAT(status.message(), HasSubstr("queue 'next'"));
  EXPECT_TRUE(broker.Flush().ok());  // reported once
}

TEST_F(AmqpCeleryBrokerTest, ARefusalReadByNextIsReportedByTheNextFlush) {
  AmqpCeleryBroker broker(Options());
  ASSERT_TRUE(broker.Open(kQueue).ok());
  ASSERT_TRUE(broker.Consume().ok());
  fake_.RefusePublishes(1);
  ASSERT_TRUE(broker.Reply("gone", "t-1", "{}").ok());
  absl::StatusOr<std::optional<TaskDelivery>> next = broker.Next(absl::Milliseconds(20), -1);
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
  const absl::Status status = broker.Flush();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("result of task t-1 to queue 'gone'"));
}

TEST_F(AmqpCeleryBrokerTest, FlushGivesUpWhenConfirmsDoNotCome) {
  AmqpCeleryBrokerOptions options = Options();
  options.flush_timeout = absl::Milliseconds(50);
  fake_.DeclareQueue("next");
  AmqpCeleryBroker broker(options);
  ASSERT_TRUE(broker.Open(kQueue).ok());
  fake_.HoldConfirms();
  OutgoingTask task;
  task.queue = "next";
  ASSERT_TRUE(broker.Publish(task).ok());
  const absl::Status status = broker.Flush();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("did not confirm 1 publish"));
}

TEST_F(AmqpCeleryBrokerTest, ATaskToAQueueNobodyDeclaredIsCountedNotFailed) {
  AmqpCeleryBroker broker(Options());
  ASSERT_TRUE(broker.Open(kQueue).ok());
  OutgoingTask task;
  task.queue = "nowhere";
  ASSERT_TRUE(broker.Publish(task).ok());
  EXPECT_TRUE(broker.Flush().ok());
  EXPECT_EQ(broker.returned(), 1);
}

TEST_F(AmqpCeleryBrokerTest, ACancelledConsumerMakesNextUnavailable) {
  AmqpCeleryBroker broker(Options());
  ASSERT_TRUE(broker.Open(kQueue).ok());
  ASSERT_TRUE(broker.Consume().ok());
  fake_.CancelConsumers();
  const absl::Status status = broker.Next(absl::Seconds(5), -1).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("cancelled the consumer of 'modeld'"));
}

TEST_F(AmqpCeleryBrokerTest, WhatWasNotAcknowledgedIsDeliveredAgainAfterADrop) {
  {
    AmqpCeleryBroker broker(Options());
    Start(broker);
    ClientSends("t-1");
    TakeOne(broker);
    fake_.DropConnections();
    EXPECT_EQ(broker.Next(absl::Seconds(5), -1).status().code(), absl::StatusCode::kUnavailable);
    broker.Close();
  }
  AmqpCeleryBroker again(Options());
  Start(again);
  TaskDelivery task = TakeOne(again);
  EXPECT_TRUE(task.redelivered);
  ASSERT_TRUE(task.headers.ok());
  EXPECT_EQ(task.headers->ids.id, "t-1");
}

TEST_F(AmqpCeleryBrokerTest, PrefetchCancelAndWakeGoToTheLink) {
  AmqpCeleryBroker broker(Options());
  ASSERT_TRUE(broker.Open(kQueue).ok());
  ASSERT_TRUE(broker.SetPrefetch(7).ok());
  EXPECT_EQ(fake_.prefetch(), 7);
  ASSERT_TRUE(broker.Consume().ok());
  EXPECT_EQ(fake_.consumers(), 1);
  ASSERT_TRUE(broker.Cancel().ok());
  EXPECT_EQ(fake_.consumers(), 0);

  const int wake = ::eventfd(1, EFD_CLOEXEC);
  ASSERT_GE(wake, 0);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::optional<TaskDelivery>> next = broker.Next(absl::Seconds(5), wake);
  ::close(wake);
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

}  // namespace
}  // namespace modeld::transport::celery
