#include "transport/celery/redis/redis_celery_broker.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "transport/celery/redis/kombu_layout.h"

namespace modeld::transport::celery {
namespace {

using redis::RedisCommand;
using redis::RedisReply;

// Puts one unacked delivery back, only if its unacked entry is still the one we read (another
// consumer may have restored or acknowledged it meanwhile). A script rather than
// WATCH/MULTI: every delivery anywhere writes the `unacked` hash, so a WATCH on it would abort
// often. KEYS: unacked, unacked_index, the lists to push to. ARGV: tag, entry, payload.
constexpr char kRestoreScript[] = R"lua(
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
for i = 3, #KEYS do redis.call('RPUSH', KEYS[i], ARGV[3]) end
return 1
)lua";

// Releases unacked_mutex only while it is still ours (redis-py's Lock.release does the same).
constexpr char kReleaseScript[] = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

// How many stale deliveries one sweep looks at: bounds the loop thread's time per sweep.
constexpr int kSweepBatch = 100;

std::string UnixSeconds(absl::Time time) {
  return absl::StrFormat("%.6f", absl::ToDoubleSeconds(time - absl::UnixEpoch()));
}

// The replies of MULTI ... EXEC: an error reply anywhere (a command refused while queued, or
// failing inside EXEC) is FAILED_PRECONDITION; a nil EXEC (aborted) is ABORTED.
absl::Status CheckTransaction(const std::vector<RedisReply>& replies, absl::string_view what,
                              absl::string_view where) {
  auto refused = [&](absl::string_view text) {
    return absl::FailedPreconditionError(
        absl::StrCat("Redis at ", where, " refused ", what, ": ", text));
  };
  for (const RedisReply& reply : replies) {
    if (reply.IsError()) return refused(reply.str);
  }
  if (replies.empty() || replies.back().IsNil()) {
    return absl::AbortedError(absl::StrCat(what, ": the transaction was aborted"));
  }
  for (const RedisReply& element : replies.back().elements) {
    if (element.IsError()) return refused(element.str);
  }
  return absl::OkStatus();
}

// Wraps `commands` in MULTI ... EXEC.
void Transaction(std::vector<RedisCommand>& commands) {
  commands.insert(commands.begin(), RedisCommand{"MULTI"});
  commands.push_back({"EXEC"});
}

}  // namespace

RedisCeleryBroker::RedisCeleryBroker(RedisCeleryBrokerOptions options)
    : options_(std::move(options)), event_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

RedisCeleryBroker::~RedisCeleryBroker() {
  Close();
  if (event_fd_ >= 0) close(event_fd_);
}

absl::Status RedisCeleryBroker::CheckOpen() const {
  if (loop_ == nullptr) return absl::FailedPreconditionError("the Celery broker is not open");
  return loop_error_;
}

absl::StatusOr<std::vector<RedisReply>> RedisCeleryBroker::LoopPipeline(
    std::vector<RedisCommand> commands) {
  RETURN_IF_ERROR(CheckOpen());
  absl::StatusOr<std::vector<RedisReply>> replies = loop_->Pipeline(std::move(commands));
  if (!replies.ok()) loop_error_ = replies.status();
  return replies;
}

absl::Status RedisCeleryBroker::Open(const std::string& queue) {
  if (closed_ || loop_ != nullptr) {
    return absl::FailedPreconditionError("a Celery broker is opened once");
  }
  if (event_fd_ < 0) return absl::InternalError("eventfd failed");
  ASSIGN_OR_RETURN(loop_, options_.connector("celery-loop"));
  queue_ = queue;
  // Celery publishes to the direct exchange named like the queue; kombu routes through this
  // table, so clients that look the route up find modeld's queue.
  const std::string member = KombuBindingMember(queue, "", queue);
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies,
                   LoopPipeline({{"SADD", KombuBindingKey(queue), member},
                                 {"SADD", KombuPermanentBindingKey(queue), member}}));
  for (const RedisReply& reply : replies) {
    if (reply.IsError()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Redis at ", options_.where, " refused the binding of queue '", queue, "': ",
          reply.str));
    }
  }
  // What a crashed worker left unacknowledged comes back before this one starts taking.
  absl::StatusOr<int> restored = RestoreVisible();
  if (absl::IsUnavailable(restored.status())) return restored.status();
  if (!restored.ok()) {
    spdlog::warn("celery redis {}: restoring unacknowledged messages: {}", options_.where,
                 restored.status().message());
  }
  next_restore_ = absl::Now() + options_.restore_interval;
  return absl::OkStatus();
}

