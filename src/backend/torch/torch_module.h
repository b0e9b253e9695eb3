// Calling a TorchScript module, for the torch backend's own files: LibTorch's exceptions as
// Statuses, the config inputs as forward's arguments, and forward's result as the config
// outputs. Shared by inference (torch_backend.cc) and training (torch_training.cc).
//
// Private to the torch backend: this header includes LibTorch, so only the backend's own .cc
// files may include it (design §11).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <c10/util/Exception.h>

#include <exception>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "backend/model_inputs.h"
#include "backend/thread_counts.h"  // IntraOpThreads, for the torch backends
#include "core/model_config.h"

namespace modeld::backend {

// LibTorch reports errors by exception; these turn them into INTERNAL statuses, prefixed with
// `context` when it is not empty. c10::Error's what() carries a C++ backtrace that means
// nothing to a client, and an error raised inside TorchScript carries the script's traceback
// before the error itself; clients get the error alone ("RuntimeError: The size of ...").
absl::Status FrameworkError(absl::string_view context, absl::string_view message);
absl::Status FrameworkError(absl::string_view context, const c10::Error& error);
absl::Status FrameworkError(absl::string_view context, const std::exception& error);

// INVALID_ARGUMENT naming the first of `specs` (inputs or outputs, `kind`) whose datatype
// LibTorch tensors cannot hold.
absl::Status CheckDataTypes(const std::vector<core::TensorSpec>& specs, absl::string_view kind);

// "[2, 3]": a tensor's shape for messages.
std::string ShapeString(const at::Tensor& tensor);

// The config inputs, in config order, as forward's (and train_step's) first arguments: each
// viewed as an ATen tensor without copying (ToAtenTensor). May throw c10::Error.
absl::StatusOr<std::vector<c10::IValue>> InputArguments(const core::ModelConfig& config,
                                                        const OrderedInputs& ordered);

// forward's result (a Tensor, or a tuple or list of them) as one tensor per config output.
// INTERNAL when the count differs or a value is not a Tensor.
absl::StatusOr<std::vector<at::Tensor>> UnpackOutputs(const c10::IValue& result,
                                                      const core::ModelConfig& config);

}  // namespace modeld::backend
