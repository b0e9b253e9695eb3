// TrainingGrpcService: modeld's online-learning extension (proto/modeld/training.proto) on the
// gRPC port, beside the KServe service. Train decodes, calls InferenceService::Train and
// finishes from the model's training thread.
#pragma once

#include "modeld/training.grpc.pb.h"
#include "service/inference_service.h"

namespace modeld::transport::grpc_kserve {

// Thread-safe. `service` must outlive this object and every RPC it has started.
class TrainingGrpcService : public modeld::training::Training::CallbackService {
 public:
  explicit TrainingGrpcService(service::InferenceService& service) : service_(service) {}

  grpc::ServerUnaryReactor* Train(grpc::CallbackServerContext* context,
                                  const modeld::training::TrainRequest* request,
                                  modeld::training::TrainResponse* response) override;

 private:
  service::InferenceService& service_;
};

}  // namespace modeld::transport::grpc_kserve
