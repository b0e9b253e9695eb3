// AmqpMetrics: what the AMQP worker records (docs/metrics.md, "AMQP transport").
#pragma once

#include <memory>

#include "metrics/registry.h"

namespace modeld::transport::amqp {

// Thread-safe (atomics). With a null registry every metric is a private dummy.
class AmqpMetrics {
 private:
  // Declared first: the references below are bound through it.
  std::unique_ptr<metrics::Registry> own_;
  metrics::Registry& registry_;

 public:
  explicit AmqpMetrics(metrics::Registry* registry);
  AmqpMetrics(const AmqpMetrics&) = delete;
  AmqpMetrics& operator=(const AmqpMetrics&) = delete;

  metrics::Counter& deliveries;           // messages the broker delivered
  metrics::Counter& redeliveries;         // of those, marked redelivered (or counted again)
  metrics::Counter& acks;                 // messages acknowledged (finished)
  metrics::Counter& dead_max_deliveries;  // dead letters: delivered too many times
  metrics::Counter& dead_bad_message;     // dead letters: the body is not a RequestEnvelope
  metrics::Counter& bad_request;          // envelopes whose request the codec refused
  metrics::Counter& no_reply_to;          // requests without reply_to: acked, not run
  metrics::Counter& expired;              // answered DEADLINE_EXCEEDED before running
  metrics::Counter& queries;              // metadata and readiness queries answered at once
  metrics::Counter& replies;              // replies published (and confirmed)
  metrics::Counter& replies_returned;     // replies no queue took (the requester left)
  metrics::Counter& replies_refused;      // publishes the broker refused (basic.nack)
  metrics::Counter& dropped;              // answers dropped: their connection was gone
  metrics::Counter& reconnects;           // connections opened again after a failure
  metrics::Gauge& connected;              // 1 while connected, the queue declared, consuming
  metrics::Gauge& in_flight;              // messages held and not yet acknowledged
  metrics::Gauge& prefetch;               // the prefetch count asked of the broker
};

}  // namespace modeld::transport::amqp
