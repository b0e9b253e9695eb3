#include "service/admission.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace modeld::service {

int64_t VersionCapacity(const core::ModelConfig& config) {
  const int64_t running =
      static_cast<int64_t>(std::max(1, config.instance_count)) * std::max(1, config.max_batch_size);
  const int64_t queue = config.proto.has_dynamic_batching()
                            ? static_cast<int64_t>(
                                  config.proto.dynamic_batching().default_queue_policy().max_queue_size())
                            : 0;
  return running + (queue > 0 ? queue : running);
}

int64_t AutoLimit(const std::vector<std::shared_ptr<const core::ModelConfig>>& served) {
  int64_t sum = 0;
  for (const auto& config : served) sum += VersionCapacity(*config);
  return std::max(kMinAutoLimit, sum);
}

Admission::Admission(int64_t limit, metrics::Registry* registry, bool automatic)
    : limit_(limit), automatic_(automatic) {
  if (registry != nullptr) {
    rejected_ = &registry->GetCounter(
        "modeld_requests_rejected_total",
        "Inference requests refused on arrival, before their payload was read, by reason.",
        {{"reason", "max_inflight_requests"}});
  }
}

Admission::Ticket& Admission::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    if (owner_ != nullptr) owner_->Release();
    owner_ = std::exchange(other.owner_, nullptr);
  }
  return *this;
}

Admission::Ticket::~Ticket() {
  if (owner_ != nullptr) owner_->Release();
}

void Admission::Release() {
  in_flight_.fetch_sub(1, std::memory_order_acq_rel);
  if (waiters_.load(std::memory_order_acquire) > 0) {
    absl::MutexLock lock(&mu_);
    freed_.SignalAll();
  }
}

absl::StatusOr<Admission::Ticket> Admission::Admit() {
  const int64_t now = in_flight_.fetch_add(1, std::memory_order_acq_rel) + 1;
  const int64_t limit = limit_.load(std::memory_order_relaxed);
  if (limit > 0 && now > limit) {
    Release();
    if (rejected_ != nullptr) rejected_->Increment();
    return absl::ResourceExhaustedError(absl::StrCat(
        "modeld is at its limit of ", limit, " inference requests in flight (",
        automatic_ ? absl::StrCat("--max-inflight-requests=auto, from the served models' "
                                  "instances and queues")
                   : absl::StrCat("--max-inflight-requests=", limit),
        "); retry after a short wait"));
  }
  return Ticket(this);
}

Admission::Ticket Admission::Hold() {
  in_flight_.fetch_add(1, std::memory_order_acq_rel);
  return Ticket(this);
}

int64_t Admission::Free() const {
  const int64_t limit = limit_.load(std::memory_order_relaxed);
  if (limit <= 0) return std::numeric_limits<int64_t>::max();
  return std::max<int64_t>(0, limit - in_flight_.load(std::memory_order_acquire));
}

int64_t Admission::WaitForFree(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  waiters_.fetch_add(1, std::memory_order_acq_rel);
  // Free() is re-read under mu_ after the waiter is counted, so a release in between signals.
  while (Free() == 0) {
    if (freed_.WaitWithDeadline(&mu_, deadline)) break;
  }
  waiters_.fetch_sub(1, std::memory_order_acq_rel);
  return Free();
}

void Admission::SetLimit(int64_t limit) {
  limit_.store(limit, std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  freed_.SignalAll();
}

}  // namespace modeld::service
