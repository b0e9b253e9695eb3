#include "backend/torch/torch_backend.h"

#include <ATen/Parallel.h>
#include <torch/csrc/jit/api/module.h>

#include <cstring>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/model_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/tensors.h"

namespace modeld::backend {
namespace {

using ::modeld::testing::MakeTensor;
using ::modeld::testing::Values;

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// As a std::string, which gtest prints as text (Debian's absl::string_view is not std's).
std::string Message(const absl::Status& status) { return std::string(status.message()); }

class TorchBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("torch_backend_test_", info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "1");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Saves a module whose methods are the TorchScript `source` as <dir>/1/<filename>.
  void SaveModule(const std::string& source, const std::string& filename = "model.pt") {
    torch::jit::Module module("m");
    module.define(source);
    module.save((dir_ / "1" / filename).string());
  }

  // Saves `source`, loads it under `config_text` and runs it on x = [[1, 2]] (FP32).
  absl::StatusOr<core::TensorMap> SaveLoadAndRun(const std::string& source,
                                                 absl::string_view config_text) {
    SaveModule(source);
    absl::StatusOr<std::unique_ptr<Model>> model = Load(config_text);
    if (!model.ok()) return model.status();
    core::TensorMap inputs;
    inputs["x"] = MakeTensor<float>(core::DataType::kFp32, {1, 2}, {1, 2});
    return (*model)->Run(inputs);
  }

  absl::StatusOr<std::unique_ptr<Model>> Load(absl::string_view config_text) {
    absl::StatusOr<core::ModelConfig> config = core::ParseModelConfig(config_text, "test", "m");
    if (!config.ok()) return config.status();
    return backend_.Load(*config, dir_ / "1");
  }

  std::filesystem::path dir_;
  TorchBackend backend_;
};

constexpr char kDoubleConfig[] = R"pb(
  platform: "pytorch_libtorch"
  max_batch_size: 8
  input {
    name: "x"
    data_type: TYPE_FP32
    dims: [ 2 ]
  }
  output {
    name: "y"
    data_type: TYPE_FP32
    dims: [ 2 ]
  }
)pb";

TEST_F(TorchBackendTest, SingleOutput) {
  SaveModule("def forward(self, x):\n  return x * 2\n");
  absl::StatusOr<std::unique_ptr<Model>> model = Load(kDoubleConfig);
  ASSERT_TRUE(model.ok()) << model.status();
  core::TensorMap inputs;
  inputs["x"] = MakeTensor<float>(core::DataType::kFp32, {3, 2}, {1, 2, 3, 4, 5, 6});
  absl::StatusOr<core::TensorMap> outputs = (*model)->Run(inputs);
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  const core::Tensor& y = outputs->at("y");
  EXPECT_EQ(y.type(), core::DataType::kFp32);
  EXPECT_THAT(y.shape(), ElementsAre(3, 2));
  EXPECT_THAT(Values<float>(y), ElementsAre(2, 4, 6, 8, 10, 12));
}

TEST_F(TorchBackendTest, OutputThatAliasesItsInputOutlivesTheInput) {
  SaveModule("def forward(self, x):\n  return x\n");
  absl::StatusOr<std::unique_ptr<Model>> model = Load(kDoubleConfig);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<core::TensorMap> outputs;
  {
    core::TensorMap inputs;
    inputs["x"] = MakeTensor<float>(core::DataType::kFp32, {1, 2}, {7, 8});
    outputs = (*model)->Run(inputs);
  }
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_THAT(Values<float>(outputs->at("y")), ElementsAre(7, 8));
}

constexpr char kTwoOutputConfig[] = R"pb(
  platform: "pytorch_libtorch"
  input {
    name: "a"
    data_type: TYPE_FP32
    dims: [ 3 ]
  }
  input {
    name: "b"
    data_type: TYPE_FP32
    dims: [ 3 ]
  }
  output {
    name: "sum"
    data_type: TYPE_FP32
    dims: [ 3 ]
  }
  output {
    name: "difference"
    data_type: TYPE_FP32
    dims: [ 3 ]
  }
)pb";

