// Admission: the process-wide cap on inference calls in flight (--max-inflight-requests).
//
// A transport asks as soon as a call's payload has arrived, before it parses or decodes it, so
// an overloaded modeld refuses in microseconds instead of decoding and queueing work it cannot
// finish in time; the admitted calls keep their latency. The slot is held until the call's
// answer has been handed back to the transport.
#pragma once

#include <atomic>
#include <cstdint>

#include "absl/status/statusor.h"
#include "metrics/registry.h"

namespace modeld::service {

// Thread-safe. Outlives every Ticket it gave.
class Admission {
 public:
  // At most `limit` calls at once; 0: no limit. Refusals are counted in `registry` (may be
  // null) as modeld_requests_rejected_total{reason="max_inflight_requests"}.
  Admission(int64_t limit, metrics::Registry* registry);

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

  int64_t limit() const { return limit_; }
  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

 private:
  const int64_t limit_;
  std::atomic<int64_t> in_flight_{0};
  metrics::Counter* rejected_ = nullptr;
};

}  // namespace modeld::service
