// AmqpLink: one connection to the broker with one channel, as the AMQP worker and the Celery
// broker (transport/celery/amqp) use it: declare the queues, consume with manual
// acknowledgements, publish with publisher confirms, and read the broker's next event. Header
// tables cross it as JSON text (amqp_table.h) besides modeld's own integer headers. Behind an interface so the worker (dispatch,
// delivery counting, replies, reconnects) is tested with a fake; RabbitmqLink speaks AMQP
// 0-9-1 through rabbitmq-c.
//
// Not thread-safe: the worker's one thread makes every call. Errors: UNAVAILABLE when the
// connection or channel broke (the worker closes the link and opens a new one);
// UNAUTHENTICATED for refused credentials; FAILED_PRECONDITION for a refusal by the broker
// (a queue that exists with other arguments, an unknown vhost), with the broker's text.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace modeld::transport::amqp {

// Header names modeld reads and writes (docs/amqp.md).
inline constexpr char kDeadlineHeader[] = "modeld-deadline-ms";     // Unix milliseconds
inline constexpr char kDeliveriesHeader[] = "modeld-deliveries";    // modeld's own count
inline constexpr char kQuorumDeliveryCount[] = "x-delivery-count";  // a quorum queue's count

// What modeld declares (all durable): the request queue, with its dead letters routed through
// the exchange `dead_letter_exchange` (fanout) into the queue `dead_letter_queue`.
struct Topology {
  std::string queue;
  std::string dead_letter_exchange;
  std::string dead_letter_queue;
  bool quorum = false;   // x-queue-type quorum instead of classic
  int max_priority = 0;  // x-max-priority (classic queues); 0: no priorities
  // false: no dead-letter exchange or queue is declared and `queue` gets no
  // x-dead-letter-exchange argument, so the declaration matches one made by a client that
  // declares the queue without arguments (Celery's), which RabbitMQ requires.
  bool dead_letters = true;
  // Not empty: a durable direct exchange of this name is declared too, and `queue` bound to it
  // with routing key `queue` (kombu's layout for Queue(q, Exchange(q, "direct"), q)).
  std::string bind_exchange;
};

// A message taken from the request queue (what the worker reads of it).
struct Delivery {
  uint64_t tag = 0;
  bool redelivered = false;
  std::string exchange;     // where it was published ("": the default exchange)
  std::string routing_key;  // with this routing key
  std::string body;
  std::string content_type;      // "" when the message has none
  std::string content_encoding;  // "" when the message has none
  // The whole header table as a JSON object (amqp_table.h says how each field kind reads);
  // "" when the message has no headers, or when they could not be converted (headers_error).
  std::string headers_json;
  std::string headers_error;  // why headers_json is "" for a message with headers; else ""
  std::string reply_to;
  std::string correlation_id;
  std::string message_id;
  int priority = 0;
  bool persistent = false;                   // delivery_mode 2
  std::optional<int64_t> deadline_ms;        // kDeadlineHeader
  std::optional<int64_t> modeld_deliveries;  // kDeliveriesHeader
  std::optional<int64_t> quorum_count;       // kQuorumDeliveryCount: earlier deliveries
};

// A message modeld publishes: a reply, or a request put back with its delivery count.
struct Outgoing {
  std::string exchange;  // "": the default exchange, where routing_key names a queue
  std::string routing_key;
  std::string body;
  std::string content_type = "application/x-protobuf";  // "": the property is left out
  std::string content_encoding;                         // "": left out
  std::string correlation_id;
  std::string message_id;
  std::string reply_to;
  std::string type;  // the body's message type, e.g. "modeld.redis.ReplyEnvelope"
  int priority = 0;
  bool persistent = false;
  bool mandatory = false;  // the broker returns it (Event::kReturned) when no queue takes it
  // A JSON object converted into the header table (amqp_table.h); "" for none. Text that is not
  // a JSON object makes Publish fail INVALID_ARGUMENT, with nothing sent.
  std::string headers_json;
  std::map<std::string, int64_t> headers;  // set after headers_json: these win on a clash
};

struct Event {
  enum class Kind {
    kDelivery,   // `delivery`
    kConfirmed,  // the broker took publish `sequence` (and every earlier one when `multiple`)
    kRefused,    // the broker refused it (basic.nack): same fields
    kReturned,   // a mandatory publish no queue took: `text` says why, `routing_key` where to
    kCancelled,  // the broker cancelled the consumer (its queue was deleted)
  };
  Kind kind = Kind::kDelivery;
  Delivery delivery;
  uint64_t sequence = 0;
  bool multiple = false;
  std::string text;
  std::string routing_key;
};

class AmqpLink {
 public:
  virtual ~AmqpLink() = default;

  // Connects, logs in, and opens the channel in confirm mode.
  virtual absl::Status Open() = 0;
  virtual absl::Status Declare(const Topology& topology) = 0;
  // basic.qos: at most `count` (>= 1) unacknowledged deliveries at once.
  virtual absl::Status SetPrefetch(int count) = 0;
  virtual absl::Status Consume(const std::string& queue) = 0;
  // basic.cancel of the consumer, if any: the broker sends no more deliveries.
  virtual absl::Status Cancel() = 0;
  // Returns the publish's confirm sequence number (1, 2, ... since Open). INVALID_ARGUMENT
  // (nothing sent, no sequence number used) for headers_json that does not convert.
  virtual absl::StatusOr<uint64_t> Publish(const Outgoing& message) = 0;
  virtual absl::Status Ack(uint64_t tag) = 0;
  // basic.reject: back onto the queue when `requeue`, else to the dead letters.
  virtual absl::Status Reject(uint64_t tag, bool requeue) = 0;
  // The broker's next event, waiting up to `timeout`; nullopt when none came or `wake_fd`
  // (-1: none) became readable first.
  virtual absl::StatusOr<std::optional<Event>> Next(absl::Duration timeout, int wake_fd) = 0;
  // Closes the connection (politely when it still works). Unacknowledged deliveries go back
  // to the queue.
  virtual void Close() = 0;
};

}  // namespace modeld::transport::amqp
