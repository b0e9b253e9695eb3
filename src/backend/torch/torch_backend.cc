#include "backend/torch/torch_backend.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <algorithm>
#include <exception>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "backend/model_inputs.h"
#include "backend/torch/torch_tensor.h"
#include "common/status_macros.h"

namespace modeld::backend {
namespace {

constexpr char kDefaultModelFilename[] = "model.pt";
constexpr char kIntraOpThreadsParameter[] = "intra_op_thread_count";

// LibTorch reports errors by exception; these turn them into the Status our interfaces use.
// c10::Error's what() carries a C++ backtrace that means nothing to a client, and an error
// raised inside TorchScript (a JITException, not a c10::Error) carries the script's traceback
// before the error itself; clients get the error alone ("RuntimeError: The size of ...").
absl::Status FrameworkError(absl::string_view context, absl::string_view message) {
  message = absl::StripTrailingAsciiWhitespace(message);
  constexpr absl::string_view kLastFrameEnd = "<--- HERE\n";
  if (absl::StrContains(message, "failed in the TorchScript interpreter")) {
    const size_t error_start = message.rfind(kLastFrameEnd);
    if (error_start != absl::string_view::npos) {
      message.remove_prefix(error_start + kLastFrameEnd.size());
    }
  }
  return absl::InternalError(context.empty() ? std::string(message)
                                             : absl::StrCat(context, ": ", message));
}
absl::Status FrameworkError(absl::string_view context, const c10::Error& error) {
  return FrameworkError(context, error.what_without_backtrace());
}
absl::Status FrameworkError(absl::string_view context, const std::exception& error) {
  return FrameworkError(context, error.what());
}

class TorchModel : public Model {
 public:
  TorchModel(core::ModelConfig config, torch::jit::Module module, int intra_op_threads)
      : config_(std::move(config)),
        module_(std::move(module)),
        intra_op_threads_(intra_op_threads) {}

  absl::StatusOr<core::TensorMap> Run(const core::TensorMap& inputs) override {
    try {
      SetThreadsOnce();
      c10::InferenceMode inference_mode;
      return RunForward(inputs);
    } catch (const c10::Error& error) {
      return FrameworkError("", error);  // the caller knows which model it ran
    } catch (const std::exception& error) {
      return FrameworkError("", error);
    }
  }

 private:
  // ATen's OpenMP thread count is a per-thread setting, and Run() always comes from the same
  // worker thread, so setting it once there bounds this instance alone; other instances keep
  // theirs. ATen also resets a thread's count from a process-wide value on its first parallel
  // operator; initialising that first stops it from undoing ours.
  void SetThreadsOnce() {
    if (threads_set_) return;
    at::internal::lazy_init_num_threads();
    at::set_num_threads(intra_op_threads_);
    threads_set_ = true;
  }

  absl::StatusOr<core::TensorMap> RunForward(const core::TensorMap& inputs) {
    const bool batched = config_.max_batch_size > 0;
    ASSIGN_OR_RETURN(const OrderedInputs ordered, OrderInputs(config_, inputs));
    std::vector<c10::IValue> arguments;
    arguments.reserve(config_.inputs.size());
    for (size_t i = 0; i < config_.inputs.size(); ++i) {
      ASSIGN_OR_RETURN(at::Tensor tensor,
                       ToAtenTensor(*ordered.tensors[i], config_.inputs[i], batched));
      arguments.emplace_back(std::move(tensor));
    }

    const c10::IValue result = module_.forward(std::move(arguments));

    ASSIGN_OR_RETURN(std::vector<at::Tensor> tensors, Unpack(result));
    core::TensorMap outputs;
    outputs.reserve(tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      const core::TensorSpec& spec = config_.outputs[i];
      ASSIGN_OR_RETURN(outputs[spec.name], FromAtenTensor(tensors[i], spec, ordered.batch));
    }
    return outputs;
  }

  // forward's result as one tensor per config output.
  absl::StatusOr<std::vector<at::Tensor>> Unpack(const c10::IValue& result) const {
    std::vector<c10::IValue> values;
    if (result.isTuple()) {
      values = result.toTupleRef().elements().vec();
    } else if (result.isList()) {
      values = result.toListRef().vec();
    } else {
      values.push_back(result);
    }
    if (values.size() != config_.outputs.size()) {
      return absl::InternalError(absl::StrCat("forward returned ", values.size(), " value(s) (",
                                              result.tagKind(), ") but the config declares ",
                                              config_.outputs.size(), " output(s)"));
    }
    std::vector<at::Tensor> tensors;
    tensors.reserve(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      if (!values[i].isTensor()) {
        return absl::InternalError(absl::StrCat("forward returned ", values[i].tagKind(),
                                                " for output '", config_.outputs[i].name,
                                                "', not a Tensor"));
      }
      tensors.push_back(values[i].toTensor());
    }
    return tensors;
  }

