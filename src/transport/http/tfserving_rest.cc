#include "transport/http/tfserving_rest.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "core/model_version.h"
#include "transport/http/rest_util.h"
#include "transport/http/tfserving_json_codec.h"

namespace modeld::transport::http {

void TfServingRest::Status(absl::string_view model, absl::string_view version, Reply reply) {
  absl::StatusOr<std::string> body = [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(std::optional<int64_t> wanted, core::ParseModelVersion(version));
    ASSIGN_OR_RETURN(core::ModelStatus status, service_.Status(model));
    ASSIGN_OR_RETURN(std::vector<tfserving::VersionStatus> versions,
                     tfserving::VersionStatuses(status, wanted));
    return EncodeModelStatus(versions);
  }();
  std::move(reply)(body.ok() ? JsonResponse(*std::move(body)) : StatusResponse(body.status()));
}

void TfServingRest::Metadata(absl::string_view model, absl::string_view version, Reply reply) {
  absl::StatusOr<std::string> body = [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(std::optional<int64_t> wanted, core::ParseModelVersion(version));
    ASSIGN_OR_RETURN(service::ModelMetadata metadata, service_.Metadata(model, wanted));
    ASSIGN_OR_RETURN(auto config, service_.Config(model, wanted));
    // Without a version the newest ready one answers, as for inference.
    const int64_t served =
        wanted.value_or(metadata.versions.empty() ? 0 : metadata.versions.back());
    return EncodeModelMetadata(metadata, served, tfserving::ServedSignature(*config));
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
    ASSIGN_OR_RETURN(TfPredictRequest predict,
                     DecodePredictRequest(request->body, *config, max_json_depth_));
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
