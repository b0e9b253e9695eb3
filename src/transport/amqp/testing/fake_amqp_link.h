// FakeBroker and FakeAmqpLink: an in-memory AMQP 0-9-1 broker and the AmqpLink that talks to
// it, for AmqpWorker and AmqpCeleryBroker tests. Test-only.
//
// The broker keeps what RabbitMQ would for modeld: durable queues (classic, with optional
// priorities, or quorum, which count deliveries in x-delivery-count), the fanout dead-letter
// exchange, a direct exchange bound to the queue (Topology::bind_exchange), each link's
// unacknowledged deliveries, publisher confirms, and basic.return for a mandatory publish no
// queue takes. A delivery's headers_json goes through the same table <-> JSON conversion as
// RabbitmqLink's (amqp_table.h). A link that closes or drops gives its unacknowledged
// deliveries back to their queue, marked redelivered, as a broker does for a closed channel.
// Knobs make a call fail, refuse (nack) publishes, hold confirms, drop every connection,
// cancel consumers, or stall Next, so the worker's failure paths run deterministically.
//
// Thread-safe: the test thread drives the broker while the worker's thread uses a link.
// Mistakes a real broker would close the channel for (acknowledging an unknown delivery tag)
// break the link and are listed in errors(), which tests expect to stay empty.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "transport/amqp/amqp_link.h"
#include "transport/amqp/amqp_worker.h"

namespace modeld::transport::amqp {

// A message as a queue holds it.
struct FakeMessage {
  Outgoing message;  // as published (exchange and routing_key led it to its queue)
  bool redelivered = false;
  int64_t delivery_count = 0;  // quorum queues: deliveries that went back to the queue
  std::string death;           // in a dead-letter queue: why ("rejected"), as in x-death
};

class FakeBroker {
 public:
  // The link calls whose next results Fail() can choose.
  enum class Op {
    kOpen,
    kDeclare,
    kSetPrefetch,
    kConsume,
    kCancel,
    kPublish,
    kAck,
    kReject,
    kNext
  };

  FakeBroker() = default;
  ~FakeBroker();  // every link made by factory() must be gone
  FakeBroker(const FakeBroker&) = delete;
  FakeBroker& operator=(const FakeBroker&) = delete;

  // A new, unopened FakeAmqpLink on this broker per call. The broker must outlive its links.
  LinkFactory factory();

  // --- the test as producer and requester ---

  // Declares a durable queue (a requester's reply queue, or a queue made before modeld with
  // these arguments); declared again, it takes the new arguments and keeps its messages.
  void DeclareQueue(const std::string& name, bool quorum = false, int max_priority = 0);
  // Deletes a queue and what it holds; consumers on it are cancelled (Event::kCancelled).
  void DeleteQueue(const std::string& name);
  // Puts `message` into the queue its exchange and routing_key route it to, which must exist
  // (the default exchange: the queue its routing_key names). `redelivered`:
  // as if an earlier consumer had taken it and gone. On a quorum queue an x-delivery-count
  // header stands for the deliveries the broker counted already.
  void Publish(Outgoing message, bool redelivered = false);
  // What waits in `queue`, in delivery order (empty for an unknown queue).
  std::vector<FakeMessage> Messages(const std::string& queue) const;
  // Waits until `queue` holds at least `count` messages or `timeout` passes.
  bool WaitForMessages(const std::string& queue, size_t count, absl::Duration timeout) const;

  // --- knobs ---

  // The next `times` calls of `op` (on any link) fail with `status`.
  void Fail(Op op, absl::Status status, int times = 1);
  void ClearFailures();
  // The next `count` publishes are refused (basic.nack) and not routed.
  void RefusePublishes(int count);
  // While held, confirms wait; releasing sends the held ones, as one multiple confirm (of the
  // highest sequence) per link when `multiple`.
  void HoldConfirms();
  void ReleaseConfirms(bool multiple = false);
  // Every open connection breaks: its unacknowledged deliveries go back, redelivered (quorum
  // queues count them); each later call on it fails UNAVAILABLE, a waiting Next at once.
  void DropConnections();
  // The broker cancels every consumer (Event::kCancelled), as when their queue is deleted.
  void CancelConsumers();
  // After the next `count` deliveries Next stalls: it waits, ignoring its timeout and wake_fd,
  // until UnstallNext or a drop, so the worker's thread is pinned right after dispatching
  // them while their answers pile up.
  void StallAfterDeliveries(int count);
  void UnstallNext();

  // --- what happened ---

  int calls(Op op) const;
  // Every message the links published to `routing_key` (replies; counted copies), routed,
  // returned or refused alike, in order.
  std::vector<Outgoing> Published(const std::string& routing_key) const;
  // Correlation ids of the messages acknowledged, in order.
  std::vector<std::string> Acked() const;
  int requeued() const;                 // rejects with requeue
  int unacked() const;                  // deliveries held by links now
  int max_unacked() const;              // the most held at once
  int consumers() const;                // links consuming now
  int prefetch() const;                 // the newest SetPrefetch of a link (0 before any)
  std::vector<int> prefetches() const;  // every SetPrefetch, in order
  int stalled() const;                  // Next calls waiting while stalled
  std::vector<std::string> errors() const;
  // The arguments modeld declared the request queue with (at its latest Declare).
  Topology topology() const;

