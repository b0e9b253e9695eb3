// RedisConnection: one connection to Redis that sends commands as argument vectors and reads
// their replies, in order. The worker logic talks to Redis only through this interface, so
// it can be tested without a server; HiredisConnection (hiredis_connection.h) is the real one.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace modeld::transport::redis {

// One RESP reply, copied out of the client library so it outlives the connection.
struct RedisReply {
  enum class Type { kString, kArray, kInteger, kNil, kStatus, kError };

  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  int64_t integer = 0;
  std::vector<RedisReply> elements;  // kArray

  bool IsError() const { return type == Type::kError; }
  bool IsNil() const { return type == Type::kNil; }
  // For kString and kStatus.
  bool IsText() const { return type == Type::kString || type == Type::kStatus; }

  static RedisReply Nil() { return {}; }
  static RedisReply String(std::string s) { return {Type::kString, std::move(s), 0, {}}; }
  static RedisReply Status(std::string s) { return {Type::kStatus, std::move(s), 0, {}}; }
  static RedisReply Error(std::string s) { return {Type::kError, std::move(s), 0, {}}; }
  static RedisReply Integer(int64_t i) { return {Type::kInteger, {}, i, {}}; }
  static RedisReply Array(std::vector<RedisReply> e) { return {Type::kArray, {}, 0, std::move(e)}; }
};

// "OK", "(nil)", "[a, 1, ...]": for test failures and logs.
std::string DebugString(const RedisReply& reply);

using RedisCommand = std::vector<std::string>;

// Not thread-safe: one thread uses a connection at a time.
class RedisConnection {
 public:
  virtual ~RedisConnection() = default;

  // Sends every command, then reads one reply per command (one round trip). A reply that is a
  // Redis error (WRONGTYPE, NOGROUP, ...) comes back as a kError reply in its place; the call
  // itself fails with UNAVAILABLE when the connection breaks or times out, after which the
  // connection is unusable (every later call fails the same way) and the caller reconnects.
  virtual absl::StatusOr<std::vector<RedisReply>> Pipeline(std::vector<RedisCommand> commands) = 0;

  // One command: Pipeline of one.
  absl::StatusOr<RedisReply> Command(RedisCommand command);
};

// Opens a new, ready (authenticated, database selected) connection. `role` names it for the
// server's CLIENT LIST ("reader", "writer"). UNAVAILABLE when Redis cannot be reached,
// PERMISSION_DENIED when it refuses the credentials or the database.
using RedisConnector =
    std::function<absl::StatusOr<std::unique_ptr<RedisConnection>>(absl::string_view role)>;

}  // namespace modeld::transport::redis
