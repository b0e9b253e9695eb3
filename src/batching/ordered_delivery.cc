#include "batching/ordered_delivery.h"

namespace modeld::batching {

void OrderedDelivery::Deliver(uint64_t sequence, core::InferCallback done,
                              absl::StatusOr<core::InferResponse> result) {
  absl::MutexLock lock(&mu_);
  waiting_.emplace(sequence, Entry(std::move(done), std::move(result)));
  // One thread at a time delivers whatever has become consecutive; the others just leave
  // their entry behind for it.
  if (delivering_) return;
  delivering_ = true;
  while (!waiting_.empty() && waiting_.begin()->first == next_) {
    Entry entry = std::move(waiting_.begin()->second);
    waiting_.erase(waiting_.begin());
    ++next_;
    mu_.Unlock();
    std::move(entry.first)(std::move(entry.second));
    mu_.Lock();
  }
  delivering_ = false;
}

}  // namespace modeld::batching
