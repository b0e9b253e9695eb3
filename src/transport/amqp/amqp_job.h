// AmqpJob: one delivered message inside the AMQP worker, from its delivery to its
// acknowledgement; and AmqpOutbox, which carries finished jobs from the inference callbacks
// (any thread) back to the worker's thread.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/infer_response.h"
#include "service/admission.h"
#include "transport/amqp/amqp_link.h"
#include "transport/message/envelope.h"

namespace modeld::transport::amqp {

// One delivered message inside the worker, from delivery to acknowledgement.
struct AmqpJob {
  enum class Action {
    kAnswer,      // publish the reply (if reply_to), ack once the broker confirms it
    kAckOnly,     // nobody to answer: ack at once
    kDeadLetter,  // reply with the error (if reply_to), reject into the dead letters
    kCount,       // put a copy back with its delivery count, ack once the broker confirms
  };
  Delivery delivery;
  uint64_t generation = 0;
  Action action = Action::kAnswer;
  int64_t deliveries = 1;
  // Keeps the request's bytes alive while its decoded tensors view them.
  std::shared_ptr<const message::wire::RequestEnvelope> envelope;
  std::string request_id;
  absl::StatusOr<core::InferResponse> result = absl::UnknownError("not run");
  std::optional<std::string> reply;  // an encoded ReplyEnvelope, when known before Complete
  std::optional<service::Admission::Ticket> slot;
};

// Finished jobs on their way from inference callbacks (any thread) to the worker's thread,
// which an eventfd wakes. Shared with the callbacks, which may outlive the worker.
class AmqpOutbox {
 public:
  AmqpOutbox() : wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~AmqpOutbox() {
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  // Queues `job` and wakes the worker; drops it once closed.
  void Push(std::unique_ptr<AmqpJob> job) {
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return;
      jobs_.push_back(std::move(job));
    }
    Wake();
  }

  std::vector<std::unique_ptr<AmqpJob>> TakeAll() {
    uint64_t count = 0;
    (void)!read(wake_fd_, &count, sizeof(count));  // resets the eventfd
    absl::MutexLock lock(&mu_);
    std::vector<std::unique_ptr<AmqpJob>> jobs;
    jobs.reserve(jobs_.size());
    for (auto& job : jobs_) jobs.push_back(std::move(job));
    jobs_.clear();
    return jobs;
  }

  void Wake() {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }

  // Refuses further jobs, and returns the queued ones.
  std::vector<std::unique_ptr<AmqpJob>> Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    std::vector<std::unique_ptr<AmqpJob>> jobs;
    for (auto& job : jobs_) jobs.push_back(std::move(job));
    jobs_.clear();
    return jobs;
  }

  int wake_fd() const { return wake_fd_; }

 private:
  const int wake_fd_;
  absl::Mutex mu_;
  std::deque<std::unique_ptr<AmqpJob>> jobs_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace modeld::transport::amqp
