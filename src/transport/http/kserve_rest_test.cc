#include "transport/http/kserve_rest.h"

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "service/testing/fake_backend_service.h"
#include "transport/http/json_util.h"

namespace modeld::transport::http {
namespace {

using ::testing::HasSubstr;

std::string FloatBytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

class KServeRestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    serving_.AddModel("echo", R"(backend: "fake" max_batch_size: 8 version_policy { all {} }
        input { name: "x" data_type: TYPE_FP32 dims: [ 3 ] }
        output { name: "y" data_type: TYPE_FP32 dims: [ 3 ] })",
                      {1, 2});
    serving_.AddModel("failing", R"(backend: "fake"
        parameters { key: "behavior" value { string_value: "fail" } }
        input { name: "x" data_type: TYPE_FP32 dims: [ 3 ] }
        output { name: "y" data_type: TYPE_FP32 dims: [ 3 ] })");
    serving_.AddModel("broken", R"(backend: "fake"
        parameters { key: "load_error" value { string_value: "boom" } }
        input { name: "x" data_type: TYPE_FP32 dims: [ 3 ] }
        output { name: "y" data_type: TYPE_FP32 dims: [ 3 ] })");
    ASSERT_TRUE(serving_.Start(Mode()).ok());
    rest_ = std::make_unique<KServeRest>(serving_.service());
  }

  // Inference answers from the models' worker threads: join them before the service goes.
  void TearDown() override { serving_.Drain(); }

  virtual service::ControlMode Mode() const { return service::ControlMode::kNone; }

  // Runs `call` with a Reply and waits (bounded) for the response it delivers.
  static Response Await(const std::function<void(Reply)>& call) {
    absl::Notification done;
    Response response;
    response.status = -1;
    call([&](Response r) {
      response = std::move(r);
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    return response;
  }

  static std::shared_ptr<const Request> Post(
      std::string body, std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto request = std::make_shared<Request>();
    request->method = "POST";
    request->body = std::move(body);
    request->headers = std::move(headers);
    return request;
  }

  Response Infer(const std::string& model, const std::string& version, std::string body,
                 std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto request = Post(std::move(body), std::move(headers));
    return Await([&](Reply reply) { rest_->Infer(request, model, version, std::move(reply)); });
  }

  Response Index(std::string body) {
    return Await([&](Reply reply) { rest_->RepositoryIndex(Post(body), std::move(reply)); });
  }

  Response Load(const std::string& model, bool load, std::string body = "") {
    return Await(
        [&](Reply reply) { rest_->RepositoryLoad(Post(body), model, load, std::move(reply)); });
  }

  static rapidjson::Document Json(const Response& response) {
    rapidjson::Document doc;
    EXPECT_TRUE(ParseJson(response.body, doc).ok()) << response.body;
    return doc;
  }

  // `response` has `status` and the body {"error": "...<fragment>..."}.
  static void ExpectError(const Response& response, int status, const std::string& fragment) {
    EXPECT_EQ(response.status, status) << response.body;
    EXPECT_EQ(response.content_type, "application/json");
    rapidjson::Document doc = Json(response);
    ASSERT_TRUE(doc.IsObject() && doc.HasMember("error") && doc["error"].IsString())
        << response.body;
    EXPECT_THAT(doc["error"].GetString(), HasSubstr(fragment));
  }

  common::RealClock clock_;
  testing::FakeBackendService serving_{clock_};
  std::unique_ptr<KServeRest> rest_;
};

constexpr char kEchoBody[] =
    R"({"id": "r1", "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32",)"
    R"( "data": [0.5, -1.25, 3, 4, 1e-45, -3.4028235e38]}]})";

TEST_F(KServeRestTest, HealthAnswersByStatusCode) {
  Response live = Await([&](Reply reply) { rest_->ServerLive(std::move(reply)); });
  EXPECT_EQ(live.status, 200);
  EXPECT_EQ(live.body, R"({"live":true})");
  Response ready = Await([&](Reply reply) { rest_->ServerReady(std::move(reply)); });
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, R"({"ready":true})");

  auto model_ready = [&](const char* model, const char* version) {
    return Await([&](Reply reply) { rest_->ModelReady(model, version, std::move(reply)); });
  };
  Response echo = model_ready("echo", "");
  EXPECT_EQ(echo.status, 200);
  EXPECT_EQ(echo.body, R"({"name":"echo","ready":true})");
  EXPECT_EQ(model_ready("echo", "1").status, 200);
  EXPECT_EQ(model_ready("failing", "").status, 200);  // it loaded; its runs fail
  for (auto [model, version] : {std::pair{"echo", "3"}, std::pair{"echo", "x"},
                                std::pair{"missing", ""}, std::pair{"broken", ""}}) {
    Response response = model_ready(model, version);
    EXPECT_EQ(response.status, 503) << model << " " << version;
    EXPECT_EQ(response.body, absl::StrCat(R"({"name":")", model, R"(","ready":false})"));
  }

  serving_.service().StartDraining();
  ready = Await([&](Reply reply) { rest_->ServerReady(std::move(reply)); });
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(ready.body, R"({"ready":false})");
  EXPECT_EQ(Await([&](Reply reply) { rest_->ServerLive(std::move(reply)); }).status, 200);
}

