// KServeGrpcService: the Open Inference Protocol (KServe V2) gRPC service, on gRPC's callback
// API. Handlers run on gRPC's threads and only decode, call InferenceService, and encode.
// ModelInfer is served by InferCalls on the generic API (see infer_calls.h), which a server
// registers with RegisterCallbackGenericService(&service.infer_calls()); it finishes from the
// worker thread that ran the model.
#pragma once

#include "kserve/grpc_service.grpc.pb.h"
#include "service/inference_service.h"
#include "transport/grpc_kserve/infer_calls.h"

namespace modeld::transport::grpc_kserve {

// The extensions listed by ServerMetadata.
inline constexpr const char* kExtensions[] = {"model_configuration", "model_repository"};

// Thread-safe. `service` must outlive this object and every RPC it has started.
class KServeGrpcService : public inference::GRPCInferenceService::WithGenericMethod_ModelInfer<
                              inference::GRPCInferenceService::CallbackService> {
 public:
  explicit KServeGrpcService(service::InferenceService& service,
                             InferCallOptions infer_options = {})
      : service_(service), infer_calls_(service, infer_options) {}

  // ModelInfer, for ServerBuilder::RegisterCallbackGenericService.
  InferCalls& infer_calls() { return infer_calls_; }

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  // The repository extension: UNAVAILABLE unless --model-control-mode=explicit. Load and
  // unload take no parameters but unload_dependents (INVALID_ARGUMENT naming any other) and
  // finish once the change is done (a load that fails answers UNAVAILABLE with the reason).
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const inference::RepositoryIndexRequest* request,
                                            inference::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
      inference::RepositoryModelLoadResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
      inference::RepositoryModelUnloadResponse* response) override;

 private:
  service::InferenceService& service_;
  InferCalls infer_calls_;
};

}  // namespace modeld::transport::grpc_kserve
