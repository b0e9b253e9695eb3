#include "backend/onnx/onnx_backend.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/temp_repository.h"
#include "testing/tensors.h"

namespace modeld::backend {
namespace {

using ::modeld::testing::MakeTensor;
using ::modeld::testing::Values;

using ::testing::HasSubstr;

// Small ONNX models, written with the venv's onnx package (each exercises the C API functions
// named beside it in ort_api.h through OnnxBackend).
constexpr char kWriteModels[] = R"py(
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

root = Path(sys.argv[1])


def save(name, graph, external=False):
    folder = root / name / "1"
    folder.mkdir(parents=True)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if external:
        onnx.save_model(model, folder / "model.onnx", save_as_external_data=True,
                        all_tensors_to_one_file=True, location="model.onnx.data",
                        size_threshold=0)
    else:
        onnx.save_model(model, folder / "model.onnx")


# linear: y = x @ W + b, x FP32 [N, 3], y FP32 [N, 2]; the weights in model.onnx.data.
w = numpy_helper.from_array(np.array([[1, 2], [3, 4], [5, 6]], np.float32), "W")
b = numpy_helper.from_array(np.array([0.5, -1], np.float32), "b")
save("linear", helper.make_graph(
    [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
    "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], [w, b]), external=True)

# all_types: out_<t> = Identity(in_<t>), [N, 2], for every type modeld serves.
types = {"bool": TensorProto.BOOL, "uint8": TensorProto.UINT8, "uint16": TensorProto.UINT16,
         "uint32": TensorProto.UINT32, "uint64": TensorProto.UINT64, "int8": TensorProto.INT8,
         "int16": TensorProto.INT16, "int32": TensorProto.INT32, "int64": TensorProto.INT64,
         "float16": TensorProto.FLOAT16, "float": TensorProto.FLOAT,
         "double": TensorProto.DOUBLE, "string": TensorProto.STRING}
save("all_types", helper.make_graph(
    [helper.make_node("Identity", [f"in_{t}"], [f"out_{t}"]) for t in types], "all_types",
    [helper.make_tensor_value_info(f"in_{t}", code, ["N", 2]) for t, code in types.items()],
    [helper.make_tensor_value_info(f"out_{t}", code, ["N", 2]) for t, code in types.items()]))

# fixed: b = Relu(a), FP32 [2, 3] exactly: no batch dimension.
save("fixed", helper.make_graph(
    [helper.make_node("Relu", ["a"], ["b"])], "fixed",
    [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])],
    [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 3])]))

# row_sum: s = ReduceSum(x, axis 1), x FP32 [N, 3] -> s FP32 [N]: an item of no dims.
axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
save("row_sum", helper.make_graph(
    [helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0)], "row_sum",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
    [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["N"])], [axes]))

# with_sequence: y = Identity(x), and parts = SequenceConstruct(x): a non-tensor output.
save("with_sequence", helper.make_graph(
    [helper.make_node("Identity", ["x"], ["y"]),
     helper.make_node("SequenceConstruct", ["x"], ["parts"])], "with_sequence",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
     helper.make_tensor_sequence_value_info("parts", TensorProto.FLOAT, ["N", 3])]))

# bf16_in: an input of a type modeld does not serve (bfloat16).
save("bf16_in", helper.make_graph(
    [helper.make_node("Identity", ["c"], ["d"])], "bf16_in",
    [helper.make_tensor_value_info("c", TensorProto.BFLOAT16, ["N", 2])],
    [helper.make_tensor_value_info("d", TensorProto.BFLOAT16, ["N", 2])]))

(root / "garbage" / "1").mkdir(parents=True)
(root / "garbage" / "1" / "model.onnx").write_bytes(b"not an onnx model at all")
)py";

class OnnxBackendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
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

  std::filesystem::path Version(const std::string& model) { return repo_->path() / model / "1"; }

  // The config CompleteConfig makes for `model` from `config_text`, or its error.
  absl::StatusOr<inference::ModelConfig> Completed(const std::string& model,
                                                   const std::string& config_text = "") {
    absl::StatusOr<inference::ModelConfig> proto = core::ParseModelConfigProto(config_text, "test");
    EXPECT_TRUE(proto.ok()) << proto.status();
    proto->set_platform(kOnnxPlatform);
    if (absl::Status status = backend_.CompleteConfig(Version(model), *proto); !status.ok()) {
      return status;
    }
    return *proto;
  }

  // `model` completed, validated and loaded.
  std::unique_ptr<Model> Load(const std::string& model, const std::string& config_text = "",
                              core::ModelConfig* config_out = nullptr) {
    absl::StatusOr<inference::ModelConfig> proto = Completed(model, config_text);
    EXPECT_TRUE(proto.ok()) << proto.status();
    if (!proto.ok()) return nullptr;
    absl::StatusOr<core::ModelConfig> config = core::ModelConfigFromProto(*proto, "test", model);
    EXPECT_TRUE(config.ok()) << config.status();
    if (!config.ok()) return nullptr;
    absl::StatusOr<std::unique_ptr<Model>> loaded = backend_.Load(*config, Version(model));
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    if (config_out != nullptr) *config_out = *config;
    return loaded.ok() ? *std::move(loaded) : nullptr;
  }

  static testing::TempRepository* repo_;
  OnnxBackend backend_;
};

testing::TempRepository* OnnxBackendTest::repo_ = nullptr;

TEST_F(OnnxBackendTest, ServesAFolderWithModelOnnxWithoutAConfig) {
  EXPECT_TRUE(backend_.ServesWithoutConfig(Version("linear")));
  EXPECT_FALSE(backend_.ServesWithoutConfig(repo_->path() / "linear"));
}

TEST_F(OnnxBackendTest, ADynamicFirstDimensionGivesBatchingAndDims) {
  absl::StatusOr<inference::ModelConfig> config = Completed("linear");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->max_batch_size(), kOnnxCompletedMaxBatchSize);
  EXPECT_TRUE(config->has_dynamic_batching());
  ASSERT_EQ(config->input_size(), 1);
  EXPECT_EQ(config->input(0).name(), "x");
  EXPECT_EQ(config->input(0).data_type(), inference::TYPE_FP32);
  EXPECT_THAT(config->input(0).dims(), ::testing::ElementsAre(3));
  ASSERT_EQ(config->output_size(), 1);
  EXPECT_EQ(config->output(0).name(), "y");
  EXPECT_THAT(config->output(0).dims(), ::testing::ElementsAre(2));
}

TEST_F(OnnxBackendTest, FixedShapesGiveNoBatchDimension) {
  absl::StatusOr<inference::ModelConfig> config = Completed("fixed");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->max_batch_size(), 0);
  EXPECT_FALSE(config->has_dynamic_batching());
  EXPECT_THAT(config->input(0).dims(), ::testing::ElementsAre(2, 3));
  std::unique_ptr<Model> model = Load("fixed");
  ASSERT_NE(model, nullptr);
  core::TensorMap inputs;
  inputs["a"] = MakeTensor<float>(core::DataType::kFp32, {2, 3}, {-1, 2, -3, 4, -5, 6});
  absl::StatusOr<core::TensorMap> outputs = model->Run(inputs);
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_THAT(Values<float>(outputs->at("b")), ::testing::ElementsAre(0, 2, 0, 4, 0, 6));
}

TEST_F(OnnxBackendTest, RunsWithWeightsFromExternalData) {
  std::unique_ptr<Model> model = Load("linear");
  ASSERT_NE(model, nullptr);
  core::TensorMap inputs;
  inputs["x"] = MakeTensor<float>(core::DataType::kFp32, {2, 3}, {1, 0, 0, 1, 1, 1});
  absl::StatusOr<core::TensorMap> outputs = model->Run(inputs);
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  const core::Tensor& y = outputs->at("y");
  EXPECT_EQ(y.shape(), (core::Shape{2, 2}));
  EXPECT_THAT(Values<float>(y), ::testing::ElementsAre(1.5, 1, 9.5, 11));
}

TEST_F(OnnxBackendTest, DefaultModelFilenameNamesTheFileToLoad) {
  std::filesystem::create_directories(Version("renamed"));
  std::filesystem::copy_file(Version("fixed") / "model.onnx", Version("renamed") / "iris.onnx",
                             std::filesystem::copy_options::overwrite_existing);
  std::unique_ptr<Model> model = Load("renamed", R"pb(default_model_filename: "iris.onnx")pb");
  ASSERT_NE(model, nullptr);
  core::TensorMap inputs;
  inputs["a"] = MakeTensor<float>(core::DataType::kFp32, {2, 3}, {-1, 2, -3, 4, -5, 6});
  absl::StatusOr<core::TensorMap> outputs = model->Run(inputs);
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_THAT(Values<float>(outputs->at("b")), ::testing::ElementsAre(0, 2, 0, 4, 0, 6));
  absl::StatusOr<inference::ModelConfig> outside =
      Completed("renamed", R"pb(default_model_filename: "../fixed/1/model.onnx")pb");
  ASSERT_FALSE(outside.ok());
  EXPECT_THAT(outside.status().message(), HasSubstr("must be a file name inside the version"));
}

