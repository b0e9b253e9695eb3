#include "app/server.h"

#include <cstdlib>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "app/idle_trimmer.h"
#include "app/transport_options.h"
#include "backend/fake/fake_backend.h"
#include "backend/onnx/onnx_backend.h"
#include "backend/registry.h"
#include "backend/torch/aoti_backend.h"
#include "backend/torch/torch_backend.h"
#ifdef MODELD_WITH_TENSORFLOW
#include "backend/tensorflow/tensorflow_backend.h"
#endif
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/thread_priority.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/resource_quota.h"
#include "metrics/process_metrics.h"
#include "metrics/registry.h"
#include "repository/model_manager.h"
#include "repository/scan.h"
#include "service/inference_service.h"
#include "service/model_control.h"
#include "service/security_warnings.h"
#include "transport/auth/grpc_credentials.h"
#include "transport/auth/tls_files.h"
#include "transport/auth/token_store.h"
#include "transport/grpc_kserve/kserve_service.h"
#include "transport/grpc_kserve/training_service.h"
#include "transport/grpc_tfserving/tfserving_service.h"
#include "transport/http/http_server.h"
#include "transport/http/router.h"
#include "transport/grpc_limits.h"
#include "transport/grpc_listener.h"
#include "transport/amqp/amqp_transport.h"
#include "transport/celery/celery_transport.h"
#include "transport/redis/redis_transport.h"

