// KServeRest: the Open Inference Protocol (KServe V2) REST API over InferenceService, with
// Triton's binary tensor data and model configuration extensions. The Router calls it with
// the parts of the path; every method answers through `reply` exactly once (inference from
// the model worker thread that ran it).
//
// Health answers by status code, as Triton's clients read it (they test `== 200`): 200 with
// {"live"|"ready": true}, or 503 with {"ready": false} for a server that is draining or a
// model (version) that is unknown or not loaded. 503 rather than Triton's 400 because "not
// ready" is UNAVAILABLE in design.md §5, KServe's own server answers 503, and load balancers
// read it as "try elsewhere".
#pragma once

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "service/inference_service.h"
#include "transport/http/handler.h"
#include "transport/http/json_limits.h"

namespace modeld::transport::http {

// The extensions listed by GET /v2.
inline constexpr const char* kKServeExtensions[] = {"binary_tensor_data", "model_configuration"};

// Thread-safe. `service` must outlive this object and every request it has started.
class KServeRest {
 public:
  // Request bodies may nest JSON at most `max_json_depth` levels.
  explicit KServeRest(service::InferenceService& service, int max_json_depth = kDefaultMaxJsonDepth)
      : service_(service), max_json_depth_(max_json_depth) {}

  // `version` is the /versions/{v} path segment, empty when absent.
  void ServerLive(Reply reply);
  void ServerReady(Reply reply);
  void ServerMetadata(Reply reply);
  void ModelReady(absl::string_view model, absl::string_view version, Reply reply);
  void ModelMetadata(absl::string_view model, absl::string_view version, Reply reply);
  // Triton's GET .../config: the config.pbtxt as protobuf JSON with snake_case names and
  // 64-bit integers as numbers (as Triton prints them).
  void ModelConfig(absl::string_view model, absl::string_view version, Reply reply);
  // POST /v2/repository/index ({"ready": bool} optional) -> [{"name", "version", "state",
  // "reason"}]; POST /v2/repository/models/{m}/load and /unload -> {} once done. 503 unless
  // --model-control-mode=explicit; a load or unload body may carry no "parameters" but
  // unload_dependents, which Triton's clients send (400 naming any other).
  void RepositoryIndex(std::shared_ptr<const Request> request, Reply reply);
  void RepositoryLoad(std::shared_ptr<const Request> request, std::string model, bool load,
                      Reply reply);
  void Infer(std::shared_ptr<const Request> request, absl::string_view model,
             absl::string_view version, Reply reply);
  // modeld's online-learning extension: POST .../train with {"inputs", "targets"} answers
  // {"model_name", "model_version", "step", "loss", "checkpoint_step"} once the step has run.
  void Train(std::shared_ptr<const Request> request, absl::string_view model,
             absl::string_view version, Reply reply);

 private:
  service::InferenceService& service_;
  const int max_json_depth_;
};

// The protobuf JSON of `config` as GET .../config answers it. Exposed for tests.
std::string ModelConfigJson(const inference::ModelConfig& config);

}  // namespace modeld::transport::http
