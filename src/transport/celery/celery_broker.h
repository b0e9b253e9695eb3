// CeleryBroker: the Celery worker's view of its broker (docs/design/celery.md, section 3):
// take task messages from the queue, acknowledge them late, dead-letter the ones that must
// never run, and publish task messages (a chain's next step) and rpc:// results.
// Implementations: AmqpCeleryBroker (RabbitMQ, over transport/amqp's AmqpLink) and
// RedisCeleryBroker (kombu's Redis layout: lists, the unacked hash and index).
//
// Not thread-safe: the worker's one loop thread makes every call (an implementation may run
// threads of its own inside). Errors: UNAVAILABLE when the connection broke (the worker
// calls Close, drops what it held, and opens a new broker from its factory; what was not
// acknowledged is delivered again), UNAUTHENTICATED / PERMISSION_DENIED for refused
// credentials, FAILED_PRECONDITION for a refusal by the broker, with the broker's text.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "transport/celery/task_message.h"

namespace modeld::transport::celery {

// One task message taken from the queue.
struct TaskDelivery {
  uint64_t tag = 0;  // the broker's handle for Ack and DeadLetter; unique per broker object
  bool redelivered = false;
  // The protocol's headers with the message's properties (correlation_id, reply_to,
  // content_type, content_encoding) filled in. An error when the message's wrapper or headers
  // do not parse (INVALID_ARGUMENT naming the problem): the worker dead-letters it.
  absl::StatusOr<TaskHeaders> headers = absl::UnknownError("not read");
  std::string body;  // the task message's body, decoded from any transfer encoding
  int priority = 0;
};

// A task message to publish: a chain's next step, a link or a link_error.
struct OutgoingTask {
  std::string queue;          // where it goes (the default exchange routes it there)
  std::string headers_json;   // the protocol's headers as a JSON object
  std::string body;           // JSON [args, kwargs, embed]
  std::string correlation_id; // the new task's id
  std::string reply_to;       // "" when none
  int priority = 0;
};

class CeleryBroker {
 public:
  virtual ~CeleryBroker() = default;

  // Connects and makes sure `queue` exists (RabbitMQ: declared durable; Redis: kombu's
  // binding of the queue to its own exchange). Does not consume yet.
  virtual absl::Status Open(const std::string& queue) = 0;
  // Starts consuming `queue` with manual acknowledgements.
  virtual absl::Status Consume() = 0;
  // Stops taking messages; what was delivered may still be acknowledged.
  virtual absl::Status Cancel() = 0;
  // At most `count` (>= 1) unacknowledged deliveries held at once.
  virtual absl::Status SetPrefetch(int count) = 0;
  // The next delivery, waiting up to `timeout`; nullopt when none came or `wake_fd` (-1:
  // none) became readable first.
  virtual absl::StatusOr<std::optional<TaskDelivery>> Next(absl::Duration timeout,
                                                           int wake_fd) = 0;
  // Publishes a task message. Safe (confirmed by the broker) once Flush returns OK.
  virtual absl::Status Publish(const OutgoingTask& task) = 0;
  // The rpc:// result backend: publishes `document` to the queue `reply_to` with
  // correlation_id `task_id`, content type application/json. Safe once Flush returns OK.
  virtual absl::Status Reply(const std::string& reply_to, const std::string& task_id,
                             const std::string& document) = 0;
  // Waits until the broker has taken everything published since the last Flush (RabbitMQ:
  // publisher confirms; Redis: the commands' replies). Any error, a refused publish included,
  // makes the worker treat the connection as lost, so the tasks whose publishes were not
  // taken are delivered again rather than acknowledged.
  virtual absl::Status Flush() = 0;
  // Acknowledges a delivery: the message is gone for good.
  virtual absl::Status Ack(uint64_t tag) = 0;
  // Takes a message that must never run again off the queue: RabbitMQ rejects it without
  // requeueing (to the queue's dead-letter exchange, if it has one); Redis moves it to the
  // list `<queue>.dead-letters`. `reason` is kept with it where the broker allows.
  virtual absl::Status DeadLetter(uint64_t tag, absl::string_view reason) = 0;
  // Closes the connection. What was delivered and not acknowledged goes back to the queue
  // (RabbitMQ does that itself; Redis puts it back at once when it still can, else kombu's
  // visibility timeout does it).
  virtual void Close() = 0;
};

// A new, unopened broker for each connection attempt.
using BrokerFactory = std::function<std::unique_ptr<CeleryBroker>()>;

}  // namespace modeld::transport::celery
