#include "transport/http/router.h"

#include <cstring>
#include <memory>
#include <string>

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

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    serving_.AddModel("echo", R"pb(
                        backend: "fake"
                        max_batch_size: 8
                        version_policy { all {} }
                        input {
                          name: "x"
                          data_type: TYPE_FP32
                          dims: [ 3 ]
                        }
                        output {
                          name: "y"
                          data_type: TYPE_FP32
                          dims: [ 3 ]
                        }
                      )pb",
                      {1, 2});
    serving_.AddModel("pair", R"pb(
      backend: "fake"
      input {
        name: "a"
        data_type: TYPE_INT64
        dims: [ -1 ]
      }
      input {
        name: "b"
        data_type: TYPE_BOOL
        dims: [ -1 ]
      }
      output {
        name: "c"
        data_type: TYPE_INT64
        dims: [ -1 ]
      }
      output {
        name: "d"
        data_type: TYPE_BOOL
        dims: [ -1 ]
      }
    )pb");
    serving_.AddModel("broken", "platform: \"nope\"\n");
    ASSERT_TRUE(serving_.Start().ok());
    router_ =
        std::make_unique<Router>(serving_.service(), [] { return std::string("metric_a 1\n"); });
  }

  // The schedulers' worker threads call back into the service after a caller has its answer
  // (the service counts the request finished last): join them before the service is
  // destroyed, as Server::Shutdown does. Found by make test-asan (heap-use-after-free).
  void TearDown() override { serving_.Drain(); }

  Response Call(const std::string& method, const std::string& target, std::string body = "",
                std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto request = std::make_shared<Request>();
    request->method = method;
    request->target = target;
    request->body = std::move(body);
    request->headers = std::move(headers);
    absl::Notification done;
    Response response;
    response.status = -1;
    router_->Handle(std::move(request), [&](Response r) {
      response = std::move(r);
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10))) << method << " " << target;
    return response;
  }

  static rapidjson::Document Json(const Response& response) {
    rapidjson::Document doc;
    EXPECT_TRUE(ParseJson(response.body, doc).ok()) << response.body;
    return doc;
  }

  void ExpectError(const Response& response, int status, const std::string& fragment) {
    EXPECT_EQ(response.status, status) << response.body;
    rapidjson::Document doc = Json(response);
    ASSERT_TRUE(doc.IsObject() && doc.HasMember("error") && doc["error"].IsString())
        << response.body;
    EXPECT_THAT(doc["error"].GetString(), HasSubstr(fragment));
  }

  common::RealClock clock_;
  testing::FakeBackendService serving_{clock_};
  std::unique_ptr<Router> router_;
};

TEST_F(RouterTest, HeadIsRoutedAsGet) {
  EXPECT_EQ(Call("HEAD", "/v2/health/live").status, 200);
  EXPECT_EQ(Call("HEAD", "/v2/health/ready").status, 200);
  EXPECT_EQ(Call("HEAD", "/v2/models/echo").status, 200);
  EXPECT_EQ(Call("HEAD", "/metrics").status, 200);
  EXPECT_EQ(Call("HEAD", "/v2/models/echo/infer").status, 405);
}

TEST_F(RouterTest, AJsonMemberGivenTwiceIsRefusedByName) {
  const std::string input = R"({"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]})";
  ExpectError(Call("POST", "/v2/models/echo/infer",
                   absl::StrCat(R"({"inputs":[)", input, R"(],"inputs":[)", input, "]}")),
              400, "holds the member \"inputs\" twice");
  ExpectError(Call("POST", "/v2/models/echo/infer",
                   R"({"inputs":[{"name":"x","name":"y","datatype":"FP32","shape":[1,3],)"
                   R"("data":[1,2,3]}]})"),
              400, "holds the member \"name\" twice");
  // The same name in two objects is no duplicate.
  EXPECT_EQ(
      Call("POST", "/v2/models/echo/infer", absl::StrCat(R"({"inputs":[)", input, "]}")).status,
      200);
}

TEST_F(RouterTest, AVersionIsAPositiveNumberWithoutLeadingZerosNeverEmpty) {
  const std::string body =
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]})";
  ExpectError(Call("POST", "/v2/models/echo/versions//infer", body), 400,
              "the path's model version is empty");
  ExpectError(Call("GET", "/v2/models/echo/versions//ready"), 400,
              "the path's model version is empty");
  ExpectError(Call("POST", "/v2/models/echo/versions/01/infer", body), 400,
              "model version '01' is not a version number");
  EXPECT_EQ(Call("POST", "/v2/models/echo/versions/1/infer", body).status, 200);
}

