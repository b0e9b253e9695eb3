#include "batching/direct_scheduler.h"

#include "absl/strings/str_cat.h"
#include "batching/dynamic_batcher.h"
#include "core/infer_response.h"

namespace modeld::batching {

SchedulerFactory MakeSchedulerFactory(const common::Clock& clock) {
  return [&clock](
             std::shared_ptr<const core::ModelConfig> config, int64_t version,
             std::vector<std::unique_ptr<backend::Model>> instances) -> std::unique_ptr<Scheduler> {
    if (config->proto.has_dynamic_batching()) {
      return std::make_unique<DynamicBatcher>(std::move(config), version, std::move(instances),
                                              clock);
    }
    return std::make_unique<DirectScheduler>(std::move(config), version, std::move(instances),
                                             clock);
  };
}

DirectScheduler::DirectScheduler(std::shared_ptr<const core::ModelConfig> config, int64_t version,
                                 std::vector<std::unique_ptr<backend::Model>> instances,
                                 const common::Clock& clock)
    : config_(std::move(config)),
      version_(version),
      instances_(std::move(instances)),
      clock_(clock) {
  absl::MutexLock lock(&join_mu_);
  for (const std::unique_ptr<backend::Model>& model : instances_) {
    workers_.emplace_back([this, &model] { WorkerLoop(*model); });
  }
}

DirectScheduler::~DirectScheduler() { Drain(); }

void DirectScheduler::Enqueue(core::InferRequest&& request, core::InferCallback&& done) {
  {
    absl::MutexLock lock(&mu_);
    if (!draining_) {
      queue_.push_back({std::move(request), std::move(done)});
      return;
    }
  }
  std::move(done)(absl::UnavailableError(
      absl::StrCat("model '", config_->name, "' version ", version_, " is shutting down")));
}

void DirectScheduler::Drain() {
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
  }
  absl::MutexLock lock(&join_mu_);
  for (std::thread& worker : workers_) {
    // A request's callback may drop the last reference to this scheduler on a worker thread;
    // that worker cannot join itself, and it is already past its last request.
    if (worker.get_id() == std::this_thread::get_id()) {
      worker.detach();
    } else if (worker.joinable()) {
      worker.join();
    }
  }
  workers_.clear();
}

void DirectScheduler::WorkerLoop(backend::Model& model) {
  while (true) {
    std::optional<Pending> pending;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](DirectScheduler* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return !self->queue_.empty() || self->draining_;
          },
          this));
      if (queue_.empty()) return;  // draining and nothing left
      pending.emplace(std::move(queue_.front()));
      queue_.pop_front();
    }
    if (clock_.Now() >= pending->request.deadline) {
      std::move(pending->done)(absl::DeadlineExceededError(
          absl::StrCat("request passed its deadline in the queue of model '", config_->name, "'")));
      continue;
    }
    absl::StatusOr<core::TensorMap> outputs = model.Run(pending->request.inputs);
    if (outputs.ok()) {
      std::move(pending->done)(
          core::BuildResponse(*config_, version_, pending->request, *std::move(outputs)));
    } else {
      std::move(pending->done)(outputs.status());
    }
  }
}

}  // namespace modeld::batching
