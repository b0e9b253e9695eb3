#include "transport/celery/task_message.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "transport/http/json_tensor.h"
#include "transport/http/json_util.h"

namespace modeld::transport::celery {
namespace {

using rapidjson::Value;
using http::JsonTypeName;

constexpr char kUnknownTaskPayload[] = "type.modeld.dev/celery.UnknownTask";
// Inputs as nested lists: BYTES as strings or {"b64": ...}; FP16 as numbers.
constexpr http::JsonElementRules kInputRules{.accept_b64 = true, .accept_fp16_numbers = true};

absl::string_view Str(const Value& value) {
  return absl::string_view(value.GetString(), value.GetStringLength());
}

const Value* Member(const Value& object, absl::string_view name) {
  auto it = object.FindMember(
      Value(rapidjson::StringRef(name.data(), static_cast<rapidjson::SizeType>(name.size()))));
  return it == object.MemberEnd() ? nullptr : &it->value;
}

// A string header or property; empty when absent or null.
absl::Status ReadString(const Value& object, absl::string_view name, absl::string_view what,
                        std::string& out) {
  const Value* value = Member(object, name);
  if (value == nullptr || value->IsNull()) return absl::OkStatus();
  if (!value->IsString()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " '", name, "' must be a string, got ",
                                                   JsonTypeName(*value)));
  }
  out = std::string(Str(*value));
  return absl::OkStatus();
}

absl::Status ReadTime(const Value& headers, absl::string_view name,
                      std::optional<absl::Time>& out) {
  const Value* value = Member(headers, name);
  if (value == nullptr || value->IsNull()) return absl::OkStatus();
  if (!value->IsString()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "header '", name, "' must be an ISO 8601 date string, got ", JsonTypeName(*value)));
  }
  absl::StatusOr<absl::Time> time = ParseIsoTime(Str(*value));
  if (!time.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("header '", name, "': ", time.status().message()));
  }
  out = *time;
  return absl::OkStatus();
}

absl::Status ReadLimit(const Value& value, absl::string_view which,
                       std::optional<absl::Duration>& out) {
  if (value.IsNull()) return absl::OkStatus();
  if (!value.IsNumber() || !std::isfinite(value.GetDouble()) || value.GetDouble() < 0 ||
      value.GetDouble() > 1e9) {
    return absl::InvalidArgumentError(absl::StrCat(
        "header 'timelimit': the ", which,
        " limit must be null or a number of seconds between 0 and 1e9, got ",
        value.IsNumber() ? absl::StrCat(value.GetDouble()) : JsonTypeName(value)));
  }
  out = absl::Seconds(value.GetDouble());
  return absl::OkStatus();
}

std::string TaskNames() {
  return absl::StrCat("'", kInferTask, "', '", kPredictTask, "' and '", kTrainTask, "'");
}

std::optional<TaskKind> KindOf(absl::string_view name) {
  if (name == kInferTask) return TaskKind::kInfer;
  if (name == kPredictTask) return TaskKind::kPredict;
  if (name == kTrainTask) return TaskKind::kTrain;
  return std::nullopt;
}

// The Python signature of each task: parameter names in order, how many are required.
struct Parameters {
  std::vector<const char*> names;
  size_t required;
};

const Parameters& ParametersOf(TaskKind kind) {
  static const Parameters kInfer{{"model", "inputs", "version", "outputs"}, 2};
  static const Parameters kPredict{{"model", "data", "version"}, 2};
  static const Parameters kTrain{{"model", "inputs", "targets", "version"}, 3};
  switch (kind) {
    case TaskKind::kInfer:
      return kInfer;
    case TaskKind::kPredict:
      return kPredict;
    case TaskKind::kTrain:
      break;
  }
  return kTrain;
}

