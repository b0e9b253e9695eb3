// FakeClock: time that moves only when a test advances it. Test-only.
#pragma once

#include "absl/synchronization/mutex.h"
#include "common/clock.h"

namespace modeld::testing {

// Thread-safe.
class FakeClock : public common::Clock {
 public:
  explicit FakeClock(absl::Time start = absl::UnixEpoch() + absl::Hours(1)) : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }

  void Advance(absl::Duration duration) {
    absl::MutexLock lock(&mu_);
    now_ += duration;
  }

  // A waiter cannot be woken by Advance() through another mutex, so it re-checks the fake
  // time every millisecond of real time; the outcome depends only on the fake time.
  bool AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& condition,
                         absl::Time deadline) const override {
    while (true) {
      if (mu.AwaitWithTimeout(condition, absl::Milliseconds(1))) return true;
      if (Now() >= deadline) return false;
    }
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_;
};

}  // namespace modeld::testing
