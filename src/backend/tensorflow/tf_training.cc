#include "backend/tensorflow/tf_training.h"

#include <stdlib.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backend/tensorflow/bundle_index.h"
#include "backend/tensorflow/saved_model.h"
#include "backend/tensorflow/tf_tensor.h"
#include "common/status_macros.h"

namespace modeld::backend {
namespace {

namespace fs = std::filesystem;

// The checkpoint prefix the saver writes under, and so the names of its files: a SavedModel's
// variables/ folder holds the same files under the same names.
constexpr char kPrefix[] = "variables";
constexpr char kIndexSection[] = "variables.index";
constexpr char kVariablesFolder[] = "variables";
constexpr char kFingerprintFile[] = "fingerprint.pb";
constexpr char kLossOutput[] = "loss";

// A folder of its own under the system's temporary folder, removed with everything in it when
// this goes.
class TempFolder {
 public:
  static absl::StatusOr<std::unique_ptr<TempFolder>> Make() {
    std::error_code error;
    std::string pattern = (fs::temp_directory_path(error) / "modeld-tf-XXXXXX").string();
    if (error || ::mkdtemp(pattern.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("creating a temporary folder ", pattern, " failed"));
    }
    return std::unique_ptr<TempFolder>(new TempFolder(pattern));
  }
  ~TempFolder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;

  const fs::path& path() const { return path_; }

 private:
  explicit TempFolder(fs::path path) : path_(std::move(path)) {}
  const fs::path path_;
};

absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad() || !file.is_open()) {
    return absl::InternalError(absl::StrCat("reading ", path.string(), " failed"));
  }
  return bytes;
}

absl::Status WriteFile(const fs::path& path, absl::string_view bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  file.close();
  if (!file) return absl::InternalError(absl::StrCat("writing ", path.string(), " failed"));
  return absl::OkStatus();
}

// INVALID_ARGUMENT unless `state` is what a saver writes for the prefix "variables": an index,
// at least one data shard, and nothing else (each name a plain file name, as it is written
// into a folder).
absl::Status CheckSections(const Model::State& state) {
  std::vector<std::string> names;
  bool data = false;
  for (const auto& [name, unused] : state) {
    names.push_back(name);
    if (!absl::StartsWith(name, absl::StrCat(kPrefix, ".")) ||
        name.find('/') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("the checkpoint's section '", name,
                       "' is not a file of TensorFlow's saver (variables.*)"));
    }
    data = data || absl::StartsWith(name, absl::StrCat(kPrefix, ".data-"));
  }
  if (!state.contains(kIndexSection) || !data) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the checkpoint is not TensorFlow variables: it needs sections ", kIndexSection,
        " and variables.data-*, and holds ", names.empty() ? "none" : absl::StrJoin(names, ", ")));
  }
  return absl::OkStatus();
}

absl::Status WriteSections(const Model::State& state, const fs::path& folder) {
  for (const auto& [name, bytes] : state) RETURN_IF_ERROR(WriteFile(folder / name, bytes));
  return absl::OkStatus();
}

std::string TypeName(tensorflow::DataType type) {
  if (std::optional<core::DataType> ours = core::DataTypeFromTf(type)) {
    return std::string(core::DataTypeName(*ours));
  }
  const std::string& name = tensorflow::DataType_Name(type);
  return name.empty() ? absl::StrCat("dtype ", static_cast<int>(type)) : name;
}

