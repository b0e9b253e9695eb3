#include "backend/torch/aoti_backend.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <sys/stat.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <unistd.h>

#include <exception>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/const_init.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "backend/model_file.h"
#include "backend/model_inputs.h"
#include "backend/torch/package_config.h"
#include "backend/torch/torch_device.h"
#include "backend/torch/torch_module.h"
#include "backend/torch/torch_tensor.h"
#include "common/status_macros.h"
#include "core/training_options.h"

namespace modeld::backend {
namespace {

using Loader = torch::inductor::AOTIModelPackageLoader;
using Metadata = std::unordered_map<std::string, std::string>;

constexpr char kDefaultPackageFilename[] = "model.pt2";
// The model inside the package: aoti_compile_and_package writes one, named "model".
constexpr char kPackagedModel[] = "model";
// AOTInductor's metadata key for the device a package was compiled for ("cpu", "cuda").
constexpr char kDeviceKey[] = "AOTI_DEVICE_KEY";
constexpr char kRejectedInput[] = "the model rejected the input";

absl::StatusOr<std::filesystem::path> PackagePath(const inference::ModelConfig& config,
                                                  const std::filesystem::path& version_dir) {
  ASSIGN_OR_RETURN(const std::filesystem::path path,
                   ModelFile(config, version_dir, kDefaultPackageFilename));
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return absl::NotFoundError(absl::StrCat("model file ", path.string(), " does not exist"));
  }
  return path;
}

// The package's metadata, read without loading its code.
absl::StatusOr<Metadata> ReadMetadata(const std::filesystem::path& path) {
  const std::string context = absl::StrCat("reading ", path.string());
  try {
    return Loader::load_metadata_from_package(path.string(), kPackagedModel);
  } catch (const c10::Error& e) {
    return FrameworkError(context, e);
  } catch (const std::exception& e) {
    return FrameworkError(context, e);
  }
}

std::optional<std::string> Find(const Metadata& metadata, const std::string& key) {
  auto it = metadata.find(key);
  if (it == metadata.end()) return std::nullopt;
  return it->second;
}

// LibTorch unpacks a package into <temp folder>/aotinductor_XXXXXX and removes the folder when
// the loader is destroyed, but not when its constructor throws (a library that does not load,
// say): each failed load, retried on every repository change, would leave a copy of the
// package behind. So loaders are made one at a time, and after a failure the aotinductor_
// folders that appeared meanwhile, and are ours (same owner), are removed. (Another process
// unpacking into the same temp folder in that very window is the one case this could reach
// beyond modeld; loads are rare and short.)
class UnpackGuard {
 public:
  UnpackGuard() : before_(Unpacked()) {}

  // After a failed load: removes what the failed loader left.
  void RemoveLeftovers() {
    for (const std::filesystem::path& folder : Unpacked()) {
      struct stat info;
      if (before_.contains(folder) || ::stat(folder.c_str(), &info) != 0 ||
          info.st_uid != ::geteuid()) {
        continue;
      }
      std::error_code ignored;
      std::filesystem::remove_all(folder, ignored);
    }
  }

 private:
  static std::set<std::filesystem::path> Unpacked() {
    std::set<std::filesystem::path> folders;
    std::error_code error;
    const std::filesystem::path temp = std::filesystem::temp_directory_path(error);
    if (error) return folders;
    for (const auto& entry : std::filesystem::directory_iterator(temp, error)) {
      if (entry.path().filename().string().rfind("aotinductor_", 0) == 0) {
        folders.insert(entry.path());
      }
    }
    return folders;
  }

  absl::MutexLock lock_{&mu_};  // first: held while `before_` is read
  static absl::Mutex mu_;
  const std::set<std::filesystem::path> before_;
};

absl::Mutex UnpackGuard::mu_(absl::kConstInit);

class AotiModel : public Model {
 public:
  AotiModel(core::ModelConfig config, std::unique_ptr<Loader> loader, c10::Device device,
            int intra_op_threads)
      : config_(std::move(config)),
        loader_(std::move(loader)),
        device_(device),
        intra_op_threads_(intra_op_threads) {}

  absl::StatusOr<core::TensorMap> Run(const core::TensorMap& inputs) override {
    try {
      // Per worker thread, as TorchModel (torch_backend.cc) says why.
      if (!threads_set_) {
        at::internal::lazy_init_num_threads();
        at::set_num_threads(intra_op_threads_);
        threads_set_ = true;
      }
      c10::InferenceMode inference_mode;
      return RunPackage(inputs);
    } catch (const c10::Error& error) {
      return FrameworkError(kRejectedInput, error);
    } catch (const std::exception& error) {
      return FrameworkError(kRejectedInput, error);
    }
  }

