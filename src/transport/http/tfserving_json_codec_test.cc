#include "transport/http/tfserving_json_codec.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::transport::http {
namespace {

using ::testing::HasSubstr;

core::ModelConfig Config(int max_batch_size, std::vector<core::TensorSpec> inputs) {
  core::ModelConfig config;
  config.name = "m";
  config.max_batch_size = max_batch_size;
  config.inputs = std::move(inputs);
  return config;
}

const core::ModelConfig kLinear = Config(8, {{"x", core::DataType::kFp32, {3}, {}}});
const core::ModelConfig kTwo =
    Config(8, {{"a", core::DataType::kInt64, {-1}, {}}, {"s", core::DataType::kBytes, {1}, {}}});
const core::ModelConfig kUnbatched = Config(0, {{"x", core::DataType::kFp32, {3}, {}}});

std::vector<float> Floats(const core::Tensor& tensor) {
  std::vector<float> values(tensor.bytes().size() / 4);
  std::memcpy(values.data(), tensor.bytes().data(), tensor.bytes().size());
  return values;
}

TEST(TfPredictDecodeTest, RowFormatStacksInstancesIntoTheBatchDimension) {
  absl::StatusOr<TfPredictRequest> decoded = DecodePredictRequest(
      R"({"signature_name": "serving_default", "instances": [[1, 2, 3], [4, 5, NaN]]})", kLinear);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(decoded->row_format);
  const core::Tensor& x = decoded->request.inputs.at("x");
  EXPECT_EQ(x.shape(), (core::Shape{2, 3}));
  std::vector<float> values = Floats(x);
  EXPECT_EQ(values[4], 5.0f);
  EXPECT_TRUE(std::isnan(values[5]));

  decoded = DecodePredictRequest(
      R"({"instances": [{"a": [1, 2], "s": [{"b64": "aGk="}]}, {"a": [3, 4], "s": ["yo"]}]})",
      kTwo);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->request.inputs.at("a").shape(), (core::Shape{2, 2}));
  EXPECT_EQ(decoded->request.inputs.at("s").bytes(), std::string("\x02\0\0\0hi\x02\0\0\0yo", 12));
}

TEST(TfPredictDecodeTest, ColumnarFormatTakesWholeTensors) {
  absl::StatusOr<TfPredictRequest> decoded =
      DecodePredictRequest(R"({"inputs": [[1, 2, 3]]})", kUnbatched);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_FALSE(decoded->row_format);
  EXPECT_EQ(decoded->request.inputs.at("x").shape(), (core::Shape{1, 3}));

  decoded = DecodePredictRequest(R"({"inputs": {"a": [[1], [2]], "s": [["p"], ["q"]]}})", kTwo);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->request.inputs.at("a").shape(), (core::Shape{2, 1}));
  EXPECT_EQ(decoded->request.inputs.at("s").shape(), (core::Shape{2, 1}));
}

