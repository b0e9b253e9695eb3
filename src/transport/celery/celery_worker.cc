#include "transport/celery/celery_worker.h"

#include <unistd.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace modeld::transport::celery {

// One task message inside the worker, from its delivery to its acknowledgement.
struct CeleryJob {
  enum class Outcome {
    kStore,       // store the result (if any backend, id and not ignore_result), then ack
    kDeadLetter,  // store the result if it has one, then dead-letter the message
  };
  TaskDelivery delivery;
  uint64_t generation = 0;
  absl::Time received;
  std::optional<CeleryTask> task;  // once parsed
  Outcome outcome = Outcome::kStore;
  std::string why;  // kDeadLetter: the reason, kept with the message where the broker can
  // The result document to store; empty: nothing to store.
  std::string document;
  // What to publish after it (chain step, links or errbacks).
  std::vector<OutgoingTask> follow_ups;
  std::string state;  // SUCCESS, FAILURE or REVOKED: for the metrics
  // Set by the model thread that ran it, read back on the worker's thread.
  absl::Status run_status = absl::UnknownError("not run");
  std::string result_json;
  std::optional<service::Admission::Ticket> slot;
};

namespace {

constexpr absl::Duration kEventWait = absl::Milliseconds(250);
constexpr absl::Duration kPrefetchFitInterval = absl::Milliseconds(100);
// More than this many unacknowledged messages are never asked for (AMQP's prefetch is 16 bits).
constexpr int64_t kMaxPrefetch = 65535;

const TaskHeaders* HeadersOf(const CeleryJob& job) {
  if (job.task.has_value()) return &job.task->headers;
  return job.delivery.headers.ok() ? &*job.delivery.headers : nullptr;
}

}  // namespace

CeleryWorker::CeleryWorker(CeleryWorkerOptions options, BrokerFactory brokers,
                           std::unique_ptr<ResultBackend> backend,
                           service::InferenceService& service, const common::Clock& clock,
                           metrics::Registry* registry)
    : options_(std::move(options)),
      brokers_(std::move(brokers)),
      backend_(std::move(backend)),
      service_(service),
      clock_(clock),
      metrics_(registry),
      outbox_(std::make_shared<message::Outbox<CeleryJob>>()) {}

CeleryWorker::~CeleryWorker() { Stop(absl::Now()); }

void CeleryWorker::Start() {
  thread_ = std::thread([this] { Loop(); });
}

bool CeleryWorker::Ready() const { return ready_.load(); }

void CeleryWorker::StopReading() {
  stop_.StopReading();
  outbox_->Wake();
}

void CeleryWorker::Stop(absl::Time deadline) {
  stop_.Stop(deadline);
  outbox_->Wake();
  if (thread_.joinable()) thread_.join();
  for (std::unique_ptr<CeleryJob>& job : outbox_->Close()) Release(*job);
}

bool CeleryWorker::Stopping() const {
  absl::Time deadline;
  if (!stop_.stopping(&deadline)) return false;
  // Eta tasks are not waited for: the broker delivers them again to whoever consumes next.
  const int64_t waiting = in_flight_.load() - HeldEta();
  return waiting <= 0 || clock_.Now() >= deadline || broker_ == nullptr;
}

void CeleryWorker::Loop() {
  message::ConnectionLoop loop;
  loop.name = "celery";
  loop.where = options_.where;
  loop.min_backoff = options_.min_backoff;
  loop.max_backoff = options_.max_backoff;
  loop.connected = [this] { return broker_ != nullptr; };
  loop.connect = [this] { return Connect(); };
  loop.consuming = [this] {
    return absl::StrCat("consuming '", options_.queue, "' on ", options_.where, ", results ",
                        backend_ == nullptr ? "not stored (no --celery-result-backend)"
                                            : absl::StrCat("in ", backend_->Describe()));
  };
  loop.step = [this] { return Step(); };
  loop.lost = [this] { ConnectionLost(); };
  loop.done = [this] { return Stopping(); };
  message::RunConnectionLoop(loop, stop_, clock_, metrics_.reconnects);
  // Finished tasks whose results are not stored yet, and eta tasks, go back to the broker.
  ConnectionLost();
  metrics_.connected.Set(0);
}

