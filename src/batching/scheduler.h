// Scheduler: queues the requests of one model version and runs them on its Model instances.
//
// Implementations decide how requests meet instances (one at a time, or combined into
// batches); model code never sees the difference.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/backend.h"
#include "common/clock.h"
#include "core/infer_request.h"
#include "core/model_config.h"
#include "metrics/version_metrics.h"

namespace modeld::batching {

// Thread-safe.
class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // Queues a request that has already been validated against the model's config. Never
  // blocks. `done` runs exactly once, on a worker thread (or on the caller's thread when the
  // request is refused, e.g. UNAVAILABLE after Drain()).
  virtual void Enqueue(core::InferRequest&& request, core::InferCallback&& done) = 0;

  // Stops intake, finishes every queued request, and joins the workers. Idempotent.
  virtual void Drain() = 0;
};

// Makes the scheduler for one loaded version; it owns the instances (at least one) and
// records queue times and batches into the version's metrics.
using SchedulerFactory = std::function<std::unique_ptr<Scheduler>(
    std::shared_ptr<const core::ModelConfig>, int64_t, std::vector<std::unique_ptr<backend::Model>>,
    std::shared_ptr<const metrics::VersionMetrics>)>;

// The factory modeld uses: a DynamicBatcher when the config has dynamic_batching, else a
// DirectScheduler. `clock` must outlive every scheduler made.
SchedulerFactory MakeSchedulerFactory(const common::Clock& clock);

}  // namespace modeld::batching
