// TrainRequest / TrainResponse: one online-learning step as every transport sees it after
// decoding (docs/online-learning.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"

namespace modeld::core {

struct TrainRequest {
  std::string model_name;
  std::optional<int64_t> model_version;  // nullopt: the newest ready version
  std::string id;                        // echoed in the response
  TensorMap inputs;                      // every config input, as for inference
  TensorMap targets;  // what the model should have answered, batch dimension first
};

struct TrainResponse {
  std::string model_name;
  int64_t model_version = 0;
  std::string id;
  int64_t step = 0;             // this step's number (steps restored from a checkpoint count)
  double loss = 0;              // the loss before this step's update
  int64_t checkpoint_step = 0;  // the newest durable checkpoint's step; 0: none yet
};

// Called exactly once per request, on the model's training thread or a transport thread.
using TrainCallback = absl::AnyInvocable<void(absl::StatusOr<TrainResponse>) &&>;

}  // namespace modeld::core
