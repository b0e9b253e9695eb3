#include "core/infer_response.h"

#include "absl/strings/str_cat.h"

namespace modeld::core {

absl::StatusOr<InferResponse> BuildResponse(const ModelConfig& config, int64_t version,
                                            const InferRequest& request, TensorMap outputs) {
  InferResponse response;
  response.model_name = config.name;
  response.model_version = version;
  response.id = request.id;
  auto add = [&](const std::string& name) -> absl::Status {
    auto it = outputs.find(name);
    if (it == outputs.end()) {
      return absl::InternalError(
          absl::StrCat("model '", config.name, "' did not produce output '", name, "'"));
    }
    response.outputs.push_back({name, std::move(it->second)});
    return absl::OkStatus();
  };
  if (request.requested_outputs.empty()) {
    for (const TensorSpec& spec : config.outputs) {
      if (absl::Status status = add(spec.name); !status.ok()) return status;
    }
  } else {
    for (const std::string& name : request.requested_outputs) {
      if (absl::Status status = add(name); !status.ok()) return status;
    }
  }
  return response;
}

}  // namespace modeld::core
