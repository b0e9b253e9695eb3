#include "transport/amqp/amqp_metrics.h"

#include <memory>

namespace modeld::transport::amqp {

AmqpMetrics::AmqpMetrics(metrics::Registry* registry)
    : own_(registry == nullptr ? std::make_unique<metrics::Registry>() : nullptr),
      registry_(registry != nullptr ? *registry : *own_),
      deliveries(registry_.GetCounter("modeld_amqp_messages_delivered_total",
                                      "Messages the broker delivered to the AMQP worker.", {})),
      redeliveries(registry_.GetCounter("modeld_amqp_messages_redelivered_total",
                                        "Delivered messages that had been delivered before (to a "
                                        "consumer that stopped before acknowledging).",
                                        {})),
      acks(registry_.GetCounter(
          "modeld_amqp_messages_acked_total",
          "Messages finished and acknowledged: answered, or without anyone to answer.", {})),
      dead_max_deliveries(
          registry_.GetCounter("modeld_amqp_dead_letters_total",
                               "Messages rejected to the dead-letter queue, by reason.",
                               {{"reason", "max_deliveries"}})),
      dead_bad_message(registry_.GetCounter(
          "modeld_amqp_dead_letters_total",
          "Messages rejected to the dead-letter queue, by reason.", {{"reason", "bad_message"}})),
      bad_request(registry_.GetCounter(
          "modeld_amqp_bad_requests_total",
          "Envelopes whose request could not be run as sent (answered with the error).", {})),
      no_reply_to(registry_.GetCounter("modeld_amqp_messages_without_reply_to_total",
                                       "Inference and query messages without reply_to: "
                                       "acknowledged without running, nobody could be answered.",
                                       {})),
      expired(registry_.GetCounter(
          "modeld_amqp_expired_total",
          "Messages answered DEADLINE_EXCEEDED without running: delivered after their deadline.",
          {})),
      queries(registry_.GetCounter(
          "modeld_amqp_queries_total",
          "Envelopes asking for model metadata or readiness (not inference), answered at once.",
          {})),
      replies(
          registry_.GetCounter("modeld_amqp_replies_total", "Replies the broker confirmed.", {})),
      replies_returned(registry_.GetCounter(
          "modeld_amqp_replies_returned_total",
          "Replies no queue took (the reply_to queue was gone): the broker returned them.", {})),
      replies_refused(registry_.GetCounter(
          "modeld_amqp_replies_refused_total",
          "Publishes the broker refused (basic.nack): their request goes back onto the queue.",
          {})),
      dropped(registry_.GetCounter("modeld_amqp_answers_dropped_total",
                                   "Answers dropped because the connection their message came on "
                                   "was lost (the broker delivers the message again).",
                                   {})),
      reconnects(registry_.GetCounter("modeld_amqp_reconnects_total",
                                      "Connections to the broker opened again after a failure.",
                                      {})),
      connected(registry_.GetGauge(
          "modeld_amqp_connected",
          "1 while the AMQP worker is connected, has declared its queues and consumes.", {})),
      in_flight(registry_.GetGauge("modeld_amqp_in_flight",
                                   "Messages the AMQP worker holds and has not acknowledged yet.",
                                   {})),
      prefetch(registry_.GetGauge("modeld_amqp_prefetch",
                                  "The prefetch count the AMQP worker asks of the broker (bounded "
                                  "by --amqp-prefetch and the free admission slots).",
                                  {})) {}

}  // namespace modeld::transport::amqp
