#include "transport/celery/amqp/amqp_celery_broker.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "rapidjson/document.h"
#include "transport/http/json_util.h"

namespace modeld::transport::celery {
namespace {

constexpr char kJson[] = "application/json";
constexpr char kUtf8[] = "utf-8";

// The protocol's headers from the delivery's header table, with its properties.
absl::StatusOr<TaskHeaders> ReadHeaders(const amqp::Delivery& delivery, int max_json_depth) {
  if (!delivery.headers_error.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the message's AMQP headers cannot be read: ", delivery.headers_error));
  }
  rapidjson::Document json;
  if (!delivery.headers_json.empty()) {
    RETURN_IF_ERROR(http::ParseJson(delivery.headers_json, json, max_json_depth));
  }
  if (delivery.headers_json.empty() || (json.IsObject() && json.ObjectEmpty())) {
    return absl::InvalidArgumentError("not a Celery task message (no headers)");
  }
  ASSIGN_OR_RETURN(TaskHeaders headers, HeadersFromJson(json));
  headers.correlation_id = delivery.correlation_id;
  headers.reply_to = delivery.reply_to;
  headers.content_type = delivery.content_type;
  headers.content_encoding = delivery.content_encoding;
  return headers;
}

}  // namespace

AmqpCeleryBroker::AmqpCeleryBroker(AmqpCeleryBrokerOptions options)
    : options_(std::move(options)) {}

AmqpCeleryBroker::~AmqpCeleryBroker() { Close(); }

absl::Status AmqpCeleryBroker::CheckOpen() const {
  if (link_ == nullptr) return absl::FailedPreconditionError("the Celery AMQP broker is not open");
  return absl::OkStatus();
}

absl::Status AmqpCeleryBroker::Open(const std::string& queue) {
  if (link_ != nullptr) {
    return absl::FailedPreconditionError("the Celery AMQP broker is open already");
  }
  link_ = options_.links();
  queue_ = queue;
  unconfirmed_.clear();
  refused_.reset();
  cancelled_ = false;
  kept_.clear();
  amqp::Topology topology;
  topology.queue = queue;
  topology.dead_letters = false;
  topology.bind_exchange = queue;
  topology.quorum = options_.quorum;
  topology.max_priority = options_.max_priority;
  absl::Status status = link_->Open();
  if (status.ok()) status = link_->Declare(topology);
  if (!status.ok()) Close();
  return status;
}

absl::Status AmqpCeleryBroker::Consume() {
  RETURN_IF_ERROR(CheckOpen());
  RETURN_IF_ERROR(link_->Consume(queue_));
  cancelled_ = false;
  return absl::OkStatus();
}

absl::Status AmqpCeleryBroker::Cancel() {
  RETURN_IF_ERROR(CheckOpen());
  return link_->Cancel();
}

absl::Status AmqpCeleryBroker::SetPrefetch(int count) {
  RETURN_IF_ERROR(CheckOpen());
  return link_->SetPrefetch(std::max(count, 1));
}

absl::StatusOr<std::optional<TaskDelivery>> AmqpCeleryBroker::Next(absl::Duration timeout,
                                                                   int wake_fd) {
  RETURN_IF_ERROR(CheckOpen());
  if (!kept_.empty()) {
    TaskDelivery task = std::move(kept_.front());
    kept_.pop_front();
    return task;
  }
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (cancelled_) {
      return absl::UnavailableError(absl::StrCat("the broker cancelled the consumer of '", queue_,
                                                 "' (was the queue deleted?)"));
    }
    ASSIGN_OR_RETURN(std::optional<amqp::Event> event,
                     link_->Next(std::max(deadline - absl::Now(), absl::ZeroDuration()), wake_fd));
    if (!event.has_value()) return std::nullopt;  // the time is up, or wake_fd
    if (event->kind == amqp::Event::Kind::kDelivery) return ToTask(std::move(event->delivery));
    Note(*event);
    if (!cancelled_ && absl::Now() >= deadline) return std::nullopt;
  }
}

absl::Status AmqpCeleryBroker::Publish(const OutgoingTask& task) {
  RETURN_IF_ERROR(CheckOpen());
  amqp::Outgoing message;
  message.routing_key = task.queue;
  message.body = task.body;
  message.content_type = kJson;
  message.content_encoding = kUtf8;
  message.headers_json = task.headers_json;
  message.correlation_id = task.correlation_id;
  message.reply_to = task.reply_to;
  message.priority = task.priority;
  message.persistent = true;
  message.mandatory = true;
  return Send(message, absl::StrCat("the task message ", task.correlation_id, " to queue '",
                                    task.queue, "'"));
}

