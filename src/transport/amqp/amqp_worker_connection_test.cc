// AmqpWorker on a fake broker: connecting and reconnecting, answers lost with their
// connection, stopping, and the prefetch fitted to the admission's free slots.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transport/amqp/amqp_worker.h"
#include "transport/amqp/testing/amqp_worker_fixture.h"

namespace modeld::transport::amqp {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::Ge;
using ::testing::IsEmpty;
using Op = FakeBroker::Op;

TEST_F(AmqpWorkerTest, NotReadyUntilTheBrokerCanBeReached) {
  broker_.Fail(Op::kOpen, absl::UnavailableError("connection refused"), 1000);
  StartWorker();
  ASSERT_TRUE(WaitUntil([&] { return broker_.calls(Op::kOpen) >= 4; }));  // retried
  EXPECT_FALSE(worker_->Ready());
  EXPECT_EQ(Metric("modeld_amqp_connected"), 0);
  broker_.DeclareQueue(kQueue);
  broker_.Publish(Request("c", Envelope("waits", {1, 2})));
  broker_.ClearFailures();
  ASSERT_TRUE(WaitForReplies(1));
  EXPECT_EQ(Reply(Replies()[0]).code(), 0);
  EXPECT_TRUE(worker_->Ready());
  EXPECT_EQ(Metric("modeld_amqp_connected"), 1);
  EXPECT_EQ(Metric("modeld_amqp_reconnects_total"), 0);  // its first connection
}

TEST_F(AmqpWorkerTest, AQueueDeclaredWithOtherArgumentsKeepsItNotReady) {
  broker_.DeclareQueue(kQueue, /*quorum=*/false, /*max_priority=*/5);
  StartWorker();
  ASSERT_TRUE(WaitUntil([&] { return broker_.calls(Op::kDeclare) >= 3; }));  // retried
  EXPECT_FALSE(worker_->Ready());
  EXPECT_EQ(broker_.consumers(), 0);
}

TEST_F(AmqpWorkerTest, ReconnectsAfterTheConnectionDrops) {
  StartConsuming();
  broker_.DropConnections();
  ASSERT_TRUE(WaitUntil([&] { return Metric("modeld_amqp_reconnects_total") == 1; }));
  ASSERT_TRUE(WaitUntil([&] { return worker_->Ready(); }));
  EXPECT_EQ(broker_.calls(Op::kOpen), 2);
  EXPECT_EQ(broker_.consumers(), 1);
  broker_.Publish(Request("c", Envelope("after", {1, 2})));
  ASSERT_TRUE(WaitForReplies(1));
  EXPECT_EQ(Reply(Replies()[0]).code(), 0);
}

TEST_F(AmqpWorkerTest, ReconnectsWhenTheBrokerCancelsTheConsumer) {
  StartConsuming();
  broker_.CancelConsumers();  // its queue was deleted, say
  ASSERT_TRUE(WaitUntil([&] { return Metric("modeld_amqp_reconnects_total") == 1; }));
  ASSERT_TRUE(WaitUntil([&] { return broker_.consumers() == 1; }));
  EXPECT_EQ(broker_.calls(Op::kDeclare), 2);  // declared again
  broker_.Publish(Request("c", Envelope("after", {1, 2})));
  ASSERT_TRUE(WaitForReplies(1));
}

TEST_F(AmqpWorkerTest, AnAnswerWhoseConnectionDroppedIsDroppedAndItsMessageDeliveredAgain) {
  StartConsuming();
  broker_.HoldConfirms();
  broker_.StallAfterDeliveries(1);  // pinned in its next read once the model has the request
  broker_.Publish(Request("c", Envelope("r", {1, 2}, "slow")));
  ASSERT_TRUE(WaitUntil([&] { return broker_.stalled() == 1; }));
  broker_.DropConnections();
  broker_.UnstallNext();
  broker_.ReleaseConfirms();
  // Delivered again on the next connection: counted (acked once the copy is in), and the copy
  // answered.
  ASSERT_TRUE(WaitForAcks(2));
  EXPECT_THAT(broker_.Acked(), ElementsAre("c", "c"));
  const std::vector<FakeMessage> replies = Replies();
  ASSERT_FALSE(replies.empty());
  for (const FakeMessage& reply : replies) {
    EXPECT_EQ(reply.message.correlation_id, "c");
    EXPECT_EQ(Reply(reply).code(), 0);
  }
  EXPECT_EQ(broker_.Published(kQueue).size(), 1u);  // the counted copy
  EXPECT_EQ(Metric("modeld_amqp_answers_dropped_total"), 1);
  EXPECT_EQ(Metric("modeld_amqp_messages_redelivered_total"), 1);
  EXPECT_EQ(Metric("modeld_amqp_reconnects_total"), 1);
  EXPECT_TRUE(WaitUntil([&] { return Metric("modeld_amqp_in_flight") == 0; }));
}

TEST_F(AmqpWorkerTest, StopReadingCancelsTheConsumerAndStillAnswersWhatWasDelivered) {
  AmqpWorkerOptions options = Options();
  options.prefetch = 1;
  StartConsuming(options);
  broker_.HoldConfirms();  // the first stays unacknowledged, so the second is not delivered
  broker_.Publish(Request("first", Envelope("first", {1, 2}, "slow")));
  broker_.Publish(Request("second", Envelope("second", {1, 2})));
  ASSERT_TRUE(WaitUntil([&] { return broker_.unacked() == 1; }));
  worker_->StopReading();
  ASSERT_TRUE(WaitUntil([&] { return broker_.consumers() == 0; }));
  EXPECT_FALSE(worker_->Ready());
  EXPECT_EQ(Metric("modeld_amqp_connected"), 0);
  broker_.ReleaseConfirms();
  ASSERT_TRUE(WaitForAcks(1));
  EXPECT_THAT(broker_.Acked(), ElementsAre("first"));
  ASSERT_TRUE(WaitForReplies(1));
  EXPECT_EQ(Replies()[0].message.correlation_id, "first");
  // The second was never delivered: it waits for another consumer.
  const std::vector<FakeMessage> waiting = broker_.Messages(kQueue);
  ASSERT_EQ(waiting.size(), 1u);
  EXPECT_EQ(waiting[0].message.correlation_id, "second");
  EXPECT_FALSE(waiting[0].redelivered);
  EXPECT_EQ(Metric("modeld_amqp_messages_delivered_total"), 1);
}

TEST_F(AmqpWorkerTest, StopAnswersWhatItHoldsBeforeClosing) {
  StartConsuming();
  for (const char* id : {"a", "b", "c"}) broker_.Publish(Request(id, Envelope(id, {1, 2}, "slow")));
  ASSERT_TRUE(WaitUntil([&] { return broker_.unacked() == 3; }));
  worker_->Stop(absl::Now() + kWait);
  EXPECT_EQ(broker_.Acked().size(), 3u);
  EXPECT_EQ(Replies().size(), 3u);
  EXPECT_THAT(broker_.Messages(kQueue), IsEmpty());
  EXPECT_EQ(broker_.unacked(), 0);
  EXPECT_FALSE(worker_->Ready());
}

TEST_F(AmqpWorkerTest, StopWithADeadlineLeavesUnansweredMessagesUnacknowledged) {
  StartConsuming();
  broker_.HoldConfirms();  // the replies go out, their confirms never come
  broker_.Publish(Request("a", Envelope("a", {1, 2})));
  broker_.Publish(Request("b", Envelope("b", {1, 2})));
  ASSERT_TRUE(WaitForReplies(2));
  worker_->Stop(absl::Now() + absl::Milliseconds(50));
  EXPECT_THAT(broker_.Acked(), IsEmpty());
  EXPECT_EQ(broker_.unacked(), 0);
  // Back in the queue for the next consumer, marked redelivered.
  const std::vector<FakeMessage> back = broker_.Messages(kQueue);
  ASSERT_EQ(back.size(), 2u);
  for (const FakeMessage& message : back) EXPECT_TRUE(message.redelivered);
  EXPECT_EQ(Metric("modeld_amqp_in_flight"), 0);
}

TEST_F(AmqpWorkerTest, PrefetchFollowsTheAdmissionsFreeSlots) {
  admission_ = std::make_unique<service::Admission>(4, nullptr);
  AmqpWorkerOptions options = Options();  // prefetch 8
  options.admission = admission_.get();
  StartConsuming(options);
  ASSERT_TRUE(WaitUntil([&] { return broker_.prefetch() == 4; }));  // four slots free
  EXPECT_EQ(Metric("modeld_amqp_prefetch"), 4);
  // Other transports take three: one left.
  std::vector<service::Admission::Ticket> others;
  for (int i = 0; i < 3; ++i) others.push_back(admission_->Hold());
  ASSERT_TRUE(WaitUntil([&] { return broker_.prefetch() == 1; }));
  // A message taken holds a slot until its answer is out (the worker is pinned meanwhile).
  broker_.StallAfterDeliveries(1);
  broker_.Publish(Request("c", Envelope("r", {1, 2}, "slow")));
  ASSERT_TRUE(WaitUntil([&] { return broker_.stalled() == 1; }));
  EXPECT_EQ(admission_->in_flight(), 4);
  broker_.UnstallNext();
  ASSERT_TRUE(WaitForAcks(1));
  EXPECT_TRUE(WaitUntil([&] { return admission_->in_flight() == 3; }));
  // Every slot taken: the prefetch stays 1 (0 would mean no limit to the broker).
  others.push_back(admission_->Hold());
  const int reads = broker_.calls(Op::kNext);
  ASSERT_TRUE(WaitUntil([&] { return broker_.calls(Op::kNext) >= reads + 3; }));
  EXPECT_EQ(broker_.prefetch(), 1);
  others.clear();
  ASSERT_TRUE(WaitUntil([&] { return broker_.prefetch() == 4; }));  // and grows back
  EXPECT_EQ(Metric("modeld_amqp_prefetch"), 4);
  EXPECT_THAT(broker_.prefetches(), Each(Ge(1)));
}

// A publish that fails takes its link down; the message it answered is delivered again, and
// nothing of it stays held (the in-flight count, which Stop waits on, goes back to 0).
TEST_F(AmqpWorkerTest, AReplyThatCannotBePublishedLeavesNothingHeld) {
  StartConsuming();
  broker_.Fail(Op::kPublish, absl::UnavailableError("connection reset"));
  broker_.Publish(Request("c", Envelope("r", {1, 2})));
  ASSERT_TRUE(WaitForReplies(1));  // on the next connection: counted, and the copy answered
  EXPECT_EQ(Reply(Replies()[0]).code(), 0);
  ASSERT_TRUE(WaitForAcks(2));
  EXPECT_EQ(Metric("modeld_amqp_reconnects_total"), 1);
  EXPECT_EQ(Metric("modeld_amqp_answers_dropped_total"), 1);
  EXPECT_TRUE(WaitUntil([&] { return Metric("modeld_amqp_in_flight") == 0; }));
}

TEST_F(AmqpWorkerTest, ADeadLetterReplyThatCannotBePublishedLeavesNothingHeld) {
  StartConsuming();
  broker_.Fail(Op::kPublish, absl::UnavailableError("connection reset"));
  broker_.Publish(Request("bad", "not an envelope"));
  ASSERT_TRUE(broker_.WaitForMessages(kDeadLetters, 1, kWait));  // on the next connection
  ASSERT_TRUE(WaitForReplies(1));
  EXPECT_EQ(Reply(Replies()[0]).code(), 3);
  EXPECT_EQ(Metric("modeld_amqp_answers_dropped_total"), 1);
  EXPECT_TRUE(WaitUntil([&] { return Metric("modeld_amqp_in_flight") == 0; }));
}

TEST_F(AmqpWorkerTest, AnswersTakenTogetherAreAllLetGoWhenOneCannotBePublished) {
  broker_.DeclareQueue(kQueue);
  broker_.Publish(Request("a", Envelope("a", {1, 2}, "slow")));
  broker_.Publish(Request("b", Envelope("b", {1, 2}, "slow")));
  broker_.StallAfterDeliveries(2);
  StartWorker();
  ASSERT_TRUE(WaitUntil([&] { return broker_.stalled() == 1; }));
  // Both answers come back while the worker is pinned: it takes them together.
  serving_.Drain();
  broker_.Fail(Op::kPublish, absl::UnavailableError("connection reset"));
  broker_.UnstallNext();
  // Delivered again on the next connection, counted, and their copies answered (UNAVAILABLE:
  // the models have shut down meanwhile).
  ASSERT_TRUE(WaitForReplies(2));
  for (const FakeMessage& reply : Replies()) EXPECT_EQ(Reply(reply).code(), 14);
  ASSERT_TRUE(WaitForAcks(4));
  EXPECT_EQ(Metric("modeld_amqp_answers_dropped_total"), 2);
  EXPECT_TRUE(WaitUntil([&] { return Metric("modeld_amqp_in_flight") == 0; }));
}

// --max-inflight-requests=0: an admission without a limit (Free() is INT64_MAX).
TEST_F(AmqpWorkerTest, PrefetchStaysWholeWithoutAnAdmissionLimit) {
  admission_ = std::make_unique<service::Admission>(0, nullptr);
  AmqpWorkerOptions options = Options();
  options.admission = admission_.get();
  StartConsuming(options);
  broker_.HoldConfirms();  // the message stays held while the prefetch is fitted again
  broker_.Publish(Request("c", Envelope("r", {1, 2})));
  ASSERT_TRUE(WaitForReplies(1));
  // Fitted every 100 ms; an idle read waits 250 ms: three reads see at least one fit.
  const int reads = broker_.calls(Op::kNext);
  ASSERT_TRUE(WaitUntil([&] { return broker_.calls(Op::kNext) >= reads + 3; }));
  EXPECT_THAT(broker_.prefetches(), Each(8));
  EXPECT_EQ(Metric("modeld_amqp_prefetch"), 8);
  broker_.ReleaseConfirms();
  ASSERT_TRUE(WaitForAcks(1));
}

}  // namespace
}  // namespace modeld::transport::amqp
