#include "transport/celery/redis/redis_result_backend.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace modeld::transport::celery {

std::string CeleryResultKey(const std::string& task_id) {
  return absl::StrCat("celery-task-meta-", task_id);
}

RedisResultBackend::RedisResultBackend(RedisResultBackendOptions options)
    : options_(std::move(options)) {}

absl::Status RedisResultBackend::Store(const std::vector<StoredResult>& results,
                                       CeleryBroker& /*broker*/) {
  std::vector<redis::RedisCommand> commands;
  // SETEX takes whole seconds; rounding up never expires a result early.
  const int64_t seconds =
      absl::ToInt64Seconds(absl::Ceil(options_.expiry, absl::Seconds(1)));
  for (const StoredResult& result : results) {
    if (result.task_id.empty()) continue;
    std::string key = CeleryResultKey(result.task_id);
    if (seconds > 0) {
      commands.push_back({"SETEX", key, absl::StrCat(seconds), result.document});
    } else {
      commands.push_back({"SET", key, result.document});
    }
    commands.push_back({"PUBLISH", std::move(key), result.document});
  }
  if (commands.empty()) return absl::OkStatus();
  if (connection_ == nullptr) {
    ASSIGN_OR_RETURN(connection_, options_.connector("celery-results"));
  }
  absl::StatusOr<std::vector<redis::RedisReply>> replies =
      connection_->Pipeline(std::move(commands));
  if (!replies.ok()) {
    connection_.reset();
    return replies.status();
  }
  for (const redis::RedisReply& reply : *replies) {
    if (reply.IsError()) {
      // A refusal (a replica after failover, OOM) may pass; a fresh connection may reach the
      // new primary.
      connection_.reset();
      return absl::UnavailableError(absl::StrCat("Redis result backend at ", options_.where,
                                                 " refused storing a result: ", reply.str));
    }
  }
  return absl::OkStatus();
}

std::string RedisResultBackend::Describe() const {
  return absl::StrCat("redis://", options_.where);
}

}  // namespace modeld::transport::celery
