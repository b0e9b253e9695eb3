#include "service/inference_service.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "backend/fake/fake_backend.h"
#include "backend/registry.h"
#include "batching/scheduler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/model_manager.h"
#include "service/model_control.h"
#include "testing/fake_model_config.h"
#include "testing/temp_repository.h"

namespace modeld::service {
namespace {

using ::modeld::testing::FakeModelConfig;
using ::testing::HasSubstr;

class InferenceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backends_.Register("fake", {}, std::make_unique<backend::FakeBackend>());
    repo_.AddModel("echo", R"pb(
                     backend: "fake"
                     max_batch_size: 4
                     version_policy { all {} }
                     input {
                       name: "x"
                       data_type: TYPE_FP32
                       dims: [ 2 ]
                     }
                     output {
                       name: "y"
                       data_type: TYPE_FP32
                       dims: [ 2 ]
                     }
                   )pb",
                   {1, 2});
    repo_.AddModel("broken", "platform: \"nope\"\n");
    manager_ = std::make_unique<repository::ModelManager>(
        repo_.path(), backends_, batching::MakeSchedulerFactory(clock_), &registry_);
    ASSERT_TRUE(manager_->LoadAll().ok());
    service_ = std::make_unique<InferenceService>(*manager_, clock_, &registry_);
  }

  // The schedulers' worker threads call back into the service after a caller has its answer
  // (the service counts the request finished last): join them before the service is
  // destroyed, as Server::Shutdown does. Found by make test-asan (heap-use-after-free).
  void TearDown() override { manager_->DrainAll(); }

  absl::StatusOr<core::InferResponse> Infer(core::InferRequest request) {
    absl::Notification done;
    absl::StatusOr<core::InferResponse> result = absl::UnknownError("no answer");
    service_->Infer(std::move(request), [&](absl::StatusOr<core::InferResponse> response) {
      result = std::move(response);
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    return result;
  }

  static core::InferRequest Echo(int64_t batch) {
    core::InferRequest request;
    request.model_name = "echo";
    request.inputs["x"] =
        core::Tensor::Owning(core::DataType::kFp32, {batch, 2}, std::string(batch * 8, '\x3f'));
    return request;
  }

  testing::TempRepository repo_;
  common::RealClock clock_;
  metrics::Registry registry_;
  backend::BackendRegistry backends_;
  std::unique_ptr<repository::ModelManager> manager_;
  std::unique_ptr<InferenceService> service_;
};

TEST_F(InferenceServiceTest, RunsTheNewestVersion) {
  absl::StatusOr<core::InferResponse> response = Infer(Echo(3));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->model_name, "echo");
  EXPECT_EQ(response->model_version, 2);
  ASSERT_EQ(response->outputs.size(), 1u);
  EXPECT_EQ(response->outputs[0].tensor.bytes(), std::string(24, '\x3f'));
}

TEST_F(InferenceServiceTest, ValidatesBeforeQueueing) {
  absl::StatusOr<core::InferResponse> response = Infer(Echo(5));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(response.status().message(), HasSubstr("max_batch_size 4"));
}

