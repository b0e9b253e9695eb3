// OrderedDelivery: runs request callbacks in arrival order even when batches finish out of
// order on several instances (dynamic_batching.preserve_ordering).
#pragma once

#include <cstdint>
#include <map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/infer_request.h"

namespace modeld::batching {

// Thread-safe. Sequence numbers start at 0 and must each be delivered exactly once.
class OrderedDelivery {
 public:
  // Runs `done(result)` once every lower sequence number has been delivered; until then the
  // pair waits here. Callbacks run outside the lock, one at a time, in order.
  void Deliver(uint64_t sequence, core::InferCallback done,
               absl::StatusOr<core::InferResponse> result);

 private:
  using Entry = std::pair<core::InferCallback, absl::StatusOr<core::InferResponse>>;

  absl::Mutex mu_;
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 0;
  bool delivering_ ABSL_GUARDED_BY(mu_) = false;
  std::map<uint64_t, Entry> waiting_ ABSL_GUARDED_BY(mu_);
};

}  // namespace modeld::batching
