#include <map>
#include <memory>
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

TEST_F(RedisWorkerTest, AnswersMetadataAndReadinessQueries) {
  // As in the server: readiness includes the worker's link to Redis.
  serving_.service().AddReadinessCondition(
      [this] { return worker_ != nullptr && worker_->Ready(); });
  StartWorker();
  ASSERT_TRUE(WaitUntil([&] { return worker_->Ready(); }));
  using E = message::wire::RequestEnvelope;
  const std::vector<std::pair<std::string, std::function<void(E&)>>> queries = {
      {"meta", [](E& e) { e.mutable_metadata()->set_name("echo"); }},
      {"meta-v1",
       [](E& e) {
         e.mutable_metadata()->set_name("echo");
         e.mutable_metadata()->set_version("1");
       }},
      {"meta-unknown", [](E& e) { e.mutable_metadata()->set_name("no_such_model"); }},
      {"meta-bad-version",
       [](E& e) {
         e.mutable_metadata()->set_name("echo");
         e.mutable_metadata()->set_version("latest");
       }},
      {"ready", [](E& e) { e.mutable_model_ready()->set_name("echo"); }},
      {"ready-unknown", [](E& e) { e.mutable_model_ready()->set_name("no_such_model"); }},
      {"ready-v2",
       [](E& e) {
         e.mutable_model_ready()->set_name("echo");
         e.mutable_model_ready()->set_version("2");
       }},
      {"ready-bad-version",
       [](E& e) {
         e.mutable_model_ready()->set_name("echo");
         e.mutable_model_ready()->set_version("x");
       }},
      {"server", [](E& e) { e.mutable_server_ready(); }},
  };
  for (size_t i = 0; i < queries.size(); ++i) {
    queue_->Add(Entry(absl::StrCat("1-", i), Query(queries[i].first, queries[i].second)));
  }
  ASSERT_TRUE(queue_->WaitForFinished(queries.size(), kWait));
  std::map<std::string, message::wire::ReplyEnvelope> replies;
  for (const FakeWorkQueue::Finished& f : queue_->finished()) {
    EXPECT_EQ(f.dead_reason, "");
    const message::wire::ReplyEnvelope reply = Reply(f);
    EXPECT_EQ(f.reply_key, absl::StrCat("reply:", reply.request_id()));
    replies[reply.request_id()] = reply;
  }
  ASSERT_EQ(replies.size(), queries.size());

  for (const char* id : {"meta", "meta-v1"}) {
    const message::wire::ReplyEnvelope& reply = replies[id];
    ASSERT_EQ(reply.code(), 0) << id << ": " << reply.message();
    ASSERT_TRUE(reply.has_metadata()) << id;
    const inference::ModelMetadataResponse& metadata = reply.metadata();
    EXPECT_EQ(metadata.name(), "echo");
    EXPECT_THAT(metadata.versions(), ::testing::ElementsAre("1"));
    ASSERT_EQ(metadata.inputs_size(), 1);
    EXPECT_EQ(metadata.inputs(0).name(), "x");
    EXPECT_EQ(metadata.inputs(0).datatype(), "FP32");
    EXPECT_THAT(metadata.inputs(0).shape(), ::testing::ElementsAre(-1, 2));
    ASSERT_EQ(metadata.outputs_size(), 1);
    EXPECT_EQ(metadata.outputs(0).name(), "x");
  }
  EXPECT_EQ(replies["meta-unknown"].code(), 5);  // NOT_FOUND, as the gRPC call
  EXPECT_THAT(replies["meta-unknown"].message(), HasSubstr("no_such_model"));
  EXPECT_FALSE(replies["meta-unknown"].has_metadata());
  EXPECT_EQ(replies["meta-bad-version"].code(), 3);  // INVALID_ARGUMENT
  EXPECT_THAT(replies["meta-bad-version"].message(), HasSubstr("latest"));

  for (const auto& [id, ready] :
       std::vector<std::pair<std::string, bool>>{{"ready", true},
                                                 {"ready-unknown", false},
                                                 {"ready-v2", false},
                                                 {"ready-bad-version", false}}) {
    const message::wire::ReplyEnvelope& reply = replies[id];
    EXPECT_EQ(reply.code(), 0) << id << ": " << reply.message();
    ASSERT_TRUE(reply.has_model_ready()) << id;
    EXPECT_EQ(reply.model_ready().ready(), ready) << id;
  }
  ASSERT_TRUE(replies["server"].has_server_ready());
  EXPECT_TRUE(replies["server"].server_ready().ready());

  EXPECT_EQ(Metric("modeld_redis_queries_total"), queries.size());
  // Nothing went to a model.
  EXPECT_THAT(registry_.Render(), ::testing::Not(HasSubstr("modeld_requests_total{")));

  // Readiness is read when asked: a draining server says it is not ready.
  serving_.service().StartDraining();
  queue_->Add(Entry("2-0", Query("draining", [](E& e) { e.mutable_server_ready(); })));
  ASSERT_TRUE(queue_->WaitForFinished(queries.size() + 1, kWait));
  const message::wire::ReplyEnvelope draining = Reply(queue_->finished().back());
  EXPECT_EQ(draining.request_id(), "draining");
  ASSERT_TRUE(draining.has_server_ready());
  EXPECT_FALSE(draining.server_ready().ready());
}

