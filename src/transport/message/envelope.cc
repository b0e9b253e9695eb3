#include "transport/message/envelope.h"

#include "absl/strings/str_cat.h"
#include "transport/kserve/answers.h"
#include "transport/kserve/codec.h"
#include "transport/status_codes.h"

namespace modeld::transport::message {

absl::StatusOr<wire::RequestEnvelope> ParseRequestEnvelope(absl::string_view bytes) {
  wire::RequestEnvelope envelope;
  if (!envelope.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the envelope (", bytes.size(), " bytes) is not a modeld.redis.RequestEnvelope"));
  }
  return envelope;
}

absl::Time Deadline(const wire::RequestEnvelope& envelope) {
  return envelope.deadline_unix_ms() > 0 ? absl::FromUnixMillis(envelope.deadline_unix_ms())
                                         : absl::InfiniteFuture();
}

absl::Status CheckEnvelope(const wire::RequestEnvelope& envelope) {
  if (envelope.deadline_unix_ms() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("deadline_unix_ms ", envelope.deadline_unix_ms(),
                     " is negative; it is milliseconds since the Unix epoch, or 0 for none"));
  }
  return absl::OkStatus();
}

bool IsQuery(const wire::RequestEnvelope& envelope) {
  switch (envelope.payload_case()) {
    case wire::RequestEnvelope::kMetadata:
    case wire::RequestEnvelope::kModelReady:
    case wire::RequestEnvelope::kServerReady:
      return true;
    case wire::RequestEnvelope::kInfer:
    case wire::RequestEnvelope::kTrain:
    case wire::RequestEnvelope::PAYLOAD_NOT_SET:
      return false;
  }
  return false;
}

std::string AnswerQuery(const wire::RequestEnvelope& envelope,
                        const service::InferenceService& service) {
  wire::ReplyEnvelope reply;
  reply.set_request_id(envelope.request_id());
  absl::Status status;
  switch (envelope.payload_case()) {
    case wire::RequestEnvelope::kMetadata: {
      absl::StatusOr<inference::ModelMetadataResponse> metadata =
          kserve::AnswerModelMetadata(service, envelope.metadata());
      if (metadata.ok()) {
        *reply.mutable_metadata() = *std::move(metadata);
      } else {
        status = metadata.status();
      }
      break;
    }
    case wire::RequestEnvelope::kModelReady:
      *reply.mutable_model_ready() = kserve::AnswerModelReady(service, envelope.model_ready());
      break;
    case wire::RequestEnvelope::kServerReady:
      *reply.mutable_server_ready() = kserve::AnswerServerReady(service);
      break;
    case wire::RequestEnvelope::kInfer:
    case wire::RequestEnvelope::kTrain:
    case wire::RequestEnvelope::PAYLOAD_NOT_SET:
      status = absl::InternalError("AnswerQuery called on an envelope that is not a query");
      break;
  }
  reply.set_code(ToRpcCode(status));
  reply.set_message(std::string(status.message()));
  return reply.SerializeAsString();
}

absl::StatusOr<core::InferRequest> DecodeEnvelopeRequest(const wire::RequestEnvelope& envelope) {
  if (!envelope.has_infer()) {
    // Also what a newer producer's payload looks like here: an unknown field.
    return absl::InvalidArgumentError(
        "the envelope carries no request (none of the payload fields infer, metadata, "
        "model_ready, server_ready, train is set)");
  }
  absl::StatusOr<core::InferRequest> request = kserve::DecodeInferRequest(envelope.infer());
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
    kserve::EncodeInferResponse(*result, reply.mutable_infer());
  } else {
    reply.set_message(std::string(result.status().message()));
  }
  return reply.SerializeAsString();
}

absl::StatusOr<core::TrainRequest> DecodeEnvelopeTrain(const wire::RequestEnvelope& envelope) {
  if (!envelope.has_train()) {
    return absl::InvalidArgumentError("the envelope carries no training request");
  }
  return kserve::DecodeTrainRequest(envelope.train());
}

std::string EncodeTrainReply(absl::string_view request_id,
                             const absl::StatusOr<core::TrainResponse>& result) {
  wire::ReplyEnvelope reply;
  reply.set_request_id(std::string(request_id));
  reply.set_code(ToRpcCode(result.status()));
  if (result.ok()) {
    kserve::EncodeTrainResponse(*result, reply.mutable_train());
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

}  // namespace modeld::transport::message