TEST_F(RouterTest, UnknownPathsAre404AndWrongMethods405) {
  for (const char* path : {"/", "/v3", "/v2/foo", "/v2/models", "/v2/models/echo/bogus",
                           "/v2/models/echo/versions/1/infer/more", "/v2/health/dead"}) {
    Response response = Call("GET", path);
    EXPECT_EQ(response.status, 404) << path;
    EXPECT_EQ(response.body, R"({"error":"Not Found"})") << path;
  }
  Response response = Call("POST", "/v2/health/live");
  ExpectError(response, 405, "POST /v2/health/live takes GET");
  ASSERT_EQ(response.headers.size(), 1u);
  EXPECT_EQ(response.headers[0], (std::pair<std::string, std::string>{"Allow", "GET"}));
  ExpectError(Call("GET", "/v2/models/echo/infer"), 405, "takes POST");
  ExpectError(Call("DELETE", "/v2/models/echo"), 405, "takes GET");
  ExpectError(Call("POST", "/metrics"), 405, "takes GET");
}

TEST_F(RouterTest, TfServingPathsAnswerAsTfServingDoes) {
  ExpectError(Call("GET", "/v1/models/echo:predict"), 400,
              "Malformed request: GET /v1/models/echo:predict");
  ExpectError(Call("POST", "/v1/models/echo"), 400, "Malformed request: POST /v1/models/echo");
  ExpectError(Call("GET", "/v1/models/echo/versions/x"), 400, "Malformed request");
  ExpectError(Call("GET", "/v1/other"), 400, "Malformed request: GET /v1/other");
  ExpectError(Call("GET", "/v1/models/echo/labels/stable"), 400,
              "Unrecognized servable version label: 'stable'");
  ExpectError(Call("POST", "/v1/models/echo:classify", "{}"), 501, "classify (tf.Example input)");
  ExpectError(Call("GET", "/v1/models/missing"), 404, "missing");
}

TEST_F(RouterTest, HealthAnswersByStatusCode) {
  Response live = Call("GET", "/v2/health/live");
  EXPECT_EQ(live.status, 200);
  EXPECT_EQ(live.body, R"({"live":true})");
  EXPECT_EQ(Call("GET", "/v2/health/ready").status, 200);
  EXPECT_EQ(Call("GET", "/v2/models/echo/ready").status, 200);
  EXPECT_EQ(Call("GET", "/v2/models/echo/versions/1/ready").status, 200);
  EXPECT_EQ(Call("GET", "/v2/models/ec%68o/ready").status, 200);  // percent-decoded
  for (const char* path : {"/v2/models/missing/ready", "/v2/models/echo/versions/7/ready",
                           "/v2/models/broken/ready", "/v2/models/echo/versions/x/ready"}) {
    Response response = Call("GET", path);
    EXPECT_EQ(response.status, 503) << path;
    EXPECT_THAT(response.body, HasSubstr("\"ready\":false")) << path;
  }
  ExpectError(Call("GET", "/v2/models/ec%zzo/ready"), 400, "malformed %-escape");
  serving_.service().StartDraining();
  EXPECT_EQ(Call("GET", "/v2/health/ready").status, 503);
  EXPECT_EQ(Call("GET", "/v2/health/live").status, 200);
}

TEST_F(RouterTest, MetadataAndConfig) {
  rapidjson::Document server = Json(Call("GET", "/v2"));
  EXPECT_STREQ(server["name"].GetString(), "modeld");
  EXPECT_STREQ(server["extensions"][0].GetString(), "binary_tensor_data");
  EXPECT_EQ(Call("GET", "/v2/").status, 200);

  Response metadata = Call("GET", "/v2/models/echo");
  EXPECT_EQ(metadata.body, R"({"name":"echo","versions":["1","2"],"platform":"fake",)"
                           R"("inputs":[{"name":"x","datatype":"FP32","shape":[-1,3]}],)"
                           R"("outputs":[{"name":"y","datatype":"FP32","shape":[-1,3]}]})");
  ExpectError(Call("GET", "/v2/models/missing"), 404, "missing");
  ExpectError(Call("GET", "/v2/models/broken"), 503, "broken");
  ExpectError(Call("GET", "/v2/models/echo/versions/0"), 400, "model version '0'");

  Response config = Call("GET", "/v2/models/echo/versions/1/config");
  EXPECT_EQ(config.status, 200) << config.body;
  EXPECT_THAT(config.body, HasSubstr(R"("max_batch_size":8)"));
  EXPECT_THAT(config.body, HasSubstr(R"("dims":[3])"));  // numbers, as Triton prints them
  EXPECT_THAT(config.body, HasSubstr(R"("data_type":"TYPE_FP32")"));
  EXPECT_THAT(Call("GET", "/v2/models/pair/config").body, HasSubstr(R"("max_batch_size":0)"));

  Response tf = Call("GET", "/v1/models/echo/metadata");
  EXPECT_EQ(tf.status, 200);
  EXPECT_THAT(tf.body,
              HasSubstr(R"("model_spec":{"name":"echo","signature_name":"","version":"2"})"));
  EXPECT_THAT(tf.body, HasSubstr(R"("dtype":"DT_FLOAT")"));
  Response status = Call("GET", "/v1/models/echo");
  EXPECT_THAT(status.body, HasSubstr(R"({"version":"1","state":"AVAILABLE")"));
  EXPECT_THAT(status.body, HasSubstr(R"({"version":"2","state":"AVAILABLE")"));
  Response one = Call("GET", "/v1/models/echo/versions/1");
  EXPECT_THAT(one.body, ::testing::Not(HasSubstr(R"("version":"2")")));
  ExpectError(Call("GET", "/v1/models/echo/versions/9"), 404, "Could not find version 9");
}