// INVALID_ARGUMENT naming the first difference between the variables of a checkpoint and the
// model's own (names, datatypes, shapes).
absl::Status CheckSameVariables(const std::map<std::string, BundleTensor>& checkpoint,
                                const std::map<std::string, BundleTensor>& model) {
  for (const auto& [name, ours] : model) {
    auto it = checkpoint.find(name);
    if (it == checkpoint.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the checkpoint has no variable '", name, "'"));
    }
    if (it->second.dtype != ours.dtype || it->second.shape != ours.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat("the checkpoint's '", name, "' is ", TypeName(it->second.dtype), " ",
                       core::ShapeToString(it->second.shape), " but the model's is ",
                       TypeName(ours.dtype), " ", core::ShapeToString(ours.shape)));
    }
  }
  for (const auto& [name, unused] : checkpoint) {
    if (!model.contains(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the checkpoint has variable '", name, "', which the model does not"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, BundleTensor>> Variables(const Model::State& state) {
  return ReadBundleIndex(state.at(kIndexSection));
}

std::optional<core::Shape> ShapeOf(const tensorflow::TensorInfo& info) {
  if (info.tensor_shape().unknown_rank()) return std::nullopt;
  core::Shape shape;
  for (const auto& dim : info.tensor_shape().dim())
    shape.push_back(dim.size() < 0 ? -1 : dim.size());
  return shape;
}

core::Shape ShapeOf(const TfApi& api, TF_Tensor* tensor) {
  core::Shape shape(api.TF_NumDims(tensor));
  for (int i = 0; i < static_cast<int>(shape.size()); ++i) shape[i] = api.TF_Dim(tensor, i);
  return shape;
}

bool Fits(const core::Shape& actual, const core::Shape& wanted) {
  if (actual.size() != wanted.size()) return false;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (wanted[i] != -1 && wanted[i] != actual[i]) return false;
  }
  return true;
}

// Copies `from` into `to` recursively, leaving out the paths in `skip`.
absl::Status CopyTree(const fs::path& from, const fs::path& to, const std::set<fs::path>& skip) {
  std::error_code error;
  fs::create_directories(to, error);
  fs::recursive_directory_iterator it(from, error), end;
  for (; !error && it != end; it.increment(error)) {
    const fs::path& source = it->path();
    if (skip.contains(source)) {
      it.disable_recursion_pending();
      continue;
    }
    const fs::path target = to / source.lexically_relative(from);
    if (it->is_symlink(error) || !it->is_directory(error)) {
      fs::copy(source, target, fs::copy_options::recursive | fs::copy_options::copy_symlinks,
               error);
    } else {
      fs::create_directories(target, error);
    }
    if (error) {
      return absl::InternalError(absl::StrCat("copying ", source.string(), " to ", target.string(),
                                              ": ", error.message()));
    }
  }
  if (error) {
    return absl::InternalError(absl::StrCat("listing ", from.string(), ": ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TfTraining>> TfTraining::Prepare(
    const TfApi& api, TF_Graph* graph, TF_Session* session,
    const tensorflow::MetaGraphDef& meta_graph, const core::ModelConfig& config,
    const std::string& signature_name) {
  auto refuse = [&](absl::string_view why) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", config.name, "' cannot train: ", why));
  };
  absl::StatusOr<tensorflow::SignatureDef> signature =
      savedmodel::FindSignature(meta_graph, signature_name);
  if (!signature.ok()) {
    return refuse(
        absl::StrCat("its training signature (parameter training_signature, default "
                     "train) is missing: ",
                     signature.status().message()));
  }
  std::unique_ptr<TfTraining> training(
      new TfTraining(api, session, config.name, signature_name, config.max_batch_size > 0));
  for (const auto& [key, info] : signature->inputs()) {
    ASSIGN_OR_RETURN(TF_Output endpoint, GraphTensor(api, graph, info.name(),
                                                     absl::StrCat("signature '", signature_name,
                                                                  "' input '", key, "'")));
    Feed feed{endpoint, info.dtype(), ShapeOf(info), std::nullopt};
    if (const core::TensorSpec* input = config.FindInput(key)) feed.input = *input;
    training->feeds_.emplace(key, std::move(feed));
  }
  for (const core::TensorSpec& input : config.inputs) {
    auto it = training->feeds_.find(input.name);
    if (it == training->feeds_.end()) {
      return refuse(absl::StrCat("signature '", signature_name, "' does not take input '",
                                 input.name, "' (it takes ", training->TargetNames(), ")"));
    }
    if (it->second.dtype != core::DataTypeToTf(input.type)) {
      return refuse(absl::StrCat("signature '", signature_name, "' takes input '", input.name,
                                 "' as ", TypeName(it->second.dtype), " but the config declares ",
                                 core::DataTypeName(input.type)));
    }
  }
  if (training->TargetNames().empty()) {
    return refuse(absl::StrCat("signature '", signature_name,
                               "' takes no inputs besides the model's (no targets)"));
  }

  const auto& outputs = signature->outputs();
  auto loss = outputs.find(kLossOutput);
  if (loss == outputs.end() && outputs.size() == 1) loss = outputs.begin();
  if (loss == outputs.end()) {
    return refuse(absl::StrCat("signature '", signature_name, "' has ", outputs.size(),
                               " outputs and none is named '", kLossOutput, "'"));
  }
  if (loss->second.dtype() != tensorflow::DT_FLOAT &&
      loss->second.dtype() != tensorflow::DT_DOUBLE) {
    return refuse(absl::StrCat("signature '", signature_name, "' output '", loss->first, "' is ",
                               TypeName(loss->second.dtype()), "; a loss is FP32 or FP64"));
  }
  ASSIGN_OR_RETURN(training->loss_, GraphTensor(api, graph, loss->second.name(),
                                                absl::StrCat("signature '", signature_name,
                                                             "' output '", loss->first, "'")));

  const tensorflow::SaverDef& saver = meta_graph.saver_def();
  if (saver.filename_tensor_name().empty() || saver.save_tensor_name().empty() ||
      saver.restore_op_name().empty()) {
    return refuse(
        "the SavedModel has no saver (its MetaGraphDef's saver_def is empty), so its variables "
        "cannot be checkpointed; tf.saved_model.save writes one");
  }
  ASSIGN_OR_RETURN(training->filename_, GraphTensor(api, graph, saver.filename_tensor_name(),
                                                    "the saver's filename tensor"));
  ASSIGN_OR_RETURN(training->save_,
                   GraphTensor(api, graph, saver.save_tensor_name(), "the saver's save tensor"));
  ASSIGN_OR_RETURN(const TF_Output restore, GraphTensor(api, graph, saver.restore_op_name(),
                                                        "the saver's restore operation"));
  training->restore_ = restore.oper;
  return training;
}

std::string TfTraining::TargetNames() const {
  std::vector<std::string> names;
  for (const auto& [key, feed] : feeds_) {
    if (!feed.input.has_value()) names.push_back(key);
  }
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<double> TfTraining::Step(const core::TensorMap& inputs,
                                        const core::TensorMap& targets) {
  for (const auto& [name, unused] : targets) {
    auto it = feeds_.find(name);
    if (it == feeds_.end() || it->second.input.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown target '", name, "' for model '", model_, "'; it takes ", TargetNames(),
          " (the inputs of signature '", signature_, "' besides the model's inputs)"));
    }
  }
  std::vector<TF_Output> endpoints;
  std::vector<TfTensor> tensors;
  std::vector<TF_Tensor*> values;
  for (const auto& [key, feed] : feeds_) {
    const char* kind = feed.input.has_value() ? "input" : "target";
    const core::TensorMap& from = feed.input.has_value() ? inputs : targets;
    auto given = from.find(key);
    if (given == from.end()) {
      return absl::InvalidArgumentError(absl::StrCat("missing ", kind, " '", key, "': signature '",
                                                     signature_, "' of model '", model_,
                                                     "' takes it"));
    }
    const core::Tensor& tensor = given->second;
    if (core::DataTypeToTf(tensor.type()) != feed.dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat(kind, " '", key, "' is ", core::DataTypeName(tensor.type()),
                       " but signature '", signature_, "' takes ", TypeName(feed.dtype)));
    }
    core::TensorSpec spec;
    spec.name = key;
    ASSIGN_OR_RETURN(TfTensor converted, ToTfTensor(api_, tensor, feed.input.value_or(spec),
                                                    batched_ && feed.input.has_value()));
    const core::Shape shape = ShapeOf(api_, converted.get());
    if (feed.shape.has_value() && !Fits(shape, *feed.shape)) {
      return absl::InvalidArgumentError(absl::StrCat(
          kind, " '", key, "' has shape ", core::ShapeToString(shape), " but signature '",
          signature_, "' takes ", core::ShapeToString(*feed.shape)));
    }
    endpoints.push_back(feed.endpoint);
    values.push_back(converted.get());
    tensors.push_back(std::move(converted));
  }

  TF_Tensor* fetched = nullptr;
  TfStatus status(api_);
  api_.TF_SessionRun(session_, /*run_options=*/nullptr, endpoints.data(), values.data(),
                     static_cast<int>(endpoints.size()), &loss_, &fetched, 1,
                     /*target_opers=*/nullptr, 0, /*run_metadata=*/nullptr, status.get());
  const TfTensor loss(api_, fetched);
  if (!status.ok()) return status.Error(absl::StrCat("signature '", signature_, "'"));

  const core::Shape shape = ShapeOf(api_, loss.get());
  if (core::ElementCount(shape) != 1) {
    return absl::InternalError(absl::StrCat("the loss has shape ", core::ShapeToString(shape),
                                            "; it must be a single number"));
  }
  const TF_DataType type = api_.TF_TensorType(loss.get());
  double value = 0;
  if (type == TF_FLOAT) {
    value = *static_cast<const float*>(api_.TF_TensorData(loss.get()));
  } else if (type == TF_DOUBLE) {
    value = *static_cast<const double*>(api_.TF_TensorData(loss.get()));
  } else {
    return absl::InternalError(absl::StrCat("the loss is ",
                                            TypeName(static_cast<tensorflow::DataType>(type)),
                                            "; it must be FP32 or FP64"));
  }
  if (!std::isfinite(value)) {
    // The signature updates the variables itself, inside the same call that computed the loss:
    // DATA_LOSS tells the trainer the weights may be damaged (it stops checkpointing them).
    return absl::DataLossError(
        absl::StrCat("the loss is ", value,
                     "; the signature applied its update, so the weights may no longer be "
                     "finite"));
  }
  return value;
}

absl::Status TfTraining::RunSaver(const fs::path& prefix, const TF_Output* fetch,
                                  TF_Operation* target, absl::string_view what) {
  const std::string name = prefix.string();
  TfTensor filename(api_, api_.TF_AllocateTensor(TF_STRING, nullptr, 0, sizeof(TF_TString)),
                    /*owns_strings=*/true);
  auto* text = static_cast<TF_TString*>(api_.TF_TensorData(filename.get()));
  api_.TF_StringInit(text);
  api_.TF_StringCopy(text, name.data(), name.size());
  TF_Tensor* feed = filename.get();
  TF_Tensor* fetched = nullptr;
  TfStatus status(api_);
  api_.TF_SessionRun(session_, /*run_options=*/nullptr, &filename_, &feed, 1, fetch,
                     fetch != nullptr ? &fetched : nullptr, fetch != nullptr ? 1 : 0,
                     target != nullptr ? &target : nullptr, target != nullptr ? 1 : 0,
                     /*run_metadata=*/nullptr, status.get());
  const TfTensor result(api_, fetched);
  if (!status.ok()) return status.Error(what);
  return absl::OkStatus();
}

absl::StatusOr<Model::State> TfTraining::Save() {
  ASSIGN_OR_RETURN(const std::unique_ptr<TempFolder> folder, TempFolder::Make());
  RETURN_IF_ERROR(RunSaver(folder->path() / kPrefix, &save_, nullptr, "saving the variables"));
  // The saver writes <prefix>.index and one <prefix>.data-NNNNN-of-NNNNN per shard.
  Model::State state;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(folder->path(), error)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file(error) || !absl::StartsWith(name, absl::StrCat(kPrefix, "."))) {
      continue;
    }
    ASSIGN_OR_RETURN(state[name], ReadFile(entry.path()));
  }
  if (error) {
    return absl::InternalError(
        absl::StrCat("listing ", folder->path().string(), ": ", error.message()));
  }
  if (absl::Status complete = CheckSections(state); !complete.ok()) {
    return absl::InternalError(
        absl::StrCat("the saver wrote an incomplete checkpoint: ", complete.message()));
  }
  return state;
}

