// Where a torch instance runs: the CPU, or a CUDA GPU through LibTorch's CUDA library, which
// modeld opens only when a model asks for a GPU (instance_group KIND_GPU), so CPU-only
// machines never load the CUDA stack.
//
// Private to the torch backend (it includes LibTorch).
#pragma once

#include <c10/core/Device.h>

#include "absl/status/statusor.h"

namespace modeld::backend {

// core::ModelConfig::kCpuDevice -> the CPU; n >= 0 -> CUDA GPU n. The first GPU asked for
// opens libtorch_cuda.so from the wheel modeld was built with (once per process).
// FAILED_PRECONDITION naming what is missing: LibTorch's CUDA library or one it needs (the
// CUDA wheels, installed by scripts/setup), a visible GPU (NVIDIA's driver), or GPU n itself.
absl::StatusOr<c10::Device> TorchDevice(int device);

}  // namespace modeld::backend
