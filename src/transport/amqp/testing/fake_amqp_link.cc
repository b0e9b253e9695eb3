// FakeAmqpLink and FakeBroker's side for its calls (the tests' side is in fake_broker.cc).
#include "transport/amqp/testing/fake_amqp_link.h"

#include <poll.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "transport/amqp/amqp_table.h"

namespace modeld::transport::amqp {
namespace {

// How long Next waits before it looks at its wake_fd again.
constexpr absl::Duration kSlice = absl::Milliseconds(2);

bool Readable(int fd) {
  if (fd < 0) return false;
  pollfd poll_fd{fd, POLLIN, 0};
  return ::poll(&poll_fd, 1, 0) > 0 && (poll_fd.revents & POLLIN) != 0;
}

std::optional<int64_t> Header(const Outgoing& message, const std::string& name) {
  auto it = message.headers.find(name);
  if (it == message.headers.end()) return std::nullopt;
  return it->second;
}

Event Confirmation(Event::Kind kind, uint64_t sequence, bool multiple = false) {
  Event event;
  event.kind = kind;
  event.sequence = sequence;
  event.multiple = multiple;
  return event;
}

// The header table as RabbitmqLink would read it from the wire: headers_json and the integer
// headers through the same conversion both ways. Messages the test publishes may nest deeper
// than a link may publish, so that a delivery's headers_error can be seen.
void ReadHeaders(const Outgoing& message, Delivery& delivery) {
  TableBuilder table;
  if (!message.headers_json.empty()) {
    const absl::Status parsed = table.SetJson(message.headers_json, 4 * kMaxTableDepth);
    if (!parsed.ok()) {
      delivery.headers_error = std::string(parsed.message());
      return;
    }
  }
  for (const auto& [name, value] : message.headers) table.SetInt64(name, value);
  if (table.empty()) return;
  absl::StatusOr<std::string> json = TableToJson(table.table());
  if (json.ok()) {
    delivery.headers_json = *std::move(json);
  } else {
    delivery.headers_error = std::string(json.status().message());
  }
}

absl::Status Closed() { return absl::UnavailableError("the fake broker's connection is closed"); }

}  // namespace

FakeAmqpLink::~FakeAmqpLink() {
  broker_.Close(id_);
  broker_.RemoveLink(id_);
}

absl::Status FakeBroker::Injected(Op op) {
  ++calls_[op];
  std::vector<absl::Status>& pending = failures_[op];
  if (pending.empty()) return absl::OkStatus();
  absl::Status status = pending.front();
  pending.erase(pending.begin());
  return status;
}

absl::Status FakeBroker::Usable(int id, Op op) {
  RETURN_IF_ERROR(Injected(op));
  const LinkState& link = links_.at(id);
  if (!link.open || link.broken) return Closed();
  return absl::OkStatus();
}

void FakeBroker::Break(LinkState& link) {
  link.broken = true;
  link.consuming.clear();
  link.events.clear();
  link.held_confirms.clear();
  for (auto& [tag, unacked] : link.unacked) Requeue(std::move(unacked));
  link.unacked.clear();
}

void FakeBroker::Requeue(Unacked unacked) {
  auto it = queues_.find(unacked.queue);
  if (it == queues_.end()) return;  // deleted meanwhile
  unacked.message.redelivered = true;
  if (it->second.quorum) ++unacked.message.delivery_count;
  it->second.messages.emplace_back(unacked.order, std::move(unacked.message));
}

std::string FakeBroker::Route(const Outgoing& message) const {
  if (message.exchange.empty()) {
    return queues_.contains(message.routing_key) ? message.routing_key : std::string();
  }
  if (auto fanout = exchanges_.find(message.exchange); fanout != exchanges_.end()) {
    return queues_.contains(fanout->second) ? fanout->second : std::string();
  }
  auto bound = bindings_.find({message.exchange, message.routing_key});
  if (bound != bindings_.end() && queues_.contains(bound->second)) return bound->second;
  return std::string();
}

bool FakeBroker::ExchangeExists(const std::string& exchange) const {
  if (exchange.empty() || exchanges_.contains(exchange)) return true;
  for (const auto& [binding, queue] : bindings_) {
    if (binding.first == exchange) return true;
  }
  return false;
}

void FakeBroker::Enqueue(Outgoing message, bool redelivered) {
  auto it = queues_.find(Route(message));
  if (it == queues_.end()) {
    errors_.push_back(absl::StrCat("published to '", message.exchange, "' with routing key '",
                                   message.routing_key, "', no such queue"));
    return;
  }
  FakeMessage stored;
  stored.redelivered = redelivered;
  if (it->second.quorum) {
    stored.delivery_count = Header(message, kQuorumDeliveryCount).value_or(0);
  }
  stored.message = std::move(message);
  it->second.messages.emplace_back(arrivals_++, std::move(stored));
}

bool FakeBroker::HasEvent(int id) const {
  const LinkState& link = links_.at(id);
  if (!link.events.empty()) return true;
  if (link.consuming.empty()) return false;
  if (link.prefetch > 0 && static_cast<int>(link.unacked.size()) >= link.prefetch) return false;
  auto it = queues_.find(link.consuming);
  return it != queues_.end() && !it->second.messages.empty();
}

std::optional<Event> FakeBroker::TakeEvent(int id) {
  if (!HasEvent(id)) return std::nullopt;
  LinkState& link = links_.at(id);
  if (!link.events.empty()) {
    Event event = std::move(link.events.front());
    link.events.erase(link.events.begin());
    return event;
  }
  // A delivery: the highest priority first (when the queue has priorities), then the oldest.
  Queue& queue = queues_.at(link.consuming);
  auto priority = [&](const std::pair<uint64_t, FakeMessage>& entry) {
    return std::clamp(entry.second.message.priority, 0, queue.max_priority);
  };
  auto best = std::min_element(
      queue.messages.begin(), queue.messages.end(), [&](const auto& a, const auto& b) {
        return priority(a) != priority(b) ? priority(a) > priority(b) : a.first < b.first;
      });
  Unacked unacked{link.consuming, best->first, std::move(best->second)};
  queue.messages.erase(best);
  const Outgoing& message = unacked.message.message;
  Event event;
  event.kind = Event::Kind::kDelivery;
  Delivery& delivery = event.delivery;
  delivery.tag = link.next_tag++;
  delivery.redelivered = unacked.message.redelivered;
  delivery.exchange = message.exchange;
  delivery.routing_key = message.routing_key;
  delivery.body = message.body;
  delivery.content_type = message.content_type;
  delivery.content_encoding = message.content_encoding;
  ReadHeaders(message, delivery);
  delivery.reply_to = message.reply_to;
  delivery.correlation_id = message.correlation_id;
  delivery.message_id = message.message_id;
  delivery.priority = message.priority;
  delivery.persistent = message.persistent;
  delivery.deadline_ms = Header(message, kDeadlineHeader);
  delivery.modeld_deliveries = Header(message, kDeliveriesHeader);
  if (queue.quorum && unacked.message.delivery_count > 0) {
    delivery.quorum_count = unacked.message.delivery_count;
  }
  link.unacked.emplace(delivery.tag, std::move(unacked));
  if (stall_after_ > 0 && --stall_after_ == 0) stalled_ = true;
  int held = 0;
  for (const auto& [other, state] : links_) held += static_cast<int>(state.unacked.size());
  max_unacked_ = std::max(max_unacked_, held);
  return event;
}

void FakeBroker::Confirm(LinkState& link, uint64_t sequence) {
  if (hold_confirms_) {
    link.held_confirms.push_back(sequence);
  } else {
    link.events.push_back(Confirmation(Event::Kind::kConfirmed, sequence));
  }
}

absl::Status FakeBroker::Open(int id) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Injected(Op::kOpen));
  LinkState& link = links_.at(id);
  link = LinkState();
  link.open = true;
  return absl::OkStatus();
}

