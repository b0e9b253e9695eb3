#include "transport/grpc_limits.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace modeld::transport {

absl::Status CheckMessageSize(int64_t bytes, int64_t limit) {
  if (limit <= 0 || bytes <= limit) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("the request message is ", bytes, " bytes, over the limit of ", limit,
                   " bytes (--grpc-max-message-bytes); send fewer items per request, or raise "
                   "the limit"));
}

int GrpcCoreReceiveLimit(int64_t limit) {
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  return static_cast<int>(std::min(kMax, std::min(kMax, limit) * 2));
}

}  // namespace modeld::transport
