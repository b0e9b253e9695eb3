// Celery's task message protocol, version 2 (docs/design/celery.md) <-> what modeld runs:
// parsing a task message (its headers and its JSON body [args, kwargs, embed]) into a
// CeleryTask, turning modeld.infer / modeld.predict into a core::InferRequest, and encoding
// the result documents that Celery's result backends store.
//
// Pure codec: no broker, no backend, no clock of its own (callers pass the times).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/infer_request.h"
#include "core/model_config.h"
#include "core/train_request.h"
#include "rapidjson/document.h"

namespace modeld::transport::celery {

// The tasks modeld serves, by their Celery names.
inline constexpr char kInferTask[] = "modeld.infer";
inline constexpr char kPredictTask[] = "modeld.predict";
inline constexpr char kTrainTask[] = "modeld.train";

enum class TaskKind { kInfer, kPredict, kTrain };

// The ids a result document and the next message of a chain carry. Empty when absent.
struct TaskIds {
  std::string id;
  std::string root_id;
  std::string parent_id;
  std::string group;
};

// Everything of a task message but its body: the protocol's headers and the broker
// message's properties. The AMQP transport fills it from the message's header table and
// properties; the Redis transport from kombu's JSON wrapper (ParseKombuRedisMessage).
struct TaskHeaders {
  std::string task;  // header "task"
  TaskIds ids;       // headers "id", "root_id", "parent_id", "group"
  std::string lang;  // "py" from Python clients; informative only
  std::string compression;  // header "compression" (gzip, bzip2...): refused; "" when none
  std::optional<absl::Time> eta;      // not to run before
  std::optional<absl::Time> expires;  // not to run after: stored as REVOKED instead
  std::optional<absl::Duration> soft_time_limit;  // header "timelimit" [hard, soft], seconds
  std::optional<absl::Duration> hard_time_limit;
  int64_t retries = 0;
  bool ignore_result = false;
  // Properties.
  std::string correlation_id;  // the task id again
  std::string reply_to;        // the rpc:// backend's reply queue; empty when none
  std::string content_type;
  std::string content_encoding;
};

// Reads the protocol's headers from a JSON object (kombu's Redis wrapper carries them so).
// Unknown headers and the informative ones (argsrepr, kwargsrepr, origin, shadow, meth,
// stamps...) are ignored. INVALID_ARGUMENT naming the header for: a header of the wrong JSON
// type (ids and task must be strings or null; eta/expires ISO 8601 strings or null; retries a
// non-negative integer; timelimit a list [hard, soft] of numbers-or-nulls; ignore_result a boolean), a
// date that does not parse, a negative time limit. The properties are left empty.
absl::StatusOr<TaskHeaders> HeadersFromJson(const rapidjson::Value& headers);

// An ISO 8601 date as Python's datetime.isoformat() writes it: "2024-05-01T12:00:00",
// optional fractional seconds, optional "+hh:mm"/"-hh:mm"/"Z" offset (none: UTC).
absl::StatusOr<absl::Time> ParseIsoTime(absl::string_view text);
// "2024-05-01T12:00:00.123456+00:00": how Celery writes date_done.
std::string FormatIsoTime(absl::Time time);

// One message as kombu's Redis transport pushes it on the queue's list: a JSON object with
// "body" (base64 when properties.body_encoding is "base64"), "content-type",
// "content-encoding", "headers" and "properties" (correlation_id, reply_to, delivery_tag,
// delivery_info, priority, body_encoding).
struct KombuRedisMessage {
  TaskHeaders headers;  // with the properties filled in
  std::string body;     // decoded
  std::string delivery_tag;
  std::string routing_key;  // properties.delivery_info.routing_key; empty when absent
  int64_t priority = 0;
};

// INVALID_ARGUMENT naming the problem: not JSON, not an object, a missing or mistyped field,
// a body_encoding other than "base64" or absent, base64 that does not decode, bad headers
// (HeadersFromJson). `max_json_depth` bounds nesting (the body is parsed later, bounded again).
absl::StatusOr<KombuRedisMessage> ParseKombuRedisMessage(absl::string_view text,
                                                         int max_json_depth = 64);

// A task message decoded and bound to its task's parameters.
struct CeleryTask {
  TaskHeaders headers;
  TaskKind kind = TaskKind::kInfer;
  // The parsed body [args, kwargs, embed]; every pointer below points into it.
  std::shared_ptr<const rapidjson::Document> body;
  const rapidjson::Value* args = nullptr;    // a list
  const rapidjson::Value* kwargs = nullptr;  // an object
  // The task's arguments by parameter name, positional and keyword ones bound as Python
  // binds them. Parameters not given are absent; None is given as JSON null.
  absl::flat_hash_map<std::string, const rapidjson::Value*> arguments;
  // Bound and checked here: the model's name, its version (None: the newest), the outputs
  // asked for (modeld.infer; empty: all).
  std::string model;
  std::optional<int64_t> version;
  std::vector<std::string> outputs;
  // embed: signatures (JSON objects with a string "task"). `chain` is in message order:
  // the next task to publish is chain.back(). `chord` is null when the task is in no chord.
  std::vector<const rapidjson::Value*> callbacks;
  std::vector<const rapidjson::Value*> errbacks;
  std::vector<const rapidjson::Value*> chain;
  const rapidjson::Value* chord = nullptr;
};

// Parses the body of a task message with `headers`. Checks, in order:
//   content type "application/json" (charset parameter allowed) and content encoding utf-8
//   or empty, and no compression: INVALID_ARGUMENT naming what was sent and what modeld
//   reads;
//   an "id" and a "task" header: INVALID_ARGUMENT;
//   the task name: an unknown one is UnknownTaskError(name) (see IsUnknownTask);
//   the body: JSON (at most `max_json_depth` levels), a list of 3: a list of args, an
//   object of kwargs and an object (or null) of embed whose callbacks/errbacks/chain are
//   lists of signatures and whose chord is a signature or null;
//   the arguments bound as Python would bind them ("modeld.infer() got an unexpected keyword
//   argument 'x'", "... missing required argument 'inputs'", "... got multiple values for
//   argument 'model'", "... takes at most 4 arguments (5 given)"), then typed: model a
//   non-empty string, version null, an integer >= 1 or a string of digits, outputs null or
//   a list of strings, inputs/targets objects.
// Every refusal but the unknown task is INVALID_ARGUMENT.
absl::StatusOr<CeleryTask> ParseTaskMessage(const TaskHeaders& headers, absl::string_view body,
                                            int max_json_depth = 64);

// The status for a task name modeld does not serve (UNIMPLEMENTED, with a payload that
// IsUnknownTask recognises); EncodeFailure answers it as Celery's NotRegistered.
absl::Status UnknownTaskError(absl::string_view task_name);
bool IsUnknownTask(const absl::Status& status);

// UNIMPLEMENTED for what the message asks that modeld does not do yet: a chord. Called by the
// worker before it runs a parsed task, so the caller gets a FAILURE that says so.
absl::Status CheckSupported(const CeleryTask& task);

// The task's deadline: `received` plus the earlier of its soft and hard time limits
// (InfiniteFuture without one).
absl::Time Deadline(const TaskHeaders& headers, absl::Time received);
// Whether the task expired before `now` (it is then stored as REVOKED and never run).
bool Expired(const TaskHeaders& headers, absl::Time now);

// modeld.infer / modeld.predict -> the request for `config`'s model: each input's nested
// list (predict: `data`, for the model's only input) read with the input's datatype, its
// nesting giving the shape (checked later against the config by the service); BYTES as
// strings or {"b64": ...}; the task id as the request id, the outputs asked for, and
// Deadline(task.headers, received). INVALID_ARGUMENT naming the input for: a task of another
// kind, an input the model does not have, a missing input, a ragged list, a value of the
// wrong type or range; predict on a model without exactly one input and one output.
absl::StatusOr<core::InferRequest> ToInferRequest(const CeleryTask& task,
                                                  const core::ModelConfig& config,
                                                  absl::Time received);

// modeld.train -> the request for `config`'s model: inputs as ToInferRequest reads them; each
// target with the datatype of the output of the same name (the loss compares them), else the
// one its values have (booleans BOOL, strings BYTES, integers INT64, other numbers FP32).
// INVALID_ARGUMENT naming the input or target, as ToInferRequest; no targets at all.
absl::StatusOr<core::TrainRequest> ToTrainRequest(const CeleryTask& task,
                                                  const core::ModelConfig& config);

// The task's result as JSON: modeld.infer {output name: nested list}; modeld.predict the one
// output's nested list. BYTES outputs as strings, or {"b64": ...} when not UTF-8; NaN and the
// infinities as NaN, Infinity, -Infinity (Python's json reads them).
// INVALID_ARGUMENT when an output's bytes do not match its shape.
absl::StatusOr<std::string> EncodeInferResult(TaskKind kind, const core::InferResponse& response);
// modeld.train's result: {"loss": ..., "step": ..., "checkpoint_step": ...}.
std::string EncodeTrainResult(const core::TrainResponse& response);

// The Python exception a FAILURE carries for a status (docs/design/celery.md, "Failures").
struct PythonException {
  std::string module;  // exc_module
  std::string type;    // exc_type
  std::string message;  // the one item of exc_message
};
PythonException ExceptionFor(const absl::Status& status);

// The result documents: {"status", "result", "traceback": null, "children": [],
// "date_done", "task_id"}.
// SUCCESS: `result_json` is the JSON text of the result (EncodeInferResult's).
std::string EncodeSuccess(const TaskIds& ids, absl::string_view result_json, absl::Time done);
// FAILURE: the result is {"exc_type", "exc_message": [message], "exc_module"} of
// ExceptionFor(status). `status` must not be OK.
std::string EncodeFailure(const TaskIds& ids, const absl::Status& status, absl::Time done);
// REVOKED (an expired task): celery.exceptions.TaskRevokedError("expired").
std::string EncodeRevoked(const TaskIds& ids, absl::Time done);
// STARTED (task_track_started): the result is {"pid": pid, "hostname": hostname}.
std::string EncodeStarted(const TaskIds& ids, absl::string_view hostname, int64_t pid);

}  // namespace modeld::transport::celery
