#include "backend/torch/package_config.h"

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace modeld::backend {
namespace {

using ::testing::HasSubstr;

constexpr char kStated[] = R"pb(
  max_batch_size: 64
  input {
    name: "x"
    data_type: TYPE_FP32
    dims: [ 256 ]
  }
  input {
    name: "mask"
    data_type: TYPE_BOOL
    dims: [ -1 ]
  }
  output {
    name: "logits"
    data_type: TYPE_FP32
    dims: [ 10 ]
  }
)pb";

inference::ModelConfig Config(const std::string& text) {
  inference::ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

// The error of completing `declared` against kStated.
std::string ErrorOf(const std::string& declared) {
  inference::ModelConfig config = Config(declared);
  absl::Status status = CompleteConfigFromPackage(kStated, "m/1/model.pt2", config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << declared;
  return std::string(status.message());
}

TEST(PackageConfigTest, AnEmptyConfigTakesEverythingThePackageStates) {
  inference::ModelConfig config = Config(R"pb(platform: "torch_aoti")pb");
  ASSERT_TRUE(CompleteConfigFromPackage(kStated, "m/1/model.pt2", config).ok());
  EXPECT_EQ(config.max_batch_size(), 64);
  EXPECT_TRUE(config.has_dynamic_batching());  // a batch dimension batches dynamically
  ASSERT_EQ(config.input_size(), 2);
  EXPECT_EQ(config.input(1).name(), "mask");
  EXPECT_EQ(config.input(1).data_type(), inference::TYPE_BOOL);
  ASSERT_EQ(config.output_size(), 1);
  EXPECT_EQ(config.output(0).dims(0), 10);
}

TEST(PackageConfigTest, AStatedConfigThatAgreesIsKeptAsWritten) {
  inference::ModelConfig config = Config(R"pb(
    max_batch_size: 8
    input {
      name: "x"
      data_type: TYPE_FP32
      dims: [ 256 ]
    }
    input {
      name: "mask"
      data_type: TYPE_BOOL
      dims: [ 12 ]
    }
    output {
      name: "logits"
      data_type: TYPE_FP32
      dims: [ 10 ]
    }
  )pb");
  ASSERT_TRUE(CompleteConfigFromPackage(kStated, "m/1/model.pt2", config).ok());
  EXPECT_EQ(config.max_batch_size(), 8);        // within the package's 64
  EXPECT_FALSE(config.has_dynamic_batching());  // not asked for
  EXPECT_EQ(config.input(1).dims(0), 12);       // narrower than the package's -1
}

TEST(PackageConfigTest, DisagreementsNameTheTensorAndBothValues) {
  const std::string outputs = R"pb(output {
                                     name: "logits"
                                     data_type: TYPE_FP32
                                     dims: [ 10 ]
                                   })pb";
  EXPECT_THAT(ErrorOf(R"pb(max_batch_size: 64
                           input {
                             name: "x"
                             data_type: TYPE_FP32
                             dims: [ 128 ]
                           }
                           input {
                             name: "mask"
                             data_type: TYPE_BOOL
                             dims: [ -1 ]
                           })pb" +
                      outputs),
              HasSubstr("input 0 of config.pbtxt is 'x' TYPE_FP32 [128] but m/1/model.pt2 "
                        "states 'x' TYPE_FP32 [256]"));
  EXPECT_THAT(ErrorOf(R"pb(max_batch_size: 64
                           input {
                             name: "mask"
                             data_type: TYPE_BOOL
                             dims: [ -1 ]
                           }
                           input {
                             name: "x"
                             data_type: TYPE_FP32
                             dims: [ 256 ]
                           })pb" +
                      outputs),
              HasSubstr("input 0 of config.pbtxt is 'mask'"));
  EXPECT_THAT(ErrorOf(R"pb(max_batch_size: 64
                           input {
                             name: "x"
                             data_type: TYPE_FP16
                             dims: [ 256 ]
                           }
                           input {
                             name: "mask"
                             data_type: TYPE_BOOL
                             dims: [ -1 ]
                           })pb" +
                      outputs),
              HasSubstr("TYPE_FP16"));
  EXPECT_THAT(ErrorOf(R"pb(max_batch_size: 64
                           input {
                             name: "x"
                             data_type: TYPE_FP32
                             dims: [ 256 ]
                           })pb" +
                      outputs),
              HasSubstr("declares 1 input(s) but m/1/model.pt2 takes 2"));
  EXPECT_THAT(ErrorOf(R"pb(max_batch_size: 128
                           input {
                             name: "x"
                             data_type: TYPE_FP32
                             dims: [ 256 ]
                           }
                           input {
                             name: "mask"
                             data_type: TYPE_BOOL
                             dims: [ -1 ]
                           })pb" +
                      outputs),
              HasSubstr("max_batch_size 128 but m/1/model.pt2 batches up to 64"));
  EXPECT_THAT(ErrorOf(R"pb(input {
                             name: "x"
                             data_type: TYPE_FP32
                             dims: [ 256 ]
                           }
                           input {
                             name: "mask"
                             data_type: TYPE_BOOL
                             dims: [ -1 ]
                           })pb" +
                      outputs),
              HasSubstr("max_batch_size 0 but m/1/model.pt2 batches up to 64"));
  EXPECT_THAT(ErrorOf(R"pb(max_batch_size: 64
                           input {
                             name: "x"
                             data_type: TYPE_FP32
                             dims: [ 256 ]
                           }
                           input {
                             name: "mask"
                             data_type: TYPE_BOOL
                             dims: [ -1 ]
                           }
                           output {
                             name: "probs"
                             data_type: TYPE_FP32
                             dims: [ 10 ]
                           })pb"),
              HasSubstr("output 0 of config.pbtxt is 'probs'"));
}

TEST(PackageConfigTest, APackageThatStatesNothingNeedsTheConfigToListTensors) {
  inference::ModelConfig config = Config(R"pb(platform: "torch_aoti")pb");
  absl::Status status = CompleteConfigFromPackage(std::nullopt, "m/1/model.pt2", config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("m/1/model.pt2 does not state its inputs"));

  config = Config(R"pb(input {
                         name: "x"
                         data_type: TYPE_FP32
                         dims: [ 3 ]
                       }
                       output {
                         name: "y"
                         data_type: TYPE_FP32
                         dims: [ 3 ]
                       })pb");
  EXPECT_TRUE(CompleteConfigFromPackage(std::nullopt, "m/1/model.pt2", config).ok());
}

TEST(PackageConfigTest, AStatementThatDoesNotParseIsNamed) {
  inference::ModelConfig config;
  absl::Status status = CompleteConfigFromPackage("input { nme: 1 }", "m/1/model.pt2", config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("m/1/model.pt2 (modeld.config)"));
}

}  // namespace
}  // namespace modeld::backend
