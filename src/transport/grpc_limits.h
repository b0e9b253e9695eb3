// The gRPC request limits modeld checks itself, so that their answers name the flag to change.
// gRPC's own receive limit is set above them (grpc_core_receive_limit) and only stops messages
// so large that they must not even be buffered.
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace modeld::transport {

// RESOURCE_EXHAUSTED for a request message of `bytes` over `limit` (--grpc-max-message-bytes);
// OK when it fits, or when `limit` is 0 (no limit).
absl::Status CheckMessageSize(int64_t bytes, int64_t limit);

// The receive limit to give gRPC itself for --grpc-max-message-bytes=`limit`: twice it (capped
// at INT_MAX), so a message up to twice the limit reaches CheckMessageSize and gets an answer
// naming the flag; a bigger one gets gRPC's "Received message larger than max".
int GrpcCoreReceiveLimit(int64_t limit);

}  // namespace modeld::transport
