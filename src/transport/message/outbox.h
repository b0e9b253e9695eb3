// Outbox<Job>: finished jobs on their way from inference callbacks (any thread) back to a
// queue worker's own thread, which an eventfd wakes (the AMQP and Celery workers own their
// broker connection on one thread, so answers are handed back instead of sent from model
// threads). Shared with the callbacks, which may outlive the worker.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace modeld::transport::message {

template <typename Job>
class Outbox {
 public:
  Outbox() : wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Outbox() {
    if (wake_fd_ >= 0) close(wake_fd_);
  }
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // Queues `job` and wakes the worker; drops it once closed.
  void Push(std::unique_ptr<Job> job) {
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return;
      jobs_.push_back(std::move(job));
    }
    Wake();
  }

  std::vector<std::unique_ptr<Job>> TakeAll() {
    uint64_t count = 0;
    (void)!read(wake_fd_, &count, sizeof(count));  // resets the eventfd
    absl::MutexLock lock(&mu_);
    return TakeLocked();
  }

  void Wake() {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }

  // Refuses further jobs, and returns the queued ones.
  std::vector<std::unique_ptr<Job>> Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    return TakeLocked();
  }

  // Readable while jobs wait (or after Wake): poll it with the broker's socket.
  int wake_fd() const { return wake_fd_; }

 private:
  std::vector<std::unique_ptr<Job>> TakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<std::unique_ptr<Job>> jobs;
    jobs.reserve(jobs_.size());
    for (auto& job : jobs_) jobs.push_back(std::move(job));
    jobs_.clear();
    return jobs;
  }

  const int wake_fd_;
  absl::Mutex mu_;
  std::deque<std::unique_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace modeld::transport::message
