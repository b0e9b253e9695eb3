// TensorFlowBackend against real SavedModels, written at test time by the venv's TensorFlow.
#include "backend/tensorflow/tensorflow_backend.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model_config.h"
#include "testing/temp_repository.h"

namespace modeld::backend {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// linear: y = 3x + 2 on x float32 [-1, 1] (TensorFlow Serving's layout).
// strings: upper-cases a string batch [-1] and returns the byte lengths as int64 (Triton's).
constexpr char kWriteModels[] = R"py(
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
root = sys.argv[1]

class Linear(tf.Module):
    def __init__(self):
        self.w = tf.Variable([[3.0]])
        self.b = tf.Variable([2.0])
    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def serve(self, x):
        return {"y": tf.matmul(x, self.w) + self.b}

class Strings(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        return {"upper": tf.strings.upper(text), "length": tf.strings.length(text, "BYTE")}

linear = Linear()
tf.saved_model.save(linear, f"{root}/linear/1", signatures={"serving_default": linear.serve})
strings = Strings()
tf.saved_model.save(strings, f"{root}/strings/1/model.savedmodel",
                    signatures={"serving_default": strings.serve})
)py";

class TensorFlowBackendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("TF_CPP_MIN_LOG_LEVEL", "1", /*overwrite=*/0);  // as modeld's main() does
    repo_ = new testing::TempRepository();
    repo_->WriteFile("write_models.py", kWriteModels);
    const std::string command =
        absl::StrCat(MODELD_TEST_PYTHON, " ", (repo_->path() / "write_models.py").string(), " ",
                     repo_->path().string());
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
  }
  static void TearDownTestSuite() {
    delete repo_;
    repo_ = nullptr;
  }

  // The config CompleteConfig makes for `model` from its version 1, validated.
  core::ModelConfig Complete(const std::string& model, const std::string& config_text = "") {
    absl::StatusOr<inference::ModelConfig> proto = core::ParseModelConfigProto(config_text, "test");
    EXPECT_TRUE(proto.ok()) << proto.status();
    proto->set_platform("tensorflow_savedmodel");
    const absl::Status completed = backend_.CompleteConfig(Version(model), *proto);
    EXPECT_TRUE(completed.ok()) << completed;
    absl::StatusOr<core::ModelConfig> config = core::ModelConfigFromProto(*proto, "test", model);
    EXPECT_TRUE(config.ok()) << config.status();
    return *config;
  }

  std::filesystem::path Version(const std::string& model) { return repo_->path() / model / "1"; }

  static testing::TempRepository* repo_;
  TensorFlowBackend backend_;
};

testing::TempRepository* TensorFlowBackendTest::repo_ = nullptr;

core::Tensor Floats(core::Shape shape, const std::vector<float>& values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return core::Tensor::Owning(core::DataType::kFp32, std::move(shape), std::move(bytes));
}

std::vector<float> FloatsOf(const core::Tensor& tensor) {
  std::vector<float> values(tensor.bytes().size() / sizeof(float));
  std::memcpy(values.data(), tensor.bytes().data(), tensor.bytes().size());
  return values;
}

TEST_F(TensorFlowBackendTest, ServesWithoutConfigOnlyWhereASavedModelIs) {
  EXPECT_TRUE(backend_.ServesWithoutConfig(Version("linear")));
  EXPECT_TRUE(backend_.ServesWithoutConfig(Version("strings")));
  EXPECT_FALSE(backend_.ServesWithoutConfig(repo_->path() / "linear"));
}

TEST_F(TensorFlowBackendTest, LinearRegressionFromItsSignatureAlone) {
  const core::ModelConfig config = Complete("linear");
  EXPECT_EQ(config.max_batch_size, 256);
  ASSERT_EQ(config.inputs.size(), 1u);
  EXPECT_EQ(config.inputs[0].name, "x");
  EXPECT_EQ(config.inputs[0].dims, core::Shape{1});
  absl::StatusOr<std::unique_ptr<Model>> model = backend_.Load(config, Version("linear"));
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<core::TensorMap> outputs = (*model)->Run({{"x", Floats({3, 1}, {0, 1, -2})}});
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  const core::Tensor& y = outputs->at("y");
  EXPECT_EQ(y.type(), core::DataType::kFp32);
  EXPECT_EQ(y.shape(), (core::Shape{3, 1}));
  EXPECT_THAT(FloatsOf(y), ElementsAre(2.0f, 5.0f, -4.0f));
}