absl::Status CeleryWorker::Connect() {
  broker_ = brokers_();
  ++generation_;
  RETURN_IF_ERROR(broker_->Open(options_.queue));
  prefetch_ = options_.prefetch;
  RETURN_IF_ERROR(broker_->SetPrefetch(prefetch_));
  metrics_.prefetch.Set(prefetch_);
  const bool reading = !stop_.reading_stopped();
  if (reading) RETURN_IF_ERROR(broker_->Consume());
  consuming_ = reading;
  ready_ = reading;
  metrics_.connected.Set(reading ? 1 : 0);
  return absl::OkStatus();
}

void CeleryWorker::ConnectionLost() {
  ready_ = false;
  consuming_ = false;
  metrics_.connected.Set(0);
  if (broker_ != nullptr) broker_->Close();
  broker_.reset();
  // The broker delivers every unacknowledged message again: what was held is let go.
  for (auto& [eta, job] : eta_) {
    metrics_.dropped.Increment();
    Release(*job);
  }
  eta_.clear();
  metrics_.eta_held.Set(0);
  for (std::unique_ptr<CeleryJob>& job : finished_) {
    metrics_.dropped.Increment();
    Release(*job);
  }
  finished_.clear();
}

absl::Status CeleryWorker::Step() {
  if (stop_.reading_stopped() && consuming_) {
    consuming_ = false;
    ready_ = false;
    metrics_.connected.Set(0);
    RETURN_IF_ERROR(broker_->Cancel());
  }
  for (std::unique_ptr<CeleryJob>& job : outbox_->TakeAll()) {
    if (job->generation != generation_) {
      // Delivered on a connection that is gone: the broker delivers the message again.
      metrics_.dropped.Increment();
      Release(*job);
      continue;
    }
    const absl::Status status = job->run_status;
    std::string result_json = std::move(job->result_json);
    Finish(std::move(job), status, std::move(result_json));
  }
  const absl::Time now = clock_.Now();
  if (!finished_.empty() && now >= next_store_) RETURN_IF_ERROR(CompleteFinished());
  // Eta tasks that are due.
  while (!eta_.empty() && eta_.begin()->first <= now && consuming_) {
    std::unique_ptr<CeleryJob> job = std::move(eta_.begin()->second);
    eta_.erase(eta_.begin());
    metrics_.eta_held.Set(static_cast<double>(eta_.size()));
    Run(std::move(job));
  }
  RETURN_IF_ERROR(FitPrefetch());
  absl::Duration wait = kEventWait;
  if (!eta_.empty()) wait = std::min(wait, std::max(absl::ZeroDuration(), eta_.begin()->first - now));
  if (!finished_.empty()) wait = std::min(wait, std::max(absl::ZeroDuration(), next_store_ - now));
  ASSIGN_OR_RETURN(std::optional<TaskDelivery> delivery, broker_->Next(wait, outbox_->wake_fd()));
  if (delivery.has_value()) Dispatch(*std::move(delivery));
  return absl::OkStatus();
}

absl::Status CeleryWorker::FitPrefetch() {
  if (!consuming_) return absl::OkStatus();
  const absl::Time now = clock_.Now();
  if (now < next_prefetch_fit_) return absl::OkStatus();
  next_prefetch_fit_ = now + kPrefetchFitInterval;
  // Tasks waiting for their eta hold a delivery each without running, so they add to the
  // prefetch (as Celery's own worker raises its QoS for them); the rest is what this worker
  // runs plus what the process-wide cap has free, never 0 (0 means "no limit" to AMQP).
  int64_t room = options_.prefetch;
  if (options_.admission != nullptr) {
    const int64_t free = std::min<int64_t>(options_.admission->Free(), options_.prefetch);
    room = std::clamp<int64_t>(in_flight_.load() - HeldEta() + free, 1, options_.prefetch);
  }
  const int fitted = static_cast<int>(std::min(kMaxPrefetch, room + HeldEta()));
  if (fitted == prefetch_) return absl::OkStatus();
  prefetch_ = fitted;
  metrics_.prefetch.Set(prefetch_);
  return broker_->SetPrefetch(prefetch_);
}

