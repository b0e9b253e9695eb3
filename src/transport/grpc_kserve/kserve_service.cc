#include "transport/grpc_kserve/kserve_service.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "core/model_version.h"
#include "transport/kserve/answers.h"
#include "transport/kserve/codec.h"
#include "transport/status_codes.h"

#ifndef MODELD_VERSION
#define MODELD_VERSION "dev"
#endif

namespace modeld::transport::grpc_kserve {
grpc::ServerUnaryReactor* KServeGrpcService::ServerLive(grpc::CallbackServerContext* context,
                                                        const inference::ServerLiveRequest*,
                                                        inference::ServerLiveResponse* response) {
  response->set_live(service_.Live());
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* KServeGrpcService::ServerReady(grpc::CallbackServerContext* context,
                                                         const inference::ServerReadyRequest*,
                                                         inference::ServerReadyResponse* response) {
  *response = kserve::AnswerServerReady(service_);
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* KServeGrpcService::ModelReady(grpc::CallbackServerContext* context,
                                                        const inference::ModelReadyRequest* request,
                                                        inference::ModelReadyResponse* response) {
  *response = kserve::AnswerModelReady(service_, *request);
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* KServeGrpcService::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  response->set_name("modeld");
  response->set_version(MODELD_VERSION);
  for (const char* extension : kExtensions) response->add_extensions(extension);
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* KServeGrpcService::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  absl::StatusOr<inference::ModelMetadataResponse> metadata =
      kserve::AnswerModelMetadata(service_, *request);
  if (metadata.ok()) *response = *std::move(metadata);
  return FinishUnary(context, metadata.status());
}

grpc::ServerUnaryReactor* KServeGrpcService::ModelConfig(
    grpc::CallbackServerContext* context, const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  absl::Status status = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<int64_t> version, core::ParseModelVersion(request->version()));
    ASSIGN_OR_RETURN(auto config, service_.Config(request->name(), version));
    *response->mutable_config() = config->proto;
    return absl::OkStatus();
  }();
  return FinishUnary(context, status);
}

grpc::ServerUnaryReactor* KServeGrpcService::RepositoryIndex(
    grpc::CallbackServerContext* context, const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  absl::StatusOr<std::vector<core::IndexEntry>> index = service_.RepositoryIndex(request->ready());
  if (index.ok()) {
    for (const core::IndexEntry& entry : *index) {
      inference::RepositoryIndexResponse::ModelIndex* model = response->add_models();
      model->set_name(entry.name);
      model->set_version(entry.version);
      model->set_state(std::string(core::VersionStateName(entry.state)));
      model->set_reason(entry.reason);
    }
  }
  return FinishUnary(context, index.status());
}

namespace {

template <typename Request>
std::vector<std::string> ParameterNames(const Request& request) {
  std::vector<std::string> names;
  for (const auto& [name, value] : request.parameters()) names.push_back(name);
  return names;
}

}  // namespace

grpc::ServerUnaryReactor* KServeGrpcService::RepositoryModelLoad(
    grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  service_.LoadModel(request->model_name(), ParameterNames(*request),
                     [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); });
  return reactor;
}

grpc::ServerUnaryReactor* KServeGrpcService::RepositoryModelUnload(
    grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  service_.UnloadModel(request->model_name(), ParameterNames(*request),
                       [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); });
  return reactor;
}

}  // namespace modeld::transport::grpc_kserve
