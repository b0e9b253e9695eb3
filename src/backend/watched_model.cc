#include "backend/watched_model.h"

namespace modeld::backend {

RunWatch::RunWatch(size_t instances)
    : size_(instances), started_ns_(new std::atomic<int64_t>[instances]) {
  for (size_t i = 0; i < size_; ++i) started_ns_[i].store(0);
}

absl::Time RunWatch::OldestRunStart() const {
  int64_t oldest = 0;
  for (size_t i = 0; i < size_; ++i) {
    const int64_t started = started_ns_[i].load(std::memory_order_relaxed);
    if (started != 0 && (oldest == 0 || started < oldest)) oldest = started;
  }
  return oldest == 0 ? absl::InfiniteFuture() : absl::FromUnixNanos(oldest);
}

void RunWatch::Begin(size_t slot, absl::Time now) {
  started_ns_[slot].store(absl::ToUnixNanos(now), std::memory_order_relaxed);
}

void RunWatch::End(size_t slot) { started_ns_[slot].store(0, std::memory_order_relaxed); }

}  // namespace modeld::backend
