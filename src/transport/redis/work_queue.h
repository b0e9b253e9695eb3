// WorkQueue: the Redis data structure a RedisWorker consumes, behind one interface so the
// worker (threads, dispatch, deadlines, dead-letter rule, reconnects) is the same for a
// stream with a consumer group (StreamQueue) and a reliable list (ListQueue), and can be
// tested with a fake.
//
// Every call takes the connection to use: the worker owns its connections and reconnects
// them; a queue holds no connection and no state that a reconnect would invalidate.
// Errors: UNAVAILABLE means the connection broke (reconnect and call again); any other
// error is a refusal by Redis (wrong key type, a group that vanished, ...) that Prepare
// may repair.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "transport/redis/redis_connection.h"

namespace modeld::transport::redis {

// The name of the stream entry field that carries the envelope.
inline constexpr absl::string_view kEnvelopeField = "envelope";

// One unit of work taken from the queue.
struct QueueEntry {
  // Identifies the entry to Complete: the stream entry id, or for a list the field under
  // which its deliveries are counted.
  std::string id;
  // The RequestEnvelope bytes; nullopt for a stream entry without an `envelope` field.
  std::optional<std::string> envelope;
  // How many times the entry has been handed to a consumer, this time included (1 on the
  // first delivery).
  int64_t deliveries = 1;
};

// What to do with a finished entry: reply (when reply_key is set), move it to the
// dead-letter stream (when dead_reason is set), and remove it from the queue.
struct Completion {
  const QueueEntry* entry = nullptr;
  absl::string_view reply_key;    // empty: no reply
  absl::string_view reply;        // serialized ReplyEnvelope
  absl::string_view dead_reason;  // empty: not a dead letter
};

struct CompletionOutcome {
  enum class Kind {
    kDone,         // replied (if asked), dead-lettered (if asked), removed
    kStale,        // this consumer no longer holds the entry (another took it over): nothing done
    kReplyFailed,  // Redis refused the reply (error in `error`); the entry was still removed
    kFailed,       // Redis refused the whole completion (error in `error`): nothing done, the
                   // entry stays with this consumer until it is taken over
  };
  Kind kind = Kind::kDone;
  std::string error;
};

// Entries taken over from consumers that died or stalled.
struct Recovered {
  std::vector<QueueEntry> entries;
  // Entries that were pending but had been deleted (trimmed by MAXLEN) before an answer:
  // dropped from the pending list, nobody can be answered.
  int64_t lost = 0;
  // Entries put back on the queue for any consumer to take (a list's dead consumer).
  int64_t requeued = 0;
};

// Sampled for the lag metrics.
struct QueueDepth {
  int64_t waiting = 0;  // not yet taken by any consumer
  int64_t pending = 0;  // taken by some consumer and not yet finished
};

class WorkQueue {
 public:
  virtual ~WorkQueue() = default;

  // "stream modeld:requests, group modeld, consumer host:42": for logs.
  virtual std::string Describe() const = 0;

  // Whether Complete needs QueueEntry::envelope (a list removes its item by value); when
  // false the worker drops the bytes once parsed.
  virtual bool CompletionNeedsEnvelope() const = 0;

  // On a freshly (re)connected reader: creates what the queue needs (the consumer group) and
  // announces the consumer. `first` is true once per process start: the queue may then take
  // back work left by an earlier process with the same consumer name.
  virtual absl::Status Prepare(RedisConnection& reader, bool first) = 0;

  // Takes up to `max` (> 0) entries, waiting up to `block` for the first. Empty when none
  // came.
  virtual absl::StatusOr<std::vector<QueueEntry>> Take(RedisConnection& reader, int max,
                                                       absl::Duration block) = 0;

  // Takes over up to `max` entries that other consumers took and did not finish in time
  // (they died). `held(id)` says this worker is still running that entry itself: it is
  // skipped.
  virtual absl::StatusOr<Recovered> Recover(RedisConnection& reader, int max,
                                            const std::function<bool(absl::string_view)>& held) = 0;

  virtual absl::StatusOr<QueueDepth> Depth(RedisConnection& reader) = 0;

  // On the writer: tells other consumers this one is alive (a list consumer's heartbeat);
  // called at least every HeartbeatInterval().
  virtual absl::Status Heartbeat(RedisConnection& writer) = 0;
  virtual absl::Duration HeartbeatInterval() const = 0;

  // On the writer: finishes `completions` (one round trip), each atomically: reply, dead
  // letter, removal happen together and only while this consumer still holds the entry.
  // One outcome per completion, in order.
  virtual absl::StatusOr<std::vector<CompletionOutcome>> Complete(
      RedisConnection& writer, const std::vector<Completion>& completions) = 0;
};

// Settings shared by both queue kinds (docs/redis.md).
struct QueueOptions {
  std::string consumer;                                   // this worker's name (host:pid)
  absl::Duration visibility_timeout = absl::Seconds(30);  // pending this long: taken over
  absl::Duration reply_ttl = absl::Seconds(60);           // PEXPIRE of a reply key
  int64_t dead_letter_maxlen = 10000;                     // MAXLEN ~ of the dead-letter stream
  // A stream consumer with nothing pending and idle this long is removed from the group
  // (consumer names are host:pid, so every restart leaves one behind).
  absl::Duration forget_idle_consumers = absl::Minutes(10);
};

}  // namespace modeld::transport::redis