TEST_F(OnnxBackendTest, AnItemOfNoDimsIsShownWithDimsOne) {
  absl::StatusOr<inference::ModelConfig> config = Completed("row_sum");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->output(0).dims(), ::testing::ElementsAre(1));
  EXPECT_TRUE(config->output(0).has_reshape());
  std::unique_ptr<Model> model = Load("row_sum");
  ASSERT_NE(model, nullptr);
  core::TensorMap inputs;
  inputs["x"] = MakeTensor<float>(core::DataType::kFp32, {3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  absl::StatusOr<core::TensorMap> outputs = model->Run(inputs);
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_EQ(outputs->at("s").shape(), (core::Shape{3, 1}));
  EXPECT_THAT(Values<float>(outputs->at("s")), ::testing::ElementsAre(6, 15, 24));
}

TEST_F(OnnxBackendTest, EveryDatatypeRoundTrips) {
  core::ModelConfig config;
  std::unique_ptr<Model> model = Load("all_types", "", &config);
  ASSERT_NE(model, nullptr);
  ASSERT_EQ(config.inputs.size(), 13u);
  core::TensorMap inputs;
  for (const core::TensorSpec& spec : config.inputs) {
    if (spec.type == core::DataType::kBytes) {
      std::string bytes;
      for (absl::string_view element : {absl::string_view("a"), absl::string_view(""),
                                        absl::string_view("z\0y", 3), absl::string_view("ü")}) {
        core::AppendBytesElement(element, bytes);
      }
      inputs[spec.name] = core::Tensor::Owning(spec.type, {2, 2}, std::move(bytes));
      continue;
    }
    std::string bytes(4 * core::DataTypeSize(spec.type), '\0');
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i % 2 == 0 ? 1 : 0);
    inputs[spec.name] = core::Tensor::Owning(spec.type, {2, 2}, std::move(bytes));
  }
  absl::StatusOr<core::TensorMap> outputs = model->Run(inputs);
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  for (const core::TensorSpec& spec : config.inputs) {
    const std::string out = absl::StrCat("out_", spec.name.substr(3));
    ASSERT_TRUE(outputs->contains(out)) << out;
    EXPECT_EQ(outputs->at(out).type(), spec.type) << out;
    EXPECT_EQ(outputs->at(out).shape(), (core::Shape{2, 2})) << out;
    EXPECT_EQ(outputs->at(out).bytes(), inputs.at(spec.name).bytes()) << out;
  }
}

TEST_F(OnnxBackendTest, ASequenceOutputIsRefusedSayingWhatToDo) {
  const absl::Status status = Completed("with_sequence").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("model.onnx output 'parts' is a sequence, not a tensor"));
  EXPECT_THAT(status.message(), HasSubstr("zipmap=False"));
  // A stated config that leaves it out serves the tensor output.
  std::unique_ptr<Model> model = Load("with_sequence",
                                      "max_batch_size: 4\n"
                                      "input { name: \"x\" data_type: TYPE_FP32 dims: 3 }\n"
                                      "output { name: \"y\" data_type: TYPE_FP32 dims: 3 }\n");
  ASSERT_NE(model, nullptr);
  core::TensorMap inputs;
  inputs["x"] = MakeTensor<float>(core::DataType::kFp32, {1, 3}, {7, 8, 9});
  absl::StatusOr<core::TensorMap> outputs = model->Run(inputs);
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_THAT(Values<float>(outputs->at("y")), ::testing::ElementsAre(7, 8, 9));
}

TEST_F(OnnxBackendTest, AStatedConfigThatContradictsTheModelIsRefusedNamingBothSides) {
  struct Case {
    std::string config;
    std::string message;
  };
  const std::string output = "output { name: \"y\" data_type: TYPE_FP32 dims: 2 }\n";
  const std::vector<Case> cases = {
      {"max_batch_size: 8\ninput { name: \"x\" data_type: TYPE_FP64 dims: 3 }\n" + output,
       "input 'x' is declared TYPE_FP64 but model.onnx has tensor(float) (TYPE_FP32)"},
      {"max_batch_size: 8\ninput { name: \"x\" data_type: TYPE_FP32 dims: 5 }\n" + output,
       "input 'x' has shape [-1, 5] (with the batch dimension) but model.onnx has [-1, 3]"},
      {"max_batch_size: 8\ninput { name: \"z\" data_type: TYPE_FP32 dims: 3 }\n" + output,
       "input 'z' is not in model.onnx, whose inputs are: x"},
  };
  for (const Case& c : cases) {
    const absl::Status status = Completed("linear", c.config).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.config;
    EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.config;
  }
}

