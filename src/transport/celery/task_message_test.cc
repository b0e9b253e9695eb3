#include "transport/celery/task_message.h"

#include <cstring>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"

namespace modeld::transport::celery {
namespace {

using ::testing::HasSubstr;

TaskHeaders Headers(absl::string_view task) {
  TaskHeaders headers;
  headers.task = std::string(task);
  headers.ids.id = "f7c2a1d0-0000-4000-8000-000000000001";
  headers.content_type = "application/json";
  headers.content_encoding = "utf-8";
  return headers;
}

core::ModelConfig Config(absl::string_view text, absl::string_view name) {
  absl::StatusOr<core::ModelConfig> config = core::ParseModelConfig(text, name, name);
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

core::ModelConfig Linear() {
  return Config(R"(platform: "pytorch_libtorch" max_batch_size: 8
      input [ { name: "x" data_type: TYPE_FP32 dims: [ 3 ] } ]
      output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ])",
                "linear");
}

core::ModelConfig TwoInputs() {
  return Config(R"(platform: "pytorch_libtorch" max_batch_size: 4
      input [ { name: "ids" data_type: TYPE_INT64 dims: [ -1 ] },
              { name: "text" data_type: TYPE_STRING dims: [ 1 ] } ]
      output [ { name: "y" data_type: TYPE_INT64 dims: [ -1 ] } ])",
                "pair");
}

rapidjson::Document Json(absl::string_view text) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  EXPECT_FALSE(doc.HasParseError()) << text;
  return doc;
}

absl::Time Time(absl::string_view text) {
  absl::StatusOr<absl::Time> time = ParseIsoTime(text);
  EXPECT_TRUE(time.ok()) << time.status();
  return *time;
}

// --- Headers --------------------------------------------------------------------------------

TEST(HeadersFromJsonTest, ReadsEveryHeaderTheWorkerHonours) {
  rapidjson::Document doc = Json(R"json({
      "lang": "py", "task": "modeld.infer", "id": "t1", "root_id": "r1", "parent_id": "p1",
      "group": "g1", "eta": "2024-05-01T12:00:00.250000+00:00",
      "expires": "2024-05-01T13:00:00+02:00", "retries": 3, "timelimit": [30.5, 10],
      "ignore_result": true, "argsrepr": "('linear',)", "kwargsrepr": "{}",
      "origin": "gen1@web", "shadow": null, "stamps": {}})json");
  absl::StatusOr<TaskHeaders> headers = HeadersFromJson(doc);
  ASSERT_TRUE(headers.ok()) << headers.status();
  EXPECT_EQ(headers->lang, "py");
  EXPECT_EQ(headers->task, "modeld.infer");
  EXPECT_EQ(headers->ids.id, "t1");
  EXPECT_EQ(headers->ids.root_id, "r1");
  EXPECT_EQ(headers->ids.parent_id, "p1");
  EXPECT_EQ(headers->ids.group, "g1");
  EXPECT_EQ(*headers->eta, absl::FromUnixMillis(1714564800250));
  EXPECT_EQ(*headers->expires, absl::FromUnixSeconds(1714564800 + 3600 - 7200));
  EXPECT_EQ(headers->retries, 3);
  EXPECT_EQ(*headers->soft_time_limit, absl::Seconds(10));
  EXPECT_EQ(*headers->hard_time_limit, absl::Seconds(30.5));
  EXPECT_TRUE(headers->ignore_result);
}

TEST(HeadersFromJsonTest, NullsAndAbsentHeadersAreDefaults) {
  rapidjson::Document doc = Json(R"({"task": "modeld.predict", "id": "t1", "root_id": null,
      "parent_id": null, "group": null, "eta": null, "expires": null, "retries": 0,
      "timelimit": [null, null]})");
  absl::StatusOr<TaskHeaders> headers = HeadersFromJson(doc);
  ASSERT_TRUE(headers.ok()) << headers.status();
  EXPECT_TRUE(headers->ids.root_id.empty());
  EXPECT_FALSE(headers->eta.has_value());
  EXPECT_FALSE(headers->expires.has_value());
  EXPECT_FALSE(headers->soft_time_limit.has_value());
  EXPECT_FALSE(headers->hard_time_limit.has_value());
  EXPECT_FALSE(headers->ignore_result);
  EXPECT_EQ(Deadline(*headers, absl::UnixEpoch()), absl::InfiniteFuture());
}

