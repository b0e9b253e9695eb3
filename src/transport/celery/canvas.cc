#include "transport/celery/canvas.h"

#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/uuid.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "transport/http/json_util.h"

namespace modeld::transport::celery {

namespace {

using rapidjson::Value;

const Value* Field(const Value& object, const char* name) {
  if (!object.IsObject()) return nullptr;
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

// A non-empty string option of the signature, or "".
std::string StringOption(const Value& signature, const char* name) {
  const Value* options = Field(signature, "options");
  const Value* value = options == nullptr ? nullptr : Field(*options, name);
  return value != nullptr && value->IsString() ? std::string(value->GetString(), value->GetStringLength())
                                               : std::string();
}

const Value* Option(const Value& signature, const char* name) {
  const Value* options = Field(signature, "options");
  const Value* value = options == nullptr ? nullptr : Field(*options, name);
  return value != nullptr && !value->IsNull() ? value : nullptr;
}

std::string ToJson(const Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

absl::Status CheckPlain(const Value& signature, absl::string_view role,
                        const CeleryTask& task) {
  const Value* type = Field(signature, "subtask_type");
  if (type == nullptr || type->IsNull()) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrCat(
      task.headers.task, " was sent with a ", type->IsString() ? type->GetString() : "canvas",
      " as its ", role, "; modeld publishes only plain task signatures as follow-ups (make the ",
      type->IsString() ? type->GetString() : "canvas",
      " a Python task's job, or chain modeld's task into it from Python)"));
}

// The message for `signature` with `prefix` (the result, or the task id) before its args.
OutgoingTask Publishable(const CeleryTask& task, const Value& signature,
                         absl::string_view prefix_json,
                         const std::vector<const Value*>& remaining_chain,
                         const CanvasOptions& options) {
  OutgoingTask out;
  std::string queue = StringOption(signature, "queue");
  if (queue.empty()) queue = StringOption(signature, "routing_key");
  out.queue = queue.empty() ? options.default_queue : queue;
  std::string id = StringOption(signature, "task_id");
  if (id.empty()) id = common::RandomUuid();
  out.correlation_id = id;
  out.reply_to = StringOption(signature, "reply_to");
  if (out.reply_to.empty()) out.reply_to = task.headers.reply_to;
  if (const Value* priority = Option(signature, "priority"); priority != nullptr &&
                                                              priority->IsInt()) {
    out.priority = priority->GetInt();
  }
  const Value* immutable = Field(signature, "immutable");
  const bool prepend = !prefix_json.empty() && !(immutable != nullptr && immutable->IsTrue());

  // Body: [args, kwargs, embed].
  std::string args = "[";
  if (prepend) absl::StrAppend(&args, prefix_json);
  if (const Value* own = Field(signature, "args"); own != nullptr && own->IsArray()) {
    for (const Value& arg : own->GetArray()) {
      if (args.size() > 1) args.append(",");
      args.append(ToJson(arg));
    }
  }
  args.append("]");
  const Value* kwargs = Field(signature, "kwargs");
  const std::string kwargs_json = kwargs != nullptr && kwargs->IsObject() ? ToJson(*kwargs) : "{}";
  std::string chain = "[";
  for (const Value* step : remaining_chain) {
    if (chain.size() > 1) chain.append(",");
    chain.append(ToJson(*step));
  }
  chain.append("]");
  const Value* link = Option(signature, "link");
  const Value* link_error = Option(signature, "link_error");
  const Value* chord = Option(signature, "chord");
  const auto list_or_null = [](const Value* value) {
    if (value == nullptr) return std::string("null");
    return value->IsArray() ? ToJson(*value) : absl::StrCat("[", ToJson(*value), "]");
  };
  out.body = absl::StrCat("[", args, ",", kwargs_json, ",{\"callbacks\":", list_or_null(link),
                          ",\"errbacks\":", list_or_null(link_error), ",\"chain\":",
                          remaining_chain.empty() ? "null" : chain, ",\"chord\":",
                          chord == nullptr ? "null" : ToJson(*chord), "}]");

  // Headers, as Celery's as_task_v2 writes them.
  rapidjson::StringBuffer buffer;
  http::JsonWriter json(buffer);
  const Value* name = Field(signature, "task");
  const auto string_or_null = [&json](absl::string_view text) {
    if (text.empty()) {
      json.Null();
    } else {
      http::WriteString(json, text);
    }
  };
  json.StartObject();
  json.Key("lang");
  http::WriteString(json, "py");
  json.Key("task");
  http::WriteString(json, absl::string_view(name->GetString(), name->GetStringLength()));
  json.Key("id");
  http::WriteString(json, id);
  json.Key("shadow");
  json.Null();
  json.Key("eta");
  json.Null();
  json.Key("expires");
  json.Null();
  json.Key("group");
  string_or_null(StringOption(signature, "group_id"));
  json.Key("group_index");
  if (const Value* index = Option(signature, "group_index"); index != nullptr && index->IsInt64()) {
    json.Int64(index->GetInt64());
  } else {
    json.Null();
  }
  json.Key("retries");
  json.Int(0);
  json.Key("timelimit");
  json.StartArray();
  for (const char* limit : {"time_limit", "soft_time_limit"}) {
    const Value* value = Option(signature, limit);
    if (value != nullptr && value->IsNumber()) {
      json.Double(value->GetDouble());
    } else {
      json.Null();
    }
  }
  json.EndArray();
  json.Key("root_id");
  http::WriteString(json, task.headers.ids.root_id.empty() ? task.headers.ids.id
                                                           : task.headers.ids.root_id);
  json.Key("parent_id");
  http::WriteString(json, task.headers.ids.id);
  json.Key("argsrepr");
  http::WriteString(json, args);
  json.Key("kwargsrepr");
  http::WriteString(json, kwargs_json);
  json.Key("origin");
  http::WriteString(json, options.origin);
  json.Key("ignore_result");
  const Value* ignore = Option(signature, "ignore_result");
  json.Bool(ignore != nullptr && ignore->IsTrue());
  json.Key("replaced_task_nesting");
  json.Int(0);
  json.Key("stamped_headers");
  json.Null();
  json.Key("stamps");
  json.StartObject();
  json.EndObject();
  json.EndObject();
  out.headers_json.assign(buffer.GetString(), buffer.GetSize());
  return out;
}

}  // namespace

absl::Status CheckCanvas(const CeleryTask& task) {
  if (absl::Status supported = CheckSupported(task); !supported.ok()) return supported;
  if (!task.chain.empty()) {
    if (absl::Status plain = CheckPlain(*task.chain.back(), "chain's next step", task);
        !plain.ok()) {
      return plain;
    }
  }
  for (const Value* link : task.callbacks) {
    if (absl::Status plain = CheckPlain(*link, "link", task); !plain.ok()) return plain;
  }
  for (const Value* errback : task.errbacks) {
    if (absl::Status plain = CheckPlain(*errback, "link_error", task); !plain.ok()) return plain;
  }
  return absl::OkStatus();
}

std::vector<OutgoingTask> FollowUps(const CeleryTask& task, const absl::Status& status,
                                    absl::string_view result_json,
                                    const CanvasOptions& options) {
  std::vector<OutgoingTask> out;
  if (!status.ok()) {
    std::string id_json;
    {
      rapidjson::StringBuffer buffer;
      http::JsonWriter json(buffer);
      http::WriteString(json, task.headers.ids.id);
      id_json.assign(buffer.GetString(), buffer.GetSize());
    }
    for (const Value* errback : task.errbacks) {
      out.push_back(Publishable(task, *errback, id_json, {}, options));
    }
    return out;
  }
  if (!task.chain.empty()) {
    std::vector<const Value*> rest(task.chain.begin(), task.chain.end() - 1);
    out.push_back(Publishable(task, *task.chain.back(), result_json, rest, options));
  }
  for (const Value* link : task.callbacks) {
    out.push_back(Publishable(task, *link, result_json, {}, options));
  }
  return out;
}

}  // namespace modeld::transport::celery
