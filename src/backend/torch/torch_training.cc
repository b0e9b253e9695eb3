#include "backend/torch/torch_training.h"

#include <torch/csrc/jit/serialization/import.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backend/model_inputs.h"
#include "backend/torch/torch_module.h"
#include "backend/torch/torch_tensor.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace modeld::backend {
namespace {

constexpr char kTrainStepMethod[] = "train_step";
constexpr char kOptimizerSection[] = "torch_optimizer";

// A target as ToAtenTensor takes it: named, and viewed with the shape it came with.
core::TensorSpec TargetSpec(const std::string& name) {
  core::TensorSpec spec;
  spec.name = name;
  return spec;
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

// Copies `saved`'s parameters and buffers into `module`'s, matched by name, after checking that
// every one is there with the same shape and datatype.
absl::Status CopyWeights(torch::jit::Module& module, const torch::jit::Module& saved) {
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
  RETURN_IF_ERROR(match(module.named_parameters(), saved.named_parameters()));
  RETURN_IF_ERROR(match(module.named_buffers(), saved.named_buffers()));
  at::NoGradGuard no_grad;
  for (auto& [destination, source] : copies) destination.copy_(source);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TorchTraining>> TorchTraining::Prepare(
    torch::jit::Module& module, const core::ModelConfig& config,
    const core::TrainingOptions& options) {
  auto training = std::make_unique<TorchTraining>();
  training->loss_ = options.loss;
  if (c10::optional<torch::jit::Method> method = module.find_method(kTrainStepMethod)) {
    training->train_step_ = true;
    ASSIGN_OR_RETURN(training->target_names_, TrainStepTargets(*method, config));
  } else {
    for (const core::TensorSpec& output : config.outputs) {
      training->target_names_.push_back(output.name);
    }
  }
  std::vector<at::Tensor> parameters;
  for (const at::Tensor& parameter : module.parameters()) {
    if (parameter.requires_grad()) parameters.push_back(parameter);
  }
  if (parameters.empty()) {
    if (!training->train_step_) {
      return absl::InvalidArgumentError(
          "training is on but the module has no parameter that requires grad, and no "
          "train_step method");
    }
    return training;  // train_step updates what it holds itself
  }
  if (options.optimizer == "adam") {
    training->optimizer_ = std::make_unique<torch::optim::Adam>(
        parameters, torch::optim::AdamOptions(options.learning_rate));
  } else {
    training->optimizer_ = std::make_unique<torch::optim::SGD>(
        parameters, torch::optim::SGDOptions(options.learning_rate));
  }
  return training;
}

absl::StatusOr<double> TorchTraining::Step(torch::jit::Module& module,
                                           const core::ModelConfig& config,
                                           const core::TensorMap& inputs,
                                           const core::TensorMap& targets) {
  try {
    ASSIGN_OR_RETURN(at::Tensor loss, Loss(module, config, inputs, targets));
    if (loss.numel() != 1) {
      return absl::InternalError(
          absl::StrCat("the loss has ", loss.numel(), " elements; it must be a single number"));
    }
    const double value = loss.item<double>();
    const bool ours = loss.requires_grad() && optimizer_ != nullptr;
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
      optimizer_->zero_grad();
      loss.backward();
      optimizer_->step();
    }
    return value;
  } catch (const c10::Error& error) {
    return FrameworkError("", error);
  } catch (const std::exception& error) {
    return FrameworkError("", error);
  }
}

absl::StatusOr<Model::State> TorchTraining::Save(torch::jit::Module& module) {
  try {
    Model::State state;
    std::ostringstream weights;
    module.save(weights);
    state[kTorchWeightsSection] = std::move(weights).str();
    if (optimizer_ != nullptr) {
      torch::serialize::OutputArchive archive;
      optimizer_->save(archive);
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

absl::Status TorchTraining::Restore(torch::jit::Module& module, const core::ModelConfig& config,
                                    const Model::State& state) {
  auto weights = state.find(kTorchWeightsSection);
  if (weights == state.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the checkpoint has no section ", kTorchWeightsSection));
  }
  try {
    std::istringstream in(weights->second);
    const torch::jit::Module saved = torch::jit::load(in, c10::kCPU);
    RETURN_IF_ERROR(CopyWeights(module, saved));
    if (auto optimizer = state.find(kOptimizerSection);
        optimizer != state.end() && optimizer_ != nullptr) {
      // The optimizer may have changed since (sgd to adam, say): its state then starts anew,
      // and the weights still count.
      try {
        torch::serialize::InputArchive archive;
        std::istringstream bytes(optimizer->second);
        archive.load_from(bytes);
        optimizer_->load(archive);
      } catch (const std::exception& error) {
        spdlog::warn(
            "model '{}': the optimizer state in the checkpoint does not fit ({}); it "
            "starts anew",
            config.name, FrameworkError("", error).message());
      }
    }
    return absl::OkStatus();
  } catch (const c10::Error& error) {
    return FrameworkError("restoring the weights", error);
  } catch (const std::exception& error) {
    return FrameworkError("restoring the weights", error);
  }
}

absl::StatusOr<at::Tensor> TorchTraining::Loss(torch::jit::Module& module,
                                               const core::ModelConfig& config,
                                               const core::TensorMap& inputs,
                                               const core::TensorMap& targets) {
  for (const auto& [name, tensor] : targets) {
    if (std::find(target_names_.begin(), target_names_.end(), name) == target_names_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown target '", name, "' for model '", config.name, "'; it takes ",
                       absl::StrJoin(target_names_, ", "),
                       train_step_ ? " (the arguments of train_step after the inputs)"
                                   : " (named after its outputs)"));
    }
  }
  const bool batched = config.max_batch_size > 0;
  ASSIGN_OR_RETURN(const OrderedInputs ordered, OrderInputs(config, inputs));
  ASSIGN_OR_RETURN(std::vector<c10::IValue> arguments, InputArguments(config, ordered));
  if (train_step_) {
    for (const std::string& name : target_names_) {
      auto target = targets.find(name);
      if (target == targets.end()) {
        return absl::InvalidArgumentError(absl::StrCat("missing target '", name,
                                                       "': train_step of model '", config.name,
                                                       "' takes it after the inputs"));
      }
      ASSIGN_OR_RETURN(at::Tensor tensor, ToAtenTensor(target->second, TargetSpec(name), batched));
      arguments.emplace_back(std::move(tensor));
    }
    const c10::IValue loss = module.get_method(kTrainStepMethod)(std::move(arguments));
    if (!loss.isTensor()) {
      return absl::InternalError(
          absl::StrCat("train_step returned ", loss.tagKind(), ", not a Tensor (the loss)"));
    }
    return loss.toTensor();
  }
  ASSIGN_OR_RETURN(std::vector<at::Tensor> outputs,
                   UnpackOutputs(module.forward(std::move(arguments)), config));
  at::Tensor total;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const std::string& name = config.outputs[i].name;
    auto target = targets.find(name);
    if (target == targets.end()) continue;
    ASSIGN_OR_RETURN(at::Tensor wanted, ToAtenTensor(target->second, TargetSpec(name), batched));
    ASSIGN_OR_RETURN(at::Tensor loss, OutputLoss(name, outputs[i], wanted));
    total = total.defined() ? total + loss : loss;
  }
  return total;
}

absl::StatusOr<at::Tensor> TorchTraining::OutputLoss(const std::string& name,
                                                     const at::Tensor& output,
                                                     const at::Tensor& target) const {
  const bool one_per_row = output.dim() >= 2 && target.numel() * output.size(1) == output.numel();
  if (loss_ == "cross_entropy" && one_per_row && output.size(1) > 1) {
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
  if (loss_ == "cross_entropy") return at::cross_entropy_loss(output, wanted);
  return at::mse_loss(output, wanted);
}

}  // namespace modeld::backend
