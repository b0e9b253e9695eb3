#include "backend/torch/torch_backend.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <algorithm>
#include <exception>
#include <fstream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "backend/model_file.h"
#include "backend/model_inputs.h"
#include "backend/torch/torch_device.h"
#include "backend/torch/torch_module.h"
#include "backend/torch/torch_tensor.h"
#include "backend/torch/torch_training.h"
#include "common/status_macros.h"
#include "core/training_options.h"

namespace modeld::backend {
namespace {

constexpr char kDefaultModelFilename[] = "model.pt";
// Inputs that passed validation against the config and still made forward() throw: the
// config cannot state every relation between inputs (equal lengths, say), the model can.
constexpr char kRejectedInput[] = "the model rejected the input";

class TorchModel : public Model {
 public:
  TorchModel(core::ModelConfig config, torch::jit::Module module, c10::Device device,
             int intra_op_threads, std::unique_ptr<TorchTraining> training)
      : config_(std::move(config)),
        module_(std::move(module)),
        device_(device),
        intra_op_threads_(intra_op_threads),
        training_(std::move(training)) {}

  absl::StatusOr<core::TensorMap> Run(const core::TensorMap& inputs) override {
    try {
      SetThreadsOnce();
      if (training_ != nullptr) {
        // TorchScript's executor keeps the plan it profiled while training, which saves
        // tensors for backward; inference tensors cannot be saved, so a trained module
        // infers with grad off instead of in inference mode.
        at::NoGradGuard no_grad;
        return RunForward(inputs);
      }
      c10::InferenceMode inference_mode;
      return RunForward(inputs);
    } catch (const c10::Error& error) {
      return FrameworkError(kRejectedInput, error);  // the caller knows which model it ran
    } catch (const std::exception& error) {
      return FrameworkError(kRejectedInput, error);
    }
  }

  absl::Status CanTrain() const override {
    if (training_ == nullptr) {
      return absl::FailedPreconditionError(
          "training is off for this model (its config.pbtxt has no parameter training: true)");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<double> Train(const core::TensorMap& inputs,
                               const core::TensorMap& targets) override {
    RETURN_IF_ERROR(CanTrain());
    try {
      if (!train_threads_set_) {
        at::internal::lazy_init_num_threads();
        at::set_num_threads(intra_op_threads_);
        train_threads_set_ = true;
      }
      module_.train();
      absl::Cleanup back_to_inference = [this] { module_.eval(); };
      return training_->Step(module_, config_, inputs, targets);
    } catch (const c10::Error& error) {
      return FrameworkError("", error);
    } catch (const std::exception& error) {
      return FrameworkError("", error);
    }
  }

  absl::StatusOr<State> SaveState() override {
    RETURN_IF_ERROR(CanTrain());
    return training_->Save(module_);
  }

  absl::Status RestoreState(const State& state) override {
    RETURN_IF_ERROR(CanTrain());
    return training_->Restore(module_, config_, state);
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
    ASSIGN_OR_RETURN(const OrderedInputs ordered, OrderInputs(config_, inputs));
    ASSIGN_OR_RETURN(std::vector<c10::IValue> arguments, InputArguments(config_, ordered));
    if (!device_.is_cpu()) {
      for (c10::IValue& argument : arguments) argument = argument.toTensor().to(device_);
    }
    const c10::IValue result = module_.forward(std::move(arguments));
    ASSIGN_OR_RETURN(std::vector<at::Tensor> tensors, UnpackOutputs(result, config_));
    if (!device_.is_cpu()) {
      for (at::Tensor& tensor : tensors) tensor = tensor.to(c10::kCPU);
    }
    core::TensorMap outputs;
    outputs.reserve(tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      const core::TensorSpec& spec = config_.outputs[i];
      ASSIGN_OR_RETURN(outputs[spec.name], FromAtenTensor(tensors[i], spec, ordered.batch));
    }
    return outputs;
  }

  const core::ModelConfig config_;
  torch::jit::Module module_;
  const c10::Device device_;
  const int intra_op_threads_;
  bool threads_set_ = false;
  const std::unique_ptr<TorchTraining> training_;  // null: training is off
  bool train_threads_set_ = false;                 // on the trainer's thread
};

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
  return LoadOn(config, version_dir, core::ModelConfig::kCpuDevice);
}

absl::StatusOr<std::unique_ptr<Model>> TorchBackend::LoadOn(
    const core::ModelConfig& config, const std::filesystem::path& version_dir, int device_index) {
  ASSIGN_OR_RETURN(const std::filesystem::path path,
                   ModelFile(config.proto, version_dir, kDefaultModelFilename));
  RETURN_IF_ERROR(CheckDataTypes(config.inputs, "input"));
  RETURN_IF_ERROR(CheckDataTypes(config.outputs, "output"));
  ASSIGN_OR_RETURN(const int threads, IntraOpThreads(config));
  ASSIGN_OR_RETURN(const core::TrainingOptions training_options,
                   core::ParseTrainingOptions(config));
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return absl::NotFoundError(absl::StrCat("model file ", path.string(), " does not exist"));
  }
  ASSIGN_OR_RETURN(const c10::Device device, TorchDevice(device_index));
  if (training_options.enabled && !device.is_cpu()) {
    return absl::InvalidArgumentError(
        "parameter training is true but the instance is on a GPU; modeld trains on the CPU only");
  }

  const std::string context = absl::StrCat("loading ", path.string());
  try {
    torch::jit::Module module = torch::jit::load(path.string(), device);
    module.eval();
    if (absl::Status status = CheckSignature(module, config); !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", status.message()));
    }
    std::unique_ptr<TorchTraining> training;
    if (training_options.enabled) {
      absl::StatusOr<std::unique_ptr<TorchTraining>> prepared =
          TorchTraining::Prepare(module, config, training_options);
      if (!prepared.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path.string(), ": ", prepared.status().message()));
      }
      training = *std::move(prepared);
    }
    return std::make_unique<TorchModel>(config, std::move(module), device, threads,
                                        std::move(training));
  } catch (const c10::Error& e) {
    return FrameworkError(context, e);
  } catch (const std::exception& e) {
    return FrameworkError(context, e);
  }
}

absl::Status TorchBackend::ExportVersion(const core::ModelConfig& config, const Model::State& state,
                                         const std::filesystem::path& loaded_from,
                                         const std::filesystem::path& out) {
  (void)loaded_from;  // the module file holds everything
  auto module = state.find(kTorchWeightsSection);
  if (module == state.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the state has no section ", kTorchWeightsSection));
  }
  const std::string& filename = config.proto.default_model_filename();
  const std::filesystem::path path = out / (filename.empty() ? kDefaultModelFilename : filename);
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(module->second.data(), static_cast<std::streamsize>(module->second.size()));
  file.close();
  if (!file) return absl::InternalError(absl::StrCat("writing ", path.string(), " failed"));
  return absl::OkStatus();
}

}  // namespace modeld::backend
