// Fuzzes TensorFlow Serving REST :predict bodies (transport/http/tfserving_json_codec.h),
// decoded against each fixed config (the codec reads the JSON by the model's inputs), then
// validation and batching.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "tests/fuzz/fuzz_support.h"
#include "transport/http/tfserving_json_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A copy of its own, so ASan sees a read past the body's end.
  const std::string body(reinterpret_cast<const char*>(data), size);
  for (const modeld::core::ModelConfig& config : modeld::fuzz::Configs()) {
    absl::StatusOr<modeld::transport::http::TfPredictRequest> decoded =
        modeld::transport::http::DecodePredictRequest(body, config);
    if (decoded.ok()) modeld::fuzz::ValidateAndBatch(config, decoded->request);
  }
  return 0;
}
