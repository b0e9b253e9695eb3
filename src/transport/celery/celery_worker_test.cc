#include "transport/celery/celery_worker.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "service/admission.h"
#include "service/testing/fake_backend_service.h"
#include "transport/celery/testing/fake_celery_broker.h"
#include "transport/message/testing/worker_test_support.h"

namespace modeld::transport::celery {
namespace {

using ::testing::HasSubstr;
using message::testing::kWait;
using message::testing::WaitUntil;
using testing::FakeCeleryQueue;

std::string Headers(const std::string& id, const std::string& task = "modeld.infer",
                    const std::string& extra = "") {
  return absl::StrCat(R"({"lang": "py", "task": ")", task, R"(", "id": ")", id,
                      R"(", "root_id": ")", id, R"(", "parent_id": null, "group": null)", extra,
                      "}");
}

std::string InferBody(const std::string& model = "echo", const std::string& values = "[[1, 2]]",
                      const std::string& embed = "null") {
  return absl::StrCat(R"([[")", model, R"(", {"x": )", values, "}], {}, ", embed, "]");
}

// The stored documents for `id`, parsed.
std::vector<rapidjson::Document> Docs(const FakeCeleryQueue& queue, const std::string& id) {
  std::vector<rapidjson::Document> docs;
  for (const FakeCeleryQueue::Stored& stored : queue.Results()) {
    if (stored.task_id != id) continue;
    docs.emplace_back();
    docs.back().Parse(stored.document.c_str());
  }
  return docs;
}

std::string Json(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return buffer.GetString();
}

class CeleryWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    message::testing::AddEchoAndSlowModels(serving_);
    ASSERT_TRUE(serving_.Start().ok());
  }
  void TearDown() override {
    if (worker_ != nullptr) worker_->Stop(absl::Now() + kWait);
    worker_.reset();
    serving_.Drain();
  }

  static CeleryWorkerOptions Options() {
    CeleryWorkerOptions options;
    options.queue = "modeld";
    options.where = "fake";
    options.prefetch = 8;
    options.min_backoff = absl::Milliseconds(1);
    options.max_backoff = absl::Milliseconds(5);
    options.canvas.origin = "modeld@test";
    options.hostname = "test";
    return options;
  }

  void Start(CeleryWorkerOptions options = Options(), bool with_backend = true) {
    worker_ = std::make_unique<CeleryWorker>(std::move(options), queue_->factory(),
                                             with_backend ? queue_->backend() : nullptr,
                                             serving_.service(), clock_, &registry_);
    worker_->Start();
    ASSERT_TRUE(WaitUntil([&] { return worker_->Ready(); }));
  }

  // Waits for `count` settled messages (acked or dead-lettered).
  bool WaitSettled(size_t count) {
    return WaitUntil(
        [&] { return queue_->Acked().size() + queue_->DeadLettered().size() >= count; });
  }

  // The one stored document of `id` (waits for it).
  rapidjson::Document Result(const std::string& id) {
    EXPECT_TRUE(WaitUntil([&] { return !Docs(*queue_, id).empty(); })) << id;
    std::vector<rapidjson::Document> docs = Docs(*queue_, id);
    if (docs.empty()) return rapidjson::Document();
    return std::move(docs.back());
  }

  double Metric(const std::string& series) const {
    return message::testing::MetricValue(registry_, series);
  }

  common::RealClock clock_;
  metrics::Registry registry_;
  modeld::testing::FakeBackendService serving_{clock_, &registry_};
  std::shared_ptr<FakeCeleryQueue> queue_ = FakeCeleryQueue::Make();
  std::unique_ptr<service::Admission> admission_;
  std::unique_ptr<CeleryWorker> worker_;
};

TEST_F(CeleryWorkerTest, RunsAnInferTaskStoresSuccessThenAcks) {
  Start();
  EXPECT_EQ(queue_->declared(), "modeld");
  queue_->Push(Headers("t1"), InferBody("echo", "[[1.5, -2]]"));
  rapidjson::Document doc = Result("t1");
  EXPECT_STREQ(doc["status"].GetString(), "SUCCESS");
  EXPECT_EQ(Json(doc["result"]), R"({"x":[[1.5,-2]]})");
  EXPECT_STREQ(doc["task_id"].GetString(), "t1");
  ASSERT_TRUE(WaitSettled(1));
  EXPECT_EQ(queue_->Acked().size(), 1u);
  EXPECT_EQ(Metric(R"(modeld_celery_tasks_total{task="modeld.infer",state="SUCCESS"})"), 1);
}

