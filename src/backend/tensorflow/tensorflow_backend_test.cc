// TensorFlowBackend against real SavedModels, written at test time by the venv's TensorFlow.
#include "backend/tensorflow/tensorflow_backend.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
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
// regression: y = x W + b with W = 0.5, b = 0 and a train signature train(x, y) -> {"loss"}
//   taking one SGD step (rate 0.1) on the mean squared error; regression_triton is the same in
//   Triton's layout. regression_nosaver: the same with the MetaGraphDef's saver_def removed.
// wide: variables named as regression's, with W of shape [1, 2] (a checkpoint that must not
//   fit regression).
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

class Regression(tf.Module):
    def __init__(self, w):
        self.w = tf.Variable(w)
        self.b = tf.Variable([0.0])
    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def serve(self, x):
        return {"y": tf.matmul(x, self.w) + self.b}
    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x"),
                                  tf.TensorSpec([None, 1], tf.float32, name="y")])
    def train(self, x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.matmul(x, self.w) + self.b - y))
        dw, db = tape.gradient(loss, [self.w, self.b])
        self.w.assign_sub(0.1 * dw)
        self.b.assign_sub(0.1 * db)
        return {"loss": loss}

regression = Regression([[0.5]])
signatures = {"serving_default": regression.serve, "train": regression.train}
tf.saved_model.save(regression, f"{root}/regression/1", signatures=signatures)
tf.saved_model.save(regression, f"{root}/regression_triton/1/model.savedmodel",
                    signatures=signatures)
tf.saved_model.save(regression, f"{root}/regression_nosaver/1", signatures=signatures)
from tensorflow.core.protobuf import saved_model_pb2
path = f"{root}/regression_nosaver/1/saved_model.pb"
proto = saved_model_pb2.SavedModel()
with open(path, "rb") as f:
    proto.ParseFromString(f.read())
proto.meta_graphs[0].ClearField("saver_def")
with open(path, "wb") as f:
    f.write(proto.SerializeToString())
wide = Regression([[0.5, 1.0]])
tf.saved_model.save(wide, f"{root}/wide/1", signatures={"serving_default": wide.serve})
)py";

constexpr char kTraining[] = "parameters { key: \"training\" value { string_value: \"true\" } }";

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

  // `model` loaded with training on from `version` (default: its version 1), checked to train.
  std::unique_ptr<Model> LoadTrainable(const std::string& model,
                                       const std::filesystem::path& version = {}) {
    absl::StatusOr<std::unique_ptr<Model>> loaded =
        backend_.Load(Complete(model, kTraining), version.empty() ? Version(model) : version);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    if (!loaded.ok()) return nullptr;
    const absl::Status can_train = (*loaded)->CanTrain();
    EXPECT_TRUE(can_train.ok()) << can_train;
    return *std::move(loaded);
  }

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

// What `model` answers for x = [[0], [1], [-2]].
std::vector<float> Probe(Model& model) {
  absl::StatusOr<core::TensorMap> outputs = model.Run({{"x", Floats({3, 1}, {0, 1, -2})}});
  EXPECT_TRUE(outputs.ok()) << outputs.status();
  return outputs.ok() ? FloatsOf(outputs->at("y")) : std::vector<float>{};
}

// One step on x = [[1], [2]] towards y = 3x + 2.
absl::StatusOr<double> Step(Model& model) {
  return model.Train({{"x", Floats({2, 1}, {1, 2})}}, {{"y", Floats({2, 1}, {5, 8})}});
}

TEST_F(TensorFlowBackendTest, ATrainSignatureLeavesConfigCompletionToTheServingOne) {
  const core::ModelConfig config = Complete("regression", kTraining);
  ASSERT_EQ(config.inputs.size(), 1u);
  EXPECT_EQ(config.inputs[0].name, "x");
  ASSERT_EQ(config.outputs.size(), 1u);
  EXPECT_EQ(config.outputs[0].name, "y");
}