TEST_F(RedisWorkerTest, QueriesDoNotWaitBehindInference) {
  StartWorker();
  // "slow" runs one request at a time, 100 ms each: the last answer comes after 400 ms.
  constexpr int kSlow = 4;
  for (int i = 0; i < kSlow; ++i) {
    queue_->Add(Entry(absl::StrCat("1-", i), Envelope(absl::StrCat("r", i), {1, 2}, "slow")));
  }
  queue_->Add(Entry("1-9", Query("meta", [](message::wire::RequestEnvelope& e) {
                      e.mutable_metadata()->set_name("slow");
                    })));
  ASSERT_TRUE(queue_->WaitForFinished(kSlow + 1, kWait));
  const std::vector<FakeWorkQueue::Finished> finished = queue_->finished();
  size_t query_at = finished.size();
  for (size_t i = 0; i < finished.size(); ++i) {
    if (finished[i].entry.id == "1-9") query_at = i;
  }
  // Queued behind the model, it would be answered last.
  EXPECT_LT(query_at, static_cast<size_t>(kSlow));
  EXPECT_EQ(Reply(finished[query_at]).metadata().name(), "slow");
}

TEST_F(RedisWorkerTest, ExpiredAndPoisonQueriesFollowTheRules) {
  StartWorker();
  queue_->Add(Entry("1-0", Query("late", [](message::wire::RequestEnvelope& e) {
                      e.mutable_server_ready();
                      e.set_deadline_unix_ms(absl::ToUnixMillis(absl::Now() - absl::Seconds(1)));
                    })));
  queue_->AddOrphan(Entry(
      "1-1",
      Query("poison",
            [](message::wire::RequestEnvelope& e) { e.mutable_metadata()->set_name("echo"); }),
      /*deliveries=*/9));
  ASSERT_TRUE(queue_->WaitForFinished(2, kWait));
  for (const FakeWorkQueue::Finished& f : queue_->finished()) {
    const message::wire::ReplyEnvelope reply = Reply(f);
    if (reply.request_id() == "late") {
      EXPECT_EQ(reply.code(), 4);
      EXPECT_EQ(f.dead_reason, "");
    } else {
      EXPECT_EQ(reply.code(), 10);
      EXPECT_FALSE(f.dead_reason.empty());
    }
    EXPECT_FALSE(reply.has_server_ready() || reply.has_metadata());
  }
  EXPECT_EQ(Metric("modeld_redis_queries_total"), 0);
}

TEST_F(RedisWorkerTest, SamplesTheQueueDepth) {
  StartWorker();
  ASSERT_TRUE(WaitUntil([&] { return queue_->calls(Op::kDepth) >= 2; }));
  EXPECT_EQ(Metric("modeld_redis_queue_waiting_entries"), 0);
}

}  // namespace
}  // namespace modeld::transport::redis
