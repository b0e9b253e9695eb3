#include "training/trainer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "common/thread_priority.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "training/checkpoint.h"

namespace modeld::training {
namespace {

// The highest numeric version folder in `model_dir`; 0 when none.
int64_t NewestVersionFolder(const std::filesystem::path& model_dir) {
  int64_t newest = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(model_dir, error)) {
    int64_t version = 0;
    if (entry.is_directory(error) && absl::SimpleAtoi(entry.path().filename().native(), &version)) {
      newest = std::max(newest, version);
    }
  }
  return newest;
}

// fsync of every file under `dir` and of the folders themselves, so a rename that publishes
// the folder never exposes files still in the page cache only.
absl::Status SyncTree(const std::filesystem::path& dir) {
  std::error_code error;
  std::vector<std::filesystem::path> paths = {dir};
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir, error)) {
    paths.push_back(entry.path());
  }
  if (error)
    return absl::InternalError(absl::StrCat("listing ", dir.string(), ": ", error.message()));
  for (const std::filesystem::path& path : paths) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) {
      if (fd >= 0) ::close(fd);
      return absl::InternalError(absl::StrCat("syncing ", path.string()));
    }
    ::close(fd);
  }
  return absl::OkStatus();
}

}  // namespace

class Trainer::Worker {
 public:
  explicit Worker(Params params);

  // The restore of Start(); returns the step restored (0: none).
  absl::StatusOr<int64_t> Restore();
  // Queues the step; false when draining (the caller answers).
  bool Push(core::TrainRequest& request, core::TrainCallback& done);
  void StopIntake();
  void Loop();

 private:
  struct Pending {
    core::TrainRequest request;
    core::TrainCallback done;
  };

  // Saves the state into a checkpoint (and publishes it as a version when asked). Errors are
  // logged and counted; the steps stay unsaved and are tried again at the next occasion.
  void Checkpoint();
  absl::Status Publish(const backend::Model::State& state);

  const Params params_;
  // The loop's own.
  // Set when a step reported DATA_LOSS (its own update gave a non-finite loss): no more steps
  // and no more checkpoints, so the newest checkpoint stays the last good weights.
  std::optional<std::string> damaged_;
  int64_t step_ = 0;
  int64_t saved_step_ = 0;  // the newest checkpoint's
  absl::Time saved_at_;
  metrics::Counter* steps_total_ = nullptr;
  metrics::Gauge* loss_ = nullptr;
  metrics::Counter* checkpoints_ok_ = nullptr;
  metrics::Counter* checkpoints_failed_ = nullptr;

  absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

Trainer::Worker::Worker(Params params) : params_(std::move(params)) {
  if (params_.registry != nullptr) {
    const metrics::Labels labels = {{"model", params_.config->name},
                                    {"version", std::to_string(params_.version)}};
    steps_total_ = &params_.registry->GetCounter(
        "modeld_training_steps_total", "Training steps applied (online learning)", labels);
    loss_ = &params_.registry->GetGauge("modeld_training_loss",
                                        "The loss of the last training step", labels);
    auto checkpoint_labels = [&](const char* outcome) {
      metrics::Labels with = labels;
      with.emplace_back("outcome", outcome);
      return with;
    };
    constexpr char kHelp[] = "Checkpoints written (ok) or that failed (error)";
    checkpoints_ok_ =
        &params_.registry->GetCounter("modeld_checkpoints_total", kHelp, checkpoint_labels("ok"));
    checkpoints_failed_ = &params_.registry->GetCounter("modeld_checkpoints_total", kHelp,
                                                        checkpoint_labels("error"));
  }
}

absl::StatusOr<int64_t> Trainer::Worker::Restore() {
  const std::string& model = params_.config->name;
  RemoveUnfinishedWrites(params_.checkpoint_dir);
  std::vector<std::string> skipped;
  std::optional<FoundCheckpoint> found = NewestValidCheckpoint(params_.checkpoint_dir, &skipped);
  for (const std::string& reason : skipped) {
    spdlog::warn("model '{}': skipping checkpoint {}", model, reason);
  }
  if (found.has_value()) {
    absl::Status restored = params_.instance->Call(
        [&](backend::Model& m) { return m.RestoreState(found->checkpoint.state); });
    if (!restored.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "checkpoint ", found->file.string(), " does not fit the model: ", restored.message(),
          " (move it away to start from the version's own weights)"));
    }
    step_ = saved_step_ = found->checkpoint.step;
    spdlog::info("model '{}' version {}: restored checkpoint {} (step {}, written {})", model,
                 params_.version, found->file.string(), found->checkpoint.step,
                 absl::FormatTime(found->checkpoint.written));
  }
  saved_at_ = absl::Now();
  return step_;
}

bool Trainer::Worker::Push(core::TrainRequest& request, core::TrainCallback& done) {
  absl::MutexLock lock(&mu_);
  if (draining_) return false;
  queue_.push_back({std::move(request), std::move(done)});
  return true;
}

void Trainer::Worker::StopIntake() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Start(Params params) {
  auto worker = std::make_shared<Worker>(std::move(params));
  ASSIGN_OR_RETURN(const int64_t restored, worker->Restore());
  std::unique_ptr<Trainer> trainer(new Trainer(worker, restored));
  absl::MutexLock lock(&trainer->thread_mu_);
  trainer->thread_ = std::thread([worker] {
    common::EnterModelThread();
    worker->Loop();
  });
  return trainer;
}

Trainer::Trainer(std::shared_ptr<Worker> worker, int64_t restored_step)
    : worker_(std::move(worker)), restored_step_(restored_step) {}

Trainer::~Trainer() { Drain(); }

