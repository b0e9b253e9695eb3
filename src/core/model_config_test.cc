#include "core/model_config.h"

#include "core/model_version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::core {
namespace {

using ::testing::HasSubstr;

constexpr char kMlp[] = R"pb(
  platform: "pytorch_libtorch"
  max_batch_size: 64 input
  [ {
    name: "x"
    data_type: TYPE_FP32
    dims: [ 256 ]
  }] output
  [ {
    name: "logits"
    data_type: TYPE_FP32
    dims: [ 10 ]
  }] instance_group
  [ { count: 2 kind: KIND_CPU }]
  parameters {
    key: "intra_op_thread_count"
    value { string_value: "1" }
  }
)pb";

absl::Status ErrorOf(absl::string_view text) {
  return ParseModelConfig(text, "m/config.pbtxt", "m").status();
}

TEST(ModelConfigTest, ParsesTritonConfig) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig(kMlp, "mlp/config.pbtxt", "mlp");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name, "mlp");
  EXPECT_EQ(config->proto.name(), "mlp");
  EXPECT_EQ(config->platform, "pytorch_libtorch");
  EXPECT_EQ(config->max_batch_size, 64);
  ASSERT_EQ(config->inputs.size(), 1u);
  EXPECT_EQ(config->inputs[0].type, DataType::kFp32);
  EXPECT_EQ(config->FullShape(config->inputs[0]), (Shape{-1, 256}));
  EXPECT_EQ(config->instance_count, 2);
  EXPECT_EQ(config->Parameter("intra_op_thread_count"), "1");
  EXPECT_EQ(config->Parameter("absent"), std::nullopt);
  EXPECT_NE(config->FindOutput("logits"), nullptr);
  EXPECT_EQ(config->FindInput("logits"), nullptr);
}

TEST(ModelConfigTest, WithoutBatchingTheShapeIsTheDims) {
  absl::StatusOr<ModelConfig> config =
      ParseModelConfig(R"pb(
                         backend: "pytorch"
                         input { name: "a" data_type: TYPE_INT64 dims: 4 dims: -1 }
                         output {
                           name: "b"
                           data_type: TYPE_BOOL
                           dims: [ 1 ]
                           reshape { shape: [] }
                         }
                       )pb",
                       "s", "m");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->FullShape(config->inputs[0]), (Shape{4, -1}));
  EXPECT_EQ(config->outputs[0].reshape, Shape{});
  EXPECT_EQ(config->instance_count, 1);
}

TEST(ModelConfigTest, InstanceGroupsPlaceInstancesOnTheCpuOrOnEachListedGpu) {
  const std::string io =
      "platform: \"pytorch_libtorch\"\n"
      "input { name: \"x\" data_type: TYPE_FP32 dims: [1] }\n"
      "output { name: \"y\" data_type: TYPE_FP32 dims: [1] }\n";
  absl::StatusOr<ModelConfig> config =
      ParseModelConfig(io + "instance_group [ { count: 2 kind: KIND_CPU }, { count: 2 kind: "
                            "KIND_GPU gpus: [1, 0] } ]",
                       "s", "m");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->instance_devices, (std::vector<int>{-1, -1, 1, 1, 0, 0}));
  EXPECT_EQ(config->instance_count, 6);

  config = ParseModelConfig(io + "instance_group { kind: KIND_GPU }", "s", "m");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->instance_devices, (std::vector<int>{0}));

  config = ParseModelConfig(io, "s", "m");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->instance_devices, (std::vector<int>{ModelConfig::kCpuDevice}));
}