core::TensorMap TwoInputs() {
  core::TensorMap inputs;
  inputs["a"] = MakeTensor<float>(core::DataType::kFp32, {3}, {10, 20, 30});
  inputs["b"] = MakeTensor<float>(core::DataType::kFp32, {3}, {1, 2, 3});
  return inputs;
}

TEST_F(TorchBackendTest, TupleOutputsMapToConfigOutputsInOrder) {
  SaveModule("def forward(self, a, b):\n  return a + b, a - b\n");
  absl::StatusOr<std::unique_ptr<Model>> model = Load(kTwoOutputConfig);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<core::TensorMap> outputs = (*model)->Run(TwoInputs());
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_THAT(outputs->at("sum").shape(), ElementsAre(3));
  EXPECT_THAT(Values<float>(outputs->at("sum")), ElementsAre(11, 22, 33));
  EXPECT_THAT(Values<float>(outputs->at("difference")), ElementsAre(9, 18, 27));
}

TEST_F(TorchBackendTest, ListOutputsMapToConfigOutputsInOrder) {
  SaveModule("def forward(self, a, b):\n  return [a + b, a - b]\n");
  absl::StatusOr<std::unique_ptr<Model>> model = Load(kTwoOutputConfig);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<core::TensorMap> outputs = (*model)->Run(TwoInputs());
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_THAT(Values<float>(outputs->at("sum")), ElementsAre(11, 22, 33));
  EXPECT_THAT(Values<float>(outputs->at("difference")), ElementsAre(9, 18, 27));
}

TEST_F(TorchBackendTest, Int64AndBool) {
  SaveModule("def forward(self, ids, mask):\n  return ids * mask.long(), ids > 0\n");
  absl::StatusOr<std::unique_ptr<Model>> model = Load(R"pb(
    platform: "pytorch_libtorch"
    max_batch_size: 4
    input {
      name: "ids"
      data_type: TYPE_INT64
      dims: [ -1 ]
    }
    input {
      name: "mask"
      data_type: TYPE_BOOL
      dims: [ -1 ]
    }
    output {
      name: "masked"
      data_type: TYPE_INT64
      dims: [ -1 ]
    }
    output {
      name: "positive"
      data_type: TYPE_BOOL
      dims: [ -1 ]
    }
  )pb");
  ASSERT_TRUE(model.ok()) << model.status();
  core::TensorMap inputs;
  inputs["ids"] = MakeTensor<int64_t>(core::DataType::kInt64, {1, 4}, {5, -6, 7, 1LL << 40});
  inputs["mask"] = MakeTensor<uint8_t>(core::DataType::kBool, {1, 4}, {1, 1, 0, 1});
  absl::StatusOr<core::TensorMap> outputs = (*model)->Run(inputs);
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_EQ(outputs->at("masked").type(), core::DataType::kInt64);
  EXPECT_THAT(outputs->at("masked").shape(), ElementsAre(1, 4));
  EXPECT_THAT(Values<int64_t>(outputs->at("masked")), ElementsAre(5, -6, 0, 1LL << 40));
  EXPECT_EQ(outputs->at("positive").type(), core::DataType::kBool);
  EXPECT_THAT(Values<uint8_t>(outputs->at("positive")), ElementsAre(1, 0, 1, 1));
}

