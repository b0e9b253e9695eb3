#include "transport/grpc_tfserving/tfserving_service.h"

#include <chrono>
#include <functional>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "transport/grpc_tfserving/examples.h"
#include "transport/grpc_limits.h"
#include "transport/grpc_tfserving/tensor_proto_codec.h"
#include "transport/status_codes.h"
#include "transport/tfserving/tfserving_model.h"

namespace modeld::transport::grpc_tfserving {
namespace {

namespace tfs = ::tensorflow::serving;

constexpr char kSignatureDefField[] = "signature_def";

// The model a ModelSpec names, with the version it asks for (nullopt: the newest ready one).
struct Selected {
  std::string name;
  std::optional<int64_t> version;
};

absl::StatusOr<Selected> Select(const tfs::ModelSpec& spec) {
  if (spec.name().empty()) {
    return absl::InvalidArgumentError("model_spec.name is empty: name the model to use");
  }
  Selected selected{spec.name(), std::nullopt};
  switch (spec.version_choice_case()) {
    case tfs::ModelSpec::kVersion:
      selected.version = spec.version().value();
      break;
    case tfs::ModelSpec::kVersionLabel: {
      // modeld has no version labels; a numeric label names that version.
      int64_t version = 0;
      if (!absl::SimpleAtoi(spec.version_label(), &version) || version < 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "version_label '", spec.version_label(), "' of model '", spec.name(),
            "' is not known: modeld has no version labels; use version, or a numeric label"));
      }
      selected.version = version;
      break;
    }
    case tfs::ModelSpec::VERSION_CHOICE_NOT_SET:
      break;
  }
  return selected;
}

void FillSpec(const std::string& name, int64_t version, const std::string& signature,
              tfs::ModelSpec* spec) {
  spec->set_name(name);
  spec->mutable_version()->set_value(version);
  if (!signature.empty()) spec->set_signature_name(signature);
}

void FillTensorInfos(const std::vector<service::TensorMetadata>& tensors,
                     google::protobuf::Map<std::string, tensorflow::TensorInfo>* out) {
  for (const service::TensorMetadata& tensor : tensors) {
    tensorflow::TensorInfo& info = (*out)[tensor.name];
    info.set_name(tensor.name);
    info.set_dtype(core::DataTypeToTf(tensor.type));
    for (int64_t dim : tfserving::ShownSignatureShape(tensor)) {
      info.mutable_tensor_shape()->add_dim()->set_size(dim);
    }
  }
}

// The model, version and config a request's ModelSpec selects, its signature checked.
struct Target {
  Selected selected;
  std::shared_ptr<const core::ModelConfig> config;
};

absl::StatusOr<Target> Resolve(service::InferenceService& service, const tfs::ModelSpec& spec) {
  ASSIGN_OR_RETURN(Selected selected, Select(spec));
  ASSIGN_OR_RETURN(auto config, service.Config(selected.name, selected.version));
  RETURN_IF_ERROR(tfserving::CheckSignature(spec.signature_name(), *config));
  return Target{std::move(selected), std::move(config)};
}

// An inference call's slot under --max-inflight-requests (null when there is no admission),
// after its size is checked: both before its tensors are decoded.
using Slot = std::shared_ptr<service::Admission::Ticket>;
absl::StatusOr<Slot> Admit(grpc::CallbackServerContext* context,
                           const google::protobuf::Message& request,
                           const TfServingCallOptions& options) {
  // A client that has stopped waiting gets no work done for it, decoding included.
  if (context->deadline() <= std::chrono::system_clock::now()) {
    return absl::DeadlineExceededError("the call's deadline passed before modeld read its request");
  }
  RETURN_IF_ERROR(
      CheckMessageSize(static_cast<int64_t>(request.ByteSizeLong()), options.max_message_bytes));
  if (options.admission == nullptr) return nullptr;
  ASSIGN_OR_RETURN(service::Admission::Ticket ticket, options.admission->Admit());
  return std::make_shared<service::Admission::Ticket>(std::move(ticket));
}

