// TensorFlow Serving's gRPC API (tensorflow.serving.PredictionService and ModelService) on
// gRPC's callback API, over the same InferenceService as KServe V2. Handlers run on gRPC's
// threads and only decode, call InferenceService, and encode; Predict finishes from the
// worker thread that ran the model.
//
// Each model has one signature (tfserving::ServedSignature). Predict takes inputs in
// tensor_content or typed fields, honours output_filter, version and a numeric
// version_label (modeld has no labels), and answers with typed fields as TensorFlow Serving
// does. GetModelMetadata answers the signature_def map (an Any of SignatureDefMap) made from
// the config, for every backend. GetModelStatus reports version states. Classify and Regress
// run tf.Examples through a model served with a classify or regress signature (examples.h),
// and answer UNIMPLEMENTED for any other model. Predict, Classify and Regress are inference
// calls: a request over --grpc-max-message-bytes, or one over --max-inflight-requests, is
// answered RESOURCE_EXHAUSTED naming the flag before its tensors are decoded.
#pragma once

#include <cstdint>

#include "service/admission.h"
#include "service/inference_service.h"
#include "tensorflow_serving/prediction_service.grpc.pb.h"

namespace modeld::transport::grpc_tfserving {

struct TfServingCallOptions {
  // Asked before a Predict, Classify or Regress request is decoded; null: every call is
  // admitted. Must outlive the service.
  service::Admission* admission = nullptr;
  // Largest request message (--grpc-max-message-bytes); 0: no limit.
  int64_t max_message_bytes = 0;
};

// Thread-safe. `service` must outlive this object and every RPC it has started.
class TfServingPredictionService : public tensorflow::serving::PredictionService::CallbackService {
 public:
  explicit TfServingPredictionService(service::InferenceService& service,
                                      TfServingCallOptions options = {})
      : service_(service), options_(options) {}

  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const tensorflow::serving::PredictRequest* request,
                                    tensorflow::serving::PredictResponse* response) override;
  grpc::ServerUnaryReactor* GetModelMetadata(
      grpc::CallbackServerContext* context,
      const tensorflow::serving::GetModelMetadataRequest* request,
      tensorflow::serving::GetModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* Classify(
      grpc::CallbackServerContext* context,
      const tensorflow::serving::ClassificationRequest* request,
      tensorflow::serving::ClassificationResponse* response) override;
  grpc::ServerUnaryReactor* Regress(grpc::CallbackServerContext* context,
                                    const tensorflow::serving::RegressionRequest* request,
                                    tensorflow::serving::RegressionResponse* response) override;

 private:
  service::InferenceService& service_;
  const TfServingCallOptions options_;
};

// Thread-safe. `service` must outlive this object.
class TfServingModelService : public tensorflow::serving::ModelService::CallbackService {
 public:
  explicit TfServingModelService(service::InferenceService& service) : service_(service) {}

  grpc::ServerUnaryReactor* GetModelStatus(
      grpc::CallbackServerContext* context,
      const tensorflow::serving::GetModelStatusRequest* request,
      tensorflow::serving::GetModelStatusResponse* response) override;

 private:
  service::InferenceService& service_;
};

}  // namespace modeld::transport::grpc_tfserving