namespace modeld::app {
namespace {

using service::InferenceService;
using service::ModelControl;
using service::ServerOptions;

std::unique_ptr<backend::BackendRegistry> MakeBackends(const ServerOptions& options) {
  auto backends = std::make_unique<backend::BackendRegistry>();
  backends->Register("pytorch", {"pytorch_libtorch"}, std::make_unique<backend::TorchBackend>());
  backends->Register(backend::kTorchAotiPlatform, {backend::kTorchAotiPlatform},
                     std::make_unique<backend::TorchAotiBackend>());
  backends->Register(backend::kOnnxBackendName, {backend::kOnnxPlatform},
                     std::make_unique<backend::OnnxBackend>(options.onnxruntime_library));
#ifdef MODELD_WITH_TENSORFLOW
  backends->Register("tensorflow", {"tensorflow_savedmodel"},
                     std::make_unique<backend::TensorFlowBackend>(options.tensorflow_library));
#endif
  backends->Register("fake", {}, std::make_unique<backend::FakeBackend>());
  return backends;
}

// "host:port" -> "host" (keeps IPv6 brackets).
std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

// modeld_model_state: one line per model version with the state it is in.
void AppendModelStates(const std::vector<core::ModelStatus>& models, std::string& out) {
  out +=
      "# HELP modeld_model_state 1 for the state (ready, loading, unloaded, failed) of each model "
      "version; unloaded: loads on its first request (--model-memory-budget); version \"\" is a "
      "model that failed before any version was read.\n"
      "# TYPE modeld_model_state gauge\n";
  for (const core::ModelStatus& model : models) {
    auto line = [&](const std::string& version, absl::string_view state) {
      absl::StrAppend(
          &out, "modeld_model_state",
          metrics::RenderLabels(
              {{"model", model.name}, {"version", version}, {"state", std::string(state)}}),
          " 1\n");
    };
    if (model.versions.empty()) line("", "failed");
    for (const core::VersionStatus& version : model.versions) {
      line(std::to_string(version.version), version.state == core::VersionState::kReady ? "ready"
                                            : version.state == core::VersionState::kLoading
                                                ? "loading"
                                            : model.loads_on_demand ? "unloaded"
                                                                    : "failed");
    }
  }
  out +=
      "# HELP modeld_model_reload_failed 1 for each model version whose last reload failed "
      "while the copy loaded before keeps serving it.\n"
      "# TYPE modeld_model_reload_failed gauge\n";
  for (const core::ModelStatus& model : models) {
    for (const core::VersionStatus& version : model.versions) {
      if (version.reload_error.empty()) continue;
      absl::StrAppend(&out, "modeld_model_reload_failed",
                      metrics::RenderLabels(
                          {{"model", model.name}, {"version", std::to_string(version.version)}}),
                      " 1\n");
    }
  }
}

transport::grpc_tfserving::TfServingCallOptions TfServingCalls(const ServerOptions& options,
                                                              service::Admission& admission) {
  return {.admission = &admission, .max_message_bytes = options.grpc_max_message_bytes};
}

bool AutomaticAdmission(const ServerOptions& options) {
  return options.max_inflight_requests == service::kAutoInflightLimit;
}

class ModeldServer : public Server {
 public:
  explicit ModeldServer(const ServerOptions& options)
      : options_(options),
        backends_(MakeBackends(options)),
        models_(options.model_repository, *backends_, batching::MakeSchedulerFactory(clock_),
                &metrics_),
        service_(models_, clock_, &metrics_),
        admission_(AutomaticAdmission(options) ? service::kMinAutoLimit
                                               : options.max_inflight_requests,
                   &metrics_, AutomaticAdmission(options)),
        kserve_(service_, {.receive_timeout = absl::Seconds(options.grpc_receive_timeout_seconds),
                           .admission = &admission_,
                           .max_message_bytes = options.grpc_max_message_bytes}),
        training_(service_),
        tfserving_predict_(service_, TfServingCalls(options, admission_)),
        tfserving_models_(service_),
        tfserving_predict_only_(service_, TfServingCalls(options, admission_)),
        tfserving_models_only_(service_) {
    control_ = std::make_unique<ModelControl>(
        models_, service::ControlModeFromFlag(options.model_control_mode),
        absl::Seconds(options.repository_poll_secs));
    service_.SetModelControl(control_.get());
    models_.SetCheckpointRoot(options.checkpoint_dir);
    if (options.model_memory_budget_bytes > 0) {
      repository::MemoryBudgetOptions budget;
      budget.budget_bytes = options.model_memory_budget_bytes;
      budget.preload = options.model_preload;
      budget.load_timeout = absl::Seconds(options.model_load_timeout_s);
      budget.min_residency = absl::Seconds(options.model_min_residency_s);
      models_.SetMemoryBudget(std::move(budget));
    }
    service_.SetWatchdog(absl::Seconds(options.watchdog_seconds));
    service_.SetMaxRequestElements(options.max_request_elements);
    common::SetModelThreadNice(static_cast<int>(options.model_thread_nice));
    if (AutomaticAdmission(options)) {
      models_.SetOnServedChange([this] {
        const int64_t limit = service::AutoLimit(models_.ServedConfigs());
        if (limit == admission_.limit()) return;
        admission_.SetLimit(limit);
        spdlog::info("at most {} inference requests in flight (--max-inflight-requests=auto)",
                     limit);
      });
    }
    metrics_.AddCollector(metrics::AppendProcessMetrics);
    metrics_.AddCollector(
        [this](std::string& out) { AppendModelStates(models_.StatusAll(), out); });
    metrics_.AddCollector([this](std::string& out) {
      absl::StrAppend(&out,
                      "# HELP modeld_admission_in_flight Inference calls (and Redis entries) holding "
                      "a slot under --max-inflight-requests now.\n"
                      "# TYPE modeld_admission_in_flight gauge\nmodeld_admission_in_flight ",
                      admission_.in_flight(),
                      "\n# HELP modeld_admission_limit --max-inflight-requests as in force now "
                      "(auto: from the served models); 0: no limit.\n"
                      "# TYPE modeld_admission_limit gauge\nmodeld_admission_limit ",
                      admission_.limit(), "\n");
      int64_t connections = 0;
      for (const auto& listener : grpc_listeners_) connections += listener->open_connections();
      absl::StrAppend(&out,
                      "# HELP modeld_grpc_connections gRPC connections open now (TCP ports), "
                      "capped per port by --grpc-max-connections.\n"
                      "# TYPE modeld_grpc_connections gauge\nmodeld_grpc_connections ",
                      connections, "\n");
    });
  }

