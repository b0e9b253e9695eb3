// Helpers shared by the queues for reading RESP replies and building commands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "transport/redis/redis_connection.h"
#include "transport/redis/work_queue.h"

namespace modeld::transport::redis::internal {

// FAILED_PRECONDITION carrying Redis's error text, for a kError reply of `what`.
absl::Status Refused(absl::string_view what, const RedisReply& reply);

// An error unless `reply` is an array (for replies whose shape Redis guarantees).
absl::Status ExpectArray(absl::string_view what, const RedisReply& reply);

// Whole milliseconds, at least 1 (Redis reads 0 as "forever" in several places).
std::string Millis(absl::Duration duration);

// The CompletionOutcome of a completion script's reply: "ok", "stale", or Redis's refusal
// of the reply (kReplyFailed); an error reply means the script failed (kFailed).
CompletionOutcome OutcomeOf(const RedisReply& reply);

}  // namespace modeld::transport::redis::internal