// Binds args and kwargs to the task's parameters as Python binds a call.
absl::Status BindArguments(absl::string_view task_name, CeleryTask& task) {
  const Parameters& parameters = ParametersOf(task.kind);
  if (task.args->Size() > parameters.names.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(task_name, "() takes at most ", parameters.names.size(),
                     " positional arguments (", task.args->Size(), " given)"));
  }
  for (rapidjson::SizeType i = 0; i < task.args->Size(); ++i) {
    task.arguments[parameters.names[i]] = &(*task.args)[i];
  }
  for (const auto& member : task.kwargs->GetObject()) {
    const absl::string_view name = Str(member.name);
    const bool known =
        std::any_of(parameters.names.begin(), parameters.names.end(),
                    [&](const char* parameter) { return name == parameter; });
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(
          task_name, "() got an unexpected keyword argument '", name, "'; it takes ",
          absl::StrJoin(parameters.names, ", ")));
    }
    if (!task.arguments.emplace(std::string(name), &member.value).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(task_name, "() got multiple values for argument '", name, "'"));
    }
  }
  for (size_t i = 0; i < parameters.required; ++i) {
    if (!task.arguments.contains(parameters.names[i])) {
      return absl::InvalidArgumentError(absl::StrCat(task_name, "() missing required argument '",
                                                     parameters.names[i], "'"));
    }
  }
  return absl::OkStatus();
}

const Value* Argument(const CeleryTask& task, absl::string_view name) {
  auto it = task.arguments.find(name);
  return it == task.arguments.end() ? nullptr : it->second;
}

// Types the bound arguments and fills model, version and outputs.
absl::Status CheckArguments(absl::string_view task_name, CeleryTask& task) {
  const Value& model = *Argument(task, "model");
  if (!model.IsString() || model.GetStringLength() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        task_name, "(): 'model' must be a model's name (a non-empty string), got ",
        model.IsString() ? "an empty string" : JsonTypeName(model)));
  }
  task.model = std::string(Str(model));
  if (const Value* version = Argument(task, "version"); version != nullptr && !version->IsNull()) {
    int64_t number = 0;
    const bool ok = version->IsInt64()    ? (number = version->GetInt64(), true)
                    : version->IsString() ? absl::SimpleAtoi(Str(*version), &number) &&
                                                absl::ascii_isdigit(Str(*version).front())
                                          : false;
    if (!ok || number < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          task_name, "(): 'version' must be None or a version number >= 1, got ",
          version->IsString() ? absl::StrCat("'", Str(*version), "'") : JsonTypeName(*version)));
    }
    task.version = number;
  }
  if (const Value* outputs = Argument(task, "outputs"); outputs != nullptr && !outputs->IsNull()) {
    if (!outputs->IsArray()) {
      return absl::InvalidArgumentError(absl::StrCat(
          task_name, "(): 'outputs' must be None or a list of output names, got ",
          JsonTypeName(*outputs)));
    }
    for (const Value& name : outputs->GetArray()) {
      if (!name.IsString()) {
        return absl::InvalidArgumentError(absl::StrCat(
            task_name, "(): 'outputs' must list output names (strings), got ",
            JsonTypeName(name)));
      }
      task.outputs.emplace_back(Str(name));
    }
  }
  for (const char* name : {"inputs", "targets"}) {
    const Value* value = Argument(task, name);
    if (value != nullptr && !value->IsObject()) {
      return absl::InvalidArgumentError(
          absl::StrCat(task_name, "(): '", name,
                       "' must be a dict of tensor name -> nested list, got ",
                       JsonTypeName(*value)));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSignature(const Value& signature, absl::string_view where) {
  if (!signature.IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " must be a signature (an object), got ", JsonTypeName(signature)));
  }
  const Value* task = Member(signature, "task");
  if (task == nullptr || !task->IsString()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " is a signature without a \"task\" name"));
  }
  for (const char* field : {"args", "kwargs", "options"}) {
    const Value* value = Member(signature, field);
    if (value == nullptr || value->IsNull()) continue;
    const bool list = absl::string_view(field) == "args";
    if (list ? !value->IsArray() : !value->IsObject()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "'s \"", field, "\" must be ",
                                                     list ? "a list" : "an object", ", got ",
                                                     JsonTypeName(*value)));
    }
  }
  return absl::OkStatus();
}

