// FakeBackendService: a real InferenceService over a temporary repository served by the fake
// backend (backend "fake": identity, sleep and fail models), for the transports' unit tests.
// Transports see only the façade; this keeps the repository behind it in tests too.
// Test-only.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "backend/registry.h"
#include "common/clock.h"
#include "metrics/registry.h"
#include "service/inference_service.h"
#include "service/model_control.h"
#include "testing/temp_repository.h"

namespace modeld::repository {
class ModelManager;
}  // namespace modeld::repository

namespace modeld::testing {

// Not thread-safe to set up: AddModel, then Start, then serve from any thread.
class FakeBackendService {
 public:
  // `registry` may be null (nothing recorded); both must outlive this object.
  explicit FakeBackendService(const common::Clock& clock, metrics::Registry* registry = nullptr);
  // Drain(), then frees the service and the models.
  ~FakeBackendService();
  FakeBackendService(const FakeBackendService&) = delete;
  FakeBackendService& operator=(const FakeBackendService&) = delete;

  // The repository's folder, to add or change files before or after Start.
  const TempRepository& repository() const { return repository_; }
  // Writes <name>/config.pbtxt (protobuf text; its backend should be "fake") and a folder per
  // version.
  void AddModel(std::string_view name, std::string_view config_text,
                const std::vector<int64_t>& versions = {1}) const {
    repository_.AddModel(name, config_text, versions);
  }

  // Loads every model (a model that fails is reported by the service, as in modeld). `mode`
  // kExplicit turns on the repository extension (load, unload, index). Fails only when the
  // repository cannot be read.
  absl::Status Start(service::ControlMode mode = service::ControlMode::kNone);

  service::InferenceService& service() { return *service_; }

  // Finishes every queued request and joins the models' worker threads, which call back into
  // the service after a caller has its answer: call it before whatever the callbacks touch is
  // destroyed. Idempotent.
  void Drain();

 private:
  TempRepository repository_;
  const common::Clock& clock_;
  metrics::Registry* const registry_;
  backend::BackendRegistry backends_;
  std::unique_ptr<repository::ModelManager> models_;
  std::unique_ptr<service::InferenceService> service_;
  std::unique_ptr<service::ModelControl> control_;
};

}  // namespace modeld::testing
