// Fuzzes KServe V2 gRPC decoding: bytes -> inference.ModelInferRequest (as gRPC parses it)
// -> core::InferRequest (transport/kserve/codec.h), then validation and batching.
#include <cstddef>
#include <cstdint>

#include "kserve/grpc_service.pb.h"
#include "tests/fuzz/fuzz_support.h"
#include "transport/kserve/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  inference::ModelInferRequest message;
  if (!message.ParseFromArray(data, static_cast<int>(size))) return 0;
  absl::StatusOr<modeld::core::InferRequest> request =
      modeld::transport::kserve::DecodeInferRequest(message);
  if (request.ok()) modeld::fuzz::ValidateAndBatch(*request);
  return 0;
}