  const core::ModelConfig config_;
  torch::jit::Module module_;
  const int intra_op_threads_;
  bool threads_set_ = false;
};

absl::StatusOr<int> IntraOpThreads(const core::ModelConfig& config) {
  if (std::optional<std::string> text = config.Parameter(kIntraOpThreadsParameter)) {
    int threads = 0;
    if (!absl::SimpleAtoi(*text, &threads) || threads < 1) {
      return absl::InvalidArgumentError(absl::StrCat("parameter ", kIntraOpThreadsParameter, " '",
                                                     *text, "' is not a positive integer"));
    }
    return threads;
  }
  const int hardware = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, hardware / std::max(1, config.instance_count));
}

absl::Status CheckDataTypes(const std::vector<core::TensorSpec>& specs, absl::string_view kind) {
  for (const core::TensorSpec& spec : specs) {
    if (!ToScalarType(spec.type).has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(kind, " '", spec.name, "' has datatype ",
                                                     core::DataTypeName(spec.type),
                                                     ", which TorchScript tensors cannot hold"));
    }
  }
  return absl::OkStatus();
}

// forward(self, a, b, ...) must take the config inputs, in order, as Tensors; any further
// arguments need defaults since modeld never passes them.
absl::Status CheckSignature(const torch::jit::Module& module, const core::ModelConfig& config) {
  const c10::optional<torch::jit::Method> forward = module.find_method("forward");
  if (!forward.has_value()) return absl::InvalidArgumentError("the module has no forward method");
  const std::vector<c10::Argument>& all = forward->function().getSchema().arguments();
  const std::vector<c10::Argument> arguments(all.begin() + std::min<size_t>(1, all.size()),
                                             all.end());
  const auto required = std::count_if(arguments.begin(), arguments.end(),
                                      [](const c10::Argument& a) { return !a.default_value(); });
  const size_t inputs = config.inputs.size();
  if (inputs < static_cast<size_t>(required) || inputs > arguments.size()) {
    const std::string defaults =
        static_cast<size_t>(required) == arguments.size()
            ? ""
            : absl::StrCat(", ", arguments.size() - required, " of them with defaults,");
    return absl::InvalidArgumentError(
        absl::StrCat("forward takes ", arguments.size(), " argument(s)", defaults,
                     " but the config declares ", inputs, " input(s)"));
  }
  for (size_t i = 0; i < inputs; ++i) {
    if (!c10::TensorType::get()->isSubtypeOf(*arguments[i].type())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "forward argument ", i + 1, " '", arguments[i].name(), "' (for input '",
          config.inputs[i].name, "') has type ", arguments[i].type()->str(), ", not Tensor"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> TorchBackend::Load(
    const core::ModelConfig& config, const std::filesystem::path& version_dir) {
  const std::string& filename = config.proto.default_model_filename();
  // A name with a folder in it could point outside the version folder (an absolute one would
  // replace it altogether), so only a plain file name is accepted.
  if (filename.find('/') != std::string::npos || filename == "." || filename == "..") {
    return absl::InvalidArgumentError(absl::StrCat(
        "default_model_filename '", filename, "' must be a file name inside the version folder"));
  }
  const std::filesystem::path path =
      version_dir / (filename.empty() ? kDefaultModelFilename : filename);
  RETURN_IF_ERROR(CheckDataTypes(config.inputs, "input"));
  RETURN_IF_ERROR(CheckDataTypes(config.outputs, "output"));
  ASSIGN_OR_RETURN(const int threads, IntraOpThreads(config));
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return absl::NotFoundError(absl::StrCat("model file ", path.string(), " does not exist"));
  }

  const std::string context = absl::StrCat("loading ", path.string());
  try {
    torch::jit::Module module = torch::jit::load(path.string(), c10::kCPU);
    module.eval();
    if (absl::Status status = CheckSignature(module, config); !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", status.message()));
    }
    return std::make_unique<TorchModel>(config, std::move(module), threads);
  } catch (const c10::Error& e) {
    return FrameworkError(context, e);
  } catch (const std::exception& e) {
    return FrameworkError(context, e);
  }
}

}  // namespace modeld::backend
