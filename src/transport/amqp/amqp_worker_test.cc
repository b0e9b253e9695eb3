// AmqpWorker on a fake broker: replies, acknowledgements after confirms, delivery counting and
// dead letters. Connections, stopping and flow control: amqp_worker_connection_test.cc.
#include "transport/amqp/amqp_worker.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transport/amqp/testing/amqp_worker_fixture.h"

namespace modeld::transport::amqp {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::UnorderedElementsAreArray;

TEST_F(AmqpWorkerTest, AnswersEachRequestOnItsReplyToWithItsCorrelationId) {
  StartConsuming();
  EXPECT_EQ(broker_.topology().queue, kQueue);
  EXPECT_EQ(broker_.topology().dead_letter_queue, kDeadLetters);
  constexpr int kRequests = 20;
  std::vector<std::string> ids;
  for (int i = 0; i < kRequests; ++i) {
    ids.push_back(absl::StrCat("c", i));
    Outgoing request = Request(ids.back(), Envelope(absl::StrCat("req-", i), {float(i), 0.5f}));
    request.persistent = i % 2 == 0;
    broker_.Publish(request);
  }
  ASSERT_TRUE(WaitForReplies(kRequests));
  for (const FakeMessage& reply : Replies()) {
    const std::string n = reply.message.correlation_id.substr(1);
    const message::wire::ReplyEnvelope envelope = Reply(reply);
    EXPECT_EQ(envelope.request_id(), absl::StrCat("req-", n));
    EXPECT_EQ(envelope.code(), 0) << envelope.message();
    ASSERT_EQ(envelope.infer().raw_output_contents_size(), 1);
    EXPECT_EQ(envelope.infer().raw_output_contents(0), Floats({std::stof(n), 0.5f}));
    EXPECT_EQ(reply.message.type, "modeld.redis.ReplyEnvelope");
    EXPECT_TRUE(reply.message.mandatory);
    EXPECT_EQ(reply.message.persistent, std::stoi(n) % 2 == 0);  // the request's mode
  }
  ASSERT_TRUE(WaitForAcks(kRequests));
  EXPECT_THAT(broker_.Acked(), UnorderedElementsAreArray(ids));
  EXPECT_THAT(broker_.Messages(kQueue), IsEmpty());
  EXPECT_EQ(broker_.unacked(), 0);
  EXPECT_EQ(Metric("modeld_amqp_messages_delivered_total"), kRequests);
  EXPECT_EQ(Metric("modeld_amqp_messages_redelivered_total"), 0);
  EXPECT_EQ(Metric("modeld_amqp_replies_total"), kRequests);
  EXPECT_EQ(Metric("modeld_amqp_messages_acked_total"), kRequests);
  EXPECT_EQ(Metric("modeld_amqp_in_flight"), 0);
  EXPECT_EQ(Metric("modeld_amqp_connected"), 1);
  EXPECT_EQ(Metric("modeld_amqp_prefetch"), 8);
  EXPECT_EQ(broker_.prefetch(), 8);
  EXPECT_LE(broker_.max_unacked(), 8);
}

TEST_F(AmqpWorkerTest, TheMessageIdStandsInForAMissingCorrelationId) {
  StartConsuming();
  Outgoing request = Request("", Envelope("r", {1, 2}));
  request.message_id = "m-1";
  broker_.Publish(request);
  ASSERT_TRUE(WaitForReplies(1));
  EXPECT_EQ(Replies()[0].message.correlation_id, "m-1");
}

TEST_F(AmqpWorkerTest, AcknowledgesOnlyOnceTheBrokerConfirmsTheReply) {
  StartConsuming();
  broker_.HoldConfirms();
  broker_.Publish(Request("c", Envelope("r", {1, 2})));
  ASSERT_TRUE(WaitForReplies(1));
  EXPECT_EQ(Reply(Replies()[0]).code(), 0);
  // Published, not confirmed: the request stays unacknowledged while the worker goes on.
  const int reads = broker_.calls(FakeBroker::Op::kNext);
  ASSERT_TRUE(WaitUntil([&] { return broker_.calls(FakeBroker::Op::kNext) >= reads + 3; }));
  EXPECT_EQ(broker_.unacked(), 1);
  EXPECT_THAT(broker_.Acked(), IsEmpty());
  EXPECT_EQ(Metric("modeld_amqp_in_flight"), 1);
  EXPECT_EQ(Metric("modeld_amqp_replies_total"), 0);
  broker_.ReleaseConfirms();
  ASSERT_TRUE(WaitForAcks(1));
  EXPECT_THAT(broker_.Acked(), ElementsAre("c"));
  EXPECT_EQ(broker_.unacked(), 0);
  EXPECT_TRUE(WaitUntil([&] { return Metric("modeld_amqp_in_flight") == 0; }));
  EXPECT_EQ(Metric("modeld_amqp_replies_total"), 1);
  EXPECT_EQ(Metric("modeld_amqp_messages_acked_total"), 1);
}

TEST_F(AmqpWorkerTest, AMultipleConfirmAcknowledgesEveryRequestItCovers) {
  StartConsuming();
  broker_.HoldConfirms();
  for (int i = 0; i < 3; ++i) {
    broker_.Publish(Request(absl::StrCat("c", i), Envelope(absl::StrCat("r", i), {1, 2})));
  }
  ASSERT_TRUE(WaitForReplies(3));
  EXPECT_THAT(broker_.Acked(), IsEmpty());
  broker_.ReleaseConfirms(/*multiple=*/true);
  ASSERT_TRUE(WaitForAcks(3));
  EXPECT_THAT(broker_.Acked(), UnorderedElementsAreArray({"c0", "c1", "c2"}));
  EXPECT_TRUE(WaitUntil([&] { return Metric("modeld_amqp_in_flight") == 0; }));
  EXPECT_EQ(Metric("modeld_amqp_replies_total"), 3);
}

TEST_F(AmqpWorkerTest, ARefusedReplyPutsTheRequestBack) {
  StartConsuming();
  broker_.RefusePublishes(1);
  broker_.Publish(Request("c", Envelope("r", {1, 2})));
  // Refused (basic.nack): rejected with requeue, delivered again, counted and answered.
  ASSERT_TRUE(WaitForReplies(1));
  EXPECT_EQ(Reply(Replies()[0]).code(), 0);
  EXPECT_EQ(broker_.requeued(), 1);
  ASSERT_TRUE(WaitForAcks(2));  // the redelivered original once counted, then its copy
  EXPECT_THAT(broker_.Acked(), ElementsAre("c", "c"));
  EXPECT_EQ(broker_.Published(kReplies).size(), 2u);  // the refused one and the answer
  EXPECT_EQ(Metric("modeld_amqp_replies_refused_total"), 1);
  EXPECT_EQ(Metric("modeld_amqp_messages_redelivered_total"), 1);
  EXPECT_TRUE(WaitUntil([&] { return Metric("modeld_amqp_replies_total") == 1; }));
  EXPECT_EQ(Metric("modeld_amqp_messages_delivered_total"), 3);
  EXPECT_TRUE(WaitUntil([&] { return Metric("modeld_amqp_in_flight") == 0; }));
}

TEST_F(AmqpWorkerTest, AReturnedReplyStillAcknowledgesTheRequest) {
  StartConsuming();
  // The requester's reply queue is gone: the broker returns the mandatory reply.
  broker_.Publish(Request("c", Envelope("r", {1, 2}), "gone"));
  ASSERT_TRUE(WaitForAcks(1));
  EXPECT_EQ(broker_.Published("gone").size(), 1u);
  EXPECT_TRUE(WaitUntil([&] { return Metric("modeld_amqp_replies_returned_total") == 1; }));
  EXPECT_EQ(Metric("modeld_amqp_replies_total"), 1);
  EXPECT_EQ(Metric("modeld_amqp_messages_acked_total"), 1);
  EXPECT_EQ(broker_.requeued(), 0);
}

TEST_F(AmqpWorkerTest, ARedeliveredMessageIsPutBackWithItsCountAndAnswered) {
  StartConsuming();
  const int64_t deadline = absl::ToUnixMillis(absl::Now() + absl::Minutes(5));
  Outgoing request = Request("c", Envelope("r", {1, 2}));
  request.message_id = "m";
  request.priority = 3;
  request.persistent = true;
  request.headers[kDeadlineHeader] = deadline;
  broker_.Publish(request, /*redelivered=*/true);
  ASSERT_TRUE(WaitForReplies(1));
  EXPECT_EQ(Reply(Replies()[0]).code(), 0);
  // The copy went to the back of the request queue with the count; the original was acked
  // once the broker had the copy.
  const std::vector<Outgoing> copies = broker_.Published(kQueue);
  ASSERT_EQ(copies.size(), 1u);
  const Outgoing& copy = copies[0];
  EXPECT_EQ(copy.body, request.body);
  EXPECT_EQ(copy.correlation_id, "c");
  EXPECT_EQ(copy.message_id, "m");
  EXPECT_EQ(copy.reply_to, kReplies);
  EXPECT_EQ(copy.priority, 3);
  EXPECT_TRUE(copy.persistent);
  EXPECT_THAT(copy.headers,
              ElementsAre(Pair(kDeadlineHeader, deadline), Pair(kDeliveriesHeader, 2)));
  ASSERT_TRUE(WaitForAcks(2));
  EXPECT_THAT(broker_.Acked(), ElementsAre("c", "c"));
  EXPECT_EQ(Metric("modeld_amqp_messages_redelivered_total"), 1);
  EXPECT_EQ(Metric("modeld_amqp_messages_delivered_total"), 2);
  EXPECT_TRUE(WaitUntil([&] { return Metric("modeld_amqp_replies_total") == 1; }));
  EXPECT_EQ(Metric("modeld_amqp_messages_acked_total"), 2);
}

TEST_F(AmqpWorkerTest, AClassicMessageCountedPastTheLimitIsDeadLettered) {
  AmqpWorkerOptions options = Options();
  options.max_deliveries = 3;
  StartConsuming(options);
  Outgoing request = Request("c", Envelope("poison", {1, 2}));
  request.headers[kDeliveriesHeader] = 3;  // and redelivered once more: 4
  broker_.Publish(request, /*redelivered=*/true);
  ASSERT_TRUE(broker_.WaitForMessages(kDeadLetters, 1, kWait));
  ASSERT_TRUE(WaitForReplies(1));
  const message::wire::ReplyEnvelope reply = Reply(Replies()[0]);
  EXPECT_EQ(reply.request_id(), "poison");
  EXPECT_EQ(reply.code(), 10);  // ABORTED
  EXPECT_THAT(reply.message(), HasSubstr("delivered 4 times, more than the 3 allowed"));
  EXPECT_THAT(broker_.Published(kQueue), IsEmpty());  // not counted again
}

TEST_F(AmqpWorkerTest, AQuorumDeliveryCountPastTheLimitIsDeadLetteredAndAnsweredAborted) {
  AmqpWorkerOptions options = Options();
  options.topology.quorum = true;
  options.max_deliveries = 3;
  StartConsuming(options);
  Outgoing poison = Request("poison", Envelope("poison", {1, 2}));
  poison.headers[kQuorumDeliveryCount] = 3;  // delivered 3 times before: this is the 4th
  broker_.Publish(poison, /*redelivered=*/true);
  Outgoing last_try = Request("last", Envelope("last", {1, 2}));
  last_try.headers[kQuorumDeliveryCount] = 2;  // the 3rd delivery still runs
  broker_.Publish(last_try, /*redelivered=*/true);
  ASSERT_TRUE(WaitForReplies(2));
  for (const FakeMessage& message : Replies()) {
    const message::wire::ReplyEnvelope reply = Reply(message);
    if (reply.request_id() == "poison") {
      EXPECT_EQ(reply.code(), 10);
      EXPECT_THAT(reply.message(), HasSubstr("delivered 4 times"));
      EXPECT_THAT(reply.message(), HasSubstr("dead letters"));
    } else {
      EXPECT_EQ(reply.code(), 0) << reply.message();
    }
  }
  ASSERT_TRUE(broker_.WaitForMessages(kDeadLetters, 1, kWait));
  const std::vector<FakeMessage> dead = broker_.Messages(kDeadLetters);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].message.correlation_id, "poison");
  EXPECT_EQ(dead[0].death, "rejected");
  // A quorum queue counts by itself: nothing is put back with modeld's header.
  EXPECT_THAT(broker_.Published(kQueue), IsEmpty());
  ASSERT_TRUE(WaitForAcks(1));
  EXPECT_THAT(broker_.Acked(), ElementsAre("last"));
  EXPECT_EQ(Metric("modeld_amqp_dead_letters_total{reason=\"max_deliveries\"}"), 1);
  EXPECT_TRUE(WaitUntil([&] { return Metric("modeld_amqp_in_flight") == 0; }));
}

