// RedisEndpoint: where the Redis transport connects, parsed from --redis-url.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace modeld::transport::redis {

struct RedisEndpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user;      // empty: AUTH <password> (the default user), when a password is set
  std::string password;  // empty: no AUTH
  int64_t db = 0;        // SELECT <db> when not 0

  // "host:port/db" without the credentials, for logs.
  std::string ToString() const;
};

// Parses redis://[[user]:password@]host[:port][/db]. The user and the password may be
// percent-encoded; an IPv6 host goes in brackets. INVALID_ARGUMENT saying what is wrong for
// another scheme, an empty host, a port outside 1..65535 or a db that is not a number.
absl::StatusOr<RedisEndpoint> ParseRedisUrl(absl::string_view url);

}  // namespace modeld::transport::redis
