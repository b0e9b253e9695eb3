// Fuzzes TensorFlow Serving gRPC Predict decoding: bytes -> tensorflow.serving.PredictRequest
// -> one core::Tensor per input (transport/grpc_tfserving/tensor_proto_codec.h), shaped for
// each config as TfServingPredictionService::Predict does (tfserving::TakeScalarItems), then
// validation and batching.
#include <cstddef>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "tensorflow_serving/predict.pb.h"
#include "tests/fuzz/fuzz_support.h"
#include "transport/grpc_tfserving/tensor_proto_codec.h"
#include "transport/tfserving/tfserving_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tensorflow::serving::PredictRequest message;
  if (!message.ParseFromArray(data, static_cast<int>(size))) return 0;
  modeld::core::InferRequest request;
  // Predict's budget is kMaxFilledBytes; 1 MiB here takes the same paths, and inputs that
  // fill the whole budget stay cheap enough to fuzz thousands of times a second.
  int64_t fill_budget = int64_t{1} << 20;
  for (const auto& [name, proto] : message.inputs()) {
    absl::StatusOr<modeld::core::Tensor> tensor =
        modeld::transport::grpc_tfserving::DecodeTensorProto(
            proto, absl::StrCat("input '", name, "'"), fill_budget);
    if (!tensor.ok()) return 0;
    request.inputs[name] = *std::move(tensor);
  }
  // DecodeTensorProto's contract: a tensor it returns holds what its shape says.
  modeld::fuzz::RequireExactBytes(request.inputs, "DecodeTensorProto");
  request.requested_outputs.assign(message.output_filter().begin(), message.output_filter().end());
  for (const modeld::core::ModelConfig& config : modeld::fuzz::Configs()) {
    modeld::core::InferRequest shaped = request;
    modeld::transport::tfserving::TakeScalarItems(config, shaped.inputs);
    modeld::fuzz::ValidateAndBatch(config, shaped);
  }
  return 0;
}
