// RedisCeleryBroker: CeleryBroker over Redis, in the layout of kombu 5.7's Redis transport
// (kombu_layout.h), so Celery clients and Python Celery workers share the queue with modeld.
//
// Taking: a reader thread with its own connection BRPOPs the queue's four priority lists
// (step 0 first), only while fewer than the prefetch count are held, and records each item
// as kombu's QoS.append does, in one MULTI: ZADD unacked_index <now> <tag>, HSET unacked
// <tag> [payload, exchange, routing_key]. It then hands the item to the loop thread through a
// queue and an eventfd; Next() waits on that eventfd and the caller's wake fd, so delivery
// never blocks the worker's loop.
//
// Acknowledging (ZREM + HDEL), dead-lettering (LPUSH <queue>.dead-letters + the same removal),
// publishing and the visibility restore use a second connection owned by the loop thread
// (hiredis connections are not thread-safe).
//
// Redelivery: Close() puts every held message back on its list at once, marked redelivered,
// when the loop connection still works; otherwise the messages stay in `unacked` and any
// kombu consumer (modeld included: on Open and then every restore_interval) puts them back
// once their unacked_index score is older than the visibility timeout. That sweep is guarded
// by kombu's `unacked_mutex` and skips what this broker holds; it also refreshes the scores
// of what this broker holds, so a message held longer than the visibility timeout (an eta
// task) is not taken from a live modeld by another consumer's sweep.
//
// Crash window (kombu has the same one): between BRPOP's reply and the MULTI that records the
// item in `unacked`, the item is only in this process's memory; a crash there loses it.
//
// Thread-safety: as CeleryBroker, one loop thread makes every call; the reader thread is
// internal.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "transport/celery/celery_broker.h"
#include "transport/redis/redis_connection.h"

namespace modeld::transport::celery {

struct RedisCeleryBrokerOptions {
  // Opens the two connections ("celery-loop", "celery-reader"). The reader's command timeout
  // must exceed brpop_timeout (HiredisOptions::command_timeout, 10 s by default).
  redis::RedisConnector connector;
  // How long a delivery may stay unacknowledged before a restore sweep puts it back (kombu's
  // visibility_timeout; Celery's broker_transport_options). Keep it equal to the clients'.
  absl::Duration visibility_timeout = absl::Seconds(3600);
  // How long one BRPOP blocks: bounds how late a Cancel or a prefetch change is seen.
  absl::Duration brpop_timeout = absl::Seconds(1);
  // How often Next() runs the visibility restore (also run once by Open).
  absl::Duration restore_interval = absl::Seconds(60);
  // "host:port/db" for logs and error messages.
  std::string where;
  // Bound on the nesting of the JSON read (items, unacked entries).
  int max_json_depth = 64;
};

class RedisCeleryBroker final : public CeleryBroker {
 public:
  explicit RedisCeleryBroker(RedisCeleryBrokerOptions options);
  ~RedisCeleryBroker() override;  // Close()

  RedisCeleryBroker(const RedisCeleryBroker&) = delete;
  RedisCeleryBroker& operator=(const RedisCeleryBroker&) = delete;

