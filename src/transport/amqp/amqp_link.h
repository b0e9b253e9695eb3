// AmqpLink: one connection to the broker with one channel, as the AMQP worker uses it:
// declare the queues, consume with manual acknowledgements, publish replies with publisher
// confirms, and read the broker's next event. Behind an interface so the worker (dispatch,
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
};

// A message taken from the request queue (what the worker reads of it).
struct Delivery {
  uint64_t tag = 0;
  bool redelivered = false;
  std::string body;
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
  std::string routing_key;  // published to the default exchange: a queue name
  std::string body;
  std::string correlation_id;
  std::string message_id;
  std::string reply_to;
  std::string type;  // the body's message type, e.g. "modeld.redis.ReplyEnvelope"
  int priority = 0;
  bool persistent = false;
  bool mandatory = false;  // the broker returns it (Event::kReturned) when no queue takes it
  std::map<std::string, int64_t> headers;
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
  // Returns the publish's confirm sequence number (1, 2, ... since Open).
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
