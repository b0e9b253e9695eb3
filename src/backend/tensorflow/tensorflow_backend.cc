#include "backend/tensorflow/tensorflow_backend.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "backend/model_inputs.h"
#include "backend/tensorflow/saved_model.h"
#include "backend/tensorflow/tf_api.h"
#include "backend/tensorflow/tf_tensor.h"
#include "backend/tensorflow/tf_training.h"
#include "backend/thread_counts.h"
#include "common/runtime_library.h"
#include "common/status_macros.h"
#include "core/training_options.h"
#include "tensorflow/config.pb.h"

namespace modeld::backend {
namespace {

// Session options: this instance's own thread pools, sized from the config.
absl::StatusOr<std::string> SessionConfig(const core::ModelConfig& config) {
  ASSIGN_OR_RETURN(const int intra, IntraOpThreads(config));
  ASSIGN_OR_RETURN(const int inter, ThreadCountParameter(config, kInterOpThreadsParameter, 1));
  tensorflow::ConfigProto proto;
  proto.set_intra_op_parallelism_threads(intra);
  proto.set_inter_op_parallelism_threads(inter);
  proto.set_use_per_session_threads(true);
  return proto.SerializeAsString();
}

class TensorFlowModel : public Model {
 public:
  // `training`: null when this instance does not train, and then `cannot_train` says why.
  TensorFlowModel(const TfApi& api, core::ModelConfig config, TF_Graph* graph, TF_Session* session,
                  std::vector<TF_Output> feeds, std::vector<TF_Output> fetches,
                  std::unique_ptr<TfTraining> training, absl::Status cannot_train)
      : api_(api),
        config_(std::move(config)),
        graph_(graph),
        session_(session),
        feeds_(std::move(feeds)),
        fetches_(std::move(fetches)),
        training_(std::move(training)),
        cannot_train_(std::move(cannot_train)) {}

  ~TensorFlowModel() override {
    TfStatus status(api_);
    api_.TF_CloseSession(session_, status.get());
    api_.TF_DeleteSession(session_, status.get());
    api_.TF_DeleteGraph(graph_);
  }

  absl::StatusOr<core::TensorMap> Run(const core::TensorMap& inputs) override {
    const bool batched = config_.max_batch_size > 0;
    ASSIGN_OR_RETURN(const OrderedInputs ordered, OrderInputs(config_, inputs));
    std::vector<TfTensor> feed_tensors;
    std::vector<TF_Tensor*> feed_values;
    feed_tensors.reserve(config_.inputs.size());
    for (size_t i = 0; i < config_.inputs.size(); ++i) {
      ASSIGN_OR_RETURN(TfTensor tensor,
                       ToTfTensor(api_, *ordered.tensors[i], config_.inputs[i], batched));
      feed_values.push_back(tensor.get());
      feed_tensors.push_back(std::move(tensor));
    }

    std::vector<TF_Tensor*> fetched(fetches_.size(), nullptr);
    TfStatus status(api_);
    api_.TF_SessionRun(session_, /*run_options=*/nullptr, feeds_.data(), feed_values.data(),
                       static_cast<int>(feeds_.size()), fetches_.data(), fetched.data(),
                       static_cast<int>(fetches_.size()), /*target_opers=*/nullptr, 0,
                       /*run_metadata=*/nullptr, status.get());
    std::vector<TfTensor> results;
    results.reserve(fetched.size());
    for (TF_Tensor* tensor : fetched) results.emplace_back(api_, tensor);
    if (!status.ok()) return status.Error("");

    core::TensorMap outputs;
    outputs.reserve(results.size());
    for (size_t i = 0; i < results.size(); ++i) {
      const core::TensorSpec& spec = config_.outputs[i];
      ASSIGN_OR_RETURN(outputs[spec.name],
                       FromTfTensor(api_, std::move(results[i]), spec, ordered.batch));
    }
    // Only now may the feeds go: a string output that aliases a feed was copied above.
    feed_tensors.clear();
    return outputs;
  }

  absl::Status CanTrain() const override { return cannot_train_; }