TEST_F(TorchBackendTest, ReshapeViewsInputsAndRestoresOutputs) {
  // The model sees [batch, 2, 2] and transposes each item; the API sees [batch, 4].
  SaveModule("def forward(self, x):\n  return x.transpose(1, 2)\n");
  absl::StatusOr<std::unique_ptr<Model>> model = Load(R"pb(
    platform: "pytorch_libtorch"
    max_batch_size: 8
    input {
      name: "x"
      data_type: TYPE_FP32
      dims: [ 4 ]
      reshape { shape: [ 2, 2 ] }
    }
    output {
      name: "y"
      data_type: TYPE_FP32
      dims: [ 4 ]
      reshape { shape: [ 2, 2 ] }
    }
  )pb");
  ASSERT_TRUE(model.ok()) << model.status();
  core::TensorMap inputs;
  inputs["x"] = MakeTensor<float>(core::DataType::kFp32, {2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  absl::StatusOr<core::TensorMap> outputs = (*model)->Run(inputs);
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_THAT(outputs->at("y").shape(), ElementsAre(2, 4));
  EXPECT_THAT(Values<float>(outputs->at("y")), ElementsAre(1, 3, 2, 4, 5, 7, 6, 8));
}

TEST_F(TorchBackendTest, DefaultModelFilename) {
  SaveModule("def forward(self, x):\n  return x * 2\n", "custom.pt");
  absl::StatusOr<std::unique_ptr<Model>> model =
      Load(absl::StrCat(kDoubleConfig, R"pb(default_model_filename: "custom.pt")pb"));
  EXPECT_TRUE(model.ok()) << model.status();
}

TEST_F(TorchBackendTest, DefaultModelFilenameMustStayInTheVersionFolder) {
  SaveModule("def forward(self, x):\n  return x * 2\n");
  for (const char* name : {"../1/model.pt", "/etc/passwd", ".."}) {
    absl::StatusOr<std::unique_ptr<Model>> model =
        Load(absl::StrCat(kDoubleConfig, R"pb(default_model_filename: ")pb", name, R"pb(")pb"));
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(Message(model.status()), HasSubstr(name));
  }
}

TEST_F(TorchBackendTest, MissingFileIsNotFound) {
  absl::StatusOr<std::unique_ptr<Model>> model = Load(kDoubleConfig);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(model.status()), HasSubstr((dir_ / "1" / "model.pt").string()));
}

TEST_F(TorchBackendTest, CorruptFileIsInternal) {
  std::ofstream(dir_ / "1" / "model.pt") << "this is not a zip archive";
  absl::StatusOr<std::unique_ptr<Model>> model = Load(kDoubleConfig);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(Message(model.status()), HasSubstr("model.pt"));
}

TEST_F(TorchBackendTest, ArgumentCountMismatchIsInvalidArgument) {
  SaveModule("def forward(self, a, b):\n  return a + b\n");
  absl::StatusOr<std::unique_ptr<Model>> model = Load(kDoubleConfig);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(model.status()),
              AllOf(HasSubstr("forward takes 2 argument"), HasSubstr("declares 1 input")));
}

TEST_F(TorchBackendTest, ArgumentsBeyondTheInputsNeedDefaults) {
  absl::StatusOr<core::TensorMap> outputs = SaveLoadAndRun(
      "def forward(self, x, scale: float = 2.0):\n  return x * scale\n", kDoubleConfig);
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_THAT(Values<float>(outputs->at("y")), ElementsAre(2, 4));
}

TEST_F(TorchBackendTest, NonTensorArgumentIsInvalidArgument) {
  SaveModule("def forward(self, x: int):\n  return x\n");
  absl::StatusOr<std::unique_ptr<Model>> model = Load(kDoubleConfig);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(model.status()), AllOf(HasSubstr("'x'"), HasSubstr("int")));
}

