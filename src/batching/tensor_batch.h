// Combining requests into one batch along the first (batch) dimension, and splitting the
// outputs back.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model_config.h"
#include "core/tensor.h"

namespace modeld::batching {

// Whether two validated requests can share a batch: every input has the same dims after the
// batch dimension (a -1 in the config may take different sizes in different requests).
bool SameItemShapes(const core::TensorMap& a, const core::TensorMap& b);

// One tensor per config input holding every part's rows in order: one copy of the bytes.
// The parts must be validated against `inputs` and agree per SameItemShapes().
core::TensorMap Concatenate(const std::vector<const core::TensorMap*>& parts,
                            const std::vector<core::TensorSpec>& inputs);

// Splits each output into consecutive row ranges of `rows` (in order), viewing the output's
// bytes rather than copying them. INTERNAL when an output's batch dimension does not hold
// the sum of `rows`.
absl::StatusOr<std::vector<core::TensorMap>> Split(const core::TensorMap& outputs,
                                                   const std::vector<int64_t>& rows);

}  // namespace modeld::batching
