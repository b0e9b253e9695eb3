#include "transport/redis/redis_worker.h"

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "backend/fake/fake_backend.h"
#include "backend/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/model_manager.h"
#include "server/inference_service.h"
#include "testing/temp_repository.h"
#include "transport/redis/envelope.h"
#include "transport/redis/fake_work_queue.h"

namespace modeld::transport::redis {
namespace {

using ::testing::HasSubstr;
using Op = FakeWorkQueue::Op;

constexpr absl::Duration kWait = absl::Seconds(10);

std::string Floats(std::vector<float> values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// A serialized RequestEnvelope asking `model` for [1, 2] FP32 input `values`.
std::string Envelope(const std::string& request_id, const std::vector<float>& values,
                     const std::string& model = "echo", int64_t deadline_unix_ms = 0) {
  wire::RequestEnvelope envelope;
  envelope.set_request_id(request_id);
  envelope.set_reply_key(absl::StrCat("reply:", request_id));
  envelope.set_deadline_unix_ms(deadline_unix_ms);
  inference::ModelInferRequest* request = envelope.mutable_infer();
  request->set_model_name(model);
  auto* input = request->add_inputs();
  input->set_name("x");
  input->set_datatype("FP32");
  input->add_shape(1);
  input->add_shape(static_cast<int64_t>(values.size()));
  request->add_raw_input_contents(Floats(values));
  return envelope.SerializeAsString();
}

// A serialized RequestEnvelope carrying a query that `fill` sets.
std::string Query(const std::string& request_id,
                  const std::function<void(wire::RequestEnvelope&)>& fill) {
  wire::RequestEnvelope envelope;
  envelope.set_request_id(request_id);
  envelope.set_reply_key(absl::StrCat("reply:", request_id));
  fill(envelope);
  return envelope.SerializeAsString();
}

QueueEntry Entry(const std::string& id, std::optional<std::string> envelope,
                 int64_t deliveries = 1) {
  return QueueEntry{id, std::move(envelope), deliveries};
}

wire::ReplyEnvelope Reply(const FakeWorkQueue::Finished& finished) {
  absl::StatusOr<wire::ReplyEnvelope> reply = ParseReplyEnvelope(finished.reply);
  EXPECT_TRUE(reply.ok()) << "entry " << finished.entry.id << " has no parsable reply";
  return reply.value_or(wire::ReplyEnvelope());
}

// Polls `condition` until it holds or `timeout` passes (the worker exposes no events).
bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout = kWait) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

class RedisWorkerTest : public ::testing::Test {
 protected:
  // The value of one series in the registry's text (`name{labels}` as rendered), or -1.
  double Metric(const std::string& series) const {
    const std::string text = registry_.Render();
    const std::string prefix = series + " ";
    for (size_t at = 0; at < text.size();) {
      size_t end = text.find('\n', at);
      if (end == std::string::npos) end = text.size();
      if (text.compare(at, prefix.size(), prefix) == 0) {
        return std::stod(text.substr(at + prefix.size(), end - at - prefix.size()));
      }
      at = end + 1;
    }
    return -1;
  }

  void SetUp() override {
    backends_.Register("fake", {}, std::make_unique<backend::FakeBackend>());
    repo_.AddModel("echo", R"pb(
      backend: "fake"
      max_batch_size: 8
      input {
        name: "x"
        data_type: TYPE_FP32
        dims: [ 2 ]
      }
      output {
        name: "x"
        data_type: TYPE_FP32
        dims: [ 2 ]
      }
      dynamic_batching {}
    )pb");
    repo_.AddModel("slow", R"pb(
      backend: "fake"
      max_batch_size: 0
      input {
        name: "x"
        data_type: TYPE_FP32
        dims: [ 1, 2 ]
      }
      output {
        name: "x"
        data_type: TYPE_FP32
        dims: [ 1, 2 ]
      }
      parameters {
        key: "sleep_ms"
        value { string_value: "100" }
      }
    )pb");
    manager_ = std::make_unique<repository::ModelManager>(
        repo_.path(), backends_, batching::MakeSchedulerFactory(clock_), &registry_);
    ASSERT_TRUE(manager_->LoadAll().ok());
    service_ = std::make_unique<server::InferenceService>(*manager_, clock_, &registry_);
  }

  void TearDown() override {
    if (worker_ != nullptr) worker_->Stop(absl::Now() + kWait);
    worker_.reset();
    manager_->DrainAll();
  }

