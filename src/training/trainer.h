// Trainer: runs the training steps of one model version, one at a time and in arrival order,
// on a thread of its own, and keeps the model's checkpoints (docs/online-learning.md).
//
// A step runs on the instance's own thread (backend::SharedInstance), in turn with the
// inference batches of the version's scheduler, so an inference sees the weights before or
// after it, never half-updated. No transport thread waits for a step.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "backend/shared_instance.h"
#include "core/model_config.h"
#include "core/train_request.h"
#include "core/training_options.h"
#include "metrics/registry.h"

namespace modeld::training {

class Trainer {
 public:
  struct Params {
    std::shared_ptr<const core::ModelConfig> config;
    int64_t version = 0;
    core::TrainingOptions options;
    std::filesystem::path checkpoint_dir;  // this model's checkpoints
    std::filesystem::path version_dir;     // the folder the instance was loaded from
    std::filesystem::path publish_dir;     // where published versions go (publish_versions)
    std::shared_ptr<backend::SharedInstance> instance;
    backend::Backend* backend = nullptr;    // publishes versions; outlives the trainer
    metrics::Registry* registry = nullptr;  // may be null
  };

  // Restores the newest valid checkpoint of `checkpoint_dir` into the instance (files that
  // fail their checks are logged and skipped) and starts the thread. INVALID_ARGUMENT, naming
  // the file, when the newest valid checkpoint does not fit the model (its weights were
  // renamed or reshaped): restoring an older one would silently lose the newer steps.
  static absl::StatusOr<std::unique_ptr<Trainer>> Start(Params params);

  // Drain().
  ~Trainer();

  // Queues one step. `done` runs exactly once, on the trainer's thread (or on the caller's
  // when the trainer is draining: UNAVAILABLE).
  void Train(core::TrainRequest&& request, core::TrainCallback&& done);

  // Stops intake, runs the steps already queued, writes a last checkpoint when a step is not
  // yet saved, and joins the thread. Idempotent.
  void Drain();

  // The restored checkpoint's step, or 0 when none was restored.
  int64_t restored_step() const { return restored_step_; }

 private:
  class Worker;  // the queue, the state and the loop; shared with the thread

  Trainer(std::shared_ptr<Worker> worker, int64_t restored_step);

  // The thread holds the worker too: when the last handle to a version is dropped by a step's
  // callback (on this thread), ~Trainer cannot join; it detaches, and the thread finishes the
  // queue and the last checkpoint on the worker it still holds.
  const std::shared_ptr<Worker> worker_;
  const int64_t restored_step_;
  absl::Mutex thread_mu_;
  std::thread thread_ ABSL_GUARDED_BY(thread_mu_);
};

}  // namespace modeld::training
