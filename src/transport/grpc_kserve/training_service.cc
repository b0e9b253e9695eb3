#include "transport/grpc_kserve/training_service.h"

#include "transport/kserve/codec.h"
#include "transport/status_codes.h"

namespace modeld::transport::grpc_kserve {

grpc::ServerUnaryReactor* TrainingGrpcService::Train(grpc::CallbackServerContext* context,
                                                     const modeld::training::TrainRequest* request,
                                                     modeld::training::TrainResponse* response) {
  absl::StatusOr<core::TrainRequest> decoded = kserve::DecodeTrainRequest(*request);
  if (!decoded.ok()) return FinishUnary(context, decoded.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // `request` and `response` stay valid until Finish(), so the decoded tensors may view the
  // request's bytes. A step is not cancelled with its call: once queued, it runs, so a client
  // that gave up can still see its effect in the next step's number.
  service_.Train(*std::move(decoded),
                 [reactor, response](absl::StatusOr<core::TrainResponse> result) {
                   if (result.ok()) kserve::EncodeTrainResponse(*result, response);
                   reactor->Finish(ToGrpcStatus(result.status()));
                 });
  return reactor;
}

}  // namespace modeld::transport::grpc_kserve
