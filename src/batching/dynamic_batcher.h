// DynamicBatcher: combines queued requests of one model version into batches, per the
// config's dynamic_batching, and runs each batch on a free instance.
//
// Rules (Triton's, with max_queue_delay_microseconds defaulting to 0 so batching never adds
// latency at low load):
//  - A batch takes queued requests in priority order, then arrival order, while their rows
//    fit max_batch_size and their item shapes match; a request is never split, and a request
//    that does not fit ends the batch (nothing overtakes it).
//  - A batch runs as soon as it is full, or its rows reach a preferred_batch_size (the
//    largest such prefix is taken), or the oldest request has waited max_queue_delay.
//  - Queue policy per priority level: max_queue_size (full: RESOURCE_EXHAUSTED at once),
//    default_timeout_microseconds and allow_timeout_override (the request's `timeout`);
//    with the transport's deadline, the earliest wins. An expired request is answered
//    DEADLINE_EXCEEDED without running.
//  - preserve_ordering: answers leave in arrival order even when instances finish out of
//    order.
//  - When a batch fails, each of its requests runs again alone: a request whose data the
//    model cannot take (a string that is not UTF-8) fails by itself, never its neighbours.
#pragma once

#include <deque>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "batching/ordered_delivery.h"
#include "batching/scheduler.h"
#include "batching/worker_threads.h"

namespace modeld::batching {

// Thread-safe. One worker thread per instance; the destructor drains.
class DynamicBatcher : public Scheduler {
 public:
  DynamicBatcher(std::shared_ptr<const core::ModelConfig> config, int64_t version,
                 std::vector<std::unique_ptr<backend::Model>> instances, const common::Clock& clock,
                 std::shared_ptr<const metrics::VersionMetrics> metrics);
  ~DynamicBatcher() override;

  void Enqueue(core::InferRequest&& request, core::InferCallback&& done) override;
  void Drain() override;

 private:
  struct Pending {
    core::InferRequest request;
    core::InferCallback done;
    int64_t rows = 1;  // the request's batch dimension
    absl::Time enqueued;
    absl::Time deadline;
    uint64_t sequence = 0;
  };
  struct Level {
    inference::ModelQueuePolicy policy;
    std::deque<Pending> queue;
  };
  // What the next batch would take from the front of the queues.
  struct Candidate {
    int64_t rows = 0;
    int count = 0;            // requests in the batch
    int preferred_count = 0;  // requests up to the largest preferred size reached; 0 if none
    bool full = false;        // nothing more can join: max rows, or the next one cannot
    bool head_expired = false;
    absl::Time oldest = absl::InfiniteFuture();  // earliest arrival among the requests
  };

  void WorkerLoop(backend::Model& model);
  Candidate NextCandidate(absl::Time now) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Whether to form a batch now; otherwise `wake` is when the delay runs out.
  bool ReadyLocked(absl::Time now, absl::Time* wake) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Removes the next batch from the queues, and expired requests met on the way.
  void TakeBatchLocked(absl::Time now, std::vector<Pending>& batch, std::vector<Pending>& expired)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunBatch(backend::Model& model, std::vector<Pending>& batch);
  void Answer(Pending& pending, absl::StatusOr<core::InferResponse> result);

  const std::shared_ptr<const core::ModelConfig> config_;
  const int64_t version_;
  const std::vector<std::unique_ptr<backend::Model>> instances_;
  const common::Clock& clock_;
  const std::shared_ptr<const metrics::VersionMetrics> metrics_;
  const absl::Duration max_delay_;
  const std::vector<int64_t> preferred_sizes_;  // ascending
  const bool preserve_ordering_;
  const uint64_t default_level_;  // index into levels_

  mutable absl::Mutex mu_;
  std::vector<Level> levels_ ABSL_GUARDED_BY(mu_);  // [0] is priority 1, the highest
  int64_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t arrivals_ ABSL_GUARDED_BY(mu_) = 0;  // also the next sequence number
  bool draining_ ABSL_GUARDED_BY(mu_) = false;

  OrderedDelivery ordered_;

  WorkerThreads workers_;
};

}  // namespace modeld::batching
