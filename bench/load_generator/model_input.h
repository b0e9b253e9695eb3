// The request a benchmark sends over and over, built from the model's own description.
//
// Like perf_analyzer: ModelMetadata gives the inputs (name, datatype, shape) and ModelConfig
// gives max_batch_size; when it is positive the first metadata dimension is the batch and
// becomes `batch`. Any other -1 dimension must be given with --shape. Values are random
// (seeded): floats in [-1, 1), integers in [0, 100), BOOL 0/1, BYTES 16 random letters.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kserve/grpc_service.grpc.pb.h"

namespace modeld::bench {

struct InputOptions {
  std::string model;
  std::string version;  // empty: the server's newest
  int64_t batch = 1;
  // Dims (without the batch dimension) for inputs whose metadata has -1 dims.
  std::map<std::string, std::vector<int64_t>> shapes;
  uint64_t seed = 1;
};

struct PreparedRequest {
  inference::ModelInferRequest request;  // inputs in raw_input_contents
  int64_t batch = 1;                     // items per request (1 when the model has no batch)
  int64_t payload_bytes = 0;             // raw input bytes per request
  std::string description;               // "x FP32 [1, 256]" for the report
};

// Asks the server (ModelMetadata, ModelConfig) and builds the request. Errors: the RPC's
// status, or INVALID_ARGUMENT for a missing --shape or a --batch the model cannot take.
absl::StatusOr<PreparedRequest> PrepareRequest(inference::GRPCInferenceService::Stub& stub,
                                               const InputOptions& options);

// "x:1,28,28;y:4" -> {x: [1, 28, 28], y: [4]}.
absl::StatusOr<std::map<std::string, std::vector<int64_t>>> ParseShapes(const std::string& text);

}  // namespace modeld::bench
