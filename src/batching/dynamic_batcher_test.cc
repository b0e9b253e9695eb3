#include "batching/dynamic_batcher.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/fake_clock.h"

namespace modeld::batching {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr float kBlock = -1;  // a batch whose first value is this waits for Release()
constexpr float kPoison = 13;  // a batch holding this value fails, as bad data would

// What the test models saw, shared by every instance of one batcher.
struct Recorder {
  absl::Mutex mu;
  std::vector<int64_t> batch_rows ABSL_GUARDED_BY(mu);
  bool released ABSL_GUARDED_BY(mu) = false;
  bool fail ABSL_GUARDED_BY(mu) = false;

  void Release() {
    absl::MutexLock lock(&mu);
    released = true;
  }
  // Waits until `n` batches have started.
  void AwaitBatches(size_t n) {
    absl::MutexLock lock(&mu);
    auto started = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return batch_rows.size() >= n; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&started), absl::Seconds(10)));
  }
  std::vector<int64_t> Rows() {
    absl::MutexLock lock(&mu);
    return batch_rows;
  }
};

// Identity on "x" -> "y", recording each batch's rows.
class RecordingModel : public backend::Model {
 public:
  explicit RecordingModel(Recorder& recorder) : recorder_(recorder) {}
  absl::StatusOr<core::TensorMap> Run(const core::TensorMap& inputs) override {
    const core::Tensor& x = inputs.at("x");
    float first = 0;
    memcpy(&first, x.bytes().data(), sizeof(first));
    absl::MutexLock lock(&recorder_.mu);
    recorder_.batch_rows.push_back(x.shape()[0]);
    if (first == kBlock) recorder_.mu.Await(absl::Condition(&recorder_.released));
    if (recorder_.fail) return absl::InternalError("the model broke");
    std::vector<float> values(x.bytes().size() / sizeof(float));
    memcpy(values.data(), x.bytes().data(), x.bytes().size());
    if (std::find(values.begin(), values.end(), kPoison) != values.end()) {
      return absl::InvalidArgumentError("a poisoned row");
    }
    return core::TensorMap{{"y", x}};
  }

 private:
  Recorder& recorder_;
};

struct Answer {
  absl::Notification done;
  absl::StatusOr<core::InferResponse> result = absl::UnknownError("unanswered");
};

class DynamicBatcherTest : public ::testing::Test {
 protected:
  void Start(absl::string_view batching, int instances = 1, int max_batch_size = 8) {
    absl::StatusOr<core::ModelConfig> config = core::ParseModelConfig(
        absl::StrCat("backend: \"fake\"\nmax_batch_size: ", max_batch_size,
                     "\ninput { name: \"x\" data_type: TYPE_FP32 dims: [ -1 ] }\n"
                     "output { name: \"y\" data_type: TYPE_FP32 dims: [ -1 ] }\n",
                     "dynamic_batching { ", batching, " }"),
        "test", "m");
    ASSERT_TRUE(config.ok()) << config.status();
    std::vector<std::unique_ptr<backend::Model>> models;
    for (int i = 0; i < instances; ++i)
      models.push_back(std::make_unique<RecordingModel>(recorder_));
    batcher_ = std::make_unique<DynamicBatcher>(
        std::make_shared<const core::ModelConfig>(*config), 1, std::move(models), clock_,
        std::make_shared<const metrics::VersionMetrics>(registry_, "m", "1"));
  }