void CeleryWorker::Dispatch(TaskDelivery delivery) {
  auto job = std::make_unique<CeleryJob>();
  job->delivery = std::move(delivery);
  job->generation = generation_;
  job->received = clock_.Now();
  metrics_.in_flight.Set(static_cast<double>(++in_flight_));
  metrics_.received.Increment();
  if (job->delivery.redelivered) metrics_.redelivered.Increment();
  const absl::Time now = job->received;

  if (!job->delivery.headers.ok()) {
    metrics_.dead_unparsable.Increment();
    bad_message_log_.Warn(now, absl::StrCat("a message on '", options_.queue, "': ",
                                            job->delivery.headers.status().message(),
                                            "; dead-lettered"));
    job->outcome = CeleryJob::Outcome::kDeadLetter;
    job->why = std::string(job->delivery.headers.status().message());
    finished_.push_back(std::move(job));
    return;
  }
  const TaskHeaders& headers = *job->delivery.headers;
  absl::StatusOr<CeleryTask> task = ParseTaskMessage(headers, job->delivery.body);
  if (!task.ok()) {
    const bool unknown = IsUnknownTask(task.status());
    if (headers.ids.id.empty()) {
      metrics_.dead_unparsable.Increment();
      bad_message_log_.Warn(now, absl::StrCat("a message on '", options_.queue, "' with no task id: ",
                                              task.status().message(), "; dead-lettered"));
      job->outcome = CeleryJob::Outcome::kDeadLetter;
      job->why = std::string(task.status().message());
      finished_.push_back(std::move(job));
      return;
    }
    bad_message_log_.Warn(now, absl::StrCat("task ", headers.ids.id, ": ",
                                            task.status().message()));
    if (unknown) {
      // Never to run here: stored as FAILURE (NotRegistered), and off the queue for good.
      metrics_.dead_unknown_task.Increment();
      job->outcome = CeleryJob::Outcome::kDeadLetter;
      job->why = std::string(task.status().message());
    }
    Finish(std::move(job), task.status(), "");
    return;
  }
  job->task.emplace(*std::move(task));
  if (Expired(job->task->headers, now)) {
    job->document = EncodeRevoked(job->task->headers.ids, now);
    job->state = "REVOKED";
    finished_.push_back(std::move(job));
    return;
  }
  if (absl::Status supported = CheckCanvas(*job->task); !supported.ok()) {
    Finish(std::move(job), supported, "");
    return;
  }
  if (job->task->headers.eta.has_value() && *job->task->headers.eta > now) {
    const absl::Time eta = *job->task->headers.eta;
    eta_.emplace(eta, std::move(job));
    metrics_.eta_held.Set(static_cast<double>(eta_.size()));
    return;
  }
  Run(std::move(job));
}

void CeleryWorker::Run(std::unique_ptr<CeleryJob> job) {
  const CeleryTask& task = *job->task;
  if (options_.admission != nullptr) job->slot.emplace(options_.admission->Hold());
  if (Expired(task.headers, clock_.Now())) {  // an eta task whose expiry came first
    job->document = EncodeRevoked(task.headers.ids, clock_.Now());
    job->state = "REVOKED";
    finished_.push_back(std::move(job));
    return;
  }
  if (options_.track_started && backend_ != nullptr && !task.headers.ignore_result &&
      broker_ != nullptr) {
    // Best effort: a backend that is away now gets the final state later anyway.
    std::vector<StoredResult> started{{task.headers.ids.id, task.headers.reply_to,
                                       EncodeStarted(task.headers.ids, options_.hostname,
                                                     getpid())}};
    if (backend_->Store(started, *broker_).ok()) metrics_.results_stored.Increment();
  }
  absl::StatusOr<std::shared_ptr<const core::ModelConfig>> config =
      service_.Config(task.model, task.version);
  if (!config.ok()) {
    Finish(std::move(job), config.status(), "");
    return;
  }
  if (task.kind == TaskKind::kTrain) {
    absl::StatusOr<core::TrainRequest> request = ToTrainRequest(task, **config);
    if (!request.ok()) {
      Finish(std::move(job), request.status(), "");
      return;
    }
    service_.Train(*std::move(request), [outbox = outbox_, job = std::move(job)](
                                            absl::StatusOr<core::TrainResponse> result) mutable {
      job->run_status = result.status();
      if (result.ok()) job->result_json = EncodeTrainResult(*result);
      outbox->Push(std::move(job));
    });
    return;
  }
  absl::StatusOr<core::InferRequest> request = ToInferRequest(task, **config, job->received);
  if (!request.ok()) {
    Finish(std::move(job), request.status(), "");
    return;
  }
  const TaskKind kind = task.kind;
  // The callback runs on a model thread: it encodes the result there (in parallel with the
  // other models' threads) and hands the job back to this worker's thread.
  service_.Infer(*std::move(request), [outbox = outbox_, kind, job = std::move(job)](
                                          absl::StatusOr<core::InferResponse> result) mutable {
    absl::StatusOr<std::string> json = result.ok() ? EncodeInferResult(kind, *result)
                                                   : absl::StatusOr<std::string>(result.status());
    job->run_status = json.status();
    if (json.ok()) job->result_json = *std::move(json);
    outbox->Push(std::move(job));
  });
}

