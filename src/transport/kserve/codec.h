// KServe V2 gRPC messages <-> core requests and responses.
#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/infer_request.h"
#include "core/train_request.h"
#include "kserve/grpc_service.pb.h"
#include "modeld/training.pb.h"

namespace modeld::transport::kserve {

// Decodes a ModelInferRequest. Inputs given in raw_input_contents are viewed, not copied, so
// `request` must outlive the returned request (until its inference's callback has run); typed
// `contents` are converted into owned little-endian bytes. INVALID_ARGUMENT, naming the input,
// for: an unknown datatype, a negative dimension, a duplicated input, data given both raw and
// typed or neither, a raw entry count that differs from the inputs, typed values in the wrong
// field for the datatype, a value count that differs from the shape, or a value out of range;
// a non-numeric model_version; a `priority` or `timeout` (microseconds) parameter that is not
// a non-negative integer. UNIMPLEMENTED for the classification output extension.
absl::StatusOr<core::InferRequest> DecodeInferRequest(const inference::ModelInferRequest& request);

// Encodes outputs into `out` with their data in raw_output_contents (one entry per output, in
// order), which every KServe client reads and Triton's clients require.
void EncodeInferResponse(const core::InferResponse& response, inference::ModelInferResponse* out);

// Decodes a training step's request (modeld's Training service), with the same rules for each
// input and target as DecodeInferRequest; raw_input_contents holds the inputs' entries and
// then the targets'. The same lifetime rule applies to `request`.
absl::StatusOr<core::TrainRequest> DecodeTrainRequest(
    const modeld::training::TrainRequest& request);
void EncodeTrainResponse(const core::TrainResponse& response, modeld::training::TrainResponse* out);

}  // namespace modeld::transport::kserve