// Queues `request` for `target` (with the call's deadline) and finishes the call from its
// callback, then gives back `slot`; `fill` writes the response of a result (and may fail, as
// encoding may).
using Fill = std::function<absl::Status(const core::InferResponse&)>;
grpc::ServerUnaryReactor* Dispatch(service::InferenceService& service,
                                   grpc::CallbackServerContext* context,
                                   absl::StatusOr<core::InferRequest> request, const Target& target,
                                   Slot slot, Fill fill) {
  if (!request.ok()) return FinishUnary(context, request.status());
  request->model_name = target.selected.name;
  request->model_version = target.selected.version;
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    request->deadline = absl::FromChrono(context->deadline());
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  service.Infer(*std::move(request), [reactor, slot = std::move(slot), fill = std::move(fill)](
                                         absl::StatusOr<core::InferResponse> result) {
    reactor->Finish(ToGrpcStatus(result.ok() ? fill(*result) : result.status()));
  });
  return reactor;
}

// Classify and Regress: `input`'s tf.Examples through a signature of `method`; `fill` turns
// the outputs into the response.
template <typename Request, typename Response, typename ResultOf>
grpc::ServerUnaryReactor* RunExamples(service::InferenceService& service,
                                      const TfServingCallOptions& options,
                                      grpc::CallbackServerContext* context, const Request& request,
                                      Response* response, absl::string_view method,
                                      absl::string_view rpc, ResultOf result_of) {
  absl::StatusOr<Slot> slot = Admit(context, request, options);
  if (!slot.ok()) return FinishUnary(context, slot.status());
  absl::StatusOr<Target> target = Resolve(service, request.model_spec());
  if (!target.ok()) return FinishUnary(context, target.status());
  if (absl::Status served = CheckServesMethod(*target->config, method, rpc); !served.ok()) {
    return FinishUnary(context, served);
  }
  return Dispatch(service, context, ExamplesRequest(request.input(), *target->config), *target,
                  *std::move(slot),
                  [response, config = target->config,
                   result_of](const core::InferResponse& result) -> absl::Status {
                    ASSIGN_OR_RETURN(*response->mutable_result(), result_of(result));
                    FillSpec(result.model_name, result.model_version,
                             tfserving::ServedSignature(*config), response->mutable_model_spec());
                    return absl::OkStatus();
                  });
}

}  // namespace