TEST_F(AmqpWorkerTest, AQuorumQueueCountsDeliveriesAcrossDroppedConnections) {
  AmqpWorkerOptions options = Options();
  options.topology.quorum = true;
  options.max_deliveries = 3;
  StartConsuming(options);
  broker_.HoldConfirms();  // no answer is ever acknowledged: each connection dies first
  broker_.Publish(Request("c", Envelope("r", {1, 2})));
  for (size_t answered = 1; answered <= 3; ++answered) {
    ASSERT_TRUE(WaitForReplies(answered));
    broker_.DropConnections();
  }
  // The fourth delivery is one too many.
  ASSERT_TRUE(broker_.WaitForMessages(kDeadLetters, 1, kWait));
  ASSERT_TRUE(WaitForReplies(4));
  const std::vector<FakeMessage> replies = Replies();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Reply(replies[i]).code(), 0);
  EXPECT_EQ(Reply(replies[3]).code(), 10);
  EXPECT_THAT(Reply(replies[3]).message(), HasSubstr("delivered 4 times"));
  broker_.ReleaseConfirms();
  EXPECT_THAT(broker_.Acked(), IsEmpty());
  EXPECT_EQ(Metric("modeld_amqp_answers_dropped_total"), 3);
  EXPECT_EQ(Metric("modeld_amqp_reconnects_total"), 3);
  EXPECT_TRUE(WaitUntil([&] { return Metric("modeld_amqp_in_flight") == 0; }));
}

