#include "transport/redis/list_queue.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "transport/redis/reply_util.h"

namespace modeld::transport::redis {
namespace {

using internal::ExpectArray;
using internal::Millis;
using internal::Refused;

// Answers, dead-letters and removes one item, atomically, only while it is still in this
// consumer's processing list (a list moved back after a missed heartbeat is someone else's).
// KEYS[1] processing list, KEYS[2] deliveries hash, KEYS[3] dead-letter stream,
// KEYS[4] reply key (absent: no reply).
// ARGV[1] item, ARGV[2] deliveries field, ARGV[3] reply, ARGV[4] reply TTL (ms),
// ARGV[5] dead-letter reason ('' = none), ARGV[6] deliveries, ARGV[7] dead-letter MAXLEN,
// ARGV[8] consumer. Returns 'ok', 'stale', or the error Redis gave the reply.
constexpr absl::string_view kCompleteScript = R"lua(
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 'stale' end
redis.call('HDEL', KEYS[2], ARGV[2])
local result = 'ok'
if KEYS[4] then
  local pushed = redis.pcall('RPUSH', KEYS[4], ARGV[3])
  if type(pushed) == 'table' and pushed.err then
    result = pushed.err
  else
    redis.call('PEXPIRE', KEYS[4], ARGV[4])
  end
end
if ARGV[5] ~= '' then
  redis.pcall('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'envelope', ARGV[1],
              'reason', ARGV[5], 'deliveries', ARGV[6], 'consumer', ARGV[8])
end
return result
)lua";

// Moves a consumer's processing list back onto the queue, oldest item to the end that is
// taken next, unless its heartbeat is alive (ARGV[2] = 'force' skips the check).
// KEYS[1] heartbeat key, KEYS[2] processing list, KEYS[3] queue list, KEYS[4] consumers set.
// ARGV[1] consumer. Returns the number of items moved, or -1 when the consumer is alive.
constexpr absl::string_view kTakeBackScript = R"lua(
if ARGV[2] ~= 'force' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
  redis.call('SREM', KEYS[4], ARGV[1])
end
local moved = 0
while redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT') do moved = moved + 1 end
return moved
)lua";

// Moves up to ARGV[1] items from the right end of KEYS[1] to the left of KEYS[2] (LMOVE
// without blocking) and returns them, so a batch costs one command however few items wait.
constexpr absl::string_view kMoveScript = R"lua(
local items = {}
for i = 1, tonumber(ARGV[1]) do
  local item = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not item then break end
  items[i] = item
end
return items
)lua";

}  // namespace

std::string DeliveryField(absl::string_view item) {
  uint64_t hash = 14695981039346656037ull;
  for (const unsigned char c : item) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return absl::StrFormat("%016x", hash);
}

ListQueue::ListQueue(std::string list, QueueOptions options)
    : list_(std::move(list)),
      options_(std::move(options)),
      processing_key_(ProcessingKey(options_.consumer)),
      alive_key_(AliveKey(options_.consumer)),
      consumers_key_(absl::StrCat(list_, ":consumers")),
      deliveries_key_(absl::StrCat(list_, ":deliveries")),
      dead_letter_key_(absl::StrCat(list_, ":dead")) {}

std::string ListQueue::ProcessingKey(absl::string_view consumer) const {
  return absl::StrCat(list_, ":processing:", consumer);
}

std::string ListQueue::AliveKey(absl::string_view consumer) const {
  return absl::StrCat(list_, ":alive:", consumer);
}

std::string ListQueue::Describe() const {
  return absl::StrCat("list ", list_, ", consumer ", options_.consumer);
}