absl::Status ReadSignatures(const Value& embed, const char* name,
                            std::vector<const Value*>& out) {
  const Value* list = Member(embed, name);
  if (list == nullptr || list->IsNull()) return absl::OkStatus();
  if (!list->IsArray()) {
    return absl::InvalidArgumentError(absl::StrCat("embed \"", name,
                                                   "\" must be a list of signatures, got ",
                                                   JsonTypeName(*list)));
  }
  for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
    RETURN_IF_ERROR(CheckSignature((*list)[i], absl::StrCat("embed \"", name, "\" item ", i)));
    out.push_back(&(*list)[i]);
  }
  return absl::OkStatus();
}

absl::Status ReadEmbed(const Value& embed, CeleryTask& task) {
  if (embed.IsNull()) return absl::OkStatus();
  if (!embed.IsObject()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the body's third item (embed) must be an object or null, got ", JsonTypeName(embed)));
  }
  RETURN_IF_ERROR(ReadSignatures(embed, "callbacks", task.callbacks));
  RETURN_IF_ERROR(ReadSignatures(embed, "errbacks", task.errbacks));
  RETURN_IF_ERROR(ReadSignatures(embed, "chain", task.chain));
  if (const Value* chord = Member(embed, "chord"); chord != nullptr && !chord->IsNull()) {
    RETURN_IF_ERROR(CheckSignature(*chord, "embed \"chord\""));
    task.chord = chord;
  }
  return absl::OkStatus();
}

// "application/json" or "application/json; charset=utf-8".
bool IsJsonContentType(absl::string_view type) {
  absl::string_view media = type.substr(0, type.find(';'));
  return absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(media), "application/json");
}

std::string InputNames(const core::ModelConfig& config) {
  return absl::StrJoin(config.inputs, ", ", [](std::string* out, const core::TensorSpec& spec) {
    absl::StrAppend(out, "'", spec.name, "'");
  });
}

absl::StatusOr<core::Tensor> ReadInput(const Value& value, const core::TensorSpec& spec) {
  std::string bytes;
  ASSIGN_OR_RETURN(core::Shape shape,
                   http::ReadNestedTensor(value, spec.type, kInputRules,
                                          absl::StrCat("input '", spec.name, "'"), bytes));
  return core::Tensor::Owning(spec.type, std::move(shape), std::move(bytes));
}

// A target's datatype: the output's of the same name (the loss compares them), else what
// its values are (a model's own train_step names its targets freely).
core::DataType TargetType(const Value& value, const core::ModelConfig& config,
                          absl::string_view name) {
  for (const core::TensorSpec& output : config.outputs) {
    if (output.name == name) return output.type;
  }
  const Value* leaf = &value;
  while (leaf->IsArray() && !leaf->Empty()) leaf = &(*leaf)[0];
  if (leaf->IsBool()) return core::DataType::kBool;
  if (leaf->IsString() || leaf->IsObject()) return core::DataType::kBytes;
  if (leaf->IsInt64()) return core::DataType::kInt64;
  return core::DataType::kFp32;
}

// Every input of `config`, by name, from the object `inputs`.
absl::Status ReadInputs(const Value& inputs, const core::ModelConfig& config,
                        core::TensorMap& out) {
  for (const auto& member : inputs.GetObject()) {
    const absl::string_view name = Str(member.name);
    const core::TensorSpec* spec = config.FindInput(name);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown input '", name, "'; model '",
                                                     config.name, "' has inputs ",
                                                     InputNames(config)));
    }
    ASSIGN_OR_RETURN(core::Tensor tensor, ReadInput(member.value, *spec));
    if (!out.emplace(spec->name, std::move(tensor)).second) {
      return absl::InvalidArgumentError(absl::StrCat("input '", spec->name, "' appears twice"));
    }
  }
  for (const core::TensorSpec& spec : config.inputs) {
    if (!out.contains(spec.name)) {
      return absl::InvalidArgumentError(absl::StrCat("missing input '", spec.name, "'; model '",
                                                     config.name, "' has inputs ",
                                                     InputNames(config)));
    }
  }
  return absl::OkStatus();
}

