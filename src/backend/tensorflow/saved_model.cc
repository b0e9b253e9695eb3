#include "backend/tensorflow/saved_model.h"

#include <algorithm>
#include <fstream>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backend/config_completion.h"
#include "common/status_macros.h"
#include "core/tensor.h"
#include "tensorflow/saved_model.pb.h"

namespace modeld::backend::savedmodel {
namespace {

constexpr char kSavedModelFile[] = "saved_model.pb";
constexpr char kTritonFolder[] = "model.savedmodel";

std::string TfTypeName(tensorflow::DataType type) {
  const std::string& name = tensorflow::DataType_Name(type);
  return name.empty() ? absl::StrCat("dtype ", static_cast<int>(type)) : name;
}

// A signature's tensors, sorted by key, as config completion sees them.
std::vector<FileTensor> SortedTensors(
    const google::protobuf::Map<std::string, tensorflow::TensorInfo>& map) {
  std::vector<FileTensor> tensors;
  for (const auto& [key, info] : map) {
    FileTensor tensor{.name = key,
                      .shape = std::nullopt,
                      .type = core::DataTypeFromTf(info.dtype()),
                      .type_name = TfTypeName(info.dtype()),
                      .refusal = ""};
    if (!info.tensor_shape().unknown_rank()) {
      core::Shape shape;
      for (const auto& dim : info.tensor_shape().dim())
        shape.push_back(dim.size() < 0 ? -1 : dim.size());
      tensor.shape = std::move(shape);
    }
    tensors.push_back(std::move(tensor));
  }
  std::sort(tensors.begin(), tensors.end(),
            [](const FileTensor& a, const FileTensor& b) { return a.name < b.name; });
  return tensors;
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
  FileTensors file{.source = absl::StrCat("signature '", signature_name, "'"),
                   .noun = "signature",
                   .inputs = SortedTensors(signature.inputs()),
                   .outputs = SortedTensors(signature.outputs()),
                   .completed_max_batch_size = kCompletedMaxBatchSize};
  if (file.outputs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("signature '", signature_name, "' has no outputs"));
  }
  if (!signature.method_name().empty()) {
    (*config.mutable_parameters())[kMethodParameter].set_string_value(signature.method_name());
  } else {
    config.mutable_parameters()->erase(kMethodParameter);
  }
  return CompleteConfigFromTensors(file, config);
}

}  // namespace modeld::backend::savedmodel
