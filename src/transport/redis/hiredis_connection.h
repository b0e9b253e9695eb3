// HiredisConnection: RedisConnection over a blocking hiredis context (the only file that
// includes hiredis).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "transport/redis/redis_connection.h"
#include "transport/redis/redis_url.h"

namespace modeld::transport::redis {

struct HiredisOptions {
  absl::Duration connect_timeout = absl::Seconds(5);
  // A reply slower than this breaks the connection (UNAVAILABLE). Blocking commands must ask
  // for less (the worker blocks 1 s at a time).
  absl::Duration command_timeout = absl::Seconds(10);
};

// Connects, authenticates (AUTH [user] password), selects the database and names the client
// ("modeld-<role>"). Errors as RedisConnector's.
absl::StatusOr<std::unique_ptr<RedisConnection>> ConnectHiredis(const RedisEndpoint& endpoint,
                                                                const HiredisOptions& options,
                                                                absl::string_view role);

}  // namespace modeld::transport::redis
