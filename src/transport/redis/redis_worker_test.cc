#include "transport/redis/redis_worker.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transport/redis/testing/redis_worker_fixture.h"

namespace modeld::transport::redis {
namespace {

using ::testing::HasSubstr;
using Op = FakeWorkQueue::Op;

TEST_F(RedisWorkerTest, AnswersEveryEntryOnItsOwnReplyKey) {
  StartWorker();
  constexpr int kEntries = 20;
  for (int i = 0; i < kEntries; ++i) {
    queue_->Add(Entry(absl::StrCat("1-", i),
                      Envelope(absl::StrCat("req-", i), {float(i), float(i) + 0.5f})));
  }
  ASSERT_TRUE(queue_->WaitForFinished(kEntries, kWait));
  for (const FakeWorkQueue::Finished& finished : queue_->finished()) {
    const std::string n = finished.entry.id.substr(2);
    EXPECT_EQ(finished.reply_key, absl::StrCat("reply:req-", n));
    EXPECT_EQ(finished.dead_reason, "");
    const message::wire::ReplyEnvelope reply = Reply(finished);
    EXPECT_EQ(reply.request_id(), absl::StrCat("req-", n));
    EXPECT_EQ(reply.code(), 0) << reply.message();
    ASSERT_EQ(reply.infer().raw_output_contents_size(), 1);
    const float i = std::stof(n);
    EXPECT_EQ(reply.infer().raw_output_contents(0), Floats({i, i + 0.5f}));
    // Streams complete by id: the envelope bytes are not kept.
    EXPECT_FALSE(finished.entry.envelope.has_value());
  }
  EXPECT_TRUE(WaitUntil([&] { return worker_->Ready(); }));
  EXPECT_EQ(Metric("modeld_redis_entries_read_total"), kEntries);
  EXPECT_TRUE(WaitUntil([&] { return Metric("modeld_redis_entries_acked_total") == kEntries; }));
  EXPECT_EQ(Metric("modeld_redis_inflight_entries"), 0);
  EXPECT_EQ(Metric("modeld_redis_connected"), 1);
}

TEST_F(RedisWorkerTest, ListQueuesKeepTheItemForCompletion) {
  needs_envelope_ = true;
  StartWorker();
  const std::string envelope = Envelope("req", {1, 2});
  queue_->Add(Entry("abc", envelope));
  ASSERT_TRUE(queue_->WaitForFinished(1, kWait));
  EXPECT_EQ(queue_->finished()[0].entry.envelope, envelope);
}

TEST_F(RedisWorkerTest, EntryWithoutEnvelopeIsDeadLetteredWithoutAReply) {
  StartWorker();
  queue_->Add(Entry("1-0", std::nullopt));
  ASSERT_TRUE(queue_->WaitForFinished(1, kWait));
  const FakeWorkQueue::Finished finished = queue_->finished()[0];
  EXPECT_EQ(finished.reply_key, "");
  EXPECT_THAT(finished.dead_reason, HasSubstr("no 'envelope' field"));
  EXPECT_EQ(Metric("modeld_redis_bad_entries_total{reason=\"no_envelope\"}"), 1);
  EXPECT_TRUE(WaitUntil(
      [&] { return Metric("modeld_redis_dead_letters_total{reason=\"bad_envelope\"}") == 1; }));
}

TEST_F(RedisWorkerTest, UnparsableEnvelopeIsDeadLetteredWithoutAReply) {
  StartWorker();
  queue_->Add(Entry("1-0", std::string("\xff\xfe garbage", 10)));
  queue_->Add(Entry("1-1", Envelope("after", {1, 2})));
  ASSERT_TRUE(queue_->WaitForFinished(2, kWait));
  const std::vector<FakeWorkQueue::Finished> finished = queue_->finished();
  for (const FakeWorkQueue::Finished& f : finished) {
    if (f.entry.id == "1-0") {
      EXPECT_EQ(f.reply_key, "");
      EXPECT_THAT(f.dead_reason, HasSubstr("not a modeld.redis.RequestEnvelope"));
    } else {
      EXPECT_EQ(Reply(f).code(), 0);  // the worker goes on
    }
  }
  EXPECT_EQ(Metric("modeld_redis_bad_entries_total{reason=\"bad_envelope\"}"), 1);
}

TEST_F(RedisWorkerTest, BadRequestsAreAnsweredWithTheirError) {
  StartWorker();
  queue_->Add(Entry("1-0", Envelope("unknown", {1, 2}, "no_such_model")));
  queue_->Add(Entry("1-1", Envelope("shape", {1, 2, 3})));  // echo takes [n, 2]
  message::wire::RequestEnvelope empty;
  empty.set_request_id("empty");
  empty.set_reply_key("reply:empty");
  queue_->Add(Entry("1-2", empty.SerializeAsString()));
  message::wire::RequestEnvelope bad_type;
  ASSERT_TRUE(bad_type.ParseFromString(Envelope("dtype", {1, 2})));
  bad_type.mutable_infer()->mutable_inputs(0)->set_datatype("FP99");
  queue_->Add(Entry("1-3", bad_type.SerializeAsString()));
  ASSERT_TRUE(queue_->WaitForFinished(4, kWait));
  for (const FakeWorkQueue::Finished& f : queue_->finished()) {
    EXPECT_EQ(f.dead_reason, "") << f.entry.id;
    const message::wire::ReplyEnvelope reply = Reply(f);
    if (reply.request_id() == "unknown") {
      EXPECT_EQ(reply.code(), 5);
      EXPECT_THAT(reply.message(), HasSubstr("no_such_model"));
    } else {
      EXPECT_EQ(reply.code(), 3) << reply.request_id();
      EXPECT_FALSE(reply.message().empty());
    }
  }
  EXPECT_EQ(Metric("modeld_redis_bad_entries_total{reason=\"bad_request\"}"), 2);
  EXPECT_TRUE(WaitUntil([&] { return Metric("modeld_redis_entries_acked_total") == 4; }));
}

TEST_F(RedisWorkerTest, ExpiredRequestIsAnsweredWithoutRunning) {
  StartWorker();
  queue_->Add(Entry(
      "1-0", Envelope("late", {1, 2}, "echo", absl::ToUnixMillis(absl::Now() - absl::Seconds(1)))));
  queue_->Add(Entry("1-1", Envelope("on-time", {1, 2}, "echo",
                                    absl::ToUnixMillis(absl::Now() + absl::Seconds(60)))));
  ASSERT_TRUE(queue_->WaitForFinished(2, kWait));
  for (const FakeWorkQueue::Finished& f : queue_->finished()) {
    const message::wire::ReplyEnvelope reply = Reply(f);
    if (reply.request_id() == "late") {
      EXPECT_EQ(reply.code(), 4);
      EXPECT_THAT(reply.message(), HasSubstr("deadline passed"));
    } else {
      EXPECT_EQ(reply.code(), 0);
    }
  }
  const std::string text = registry_.Render();
  EXPECT_EQ(Metric("modeld_redis_expired_total"), 1);
  // Only the request on time reached the model.
  EXPECT_THAT(text,
              HasSubstr("modeld_requests_total{model=\"echo\",version=\"1\",outcome=\"ok\"} 1"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("outcome=\"deadline_exceeded\"")));
}

TEST_F(RedisWorkerTest, ANegativeDeadlineIsRefusedWithoutRunning) {
  StartWorker();
  queue_->Add(Entry("1-0", Envelope("negative", {1, 2}, "echo", -5)));
  ASSERT_TRUE(queue_->WaitForFinished(1, kWait));
  const message::wire::ReplyEnvelope reply = Reply(queue_->finished()[0]);
  EXPECT_EQ(reply.request_id(), "negative");
  EXPECT_EQ(reply.code(), 3);  // INVALID_ARGUMENT
  EXPECT_THAT(reply.message(), HasSubstr("deadline_unix_ms -5 is negative"));
  // Refused before it reached the model.
  EXPECT_EQ(Metric("modeld_redis_bad_entries_total{reason=\"bad_request\"}"), 1);
  EXPECT_THAT(registry_.Render(), ::testing::Not(HasSubstr("outcome=\"ok\"} 1")));
}

TEST_F(RedisWorkerTest, EntryDeliveredTooOftenIsDeadLetteredAndAnsweredAborted) {
  RedisWorkerOptions options;
  options.max_deliveries = 3;
  StartWorker(options);
  queue_->AddOrphan(Entry("1-0", Envelope("poison", {1, 2}), /*deliveries=*/4));
  queue_->AddOrphan(Entry("1-1", Envelope("retry", {1, 2}), /*deliveries=*/3));
  ASSERT_TRUE(queue_->WaitForFinished(2, kWait));
  for (const FakeWorkQueue::Finished& f : queue_->finished()) {
    const message::wire::ReplyEnvelope reply = Reply(f);
    if (reply.request_id() == "poison") {
      EXPECT_THAT(f.dead_reason, HasSubstr("delivered 4 times, more than the 3 allowed"));
      EXPECT_EQ(reply.code(), 10);  // ABORTED
      EXPECT_THAT(reply.message(), HasSubstr("dead letters"));
    } else {
      EXPECT_EQ(f.dead_reason, "");
      EXPECT_EQ(reply.code(), 0);  // the third delivery still runs
    }
  }
  EXPECT_EQ(Metric("modeld_redis_entries_claimed_total"), 2);
  EXPECT_TRUE(WaitUntil(
      [&] { return Metric("modeld_redis_dead_letters_total{reason=\"max_deliveries\"}") == 1; }));
}

TEST_F(RedisWorkerTest, NotReadyUntilRedisCanBeReached) {
  connector_.set_refusing(true);
  StartWorker();
  ASSERT_TRUE(WaitUntil([&] { return connector_.attempts() >= 4; }));  // retried with backoff
  EXPECT_FALSE(worker_->Ready());
  queue_->Add(Entry("1-0", Envelope("waits", {1, 2})));
  connector_.set_refusing(false);
  ASSERT_TRUE(queue_->WaitForFinished(1, kWait));
  EXPECT_TRUE(WaitUntil([&] { return worker_->Ready(); }));
  EXPECT_TRUE(queue_->first_prepare_seen());
}

TEST_F(RedisWorkerTest, ReconnectsAfterTheReaderLosesRedis) {
  StartWorker();
  ASSERT_TRUE(WaitUntil([&] { return worker_->Ready(); }));
  const int attempts = connector_.attempts();
  queue_->Fail(Op::kTake, absl::UnavailableError("connection reset"), 3);
  ASSERT_TRUE(WaitUntil([&] { return connector_.attempts() >= attempts + 3; }));
  queue_->Add(Entry("1-0", Envelope("after", {1, 2})));
  ASSERT_TRUE(queue_->WaitForFinished(1, kWait));
  EXPECT_TRUE(WaitUntil([&] { return worker_->Ready(); }));
  EXPECT_EQ(Metric("modeld_redis_reconnects_total"), 3);
}

TEST_F(RedisWorkerTest, RefusalSetsTheQueueUpAgain) {
  StartWorker();
  ASSERT_TRUE(WaitUntil([&] { return worker_->Ready(); }));
  const int prepares = queue_->calls(Op::kPrepare);
  // A vanished group (NOGROUP) is repaired by Prepare, on the same connection.
  queue_->Fail(Op::kTake, absl::FailedPreconditionError("NOGROUP"));
  ASSERT_TRUE(WaitUntil([&] { return queue_->calls(Op::kPrepare) == prepares + 1; }));
  queue_->Add(Entry("1-0", Envelope("after", {1, 2})));
  ASSERT_TRUE(queue_->WaitForFinished(1, kWait));
  EXPECT_EQ(Metric("modeld_redis_reconnects_total"), 0);
}

TEST_F(RedisWorkerTest, AnswersAreWrittenAgainAfterTheWriterLosesRedis) {
  StartWorker();
  queue_->Fail(Op::kComplete, absl::UnavailableError("connection reset"), 2);
  queue_->Add(Entry("1-0", Envelope("kept", {1, 2})));
  ASSERT_TRUE(queue_->WaitForFinished(1, kWait));
  EXPECT_TRUE(WaitUntil([&] { return queue_->calls(Op::kComplete) >= 3; }));
  ASSERT_EQ(queue_->finished().size(), 1u);
  EXPECT_EQ(Reply(queue_->finished()[0]).code(), 0);
}

TEST_F(RedisWorkerTest, HoldsNoMoreThanMaxInFlight) {
  RedisWorkerOptions options;
  options.max_in_flight = 3;
  options.read_count = 2;
  StartWorker(options);
  constexpr int kEntries = 9;
  for (int i = 0; i < kEntries; ++i) {
    queue_->Add(Entry(absl::StrCat("1-", i), Envelope(absl::StrCat("r", i), {1, 2}, "slow")));
  }
  ASSERT_TRUE(queue_->WaitForFinished(kEntries, kWait));
  EXPECT_LE(queue_->max_held(), 3);
  EXPECT_GE(queue_->max_held(), 2);
}

TEST_F(RedisWorkerTest, ReadsNoMoreThanTheProcessWideAdmissionHasFree) {
  service::Admission admission(3, nullptr);
  // A gRPC call holds one of the three slots: the worker may take two entries at a time.
  std::optional<service::Admission::Ticket> grpc_call = admission.Hold();
  RedisWorkerOptions options;
  options.admission = &admission;
  StartWorker(options);
  constexpr int kEntries = 6;
  for (int i = 0; i < kEntries; ++i) {
    queue_->Add(Entry(absl::StrCat("1-", i), Envelope(absl::StrCat("r", i), {1, 2}, "slow")));
  }
  ASSERT_TRUE(WaitUntil([&] { return queue_->held() == 2; }));
  // Each entry taken holds a slot (taken just after the read returns, so wait for it).
  EXPECT_TRUE(WaitUntil([&] { return admission.in_flight() == 3; }));
  EXPECT_LE(queue_->held(), 2);  // and no third entry was read while the cap was full
  grpc_call.reset();             // the gRPC call ends: a third entry may be taken
  ASSERT_TRUE(queue_->WaitForFinished(kEntries, kWait));
  EXPECT_LE(queue_->max_held(), 3);  // never past the process-wide cap
  ASSERT_TRUE(WaitUntil([&] { return admission.in_flight() == 0; }));  // all given back
}

TEST_F(RedisWorkerTest, StopFinishesWhatWasTakenAndLeavesTheRest) {
  RedisWorkerOptions options;
  options.max_in_flight = 2;
  StartWorker(options);
  for (int i = 0; i < 5; ++i) {
    queue_->Add(Entry(absl::StrCat("1-", i), Envelope(absl::StrCat("r", i), {1, 2}, "slow")));
  }
  ASSERT_TRUE(WaitUntil([&] { return queue_->held() == 2; }));
  worker_->Stop(absl::Now() + kWait);
  // The two taken (100 ms each on one instance) were answered; nothing else was taken.
  EXPECT_EQ(queue_->finished().size(), 2u);
  EXPECT_EQ(queue_->waiting(), 3u);
  EXPECT_EQ(queue_->held(), 0);
  for (const FakeWorkQueue::Finished& f : queue_->finished()) EXPECT_EQ(Reply(f).code(), 0);
}

TEST_F(RedisWorkerTest, StaleAnswersAndRefusedRepliesAreCounted) {
  StartWorker();
  queue_->SetOutcome("1-0", {CompletionOutcome::Kind::kStale, ""});
  queue_->SetOutcome("1-1", {CompletionOutcome::Kind::kReplyFailed, "WRONGTYPE"});
  queue_->SetOutcome("1-2", {CompletionOutcome::Kind::kFailed, "OOM"});
  for (int i = 0; i < 3; ++i) {
    queue_->Add(Entry(absl::StrCat("1-", i), Envelope(absl::StrCat("r", i), {1, 2})));
  }
  ASSERT_TRUE(queue_->WaitForFinished(3, kWait));
  // The fake records completions before the worker settles them.
  ASSERT_TRUE(WaitUntil([&] { return Metric("modeld_redis_inflight_entries") == 0; }));
  EXPECT_EQ(Metric("modeld_redis_stale_answers_total"), 1);
  EXPECT_EQ(Metric("modeld_redis_reply_failures_total"), 2);
  EXPECT_EQ(Metric("modeld_redis_entries_acked_total"), 1);  // the refused reply
}

}  // namespace
}  // namespace modeld::transport::redis
