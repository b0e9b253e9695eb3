// The answers of the KServe V2 health and metadata calls, from InferenceService. Shared by
// every transport that speaks the KServe messages (the gRPC service, the Redis queue worker),
// so they all say the same thing: one rule for versions, one metadata encoding.
#pragma once

#include "absl/status/statusor.h"
#include "kserve/grpc_service.pb.h"
#include "service/inference_service.h"

namespace modeld::transport::kserve {

inference::ServerReadyResponse AnswerServerReady(const service::InferenceService& service);

// False for an unknown model or version, and for a version that is not a number: the health
// calls answer "not ready", never an error.
inference::ModelReadyResponse AnswerModelReady(const service::InferenceService& service,
                                               const inference::ModelReadyRequest& request);

// NOT_FOUND for an unknown model or version, INVALID_ARGUMENT for a version that is not a
// number. Versions are the ready ones, ascending; tensor shapes as the API shows them (-1 for
// any size, batch dimension included).
absl::StatusOr<inference::ModelMetadataResponse> AnswerModelMetadata(
    const service::InferenceService& service, const inference::ModelMetadataRequest& request);

}  // namespace modeld::transport::kserve