TEST_F(KServeRestTest, ServerAndModelMetadata) {
  Response server = Await([&](Reply reply) { rest_->ServerMetadata(std::move(reply)); });
  EXPECT_EQ(server.status, 200);
  rapidjson::Document doc = Json(server);
  EXPECT_STREQ(doc["name"].GetString(), "modeld");
  EXPECT_TRUE(doc["version"].IsString());
  ASSERT_TRUE(doc["extensions"].IsArray());
  ASSERT_EQ(doc["extensions"].Size(), 2u);
  EXPECT_STREQ(doc["extensions"][0].GetString(), "binary_tensor_data");
  EXPECT_STREQ(doc["extensions"][1].GetString(), "model_configuration");

  auto metadata = [&](const char* model, const char* version) {
    return Await([&](Reply reply) { rest_->ModelMetadata(model, version, std::move(reply)); });
  };
  Response echo = metadata("echo", "1");
  EXPECT_EQ(echo.status, 200);
  EXPECT_EQ(echo.body, R"({"name":"echo","versions":["1","2"],"platform":"fake",)"
                       R"("inputs":[{"name":"x","datatype":"FP32","shape":[-1,3]}],)"
                       R"("outputs":[{"name":"y","datatype":"FP32","shape":[-1,3]}]})");
  ExpectError(metadata("missing", ""), 404, "unknown model 'missing'");
  ExpectError(metadata("echo", "9"), 404, "has no version 9");
  ExpectError(metadata("broken", ""), 503, "boom");
  ExpectError(metadata("echo", "0"), 400, "model version '0'");
}

TEST_F(KServeRestTest, ModelConfigIsTheConfigAsJson) {
  Response config = Await([&](Reply reply) { rest_->ModelConfig("echo", "2", std::move(reply)); });
  EXPECT_EQ(config.status, 200) << config.body;
  rapidjson::Document doc = Json(config);
  EXPECT_STREQ(doc["name"].GetString(), "echo");
  EXPECT_STREQ(doc["backend"].GetString(), "fake");
  ASSERT_TRUE(doc["max_batch_size"].IsInt());
  EXPECT_EQ(doc["max_batch_size"].GetInt(), 8);
  const rapidjson::Value& input = doc["input"][0];
  EXPECT_STREQ(input["name"].GetString(), "x");
  EXPECT_STREQ(input["data_type"].GetString(), "TYPE_FP32");
  ASSERT_TRUE(input["dims"][0].IsInt64());  // a number, as Triton prints it, not "3"
  EXPECT_EQ(input["dims"][0].GetInt64(), 3);
  ExpectError(Await([&](Reply reply) { rest_->ModelConfig("missing", "", std::move(reply)); }), 404,
              "unknown model 'missing'");
}