TEST_F(OnnxBackendTest, ATypeModeldDoesNotServeIsNamed) {
  const absl::Status status = Completed("bf16_in").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("model.onnx input 'c' has dtype tensor(bfloat16), which modeld does not "
                        "serve"));
}

TEST_F(OnnxBackendTest, AMissingOrBrokenFileIsAnErrorNamingIt) {
  const absl::Status missing = Completed("nothing_here").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("model.onnx does not exist"));
  const absl::Status garbage = Completed("garbage").status();
  EXPECT_FALSE(garbage.ok());
  EXPECT_THAT(garbage.message(), HasSubstr("cannot load"));
  EXPECT_THAT(garbage.message(), HasSubstr("garbage/1/model.onnx"));
}

TEST_F(OnnxBackendTest, TheOptimizedModelIsWrittenOnceAndLoadedUntilTheModelChanges) {
  const std::filesystem::path cache = Version("fixed") / "model.optimized.onnx";
  std::filesystem::remove(cache);
  const std::string config =
      "parameters { key: \"optimized_model_file\" value { string_value: "
      "\"model.optimized.onnx\" } }\n";
  core::TensorMap inputs;
  inputs["a"] = MakeTensor<float>(core::DataType::kFp32, {2, 3}, {-1, 2, -3, 4, -5, 6});
  auto run = [&] {
    std::unique_ptr<Model> model = Load("fixed", config);
    EXPECT_NE(model, nullptr);
    if (model == nullptr) return std::vector<float>();
    absl::StatusOr<core::TensorMap> outputs = model->Run(inputs);
    EXPECT_TRUE(outputs.ok()) << outputs.status();
    return outputs.ok() ? Values<float>(outputs->at("b")) : std::vector<float>();
  };
  EXPECT_THAT(run(), ::testing::ElementsAre(0, 2, 0, 4, 0, 6));
  ASSERT_TRUE(std::filesystem::is_regular_file(cache));  // written by the first load
  const auto written = std::filesystem::last_write_time(cache);
  EXPECT_THAT(run(), ::testing::ElementsAre(0, 2, 0, 4, 0, 6));
  EXPECT_EQ(std::filesystem::last_write_time(cache), written);  // loaded, not written again
  // A newer model.onnx makes the cache stale: optimized and written again.
  std::filesystem::last_write_time(Version("fixed") / "model.onnx",
                                   written + std::chrono::seconds(10));
  EXPECT_THAT(run(), ::testing::ElementsAre(0, 2, 0, 4, 0, 6));
  EXPECT_GT(std::filesystem::last_write_time(cache), written);
  std::filesystem::remove(cache);
}

TEST_F(OnnxBackendTest, ThreadParametersAreChecked) {
  absl::StatusOr<inference::ModelConfig> proto = Completed("linear");
  ASSERT_TRUE(proto.ok());
  (*proto->mutable_parameters())["allow_spinning"].set_string_value("yes");
  absl::StatusOr<core::ModelConfig> config = core::ModelConfigFromProto(*proto, "test", "linear");
  ASSERT_TRUE(config.ok());
  const absl::Status status = backend_.Load(*config, Version("linear")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("parameter allow_spinning 'yes' is neither"));
  (*proto->mutable_parameters())["allow_spinning"].set_string_value("0");
  (*proto->mutable_parameters())["graph_optimization_level"].set_string_value("most");
  config = core::ModelConfigFromProto(*proto, "test", "linear");
  ASSERT_TRUE(config.ok());
  EXPECT_THAT(backend_.Load(*config, Version("linear")).status().message(),
              HasSubstr("parameter graph_optimization_level 'most' is none of disable, basic, "
                        "extended, all"));
  (*proto->mutable_parameters())["graph_optimization_level"].set_string_value("basic");
  (*proto->mutable_parameters())["allow_spinning"].set_string_value("1");
  (*proto->mutable_parameters())["intra_op_thread_count"].set_string_value("1");
  config = core::ModelConfigFromProto(*proto, "test", "linear");
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(backend_.Load(*config, Version("linear")).ok());
}

}  // namespace
}  // namespace modeld::backend
