#include "transport/message/log_throttle.h"

#include "gtest/gtest.h"

namespace modeld::transport::message {
namespace {

TEST(LogThrottleTest, LogsOncePerPeriod) {
  LogThrottle throttle("redis", absl::Seconds(10));
  const absl::Time start = absl::FromUnixSeconds(1000);
  EXPECT_TRUE(throttle.Warn(start, "bad entry"));
  EXPECT_FALSE(throttle.Warn(start + absl::Seconds(1), "bad entry"));
  EXPECT_FALSE(throttle.Warn(start + absl::Seconds(9), "bad entry"));
  EXPECT_TRUE(throttle.Warn(start + absl::Seconds(10), "bad entry"));
  EXPECT_FALSE(throttle.Warn(start + absl::Seconds(11), "bad entry"));
}

}  // namespace
}  // namespace modeld::transport::message
