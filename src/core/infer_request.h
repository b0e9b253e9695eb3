// InferRequest / InferResponse: one inference call as every transport sees it after decoding.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/tensor.h"

namespace modeld::core {

struct InferRequest {
  std::string model_name;
  std::optional<int64_t> model_version;  // nullopt: the newest ready version
  std::string id;                        // echoed in the response
  TensorMap inputs;
  // Outputs to return, in the order wanted; empty means every output in config order.
  std::vector<std::string> requested_outputs;
  // Queue priority level (1 is the highest); 0 means the model's default level.
  uint64_t priority = 0;
  // Queue timeout asked by the client (the `timeout` parameter); honoured where the model's
  // queue policy allows overrides.
  std::optional<absl::Duration> timeout;
  // When the caller stops waiting (a gRPC deadline, say): a request still queued then is
  // answered DEADLINE_EXCEEDED without running.
  absl::Time deadline = absl::InfiniteFuture();
};

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

struct InferResponse {
  std::string model_name;
  int64_t model_version = 0;
  std::string id;
  std::vector<NamedTensor> outputs;
};

// Called exactly once per request, on a worker or transport thread; must not block for long.
using InferCallback = absl::AnyInvocable<void(absl::StatusOr<InferResponse>) &&>;

}  // namespace modeld::core
