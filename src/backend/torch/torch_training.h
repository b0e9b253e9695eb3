// Online learning for TorchScript modules (docs/online-learning.md; the calling convention is
// in torch_backend.h): a module's own train_step, or modeld's step (forward, a loss per
// output, an optimizer over every parameter that requires grad), and the checkpoint state.
//
// Private to the torch backend: this header includes LibTorch, so only the backend's own .cc
// files may include it (design §11).
#pragma once

#include <torch/csrc/jit/api/module.h>
#include <torch/optim/optimizer.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/backend.h"
#include "core/model_config.h"
#include "core/tensor.h"
#include "core/training_options.h"

namespace modeld::backend {

// The checkpoint section (Model::State) holding the module in torch.jit.save's format, so a
// published version is a plain model file.
inline constexpr char kTorchWeightsSection[] = "torchscript_module";

// How one trainable module learns. Not thread-safe: the model's one thread calls it, with the
// module it was prepared for and that module's config.
class TorchTraining {
 public:
  // Reads how `module` trains: through its train_step method (its arguments after the config
  // inputs are the targets, by name), else through modeld's step with the targets named after
  // the outputs. INVALID_ARGUMENT for a train_step whose arguments are not Tensors or too few,
  // or a module with nothing to train. May throw c10::Error.
  static absl::StatusOr<std::unique_ptr<TorchTraining>> Prepare(
      torch::jit::Module& module, const core::ModelConfig& config,
      const core::TrainingOptions& options);

  // One step on `module`, which the caller has put in train mode: the loss. INVALID_ARGUMENT
  // for an unknown or missing target, a target that does not fit its output, or a non-finite
  // loss (modeld's update is then not applied); DATA_LOSS for a non-finite loss after a
  // train_step that updated its weights itself; INTERNAL for LibTorch's errors.
  absl::StatusOr<double> Step(torch::jit::Module& module, const core::ModelConfig& config,
                              const core::TensorMap& inputs, const core::TensorMap& targets);

  // The module (kTorchWeightsSection) and the optimizer's state.
  absl::StatusOr<Model::State> Save(torch::jit::Module& module);
  // Copies a saved state's weights into `module` (every tensor by name, same shape and
  // datatype, else INVALID_ARGUMENT and nothing copied) and restores the optimizer's state when
  // it fits (otherwise it starts anew, with a warning).
  absl::Status Restore(torch::jit::Module& module, const core::ModelConfig& config,
                       const Model::State& state);

 private:
  // The step's loss, with the graph to its weights when it has one.
  absl::StatusOr<at::Tensor> Loss(torch::jit::Module& module, const core::ModelConfig& config,
                                  const core::TensorMap& inputs, const core::TensorMap& targets);
  // modeld's loss between one output and its target.
  absl::StatusOr<at::Tensor> OutputLoss(const std::string& name, const at::Tensor& output,
                                        const at::Tensor& target) const;

  bool train_step_ = false;
  std::vector<std::string> target_names_;  // train_step's target arguments, or the outputs
  std::string loss_;                       // modeld's step: mse | cross_entropy
  std::unique_ptr<torch::optim::Optimizer> optimizer_;  // null: nothing for modeld to update
};

}  // namespace modeld::backend
