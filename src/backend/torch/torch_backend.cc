#include "backend/torch/torch_backend.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backend/model_inputs.h"
#include "backend/torch/torch_tensor.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "core/training_options.h"

namespace modeld::backend {
namespace {

constexpr char kDefaultModelFilename[] = "model.pt";
constexpr char kIntraOpThreadsParameter[] = "intra_op_thread_count";
constexpr char kTrainStepMethod[] = "train_step";
// Checkpoint sections (Model::State).
constexpr char kWeightsSection[] = "torchscript_module";
constexpr char kOptimizerSection[] = "torch_optimizer";

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

// A target as ToAtenTensor takes it: named, and viewed with the shape it came with.
core::TensorSpec TargetSpec(const std::string& name) {
  core::TensorSpec spec;
  spec.name = name;
  return spec;
}

// How a trainable module learns (docs/online-learning.md): through its own train_step, whose
// arguments after the inputs are the targets, or through modeld's step, which runs forward
// and compares each output with the target of its name.
struct Training {
  bool train_step = false;
  std::vector<std::string> target_names;  // train_step's target arguments, or the outputs
  std::string loss;                       // modeld's step: mse | cross_entropy
  std::unique_ptr<torch::optim::Optimizer> optimizer;  // null: nothing for modeld to update
};

class TorchModel : public Model {
 public:
  TorchModel(core::ModelConfig config, torch::jit::Module module, int intra_op_threads,
             std::unique_ptr<Training> training)
      : config_(std::move(config)),
        module_(std::move(module)),
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
      return FrameworkError("", error);  // the caller knows which model it ran
    } catch (const std::exception& error) {
      return FrameworkError("", error);
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
      ASSIGN_OR_RETURN(at::Tensor loss, Loss(inputs, targets));
      if (loss.numel() != 1) {
        return absl::InternalError(
            absl::StrCat("the loss has ", loss.numel(), " elements; it must be a single number"));
      }
      const double value = loss.item<double>();
      const bool ours = loss.requires_grad() && training_->optimizer != nullptr;
      // A non-finite loss would turn every weight into NaN for good: modeld's update is not
      // applied; a train_step that updated its weights itself has done the damage already
      // (DATA_LOSS: the trainer stops checkpointing them).
      if (!std::isfinite(value)) {
        if (!ours) {
          return absl::DataLossError(absl::StrCat(
              "the loss is ", value,
              "; train_step has updated the weights itself, so they may no longer be finite"));
        }
        return absl::InvalidArgumentError(absl::StrCat(
            "the loss is ", value, "; the step was not applied (the weights are unchanged)"));
      }
      if (ours) {
        training_->optimizer->zero_grad();
        loss.backward();
        training_->optimizer->step();
      }
      return value;
    } catch (const c10::Error& error) {
      return FrameworkError("", error);
    } catch (const std::exception& error) {
      return FrameworkError("", error);
    }
  }

  absl::StatusOr<State> SaveState() override {
    RETURN_IF_ERROR(CanTrain());
    try {
      State state;
      std::ostringstream module;
      module_.save(module);
      state[kWeightsSection] = std::move(module).str();
      if (training_->optimizer != nullptr) {
        torch::serialize::OutputArchive archive;
        training_->optimizer->save(archive);
        std::ostringstream optimizer;
        archive.save_to(optimizer);
        state[kOptimizerSection] = std::move(optimizer).str();
      }
      return state;
    } catch (const c10::Error& error) {
      return FrameworkError("saving the weights", error);
    } catch (const std::exception& error) {
      return FrameworkError("saving the weights", error);
    }
  }

  absl::Status RestoreState(const State& state) override {
    RETURN_IF_ERROR(CanTrain());
    auto weights = state.find(kWeightsSection);
    if (weights == state.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the checkpoint has no section ", kWeightsSection));
    }
    try {
      std::istringstream in(weights->second);
      const torch::jit::Module saved = torch::jit::load(in, c10::kCPU);
      RETURN_IF_ERROR(CopyWeights(saved));
      if (auto optimizer = state.find(kOptimizerSection);
          optimizer != state.end() && training_->optimizer != nullptr) {
        // The optimizer may have changed since (sgd to adam, say): its state then starts anew,
        // and the weights still count.
        try {
          torch::serialize::InputArchive archive;
          std::istringstream bytes(optimizer->second);
          archive.load_from(bytes);
          training_->optimizer->load(archive);
        } catch (const std::exception& error) {
          spdlog::warn(
              "model '{}': the optimizer state in the checkpoint does not fit ({}); it "
              "starts anew",
              config_.name, FrameworkError("", error).message());
        }
      }
      return absl::OkStatus();
    } catch (const c10::Error& error) {
      return FrameworkError("restoring the weights", error);
    } catch (const std::exception& error) {
      return FrameworkError("restoring the weights", error);
    }
  }

