// The message queues' wire format (proto/modeld/redis.proto, spoken by the Redis and AMQP
// transports) <-> what their workers need: parsing a RequestEnvelope taken from a queue, and
// encoding the ReplyEnvelope for it.
// An envelope carries an inference request (run through the scheduler), a training step (run
// by the model's trainer), or a query (model metadata, model or server readiness) answered at
// once from InferenceService.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/infer_request.h"
#include "core/train_request.h"
#include "modeld/redis.pb.h"
#include "service/inference_service.h"

namespace modeld::transport::message {

// The generated messages live in the proto package modeld.redis (named after the first
// transport that spoke it), which C++ code inside modeld::transport::redis would otherwise
// shadow.
namespace wire = ::modeld::redis;

// INVALID_ARGUMENT when `bytes` is not a RequestEnvelope.
absl::StatusOr<wire::RequestEnvelope> ParseRequestEnvelope(absl::string_view bytes);

// The envelope's deadline (InfiniteFuture when it has none: deadline_unix_ms 0).
absl::Time Deadline(const wire::RequestEnvelope& envelope);

// INVALID_ARGUMENT for an envelope whose fields make no sense whatever its payload: a
// negative deadline_unix_ms.
absl::Status CheckEnvelope(const wire::RequestEnvelope& envelope);

// Whether the envelope is a query (metadata, model_ready, server_ready): answered by
// AnswerQuery, never queued. An envelope without a payload is not one: it goes the inference
// way and is refused by DecodeEnvelopeRequest.
bool IsQuery(const wire::RequestEnvelope& envelope);

// The serialized ReplyEnvelope answering a query, exactly as the gRPC call would: code 0 and
// the response, or NOT_FOUND / INVALID_ARGUMENT (model metadata of an unknown model, a version
// that is not a number). Quick: reads the service's state, touches no scheduler.
std::string AnswerQuery(const wire::RequestEnvelope& envelope,
                        const service::InferenceService& service);

// Decodes the envelope's inference request with the gRPC codec, with the envelope's deadline
// as the request's. INVALID_ARGUMENT when the envelope carries no request (no payload this
// modeld knows) or the codec refuses it. The request views `envelope`'s bytes, which must outlive
// it.
absl::StatusOr<core::InferRequest> DecodeEnvelopeRequest(const wire::RequestEnvelope& envelope);

// A serialized ReplyEnvelope for `request_id`: code 0 and the encoded response, or the
// status's code and message.
std::string EncodeReply(absl::string_view request_id,
                        const absl::StatusOr<core::InferResponse>& result);

// A training step (payload `train`): decoded with the gRPC codec, and its ReplyEnvelope.
// The request views `envelope`'s bytes, which must outlive it.
absl::StatusOr<core::TrainRequest> DecodeEnvelopeTrain(const wire::RequestEnvelope& envelope);
std::string EncodeTrainReply(absl::string_view request_id,
                             const absl::StatusOr<core::TrainResponse>& result);

// Reads a serialized ReplyEnvelope (tests and tools). INVALID_ARGUMENT when it is not one.
absl::StatusOr<wire::ReplyEnvelope> ParseReplyEnvelope(absl::string_view bytes);

}  // namespace modeld::transport::message
