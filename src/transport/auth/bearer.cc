#include "transport/auth/bearer.h"

#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace modeld::transport::auth {

absl::Status CheckBearer(const TokenStore& tokens, std::optional<absl::string_view> authorization) {
  if (!authorization.has_value()) {
    return absl::UnauthenticatedError(
        "missing bearer token: send the header 'authorization: Bearer <token>'");
  }
  absl::string_view value = absl::StripAsciiWhitespace(*authorization);
  if (value.size() < 7 || !absl::StartsWithIgnoreCase(value, "bearer ")) {
    return absl::UnauthenticatedError("malformed authorization: expected 'Bearer <token>'");
  }
  value = absl::StripLeadingAsciiWhitespace(value.substr(7));
  if (value.empty() || !tokens.Check(value)) {
    return absl::UnauthenticatedError("invalid bearer token");
  }
  return absl::OkStatus();
}

}  // namespace modeld::transport::auth
