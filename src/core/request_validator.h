// Checks an InferRequest against its model's config before it is queued, so a bad request
// fails alone, with a message that names the input and what was expected, and never reaches
// a batch or a backend.
#pragma once

#include "absl/status/status.h"
#include "core/infer_request.h"
#include "core/model_config.h"

namespace modeld::core {

// OK, or INVALID_ARGUMENT naming the first problem: no inputs, an unknown, missing or
// duplicated name, a wrong datatype, a shape that does not fit the config (including a batch
// dimension above max_batch_size or inputs that disagree on it), byte data whose size does
// not match shape x datatype, a BOOL byte other than 0 or 1, or an unknown requested output.
absl::Status ValidateRequest(const ModelConfig& config, const InferRequest& request);

// OK, or INVALID_ARGUMENT when the request's inputs hold more than `max_elements` tensor
// elements in all (--max-request-elements), naming the count and the limit. 0: no limit.
absl::Status CheckRequestElements(const InferRequest& request, int64_t max_elements);

}  // namespace modeld::core
