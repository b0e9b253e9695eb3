#include "core/request_validator.h"

#include <limits>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace modeld::core {
namespace {

std::string Describe(const ModelConfig& config, const TensorSpec& spec) {
  return absl::StrCat("'", spec.name, "' (", DataTypeName(spec.type), " ",
                      ShapeToString(config.FullShape(spec)), ")");
}

std::string DescribeAll(const ModelConfig& config, const std::vector<TensorSpec>& specs) {
  return absl::StrJoin(specs, ", ", [&](std::string* out, const TensorSpec& spec) {
    out->append(Describe(config, spec));
  });
}

absl::Status ShapeFits(const ModelConfig& config, const TensorSpec& spec, const Shape& shape) {
  const Shape expected = config.FullShape(spec);
  bool fits = shape.size() == expected.size();
  for (size_t i = 0; fits && i < shape.size(); ++i) {
    fits = shape[i] >= 0 && (expected[i] == -1 || expected[i] == shape[i]);
  }
  if (!fits) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", spec.name, "' has shape ", ShapeToString(shape), " but model '",
                     config.name, "' expects ", ShapeToString(expected),
                     config.max_batch_size > 0 ? " (the first dimension is the batch size)" : ""));
  }
  if (config.max_batch_size > 0) {
    if (shape[0] < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", spec.name, "' has batch size 0; it must be at least 1"));
    }
    if (shape[0] > config.max_batch_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", spec.name, "' has batch size ", shape[0], " but model '",
                       config.name, "' takes at most max_batch_size ", config.max_batch_size));
    }
  }
  return absl::OkStatus();
}

// `kind` names what the tensor is to the caller: "input" or "target".
absl::Status DataFits(absl::string_view kind, absl::string_view name, const Tensor& tensor) {
  const int64_t elements = ElementCount(tensor.shape());
  if (elements < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        kind, " '", name, "' has shape ", ShapeToString(tensor.shape()), ", which is too large"));
  }
  if (tensor.type() == DataType::kBytes) {
    absl::StatusOr<std::vector<absl::string_view>> split = SplitBytesElements(tensor.bytes());
    if (!split.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kind, " '", name, "': ", split.status().message()));
    }
    if (static_cast<int64_t>(split->size()) != elements) {
      return absl::InvalidArgumentError(absl::StrCat(
          kind, " '", name, "' holds ", split->size(), " BYTES elements but its shape ",
          ShapeToString(tensor.shape()), " needs ", elements));
    }
    return absl::OkStatus();
  }
  // Checked before multiplying: a huge shape must not wrap around to a small byte count.
  if (elements > std::numeric_limits<int64_t>::max() / DataTypeSize(tensor.type())) {
    return absl::InvalidArgumentError(absl::StrCat(
        kind, " '", name, "' has shape ", ShapeToString(tensor.shape()), ", which is too large"));
  }
  const int64_t expected = elements * DataTypeSize(tensor.type());
  if (static_cast<int64_t>(tensor.bytes().size()) != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        kind, " '", name, "' has ", tensor.bytes().size(), " bytes of data but shape ",
        ShapeToString(tensor.shape()), " of ", DataTypeName(tensor.type()), " needs ", expected));
  }
  if (tensor.type() == DataType::kBool) {
    // Frameworks assume 0 or 1 in a bool; other bytes give undefined results.
    const absl::string_view bytes = tensor.bytes();
    for (size_t i = 0; i < bytes.size(); ++i) {
      if (static_cast<unsigned char>(bytes[i]) > 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            kind, " '", name, "' has byte ", static_cast<int>(static_cast<unsigned char>(bytes[i])),
            " at element ", i, "; BOOL elements are 0 or 1"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateOutputs(const ModelConfig& config, const InferRequest& request) {
  absl::flat_hash_set<absl::string_view> seen;
  for (const std::string& name : request.requested_outputs) {
    if (config.FindOutput(name) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("requested output '", name, "' is not an output of model '", config.name,
                       "'; its outputs are ", DescribeAll(config, config.outputs)));
    }
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("output '", name, "' is requested more than once"));
    }
  }
  return absl::OkStatus();
}

