#include "backend/model_inputs.h"

#include "absl/strings/str_cat.h"

namespace modeld::backend {

absl::StatusOr<OrderedInputs> OrderInputs(const core::ModelConfig& config,
                                          const core::TensorMap& inputs) {
  OrderedInputs ordered;
  ordered.tensors.reserve(config.inputs.size());
  for (const core::TensorSpec& spec : config.inputs) {
    auto it = inputs.find(spec.name);
    if (it == inputs.end()) {
      return absl::InternalError(absl::StrCat("input '", spec.name, "' is missing"));
    }
    if (config.max_batch_size > 0 && !ordered.batch.has_value() && !it->second.shape().empty()) {
      ordered.batch = it->second.shape()[0];
    }
    ordered.tensors.push_back(&it->second);
  }
  return ordered;
}

}  // namespace modeld::backend
