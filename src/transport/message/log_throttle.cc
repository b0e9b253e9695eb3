#include "transport/message/log_throttle.h"

#include "common/logging.h"

namespace modeld::transport::message {

bool LogThrottle::Warn(absl::Time now, const std::string& message) {
  absl::MutexLock lock(&mu_);
  if (now < next_) {
    ++suppressed_;
    return false;
  }
  next_ = now + period_;
  if (suppressed_ > 0) {
    spdlog::warn("{}: {} ({} similar messages suppressed)", prefix_, message, suppressed_);
  } else {
    spdlog::warn("{}: {}", prefix_, message);
  }
  suppressed_ = 0;
  return true;
}

}  // namespace modeld::transport::message