TEST_F(RouterTest, KServeInferJsonAndBinary) {
  Response response = Call("POST", "/v2/models/echo/versions/1/infer",
                           R"({"id": "r1", "inputs": [{"name": "x", "shape": [1, 3],)"
                           R"( "datatype": "FP32", "data": [0.1, 1e-45, -3.4028235e38]}]})");
  EXPECT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(response.body,
            R"({"model_name":"echo","model_version":"1","id":"r1","outputs":[{"name":"y",)"
            R"("datatype":"FP32","shape":[1,3],"data":[0.1,1e-45,-3.4028235e+38]}]})");

  const std::string json =
      R"({"inputs": [{"name": "a", "shape": [2], "datatype": "INT64", "parameters": )"
      R"({"binary_data_size": 16}}, {"name": "b", "shape": [2], "datatype": "BOOL", "data": )"
      R"([true, false]}], "outputs": [{"name": "d", "parameters": {"binary_data": true}}, )"
      R"({"name": "c"}]})";
  const int64_t a[2] = {-3, 9};
  response = Call("POST", "/v2/models/pair/infer",
                  json + std::string(reinterpret_cast<const char*>(a), 16),
                  {{"inference-header-content-length", std::to_string(json.size())}});
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(response.content_type, "application/octet-stream");
  ASSERT_EQ(response.headers.size(), 1u);
  EXPECT_EQ(response.headers[0].first, "Inference-Header-Content-Length");
  const size_t length = std::stoul(response.headers[0].second);
  EXPECT_EQ(response.body.substr(0, length),
            R"({"model_name":"pair","model_version":"1","outputs":[{"name":"d","datatype":"BOOL",)"
            R"("shape":[2],"parameters":{"binary_data_size":2}},{"name":"c","datatype":"INT64",)"
            R"("shape":[2],"data":[-3,9]}]})");
  EXPECT_EQ(response.body.substr(length), std::string("\x01\x00", 2));
}

TEST_F(RouterTest, KServeInferErrorsCarryTheirStatus) {
  ExpectError(
      Call(
          "POST", "/v2/models/echo/infer",
          R"({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})"),
      400, "input 'x' has shape [1, 4] but model 'echo' expects [-1, 3]");
  ExpectError(Call("POST", "/v2/models/missing/infer", R"({"inputs": []})"), 404, "missing");
  ExpectError(Call("POST", "/v2/models/echo/versions/x/infer", "{}"), 400, "model version 'x'");
  ExpectError(Call("POST", "/v2/models/echo/infer", "not json"), 400, "malformed JSON at byte 1");
}

TEST_F(RouterTest, TfServingPredict) {
  Response rows =
      Call("POST", "/v1/models/echo:predict", R"({"instances": [[1, 2, 3], [4, 5, 6]]})");
  EXPECT_EQ(rows.status, 200) << rows.body;
  EXPECT_EQ(rows.body, R"({"predictions":[[1,2,3],[4,5,6]]})");
  Response columns = Call("POST", "/v1/models/pair/versions/1:predict",
                          R"({"inputs": {"a": [1, 2], "b": [true, false]}})");
  EXPECT_EQ(columns.status, 200) << columns.body;
  EXPECT_EQ(columns.body, R"({"outputs":{"c":[1,2],"d":[true,false]}})");
  ExpectError(Call("POST", "/v1/models/pair:predict", R"({"instances": [{"a": 1, "b": true}]})"),
              400, "model 'pair' has no batch dimension");
  ExpectError(Call("POST", "/v1/models/echo:predict", R"({"instances": [[1, 2]]})"), 400,
              "input 'x' has shape [1, 2]");
  ExpectError(Call("POST", "/v1/models/missing:predict", R"({"instances": [[1, 2]]})"), 404,
              "missing");
}

