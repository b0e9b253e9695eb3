#include "transport/redis/hiredis_connection.h"

#include <sys/time.h>

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "hiredis/hiredis.h"

namespace modeld::transport::redis {
namespace {

RedisReply Copy(const redisReply& reply) {
  switch (reply.type) {
    case REDIS_REPLY_STRING:
      return RedisReply::String(std::string(reply.str, reply.len));
    case REDIS_REPLY_STATUS:
      return RedisReply::Status(std::string(reply.str, reply.len));
    case REDIS_REPLY_ERROR:
      return RedisReply::Error(std::string(reply.str, reply.len));
    case REDIS_REPLY_INTEGER:
      return RedisReply::Integer(reply.integer);
    case REDIS_REPLY_ARRAY: {
      std::vector<RedisReply> elements;
      elements.reserve(reply.elements);
      for (size_t i = 0; i < reply.elements; ++i) elements.push_back(Copy(*reply.element[i]));
      return RedisReply::Array(std::move(elements));
    }
    default:
      return RedisReply::Nil();
  }
}

struct ContextDeleter {
  void operator()(redisContext* context) const { redisFree(context); }
};
struct ReplyDeleter {
  void operator()(void* reply) const { freeReplyObject(reply); }
};

class HiredisConnection : public RedisConnection {
 public:
  HiredisConnection(std::unique_ptr<redisContext, ContextDeleter> context, std::string where)
      : context_(std::move(context)), where_(std::move(where)) {}

  absl::StatusOr<std::vector<RedisReply>> Pipeline(std::vector<RedisCommand> commands) override {
    if (broken_) return Broken();
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (const RedisCommand& command : commands) {
      argv.clear();
      lengths.clear();
      for (const std::string& arg : command) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
      }
      // Appending only buffers the command; it fails only when out of memory.
      if (redisAppendCommandArgv(context_.get(), static_cast<int>(argv.size()), argv.data(),
                                 lengths.data()) != REDIS_OK) {
        return Break();
      }
    }
    std::vector<RedisReply> replies;
    replies.reserve(commands.size());
    for (size_t i = 0; i < commands.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(context_.get(), &raw) != REDIS_OK || raw == nullptr) return Break();
      std::unique_ptr<void, ReplyDeleter> reply(raw);
      replies.push_back(Copy(*static_cast<redisReply*>(raw)));
    }
    return replies;
  }

 private:
  absl::Status Broken() const {
    return absl::UnavailableError(absl::StrCat("Redis connection to ", where_, " lost: ", why_));
  }
  absl::Status Break() {
    broken_ = true;
    why_ = context_->err != 0 ? std::string(context_->errstr) : "no reply";
    if (why_.empty() || absl::StrContains(why_, "Resource temporarily unavailable")) {
      why_ = "timed out";
    }
    return Broken();
  }

  std::unique_ptr<redisContext, ContextDeleter> context_;
  const std::string where_;
  bool broken_ = false;
  std::string why_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RedisConnection>> ConnectHiredis(const RedisEndpoint& endpoint,
                                                                const HiredisOptions& options,
                                                                absl::string_view role) {
  const std::string where = endpoint.ToString();
  std::unique_ptr<redisContext, ContextDeleter> context(redisConnectWithTimeout(
      endpoint.host.c_str(), endpoint.port, absl::ToTimeval(options.connect_timeout)));
  if (context == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot connect to Redis at ", where));
  }
  if (context->err != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to Redis at ", where, ": ", context->errstr));
  }
  // Without a timeout, a Redis host that vanishes without closing the socket would hang the
  // worker for good; keep-alive finds such peers on idle connections too.
  if (redisSetTimeout(context.get(), absl::ToTimeval(options.command_timeout)) != REDIS_OK ||
      redisEnableKeepAlive(context.get()) != REDIS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot set up the Redis connection to ", where, ": ", context->errstr));
  }
  auto connection = std::make_unique<HiredisConnection>(std::move(context), where);

  std::vector<RedisCommand> setup;
  if (!endpoint.password.empty()) {
    setup.push_back(endpoint.user.empty() ? RedisCommand{"AUTH", endpoint.password}
                                          : RedisCommand{"AUTH", endpoint.user, endpoint.password});
  }
  if (endpoint.db != 0) setup.push_back({"SELECT", absl::StrCat(endpoint.db)});
  setup.push_back({"CLIENT", "SETNAME", absl::StrCat("modeld-", role)});
  absl::StatusOr<std::vector<RedisReply>> replies = connection->Pipeline(std::move(setup));
  if (!replies.ok()) return replies.status();
  for (const RedisReply& reply : *replies) {
    if (reply.IsError()) {
      return absl::PermissionDeniedError(
          absl::StrCat("Redis at ", where, " refused the connection set-up: ", reply.str));
    }
  }
  return connection;
}

}  // namespace modeld::transport::redis
