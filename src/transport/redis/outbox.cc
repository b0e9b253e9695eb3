#include "transport/redis/outbox.h"

#include <algorithm>
#include <utility>

namespace modeld::transport::redis {

bool Outbox::Push(std::unique_ptr<RedisJob> job) {
  absl::MutexLock lock(&mu_);
  if (closed_) return false;
  jobs_.push_back(std::move(job));
  return true;
}

bool Outbox::Take(absl::Time until, size_t max, std::vector<std::unique_ptr<RedisJob>>& out) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]()
                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !jobs_.empty() || stop_signal_; };
  mu_.AwaitWithDeadline(absl::Condition(&ready), std::min(until, deadline_));
  stop_signal_ = false;
  if (stopping_ && absl::Now() >= deadline_) return false;
  while (out.size() < max && !jobs_.empty()) {
    out.push_back(std::move(jobs_.front()));
    jobs_.pop_front();
  }
  return true;
}

void Outbox::Sleep(absl::Time until) {
  absl::MutexLock lock(&mu_);
  absl::Time wake;
  while ((wake = std::min(until, deadline_)) > absl::Now() &&
         !stop_changed_.WaitWithDeadline(&mu_, wake)) {
  }
}

void Outbox::Stop(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  stop_signal_ = true;
  deadline_ = deadline;
  stop_changed_.SignalAll();
}

bool Outbox::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void Outbox::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  jobs_.clear();
}

}  // namespace modeld::transport::redis