absl::Status RedisCeleryBroker::Consume() {
  RETURN_IF_ERROR(CheckOpen());
  if (reader_thread_.joinable()) {
    absl::MutexLock lock(&mu_);
    consuming_ = true;
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(reader_, options_.connector("celery-reader"));
  absl::StatusOr<RedisReply> id = reader_->Command({"CLIENT", "ID"});
  if (!id.ok()) return id.status();
  reader_client_id_ = id->type == RedisReply::Type::kInteger ? id->integer : 0;
  {
    absl::MutexLock lock(&mu_);
    consuming_ = true;
  }
  reader_thread_ = std::thread([this] { ReaderLoop(); });
  return absl::OkStatus();
}

absl::Status RedisCeleryBroker::Cancel() {
  absl::MutexLock lock(&mu_);
  consuming_ = false;
  return absl::OkStatus();
}

absl::Status RedisCeleryBroker::SetPrefetch(int count) {
  absl::MutexLock lock(&mu_);
  prefetch_ = std::max(count, 1);
  return absl::OkStatus();
}

bool RedisCeleryBroker::CanTake() const {
  return stop_ || (consuming_ && static_cast<int64_t>(held_.size()) < prefetch_);
}

void RedisCeleryBroker::ReaderFailed(absl::Status status) {
  {
    absl::MutexLock lock(&mu_);
    reader_error_ = std::move(status);
  }
  const uint64_t one = 1;
  (void)!write(event_fd_, &one, sizeof(one));
}

RedisCeleryBroker::Held RedisCeleryBroker::Take(const std::string& key, std::string item) {
  const KombuItemInfo info = InspectKombuItem(item, options_.max_json_depth);
  Held held;
  held.queue = KombuQueueOfKey(key);
  held.kombu_tag = info.delivery_tag.empty() ? NewKombuDeliveryTag() : info.delivery_tag;
  std::string exchange = info.exchange;
  std::string routing_key = info.routing_key;
  // A restore routes by these; without them, route to the queue it came from.
  if (exchange.empty() && routing_key.empty()) routing_key = held.queue;
  held.entry = KombuUnackedEntry(item, options_.max_json_depth, exchange, routing_key);
  held.priority = info.priority;

  TaskDelivery delivery;
  delivery.redelivered = info.redelivered;
  delivery.priority = static_cast<int>(std::clamp<int64_t>(info.priority, 0, 255));
  absl::StatusOr<KombuRedisMessage> parsed = ParseKombuRedisMessage(item, options_.max_json_depth);
  if (parsed.ok()) {
    delivery.headers = std::move(parsed->headers);
    delivery.body = std::move(parsed->body);
  } else {
    delivery.headers = parsed.status();
  }
  held.delivery = std::move(delivery);
  held.item = std::move(item);
  return held;
}

void RedisCeleryBroker::ReaderLoop() {
  const std::vector<std::string> keys = KombuQueueKeys(queue_);
  RedisCommand brpop = {"BRPOP"};
  for (const std::string& key : keys) brpop.push_back(key);
  brpop.push_back(absl::StrFormat("%.3f", absl::ToDoubleSeconds(options_.brpop_timeout)));
  // Taken by the last round's RPOP, recorded by this one: under load one round trip records a
  // batch and takes the next, and BRPOP runs only once the first priority step is empty.
  std::vector<std::pair<std::string, std::string>> carried;  // (key, item)
  for (;;) {
    int64_t room = 0;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &RedisCeleryBroker::CanTake));
      room = prefetch_ - static_cast<int64_t>(held_.size());
      if (stop_) {
        // Taken and never recorded: nobody else knows of them, so they go back now.
        for (auto& [key, item] : carried) (void)reader_->Command({"RPUSH", key, item});
        return;
      }
    }
    std::vector<std::pair<std::string, std::string>> taken = std::move(carried);
    carried.clear();
    if (taken.empty()) {
      absl::StatusOr<RedisReply> reply = reader_->Command(brpop);
      if (!reply.ok()) return ReaderFailed(reply.status());
      if (reply->IsError()) {
        return ReaderFailed(absl::FailedPreconditionError(absl::StrCat(
            "Redis at ", options_.where, " refused BRPOP on queue '", queue_, "': ", reply->str)));
      }
      // Nil: the timeout passed (or Close's CLIENT UNBLOCK).
      if (reply->type != RedisReply::Type::kArray || reply->elements.size() != 2) continue;
      taken.emplace_back(std::move(reply->elements[0].str), std::move(reply->elements[1].str));
    }
    std::vector<Held> held;
    held.reserve(taken.size());
    for (auto& [key, item] : taken) held.push_back(Take(key, std::move(item)));

    // kombu's QoS.append: each item is unacknowledged from now on (one MULTI for the batch),
    // and, in the same round trip, up to the room left of the first priority step.
    const std::string now = UnixSeconds(absl::Now());
    std::vector<RedisCommand> commands;
    for (const Held& one : held) {
      commands.push_back({"ZADD", kUnackedIndexKey, now, one.kombu_tag});
      commands.push_back({"HSET", kUnackedKey, one.kombu_tag, one.entry});
    }
    Transaction(commands);
    const int64_t more = room - static_cast<int64_t>(held.size());
    if (more > 0) commands.push_back({"RPOP", keys[0], absl::StrCat(more)});
    absl::StatusOr<std::vector<RedisReply>> replies = reader_->Pipeline(std::move(commands));
    absl::Status status = replies.status();
    if (status.ok() && more > 0) {
      RedisReply next = std::move(replies->back());
      replies->pop_back();
      if (next.type == RedisReply::Type::kArray) {
        for (RedisReply& item : next.elements) carried.emplace_back(keys[0], std::move(item.str));
      }
    }
    if (status.ok()) status = CheckTransaction(*replies, "recording a delivery", options_.where);
    {
      absl::MutexLock lock(&mu_);
      for (Held& one : held) {
        one.recorded = status.ok();
        const uint64_t tag = ++next_tag_;
        one.tag = tag;
        one.delivery->tag = tag;
        // Not recorded: never delivered, only put back by Close.
        if (status.ok()) ready_.push_back(tag);
        held_.emplace(tag, std::move(one));
      }
      if (!status.ok()) reader_error_ = status;
    }
    const uint64_t one = 1;
    (void)!write(event_fd_, &one, sizeof(one));
    if (!status.ok()) return;
  }
}

