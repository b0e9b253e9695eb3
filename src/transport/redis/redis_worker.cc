#include "transport/redis/redis_worker.h"

#include <algorithm>
#include <deque>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "transport/redis/envelope.h"

namespace modeld::transport::redis {

// One entry from the moment it is taken until it is finished.
struct RedisWorker::Job {
  QueueEntry entry;
  // Keeps the request's bytes alive: the decoded tensors, and maybe the outputs of an
  // identity model, view them until the answer is encoded.
  std::shared_ptr<const wire::RequestEnvelope> envelope;
  std::string request_id;
  std::string reply_key;
  absl::StatusOr<core::InferResponse> result = absl::UnknownError("not run");
  std::string dead_reason;  // set: the entry goes to the dead-letter stream
  // The encoded ReplyEnvelope: by the writer from `result`, or at once for a query.
  std::string reply;
};

// Finished jobs on their way to the writer. Shared with the inference callbacks, which may
// outlive the worker when a model finishes after shutdown: they then drop their job.
class RedisWorker::Outbox {
 public:
  // Returns false (and drops the job) once closed.
  bool Push(std::unique_ptr<Job> job) {
    absl::MutexLock lock(&mu_);
    if (closed_) return false;
    jobs_.push_back(std::move(job));
    return true;
  }

  // Waits until a job is queued, Stop() is called, or `until`; then moves up to `max` jobs
  // into `out`. Returns false once stopping with the write deadline past.
  bool Take(absl::Time until, size_t max, std::vector<std::unique_ptr<Job>>& out) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !jobs_.empty() || stop_signal_; };
    mu_.AwaitWithDeadline(absl::Condition(&ready), std::min(until, deadline_));
    stop_signal_ = false;
    if (stopping_ && absl::Now() >= deadline_) return false;
    while (out.size() < max && !jobs_.empty()) {
      out.push_back(std::move(jobs_.front()));
      jobs_.pop_front();
    }
    return true;
  }

  // Sleeps until `until`, or the write deadline if that comes first.
  void Sleep(absl::Time until) {
    absl::MutexLock lock(&mu_);
    absl::Time wake;
    while ((wake = std::min(until, deadline_)) > absl::Now() &&
           !stop_changed_.WaitWithDeadline(&mu_, wake)) {
    }
  }

  void Stop(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    stop_signal_ = true;
    deadline_ = deadline;
    stop_changed_.SignalAll();
  }
  bool stopping() const {
    absl::MutexLock lock(&mu_);
    return stopping_;
  }
  // Refuses further jobs.
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    jobs_.clear();
  }

 private:
  mutable absl::Mutex mu_;
  absl::CondVar stop_changed_;
  std::deque<std::unique_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_signal_ ABSL_GUARDED_BY(mu_) = false;  // wakes one Take after Stop
  absl::Time deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
};

// Logs a repeated warning at most once per period (a broken producer can send thousands).
class RedisWorker::Throttle {
 public:
  void Warn(absl::Time now, const std::string& message) {
    absl::MutexLock lock(&mu_);
    if (now < next_) {
      ++suppressed_;
      return;
    }
    next_ = now + absl::Seconds(10);
    if (suppressed_ > 0) {
      spdlog::warn("redis: {} ({} similar messages suppressed)", message, suppressed_);
    } else {
      spdlog::warn("redis: {}", message);
    }
    suppressed_ = 0;
  }

 private:
  absl::Mutex mu_;
  absl::Time next_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

namespace {

// Exponential backoff with ±20% jitter, so workers that lost Redis together do not all
// come back in the same millisecond.
class Backoff {
 public:
  Backoff(absl::Duration min, absl::Duration max) : min_(min), max_(max), next_(min) {}
  absl::Duration Next() {
    const absl::Duration current = next_;
    next_ = std::min(next_ * 2, max_);
    return current * absl::Uniform(bitgen_, 0.8, 1.2);
  }
  void Reset() { next_ = min_; }