TEST_F(RouterTest, ServesMetricsText) {
  Response metrics = Call("GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.body, "metric_a 1\n");
  EXPECT_THAT(metrics.content_type, HasSubstr("text/plain; version=0.0.4"));
}

TEST(InferenceCallTest, IsAPostOfEitherApisInferenceRoutes) {
  EXPECT_TRUE(IsInferenceCall("POST", "/v2/models/m/infer"));
  EXPECT_TRUE(IsInferenceCall("POST", "/v2/models/m/versions/2/infer"));
  EXPECT_TRUE(IsInferenceCall("POST", "/v1/models/m:predict"));
  EXPECT_TRUE(IsInferenceCall("POST", "/v1/models/m/versions/3:classify"));
  EXPECT_TRUE(IsInferenceCall("POST", "/v1/models/m/labels/stable:regress"));
  EXPECT_FALSE(IsInferenceCall("GET", "/v2/models/m/infer"));
  EXPECT_FALSE(IsInferenceCall("POST", "/v2/repository/models/m/load"));
  EXPECT_FALSE(IsInferenceCall("GET", "/v2/health/ready"));
  EXPECT_FALSE(IsInferenceCall("POST", "/v1/models/m/metadata"));
}

TEST(HealthPathTest, OnlyHealthRoutesAndMetrics) {
  EXPECT_TRUE(IsHealthPath("/metrics"));
  EXPECT_TRUE(IsHealthPath("/v2/health/live"));
  EXPECT_TRUE(IsHealthPath("/v2/health/ready/"));
  EXPECT_TRUE(IsHealthPath("/v2/models/echo/ready"));
  EXPECT_TRUE(IsHealthPath("/v2/models/echo/versions/2/ready"));
  EXPECT_FALSE(IsHealthPath("/v2"));
  EXPECT_FALSE(IsHealthPath("/v2/models/echo"));
  EXPECT_FALSE(IsHealthPath("/v2/models/echo/infer"));
  EXPECT_FALSE(IsHealthPath("/v2/models/ready/infer"));
  EXPECT_FALSE(IsHealthPath("/v2/models/a/b/ready"));
  EXPECT_FALSE(IsHealthPath("/v2/repository/index"));
  EXPECT_FALSE(IsHealthPath("/v1/models/echo"));
  EXPECT_FALSE(IsHealthPath("/v3/health/live"));
}

class RouterAuthTest : public RouterTest {
 protected:
  void UseTokens(bool health_open) {
    auto tokens = auth::TokenStore::FromTokens({"t0ken"});
    ASSERT_TRUE(tokens.ok());
    tokens_ = *std::move(tokens);
    RouterOptions options;
    options.tokens = tokens_.get();
    options.health_open = health_open;
    router_ = std::make_unique<Router>(
        serving_.service(), [] { return std::string("metric_a 1\n"); }, options);
  }
  std::unique_ptr<auth::TokenStore> tokens_;
};

TEST_F(RouterAuthTest, EveryRouteButHealthNeedsAToken) {
  UseTokens(/*health_open=*/true);
  const std::string body = R"({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32",
                                "data": [1, 2, 3]}]})";
  Response missing = Call("POST", "/v2/models/echo/infer", body);
  ExpectError(missing, 401, "missing bearer token");
  ASSERT_EQ(missing.headers.size(), 1u);
  EXPECT_EQ(missing.headers[0].first, "WWW-Authenticate");
  EXPECT_EQ(missing.headers[0].second, "Bearer realm=\"modeld\"");
  Response wrong = Call("POST", "/v2/models/echo/infer", body, {{"authorization", "Bearer t0ke"}});
  ExpectError(wrong, 401, "invalid bearer token");
  EXPECT_THAT(wrong.headers[0].second, HasSubstr("error=\"invalid_token\""));
  // Unknown routes, TF Serving's and the repository API are behind the token too.
  ExpectError(Call("GET", "/nowhere"), 401, "missing bearer token");
  ExpectError(Call("GET", "/v1/models/echo"), 401, "missing bearer token");
  ExpectError(Call("POST", "/v2/repository/index"), 401, "missing bearer token");
  ExpectError(Call("GET", "/v2"), 401, "missing bearer token");

  EXPECT_EQ(Call("POST", "/v2/models/echo/infer", body, {{"authorization", "Bearer t0ken"}}).status,
            200);
  EXPECT_EQ(Call("GET", "/v2/health/ready").status, 200);
  EXPECT_EQ(Call("GET", "/v2/health/live").status, 200);
  EXPECT_EQ(Call("GET", "/v2/models/echo/ready").status, 200);
  EXPECT_EQ(Call("GET", "/metrics").status, 200);
}

TEST_F(RouterAuthTest, HealthNeedsATokenWhenAsked) {
  UseTokens(/*health_open=*/false);
  ExpectError(Call("GET", "/v2/health/ready"), 401, "missing bearer token");
  ExpectError(Call("GET", "/metrics"), 401, "missing bearer token");
  EXPECT_EQ(Call("GET", "/v2/health/ready", "", {{"authorization", "bearer t0ken"}}).status, 200);
}

}  // namespace
}  // namespace modeld::transport::http