// Writes the shared part of every result document around `write_result`.
template <typename WriteResult>
std::string ResultDocument(const TaskIds& ids, absl::string_view status,
                           std::optional<absl::Time> done, WriteResult write_result) {
  rapidjson::StringBuffer buffer;
  http::JsonWriter json(buffer);
  json.StartObject();
  json.Key("status");
  http::WriteString(json, status);
  json.Key("result");
  write_result(json);
  json.Key("traceback");
  json.Null();
  json.Key("children");
  json.StartArray();
  json.EndArray();
  json.Key("date_done");
  if (done.has_value()) {
    http::WriteString(json, FormatIsoTime(*done));
  } else {
    json.Null();
  }
  json.Key("task_id");
  http::WriteSanitizedString(json, ids.id);
  json.EndObject();
  return http::BufferText(buffer);
}

std::string ExceptionDocument(const TaskIds& ids, absl::string_view status,
                              const PythonException& exception, absl::Time done) {
  return ResultDocument(ids, status, done, [&](http::JsonWriter& json) {
    json.StartObject();
    json.Key("exc_type");
    http::WriteString(json, exception.type);
    json.Key("exc_message");
    json.StartArray();
    http::WriteSanitizedString(json, exception.message);
    json.EndArray();
    json.Key("exc_module");
    http::WriteString(json, exception.module);
    json.EndObject();
  });
}

}  // namespace

absl::StatusOr<absl::Time> ParseIsoTime(absl::string_view text) {
  std::string error;
  absl::Time time;
  // With an offset ("+00:00", "-05:30" or "Z"), then without one (a naive datetime: UTC).
  for (const char* format : {"%Y-%m-%d%ET%H:%M:%E*S%Ez", "%Y-%m-%d%ET%H:%M:%E*S"}) {
    if (absl::ParseTime(format, text, absl::UTCTimeZone(), &time, &error)) return time;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "'", absl::CHexEscape(text.substr(0, 64)),
      "' is not an ISO 8601 date like 2024-05-01T12:00:00.000000+00:00"));
}

std::string FormatIsoTime(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6S+00:00", time, absl::UTCTimeZone());
}

absl::StatusOr<TaskHeaders> HeadersFromJson(const Value& headers) {
  if (!headers.IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the message headers must be an object, got ", JsonTypeName(headers)));
  }
  TaskHeaders out;
  RETURN_IF_ERROR(ReadString(headers, "task", "header", out.task));
  RETURN_IF_ERROR(ReadString(headers, "id", "header", out.ids.id));
  RETURN_IF_ERROR(ReadString(headers, "root_id", "header", out.ids.root_id));
  RETURN_IF_ERROR(ReadString(headers, "parent_id", "header", out.ids.parent_id));
  RETURN_IF_ERROR(ReadString(headers, "group", "header", out.ids.group));
  RETURN_IF_ERROR(ReadString(headers, "lang", "header", out.lang));
  RETURN_IF_ERROR(ReadString(headers, "compression", "header", out.compression));
  RETURN_IF_ERROR(ReadTime(headers, "eta", out.eta));
  RETURN_IF_ERROR(ReadTime(headers, "expires", out.expires));
  if (const Value* retries = Member(headers, "retries"); retries != nullptr && !retries->IsNull()) {
    if (!retries->IsInt64() || retries->GetInt64() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "header 'retries' must be a non-negative integer, got ",
          retries->IsNumber() ? absl::StrCat(retries->GetDouble()) : JsonTypeName(*retries)));
    }
    out.retries = retries->GetInt64();
  }
  if (const Value* limit = Member(headers, "timelimit"); limit != nullptr && !limit->IsNull()) {
    if (!limit->IsArray() || limit->Size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "header 'timelimit' must be [hard, soft] (seconds or null), got ",
          limit->IsArray() ? absl::StrCat("a list of ", limit->Size()) : JsonTypeName(*limit)));
    }
    // Celery writes [time_limit, soft_time_limit]: the hard one first.
    RETURN_IF_ERROR(ReadLimit((*limit)[0], "hard", out.hard_time_limit));
    RETURN_IF_ERROR(ReadLimit((*limit)[1], "soft", out.soft_time_limit));
  }
  if (const Value* ignore = Member(headers, "ignore_result");
      ignore != nullptr && !ignore->IsNull()) {
    if (!ignore->IsBool()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "header 'ignore_result' must be true or false, got ", JsonTypeName(*ignore)));
    }
    out.ignore_result = ignore->GetBool();
  }
  return out;
}