  // The transports open first, so health and readiness can be asked while models load
  // (ServerReady is false until every model has loaded or failed).
  absl::Status Start() {
    RETURN_IF_ERROR(LoadSecurity());
    // A budget no model fits in: refuse to start rather than serve nothing.
    RETURN_IF_ERROR(models_.CheckMemoryBudget());
    for (const std::string& warning : service::SecurityWarnings(options_))
      spdlog::warn("{}", warning);
    if (!options_.redis_url.empty()) {
      transport::redis::RedisTransportOptions redis = RedisOptionsFrom(options_);
      redis.admission = &admission_;
      ASSIGN_OR_RETURN(redis_,
                       transport::redis::MakeRedisWorker(redis, service_, clock_, &metrics_));
      // Before any transport serves: ServerReady is false while the worker cannot reach Redis.
      service_.AddReadinessCondition([worker = redis_.get()] { return worker->Ready(); });
    }
    if (!options_.amqp_url.empty()) {
      transport::amqp::AmqpTransportOptions amqp = AmqpOptionsFrom(options_);
      amqp.admission = &admission_;
      ASSIGN_OR_RETURN(amqp_, transport::amqp::MakeAmqpWorker(amqp, service_, clock_, &metrics_));
      // ServerReady is false while the worker cannot reach the broker, on every transport.
      service_.AddReadinessCondition([worker = amqp_.get()] { return worker->Ready(); });
    }
    if (!options_.celery_broker.empty()) {
      transport::celery::CeleryTransportOptions celery = CeleryOptionsFrom(options_);
      celery.admission = &admission_;
      ASSIGN_OR_RETURN(celery_, transport::celery::MakeCeleryWorker(celery, service_, clock_,
                                                                    &metrics_));
      // Likewise while the Celery worker cannot reach its broker.
      service_.AddReadinessCondition([worker = celery_.get()] { return worker->Ready(); });
    }
    // The repository must be readable now. Its models are known (LOADING) before any
    // transport opens; they load on a thread of their own, so a stop signal that comes
    // meanwhile is answered at once (after the version loading then).
    RETURN_IF_ERROR(models_.Announce());
    // One gRPC server for KServe V2, modeld's training extension and TensorFlow Serving's
    // services...
    ASSIGN_OR_RETURN(grpc_,
                     StartGrpc(options_.grpc_address,
                               {&kserve_, &training_, &tfserving_predict_, &tfserving_models_},
                               &kserve_.infer_calls(), grpc_port_));
    spdlog::info("gRPC listening on {}:{}", HostOf(options_.grpc_address), grpc_port_);
    // ...and, when asked, TensorFlow Serving's alone on a port of its own (8500 in a drop-in
    // set-up). A service object serves one server, hence the second pair.
    if (!options_.tfserving_grpc_address.empty()) {
      int port = 0;
      ASSIGN_OR_RETURN(
          tfserving_grpc_,
          StartGrpc(options_.tfserving_grpc_address,
                    {&tfserving_predict_only_, &tfserving_models_only_}, nullptr, port));
      spdlog::info("TensorFlow Serving gRPC listening on {}:{}",
                   HostOf(options_.tfserving_grpc_address), port);
    }

    transport::http::HttpServerOptions http = HttpOptionsFrom(options_);
    http.admission = &admission_;
    if (http_tls_.has_value()) http.tls = *http_tls_;
    transport::http::RouterOptions routes = RouterOptionsFrom(options_);
    routes.tokens = tokens_.get();
    // metrics: GET /metrics serves this registry's text.
    http_router_ = std::make_unique<transport::http::Router>(
        service_, [this] { return metrics_.Render(); }, routes);
    ASSIGN_OR_RETURN(http_, transport::http::HttpServer::Start(http, *http_router_));
    spdlog::info("HTTP listening on {}:{}", HostOf(options_.http_address), http_->port());
    loader_ = std::thread([this] { LoadModels(); });
    if (options_.watchdog_seconds > 0) watchdog_ = std::thread([this] { Watch(); });
    if (options_.idle_trim_ms > 0) {
      trimmer_ = std::make_unique<IdleTrimmer>(
          [this] {
            const auto [in_flight, finished] = service_.InFlightAndFinished();
            // Calls gRPC answered itself (a flood of stalled ones, say) freed memory too.
            return Activity{in_flight, finished + kserve_.infer_calls().Refused()};
          },
          absl::Milliseconds(options_.idle_trim_ms));
      trimmer_->Start();
    }
    return absl::OkStatus();
  }

