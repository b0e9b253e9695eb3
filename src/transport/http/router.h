// Router: the Handler the HTTP server calls. Maps method + path to the KServe V2 REST API
// (/v2/...), TensorFlow Serving's REST API (/v1/models/...) and GET /metrics.
//
//   GET  /v2                                     server metadata
//   GET  /v2/health/live | /v2/health/ready      health (status code is the answer)
//   GET  /v2/models/{m}[/versions/{v}]           model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready     model health
//   GET  /v2/models/{m}[/versions/{v}]/config    Triton's model configuration
//   POST /v2/models/{m}[/versions/{v}]/infer     inference
//   POST /v2/models/{m}[/versions/{v}]/train     one online-learning step (modeld's own)
//   GET  /v1/models/{m}[/versions/{v}]           TF Serving model status
//   GET  /v1/models/{m}[/versions/{v}]/metadata  TF Serving metadata
//   POST /v1/models/{m}[/versions/{v}]:predict   TF Serving predict (:classify, :regress: 501)
//   GET  /metrics                                Prometheus text
//
// With a TokenStore, every request needs "Authorization: Bearer <token>" — checked here,
// once, before any route is picked, so a route added later is protected too; only the
// health routes (GET /v2/health/live, /v2/health/ready, .../ready) and /metrics may stay
// open (health_open). A request without a valid token gets 401 {"error": ...} with
// WWW-Authenticate: Bearer.
//
// Any other path answers 404 {"error":"Not Found"}; a known path with the wrong method 405
// (with Allow), except under /v1, where TF Serving answers every unknown path or method 400
// "Malformed request: <METHOD> <path>". Path segments are percent-decoded (model names may
// hold any character); the query string is ignored.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "service/inference_service.h"
#include "transport/auth/token_store.h"
#include "transport/http/handler.h"
#include "transport/http/kserve_rest.h"
#include "transport/http/tfserving_rest.h"

namespace modeld::transport::http {

struct RouterOptions {
  const auth::TokenStore* tokens = nullptr;   // null: no token needed; else must outlive the router
  bool health_open = true;                    // health routes and /metrics need no token
  int max_json_depth = kDefaultMaxJsonDepth;  // for every JSON request body
};

// Whether `path` is a health route or /metrics (what RouterOptions::health_open leaves open).
bool IsHealthPath(absl::string_view path);

// Whether `method` `path` is an inference call, which --max-inflight-requests admits: POST of
// KServe's /v2/models/<m>[/versions/<v>]/infer, or of TensorFlow Serving's
// /v1/models/<m>[/versions/<v>|/labels/<l>]:predict, :classify or :regress.
bool IsInferenceCall(absl::string_view method, absl::string_view path);

// Thread-safe. `service` must outlive the router and every request it has started.
class Router : public Handler {
 public:
  // `metrics_text` returns the Prometheus exposition served on GET /metrics; it is called on an
  // I/O thread and must be thread-safe.
  Router(service::InferenceService& service, std::function<std::string()> metrics_text,
         RouterOptions options = {});

  void Handle(std::shared_ptr<const Request> request, Reply reply) override;

 private:
  void RouteKServe(std::shared_ptr<const Request> request, Reply reply);
  void RouteRepository(std::shared_ptr<const Request> request,
                       const std::vector<absl::string_view>& segments, Reply reply);
  void RouteTfServing(std::shared_ptr<const Request> request, Reply reply);

  // The bearer-token check (RouterOptions); a response when the request is refused.
  std::optional<Response> Authenticate(const Request& request) const;

  const RouterOptions options_;
  KServeRest kserve_;
  TfServingRest tfserving_;
  const std::function<std::string()> metrics_text_;
};

}  // namespace modeld::transport::http
