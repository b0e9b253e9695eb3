#include "backend/torch/torch_module.h"

#include <algorithm>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backend/torch/torch_tensor.h"
#include "common/status_macros.h"

namespace modeld::backend {

absl::Status FrameworkError(absl::string_view context, absl::string_view message) {
  // Some LibTorch messages start with a newline ("\nUnknown builtin op: ..."); a log line or a
  // client's message should not.
  message = absl::StripAsciiWhitespace(message);
  constexpr absl::string_view kLastFrameEnd = "<--- HERE\n";
  if (absl::StrContains(message, "failed in the TorchScript interpreter")) {
    const size_t error_start = message.rfind(kLastFrameEnd);
    if (error_start != absl::string_view::npos) {
      message.remove_prefix(error_start + kLastFrameEnd.size());
    }
  }
  return absl::InternalError(context.empty() ? std::string(message)
                                             : absl::StrCat(context, ": ", message));
}

absl::Status FrameworkError(absl::string_view context, const c10::Error& error) {
  return FrameworkError(context, error.what_without_backtrace());
}

absl::Status FrameworkError(absl::string_view context, const std::exception& error) {
  return FrameworkError(context, error.what());
}

absl::Status CheckDataTypes(const std::vector<core::TensorSpec>& specs, absl::string_view kind) {
  for (const core::TensorSpec& spec : specs) {
    if (!ToScalarType(spec.type).has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(kind, " '", spec.name, "' has datatype ",
                                                     core::DataTypeName(spec.type),
                                                     ", which LibTorch tensors cannot hold"));
    }
  }
  return absl::OkStatus();
}

std::string ShapeString(const at::Tensor& tensor) {
  return absl::StrCat("[", absl::StrJoin(tensor.sizes(), ", "), "]");
}

absl::StatusOr<std::vector<c10::IValue>> InputArguments(const core::ModelConfig& config,
                                                        const OrderedInputs& ordered) {
  const bool batched = config.max_batch_size > 0;
  std::vector<c10::IValue> arguments;
  arguments.reserve(config.inputs.size());
  for (size_t i = 0; i < config.inputs.size(); ++i) {
    ASSIGN_OR_RETURN(at::Tensor tensor,
                     ToAtenTensor(*ordered.tensors[i], config.inputs[i], batched));
    arguments.emplace_back(std::move(tensor));
  }
  return arguments;
}

absl::StatusOr<std::vector<at::Tensor>> UnpackOutputs(const c10::IValue& result,
                                                      const core::ModelConfig& config) {
  std::vector<c10::IValue> values;
  if (result.isTuple()) {
    values = result.toTupleRef().elements().vec();
  } else if (result.isList()) {
    values = result.toListRef().vec();
  } else {
    values.push_back(result);
  }
  if (values.size() != config.outputs.size()) {
    return absl::InternalError(absl::StrCat("forward returned ", values.size(), " value(s) (",
                                            result.tagKind(), ") but the config declares ",
                                            config.outputs.size(), " output(s)"));
  }
  std::vector<at::Tensor> tensors;
  tensors.reserve(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    if (!values[i].isTensor()) {
      return absl::InternalError(absl::StrCat("forward returned ", values[i].tagKind(),
                                              " for output '", config.outputs[i].name,
                                              "', not a Tensor"));
    }
    tensors.push_back(values[i].toTensor());
  }
  return tensors;
}

}  // namespace modeld::backend