TEST(ModelConfigTest, UnknownFieldIsNamedWithItsLine) {
  absl::Status status = ErrorOf("platform: \"pytorch_libtorch\"\nsequence_batching {}\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("m/config.pbtxt: 2:"));
  EXPECT_THAT(status.message(), HasSubstr("sequence_batching"));
}

TEST(ModelConfigTest, SyntaxErrorNamesTheLine) {
  absl::Status status = ErrorOf("platform: \"x\"\n\ninput { name: \"a\" \n");
  EXPECT_THAT(status.message(), HasSubstr("m/config.pbtxt: 4:"));
}

TEST(ModelConfigTest, RefusesWhatItCannotServe) {
  const std::string io =
      "input { name: \"x\" data_type: TYPE_FP32 dims: [1] }\n"
      "output { name: \"y\" data_type: TYPE_FP32 dims: [1] }\n";
  const std::string p = "platform: \"pytorch_libtorch\"\n";
  struct Case {
    std::string text;
    std::string message;
  };
  const std::vector<Case> cases = {
      {io, "neither platform nor backend"},
      {"name: \"other\"\n" + p + io, "differs from the model's folder name 'm'"},
      {p + "max_batch_size: -1\n" + io, "max_batch_size must not be negative"},
      {p + "output { name: \"y\" data_type: TYPE_FP32 dims: [1] }", "declares no input"},
      {p + "input { name: \"x\" data_type: TYPE_FP32 dims: [1] }", "declares no output"},
      {p + "input { name: \"x\" dims: [1] }\noutput { name: \"y\" data_type: TYPE_FP32 dims: [1] }",
       "input 'x': data_type TYPE_INVALID is not supported"},
      {p + "input { name: \"x\" data_type: TYPE_BF16 dims: [1] }\n"
           "output { name: \"y\" data_type: TYPE_FP32 dims: [1] }",
       "TYPE_BF16 is not supported"},
      {p + "input { name: \"x\" data_type: TYPE_FP32 }\n"
           "output { name: \"y\" data_type: TYPE_FP32 dims: [1] }",
       "input 'x': dims must not be empty"},
      {p + "input { name: \"x\" data_type: TYPE_FP32 dims: [0] }\n"
           "output { name: \"y\" data_type: TYPE_FP32 dims: [1] }",
       "may hold only positive sizes or -1"},
      {p + io + "input { name: \"x\" data_type: TYPE_FP32 dims: [1] }",
       "input 'x' is declared twice"},
      {p + "input { name: \"x\" data_type: TYPE_FP32 dims: [4] reshape { shape: [3] } }\n"
           "output { name: \"y\" data_type: TYPE_FP32 dims: [1] }",
       "reshape [3] does not hold the 4 elements"},
      {p + io + "instance_group { kind: KIND_MODEL }", "KIND_MODEL is not supported"},
      {p + io + "instance_group { count: 1 gpus: [0] }", "gpus needs kind: KIND_GPU"},
      {p + io + "instance_group { kind: KIND_GPU gpus: [-1] }", "a GPU's index is 0 or more"},
      {p + io + "version_policy { latest { num_versions: 0 } }", "at least 1"},
      {p + io + "version_policy { specific { } }", "lists no versions"},
      {p + io + "version_policy { specific { versions: [0] } }", "is not a positive number"},
      {p + io + "dynamic_batching { }", "dynamic_batching needs max_batch_size greater than 0"},
      {p + io +
           "model_warmup { name: \"w\" batch_size: 2 inputs { key: \"x\" value { "
           "data_type: TYPE_FP32 dims: [1] zero_data: true } } }",
       "model_warmup 'w': batch_size 2 is outside 1..1"},
      {p + io +
           "model_warmup { name: \"w\" batch_size: 1 inputs { key: \"z\" value { "
           "data_type: TYPE_FP32 dims: [1] zero_data: true } } }",
       "model_warmup 'w': the model has no input 'z'"},
      {p + io +
           "model_warmup { name: \"w\" batch_size: 1 inputs { key: \"x\" value { "
           "data_type: TYPE_INT32 dims: [1] zero_data: true } } }",
       "input 'x' is TYPE_INT32 but the model's is TYPE_FP32"},
      {p + io +
           "model_warmup { name: \"w\" batch_size: 1 inputs { key: \"x\" value { "
           "data_type: TYPE_FP32 dims: [2] zero_data: true } } }",
       "input 'x' dims [2] do not fit the input's [1]"},
      {p + io + "model_warmup { name: \"w\" batch_size: 1 }", "input 'x' is not given"},
      {p + io +
           "model_warmup { name: \"w\" batch_size: 1 inputs { key: \"x\" value { "
           "data_type: TYPE_FP32 dims: [1] } } }",
       "sets none of zero_data, random_data and input_data_file"},
      {p + "max_batch_size: 8\n" + io + "dynamic_batching { preferred_batch_size: [ 9 ] }",
       "preferred_batch_size 9 is outside 1..max_batch_size (8)"},
      {p + "max_batch_size: 8\n" + io + "dynamic_batching { default_priority_level: 1 }",
       "priority_levels is 0"},
      {p + "max_batch_size: 8\n" + io +
           "dynamic_batching { priority_levels: 2 default_priority_level: 3 }",
       "default_priority_level must be in 1..priority_levels (2)"},
      {p + "max_batch_size: 8\n" + io +
           "dynamic_batching { default_queue_policy { timeout_action: DELAY } }",
       "timeout_action DELAY is not supported"},
      {p + "max_batch_size: 8\n" + io +
           "dynamic_batching { priority_levels: 2 default_priority_level: 1 "
           "priority_queue_policy { key: 5 value { } } }",
       "priority_queue_policy level 5 is outside 1..priority_levels (2)"},
  };
  for (const Case& c : cases) {
    absl::Status status = ErrorOf(c.text);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.text;
    EXPECT_THAT(status.message(), HasSubstr("m/config.pbtxt")) << c.text;
  }
}

TEST(ModelVersionTest, EmptyOrAPositiveNumber) {
  EXPECT_EQ(ParseModelVersion("").value(), std::nullopt);
  EXPECT_EQ(ParseModelVersion("12").value(), 12);
  for (const char* bad : {"0", "-1", "v1", "1.0", " 1", "01", "007", "99999999999999999999"}) {
    absl::Status status = ParseModelVersion(bad).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(status.message(), HasSubstr("is not a version number")) << bad;
  }
}

TEST(ModelConfigTest, MissingFileIsNotFound) {
  absl::Status status = LoadModelConfig("/nonexistent/model").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("/nonexistent/model/config.pbtxt"));
}

}  // namespace
}  // namespace modeld::core
