// ListQueue: the work queue as a Redis list (--redis-list), the reliable-queue pattern.
//
// Producers LPUSH envelopes onto <list>. A consumer BLMOVEs items from its right end into its
// own processing list <list>:processing:<consumer>, and removes an item from there (LREM) in
// the same Lua script that pushes its reply, so an item is in exactly one of the lists until
// it is answered. Each consumer keeps a heartbeat key <list>:alive:<consumer> (TTL: the
// visibility timeout) and is registered in the set <list>:consumers; the processing list of
// a consumer whose heartbeat expired is moved back onto <list> by any live consumer.
// Deliveries are counted in the hash <list>:deliveries under DeliveryField(item); dead
// letters go to the stream <list>:dead. docs/redis.md.
#pragma once

#include <string>

#include "transport/redis/work_queue.h"

namespace modeld::transport::redis {

// The field of <list>:deliveries that counts an item's deliveries: FNV-1a 64 of its bytes,
// as 16 lower-case hex digits.
std::string DeliveryField(absl::string_view item);

class ListQueue : public WorkQueue {
 public:
  ListQueue(std::string list, QueueOptions options);

  std::string Describe() const override;
  bool CompletionNeedsEnvelope() const override { return true; }
  // Registers the consumer and beats once; the first time, also moves this consumer's own
  // processing list (left by an earlier process with the same name) back onto the list.
  absl::Status Prepare(RedisConnection& reader, bool first) override;
  // BLMOVE for the first item, LMOVE for the rest, then HINCRBY to count each delivery.
  absl::StatusOr<std::vector<QueueEntry>> Take(RedisConnection& reader, int max,
                                               absl::Duration block) override;
  // Moves the processing lists of consumers whose heartbeat expired back onto the list
  // (Recovered::requeued); returns no entries itself.
  absl::StatusOr<Recovered> Recover(RedisConnection& reader, int max,
                                    const std::function<bool(absl::string_view)>& held) override;
  // waiting: LLEN <list>; pending: the lengths of every registered processing list.
  absl::StatusOr<QueueDepth> Depth(RedisConnection& reader) override;
  absl::Status Heartbeat(RedisConnection& writer) override;
  absl::Duration HeartbeatInterval() const override;
  absl::StatusOr<std::vector<CompletionOutcome>> Complete(
      RedisConnection& writer, const std::vector<Completion>& completions) override;

  const std::string& processing_key() const { return processing_key_; }
  const std::string& dead_letter_key() const { return dead_letter_key_; }

 private:
  std::string ProcessingKey(absl::string_view consumer) const;
  std::string AliveKey(absl::string_view consumer) const;
  // Runs the take-back script on `consumer`'s lists: only when its heartbeat has expired,
  // unless `force`. The number of items moved, or -1 when the consumer is alive.
  absl::StatusOr<int64_t> TakeBack(RedisConnection& connection, absl::string_view consumer,
                                   bool force);

  const std::string list_;
  const QueueOptions options_;
  const std::string processing_key_;
  const std::string alive_key_;
  const std::string consumers_key_;
  const std::string deliveries_key_;
  const std::string dead_letter_key_;
};

}  // namespace modeld::transport::redis