TEST_F(CeleryWorkerTest, PredictAnswersTheOneOutputsList) {
  Start();
  queue_->Push(Headers("p1", "modeld.predict"), R"([["echo", [[3, 4], [5, 6]]], {}, null])");
  rapidjson::Document doc = Result("p1");
  EXPECT_STREQ(doc["status"].GetString(), "SUCCESS");
  EXPECT_EQ(Json(doc["result"]), "[[3,4],[5,6]]");
}

TEST_F(CeleryWorkerTest, ManyTasksEachGetTheirOwnResult) {
  Start();
  constexpr int kTasks = 40;
  for (int i = 0; i < kTasks; ++i) {
    queue_->Push(Headers(absl::StrCat("many-", i)),
                 InferBody("echo", absl::StrFormat("[[%d, %d]]", i, -i)));
  }
  ASSERT_TRUE(WaitSettled(kTasks));
  for (int i = 0; i < kTasks; ++i) {
    rapidjson::Document doc = Result(absl::StrCat("many-", i));
    EXPECT_EQ(Json(doc["result"]), absl::StrFormat(R"({"x":[[%d,%d]]})", i, -i)) << i;
  }
  // Never more held at once than the prefetch.
  EXPECT_LE(queue_->prefetch(), 8);
}

TEST_F(CeleryWorkerTest, ModelErrorsAreFailuresWithPythonExceptions) {
  Start();
  queue_->Push(Headers("nomodel"), InferBody("nope"));
  queue_->Push(Headers("shape"), InferBody("echo", "[[1, 2, 3]]"));
  queue_->Push(Headers("type"), InferBody("echo", R"([["a", "b"]])"));
  rapidjson::Document nomodel = Result("nomodel");
  EXPECT_STREQ(nomodel["status"].GetString(), "FAILURE");
  EXPECT_STREQ(nomodel["result"]["exc_type"].GetString(), "LookupError");
  EXPECT_THAT(nomodel["result"]["exc_message"][0].GetString(), HasSubstr("nope"));
  rapidjson::Document shape = Result("shape");
  EXPECT_STREQ(shape["result"]["exc_type"].GetString(), "ValueError");
  rapidjson::Document type = Result("type");
  EXPECT_STREQ(type["result"]["exc_type"].GetString(), "ValueError");
  EXPECT_THAT(type["result"]["exc_message"][0].GetString(), HasSubstr("input 'x'"));
  ASSERT_TRUE(WaitSettled(3));
  EXPECT_EQ(queue_->Acked().size(), 3u);  // refused, not redelivered
  // And the worker goes on.
  queue_->Push(Headers("after"), InferBody());
  EXPECT_STREQ(Result("after")["status"].GetString(), "SUCCESS");
}

TEST_F(CeleryWorkerTest, UnknownTaskIsNotRegisteredAndDeadLettered) {
  Start();
  queue_->Push(Headers("u1", "proj.tasks.add"), "[[1, 2], {}, null]");
  rapidjson::Document doc = Result("u1");
  EXPECT_STREQ(doc["status"].GetString(), "FAILURE");
  EXPECT_STREQ(doc["result"]["exc_type"].GetString(), "NotRegistered");
  EXPECT_STREQ(doc["result"]["exc_module"].GetString(), "celery.exceptions");
  ASSERT_TRUE(WaitSettled(1));
  ASSERT_EQ(queue_->DeadLettered().size(), 1u);
  EXPECT_THAT(queue_->DeadLettered()[0].second, HasSubstr("proj.tasks.add"));
  EXPECT_EQ(Metric(R"(modeld_celery_dead_letters_total{reason="unknown_task"})"), 1);
}

