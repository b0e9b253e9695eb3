// TrainingOptions: how a model opts in to online learning, read from its config parameters
// (docs/online-learning.md lists them). A model without `training: "true"` never trains.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/model_config.h"

namespace modeld::core {

struct TrainingOptions {
  bool enabled = false;  // "training"
  // modeld's own step (a TorchScript module without train_step): "training_optimizer",
  // "training_learning_rate", "training_loss".
  std::string optimizer = "sgd";  // sgd | adam
  double learning_rate = 0.01;
  std::string loss = "mse";  // mse | cross_entropy
  // A TensorFlow SavedModel's signature that runs one step: "training_signature".
  std::string signature = "train";
  // Checkpoints: after this many steps ("checkpoint_every_steps"; 0: never by count), once
  // this long has passed with steps not yet saved ("checkpoint_every_seconds"; 0: never by
  // time), and when the version is unloaded or modeld stops.
  int64_t checkpoint_every_steps = 100;
  absl::Duration checkpoint_every = absl::Seconds(60);
  int checkpoints_kept = 3;  // "checkpoints_kept": the newest ones stay, older are deleted
  // "checkpoint_dir": where this model's checkpoints go; empty: the server's --checkpoint-dir
  // (then <it>/<model>), else <model folder>/checkpoints.
  std::string checkpoint_dir;
  // "publish_versions": each checkpoint is also written as a new numeric version of the model
  // in "publish_dir" (default: the model's own folder), for serving replicas to load.
  bool publish_versions = false;
  std::string publish_dir;
};

// The options in `config`'s parameters. INVALID_ARGUMENT naming the parameter for a value out
// of its range or set, and, when training is on, for a config with more than one instance
// (every instance would learn apart).
absl::StatusOr<TrainingOptions> ParseTrainingOptions(const ModelConfig& config);

}  // namespace modeld::core