  void Rescan() override { control_->Rescan(); }

  void ReloadAuthTokens() override {
    if (tokens_ == nullptr) return;
    if (absl::Status status = tokens_->Reload(); !status.ok()) {
      spdlog::error("kept the bearer tokens in use: {}", status.message());
      return;
    }
    spdlog::info("reloaded {} bearer token(s) from {}", tokens_->size(), tokens_->path());
  }

  int grpc_port() const override { return grpc_port_; }

  absl::StatusOr<std::unique_ptr<grpc::Server>> StartGrpc(const std::string& address,
                                                          std::vector<grpc::Service*> services,
                                                          grpc::CallbackGenericService* generic,
                                                          int& port) {
    grpc::ServerBuilder builder;
    const int max_bytes = static_cast<int>(
        std::min<int64_t>(options_.grpc_max_message_bytes, std::numeric_limits<int>::max()));
    transport::auth::GrpcSecurity security;
    security.tls = grpc_tls_.has_value() ? &*grpc_tls_ : nullptr;
    security.tokens = tokens_.get();
    security.health_open = options_.auth_health == "open";
    std::shared_ptr<grpc::ServerCredentials> credentials =
        transport::auth::MakeGrpcServerCredentials(security);
    // TCP ports are modeld's own, to cap their connections (transport/grpc_listener.h); a
    // unix: socket is gRPC's, without a cap.
    std::unique_ptr<transport::GrpcListener> listener;
    std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor;
    if (absl::StartsWith(address, "unix:")) {
      builder.AddListeningPort(address, credentials, &port);
    } else {
      ASSIGN_OR_RETURN(listener, transport::GrpcListener::Bind(
                                     {.address = address,
                                      .max_connections = options_.grpc_max_connections,
                                      .registry = &metrics_}));
      acceptor = builder.experimental().AddExternalConnectionAcceptor(
          grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD, credentials);
    }
    // Without this, gRPC binds with SO_REUSEPORT and a second modeld on a taken port would
    // silently share its connections instead of failing at start.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONCURRENT_STREAMS,
        static_cast<int>(std::min<int64_t>(options_.grpc_max_concurrent_streams,
                                           std::numeric_limits<int>::max())));
    // Inference calls check the limit themselves and name the flag (transport/grpc_limits.h).
    builder.SetMaxReceiveMessageSize(transport::GrpcCoreReceiveLimit(options_.grpc_max_message_bytes));
    builder.SetMaxSendMessageSize(max_bytes);
    if (options_.grpc_memory_quota_bytes > 0) {
      grpc::ResourceQuota quota("modeld-grpc");
      quota.Resize(static_cast<size_t>(options_.grpc_memory_quota_bytes));
      builder.SetResourceQuota(quota);
    }
    for (grpc::Service* service : services) builder.RegisterService(service);
    if (generic != nullptr) builder.RegisterCallbackGenericService(generic);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (listener != nullptr && server != nullptr) {
      port = listener->port();
      listener->Start(std::move(acceptor));
      grpc_listeners_.push_back(std::move(listener));
    }
    if (server == nullptr || port == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot serve gRPC on ", address, " (address in use or malformed?)"));
    }
    return server;
  }