absl::Status ListQueue::Prepare(RedisConnection& reader, bool first) {
  RETURN_IF_ERROR(Heartbeat(reader));
  if (first) {
    ASSIGN_OR_RETURN(int64_t moved, TakeBack(reader, options_.consumer, /*force=*/true));
    (void)moved;
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ListQueue::TakeBack(RedisConnection& connection, absl::string_view consumer,
                                            bool force) {
  ASSIGN_OR_RETURN(
      RedisReply reply,
      connection.Command({"EVAL", std::string(kTakeBackScript), "4", AliveKey(consumer),
                          ProcessingKey(consumer), list_, consumers_key_, std::string(consumer),
                          force ? "force" : ""}));
  if (reply.IsError()) {
    return Refused(absl::StrCat("to move the processing list of ", consumer, " back"), reply);
  }
  return reply.integer;
}

absl::StatusOr<std::vector<QueueEntry>> ListQueue::Take(RedisConnection& reader, int max,
                                                        absl::Duration block) {
  std::vector<std::string> items;
  if (block > absl::ZeroDuration()) {
    ASSIGN_OR_RETURN(RedisReply first,
                     reader.Command({"BLMOVE", list_, processing_key_, "RIGHT", "LEFT",
                                     absl::StrCat(absl::ToDoubleSeconds(block))}));
    if (first.IsError()) return Refused("BLMOVE", first);
    if (first.IsNil()) return std::vector<QueueEntry>();
    items.push_back(std::move(first.str));
  }
  if (static_cast<int>(items.size()) < max) {
    ASSIGN_OR_RETURN(RedisReply more,
                     reader.Command({"EVAL", std::string(kMoveScript), "2", list_, processing_key_,
                                     absl::StrCat(max - items.size())}));
    RETURN_IF_ERROR(ExpectArray("LMOVE", more));
    for (RedisReply& item : more.elements) items.push_back(std::move(item.str));
  }
  std::vector<QueueEntry> entries;
  if (items.empty()) return entries;
  std::vector<RedisCommand> counts;
  for (std::string& item : items) {
    QueueEntry entry;
    entry.id = DeliveryField(item);
    entry.envelope = std::move(item);
    counts.push_back({"HINCRBY", deliveries_key_, entry.id, "1"});
    entries.push_back(std::move(entry));
  }
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies, reader.Pipeline(std::move(counts)));
  for (size_t i = 0; i < entries.size(); ++i) {
    // A refused count (the hash has another type) still lets the item run once.
    if (replies[i].type == RedisReply::Type::kInteger) entries[i].deliveries = replies[i].integer;
  }
  return entries;
}

absl::StatusOr<Recovered> ListQueue::Recover(RedisConnection& reader, int /*max*/,
                                             const std::function<bool(absl::string_view)>&) {
  Recovered recovered;
  ASSIGN_OR_RETURN(RedisReply members, reader.Command({"SMEMBERS", consumers_key_}));
  RETURN_IF_ERROR(ExpectArray("SMEMBERS", members));
  std::vector<std::string> others;
  std::vector<RedisCommand> checks;
  for (const RedisReply& member : members.elements) {
    if (member.str == options_.consumer) continue;
    others.push_back(member.str);
    checks.push_back({"EXISTS", AliveKey(member.str)});
  }
  if (checks.empty()) return recovered;
  ASSIGN_OR_RETURN(std::vector<RedisReply> alive, reader.Pipeline(std::move(checks)));
  for (size_t i = 0; i < others.size(); ++i) {
    if (alive[i].type == RedisReply::Type::kInteger && alive[i].integer == 1) continue;
    // The script checks the heartbeat again, atomically with the move.
    ASSIGN_OR_RETURN(int64_t moved, TakeBack(reader, others[i], /*force=*/false));
    if (moved > 0) recovered.requeued += moved;
  }
  return recovered;
}

absl::StatusOr<QueueDepth> ListQueue::Depth(RedisConnection& reader) {
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies,
                   reader.Pipeline({{"LLEN", list_}, {"SMEMBERS", consumers_key_}}));
  if (replies[0].IsError()) return Refused("LLEN", replies[0]);
  RETURN_IF_ERROR(ExpectArray("SMEMBERS", replies[1]));
  QueueDepth depth;
  depth.waiting = replies[0].integer;
  std::vector<RedisCommand> lengths;
  for (const RedisReply& member : replies[1].elements) {
    lengths.push_back({"LLEN", ProcessingKey(member.str)});
  }
  if (lengths.empty()) return depth;
  ASSIGN_OR_RETURN(std::vector<RedisReply> counts, reader.Pipeline(std::move(lengths)));
  for (const RedisReply& count : counts) {
    if (count.type == RedisReply::Type::kInteger) depth.pending += count.integer;
  }
  return depth;
}

absl::Status ListQueue::Heartbeat(RedisConnection& connection) {
  ASSIGN_OR_RETURN(
      std::vector<RedisReply> replies,
      connection.Pipeline({{"SET", alive_key_, "1", "PX", Millis(options_.visibility_timeout)},
                           {"SADD", consumers_key_, options_.consumer}}));
  for (const RedisReply& reply : replies) {
    if (reply.IsError()) return Refused("the heartbeat", reply);
  }
  return absl::OkStatus();
}

absl::Duration ListQueue::HeartbeatInterval() const {
  // Three beats per lifetime of the key: one late beat does not make a live consumer look dead.
  return std::max(options_.visibility_timeout / 3, absl::Milliseconds(10));
}

absl::StatusOr<std::vector<CompletionOutcome>> ListQueue::Complete(
    RedisConnection& writer, const std::vector<Completion>& completions) {
  std::vector<RedisCommand> commands;
  commands.reserve(completions.size());
  for (const Completion& completion : completions) {
    const bool reply = !completion.reply_key.empty();
    RedisCommand command = {"EVAL",
                            std::string(kCompleteScript),
                            reply ? "4" : "3",
                            processing_key_,
                            deliveries_key_,
                            dead_letter_key_};
    if (reply) command.emplace_back(completion.reply_key);
    command.push_back(completion.entry->envelope.value_or(""));
    command.push_back(completion.entry->id);
    command.emplace_back(completion.reply);
    command.push_back(Millis(options_.reply_ttl));
    command.emplace_back(completion.dead_reason);
    command.push_back(absl::StrCat(completion.entry->deliveries));
    command.push_back(absl::StrCat(options_.dead_letter_maxlen));
    command.push_back(options_.consumer);
    commands.push_back(std::move(command));
  }
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies, writer.Pipeline(std::move(commands)));
  std::vector<CompletionOutcome> outcomes;
  outcomes.reserve(replies.size());
  for (const RedisReply& reply : replies) outcomes.push_back(internal::OutcomeOf(reply));
  return outcomes;
}

}  // namespace modeld::transport::redis
