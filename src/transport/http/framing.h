// The framing rules modeld holds a request's header to before it reads the body (RFC 9112
// §6): a proxy in front and modeld must agree on where one request ends and the next begins,
// or a request can be smuggled inside another.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace modeld::transport::http {

// Every field of a request's header: (lowercased name, value), in order.
using HeaderFields = std::vector<std::pair<std::string, std::string>>;

// INVALID_ARGUMENT (answered 400, and the connection closed) for:
//   - Transfer-Encoding together with Content-Length;
//   - a Transfer-Encoding whose last coding is not chunked;
//   - Content-Length or Inference-Header-Content-Length given more than once with different
//     values.
// A plain "Transfer-Encoding: chunked" passes: the caller answers it 411 (modeld reads bodies
// by Content-Length only).
absl::Status CheckRequestFraming(const HeaderFields& fields);

}  // namespace modeld::transport::http
