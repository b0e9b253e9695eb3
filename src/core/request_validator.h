// Checks an InferRequest against its model's config before it is queued, so a bad request
// fails alone, with a message that names the input and what was expected, and never reaches
// a batch or a backend.
#pragma once

#include "absl/status/status.h"
#include "core/infer_request.h"
#include "core/model_config.h"
#include "core/train_request.h"

namespace modeld::core {

// OK, or INVALID_ARGUMENT naming the first problem: no inputs, an unknown, missing or
// duplicated name, a wrong datatype, a shape that does not fit the config (including a batch
// dimension above max_batch_size or inputs that disagree on it), byte data whose size does
// not match shape x datatype, a BOOL byte other than 0 or 1, or an unknown requested output.
absl::Status ValidateRequest(const ModelConfig& config, const InferRequest& request);

// A training step's request: the inputs as for inference; at least one target, each
// well-formed (byte size fits shape x datatype), not named like an input, and with the inputs'
// batch size first when the model batches. Whether the model takes each target is the
// backend's to check, since that depends on how it trains.
absl::Status ValidateTrainRequest(const ModelConfig& config, const TrainRequest& request);

// OK, or INVALID_ARGUMENT when the request's inputs hold more than `max_elements` tensor
// elements in all (--max-request-elements), naming the count and the limit. 0: no limit.
absl::Status CheckRequestElements(const InferRequest& request, int64_t max_elements);
// The same limit over a training step's inputs and targets together.
absl::Status CheckRequestElements(const TrainRequest& request, int64_t max_elements);

}  // namespace modeld::core
