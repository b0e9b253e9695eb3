// Building an InferResponse from what a Model returned.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/infer_request.h"
#include "core/model_config.h"

namespace modeld::core {

// The response to `request` from one model run's `outputs`: the requested outputs in the
// order asked (every config output in config order when none were named), tagged with the
// model's name and `version` and the request's id. INTERNAL when an output is missing.
absl::StatusOr<InferResponse> BuildResponse(const ModelConfig& config, int64_t version,
                                            const InferRequest& request, TensorMap outputs);

}  // namespace modeld::core
