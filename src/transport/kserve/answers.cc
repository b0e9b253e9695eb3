#include "transport/kserve/answers.h"

#include <optional>
#include <string>
#include <vector>

#include "common/status_macros.h"
#include "core/model_version.h"

namespace modeld::transport::kserve {
namespace {

void AddTensors(
    const std::vector<service::TensorMetadata>& tensors,
    google::protobuf::RepeatedPtrField<inference::ModelMetadataResponse::TensorMetadata>* out) {
  for (const service::TensorMetadata& tensor : tensors) {
    auto* meta = out->Add();
    meta->set_name(tensor.name);
    meta->set_datatype(std::string(core::DataTypeName(tensor.type)));
    for (int64_t dim : tensor.shape) meta->add_shape(dim);
  }
}

}  // namespace

inference::ServerReadyResponse AnswerServerReady(const service::InferenceService& service) {
  inference::ServerReadyResponse response;
  response.set_ready(service.Ready());
  return response;
}

inference::ModelReadyResponse AnswerModelReady(const service::InferenceService& service,
                                               const inference::ModelReadyRequest& request) {
  inference::ModelReadyResponse response;
  absl::StatusOr<std::optional<int64_t>> version = core::ParseModelVersion(request.version());
  response.set_ready(version.ok() && service.ModelReady(request.name(), *version));
  return response;
}

absl::StatusOr<inference::ModelMetadataResponse> AnswerModelMetadata(
    const service::InferenceService& service, const inference::ModelMetadataRequest& request) {
  ASSIGN_OR_RETURN(std::optional<int64_t> version, core::ParseModelVersion(request.version()));
  ASSIGN_OR_RETURN(service::ModelMetadata metadata, service.Metadata(request.name(), version));
  inference::ModelMetadataResponse response;
  response.set_name(metadata.name);
  for (int64_t v : metadata.versions) response.add_versions(std::to_string(v));
  response.set_platform(metadata.platform);
  AddTensors(metadata.inputs, response.mutable_inputs());
  AddTensors(metadata.outputs, response.mutable_outputs());
  return response;
}

}  // namespace modeld::transport::kserve