  // Starts a worker on `queue_` with quick timers.
  void StartWorker(RedisWorkerOptions options = {}) {
    options.where = "fake";
    options.block = absl::Milliseconds(20);
    options.recover_interval = absl::Milliseconds(10);
    options.sample_interval = absl::Milliseconds(10);
    options.min_backoff = absl::Milliseconds(1);
    options.max_backoff = absl::Milliseconds(5);
    auto queue = std::make_unique<FakeWorkQueue>(needs_envelope_);
    queue_ = queue.get();
    worker_ = std::make_unique<RedisWorker>(options, std::move(queue), connector_.connector(),
                                            *service_, clock_, &registry_);
    worker_->Start();
  }

  testing::TempRepository repo_;
  common::RealClock clock_;
  metrics::Registry registry_;
  backend::BackendRegistry backends_;
  std::unique_ptr<repository::ModelManager> manager_;
  std::unique_ptr<server::InferenceService> service_;
  FakeConnector connector_;
  bool needs_envelope_ = false;
  FakeWorkQueue* queue_ = nullptr;
  std::unique_ptr<RedisWorker> worker_;
};

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
    const wire::ReplyEnvelope reply = Reply(finished);
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
  wire::RequestEnvelope empty;
  empty.set_request_id("empty");
  empty.set_reply_key("reply:empty");
  queue_->Add(Entry("1-2", empty.SerializeAsString()));
  wire::RequestEnvelope bad_type;
  ASSERT_TRUE(bad_type.ParseFromString(Envelope("dtype", {1, 2})));
  bad_type.mutable_infer()->mutable_inputs(0)->set_datatype("FP99");
  queue_->Add(Entry("1-3", bad_type.SerializeAsString()));
  ASSERT_TRUE(queue_->WaitForFinished(4, kWait));
  for (const FakeWorkQueue::Finished& f : queue_->finished()) {
    EXPECT_EQ(f.dead_reason, "") << f.entry.id;
    const wire::ReplyEnvelope reply = Reply(f);
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
    const wire::ReplyEnvelope reply = Reply(f);
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

TEST_F(RedisWorkerTest, EntryDeliveredTooOftenIsDeadLetteredAndAnsweredAborted) {
  RedisWorkerOptions options;
  options.max_deliveries = 3;
  StartWorker(options);
  queue_->AddOrphan(Entry("1-0", Envelope("poison", {1, 2}), /*deliveries=*/4));
  queue_->AddOrphan(Entry("1-1", Envelope("retry", {1, 2}), /*deliveries=*/3));
  ASSERT_TRUE(queue_->WaitForFinished(2, kWait));
  for (const FakeWorkQueue::Finished& f : queue_->finished()) {
    const wire::ReplyEnvelope reply = Reply(f);
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

TEST_F(RedisWorkerTest, AnswersMetadataAndReadinessQueries) {
  // As in the server: readiness includes the worker's link to Redis.
  service_->AddReadinessCondition([this] { return worker_ != nullptr && worker_->Ready(); });
  StartWorker();
  ASSERT_TRUE(WaitUntil([&] { return worker_->Ready(); }));
  using E = wire::RequestEnvelope;
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
  std::map<std::string, wire::ReplyEnvelope> replies;
  for (const FakeWorkQueue::Finished& f : queue_->finished()) {
    EXPECT_EQ(f.dead_reason, "");
    const wire::ReplyEnvelope reply = Reply(f);
    EXPECT_EQ(f.reply_key, absl::StrCat("reply:", reply.request_id()));
    replies[reply.request_id()] = reply;
  }
  ASSERT_EQ(replies.size(), queries.size());

  for (const char* id : {"meta", "meta-v1"}) {
    const wire::ReplyEnvelope& reply = replies[id];
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
    const wire::ReplyEnvelope& reply = replies[id];
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
  service_->StartDraining();
  queue_->Add(Entry("2-0", Query("draining", [](E& e) { e.mutable_server_ready(); })));
  ASSERT_TRUE(queue_->WaitForFinished(queries.size() + 1, kWait));
  const wire::ReplyEnvelope draining = Reply(queue_->finished().back());
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
  queue_->Add(Entry("1-9", Query("meta", [](wire::RequestEnvelope& e) {
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
  queue_->Add(Entry("1-0", Query("late", [](wire::RequestEnvelope& e) {
                      e.mutable_server_ready();
                      e.set_deadline_unix_ms(absl::ToUnixMillis(absl::Now() - absl::Seconds(1)));
                    })));
  queue_->AddOrphan(Entry(
      "1-1",
      Query("poison", [](wire::RequestEnvelope& e) { e.mutable_metadata()->set_name("echo"); }),
      /*deliveries=*/9));
  ASSERT_TRUE(queue_->WaitForFinished(2, kWait));
  for (const FakeWorkQueue::Finished& f : queue_->finished()) {
    const wire::ReplyEnvelope reply = Reply(f);
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