TEST_F(TensorFlowBackendTest, ATrainStepChangesWhatRunAnswers) {
  std::unique_ptr<Model> model = LoadTrainable("regression");
  ASSERT_NE(model, nullptr);
  EXPECT_THAT(Probe(*model), ElementsAre(0.0f, 0.5f, -1.0f));
  // Predictions 0.5 and 1 against 5 and 8: (4.5² + 7²) / 2.
  absl::StatusOr<double> loss = Step(*model);
  ASSERT_TRUE(loss.ok()) << loss.status();
  EXPECT_DOUBLE_EQ(*loss, 34.625);
  // dW = -(4.5 + 2 * 7) = -18.5, db = -11.5: W = 2.35, b = 1.15.
  const std::vector<float> after = Probe(*model);
  ASSERT_EQ(after.size(), 3u);
  EXPECT_FLOAT_EQ(after[0], 1.15f);
  EXPECT_FLOAT_EQ(after[1], 3.5f);
  loss = Step(*model);
  ASSERT_TRUE(loss.ok()) << loss.status();
  EXPECT_LT(*loss, 34.625);
}

TEST_F(TensorFlowBackendTest, RestoreStateGoesBackToTheSavedWeights) {
  std::unique_ptr<Model> model = LoadTrainable("regression_triton");
  ASSERT_NE(model, nullptr);
  ASSERT_TRUE(Step(*model).ok());
  absl::StatusOr<Model::State> state = model->SaveState();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_TRUE(state->contains("variables.index"));
  EXPECT_TRUE(state->contains("variables.data-00000-of-00001"));
  const std::vector<float> saved = Probe(*model);
  ASSERT_TRUE(Step(*model).ok());
  ASSERT_TRUE(Step(*model).ok());
  EXPECT_NE(Probe(*model), saved);
  const absl::Status restored = model->RestoreState(*state);
  ASSERT_TRUE(restored.ok()) << restored;
  EXPECT_EQ(Probe(*model), saved);

  // A fresh instance takes the same state.
  std::unique_ptr<Model> fresh = LoadTrainable("regression_triton");
  ASSERT_NE(fresh, nullptr);
  ASSERT_TRUE(fresh->RestoreState(*state).ok());
  EXPECT_EQ(Probe(*fresh), saved);
}

