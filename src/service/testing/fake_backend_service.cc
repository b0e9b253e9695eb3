#include "service/testing/fake_backend_service.h"

#include "backend/fake/fake_backend.h"
#include "batching/scheduler.h"
#include "common/status_macros.h"
#include "repository/model_manager.h"

namespace modeld::testing {

FakeBackendService::FakeBackendService(const common::Clock& clock, metrics::Registry* registry)
    : clock_(clock), registry_(registry) {
  backends_.Register("fake", {}, std::make_unique<backend::FakeBackend>());
}

FakeBackendService::~FakeBackendService() {
  Drain();
  // The service refers to model control and the models: it goes first.
  service_.reset();
  control_.reset();
  models_.reset();
}

absl::Status FakeBackendService::Start(service::ControlMode mode) {
  models_ = std::make_unique<repository::ModelManager>(
      repository_.path(), backends_, batching::MakeSchedulerFactory(clock_), registry_);
  RETURN_IF_ERROR(models_->LoadAll());
  service_ = std::make_unique<service::InferenceService>(*models_, clock_, registry_);
  if (mode != service::ControlMode::kNone) {
    control_ = std::make_unique<service::ModelControl>(*models_, mode, absl::Hours(1));
    control_->Start();
    service_->SetModelControl(control_.get());
  }
  return absl::OkStatus();
}

void FakeBackendService::Drain() {
  if (control_ != nullptr) control_->Stop();
  if (models_ != nullptr) models_->DrainAll();
}

}  // namespace modeld::testing
