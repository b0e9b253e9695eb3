#include "backend/config_completion.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace modeld::backend {
namespace {

std::string ShapeText(const std::optional<core::Shape>& shape) {
  return shape.has_value() ? core::ShapeToString(*shape) : "of unknown rank";
}

// Writes the config entry (input or output) for one file tensor.
template <typename TensorProto>
absl::Status FillTensor(const FileTensors& file, const FileTensor& tensor, bool batched,
                        absl::string_view kind, TensorProto& out) {
  if (!tensor.refusal.empty()) return absl::InvalidArgumentError(tensor.refusal);
  const std::string what = absl::StrCat(file.noun, " ", kind, " '", tensor.name, "'");
  if (!tensor.type.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has dtype ", tensor.type_name, ", which modeld does not serve"));
  }
  if (!tensor.shape.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has a shape of unknown rank; declare its dims in config.pbtxt"));
  }
  if (batched && !Batches(tensor)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has shape ", core::ShapeToString(*tensor.shape),
                     ", whose first dimension is not -1, so it cannot take a batch dimension "
                     "(set max_batch_size: 0)"));
  }
  out.set_name(tensor.name);
  out.set_data_type(core::DataTypeToConfig(*tensor.type));
  const core::Shape item(tensor.shape->begin() + (batched ? 1 : 0), tensor.shape->end());
  if (item.empty()) {
    // config.pbtxt cannot state an item of no dims: [1] for the API, reshaped away for the model.
    out.add_dims(1);
    out.mutable_reshape();
  } else {
    for (int64_t dim : item) out.add_dims(dim);
  }
  return absl::OkStatus();
}

// The shape the model sees for a declared tensor: batch dimension, then reshape or dims.
template <typename TensorProto>
core::Shape ModelShape(const TensorProto& tensor, bool batched) {
  core::Shape shape;
  if (batched) shape.push_back(-1);
  if (tensor.has_reshape()) {
    shape.insert(shape.end(), tensor.reshape().shape().begin(), tensor.reshape().shape().end());
  } else {
    shape.insert(shape.end(), tensor.dims().begin(), tensor.dims().end());
  }
  return shape;
}

bool ShapesCanMatch(const core::Shape& a, const core::Shape& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != -1 && b[i] != -1 && a[i] != b[i]) return false;
  }
  return true;
}

template <typename TensorProto>
absl::Status CheckTensor(const FileTensors& file, const TensorProto& declared,
                         const std::vector<FileTensor>& tensors, bool batched,
                         absl::string_view kind) {
  auto it = std::find_if(tensors.begin(), tensors.end(),
                         [&](const FileTensor& t) { return t.name == declared.name(); });
  if (it == tensors.end()) {
    std::vector<std::string> names;
    for (const FileTensor& t : tensors) names.push_back(t.name);
    return absl::InvalidArgumentError(absl::StrCat(kind, " '", declared.name(), "' is not in ",
                                                   file.source, ", whose ", kind,
                                                   "s are: ", absl::StrJoin(names, ", ")));
  }
  if (!it->refusal.empty()) return absl::InvalidArgumentError(it->refusal);
  const std::optional<core::DataType> declared_type =
      core::DataTypeFromConfig(declared.data_type());
  if (!it->type.has_value() || it->type != declared_type) {
    return absl::InvalidArgumentError(absl::StrCat(
        kind, " '", declared.name(), "' is declared ",
        inference::DataType_Name(declared.data_type()), " but ", file.source, " has ",
        it->type_name,
        it->type.has_value()
            ? absl::StrCat(" (", inference::DataType_Name(core::DataTypeToConfig(*it->type)), ")")
            : ""));
  }
  if (!it->shape.has_value()) return absl::OkStatus();
  const core::Shape model_shape = ModelShape(declared, batched);
  if (!ShapesCanMatch(model_shape, *it->shape) || (batched && !Batches(*it))) {
    return absl::InvalidArgumentError(
        absl::StrCat(kind, " '", declared.name(), "' has shape ", core::ShapeToString(model_shape),
                     batched ? " (with the batch dimension)" : "", " but ", file.source, " has ",
                     ShapeText(it->shape)));
  }
  return absl::OkStatus();
}

}  // namespace

bool Batches(const FileTensor& tensor) {
  return tensor.shape.has_value() && !tensor.shape->empty() && (*tensor.shape)[0] == -1;
}

absl::Status CompleteConfigFromTensors(const FileTensors& file, inference::ModelConfig& config) {
  const bool fill_inputs = config.input().empty();
  const bool fill_outputs = config.output().empty();
  if (fill_inputs && fill_outputs && config.max_batch_size() == 0 &&
      !config.has_dynamic_batching()) {
    const bool batches = std::all_of(file.inputs.begin(), file.inputs.end(), Batches) &&
                         std::all_of(file.outputs.begin(), file.outputs.end(), Batches);
    if (batches) {
      config.set_max_batch_size(file.completed_max_batch_size);
      config.mutable_dynamic_batching();
    }
  }
  const bool batched = config.max_batch_size() > 0;
  if (fill_inputs) {
    for (const FileTensor& tensor : file.inputs) {
      RETURN_IF_ERROR(FillTensor(file, tensor, batched, "input", *config.add_input()));
    }
  }
  if (fill_outputs) {
    for (const FileTensor& tensor : file.outputs) {
      RETURN_IF_ERROR(FillTensor(file, tensor, batched, "output", *config.add_output()));
    }
  }
  for (const inference::ModelInput& input : config.input()) {
    RETURN_IF_ERROR(CheckTensor(file, input, file.inputs, batched, "input"));
  }
  for (const inference::ModelOutput& output : config.output()) {
    RETURN_IF_ERROR(CheckTensor(file, output, file.outputs, batched, "output"));
  }
  for (const FileTensor& tensor : file.inputs) {
    const bool declared = std::any_of(
        config.input().begin(), config.input().end(),
        [&](const inference::ModelInput& input) { return input.name() == tensor.name; });
    if (!declared) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.source, " input '", tensor.name,
                       "' is not declared in config.pbtxt (modeld feeds every ", file.noun,
                       " input)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace modeld::backend