absl::StatusOr<std::optional<TaskDelivery>> RedisCeleryBroker::Next(absl::Duration timeout,
                                                                   int wake_fd) {
  RETURN_IF_ERROR(CheckOpen());
  // The acknowledgements of the batch just completed, before waiting.
  RETURN_IF_ERROR(Flush());
  if (absl::Now() >= next_restore_) {
    next_restore_ = absl::Now() + options_.restore_interval;
    absl::StatusOr<int> restored = RestoreVisible();
    if (absl::IsUnavailable(restored.status())) return restored.status();
    if (!restored.ok()) {
      spdlog::warn("celery redis {}: restoring unacknowledged messages: {}", options_.where,
                   restored.status().message());
    }
  }
  const absl::Time deadline = absl::Now() + timeout;
  bool polled = false;
  bool woken = false;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (!ready_.empty()) {
        const uint64_t tag = ready_.front();
        ready_.pop_front();
        Held& held = held_.at(tag);
        TaskDelivery delivery = std::move(*held.delivery);
        held.delivery.reset();
        return delivery;
      }
      if (!reader_error_.ok()) return reader_error_;
    }
    const absl::Duration left = deadline - absl::Now();
    if (woken || (polled && left <= absl::ZeroDuration())) return std::nullopt;
    const int64_t ms =
        std::min<int64_t>(std::max<int64_t>(absl::ToInt64Milliseconds(absl::Ceil(
                                                left, absl::Milliseconds(1))),
                                            0),
                          std::numeric_limits<int>::max());
    pollfd fds[2] = {{event_fd_, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const int ready = poll(fds, wake_fd >= 0 ? 2 : 1, static_cast<int>(ms));
    polled = true;
    if (ready < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("poll: ", strerror(errno)));
    }
    if (fds[0].revents != 0) {
      uint64_t count = 0;
      (void)!read(event_fd_, &count, sizeof(count));
    }
    if (wake_fd >= 0 && fds[1].revents != 0) woken = true;
  }
}

