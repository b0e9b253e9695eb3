// How kombu's Redis transport (kombu/transport/redis.py, 5.7) lays Celery's messages out in
// Redis, as pure functions: key names, the JSON wrapper a producer LPUSHes, the entries of the
// `unacked` hash, and the edits kombu makes when it puts a message back. RedisCeleryBroker
// sends the commands; everything here is testable without a server.
//
// The layout, for a queue `q`:
//   q, q\x06\x163, q\x06\x166, q\x06\x169   lists, one per priority step (0 is taken first)
//   _kombu.binding.<exchange>              set of "<routing key>\x06\x16<pattern>\x06\x16<queue>"
//   unacked                                hash delivery_tag -> JSON [payload, exchange, rk]
//   unacked_index                          sorted set delivery_tag -> unix time of delivery
//   unacked_mutex                          lock key of the visibility-timeout restore
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace modeld::transport::celery {

// kombu's separator between a queue's name and its priority step, and inside binding members.
inline constexpr char kKombuSep[] = "\x06\x16";
inline constexpr char kUnackedKey[] = "unacked";
inline constexpr char kUnackedIndexKey[] = "unacked_index";
inline constexpr char kUnackedMutexKey[] = "unacked_mutex";
// kombu's unacked_mutex_expire: a restore that dies holding the lock blocks others this long.
inline constexpr int64_t kUnackedMutexExpireMs = 300 * 1000;

// The priority step a message priority falls in: clamped to 0..9, then rounded down to one
// of 0, 3, 6, 9 (kombu's PRIORITY_STEPS and Channel.priority).
int64_t KombuPriorityStep(int64_t priority);
// The list holding `queue`'s messages of `priority`: the queue's name for step 0, else
// "<queue>\x06\x16<step>" (kombu's _q_for_pri).
std::string KombuQueueKey(absl::string_view queue, int64_t priority);
// The four lists of `queue`, in the order BRPOP must take from them (step 0 first).
std::vector<std::string> KombuQueueKeys(absl::string_view queue);
// The queue a list belongs to: `key` without a priority suffix (kombu's rsplit(sep, 1)[0]).
std::string KombuQueueOfKey(absl::string_view key);

// "_kombu.binding.<exchange>": the exchange's binding table.
std::string KombuBindingKey(absl::string_view exchange);
// "_kombu.binding_permanent.<exchange>": kombu 5.7 keeps the table of an exchange whose
// queues do not expire from its binding sweep while this set has members.
std::string KombuPermanentBindingKey(absl::string_view exchange);
// A member of a binding table: "<routing key>\x06\x16<pattern>\x06\x16<queue>".
std::string KombuBindingMember(absl::string_view routing_key, absl::string_view pattern,
                               absl::string_view queue);
// The queues of an exchange's binding table `members` that a message with `routing_key`
// goes to, as a direct exchange routes (the routing keys equal). Members that are not three
// parts are skipped.
std::vector<std::string> KombuDirectRoute(const std::vector<std::string>& members,
                                          absl::string_view routing_key);

// A kombu delivery tag: a random UUID (version 4) in its 36-character text form.
std::string NewKombuDeliveryTag();

// The fields of a message that modeld publishes through the Redis transport.
struct KombuOutgoing {
  std::string body;          // the message's body, sent base64-encoded
  std::string headers_json;  // a JSON object, written as it is
  std::string correlation_id;
  std::string reply_to;      // omitted when empty
  std::string routing_key;   // the destination queue (the default exchange "" routes there)
  int64_t priority = 0;
  std::string delivery_tag;  // NewKombuDeliveryTag()
};
// The JSON wrapper kombu's virtual channel pushes (basic_publish + _inplace_augment_message):
// {"body": base64, "content-encoding": "utf-8", "content-type": "application/json",
//  "headers": {...}, "properties": {"correlation_id", ["reply_to"], "delivery_mode": 2,
//  "delivery_info": {"exchange": "", "routing_key"}, "priority", "body_encoding": "base64",
//  "delivery_tag"}}. INVALID_ARGUMENT when headers_json is not a JSON object.
absl::StatusOr<std::string> EncodeKombuMessage(const KombuOutgoing& message);

// What the broker needs to know of an item taken from a list, read leniently: a field that
// is missing or of another type is left at its default.
struct KombuItemInfo {
  bool is_object = false;     // the item is a JSON object
  std::string delivery_tag;   // properties.delivery_tag
  std::string exchange;       // properties.delivery_info.exchange
  std::string routing_key;    // properties.delivery_info.routing_key
  bool has_delivery_info = false;
  int64_t priority = 0;       // properties.priority
  // kombu's restore marks headers.redelivered and properties.delivery_info.redelivered; the
  // virtual transport's generic _restore marks a top-level "redelivered".
  bool redelivered = false;
};
KombuItemInfo InspectKombuItem(absl::string_view item, int max_json_depth);

// The value of the `unacked` hash for a delivery: the JSON array [payload, exchange,
// routing_key]. `item` is embedded as it is when it is JSON (so a restore pushes back what
// was taken), else as a JSON string.
std::string KombuUnackedEntry(absl::string_view item, int max_json_depth,
                              absl::string_view exchange, absl::string_view routing_key);

// An `unacked` entry read back, ready to be pushed to its queue again.
struct KombuRestore {
  std::string payload;  // the item with the redelivered marks (MarkKombuRedelivered)
  std::string exchange;
  std::string routing_key;
  int64_t priority = 0;  // the step list is KombuQueueKey(queue, priority)
};
// INVALID_ARGUMENT when `entry` is not a JSON array [payload, exchange, routing_key] with
// string exchange and routing key.
absl::StatusOr<KombuRestore> ParseKombuUnackedEntry(absl::string_view entry, int max_json_depth);

// `item` with headers.redelivered and properties.delivery_info.redelivered set to true where
// those objects exist (as kombu's _do_restore_message does); `item` unchanged when it is not
// a JSON object.
std::string MarkKombuRedelivered(absl::string_view item, int max_json_depth);
// `item` with a top-level "modeld-dead-letter-reason": `reason` when it is a JSON object;
// unchanged otherwise.
std::string WithDeadLetterReason(absl::string_view item, absl::string_view reason,
                                 int max_json_depth);

}  // namespace modeld::transport::celery
