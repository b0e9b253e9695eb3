#include "transport/status_codes.h"

#include "gtest/gtest.h"

namespace modeld::transport {
namespace {

TEST(StatusCodesTest, MapsEveryCodeTheDesignNamesAndKeepsTheMessage) {
  const std::vector<std::pair<absl::Status, grpc::StatusCode>> cases = {
      {absl::InvalidArgumentError("bad"), grpc::StatusCode::INVALID_ARGUMENT},
      {absl::NotFoundError("bad"), grpc::StatusCode::NOT_FOUND},
      {absl::UnavailableError("bad"), grpc::StatusCode::UNAVAILABLE},
      {absl::ResourceExhaustedError("bad"), grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::DeadlineExceededError("bad"), grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::UnimplementedError("bad"), grpc::StatusCode::UNIMPLEMENTED},
      {absl::InternalError("bad"), grpc::StatusCode::INTERNAL},
  };
  for (const auto& [status, code] : cases) {
    grpc::Status wire = ToGrpcStatus(status);
    EXPECT_EQ(wire.error_code(), code) << status;
    EXPECT_EQ(wire.error_message(), "bad");
  }
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

}  // namespace
}  // namespace modeld::transport
