// Outbox: finished jobs on their way from the inference callbacks (any thread) to the Redis
// worker's writer thread, and the writer's stop signal and deadline.
//
// Shared (std::shared_ptr) with the inference callbacks, which may outlive the worker when a
// model finishes after shutdown: once Close() has run they drop their job.
#pragma once

#include <deque>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "transport/redis/redis_job.h"

namespace modeld::transport::redis {

// Thread-safe.
class Outbox {
 public:
  // Queues `job` for the writer; returns false (and drops the job) once closed.
  bool Push(std::unique_ptr<RedisJob> job);

  // Waits until a job is queued, Stop() is called, or `until`; then moves up to `max` jobs
  // into `out`. Returns false once stopping with the write deadline past.
  bool Take(absl::Time until, size_t max, std::vector<std::unique_ptr<RedisJob>>& out);

  // Sleeps until `until`, or the write deadline if that comes first.
  void Sleep(absl::Time until);

  // Asks the writer to stop: wakes one Take and sets the write deadline.
  void Stop(absl::Time deadline);
  bool stopping() const;

  // Refuses further jobs and drops the queued ones.
  void Close();

 private:
  mutable absl::Mutex mu_;
  absl::CondVar stop_changed_;
  std::deque<std::unique_ptr<RedisJob>> jobs_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_signal_ ABSL_GUARDED_BY(mu_) = false;  // wakes one Take after Stop
  absl::Time deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
};

}  // namespace modeld::transport::redis
