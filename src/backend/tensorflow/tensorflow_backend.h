// TensorFlowBackend: TensorFlow SavedModels through TensorFlow's C API (platform
// "tensorflow_savedmodel", backend "tensorflow").
//
// A version folder holds a SavedModel (saved_model.pb + variables/), either in
// <version>/model.savedmodel/ (Triton's layout) or in <version>/ itself (TensorFlow Serving's
// layout). Each Load() opens its own session on the meta graph tagged "serve", so instances
// share nothing and each runs on its own worker thread.
//
// Calling convention: the API's tensor names are the signature's input and output keys (as
// TensorFlow Serving shows them). Run() feeds every config input and fetches every config
// output of the signature named by the `signature_name` parameter (default serving_default).
// `reshape` works as for TorchScript: an input is fed as [batch] + reshape, an output's
// [batch] + reshape comes back as [batch] + dims.
//
// Config completion: with no config.pbtxt a version folder holding a SavedModel is still
// served, and CompleteConfig() takes inputs, outputs, datatypes and shapes from the signature;
// a config is checked against the signature (savedmodel::CompleteConfigFromSignature).
//
// Datatypes: every modeld datatype; BYTES is TensorFlow's string (DT_STRING).
//
// Config parameters:
//   signature_name         the signature to serve (default serving_default).
//   intra_op_thread_count  threads one instance uses inside an operator. Default: hardware
//                          threads / instance_count, at least 1 (as for TorchScript).
//   inter_op_thread_count  operators one instance runs at once. Default 1: a serving graph
//                          rarely has independent branches worth a thread each.
//   Each session has its own thread pools (use_per_session_threads), so instances and models
//   never share or resize each other's.
//
// Online learning (parameter training: true; docs/online-learning.md): a step runs the
// signature named by training_signature (default "train"), which takes the model's inputs and
// the targets by name and applies its own update (tf_training.h); it returns its output
// "loss", or its only output. Checkpoints hold the variables as the SavedModel's saver writes
// them, so a published version is the same SavedModel with new variables/. A SavedModel
// without that signature or without a saver loads, and CanTrain() says why it cannot train.
// Nothing of this is looked at when training is off.
//
// Memory: numeric inputs are handed to TensorFlow without copying and numeric outputs are
// handed back without copying; strings are copied both ways.
#pragma once

#include <string>

#include "backend/backend.h"

namespace modeld::backend {

// Thread-safe: Load() may run concurrently for different models and versions. The TensorFlow
// library is opened on the first Load() (tf_api.h). Errors: NOT_FOUND when the version folder
// holds no SavedModel; FAILED_PRECONDITION when the TensorFlow library cannot be opened;
// INVALID_ARGUMENT for a bad parameter or a config that does not fit the signature; INTERNAL
// with TensorFlow's message when the SavedModel cannot be loaded (a corrupt one is an error,
// never a crash). The returned Model's Run() reports TensorFlow's errors and results that do
// not match the config as INTERNAL.
class TensorFlowBackend : public Backend {
 public:
  // `library`: the libtensorflow_cc.so.2 to open; empty: DefaultLibrary().
  explicit TensorFlowBackend(std::string library = "");

  // The library found when modeld was built (the tensorflow-cpu wheel in .venv); empty when
  // modeld was built without it.
  static std::string DefaultLibrary();

  bool ServesWithoutConfig(const std::filesystem::path& version_dir) override;
  absl::Status CompleteConfig(const std::filesystem::path& version_dir,
                              inference::ModelConfig& config) override;
  bool Trains() const override { return true; }
  absl::StatusOr<std::unique_ptr<Model>> Load(const core::ModelConfig& config,
                                              const std::filesystem::path& version_dir) override;
  // Writes the SavedModel `loaded_from` holds, in the same layout, with the state's variables.
  absl::Status ExportVersion(const core::ModelConfig& config, const Model::State& state,
                             const std::filesystem::path& loaded_from,
                             const std::filesystem::path& out) override;

 private:
  const std::string library_;
};

}  // namespace modeld::backend
