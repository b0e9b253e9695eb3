// Fuzzes TensorFlow Serving gRPC Classify/Regress decoding: bytes ->
// tensorflow.serving.ClassificationRequest (RegressionRequest has the same Input) -> the
// serialized tf.Examples batch (transport/grpc_tfserving/examples.h) for a classify model,
// then validation and batching.
#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "core/model_config.h"
#include "tensorflow_serving/classification.pb.h"
#include "tests/fuzz/fuzz_support.h"
#include "transport/grpc_tfserving/examples.h"

namespace {

const modeld::core::ModelConfig& ClassifyConfig() {
  static const modeld::core::ModelConfig* config = [] {
    absl::StatusOr<modeld::core::ModelConfig> parsed = modeld::core::ParseModelConfig(
        R"config(
          platform: "tensorflow_savedmodel" max_batch_size: 64
          input [ { name: "inputs" data_type: TYPE_STRING dims: [ 1 ] reshape: { shape: [ ] } } ]
          output [ { name: "scores" data_type: TYPE_FP32 dims: [ 3 ] } ]
          parameters { key: "signature_method_name"
                       value { string_value: "tensorflow/serving/classify" } })config",
        "classify", "classify");
    modeld::fuzz::Require(parsed.ok(), "the classify config parses");
    return new modeld::core::ModelConfig(*std::move(parsed));
  }();
  return *config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tensorflow::serving::ClassificationRequest message;
  if (!message.ParseFromArray(data, static_cast<int>(size))) return 0;
  const modeld::core::ModelConfig& config = ClassifyConfig();
  absl::StatusOr<modeld::core::InferRequest> request =
      modeld::transport::grpc_tfserving::ExamplesRequest(message.input(), config);
  if (request.ok()) modeld::fuzz::ValidateAndBatch(config, *request);
  return 0;
}
