// What TensorFlow Serving's APIs (REST in transport/http, gRPC in transport/grpc_tfserving)
// share about a model: the signature it is served with, the shapes TensorFlow Serving shows,
// and its version states.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model_config.h"
#include "core/model_status.h"
#include "core/tensor.h"
#include "service/inference_service.h"

namespace modeld::transport::tfserving {

inline constexpr char kDefaultSignature[] = "serving_default";
inline constexpr char kPredictMethod[] = "tensorflow/serving/predict";

// The one signature a model is served with: its config's `signature_name` parameter (a
// TensorFlow model), else serving_default. TorchScript models get serving_default, made from
// their config.
std::string ServedSignature(const core::ModelConfig& config);

// OK when `requested` is empty or the served signature; else INVALID_ARGUMENT naming both.
absl::Status CheckSignature(absl::string_view requested, const core::ModelConfig& config);

// A batched tensor whose items have no dims (core::TensorSpec::IsScalarItem: a TensorFlow
// signature's [-1]) is [batch, 1] inside modeld and [batch] on TensorFlow Serving's APIs, as
// TensorFlow Serving shows, takes and answers it. These convert between the two.
//
// Each rank-1 input of such a spec becomes [batch, 1]; other inputs are left as they are.
void TakeScalarItems(const core::ModelConfig& config, core::TensorMap& inputs);
// The shape TensorFlow Serving shows for output `name` of shape `shape`.
core::Shape ShownOutputShape(const core::ModelConfig& config, absl::string_view name,
                             core::Shape shape);
// The shape TensorFlow Serving shows in a signature for `tensor` (its API shape, -1 for any).
core::Shape ShownSignatureShape(const service::TensorMetadata& tensor);

// A version's state as TensorFlow Serving reports it (ModelVersionStatus.State numbers).
enum class VersionState { kLoading = 20, kAvailable = 30, kEnd = 50 };
absl::string_view VersionStateName(VersionState state);

struct VersionStatus {
  int64_t version = 0;
  VersionState state = VersionState::kLoading;
  // OK, or UNKNOWN with the load error for a version that failed. Transports encode it through
  // transport/status_codes.h.
  absl::Status status;
};

// The versions of `status` (all, or only `wanted`) as TensorFlow Serving reports them: a
// version that failed to load is END with its reason. NOT_FOUND when `wanted` is not among
// them; UNAVAILABLE when the model has no versions at all (its config failed).
absl::StatusOr<std::vector<VersionStatus>> VersionStatuses(const core::ModelStatus& status,
                                                           std::optional<int64_t> wanted);

}  // namespace modeld::transport::tfserving
