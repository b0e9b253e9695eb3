#include "service/inference_service.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "core/request_validator.h"
#include "repository/model_manager.h"
#include "service/model_control.h"

namespace modeld::service {
namespace {

std::vector<TensorMetadata> Describe(const core::ModelConfig& config,
                                     const std::vector<core::TensorSpec>& specs) {
  std::vector<TensorMetadata> tensors;
  for (const core::TensorSpec& spec : specs) {
    tensors.push_back({spec.name, spec.type, config.FullShape(spec),
                       config.max_batch_size > 0 && spec.IsScalarItem()});
  }
  return tensors;
}

// The version a new request or step goes to (ModelManager::Get), or UNAVAILABLE once draining
// has begun.
absl::StatusOr<repository::ModelHandle> AcceptingVersion(const repository::ModelManager& models,
                                                         bool draining, absl::string_view name,
                                                         std::optional<int64_t> version) {
  if (draining) return absl::UnavailableError("modeld is shutting down");
  return models.Get(name, version);
}

}  // namespace

InferenceService::InferenceService(repository::ModelManager& models, const common::Clock& clock,
                                   metrics::Registry* registry)
    : models_(models),
      clock_(clock),
      unresolved_(registry != nullptr ? metrics::VersionMetrics(*registry, "", "")
                                      : metrics::VersionMetrics()) {}

absl::StatusOr<core::ModelStatus> InferenceService::Status(absl::string_view name) const {
  return models_.Status(name);
}

void InferenceService::Infer(core::InferRequest&& request, core::InferCallback&& done) {
  const absl::Time start = clock_.Now();
  absl::StatusOr<repository::ModelHandle> handle =
      AcceptingVersion(models_, draining_.load(), request.model_name, request.model_version);
  if (!handle.ok() && repository::LoadsOnDemand(handle.status())) {
    // Not loaded (the memory budget): the request waits for the load off this thread, and
    // goes on from the loader's callback.
    const std::string name = request.model_name;
    const std::optional<int64_t> version = request.model_version;
    const absl::Time deadline = request.deadline;
    models_.WhenLoaded(
        name, version, deadline,
        [this, start, request = std::move(request), done = std::move(done)](
            absl::StatusOr<repository::ModelHandle> loaded) mutable {
          InferOn(std::move(loaded), start, std::move(request), std::move(done));
        });
    return;
  }
  InferOn(std::move(handle), start, std::move(request), std::move(done));
}

void InferenceService::InferOn(absl::StatusOr<repository::ModelHandle> handle, absl::Time start,
                               core::InferRequest&& request, core::InferCallback&& done) {
  if (!handle.ok()) {
    unresolved_.RecordRequest(handle.status(), clock_.Now() - start);
    std::move(done)(handle.status());
    return;
  }
  const metrics::VersionMetrics& metrics = (*handle)->metrics();
  absl::Status valid = core::CheckRequestElements(request, max_request_elements_);
  if (valid.ok()) valid = core::ValidateRequest((*handle)->config(), request);
  if (!valid.ok()) {
    metrics.RecordRequest(valid, clock_.Now() - start);
    std::move(done)(valid);
    return;
  }
  {
    absl::MutexLock lock(&in_flight_mu_);
    ++in_flight_;
  }
  metrics.AddInFlight(1);
  (*handle)->AddInFlight(1);
  (*handle)->Touch(start);
  batching::Scheduler& scheduler = (*handle)->scheduler();
  // The callback holds the handle, so the version (and its metrics) outlives every request
  // queued on it.
  scheduler.Enqueue(std::move(request),
                    [this, start, handle = *std::move(handle),
                     done = std::move(done)](absl::StatusOr<core::InferResponse> response) mutable {
                      handle->metrics().RecordRequest(response.status(), clock_.Now() - start);
                      handle->metrics().AddInFlight(-1);
                      handle->AddInFlight(-1);
                      std::move(done)(std::move(response));
                      absl::MutexLock lock(&in_flight_mu_);
                      --in_flight_;
                      ++finished_;
                    });
}

void InferenceService::Train(core::TrainRequest&& request, core::TrainCallback&& done) {
  absl::StatusOr<repository::ModelHandle> handle =
      AcceptingVersion(models_, draining_.load(), request.model_name, request.model_version);
  if (!handle.ok() && repository::LoadsOnDemand(handle.status())) {
    const std::string name = request.model_name;
    const std::optional<int64_t> version = request.model_version;
    models_.WhenLoaded(name, version, absl::InfiniteFuture(),
                       [this, request = std::move(request), done = std::move(done)](
                           absl::StatusOr<repository::ModelHandle> loaded) mutable {
                         TrainOn(std::move(loaded), std::move(request), std::move(done));
                       });
    return;
  }
  TrainOn(std::move(handle), std::move(request), std::move(done));
}

void InferenceService::TrainOn(absl::StatusOr<repository::ModelHandle> handle,
                               core::TrainRequest&& request, core::TrainCallback&& done) {
  if (!handle.ok()) return std::move(done)(handle.status());
  training::Trainer* trainer = (*handle)->trainer();
  if (trainer == nullptr && !(*handle)->can_train().ok()) {
    return std::move(done)(absl::FailedPreconditionError(absl::StrCat(
        "model '", request.model_name, "' cannot train: ", (*handle)->can_train().message())));
  }
  if (trainer == nullptr) {
    return std::move(done)(absl::FailedPreconditionError(absl::StrCat(
        "model '", request.model_name,
        "' is not trainable: its config.pbtxt needs parameters { key: \"training\" value { "
        "string_value: \"true\" } } (docs/online-learning.md)")));
  }
  absl::Status valid = core::CheckRequestElements(request, max_request_elements_);
  if (valid.ok()) valid = core::ValidateTrainRequest((*handle)->config(), request);
  if (!valid.ok()) return std::move(done)(valid);
  {
    absl::MutexLock lock(&in_flight_mu_);
    ++in_flight_;
  }
  (*handle)->AddInFlight(1);
  (*handle)->Touch(clock_.Now());
  // The callback holds the handle, so the version outlives its queued steps.
  trainer->Train(std::move(request), [this, handle = *std::move(handle), done = std::move(done)](
                                         absl::StatusOr<core::TrainResponse> response) mutable {
    handle->AddInFlight(-1);
    std::move(done)(std::move(response));
    absl::MutexLock lock(&in_flight_mu_);
    --in_flight_;
    ++finished_;
  });
}

bool InferenceService::WaitUntilIdle(absl::Duration timeout) {
  absl::MutexLock lock(&in_flight_mu_);
  return in_flight_mu_.AwaitWithTimeout(
      absl::Condition(
          +[](int64_t* in_flight) { return *in_flight == 0; }, &in_flight_),
      timeout);
}

std::pair<int64_t, int64_t> InferenceService::InFlightAndFinished() {
  absl::MutexLock lock(&in_flight_mu_);
  return {in_flight_, finished_};
}

bool InferenceService::Live() const { return Stuck().empty(); }

std::vector<core::StuckRun> InferenceService::Stuck() const {
  return models_.StuckRuns(absl::Now(), watchdog_limit_);
}

bool InferenceService::Ready() const {
  if (draining_.load() || models_.Loading() || models_.RepositoryEmpty() || !Live()) {
    return false;
  }
  for (const std::function<bool()>& condition : readiness_conditions_) {
    if (!condition()) return false;
  }
  return true;
}

bool InferenceService::ModelReady(absl::string_view name, std::optional<int64_t> version) const {
  absl::StatusOr<repository::ModelHandle> handle = models_.Get(name, version);
  // A model that loads on demand is ready: its first request loads it.
  if (repository::LoadsOnDemand(handle.status())) return models_.Config(name, version).ok();
  if (!handle.ok()) return false;
  // A stuck instance: the model's requests would wait behind it (the watchdog).
  return !(*handle)->Stuck(absl::Now(), watchdog_limit_);
}

absl::StatusOr<ModelMetadata> InferenceService::Metadata(absl::string_view name,
                                                         std::optional<int64_t> version) const {
  // Loaded or not (the memory budget): metadata never loads a model.
  ASSIGN_OR_RETURN(std::shared_ptr<const core::ModelConfig> served, models_.Config(name, version));
  ASSIGN_OR_RETURN(core::ModelStatus status, models_.Status(name));
  const core::ModelConfig& config = *served;
  ModelMetadata metadata;
  metadata.name = config.name;
  for (const core::VersionStatus& v : status.versions) {
    if (v.state == core::VersionState::kReady || status.loads_on_demand) {
      metadata.versions.push_back(v.version);
    }
  }
  metadata.platform = config.platform.empty() ? config.backend : config.platform;
  metadata.inputs = Describe(config, config.inputs);
  metadata.outputs = Describe(config, config.outputs);
  return metadata;
}

absl::StatusOr<std::shared_ptr<const core::ModelConfig>> InferenceService::Config(
    absl::string_view name, std::optional<int64_t> version) const {
  // Loaded or not (the memory budget): a request is decoded before its model loads.
  return models_.Config(name, version);
}

absl::Status InferenceService::ModelControlOn() const {
  if (control_ != nullptr && control_->mode() == ControlMode::kExplicit) return absl::OkStatus();
  return ModelControlOff();
}

absl::Status InferenceService::CheckControlParameters(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    if (name == "unload_dependents") continue;
    return absl::InvalidArgumentError(absl::StrCat(
        "\"parameters\" holds '", name,
        "', which is not supported (a config override or files): modeld loads a model from "
        "its folder in the repository as it is"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<core::IndexEntry>> InferenceService::RepositoryIndex(
    bool ready_only) const {
  // Read-only, so in every mode (as Triton serves it): clients list the models from it.
  std::vector<core::IndexEntry> index = models_.Index();
  if (ready_only) {
    std::erase_if(index, [](const core::IndexEntry& entry) {
      return entry.state != core::VersionState::kReady;
    });
  }
  return index;
}

void InferenceService::LoadModel(std::string name, const std::vector<std::string>& parameters,
                                 absl::AnyInvocable<void(absl::Status)> done) {
  if (absl::Status on = ModelControlOn(); !on.ok()) return done(on);
  if (absl::Status taken = CheckControlParameters(parameters); !taken.ok()) return done(taken);
  control_->Load(std::move(name), std::move(done));
}

void InferenceService::UnloadModel(std::string name, const std::vector<std::string>& parameters,
                                   absl::AnyInvocable<void(absl::Status)> done) {
  if (absl::Status on = ModelControlOn(); !on.ok()) return done(on);
  if (absl::Status taken = CheckControlParameters(parameters); !taken.ok()) return done(taken);
  control_->Unload(std::move(name), std::move(done));
}

}  // namespace modeld::service
