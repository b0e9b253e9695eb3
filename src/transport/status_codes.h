// The only place an absl::Status becomes a wire error (design.md §5). The message is kept
// whole, so a client sees what the server saw.
#pragma once

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace modeld::transport {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace modeld::transport