TEST_F(TorchBackendTest, OutputDatatypeMismatchIsInternal) {
  SaveModule("def forward(self, x):\n  return x * 2\n");
  absl::StatusOr<std::unique_ptr<Model>> model = Load(R"pb(
    platform: "pytorch_libtorch"
    max_batch_size: 8
    input {
      name: "x"
      data_type: TYPE_FP32
      dims: [ 2 ]
    }
    output {
      name: "y"
      data_type: TYPE_INT32
      dims: [ 2 ]
    }
  )pb");
  ASSERT_TRUE(model.ok()) << model.status();
  core::TensorMap inputs;
  inputs["x"] = MakeTensor<float>(core::DataType::kFp32, {1, 2}, {1, 2});
  absl::StatusOr<core::TensorMap> outputs = (*model)->Run(inputs);
  EXPECT_EQ(outputs.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(Message(outputs.status()),
              AllOf(HasSubstr("'y'"), HasSubstr("FP32"), HasSubstr("INT32")));
}

TEST_F(TorchBackendTest, OutputShapeMismatchIsInternal) {
  absl::StatusOr<core::TensorMap> outputs =
      SaveLoadAndRun("def forward(self, x):\n  return x.sum(1)\n", kDoubleConfig);
  EXPECT_EQ(outputs.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(Message(outputs.status()),
              AllOf(HasSubstr("'y'"), HasSubstr("[1]"), HasSubstr("[1, 2]")));
}

TEST_F(TorchBackendTest, OutputCountMismatchIsInternal) {
  absl::StatusOr<core::TensorMap> outputs =
      SaveLoadAndRun("def forward(self, x):\n  return x, x\n", kDoubleConfig);
  EXPECT_EQ(outputs.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(Message(outputs.status()), AllOf(HasSubstr("2 value(s)"), HasSubstr("1 output")));
}

TEST_F(TorchBackendTest, NonTensorOutputIsInternal) {
  absl::StatusOr<core::TensorMap> outputs =
      SaveLoadAndRun("def forward(self, x):\n  return x.size(0)\n", kDoubleConfig);
  EXPECT_EQ(outputs.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(Message(outputs.status()), AllOf(HasSubstr("Int"), HasSubstr("'y'")));
}

TEST_F(TorchBackendTest, ErrorInsideForwardIsInternalWithTorchsMessage) {
  SaveModule("def forward(self, a, b):\n  return a + b, a - b\n");
  absl::StatusOr<std::unique_ptr<Model>> model = Load(R"pb(
    platform: "pytorch_libtorch"
    input {
      name: "a"
      data_type: TYPE_FP32
      dims: [ -1 ]
    }
    input {
      name: "b"
      data_type: TYPE_FP32
      dims: [ -1 ]
    }
    output {
      name: "sum"
      data_type: TYPE_FP32
      dims: [ -1 ]
    }
    output {
      name: "difference"
      data_type: TYPE_FP32
      dims: [ -1 ]
    }
  )pb");
  ASSERT_TRUE(model.ok()) << model.status();
  core::TensorMap inputs;
  inputs["a"] = MakeTensor<float>(core::DataType::kFp32, {3}, {1, 2, 3});
  inputs["b"] = MakeTensor<float>(core::DataType::kFp32, {4}, {1, 2, 3, 4});
  absl::StatusOr<core::TensorMap> outputs = (*model)->Run(inputs);
  EXPECT_EQ(outputs.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(Message(outputs.status()),
              AllOf(HasSubstr("the model rejected the input: "),
                    HasSubstr("must match the size of tensor b (4)"), Not(HasSubstr("Traceback"))));
  // The model still serves after a failure.
  inputs["b"] = MakeTensor<float>(core::DataType::kFp32, {3}, {1, 1, 1});
  EXPECT_TRUE((*model)->Run(inputs).ok());
}

TEST_F(TorchBackendTest, BytesInputIsInvalidArgument) {
  SaveModule("def forward(self, x):\n  return x\n");
  absl::StatusOr<std::unique_ptr<Model>> model = Load(R"pb(
    platform: "pytorch_libtorch"
    input {
      name: "text"
      data_type: TYPE_STRING
      dims: [ 1 ]
    }
    output {
      name: "y"
      data_type: TYPE_FP32
      dims: [ 1 ]
    }
  )pb");
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(model.status()), AllOf(HasSubstr("'text'"), HasSubstr("BYTES")));
}

std::string ThreadCountParameter(absl::string_view value) {
  return absl::StrCat("parameters { key: \"intra_op_thread_count\" value { string_value: \"", value,
                      "\" } }");
}

TEST_F(TorchBackendTest, BadIntraOpThreadCountIsInvalidArgument) {
  SaveModule("def forward(self, x):\n  return x * 2\n");
  for (const char* value : {"0", "-2", "four", ""}) {
    absl::StatusOr<std::unique_ptr<Model>> model =
        Load(absl::StrCat(kDoubleConfig, ThreadCountParameter(value)));
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument) << value;
    EXPECT_THAT(Message(model.status()), HasSubstr("intra_op_thread_count")) << value;
  }
}

// Each instance's thread count holds on its own worker thread, whatever other instances set.
TEST_F(TorchBackendTest, IntraOpThreadCountIsPerWorkerThread) {
  SaveModule("def forward(self, x):\n  return x * 2\n");
  auto load = [&](int threads) {
    return Load(absl::StrCat(kDoubleConfig, ThreadCountParameter(absl::StrCat(threads))));
  };
  absl::StatusOr<std::unique_ptr<Model>> three = load(3);
  absl::StatusOr<std::unique_ptr<Model>> one = load(1);
  ASSERT_TRUE(three.ok()) << three.status();
  ASSERT_TRUE(one.ok()) << one.status();
  core::TensorMap inputs;
  inputs["x"] = MakeTensor<float>(core::DataType::kFp32, {1, 2}, {1, 2});
  int threads_after_first_run = 0;
  int threads_after_other_instance = 0;
  std::thread worker([&] {
    ASSERT_TRUE((*three)->Run(inputs).ok());
    threads_after_first_run = at::get_num_threads();
    std::thread([&] { ASSERT_TRUE((*one)->Run(inputs).ok()); }).join();
    ASSERT_TRUE((*three)->Run(inputs).ok());
    threads_after_other_instance = at::get_num_threads();
  });
  worker.join();
  EXPECT_EQ(threads_after_first_run, 3);
  EXPECT_EQ(threads_after_other_instance, 3);
}

// Whether this machine has an NVIDIA GPU: CI and most development machines do not.
bool HasNvidiaGpu() { return std::filesystem::exists("/dev/nvidia0"); }

constexpr char kGpuDoubleConfig[] = R"pb(
  platform: "pytorch_libtorch"
  max_batch_size: 8
  input {
    name: "x"
    data_type: TYPE_FP32
    dims: [ 2 ]
  }
  output {
    name: "y"
    data_type: TYPE_FP32
    dims: [ 2 ]
  }
  instance_group {
    kind: KIND_GPU
    gpus: [ 0 ]
  }
)pb";

TEST_F(TorchBackendTest, AGpuInstanceWithoutAGpuIsRefusedNamingWhatIsMissing) {
  if (HasNvidiaGpu()) GTEST_SKIP() << "this machine has a GPU (GpuInstanceRunsOnTheGpu runs)";
  SaveModule("def forward(self, x):\n  return x * 2\n");
  absl::StatusOr<core::ModelConfig> config = core::ParseModelConfig(kGpuDoubleConfig, "test", "m");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<Model>> model = backend_.LoadOn(*config, dir_ / "1", 0);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition) << model.status();
  EXPECT_THAT(Message(model.status()), HasSubstr("KIND_GPU"));
  // A CPU instance of the same model still loads and runs.
  absl::StatusOr<core::TensorMap> outputs =
      SaveLoadAndRun("def forward(self, x):\n  return x * 2\n", kDoubleConfig);
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_THAT(Values<float>(outputs->at("y")), ElementsAre(2, 4));
}

TEST_F(TorchBackendTest, GpuInstanceRunsOnTheGpu) {
  if (!HasNvidiaGpu()) GTEST_SKIP() << "no NVIDIA GPU on this machine (/dev/nvidia0)";
  SaveModule("def forward(self, x):\n  assert x.is_cuda\n  return x * 2\n");
  absl::StatusOr<core::ModelConfig> config = core::ParseModelConfig(kGpuDoubleConfig, "test", "m");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<Model>> model = backend_.LoadOn(*config, dir_ / "1", 0);
  ASSERT_TRUE(model.ok()) << model.status();
  core::TensorMap inputs;
  inputs["x"] = MakeTensor<float>(core::DataType::kFp32, {2, 2}, {1, 2, 3, 4});
  absl::StatusOr<core::TensorMap> outputs = (*model)->Run(inputs);
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_THAT(Values<float>(outputs->at("y")), ElementsAre(2, 4, 6, 8));
}

}  // namespace
}  // namespace modeld::backend