absl::Status TfTraining::Restore(const Model::State& state) {
  RETURN_IF_ERROR(CheckSections(state));
  ASSIGN_OR_RETURN(const auto theirs, Variables(state));
  // The model's own variables: what the checkpoint must match, and what goes back if TensorFlow
  // fails half-way.
  ASSIGN_OR_RETURN(const Model::State current, Save());
  ASSIGN_OR_RETURN(const auto ours, Variables(current));
  RETURN_IF_ERROR(CheckSameVariables(theirs, ours));

  ASSIGN_OR_RETURN(const std::unique_ptr<TempFolder> folder, TempFolder::Make());
  RETURN_IF_ERROR(WriteSections(state, folder->path()));
  const absl::Status restored =
      RunSaver(folder->path() / kPrefix, nullptr, restore_, "restoring the variables");
  if (restored.ok()) return absl::OkStatus();
  ASSIGN_OR_RETURN(const std::unique_ptr<TempFolder> backup, TempFolder::Make());
  RETURN_IF_ERROR(WriteSections(current, backup->path()));
  RETURN_IF_ERROR(RunSaver(backup->path() / kPrefix, nullptr, restore_,
                           "putting the variables back after a failed restore"));
  return absl::InvalidArgumentError(restored.message());
}

absl::Status ExportSavedModel(const Model::State& state, const fs::path& loaded_from,
                              const fs::path& out) {
  RETURN_IF_ERROR(CheckSections(state));
  const std::optional<fs::path> saved_model = savedmodel::FindSavedModelDir(loaded_from);
  if (!saved_model.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("version folder ", loaded_from.string(), " holds no SavedModel"));
  }
  RETURN_IF_ERROR(CopyTree(loaded_from, out,
                           {*saved_model / kVariablesFolder, *saved_model / kFingerprintFile}));
  const fs::path variables = out / saved_model->lexically_relative(loaded_from) / kVariablesFolder;
  std::error_code error;
  fs::create_directories(variables, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("creating ", variables.string(), ": ", error.message()));
  }
  return WriteSections(state, variables);
}

}  // namespace modeld::backend
