#include "backend/tensorflow/saved_model.h"

#include <algorithm>
#include <fstream>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "core/tensor.h"
#include "tensorflow/saved_model.pb.h"

namespace modeld::backend::savedmodel {
namespace {

constexpr char kSavedModelFile[] = "saved_model.pb";
constexpr char kTritonFolder[] = "model.savedmodel";

// One tensor of a signature as modeld sees it.
struct SignatureTensor {
  std::string key;
  std::optional<core::Shape> shape;  // nullopt: unknown rank
  tensorflow::DataType dtype;
};

std::vector<SignatureTensor> SortedTensors(
    const google::protobuf::Map<std::string, tensorflow::TensorInfo>& map) {
  std::vector<SignatureTensor> tensors;
  for (const auto& [key, info] : map) {
    SignatureTensor tensor{key, std::nullopt, info.dtype()};
    if (!info.tensor_shape().unknown_rank()) {
      core::Shape shape;
      for (const auto& dim : info.tensor_shape().dim())
        shape.push_back(dim.size() < 0 ? -1 : dim.size());
      tensor.shape = std::move(shape);
    }
    tensors.push_back(std::move(tensor));
  }
  std::sort(tensors.begin(), tensors.end(),
            [](const SignatureTensor& a, const SignatureTensor& b) { return a.key < b.key; });
  return tensors;
}

std::string TfTypeName(tensorflow::DataType type) {
  const std::string& name = tensorflow::DataType_Name(type);
  return name.empty() ? absl::StrCat("dtype ", static_cast<int>(type)) : name;
}

std::string ShapeText(const std::optional<core::Shape>& shape) {
  return shape.has_value() ? core::ShapeToString(*shape) : "of unknown rank";
}

bool Batches(const SignatureTensor& tensor) {
  return tensor.shape.has_value() && !tensor.shape->empty() && (*tensor.shape)[0] == -1;
}

// Writes the config entry (input or output) for one signature tensor.
template <typename TensorProto>
absl::Status FillTensor(const SignatureTensor& tensor, bool batched, absl::string_view kind,
                        TensorProto& out) {
  const std::string what = absl::StrCat("signature ", kind, " '", tensor.key, "'");
  const std::optional<core::DataType> type = core::DataTypeFromTf(tensor.dtype);
  if (!type.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has dtype ", TfTypeName(tensor.dtype),
                                                   ", which modeld does not serve"));
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
  out.set_name(tensor.key);
  out.set_data_type(core::DataTypeToConfig(*type));
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
absl::Status CheckTensor(const TensorProto& declared, const std::vector<SignatureTensor>& tensors,
                         bool batched, absl::string_view kind, absl::string_view signature_name) {
  auto it = std::find_if(tensors.begin(), tensors.end(),
                         [&](const SignatureTensor& t) { return t.key == declared.name(); });
  if (it == tensors.end()) {
    std::vector<std::string> keys;
    for (const SignatureTensor& t : tensors) keys.push_back(t.key);
    return absl::InvalidArgumentError(
        absl::StrCat(kind, " '", declared.name(), "' is not in signature '", signature_name,
                     "', whose ", kind, "s are: ", absl::StrJoin(keys, ", ")));
  }
  const std::optional<core::DataType> type = core::DataTypeFromTf(it->dtype);
  const std::optional<core::DataType> declared_type =
      core::DataTypeFromConfig(declared.data_type());
  if (!type.has_value() || type != declared_type) {
    return absl::InvalidArgumentError(absl::StrCat(
        kind, " '", declared.name(), "' is declared ",
        inference::DataType_Name(declared.data_type()), " but signature '", signature_name,
        "' has ", TfTypeName(it->dtype),
        type.has_value()
            ? absl::StrCat(" (", inference::DataType_Name(core::DataTypeToConfig(*type)), ")")
            : ""));
  }
  if (!it->shape.has_value()) return absl::OkStatus();
  const core::Shape model_shape = ModelShape(declared, batched);
  if (!ShapesCanMatch(model_shape, *it->shape) || (batched && !Batches(*it))) {
    return absl::InvalidArgumentError(
        absl::StrCat(kind, " '", declared.name(), "' has shape ", core::ShapeToString(model_shape),
                     batched ? " (with the batch dimension)" : "", " but signature '",
                     signature_name, "' has ", ShapeText(it->shape)));
  }
  return absl::OkStatus();
}

}  // namespace

std::optional<std::filesystem::path> FindSavedModelDir(const std::filesystem::path& version_dir) {
  std::error_code error;
  for (const std::filesystem::path& dir : {version_dir / kTritonFolder, version_dir}) {
    if (std::filesystem::is_regular_file(dir / kSavedModelFile, error)) return dir;
  }
  return std::nullopt;
}

absl::StatusOr<tensorflow::MetaGraphDef> ReadServingMetaGraph(
    const std::filesystem::path& saved_model_dir) {
  const std::filesystem::path path = saved_model_dir / kSavedModelFile;
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path.string(), " cannot be read"));
  tensorflow::SavedModel saved_model;
  if (!saved_model.ParseFromIstream(&file)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), " is not a SavedModel (it does not parse)"));
  }
  std::vector<std::string> tag_sets;
  for (tensorflow::MetaGraphDef& meta_graph : *saved_model.mutable_meta_graphs()) {
    const auto& tags = meta_graph.meta_info_def().tags();
    if (std::find(tags.begin(), tags.end(), kServeTag) != tags.end()) return std::move(meta_graph);
    tag_sets.push_back(absl::StrCat("[", absl::StrJoin(tags, ", "), "]"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path.string(), " has no meta graph tagged '", kServeTag, "' (it has ",
                   tag_sets.empty() ? "none" : absl::StrJoin(tag_sets, ", "), ")"));
}

