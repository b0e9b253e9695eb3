// AmqpCeleryBroker: CeleryBroker over RabbitMQ, on transport/amqp's AmqpLink (one link, so one
// connection and channel, per broker object, opened by Open).
//
// Layout, as a Celery 5.7 client declares it for send_task(..., queue=q): a durable classic
// queue `q` without arguments, a durable direct exchange `q`, and the binding q -> q with
// routing key q (kombu's Queue(q, Exchange(q, "direct"), q)). RabbitMQ refuses a declaration
// whose arguments differ from the existing queue's (PRECONDITION_FAILED, closing the
// channel), so modeld declares exactly what the clients do; `quorum` / `max_priority` follow a
// client configured with task_default_queue_type="quorum" / task_queue_max_priority. There
// are no dead letters unless the operator adds a policy: DeadLetter rejects without requeue.
//
// Messages: a delivery's AMQP header table is the protocol's headers (read through the
// link's table -> JSON conversion, transport/amqp/amqp_table.h); properties correlation_id,
// reply_to, content_type and content_encoding are copied into TaskHeaders. A message with no
// headers, or an empty table, is not a Celery task message (an error delivery).
//
// Publishing goes to the default exchange, routing key = the queue, with publisher confirms.
// Flush waits for every confirm owed; a basic.nack makes it FAILED_PRECONDITION naming the
// queue. Task messages (Publish) are mandatory: one that reaches no queue (a chain step to a
// queue nobody declared) comes back as basic.return, which is logged (throttled) and counted
// in returned(), but does not fail Flush: the message is lost, as Celery's own client loses
// it, and failing would redeliver the task only to publish the step into the same void again.
// Results (Reply) are not mandatory: a client that left took its reply queue with it.
//
// Deliveries that arrive while Flush waits for confirms are kept, in order, and returned by
// the following Next calls. A consumer cancelled by the broker (its queue deleted) makes Next
// UNAVAILABLE once the kept deliveries are out.
//
// Not thread-safe, as CeleryBroker.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "transport/amqp/amqp_link.h"
#include "transport/celery/celery_broker.h"
#include "transport/message/log_throttle.h"

namespace modeld::transport::celery {

struct AmqpCeleryBrokerOptions {
  // Makes the broker's link (RabbitMQ: MakeRabbitmqLink; tests: FakeBroker::factory()).
  std::function<std::unique_ptr<amqp::AmqpLink>()> links;
  // The queue's arguments, to match what the clients declare (see above).
  bool quorum = false;
  int max_priority = 0;
  // How long Flush waits for the broker's confirms before giving up UNAVAILABLE.
  absl::Duration flush_timeout = absl::Seconds(10);
  // Bound on the nesting of the headers read.
  int max_json_depth = 64;
};

class AmqpCeleryBroker final : public CeleryBroker {
 public:
  explicit AmqpCeleryBroker(AmqpCeleryBrokerOptions options);
  ~AmqpCeleryBroker() override;  // Close()

  AmqpCeleryBroker(const AmqpCeleryBroker&) = delete;
  AmqpCeleryBroker& operator=(const AmqpCeleryBroker&) = delete;

  // Makes and opens the link and declares the layout above. FAILED_PRECONDITION when already
  // open; the link's errors as they are (it is closed again then, so Open may be retried).
  absl::Status Open(const std::string& queue) override;
  absl::Status Consume() override;
  absl::Status Cancel() override;
  absl::Status SetPrefetch(int count) override;
  absl::StatusOr<std::optional<TaskDelivery>> Next(absl::Duration timeout, int wake_fd) override;
  absl::Status Publish(const OutgoingTask& task) override;
  absl::Status Reply(const std::string& reply_to, const std::string& task_id,
                     const std::string& document) override;
  absl::Status Flush() override;
  absl::Status Ack(uint64_t tag) override;
  // basic.reject without requeue. RabbitMQ has nowhere to keep `reason`.
  absl::Status DeadLetter(uint64_t tag, absl::string_view reason) override;
  void Close() override;

  // Task messages the broker returned as unroutable since this object was made.
  int64_t returned() const { return returned_; }

 private:
  absl::Status CheckOpen() const;
  // Sends `message` and owes a confirm for it, described by `what` in a refusal.
  absl::Status Send(const amqp::Outgoing& message, std::string what);
  // A confirm, refusal, return or cancel: the bookkeeping. Deliveries are the caller's.
  void Note(const amqp::Event& event);
  TaskDelivery ToTask(amqp::Delivery delivery) const;

  const AmqpCeleryBrokerOptions options_;
  std::string queue_;
  std::unique_ptr<amqp::AmqpLink> link_;
  std::map<uint64_t, std::string> unconfirmed_;  // confirm sequence -> what was published
  std::optional<absl::Status> refused_;          // the first basic.nack since the last Flush
  bool cancelled_ = false;                       // the broker cancelled the consumer
  std::deque<TaskDelivery> kept_;                // delivered while Flush waited
  int64_t returned_ = 0;
  message::LogThrottle returned_log_{"celery"};
};

}  // namespace modeld::transport::celery
