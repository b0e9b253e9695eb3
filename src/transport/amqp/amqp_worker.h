// AmqpWorker: takes inference requests from a RabbitMQ queue, runs them through
// InferenceService, and publishes each answer to the request's reply_to (docs/amqp.md).
//
// One thread owns the connection (rabbitmq-c connections are not thread-safe): it connects
// (with backoff while the broker is away or refuses), declares the queues, consumes with
// manual acknowledgements, and hands each delivery to InferenceService, so messages
// delivered together meet in the dynamic batcher with the other transports' requests.
// Inference callbacks only queue their answer and wake the thread: no model thread waits on
// the broker. A request is acknowledged only once the broker has confirmed its reply, so a
// modeld that dies leaves it for the broker to deliver again (at-least-once).
//
// Deliveries: a quorum queue counts them (x-delivery-count); on a classic queue modeld puts a
// redelivered message back with its count in the modeld-deliveries header and acknowledges
// the original. A message delivered more than max_deliveries times, or whose body is not a
// RequestEnvelope, is rejected into the dead-letter queue, and its requester (if any) gets
// the error. Untrusted messages never stop the worker.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "metrics/registry.h"
#include "service/admission.h"
#include "service/inference_service.h"
#include "transport/amqp/amqp_link.h"
#include "transport/amqp/amqp_metrics.h"
#include "transport/message/connection_loop.h"
#include "transport/message/log_throttle.h"
#include "transport/message/outbox.h"

namespace modeld::transport::amqp {

struct AmqpWorkerOptions {
  Topology topology;
  std::string where;           // the broker's URL without its password, for logs
  int prefetch = 64;           // most unacknowledged messages held at once
  int64_t max_deliveries = 3;  // a message delivered more often than this is dead-lettered
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // The process-wide cap on work in flight: the prefetch shrinks to what it has free, and
  // each message holds a slot until its answer is published. Null: only `prefetch` bounds.
  // Must outlive the worker.
  service::Admission* admission = nullptr;
};

// A new, unopened link for each connection attempt.
using LinkFactory = std::function<std::unique_ptr<AmqpLink>()>;

struct AmqpJob;

// Thread-safe. Lifecycle: Start once, then StopReading (optional) and Stop once.
class AmqpWorker {
 public:
  // `service`, `clock` and `registry` (may be null) must outlive the worker.
  AmqpWorker(AmqpWorkerOptions options, LinkFactory links, service::InferenceService& service,
             const common::Clock& clock, metrics::Registry* registry);
  ~AmqpWorker();  // stops at once if still running: what is unacknowledged goes back
  AmqpWorker(const AmqpWorker&) = delete;
  AmqpWorker& operator=(const AmqpWorker&) = delete;

  void Start();

  // Connected, queues declared, consuming. InferenceService readiness includes this.
  bool Ready() const;

  // Cancels the consumer: the broker delivers nothing more; what was delivered still runs
  // and is answered.
  void StopReading();

  // StopReading, then answers and acknowledges what is held until none is left or `deadline`
  // passes, and closes the connection (the broker delivers the rest again, to another
  // consumer).
  void Stop(absl::Time deadline);

 private:
  void Loop();
  absl::Status Connect();
  // One turn: cancel when asked, finish what the outbox holds, fit the prefetch, and handle
  // the broker's next event (waiting up to 250 ms, or until woken).
  absl::Status Step();
  void LinkLost();
  absl::Status HandleEvent(const Event& event);
  void Dispatch(Delivery delivery);
  void Train(std::unique_ptr<AmqpJob> job);
  // Publishes, acknowledges or rejects a finished job on the current link.
  absl::Status Complete(std::unique_ptr<AmqpJob> job);
  absl::Status Confirmed(uint64_t sequence, bool multiple, bool refused);
  absl::Status FitPrefetch();
  void Release(AmqpJob& job);
  bool Stopping() const;

  const AmqpWorkerOptions options_;
  const LinkFactory links_;
  service::InferenceService& service_;
  const common::Clock& clock_;
  AmqpMetrics metrics_;
  const std::shared_ptr<message::Outbox<AmqpJob>> outbox_;
  message::LogThrottle bad_message_log_{"amqp"};
  message::LogThrottle returned_log_{"amqp"};

  // The loop thread's own state.
  std::unique_ptr<AmqpLink> link_;
  uint64_t generation_ = 0;  // of the current link: jobs from an older one are dropped
  bool consuming_ = false;
  int prefetch_ = 0;
  absl::Time next_prefetch_fit_ = absl::InfinitePast();
  // Publishes awaiting the broker's confirm, by sequence number.
  std::map<uint64_t, std::unique_ptr<AmqpJob>> unconfirmed_;

  std::atomic<bool> ready_{false};
  std::atomic<int64_t> in_flight_{0};  // jobs alive: delivered and not yet acked or dropped

  message::StopRequests stop_;

  std::thread thread_;
};

}  // namespace modeld::transport::amqp
