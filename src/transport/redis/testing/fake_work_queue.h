// FakeWorkQueue: an in-memory WorkQueue for RedisWorker tests, with failure injection; and
// NullConnection / a connector that hands it out. Test-only.
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "transport/redis/work_queue.h"

namespace modeld::transport::redis {

// A connection that is never used for real (the fake queue ignores it).
class NullConnection : public RedisConnection {
 public:
  absl::StatusOr<std::vector<RedisReply>> Pipeline(std::vector<RedisCommand>) override {
    return absl::UnimplementedError("NullConnection");
  }
};

// Hands out NullConnections, or UNAVAILABLE while refusing; counts the attempts.
class FakeConnector {
 public:
  RedisConnector connector();
  void set_refusing(bool refusing) { refusing_ = refusing; }
  int attempts() const { return attempts_; }

 private:
  std::atomic<bool> refusing_{false};
  std::atomic<int> attempts_{0};
};

// Thread-safe.
class FakeWorkQueue : public WorkQueue {
 public:
  // One completion as the worker sent it.
  struct Finished {
    QueueEntry entry;
    std::string reply_key;
    std::string reply;
    std::string dead_reason;
  };
  enum class Op { kPrepare, kTake, kRecover, kDepth, kHeartbeat, kComplete };

  explicit FakeWorkQueue(bool needs_envelope = false) : needs_envelope_(needs_envelope) {}

  // --- test side ---
  void Add(QueueEntry entry);        // taken by a later Take
  void AddOrphan(QueueEntry entry);  // returned by the next Recover (unless held)
  // The next `times` calls of `op` fail with `status`.
  void Fail(Op op, absl::Status status, int times = 1);
  // Complete answers this outcome for the entry `id` (instead of kDone).
  void SetOutcome(const std::string& id, CompletionOutcome outcome);
  std::vector<Finished> finished() const;
  // Waits until at least `count` completions were made.
  bool WaitForFinished(size_t count, absl::Duration timeout) const;
  int calls(Op op) const;
  int held() const;      // taken (or recovered) and not completed
  int max_held() const;  // the most ever held at once
  size_t waiting() const;

  // --- WorkQueue ---
  std::string Describe() const override { return "fake queue"; }
  bool CompletionNeedsEnvelope() const override { return needs_envelope_; }
  absl::Status Prepare(RedisConnection&, bool first) override;
  absl::StatusOr<std::vector<QueueEntry>> Take(RedisConnection&, int max,
                                               absl::Duration block) override;
  absl::StatusOr<Recovered> Recover(RedisConnection&, int max,
                                    const std::function<bool(absl::string_view)>& held) override;
  absl::StatusOr<QueueDepth> Depth(RedisConnection&) override;
  absl::Status Heartbeat(RedisConnection&) override;
  absl::Duration HeartbeatInterval() const override { return absl::Milliseconds(50); }
  absl::StatusOr<std::vector<CompletionOutcome>> Complete(
      RedisConnection&, const std::vector<Completion>& completions) override;

  bool first_prepare_seen() const;

 private:
  absl::Status Injected(Op op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const bool needs_envelope_;
  mutable absl::Mutex mu_;
  std::deque<QueueEntry> waiting_ ABSL_GUARDED_BY(mu_);
  std::deque<QueueEntry> orphans_ ABSL_GUARDED_BY(mu_);
  std::map<Op, std::deque<absl::Status>> failures_ ABSL_GUARDED_BY(mu_);
  std::map<Op, int> calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, CompletionOutcome> outcomes_ ABSL_GUARDED_BY(mu_);
  std::vector<Finished> finished_ ABSL_GUARDED_BY(mu_);
  int held_ ABSL_GUARDED_BY(mu_) = 0;
  int max_held_ ABSL_GUARDED_BY(mu_) = 0;
  bool first_prepare_seen_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace modeld::transport::redis