TEST_F(KServeRestTest, InferJsonEchoesTheInput) {
  Response response = Infer("echo", "", kEchoBody);
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(response.content_type, "application/json");
  EXPECT_TRUE(response.headers.empty());
  EXPECT_EQ(response.body,
            R"({"model_name":"echo","model_version":"2","id":"r1","outputs":[{"name":"y",)"
            R"("datatype":"FP32","shape":[2,3],"data":[0.5,-1.25,3,4,1e-45,)"
            R"(-3.4028235e+38]}]})");

  response = Infer("echo", "1", kEchoBody);
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_STREQ(Json(response)["model_version"].GetString(), "1");
}

TEST_F(KServeRestTest, InferBinaryTensorData) {
  const std::vector<float> values = {1.5f, -2.0f, 3e-39f};
  const std::string json =
      R"({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "parameters": )"
      R"({"binary_data_size": 12}}], "outputs": [{"name": "y", "parameters": )"
      R"({"binary_data": true}}]})";
  Response response = Infer("echo", "", json + FloatBytes(values),
                            {{"inference-header-content-length", std::to_string(json.size())}});
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(response.content_type, "application/octet-stream");
  ASSERT_EQ(response.headers.size(), 1u);
  EXPECT_EQ(response.headers[0].first, "Inference-Header-Content-Length");
  const size_t length = std::stoul(response.headers[0].second);
  ASSERT_LE(length, response.body.size());
  EXPECT_EQ(response.body.substr(0, length),
            R"({"model_name":"echo","model_version":"2","outputs":[{"name":"y",)"
            R"("datatype":"FP32","shape":[1,3],"parameters":{"binary_data_size":12}}]})");
  EXPECT_EQ(response.body.substr(length), FloatBytes(values));

  // binary_data_output asks it for every output; JSON inputs may come with it.
  response = Infer("echo", "",
                   R"({"parameters": {"binary_data_output": true}, "inputs": [{"name": "x",)"
                   R"( "shape": [1, 3], "datatype": "FP32", "data": [1.5, -2.0, 3e-39]}]})");
  ASSERT_EQ(response.status, 200) << response.body;
  ASSERT_EQ(response.headers.size(), 1u);
  EXPECT_EQ(response.body.substr(std::stoul(response.headers[0].second)), FloatBytes(values));

  // A header length past the body.
  ExpectError(Infer("echo", "", json, {{"inference-header-content-length", "9999"}}), 400, "9999");
}

TEST_F(KServeRestTest, InferErrorsCarryTheirStatus) {
  ExpectError(Infer("echo", "",
                    R"({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",)"
                    R"( "data": [1, 2, 3, 4]}]})"),
              400, "input 'x' has shape [1, 4] but model 'echo' expects [-1, 3]");
  ExpectError(Infer("echo", "",
                    R"({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "INT32",)"
                    R"( "data": [1, 2, 3]}]})"),
              400, "input 'x' has datatype INT32 but model 'echo' expects FP32");
  ExpectError(Infer("echo", "",
                    R"({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32",)"
                    R"( "data": [1, 2]}]})"),
              400, "'x'");
  ExpectError(Infer("echo", "", "not json"), 400, "malformed JSON at byte 1");
  ExpectError(Infer("echo", "x", kEchoBody), 400, "model version 'x'");
  ExpectError(Infer("echo", "7", kEchoBody), 404, "has no version 7");
  ExpectError(Infer("missing", "", kEchoBody), 404, "unknown model 'missing'");
  ExpectError(Infer("broken", "", kEchoBody), 503, "boom");
  ExpectError(Infer("failing", "",
                    R"({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32",)"
                    R"( "data": [1, 2, 3]}]})"),
              500, "fake model failure");

  // It still answers after all of them.
  Response response = Infer("echo", "", kEchoBody);
  EXPECT_EQ(response.status, 200) << response.body;
  EXPECT_THAT(response.body, HasSubstr(R"("data":[0.5,-1.25,3,4,1e-45,)"));
}

TEST_F(KServeRestTest, LoadAndUnloadAreUnavailableWithoutExplicitModeAndTheIndexIsNot) {
  const auto index = Index("");
  EXPECT_EQ(index.status, 200) << index.body;
  EXPECT_THAT(index.body, HasSubstr("\"name\":\"echo\""));
  ExpectError(Load("echo", /*load=*/true), 503, "--model-control-mode=explicit");
  ExpectError(Load("echo", /*load=*/false), 503, "--model-control-mode=explicit");
  EXPECT_EQ(Await([&](Reply reply) { rest_->ModelReady("echo", "", std::move(reply)); }).status,
            200);
}

