#include "transport/celery/canvas.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"

namespace modeld::transport::celery {
namespace {

using ::testing::HasSubstr;

// A parsed modeld.infer task whose embed is `embed`, sent with reply_to "client-replies".
CeleryTask Task(const std::string& embed) {
  TaskHeaders headers;
  headers.task = kInferTask;
  headers.ids.id = "t1";
  headers.ids.root_id = "root";
  headers.reply_to = "client-replies";
  headers.content_type = "application/json";
  absl::StatusOr<CeleryTask> task = ParseTaskMessage(
      headers, std::string(R"([["m", {"x": [[1]]}], {}, )") + embed + "]");
  EXPECT_TRUE(task.ok()) << task.status();
  return task.value_or(CeleryTask());
}

rapidjson::Document Parse(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  return doc;
}

TEST(CanvasTest, AnImmutableStepKeepsItsOwnArgs) {
  CeleryTask task = Task(R"({"chain": [{"task": "p.s", "args": [1], "immutable": true,
                                         "options": {}}]})");
  std::vector<OutgoingTask> out = FollowUps(task, absl::OkStatus(), R"({"y":[[2]]})", {});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(Parse(out[0].body)[0].Size(), 1u);
  EXPECT_EQ(Parse(out[0].body)[0][0].GetInt(), 1);
}

TEST(CanvasTest, WithoutAQueueTheStepGoesToTheDefaultQueueAndInheritsReplyTo) {
  CeleryTask task = Task(R"({"chain": [{"task": "p.s", "options": {}}]})");
  CanvasOptions options;
  options.default_queue = "python";
  options.origin = "modeld@host";
  std::vector<OutgoingTask> out = FollowUps(task, absl::OkStatus(), "3", options);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].queue, "python");
  EXPECT_EQ(out[0].reply_to, "client-replies");
  EXPECT_EQ(out[0].correlation_id.size(), 36u);  // a fresh UUID
  rapidjson::Document headers = Parse(out[0].headers_json);
  EXPECT_STREQ(headers["root_id"].GetString(), "root");
  EXPECT_STREQ(headers["origin"].GetString(), "modeld@host");
  EXPECT_STREQ(headers["lang"].GetString(), "py");
  EXPECT_TRUE(headers["timelimit"].IsArray());
  EXPECT_TRUE(Parse(out[0].body)[2]["chain"].IsNull());
}

TEST(CanvasTest, RoutingKeyNamesTheQueueWhenNoQueueDoes) {
  CeleryTask task = Task(R"({"callbacks": [{"task": "p.s", "options": {"routing_key": "rk",
                                                                       "priority": 5}}]})");
  std::vector<OutgoingTask> out = FollowUps(task, absl::OkStatus(), "3", {});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].queue, "rk");
  EXPECT_EQ(out[0].priority, 5);
}

TEST(CanvasTest, AStepsOwnLinksTravelInItsEmbed) {
  CeleryTask task = Task(R"({"chain": [{"task": "p.s", "options": {
      "link": [{"task": "p.after", "options": {}}], "link_error": {"task": "p.err"}}}]})");
  std::vector<OutgoingTask> out = FollowUps(task, absl::OkStatus(), "3", {});
  ASSERT_EQ(out.size(), 1u);
  rapidjson::Document body = Parse(out[0].body);
  ASSERT_TRUE(body.IsArray()) << out[0].body;
  EXPECT_STREQ(body[2]["callbacks"][0]["task"].GetString(), "p.after");
  EXPECT_STREQ(body[2]["errbacks"][0]["task"].GetString(), "p.err");
}

TEST(CanvasTest, NothingFollowsAFailureWithoutErrbacks) {
  CeleryTask task = Task(R"({"chain": [{"task": "p.s", "options": {}}]})");
  EXPECT_TRUE(FollowUps(task, absl::InternalError("x"), "", {}).empty());
}

TEST(CanvasTest, NestedCanvasIsRefusedBeforeRunning) {
  EXPECT_TRUE(CheckCanvas(Task(R"({"chain": [{"task": "p.s", "options": {}}]})")).ok());
  absl::Status link = CheckCanvas(
      Task(R"({"callbacks": [{"task": "celery.chord", "subtask_type": "chord"}]})"));
  EXPECT_EQ(link.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(link.message(), HasSubstr("chord as its link"));
}

}  // namespace
}  // namespace modeld::transport::celery
