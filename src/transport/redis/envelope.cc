#include "transport/redis/envelope.h"

#include "absl/strings/str_cat.h"
#include "transport/grpc_kserve/codec.h"
#include "transport/status_codes.h"

namespace modeld::transport::redis {

absl::StatusOr<wire::RequestEnvelope> ParseRequestEnvelope(absl::string_view bytes) {
  wire::RequestEnvelope envelope;
  if (!envelope.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the entry's envelope (", bytes.size(), " bytes) is not a modeld.redis.RequestEnvelope"));
  }
  return envelope;
}

absl::Time Deadline(const wire::RequestEnvelope& envelope) {
  return envelope.deadline_unix_ms() > 0 ? absl::FromUnixMillis(envelope.deadline_unix_ms())
                                         : absl::InfiniteFuture();
}

absl::StatusOr<core::InferRequest> DecodeEnvelopeRequest(const wire::RequestEnvelope& envelope) {
  if (!envelope.has_infer()) {
    return absl::InvalidArgumentError("the envelope carries no request (field 'infer' is unset)");
  }
  absl::StatusOr<core::InferRequest> request = grpc_kserve::DecodeInferRequest(envelope.infer());
  if (!request.ok()) return request.status();
  request->deadline = Deadline(envelope);
  return request;
}

std::string EncodeReply(absl::string_view request_id,
                        const absl::StatusOr<core::InferResponse>& result) {
  wire::ReplyEnvelope reply;
  reply.set_request_id(std::string(request_id));
  reply.set_code(ToRpcCode(result.status()));
  if (result.ok()) {
    grpc_kserve::EncodeInferResponse(*result, reply.mutable_infer());
  } else {
    reply.set_message(std::string(result.status().message()));
  }
  return reply.SerializeAsString();
}

absl::StatusOr<wire::ReplyEnvelope> ParseReplyEnvelope(absl::string_view bytes) {
  wire::ReplyEnvelope reply;
  if (!reply.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError("not a modeld.redis.ReplyEnvelope");
  }
  return reply;
}

}  // namespace modeld::transport::redis