TEST_F(AmqpWorkerTest, ABadBodyIsDeadLetteredAndAnsweredInvalidArgument) {
  StartConsuming();
  broker_.Publish(Request("bad", std::string("\xff\xfe garbage", 10)));
  broker_.Publish(Request("good", Envelope("after", {1, 2})));
  ASSERT_TRUE(WaitForReplies(2));
  for (const FakeMessage& message : Replies()) {
    const message::wire::ReplyEnvelope reply = Reply(message);
    if (message.message.correlation_id == "bad") {
      EXPECT_EQ(reply.code(), 3);  // INVALID_ARGUMENT
      EXPECT_THAT(reply.message(), HasSubstr("not a modeld.redis.RequestEnvelope"));
    } else {
      EXPECT_EQ(reply.code(), 0);  // the worker goes on
    }
  }
  ASSERT_TRUE(broker_.WaitForMessages(kDeadLetters, 1, kWait));
  EXPECT_EQ(broker_.Messages(kDeadLetters)[0].message.correlation_id, "bad");
  EXPECT_EQ(Metric("modeld_amqp_dead_letters_total{reason=\"bad_message\"}"), 1);
  ASSERT_TRUE(WaitForAcks(1));
  EXPECT_THAT(broker_.Acked(), ElementsAre("good"));
  EXPECT_EQ(broker_.requeued(), 0);
}

