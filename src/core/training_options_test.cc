#include "core/training_options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace modeld::core {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<TrainingOptions> Parse(const std::string& extra) {
  const std::string text = absl::StrCat(R"pb(
                                          platform: "pytorch_libtorch"
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
                                        )pb",
                                        extra);
  absl::StatusOr<ModelConfig> config = ParseModelConfig(text, "m/config.pbtxt", "m");
  if (!config.ok()) return config.status();
  return ParseTrainingOptions(*config);
}

std::string Param(const std::string& key, const std::string& value) {
  return absl::StrCat("parameters { key: \"", key, "\" value { string_value: \"", value,
                      "\" } }\n");
}

TEST(TrainingOptionsTest, OffWithoutTheParameter) {
  absl::StatusOr<TrainingOptions> options = Parse("");
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_FALSE(options->enabled);
  EXPECT_EQ(options->optimizer, "sgd");
  EXPECT_EQ(options->checkpoint_every_steps, 100);
}

TEST(TrainingOptionsTest, ReadsEveryParameter) {
  absl::StatusOr<TrainingOptions> options =
      Parse(Param("training", "true") + Param("training_optimizer", "adam") +
            Param("training_learning_rate", "0.5") + Param("training_loss", "cross_entropy") +
            Param("checkpoint_every_steps", "7") + Param("checkpoint_every_seconds", "0") +
            Param("checkpoints_kept", "2") + Param("checkpoint_dir", "/ck") +
            Param("publish_versions", "true") + Param("training_signature", "step"));
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(options->enabled);
  EXPECT_EQ(options->optimizer, "adam");
  EXPECT_DOUBLE_EQ(options->learning_rate, 0.5);
  EXPECT_EQ(options->loss, "cross_entropy");
  EXPECT_EQ(options->checkpoint_every_steps, 7);
  EXPECT_EQ(options->checkpoint_every, absl::ZeroDuration());
  EXPECT_EQ(options->checkpoints_kept, 2);
  EXPECT_EQ(options->checkpoint_dir, "/ck");
  EXPECT_TRUE(options->publish_versions);
  EXPECT_EQ(options->signature, "step");
}

TEST(TrainingOptionsTest, BadValuesAreNamed) {
  EXPECT_THAT(Parse(Param("training", "yes")).status().message(),
              HasSubstr("parameter training is 'yes'; it must be true or false"));
  EXPECT_THAT(Parse(Param("training_optimizer", "lbfgs")).status().message(),
              HasSubstr("training_optimizer is 'lbfgs'; it must be one of: sgd, adam"));
  EXPECT_THAT(Parse(Param("training_learning_rate", "-1")).status().message(),
              HasSubstr("training_learning_rate"));
  EXPECT_THAT(Parse(Param("checkpoint_every_steps", "x")).status().message(),
              HasSubstr("checkpoint_every_steps"));
  EXPECT_THAT(Parse(Param("checkpoints_kept", "0")).status().message(),
              HasSubstr("checkpoints_kept"));
}

TEST(TrainingOptionsTest, TrainingNeedsOneInstance) {
  absl::StatusOr<TrainingOptions> options =
      Parse(Param("training", "true") + "instance_group [ { count: 2 kind: KIND_CPU } ]\n");
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(options.status().message(), HasSubstr("needs exactly one"));
}

}  // namespace
}  // namespace modeld::core
