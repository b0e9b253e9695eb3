// The HTTP messages the server hands to a Handler and gets back, free of Boost.Beast, so the
// REST code and its tests never include the networking library.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"

namespace modeld::transport::http {

// One complete request. Immutable once handed to a Handler; shared so that tensors decoded
// from the body can view its bytes until the inference that uses them has been answered.
struct Request {
  std::string method;  // as sent: "GET", "POST", ...
  std::string target;  // as sent: path and query, e.g. "/v2/models/linear/infer?x=1"
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  // The first value of header `lower_name` (given in lower case), or nullopt.
  std::optional<absl::string_view> Header(absl::string_view lower_name) const;
  // The target before any '?'.
  absl::string_view Path() const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string body;
  // Close the connection after this response (the server also closes when the client asked).
  bool close = false;
};

// {"error": "<message>"} with `status`; the message is JSON-escaped, and bytes that are not
// UTF-8 become U+FFFD, so any text (a model name from the URL, say) makes a valid body.
Response ErrorResponse(int status, absl::string_view message);

// Delivers the response of one request. Call it exactly once, from any thread (inference
// answers arrive on model worker threads); it only queues the write and never blocks.
using Reply = absl::AnyInvocable<void(Response) &&>;

// What the server calls for every complete request, on one of its I/O threads. Must not block:
// long work (inference) is handed off and answered through `reply` later.
class Handler {
 public:
  virtual ~Handler() = default;
  virtual void Handle(std::shared_ptr<const Request> request, Reply reply) = 0;
};

}  // namespace modeld::transport::http
