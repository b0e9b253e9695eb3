#include "backend/torch/torch_device.h"

#include <ATen/detail/CUDAHooksInterface.h>
#include <dlfcn.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/runtime_library.h"
#include "core/model_config.h"

#ifndef MODELD_TORCH_LIB_DIR
#error "MODELD_TORCH_LIB_DIR must name the torch wheel's lib folder"
#endif

namespace modeld::backend {
namespace {

// Opens libtorch_cuda.so once; its static initialisers register CUDA with LibTorch. Global, so
// the kernels it registers are seen by libtorch_cpu (already loaded). Returns dlerror()'s text
// on failure, empty on success.
const std::string& OpenCudaLibrary() {
  static const std::string* error = [] {
    const std::string path =
        common::RuntimeLibrary(std::string(MODELD_TORCH_LIB_DIR) + "/libtorch_cuda.so");
    if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      const char* reason = dlerror();
      return new std::string(reason == nullptr ? "dlopen failed" : reason);
    }
    return new std::string();
  }();
  return *error;
}

}  // namespace

absl::StatusOr<c10::Device> TorchDevice(int device) {
  if (device == core::ModelConfig::kCpuDevice) return c10::Device(c10::kCPU);
  if (const std::string& error = OpenCudaLibrary(); !error.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "instance_group KIND_GPU needs LibTorch's CUDA library, which did not load: ", error,
        " (scripts/setup installs the CUDA wheels into .venv)"));
  }
  const int count = at::detail::getCUDAHooks().deviceCount();
  if (count == 0) {
    return absl::FailedPreconditionError(
        "instance_group KIND_GPU: no CUDA GPU is visible to modeld (none in this machine, "
        "NVIDIA's driver libcuda.so.1 missing, or CUDA_VISIBLE_DEVICES hides them)");
  }
  if (device >= count) {
    return absl::FailedPreconditionError(absl::StrCat("instance_group gpus names GPU ", device,
                                                      " but modeld sees ", count,
                                                      " CUDA GPU(s): 0 to ", count - 1));
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(device));
}

}  // namespace modeld::backend
