// CeleryMetrics: what the Celery worker records (docs/metrics.md, "Celery transport").
#pragma once

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "metrics/registry.h"

namespace modeld::transport::celery {

// Thread-safe. With a null registry every metric is a private dummy.
class CeleryMetrics {
 private:
  // Declared first: the references below are bound through it.
  std::unique_ptr<metrics::Registry> own_;
  metrics::Registry& registry_;

 public:
  explicit CeleryMetrics(metrics::Registry* registry);
  CeleryMetrics(const CeleryMetrics&) = delete;
  CeleryMetrics& operator=(const CeleryMetrics&) = delete;

  // modeld_celery_tasks_total{task, state}: tasks finished, by task name and the state stored
  // (SUCCESS, FAILURE, REVOKED). Unknown task names count under task="other".
  metrics::Counter& Finished(const std::string& task, const std::string& state);

  metrics::Counter& received;            // messages taken from the queue
  metrics::Counter& redelivered;         // of those, delivered before
  metrics::Counter& dead_unparsable;     // dead letters: no readable headers, id or body
  metrics::Counter& dead_unknown_task;   // dead letters: a task name modeld does not serve
  metrics::Counter& results_stored;      // result documents stored (STARTED included)
  metrics::Counter& store_failures;      // attempts to store that failed (retried)
  metrics::Counter& published;           // chain steps, links and errbacks published
  metrics::Counter& acks;                // messages acknowledged
  metrics::Counter& dropped;             // tasks let go: their connection broke (redelivered)
  metrics::Counter& reconnects;          // connections opened again after a failure
  metrics::Gauge& connected;             // 1 while connected and consuming
  metrics::Gauge& in_flight;             // messages held and not yet acknowledged
  metrics::Gauge& eta_held;              // of those, waiting for their eta
  metrics::Gauge& prefetch;              // the prefetch asked of the broker

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, metrics::Counter*> finished_ ABSL_GUARDED_BY(mu_);
};

}  // namespace modeld::transport::celery
