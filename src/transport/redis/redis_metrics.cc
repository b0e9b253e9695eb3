#include "transport/redis/redis_metrics.h"

#include <memory>

namespace modeld::transport::redis {
RedisMetrics::RedisMetrics(metrics::Registry* registry)
    : own_(registry == nullptr ? std::make_unique<metrics::Registry>() : nullptr),
      registry_(registry != nullptr ? *registry : *own_),
      reads(registry_.GetCounter(
          "modeld_redis_entries_read_total",
          "Entries the Redis worker took from its queue (XREADGROUP, BLMOVE).", {})),
      claims(registry_.GetCounter("modeld_redis_entries_claimed_total",
                                  "Stream entries taken over from consumers that died or stalled "
                                  "(XAUTOCLAIM).",
                                  {})),
      requeued(registry_.GetCounter("modeld_redis_entries_requeued_total",
                                    "List items moved back onto the queue from the processing list "
                                    "of a consumer whose heartbeat expired.",
                                    {})),
      acks(
          registry_.GetCounter("modeld_redis_entries_acked_total",
                               "Entries finished: answered (or dead-lettered) and removed from the "
                               "queue.",
                               {})),
      dead_max_deliveries(registry_.GetCounter(
          "modeld_redis_dead_letters_total", "Entries moved to the dead-letter stream, by reason.",
          {{"reason", "max_deliveries"}})),
      dead_bad_envelope(registry_.GetCounter("modeld_redis_dead_letters_total",
                                             "Entries moved to the dead-letter stream, by reason.",
                                             {{"reason", "bad_envelope"}})),
      bad_no_envelope(registry_.GetCounter("modeld_redis_bad_entries_total",
                                           "Entries that could not be run as sent, by reason.",
                                           {{"reason", "no_envelope"}})),
      bad_envelope(registry_.GetCounter("modeld_redis_bad_entries_total",
                                        "Entries that could not be run as sent, by reason.",
                                        {{"reason", "bad_envelope"}})),
      bad_request(registry_.GetCounter("modeld_redis_bad_entries_total",
                                       "Entries that could not be run as sent, by reason.",
                                       {{"reason", "bad_request"}})),
      expired(
          registry_.GetCounter("modeld_redis_expired_total",
                               "Entries answered DEADLINE_EXCEEDED without running: taken after "
                               "their deadline.",
                               {})),
      queries(registry_.GetCounter("modeld_redis_queries_total",
                                   "Envelopes asking for model metadata or readiness (not "
                                   "inference), answered at once.",
                                   {})),
      reply_failures(registry_.GetCounter("modeld_redis_reply_failures_total",
                                          "Replies Redis refused to store (the entry is removed "
                                          "anyway), and completions Redis refused as a whole.",
                                          {})),
      stale(
          registry_.GetCounter("modeld_redis_stale_answers_total",
                               "Answers dropped because another consumer had taken the entry over "
                               "(it answers instead).",
                               {})),
      lost(
          registry_.GetCounter("modeld_redis_lost_entries_total",
                               "Pending entries deleted from the stream (trimmed by MAXLEN) before "
                               "they were answered.",
                               {})),
      reconnects(registry_.GetCounter("modeld_redis_reconnects_total",
                                      "Redis connections opened again after one failed.", {})),
      connected(registry_.GetGauge("modeld_redis_connected",
                                   "1 while the Redis worker is connected and its queue is set up.",
                                   {})),
      in_flight(registry_.GetGauge("modeld_redis_inflight_entries",
                                   "Entries this worker has taken and not yet finished.", {})),
      waiting(
          registry_.GetGauge("modeld_redis_queue_waiting_entries",
                             "Entries in the queue not yet taken by any consumer (sampled every "
                             "second): the queue lag.",
                             {})),
      pending(registry_.GetGauge("modeld_redis_queue_pending_entries",
                                 "Entries taken by some consumer and not yet finished, over all "
                                 "consumers (sampled every second).",
                                 {})) {}

}  // namespace modeld::transport::redis