 private:
  absl::StatusOr<core::TensorMap> RunPackage(const core::TensorMap& inputs) {
    ASSIGN_OR_RETURN(const OrderedInputs ordered, OrderInputs(config_, inputs));
    const bool batched = config_.max_batch_size > 0;
    std::vector<at::Tensor> arguments;
    arguments.reserve(config_.inputs.size());
    for (size_t i = 0; i < config_.inputs.size(); ++i) {
      ASSIGN_OR_RETURN(at::Tensor tensor,
                       ToAtenTensor(*ordered.tensors[i], config_.inputs[i], batched));
      arguments.push_back(device_.is_cpu() ? std::move(tensor) : tensor.to(device_));
    }
    std::vector<at::Tensor> results = loader_->run(arguments);
    if (results.size() != config_.outputs.size()) {
      return absl::InternalError(absl::StrCat("the package returned ", results.size(),
                                              " tensor(s) but the config declares ",
                                              config_.outputs.size(), " output(s)"));
    }
    core::TensorMap outputs;
    outputs.reserve(results.size());
    for (size_t i = 0; i < results.size(); ++i) {
      const at::Tensor result = device_.is_cpu() ? results[i] : results[i].to(c10::kCPU);
      const core::TensorSpec& spec = config_.outputs[i];
      ASSIGN_OR_RETURN(outputs[spec.name], FromAtenTensor(result, spec, ordered.batch));
    }
    return outputs;
  }

  const core::ModelConfig config_;
  const std::unique_ptr<Loader> loader_;
  const c10::Device device_;
  const int intra_op_threads_;
  bool threads_set_ = false;
};

}  // namespace

bool TorchAotiBackend::ServesWithoutConfig(const std::filesystem::path& version_dir) {
  std::error_code error;
  return std::filesystem::is_regular_file(version_dir / kDefaultPackageFilename, error);
}

absl::Status TorchAotiBackend::CompleteConfig(const std::filesystem::path& version_dir,
                                              inference::ModelConfig& config) {
  ASSIGN_OR_RETURN(const std::filesystem::path path, PackagePath(config, version_dir));
  ASSIGN_OR_RETURN(const Metadata metadata, ReadMetadata(path));
  return CompleteConfigFromPackage(Find(metadata, kPackageConfigKey), path.string(), config);
}

absl::StatusOr<std::unique_ptr<Model>> TorchAotiBackend::Load(
    const core::ModelConfig& config, const std::filesystem::path& version_dir) {
  return LoadOn(config, version_dir, core::ModelConfig::kCpuDevice);
}

absl::StatusOr<std::unique_ptr<Model>> TorchAotiBackend::LoadOn(
    const core::ModelConfig& config, const std::filesystem::path& version_dir, int device_index) {
  ASSIGN_OR_RETURN(const std::filesystem::path path, PackagePath(config.proto, version_dir));
  RETURN_IF_ERROR(CheckDataTypes(config.inputs, "input"));
  RETURN_IF_ERROR(CheckDataTypes(config.outputs, "output"));
  ASSIGN_OR_RETURN(const int threads, IntraOpThreads(config));
  ASSIGN_OR_RETURN(const core::TrainingOptions training, core::ParseTrainingOptions(config));
  if (training.enabled) {
    return absl::InvalidArgumentError(
        "parameter training is true, but a torch.export package is compiled code without its "
        "training graph; train a TorchScript model (pytorch_libtorch) instead");
  }
  // CompleteConfig checked the newest version's package; this version's may differ.
  ASSIGN_OR_RETURN(const Metadata metadata, ReadMetadata(path));
  inference::ModelConfig checked = config.proto;
  RETURN_IF_ERROR(
      CompleteConfigFromPackage(Find(metadata, kPackageConfigKey), path.string(), checked));
  ASSIGN_OR_RETURN(const c10::Device device, TorchDevice(device_index));
  const std::string compiled_for = Find(metadata, kDeviceKey).value_or("cpu");
  const std::string wanted = device.is_cpu() ? "cpu" : "cuda";
  if (compiled_for != wanted) {
    return absl::FailedPreconditionError(
        absl::StrCat(path.string(), " was compiled for ", compiled_for, " but the instance is on ",
                     wanted, " (instance_group kind); compile the package for that device"));
  }

  const std::string context = absl::StrCat("loading ", path.string());
  UnpackGuard unpacking;
  try {
    auto loader = std::make_unique<Loader>(path.string(), kPackagedModel,
                                           /*run_single_threaded=*/false, /*num_runners=*/1,
                                           device.is_cpu() ? -1 : device.index());
    return std::make_unique<AotiModel>(config, std::move(loader), device, threads);
  } catch (const c10::Error& e) {
    unpacking.RemoveLeftovers();
    return FrameworkError(context, e);
  } catch (const std::exception& e) {
    unpacking.RemoveLeftovers();
    return FrameworkError(context, e);
  }
}

}  // namespace modeld::backend
