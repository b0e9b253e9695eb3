#include "transport/tfserving/tfserving_model.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace modeld::transport::tfserving {

std::string ServedSignature(const core::ModelConfig& config) {
  return config.Parameter("signature_name").value_or(kDefaultSignature);
}

absl::Status CheckSignature(absl::string_view requested, const core::ModelConfig& config) {
  const std::string served = ServedSignature(config);
  if (requested.empty() || requested == served) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("signature_name '", requested,
                                                 "' not found; model '", config.name,
                                                 "' has only '", served, "'"));
}

void TakeScalarItems(const core::ModelConfig& config, core::TensorMap& inputs) {
  if (config.max_batch_size == 0) return;
  for (const core::TensorSpec& spec : config.inputs) {
    auto it = inputs.find(spec.name);
    if (spec.IsScalarItem() && it != inputs.end() && it->second.shape().size() == 1) {
      it->second = it->second.WithShape({it->second.shape()[0], 1});
    }
  }
}

core::Shape ShownOutputShape(const core::ModelConfig& config, absl::string_view name,
                             core::Shape shape) {
  const core::TensorSpec* spec = config.FindOutput(name);
  if (config.max_batch_size > 0 && spec != nullptr && spec->IsScalarItem() && shape.size() == 2 &&
      shape[1] == 1) {
    shape.pop_back();
  }
  return shape;
}

core::Shape ShownSignatureShape(const service::TensorMetadata& tensor) {
  core::Shape shape = tensor.shape;
  if (tensor.scalar_item && !shape.empty()) shape.pop_back();
  return shape;
}

absl::string_view VersionStateName(VersionState state) {
  switch (state) {
    case VersionState::kLoading:
      return "LOADING";
    case VersionState::kAvailable:
      return "AVAILABLE";
    case VersionState::kEnd:
      return "END";
  }
  return "UNKNOWN";
}

absl::StatusOr<std::vector<VersionStatus>> VersionStatuses(const core::ModelStatus& status,
                                                           std::optional<int64_t> wanted) {
  std::vector<VersionStatus> versions;
  for (const core::VersionStatus& v : status.versions) {
    if (wanted.has_value() && v.version != *wanted) continue;
    VersionStatus tf{v.version, VersionState::kLoading, absl::OkStatus()};
    switch (v.state) {
      case core::VersionState::kLoading:
        break;
      case core::VersionState::kReady:
        tf.state = VersionState::kAvailable;
        break;
      case core::VersionState::kUnavailable:
        // TensorFlow Serving reports a version that failed to load as END with the load error.
        tf.state = VersionState::kEnd;
        tf.status = absl::UnknownError(v.reason);
        break;
    }
    versions.push_back(std::move(tf));
  }
  if (wanted.has_value() && versions.empty()) {
    return absl::NotFoundError(
        absl::StrCat("Could not find version ", *wanted, " of model '", status.name, "'"));
  }
  if (versions.empty()) {
    return absl::UnavailableError(
        absl::StrCat("model '", status.name, "' has no versions: ", status.UnavailableReason()));
  }
  return versions;
}

}  // namespace modeld::transport::tfserving