  absl::StatusOr<double> Train(const core::TensorMap& inputs,
                               const core::TensorMap& targets) override {
    RETURN_IF_ERROR(CanTrain());
    return training_->Step(inputs, targets);
  }

  absl::StatusOr<State> SaveState() override {
    RETURN_IF_ERROR(CanTrain());
    return training_->Save();
  }

  absl::Status RestoreState(const State& state) override {
    RETURN_IF_ERROR(CanTrain());
    return training_->Restore(state);
  }

 private:
  const TfApi& api_;
  const core::ModelConfig config_;
  TF_Graph* const graph_;
  TF_Session* const session_;
  const std::vector<TF_Output> feeds_;    // one per config input, in config order
  const std::vector<TF_Output> fetches_;  // one per config output, in config order
  const std::unique_ptr<TfTraining> training_;
  const absl::Status cannot_train_;  // OK exactly when training_ is set
};

// The training of a loaded session, when the config turns it on: the training (or null) and,
// when null, why CanTrain() refuses.
std::pair<std::unique_ptr<TfTraining>, absl::Status> PrepareTraining(
    const TfApi& api, TF_Graph* graph, TF_Session* session,
    const tensorflow::MetaGraphDef& meta_graph, const core::ModelConfig& config,
    const core::TrainingOptions& options, const std::filesystem::path& dir) {
  if (!options.enabled) {
    return {nullptr, absl::FailedPreconditionError(
                         "training is off for this model (its config.pbtxt has no parameter "
                         "training: true)")};
  }
  absl::StatusOr<std::unique_ptr<TfTraining>> training =
      TfTraining::Prepare(api, graph, session, meta_graph, config, options.signature);
  if (!training.ok()) {
    return {nullptr, absl::FailedPreconditionError(
                         absl::StrCat(dir.string(), ": ", training.status().message()))};
  }
  return {*std::move(training), absl::OkStatus()};
}

}  // namespace

TensorFlowBackend::TensorFlowBackend(std::string library)
    : library_(library.empty() ? DefaultLibrary() : std::move(library)) {}

std::string TensorFlowBackend::DefaultLibrary() {
#ifdef MODELD_TENSORFLOW_LIBRARY
  return common::RuntimeLibrary(MODELD_TENSORFLOW_LIBRARY);
#else
  return "";
#endif
}

bool TensorFlowBackend::ServesWithoutConfig(const std::filesystem::path& version_dir) {
  return savedmodel::FindSavedModelDir(version_dir).has_value();
}

absl::Status TensorFlowBackend::CompleteConfig(const std::filesystem::path& version_dir,
                                               inference::ModelConfig& config) {
  const std::optional<std::filesystem::path> dir = savedmodel::FindSavedModelDir(version_dir);
  if (!dir.has_value()) {
    return absl::NotFoundError(absl::StrCat("version folder ", version_dir.string(),
                                            " holds no SavedModel (saved_model.pb in it or in "
                                            "model.savedmodel/)"));
  }
  ASSIGN_OR_RETURN(const tensorflow::MetaGraphDef meta_graph,
                   savedmodel::ReadServingMetaGraph(*dir));
  const std::string signature_name = savedmodel::SignatureName(config);
  ASSIGN_OR_RETURN(const tensorflow::SignatureDef signature,
                   savedmodel::FindSignature(meta_graph, signature_name));
  return savedmodel::CompleteConfigFromSignature(signature, signature_name, config);
}

absl::StatusOr<std::unique_ptr<Model>> TensorFlowBackend::Load(
    const core::ModelConfig& config, const std::filesystem::path& version_dir) {
  const std::optional<std::filesystem::path> dir = savedmodel::FindSavedModelDir(version_dir);
  if (!dir.has_value()) {
    return absl::NotFoundError(absl::StrCat("no SavedModel (saved_model.pb) in ",
                                            version_dir.string(), " or in its model.savedmodel/"));
  }
  ASSIGN_OR_RETURN(const std::string session_config, SessionConfig(config));
  ASSIGN_OR_RETURN(const core::TrainingOptions training_options,
                   core::ParseTrainingOptions(config));
  ASSIGN_OR_RETURN(const TfApi* api, LoadTfApi(library_));

  TfStatus status(*api);
  std::unique_ptr<TF_SessionOptions, decltype(api->TF_DeleteSessionOptions)> options(
      api->TF_NewSessionOptions(), api->TF_DeleteSessionOptions);
  api->TF_SetConfig(options.get(), session_config.data(), session_config.size(), status.get());
  if (!status.ok()) return status.Error("setting the session's thread pools");

  std::unique_ptr<TF_Graph, decltype(api->TF_DeleteGraph)> graph(api->TF_NewGraph(),
                                                                 api->TF_DeleteGraph);
  std::unique_ptr<TF_Buffer, decltype(api->TF_DeleteBuffer)> meta_graph_buffer(
      api->TF_NewBuffer(), api->TF_DeleteBuffer);
  const char* tags[] = {savedmodel::kServeTag};
  TF_Session* session =
      api->TF_LoadSessionFromSavedModel(options.get(), /*run_options=*/nullptr, dir->c_str(), tags,
                                        1, graph.get(), meta_graph_buffer.get(), status.get());
  if (!status.ok()) return status.Error(absl::StrCat("loading ", dir->string()));
  auto close_session = [&] {
    TfStatus ignored(*api);
    api->TF_CloseSession(session, ignored.get());
    api->TF_DeleteSession(session, ignored.get());
  };

  tensorflow::MetaGraphDef meta_graph;
  if (!meta_graph.ParseFromArray(meta_graph_buffer->data,
                                 static_cast<int>(meta_graph_buffer->length))) {
    close_session();
    return absl::InternalError(
        absl::StrCat("loading ", dir->string(), ": TensorFlow's MetaGraphDef does not parse"));
  }
  const std::string signature_name = savedmodel::SignatureName(config.proto);
  absl::StatusOr<tensorflow::SignatureDef> signature =
      savedmodel::FindSignature(meta_graph, signature_name);
  std::vector<TF_Output> feeds;
  std::vector<TF_Output> fetches;
  absl::Status endpoints = signature.status();
  auto resolve = [&](const google::protobuf::Map<std::string, tensorflow::TensorInfo>& map,
                     const std::vector<core::TensorSpec>& specs, std::vector<TF_Output>& out) {
    for (const core::TensorSpec& spec : specs) {
      if (!endpoints.ok()) return;
      auto it = map.find(spec.name);
      if (it == map.end()) {
        // CompleteConfig checked the newest version; an older one may differ.
        endpoints = absl::InvalidArgumentError(absl::StrCat("signature '", signature_name, "' of ",
                                                            dir->string(), " has no tensor '",
                                                            spec.name, "'"));
        return;
      }
      absl::StatusOr<TF_Output> endpoint = GraphTensor(
          *api, graph.get(), it->second.name(), absl::StrCat("signature tensor '", spec.name, "'"));
      if (!endpoint.ok()) {
        endpoints = endpoint.status();
        return;
      }
      out.push_back(*endpoint);
    }
  };
  if (signature.ok()) {
    resolve(signature->inputs(), config.inputs, feeds);
    resolve(signature->outputs(), config.outputs, fetches);
  }
  if (!endpoints.ok()) {
    close_session();
    return endpoints;
  }
  auto [training, cannot_train] =
      PrepareTraining(*api, graph.get(), session, meta_graph, config, training_options, *dir);
  return std::make_unique<TensorFlowModel>(*api, config, graph.release(), session, std::move(feeds),
                                           std::move(fetches), std::move(training),
                                           std::move(cannot_train));
}

absl::Status TensorFlowBackend::ExportVersion(const core::ModelConfig& config,
                                              const Model::State& state,
                                              const std::filesystem::path& loaded_from,
                                              const std::filesystem::path& out) {
  (void)config;  // the SavedModel holds everything; only its variables change
  return ExportSavedModel(state, loaded_from, out);
}

}  // namespace modeld::backend
