// CeleryWorker: modeld as a Celery worker (docs/celery.md). Takes task messages from a Celery
// queue (RabbitMQ or Redis, behind CeleryBroker), runs modeld.infer / modeld.predict /
// modeld.train through InferenceService, so tasks from every web process meet in the dynamic
// batcher with the other transports' requests, stores each result in the result backend,
// publishes the chain's next step, and only then acknowledges the message (acks late: a
// modeld that dies leaves its tasks for the broker to deliver again).
//
// One thread owns the broker connection and the result backend's: it connects (with backoff),
// consumes, dispatches, holds tasks with a future eta (no worker slot, no blocking of the
// others), and completes finished tasks in batches: one backend round trip for all their
// results, their follow-ups published, one broker flush, then the acks. Inference callbacks
// only hand their job back (message::Outbox). Untrusted messages never stop the worker: what
// has an id gets a FAILURE result; what has none is dead-lettered and counted.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "metrics/registry.h"
#include "service/admission.h"
#include "service/inference_service.h"
#include "transport/celery/canvas.h"
#include "transport/celery/celery_broker.h"
#include "transport/celery/celery_metrics.h"
#include "transport/celery/result_backend.h"
#include "transport/message/connection_loop.h"
#include "transport/message/log_throttle.h"
#include "transport/message/outbox.h"

namespace modeld::transport::celery {

struct CeleryWorkerOptions {
  std::string queue = "modeld";
  std::string where;  // the broker's URL without its password, for logs
  int prefetch = 64;  // most tasks running (or queued in modeld) at once; eta tasks add to it
  CanvasOptions canvas;
  bool track_started = false;  // store STARTED before running (Celery's task_track_started)
  std::string hostname;        // for STARTED
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // The process-wide cap on work in flight: the prefetch shrinks to what it has free, and
  // each running task holds a slot until its result is stored. Null: only `prefetch` bounds.
  // Must outlive the worker.
  service::Admission* admission = nullptr;
};

struct CeleryJob;

// Thread-safe. Lifecycle: Start once, then StopReading (optional) and Stop once.
class CeleryWorker {
 public:
  // `backend` may be null: results are not stored (Celery's disabled backend); chains still
  // go on. `service`, `clock` and `registry` (may be null) must outlive the worker.
  CeleryWorker(CeleryWorkerOptions options, BrokerFactory brokers,
               std::unique_ptr<ResultBackend> backend, service::InferenceService& service,
               const common::Clock& clock, metrics::Registry* registry);
  ~CeleryWorker();  // stops at once if still running: what is unacknowledged goes back
  CeleryWorker(const CeleryWorker&) = delete;
  CeleryWorker& operator=(const CeleryWorker&) = delete;

  void Start();

  // Connected and consuming. InferenceService readiness includes this.
  bool Ready() const;

  // The broker delivers nothing more; what was delivered still runs and is acknowledged.
  void StopReading();

  // StopReading, then finishes what is held (eta tasks are let go at once: the broker
  // delivers them again) until none is left or `deadline` passes, and closes the connection.
  void Stop(absl::Time deadline);

 private:
  void Loop();
  absl::Status Connect();
  void ConnectionLost();
  // One turn: cancel when asked, complete finished tasks, run the due eta tasks, fit the
  // prefetch, and take the broker's next delivery (waiting up to 250 ms, or until woken).
  absl::Status Step();
  void Dispatch(TaskDelivery delivery);
  void Run(std::unique_ptr<CeleryJob> job);
  // Stores, publishes, flushes and acknowledges `finished_`. A backend that cannot be reached
  // leaves them for a later turn; a broker error is returned (the connection is lost).
  absl::Status CompleteFinished();
  void Finish(std::unique_ptr<CeleryJob> job, absl::Status status, std::string result_json);
  void Release(CeleryJob& job);
  int64_t HeldEta() const { return static_cast<int64_t>(eta_.size()); }
  absl::Status FitPrefetch();
  bool Stopping() const;

  const CeleryWorkerOptions options_;
  const BrokerFactory brokers_;
  const std::unique_ptr<ResultBackend> backend_;
  service::InferenceService& service_;
  const common::Clock& clock_;
  CeleryMetrics metrics_;
  const std::shared_ptr<message::Outbox<CeleryJob>> outbox_;
  message::LogThrottle bad_message_log_{"celery"};
  message::LogThrottle backend_log_{"celery"};

  // The loop thread's own state.
  std::unique_ptr<CeleryBroker> broker_;
  uint64_t generation_ = 0;  // of the current connection: jobs from an older one are dropped
  bool consuming_ = false;
  int prefetch_ = 0;
  absl::Time next_prefetch_fit_ = absl::InfinitePast();
  std::multimap<absl::Time, std::unique_ptr<CeleryJob>> eta_;  // by eta
  std::vector<std::unique_ptr<CeleryJob>> finished_;  // waiting for their results' storage
  absl::Time next_store_ = absl::InfinitePast();       // backoff after a failed store
  absl::Duration store_backoff_ = absl::ZeroDuration();

  std::atomic<bool> ready_{false};
  std::atomic<int64_t> in_flight_{0};  // jobs alive: delivered and not yet acked or dropped

  message::StopRequests stop_;

  std::thread thread_;
};

}  // namespace modeld::transport::celery