absl::Status FakeBroker::Declare(int id, const Topology& topology) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Usable(id, Op::kDeclare));
  topology_ = topology;
  auto existing = queues_.find(topology.queue);
  if (existing != queues_.end() && (existing->second.quorum != topology.quorum ||
                                    existing->second.max_priority != topology.max_priority)) {
    // RabbitMQ closes the channel after refusing a declaration.
    Break(links_.at(id));
    return absl::FailedPreconditionError(
        absl::StrCat("declaring the queue '", topology.queue,
                     "': the broker refused: PRECONDITION_FAILED - inequivalent arg"));
  }
  if (topology.dead_letters) {
    exchanges_[topology.dead_letter_exchange] = topology.dead_letter_queue;
    Queue& dead = queues_[topology.dead_letter_queue];
    dead.quorum = topology.quorum;
  }
  Queue& queue = queues_[topology.queue];
  queue.quorum = topology.quorum;
  queue.max_priority = topology.max_priority;
  queue.dead_letter_exchange = topology.dead_letters ? topology.dead_letter_exchange : "";
  if (!topology.bind_exchange.empty()) {
    if (exchanges_.contains(topology.bind_exchange)) {
      Break(links_.at(id));
      return absl::FailedPreconditionError(
          absl::StrCat("declaring the exchange '", topology.bind_exchange,
                       "': the broker refused: PRECONDITION_FAILED - inequivalent arg 'type'"));
    }
    bindings_[{topology.bind_exchange, topology.queue}] = topology.queue;
  }
  return absl::OkStatus();
}

absl::Status FakeBroker::SetPrefetch(int id, int count) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Usable(id, Op::kSetPrefetch));
  links_.at(id).prefetch = count;
  prefetches_.push_back(count);
  return absl::OkStatus();
}