// Every input of the config, once, and nothing else; returns the batch size when the model
// batches.
absl::StatusOr<std::optional<int64_t>> ValidateInputs(const ModelConfig& config,
                                                      const TensorMap& inputs) {
  if (inputs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("request for model '", config.name,
                                                   "' has no inputs; it expects ",
                                                   DescribeAll(config, config.inputs)));
  }
  for (const auto& [name, tensor] : inputs) {
    if (config.FindInput(name) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown input '", name, "' for model '",
                                                     config.name, "'; its inputs are ",
                                                     DescribeAll(config, config.inputs)));
    }
  }
  std::optional<int64_t> batch_size;
  std::string batch_input;
  for (const TensorSpec& spec : config.inputs) {
    auto it = inputs.find(spec.name);
    if (it == inputs.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("missing input ", Describe(config, spec), " for model '", config.name, "'"));
    }
    const Tensor& tensor = it->second;
    if (tensor.type() != spec.type) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", spec.name, "' has datatype ", DataTypeName(tensor.type()),
                       " but model '", config.name, "' expects ", DataTypeName(spec.type)));
    }
    RETURN_IF_ERROR(ShapeFits(config, spec, tensor.shape()));
    RETURN_IF_ERROR(DataFits("input", spec.name, tensor));
    if (config.max_batch_size > 0) {
      if (batch_size.has_value() && *batch_size != tensor.shape()[0]) {
        return absl::InvalidArgumentError(absl::StrCat("inputs disagree on the batch size: '",
                                                       batch_input, "' has ", *batch_size, ", '",
                                                       spec.name, "' has ", tensor.shape()[0]));
      }
      batch_size = tensor.shape()[0];
      batch_input = spec.name;
    }
  }
  return batch_size;
}

}  // namespace

absl::Status ValidateRequest(const ModelConfig& config, const InferRequest& request) {
  RETURN_IF_ERROR(ValidateInputs(config, request.inputs).status());
  return ValidateOutputs(config, request);
}

absl::Status ValidateTrainRequest(const ModelConfig& config, const TrainRequest& request) {
  ASSIGN_OR_RETURN(const std::optional<int64_t> batch_size, ValidateInputs(config, request.inputs));
  if (request.targets.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "training request for model '", config.name,
        "' has no targets; name them after its outputs (or the remaining arguments of its "
        "train_step or train signature)"));
  }
  for (const auto& [name, tensor] : request.targets) {
    if (config.FindInput(name) != nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("target '", name,
                                                     "' has the name of an input of model '",
                                                     config.name, "'; give it once, as an input"));
    }
    RETURN_IF_ERROR(DataFits("target", name, tensor));
    if (batch_size.has_value() && (tensor.shape().empty() || tensor.shape()[0] != *batch_size)) {
      return absl::InvalidArgumentError(
          absl::StrCat("target '", name, "' has shape ", ShapeToString(tensor.shape()),
                       " but the inputs have batch size ", *batch_size,
                       "; a target's first dimension is the batch size"));
    }
  }
  return absl::OkStatus();
}

namespace {

// Adds the elements of `tensors` to `total`; INVALID_ARGUMENT once it passes `max_elements`.
absl::Status CountElements(const TensorMap& tensors, absl::string_view kind, int64_t max_elements,
                           int64_t& total) {
  for (const auto& [name, tensor] : tensors) {
    const int64_t count = ElementCount(tensor.shape());
    // A malformed shape is ValidateRequest's to report; past the limit either way.
    if (count < 0 || count > max_elements - total) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the request holds more than ", max_elements, " tensor elements in all (", kind, " '",
          name, "' has shape ", ShapeToString(tensor.shape()),
          "); the limit is --max-request-elements=", max_elements));
    }
    total += count;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckRequestElements(const InferRequest& request, int64_t max_elements) {
  if (max_elements <= 0) return absl::OkStatus();
  int64_t total = 0;
  return CountElements(request.inputs, "input", max_elements, total);
}

absl::Status CheckRequestElements(const TrainRequest& request, int64_t max_elements) {
  if (max_elements <= 0) return absl::OkStatus();
  int64_t total = 0;
  RETURN_IF_ERROR(CountElements(request.inputs, "input", max_elements, total));
  return CountElements(request.targets, "target", max_elements, total);
}

}  // namespace modeld::core
