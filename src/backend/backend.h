// Backend and Model: the seam between modeld and a machine-learning framework.
//
// No framework header may appear here or in any header included widely: each framework stays
// inside its own backend's .cc files so the rest of modeld compiles fast.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/model_config.h"
#include "core/tensor.h"

namespace modeld::backend {

// One loaded copy (instance) of one model version. Run() is never called concurrently on the
// same Model and always from the same worker thread, so backend code stays single-threaded.
class Model {
 public:
  virtual ~Model() = default;

  // `inputs` holds every config input, already validated against the config (names,
  // datatypes, API shapes including the batch dimension, byte sizes, BOOL bytes 0 or 1).
  // Returns every config output by name with its API shape. Framework errors come back as
  // INTERNAL with the framework's message; a result that does not match the config is
  // INTERNAL too.
  //
  // Memory: the input bytes stay valid until the request's callback has run, which is after
  // the outputs have been encoded, so an output may view input bytes (an identity model does)
  // as long as it also holds the input Tensor's owner. A framework may be handed the input
  // bytes without copying; a model that writes to its arguments writes into that buffer,
  // which belongs to this one request and is never read again after encoding.
  virtual absl::StatusOr<core::TensorMap> Run(const core::TensorMap& inputs) = 0;

  // Online learning (docs/online-learning.md). Loaded from a config with training on, a model
  // that can train overrides all of these; the defaults refuse. They are never called
  // concurrently with each other or with Run() on the same Model (backend::SharedInstance
  // runs them all on one thread), so a Run() sees the weights before or after a step, never in
  // between.

  // OK when this instance can train; FAILED_PRECONDITION saying why not otherwise.
  virtual absl::Status CanTrain() const {
    return absl::FailedPreconditionError("this backend does not train models");
  }
  // One step: computes the loss of `inputs` (validated as for Run) against `targets` (each
  // well-formed, with the inputs' batch size first) and updates the weights. Returns the loss
  // before the update. INVALID_ARGUMENT naming a target the model does not take, or one it
  // needs that is missing, or for a non-finite loss whose update was not applied; DATA_LOSS
  // when an update the model applied itself gave a non-finite loss (the weights may be
  // damaged); INTERNAL with the framework's message.
  virtual absl::StatusOr<double> Train(const core::TensorMap& inputs,
                                       const core::TensorMap& targets) {
    (void)inputs;
    (void)targets;
    return CanTrain();
  }
  // The state a checkpoint keeps (weights, optimizer state) as named byte sections, and back.
  // RestoreState gets what SaveState of a model of the same config gave, possibly in an
  // earlier process; INVALID_ARGUMENT when it does not fit this model (renamed or reshaped
  // weights), leaving the weights as they were.
  using State = std::map<std::string, std::string>;
  virtual absl::StatusOr<State> SaveState() { return CanTrain(); }
  virtual absl::Status RestoreState(const State& state) {
    (void)state;
    return CanTrain();
  }
};

// A framework: turns a version directory into Models. Thread-safe.
class Backend {
 public:
  virtual ~Backend() = default;

  // Whether `version_dir` holds a model this backend serves without a config.pbtxt (a
  // TensorFlow Serving model base path, say). The model manager then writes a config naming
  // only this backend's platform and leaves the rest to CompleteConfig. Default: never.
  virtual bool ServesWithoutConfig(const std::filesystem::path& version_dir) {
    (void)version_dir;
    return false;
  }

  // Called once per model, before the config is validated, with the newest version folder the
  // version policy selects: fills in what `config` leaves out from the model file itself and
  // checks what it states against the model. Errors name the tensor or field and both values
  // (INVALID_ARGUMENT), or the framework's message (INTERNAL). Default: nothing to complete.
  virtual absl::Status CompleteConfig(const std::filesystem::path& version_dir,
                                      inference::ModelConfig& config) {
    (void)version_dir;
    (void)config;
    return absl::OkStatus();
  }

  // Whether models of this backend can learn online when their config turns training on
  // (docs/online-learning.md). Default: no.
  virtual bool Trains() const { return false; }

  // Loads one instance of the version in `version_dir`. INVALID_ARGUMENT when the config asks
  // for something this backend cannot do (named), NOT_FOUND when the model file is missing,
  // INTERNAL when the framework fails to load it (with the framework's message).
  virtual absl::StatusOr<std::unique_ptr<Model>> Load(const core::ModelConfig& config,
                                                      const std::filesystem::path& version_dir) = 0;

  // Loads one instance onto `device`: core::ModelConfig::kCpuDevice, or a GPU's index (the
  // config's instance_devices). The default loads CPU instances with Load() and refuses a GPU
  // (FAILED_PRECONDITION: this backend runs on the CPU only). A backend that runs on GPUs
  // answers FAILED_PRECONDITION naming what is missing (the GPU, its driver, the libraries).
  virtual absl::StatusOr<std::unique_ptr<Model>> LoadOn(const core::ModelConfig& config,
                                                        const std::filesystem::path& version_dir,
                                                        int device) {
    if (device != core::ModelConfig::kCpuDevice) {
      return absl::FailedPreconditionError(
          absl::StrCat("instance_group KIND_GPU: the ",
                       config.platform.empty() ? config.backend : config.platform,
                       " backend runs models on the CPU only"));
    }
    return Load(config, version_dir);
  }

  // Online learning's publishing: writes a trained model's State (Model::SaveState) as a
  // version folder this backend serves, into the empty folder `out`. `loaded_from` is the
  // version folder the trained instance was loaded from, for the files training does not
  // change. Default: UNIMPLEMENTED.
  virtual absl::Status ExportVersion(const core::ModelConfig& config, const Model::State& state,
                                     const std::filesystem::path& loaded_from,
                                     const std::filesystem::path& out) {
    (void)config;
    (void)state;
    (void)loaded_from;
    (void)out;
    return absl::UnimplementedError("this backend cannot publish trained versions");
  }
};

}  // namespace modeld::backend
