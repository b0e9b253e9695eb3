// RedisMetrics: what the Redis worker records (docs/metrics.md, "Redis transport").
#pragma once

#include <memory>

#include "metrics/registry.h"

namespace modeld::transport::redis {

// Thread-safe (atomics). With a null registry every metric is a private dummy.
class RedisMetrics {
 private:
  // Declared first: the references below are bound through it.
  std::unique_ptr<metrics::Registry> own_;  // when no registry is given
  metrics::Registry& registry_;

 public:
  explicit RedisMetrics(metrics::Registry* registry);
  RedisMetrics(const RedisMetrics&) = delete;
  RedisMetrics& operator=(const RedisMetrics&) = delete;

  metrics::Counter& reads;                // entries taken from the queue (new work)
  metrics::Counter& claims;               // entries taken over from consumers that died or stalled
  metrics::Counter& requeued;             // list items moved back from a dead consumer's list
  metrics::Counter& acks;                 // entries finished and removed from the queue
  metrics::Counter& dead_max_deliveries;  // dead letters: delivered too many times
  metrics::Counter& dead_bad_envelope;    // dead letters: no envelope / unparsable
  metrics::Counter& bad_no_envelope;      // entries without an `envelope` field
  metrics::Counter& bad_envelope;         // envelopes that are not a RequestEnvelope
  metrics::Counter& bad_request;          // envelopes whose request the codec refused
  metrics::Counter& expired;              // answered DEADLINE_EXCEEDED before running
  metrics::Counter& queries;              // metadata and readiness queries answered at once
  metrics::Counter& reply_failures;       // replies Redis refused (entry still removed)
  metrics::Counter& stale;                // answers dropped: another consumer took the entry
  metrics::Counter& lost;                 // pending entries deleted (trimmed) before an answer
  metrics::Counter& reconnects;           // connections opened again after a failure
  metrics::Gauge& connected;              // 1 while both connections work and the queue is set up
  metrics::Gauge& in_flight;              // entries this worker holds and has not finished
  metrics::Gauge& waiting;                // entries not yet taken by any consumer (sampled)
  metrics::Gauge& pending;                // entries taken and not finished, all consumers (sampled)
};

}  // namespace modeld::transport::redis