TEST_F(TensorFlowBackendTest, RestoreStateRefusesWhatIsNotThisModelsAndChangesNothing) {
  std::unique_ptr<Model> model = LoadTrainable("regression");
  ASSERT_NE(model, nullptr);
  ASSERT_TRUE(Step(*model).ok());
  const std::vector<float> before = Probe(*model);
  auto refused = [&](const Model::State& state, absl::string_view message) {
    const absl::Status status = model->RestoreState(state);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(status.message(), HasSubstr(message));
    EXPECT_EQ(Probe(*model), before);
  };
  refused({}, "needs sections variables.index and variables.data-*, and holds none");
  refused({{"torchscript_module", "x"}}, "section 'torchscript_module' is not a file");
  refused({{"variables.index", "garbage"}, {"variables.data-00000-of-00001", ""}},
          "the checkpoint index is corrupt");
  // Variables named as this model's, W [1, 2]: TensorFlow itself would assign it.
  Model::State wide;
  for (const char* file : {"variables.index", "variables.data-00000-of-00001"}) {
    std::ifstream in(Version("wide") / "variables" / file, std::ios::binary);
    wide[file] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  refused(wide, "is FP32 [1, 2] but the model's is FP32 [1, 1]");
}

TEST_F(TensorFlowBackendTest, ExportedVersionsServeTheTrainedWeightsInBothLayouts) {
  for (const std::string name : {"regression", "regression_triton"}) {
    SCOPED_TRACE(name);
    std::unique_ptr<Model> model = LoadTrainable(name);
    ASSERT_NE(model, nullptr);
    ASSERT_TRUE(Step(*model).ok());
    absl::StatusOr<Model::State> state = model->SaveState();
    ASSERT_TRUE(state.ok()) << state.status();
    const std::filesystem::path out = repo_->path() / (name + "_published") / "2";
    std::filesystem::create_directories(out);
    const core::ModelConfig config = Complete(name);
    const absl::Status exported = backend_.ExportVersion(config, *state, Version(name), out);
    ASSERT_TRUE(exported.ok()) << exported;
    const std::filesystem::path saved_model = name == "regression" ? out : out / "model.savedmodel";
    EXPECT_TRUE(std::filesystem::is_regular_file(saved_model / "saved_model.pb"));
    EXPECT_TRUE(std::filesystem::is_regular_file(saved_model / "variables" / "variables.index"));
    EXPECT_FALSE(std::filesystem::exists(saved_model / "fingerprint.pb"));

    absl::StatusOr<std::unique_ptr<Model>> published = backend_.Load(config, out);
    ASSERT_TRUE(published.ok()) << published.status();
    EXPECT_EQ(Probe(**published), Probe(*model));
    // It trains on from there too.
    std::unique_ptr<Model> trainable = LoadTrainable(name, out);
    ASSERT_NE(trainable, nullptr);
    EXPECT_EQ(Probe(*trainable), Probe(*model));
  }
  EXPECT_EQ(backend_
                .ExportVersion(Complete("regression"), {}, Version("regression"),
                               repo_->path() / "unused")
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TensorFlowBackendTest, BadTrainingRequestsAreNamedAndChangeNothing) {
  std::unique_ptr<Model> model = LoadTrainable("regression");
  ASSERT_NE(model, nullptr);
  const core::TensorMap x = {{"x", Floats({2, 1}, {1, 2})}};
  auto refused = [&](const core::TensorMap& targets, absl::string_view message) {
    const absl::StatusOr<double> loss = model->Train(x, targets);
    EXPECT_EQ(loss.status().code(), absl::StatusCode::kInvalidArgument) << loss.status();
    EXPECT_THAT(loss.status().message(), HasSubstr(message));
    EXPECT_THAT(Probe(*model), ElementsAre(0.0f, 0.5f, -1.0f));
  };
  refused({}, "missing target 'y': signature 'train' of model 'regression' takes it");
  refused({{"y", Floats({2, 1}, {5, 8})}, {"z", Floats({2, 1}, {5, 8})}},
          "unknown target 'z' for model 'regression'; it takes y");
  std::string doubles(2 * sizeof(double), '\0');
  refused({{"y", core::Tensor::Owning(core::DataType::kFp64, {2, 1}, doubles)}},
          "target 'y' is FP64 but signature 'train' takes FP32");
  refused({{"y", Floats({2, 2}, {1, 2, 3, 4})}},
          "target 'y' has shape [2, 2] but signature 'train' takes [-1, 1]");

  // A non-finite loss is refused, though the signature has already applied its step.
  const absl::StatusOr<double> nan = model->Train(x, {{"y", Floats({2, 1}, {std::nanf(""), 8})}});
  EXPECT_EQ(nan.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(nan.status().message(), HasSubstr("the loss is nan; the signature applied"));
}

TEST_F(TensorFlowBackendTest, ModelsThatCannotTrainSayWhy) {
  absl::StatusOr<std::unique_ptr<Model>> off =
      backend_.Load(Complete("regression"), Version("regression"));
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ((*off)->CanTrain().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT((*off)->CanTrain().message(), HasSubstr("training is off"));
  EXPECT_EQ((*off)->Train({}, {}).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*off)->SaveState().status().code(), absl::StatusCode::kFailedPrecondition);

  auto cannot = [&](const std::string& model, const std::string& config,
                    absl::string_view message) {
    absl::StatusOr<std::unique_ptr<Model>> loaded =
        backend_.Load(Complete(model, config), Version(model));
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ((*loaded)->CanTrain().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT((*loaded)->CanTrain().message(), HasSubstr(message));
  };
  cannot("linear", kTraining,
         "its training signature (parameter training_signature, default train) is missing: the "
         "SavedModel has no signature 'train'");
  cannot("regression_nosaver", kTraining, "the SavedModel has no saver");
  cannot("regression",
         absl::StrCat(kTraining,
                      " parameters { key: \"training_signature\" value { "
                      "string_value: \"serving_default\" } }"),
         "signature 'serving_default' takes no inputs besides the model's");
}

}  // namespace
}  // namespace modeld::backend