 private:
  const absl::Duration min_;
  const absl::Duration max_;
  absl::Duration next_;
  absl::BitGen bitgen_;
};

}  // namespace

RedisWorker::RedisWorker(RedisWorkerOptions options, std::unique_ptr<WorkQueue> queue,
                         RedisConnector connector, server::InferenceService& service,
                         const common::Clock& clock, metrics::Registry* registry)
    : options_(std::move(options)),
      queue_(std::move(queue)),
      connector_(std::move(connector)),
      service_(service),
      clock_(clock),
      metrics_(registry),
      outbox_(std::make_shared<Outbox>()),
      bad_entry_log_(std::make_unique<Throttle>()),
      reply_failure_log_(std::make_unique<Throttle>()) {}

RedisWorker::~RedisWorker() {
  if (reader_.joinable() || writer_.joinable()) Stop(clock_.Now());
}

void RedisWorker::Start() {
  reader_ = std::thread([this] { ReaderLoop(); });
  writer_ = std::thread([this] { WriterLoop(); });
}

bool RedisWorker::Ready() const {
  absl::MutexLock lock(&mu_);
  return reader_up_ && writer_up_;
}

void RedisWorker::StopReading() {
  {
    absl::MutexLock lock(&mu_);
    stop_reading_ = true;
    changed_.SignalAll();
  }
  if (reader_.joinable()) reader_.join();
}

void RedisWorker::Stop(absl::Time deadline) {
  StopReading();
  outbox_->Stop(deadline);
  if (writer_.joinable()) writer_.join();
  outbox_->Close();
  absl::MutexLock lock(&mu_);
  if (in_flight_ > 0) {
    spdlog::warn(
        "redis: {} taken entries left unfinished at shutdown; they stay pending for another "
        "consumer",
        in_flight_);
  }
}

void RedisWorker::SetLink(bool reader, bool up) {
  absl::MutexLock lock(&mu_);
  (reader ? reader_up_ : writer_up_) = up;
  metrics_.connected.Set(reader_up_ && writer_up_ ? 1 : 0);
}

bool RedisWorker::Held(absl::string_view id) const {
  absl::MutexLock lock(&mu_);
  return held_.contains(id);
}

int RedisWorker::WaitForSlots(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  while (!stop_reading_ && in_flight_ >= options_.max_in_flight) {
    if (changed_.WaitWithDeadline(&mu_, deadline)) break;
  }
  if (stop_reading_) return 0;
  return std::max(0, options_.max_in_flight - in_flight_);
}

void RedisWorker::Pause(absl::Time deadline, bool reader) {
  if (!reader) {
    // The writer keeps trying after stop is requested, until the write deadline.
    outbox_->Sleep(deadline);
    return;
  }
  // changed_ is also signalled when slots free up: keep sleeping until the deadline.
  absl::MutexLock lock(&mu_);
  while (!stop_reading_ && absl::Now() < deadline) changed_.WaitWithDeadline(&mu_, deadline);
}

void RedisWorker::ReaderLoop() {
  std::unique_ptr<RedisConnection> connection;
  bool prepared = false;
  bool first = true;
  bool ever_connected = false;
  bool warned = false;  // about the current outage
  Backoff backoff(options_.min_backoff, options_.max_backoff);
  absl::Time next_recover = absl::InfinitePast();
  absl::Time next_sample = absl::InfinitePast();

  auto stopping = [this] {
    absl::MutexLock lock(&mu_);
    return stop_reading_;
  };
  // A failed call: reconnect when the connection broke, set the queue up again otherwise.
  auto fail = [&](const absl::Status& status) {
    SetLink(/*reader=*/true, false);
    if (!warned) {
      spdlog::warn("redis: {}; retrying", status.message());
      warned = true;
    } else {
      spdlog::debug("redis: {}; retrying", status.message());
    }
    if (absl::IsUnavailable(status)) connection.reset();
    prepared = false;
    Pause(clock_.Now() + backoff.Next(), /*reader=*/true);
  };

  while (!stopping()) {
    if (connection == nullptr) {
      absl::StatusOr<std::unique_ptr<RedisConnection>> opened = connector_("reader");
      if (!opened.ok()) {
        fail(opened.status());
        continue;
      }
      connection = *std::move(opened);
      if (ever_connected) metrics_.reconnects.Increment();
    }
    if (!prepared) {
      if (absl::Status status = queue_->Prepare(*connection, first); !status.ok()) {
        fail(status);
        continue;
      }
      prepared = true;
      first = false;
      ever_connected = true;
      warned = false;
      backoff.Reset();
      SetLink(/*reader=*/true, true);
      spdlog::info("redis: consuming {} at {}", queue_->Describe(), options_.where);
    }

    absl::Time now = clock_.Now();
    if (now >= next_recover) {
      // With every slot taken the pass is skipped: this worker is busy enough.
      next_recover = now + options_.recover_interval;
      const int free = WaitForSlots(now);
      if (free > 0) {
        absl::StatusOr<Recovered> recovered =
            queue_->Recover(*connection, free, [this](absl::string_view id) { return Held(id); });
        if (!recovered.ok()) {
          fail(recovered.status());
          continue;
        }
        metrics_.lost.Increment(recovered->lost);
        metrics_.requeued.Increment(recovered->requeued);
        metrics_.claims.Increment(recovered->entries.size());
        if (!recovered->entries.empty() || recovered->requeued > 0) {
          spdlog::info("redis: took over {} entries left by other consumers",
                       recovered->entries.size() + recovered->requeued);
        }
        for (QueueEntry& entry : recovered->entries) Dispatch(std::move(entry));
      }
    }
    if (now >= next_sample) {
      absl::StatusOr<QueueDepth> depth = queue_->Depth(*connection);
      if (!depth.ok()) {
        fail(depth.status());
        continue;
      }
      metrics_.waiting.Set(static_cast<double>(depth->waiting));
      metrics_.pending.Set(static_cast<double>(depth->pending));
      next_sample = now + options_.sample_interval;
    }

    const absl::Time maintenance = std::min(next_recover, next_sample);
    const int free = WaitForSlots(maintenance);
    if (free == 0) continue;
    now = clock_.Now();
    const absl::Duration block =
        std::clamp(maintenance - now, absl::Milliseconds(10), options_.block);
    absl::StatusOr<std::vector<QueueEntry>> entries =
        queue_->Take(*connection, std::min(free, options_.read_count), block);
    if (!entries.ok()) {
      fail(entries.status());
      continue;
    }
    metrics_.reads.Increment(entries->size());
    for (QueueEntry& entry : *entries) Dispatch(std::move(entry));
  }
}

void RedisWorker::Dispatch(QueueEntry entry) {
  auto job = std::make_unique<Job>();
  job->entry = std::move(entry);
  {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
    ++held_[job->entry.id];
    metrics_.in_flight.Set(in_flight_);
  }
  const absl::Time now = clock_.Now();
  if (!job->entry.envelope.has_value()) {
    metrics_.bad_no_envelope.Increment();
    job->dead_reason = absl::StrCat("the entry has no '", kEnvelopeField, "' field");
    bad_entry_log_->Warn(now, absl::StrCat("entry ", job->entry.id, ": ", job->dead_reason,
                                           "; moved to the dead letters"));
    Finish(std::move(job));
    return;
  }
  absl::StatusOr<wire::RequestEnvelope> envelope = ParseRequestEnvelope(*job->entry.envelope);
  if (!envelope.ok()) {
    metrics_.bad_envelope.Increment();
    job->dead_reason = std::string(envelope.status().message());
    bad_entry_log_->Warn(now, absl::StrCat("entry ", job->entry.id, ": ", job->dead_reason,
                                           "; moved to the dead letters"));
    Finish(std::move(job));
    return;
  }
  if (!queue_->CompletionNeedsEnvelope()) job->entry.envelope.reset();
  job->request_id = envelope->request_id();
  job->reply_key = envelope->reply_key();
  auto shared = std::make_shared<const wire::RequestEnvelope>(*std::move(envelope));
  job->envelope = shared;

  if (job->entry.deliveries > options_.max_deliveries) {
    job->dead_reason = absl::StrCat(
        "delivered ", job->entry.deliveries, " times, more than the ", options_.max_deliveries,
        " allowed: every consumer that took it stopped before answering");
    job->result =
        absl::AbortedError(absl::StrCat("modeld gave up on this request: ", job->dead_reason,
                                        "; it was moved to the dead letters"));
    Finish(std::move(job));
    return;
  }
  if (now >= Deadline(*shared)) {
    metrics_.expired.Increment();
    job->result = absl::DeadlineExceededError(
        "the request's deadline passed before modeld took it from the queue");
    Finish(std::move(job));
    return;
  }
  if (IsQuery(*shared)) {
    // Metadata and readiness are answered here and now, from the service's state: they never
    // wait behind inference in a model's queue.
    metrics_.queries.Increment();
    if (!job->reply_key.empty()) job->reply = AnswerQuery(*shared, service_);
    Finish(std::move(job));
    return;
  }
  if (shared->has_train()) {
    Train(std::move(job));
    return;
  }
  absl::StatusOr<core::InferRequest> request = DecodeEnvelopeRequest(*shared);
  if (!request.ok()) {
    metrics_.bad_request.Increment();
    job->result = request.status();
    Finish(std::move(job));
    return;
  }
  // The callback runs on a model worker thread: it only hands the job to the writer.
  service_.Infer(*std::move(request), [outbox = outbox_, job = std::move(job)](
                                          absl::StatusOr<core::InferResponse> result) mutable {
    job->result = std::move(result);
    outbox->Push(std::move(job));
  });
}

void RedisWorker::Train(std::unique_ptr<Job> job) {
  absl::StatusOr<core::TrainRequest> request = DecodeEnvelopeTrain(*job->envelope);
  if (!request.ok()) {
    metrics_.bad_request.Increment();
    job->result = request.status();
    Finish(std::move(job));
    return;
  }
  // The callback runs on the model's training thread; the reply is encoded there, since the
  // writer encodes inference answers only.
  service_.Train(*std::move(request), [outbox = outbox_, job = std::move(job)](
                                          absl::StatusOr<core::TrainResponse> result) mutable {
    if (result.ok()) {
      job->result = core::InferResponse{};
    } else {
      job->result = result.status();
    }
    if (!job->reply_key.empty()) job->reply = EncodeTrainReply(job->request_id, result);
    outbox->Push(std::move(job));
  });
}

void RedisWorker::Finish(std::unique_ptr<Job> job) { outbox_->Push(std::move(job)); }

void RedisWorker::WriterLoop() {
  std::unique_ptr<RedisConnection> connection;
  bool ever_connected = false;
  bool link_up = false;
  Backoff backoff(options_.min_backoff, options_.max_backoff);
  absl::Time next_beat = absl::InfinitePast();
  std::vector<std::unique_ptr<Job>> batch;  // taken from the outbox, not yet written

  auto fail = [&](const absl::Status& status) {
    SetLink(/*reader=*/false, false);
    if (link_up || !ever_connected) {
      spdlog::warn("redis: writing answers: {}; retrying", status.message());
    }
    link_up = false;
    if (absl::IsUnavailable(status)) connection.reset();
    next_beat = absl::InfinitePast();
    Pause(clock_.Now() + backoff.Next(), /*reader=*/false);
  };

  while (true) {
    if (outbox_->stopping() && batch.empty()) {
      absl::MutexLock lock(&mu_);
      if (in_flight_ == 0) break;
    }
    const absl::Time now = clock_.Now();
    const absl::Time wake =
        connection == nullptr || !batch.empty() ? now : std::min(next_beat, now + absl::Seconds(1));
    if (!outbox_->Take(wake, options_.write_batch, batch)) break;

    if (connection == nullptr) {
      absl::StatusOr<std::unique_ptr<RedisConnection>> opened = connector_("writer");
      if (!opened.ok()) {
        fail(opened.status());
        continue;
      }
      connection = *std::move(opened);
      if (ever_connected) metrics_.reconnects.Increment();
    }
    if (clock_.Now() >= next_beat) {
      if (absl::Status status = queue_->Heartbeat(*connection); !status.ok()) {
        fail(status);
        continue;
      }
      next_beat = clock_.Now() + queue_->HeartbeatInterval();
    }
    if (!link_up) {
      SetLink(/*reader=*/false, true);
      link_up = true;
      ever_connected = true;
      backoff.Reset();
    }
    if (batch.empty()) continue;

    std::vector<Completion> completions;
    completions.reserve(batch.size());
    for (const std::unique_ptr<Job>& job : batch) {
      if (!job->reply_key.empty() && job->reply.empty()) {
        job->reply = EncodeReply(job->request_id, job->result);
      }
      completions.push_back({&job->entry, job->reply_key, job->reply, job->dead_reason});
    }
    absl::StatusOr<std::vector<CompletionOutcome>> outcomes =
        queue_->Complete(*connection, completions);
    if (!outcomes.ok()) {
      // The batch stays and is written again once Redis is back: its entries are still
      // this consumer's unless another took them over (the script then skips them).
      fail(outcomes.status());
      continue;
    }
    Settle(batch, *outcomes);
    batch.clear();
  }
  SetLink(/*reader=*/false, false);
}

void RedisWorker::Settle(const std::vector<std::unique_ptr<Job>>& batch,
                         const std::vector<CompletionOutcome>& outcomes) {
  const absl::Time now = clock_.Now();
  for (size_t i = 0; i < batch.size(); ++i) {
    const Job& job = *batch[i];
    const CompletionOutcome& outcome = outcomes[i];
    switch (outcome.kind) {
      case CompletionOutcome::Kind::kDone:
      case CompletionOutcome::Kind::kReplyFailed:
        metrics_.acks.Increment();
        if (!job.dead_reason.empty()) {
          (job.entry.deliveries > options_.max_deliveries ? metrics_.dead_max_deliveries
                                                          : metrics_.dead_bad_envelope)
              .Increment();
        }
        if (outcome.kind == CompletionOutcome::Kind::kReplyFailed) {
          metrics_.reply_failures.Increment();
          reply_failure_log_->Warn(
              now, absl::StrCat("Redis refused the reply to request '", job.request_id,
                                "' on key '", job.reply_key, "': ", outcome.error));
        }
        break;
      case CompletionOutcome::Kind::kStale:
        metrics_.stale.Increment();
        break;
      case CompletionOutcome::Kind::kFailed:
        metrics_.reply_failures.Increment();
        reply_failure_log_->Warn(
            now, absl::StrCat("Redis refused to finish entry ", job.entry.id, ": ", outcome.error,
                              "; it stays pending until it is taken over"));
        break;
    }
  }
  absl::MutexLock lock(&mu_);
  for (const std::unique_ptr<Job>& job : batch) {
    --in_flight_;
    auto it = held_.find(job->entry.id);
    if (it != held_.end() && --it->second == 0) held_.erase(it);
  }
  metrics_.in_flight.Set(in_flight_);
  changed_.SignalAll();
}

}  // namespace modeld::transport::redis
