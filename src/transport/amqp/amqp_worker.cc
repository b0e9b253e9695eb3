#include "transport/amqp/amqp_worker.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "transport/amqp/amqp_job.h"
#include "transport/message/connection_loop.h"
#include "transport/message/envelope.h"

namespace modeld::transport::amqp {

namespace {

constexpr absl::Duration kEventWait = absl::Milliseconds(250);
constexpr absl::Duration kPrefetchFitInterval = absl::Milliseconds(100);
constexpr char kReplyType[] = "modeld.redis.ReplyEnvelope";

// The earlier of the envelope's deadline and the message's header.
absl::Time DeadlineOf(const message::wire::RequestEnvelope& envelope, const Delivery& delivery) {
  absl::Time deadline = message::Deadline(envelope);
  if (delivery.deadline_ms.has_value() && *delivery.deadline_ms > 0) {
    deadline = std::min(deadline, absl::FromUnixMillis(*delivery.deadline_ms));
  }
  return deadline;
}

}  // namespace

AmqpWorker::AmqpWorker(AmqpWorkerOptions options, LinkFactory links,
                       service::InferenceService& service, const common::Clock& clock,
                       metrics::Registry* registry)
    : options_(std::move(options)),
      links_(std::move(links)),
      service_(service),
      clock_(clock),
      metrics_(registry),
      outbox_(std::make_shared<AmqpOutbox>()) {}

AmqpWorker::~AmqpWorker() { Stop(absl::Now()); }

void AmqpWorker::Start() {
  thread_ = std::thread([this] { Loop(); });
}

bool AmqpWorker::Ready() const { return ready_.load(); }

void AmqpWorker::StopReading() {
  stop_.StopReading();
  outbox_->Wake();
}

void AmqpWorker::Stop(absl::Time deadline) {
  stop_.Stop(deadline);
  outbox_->Wake();
  if (thread_.joinable()) thread_.join();
  for (std::unique_ptr<AmqpJob>& job : outbox_->Close()) Release(*job);
}

bool AmqpWorker::Stopping() const {
  absl::Time deadline;
  if (!stop_.stopping(&deadline)) return false;
  // Done when nothing is held, or the deadline passed, or there is no link to ack on.
  return in_flight_.load() == 0 || clock_.Now() >= deadline || link_ == nullptr;
}

void AmqpWorker::Loop() {
  message::ConnectionLoop loop;
  loop.name = "amqp";
  loop.where = options_.where;
  loop.min_backoff = options_.min_backoff;
  loop.max_backoff = options_.max_backoff;
  loop.connected = [this] { return link_ != nullptr; };
  loop.connect = [this] { return Connect(); };
  loop.consuming = [this] {
    return absl::StrCat("consuming '", options_.topology.queue, "' on ", options_.where,
                        " (prefetch ", prefetch_, ")");
  };
  loop.step = [this] { return Step(); };
  loop.lost = [this] { LinkLost(); };
  loop.done = [this] { return Stopping(); };
  message::RunConnectionLoop(loop, stop_, clock_, metrics_.reconnects);
  if (link_ != nullptr) {
    (void)link_->Cancel();
    link_->Close();
    link_.reset();
  }
  ready_ = false;
  metrics_.connected.Set(0);
  for (auto& [sequence, job] : unconfirmed_) Release(*job);
  unconfirmed_.clear();
}

absl::Status AmqpWorker::Connect() {
  link_ = links_();
  ++generation_;
  RETURN_IF_ERROR(link_->Open());
  RETURN_IF_ERROR(link_->Declare(options_.topology));
  prefetch_ = options_.prefetch;
  RETURN_IF_ERROR(link_->SetPrefetch(prefetch_));
  metrics_.prefetch.Set(prefetch_);
  const bool reading = !stop_.reading_stopped();
  if (reading) RETURN_IF_ERROR(link_->Consume(options_.topology.queue));
  consuming_ = reading;
  ready_ = reading;
  metrics_.connected.Set(reading ? 1 : 0);
  return absl::OkStatus();
}

void AmqpWorker::LinkLost() {
  ready_ = false;
  consuming_ = false;
  metrics_.connected.Set(0);
  if (link_ != nullptr) link_->Close();
  link_.reset();
  // The broker delivers every unacknowledged message again: what was held is let go.
  for (auto& [sequence, job] : unconfirmed_) {
    metrics_.dropped.Increment();
    Release(*job);
  }
  unconfirmed_.clear();
}

absl::Status AmqpWorker::Step() {
  if (stop_.reading_stopped() && consuming_) {
    consuming_ = false;
    ready_ = false;
    metrics_.connected.Set(0);
    RETURN_IF_ERROR(link_->Cancel());
  }
  // Once one fails the link is lost: the rest are let go too (the broker delivers them again).
  absl::Status completed;
  for (std::unique_ptr<AmqpJob>& job : outbox_->TakeAll()) {
    if (completed.ok()) {
      completed = Complete(std::move(job));
    } else {
      metrics_.dropped.Increment();
      Release(*job);
    }
  }
  RETURN_IF_ERROR(completed);
  RETURN_IF_ERROR(FitPrefetch());
  ASSIGN_OR_RETURN(std::optional<Event> event, link_->Next(kEventWait, outbox_->wake_fd()));
  if (event.has_value()) RETURN_IF_ERROR(HandleEvent(*event));
  return absl::OkStatus();
}

absl::Status AmqpWorker::FitPrefetch() {
  if (options_.admission == nullptr || !consuming_) return absl::OkStatus();
  const absl::Time now = clock_.Now();
  if (now < next_prefetch_fit_) return absl::OkStatus();
  next_prefetch_fit_ = now + kPrefetchFitInterval;
  // What this worker holds plus what the process-wide cap has free, never 0 (0 would mean
  // "no limit" to the broker). Free() is INT64_MAX without a limit: bounded before the sum.
  const int64_t free = std::min<int64_t>(options_.admission->Free(), options_.prefetch);
  const int64_t room = in_flight_.load() + free;
  const int fitted = static_cast<int>(std::clamp<int64_t>(room, 1, options_.prefetch));
  if (fitted == prefetch_) return absl::OkStatus();
  prefetch_ = fitted;
  metrics_.prefetch.Set(prefetch_);
  return link_->SetPrefetch(prefetch_);
}

absl::Status AmqpWorker::HandleEvent(const Event& event) {
  switch (event.kind) {
    case Event::Kind::kDelivery:
      Dispatch(event.delivery);
      return absl::OkStatus();
    case Event::Kind::kConfirmed:
      return Confirmed(event.sequence, event.multiple, /*refused=*/false);
    case Event::Kind::kRefused:
      return Confirmed(event.sequence, event.multiple, /*refused=*/true);
    case Event::Kind::kReturned:
      metrics_.replies_returned.Increment();
      returned_log_.Warn(clock_.Now(),
                         absl::StrCat("a reply to '", event.routing_key, "' reached no queue (",
                                      event.text, "): its requester is gone"));
      return absl::OkStatus();
    case Event::Kind::kCancelled:
      return absl::UnavailableError(absl::StrCat("the broker cancelled the consumer of '",
                                                 options_.topology.queue,
                                                 "' (was the queue deleted?)"));
  }
  return absl::OkStatus();
}

absl::Status AmqpWorker::Confirmed(uint64_t sequence, bool multiple, bool refused) {
  auto end = multiple ? unconfirmed_.upper_bound(sequence) : unconfirmed_.find(sequence);
  auto begin = multiple ? unconfirmed_.begin() : end;
  if (!multiple) {
    if (end == unconfirmed_.end()) return absl::OkStatus();  // a publish nobody waits on
    ++end;
  }
  absl::Status status;
  for (auto it = begin; it != end; ++it) {
    AmqpJob& job = *it->second;
    if (refused) {
      // The broker did not take the reply (or the counted copy): the request goes back.
      metrics_.replies_refused.Increment();
      if (status.ok()) status = link_->Reject(job.delivery.tag, /*requeue=*/true);
    } else {
      if (job.action == AmqpJob::Action::kAnswer) metrics_.replies.Increment();
      if (status.ok()) status = link_->Ack(job.delivery.tag);
      metrics_.acks.Increment();
    }
    Release(job);
  }
  unconfirmed_.erase(begin, end);
  return status;
}

void AmqpWorker::Release(AmqpJob& job) {
  if (job.slot.has_value()) job.slot.reset();
  if (job.generation != 0) {
    job.generation = 0;
    metrics_.in_flight.Set(static_cast<double>(--in_flight_));
  }
}

void AmqpWorker::Dispatch(Delivery delivery) {
  auto job = std::make_unique<AmqpJob>();
  job->delivery = std::move(delivery);
  job->generation = generation_;
  if (options_.admission != nullptr) job->slot.emplace(options_.admission->Hold());
  metrics_.in_flight.Set(static_cast<double>(++in_flight_));
  metrics_.deliveries.Increment();
  const Delivery& d = job->delivery;
  if (d.redelivered) metrics_.redeliveries.Increment();
  const absl::Time now = clock_.Now();

  // How often it has been delivered, this time included.
  bool count_again = false;
  if (d.quorum_count.has_value()) {
    job->deliveries = *d.quorum_count + 1;
  } else {
    job->deliveries = std::max<int64_t>(1, d.modeld_deliveries.value_or(1));
    if (d.redelivered) {
      ++job->deliveries;
      count_again = true;
    }
  }
  absl::StatusOr<message::wire::RequestEnvelope> envelope = message::ParseRequestEnvelope(d.body);
  if (envelope.ok()) job->request_id = envelope->request_id();

  if (job->deliveries > options_.max_deliveries) {
    metrics_.dead_max_deliveries.Increment();
    const std::string why = absl::StrCat(
        "delivered ", job->deliveries, " times, more than the ", options_.max_deliveries,
        " allowed (--amqp-max-deliveries): every consumer that took it stopped before answering");
    bad_message_log_.Warn(now, absl::StrCat("message ", d.correlation_id, ": ", why,
                                            "; rejected into the dead letters"));
    job->action = AmqpJob::Action::kDeadLetter;
    job->reply = message::EncodeReply(
        job->request_id, absl::AbortedError(absl::StrCat("modeld gave up on this request: ", why,
                                                         "; it went to the dead letters")));
    outbox_->Push(std::move(job));
    return;
  }
  if (count_again) {
    // Put back with the count in a header, so the count survives this process.
    job->action = AmqpJob::Action::kCount;
    outbox_->Push(std::move(job));
    return;
  }
  if (!envelope.ok()) {
    metrics_.dead_bad_message.Increment();
    bad_message_log_.Warn(
        now, absl::StrCat("message ", d.correlation_id, ": ", envelope.status().message(),
                          "; rejected into the dead letters"));
    job->action = AmqpJob::Action::kDeadLetter;
    job->reply = message::EncodeReply("", envelope.status());
    outbox_->Push(std::move(job));
    return;
  }
  auto shared = std::make_shared<const message::wire::RequestEnvelope>(*std::move(envelope));
  job->envelope = shared;
  if (d.reply_to.empty() && !shared->has_train()) {
    metrics_.no_reply_to.Increment();
    bad_message_log_.Warn(now, absl::StrCat("message ", d.correlation_id,
                                            ": no reply_to, so nobody can be answered; "
                                            "acknowledged without running"));
    job->action = AmqpJob::Action::kAckOnly;
    outbox_->Push(std::move(job));
    return;
  }
  if (absl::Status valid = message::CheckEnvelope(*shared); !valid.ok()) {
    metrics_.bad_request.Increment();
    job->result = std::move(valid);
    outbox_->Push(std::move(job));
    return;
  }
  const absl::Time deadline = DeadlineOf(*shared, d);
  if (now >= deadline) {
    metrics_.expired.Increment();
    job->result = absl::DeadlineExceededError(
        "the request's deadline passed before modeld took it from the queue");
    outbox_->Push(std::move(job));
    return;
  }
  if (message::IsQuery(*shared)) {
    metrics_.queries.Increment();
    job->reply = message::AnswerQuery(*shared, service_);
    outbox_->Push(std::move(job));
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
    outbox_->Push(std::move(job));
    return;
  }
  request->deadline = std::min(request->deadline, deadline);
  // The callback runs on a model thread: it only hands the job back to this worker's thread.
  service_.Infer(*std::move(request), [outbox = outbox_, job = std::move(job)](
                                          absl::StatusOr<core::InferResponse> result) mutable {
    job->result = std::move(result);
    outbox->Push(std::move(job));
  });
}

void AmqpWorker::Train(std::unique_ptr<AmqpJob> job) {
  absl::StatusOr<core::TrainRequest> request = message::DecodeEnvelopeTrain(*job->envelope);
  if (!request.ok()) {
    metrics_.bad_request.Increment();
    job->result = request.status();
    outbox_->Push(std::move(job));
    return;
  }
  service_.Train(*std::move(request), [outbox = outbox_, job = std::move(job)](
                                          absl::StatusOr<core::TrainResponse> result) mutable {
    job->reply = message::EncodeTrainReply(job->request_id, result);
    if (job->delivery.reply_to.empty()) job->action = AmqpJob::Action::kAckOnly;
    outbox->Push(std::move(job));
  });
}

absl::Status AmqpWorker::Complete(std::unique_ptr<AmqpJob> job) {
  if (job->generation != generation_ || link_ == nullptr) {
    // Delivered on a connection that is gone: the broker delivers the message again.
    metrics_.dropped.Increment();
    Release(*job);
    return absl::OkStatus();
  }
  const Delivery& d = job->delivery;
  Outgoing out;
  out.persistent = d.persistent;
  switch (job->action) {
    case AmqpJob::Action::kAckOnly: {
      metrics_.acks.Increment();
      Release(*job);
      return link_->Ack(d.tag);
    }
    case AmqpJob::Action::kDeadLetter: {
      if (!d.reply_to.empty()) {
        out.routing_key = d.reply_to;
        out.body = *job->reply;
        out.correlation_id = d.correlation_id.empty() ? d.message_id : d.correlation_id;
        out.type = kReplyType;
        out.mandatory = true;
        if (absl::Status sent = link_->Publish(out).status(); !sent.ok()) {
          metrics_.dropped.Increment();
          Release(*job);
          return sent;
        }
      }
      Release(*job);
      return link_->Reject(d.tag, /*requeue=*/false);
    }
    case AmqpJob::Action::kCount: {
      out.routing_key = options_.topology.queue;
      out.body = d.body;
      out.correlation_id = d.correlation_id;
      out.message_id = d.message_id;
      out.reply_to = d.reply_to;
      out.priority = d.priority;
      out.headers[kDeliveriesHeader] = job->deliveries;
      if (d.deadline_ms.has_value()) out.headers[kDeadlineHeader] = *d.deadline_ms;
      break;
    }
    case AmqpJob::Action::kAnswer: {
      if (d.reply_to.empty()) {  // a training step refused before it ran: nobody to tell
        metrics_.acks.Increment();
        Release(*job);
        return link_->Ack(d.tag);
      }
      out.routing_key = d.reply_to;
      out.body = job->reply.has_value() ? *std::move(job->reply)
                                        : message::EncodeReply(job->request_id, job->result);
      out.correlation_id = d.correlation_id.empty() ? d.message_id : d.correlation_id;
      out.type = kReplyType;
      out.mandatory = true;
      job->result = absl::UnknownError("sent");  // the response's tensors are encoded: free them
      job->envelope.reset();
      job->slot.reset();  // the answer is handed to the broker: its admission slot is free
      break;
    }
  }
  absl::StatusOr<uint64_t> sequence = link_->Publish(out);
  if (!sequence.ok()) {
    // The link failed: the broker delivers the message again.
    metrics_.dropped.Increment();
    Release(*job);
    return sequence.status();
  }
  unconfirmed_[*sequence] = std::move(job);
  return absl::OkStatus();
}

}  // namespace modeld::transport::amqp