absl::StatusOr<KombuRedisMessage> ParseKombuRedisMessage(absl::string_view text,
                                                         int max_json_depth) {
  rapidjson::Document doc;
  RETURN_IF_ERROR(http::ParseJson(text, doc, max_json_depth));
  if (!doc.IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a kombu Redis message must be a JSON object, got ", JsonTypeName(doc)));
  }
  const Value* headers = Member(doc, "headers");
  if (headers == nullptr) return absl::InvalidArgumentError("the message has no \"headers\"");
  KombuRedisMessage out;
  ASSIGN_OR_RETURN(out.headers, HeadersFromJson(*headers));
  RETURN_IF_ERROR(ReadString(doc, "content-type", "field", out.headers.content_type));
  RETURN_IF_ERROR(ReadString(doc, "content-encoding", "field", out.headers.content_encoding));
  const Value* properties = Member(doc, "properties");
  if (properties == nullptr || !properties->IsObject()) {
    return absl::InvalidArgumentError("the message has no \"properties\" object");
  }
  RETURN_IF_ERROR(
      ReadString(*properties, "correlation_id", "property", out.headers.correlation_id));
  RETURN_IF_ERROR(ReadString(*properties, "reply_to", "property", out.headers.reply_to));
  RETURN_IF_ERROR(ReadString(*properties, "delivery_tag", "property", out.delivery_tag));
  std::string body_encoding;
  RETURN_IF_ERROR(ReadString(*properties, "body_encoding", "property", body_encoding));
  if (const Value* info = Member(*properties, "delivery_info"); info != nullptr && info->IsObject()) {
    RETURN_IF_ERROR(ReadString(*info, "routing_key", "delivery_info", out.routing_key));
  }
  if (const Value* priority = Member(*properties, "priority");
      priority != nullptr && priority->IsInt64()) {
    out.priority = priority->GetInt64();
  }
  const Value* body = Member(doc, "body");
  if (body == nullptr || !body->IsString()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the message's \"body\" must be a string, got ",
        body == nullptr ? "nothing" : JsonTypeName(*body)));
  }
  if (body_encoding == "base64") {
    if (!absl::Base64Unescape(Str(*body), &out.body)) {
      return absl::InvalidArgumentError("the message's \"body\" is not valid base64");
    }
  } else if (body_encoding.empty()) {
    out.body = std::string(Str(*body));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "body_encoding '", absl::CHexEscape(body_encoding),
        "' is not one modeld reads (base64, or none)"));
  }
  return out;
}

absl::Status UnknownTaskError(absl::string_view task_name) {
  absl::Status status(absl::StatusCode::kUnimplemented,
                      absl::StrCat("modeld does not serve task '", task_name, "'; it serves ",
                                   TaskNames()));
  status.SetPayload(kUnknownTaskPayload, absl::Cord(task_name));
  return status;
}

bool IsUnknownTask(const absl::Status& status) {
  return status.GetPayload(kUnknownTaskPayload).has_value();
}