TEST_F(AmqpWorkerTest, AMessageWithoutReplyToIsAcknowledgedWithoutRunning) {
  StartConsuming();
  broker_.Publish(Request("c", Envelope("r", {1, 2}), /*reply_to=*/""));
  ASSERT_TRUE(WaitForAcks(1));
  EXPECT_EQ(Metric("modeld_amqp_messages_without_reply_to_total"), 1);
  EXPECT_EQ(Metric("modeld_amqp_messages_acked_total"), 1);
  EXPECT_THAT(Replies(), IsEmpty());
  EXPECT_THAT(registry_.Render(), Not(HasSubstr("modeld_requests_total{model=\"echo\"")));
}

TEST_F(AmqpWorkerTest, ARefusedTrainingStepWithoutReplyToIsAcknowledgedWithoutAReply) {
  StartConsuming();
  message::wire::RequestEnvelope step;
  step.set_request_id("t");
  step.set_deadline_unix_ms(-1);  // refused before it runs
  step.mutable_train()->set_model_name("echo");
  broker_.Publish(Request("t", step.SerializeAsString(), /*reply_to=*/""));
  ASSERT_TRUE(WaitForAcks(1));
  EXPECT_EQ(Metric("modeld_amqp_bad_requests_total"), 1);
  EXPECT_EQ(Metric("modeld_amqp_replies_returned_total"), 0);  // nothing published to ""
  EXPECT_THAT(Replies(), IsEmpty());
}

