#include "transport/grpc_tfserving/examples.h"

#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::transport::grpc_tfserving {
namespace {

using ::testing::HasSubstr;

core::ModelConfig ClassifyConfig() {
  core::ModelConfig config;
  config.name = "m";
  config.max_batch_size = 8;
  config.inputs = {{"inputs", core::DataType::kBytes, {1}, core::Shape{}}};
  config.parameters["signature_method_name"] = kClassifyMethod;
  return config;
}

core::Tensor Floats(core::Shape shape, std::vector<float> values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return core::Tensor::Owning(core::DataType::kFp32, std::move(shape), std::move(bytes));
}

TEST(CheckServesMethod, OnlyTheServedMethod) {
  const core::ModelConfig config = ClassifyConfig();
  EXPECT_TRUE(CheckServesMethod(config, kClassifyMethod, "Classify").ok());
  const absl::Status regress = CheckServesMethod(config, kRegressMethod, "Regress");
  EXPECT_EQ(regress.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(regress.message(),
              HasSubstr("model 'm' is served with signature 'serving_default' (method "
                        "tensorflow/serving/classify)"));
  core::ModelConfig predict = config;
  predict.parameters.erase("signature_method_name");  // TorchScript, or a predict signature
  EXPECT_THAT(CheckServesMethod(predict, kClassifyMethod, "Classify").message(),
              HasSubstr("(method tensorflow/serving/predict): call Predict"));
}

TEST(ExamplesRequest, ContextIsMergedBeforeEachExample) {
  tensorflow::serving::Input input;
  auto* with_context = input.mutable_example_list_with_context();
  with_context->set_context("C");
  with_context->add_examples("a");
  with_context->add_examples("bb");
  absl::StatusOr<core::InferRequest> request = ExamplesRequest(input, ClassifyConfig());
  ASSERT_TRUE(request.ok()) << request.status();
  const core::Tensor& tensor = request->inputs.at("inputs");
  EXPECT_EQ(tensor.shape(), (core::Shape{2, 1}));  // [n] taken as the scalar items [n, 1]
  absl::StatusOr<std::vector<absl::string_view>> examples =
      core::SplitBytesElements(tensor.bytes());
  ASSERT_TRUE(examples.ok());
  EXPECT_THAT(*examples, ::testing::ElementsAre("Ca", "Cbb"));

  EXPECT_THAT(ExamplesRequest(tensorflow::serving::Input(), ClassifyConfig()).status().message(),
              HasSubstr("input holds no examples"));
}

TEST(ClassificationResultOf, ClassesAndScoresByRow) {
  core::InferResponse response;
  std::string labels;
  for (const char* label : {"a", "b", "a", "b"}) core::AppendBytesElement(label, labels);
  response.outputs.push_back(
      {"classes", core::Tensor::Owning(core::DataType::kBytes, {2, 2}, labels)});
  response.outputs.push_back({"scores", Floats({2, 2}, {0.25f, 0.75f, 1.0f, 0.0f})});
  absl::StatusOr<tensorflow::serving::ClassificationResult> result =
      ClassificationResultOf(response);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->classifications_size(), 2);
  EXPECT_EQ(result->classifications(0).classes(1).label(), "b");
  EXPECT_FLOAT_EQ(result->classifications(0).classes(1).score(), 0.75f);
  EXPECT_FLOAT_EQ(result->classifications(1).classes(0).score(), 1.0f);

  response.outputs[1].tensor = Floats({2, 3}, {0, 0, 0, 0, 0, 0});
  EXPECT_THAT(ClassificationResultOf(response).status().message(),
              HasSubstr("not FP32 of the shape of 'classes'"));
}

TEST(RegressionResultOf, OneValuePerExample) {
  core::InferResponse response;
  response.outputs.push_back({"outputs", Floats({3, 1}, {1.5f, -2.0f, 0.0f})});
  absl::StatusOr<tensorflow::serving::RegressionResult> result = RegressionResultOf(response);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->regressions_size(), 3);
  EXPECT_FLOAT_EQ(result->regressions(1).value(), -2.0f);
  response.outputs[0].tensor = Floats({1, 2}, {1, 2});
  EXPECT_THAT(RegressionResultOf(response).status().message(),
              HasSubstr("not one value per example"));
}

}  // namespace
}  // namespace modeld::transport::grpc_tfserving