TEST_F(CeleryWorkerTest, MessagesWithoutHeadersOrIdAreDeadLetteredNotStored) {
  Start();
  queue_->Push("not json", "[[], {}, null]");
  queue_->Push(R"({"task": "modeld.infer"})", InferBody());
  ASSERT_TRUE(WaitSettled(2));
  EXPECT_EQ(queue_->DeadLettered().size(), 2u);
  EXPECT_TRUE(queue_->Results().empty());
  EXPECT_EQ(Metric(R"(modeld_celery_dead_letters_total{reason="unparsable"})"), 2);
  queue_->Push(Headers("after"), InferBody());
  EXPECT_STREQ(Result("after")["status"].GetString(), "SUCCESS");
}

TEST_F(CeleryWorkerTest, MalformedBodyWithAnIdIsAFailure) {
  Start();
  queue_->Push(Headers("bad"), R"({"args": []})");
  queue_->Push(Headers("kw"), R"([["echo", {"x": [[1, 2]]}], {"batch": 3}, null])");
  EXPECT_STREQ(Result("bad")["result"]["exc_type"].GetString(), "ValueError");
  rapidjson::Document kw = Result("kw");
  EXPECT_THAT(kw["result"]["exc_message"][0].GetString(),
              HasSubstr("unexpected keyword argument 'batch'"));
}

TEST_F(CeleryWorkerTest, AnExpiredTaskIsRevokedAndNeverRuns) {
  Start();
  queue_->Push(Headers("old", "modeld.infer", R"(, "expires": "2020-01-01T00:00:00")"),
               InferBody("slow", "[[1, 2]]"));
  rapidjson::Document doc = Result("old");
  EXPECT_STREQ(doc["status"].GetString(), "REVOKED");
  EXPECT_STREQ(doc["result"]["exc_type"].GetString(), "TaskRevokedError");
  ASSERT_TRUE(WaitSettled(1));
  EXPECT_EQ(Metric(R"(modeld_celery_tasks_total{task="modeld.infer",state="REVOKED"})"), 1);
}

TEST_F(CeleryWorkerTest, AnEtaTaskIsHeldWithoutBlockingTheOthers) {
  Start();
  const absl::Time eta = absl::Now() + absl::Milliseconds(400);
  queue_->Push(Headers("later", "modeld.infer",
                       absl::StrCat(R"(, "eta": ")", FormatIsoTime(eta), R"(")")),
               InferBody("echo", "[[7, 7]]"));
  queue_->Push(Headers("now"), InferBody("echo", "[[1, 1]]"));
  Result("now");
  EXPECT_TRUE(Docs(*queue_, "later").empty()) << "ran before its eta";
  EXPECT_TRUE(WaitUntil([&] { return Metric("modeld_celery_eta_held") == 1; }));
  rapidjson::Document later = Result("later");
  EXPECT_GE(absl::Now(), eta);
  EXPECT_STREQ(later["status"].GetString(), "SUCCESS");
  EXPECT_EQ(Metric("modeld_celery_eta_held"), 0);
}

TEST_F(CeleryWorkerTest, HeldEtaTasksGoBackOnStop) {
  Start();
  queue_->Push(Headers("far", "modeld.infer", R"(, "eta": "2999-01-01T00:00:00")"), InferBody());
  ASSERT_TRUE(WaitUntil([&] { return Metric("modeld_celery_eta_held") == 1; }));
  // The eta task adds to the prefetch rather than taking a running task's place.
  EXPECT_TRUE(WaitUntil([&] { return queue_->prefetch() == 9; })) << queue_->prefetch();
  const absl::Time started = absl::Now();
  worker_->Stop(absl::Now() + kWait);
  EXPECT_LT(absl::Now() - started, absl::Seconds(2)) << "Stop waited for the eta task";
  EXPECT_TRUE(queue_->Acked().empty());
  EXPECT_EQ(queue_->Ready(), 1u);  // back on the queue, for the next consumer
}

TEST_F(CeleryWorkerTest, IgnoreResultRunsWithoutStoring) {
  Start();
  queue_->Push(Headers("quiet", "modeld.infer", R"(, "ignore_result": true)"), InferBody());
  ASSERT_TRUE(WaitSettled(1));
  EXPECT_TRUE(queue_->Results().empty());
  EXPECT_EQ(Metric(R"(modeld_celery_tasks_total{task="modeld.infer",state="SUCCESS"})"), 1);
}

