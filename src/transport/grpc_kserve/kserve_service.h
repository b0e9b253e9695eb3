// KServeGrpcService: the Open Inference Protocol (KServe V2) gRPC service, on gRPC's callback
// API. Handlers run on gRPC's threads and only decode, call InferenceService, and encode;
// ModelInfer finishes from the worker thread that ran the model.
#pragma once

#include "kserve/grpc_service.grpc.pb.h"
#include "server/inference_service.h"

namespace modeld::transport::grpc_kserve {

// The extensions listed by ServerMetadata.
inline constexpr const char* kExtensions[] = {"model_configuration"};

// Thread-safe. `service` must outlive this object and every RPC it has started.
class KServeGrpcService : public inference::GRPCInferenceService::CallbackService {
 public:
  explicit KServeGrpcService(server::InferenceService& service) : service_(service) {}

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
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;

 private:
  server::InferenceService& service_;
};

}  // namespace modeld::transport::grpc_kserve
