// Backoff: the waits between reconnection attempts, doubling from `min` up to `max`, each with
// ±20% jitter so that workers which lost Redis together do not all come back in the same
// millisecond.
#pragma once

#include "absl/random/random.h"
#include "absl/time/time.h"

namespace modeld::transport::message {

// Not thread-safe: one per connection-owning thread.
class Backoff {
 public:
  Backoff(absl::Duration min, absl::Duration max) : min_(min), max_(max), next_(min) {}

  // The next wait: the current step, jittered; the step then doubles, up to `max`.
  absl::Duration Next();
  // Back to `min` (after a success).
  void Reset() { next_ = min_; }

 private:
  const absl::Duration min_;
  const absl::Duration max_;
  absl::Duration next_;
  absl::BitGen bitgen_;
};

}  // namespace modeld::transport::message
