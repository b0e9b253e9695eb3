#include "transport/http/tfserving_rest.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "core/model_version.h"
#include "transport/http/rest_util.h"
#include "transport/http/tfserving_json_codec.h"

namespace modeld::transport::http {
namespace {

TfVersionStatus ToTf(const repository::VersionStatus& version) {
  TfVersionStatus tf;
  tf.version = version.version;
  switch (version.state) {
    case repository::VersionState::kLoading:
      tf.state = "LOADING";
      break;
    case repository::VersionState::kReady:
      tf.state = "AVAILABLE";
      break;
    case repository::VersionState::kUnavailable:
      // TF Serving reports a version that failed to load as END with the load error.
      tf.state = "END";
      tf.error_code = "UNKNOWN";
      tf.error_message = version.reason;
      break;
  }
  return tf;
}

}  // namespace

void TfServingRest::Status(absl::string_view model, absl::string_view version, Reply reply) {
  absl::StatusOr<std::string> body = [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(std::optional<int64_t> wanted, core::ParseModelVersion(version));
    ASSIGN_OR_RETURN(repository::ModelStatus status, service_.Status(model));
    std::vector<TfVersionStatus> versions;
    for (const repository::VersionStatus& v : status.versions) {
      if (!wanted.has_value() || v.version == *wanted) versions.push_back(ToTf(v));
    }
    if (wanted.has_value() && versions.empty()) {
      return absl::NotFoundError(
          absl::StrCat("Could not find version ", *wanted, " of model '", model, "'"));
    }
    if (versions.empty()) {
      return absl::UnavailableError(
          absl::StrCat("model '", model, "' has no versions: ", status.UnavailableReason()));
    }
    return EncodeModelStatus(versions);
  }();
  std::move(reply)(body.ok() ? JsonResponse(*std::move(body)) : StatusResponse(body.status()));
}

void TfServingRest::Metadata(absl::string_view model, absl::string_view version, Reply reply) {
  absl::StatusOr<std::string> body = [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(std::optional<int64_t> wanted, core::ParseModelVersion(version));
    ASSIGN_OR_RETURN(server::ModelMetadata metadata, service_.Metadata(model, wanted));
    // Without a version the newest ready one answers, as for inference.
    const int64_t served =
        wanted.value_or(metadata.versions.empty() ? 0 : metadata.versions.back());
    return EncodeModelMetadata(metadata, served);
  }();
  std::move(reply)(body.ok() ? JsonResponse(*std::move(body)) : StatusResponse(body.status()));
}

void TfServingRest::Predict(std::shared_ptr<const Request> request, absl::string_view model,
                            absl::string_view version, Reply reply) {
  std::shared_ptr<const core::ModelConfig> config;
  absl::StatusOr<TfPredictRequest> decoded = [&]() -> absl::StatusOr<TfPredictRequest> {
    ASSIGN_OR_RETURN(std::optional<int64_t> wanted, core::ParseModelVersion(version));
    // The config says how to read the JSON: input names, datatypes, batching.
    ASSIGN_OR_RETURN(config, service_.Config(model, wanted));
    ASSIGN_OR_RETURN(TfPredictRequest predict, DecodePredictRequest(request->body, *config));
    predict.request.model_name = std::string(model);
    predict.request.model_version = wanted;
    return predict;
  }();
  if (!decoded.ok()) {
    std::move(reply)(StatusResponse(decoded.status()));
    return;
  }
  service_.Infer(std::move(decoded->request),
                 [row_format = decoded->row_format, config = std::move(config),
                  reply = std::move(reply)](absl::StatusOr<core::InferResponse> result) mutable {
                   absl::StatusOr<std::string> body =
                       result.ok() ? EncodePredictResponse(*result, row_format, *config)
                                   : result.status();
                   std::move(reply)(body.ok() ? JsonResponse(*std::move(body))
                                              : StatusResponse(body.status()));
                 });
}

}  // namespace modeld::transport::http
