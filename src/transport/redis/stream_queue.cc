#include "transport/redis/stream_queue.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "transport/message/envelope.h"
#include "transport/redis/reply_util.h"

namespace modeld::transport::redis {
namespace {

using internal::ExpectArray;
using internal::Millis;
using internal::Refused;

// Answers, dead-letters and removes one entry, atomically, only while it is still pending for
// this consumer (an entry taken over by another consumer is theirs to answer).
// KEYS[1] stream, KEYS[2] dead-letter stream, KEYS[3] reply key (absent: no reply).
// ARGV[1] group, ARGV[2] consumer, ARGV[3] entry id, ARGV[4] reply, ARGV[5] reply TTL (ms),
// ARGV[6] dead-letter reason ('' = none), ARGV[7] deliveries, ARGV[8] dead-letter MAXLEN.
// Returns 'ok', 'stale', or the error Redis gave the reply (the entry is removed anyway:
// the reply key is the producer's, and retrying would meet the same refusal).
constexpr absl::string_view kCompleteScript = R"lua(
local held = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if type(held) ~= 'table' or held.err or #held == 0 then return 'stale' end
local result = 'ok'
if KEYS[3] then
  local pushed = redis.pcall('RPUSH', KEYS[3], ARGV[4])
  if type(pushed) == 'table' and pushed.err then
    result = pushed.err
  else
    redis.call('PEXPIRE', KEYS[3], ARGV[5])
  end
end
if ARGV[6] ~= '' then
  local args = {'XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*'}
  local entry = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])
  if entry[1] then
    for _, value in ipairs(entry[1][2]) do args[#args + 1] = value end
  end
  for _, value in ipairs({'reason', ARGV[6], 'source_id', ARGV[3], 'deliveries', ARGV[7],
                          'consumer', ARGV[2]}) do
    args[#args + 1] = value
  end
  redis.pcall(unpack(args))
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return result
)lua";

// [id, [field, value, ...]] -> QueueEntry; nullopt fields (a deleted entry) -> nullopt.
absl::StatusOr<std::optional<QueueEntry>> ParseEntry(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 2 ||
      !reply.elements[0].IsText()) {
    return absl::InternalError(absl::StrCat("unexpected stream entry ", DebugString(reply)));
  }
  const RedisReply& fields = reply.elements[1];
  if (fields.IsNil()) return std::nullopt;
  if (fields.type != RedisReply::Type::kArray) {
    return absl::InternalError(absl::StrCat("unexpected stream entry ", DebugString(reply)));
  }
  QueueEntry entry;
  entry.id = reply.elements[0].str;
  for (size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
    if (fields.elements[i].str == kEnvelopeField) {
      entry.envelope = fields.elements[i + 1].str;
      break;
    }
  }
  return entry;
}

// A flat [name, value, ...] array -> the value of `name`, or null.
const RedisReply* FindField(const RedisReply& flat, absl::string_view name) {
  for (size_t i = 0; i + 1 < flat.elements.size(); i += 2) {
    if (flat.elements[i].str == name) return &flat.elements[i + 1];
  }
  return nullptr;
}

}  // namespace

StreamQueue::StreamQueue(std::string stream, std::string group, QueueOptions options)
    : stream_(std::move(stream)),
      group_(std::move(group)),
      dead_letter_key_(absl::StrCat(stream_, ":dead")),
      options_(std::move(options)) {}

std::string StreamQueue::Describe() const {
  return absl::StrCat("stream ", stream_, ", group ", group_, ", consumer ", options_.consumer);
}