  void Shutdown() override {
    spdlog::info("shutting down: finishing in-flight requests (up to {} s)",
                 options_.drain_timeout_seconds);
    const absl::Time deadline = absl::Now() + absl::Seconds(options_.drain_timeout_seconds);
    // The Redis worker stops taking entries first: what it has not taken stays queued for
    // another modeld instead of being answered UNAVAILABLE. (A loader still at work will not
    // start it any more.)
    bool redis_started = false;
    bool amqp_started = false;
    bool celery_started = false;
    {
      absl::MutexLock lock(&start_mu_);
      stopping_ = true;
      redis_started = redis_started_;
      amqp_started = amqp_started_;
      celery_started = celery_started_;
    }
    if (redis_started) redis_->StopReading();
    // Likewise the AMQP consumer is cancelled: the broker keeps the rest for another modeld.
    if (amqp_started) amqp_->StopReading();
    if (celery_started) celery_->StopReading();
    // Not ready at once, and new requests get UNAVAILABLE from the service (which a client or
    // load balancer can act on) while the transports stay open for the accepted ones.
    service_.StartDraining();
    // Loading stops after the version in progress, model control after the change in progress.
    models_.CancelLoading();
    if (loader_.joinable()) loader_.join();
    // Stopped, not destroyed: a repository call may still reach it until the transports close.
    // Found by make test-tsan (a RepositoryIndex read it while Shutdown freed it).
    control_->Stop();
    stop_watch_.Notify();
    if (watchdog_.joinable()) watchdog_.join();
    if (trimmer_ != nullptr) trimmer_->Stop();
    const bool idle = service_.WaitUntilIdle(deadline - absl::Now());
    if (!idle) {
      spdlog::warn("requests still running after {} s; closing the ports without them",
                   options_.drain_timeout_seconds);
    }
    // Replies and acknowledgements of what the worker took; what it cannot write by the
    // deadline stays pending in Redis for another consumer.
    if (redis_started) redis_->Stop(std::max(deadline, absl::Now() + absl::Seconds(1)));
    // Replies and acknowledgements of what the AMQP worker holds; the broker delivers what is
    // unacknowledged at the deadline again.
    if (amqp_started) amqp_->Stop(std::max(deadline, absl::Now() + absl::Seconds(1)));
    // The Celery worker stores the results of what it ran and acknowledges them; tasks waiting
    // for their eta, and what is unacknowledged at the deadline, go back to the broker.
    if (celery_started) celery_->Stop(std::max(deadline, absl::Now() + absl::Seconds(1)));
    // Both transports close together; each lets what it is still writing finish (up to 1 s).
    for (const auto& listener : grpc_listeners_) listener->Stop();
    grpc_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    if (tfserving_grpc_ != nullptr) {
      tfserving_grpc_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    }
    http_->Shutdown(absl::Seconds(1));
    if (!idle) {
      // A run still going past the drain timeout may never return (a stuck framework call):
      // waiting for it would hang the stop until the process is killed. Leave without it.
      spdlog::warn("shut down with requests still running (exit status 1)");
      spdlog::shutdown();
      std::_Exit(1);
    }
    models_.DrainAll();
    spdlog::info("shut down");
  }

 private:
  // The token file and the TLS files, read before any port opens; a bad one stops the start.
  absl::Status LoadSecurity() {
    if (!options_.auth_token_file.empty()) {
      ASSIGN_OR_RETURN(tokens_, transport::auth::TokenStore::Load(options_.auth_token_file));
      spdlog::info("bearer tokens required ({} loaded from {}; health and /metrics {})",
                   tokens_->size(), options_.auth_token_file,
                   options_.auth_health == "open" ? "open" : "need one too");
    }
    if (!options_.grpc_tls_cert.empty()) {
      ASSIGN_OR_RETURN(grpc_tls_, transport::auth::LoadTlsMaterial(
                                      {options_.grpc_tls_cert, options_.grpc_tls_key,
                                       options_.grpc_tls_client_ca},
                                      "--grpc-tls"));
      spdlog::info("gRPC serves TLS{}",
                   options_.grpc_tls_client_ca.empty() ? "" : " and requires client certificates");
    }
    if (!options_.http_tls_cert.empty()) {
      ASSIGN_OR_RETURN(http_tls_, transport::auth::LoadTlsMaterial(
                                      {options_.http_tls_cert, options_.http_tls_key,
                                       options_.http_tls_client_ca},
                                      "--http-tls"));
      spdlog::info("HTTP serves HTTPS{}",
                   options_.http_tls_client_ca.empty() ? "" : " and requires client certificates");
    }
    return absl::OkStatus();
  }

  // On loader_: the first load of the repository, then what may only start after it.
  void LoadModels() {
    (void)models_.LoadAll();  // a model that fails is logged and reported, the rest serve
    absl::MutexLock lock(&start_mu_);
    if (stopping_) return;  // stopped while loading
    // Only now: work queued in Redis would otherwise be answered "model not found".
    if (redis_ != nullptr) {
      redis_->Start();
      redis_started_ = true;
    }
    if (amqp_ != nullptr) {
      amqp_->Start();
      amqp_started_ = true;
    }
    if (celery_ != nullptr) {
      celery_->Start();
      celery_started_ = true;
    }
    control_->Start();
    spdlog::info("modeld is ready");
  }