TEST(HeadersFromJsonTest, RefusesMistypedHeadersNamingThem) {
  const std::pair<const char*, const char*> cases[] = {
      {R"([])", "headers must be an object"},
      {R"({"id": 7})", "header 'id' must be a string"},
      {R"({"task": ["x"]})", "header 'task' must be a string"},
      {R"({"eta": 1714564800})", "header 'eta' must be an ISO 8601 date string"},
      {R"({"expires": "tomorrow"})", "header 'expires': 'tomorrow' is not an ISO 8601 date"},
      {R"({"retries": -1})", "header 'retries' must be a non-negative integer"},
      {R"({"retries": 1.5})", "header 'retries' must be a non-negative integer"},
      {R"({"timelimit": 30})", "header 'timelimit' must be [hard, soft]"},
      {R"({"timelimit": [1, 2, 3]})", "got a list of 3"},
      {R"({"timelimit": [-1, null]})", "the hard limit must be null or a number"},
      {R"({"timelimit": [null, "10"]})", "the soft limit must be null or a number"},
      {R"({"ignore_result": "yes"})", "header 'ignore_result' must be true or false"},
  };
  for (const auto& [json, message] : cases) {
    absl::StatusOr<TaskHeaders> headers = HeadersFromJson(Json(json));
    EXPECT_EQ(headers.status().code(), absl::StatusCode::kInvalidArgument) << json;
    EXPECT_THAT(headers.status().message(), HasSubstr(message)) << json;
  }
}

TEST(IsoTimeTest, ReadsPythonIsoformatAndWritesCeleryDateDone) {
  EXPECT_EQ(Time("2024-05-01T12:00:00"), absl::FromUnixSeconds(1714564800));
  EXPECT_EQ(Time("2024-05-01T12:00:00Z"), absl::FromUnixSeconds(1714564800));
  EXPECT_EQ(Time("2024-05-01T12:00:00.5-01:00"), absl::FromUnixMillis(1714568400500));
  EXPECT_FALSE(ParseIsoTime("2024-05-01").ok());
  EXPECT_FALSE(ParseIsoTime("").ok());
  EXPECT_EQ(FormatIsoTime(absl::FromUnixMicros(1714564800123456)),
            "2024-05-01T12:00:00.123456+00:00");
}

TEST(DeadlineTest, TheEarlierLimitFromReceiptAndExpiry) {
  TaskHeaders headers = Headers(kInferTask);
  const absl::Time received = absl::FromUnixSeconds(1000);
  headers.hard_time_limit = absl::Seconds(30);
  EXPECT_EQ(Deadline(headers, received), received + absl::Seconds(30));
  headers.soft_time_limit = absl::Seconds(10);
  EXPECT_EQ(Deadline(headers, received), received + absl::Seconds(10));
  headers.hard_time_limit.reset();
  EXPECT_EQ(Deadline(headers, received), received + absl::Seconds(10));

  EXPECT_FALSE(Expired(headers, received));
  headers.expires = received;
  EXPECT_FALSE(Expired(headers, received));
  EXPECT_TRUE(Expired(headers, received + absl::Milliseconds(1)));
}

// --- kombu's Redis wrapper ------------------------------------------------------------------

std::string RedisMessage(absl::string_view body, absl::string_view extra_properties = "") {
  return absl::StrCat(
      R"({"body": ")", absl::Base64Escape(body),
      R"(", "content-encoding": "utf-8", "content-type": "application/json",
          "headers": {"lang": "py", "task": "modeld.predict", "id": "t9", "root_id": "t9",
                      "parent_id": null, "group": null, "retries": 0,
                      "timelimit": [null, null]},
          "properties": {"correlation_id": "t9", "reply_to": "c2b4-reply",
                         "delivery_mode": 2,
                         "delivery_info": {"exchange": "", "routing_key": "modeld"},
                         "priority": 0, "body_encoding": "base64",
                         "delivery_tag": "0e1f")",
      extra_properties, "}}");
}

