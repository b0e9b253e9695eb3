#include "transport/redis/redis_worker.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "transport/message/backoff.h"
#include "transport/message/envelope.h"

namespace modeld::transport::redis {

RedisWorker::RedisWorker(RedisWorkerOptions options, std::unique_ptr<WorkQueue> queue,
                         RedisConnector connector, service::InferenceService& service,
                         const common::Clock& clock, metrics::Registry* registry)
    : options_(std::move(options)),
      queue_(std::move(queue)),
      connector_(std::move(connector)),
      service_(service),
      clock_(clock),
      metrics_(registry),
      outbox_(std::make_shared<Outbox>()),
      bad_entry_log_(std::make_unique<message::LogThrottle>("redis")),
      reply_failure_log_(std::make_unique<message::LogThrottle>("redis")) {}

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

int RedisWorker::AdmissibleSlots(int free) const {
  if (free == 0 || options_.admission == nullptr) return free;
  int64_t admissible = options_.admission->Free();
  if (admissible == 0) {
    admissible = options_.admission->WaitForFree(absl::Now() + absl::Milliseconds(100));
  }
  return static_cast<int>(std::min<int64_t>(free, admissible));
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

// What the reader thread keeps between its steps.
struct RedisWorker::ReaderState {
  ReaderState(absl::Duration min_backoff, absl::Duration max_backoff)
      : backoff(min_backoff, max_backoff) {}

  std::unique_ptr<RedisConnection> connection;
  bool prepared = false;  // the queue is set up on this connection
  bool first = true;      // no Prepare has succeeded yet (it then creates the group)
  bool ever_connected = false;
  bool warned = false;  // about the current outage
  message::Backoff backoff;
  absl::Time next_recover = absl::InfinitePast();
  absl::Time next_sample = absl::InfinitePast();
};

void RedisWorker::ReaderLoop() {
  ReaderState state(options_.min_backoff, options_.max_backoff);
  while (!ReadingStopped()) {
    if (absl::Status status = ReaderStep(state); !status.ok()) ReaderFailed(state, status);
  }
}

bool RedisWorker::ReadingStopped() const {
  absl::MutexLock lock(&mu_);
  return stop_reading_;
}

absl::Status RedisWorker::ReaderStep(ReaderState& state) {
  RETURN_IF_ERROR(ConnectReader(state));
  RETURN_IF_ERROR(PrepareQueue(state));
  const absl::Time now = clock_.Now();
  if (now >= state.next_recover) RETURN_IF_ERROR(RecoverAbandoned(state, now));
  if (now >= state.next_sample) RETURN_IF_ERROR(SampleDepth(state, now));
  return TakeEntries(state);
}

absl::Status RedisWorker::ConnectReader(ReaderState& state) {
  if (state.connection != nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(state.connection, connector_("reader"));
  if (state.ever_connected) metrics_.reconnects.Increment();
  return absl::OkStatus();
}

absl::Status RedisWorker::PrepareQueue(ReaderState& state) {
  if (state.prepared) return absl::OkStatus();
  RETURN_IF_ERROR(queue_->Prepare(*state.connection, state.first));
  state.prepared = true;
  state.first = false;
  state.ever_connected = true;
  state.warned = false;
  state.backoff.Reset();
  SetLink(/*reader=*/true, true);
  spdlog::info("redis: consuming {} at {}", queue_->Describe(), options_.where);
  return absl::OkStatus();
}

absl::Status RedisWorker::RecoverAbandoned(ReaderState& state, absl::Time now) {
  state.next_recover = now + options_.recover_interval;
  // With every slot taken the pass is skipped: this worker is busy enough.
  const int free = AdmissibleSlots(WaitForSlots(now));
  if (free == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(
      Recovered recovered,
      queue_->Recover(*state.connection, free, [this](absl::string_view id) { return Held(id); }));
  metrics_.lost.Increment(recovered.lost);
  metrics_.requeued.Increment(recovered.requeued);
  metrics_.claims.Increment(recovered.entries.size());
  if (!recovered.entries.empty() || recovered.requeued > 0) {
    spdlog::info("redis: took over {} entries left by other consumers",
                 recovered.entries.size() + recovered.requeued);
  }
  for (QueueEntry& entry : recovered.entries) Dispatch(std::move(entry));
  return absl::OkStatus();
}

absl::Status RedisWorker::SampleDepth(ReaderState& state, absl::Time now) {
  ASSIGN_OR_RETURN(const QueueDepth depth, queue_->Depth(*state.connection));
  metrics_.waiting.Set(static_cast<double>(depth.waiting));
  metrics_.pending.Set(static_cast<double>(depth.pending));
  state.next_sample = now + options_.sample_interval;
  return absl::OkStatus();
}

absl::Status RedisWorker::TakeEntries(ReaderState& state) {
  // Blocks no later than the next maintenance pass, and only while there is room.
  const absl::Time maintenance = std::min(state.next_recover, state.next_sample);
  const int free = AdmissibleSlots(WaitForSlots(maintenance));
  if (free == 0) return absl::OkStatus();
  const absl::Duration block =
      std::clamp(maintenance - clock_.Now(), absl::Milliseconds(10), options_.block);
  ASSIGN_OR_RETURN(std::vector<QueueEntry> entries,
                   queue_->Take(*state.connection, std::min(free, options_.read_count), block));
  metrics_.reads.Increment(entries.size());
  for (QueueEntry& entry : entries) Dispatch(std::move(entry));
  return absl::OkStatus();
}

void RedisWorker::ReaderFailed(ReaderState& state, const absl::Status& status) {
  SetLink(/*reader=*/true, false);
  if (!state.warned) {
    spdlog::warn("redis: {}; retrying", status.message());
    state.warned = true;
  } else {
    spdlog::debug("redis: {}; retrying", status.message());
  }
  // Reconnect when the connection broke; set the queue up again otherwise.
  if (absl::IsUnavailable(status)) state.connection.reset();
  state.prepared = false;
  Pause(clock_.Now() + state.backoff.Next(), /*reader=*/true);
}

void RedisWorker::Dispatch(QueueEntry entry) {
  auto job = std::make_unique<RedisJob>();
  job->entry = std::move(entry);
  if (options_.admission != nullptr) job->slot.emplace(options_.admission->Hold());
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
  absl::StatusOr<message::wire::RequestEnvelope> envelope =
      message::ParseRequestEnvelope(*job->entry.envelope);
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
  auto shared = std::make_shared<const message::wire::RequestEnvelope>(*std::move(envelope));
  job->envelope = shared;

  if (absl::Status valid = message::CheckEnvelope(*shared); !valid.ok()) {
    metrics_.bad_request.Increment();
    job->result = std::move(valid);
    Finish(std::move(job));
    return;
  }
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
  if (now >= message::Deadline(*shared)) {
    metrics_.expired.Increment();
    job->result = absl::DeadlineExceededError(
        "the request's deadline passed before modeld took it from the queue");
    Finish(std::move(job));
    return;
  }
  if (message::IsQuery(*shared)) {
    // Metadata and readiness are answered here and now, from the service's state: they never
    // wait behind inference in a model's queue.
    metrics_.queries.Increment();
    if (!job->reply_key.empty()) job->reply = message::AnswerQuery(*shared, service_);
    Finish(std::move(job));
    return;
  }
  if (shared->has_train()) {
    Train(std::move(job));
    return;
  }
  absl::StatusOr<core::InferRequest> request = message::DecodeEnvelopeRequest(*shared);
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

void RedisWorker::Train(std::unique_ptr<RedisJob> job) {
  absl::StatusOr<core::TrainRequest> request = message::DecodeEnvelopeTrain(*job->envelope);
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
    if (!job->reply_key.empty()) job->reply = message::EncodeTrainReply(job->request_id, result);
    outbox->Push(std::move(job));
  });
}

void RedisWorker::Finish(std::unique_ptr<RedisJob> job) { outbox_->Push(std::move(job)); }

void RedisWorker::WriterLoop() {
  std::unique_ptr<RedisConnection> connection;
  bool ever_connected = false;
  bool link_up = false;
  message::Backoff backoff(options_.min_backoff, options_.max_backoff);
  absl::Time next_beat = absl::InfinitePast();
  std::vector<std::unique_ptr<RedisJob>> batch;  // taken from the outbox, not yet written

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
    for (const std::unique_ptr<RedisJob>& job : batch) {
      if (!job->reply_key.empty() && job->reply.empty()) {
        job->reply = message::EncodeReply(job->request_id, job->result);
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

void RedisWorker::Settle(const std::vector<std::unique_ptr<RedisJob>>& batch,
                         const std::vector<CompletionOutcome>& outcomes) {
  const absl::Time now = clock_.Now();
  for (size_t i = 0; i < batch.size(); ++i) {
    const RedisJob& job = *batch[i];
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
  for (const std::unique_ptr<RedisJob>& job : batch) {
    --in_flight_;
    auto it = held_.find(job->entry.id);
    if (it != held_.end() && --it->second == 0) held_.erase(it);
  }
  metrics_.in_flight.Set(in_flight_);
  changed_.SignalAll();
}

}  // namespace modeld::transport::redis
