// RedisWorker: takes inference requests from a Redis queue (WorkQueue: a stream or a list),
// runs them through InferenceService, and answers each on its own reply key.
//
// Two threads, each with its own connection:
//  - the reader takes entries (many at once, up to the in-flight cap), takes over entries
//    that dead consumers left (every visibility timeout / 2), samples the queue depth, and
//    hands each request to InferenceService::Infer, so entries read together meet in the
//    dynamic batcher;
//  - the writer encodes the answers and finishes entries in pipelined batches (reply, then
//    acknowledge, atomically in Redis), and beats the consumer's heartbeat.
// An inference callback only queues its answer for the writer: no model thread ever waits
// on Redis. Either connection that breaks is reopened with exponential backoff; Ready()
// is false meanwhile. Untrusted entries never stop the worker: an entry that cannot be
// parsed is dead-lettered, one that can is answered with the error. docs/redis.md.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "metrics/registry.h"
#include "service/admission.h"
#include "service/inference_service.h"
#include "transport/message/log_throttle.h"
#include "transport/redis/outbox.h"
#include "transport/redis/redis_connection.h"
#include "transport/redis/redis_job.h"
#include "transport/redis/redis_metrics.h"
#include "transport/redis/work_queue.h"

namespace modeld::transport::redis {

struct RedisWorkerOptions {
  std::string where;           // the Redis endpoint, for logs
  int read_count = 64;         // most entries taken by one read
  int max_in_flight = 256;     // most entries held (taken, not finished) at once
  int64_t max_deliveries = 3;  // an entry delivered more often than this is dead-lettered
  // How often entries left by dead consumers are looked for (the queue's visibility timeout
  // decides which count as left).
  absl::Duration recover_interval = absl::Seconds(5);
  absl::Duration block = absl::Seconds(1);            // longest blocking read (bounds StopReading)
  absl::Duration sample_interval = absl::Seconds(1);  // queue depth gauges
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  int write_batch = 256;  // most completions per pipeline
  // The process-wide cap on work in flight: reads take no more entries than it has free
  // slots, and each entry holds one until it is finished. Null: only max_in_flight bounds
  // reads. Must outlive the worker.
  service::Admission* admission = nullptr;
};

// Thread-safe. Lifecycle: Start once, then StopReading (optional) and Stop once.
class RedisWorker {
 public:
  // `service`, `clock` and `registry` (may be null) must outlive the worker.
  RedisWorker(RedisWorkerOptions options, std::unique_ptr<WorkQueue> queue,
              RedisConnector connector, service::InferenceService& service,
              const common::Clock& clock, metrics::Registry* registry);
  // Stops at once if still running (what is unfinished stays pending in Redis).
  ~RedisWorker();
  RedisWorker(const RedisWorker&) = delete;
  RedisWorker& operator=(const RedisWorker&) = delete;

  // Starts both threads; they connect in the background (with backoff while Redis is away).
  void Start();

  // Whether both connections are up and the queue is set up (group created, consumer
  // registered). InferenceService readiness includes this.
  bool Ready() const;

  // Stops taking new entries (waits for a blocking read to return, up to the block time);
  // entries already taken keep running and get answered.
  void StopReading();

  // StopReading, then writes answers until every taken entry is finished or `deadline`
  // passes, and stops. Entries not finished by then stay pending in Redis, for another
  // consumer to take over.
  void Stop(absl::Time deadline);

 private:
  struct ReaderState;

  // The reader thread: ReaderStep until reading stops, ReaderFailed after a step that failed.
  void ReaderLoop();
  bool ReadingStopped() const;
  // One pass: connect, set the queue up, take over abandoned entries and sample the depth
  // when due, then take new entries (blocking up to options_.block). The first error ends it.
  absl::Status ReaderStep(ReaderState& state);
  absl::Status ConnectReader(ReaderState& state);
  absl::Status PrepareQueue(ReaderState& state);
  absl::Status RecoverAbandoned(ReaderState& state, absl::Time now);
  absl::Status SampleDepth(ReaderState& state, absl::Time now);
  absl::Status TakeEntries(ReaderState& state);
  // Marks the link down, logs (a warning once per outage), and waits out the backoff.
  void ReaderFailed(ReaderState& state, const absl::Status& status);

  void WriterLoop();
  // Handles one entry taken from the queue: dead letter, immediate error, Infer or Train.
  void Dispatch(QueueEntry entry);
  // Hands a training step (payload `train`) to the model's trainer.
  void Train(std::unique_ptr<RedisJob> job);
  // Queues a finished job for the writer.
  void Finish(std::unique_ptr<RedisJob> job);
  // The writer's side of a finished batch: metrics, logs, releasing the slots.
  void Settle(const std::vector<std::unique_ptr<RedisJob>>& batch,
              const std::vector<CompletionOutcome>& outcomes);
  // Blocks until fewer than max_in_flight entries are held, stop_reading_, or `deadline`;
  // returns the free slots (0 when none).
  int WaitForSlots(absl::Time deadline);
  // At most `free`, and no more than the process-wide admission has free; waits up to 100 ms
  // for one when it has none (the reader then loops, so it still sees StopReading).
  int AdmissibleSlots(int free) const;
  // Sleeps until `deadline` or until the reader (reader=true) or writer must stop.
  void Pause(absl::Time deadline, bool reader);
  void SetLink(bool reader, bool up);
  bool Held(absl::string_view id) const;

  const RedisWorkerOptions options_;
  const std::unique_ptr<WorkQueue> queue_;
  const RedisConnector connector_;
  service::InferenceService& service_;
  const common::Clock& clock_;
  RedisMetrics metrics_;
  const std::shared_ptr<Outbox> outbox_;  // shared with inference callbacks
  const std::unique_ptr<message::LogThrottle> bad_entry_log_;
  const std::unique_ptr<message::LogThrottle> reply_failure_log_;

  mutable absl::Mutex mu_;
  absl::CondVar changed_;  // slots freed, stop requested
  bool reader_up_ ABSL_GUARDED_BY(mu_) = false;
  bool writer_up_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_reading_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time write_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  // Ids of the entries held (counted: a list may hold equal items).
  absl::flat_hash_map<std::string, int> held_ ABSL_GUARDED_BY(mu_);

  std::thread reader_;
  std::thread writer_;
};

}  // namespace modeld::transport::redis