TEST_F(AmqpWorkerTest, ARequestPastItsDeadlineHeaderIsAnsweredWithoutRunning) {
  StartConsuming();
  Outgoing late = Request("late", Envelope("late", {1, 2}));
  late.headers[kDeadlineHeader] = absl::ToUnixMillis(absl::Now() - absl::Seconds(1));
  broker_.Publish(late);
  ASSERT_TRUE(WaitForReplies(1));
  const message::wire::ReplyEnvelope reply = Reply(Replies()[0]);
  EXPECT_EQ(reply.code(), 4);  // DEADLINE_EXCEEDED
  EXPECT_THAT(reply.message(), HasSubstr("deadline passed"));
  ASSERT_TRUE(WaitForAcks(1));
  EXPECT_EQ(Metric("modeld_amqp_expired_total"), 1);
  EXPECT_THAT(registry_.Render(), Not(HasSubstr("modeld_requests_total{model=\"echo\"")));
}

TEST_F(AmqpWorkerTest, BadRequestsAreAnsweredWithTheirErrorAndAcknowledged) {
  StartConsuming();
  broker_.Publish(Request("unknown", Envelope("unknown", {1, 2}, "no_such_model")));
  message::wire::RequestEnvelope bad_type;
  ASSERT_TRUE(bad_type.ParseFromString(Envelope("dtype", {1, 2})));
  bad_type.mutable_infer()->mutable_inputs(0)->set_datatype("FP99");
  broker_.Publish(Request("dtype", bad_type.SerializeAsString()));
  ASSERT_TRUE(WaitForReplies(2));
  for (const FakeMessage& message : Replies()) {
    const message::wire::ReplyEnvelope reply = Reply(message);
    if (reply.request_id() == "unknown") {
      EXPECT_EQ(reply.code(), 5);  // NOT_FOUND
      EXPECT_THAT(reply.message(), HasSubstr("no_such_model"));
    } else {
      EXPECT_EQ(reply.code(), 3) << reply.request_id();
      EXPECT_FALSE(reply.message().empty());
    }
  }
  ASSERT_TRUE(WaitForAcks(2));
  EXPECT_EQ(Metric("modeld_amqp_bad_requests_total"),
            1);  // the datatype; the model is the service's
  EXPECT_THAT(broker_.Messages(kDeadLetters), IsEmpty());
}

TEST_F(AmqpWorkerTest, QueriesAreAnsweredAtOnce) {
  StartConsuming();
  message::wire::RequestEnvelope query;
  query.set_request_id("ready?");
  query.mutable_server_ready();
  broker_.Publish(Request("q", query.SerializeAsString()));
  ASSERT_TRUE(WaitForReplies(1));
  const message::wire::ReplyEnvelope reply = Reply(Replies()[0]);
  EXPECT_EQ(reply.request_id(), "ready?");
  EXPECT_EQ(reply.code(), 0) << reply.message();
  EXPECT_TRUE(reply.has_server_ready());
  ASSERT_TRUE(WaitForAcks(1));
  EXPECT_EQ(Metric("modeld_amqp_queries_total"), 1);
}

}  // namespace
}  // namespace modeld::transport::amqp
