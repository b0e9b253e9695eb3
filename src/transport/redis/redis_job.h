// RedisJob: one queue entry inside the RedisWorker, from the moment the reader takes it until
// the writer finishes it (reply, dead letter, acknowledgement).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/infer_response.h"
#include "service/admission.h"
#include "transport/message/envelope.h"
#include "transport/redis/work_queue.h"

namespace modeld::transport::redis {

struct RedisJob {
  QueueEntry entry;
  // Keeps the request's bytes alive: the decoded tensors, and maybe the outputs of an
  // identity model, view them until the answer is encoded.
  std::shared_ptr<const message::wire::RequestEnvelope> envelope;
  std::string request_id;
  std::string reply_key;
  absl::StatusOr<core::InferResponse> result = absl::UnknownError("not run");
  std::string dead_reason;  // set: the entry goes to the dead-letter stream
  // The encoded ReplyEnvelope: by the writer from `result`, or at once for a query.
  std::string reply;
  // The entry's slot under --max-inflight-requests, given back once it is finished.
  std::optional<service::Admission::Ticket> slot;
};

}  // namespace modeld::transport::redis
