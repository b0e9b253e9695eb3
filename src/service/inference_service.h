// InferenceService: the one API every transport calls. Transports decode the wire into core
// types, call this, and encode what comes back; no transport touches models directly.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "core/infer_request.h"
#include "core/model_config.h"
#include "core/model_status.h"
#include "core/train_request.h"
#include "metrics/registry.h"
#include "metrics/version_metrics.h"

namespace modeld::repository {
class ModelManager;
class ServedVersion;
using ModelHandle = std::shared_ptr<const ServedVersion>;  // as repository/served_version.h
}  // namespace modeld::repository

namespace modeld::service {

class ModelControl;

struct TensorMetadata {
  std::string name;
  core::DataType type;
  core::Shape shape;  // API shape: -1 for any size, batch dimension included
  // A batched item of no dims (core::TensorSpec::IsScalarItem): `shape` ends in a 1 that
  // TensorFlow Serving's APIs leave out.
  bool scalar_item = false;
};

struct ModelMetadata {
  std::string name;
  std::vector<int64_t> versions;  // ready versions, ascending
  std::string platform;           // config platform, else its backend name
  std::vector<TensorMetadata> inputs;
  std::vector<TensorMetadata> outputs;
};

// Thread-safe. `models` must outlive the service.
class InferenceService {
 public:
  // `registry` may be null (nothing recorded); `clock` times requests end to end.
  InferenceService(repository::ModelManager& models, const common::Clock& clock,
                   metrics::Registry* registry);

  // Finds the model version, validates the request against its config, and queues it. `done`
  // runs exactly once: with the response, or with NOT_FOUND (unknown model or version),
  // UNAVAILABLE (not ready, draining), INVALID_ARGUMENT (bad input, named) or INTERNAL
  // (the model failed). Never blocks on inference. Under a memory budget, a request for a model
  // that is not loaded waits for its load (repository::ModelManager::WhenLoaded), off the
  // caller's thread: DEADLINE_EXCEEDED when its deadline or --model-load-timeout comes first,
  // UNAVAILABLE / RESOURCE_EXHAUSTED when the load fails or does not fit.
  void Infer(core::InferRequest&& request, core::InferCallback&& done);

  // One online-learning step (docs/online-learning.md). Finds the version as Infer does,
  // validates the request (core::ValidateTrainRequest) and queues it on the version's
  // trainer. `done` runs exactly once: with the step and its loss, or NOT_FOUND, UNAVAILABLE,
  // INVALID_ARGUMENT as for Infer, FAILED_PRECONDITION when the model does not train (its
  // config has no training: true), or INTERNAL (the step failed; the weights are unchanged
  // unless the framework changed them before failing). Never blocks on training.
  void Train(core::TrainRequest&& request, core::TrainCallback&& done);

  // Whether the process works: false while a model instance is stuck, inside one Run() for
  // longer than the watchdog limit (SetWatchdog), so a liveness probe restarts it.
  bool Live() const;
  // Whether it takes inference requests: false while a model that should load is still
  // loading (failed ones do not count: ModelReady reports them), while the repository holds
  // no model at all, once draining has begun, while an instance is stuck, and while any
  // readiness condition is false.
  bool Ready() const;
  // The watchdog's limit on one Run(); zero or less: off. Set before serving.
  void SetWatchdog(absl::Duration limit) { watchdog_limit_ = limit; }

  // Most tensor elements one request may hold over all its inputs (--max-request-elements);
  // a bigger request is refused INVALID_ARGUMENT before it is queued. 0: no limit. Set before
  // serving.
  void SetMaxRequestElements(int64_t limit) { max_request_elements_ = limit; }
  // The versions with a stuck instance now.
  std::vector<core::StuckRun> Stuck() const;
  // Adds a condition Ready() also requires: a queue transport's link to its broker, say (the
  // Redis worker is not ready while it cannot reach Redis). Call before any transport serves:
  // the conditions are read without a lock. `condition` must be thread-safe and quick.
  void AddReadinessCondition(std::function<bool()> condition) {
    readiness_conditions_.push_back(std::move(condition));
  }
  // Whether the model (or that version) is ready; false for an unknown one, as the health
  // RPCs of the protocol answer, and for one whose served version has a stuck instance.
  bool ModelReady(absl::string_view name, std::optional<int64_t> version) const;
  // Errors as for Infer's model lookup.
  absl::StatusOr<ModelMetadata> Metadata(absl::string_view name,
                                         std::optional<int64_t> version) const;
  absl::StatusOr<std::shared_ptr<const core::ModelConfig>> Config(
      absl::string_view name, std::optional<int64_t> version) const;
  // Every version of the model with its state (and why a failed one failed); NOT_FOUND for an
  // unknown model. TensorFlow Serving's model status API reports this.
  absl::StatusOr<core::ModelStatus> Status(absl::string_view name) const;

  // The repository extension (model control): the index of the repository's models and
  // versions with their states (only READY ones when `ready_only`), and loading or unloading
  // one model. UNAVAILABLE, naming the flag, unless modeld runs with
  // --model-control-mode=explicit (SetModelControl). `done` may run on another thread.
  void SetModelControl(ModelControl* control) { control_ = control; }
  // The parameters a load or unload request may carry: none but unload_dependents, which
  // Triton's clients always send (modeld has no ensembles, so a model has no dependents).
  // INVALID_ARGUMENT naming any other (a config override, files).
  static absl::Status CheckControlParameters(const std::vector<std::string>& names);
  absl::StatusOr<std::vector<core::IndexEntry>> RepositoryIndex(bool ready_only) const;
  // Load and unload take the names of the request's parameters (CheckControlParameters).
  void LoadModel(std::string name, const std::vector<std::string>& parameters,
                 absl::AnyInvocable<void(absl::Status)> done);
  void UnloadModel(std::string name, const std::vector<std::string>& parameters,
                   absl::AnyInvocable<void(absl::Status)> done);

  // Turns Ready() false and refuses new inference with UNAVAILABLE; requests already accepted
  // still finish.
  void StartDraining() { draining_.store(true); }

  // Waits until no accepted request is unanswered, or `timeout` passes; true when idle.
  bool WaitUntilIdle(absl::Duration timeout);

  // Accepted requests and steps not answered yet, and those answered so far.
  std::pair<int64_t, int64_t> InFlightAndFinished();

 private:
  // OK when model control is on (explicit mode); else UNAVAILABLE naming the flag.
  absl::Status ModelControlOn() const;
  // Infer and Train once the version is known (at once, or after an on-demand load).
  void InferOn(absl::StatusOr<repository::ModelHandle> handle, absl::Time start,
               core::InferRequest&& request, core::InferCallback&& done);
  void TrainOn(absl::StatusOr<repository::ModelHandle> handle, core::TrainRequest&& request,
               core::TrainCallback&& done);
  repository::ModelManager& models_;
  ModelControl* control_ = nullptr;  // set before serving; null: model control is off
  absl::Duration watchdog_limit_ = absl::ZeroDuration();  // set before serving
  int64_t max_request_elements_ = 0;                      // set before serving; 0: no limit
  const common::Clock& clock_;
  const metrics::VersionMetrics unresolved_;  // requests that named no servable version
  std::atomic<bool> draining_{false};
  std::vector<std::function<bool()>> readiness_conditions_;
  absl::Mutex in_flight_mu_;
  int64_t in_flight_ ABSL_GUARDED_BY(in_flight_mu_) = 0;
  int64_t finished_ ABSL_GUARDED_BY(in_flight_mu_) = 0;
};

}  // namespace modeld::service
