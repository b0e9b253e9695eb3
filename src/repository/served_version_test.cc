#include "repository/served_version.h"

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "backend/fake/fake_backend.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "core/model_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/fake_model_config.h"
#include "testing/temp_repository.h"

namespace modeld::repository {
namespace {

using ::modeld::testing::FakeModelConfig;
using ::testing::HasSubstr;

// A backend whose models notify `destroyed` when the last of them is freed.
class CountingBackend : public backend::Backend {
 public:
  class CountedModel : public backend::Model {
   public:
    CountedModel(std::unique_ptr<backend::Model> model, CountingBackend& owner)
        : model_(std::move(model)), owner_(owner) {}
    ~CountedModel() override {
      model_.reset();
      if (--owner_.live_ == 0) owner_.destroyed_.Notify();
    }
    absl::StatusOr<core::TensorMap> Run(const core::TensorMap& inputs) override {
      return model_->Run(inputs);
    }

   private:
    std::unique_ptr<backend::Model> model_;
    CountingBackend& owner_;
  };

  absl::StatusOr<std::unique_ptr<backend::Model>> Load(
      const core::ModelConfig& config, const std::filesystem::path& version_dir) override {
    ASSIGN_OR_RETURN(std::unique_ptr<backend::Model> model, fake_.Load(config, version_dir));
    ++live_;
    return std::make_unique<CountedModel>(std::move(model), *this);
  }

  std::atomic<int> live_{0};
  absl::Notification destroyed_;

 private:
  backend::FakeBackend fake_;
};

class ServedVersionTest : public ::testing::Test {
 protected:
  // Writes model `name` with `config_text` and version 1, and loads that version through
  // `backend`.
  absl::StatusOr<ModelHandle> Load(const std::string& name, const std::string& config_text,
                                   backend::Backend& backend) {
    repo_.AddModel(name, config_text);
    const std::filesystem::path model_dir = repo_.path() / name;
    ASSIGN_OR_RETURN(core::ModelConfig config, core::LoadModelConfig(model_dir));
    return LoadServedVersion(
        {std::make_shared<const core::ModelConfig>(std::move(config)), &backend, model_dir, 1},
        {batching::MakeSchedulerFactory(clock_), &registry_, {}});
  }

  testing::TempRepository repo_;
  common::RealClock clock_;
  metrics::Registry registry_;
  backend::FakeBackend fake_;
};

TEST_F(ServedVersionTest, LoadsEveryInstanceBehindOneScheduler) {
  absl::StatusOr<ModelHandle> handle =
      Load("m", FakeModelConfig("instance_group { count: 2 }"), fake_);
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_EQ((*handle)->config().name, "m");
  EXPECT_EQ((*handle)->config().instance_count, 2);
  EXPECT_EQ((*handle)->version(), 1);
  EXPECT_EQ((*handle)->trainer(), nullptr);
  EXPECT_EQ((*handle)->OldestRunStart(), absl::InfiniteFuture());
  EXPECT_FALSE((*handle)->Stuck(absl::Now(), absl::Seconds(1)));
}

TEST_F(ServedVersionTest, AMissingVersionFolderIsNotFound) {
  repo_.AddModel("m", FakeModelConfig());
  const std::filesystem::path model_dir = repo_.path() / "m";
  absl::StatusOr<core::ModelConfig> config = core::LoadModelConfig(model_dir);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<ModelHandle> handle = LoadServedVersion(
      {std::make_shared<const core::ModelConfig>(*std::move(config)), &fake_, model_dir, 7},
      {batching::MakeSchedulerFactory(clock_), nullptr, {}});
  EXPECT_EQ(handle.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(handle.status().message(), HasSubstr("7 does not exist"));
}

// A version whose last handle is held by a request's callback is destroyed when that callback
// goes, on the scheduler's own worker thread; the scheduler must not be destroyed under the
// worker still running its loop (make test-asan found a heap-use-after-free).
TEST_F(ServedVersionTest, ALastHandleReleasedOnItsOwnWorkerThreadIsSafe) {
  for (const char* batching : {"dynamic_batching {}", ""}) {
    SCOPED_TRACE(batching);
    CountingBackend counting;
    absl::StatusOr<ModelHandle> loaded =
        Load(absl::StrCat("m", batching[0] == '\0' ? "direct" : "batched"),
             FakeModelConfig(batching), counting);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ModelHandle handle = *std::move(loaded);  // the only handle

    core::InferRequest request;
    request.model_name = handle->config().name;
    request.inputs["x"] = core::Tensor::Owning(core::DataType::kFp32, {1, 2}, std::string(8, '\0'));
    absl::Notification answered;
    batching::Scheduler& scheduler = handle->scheduler();
    scheduler.Enqueue(std::move(request),
                      [handle = std::move(handle),
                       &answered](absl::StatusOr<core::InferResponse> response) mutable {
                        EXPECT_TRUE(response.ok()) << response.status();
                        answered.Notify();
                      });
    ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
    // The callback (and the handle) go after it returns; the instances are freed once the
    // worker is back in its loop and has been joined.
    EXPECT_TRUE(counting.destroyed_.WaitForNotificationWithTimeout(absl::Seconds(10)));
  }
}

TEST_F(ServedVersionTest, WarmupRunsBeforeAVersionIsReturnedAndAFailingOneFailsTheLoad) {
  const std::string warmup = R"pb(
    model_warmup {
      name: "zeros"
      batch_size: 4
      inputs {
        key: "x"
        value {
          data_type: TYPE_FP32
          dims: [ 2 ]
          zero_data: true
        }
      }
      count: 3
    }
    model_warmup {
      name: "random"
      batch_size: 1
      inputs {
        key: "x"
        value {
          data_type: TYPE_FP32
          dims: [ 2 ]
          random_data: true
        }
      }
    }
  )pb";
  ASSERT_TRUE(Load("warm", FakeModelConfig(warmup), fake_).ok());
  // 3 + 1 warm-up runs went through the version before it was returned.
  EXPECT_THAT(registry_.Render(),
              HasSubstr("modeld_batch_size_count{model=\"warm\",version=\"1\"} 4"));
  absl::Status cold =
      Load("cold",
           FakeModelConfig(absl::StrCat(warmup,
                                        "parameters { key: \"behavior\" value { string_value: "
                                        "\"fail\" } }")),
           fake_)
          .status();
  EXPECT_FALSE(cold.ok());
  EXPECT_THAT(cold.message(), HasSubstr("warm-up 'zeros' failed: fake model failure"));
}

}  // namespace
}  // namespace modeld::repository