void CeleryWorker::Finish(std::unique_ptr<CeleryJob> job, absl::Status status,
                          std::string result_json) {
  const TaskHeaders& headers = *HeadersOf(*job);
  const absl::Time now = clock_.Now();
  if (status.ok()) {
    job->document = EncodeSuccess(headers.ids, result_json, now);
    job->state = "SUCCESS";
  } else {
    job->document = EncodeFailure(headers.ids, status, now);
    job->state = "FAILURE";
  }
  if (job->task.has_value()) {
    job->follow_ups = FollowUps(*job->task, status, result_json, options_.canvas);
  }
  finished_.push_back(std::move(job));
}

absl::Status CeleryWorker::CompleteFinished() {
  // One backend round trip for every result.
  std::vector<StoredResult> results;
  for (const std::unique_ptr<CeleryJob>& job : finished_) {
    const TaskHeaders* headers = HeadersOf(*job);
    if (job->document.empty() || headers == nullptr || headers->ids.id.empty() ||
        headers->ignore_result) {
      continue;
    }
    results.push_back({headers->ids.id, headers->reply_to, job->document});
  }
  if (backend_ != nullptr && !results.empty()) {
    if (absl::Status stored = backend_->Store(results, *broker_); !stored.ok()) {
      metrics_.store_failures.Increment();
      // Held, unacknowledged, until the backend is back: a crash meanwhile means redelivery.
      store_backoff_ = std::clamp(store_backoff_ * 2, options_.min_backoff, options_.max_backoff);
      next_store_ = clock_.Now() + store_backoff_;
      backend_log_.Warn(clock_.Now(),
                        absl::StrCat("cannot store ", results.size(), " results in ",
                                     backend_->Describe(), ": ", stored.message(),
                                     "; their tasks stay unacknowledged, retrying"));
      return absl::OkStatus();
    }
    metrics_.results_stored.Increment(results.size());
  }
  store_backoff_ = absl::ZeroDuration();
  next_store_ = absl::InfinitePast();
  for (const std::unique_ptr<CeleryJob>& job : finished_) {
    for (const OutgoingTask& next : job->follow_ups) {
      RETURN_IF_ERROR(broker_->Publish(next));
      metrics_.published.Increment();
    }
  }
  RETURN_IF_ERROR(broker_->Flush());
  std::vector<std::unique_ptr<CeleryJob>> done = std::move(finished_);
  finished_.clear();
  absl::Status status;
  for (std::unique_ptr<CeleryJob>& job : done) {
    if (!job->state.empty()) {
      const TaskHeaders* headers = HeadersOf(*job);
      metrics_.Finished(headers != nullptr ? headers->task : "", job->state).Increment();
    }
    if (status.ok()) {
      if (job->outcome == CeleryJob::Outcome::kDeadLetter) {
        status = broker_->DeadLetter(job->delivery.tag, job->why);
      } else {
        status = broker_->Ack(job->delivery.tag);
        metrics_.acks.Increment();
      }
    }
    Release(*job);
  }
  return status;
}

void CeleryWorker::Release(CeleryJob& job) {
  if (job.slot.has_value()) job.slot.reset();
  if (job.generation != 0) {
    job.generation = 0;
    metrics_.in_flight.Set(static_cast<double>(--in_flight_));
  }
}

}  // namespace modeld::transport::celery
