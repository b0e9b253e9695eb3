// TorchBackend: TorchScript models through LibTorch (platform "pytorch_libtorch").
//
// A version folder holds one TorchScript file written by torch.jit.save: `model.pt`, or the
// config's default_model_filename. Each Load() reads its own copy of the module, so instances
// share nothing and each runs on its own worker thread.
//
// Calling convention (as Triton's PyTorch backend, without its name suffixes):
//   - forward() takes the config inputs positionally, in config order: the first config input
//     is forward's first argument after self. Names are not matched against argument names.
//     Arguments after the config inputs must have default values.
//   - forward() returns a Tensor, or a tuple or list of Tensors, mapped to the config outputs
//     in config order. Each must have the config's datatype and the config's shape (with the
//     request's batch size first when max_batch_size > 0).
//   - `reshape` on an input views it as [batch] + reshape before forward; `reshape` on an
//     output reshapes the model's tensor back to [batch] + dims (dims may hold one -1).
//
// Datatypes: BOOL, UINT8, INT8, INT16, INT32, INT64, FP16, FP32, FP64. TorchScript has no
// tensors of UINT16, UINT32, UINT64 or BYTES, so a config naming them fails to load.
//
// Devices: instance_group KIND_GPU runs an instance on a CUDA GPU (torch_device.h): the module
// is loaded there, inputs are copied to it and outputs back. Training runs on the CPU only.
//
// Config parameters:
//   intra_op_thread_count  threads one instance uses inside an operator (a positive integer).
//                          Default: hardware threads / instance_count, at least 1, so the
//                          instances of one model never oversubscribe the machine.
//
// Online learning (parameter training: true; docs/online-learning.md): a module with a
// `train_step(inputs..., targets...) -> loss` method trains through it; its arguments after
// the config inputs are the targets, by name. When the loss it returns requires grad, modeld
// back-propagates it and steps the configured optimizer; a train_step that updates its
// weights itself returns a loss without grad. A module without train_step trains through
// modeld's step: forward, then training_loss (mse or cross_entropy) between each output and
// the target of the same name, then training_optimizer (sgd or adam) at
// training_learning_rate over every parameter that requires grad. A non-finite loss is refused
// and leaves the weights unchanged. A checkpoint holds the module (torch.jit.save's format,
// so a published version is a plain model.pt) and the optimizer's state.
//
// Memory: inputs are handed to LibTorch without copying, and outputs are handed back without
// copying: each output Tensor keeps its LibTorch tensor (and any input it aliases) alive.
#pragma once

#include "backend/backend.h"

namespace modeld::backend {

// Thread-safe and stateless: Load() may run concurrently for different models and versions.
// Errors: NOT_FOUND when the model file is missing; INVALID_ARGUMENT when the config names a
// datatype TorchScript cannot hold, has a bad parameter, or does not fit forward()'s
// signature; INTERNAL with LibTorch's message when the file cannot be loaded (a corrupt file
// is an error, never a crash). The returned Model's Run() reports framework errors and
// results that do not match the config as INTERNAL.
class TorchBackend : public Backend {
 public:
  bool Trains() const override { return true; }
  absl::StatusOr<std::unique_ptr<Model>> Load(const core::ModelConfig& config,
                                              const std::filesystem::path& version_dir) override;
  absl::StatusOr<std::unique_ptr<Model>> LoadOn(const core::ModelConfig& config,
                                                const std::filesystem::path& version_dir,
                                                int device) override;
  // Writes the checkpointed module as the version's model file.
  absl::Status ExportVersion(const core::ModelConfig& config, const Model::State& state,
                             const std::filesystem::path& loaded_from,
                             const std::filesystem::path& out) override;
};

}  // namespace modeld::backend
