#include "batching/direct_scheduler.h"

#include <atomic>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "backend/fake/fake_backend.h"
#include "gtest/gtest.h"

namespace modeld::batching {
namespace {

std::shared_ptr<const core::ModelConfig> Config(absl::string_view extra = "") {
  absl::StatusOr<core::ModelConfig> config =
      core::ParseModelConfig(absl::StrCat(R"pb(
                                            backend: "fake"
                                            max_batch_size: 4
                                            input {
                                              name: "x"
                                              data_type: TYPE_INT32
                                              dims: [ 1 ]
                                            }
                                            output {
                                              name: "y"
                                              data_type: TYPE_INT32
                                              dims: [ 1 ]
                                            }
                                          )pb",
                                          extra),
                             "test", "m");
  EXPECT_TRUE(config.ok()) << config.status();
  return std::make_shared<const core::ModelConfig>(*config);
}

// A Model that records the largest number of concurrent Run() calls it saw.
class CountingModel : public backend::Model {
 public:
  explicit CountingModel(std::atomic<int>* max_concurrent) : max_concurrent_(max_concurrent) {}
  absl::StatusOr<core::TensorMap> Run(const core::TensorMap& inputs) override {
    const int now = ++running_;
    int seen = max_concurrent_->load();
    while (now > seen && !max_concurrent_->compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    --running_;
    return core::TensorMap{{"y", inputs.at("x")}};
  }

 private:
  std::atomic<int>* max_concurrent_;
  std::atomic<int> running_{0};
};

std::shared_ptr<const metrics::VersionMetrics> NoMetrics() {
  return std::make_shared<const metrics::VersionMetrics>();
}

class DirectSchedulerTest : public ::testing::Test {
 protected:
  common::RealClock clock_;
};

core::InferRequest Request(int32_t value) {
  core::InferRequest request;
  request.model_name = "m";
  request.id = absl::StrCat("request-", value);
  request.inputs["x"] = core::Tensor::Owning(core::DataType::kInt32, {1, 1},
                                             std::string(reinterpret_cast<const char*>(&value), 4));
  return request;
}

int32_t ValueOf(const core::Tensor& tensor) {
  int32_t value = 0;
  memcpy(&value, tensor.bytes().data(), 4);
  return value;
}

TEST_F(DirectSchedulerTest, EveryRequestGetsItsOwnAnswer) {
  std::atomic<int> max_concurrent{0};
  std::vector<std::unique_ptr<backend::Model>> instances;
  instances.push_back(std::make_unique<CountingModel>(&max_concurrent));
  DirectScheduler scheduler(Config(), 3, std::move(instances), clock_, NoMetrics());

  constexpr int kRequests = 50;
  std::vector<absl::StatusOr<core::InferResponse>> results(kRequests, absl::UnknownError(""));
  std::atomic<int> answered{0};
  for (int i = 0; i < kRequests; ++i) {
    scheduler.Enqueue(Request(i), [&, i](absl::StatusOr<core::InferResponse> response) {
      results[i] = std::move(response);
      ++answered;
    });
  }
  scheduler.Drain();  // finishes everything queued
  ASSERT_EQ(answered.load(), kRequests);
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    EXPECT_EQ(results[i]->id, absl::StrCat("request-", i));
    EXPECT_EQ(results[i]->model_version, 3);
    ASSERT_EQ(results[i]->outputs.size(), 1u);
    EXPECT_EQ(results[i]->outputs[0].name, "y");
    EXPECT_EQ(ValueOf(results[i]->outputs[0].tensor), i);
  }
  EXPECT_EQ(max_concurrent.load(), 1);  // one instance: never run concurrently
}

TEST_F(DirectSchedulerTest, InstancesRunInParallelButEachAlone) {
  std::atomic<int> per_model_max{0};
  std::vector<std::unique_ptr<backend::Model>> instances;
  for (int i = 0; i < 3; ++i) instances.push_back(std::make_unique<CountingModel>(&per_model_max));
  DirectScheduler scheduler(Config(), 1, std::move(instances), clock_, NoMetrics());
  std::atomic<int> ok{0};
  for (int i = 0; i < 60; ++i) {
    scheduler.Enqueue(Request(i), [&](absl::StatusOr<core::InferResponse> response) {
      if (response.ok()) ++ok;
    });
  }
  scheduler.Drain();
  EXPECT_EQ(ok.load(), 60);
  EXPECT_EQ(per_model_max.load(), 1);  // each Model saw one Run at a time
}

TEST_F(DirectSchedulerTest, BackendErrorsReachTheirRequest) {
  backend::FakeBackend backend;
  auto config = Config("parameters { key: \"behavior\" value { string_value: \"fail\" } }");
  auto model = backend.Load(*config, "/unused");
  ASSERT_TRUE(model.ok());
  std::vector<std::unique_ptr<backend::Model>> instances;
  instances.push_back(*std::move(model));
  DirectScheduler scheduler(config, 1, std::move(instances), clock_, NoMetrics());
  absl::Notification done;
  absl::Status status;
  scheduler.Enqueue(Request(1), [&](absl::StatusOr<core::InferResponse> response) {
    status = response.status();
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(status.message(), "fake model failure");
}

TEST_F(DirectSchedulerTest, AfterDrainRequestsAreRefused) {
  std::atomic<int> max_concurrent{0};
  std::vector<std::unique_ptr<backend::Model>> instances;
  instances.push_back(std::make_unique<CountingModel>(&max_concurrent));
  DirectScheduler scheduler(Config(), 1, std::move(instances), clock_, NoMetrics());
  scheduler.Drain();
  scheduler.Drain();  // idempotent
  absl::Status status;
  scheduler.Enqueue(Request(1), [&](absl::StatusOr<core::InferResponse> response) {
    status = response.status();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("shutting down"), absl::string_view::npos);
}

TEST_F(DirectSchedulerTest, ExpiredRequestsAreAnsweredWithoutRunning) {
  std::atomic<int> max_concurrent{0};
  std::vector<std::unique_ptr<backend::Model>> instances;
  instances.push_back(std::make_unique<CountingModel>(&max_concurrent));
  DirectScheduler scheduler(Config(), 1, std::move(instances), clock_, NoMetrics());
  core::InferRequest late = Request(1);
  late.deadline = clock_.Now() - absl::Seconds(1);
  absl::Notification done;
  absl::Status status;
  scheduler.Enqueue(std::move(late), [&](absl::StatusOr<core::InferResponse> response) {
    status = response.status();
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(max_concurrent.load(), 0);  // never ran
}

}  // namespace
}  // namespace modeld::batching
