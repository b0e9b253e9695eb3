// TorchAotiBackend: torch.export programs compiled ahead of time by AOTInductor, served from a
// `model.pt2` package (platform "torch_aoti"; a model folder without config.pbtxt whose
// version holds model.pt2 is served too). PyTorch's path from Python to C++ serving now that
// TorchScript is in maintenance: torch._inductor.aoti_compile_and_package writes the package,
// LibTorch's AOTIModelPackageLoader runs it, with no Python and no compiler at run time.
//
// Config: completed from what the package states (package_config.h), or checked against it.
// A package states nothing unless modeld.torch_export.export_package wrote it; then
// config.pbtxt lists the inputs and outputs. Inputs are the program's arguments in config
// order; its results are the config outputs in order, each checked against the config's
// datatype and shape. AOTInductor's own input checks are off by default, so modeld's
// validation against the config is what keeps a request from reaching a kernel with the wrong
// shape. A batch dimension (max_batch_size > 0) lets requests be batched dynamically.
//
// Devices: a package runs on the device it was compiled for; instance_group KIND_GPU needs a
// package compiled for CUDA (and torch_device.h's GPU), KIND_CPU one compiled for the CPU.
//
// Config parameters: intra_op_thread_count, as for TorchBackend (the OpenMP threads of one
// instance's kernels).
#pragma once

#include "backend/backend.h"

namespace modeld::backend {

inline constexpr char kTorchAotiPlatform[] = "torch_aoti";

// Thread-safe and stateless. Errors: NOT_FOUND when model.pt2 is missing; INVALID_ARGUMENT
// when the config disagrees with the package or names a datatype LibTorch cannot hold;
// FAILED_PRECONDITION for a device the package was not compiled for or cannot be reached;
// INTERNAL with LibTorch's message, naming the file, when the package cannot be read or loaded
// (corrupt, truncated, or compiled by another torch version).
class TorchAotiBackend : public Backend {
 public:
  bool ServesWithoutConfig(const std::filesystem::path& version_dir) override;
  absl::Status CompleteConfig(const std::filesystem::path& version_dir,
                              inference::ModelConfig& config) override;
  absl::StatusOr<std::unique_ptr<Model>> Load(const core::ModelConfig& config,
                                              const std::filesystem::path& version_dir) override;
  absl::StatusOr<std::unique_ptr<Model>> LoadOn(const core::ModelConfig& config,
                                                const std::filesystem::path& version_dir,
                                                int device) override;
};

}  // namespace modeld::backend
