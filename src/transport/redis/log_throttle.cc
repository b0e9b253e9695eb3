#include "transport/redis/log_throttle.h"

#include "common/logging.h"

namespace modeld::transport::redis {

bool LogThrottle::Warn(absl::Time now, const std::string& message) {
  absl::MutexLock lock(&mu_);
  if (now < next_) {
    ++suppressed_;
    return false;
  }
  next_ = now + period_;
  if (suppressed_ > 0) {
    spdlog::warn("redis: {} ({} similar messages suppressed)", message, suppressed_);
  } else {
    spdlog::warn("redis: {}", message);
  }
  suppressed_ = 0;
  return true;
}

}  // namespace modeld::transport::redis