TEST(TfPredictDecodeTest, RefusesBadRequestsNamingTheProblem) {
  const std::vector<std::pair<std::pair<const char*, const core::ModelConfig*>, const char*>>
      cases = {
          {{"{\"instances\": [1,", &kLinear}, "malformed JSON"},
          {{"[1]", &kLinear}, "the predict request must be a JSON object, got an array"},
          {{R"({"signature_name": "classify_x", "instances": [[1, 2, 3]]})", &kLinear},
           "signature_name 'classify_x' not found; model 'm' has only 'serving_default'"},
          {{R"({"signature_name": 5, "instances": [[1, 2, 3]]})", &kLinear},
           "\"signature_name\" must be a string"},
          {{R"({"instances": [[1, 2, 3]], "inputs": [[1, 2, 3]]})", &kLinear},
           "both \"instances\" and \"inputs\""},
          {{R"({"examples": []})", &kLinear}, "neither \"instances\" (row format) nor \"inputs\""},
          {{R"({"instances": [[1, 2, 3]]})", &kUnbatched},
           "model 'm' has no batch dimension (max_batch_size 0), so it cannot take \"instances\""},
          {{R"({"instances": []})", &kLinear}, "\"instances\" is an empty list"},
          {{R"({"instances": {"x": 1}})", &kLinear}, "\"instances\" must be a list, got an object"},
          {{R"({"instances": [[1, 2, 3], [4, 5]]})", &kLinear},
           "instances disagree on the shape of input 'x': instance 0 has [3], instance 1 has [2]"},
          {{R"({"instances": [[1, 2, "3"]]})", &kLinear},
           "input 'x' of instance 0 element 2: expected a number for FP32, got a string"},
          {{R"({"instances": [[[1, 2], [3]]]})", &kLinear},
           "input 'x' of instance 0 is a ragged list"},
          {{R"({"instances": [[1, 2], [3, 4]]})", &kTwo},
           "model 'm' has inputs 'a', 's'; each item of \"instances\" must be an object naming "
           "them"},
          {{R"({"instances": [{"a": [1]}]})", &kTwo}, "instance 0 has no input 's'"},
          {{R"({"instances": [{"a": [1], "s": ["x"], "t": 1}]})", &kTwo},
           "instance 0 names unknown input 't'; model 'm' has inputs 'a', 's'"},
          {{R"({"instances": [{"a": [1], "s": ["x"]}, [1]]})", &kTwo},
           "instance 1 is not an object while instance 0 is one"},
          {{R"({"instances": [{"a": [1.5], "s": ["x"]}]})", &kTwo},
           "input 'a' of instance 0 element 0: expected an integer for INT64, got 1.5"},
          {{R"({"inputs": {"z": [1]}})", &kTwo}, "\"inputs\" names unknown input 'z'"},
          {{R"({"inputs": [1, 2]})", &kTwo},
           "model 'm' has inputs 'a', 's'; \"inputs\" must be an object"},
          {{R"({"inputs": {"s": [{"b64": 3}]}})", &kTwo},
           "input 's' element 0: \"b64\" must be a string, got a number"},
      };
  for (const auto& [input, fragment] : cases) {
    absl::StatusOr<TfPredictRequest> decoded = DecodePredictRequest(input.first, *input.second);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument)
        << input.first << " -> " << decoded.status();
    EXPECT_THAT(std::string(decoded.status().message()), HasSubstr(fragment)) << input.first;
  }
}

core::InferResponse TwoOutputs() {
  core::InferResponse response;
  const float y[4] = {1.5f, 2.0f, 3.0f, -4.0f};
  response.outputs.push_back(
      {"y", core::Tensor::Owning(core::DataType::kFp32, {2, 2},
                                 std::string(reinterpret_cast<const char*>(y), 16))});
  std::string bytes;
  core::AppendBytesElement("a", bytes);
  core::AppendBytesElement("b", bytes);
  response.outputs.push_back(
      {"label_bytes", core::Tensor::Owning(core::DataType::kBytes, {2}, bytes)});
  return response;
}

TEST(TfPredictEncodeTest, RowAndColumnarAnswers) {
  core::InferResponse one;
  one.outputs.push_back(TwoOutputs().outputs[0]);
  EXPECT_EQ(*EncodePredictResponse(one, true, kLinear), R"({"predictions":[[1.5,2],[3,-4]]})");
  EXPECT_EQ(*EncodePredictResponse(one, false, kLinear), R"({"outputs":[[1.5,2],[3,-4]]})");
  EXPECT_EQ(*EncodePredictResponse(TwoOutputs(), true, kLinear),
            R"({"predictions":[{"y":[1.5,2],"label_bytes":{"b64":"YQ=="}},)"
            R"({"y":[3,-4],"label_bytes":{"b64":"Yg=="}}]})");
  EXPECT_EQ(*EncodePredictResponse(TwoOutputs(), false, kLinear),
            R"({"outputs":{"y":[[1.5,2],[3,-4]],"label_bytes":[{"b64":"YQ=="},{"b64":"Yg=="}]}})");

  core::InferResponse mismatched = TwoOutputs();
  mismatched.outputs[1].tensor = core::Tensor::Owning(core::DataType::kBytes, {0}, "");
  EXPECT_THAT(EncodePredictResponse(mismatched, true, kLinear).status().message(),
              HasSubstr("output 'label_bytes' has shape [0], which does not share the batch"));
}