  // On watchdog_: reports each stuck instance once; a supervised modeld exits so that
  // modeld-supervisor restarts it (a stuck framework call cannot be drained).
  void Watch() {
    const char* supervised = std::getenv("MODELD_SUPERVISED");
    absl::flat_hash_set<std::string> reported;
    while (!stop_watch_.WaitForNotificationWithTimeout(absl::Milliseconds(250))) {
      for (const core::StuckRun& stuck : service_.Stuck()) {
        if (!reported.insert(absl::StrCat(stuck.model, "/", stuck.version)).second) continue;
        spdlog::error(
            "model '{}' version {}: an instance has been inside one run for {} s (over "
            "--watchdog-seconds={}); modeld reports not live and not ready",
            stuck.model, stuck.version, absl::ToInt64Seconds(absl::Now() - stuck.since),
            options_.watchdog_seconds);
        if (supervised != nullptr && absl::string_view(supervised) == "1") {
          spdlog::critical("exiting with status 3 so that modeld-supervisor restarts modeld");
          spdlog::shutdown();
          std::_Exit(3);
        }
      }
    }
  }

  const ServerOptions options_;
  // Read by LoadSecurity before any transport serves; they outlive the transports.
  std::unique_ptr<transport::auth::TokenStore> tokens_;  // null: no token needed
  std::optional<transport::auth::TlsMaterial> grpc_tls_;
  std::optional<transport::auth::TlsMaterial> http_tls_;
  const common::RealClock clock_;
  metrics::Registry metrics_;
  const std::unique_ptr<backend::BackendRegistry> backends_;
  repository::ModelManager models_;
  InferenceService service_;
  std::unique_ptr<ModelControl> control_;  // stopped at shutdown, before the models drain
  std::thread loader_;
  std::thread watchdog_;
  absl::Notification stop_watch_;
  std::unique_ptr<IdleTrimmer> trimmer_;  // null with --idle-trim-ms=0
  // Null unless --redis-url. Declared before the other transports, so it is destroyed after
  // them: their readiness checks call it.
  std::unique_ptr<transport::redis::RedisWorker> redis_;
  std::unique_ptr<transport::amqp::AmqpWorker> amqp_;  // null unless --amqp-url; likewise
  std::unique_ptr<transport::celery::CeleryWorker> celery_;  // null unless --celery-broker
  // What the loader has started, and whether a stop has begun; the loader starts nothing
  // once it has.
  absl::Mutex start_mu_;
  bool redis_started_ ABSL_GUARDED_BY(start_mu_) = false;
  bool amqp_started_ ABSL_GUARDED_BY(start_mu_) = false;
  bool celery_started_ ABSL_GUARDED_BY(start_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(start_mu_) = false;
  service::Admission admission_;  // before the transports that hold it
  transport::grpc_kserve::KServeGrpcService kserve_;
  transport::grpc_kserve::TrainingGrpcService training_;
  transport::grpc_tfserving::TfServingPredictionService tfserving_predict_;
  transport::grpc_tfserving::TfServingModelService tfserving_models_;
  std::unique_ptr<grpc::Server> grpc_;
  int grpc_port_ = 0;
  // The TCP ports' listeners, which hand connections to grpc_ and tfserving_grpc_.
  std::vector<std::unique_ptr<transport::GrpcListener>> grpc_listeners_;
  // --tfserving-grpc-address: TensorFlow Serving's services on a port of their own.
  transport::grpc_tfserving::TfServingPredictionService tfserving_predict_only_;
  transport::grpc_tfserving::TfServingModelService tfserving_models_only_;
  std::unique_ptr<grpc::Server> tfserving_grpc_;
  std::unique_ptr<transport::http::Router> http_router_;
  std::unique_ptr<transport::http::HttpServer> http_;  // after its router: destroyed first
};

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  auto server = std::make_unique<ModeldServer>(options);
  RETURN_IF_ERROR(server->Start());
  return server;
}

}  // namespace modeld::app