absl::Status RedisCeleryBroker::Publish(const OutgoingTask& task) {
  RETURN_IF_ERROR(CheckOpen());
  KombuOutgoing message;
  message.body = task.body;
  message.headers_json = task.headers_json;
  message.correlation_id = task.correlation_id;
  message.reply_to = task.reply_to;
  message.routing_key = task.queue;
  message.priority = task.priority;
  message.delivery_tag = NewKombuDeliveryTag();
  ASSIGN_OR_RETURN(std::string wrapper, EncodeKombuMessage(message));
  pending_.push_back({"LPUSH", KombuQueueKey(task.queue, task.priority), std::move(wrapper)});
  return absl::OkStatus();
}

absl::Status RedisCeleryBroker::Reply(const std::string& reply_to, const std::string& task_id,
                                      const std::string& document) {
  RETURN_IF_ERROR(CheckOpen());
  KombuOutgoing message;
  message.body = document;
  message.headers_json = "{}";
  message.correlation_id = task_id;
  message.routing_key = reply_to;
  message.delivery_tag = NewKombuDeliveryTag();
  ASSIGN_OR_RETURN(std::string wrapper, EncodeKombuMessage(message));
  // The default exchange routes to the queue named by the routing key (kombu's _lookup).
  pending_.push_back({"LPUSH", KombuQueueKey(reply_to, 0), std::move(wrapper)});
  return absl::OkStatus();
}

absl::Status RedisCeleryBroker::Flush() {
  RETURN_IF_ERROR(CheckOpen());
  if (pending_.empty()) return absl::OkStatus();
  std::vector<RedisCommand> commands = std::move(pending_);
  pending_.clear();
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies, LoopPipeline(std::move(commands)));
  for (const RedisReply& reply : replies) {
    if (reply.IsError()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Redis at ", options_.where, " refused a publish or an acknowledgement: ", reply.str));
    }
    // An acknowledgement's EXEC: its commands' own replies.
    for (const RedisReply& inner : reply.elements) {
      if (inner.IsError()) {
        return absl::FailedPreconditionError(
            absl::StrCat("Redis at ", options_.where, " refused an acknowledgement: ", inner.str));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status RedisCeleryBroker::Remove(uint64_t tag, std::vector<RedisCommand> also) {
  RETURN_IF_ERROR(CheckOpen());
  std::string kombu_tag;
  {
    absl::MutexLock lock(&mu_);
    auto it = held_.find(tag);
    if (it == held_.end() || it->second.delivery.has_value()) {
      return absl::NotFoundError(absl::StrCat("no delivery ", tag, " is held"));
    }
    kombu_tag = it->second.kombu_tag;
    // No longer ours: the reader may take the next message at once. Until the removal below
    // reaches Redis, a crash leaves the entry in unacked, and the visibility restore delivers
    // it again (at least once, as for any unacknowledged message).
    held_.erase(it);
  }
  // Buffered after the publishes (a chain's next step, a result) that must land first, and
  // sent with them by the next Flush or Next: one round trip for a whole batch of tasks.
  std::vector<RedisCommand> commands = std::move(also);
  commands.push_back({"ZREM", kUnackedIndexKey, kombu_tag});
  commands.push_back({"HDEL", kUnackedKey, kombu_tag});
  Transaction(commands);
  for (RedisCommand& command : commands) pending_.push_back(std::move(command));
  return absl::OkStatus();
}

absl::Status RedisCeleryBroker::Ack(uint64_t tag) { return Remove(tag, {}); }

absl::Status RedisCeleryBroker::DeadLetter(uint64_t tag, absl::string_view reason) {
  std::string item;
  {
    absl::MutexLock lock(&mu_);
    auto it = held_.find(tag);
    if (it == held_.end()) return absl::NotFoundError(absl::StrCat("no delivery ", tag, " is held"));
    item = it->second.item;
  }
  return Remove(tag, {{"LPUSH", absl::StrCat(queue_, ".dead-letters"),
                       WithDeadLetterReason(item, reason, options_.max_json_depth)}});
}

absl::StatusOr<int> RedisCeleryBroker::RestoreVisible() {
  RETURN_IF_ERROR(CheckOpen());
  std::vector<std::string> ours;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [tag, held] : held_) {
      if (held.recorded) ours.push_back(held.kombu_tag);
    }
  }
  std::vector<RedisCommand> commands;
  if (!ours.empty()) {
    // Still alive: what we hold must not look stale to other consumers' sweeps.
    RedisCommand refresh = {"ZADD", kUnackedIndexKey, "XX"};
    const std::string now = UnixSeconds(absl::Now());
    for (const std::string& tag : ours) {
      refresh.push_back(now);
      refresh.push_back(tag);
    }
    commands.push_back(std::move(refresh));
  }
  const std::string token = NewKombuDeliveryTag();
  commands.push_back({"SET", kUnackedMutexKey, token, "NX", "PX", absl::StrCat(kUnackedMutexExpireMs)});
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies, LoopPipeline(std::move(commands)));
  for (const RedisReply& reply : replies) {
    if (reply.IsError()) {
      return absl::FailedPreconditionError(
          absl::StrCat("Redis at ", options_.where, " refused the restore's lock: ", reply.str));
    }
  }
  if (replies.back().IsNil()) return 0;  // another consumer is sweeping
  absl::StatusOr<int> restored = Sweep(ours);
  absl::StatusOr<std::vector<RedisReply>> released =
      LoopPipeline({{"EVAL", kReleaseScript, "1", kUnackedMutexKey, token}});
  if (!released.ok() && restored.ok()) return released.status();
  return restored;
}