  // Enqueues `rows` rows of `width` copies of `value`; the answer lands in the returned slot.
  std::shared_ptr<Answer> Send(float value, int64_t rows = 1, int64_t width = 1,
                               uint64_t priority = 0,
                               std::optional<absl::Duration> timeout = std::nullopt) {
    core::InferRequest request;
    request.model_name = "m";
    request.priority = priority;
    request.timeout = timeout;
    std::vector<float> values(rows * width, value);
    request.inputs["x"] = core::Tensor::Owning(
        core::DataType::kFp32, {rows, width},
        std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
    auto answer = std::make_shared<Answer>();
    batcher_->Enqueue(std::move(request), [this, answer](absl::StatusOr<core::InferResponse> r) {
      {
        absl::MutexLock lock(&order_mu_);
        if (r.ok()) order_.push_back(ValueOf(*r));
      }
      answer->result = std::move(r);
      answer->done.Notify();
    });
    return answer;
  }

  static float ValueOf(const core::InferResponse& response) {
    float value = 0;
    memcpy(&value, response.outputs.at(0).tensor.bytes().data(), sizeof(value));
    return value;
  }

  // Waits for an answer and checks it echoes `value` over `rows` rows.
  static void ExpectEcho(Answer& answer, float value, int64_t rows = 1) {
    ASSERT_TRUE(answer.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    ASSERT_TRUE(answer.result.ok()) << answer.result.status();
    const core::Tensor& y = answer.result->outputs.at(0).tensor;
    EXPECT_EQ(y.shape()[0], rows);
    EXPECT_EQ(ValueOf(*answer.result), value);
  }

  static absl::Status StatusOf(Answer& answer) {
    EXPECT_TRUE(answer.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    return answer.result.status();
  }

  testing::FakeClock clock_;
  metrics::Registry registry_;
  Recorder recorder_;
  absl::Mutex order_mu_;
  std::vector<float> order_;  // values of successful answers, in callback order
  std::unique_ptr<DynamicBatcher> batcher_;
};

TEST_F(DynamicBatcherTest, CombinesWhatIsQueuedAndAnswersEachRequestItsOwn) {
  Start("");
  auto blocker = Send(kBlock);
  recorder_.AwaitBatches(1);  // the only instance is busy; the next requests queue up
  std::vector<std::shared_ptr<Answer>> answers;
  for (int i = 0; i < 5; ++i) answers.push_back(Send(static_cast<float>(i)));
  recorder_.Release();
  ExpectEcho(*blocker, kBlock);
  for (int i = 0; i < 5; ++i) ExpectEcho(*answers[i], static_cast<float>(i));
  EXPECT_THAT(recorder_.Rows(), ElementsAre(1, 5));
  // Two runs recorded, one of 5 rows (le="8" holds both, le="4" only the single row).
  const std::string text = registry_.Render();
  EXPECT_THAT(text, HasSubstr("modeld_batch_size_count{model=\"m\",version=\"1\"} 2"));
  EXPECT_THAT(text, HasSubstr("modeld_batch_size_bucket{model=\"m\",version=\"1\",le=\"4\"} 1"));
  EXPECT_THAT(text, HasSubstr("modeld_queue_duration_seconds_count{model=\"m\",version=\"1\"} 6"));
}

TEST_F(DynamicBatcherTest, NeverExceedsMaxBatchSizeAndNeverSplitsARequest) {
  Start("", 1, /*max_batch_size=*/4);
  auto blocker = Send(kBlock);
  recorder_.AwaitBatches(1);
  auto three = Send(3, 3);
  auto two = Send(2, 2);
  auto one = Send(1, 1);
  auto other = Send(7, 1);
  recorder_.Release();
  ExpectEcho(*three, 3, 3);
  ExpectEcho(*two, 2, 2);
  ExpectEcho(*one, 1, 1);
  ExpectEcho(*other, 7, 1);
  // 3 + 2 would exceed 4, so the 3-row request goes alone and nothing overtakes it.
  EXPECT_THAT(recorder_.Rows(), ElementsAre(1, 3, 4));
}

TEST_F(DynamicBatcherTest, RequestsWithDifferentItemShapesAreNotCombined) {
  Start("");
  auto blocker = Send(kBlock);
  recorder_.AwaitBatches(1);
  auto narrow = Send(1, 1, /*width=*/3);
  auto wide = Send(2, 1, /*width=*/4);
  auto narrow_again = Send(3, 1, /*width=*/4);
  recorder_.Release();
  ExpectEcho(*narrow, 1);
  ExpectEcho(*wide, 2);
  ExpectEcho(*narrow_again, 3);
  EXPECT_THAT(recorder_.Rows(), ElementsAre(1, 1, 2));
}

TEST_F(DynamicBatcherTest, WaitsUpToTheQueueDelayForMoreRequests) {
  Start("max_queue_delay_microseconds: 100000");
  auto first = Send(1);
  auto second = Send(2);
  auto third = Send(3);
  // The fake clock has not moved: the batch is not full, so nothing may have run yet.
  EXPECT_TRUE(recorder_.Rows().empty());
  clock_.Advance(absl::Milliseconds(100));
  ExpectEcho(*first, 1);
  ExpectEcho(*second, 2);
  ExpectEcho(*third, 3);
  EXPECT_THAT(recorder_.Rows(), ElementsAre(3));
}

TEST_F(DynamicBatcherTest, AFullBatchDoesNotWaitForTheDelay) {
  Start("max_queue_delay_microseconds: 100000000", 1, /*max_batch_size=*/2);
  auto first = Send(1);
  auto second = Send(2);
  ExpectEcho(*first, 1);
  ExpectEcho(*second, 2);
  EXPECT_THAT(recorder_.Rows(), ElementsAre(2));
}

TEST_F(DynamicBatcherTest, APreferredSizeRunsAtOnce) {
  Start("preferred_batch_size: [ 2, 4 ] max_queue_delay_microseconds: 100000000");
  auto first = Send(1);
  auto second = Send(2);  // 2 rows: a preferred size, so no waiting for the delay
  ExpectEcho(*first, 1);
  ExpectEcho(*second, 2);
  auto third = Send(3, 3);
  EXPECT_THAT(recorder_.Rows(), ElementsAre(2));  // 3 rows is not preferred: waits
  clock_.Advance(absl::Seconds(100));
  ExpectEcho(*third, 3, 3);
  EXPECT_THAT(recorder_.Rows(), ElementsAre(2, 3));
}

TEST_F(DynamicBatcherTest, AFullQueueRefusesAtOnce) {
  Start("default_queue_policy { max_queue_size: 2 }");
  auto blocker = Send(kBlock);
  recorder_.AwaitBatches(1);
  auto queued_a = Send(1);
  auto queued_b = Send(2);
  auto refused = Send(3);
  ASSERT_TRUE(refused->done.HasBeenNotified());  // answered inside Enqueue, not later
  EXPECT_EQ(refused->result.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused->result.status().message(), HasSubstr("max_queue_size 2"));
  recorder_.Release();
  ExpectEcho(*queued_a, 1);
  ExpectEcho(*queued_b, 2);
}

TEST_F(DynamicBatcherTest, ExpiredRequestsAreAnsweredWithoutRunning) {
  Start("default_queue_policy { default_timeout_microseconds: 1000 allow_timeout_override: true }");
  auto blocker = Send(kBlock);
  recorder_.AwaitBatches(1);
  auto expires = Send(1);
  auto patient = Send(2, 1, 1, 0, absl::Seconds(10));  // overrides the default timeout
  clock_.Advance(absl::Milliseconds(2));
  recorder_.Release();
  absl::Status status = StatusOf(*expires);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(status.message(), HasSubstr("queue of model 'm'"));
  ExpectEcho(*patient, 2);
  EXPECT_THAT(recorder_.Rows(), ElementsAre(1, 1));  // the expired one never ran
}

TEST_F(DynamicBatcherTest, TimeoutOverrideIsIgnoredUnlessAllowed) {
  Start("default_queue_policy { default_timeout_microseconds: 1000 }");
  auto blocker = Send(kBlock);
  recorder_.AwaitBatches(1);
  auto hopeful = Send(1, 1, 1, 0, absl::Seconds(10));
  clock_.Advance(absl::Milliseconds(2));
  recorder_.Release();
  EXPECT_EQ(StatusOf(*hopeful).code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(DynamicBatcherTest, HigherPriorityGoesFirst) {
  Start("priority_levels: 2 default_priority_level: 2", 1, /*max_batch_size=*/1);
  auto blocker = Send(kBlock);
  recorder_.AwaitBatches(1);
  auto low = Send(1);  // default level 2
  auto high = Send(2, 1, 1, /*priority=*/1);
  auto bad = Send(3, 1, 1, /*priority=*/3);
  EXPECT_EQ(StatusOf(*bad).code(), absl::StatusCode::kInvalidArgument);
  recorder_.Release();
  ExpectEcho(*low, 1);
  ExpectEcho(*high, 2);
  absl::MutexLock lock(&order_mu_);
  EXPECT_THAT(order_, ElementsAre(kBlock, 2, 1));
}

TEST_F(DynamicBatcherTest, ABatchThatFailsRunsEachRequestAloneSoOnlyTheBadOneFails) {
  Start("");
  auto blocker = Send(kBlock);
  recorder_.AwaitBatches(1);
  auto a = Send(1);
  auto bad = Send(kPoison);
  auto c = Send(3);
  recorder_.Release();
  ExpectEcho(*a, 1);
  ExpectEcho(*c, 3);
  EXPECT_EQ(StatusOf(*bad).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusOf(*bad).message(), "a poisoned row");
  // The blocker alone, then the three together, then each of them alone.
  EXPECT_THAT(recorder_.Rows(), ElementsAre(1, 3, 1, 1, 1));
}

TEST_F(DynamicBatcherTest, ABrokenModelFailsEveryRequestWithItsError) {
  Start("");
  auto blocker = Send(kBlock);
  recorder_.AwaitBatches(1);
  auto a = Send(1);
  auto b = Send(2);
  {
    absl::MutexLock lock(&recorder_.mu);
    recorder_.fail = true;
  }
  recorder_.Release();
  EXPECT_EQ(StatusOf(*a).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(StatusOf(*b).message(), "the model broke");
}

TEST_F(DynamicBatcherTest, PreserveOrderingHoldsBackAnswersThatFinishEarly) {
  Start("preserve_ordering: true", /*instances=*/2, /*max_batch_size=*/1);
  auto slow = Send(kBlock);
  recorder_.AwaitBatches(1);
  auto fast = Send(2);  // runs on the second instance while the first is blocked
  recorder_.AwaitBatches(2);
  recorder_.Release();
  ExpectEcho(*slow, kBlock);
  ExpectEcho(*fast, 2);
  absl::MutexLock lock(&order_mu_);
  EXPECT_THAT(order_, ElementsAre(kBlock, 2));
}

TEST_F(DynamicBatcherTest, DrainFinishesQueuedRequestsThenRefuses) {
  Start("max_queue_delay_microseconds: 100000000");
  auto queued = Send(1);  // would wait for the delay, but draining flushes it
  batcher_->Drain();
  ExpectEcho(*queued, 1);
  auto late = Send(2);
  EXPECT_EQ(StatusOf(*late).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace modeld::batching