absl::StatusOr<CeleryTask> ParseTaskMessage(const TaskHeaders& headers, absl::string_view body,
                                            int max_json_depth) {
  if (!IsJsonContentType(headers.content_type)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "content type '", absl::CHexEscape(headers.content_type),
        "' is not accepted: modeld reads task messages serialized as application/json "
        "(set task_serializer = \"json\", Celery's default)"));
  }
  if (!headers.content_encoding.empty() &&
      !absl::EqualsIgnoreCase(headers.content_encoding, "utf-8") &&
      !absl::EqualsIgnoreCase(headers.content_encoding, "utf8")) {
    return absl::InvalidArgumentError(
        absl::StrCat("content encoding '", absl::CHexEscape(headers.content_encoding),
                     "' is not accepted: modeld reads utf-8 JSON"));
  }
  if (!headers.compression.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the task message is compressed (", absl::CHexEscape(headers.compression),
                     "): modeld reads uncompressed JSON (drop task_compression / "
                     "compression=)"));
  }
  if (headers.ids.id.empty()) {
    return absl::InvalidArgumentError("the task message has no 'id' header (protocol v2)");
  }
  if (headers.task.empty()) {
    return absl::InvalidArgumentError("the task message has no 'task' header (protocol v2)");
  }
  const std::optional<TaskKind> kind = KindOf(headers.task);
  if (!kind.has_value()) return UnknownTaskError(headers.task);
  const absl::string_view name = headers.task;

  auto doc = std::make_shared<rapidjson::Document>();
  RETURN_IF_ERROR(http::ParseJson(body, *doc, max_json_depth));
  if (!doc->IsArray() || doc->Size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the task body must be a list of 3 items [args, kwargs, embed] (protocol v2), got ",
        doc->IsArray() ? absl::StrCat("a list of ", doc->Size()) : JsonTypeName(*doc)));
  }
  CeleryTask task;
  task.headers = headers;
  task.kind = *kind;
  task.args = &(*doc)[0];
  task.kwargs = &(*doc)[1];
  if (!task.args->IsArray()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the body's first item (args) must be a list, got ",
                     JsonTypeName(*task.args)));
  }
  if (!task.kwargs->IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the body's second item (kwargs) must be an object, got ",
                     JsonTypeName(*task.kwargs)));
  }
  RETURN_IF_ERROR(ReadEmbed((*doc)[2], task));
  RETURN_IF_ERROR(BindArguments(name, task));
  RETURN_IF_ERROR(CheckArguments(name, task));
  task.body = std::move(doc);
  return task;
}

absl::Status CheckSupported(const CeleryTask& task) {
  if (task.chord != nullptr) {
    return absl::UnimplementedError(absl::StrCat(
        task.headers.task, " was sent as part of a chord; modeld does not run chords yet "
        "(use a group and join the results, or a chain)"));
  }
  return absl::OkStatus();
}

absl::Time Deadline(const TaskHeaders& headers, absl::Time received) {
  absl::Duration limit = absl::InfiniteDuration();
  if (headers.soft_time_limit.has_value()) limit = std::min(limit, *headers.soft_time_limit);
  if (headers.hard_time_limit.has_value()) limit = std::min(limit, *headers.hard_time_limit);
  return limit == absl::InfiniteDuration() ? absl::InfiniteFuture() : received + limit;
}

bool Expired(const TaskHeaders& headers, absl::Time now) {
  return headers.expires.has_value() && *headers.expires < now;
}

absl::StatusOr<core::InferRequest> ToInferRequest(const CeleryTask& task,
                                                  const core::ModelConfig& config,
                                                  absl::Time received) {
  core::InferRequest request;
  request.model_name = task.model;
  request.model_version = task.version;
  request.id = task.headers.ids.id;
  request.deadline = Deadline(task.headers, received);
  request.requested_outputs = task.outputs;
  if (task.kind == TaskKind::kPredict) {
    if (config.inputs.size() != 1 || config.outputs.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          kPredictTask, "() needs a model with one input and one output; model '", config.name,
          "' has ", config.inputs.size(), " inputs and ", config.outputs.size(),
          " outputs: use ", kInferTask, "() with inputs by name"));
    }
    ASSIGN_OR_RETURN(core::Tensor tensor, ReadInput(*Argument(task, "data"), config.inputs[0]));
    request.inputs.emplace(config.inputs[0].name, std::move(tensor));
    return request;
  }
  if (task.kind != TaskKind::kInfer) {
    return absl::InvalidArgumentError(
        absl::StrCat(task.headers.task, " is not an inference task"));
  }
  RETURN_IF_ERROR(ReadInputs(*Argument(task, "inputs"), config, request.inputs));
  return request;
}

absl::StatusOr<core::TrainRequest> ToTrainRequest(const CeleryTask& task,
                                                  const core::ModelConfig& config) {
  if (task.kind != TaskKind::kTrain) {
    return absl::InvalidArgumentError(absl::StrCat(task.headers.task, " is not a training task"));
  }
  core::TrainRequest request;
  request.model_name = task.model;
  request.model_version = task.version;
  request.id = task.headers.ids.id;
  RETURN_IF_ERROR(ReadInputs(*Argument(task, "inputs"), config, request.inputs));
  const Value& targets = *Argument(task, "targets");
  if (targets.MemberCount() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(kTrainTask, "() needs at least one target"));
  }
  for (const auto& member : targets.GetObject()) {
    const std::string name(Str(member.name));
    std::string bytes;
    const core::DataType type = TargetType(member.value, config, name);
    ASSIGN_OR_RETURN(core::Shape shape,
                     http::ReadNestedTensor(member.value, type, kInputRules,
                                            absl::StrCat("target '", name, "'"), bytes));
    request.targets.emplace(name, core::Tensor::Owning(type, std::move(shape), std::move(bytes)));
  }
  return request;
}