class KServeRestRepositoryTest : public KServeRestTest {
 protected:
  service::ControlMode Mode() const override { return service::ControlMode::kExplicit; }

  int ModelReadyStatus(const std::string& model) {
    return Await([&](Reply reply) { rest_->ModelReady(model, "", std::move(reply)); }).status;
  }
};

TEST_F(KServeRestRepositoryTest, IndexListsVersionsWithTheirStates) {
  Response all = Index("");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_THAT(all.body, HasSubstr(R"({"name":"echo","version":"1","state":"READY","reason":""})"));
  EXPECT_THAT(all.body, HasSubstr(R"({"name":"echo","version":"2","state":"READY","reason":""})"));
  rapidjson::Document doc = Json(all);
  ASSERT_TRUE(doc.IsArray());
  EXPECT_EQ(doc.Size(), 4u) << all.body;  // echo 1 and 2, failing 1, broken 1
  bool saw_broken = false;
  for (const rapidjson::Value& entry : doc.GetArray()) {
    if (std::string(entry["name"].GetString()) != "broken") continue;
    saw_broken = true;
    EXPECT_STREQ(entry["state"].GetString(), "UNAVAILABLE");
    EXPECT_THAT(entry["reason"].GetString(), HasSubstr("boom"));
  }
  EXPECT_TRUE(saw_broken) << all.body;

  Response ready = Index(R"({"ready": true})");
  ASSERT_EQ(ready.status, 200) << ready.body;
  EXPECT_EQ(Json(ready).Size(), 3u) << ready.body;
  EXPECT_THAT(ready.body, ::testing::Not(HasSubstr("broken")));

  ExpectError(Index(R"({"ready": "yes"})"), 400, "\"ready\" must be a boolean, got a string");
  ExpectError(Index("[]"), 400, "must be a JSON object, got an array");
}

TEST_F(KServeRestRepositoryTest, LoadAndUnload) {
  Response unloaded = Load("echo", /*load=*/false, R"({"parameters": {"unload_dependents": 1}})");
  EXPECT_EQ(unloaded.status, 200) << unloaded.body;
  EXPECT_EQ(unloaded.body, "{}");
  EXPECT_EQ(ModelReadyStatus("echo"), 503);
  ExpectError(Infer("echo", "", kEchoBody), 404, "unknown model 'echo'");
  ExpectError(Load("echo", /*load=*/false), 404, "not loaded");

  Response loaded = Load("echo", /*load=*/true);
  EXPECT_EQ(loaded.status, 200) << loaded.body;
  EXPECT_EQ(loaded.body, "{}");
  EXPECT_EQ(ModelReadyStatus("echo"), 200);
  EXPECT_EQ(Infer("echo", "2", kEchoBody).status, 200);

  serving_.AddModel("late", R"(backend: "fake"
      input { name: "x" data_type: TYPE_FP32 dims: [ 3 ] }
      output { name: "y" data_type: TYPE_FP32 dims: [ 3 ] })");
  EXPECT_EQ(ModelReadyStatus("late"), 503);
  EXPECT_EQ(Load("late", /*load=*/true).status, 200);
  EXPECT_EQ(ModelReadyStatus("late"), 200);

  ExpectError(Load("nowhere", /*load=*/true), 404, "'nowhere' has no folder");
  ExpectError(Load("broken", /*load=*/true), 503, "boom");
  ExpectError(Load("echo", /*load=*/true, R"({"parameters": {"config": "{}"}})"), 400, "'config'");
  ExpectError(Load("echo", /*load=*/true, R"({"parameters": []})"), 400,
              "\"parameters\" must be an object");
  ExpectError(Load("echo", /*load=*/false, "nope"), 400, "malformed JSON");
  EXPECT_EQ(ModelReadyStatus("echo"), 200);  // refused requests change nothing
}

}  // namespace
}  // namespace modeld::transport::http
