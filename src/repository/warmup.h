// Warm-up: the requests a config's model_warmup describes, run on a version before it takes
// traffic (Triton's model_warmup). A version is not ready until its warm-up has run, and a
// warm-up that fails fails the load.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "batching/scheduler.h"
#include "core/infer_request.h"
#include "core/model_config.h"

namespace modeld::repository {

struct WarmupRequest {
  std::string name;  // the model_warmup entry's
  core::InferRequest request;
  int count = 1;  // times it runs
};

// One request per model_warmup entry of `config` (validated by ModelConfigFromProto): inputs
// of shape [batch_size] + dims (dims alone when the model does not batch) holding zeros
// (empty strings for BYTES), random values (floats in [0, 1), integers 0..9, random short
// strings), or the raw bytes of <model_dir>/warmup/<input_data_file>. INVALID_ARGUMENT when
// such a file is missing or holds the wrong number of bytes.
absl::StatusOr<std::vector<WarmupRequest>> WarmupRequests(const core::ModelConfig& config,
                                                          const std::filesystem::path& model_dir);

// Runs each request `count` times through `scheduler`, one at a time, and waits for each.
// The first failure comes back naming the warm-up: INTERNAL "warm-up 'zeros' failed: ...".
absl::Status RunWarmup(batching::Scheduler& scheduler, const std::vector<WarmupRequest>& requests);

}  // namespace modeld::repository
