// What every backend's Run() does first: the config's inputs in config order, and the batch.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model_config.h"
#include "core/tensor.h"

namespace modeld::backend {

struct OrderedInputs {
  std::vector<const core::Tensor*> tensors;  // one per config input, in config order
  std::optional<int64_t> batch;  // the first input's first dimension, when the model batches
};

// Finds every config input in `inputs` (which the caller validated). The pointers stay valid
// as long as `inputs` does. INTERNAL naming an input that is missing.
absl::StatusOr<OrderedInputs> OrderInputs(const core::ModelConfig& config,
                                          const core::TensorMap& inputs);

}  // namespace modeld::backend
