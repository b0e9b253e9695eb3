// RedisResultBackend: Celery's Redis result backend (docs/design/celery.md, section 4). Each
// document is stored with SETEX celery-task-meta-<id> <expiry> <document> and then PUBLISHed
// on the channel of the same name, which AsyncResult.get() subscribes to.
//
// Not thread-safe: the worker's loop thread makes every call. Its connection is opened on the
// first Store and dropped when a call fails; the next Store opens a new one.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "transport/celery/result_backend.h"
#include "transport/redis/redis_connection.h"

namespace modeld::transport::celery {

struct RedisResultBackendOptions {
  redis::RedisConnector connector;  // opens the connection ("celery-results")
  // How long a result is kept (Celery's result_expires, one day by default); rounded up to
  // whole seconds. Zero or less: kept for good (SET without an expiry).
  absl::Duration expiry = absl::Hours(24);
  std::string where;  // "host:port/db", without the password: for Describe and messages
};

// The key and channel of a task's result: "celery-task-meta-<task id>".
std::string CeleryResultKey(const std::string& task_id);

class RedisResultBackend final : public ResultBackend {
 public:
  explicit RedisResultBackend(RedisResultBackendOptions options);

  // SETEX (or SET) and PUBLISH for every result with a task id, in one pipeline; results
  // without one are skipped. UNAVAILABLE when Redis cannot be reached or refuses a command
  // (read-only replica, out of memory: worth retrying later); the connector's
  // PERMISSION_DENIED as it is. `broker` is not used.
  absl::Status Store(const std::vector<StoredResult>& results, CeleryBroker& broker) override;

  // "redis://host:port/db".
  std::string Describe() const override;

 private:
  const RedisResultBackendOptions options_;
  std::unique_ptr<redis::RedisConnection> connection_;
};

}  // namespace modeld::transport::celery