 private:
  // The step's loss, with the graph to its weights when it has one.
  absl::StatusOr<at::Tensor> Loss(const core::TensorMap& inputs, const core::TensorMap& targets) {
    for (const auto& [name, tensor] : targets) {
      if (std::find(training_->target_names.begin(), training_->target_names.end(), name) ==
          training_->target_names.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown target '", name, "' for model '", config_.name, "'; it takes ",
                         absl::StrJoin(training_->target_names, ", "),
                         training_->train_step ? " (the arguments of train_step after the inputs)"
                                               : " (named after its outputs)"));
      }
    }
    const bool batched = config_.max_batch_size > 0;
    ASSIGN_OR_RETURN(const OrderedInputs ordered, OrderInputs(config_, inputs));
    std::vector<c10::IValue> arguments;
    for (size_t i = 0; i < config_.inputs.size(); ++i) {
      ASSIGN_OR_RETURN(at::Tensor tensor,
                       ToAtenTensor(*ordered.tensors[i], config_.inputs[i], batched));
      arguments.emplace_back(std::move(tensor));
    }
    if (training_->train_step) {
      for (const std::string& name : training_->target_names) {
        auto target = targets.find(name);
        if (target == targets.end()) {
          return absl::InvalidArgumentError(absl::StrCat("missing target '", name,
                                                         "': train_step of model '", config_.name,
                                                         "' takes it after the inputs"));
        }
        ASSIGN_OR_RETURN(at::Tensor tensor,
                         ToAtenTensor(target->second, TargetSpec(name), batched));
        arguments.emplace_back(std::move(tensor));
      }
      const c10::IValue loss = module_.get_method(kTrainStepMethod)(std::move(arguments));
      if (!loss.isTensor()) {
        return absl::InternalError(
            absl::StrCat("train_step returned ", loss.tagKind(), ", not a Tensor (the loss)"));
      }
      return loss.toTensor();
    }
    ASSIGN_OR_RETURN(std::vector<at::Tensor> outputs,
                     Unpack(module_.forward(std::move(arguments))));
    at::Tensor total;
    for (size_t i = 0; i < outputs.size(); ++i) {
      const std::string& name = config_.outputs[i].name;
      auto target = targets.find(name);
      if (target == targets.end()) continue;
      ASSIGN_OR_RETURN(at::Tensor wanted, ToAtenTensor(target->second, TargetSpec(name), batched));
      ASSIGN_OR_RETURN(at::Tensor loss, OutputLoss(name, outputs[i], wanted));
      total = total.defined() ? total + loss : loss;
    }
    return total;
  }

  // modeld's loss between one output and its target.
  absl::StatusOr<at::Tensor> OutputLoss(const std::string& name, const at::Tensor& output,
                                        const at::Tensor& target) const {
    const bool one_per_row = output.dim() >= 2 && target.numel() * output.size(1) == output.numel();
    if (training_->loss == "cross_entropy" && one_per_row && output.size(1) > 1) {
      // Class indices, one per row of scores ([batch, classes] -> [batch]); clients that cast
      // every target to the output's datatype send them as floats.
      const at::Tensor rows = target.reshape({output.size(0)});
      at::Tensor classes = rows.to(at::kLong);
      const int64_t count = output.size(1);
      if ((at::isFloatingType(rows.scalar_type()) &&
           !rows.eq(classes.to(rows.scalar_type())).all().item<bool>()) ||
          (classes < 0).any().item<bool>() || (classes >= count).any().item<bool>()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "target '", name, "' holds a value that is not a class index in [0, ", count, ")"));
      }
      return at::cross_entropy_loss(output, classes);
    }
    if (target.numel() != output.numel()) {
      return absl::InvalidArgumentError(absl::StrCat("target '", name, "' has shape ",
                                                     ShapeString(target), " but output '", name,
                                                     "' has ", ShapeString(output)));
    }
    const at::Tensor wanted = target.to(output.scalar_type()).reshape(output.sizes());
    if (training_->loss == "cross_entropy") return at::cross_entropy_loss(output, wanted);
    return at::mse_loss(output, wanted);
  }

  static std::string ShapeString(const at::Tensor& tensor) {
    return absl::StrCat("[", absl::StrJoin(tensor.sizes(), ", "), "]");
  }

  // Copies `saved`'s parameters and buffers into this module's, matched by name, after
  // checking that every one is there with the same shape and datatype.
  absl::Status CopyWeights(const torch::jit::Module& saved) {
    std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (destination, source)
    auto match = [&](const auto& ours, const auto& theirs) -> absl::Status {
      std::map<std::string, at::Tensor> by_name;
      for (const auto& item : theirs) by_name.emplace(item.name, item.value);
      size_t matched = 0;
      for (const auto& item : ours) {
        auto found = by_name.find(item.name);
        if (found == by_name.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat("the checkpoint has no tensor '", item.name, "'"));
        }
        if (!found->second.sizes().equals(item.value.sizes()) ||
            found->second.scalar_type() != item.value.scalar_type()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "the checkpoint's '", item.name, "' is ", ShapeString(found->second),
              " but the model's is ", ShapeString(item.value), " (or another datatype)"));
        }
        copies.emplace_back(item.value, found->second);
        ++matched;
      }
      if (matched != by_name.size()) {
        return absl::InvalidArgumentError(absl::StrCat("the checkpoint has ", by_name.size(),
                                                       " tensors where the model has ", matched));
      }
      return absl::OkStatus();
    };
    RETURN_IF_ERROR(match(module_.named_parameters(), saved.named_parameters()));
    RETURN_IF_ERROR(match(module_.named_buffers(), saved.named_buffers()));
    at::NoGradGuard no_grad;
    for (auto& [destination, source] : copies) destination.copy_(source);
    return absl::OkStatus();
  }

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
  const std::unique_ptr<Training> training_;  // null: training is off
  bool train_threads_set_ = false;            // on the trainer's thread
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

