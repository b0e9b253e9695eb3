// RedisTestServer: a redis-server child process on a free loopback port, without
// persistence, for tests of the queues against real Redis. Test-only.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "transport/redis/redis_connection.h"
#include "transport/redis/redis_url.h"

namespace modeld::transport::redis {

class RedisTestServer {
 public:
  // Starts redis-server with `extra_args` and waits (up to 10 s) until it answers PING.
  // NOT_FOUND when redis-server is not installed (tests then skip), UNAVAILABLE when it did
  // not come up.
  static absl::StatusOr<std::unique_ptr<RedisTestServer>> Start(
      std::vector<std::string> extra_args = {});
  ~RedisTestServer();  // SIGKILL and reap

  int port() const { return port_; }
  RedisEndpoint endpoint() const;
  // A new connection (the default user, no password); fails the calling test otherwise.
  absl::StatusOr<std::unique_ptr<RedisConnection>> Connect() const;

 private:
  RedisTestServer(pid_t pid, int port) : pid_(pid), port_(port) {}

  pid_t pid_;
  int port_;
};

}  // namespace modeld::transport::redis
