// Conversions between modeld tensors and TensorFlow C API tensors, for the tensorflow backend.
//
// Private to the tensorflow backend: only its .cc files include this header.
#pragma once

#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "backend/tensorflow/tf_api.h"
#include "core/model_config.h"
#include "core/tensor.h"

namespace modeld::backend {

// Owns one TF_Tensor. A BYTES tensor made by ToTfTensor owns its strings too: TensorFlow does
// not free the strings of a buffer it did not allocate, so the deleter does.
class TfTensor {
 public:
  TfTensor(const TfApi& api, TF_Tensor* tensor, bool owns_strings = false)
      : api_(&api), tensor_(tensor), owns_strings_(owns_strings) {}
  TfTensor(TfTensor&& other) noexcept
      : api_(other.api_), tensor_(other.tensor_), owns_strings_(other.owns_strings_) {
    other.tensor_ = nullptr;
  }
  TfTensor(const TfTensor&) = delete;
  TfTensor& operator=(const TfTensor&) = delete;
  TfTensor& operator=(TfTensor&&) = delete;
  ~TfTensor();

  TF_Tensor* get() const { return tensor_; }
  // Gives up ownership (of the strings too).
  TF_Tensor* release() {
    TF_Tensor* tensor = tensor_;
    tensor_ = nullptr;
    return tensor;
  }

 private:
  const TfApi* api_;
  TF_Tensor* tensor_;
  bool owns_strings_;
};

// `input` (validated against `spec` by the caller) as a TF_Tensor of the model's shape
// ([batch] + spec.reshape when the spec has a reshape). Numbers are not copied: the tensor
// views the input bytes and holds a copy of `input` until TensorFlow lets go of it (an output
// may alias its input). BYTES elements are copied into TensorFlow strings. INTERNAL when the
// bytes do not fit the shape.
absl::StatusOr<TfTensor> ToTfTensor(const TfApi& api, const core::Tensor& input,
                                    const core::TensorSpec& spec, bool batched);

// Checks `output` against `spec` (datatype; shape, with `batch` first when set) after undoing an
// output reshape. Numbers are wrapped without copying (the Tensor owns the TF_Tensor); strings
// are copied into BYTES. INTERNAL naming the output and the difference when it does not match.
absl::StatusOr<core::Tensor> FromTfTensor(const TfApi& api, TfTensor output,
                                          const core::TensorSpec& spec,
                                          std::optional<int64_t> batch);

}  // namespace modeld::backend