TEST(KombuRedisMessageTest, UnwrapsHeadersPropertiesAndTheBase64Body) {
  const std::string body = R"([["linear", [[1, 2, 3]]], {}, {"callbacks": null}])";
  absl::StatusOr<KombuRedisMessage> message = ParseKombuRedisMessage(RedisMessage(body));
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ(message->body, body);
  EXPECT_EQ(message->delivery_tag, "0e1f");
  EXPECT_EQ(message->routing_key, "modeld");
  EXPECT_EQ(message->headers.task, "modeld.predict");
  EXPECT_EQ(message->headers.ids.id, "t9");
  EXPECT_EQ(message->headers.correlation_id, "t9");
  EXPECT_EQ(message->headers.reply_to, "c2b4-reply");
  EXPECT_EQ(message->headers.content_type, "application/json");
  EXPECT_EQ(message->headers.content_encoding, "utf-8");

  absl::StatusOr<CeleryTask> task = ParseTaskMessage(message->headers, message->body);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->kind, TaskKind::kPredict);
  EXPECT_EQ(task->model, "linear");
}

TEST(KombuRedisMessageTest, RefusesBrokenWrappers) {
  const std::pair<std::string, const char*> cases[] = {
      {"not json", "malformed JSON"},
      {"[1]", "must be a JSON object"},
      {R"({"properties": {}, "body": ""})", "no \"headers\""},
      {R"({"headers": {}, "body": ""})", "no \"properties\" object"},
      {R"({"headers": {}, "properties": {}, "body": 1})", "\"body\" must be a string"},
      {R"({"headers": {}, "properties": {"body_encoding": "base64"}, "body": "@@@"})",
       "not valid base64"},
      {R"({"headers": {}, "properties": {"body_encoding": "zlib"}, "body": ""})",
       "body_encoding 'zlib'"},
      {R"({"headers": {"id": 1}, "properties": {}, "body": ""})", "header 'id'"},
      {R"({"headers": {}, "properties": {"reply_to": 5}, "body": ""})", "property 'reply_to'"},
  };
  for (const auto& [text, message] : cases) {
    absl::StatusOr<KombuRedisMessage> parsed = ParseKombuRedisMessage(text);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(parsed.status().message(), HasSubstr(message)) << text;
  }
}

TEST(KombuRedisMessageTest, ABodyWithoutEncodingIsTakenAsItIs) {
  absl::StatusOr<KombuRedisMessage> message = ParseKombuRedisMessage(
      R"({"headers": {}, "properties": {}, "body": "[[], {}, null]"})");
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ(message->body, "[[], {}, null]");
}

// --- Task bodies ----------------------------------------------------------------------------

TEST(ParseTaskMessageTest, InferWithPositionalAndKeywordArguments) {
  absl::StatusOr<CeleryTask> task = ParseTaskMessage(
      Headers(kInferTask),
      R"([["linear", {"x": [[1, 2, 3]]}], {"version": 2, "outputs": ["y"]},
          {"callbacks": null, "errbacks": null, "chain": null, "chord": null}])");
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->kind, TaskKind::kInfer);
  EXPECT_EQ(task->model, "linear");
  EXPECT_EQ(task->version, 2);
  EXPECT_EQ(task->outputs, std::vector<std::string>{"y"});
  EXPECT_TRUE(task->arguments.at("inputs")->IsObject());
  EXPECT_EQ(task->args->Size(), 2u);
  EXPECT_EQ(task->kwargs->MemberCount(), 2u);
  EXPECT_TRUE(task->chain.empty());
  EXPECT_EQ(task->chord, nullptr);
  EXPECT_TRUE(CheckSupported(*task).ok());
}

TEST(ParseTaskMessageTest, AllKeywordsAndVersionAsAString) {
  absl::StatusOr<CeleryTask> task = ParseTaskMessage(
      Headers(kInferTask),
      R"([[], {"model": "linear", "inputs": {}, "version": "3", "outputs": null}, null])");
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->version, 3);
  EXPECT_TRUE(task->outputs.empty());

  task = ParseTaskMessage(Headers(kInferTask),
                          R"([["linear", {}, null], {}, {}])");
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_FALSE(task->version.has_value());
}