grpc::ServerUnaryReactor* TfServingPredictionService::Predict(grpc::CallbackServerContext* context,
                                                              const tfs::PredictRequest* request,
                                                              tfs::PredictResponse* response) {
  absl::StatusOr<Slot> slot = Admit(context, *request, options_);
  if (!slot.ok()) return FinishUnary(context, slot.status());
  absl::StatusOr<Target> target = Resolve(service_, request->model_spec());
  if (!target.ok()) return FinishUnary(context, target.status());
  absl::StatusOr<core::InferRequest> decoded = [&]() -> absl::StatusOr<core::InferRequest> {
    core::InferRequest infer;
    int64_t fill_budget = kMaxFilledBytes;  // shared: many inputs may not fill more than one
    for (const auto& [name, tensor] : request->inputs()) {
      // The tensors may view the request's bytes: it outlives the call (Finish comes last).
      ASSIGN_OR_RETURN(infer.inputs[name],
                       DecodeTensorProto(tensor, absl::StrCat("input '", name, "'"), fill_budget));
    }
    tfserving::TakeScalarItems(*target->config, infer.inputs);
    infer.requested_outputs.assign(request->output_filter().begin(),
                                   request->output_filter().end());
    return infer;
  }();
  return Dispatch(
      service_, context, std::move(decoded), *target, *std::move(slot),
      [response, config = target->config](const core::InferResponse& result) -> absl::Status {
        FillSpec(result.model_name, result.model_version, tfserving::ServedSignature(*config),
                 response->mutable_model_spec());
        for (const core::NamedTensor& output : result.outputs) {
          RETURN_IF_ERROR(EncodeTensorProto(
              output.tensor,
              tfserving::ShownOutputShape(*config, output.name, output.tensor.shape()),
              &(*response->mutable_outputs())[output.name]));
        }
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* TfServingPredictionService::GetModelMetadata(
    grpc::CallbackServerContext* context, const tfs::GetModelMetadataRequest* request,
    tfs::GetModelMetadataResponse* response) {
  const absl::Status status = [&]() -> absl::Status {
    if (request->metadata_field().empty()) {
      return absl::InvalidArgumentError(
          "GetModelMetadataRequest must name at least one metadata_field (signature_def)");
    }
    for (const std::string& field : request->metadata_field()) {
      if (field != kSignatureDefField) {
        return absl::InvalidArgumentError(absl::StrCat(
            "metadata_field '", field, "' is not supported; modeld answers signature_def"));
      }
    }
    ASSIGN_OR_RETURN(Selected selected, Select(request->model_spec()));
    ASSIGN_OR_RETURN(service::ModelMetadata metadata,
                     service_.Metadata(selected.name, selected.version));
    ASSIGN_OR_RETURN(auto config, service_.Config(selected.name, selected.version));
    const std::string signature = tfserving::ServedSignature(*config);
    tfs::SignatureDefMap signatures;
    tensorflow::SignatureDef& def = (*signatures.mutable_signature_def())[signature];
    FillTensorInfos(metadata.inputs, def.mutable_inputs());
    FillTensorInfos(metadata.outputs, def.mutable_outputs());
    def.set_method_name(tfserving::kPredictMethod);
    // Without a version the newest ready one answers, as for inference.
    const int64_t version =
        selected.version.value_or(metadata.versions.empty() ? 0 : metadata.versions.back());
    FillSpec(selected.name, version, "", response->mutable_model_spec());
    (*response->mutable_metadata())[kSignatureDefField].PackFrom(signatures);
    return absl::OkStatus();
  }();
  return FinishUnary(context, status);
}

grpc::ServerUnaryReactor* TfServingPredictionService::Classify(
    grpc::CallbackServerContext* context, const tfs::ClassificationRequest* request,
    tfs::ClassificationResponse* response) {
  return RunExamples(service_, options_, context, *request, response, kClassifyMethod, "Classify",
                     ClassificationResultOf);
}

grpc::ServerUnaryReactor* TfServingPredictionService::Regress(grpc::CallbackServerContext* context,
                                                              const tfs::RegressionRequest* request,
                                                              tfs::RegressionResponse* response) {
  return RunExamples(service_, options_, context, *request, response, kRegressMethod, "Regress",
                     RegressionResultOf);
}

grpc::ServerUnaryReactor* TfServingModelService::GetModelStatus(
    grpc::CallbackServerContext* context, const tfs::GetModelStatusRequest* request,
    tfs::GetModelStatusResponse* response) {
  const absl::Status status = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Selected selected, Select(request->model_spec()));
    ASSIGN_OR_RETURN(core::ModelStatus model, service_.Status(selected.name));
    ASSIGN_OR_RETURN(std::vector<tfserving::VersionStatus> versions,
                     tfserving::VersionStatuses(model, selected.version));
    for (const tfserving::VersionStatus& version : versions) {
      tfs::ModelVersionStatus* out = response->add_model_version_status();
      out->set_version(version.version);
      out->set_state(static_cast<tfs::ModelVersionStatus::State>(version.state));
      // tensorflow.error.Code numbers are google.rpc.Code's, which ToRpcCode gives.
      out->mutable_status()->set_error_code(
          static_cast<tensorflow::error::Code>(ToRpcCode(version.status)));
      out->mutable_status()->set_error_message(std::string(version.status.message()));
    }
    return absl::OkStatus();
  }();
  return FinishUnary(context, status);
}

}  // namespace modeld::transport::grpc_tfserving
