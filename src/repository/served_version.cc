#include "repository/served_version.h"

#include <malloc.h>

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backend/shared_instance.h"
#include "batching/worker_threads.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "core/training_options.h"
#include "repository/warmup.h"

namespace modeld::repository {
namespace {

// Drains (queued requests finish), joins the workers and frees the instances, drains the
// trainer (its queued steps and last checkpoint), then gives the freed pages back: glibc keeps
// them otherwise, and a model reloaded twenty times would look like a leak to whoever watches
// the RSS.
void DestroyVersion(std::unique_ptr<batching::Scheduler> scheduler,
                    std::unique_ptr<training::Trainer> trainer,
                    std::shared_ptr<absl::Notification> freed) {
  scheduler.reset();
  trainer.reset();
  malloc_trim(0);
  freed->Notify();
}

// A trained model's checkpoint folder (VersionServices::checkpoint_root).
std::filesystem::path CheckpointDir(const core::ModelConfig& config,
                                    const core::TrainingOptions& training,
                                    const std::filesystem::path& checkpoint_root,
                                    const std::filesystem::path& model_dir) {
  if (!training.checkpoint_dir.empty()) return training.checkpoint_dir;
  if (!checkpoint_root.empty()) return checkpoint_root / config.name;
  return model_dir / "checkpoints";
}

}  // namespace

ServedVersion::~ServedVersion() {
  if (batching::WorkerThreads::OnWorkerThread()) {
    // The last handle went with a request's callback, on a scheduler's worker thread (a
    // retired version's last answer): that worker is still inside its scheduler's loop and
    // would run on in freed memory if the scheduler were destroyed under it. A thread of its
    // own destroys it, joining the worker once it is back in its loop. (Found by make
    // test-asan: heap-use-after-free in DynamicBatcher::WorkerLoop during reloads.)
    std::thread(DestroyVersion, std::move(scheduler_), std::move(trainer_), freed_).detach();
    return;
  }
  DestroyVersion(std::move(scheduler_), std::move(trainer_), freed_);
}

absl::StatusOr<ModelHandle> LoadServedVersion(const VersionSource& source,
                                              const VersionServices& services) {
  std::shared_ptr<const core::ModelConfig> config = source.config;
  backend::Backend& backend = *source.backend;
  const std::filesystem::path& model_dir = source.model_dir;
  const int64_t version = source.version;
  const std::filesystem::path version_dir = model_dir / std::to_string(version);
  if (!std::filesystem::is_directory(version_dir)) {
    return absl::NotFoundError(
        absl::StrCat("version folder ", version_dir.string(), " does not exist"));
  }
  std::vector<std::unique_ptr<backend::Model>> instances;
  auto runs = std::make_shared<backend::RunWatch>(config->instance_count);
  ASSIGN_OR_RETURN(const core::TrainingOptions training, core::ParseTrainingOptions(*config));
  std::unique_ptr<training::Trainer> trainer;
  // Whether training could be turned on, for a request to train a model that does not.
  const absl::Status can_train =
      backend.Trains() ? absl::OkStatus()
                       : absl::FailedPreconditionError(absl::StrCat(
                             "its platform (", config->platform.empty() ? config->backend
                                                                       : config->platform,
                             ") serves models without training them; online learning needs a "
                             "TorchScript model or a TensorFlow SavedModel "
                             "(docs/online-learning.md)"));
  if (training.enabled && !can_train.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("its config.pbtxt turns training on, but ", can_train.message()));
  }
  if (training.enabled) {
    // One instance (ParseTrainingOptions checks), shared by the scheduler and the trainer.
    ASSIGN_OR_RETURN(std::unique_ptr<backend::Model> model,
                     backend.LoadOn(*config, version_dir, config->instance_devices[0]));
    RETURN_IF_ERROR(model->CanTrain());
    auto shared = std::make_shared<backend::SharedInstance>(std::move(model));
    ASSIGN_OR_RETURN(
        trainer,
        training::Trainer::Start({
            .config = config,
            .version = version,
            .options = training,
            .checkpoint_dir = CheckpointDir(*config, training, services.checkpoint_root, model_dir),
            .version_dir = version_dir,
            .publish_dir = training.publish_dir.empty()
                               ? model_dir
                               : std::filesystem::path(training.publish_dir),
            .instance = shared,
            .backend = &backend,
            .registry = services.registry,
        }));
    instances.push_back(std::make_unique<backend::WatchedModel>(
        std::make_unique<backend::LockedModel>(std::move(shared)), runs, 0));
  } else {
    for (int i = 0; i < config->instance_count; ++i) {
      ASSIGN_OR_RETURN(std::unique_ptr<backend::Model> model,
                       backend.LoadOn(*config, version_dir, config->instance_devices[i]));
      instances.push_back(std::make_unique<backend::WatchedModel>(std::move(model), runs, i));
    }
  }
  auto metrics = services.registry != nullptr
                     ? std::make_shared<const metrics::VersionMetrics>(
                           *services.registry, config->name, std::to_string(version))
                     : std::make_shared<const metrics::VersionMetrics>();
  ASSIGN_OR_RETURN(const std::vector<WarmupRequest> warmup, WarmupRequests(*config, model_dir));
  auto scheduler = services.make_scheduler(config, version, std::move(instances), metrics);
  // Not published, so not ready, until its warm-up has run.
  RETURN_IF_ERROR(RunWarmup(*scheduler, warmup));
  if (!warmup.empty()) {
    spdlog::info("model '{}' version {}: warm-up done ({} request{})", config->name, version,
                 warmup.size(), warmup.size() == 1 ? "" : "s");
  }
  auto served = std::make_shared<ServedVersion>(std::move(config), version, std::move(metrics),
                                                std::move(scheduler), std::move(runs),
                                                std::move(trainer));
  served->set_can_train(can_train);
  return served;
}

}  // namespace modeld::repository