TEST(ParseTaskMessageTest, PredictAndTrain) {
  absl::StatusOr<CeleryTask> predict =
      ParseTaskMessage(Headers(kPredictTask), R"([["linear", [[1, 2, 3]], 1], {}, {}])");
  ASSERT_TRUE(predict.ok()) << predict.status();
  EXPECT_EQ(predict->kind, TaskKind::kPredict);
  EXPECT_EQ(predict->version, 1);
  EXPECT_TRUE(predict->arguments.at("data")->IsArray());

  absl::StatusOr<CeleryTask> train = ParseTaskMessage(
      Headers(kTrainTask), R"([["linear", {"x": [[1, 2, 3]]}], {"targets": {"y": [[1]]}}, {}])");
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->kind, TaskKind::kTrain);
  EXPECT_TRUE(train->arguments.at("targets")->IsObject());
}

TEST(ParseTaskMessageTest, ReadsTheEmbeddedCanvas) {
  absl::StatusOr<CeleryTask> task = ParseTaskMessage(
      Headers(kPredictTask),
      R"([["linear", [[1, 2, 3]]], {}, {
          "callbacks": [{"task": "site.log", "args": [], "kwargs": {}, "options": {}}],
          "errbacks": [{"task": "site.alert"}],
          "chain": [{"task": "site.last", "args": [1], "kwargs": {}, "options": {},
                     "subtask_type": null, "immutable": false},
                    {"task": "site.postprocess", "args": [], "kwargs": {"k": 1}}],
          "chord": null}])");
  ASSERT_TRUE(task.ok()) << task.status();
  ASSERT_EQ(task->callbacks.size(), 1u);
  EXPECT_STREQ((*task->callbacks[0])["task"].GetString(), "site.log");
  ASSERT_EQ(task->errbacks.size(), 1u);
  ASSERT_EQ(task->chain.size(), 2u);
  EXPECT_STREQ((*task->chain.back())["task"].GetString(), "site.postprocess");

  // The task stays valid when copied: the pointers live in the shared body.
  CeleryTask copy = *task;
  task = absl::UnknownError("dropped");
  EXPECT_STREQ((*copy.chain.front())["task"].GetString(), "site.last");
  EXPECT_EQ(copy.model, "linear");
}