absl::StatusOr<std::string> EncodeInferResult(TaskKind kind, const core::InferResponse& response) {
  if (kind == TaskKind::kPredict && response.outputs.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        kPredictTask, "() answers one output; the model gave ", response.outputs.size()));
  }
  rapidjson::StringBuffer buffer;
  http::JsonWriter json(buffer);
  if (kind != TaskKind::kPredict) json.StartObject();
  for (const core::NamedTensor& output : response.outputs) {
    ASSIGN_OR_RETURN(http::TensorJsonWriter writer,
                     http::TensorJsonWriter::Make(output.tensor, http::BytesStyle::kStringOrB64,
                                                  absl::StrCat("output '", output.name, "'")));
    if (kind != TaskKind::kPredict) http::WriteSanitizedString(json, output.name);
    writer.WriteNested(json, output.tensor.shape(), 0);
  }
  if (kind != TaskKind::kPredict) json.EndObject();
  return http::BufferText(buffer);
}

std::string EncodeTrainResult(const core::TrainResponse& response) {
  rapidjson::StringBuffer buffer;
  http::JsonWriter json(buffer);
  json.StartObject();
  json.Key("loss");
  // Always a float to Python, even when whole ("4.0", not "4"): the contract says float.
  json.Double(response.loss);
  json.Key("step");
  json.Int64(response.step);
  json.Key("checkpoint_step");
  json.Int64(response.checkpoint_step);
  json.EndObject();
  return http::BufferText(buffer);
}

PythonException ExceptionFor(const absl::Status& status) {
  const std::string message(status.message());
  if (IsUnknownTask(status)) {
    // Celery's own worker answers an unregistered task so; its argument is the task's name.
    return {"celery.exceptions", "NotRegistered",
            std::string(*status.GetPayload(kUnknownTaskPayload))};
  }
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return {"builtins", "ValueError", message};
    case absl::StatusCode::kNotFound:
      return {"builtins", "LookupError", message};
    case absl::StatusCode::kDeadlineExceeded:
      return {"celery.exceptions", "TimeLimitExceeded", message};
    case absl::StatusCode::kUnimplemented:
      return {"builtins", "NotImplementedError", message};
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return {"builtins", "PermissionError", message};
    default:
      // UNAVAILABLE, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, INTERNAL...: the code says
      // whether trying again may help, so the message carries it.
      return {"builtins", "RuntimeError",
              absl::StrCat(absl::StatusCodeToString(status.code()), ": ", message)};
  }
}

std::string EncodeSuccess(const TaskIds& ids, absl::string_view result_json, absl::Time done) {
  return ResultDocument(ids, "SUCCESS", done, [&](http::JsonWriter& json) {
    json.RawValue(result_json.data(), result_json.size(), rapidjson::kObjectType);
  });
}

std::string EncodeFailure(const TaskIds& ids, const absl::Status& status, absl::Time done) {
  return ExceptionDocument(ids, "FAILURE", ExceptionFor(status), done);
}

std::string EncodeRevoked(const TaskIds& ids, absl::Time done) {
  return ExceptionDocument(ids, "REVOKED", {"celery.exceptions", "TaskRevokedError", "expired"},
                           done);
}

std::string EncodeStarted(const TaskIds& ids, absl::string_view hostname, int64_t pid) {
  return ResultDocument(ids, "STARTED", std::nullopt, [&](http::JsonWriter& json) {
    json.StartObject();
    json.Key("pid");
    json.Int64(pid);
    json.Key("hostname");
    http::WriteSanitizedString(json, hostname);
    json.EndObject();
  });
}

}  // namespace modeld::transport::celery