absl::Status AmqpCeleryBroker::Reply(const std::string& reply_to, const std::string& task_id,
                                     const std::string& document) {
  RETURN_IF_ERROR(CheckOpen());
  amqp::Outgoing message;
  message.routing_key = reply_to;
  message.body = document;
  message.content_type = kJson;
  message.content_encoding = kUtf8;
  message.correlation_id = task_id;
  message.persistent = false;  // as Celery's rpc:// backend publishes results
  return Send(message, absl::StrCat("the result of task ", task_id, " to queue '", reply_to, "'"));
}

absl::Status AmqpCeleryBroker::Send(const amqp::Outgoing& message, std::string what) {
  ASSIGN_OR_RETURN(const uint64_t sequence, link_->Publish(message));
  unconfirmed_.emplace(sequence, std::move(what));
  return absl::OkStatus();
}

absl::Status AmqpCeleryBroker::Flush() {
  RETURN_IF_ERROR(CheckOpen());
  const absl::Time deadline = absl::Now() + options_.flush_timeout;
  while (!unconfirmed_.empty()) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::UnavailableError(absl::StrCat("the broker did not confirm ", unconfirmed_.size(),
                                                 " publish(es) within ",
                                                 absl::FormatDuration(options_.flush_timeout),
                                                 ", the first ", unconfirmed_.begin()->second));
    }
    // No wake_fd: the worker must not go on before its publishes are safe.
    ASSIGN_OR_RETURN(std::optional<amqp::Event> event, link_->Next(left, /*wake_fd=*/-1));
    if (!event.has_value()) continue;
    if (event->kind == amqp::Event::Kind::kDelivery) {
      kept_.push_back(ToTask(std::move(event->delivery)));
      continue;
    }
    Note(*event);
  }
  if (refused_.has_value()) {
    absl::Status status = *std::move(refused_);
    refused_.reset();
    return status;
  }
  return absl::OkStatus();
}

void AmqpCeleryBroker::Note(const amqp::Event& event) {
  switch (event.kind) {
    case amqp::Event::Kind::kDelivery:
      return;
    case amqp::Event::Kind::kConfirmed:
    case amqp::Event::Kind::kRefused: {
      // One publish, or (multiple) every one up to `sequence`.
      auto begin = unconfirmed_.begin();
      auto end = unconfirmed_.upper_bound(event.sequence);
      if (!event.multiple) {
        begin = unconfirmed_.find(event.sequence);
        end = begin == unconfirmed_.end() ? begin : std::next(begin);
      }
      if (event.kind == amqp::Event::Kind::kRefused && begin != end && !refused_.has_value()) {
        refused_ = absl::FailedPreconditionError(
            absl::StrCat("the broker refused (basic.nack) ", begin->second));
      }
      unconfirmed_.erase(begin, end);
      return;
    }
    case amqp::Event::Kind::kReturned:
      ++returned_;
      returned_log_.Warn(
          absl::Now(),
          absl::StrCat("a task message to '", event.routing_key, "' reached no queue (", event.text,
                       ") and is lost: declare that queue (start its worker) first"));
      return;
    case amqp::Event::Kind::kCancelled:
      cancelled_ = true;
      return;
  }
}

TaskDelivery AmqpCeleryBroker::ToTask(amqp::Delivery delivery) const {
  TaskDelivery task;
  task.tag = delivery.tag;
  task.redelivered = delivery.redelivered;
  task.priority = delivery.priority;
  task.headers = ReadHeaders(delivery, options_.max_json_depth);
  task.body = std::move(delivery.body);
  return task;
}

absl::Status AmqpCeleryBroker::Ack(uint64_t tag) {
  RETURN_IF_ERROR(CheckOpen());
  return link_->Ack(tag);
}

absl::Status AmqpCeleryBroker::DeadLetter(uint64_t tag, absl::string_view /*reason*/) {
  RETURN_IF_ERROR(CheckOpen());
  return link_->Reject(tag, /*requeue=*/false);
}

void AmqpCeleryBroker::Close() {
  if (link_ == nullptr) return;
  link_->Close();
  link_.reset();
  unconfirmed_.clear();
  refused_.reset();
  kept_.clear();
}

}  // namespace modeld::transport::celery