absl::StatusOr<int> RedisCeleryBroker::Sweep(const std::vector<std::string>& ours) {
  const absl::flat_hash_set<std::string> held(ours.begin(), ours.end());
  const std::string ceiling = UnixSeconds(absl::Now() - options_.visibility_timeout);
  ASSIGN_OR_RETURN(std::vector<RedisReply> stale,
                   LoopPipeline({{"ZRANGE", kUnackedIndexKey, ceiling, "0", "BYSCORE", "REV",
                                  "LIMIT", "0", absl::StrCat(kSweepBatch)}}));
  if (stale[0].IsError()) {
    return absl::FailedPreconditionError(
        absl::StrCat("Redis at ", options_.where, " refused ZRANGE: ", stale[0].str));
  }
  RedisCommand hmget = {"HMGET", kUnackedKey};
  for (const RedisReply& tag : stale[0].elements) {
    if (!held.contains(tag.str)) hmget.push_back(tag.str);
  }
  if (hmget.size() == 2) return 0;
  ASSIGN_OR_RETURN(std::vector<RedisReply> entries, LoopPipeline({hmget}));
  if (entries[0].IsError() || entries[0].elements.size() != hmget.size() - 2) {
    return absl::FailedPreconditionError(
        absl::StrCat("Redis at ", options_.where, " refused HMGET: ", entries[0].str));
  }

  struct Candidate {
    std::string tag, entry;
    KombuRestore restore;
  };
  std::vector<Candidate> candidates;
  RedisCommand drop = {"ZREM", kUnackedIndexKey};  // index entries without a payload
  RedisCommand lookups;
  std::vector<std::string> exchanges;
  for (size_t i = 0; i < entries[0].elements.size(); ++i) {
    const std::string& tag = hmget[i + 2];
    const RedisReply& entry = entries[0].elements[i];
    if (entry.IsNil()) {
      drop.push_back(tag);
      continue;
    }
    absl::StatusOr<KombuRestore> restore =
        ParseKombuUnackedEntry(entry.str, options_.max_json_depth);
    if (!restore.ok()) {
      spdlog::warn("celery redis {}: unacked delivery '{}' left in place: {}", options_.where,
                   absl::CHexEscape(tag), restore.status().message());
      continue;
    }
    if (!restore->exchange.empty() &&
        std::find(exchanges.begin(), exchanges.end(), restore->exchange) == exchanges.end()) {
      exchanges.push_back(restore->exchange);
    }
    candidates.push_back({tag, entry.str, *std::move(restore)});
  }

  // The binding tables of the exchanges the messages were published to: where they go back.
  absl::flat_hash_map<std::string, std::vector<std::string>> tables;
  if (!exchanges.empty()) {
    std::vector<RedisCommand> smembers;
    for (const std::string& exchange : exchanges) {
      smembers.push_back({"SMEMBERS", KombuBindingKey(exchange)});
    }
    ASSIGN_OR_RETURN(std::vector<RedisReply> members, LoopPipeline(std::move(smembers)));
    for (size_t i = 0; i < exchanges.size(); ++i) {
      std::vector<std::string>& table = tables[exchanges[i]];
      for (const RedisReply& member : members[i].elements) table.push_back(member.str);
    }
  }

  std::vector<RedisCommand> commands;
  if (drop.size() > 2) commands.push_back(std::move(drop));
  const size_t first_restore = commands.size();
  for (const Candidate& candidate : candidates) {
    const KombuRestore& restore = candidate.restore;
    std::vector<std::string> queues;
    if (restore.exchange.empty()) {
      if (!restore.routing_key.empty()) queues.push_back(restore.routing_key);
    } else {
      queues = KombuDirectRoute(tables[restore.exchange], restore.routing_key);
    }
    if (queues.empty()) {
      // kombu would drop it; leaving it lets a consumer that knows the route restore it.
      spdlog::warn("celery redis {}: unacked delivery '{}' left in place: exchange '{}' has no "
                   "queue bound with routing key '{}'",
                   options_.where, absl::CHexEscape(candidate.tag),
                   absl::CHexEscape(restore.exchange), absl::CHexEscape(restore.routing_key));
      continue;
    }
    RedisCommand eval = {"EVAL", kRestoreScript, absl::StrCat(2 + queues.size()), kUnackedKey,
                         kUnackedIndexKey};
    for (const std::string& queue : queues) eval.push_back(KombuQueueKey(queue, restore.priority));
    eval.push_back(candidate.tag);
    eval.push_back(candidate.entry);
    eval.push_back(restore.payload);
    commands.push_back(std::move(eval));
  }
  if (commands.empty()) return 0;
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies, LoopPipeline(std::move(commands)));
  int restored = 0;
  for (size_t i = 0; i < replies.size(); ++i) {
    if (replies[i].IsError()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Redis at ", options_.where, " refused restoring a delivery: ", replies[i].str));
    }
    if (i >= first_restore && replies[i].integer == 1) ++restored;
  }
  if (restored > 0) {
    spdlog::info("celery redis {}: put back {} message(s) unacknowledged for longer than {}",
                 options_.where, restored, absl::FormatDuration(options_.visibility_timeout));
  }
  return restored;
}

