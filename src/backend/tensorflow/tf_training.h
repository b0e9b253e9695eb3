// Online learning for TensorFlow SavedModels (docs/online-learning.md).
//
// A step runs the SavedModel's training signature (parameter training_signature, default
// "train"), whose inputs are the model's inputs plus the targets, each under its own name, and
// which applies its own update to the variables (assign_sub inside a tf.function, say). Its
// output "loss" (or its only output) is the step's loss.
//
// The state a checkpoint keeps is the variables as the SavedModel's own saver writes them
// (MetaGraphDef.saver_def, which TensorFlow's loader restores the variables through): one
// section per file the saver writes for the prefix "variables" — variables.index and
// variables.data-00000-of-00001 — which are exactly the files of a SavedModel's variables/
// folder, so a published version is a plain SavedModel. Optimizer state that lives in
// variables (an Adam's slots tracked by the module) is saved with them.
//
// Private to the tensorflow backend: only its .cc files include this header.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "backend/backend.h"
#include "backend/tensorflow/tf_api.h"
#include "core/model_config.h"
#include "core/tensor.h"
#include "tensorflow/meta_graph.pb.h"

namespace modeld::backend {

// Trains one session. Not thread-safe: the caller serialises it with Run() (Model's contract).
class TfTraining {
 public:
  // Resolves the signature `signature` of `meta_graph` (loaded into `graph` and `session`,
  // which must outlive the result) and its saver. FAILED_PRECONDITION saying why when this
  // SavedModel cannot train: it has no such signature, the signature does not take a config
  // input (or takes it as another datatype), its loss is not one float output, or the
  // SavedModel has no saver.
  static absl::StatusOr<std::unique_ptr<TfTraining>> Prepare(
      const TfApi& api, TF_Graph* graph, TF_Session* session,
      const tensorflow::MetaGraphDef& meta_graph, const core::ModelConfig& config,
      const std::string& signature);

  // One step: feeds every tensor of `inputs` (validated against the config) and `targets` to
  // the signature input of its name and fetches the loss. INVALID_ARGUMENT naming a target the
  // signature does not take, a signature input that is missing, or a datatype or shape the
  // signature refuses, before anything runs; DATA_LOSS for a non-finite loss (the signature applied
  // its update already, so the weights may be damaged); INTERNAL with TensorFlow's message, or when
  // the loss is not a single number.
  absl::StatusOr<double> Step(const core::TensorMap& inputs, const core::TensorMap& targets);

  // The variables as the saver writes them, one section per file. INTERNAL when TensorFlow or
  // the temporary folder fails.
  absl::StatusOr<Model::State> Save();

  // Writes `state`'s files to a temporary folder and runs the saver's restore from there.
  // INVALID_ARGUMENT when the sections are not a saver's files, when their variables differ
  // from the model's in name, datatype or shape (TensorFlow's restore would assign a variable
  // of another shape without a word), or when TensorFlow refuses them; the weights are then as
  // they were (after a failed restore, the model's own are restored back).
  absl::Status Restore(const Model::State& state);

 private:
  // One input of the signature.
  struct Feed {
    TF_Output endpoint;
    tensorflow::DataType dtype;
    std::optional<core::Shape> shape;       // nullopt: unknown rank
    std::optional<core::TensorSpec> input;  // the config input of this name; nullopt: a target
  };

  TfTraining(const TfApi& api, TF_Session* session, std::string model, std::string signature,
             bool batched)
      : api_(api),
        session_(session),
        model_(std::move(model)),
        signature_(std::move(signature)),
        batched_(batched) {}

  // Runs the saver with its filename tensor fed `prefix`: fetching `fetch` (the save tensor) or
  // running `target` (the restore operation).
  absl::Status RunSaver(const std::filesystem::path& prefix, const TF_Output* fetch,
                        TF_Operation* target, absl::string_view what);
  std::string TargetNames() const;

  const TfApi& api_;
  TF_Session* const session_;
  const std::string model_;
  const std::string signature_;
  const bool batched_;
  std::map<std::string, Feed> feeds_;  // by signature input key
  TF_Output loss_{};
  TF_Output filename_{};
  TF_Output save_{};
  TF_Operation* restore_ = nullptr;
};

// Writes the SavedModel of the version folder `loaded_from` into `out` (same layout:
// model.savedmodel/ or the folder itself) with the variables of `state` (TfTraining::Save):
// every file but the variables is copied, except fingerprint.pb, whose checkpoint hash would
// describe the old variables. INVALID_ARGUMENT when `state` holds no saver's files; NOT_FOUND
// when `loaded_from` holds no SavedModel; INTERNAL when a file cannot be copied or written.
absl::Status ExportSavedModel(const Model::State& state, const std::filesystem::path& loaded_from,
                              const std::filesystem::path& out);

}  // namespace modeld::backend
