#include "service/admission.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace modeld::service {

Admission::Admission(int64_t limit, metrics::Registry* registry) : limit_(limit) {
  if (registry != nullptr) {
    rejected_ = &registry->GetCounter(
        "modeld_requests_rejected_total",
        "Inference requests refused on arrival, before their payload was read, by reason.",
        {{"reason", "max_inflight_requests"}});
  }
}

Admission::Ticket& Admission::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    if (owner_ != nullptr) owner_->in_flight_.fetch_sub(1, std::memory_order_relaxed);
    owner_ = std::exchange(other.owner_, nullptr);
  }
  return *this;
}

Admission::Ticket::~Ticket() {
  if (owner_ != nullptr) owner_->in_flight_.fetch_sub(1, std::memory_order_relaxed);
}

absl::StatusOr<Admission::Ticket> Admission::Admit() {
  const int64_t now = in_flight_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (limit_ > 0 && now > limit_) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    if (rejected_ != nullptr) rejected_->Increment();
    return absl::ResourceExhaustedError(
        absl::StrCat("modeld is at its limit of ", limit_,
                     " inference requests in flight (--max-inflight-requests=", limit_,
                     "); retry after a short wait"));
  }
  return Ticket(this);
}

}  // namespace modeld::service
