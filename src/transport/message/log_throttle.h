// LogThrottle: a repeated warning logged at most once per period, with the count of those it
// held back (a broken producer can send thousands of bad entries a second).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace modeld::transport::message {

// Thread-safe.
class LogThrottle {
 public:
  // `prefix` names the transport in each line ("redis", "amqp").
  explicit LogThrottle(std::string prefix, absl::Duration period = absl::Seconds(10))
      : prefix_(std::move(prefix)), period_(period) {}

  // Logs "<prefix>: <message>" as a warning unless one was logged less than a period before
  // `now`; returns whether it logged.
  bool Warn(absl::Time now, const std::string& message);

 private:
  const std::string prefix_;
  const absl::Duration period_;
  absl::Mutex mu_;
  absl::Time next_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace modeld::transport::message