void RedisCeleryBroker::StopReader() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (!reader_thread_.joinable()) return;
  // Ends a BRPOP in progress at once rather than after brpop_timeout.
  if (loop_ != nullptr && loop_error_.ok() && reader_client_id_ != 0) {
    (void)LoopPipeline({{"CLIENT", "UNBLOCK", absl::StrCat(reader_client_id_)}});
  }
  reader_thread_.join();
}

void RedisCeleryBroker::PutBack(std::vector<Held> held) {
  std::vector<RedisCommand> commands;
  for (const Held& one : held) {
    const std::string key = KombuQueueKey(one.queue, one.priority);
    std::string payload = MarkKombuRedelivered(one.item, options_.max_json_depth);
    if (one.recorded) {
      commands.push_back({"EVAL", kRestoreScript, "3", kUnackedKey, kUnackedIndexKey, key,
                          one.kombu_tag, one.entry, std::move(payload)});
    } else {
      // Never recorded in unacked (the reader failed right after BRPOP): only we have it.
      commands.push_back({"RPUSH", key, std::move(payload)});
    }
  }
  absl::StatusOr<std::vector<RedisReply>> replies = LoopPipeline(std::move(commands));
  if (!replies.ok()) {
    spdlog::warn("celery redis {}: could not put back {} unacknowledged message(s) ({}); the "
                 "visibility timeout will",
                 options_.where, held.size(), replies.status().message());
    return;
  }
  for (const RedisReply& reply : *replies) {
    if (reply.IsError()) {
      spdlog::warn("celery redis {}: putting back an unacknowledged message: {}", options_.where,
                   reply.str);
    }
  }
}

void RedisCeleryBroker::Close() {
  StopReader();
  std::vector<Held> held;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [tag, one] : held_) held.push_back(std::move(one));
    held_.clear();
    ready_.clear();
    consuming_ = false;
  }
  // Put back in the order they were taken, so the queue's order is kept as far as it can be.
  // RPUSH adds at the end BRPOP takes from: the first taken goes last, to be taken first.
  std::sort(held.begin(), held.end(), [](const Held& a, const Held& b) { return a.tag > b.tag; });
  // Acknowledgements (and publishes) not sent yet go first, when the connection still works.
  if (loop_ != nullptr && loop_error_.ok() && !pending_.empty()) (void)Flush();
  if (loop_ != nullptr && loop_error_.ok() && !held.empty()) PutBack(std::move(held));
  pending_.clear();
  reader_.reset();
  loop_.reset();
  closed_ = true;
}

}  // namespace modeld::transport::celery