TEST(ParseTaskMessageTest, AChordIsParsedButNotSupported) {
  absl::StatusOr<CeleryTask> task = ParseTaskMessage(
      Headers(kPredictTask),
      R"([["linear", [[1, 2, 3]]], {}, {"chord": {"task": "site.join", "args": []}}])");
  ASSERT_TRUE(task.ok()) << task.status();
  ASSERT_NE(task->chord, nullptr);
  absl::Status supported = CheckSupported(*task);
  EXPECT_EQ(supported.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(supported.message(), HasSubstr("chord"));
  EXPECT_FALSE(IsUnknownTask(supported));
}

TEST(ParseTaskMessageTest, RefusesOtherContentTypesAndEncodings) {
  TaskHeaders headers = Headers(kInferTask);
  headers.content_type = "application/x-python-serialize";
  absl::StatusOr<CeleryTask> task = ParseTaskMessage(headers, "\x80\x04");
  EXPECT_EQ(task.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(task.status().message(),
              HasSubstr("content type 'application/x-python-serialize' is not accepted"));
  EXPECT_THAT(task.status().message(), HasSubstr("task_serializer"));

  headers.content_type = "application/json; charset=utf-8";
  headers.content_encoding = "binary";
  task = ParseTaskMessage(headers, "[[], {}, {}]");
  EXPECT_THAT(task.status().message(), HasSubstr("content encoding 'binary'"));

  headers.content_encoding = "";
  EXPECT_EQ(ParseTaskMessage(headers, R"([["m", {}], {}, {}])").status(), absl::OkStatus());

  headers.compression = "application/x-gzip";
  task = ParseTaskMessage(headers, "\x1f\x8b");
  EXPECT_THAT(task.status().message(), HasSubstr("compressed (application/x-gzip)"));
}

TEST(ParseTaskMessageTest, AnUnknownTaskHasItsOwnStatus) {
  absl::StatusOr<CeleryTask> task =
      ParseTaskMessage(Headers("proj.tasks.add"), "this body is never read");
  EXPECT_EQ(task.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_TRUE(IsUnknownTask(task.status()));
  EXPECT_THAT(task.status().message(), HasSubstr("'proj.tasks.add'"));
  EXPECT_THAT(task.status().message(), HasSubstr("modeld.infer"));
  EXPECT_FALSE(IsUnknownTask(absl::UnimplementedError("other")));
}

TEST(ParseTaskMessageTest, RefusesMalformedMessagesNamingTheProblem) {
  TaskHeaders no_id = Headers(kInferTask);
  no_id.ids.id.clear();
  EXPECT_THAT(ParseTaskMessage(no_id, "[[], {}, {}]").status().message(), HasSubstr("'id'"));
  TaskHeaders no_task = Headers("");
  EXPECT_THAT(ParseTaskMessage(no_task, "[[], {}, {}]").status().message(),
              HasSubstr("'task'"));

  const std::pair<const char*, const char*> cases[] = {
      {"", "malformed JSON"},
      {"{}", "a list of 3 items [args, kwargs, embed]"},
      {"[[], {}]", "got a list of 2"},
      {R"({"args": []})", "got an object"},
      {R"([{}, {}, {}])", "(args) must be a list, got an object"},
      {R"([[], [], {}])", "(kwargs) must be an object, got an array"},
      {R"([[], {}, 1])", "(embed) must be an object or null"},
      {R"([["m", {}], {}, {"chain": {}}])", "embed \"chain\" must be a list of signatures"},
      {R"([["m", {}], {}, {"callbacks": [1]}])", "embed \"callbacks\" item 0 must be a signature"},
      {R"([["m", {}], {}, {"errbacks": [{"args": []}]}])", "without a \"task\" name"},
      {R"([["m", {}], {}, {"chain": [{"task": "t", "args": {}}]}])", "\"args\" must be a list"},
      {R"([["m", {}], {}, {"chord": {"task": "t", "kwargs": []}}])",
       "\"kwargs\" must be an object"},
      {R"([["m", {}, null, null, 5], {}, {}])",
       "modeld.infer() takes at most 4 positional arguments (5 given)"},
      {R"([["m"], {}, {}])", "modeld.infer() missing required argument 'inputs'"},
      {R"([[], {"inputs": {}}, {}])", "missing required argument 'model'"},
      {R"([["m", {}], {"model": "n"}, {}])",
       "modeld.infer() got multiple values for argument 'model'"},
      {R"([["m", {}], {"batch": 1}, {}])",
       "modeld.infer() got an unexpected keyword argument 'batch'"},
      {R"([[7, {}], {}, {}])", "'model' must be a model's name (a non-empty string), got a number"},
      {R"([["", {}], {}, {}])", "got an empty string"},
      {R"([["m", {}, 0], {}, {}])", "'version' must be None or a version number >= 1"},
      {R"([["m", {}, "1a"], {}, {}])", "got '1a'"},
      {R"([["m", {}, "-1"], {}, {}])", "got '-1'"},
      {R"([["m", {}, 1.5], {}, {}])", "got a number"},
      {R"([["m", {}, null, "y"], {}, {}])", "'outputs' must be None or a list of output names"},
      {R"([["m", {}, null, [1]], {}, {}])", "'outputs' must list output names"},
      {R"([["m", [[1]]], {}, {}])", "'inputs' must be a dict of tensor name -> nested list"},
  };
  for (const auto& [body, message] : cases) {
    absl::StatusOr<CeleryTask> task = ParseTaskMessage(Headers(kInferTask), body);
    EXPECT_EQ(task.status().code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_THAT(task.status().message(), HasSubstr(message)) << body;
  }
  absl::StatusOr<CeleryTask> train =
      ParseTaskMessage(Headers(kTrainTask), R"([["m", {}], {"targets": 3}, {}])");
  EXPECT_THAT(train.status().message(), HasSubstr("modeld.train(): 'targets' must be a dict"));
  absl::StatusOr<CeleryTask> predict =
      ParseTaskMessage(Headers(kPredictTask), R"([["m"], {"outputs": ["y"]}, {}])");
  EXPECT_THAT(predict.status().message(),
              HasSubstr("modeld.predict() got an unexpected keyword argument 'outputs'"));
}

TEST(ParseTaskMessageTest, BoundsNesting) {
  std::string deep(200, '[');
  deep += std::string(200, ']');
  absl::StatusOr<CeleryTask> task =
      ParseTaskMessage(Headers(kPredictTask), absl::StrCat("[[\"m\", ", deep, "], {}, {}]"));
  EXPECT_EQ(task.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(task.status().message(), HasSubstr("nested deeper"));
}

// --- To requests ----------------------------------------------------------------------------

TEST(ToInferRequestTest, InferTakesDatatypesFromTheConfigAndShapesFromTheNesting) {
  TaskHeaders headers = Headers(kInferTask);
  headers.hard_time_limit = absl::Seconds(5);
  absl::StatusOr<CeleryTask> task = ParseTaskMessage(
      headers, R"([["pair", {"ids": [[1, 2], [3, 4]], "text": [["héllo"], ["b"]]}], {"outputs": ["y"]}, {}])");
  ASSERT_TRUE(task.ok()) << task.status();
  const absl::Time received = absl::FromUnixSeconds(100);
  absl::StatusOr<core::InferRequest> request = ToInferRequest(*task, TwoInputs(), received);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->model_name, "pair");
  EXPECT_FALSE(request->model_version.has_value());
  EXPECT_EQ(request->id, headers.ids.id);
  EXPECT_EQ(request->deadline, received + absl::Seconds(5));
  EXPECT_EQ(request->requested_outputs, std::vector<std::string>{"y"});
  const core::Tensor& ids = request->inputs.at("ids");
  EXPECT_EQ(ids.type(), core::DataType::kInt64);
  EXPECT_EQ(ids.shape(), (core::Shape{2, 2}));
  int64_t third = 0;
  std::memcpy(&third, ids.bytes().data() + 2 * sizeof(int64_t), sizeof(int64_t));
  EXPECT_EQ(third, 3);
  const core::Tensor& text = request->inputs.at("text");
  EXPECT_EQ(text.type(), core::DataType::kBytes);
  EXPECT_EQ(text.shape(), (core::Shape{2, 1}));
  absl::StatusOr<std::vector<absl::string_view>> strings = core::SplitBytesElements(text.bytes());
  ASSERT_TRUE(strings.ok());
  EXPECT_EQ(*strings, (std::vector<absl::string_view>{"héllo", "b"}));
}

TEST(ToInferRequestTest, PredictFeedsTheOnlyInput) {
  absl::StatusOr<CeleryTask> task =
      ParseTaskMessage(Headers(kPredictTask), R"([["linear", [[1, 2.5, 3]]], {"version": 4}, {}])");
  ASSERT_TRUE(task.ok()) << task.status();
  absl::StatusOr<core::InferRequest> request = ToInferRequest(*task, Linear(), absl::Now());
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->model_version, 4);
  EXPECT_EQ(request->deadline, absl::InfiniteFuture());
  const core::Tensor& x = request->inputs.at("x");
  EXPECT_EQ(x.type(), core::DataType::kFp32);
  EXPECT_EQ(x.shape(), (core::Shape{1, 3}));
  float second = 0;
  std::memcpy(&second, x.bytes().data() + sizeof(float), sizeof(float));
  EXPECT_EQ(second, 2.5f);

  absl::StatusOr<core::InferRequest> two = ToInferRequest(*task, TwoInputs(), absl::Now());
  EXPECT_EQ(two.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(two.status().message(), HasSubstr("one input and one output; model 'pair' has 2"));
}

TEST(ToInferRequestTest, RefusesWhatTheModelCannotTake) {
  const std::pair<const char*, const char*> cases[] = {
      {R"([["pair", {"ids": [[1]], "text": [["a"]], "extra": [1]}], {}, {}])",
       "unknown input 'extra'; model 'pair' has inputs 'ids', 'text'"},
      {R"([["pair", {"ids": [[1]]}], {}, {}])", "missing input 'text'"},
      {R"([["pair", {"ids": [[1, 2], [3]], "text": [["a"]]}], {}, {}])", "input 'ids'"},
      {R"([["pair", {"ids": [[1.5]], "text": [["a"]]}], {}, {}])", "input 'ids'"},
      {R"([["pair", {"ids": [[1]], "text": [[7]]}], {}, {}])", "input 'text'"},
  };
  for (const auto& [body, message] : cases) {
    absl::StatusOr<CeleryTask> task = ParseTaskMessage(Headers(kInferTask), body);
    ASSERT_TRUE(task.ok()) << task.status();
    absl::StatusOr<core::InferRequest> request = ToInferRequest(*task, TwoInputs(), absl::Now());
    EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_THAT(request.status().message(), HasSubstr(message)) << body;
  }
  absl::StatusOr<CeleryTask> train =
      ParseTaskMessage(Headers(kTrainTask), R"([["linear", {}, {}], {}, {}])");
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_THAT(ToInferRequest(*train, Linear(), absl::Now()).status().message(),
              HasSubstr("not an inference task"));
}

// --- Results --------------------------------------------------------------------------------

core::InferResponse Response() {
  core::InferResponse response;
  std::string y;
  core::AppendElement<float>(0.5f, y);
  core::AppendElement<float>(-2.0f, y);
  response.outputs.push_back({"y", core::Tensor::Owning(core::DataType::kFp32, {2, 1}, y)});
  std::string s;
  core::AppendBytesElement("ok", s);
  response.outputs.push_back({"label", core::Tensor::Owning(core::DataType::kBytes, {1}, s)});
  return response;
}

TEST(EncodeResultTest, InferAnswersOutputsByNameAndPredictTheNestedList) {
  absl::StatusOr<std::string> infer = EncodeInferResult(TaskKind::kInfer, Response());
  ASSERT_TRUE(infer.ok()) << infer.status();
  EXPECT_EQ(*infer, R"({"y":[[0.5],[-2]],"label":["ok"]})");

  core::InferResponse one = Response();
  one.outputs.pop_back();
  absl::StatusOr<std::string> predict = EncodeInferResult(TaskKind::kPredict, one);
  ASSERT_TRUE(predict.ok()) << predict.status();
  EXPECT_EQ(*predict, "[[0.5],[-2]]");
  EXPECT_EQ(EncodeInferResult(TaskKind::kPredict, Response()).status().code(),
            absl::StatusCode::kInvalidArgument);

  core::TrainResponse train;
  train.loss = 0.25;
  train.step = 7;
  EXPECT_EQ(EncodeTrainResult(train), R"({"loss":0.25,"step":7,"checkpoint_step":0})");
  train.loss = 4;  // whole, and still a float in Python
  EXPECT_EQ(EncodeTrainResult(train), R"({"loss":4.0,"step":7,"checkpoint_step":0})");
}

TEST(EncodeResultTest, SuccessDocumentRoundTrips) {
  TaskIds ids{"t1", "r1", "p1", "g1"};
  const std::string document =
      EncodeSuccess(ids, R"({"y":[[0.5]]})", absl::FromUnixMicros(1714564800000001));
  rapidjson::Document doc = Json(document);
  ASSERT_TRUE(doc.IsObject());
  EXPECT_STREQ(doc["status"].GetString(), "SUCCESS");
  EXPECT_EQ(doc["result"]["y"][0][0].GetDouble(), 0.5);
  EXPECT_TRUE(doc["traceback"].IsNull());
  EXPECT_TRUE(doc["children"].IsArray());
  EXPECT_EQ(doc["children"].Size(), 0u);
  EXPECT_STREQ(doc["date_done"].GetString(), "2024-05-01T12:00:00.000001+00:00");
  EXPECT_STREQ(doc["task_id"].GetString(), "t1");

  // A scalar or list result is embedded as it is.
  rapidjson::Document list = Json(EncodeSuccess(ids, "[1,2]", absl::UnixEpoch()));
  EXPECT_EQ(list["result"][1].GetInt(), 2);
}

TEST(EncodeResultTest, FailureCarriesAPythonExceptionWithModeldsMessage) {
  const std::string document = EncodeFailure(
      {"t2", "", "", ""}, absl::InvalidArgumentError("input 'x': expected shape [-1, 3]"),
      absl::UnixEpoch());
  rapidjson::Document doc = Json(document);
  EXPECT_STREQ(doc["status"].GetString(), "FAILURE");
  EXPECT_STREQ(doc["task_id"].GetString(), "t2");
  EXPECT_STREQ(doc["result"]["exc_type"].GetString(), "ValueError");
  EXPECT_STREQ(doc["result"]["exc_module"].GetString(), "builtins");
  ASSERT_TRUE(doc["result"]["exc_message"].IsArray());
  EXPECT_STREQ(doc["result"]["exc_message"][0].GetString(),
               "input 'x': expected shape [-1, 3]");
  EXPECT_STREQ(doc["date_done"].GetString(), "1970-01-01T00:00:00.000000+00:00");
}

TEST(EncodeResultTest, StatusCodesMapToExceptionsAPythonCallerCanCatch) {
  struct Case {
    absl::Status status;
    const char* module;
    const char* type;
    const char* message;
  };
  const Case cases[] = {
      {absl::InvalidArgumentError("bad"), "builtins", "ValueError", "bad"},
      {absl::OutOfRangeError("far"), "builtins", "ValueError", "far"},
      {absl::NotFoundError("no model 'm'"), "builtins", "LookupError", "no model 'm'"},
      {absl::DeadlineExceededError("late"), "celery.exceptions", "TimeLimitExceeded", "late"},
      {absl::UnimplementedError("chord"), "builtins", "NotImplementedError", "chord"},
      {absl::PermissionDeniedError("no"), "builtins", "PermissionError", "no"},
      {absl::UnavailableError("loading"), "builtins", "RuntimeError", "UNAVAILABLE: loading"},
      {absl::ResourceExhaustedError("full"), "builtins", "RuntimeError",
       "RESOURCE_EXHAUSTED: full"},
      {absl::FailedPreconditionError("frozen"), "builtins", "RuntimeError",
       "FAILED_PRECONDITION: frozen"},
      {absl::InternalError("boom"), "builtins", "RuntimeError", "INTERNAL: boom"},
      {UnknownTaskError("proj.add"), "celery.exceptions", "NotRegistered", "proj.add"},
  };
  for (const Case& c : cases) {
    const PythonException exception = ExceptionFor(c.status);
    EXPECT_EQ(exception.module, c.module) << c.status;
    EXPECT_EQ(exception.type, c.type) << c.status;
    EXPECT_EQ(exception.message, c.message) << c.status;
  }
}

TEST(EncodeResultTest, RevokedAndStarted) {
  rapidjson::Document revoked = Json(EncodeRevoked({"t3", "", "", ""}, absl::UnixEpoch()));
  EXPECT_STREQ(revoked["status"].GetString(), "REVOKED");
  EXPECT_STREQ(revoked["result"]["exc_type"].GetString(), "TaskRevokedError");
  EXPECT_STREQ(revoked["result"]["exc_module"].GetString(), "celery.exceptions");
  EXPECT_STREQ(revoked["result"]["exc_message"][0].GetString(), "expired");

  rapidjson::Document started = Json(EncodeStarted({"t4", "", "", ""}, "modeld@host", 42));
  EXPECT_STREQ(started["status"].GetString(), "STARTED");
  EXPECT_EQ(started["result"]["pid"].GetInt(), 42);
  EXPECT_STREQ(started["result"]["hostname"].GetString(), "modeld@host");
  EXPECT_TRUE(started["date_done"].IsNull());
}

TEST(EncodeResultTest, MessagesThatAreNotUtf8StayValidJson) {
  rapidjson::Document doc = Json(EncodeFailure({"t\xff", "", "", ""},
                                               absl::InvalidArgumentError("bad \xc3"),
                                               absl::UnixEpoch()));
  ASSERT_TRUE(doc.IsObject());
  EXPECT_TRUE(doc["result"]["exc_message"][0].IsString());
}

}  // namespace
}  // namespace modeld::transport::celery