absl::Status StreamQueue::Prepare(RedisConnection& reader, bool /*first*/) {
  // From id 0, not $: entries XADDed before any modeld created the group are work waiting for
  // an answer. Finished entries are deleted, so 0 never replays answered work.
  ASSIGN_OR_RETURN(RedisReply reply,
                   reader.Command({"XGROUP", "CREATE", stream_, group_, "0", "MKSTREAM"}));
  if (reply.IsError() && !absl::StartsWith(reply.str, "BUSYGROUP")) {
    return Refused(absl::StrCat("to create group ", group_, " on stream ", stream_), reply);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<QueueEntry>> StreamQueue::Take(RedisConnection& reader, int max,
                                                          absl::Duration block) {
  RedisCommand command = {"XREADGROUP",      "GROUP", group_,
                          options_.consumer, "COUNT", absl::StrCat(max)};
  if (block > absl::ZeroDuration()) {
    command.push_back("BLOCK");
    command.push_back(Millis(block));
  }
  command.push_back("STREAMS");
  command.push_back(stream_);
  command.push_back(">");
  ASSIGN_OR_RETURN(RedisReply reply, reader.Command(std::move(command)));
  std::vector<QueueEntry> entries;
  if (reply.IsNil()) return entries;  // BLOCK timed out
  RETURN_IF_ERROR(ExpectArray("XREADGROUP", reply));
  for (const RedisReply& stream : reply.elements) {
    if (stream.type != RedisReply::Type::kArray || stream.elements.size() != 2) {
      return absl::InternalError(absl::StrCat("unexpected XREADGROUP reply ", DebugString(reply)));
    }
    for (const RedisReply& raw : stream.elements[1].elements) {
      ASSIGN_OR_RETURN(std::optional<QueueEntry> entry, ParseEntry(raw));
      if (entry.has_value()) entries.push_back(*std::move(entry));
    }
  }
  return entries;
}

absl::StatusOr<Recovered> StreamQueue::Recover(RedisConnection& reader, int max,
                                               const std::function<bool(absl::string_view)>& held) {
  Recovered recovered;
  std::vector<QueueEntry> claimed;
  std::vector<std::string> deleted;  // Redis 6.2 returns deleted entries without fields
  std::string cursor = "0-0";
  // A few pages at most: the next pass goes on where this one stopped being useful.
  for (int page = 0; page < 4 && static_cast<int>(claimed.size()) < max; ++page) {
    ASSIGN_OR_RETURN(RedisReply reply,
                     reader.Command({"XAUTOCLAIM", stream_, group_, options_.consumer,
                                     Millis(options_.visibility_timeout), cursor, "COUNT",
                                     absl::StrCat(max - static_cast<int>(claimed.size()))}));
    RETURN_IF_ERROR(ExpectArray("XAUTOCLAIM", reply));
    if (reply.elements.size() < 2 || reply.elements[1].type != RedisReply::Type::kArray) {
      return absl::InternalError(absl::StrCat("unexpected XAUTOCLAIM reply ", DebugString(reply)));
    }
    for (const RedisReply& raw : reply.elements[1].elements) {
      ASSIGN_OR_RETURN(std::optional<QueueEntry> entry, ParseEntry(raw));
      if (!entry.has_value()) {
        deleted.push_back(raw.elements[0].str);
        continue;
      }
      // Claiming an entry this worker is still running only renews its lease.
      if (held(entry->id)) continue;
      claimed.push_back(*std::move(entry));
    }
    // Redis 7 lists the ids it dropped from the pending list because they were deleted.
    if (reply.elements.size() >= 3) recovered.lost += reply.elements[2].elements.size();
    cursor = reply.elements[0].str;
    if (cursor == "0-0") break;
  }
  RETURN_IF_ERROR(ForgetIdleConsumers(reader));
  std::vector<RedisCommand> commands;
  for (const std::string& id : deleted) commands.push_back({"XACK", stream_, group_, id});
  recovered.lost += deleted.size();
  // The delivery counts, which XAUTOCLAIM has just raised by one.
  for (const QueueEntry& entry : claimed) {
    commands.push_back({"XPENDING", stream_, group_, entry.id, entry.id, "1", options_.consumer});
  }
  if (commands.empty()) return recovered;
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies, reader.Pipeline(std::move(commands)));
  for (size_t i = 0; i < claimed.size(); ++i) {
    const RedisReply& pending = replies[deleted.size() + i];
    // Empty: someone else finished or took it in between; it is not ours to run.
    if (pending.type != RedisReply::Type::kArray || pending.elements.empty()) continue;
    const RedisReply& row = pending.elements[0];
    if (row.type != RedisReply::Type::kArray || row.elements.size() < 4) continue;
    claimed[i].deliveries = row.elements[3].integer;
    recovered.entries.push_back(std::move(claimed[i]));
  }
  return recovered;
}

absl::Status StreamQueue::ForgetIdleConsumers(RedisConnection& reader) {
  ASSIGN_OR_RETURN(RedisReply consumers, reader.Command({"XINFO", "CONSUMERS", stream_, group_}));
  RETURN_IF_ERROR(ExpectArray("XINFO CONSUMERS", consumers));
  const int64_t limit = absl::ToInt64Milliseconds(options_.forget_idle_consumers);
  std::vector<RedisCommand> forget;
  for (const RedisReply& consumer : consumers.elements) {
    const RedisReply* name = FindField(consumer, "name");
    const RedisReply* pending = FindField(consumer, "pending");
    const RedisReply* idle = FindField(consumer, "idle");
    if (name == nullptr || pending == nullptr || idle == nullptr) continue;
    // Deleting a consumer with nothing pending loses nothing: a live one that happens to be
    // removed is re-created by its next read.
    if (name->str != options_.consumer && pending->integer == 0 && idle->integer > limit) {
      forget.push_back({"XGROUP", "DELCONSUMER", stream_, group_, name->str});
    }
  }
  if (forget.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies, reader.Pipeline(std::move(forget)));
  (void)replies;  // a consumer that came back in between simply is not there to delete
  return absl::OkStatus();
}

absl::StatusOr<QueueDepth> StreamQueue::Depth(RedisConnection& reader) {
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies,
                   reader.Pipeline({{"XLEN", stream_}, {"XINFO", "GROUPS", stream_}}));
  if (replies[0].IsError()) return Refused("XLEN", replies[0]);
  RETURN_IF_ERROR(ExpectArray("XINFO GROUPS", replies[1]));
  QueueDepth depth;
  for (const RedisReply& group : replies[1].elements) {
    const RedisReply* name = FindField(group, "name");
    if (name == nullptr || name->str != group_) continue;
    if (const RedisReply* pending = FindField(group, "pending"); pending != nullptr) {
      depth.pending = pending->integer;
    }
    // Lag is null when Redis cannot tell (after deletions); finished entries are deleted, so
    // the stream holds exactly the pending entries and the waiting ones.
    const RedisReply* lag = FindField(group, "lag");
    depth.waiting = lag != nullptr && lag->type == RedisReply::Type::kInteger
                        ? lag->integer
                        : std::max<int64_t>(0, replies[0].integer - depth.pending);
  }
  return depth;
}

absl::StatusOr<std::vector<CompletionOutcome>> StreamQueue::Complete(
    RedisConnection& writer, const std::vector<Completion>& completions) {
  std::vector<RedisCommand> commands;
  commands.reserve(completions.size());
  for (const Completion& completion : completions) {
    const bool reply = !completion.reply_key.empty();
    RedisCommand command = {"EVAL", std::string(kCompleteScript), reply ? "3" : "2", stream_,
                            dead_letter_key_};
    if (reply) command.emplace_back(completion.reply_key);
    command.push_back(group_);
    command.push_back(options_.consumer);
    command.push_back(completion.entry->id);
    command.emplace_back(completion.reply);
    command.push_back(Millis(options_.reply_ttl));
    command.emplace_back(completion.dead_reason);
    command.push_back(absl::StrCat(completion.entry->deliveries));
    command.push_back(absl::StrCat(options_.dead_letter_maxlen));
    commands.push_back(std::move(command));
  }
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies, writer.Pipeline(std::move(commands)));
  std::vector<CompletionOutcome> outcomes;
  outcomes.reserve(replies.size());
  for (const RedisReply& reply : replies) outcomes.push_back(internal::OutcomeOf(reply));
  return outcomes;
}

}  // namespace modeld::transport::redis
