// DirectScheduler: one request at a time per instance, in arrival order, no batching.
#pragma once

#include <deque>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "batching/scheduler.h"
#include "batching/worker_threads.h"

namespace modeld::batching {

// One worker thread per instance takes the oldest queued request and runs it on its own
// Model, so a Model is never run concurrently. A request past its deadline when its turn
// comes is answered DEADLINE_EXCEEDED without running. Thread-safe; the destructor drains.
class DirectScheduler : public Scheduler {
 public:
  DirectScheduler(std::shared_ptr<const core::ModelConfig> config, int64_t version,
                  std::vector<std::unique_ptr<backend::Model>> instances,
                  const common::Clock& clock,
                  std::shared_ptr<const metrics::VersionMetrics> metrics);
  ~DirectScheduler() override;

  void Enqueue(core::InferRequest&& request, core::InferCallback&& done) override;
  void Drain() override;

 private:
  struct Pending {
    core::InferRequest request;
    core::InferCallback done;
    absl::Time enqueued;
  };

  void WorkerLoop(backend::Model& model);

  const std::shared_ptr<const core::ModelConfig> config_;
  const int64_t version_;
  const std::vector<std::unique_ptr<backend::Model>> instances_;
  const common::Clock& clock_;
  const std::shared_ptr<const metrics::VersionMetrics> metrics_;

  absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;

  WorkerThreads workers_;
};

}  // namespace modeld::batching