void Trainer::Train(core::TrainRequest&& request, core::TrainCallback&& done) {
  if (!worker_->Push(request, done)) {
    std::move(done)(absl::UnavailableError("modeld is shutting down"));
  }
}

void Trainer::Drain() {
  worker_->StopIntake();
  absl::MutexLock lock(&thread_mu_);
  if (!thread_.joinable()) return;
  if (thread_.get_id() == std::this_thread::get_id()) {
    thread_.detach();
  } else {
    thread_.join();
  }
}

void Trainer::Worker::Loop() {
  const core::TrainingOptions& options = params_.options;
  for (;;) {
    std::optional<Pending> next;
    bool draining = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this] { return !queue_.empty() || draining_; };
      const bool timed = options.checkpoint_every > absl::ZeroDuration() && step_ > saved_step_ &&
                         !damaged_.has_value();
      if (timed) {
        mu_.AwaitWithDeadline(absl::Condition(&ready), saved_at_ + options.checkpoint_every);
      } else {
        mu_.Await(absl::Condition(&ready));
      }
      if (!queue_.empty()) {
        next.emplace(std::move(queue_.front()));
        queue_.pop_front();
      }
      draining = draining_;
    }
    if (!next.has_value()) {
      if (step_ > saved_step_ && !damaged_.has_value()) Checkpoint();  // time, or the last
      if (draining) return;
      continue;
    }
    if (damaged_.has_value()) {
      std::move(next->done)(absl::FailedPreconditionError(*damaged_));
      continue;
    }
    absl::StatusOr<double> loss = params_.instance->Call([&](backend::Model& model) {
      return model.Train(next->request.inputs, next->request.targets);
    });
    if (absl::IsDataLoss(loss.status())) {
      damaged_ = absl::StrCat("model '", params_.config->name, "' version ", params_.version,
                              " stopped training: step ", step_ + 1,
                              " gave a non-finite loss after its update (", loss.status().message(),
                              "); no checkpoint is written any more, so restarting modeld "
                              "(or reloading the model) goes back to checkpoint step ",
                              saved_step_);
      spdlog::error("{}", *damaged_);
    }
    if (!loss.ok()) {
      std::move(next->done)(loss.status());
      continue;
    }
    ++step_;
    if (steps_total_ != nullptr) {
      steps_total_->Increment();
      loss_->Set(*loss);
    }
    if (options.checkpoint_every_steps > 0 &&
        step_ - saved_step_ >= options.checkpoint_every_steps) {
      Checkpoint();
    }
    core::TrainResponse response;
    response.model_name = params_.config->name;
    response.model_version = params_.version;
    response.id = std::move(next->request.id);
    response.step = step_;
    response.loss = *loss;
    response.checkpoint_step = saved_step_;
    std::move(next->done)(std::move(response));
  }
}

void Trainer::Worker::Checkpoint() {
  const std::string& model = params_.config->name;
  if (damaged_.has_value()) return;
  absl::StatusOr<backend::Model::State> state =
      params_.instance->Call([](backend::Model& m) { return m.SaveState(); });
  absl::Status status = state.status();
  if (status.ok()) {
    training::Checkpoint checkpoint{step_, params_.version, absl::Now(), *std::move(state)};
    absl::StatusOr<std::filesystem::path> file =
        WriteCheckpoint(params_.checkpoint_dir, checkpoint);
    status = file.status();
    if (status.ok()) {
      saved_step_ = step_;
      saved_at_ = absl::Now();
      PruneCheckpoints(params_.checkpoint_dir, params_.options.checkpoints_kept);
      spdlog::info("model '{}' version {}: checkpoint {} (step {})", model, params_.version,
                   file->string(), step_);
      if (params_.options.publish_versions) status = Publish(checkpoint.state);
    }
  }
  if (!status.ok()) {
    // Counted as a failure and retried at the next occasion; the steps stay in memory.
    saved_at_ = absl::Now();
    spdlog::error("model '{}' version {}: checkpoint at step {} failed: {}", model, params_.version,
                  step_, status.message());
  }
  metrics::Counter* outcome = status.ok() ? checkpoints_ok_ : checkpoints_failed_;
  if (outcome != nullptr) outcome->Increment();
}

absl::Status Trainer::Worker::Publish(const backend::Model::State& state) {
  const std::filesystem::path& dir = params_.publish_dir;
  const int64_t version = NewestVersionFolder(dir) + 1;
  // Written under a name no scan takes for a version, then renamed: a replica polling the
  // repository sees the whole version folder or none of it.
  const std::filesystem::path staging = dir / absl::StrCat(".publishing-", version);
  const std::filesystem::path target = dir / std::to_string(version);
  std::error_code error;
  std::filesystem::remove_all(staging, error);
  std::filesystem::create_directories(staging, error);
  if (error) {
    return absl::InternalError(absl::StrCat("creating ", staging.string(), ": ", error.message()));
  }
  absl::Status written = [&]() -> absl::Status {
    RETURN_IF_ERROR(
        params_.backend->ExportVersion(*params_.config, state, params_.version_dir, staging));
    RETURN_IF_ERROR(SyncTree(staging));
    std::filesystem::rename(staging, target, error);
    if (error) {
      return absl::InternalError(absl::StrCat("renaming ", staging.string(), " to ",
                                              target.string(), ": ", error.message()));
    }
    return SyncFolder(dir);
  }();
  if (!written.ok()) {
    std::filesystem::remove_all(staging, error);
    return written;
  }
  spdlog::info("model '{}': published step {} as version {} in {}", params_.config->name, step_,
               version, dir.string());
  return absl::OkStatus();
}

}  // namespace modeld::training