 private:
  friend class FakeAmqpLink;

  struct Queue {
    bool quorum = false;
    int max_priority = 0;
    std::string dead_letter_exchange;
    std::vector<std::pair<uint64_t, FakeMessage>> messages;  // (arrival order, message)
  };
  struct Unacked {
    std::string queue;
    uint64_t order = 0;
    FakeMessage message;
  };
  struct LinkState {
    bool open = false;
    bool broken = false;
    std::string consuming;  // the queue, "" when not consuming
    int prefetch = 0;       // 0: no limit
    uint64_t next_tag = 1;
    uint64_t next_sequence = 1;
    std::map<uint64_t, Unacked> unacked;  // by delivery tag
    std::vector<Event> events;            // confirms, returns, cancels not read yet
    std::vector<uint64_t> held_confirms;
  };

  // --- for FakeAmqpLink, each under mu_ ---
  int NewLink();
  void RemoveLink(int id);
  absl::Status Injected(Op op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Injected(op), then UNAVAILABLE unless link `id` is open and unbroken.
  absl::Status Usable(int id, Op op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Break(LinkState& link) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Requeue(Unacked unacked) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The queue `message` goes to: the default exchange routes to the queue its routing_key
  // names; a fanout exchange to its queue; a direct one by its bindings. "" when none.
  std::string Route(const Outgoing& message) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ExchangeExists(const std::string& exchange) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Enqueue(Outgoing message, bool redelivered) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The next event link `id` may read now (a delivery taken from its queue), if any.
  bool HasEvent(int id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<Event> TakeEvent(int id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Confirm(LinkState& link, uint64_t sequence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Status Open(int id);
  absl::Status Declare(int id, const Topology& topology);
  absl::Status SetPrefetch(int id, int count);
  absl::Status Consume(int id, const std::string& queue);
  absl::Status Cancel(int id);
  absl::StatusOr<uint64_t> PublishFrom(int id, const Outgoing& message);
  absl::Status Ack(int id, uint64_t tag);
  absl::Status Reject(int id, uint64_t tag, bool requeue);
  absl::StatusOr<std::optional<Event>> Next(int id, absl::Duration timeout, int wake_fd);
  void Close(int id);

  mutable absl::Mutex mu_;
  std::map<std::string, Queue> queues_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> exchanges_ ABSL_GUARDED_BY(mu_);  // fanout: the bound queue
  // Direct exchanges: (exchange, routing key) -> queue (Topology::bind_exchange).
  std::map<std::pair<std::string, std::string>, std::string> bindings_ ABSL_GUARDED_BY(mu_);
  uint64_t arrivals_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int, LinkState> links_ ABSL_GUARDED_BY(mu_);
  int next_link_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<Op, std::vector<absl::Status>> failures_ ABSL_GUARDED_BY(mu_);
  std::map<Op, int> calls_ ABSL_GUARDED_BY(mu_);
  int refuse_ ABSL_GUARDED_BY(mu_) = 0;
  bool hold_confirms_ ABSL_GUARDED_BY(mu_) = false;
  int stall_after_ ABSL_GUARDED_BY(mu_) = 0;
  bool stalled_ ABSL_GUARDED_BY(mu_) = false;
  int stalled_readers_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::vector<Outgoing>> published_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> acked_ ABSL_GUARDED_BY(mu_);
  int requeued_ ABSL_GUARDED_BY(mu_) = 0;
  int max_unacked_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int> prefetches_ ABSL_GUARDED_BY(mu_);
  Topology topology_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
};

// AmqpLink on a FakeBroker. Like any AmqpLink, used by one thread at a time.
class FakeAmqpLink final : public AmqpLink {
 public:
  explicit FakeAmqpLink(FakeBroker& broker) : broker_(broker), id_(broker.NewLink()) {}
  ~FakeAmqpLink() override;

  absl::Status Open() override { return broker_.Open(id_); }
  absl::Status Declare(const Topology& topology) override { return broker_.Declare(id_, topology); }
  absl::Status SetPrefetch(int count) override { return broker_.SetPrefetch(id_, count); }
  absl::Status Consume(const std::string& queue) override { return broker_.Consume(id_, queue); }
  absl::Status Cancel() override { return broker_.Cancel(id_); }
  absl::StatusOr<uint64_t> Publish(const Outgoing& message) override {
    return broker_.PublishFrom(id_, message);
  }
  absl::Status Ack(uint64_t tag) override { return broker_.Ack(id_, tag); }
  absl::Status Reject(uint64_t tag, bool requeue) override {
    return broker_.Reject(id_, tag, requeue);
  }
  // Waits on the broker's state in short slices, polling `wake_fd` between them.
  absl::StatusOr<std::optional<Event>> Next(absl::Duration timeout, int wake_fd) override {
    return broker_.Next(id_, timeout, wake_fd);
  }
  void Close() override { broker_.Close(id_); }

 private:
  FakeBroker& broker_;
  const int id_;
};

}  // namespace modeld::transport::amqp
