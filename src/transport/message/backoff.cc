#include "transport/message/backoff.h"

#include <algorithm>

namespace modeld::transport::message {

absl::Duration Backoff::Next() {
  const absl::Duration current = next_;
  next_ = std::min(next_ * 2, max_);
  return current * absl::Uniform(bitgen_, 0.8, 1.2);
}

}  // namespace modeld::transport::message