TEST_F(InferenceServiceTest, LookupErrors) {
  core::InferRequest unknown = Echo(1);
  unknown.model_name = "missing";
  EXPECT_EQ(Infer(unknown).status().code(), absl::StatusCode::kNotFound);
  core::InferRequest broken = Echo(1);
  broken.model_name = "broken";
  EXPECT_EQ(Infer(broken).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(InferenceServiceTest, ReadinessAndMetadata) {
  EXPECT_TRUE(service_->Live());
  EXPECT_TRUE(service_->Ready());
  EXPECT_TRUE(service_->ModelReady("echo", std::nullopt));
  EXPECT_TRUE(service_->ModelReady("echo", 1));
  EXPECT_FALSE(service_->ModelReady("echo", 7));
  EXPECT_FALSE(service_->ModelReady("broken", std::nullopt));
  EXPECT_FALSE(service_->ModelReady("missing", std::nullopt));

  absl::StatusOr<ModelMetadata> metadata = service_->Metadata("echo", std::nullopt);
  ASSERT_TRUE(metadata.ok());
  EXPECT_EQ(metadata->platform, "fake");
  EXPECT_EQ(metadata->versions, (std::vector<int64_t>{1, 2}));
  ASSERT_EQ(metadata->inputs.size(), 1u);
  EXPECT_EQ(metadata->inputs[0].shape, (core::Shape{-1, 2}));
  absl::StatusOr<std::shared_ptr<const core::ModelConfig>> config =
      service_->Config("echo", std::nullopt);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ((*config)->proto.max_batch_size(), 4);
}

TEST_F(InferenceServiceTest, WaitUntilIdleWaitsForAcceptedRequests) {
  EXPECT_TRUE(service_->WaitUntilIdle(absl::ZeroDuration()));
  absl::Notification answered;
  service_->Infer(Echo(1), [&](absl::StatusOr<core::InferResponse>) { answered.Notify(); });
  EXPECT_TRUE(service_->WaitUntilIdle(absl::Seconds(10)));
  EXPECT_TRUE(answered.HasBeenNotified());
}

TEST_F(InferenceServiceTest, RecordsMetricsPerVersionAndOutcome) {
  ASSERT_TRUE(Infer(Echo(3)).ok());
  EXPECT_FALSE(Infer(Echo(5)).ok());  // over max_batch_size
  core::InferRequest unknown = Echo(1);
  unknown.model_name = "missing";
  EXPECT_FALSE(Infer(unknown).ok());
  const std::string text = registry_.Render();
  EXPECT_THAT(text,
              HasSubstr("modeld_requests_total{model=\"echo\",version=\"2\",outcome=\"ok\"} 1"));
  EXPECT_THAT(text, HasSubstr("modeld_requests_total{model=\"echo\",version=\"2\",outcome="
                              "\"invalid_argument\"} 1"));
  EXPECT_THAT(text, HasSubstr("modeld_requests_total{model=\"\",version=\"\",outcome="
                              "\"not_found\"} 1"));
  EXPECT_THAT(text, HasSubstr("modeld_batch_size_bucket{model=\"echo\",version=\"2\",le=\"4\"} 1"));
  EXPECT_THAT(text, HasSubstr("modeld_inflight_requests{model=\"echo\",version=\"2\"} 0"));
}

TEST_F(InferenceServiceTest, ReadinessConditionsMustAllHold) {
  std::atomic<bool> linked{false};
  service_->AddReadinessCondition([&] { return linked.load(); });
  service_->AddReadinessCondition([] { return true; });
  EXPECT_FALSE(service_->Ready());
  linked = true;
  EXPECT_TRUE(service_->Ready());
  service_->StartDraining();
  EXPECT_FALSE(service_->Ready());
}

TEST(InferenceServiceEmptyRepositoryTest, NotReadyUntilTheRepositoryHoldsAModel) {
  testing::TempRepository repo;
  common::RealClock clock;
  metrics::Registry registry;
  backend::BackendRegistry backends;
  backends.Register("fake", {"fake_platform"}, std::make_unique<backend::FakeBackend>());
  repository::ModelManager manager(repo.path(), backends, batching::MakeSchedulerFactory(clock),
                                   &registry);
  ASSERT_TRUE(manager.LoadAll().ok());
  InferenceService service(manager, clock, &registry);
  EXPECT_TRUE(manager.RepositoryEmpty());
  EXPECT_TRUE(service.Live());
  EXPECT_FALSE(service.Ready());
  // A model deployed into it later (poll mode's rescan) makes the server ready.
  repo.AddModel("m", FakeModelConfig());
  manager.Rescan();
  EXPECT_FALSE(manager.RepositoryEmpty());
  EXPECT_TRUE(service.Ready());
  manager.DrainAll();
}

TEST_F(InferenceServiceTest, DrainingRefusesNewWork) {
  service_->StartDraining();
  EXPECT_FALSE(service_->Ready());
  absl::Status status = Infer(Echo(1)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("shutting down"));
}

// Server::Shutdown stops model control before the transports close: a repository call that
// arrives in between is answered at once, and the object is still there to answer it.
TEST_F(InferenceServiceTest, StoppedModelControlAnswersUnavailableAtOnce) {
  ModelControl control(*manager_, ControlMode::kExplicit, absl::Seconds(60));
  service_->SetModelControl(&control);
  control.Start();
  absl::Notification reloaded;
  absl::Status reload = absl::UnknownError("not answered");
  service_->LoadModel("echo", {}, [&](absl::Status status) {
    reload = status;
    reloaded.Notify();
  });
  ASSERT_TRUE(reloaded.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(reload.ok()) << reload;

  control.Stop();
  absl::Status after_stop = absl::UnknownError("not answered");
  service_->UnloadModel("echo", {}, [&](absl::Status status) { after_stop = status; });
  EXPECT_EQ(after_stop.code(), absl::StatusCode::kUnavailable) << after_stop;
  EXPECT_THAT(after_stop.message(), HasSubstr("shutting down"));
  EXPECT_TRUE(service_->RepositoryIndex(/*ready_only=*/false).ok());
  EXPECT_TRUE(service_->ModelReady("echo", std::nullopt));
  control.Stop();  // a second stop changes nothing
}

TEST(ControlParametersTest, OnlyUnloadDependentsIsTaken) {
  EXPECT_TRUE(InferenceService::CheckControlParameters({}).ok());
  EXPECT_TRUE(InferenceService::CheckControlParameters({"unload_dependents"}).ok());
  const absl::Status config =
      InferenceService::CheckControlParameters({"unload_dependents", "config"});
  EXPECT_EQ(config.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.message(), HasSubstr("\"parameters\" holds 'config', which is not supported"));
}

}  // namespace
}  // namespace modeld::service

namespace modeld::service {
namespace {

// A fake model that learns y = weight * x (backend/fake), beside one that does not train.
class TrainServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backends_.Register("fake", {}, std::make_unique<backend::FakeBackend>());
    constexpr char kModel[] = R"pb(
      backend: "fake"
      max_batch_size: 4
      input {
        name: "x"
        data_type: TYPE_FP32
        dims: [ 1 ]
      }
      output {
        name: "y"
        data_type: TYPE_FP32
        dims: [ 1 ]
      }
    )pb";
    repo_.AddModel("learner", absl::StrCat(kModel, R"pb(
                     parameters {
                       key: "training"
                       value { string_value: "true" }
                     }
                     parameters {
                       key: "training_learning_rate"
                       value { string_value: "0.1" }
                     }
                   )pb"));
    repo_.AddModel("fixed", kModel);
    manager_ = std::make_unique<repository::ModelManager>(
        repo_.path(), backends_, batching::MakeSchedulerFactory(clock_), &registry_);
    ASSERT_TRUE(manager_->LoadAll().ok());
    service_ = std::make_unique<InferenceService>(*manager_, clock_, &registry_);
  }

  // A trainer's thread counts a step finished in the service after the caller has its answer:
  // join it before the service is destroyed (found by make test-tsan).
  void TearDown() override { manager_->DrainAll(); }

  absl::StatusOr<core::TrainResponse> Train(std::string model, std::string target = "y") {
    core::TrainRequest request;
    request.model_name = std::move(model);
    const float x[] = {1, 2};
    const float y[] = {3, 6};
    request.inputs["x"] = core::Tensor::Owning(core::DataType::kFp32, {2, 1},
                                               std::string(reinterpret_cast<const char*>(x), 8));
    request.targets[target] = core::Tensor::Owning(
        core::DataType::kFp32, {2, 1}, std::string(reinterpret_cast<const char*>(y), 8));
    absl::Notification done;
    absl::StatusOr<core::TrainResponse> result = absl::UnknownError("no answer");
    service_->Train(std::move(request), [&](absl::StatusOr<core::TrainResponse> response) {
      result = std::move(response);
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    return result;
  }

  testing::TempRepository repo_;
  common::RealClock clock_;
  metrics::Registry registry_;
  backend::BackendRegistry backends_;
  std::unique_ptr<repository::ModelManager> manager_;
  std::unique_ptr<InferenceService> service_;
};

TEST_F(TrainServiceTest, StepsANumberedStepAndCountsIt) {
  for (int step = 1; step <= 3; ++step) {
    absl::StatusOr<core::TrainResponse> response = Train("learner");
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->step, step);
    EXPECT_EQ(response->model_version, 1);
  }
  EXPECT_THAT(registry_.Render(),
              HasSubstr("modeld_training_steps_total{model=\"learner\",version=\"1\"} 3"));
  EXPECT_TRUE(service_->WaitUntilIdle(absl::Seconds(1)));
}

TEST_F(TrainServiceTest, RefusesWhatCannotBeAStep) {
  EXPECT_EQ(Train("nope").status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<core::TrainResponse> fixed = Train("fixed");
  EXPECT_EQ(fixed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(fixed.status().message(), HasSubstr("model 'fixed' is not trainable"));
  EXPECT_EQ(Train("learner", "z").status().code(), absl::StatusCode::kInvalidArgument);
  service_->StartDraining();
  EXPECT_EQ(Train("learner").status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(TrainServiceTest, DrainingWritesTheLastCheckpoint) {
  ASSERT_TRUE(Train("learner").ok());
  manager_->DrainAll();
  EXPECT_TRUE(std::filesystem::exists(repo_.path() / "learner" / "checkpoints" /
                                      "step-00000000000000000001.ckpt"));
}

}  // namespace
}  // namespace modeld::service
