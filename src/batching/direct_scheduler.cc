#include "batching/direct_scheduler.h"

#include "absl/strings/str_cat.h"
#include "core/infer_response.h"

namespace modeld::batching {

DirectScheduler::DirectScheduler(std::shared_ptr<const core::ModelConfig> config, int64_t version,
                                 std::vector<std::unique_ptr<backend::Model>> instances,
                                 const common::Clock& clock,
                                 std::shared_ptr<const metrics::VersionMetrics> metrics)
    : config_(std::move(config)),
      version_(version),
      instances_(std::move(instances)),
      clock_(clock),
      metrics_(std::move(metrics)) {
  for (const std::unique_ptr<backend::Model>& model : instances_) {
    workers_.Start([this, &model] { WorkerLoop(*model); });
  }
}

DirectScheduler::~DirectScheduler() { Drain(); }

void DirectScheduler::Enqueue(core::InferRequest&& request, core::InferCallback&& done) {
  const absl::Time now = clock_.Now();
  {
    absl::MutexLock lock(&mu_);
    if (!draining_) {
      queue_.push_back({std::move(request), std::move(done), now});
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
  workers_.JoinAll();
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
    const absl::Time start = clock_.Now();
    if (start >= pending->request.deadline) {
      std::move(pending->done)(absl::DeadlineExceededError(
          absl::StrCat("request passed its deadline in the queue of model '", config_->name, "'")));
      continue;
    }
    metrics_->RecordQueueTime(start - pending->enqueued);
    const int64_t rows =
        config_->max_batch_size > 0
            ? pending->request.inputs.at(config_->inputs.front().name).shape().at(0)
            : 1;
    absl::StatusOr<core::TensorMap> outputs = model.Run(pending->request.inputs);
    metrics_->RecordBatch(rows, clock_.Now() - start);
    if (outputs.ok()) {
      std::move(pending->done)(
          core::BuildResponse(*config_, version_, pending->request, *std::move(outputs)));
    } else {
      std::move(pending->done)(outputs.status());
    }
  }
}

}  // namespace modeld::batching
