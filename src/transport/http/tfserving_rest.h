// TfServingRest: TensorFlow Serving's REST API (/v1/models/...) over InferenceService, for
// clients written against TF Serving. The Router calls it with the parts of the path; every
// method answers through `reply` exactly once. Errors are {"error": "..."} with the status of
// their code (transport/status_codes.h), as TF Serving shapes them.
#pragma once

#include <memory>

#include "absl/strings/string_view.h"
#include "service/inference_service.h"
#include "transport/http/handler.h"
#include "transport/http/json_limits.h"

namespace modeld::transport::http {

// Thread-safe. `service` must outlive this object and every request it has started.
class TfServingRest {
 public:
  // Request bodies may nest JSON at most `max_json_depth` levels.
  explicit TfServingRest(service::InferenceService& service,
                         int max_json_depth = kDefaultMaxJsonDepth)
      : service_(service), max_json_depth_(max_json_depth) {}

  // `version` is the /versions/{v} path segment, empty when absent.
  // GET /v1/models/{m}[/versions/{v}]: every version's state (or that version's). NOT_FOUND
  // for an unknown model or version.
  void Status(absl::string_view model, absl::string_view version, Reply reply);
  // GET .../metadata: the serving_default signature of the newest ready version (or `version`).
  void Metadata(absl::string_view model, absl::string_view version, Reply reply);
  // POST ...:predict.
  void Predict(std::shared_ptr<const Request> request, absl::string_view model,
               absl::string_view version, Reply reply);

 private:
  service::InferenceService& service_;
  const int max_json_depth_;
};

}  // namespace modeld::transport::http
