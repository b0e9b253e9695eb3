// Conversions between modeld tensors and ATen tensors, for TorchModel only.
//
// Private to the torch backend: this header includes ATen, so only the backend's own .cc files
// may include it (design §11: framework headers stay out of widely included headers).
// The functions may throw c10::Error (from LibTorch); the caller catches it.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <optional>

#include "absl/status/statusor.h"
#include "core/model_config.h"
#include "core/tensor.h"

namespace modeld::backend {

// nullopt for the types TorchScript has no tensors of (UINT16, UINT32, UINT64, BYTES).
std::optional<c10::ScalarType> ToScalarType(core::DataType type);

// nullopt for ATen types modeld does not serve (complex, bfloat16, quantized, ...).
std::optional<core::DataType> FromScalarType(c10::ScalarType type);

// Views `input` (validated against `spec` by the caller) as an ATen tensor without copying,
// reshaped to [batch] + spec.reshape when the spec has a reshape. The ATen tensor's storage
// holds a copy of `input`, so it keeps the bytes alive as long as any result that aliases
// them (a model may return its input). INTERNAL when the bytes do not fit the shape.
absl::StatusOr<at::Tensor> ToAtenTensor(const core::Tensor& input, const core::TensorSpec& spec,
                                        bool batched);

// Checks `output` against `spec` (datatype; shape, with `batch` first when set) after undoing
// an output reshape, and wraps its contiguous memory in a Tensor without copying.
// INTERNAL naming the output and the difference when it does not match.
absl::StatusOr<core::Tensor> FromAtenTensor(const at::Tensor& output, const core::TensorSpec& spec,
                                            std::optional<int64_t> batch);

}  // namespace modeld::backend