// train_step(self, inputs..., targets...) must take the config inputs first, as forward does;
// its remaining arguments are the targets.
absl::StatusOr<std::vector<std::string>> TrainStepTargets(const torch::jit::Method& method,
                                                          const core::ModelConfig& config) {
  const std::vector<c10::Argument>& all = method.function().getSchema().arguments();
  const size_t inputs = config.inputs.size();
  if (all.size() < 1 + inputs + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("train_step takes ", all.empty() ? 0 : all.size() - 1,
                     " argument(s) but needs the ", inputs, " input(s) and at least one target"));
  }
  std::vector<std::string> targets;
  for (size_t i = 1; i < all.size(); ++i) {
    if (!c10::TensorType::get()->isSubtypeOf(*all[i].type())) {
      return absl::InvalidArgumentError(absl::StrCat("train_step argument '", all[i].name(),
                                                     "' has type ", all[i].type()->str(),
                                                     ", not Tensor"));
    }
    if (i > inputs) targets.push_back(all[i].name());
  }
  return targets;
}

absl::StatusOr<std::unique_ptr<Training>> PrepareTraining(torch::jit::Module& module,
                                                          const core::ModelConfig& config,
                                                          const core::TrainingOptions& options) {
  auto training = std::make_unique<Training>();
  training->loss = options.loss;
  if (c10::optional<torch::jit::Method> method = module.find_method(kTrainStepMethod)) {
    training->train_step = true;
    ASSIGN_OR_RETURN(training->target_names, TrainStepTargets(*method, config));
  } else {
    for (const core::TensorSpec& output : config.outputs) {
      training->target_names.push_back(output.name);
    }
  }
  std::vector<at::Tensor> parameters;
  for (const at::Tensor& parameter : module.parameters()) {
    if (parameter.requires_grad()) parameters.push_back(parameter);
  }
  if (parameters.empty()) {
    if (!training->train_step) {
      return absl::InvalidArgumentError(
          "training is on but the module has no parameter that requires grad, and no "
          "train_step method");
    }
    return training;  // train_step updates what it holds itself
  }
  if (options.optimizer == "adam") {
    training->optimizer = std::make_unique<torch::optim::Adam>(
        parameters, torch::optim::AdamOptions(options.learning_rate));
  } else {
    training->optimizer = std::make_unique<torch::optim::SGD>(
        parameters, torch::optim::SGDOptions(options.learning_rate));
  }
  return training;
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
  ASSIGN_OR_RETURN(const core::TrainingOptions training_options,
                   core::ParseTrainingOptions(config));
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
    std::unique_ptr<Training> training;
    if (training_options.enabled) {
      absl::StatusOr<std::unique_ptr<Training>> prepared =
          PrepareTraining(module, config, training_options);
      if (!prepared.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path.string(), ": ", prepared.status().message()));
      }
      training = *std::move(prepared);
    }
    return std::make_unique<TorchModel>(config, std::move(module), threads, std::move(training));
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
  auto module = state.find(kWeightsSection);
  if (module == state.end()) {
    return absl::InvalidArgumentError(absl::StrCat("the state has no section ", kWeightsSection));
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
