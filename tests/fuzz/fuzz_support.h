// What every fuzz target does with a request a decoder accepted: the steps modeld takes next
// with untrusted data (validation against a model's config, then batching), plus checks of
// the contracts those steps promise. A broken contract aborts, so libFuzzer reports it.
#pragma once

#include <vector>

#include "core/infer_request.h"
#include "core/model_config.h"
#include "core/train_request.h"

namespace modeld::fuzz {

// A few fixed model configs that cover every datatype, batched and unbatched models, dims
// of -1 and a TensorFlow-style scalar item (dims [1], reshape []). Parsed once.
const std::vector<core::ModelConfig>& Configs();

// Validates `request` against `config`; when it is accepted, checks that every input's bytes
// hold exactly its shape's elements, and runs the batching path (two copies concatenated, the
// result split again).
void ValidateAndBatch(const core::ModelConfig& config, const core::InferRequest& request);
// The same for every config of Configs().
void ValidateAndBatch(const core::InferRequest& request);

// A training step's request (Training.Train, POST .../train, the Redis envelope's `train`):
// the element limit, then core::ValidateTrainRequest against every config of Configs(); when
// it is accepted, checks that every input and target holds exactly its shape's elements and
// that the targets lead with the inputs' batch size.
void ValidateTrain(const core::TrainRequest& request);

// Aborts with `what` when `ok` is false (a contract, not an input error).
void Require(bool ok, const char* what);

// Requires every tensor of `tensors` to hold exactly its shape's elements (BYTES: as many
// length-prefixed elements; other types: shape x datatype bytes); `contract` names who
// promised it.
void RequireExactBytes(const core::TensorMap& tensors, const char* contract);

}  // namespace modeld::fuzz
