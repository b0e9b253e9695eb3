#include "transport/redis/redis_connection.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace modeld::transport::redis {

std::string DebugString(const RedisReply& reply) {
  switch (reply.type) {
    case RedisReply::Type::kString:
      return absl::StrCat("\"", reply.str, "\"");
    case RedisReply::Type::kStatus:
      return reply.str;
    case RedisReply::Type::kError:
      return absl::StrCat("(error) ", reply.str);
    case RedisReply::Type::kInteger:
      return absl::StrCat("(integer) ", reply.integer);
    case RedisReply::Type::kNil:
      return "(nil)";
    case RedisReply::Type::kArray:
      return absl::StrCat(
          "[",
          absl::StrJoin(reply.elements, ", ",
                        [](std::string* out, const RedisReply& e) { out->append(DebugString(e)); }),
          "]");
  }
  return "?";
}

absl::StatusOr<RedisReply> RedisConnection::Command(RedisCommand command) {
  std::vector<RedisCommand> commands;
  commands.push_back(std::move(command));
  absl::StatusOr<std::vector<RedisReply>> replies = Pipeline(std::move(commands));
  if (!replies.ok()) return replies.status();
  return std::move(replies->front());
}

}  // namespace modeld::transport::redis
