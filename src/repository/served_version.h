// ServedVersion: the life of one loaded version of one model, from its instances, scheduler,
// trainer and warm-up to its destruction. The ModelManager keeps the repository's map of them;
// a ModelHandle keeps one alive while a request or step holds it.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "backend/backend.h"
#include "backend/watched_model.h"
#include "batching/scheduler.h"
#include "core/model_config.h"
#include "metrics/registry.h"
#include "metrics/version_metrics.h"
#include "training/trainer.h"

namespace modeld::repository {

// One ready version of one model.
class ServedVersion {
 public:
  ServedVersion(std::shared_ptr<const core::ModelConfig> config, int64_t version,
                std::shared_ptr<const metrics::VersionMetrics> metrics,
                std::unique_ptr<batching::Scheduler> scheduler,
                std::shared_ptr<const backend::RunWatch> runs = nullptr,
                std::unique_ptr<training::Trainer> trainer = nullptr)
      : config_(std::move(config)),
        version_(version),
        metrics_(std::move(metrics)),
        runs_(std::move(runs)),
        scheduler_(std::move(scheduler)),
        trainer_(std::move(trainer)) {}
  // Drains the scheduler (queued requests finish) and the trainer (queued steps run, and a
  // last checkpoint is written), frees the instances, and hands the freed memory back to the
  // system (glibc keeps freed pages otherwise).
  ~ServedVersion();

  const core::ModelConfig& config() const { return *config_; }
  const std::shared_ptr<const core::ModelConfig>& config_ptr() const { return config_; }
  int64_t version() const { return version_; }
  const metrics::VersionMetrics& metrics() const { return *metrics_; }
  batching::Scheduler& scheduler() const { return *scheduler_; }
  // The version's trainer when its config turns training on; null otherwise.
  training::Trainer* trainer() const { return trainer_.get(); }
  // OK when the backend could train this model if its config asked (Backend::Trains),
  // FAILED_PRECONDITION saying why not otherwise (an ONNX model, say).
  const absl::Status& can_train() const { return can_train_; }
  void set_can_train(absl::Status status) { can_train_ = std::move(status); }
  // When the oldest Run() of its instances still in progress began; InfiniteFuture if none.
  absl::Time OldestRunStart() const {
    return runs_ != nullptr ? runs_->OldestRunStart() : absl::InfiniteFuture();
  }
  // Whether an instance has been inside one Run() for longer than `limit` at `now` (the
  // watchdog); never when `limit` is zero or less.
  bool Stuck(absl::Time now, absl::Duration limit) const {
    const absl::Time since = OldestRunStart();
    return limit > absl::ZeroDuration() && since != absl::InfiniteFuture() && now - since > limit;
  }

  // Requests and training steps queued or running on this version, counted by the service:
  // the memory budget never evicts a version while it has any.
  void AddInFlight(int64_t delta) const { in_flight_.fetch_add(delta, std::memory_order_relaxed); }
  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  // The last time a request or step asked for this version: the budget's eviction order.
  void Touch(absl::Time now) const {
    last_used_ns_.store(absl::ToUnixNanos(now), std::memory_order_relaxed);
  }
  // InfinitePast when never touched.
  absl::Time last_used() const {
    const int64_t ns = last_used_ns_.load(std::memory_order_relaxed);
    return ns == 0 ? absl::InfinitePast() : absl::FromUnixNanos(ns);
  }

  // Notified once the version is destroyed and its memory handed back (possibly on a thread
  // of its own after the last handle went): the memory budget measures the next load after.
  std::shared_ptr<absl::Notification> freed() const { return freed_; }

 private:
  const std::shared_ptr<const core::ModelConfig> config_;
  const int64_t version_;
  const std::shared_ptr<const metrics::VersionMetrics> metrics_;
  const std::shared_ptr<const backend::RunWatch> runs_;
  std::unique_ptr<batching::Scheduler> scheduler_;
  std::unique_ptr<training::Trainer> trainer_;
  absl::Status can_train_;
  const std::shared_ptr<absl::Notification> freed_ = std::make_shared<absl::Notification>();
  mutable std::atomic<int64_t> in_flight_{0};
  mutable std::atomic<int64_t> last_used_ns_{0};
};

using ModelHandle = std::shared_ptr<const ServedVersion>;

// Which version to load: `config` (completed and validated) of the model in `model_dir`, its
// folder <model_dir>/<version>, through `backend`.
struct VersionSource {
  std::shared_ptr<const core::ModelConfig> config;
  backend::Backend* backend = nullptr;
  std::filesystem::path model_dir;
  int64_t version = 0;
};

// What every version of a repository is built with.
struct VersionServices {
  batching::SchedulerFactory make_scheduler;
  metrics::Registry* registry = nullptr;  // null: no metrics
  // Where trained models keep their checkpoints: <checkpoint_root>/<model>; empty:
  // <model folder>/checkpoints. A model's checkpoint_dir parameter overrides both.
  std::filesystem::path checkpoint_root;
};

// Loads `instance_count` instances (one, shared with a Trainer, when the config trains), puts
// them behind a scheduler, and runs the config's warm-up through it: the version is returned
// only once it can serve. NOT_FOUND without the version folder; the backend's, the training
// options' or the warm-up's error otherwise.
absl::StatusOr<ModelHandle> LoadServedVersion(const VersionSource& source,
                                              const VersionServices& services);

}  // namespace modeld::repository
