// AmqpJob: one delivered message inside the AMQP worker, from its delivery to its
// acknowledgement; and AmqpOutbox, which carries finished jobs from the inference callbacks
// (any thread) back to the worker's thread (message::Outbox).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/infer_response.h"
#include "service/admission.h"
#include "transport/amqp/amqp_link.h"
#include "transport/message/envelope.h"
#include "transport/message/outbox.h"

namespace modeld::transport::amqp {

// One delivered message inside the worker, from delivery to acknowledgement.
struct AmqpJob {
  enum class Action {
    kAnswer,      // publish the reply (if reply_to), ack once the broker confirms it
    kAckOnly,     // nobody to answer: ack at once
    kDeadLetter,  // reply with the error (if reply_to), reject into the dead letters
    kCount,       // put a copy back with its delivery count, ack once the broker confirms
  };
  Delivery delivery;
  uint64_t generation = 0;
  Action action = Action::kAnswer;
  int64_t deliveries = 1;
  // Keeps the request's bytes alive while its decoded tensors view them.
  std::shared_ptr<const message::wire::RequestEnvelope> envelope;
  std::string request_id;
  absl::StatusOr<core::InferResponse> result = absl::UnknownError("not run");
  std::optional<std::string> reply;  // an encoded ReplyEnvelope, when known before Complete
  std::optional<service::Admission::Ticket> slot;
};

// Finished jobs on their way from inference callbacks back to the worker's thread.
using AmqpOutbox = message::Outbox<AmqpJob>;

}  // namespace modeld::transport::amqp
