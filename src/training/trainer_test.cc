#include "training/trainer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "backend/fake/fake_backend.h"
#include "testing/temp_repository.h"
#include "training/checkpoint.h"

namespace modeld::training {
namespace {

using ::testing::HasSubstr;

core::Tensor Floats(std::vector<float> values) {
  const int64_t n = static_cast<int64_t>(values.size());
  return core::Tensor::Owning(
      core::DataType::kFp32, {n, 1},
      std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
}

class TrainerTest : public ::testing::Test {
 protected:
  // A fake model that learns y = weight * x, starting at weight 1.
  std::unique_ptr<Trainer> Start(const std::string& extra_parameters = "") {
    absl::StatusOr<core::ModelConfig> config = core::ParseModelConfig(
        R"pb(
              backend: "fake"
              max_batch_size: 8 input
              [ {
                name: "x"
                data_type: TYPE_FP32
                dims: [ 1 ]
              }] output
              [ {
                name: "y"
                data_type: TYPE_FP32
                dims: [ 1 ]
              }]
              parameters {
                key: "training"
                value { string_value: "true" }
              }
              parameters {
                key: "training_learning_rate"
                value { string_value: "0.1" }
              }
              parameters {
                key: "checkpoint_every_seconds"
                value { string_value: "0" }
              }
        )pb" +
            extra_parameters,
        "m/config.pbtxt", "m");
    EXPECT_TRUE(config.ok()) << config.status();
    config_ = std::make_shared<const core::ModelConfig>(*config);
    absl::StatusOr<core::TrainingOptions> options = core::ParseTrainingOptions(*config_);
    EXPECT_TRUE(options.ok()) << options.status();
    absl::StatusOr<std::unique_ptr<backend::Model>> model = fake_.Load(*config_, repo_.path());
    EXPECT_TRUE(model.ok()) << model.status();
    instance_ = std::make_shared<backend::SharedInstance>(*std::move(model));
    absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Start({
        .config = config_,
        .version = 1,
        .options = *options,
        .checkpoint_dir = repo_.path() / "checkpoints",
        .version_dir = repo_.path() / "m" / "1",
        .publish_dir = repo_.path() / "m",
        .instance = instance_,
        .backend = &fake_,
    });
    start_status_ = trainer.status();
    return trainer.ok() ? *std::move(trainer) : nullptr;
  }

  // Runs one step of x -> 3x and waits for it.
  absl::StatusOr<core::TrainResponse> Step(Trainer& trainer, std::string target = "y") {
    core::TrainRequest request;
    request.model_name = "m";
    request.inputs["x"] = Floats({1, 2});
    request.targets[target] = Floats({3, 6});
    absl::Notification done;
    absl::StatusOr<core::TrainResponse> result;
    trainer.Train(std::move(request), [&](absl::StatusOr<core::TrainResponse> r) {
      result = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  }

  float Predict(float x) {
    core::TensorMap inputs;
    inputs["x"] = Floats({x});
    absl::StatusOr<core::TensorMap> outputs =
        instance_->Call([&](backend::Model& m) { return m.Run(inputs); });
    EXPECT_TRUE(outputs.ok()) << outputs.status();
    float y = 0;
    std::memcpy(&y, outputs->at("y").bytes().data(), sizeof(float));
    return y;
  }

  testing::TempRepository repo_;
  backend::FakeBackend fake_;
  std::shared_ptr<const core::ModelConfig> config_;
  std::shared_ptr<backend::SharedInstance> instance_;
  absl::Status start_status_;
};

TEST_F(TrainerTest, StepsCountUpAndTheWeightConverges) {
  std::unique_ptr<Trainer> trainer = Start();
  ASSERT_NE(trainer, nullptr) << start_status_;
  double first_loss = 0;
  for (int i = 1; i <= 40; ++i) {
    absl::StatusOr<core::TrainResponse> step = Step(*trainer);
    ASSERT_TRUE(step.ok()) << step.status();
    EXPECT_EQ(step->step, i);
    EXPECT_EQ(step->model_name, "m");
    if (i == 1) first_loss = step->loss;
  }
  EXPECT_GT(first_loss, 1.0);
  EXPECT_NEAR(Predict(10), 30, 0.01);
}

TEST_F(TrainerTest, ACheckpointEveryNStepsIsRestoredAtTheNextStart) {
  std::unique_ptr<Trainer> trainer = Start(R"pb(parameters {
                                                  key: "checkpoint_every_steps"
                                                  value { string_value: "5" }
                                                })pb");
  ASSERT_NE(trainer, nullptr) << start_status_;
  absl::StatusOr<core::TrainResponse> step;
  for (int i = 0; i < 7; ++i) step = Step(*trainer);
  ASSERT_TRUE(step.ok());
  EXPECT_EQ(step->checkpoint_step, 5);
  const float trained = Predict(1);
  // A crash (kill -9) leaves the checkpoints as they are now: keep a copy, let the trainer
  // drain (which saves step 7), then put the copy back.
  const std::filesystem::path dir = repo_.path() / "checkpoints";
  const std::filesystem::path crashed = repo_.path() / "crashed";
  std::filesystem::copy(dir, crashed);
  trainer.reset();
  std::filesystem::remove_all(dir);
  std::filesystem::rename(crashed, dir);

  std::unique_ptr<Trainer> restarted = Start(R"pb(parameters {
                                                    key: "checkpoint_every_steps"
                                                    value { string_value: "5" }
                                                  })pb");
  ASSERT_NE(restarted, nullptr) << start_status_;
  EXPECT_EQ(restarted->restored_step(), 5);
  EXPECT_NE(Predict(1), trained);  // steps 6 and 7 are lost
  step = Step(*restarted);
  ASSERT_TRUE(step.ok());
  EXPECT_EQ(step->step, 6);
}

TEST_F(TrainerTest, DrainWritesTheLastCheckpoint) {
  std::unique_ptr<Trainer> trainer = Start();
  ASSERT_NE(trainer, nullptr) << start_status_;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Step(*trainer).ok());
  trainer->Drain();
  std::optional<FoundCheckpoint> found =
      NewestValidCheckpoint(repo_.path() / "checkpoints", nullptr);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->checkpoint.step, 3);
  // After draining, steps are refused.
  absl::StatusOr<core::TrainResponse> late = Step(*trainer);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(TrainerTest, ACorruptNewestCheckpointIsSkipped) {
  std::unique_ptr<Trainer> trainer = Start(R"pb(parameters {
                                                  key: "checkpoint_every_steps"
                                                  value { string_value: "2" }
                                                })pb");
  ASSERT_NE(trainer, nullptr) << start_status_;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Step(*trainer).ok());
  trainer.reset();  // drains; step 4 is the newest checkpoint
  const std::filesystem::path newest = repo_.path() / "checkpoints" / CheckpointFileName(4);
  ASSERT_TRUE(std::filesystem::exists(newest));
  {
    // Flips a byte (inside the header's time): setting one could leave it as it was.
    std::fstream file(newest, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(30);
    const char byte = static_cast<char>(file.get());
    file.seekp(30);
    file.put(static_cast<char>(byte ^ 0x40));
  }
  std::unique_ptr<Trainer> restarted = Start(R"pb(parameters {
                                                    key: "checkpoint_every_steps"
                                                    value { string_value: "2" }
                                                  })pb");
  ASSERT_NE(restarted, nullptr) << start_status_;
  EXPECT_EQ(restarted->restored_step(), 2);
}