  // Connects the loop connection, SADDs kombu's binding of `queue` to the direct exchange
  // named like it (_kombu.binding.<queue> and, as kombu 5.7, _kombu.binding_permanent.<queue>)
  // and runs one visibility restore. FAILED_PRECONDITION when already open or when Redis
  // refuses a command; the connector's errors as they are.
  absl::Status Open(const std::string& queue) override;
  // Connects the reader connection and starts the reader thread; after a Cancel, starts
  // taking again. FAILED_PRECONDITION before Open.
  absl::Status Consume() override;
  // The reader stops taking (a BRPOP already sent may still deliver one more item).
  absl::Status Cancel() override;
  // At most `count` (>= 1; less is read as 1) deliveries held: queued for Next or delivered
  // and not yet acknowledged or dead-lettered.
  absl::Status SetPrefetch(int count) override;
  // The next delivery, waiting up to `timeout` on the reader's eventfd and `wake_fd`. Runs the
  // visibility restore when restore_interval has passed. The reader thread's failure comes
  // back here (after the deliveries it queued before failing).
  absl::StatusOr<std::optional<TaskDelivery>> Next(absl::Duration timeout, int wake_fd) override;
  // Buffers LPUSH <KombuQueueKey(task.queue, task.priority)> <kombu wrapper> until Flush.
  // INVALID_ARGUMENT when headers_json is not a JSON object.
  absl::Status Publish(const OutgoingTask& task) override;
  // Buffers LPUSH <reply_to> <wrapper with headers {} and correlation_id task_id> until Flush:
  // the rpc:// backend's reply, as kombu routes a publish to the default exchange.
  absl::Status Reply(const std::string& reply_to, const std::string& task_id,
                     const std::string& document) override;
  // Sends what Publish and Reply buffered in one pipeline. FAILED_PRECONDITION with Redis's
  // text for the first error reply; UNAVAILABLE when the connection broke (the buffer is
  // dropped either way: the worker redelivers the tasks instead).
  absl::Status Flush() override;
  // Buffers the delivery's removal from unacked and unacked_index (one MULTI) behind what is
  // buffered already; the next Flush or Next sends it. The delivery stops counting against
  // the prefetch at once.
  // NOT_FOUND for a tag that is not held.
  absl::Status Ack(uint64_t tag) override;
  // Buffers, as Ack, one MULTI: LPUSH <queue>.dead-letters the item as taken (a JSON object
  // gets a "modeld-dead-letter-reason" member), and the removal of Ack.
  absl::Status DeadLetter(uint64_t tag, absl::string_view reason) override;
  // Stops the reader thread, puts back what is held (see above), drops what is buffered and
  // closes both connections. Idempotent.
  void Close() override;

  // Runs the visibility restore now (Next runs it every restore_interval): the number of
  // messages put back; 0 when another consumer holds unacked_mutex.
  absl::StatusOr<int> RestoreVisible();

 private:
  // One item taken by the reader, until it is acknowledged or dead-lettered.
  struct Held {
    uint64_t tag = 0;          // ours, in the order taken
    std::string item;          // the list item as taken
    std::string queue;         // the queue it was taken from
    std::string kombu_tag;     // its field in unacked / member of unacked_index
    std::string entry;         // its unacked value (KombuUnackedEntry)
    int64_t priority = 0;      // properties.priority, for the list a put-back goes to
    bool recorded = false;     // the unacked MULTI succeeded
    std::optional<TaskDelivery> delivery;  // until Next hands it over
  };

  void ReaderLoop();
  bool CanTake() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReaderFailed(absl::Status status);
  Held Take(const std::string& key, std::string item);
  // Runs `commands` on the loop connection; UNAVAILABLE marks it broken for good.
  absl::StatusOr<std::vector<redis::RedisReply>> LoopPipeline(
      std::vector<redis::RedisCommand> commands);
  absl::Status CheckOpen() const;
  absl::Status Remove(uint64_t tag, std::vector<redis::RedisCommand> also);
  absl::StatusOr<int> Sweep(const std::vector<std::string>& ours);
  void PutBack(std::vector<Held> held);
  void StopReader();

  const RedisCeleryBrokerOptions options_;
  std::string queue_;
  std::unique_ptr<redis::RedisConnection> loop_;  // the loop thread's
  absl::Status loop_error_;  // UNAVAILABLE once the loop connection broke
  bool closed_ = false;
  std::vector<redis::RedisCommand> pending_;  // Publish / Reply until Flush
  int event_fd_ = -1;
  absl::Time next_restore_ = absl::InfinitePast();
  std::thread reader_thread_;
  std::unique_ptr<redis::RedisConnection> reader_;  // the reader thread's once it runs
  int64_t reader_client_id_ = 0;                  // to CLIENT UNBLOCK its BRPOP on Close

  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool consuming_ ABSL_GUARDED_BY(mu_) = false;
  int prefetch_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_tag_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, Held> held_ ABSL_GUARDED_BY(mu_);
  std::deque<uint64_t> ready_ ABSL_GUARDED_BY(mu_);  // held, not yet returned by Next
  absl::Status reader_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace modeld::transport::celery