TEST_F(TensorFlowBackendTest, StringsInAndOutIncludingEmptyAndZeroBytes) {
  const core::ModelConfig config = Complete("strings");
  absl::StatusOr<std::unique_ptr<Model>> model = backend_.Load(config, Version("strings"));
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<std::string> words = {"abc", "", std::string("a\0b", 3), std::string(100, 'x')};
  std::string bytes;
  for (const std::string& word : words) core::AppendBytesElement(word, bytes);
  // API shape [4, 1]: the signature's [-1] is one item of dims [1], reshaped away.
  absl::StatusOr<core::TensorMap> outputs = (*model)->Run(
      {{"text", core::Tensor::Owning(core::DataType::kBytes, {4, 1}, std::move(bytes))}});
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  const core::Tensor& upper = outputs->at("upper");
  EXPECT_EQ(upper.shape(), (core::Shape{4, 1}));
  absl::StatusOr<std::vector<absl::string_view>> elements = core::SplitBytesElements(upper.bytes());
  ASSERT_TRUE(elements.ok());
  EXPECT_THAT(*elements,
              ElementsAre("ABC", "", absl::string_view("A\0B", 3), std::string(100, 'X')));
  const core::Tensor& length = outputs->at("length");
  EXPECT_EQ(length.type(), core::DataType::kInt32);
  std::vector<int32_t> lengths(4);
  ASSERT_EQ(length.bytes().size(), sizeof(int32_t) * 4);
  std::memcpy(lengths.data(), length.bytes().data(), length.bytes().size());
  EXPECT_THAT(lengths, ElementsAre(3, 0, 3, 100));
}

TEST_F(TensorFlowBackendTest, FrameworkErrorsAreInternalAndTheModelKeepsWorking) {
  const core::ModelConfig config = Complete("linear");
  absl::StatusOr<std::unique_ptr<Model>> model = backend_.Load(config, Version("linear"));
  ASSERT_TRUE(model.ok()) << model.status();
  // Validation normally stops this; the backend must still answer with an error.
  absl::StatusOr<core::TensorMap> bad = (*model)->Run({{"x", Floats({2, 2}, {1, 2, 3, 4})}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInternal);
  absl::StatusOr<core::TensorMap> good = (*model)->Run({{"x", Floats({1, 1}, {1})}});
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_THAT(FloatsOf(good->at("y")), ElementsAre(5.0f));
}

TEST_F(TensorFlowBackendTest, CorruptVariablesFailToLoadWithTensorFlowsMessage) {
  std::filesystem::create_directories(repo_->path() / "broken");
  std::filesystem::copy(Version("linear"), repo_->path() / "broken" / "1",
                        std::filesystem::copy_options::recursive);
  repo_->WriteFile("broken/1/variables/variables.index", "not a checkpoint index");
  const core::ModelConfig config = Complete("linear");
  absl::StatusOr<std::unique_ptr<Model>> model =
      backend_.Load(config, repo_->path() / "broken" / "1");
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(model.status().message(), HasSubstr("loading "));
}

TEST_F(TensorFlowBackendTest, MissingSavedModelAndBadParametersAreNamed) {
  core::ModelConfig config = Complete("linear");
  EXPECT_EQ(backend_.Load(config, repo_->path() / "nowhere").status().code(),
            absl::StatusCode::kNotFound);
  config = Complete("linear",
                    "parameters { key: \"intra_op_thread_count\" value { "
                    "string_value: \"many\" } }");
  EXPECT_THAT(backend_.Load(config, Version("linear")).status().message(),
              HasSubstr("parameter intra_op_thread_count 'many' is not a positive integer"));
}

}  // namespace
}  // namespace modeld::backend