TEST_F(TrainerTest, ACheckpointThatDoesNotFitFailsTheStart) {
  Checkpoint alien{9, 1, absl::Now(), {{"something", "else"}}};
  ASSERT_TRUE(WriteCheckpoint(repo_.path() / "checkpoints", alien).ok());
  EXPECT_EQ(Start(), nullptr);
  EXPECT_EQ(start_status_.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(start_status_.message(), HasSubstr("does not fit the model"));
}

TEST_F(TrainerTest, PublishingWritesANewVersionFolder) {
  repo_.AddModel("m", "", {1, 2});
  std::unique_ptr<Trainer> trainer = Start(R"pb(parameters {
                                                  key: "checkpoint_every_steps"
                                                  value { string_value: "30" }
                                                }
                                                parameters {
                                                  key: "publish_versions"
                                                  value { string_value: "true" }
                                                })pb");
  ASSERT_NE(trainer, nullptr) << start_status_;
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(Step(*trainer).ok());
  std::ifstream weight(repo_.path() / "m" / "3" / "weight");
  float published = 0;
  ASSERT_TRUE(weight >> published);
  EXPECT_NEAR(published, 3, 0.01);
  for (const auto& entry : std::filesystem::directory_iterator(repo_.path() / "m")) {
    EXPECT_THAT(entry.path().filename().string(), ::testing::Not(HasSubstr("publishing")));
  }
}

TEST_F(TrainerTest, AStepThatDamagesTheWeightsStopsTrainingAndCheckpoints) {
  std::unique_ptr<Trainer> trainer = Start(R"pb(parameters {
                                                  key: "checkpoint_every_steps"
                                                  value { string_value: "2" }
                                                })pb");
  ASSERT_NE(trainer, nullptr) << start_status_;
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(Step(*trainer).ok());
  core::TrainRequest request;
  request.model_name = "m";
  request.inputs["x"] = Floats({1});
  request.targets["y"] = Floats({std::nanf("")});
  absl::Notification done;
  absl::Status damaged;
  trainer->Train(std::move(request), [&](absl::StatusOr<core::TrainResponse> r) {
    damaged = r.status();
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_EQ(damaged.code(), absl::StatusCode::kDataLoss);
  absl::StatusOr<core::TrainResponse> after = Step(*trainer);
  EXPECT_EQ(after.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(after.status().message(), HasSubstr("goes back to checkpoint step 2"));
  trainer->Drain();  // writes nothing: step 2 stays the newest checkpoint
  std::optional<FoundCheckpoint> found =
      NewestValidCheckpoint(repo_.path() / "checkpoints", nullptr);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->checkpoint.step, 2);
}

TEST_F(TrainerTest, AnUnknownTargetFailsThatStepAlone) {
  std::unique_ptr<Trainer> trainer = Start();
  ASSERT_NE(trainer, nullptr) << start_status_;
  absl::StatusOr<core::TrainResponse> bad = Step(*trainer, "z");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<core::TrainResponse> good = Step(*trainer);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->step, 1);
}

}  // namespace
}  // namespace modeld::training