absl::StatusOr<tensorflow::SignatureDef> FindSignature(const tensorflow::MetaGraphDef& meta_graph,
                                                       absl::string_view name) {
  auto it = meta_graph.signature_def().find(std::string(name));
  if (it != meta_graph.signature_def().end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [key, unused] : meta_graph.signature_def()) names.push_back(key);
  std::sort(names.begin(), names.end());
  return absl::InvalidArgumentError(
      absl::StrCat("the SavedModel has no signature '", name, "' (it has ",
                   names.empty() ? "none" : absl::StrJoin(names, ", "), "); choose one with the ",
                   kSignatureParameter, " parameter"));
}

std::string SignatureName(const inference::ModelConfig& config) {
  auto it = config.parameters().find(kSignatureParameter);
  if (it == config.parameters().end() || it->second.string_value().empty()) {
    return kDefaultSignature;
  }
  return it->second.string_value();
}

absl::Status CompleteConfigFromSignature(const tensorflow::SignatureDef& signature,
                                         absl::string_view signature_name,
                                         inference::ModelConfig& config) {
  const std::vector<SignatureTensor> inputs = SortedTensors(signature.inputs());
  const std::vector<SignatureTensor> outputs = SortedTensors(signature.outputs());
  if (outputs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("signature '", signature_name, "' has no outputs"));
  }
  if (!signature.method_name().empty()) {
    (*config.mutable_parameters())[kMethodParameter].set_string_value(signature.method_name());
  } else {
    config.mutable_parameters()->erase(kMethodParameter);
  }
  const bool fill_inputs = config.input().empty();
  const bool fill_outputs = config.output().empty();
  if (fill_inputs && fill_outputs && config.max_batch_size() == 0 &&
      !config.has_dynamic_batching()) {
    const bool batches = std::all_of(inputs.begin(), inputs.end(), Batches) &&
                         std::all_of(outputs.begin(), outputs.end(), Batches);
    if (batches) {
      config.set_max_batch_size(kCompletedMaxBatchSize);
      config.mutable_dynamic_batching();
    }
  }
  const bool batched = config.max_batch_size() > 0;
  if (fill_inputs) {
    for (const SignatureTensor& tensor : inputs) {
      RETURN_IF_ERROR(FillTensor(tensor, batched, "input", *config.add_input()));
    }
  }
  if (fill_outputs) {
    for (const SignatureTensor& tensor : outputs) {
      RETURN_IF_ERROR(FillTensor(tensor, batched, "output", *config.add_output()));
    }
  }
  for (const inference::ModelInput& input : config.input()) {
    RETURN_IF_ERROR(CheckTensor(input, inputs, batched, "input", signature_name));
  }
  for (const inference::ModelOutput& output : config.output()) {
    RETURN_IF_ERROR(CheckTensor(output, outputs, batched, "output", signature_name));
  }
  for (const SignatureTensor& tensor : inputs) {
    const bool declared =
        std::any_of(config.input().begin(), config.input().end(),
                    [&](const inference::ModelInput& input) { return input.name() == tensor.key; });
    if (!declared) {
      return absl::InvalidArgumentError(
          absl::StrCat("signature '", signature_name, "' input '", tensor.key,
                       "' is not declared in config.pbtxt (modeld feeds every signature input)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace modeld::backend::savedmodel
