// StreamQueue: the work queue as a Redis stream read by a consumer group (the default mode).
//
// Producers XADD entries with an `envelope` field. Consumers of one group share them
// (XREADGROUP ... >). A finished entry is answered, XACKed and XDELed in one Lua script that
// first checks the entry is still pending for this consumer, so the stream holds only work
// not yet finished and an entry taken over by another consumer is answered once. Entries
// pending longer than the visibility timeout are taken over with XAUTOCLAIM; their delivery
// counts come from XPENDING. Dead letters go to the stream `<stream>:dead`. Consumers of dead
// processes, once they have nothing pending, are removed from the group. docs/redis.md.
#pragma once

#include <string>

#include "transport/redis/work_queue.h"

namespace modeld::transport::redis {

class StreamQueue : public WorkQueue {
 public:
  StreamQueue(std::string stream, std::string group, QueueOptions options);

  std::string Describe() const override;
  bool CompletionNeedsEnvelope() const override { return false; }
  // XGROUP CREATE <stream> <group> 0 MKSTREAM, unless the group exists.
  absl::Status Prepare(RedisConnection& reader, bool first) override;
  absl::StatusOr<std::vector<QueueEntry>> Take(RedisConnection& reader, int max,
                                               absl::Duration block) override;
  absl::StatusOr<Recovered> Recover(RedisConnection& reader, int max,
                                    const std::function<bool(absl::string_view)>& held) override;
  // waiting: the group's lag (XINFO GROUPS), else XLEN - pending; pending: the group's.
  absl::StatusOr<QueueDepth> Depth(RedisConnection& reader) override;
  // Streams need no heartbeat: idle time in the pending list tells a stalled consumer.
  absl::Status Heartbeat(RedisConnection&) override { return absl::OkStatus(); }
  absl::Duration HeartbeatInterval() const override { return absl::InfiniteDuration(); }
  absl::StatusOr<std::vector<CompletionOutcome>> Complete(
      RedisConnection& writer, const std::vector<Completion>& completions) override;

  const std::string& dead_letter_key() const { return dead_letter_key_; }

 private:
  // Removes from the group the other consumers with nothing pending that have been idle for
  // QueueOptions::forget_idle_consumers.
  absl::Status ForgetIdleConsumers(RedisConnection& reader);

  const std::string stream_;
  const std::string group_;
  const std::string dead_letter_key_;
  const QueueOptions options_;
};

}  // namespace modeld::transport::redis
