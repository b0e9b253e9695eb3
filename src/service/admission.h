// Admission: the process-wide cap on inference calls in flight (--max-inflight-requests).
//
// A transport asks as soon as a call's payload has arrived, before it parses or decodes it, so
// an overloaded modeld refuses in microseconds instead of decoding and queueing work it cannot
// finish in time; the admitted calls keep their latency. The slot is held until the call's
// answer has been handed back to the transport. Queue transports (Redis) do not refuse: they
// read no more entries than there are free slots, and hold one per entry taken.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/model_config.h"
#include "metrics/registry.h"

namespace modeld::service {

// What one served version can have at work at once: its instances' batches
// (instance_count × max(1, max_batch_size)), plus what may wait for them: the dynamic batcher's
// default max_queue_size when it sets one, else as much again as runs.
int64_t VersionCapacity(const core::ModelConfig& config);

// --max-inflight-requests=auto: the sum of VersionCapacity over the served versions, and at
// least kMinAutoLimit, so that a repository of small unbatched models still serves a web tier's
// workers side by side.
inline constexpr int64_t kMinAutoLimit = 128;
int64_t AutoLimit(const std::vector<std::shared_ptr<const core::ModelConfig>>& served);

// Thread-safe. Outlives every Ticket it gave.
class Admission {
 public:
  // At most `limit` calls at once; 0: no limit. Refusals are counted in `registry` (may be
  // null) as modeld_requests_rejected_total{reason="max_inflight_requests"}. `automatic`:
  // the limit follows SetLimit (the served models), and messages say so.
  Admission(int64_t limit, metrics::Registry* registry, bool automatic = false);

  // One admitted call's slot, given back when the ticket is destroyed.
  class Ticket {
   public:
    Ticket(Ticket&& other) noexcept : owner_(other.owner_) { other.owner_ = nullptr; }
    Ticket& operator=(Ticket&& other) noexcept;
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket();

   private:
    friend class Admission;
    explicit Ticket(Admission* owner) : owner_(owner) {}
    Admission* owner_;
  };

  // A slot, or RESOURCE_EXHAUSTED naming the limit and its flag.
  absl::StatusOr<Ticket> Admit();

  // A slot even over the limit, for work already taken from a queue (which cannot be handed
  // back); readers ask Free() first, so this overshoots only by what raced with them.
  Ticket Hold();

  // Slots free now (the limit minus those held, at least 0); INT64_MAX with no limit.
  int64_t Free() const;

  // Waits until a slot is free or `deadline` passes; returns Free().
  int64_t WaitForFree(absl::Time deadline);

  // Changes the limit (0: none); calls already admitted keep their slots.
  void SetLimit(int64_t limit);

  int64_t limit() const { return limit_.load(std::memory_order_relaxed); }
  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

 private:
  void Release();

  std::atomic<int64_t> limit_;
  const bool automatic_;
  std::atomic<int64_t> in_flight_{0};
  metrics::Counter* rejected_ = nullptr;
  // WaitForFree's waiters; a release wakes them only when there are any.
  std::atomic<int> waiters_{0};
  absl::Mutex mu_;
  absl::CondVar freed_;
};

}  // namespace modeld::service
