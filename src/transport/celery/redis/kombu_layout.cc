#include "transport/celery/redis/kombu_layout.h"

#include <algorithm>
#include <cmath>

#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "transport/http/json_util.h"

namespace modeld::transport::celery {
namespace {

using rapidjson::Value;

constexpr int64_t kPrioritySteps[] = {0, 3, 6, 9};

const Value* Member(const Value& object, const char* name) {
  if (!object.IsObject()) return nullptr;
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

std::string StringMember(const Value* object, const char* name) {
  if (object == nullptr) return "";
  const Value* value = Member(*object, name);
  if (value == nullptr || !value->IsString()) return "";
  return std::string(value->GetString(), value->GetStringLength());
}

bool TrueMember(const Value* object, const char* name) {
  if (object == nullptr) return false;
  const Value* value = Member(*object, name);
  return value != nullptr && value->IsBool() && value->GetBool();
}

// kombu reads the priority with int(): a float is truncated; anything else counts as 0.
int64_t PriorityOf(const Value* properties) {
  if (properties == nullptr) return 0;
  const Value* value = Member(*properties, "priority");
  if (value == nullptr) return 0;
  if (value->IsInt64()) return value->GetInt64();
  if (value->IsNumber() && std::isfinite(value->GetDouble())) {
    return static_cast<int64_t>(std::clamp(value->GetDouble(), -1e9, 1e9));
  }
  return 0;
}

std::string Write(const Value& value) {
  rapidjson::StringBuffer buffer;
  http::JsonWriter writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

// Sets object[name] = value, replacing an existing member.
void SetMember(Value& object, const char* name, Value value,
               rapidjson::Document::AllocatorType& allocator) {
  auto it = object.FindMember(name);
  if (it != object.MemberEnd()) {
    it->value = std::move(value);
  } else {
    object.AddMember(Value(name, allocator), std::move(value), allocator);
  }
}

}  // namespace

int64_t KombuPriorityStep(int64_t priority) {
  const int64_t clamped = std::clamp<int64_t>(priority, 0, 9);
  int64_t step = 0;
  for (int64_t candidate : kPrioritySteps) {
    if (candidate <= clamped) step = candidate;
  }
  return step;
}

std::string KombuQueueKey(absl::string_view queue, int64_t priority) {
  const int64_t step = KombuPriorityStep(priority);
  if (step == 0) return std::string(queue);
  return absl::StrCat(queue, kKombuSep, step);
}

std::vector<std::string> KombuQueueKeys(absl::string_view queue) {
  std::vector<std::string> keys;
  for (int64_t step : kPrioritySteps) keys.push_back(KombuQueueKey(queue, step));
  return keys;
}

std::string KombuQueueOfKey(absl::string_view key) {
  const size_t at = key.rfind(kKombuSep);
  return std::string(at == absl::string_view::npos ? key : key.substr(0, at));
}

std::string KombuBindingKey(absl::string_view exchange) {
  return absl::StrCat("_kombu.binding.", exchange);
}

std::string KombuPermanentBindingKey(absl::string_view exchange) {
  return absl::StrCat("_kombu.binding_permanent.", exchange);
}

std::string KombuBindingMember(absl::string_view routing_key, absl::string_view pattern,
                               absl::string_view queue) {
  return absl::StrCat(routing_key, kKombuSep, pattern, kKombuSep, queue);
}

std::vector<std::string> KombuDirectRoute(const std::vector<std::string>& members,
                                          absl::string_view routing_key) {
  std::vector<std::string> queues;
  for (const std::string& member : members) {
    std::vector<absl::string_view> parts = absl::StrSplit(member, kKombuSep);
    if (parts.size() != 3 || parts[0] != routing_key) continue;
    if (std::find(queues.begin(), queues.end(), parts[2]) == queues.end()) {
      queues.emplace_back(parts[2]);
    }
  }
  return queues;
}

std::string NewKombuDeliveryTag() {
  // One generator per thread: the broker's reader thread and the loop thread both make tags.
  thread_local absl::BitGen generator;
  uint8_t bytes[16];
  for (uint8_t& byte : bytes) byte = absl::Uniform<uint8_t>(generator);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;  // version 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80;  // RFC 4122 variant
  std::string out;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    absl::StrAppendFormat(&out, "%02x", bytes[i]);
  }
  return out;
}

absl::StatusOr<std::string> EncodeKombuMessage(const KombuOutgoing& message) {
  rapidjson::Document headers;
  if (!http::ParseJson(message.headers_json, headers).ok() || !headers.IsObject()) {
    return absl::InvalidArgumentError("the task message's headers must be a JSON object");
  }
  rapidjson::StringBuffer buffer;
  http::JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("body");
  http::WriteString(writer, absl::Base64Escape(message.body));
  writer.Key("content-encoding");
  writer.String("utf-8");
  writer.Key("content-type");
  writer.String("application/json");
  writer.Key("headers");
  headers.Accept(writer);
  writer.Key("properties");
  writer.StartObject();
  writer.Key("correlation_id");
  http::WriteSanitizedString(writer, message.correlation_id);
  if (!message.reply_to.empty()) {
    writer.Key("reply_to");
    http::WriteSanitizedString(writer, message.reply_to);
  }
  writer.Key("delivery_mode");
  writer.Int(2);
  writer.Key("delivery_info");
  writer.StartObject();
  writer.Key("exchange");
  writer.String("");
  writer.Key("routing_key");
  http::WriteSanitizedString(writer, message.routing_key);
  writer.EndObject();
  writer.Key("priority");
  writer.Int64(message.priority);
  writer.Key("body_encoding");
  writer.String("base64");
  writer.Key("delivery_tag");
  http::WriteSanitizedString(writer, message.delivery_tag);
  writer.EndObject();
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

KombuItemInfo InspectKombuItem(absl::string_view item, int max_json_depth) {
  KombuItemInfo info;
  rapidjson::Document doc;
  if (!http::ParseJson(item, doc, max_json_depth).ok() || !doc.IsObject()) return info;
  info.is_object = true;
  const Value* properties = Member(doc, "properties");
  const Value* delivery_info = properties != nullptr ? Member(*properties, "delivery_info")
                                                     : nullptr;
  info.delivery_tag = StringMember(properties, "delivery_tag");
  info.has_delivery_info = delivery_info != nullptr && delivery_info->IsObject();
  info.exchange = StringMember(delivery_info, "exchange");
  info.routing_key = StringMember(delivery_info, "routing_key");
  info.priority = PriorityOf(properties);
  info.redelivered = TrueMember(Member(doc, "headers"), "redelivered") ||
                     TrueMember(delivery_info, "redelivered") || TrueMember(&doc, "redelivered");
  return info;
}

std::string KombuUnackedEntry(absl::string_view item, int max_json_depth,
                              absl::string_view exchange, absl::string_view routing_key) {
  rapidjson::Document doc;
  const bool json = http::ParseJson(item, doc, max_json_depth).ok();
  rapidjson::StringBuffer buffer;
  http::JsonWriter writer(buffer);
  writer.StartArray();
  if (json) {
    // Verbatim: what was taken is what a restore pushes back.
    writer.RawValue(item.data(), item.size(), doc.GetType());
  } else {
    http::WriteSanitizedString(writer, item);
  }
  http::WriteSanitizedString(writer, exchange);
  http::WriteSanitizedString(writer, routing_key);
  writer.EndArray();
  return std::string(buffer.GetString(), buffer.GetSize());
}

absl::StatusOr<KombuRestore> ParseKombuUnackedEntry(absl::string_view entry, int max_json_depth) {
  rapidjson::Document doc;
  // One level more than an item may have: the entry's array around it.
  if (!http::ParseJson(entry, doc, max_json_depth + 1).ok() || !doc.IsArray() ||
      doc.Size() != 3 || !doc[1].IsString() || !doc[2].IsString()) {
    return absl::InvalidArgumentError(
        "an unacked entry must be the JSON array [payload, exchange, routing_key]");
  }
  KombuRestore out;
  out.exchange.assign(doc[1].GetString(), doc[1].GetStringLength());
  out.routing_key.assign(doc[2].GetString(), doc[2].GetStringLength());
  Value& payload = doc[0];
  if (payload.IsString()) {
    // An item that was not JSON, kept as a string: back as it came.
    out.payload.assign(payload.GetString(), payload.GetStringLength());
    return out;
  }
  if (payload.IsObject()) {
    Value* headers = payload.HasMember("headers") ? &payload["headers"] : nullptr;
    if (headers != nullptr && headers->IsObject()) {
      SetMember(*headers, "redelivered", Value(true), doc.GetAllocator());
    }
    Value* properties = payload.HasMember("properties") ? &payload["properties"] : nullptr;
    if (properties != nullptr && properties->IsObject()) {
      out.priority = PriorityOf(properties);
      if (properties->HasMember("delivery_info") && (*properties)["delivery_info"].IsObject()) {
        SetMember((*properties)["delivery_info"], "redelivered", Value(true), doc.GetAllocator());
      }
    }
  }
  out.payload = Write(payload);
  return out;
}

std::string MarkKombuRedelivered(absl::string_view item, int max_json_depth) {
  rapidjson::Document doc;
  if (!http::ParseJson(item, doc, max_json_depth).ok() || !doc.IsObject()) {
    return std::string(item);
  }
  // Reuse the entry path so both restores edit the message the same way.
  absl::StatusOr<KombuRestore> restored =
      ParseKombuUnackedEntry(KombuUnackedEntry(item, max_json_depth, "", ""), max_json_depth);
  return restored.ok() ? restored->payload : std::string(item);
}

std::string WithDeadLetterReason(absl::string_view item, absl::string_view reason,
                                 int max_json_depth) {
  rapidjson::Document doc;
  if (!http::ParseJson(item, doc, max_json_depth).ok() || !doc.IsObject()) {
    return std::string(item);
  }
  std::string text = http::IsValidUtf8(reason) ? std::string(reason)
                                               : absl::StrCat("(not UTF-8) ", absl::CHexEscape(reason));
  SetMember(doc, "modeld-dead-letter-reason",
            Value(text.data(), static_cast<rapidjson::SizeType>(text.size()), doc.GetAllocator()),
            doc.GetAllocator());
  return Write(doc);
}

}  // namespace modeld::transport::celery
