#include "backend/tensorflow/saved_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "tensorflow/saved_model.pb.h"
#include "testing/temp_repository.h"

namespace modeld::backend::savedmodel {
namespace {

using ::testing::HasSubstr;

template <typename Message>
Message Parse(const std::string& text) {
  Message message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

// A signature like Keras writes: x float32 [-1, 4], words string [-1], y float32 [-1, 2].
tensorflow::SignatureDef BatchingSignature() {
  return Parse<tensorflow::SignatureDef>(R"pb(
    inputs {
      key: "x"
      value {
        name: "serving_default_x:0"
        dtype: DT_FLOAT
        tensor_shape {
          dim { size: -1 }
          dim { size: 4 }
        }
      }
    }
    inputs {
      key: "words"
      value {
        name: "serving_default_words:0"
        dtype: DT_STRING
        tensor_shape { dim { size: -1 } }
      }
    }
    outputs {
      key: "y"
      value {
        name: "StatefulPartitionedCall:0"
        dtype: DT_FLOAT
        tensor_shape {
          dim { size: -1 }
          dim { size: 2 }
        }
      }
    }
    method_name: "tensorflow/serving/predict"
  )pb");
}

void ExpectConfig(const inference::ModelConfig& actual, const std::string& expected_text) {
  const auto expected = Parse<inference::ModelConfig>(expected_text);
  std::string difference;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&difference);
  EXPECT_TRUE(differencer.Compare(expected, actual)) << difference;
}

TEST(CompleteConfigFromSignature, EmptyConfigBatchesWhenEveryTensorHasALeadingMinusOne) {
  inference::ModelConfig config;
  config.set_platform(kPlatform);
  ASSERT_TRUE(CompleteConfigFromSignature(BatchingSignature(), "serving_default", config).ok());
  // Sorted by key; a [-1] tensor is one item of no dims: [1] for the API, reshaped away.
  ExpectConfig(config, R"pb(
    platform: "tensorflow_savedmodel"
    max_batch_size: 256
    dynamic_batching {}
    parameters {
      key: "signature_method_name"
      value { string_value: "tensorflow/serving/predict" }
    }
    input {
      name: "words"
      data_type: TYPE_STRING
      dims: 1
      reshape {}
    }
    input { name: "x" data_type: TYPE_FP32 dims: 4 }
    output { name: "y" data_type: TYPE_FP32 dims: 2 }
  )pb");
}

TEST(CompleteConfigFromSignature, FixedFirstDimensionMeansNoBatching) {
  auto signature = Parse<tensorflow::SignatureDef>(R"pb(
    inputs {
      key: "image"
      value {
        dtype: DT_UINT8
        tensor_shape {
          dim { size: 1 }
          dim { size: -1 }
        }
      }
    }
    outputs {
      key: "score"
      value {
        dtype: DT_DOUBLE
        tensor_shape {}
      }
    }
  )pb");
  inference::ModelConfig config;
  ASSERT_TRUE(CompleteConfigFromSignature(signature, "serving_default", config).ok());
  ExpectConfig(config, R"pb(
    input {
      name: "image"
      data_type: TYPE_UINT8
      dims: [ 1, -1 ]
    }
    output {
      name: "score"
      data_type: TYPE_FP64
      dims: 1
      reshape {}
    }
  )pb");
}

TEST(CompleteConfigFromSignature, AMaxBatchSizeInTheConfigIsKept) {
  auto config = Parse<inference::ModelConfig>("max_batch_size: 8");
  ASSERT_TRUE(CompleteConfigFromSignature(BatchingSignature(), "serving_default", config).ok());
  EXPECT_EQ(config.max_batch_size(), 8);
  EXPECT_FALSE(config.has_dynamic_batching());
  ASSERT_EQ(config.input_size(), 2);
  EXPECT_EQ(config.input(1).dims_size(), 1);
  EXPECT_EQ(config.input(1).dims(0), 4);
}

TEST(CompleteConfigFromSignature, MissingOutputsAreFilledAndDeclaredInputsChecked) {
  auto config = Parse<inference::ModelConfig>(R"pb(
    max_batch_size: 4
    input { name: "x" data_type: TYPE_FP32 dims: 4 }
    input {
      name: "words"
      data_type: TYPE_STRING
      dims: 1
      reshape {}
    }
  )pb");
  ASSERT_TRUE(CompleteConfigFromSignature(BatchingSignature(), "serving_default", config).ok());
  ASSERT_EQ(config.output_size(), 1);
  EXPECT_EQ(config.output(0).name(), "y");
}

TEST(CompleteConfigFromSignature, ConfigThatContradictsTheSignatureIsRefusedByName) {
  const std::string base =
      "max_batch_size: 4\n"
      "input { name: \"words\" data_type: TYPE_STRING dims: 1 reshape {} }\n"
      "output { name: \"y\" data_type: TYPE_FP32 dims: 2 }\n";
  struct Case {
    std::string extra;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"input { name: \"x\" data_type: TYPE_INT32 dims: 4 }",
       "input 'x' is declared TYPE_INT32 but signature 'serving_default' has DT_FLOAT (TYPE_FP32)"},
      {"input { name: \"x\" data_type: TYPE_FP32 dims: 5 }",
       "input 'x' has shape [-1, 5] (with the batch dimension) but signature 'serving_default' "
       "has [-1, 4]"},
      {"input { name: \"x\" data_type: TYPE_FP32 dims: [2, 2] }", "input 'x' has shape"},
      {"input { name: \"x\" data_type: TYPE_FP32 dims: 4 }\n"
       "input { name: \"z\" data_type: TYPE_FP32 dims: 4 }",
       "input 'z' is not in signature 'serving_default', whose inputs are: words, x"},
      {"", "signature 'serving_default' input 'x' is not declared in config.pbtxt"},
  };
  for (const Case& c : cases) {
    auto config = Parse<inference::ModelConfig>(base + c.extra);
    const absl::Status status =
        CompleteConfigFromSignature(BatchingSignature(), "serving_default", config);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.extra;
    EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.extra;
  }
}

TEST(CompleteConfigFromSignature, BatchingNeedsALeadingMinusOne) {
  auto signature = Parse<tensorflow::SignatureDef>(R"pb(
    inputs {
      key: "x"
      value {
        dtype: DT_FLOAT
        tensor_shape { dim { size: 3 } }
      }
    }
    outputs {
      key: "y"
      value {
        dtype: DT_FLOAT
        tensor_shape { dim { size: 3 } }
      }
    }
  )pb");
  auto config = Parse<inference::ModelConfig>("max_batch_size: 4");
  const absl::Status status = CompleteConfigFromSignature(signature, "serving_default", config);
  EXPECT_THAT(status.message(), HasSubstr("signature input 'x' has shape [3], whose first "
                                          "dimension is not -1"));
}

TEST(CompleteConfigFromSignature, UnservableSignaturesAreNamed) {
  auto complex = Parse<tensorflow::SignatureDef>(R"pb(
    inputs {
      key: "c"
      value {
        dtype: DT_COMPLEX64
        tensor_shape {}
      }
    }
    outputs {
      key: "y"
      value {
        dtype: DT_FLOAT
        tensor_shape {}
      }
    }
  )pb");
  inference::ModelConfig config;
  EXPECT_THAT(CompleteConfigFromSignature(complex, "s", config).message(),
              HasSubstr("signature input 'c' has dtype DT_COMPLEX64, which modeld does not serve"));

  auto unknown_rank = Parse<tensorflow::SignatureDef>(R"pb(
    inputs {
      key: "x"
      value {
        dtype: DT_FLOAT
        tensor_shape { unknown_rank: true }
      }
    }
    outputs {
      key: "y"
      value {
        dtype: DT_FLOAT
        tensor_shape {}
      }
    }
  )pb");
  config.Clear();
  EXPECT_THAT(CompleteConfigFromSignature(unknown_rank, "s", config).message(),
              HasSubstr("signature input 'x' has a shape of unknown rank"));
  // Declared in the config, a tensor of unknown rank is accepted as declared.
  config = Parse<inference::ModelConfig>(R"pb(
    input {
      name: "x"
      data_type: TYPE_FP32
      dims: [ 2, 3 ]
    }
  )pb");
  EXPECT_TRUE(CompleteConfigFromSignature(unknown_rank, "s", config).ok());
}

TEST(ReadServingMetaGraph, FindsTheServeTagAndReportsOthers) {
  testing::TempRepository repo;
  tensorflow::SavedModel saved_model;
  auto* train = saved_model.add_meta_graphs();
  train->mutable_meta_info_def()->add_tags("train");
  auto* serve = saved_model.add_meta_graphs();
  serve->mutable_meta_info_def()->add_tags("serve");
  (*serve->mutable_signature_def())["serving_default"] = BatchingSignature();
  repo.WriteFile("m/1/model.savedmodel/saved_model.pb", saved_model.SerializeAsString());
  repo.WriteFile("m/2/saved_model.pb", saved_model.SerializeAsString());
  repo.WriteFile("m/3/saved_model.pb", "not a protobuf \xff\xff\xff");
  saved_model.mutable_meta_graphs()->RemoveLast();
  repo.WriteFile("m/4/saved_model.pb", saved_model.SerializeAsString());

  const auto m = repo.path() / "m";
  EXPECT_EQ(FindSavedModelDir(m / "1"), m / "1" / "model.savedmodel");
  EXPECT_EQ(FindSavedModelDir(m / "2"), m / "2");
  EXPECT_EQ(FindSavedModelDir(m / "5"), std::nullopt);

  absl::StatusOr<tensorflow::MetaGraphDef> meta_graph = ReadServingMetaGraph(m / "2");
  ASSERT_TRUE(meta_graph.ok()) << meta_graph.status();
  EXPECT_TRUE(FindSignature(*meta_graph, "serving_default").ok());
  EXPECT_THAT(FindSignature(*meta_graph, "predict").status().message(),
              HasSubstr("no signature 'predict' (it has serving_default); choose one with the "
                        "signature_name parameter"));
  EXPECT_THAT(ReadServingMetaGraph(m / "3").status().message(),
              HasSubstr("is not a SavedModel (it does not parse)"));
  EXPECT_THAT(ReadServingMetaGraph(m / "4").status().message(),
              HasSubstr("has no meta graph tagged 'serve' (it has [train])"));
}

TEST(SignatureName, ParameterOrServingDefault) {
  inference::ModelConfig config;
  EXPECT_EQ(SignatureName(config), "serving_default");
  (*config.mutable_parameters())["signature_name"].set_string_value("triple");
  EXPECT_EQ(SignatureName(config), "triple");
}

}  // namespace
}  // namespace modeld::backend::savedmodel
