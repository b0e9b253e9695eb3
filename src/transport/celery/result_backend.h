// ResultBackend: where the Celery worker stores result documents (docs/design/celery.md,
// section 4) so that AsyncResult.get() finds them. RedisResultBackend: SETEX
// celery-task-meta-<id> then PUBLISH on the same key. RpcResultBackend: the document goes
// back through the broker, to the task's reply_to (CeleryBroker::Reply).
//
// Not thread-safe: the worker's loop thread makes every call.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "transport/celery/celery_broker.h"

namespace modeld::transport::celery {

// One document to store.
struct StoredResult {
  std::string task_id;
  std::string reply_to;  // the task's reply_to property (rpc://); "" when none
  std::string document;  // EncodeSuccess / EncodeFailure / EncodeRevoked / EncodeStarted
};

class ResultBackend {
 public:
  virtual ~ResultBackend() = default;

  // Stores every result, in order, in as few round trips as the backend allows. `broker` is
  // the worker's current connection (used by rpc://). OK only when every one is stored (the
  // rpc:// backend: published; the worker's next broker Flush confirms them). UNAVAILABLE
  // when the backend cannot be reached: the worker retries later, the tasks unacknowledged.
  virtual absl::Status Store(const std::vector<StoredResult>& results, CeleryBroker& broker) = 0;

  // "redis://host:6379/1" without its password, or "rpc://": for logs.
  virtual std::string Describe() const = 0;
};

// rpc://: each result is published to its task's reply_to queue through `broker`, with
// correlation_id = the task id; a task without reply_to has nobody to tell (skipped).
class RpcResultBackend final : public ResultBackend {
 public:
  absl::Status Store(const std::vector<StoredResult>& results, CeleryBroker& broker) override {
    for (const StoredResult& result : results) {
      if (result.reply_to.empty()) continue;
      absl::Status status = broker.Reply(result.reply_to, result.task_id, result.document);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  std::string Describe() const override { return "rpc://"; }
};

}  // namespace modeld::transport::celery
