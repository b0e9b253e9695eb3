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

TEST(StatusCodesTest, RpcCodesAreGoogleRpcCodeNumbers) {
  EXPECT_EQ(ToRpcCode(absl::OkStatus()), 0);
  EXPECT_EQ(ToRpcCode(absl::InvalidArgumentError("bad")), 3);
  EXPECT_EQ(ToRpcCode(absl::DeadlineExceededError("bad")), 4);
  EXPECT_EQ(ToRpcCode(absl::NotFoundError("bad")), 5);
  EXPECT_EQ(ToRpcCode(absl::AbortedError("bad")), 10);
  EXPECT_EQ(ToRpcCode(absl::InternalError("bad")), 13);
  EXPECT_EQ(ToRpcCode(absl::UnavailableError("bad")), 14);
}

TEST(StatusCodesTest, MapsEveryCodeToItsHttpStatus) {
  const std::vector<std::pair<absl::Status, int>> cases = {
      {absl::OkStatus(), 200},
      {absl::InvalidArgumentError("bad"), 400},
      {absl::FailedPreconditionError("bad"), 400},
      {absl::OutOfRangeError("bad"), 400},
      {absl::UnauthenticatedError("bad"), 401},
      {absl::PermissionDeniedError("bad"), 403},
      {absl::NotFoundError("bad"), 404},
      {absl::AlreadyExistsError("bad"), 409},
      {absl::AbortedError("bad"), 409},
      {absl::ResourceExhaustedError("bad"), 429},
      {absl::CancelledError("bad"), 499},
      {absl::UnimplementedError("bad"), 501},
      {absl::UnavailableError("bad"), 503},
      {absl::DeadlineExceededError("bad"), 504},
      {absl::InternalError("bad"), 500},
      {absl::UnknownError("bad"), 500},
      {absl::DataLossError("bad"), 500},
  };
  for (const auto& [status, http] : cases) EXPECT_EQ(ToHttpStatus(status), http) << status;
}

}  // namespace
}  // namespace modeld::transport
