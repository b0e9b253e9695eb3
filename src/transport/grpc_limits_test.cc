#include "transport/grpc_limits.h"

#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::transport {
namespace {

using ::testing::HasSubstr;

TEST(GrpcLimitsTest, AMessageOverTheLimitIsResourceExhaustedNamingTheFlag) {
  EXPECT_TRUE(CheckMessageSize(65536, 65536).ok());
  const absl::Status over = CheckMessageSize(65537, 65536);
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(over.message()),
              HasSubstr("65537 bytes, over the limit of 65536 bytes (--grpc-max-message-bytes)"));
  EXPECT_TRUE(CheckMessageSize(int64_t{1} << 40, 0).ok());  // 0: no limit
}

TEST(GrpcLimitsTest, GrpcItselfStopsAtTwiceTheLimitCappedAtIntMax) {
  EXPECT_EQ(GrpcCoreReceiveLimit(65536), 131072);
  EXPECT_EQ(GrpcCoreReceiveLimit(int64_t{3} << 30), std::numeric_limits<int>::max());
  EXPECT_EQ(GrpcCoreReceiveLimit(int64_t{1} << 40), std::numeric_limits<int>::max());
}

}  // namespace
}  // namespace modeld::transport