absl::Status FakeBroker::Consume(int id, const std::string& queue) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Usable(id, Op::kConsume));
  if (!queues_.contains(queue)) {
    Break(links_.at(id));
    return absl::FailedPreconditionError(
        absl::StrCat("consuming from '", queue, "': the broker refused: NOT_FOUND"));
  }
  links_.at(id).consuming = queue;
  return absl::OkStatus();
}

absl::Status FakeBroker::Cancel(int id) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Usable(id, Op::kCancel));
  links_.at(id).consuming.clear();
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> FakeBroker::PublishFrom(int id, const Outgoing& message) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Usable(id, Op::kPublish));
  if (!message.headers_json.empty()) {
    TableBuilder headers;  // refused before anything is sent, as RabbitmqLink does
    RETURN_IF_ERROR(headers.SetJson(message.headers_json));
  }
  LinkState& link = links_.at(id);
  const uint64_t sequence = link.next_sequence++;
  published_[message.routing_key].push_back(message);
  if (!ExchangeExists(message.exchange)) {
    // RabbitMQ closes the channel: NOT_FOUND - no exchange.
    errors_.push_back(absl::StrCat("NOT_FOUND - no exchange '", message.exchange, "'"));
    Break(link);
    return sequence;
  }
  if (refuse_ > 0) {
    --refuse_;
    link.events.push_back(Confirmation(Event::Kind::kRefused, sequence));
    return sequence;
  }
  if (!Route(message).empty()) {
    Enqueue(message, /*redelivered=*/false);
  } else if (message.mandatory) {
    Event returned;
    returned.kind = Event::Kind::kReturned;
    returned.text = "NO_ROUTE";
    returned.routing_key = message.routing_key;
    link.events.push_back(std::move(returned));
  }  // else dropped, as the default exchange drops what no queue takes
  Confirm(link, sequence);
  return sequence;
}

absl::Status FakeBroker::Ack(int id, uint64_t tag) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Usable(id, Op::kAck));
  LinkState& link = links_.at(id);
  auto it = link.unacked.find(tag);
  if (it == link.unacked.end()) {
    errors_.push_back(absl::StrCat("PRECONDITION_FAILED - unknown delivery tag ", tag, " (ack)"));
    Break(link);
    return Closed();
  }
  acked_.push_back(it->second.message.message.correlation_id);
  link.unacked.erase(it);
  return absl::OkStatus();
}

absl::Status FakeBroker::Reject(int id, uint64_t tag, bool requeue) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Usable(id, Op::kReject));
  LinkState& link = links_.at(id);
  auto it = link.unacked.find(tag);
  if (it == link.unacked.end()) {
    errors_.push_back(
        absl::StrCat("PRECONDITION_FAILED - unknown delivery tag ", tag, " (reject)"));
    Break(link);
    return Closed();
  }
  Unacked unacked = std::move(it->second);
  link.unacked.erase(it);
  if (requeue) {
    ++requeued_;
    Requeue(std::move(unacked));
    return absl::OkStatus();
  }
  // Into the dead letters, through the queue's dead-letter exchange (fanout).
  auto queue = queues_.find(unacked.queue);
  if (queue == queues_.end()) return absl::OkStatus();
  auto exchange = exchanges_.find(queue->second.dead_letter_exchange);
  if (exchange == exchanges_.end()) return absl::OkStatus();  // no dead letters: dropped
  auto dead = queues_.find(exchange->second);
  if (dead == queues_.end()) return absl::OkStatus();
  unacked.message.death = "rejected";
  dead->second.messages.emplace_back(arrivals_++, std::move(unacked.message));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Event>> FakeBroker::Next(int id, absl::Duration timeout, int wake_fd) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Usable(id, Op::kNext));
  const LinkState& link = links_.at(id);
  bool counted_stall = false;
  auto unstall = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (counted_stall) --stalled_readers_;
    counted_stall = false;
  };
  while (true) {
    if (link.broken) {
      unstall();
      return Closed();
    }
    if (!stalled_) {
      unstall();
      if (std::optional<Event> event = TakeEvent(id)) return event;
      if (absl::Now() >= deadline || Readable(wake_fd)) return std::nullopt;
    } else if (!counted_stall) {
      ++stalled_readers_;
      counted_stall = true;
    }
    // Woken at once by a change for this link; else after a slice, to look at wake_fd.
    auto changed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return link.broken || (!stalled_ && HasEvent(id));
    };
    const absl::Time slice = absl::Now() + kSlice;
    mu_.AwaitWithDeadline(absl::Condition(&changed), stalled_ ? slice : std::min(slice, deadline));
  }
}

void FakeBroker::Close(int id) {
  absl::MutexLock lock(&mu_);
  LinkState& link = links_.at(id);
  if (link.open && !link.broken) Break(link);
  link.open = false;
}

}  // namespace modeld::transport::amqp
