// AmqpUrl: where the AMQP transport connects, parsed from --amqp-url
// (amqp://user:password@host:port/vhost, or amqps:// for TLS), as RabbitMQ's URI spec reads it.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace modeld::transport::amqp {

struct AmqpUrl {
  bool tls = false;
  std::string host = "localhost";
  int port = 5672;             // 5671 for amqps://
  std::string user = "guest";  // RabbitMQ's defaults when the URL has none
  std::string password = "guest";
  std::string vhost = "/";  // an empty path; "/%2f" is "/" too

  // The URL with the password replaced by "***", for logs and errors.
  std::string Redacted() const;
};

// INVALID_ARGUMENT, naming --amqp-url, for another scheme, a bad port or a bad %-escape.
// User, password and vhost are %-decoded.
absl::StatusOr<AmqpUrl> ParseAmqpUrl(absl::string_view url);

}  // namespace modeld::transport::amqp