// A TensorFlow signature's [-1] string tensor: dims [1] reshaped to [] (config completion).
TEST(TfPredictTest, ScalarItemsAreTakenAndAnsweredWithoutTheTrailingOne) {
  core::ModelConfig config = Config(8, {{"text", core::DataType::kBytes, {1}, core::Shape{}}});
  config.outputs = {{"length", core::DataType::kInt32, {1}, core::Shape{}},
                    {"y", core::DataType::kFp32, {1}, std::nullopt}};
  for (const char* body : {R"({"instances": ["ab", "c"]})", R"({"inputs": ["ab", "c"]})"}) {
    absl::StatusOr<TfPredictRequest> decoded = DecodePredictRequest(body, config);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->request.inputs.at("text").shape(), (core::Shape{2, 1})) << body;
  }
  // The KServe form [batch, 1] is taken as it is.
  absl::StatusOr<TfPredictRequest> decoded =
      DecodePredictRequest(R"({"instances": [["ab"], ["c"]]})", config);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->request.inputs.at("text").shape(), (core::Shape{2, 1}));

  core::InferResponse response;
  const int32_t lengths[2] = {2, 1};
  const float y[2] = {0.5f, 1.5f};
  response.outputs.push_back(
      {"length", core::Tensor::Owning(core::DataType::kInt32, {2, 1},
                                      std::string(reinterpret_cast<const char*>(lengths), 8))});
  // An output whose dims really are [1] keeps them.
  response.outputs.push_back(
      {"y", core::Tensor::Owning(core::DataType::kFp32, {2, 1},
                                 std::string(reinterpret_cast<const char*>(y), 8))});
  EXPECT_EQ(*EncodePredictResponse(response, true, config),
            R"({"predictions":[{"length":2,"y":[0.5]},{"length":1,"y":[1.5]}]})");
  EXPECT_EQ(*EncodePredictResponse(response, false, config),
            R"({"outputs":{"length":[2,1],"y":[[0.5],[1.5]]}})");
}

TEST(TfPredictTest, TheServedSignatureNameIsAccepted) {
  core::ModelConfig config = kLinear;
  config.parameters["signature_name"] = "triple";
  EXPECT_TRUE(
      DecodePredictRequest(R"({"signature_name": "triple", "instances": [[1, 2, 3]]})", config)
          .ok());
  EXPECT_THAT(DecodePredictRequest(
                  R"({"signature_name": "serving_default", "instances": [[1, 2, 3]]})", config)
                  .status()
                  .message(),
              HasSubstr("signature_name 'serving_default' not found; model 'm' has only 'triple'"));
}

TEST(TfStatusAndMetadataTest, WriteTfServingShapes) {
  EXPECT_EQ(
      EncodeModelStatus({{2, tfserving::VersionState::kAvailable, absl::OkStatus()},
                         {3, tfserving::VersionState::kEnd, absl::UnknownError("bad file")}}),
      R"({"model_version_status":[)"
      R"({"version":"2","state":"AVAILABLE","status":{"error_code":"OK","error_message":""}},)"
      R"({"version":"3","state":"END","status":{"error_code":"UNKNOWN","error_message":"bad file"}}]})");
  service::ModelMetadata metadata;
  metadata.name = "linear";
  metadata.versions = {1, 2};
  metadata.inputs = {{"x", core::DataType::kFp32, {-1, 3}}};
  metadata.outputs = {{"y", core::DataType::kInt64, {-1}}};
  EXPECT_EQ(
      EncodeModelMetadata(metadata, 2, "serving_default"),
      R"({"model_spec":{"name":"linear","signature_name":"","version":"2"},)"
      R"("metadata":{"signature_def":{"signature_def":{"serving_default":{)"
      R"("inputs":{"x":{"dtype":"DT_FLOAT","tensor_shape":{"dim":[{"size":"-1","name":""},)"
      R"({"size":"3","name":""}],"unknown_rank":false},"name":"x"}},)"
      R"("outputs":{"y":{"dtype":"DT_INT64","tensor_shape":{"dim":[{"size":"-1","name":""}],)"
      R"("unknown_rank":false},"name":"y"}},"method_name":"tensorflow/serving/predict"}}}}})");
}

}  // namespace
}  // namespace modeld::transport::http