TEST_F(CeleryWorkerTest, WithoutABackendTasksStillRunAndAck) {
  Start(Options(), /*with_backend=*/false);
  queue_->Push(Headers("n1"), InferBody());
  ASSERT_TRUE(WaitSettled(1));
  EXPECT_EQ(queue_->Acked().size(), 1u);
  EXPECT_TRUE(queue_->Results().empty());
}

TEST_F(CeleryWorkerTest, AChainsNextStepIsPublishedWithTheResultFirst) {
  Start();
  const std::string embed = R"({"callbacks": null, "errbacks": null, "chord": null, "chain": [
      {"task": "proj.last", "args": [], "kwargs": {}, "options": {"task_id": "c3"},
       "subtask_type": null, "immutable": false},
      {"task": "proj.post", "args": [10], "kwargs": {"scale": 2},
       "options": {"task_id": "c2", "queue": "post"}, "subtask_type": null,
       "immutable": false}]})";
  queue_->Push(Headers("c1"), InferBody("echo", "[[1, 2]]", embed));
  ASSERT_TRUE(WaitSettled(1));
  ASSERT_EQ(queue_->Published().size(), 1u);
  const OutgoingTask next = queue_->Published()[0];
  EXPECT_EQ(next.queue, "post");
  EXPECT_EQ(next.correlation_id, "c2");
  rapidjson::Document body;
  body.Parse(next.body.c_str());
  ASSERT_TRUE(body.IsArray()) << next.body;
  EXPECT_EQ(Json(body[0]), R"([{"x":[[1,2]]},10])");
  EXPECT_EQ(Json(body[1]), R"({"scale":2})");
  ASSERT_TRUE(body[2]["chain"].IsArray());
  ASSERT_EQ(body[2]["chain"].Size(), 1u);
  EXPECT_STREQ(body[2]["chain"][0]["task"].GetString(), "proj.last");
  rapidjson::Document headers;
  headers.Parse(next.headers_json.c_str());
  EXPECT_STREQ(headers["task"].GetString(), "proj.post");
  EXPECT_STREQ(headers["id"].GetString(), "c2");
  EXPECT_STREQ(headers["parent_id"].GetString(), "c1");
  EXPECT_STREQ(headers["root_id"].GetString(), "c1");
  // The step's own result is stored before the chain moves on.
  EXPECT_STREQ(Result("c1")["status"].GetString(), "SUCCESS");
  EXPECT_EQ(Metric("modeld_celery_follow_ups_published_total"), 1);
}

TEST_F(CeleryWorkerTest, ErrbacksGetTheTaskIdOnFailure) {
  Start();
  const std::string embed = R"({"callbacks": [{"task": "proj.ok", "options": {}}],
      "errbacks": [{"task": "proj.on_error", "args": [], "options": {"queue": "errors"}}],
      "chain": null, "chord": null})";
  queue_->Push(Headers("e1"), InferBody("nope", "[[1, 2]]", embed));
  ASSERT_TRUE(WaitSettled(1));
  ASSERT_EQ(queue_->Published().size(), 1u);
  EXPECT_EQ(queue_->Published()[0].queue, "errors");
  EXPECT_THAT(queue_->Published()[0].body, ::testing::StartsWith(R"([["e1"])"));
}

TEST_F(CeleryWorkerTest, ChordsAndNestedCanvasAreRefusedClearly) {
  Start();
  queue_->Push(Headers("ch"), InferBody("echo", "[[1, 2]]",
                                        R"({"chord": {"task": "proj.join", "options": {}}})"));
  queue_->Push(Headers("grp"), InferBody("echo", "[[1, 2]]", R"({"chain": [
      {"task": "celery.group", "options": {}, "subtask_type": "group"}]})"));
  rapidjson::Document chord = Result("ch");
  EXPECT_STREQ(chord["result"]["exc_type"].GetString(), "NotImplementedError");
  EXPECT_THAT(chord["result"]["exc_message"][0].GetString(), HasSubstr("chord"));
  rapidjson::Document group = Result("grp");
  EXPECT_STREQ(group["result"]["exc_type"].GetString(), "NotImplementedError");
  EXPECT_THAT(group["result"]["exc_message"][0].GetString(), HasSubstr("group"));
  ASSERT_TRUE(WaitSettled(2));
  EXPECT_TRUE(queue_->Published().empty());
}

