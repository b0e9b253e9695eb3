#include "transport/redis/reply_util.h"

#include <algorithm>

namespace modeld::transport::redis::internal {

absl::Status Refused(absl::string_view what, const RedisReply& reply) {
  return absl::FailedPreconditionError(absl::StrCat("Redis refused ", what, ": ", reply.str));
}

absl::Status ExpectArray(absl::string_view what, const RedisReply& reply) {
  if (reply.IsError()) return Refused(what, reply);
  if (reply.type != RedisReply::Type::kArray) {
    return absl::InternalError(
        absl::StrCat("unexpected reply to ", what, ": ", DebugString(reply)));
  }
  return absl::OkStatus();
}

std::string Millis(absl::Duration duration) {
  return absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(duration)));
}

CompletionOutcome OutcomeOf(const RedisReply& reply) {
  if (reply.IsError()) return {CompletionOutcome::Kind::kFailed, reply.str};
  if (reply.IsText() && reply.str == "ok") return {CompletionOutcome::Kind::kDone, ""};
  if (reply.IsText() && reply.str == "stale") return {CompletionOutcome::Kind::kStale, ""};
  if (reply.IsText()) return {CompletionOutcome::Kind::kReplyFailed, reply.str};
  return {CompletionOutcome::Kind::kFailed, absl::StrCat("unexpected reply ", DebugString(reply))};
}

}  // namespace modeld::transport::redis::internal
