// The bearer-token check both the gRPC and the HTTP transports apply (RFC 6750): the
// `authorization` header or metadata value must be "Bearer <token>" with a token of the
// TokenStore.
#pragma once

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "transport/auth/token_store.h"

namespace modeld::transport::auth {

// OK when `authorization` is "Bearer <token>" (the scheme in any case) and the token is in
// `tokens`; otherwise UNAUTHENTICATED saying whether the token was missing, malformed or not
// accepted (never echoing the value sent).
absl::Status CheckBearer(const TokenStore& tokens, std::optional<absl::string_view> authorization);

}  // namespace modeld::transport::auth