TEST_F(CeleryWorkerTest, AnUnreachableBackendHoldsTheTaskUnacknowledgedUntilItIsBack) {
  queue_->SetBackendDown(true);
  Start();
  queue_->Push(Headers("held"), InferBody());
  ASSERT_TRUE(WaitUntil([&] { return Metric("modeld_celery_result_store_failures_total") >= 2; }));
  EXPECT_TRUE(queue_->Acked().empty());
  EXPECT_EQ(queue_->Unacked(), 1u);
  queue_->SetBackendDown(false);
  EXPECT_STREQ(Result("held")["status"].GetString(), "SUCCESS");
  ASSERT_TRUE(WaitSettled(1));
}

TEST_F(CeleryWorkerTest, ABrokenFlushReconnectsAndTheTaskRunsAgain) {
  queue_->FailNextFlush();
  Start();
  queue_->Push(Headers("again"), InferBody());
  ASSERT_TRUE(WaitSettled(1));
  EXPECT_EQ(queue_->opens(), 2);
  EXPECT_EQ(Metric("modeld_celery_messages_redelivered_total"), 1);
  EXPECT_EQ(Metric("modeld_celery_reconnects_total"), 1);
  EXPECT_STREQ(Result("again")["status"].GetString(), "SUCCESS");
}

TEST_F(CeleryWorkerTest, TrackStartedStoresStartedBeforeTheResult) {
  CeleryWorkerOptions options = Options();
  options.track_started = true;
  Start(options);
  queue_->Push(Headers("s1"), InferBody());
  ASSERT_TRUE(WaitSettled(1));
  std::vector<rapidjson::Document> docs = Docs(*queue_, "s1");
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_STREQ(docs[0]["status"].GetString(), "STARTED");
  EXPECT_STREQ(docs[0]["result"]["hostname"].GetString(), "test");
  EXPECT_STREQ(docs[1]["status"].GetString(), "SUCCESS");
}

TEST_F(CeleryWorkerTest, ATimeLimitBecomesTheRequestsDeadline) {
  Start();
  // "slow" takes 100 ms a request with no batching: the third one cannot start in 150 ms.
  for (int i = 0; i < 3; ++i) {
    queue_->Push(Headers(absl::StrCat("tl", i), "modeld.infer", R"(, "timelimit": [0.15, null])"),
                 InferBody("slow", "[[1, 2]]"));
  }
  ASSERT_TRUE(WaitSettled(3));
  rapidjson::Document last = Result("tl2");
  EXPECT_STREQ(last["status"].GetString(), "FAILURE");
  EXPECT_STREQ(last["result"]["exc_type"].GetString(), "TimeLimitExceeded");
}

TEST_F(CeleryWorkerTest, PrefetchFollowsTheProcessWideAdmission) {
  admission_ = std::make_unique<service::Admission>(3, nullptr);
  CeleryWorkerOptions options = Options();
  options.admission = admission_.get();
  Start(options);
  for (int i = 0; i < 6; ++i) queue_->Push(Headers(absl::StrCat("a", i)), InferBody("slow"));
  ASSERT_TRUE(WaitUntil([&] { return queue_->prefetch() <= 3; })) << queue_->prefetch();
  EXPECT_LE(admission_->in_flight(), 3);
  ASSERT_TRUE(WaitSettled(6));
  // Each slot comes back just after its message's ack.
  EXPECT_TRUE(WaitUntil([&] { return admission_->in_flight() == 0; })) << admission_->in_flight();
}

TEST_F(CeleryWorkerTest, TrainOnAModelThatCannotTrainIsAFailure) {
  Start();
  queue_->Push(Headers("tr", "modeld.train"),
               R"([["echo", {"x": [[1, 2]]}, {"x": [[0, 1]]}], {}, null])");
  rapidjson::Document doc = Result("tr");
  EXPECT_STREQ(doc["status"].GetString(), "FAILURE");
  EXPECT_THAT(doc["result"]["exc_message"][0].GetString(), HasSubstr("train"));
}

}  // namespace
}  // namespace modeld::transport::celery
