#include "transport/http/kserve_json_codec.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "transport/http/json_util.h"

namespace modeld::transport::http {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<KServeInferRequest> Decode(const std::string& body,
                                          std::optional<std::string> header = std::nullopt) {
  auto owner = std::make_shared<const std::string>(body);
  // "ALL": the header says the whole body is JSON.
  if (header == "ALL") header = std::to_string(body.size());
  std::optional<absl::string_view> header_view;
  if (header.has_value()) header_view = *header;
  return DecodeInferRequest(*owner, header_view, owner);
}

std::vector<float> Floats(const core::Tensor& tensor) {
  std::vector<float> values(tensor.bytes().size() / 4);
  std::memcpy(values.data(), tensor.bytes().data(), tensor.bytes().size());
  return values;
}

std::string FloatBytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4);
}

TEST(KServeDecodeTest, ReadsJsonTensorsFlatOrNestedWithParameters) {
  absl::StatusOr<KServeInferRequest> decoded = Decode(R"({
    "id": "req-1",
    "parameters": {"priority": 2, "timeout": 1500, "binary_data_output": true},
    "inputs": [
      {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5, 6.5]]},
      {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["a", "bc"]},
      {"name": "b", "shape": [1, 2], "datatype": "BOOL", "data": [true, false]}
    ],
    "outputs": [{"name": "y", "parameters": {"binary_data": false}}, {"name": "z"}]
  })");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const core::InferRequest& request = decoded->request;
  EXPECT_EQ(request.id, "req-1");
  EXPECT_EQ(request.priority, 2u);
  EXPECT_EQ(request.timeout, absl::Microseconds(1500));
  EXPECT_EQ(request.inputs.at("x").shape(), (core::Shape{2, 3}));
  EXPECT_EQ(Floats(request.inputs.at("x")), (std::vector<float>{1, 2, 3, 4, 5, 6.5}));
  EXPECT_EQ(request.inputs.at("s").bytes(), std::string("\x01\0\0\0a\x02\0\0\0bc", 11));
  EXPECT_EQ(request.inputs.at("b").bytes(), std::string("\x01\x00", 2));
  EXPECT_EQ(request.requested_outputs, (std::vector<std::string>{"y", "z"}));
  EXPECT_FALSE(decoded->format.Binary("y"));
  EXPECT_TRUE(decoded->format.Binary("z"));
}

TEST(KServeDecodeTest, ReadsBinaryTensorsAfterTheJsonHeader) {
  const std::string json =
      R"({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}},)"
      R"( {"name": "n", "shape": [1], "datatype": "INT64", "data": [7]},)"
      R"( {"name": "s", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 7}}]})";
  std::string body = json + FloatBytes({1.5f, -2.0f});
  core::AppendBytesElement("abc", body);
  body += "zz";  // not claimed: refused below
  absl::StatusOr<KServeInferRequest> decoded =
      Decode(body.substr(0, body.size() - 2), std::to_string(json.size()));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(Floats(decoded->request.inputs.at("x")), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(decoded->request.inputs.at("s").bytes(), std::string("\x03\0\0\0abc", 7));

  decoded = Decode(body, std::to_string(json.size()));
  EXPECT_THAT(std::string(decoded.status().message()),
              HasSubstr("the body has 17 bytes after the JSON header but the tensors' "
                        "binary_data_size parameters add up to 15"));
}

struct BadCase {
  std::string body;
  std::optional<std::string> header;
  absl::StatusCode code;
  std::string fragment;
};

TEST(KServeDecodeTest, RefusesBadInputNamingTheProblem) {
  const std::string pre = R"({"inputs": [)";
  const std::string x = R"({"name": "x", "shape": [2], "datatype": "FP32", )";
  const std::vector<BadCase> cases = {
      {"{\"inputs\": [", {}, absl::StatusCode::kInvalidArgument, "malformed JSON at byte 12"},
      {"{\"inputs\": [], \"id\": \"\xc3\x28\"}",
       {},
       absl::StatusCode::kInvalidArgument,
       "Invalid encoding"},
      {"[1, 2]",
       {},
       absl::StatusCode::kInvalidArgument,
       "the inference request must be a JSON object, got an array"},
      {"{}", {}, absl::StatusCode::kInvalidArgument, "has no \"inputs\""},
      {"{\"inputs\": {}}",
       {},
       absl::StatusCode::kInvalidArgument,
       "\"inputs\" must be an array, got an object"},
      {"{\"inputs\": [7]}",
       {},
       absl::StatusCode::kInvalidArgument,
       "inputs[0] must be an object, got a number"},
      {"{\"inputs\": [{\"shape\": [1]}]}",
       {},
       absl::StatusCode::kInvalidArgument,
       "inputs[0] has no \"name\""},
      {"{\"inputs\": [{\"name\": 3}]}",
       {},
       absl::StatusCode::kInvalidArgument,
       "inputs[0] \"name\" must be a string, got a number"},
      {R"({"inputs": [{"name": "x", "shape": [2], "datatype": "FP8", "data": [1, 2]}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "input 'x' has unknown datatype 'FP8'"},
      {R"({"inputs": [{"name": "x", "datatype": "FP32", "data": [1, 2]}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "input 'x' has no \"shape\""},
      {R"({"inputs": [{"name": "x", "shape": "2", "datatype": "FP32", "data": [1, 2]}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "input 'x' \"shape\" must be an array of integers, got a string"},
      {R"({"inputs": [{"name": "x", "shape": [2, -1], "datatype": "FP32", "data": [1, 2]}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "input 'x' has a negative dimension -1 in its shape"},
      {R"({"inputs": [{"name": "x", "shape": [2.5], "datatype": "FP32", "data": [1, 2]}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "\"shape\" must hold non-negative integers"},
      {R"({"inputs": [{"name": "x", "shape": [4294967296, 4294967296], "datatype": "FP32", "data": [1]}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "whose element count is too large"},
      {pre + x + R"("data": [1, 2, 3]}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "input 'x' has 3 values in \"data\" but its shape [2] needs 2"},
      {pre + x + R"("data": [1, "2"]}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "input 'x' element 1: expected a number for FP32, got a string"},
      {pre + x + R"("data": 5}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "input 'x' \"data\" must be an array, got a number"},
      {pre + x + R"("parameters": {}}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "input 'x' has neither \"data\" nor parameter binary_data_size"},
      {pre + x + R"("data": [1, 2]}, )" + x + R"("data": [1, 2]}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "input 'x' appears twice"},
      {R"({"inputs": [{"name": "h", "shape": [1], "datatype": "FP16", "data": [1]}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "input 'h' element 0: FP16 has no JSON form"},
      {pre + x + R"("parameters": {"binary_data_size": 8}}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "input 'x' has parameter binary_data_size but the request has no "
       "Inference-Header-Content-Length header"},
      {pre + x + R"("parameters": {"binary_data_size": 8}}]})", "ALL",
       absl::StatusCode::kInvalidArgument,
       "input 'x' has binary_data_size 8 but only 0 bytes of binary data remain in the body"},
      {pre + x + R"("parameters": {"binary_data_size": 12}}]})", "ALL",
       absl::StatusCode::kInvalidArgument,
       "input 'x' has binary_data_size 12 but shape [2] of FP32 needs 8 bytes"},
      {R"({"inputs": [{"name": "x", "shape": [1, 4611686018427387904], "datatype": "FP32", )"
       R"("parameters": {"binary_data_size": 0}}]})",
       "ALL", absl::StatusCode::kInvalidArgument,
       "input 'x' has shape [1, 4611686018427387904], whose byte size is too large"},
      {pre + x + R"("parameters": {"binary_data_size": -8}}]})", "ALL",
       absl::StatusCode::kInvalidArgument,
       "input 'x' parameter 'binary_data_size' must be a non-negative integer, got a number"},
      {pre + x + R"("data": [1, 2], "parameters": {"binary_data_size": 8}}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "input 'x' has both \"data\" and parameter binary_data_size"},
      {"{}", "1000", absl::StatusCode::kInvalidArgument,
       "Inference-Header-Content-Length 1000 is larger than the body (2 bytes)"},
      {"{}", "-1", absl::StatusCode::kInvalidArgument,
       "Inference-Header-Content-Length '-1' is not a byte count"},
      {"{}", "abc", absl::StatusCode::kInvalidArgument,
       "Inference-Header-Content-Length 'abc' is not a byte count"},
      {"{}", "0", absl::StatusCode::kInvalidArgument, "a raw binary request"},
      {pre + x + R"("data": [1, 2]}], "parameters": {"priority": -1}})",
       {},
       absl::StatusCode::kInvalidArgument,
       "parameter 'priority' must be a non-negative integer"},
      {pre + x + R"("data": [1, 2]}], "parameters": {"timeout": "5"}})",
       {},
       absl::StatusCode::kInvalidArgument,
       "parameter 'timeout' must be a non-negative integer, got a string"},
      {pre + x + R"("data": [1, 2]}], "parameters": 3})",
       {},
       absl::StatusCode::kInvalidArgument,
       "\"parameters\" must be an object, got a number"},
      {pre + x + R"("data": [1, 2]}], "id": 5})",
       {},
       absl::StatusCode::kInvalidArgument,
       "\"id\" must be a string, got a number"},
      {pre + x +
           R"("data": [1, 2]}], "outputs": [{"name": "y", "parameters": {"binary_data": 1}}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "output 'y' parameter 'binary_data' must be true or false, got a number"},
      {pre + x + R"("data": [1, 2]}], "outputs": [{"parameters": {}}]})",
       {},
       absl::StatusCode::kInvalidArgument,
       "outputs[0] has no \"name\""},
      {pre + x +
           R"("data": [1, 2]}], "outputs": [{"name": "y", "parameters": {"classification": 2}}]})",
       {},
       absl::StatusCode::kUnimplemented,
       "output 'y' asks for classification"},
  };
  for (const BadCase& c : cases) {
    absl::StatusOr<KServeInferRequest> decoded = Decode(c.body, c.header);
    EXPECT_EQ(decoded.status().code(), c.code) << c.body << " -> " << decoded.status();
    EXPECT_THAT(std::string(decoded.status().message()), HasSubstr(c.fragment)) << c.body;
  }
}

core::InferResponse MakeResponse() {
  core::InferResponse response;
  response.model_name = "m";
  response.model_version = 3;
  response.id = "abc";
  response.outputs.push_back(
      {"y", core::Tensor::Owning(core::DataType::kFp32, {1, 2}, FloatBytes({0.1f, 3.0f}))});
  std::string ints(16, '\0');
  const int64_t values[2] = {-5, 7};
  std::memcpy(ints.data(), values, 16);
  response.outputs.push_back({"z", core::Tensor::Owning(core::DataType::kInt64, {2}, ints)});
  return response;
}

TEST(KServeEncodeTest, WritesJsonOutputs) {
  absl::StatusOr<EncodedInferResponse> encoded = EncodeInferResponse(MakeResponse(), {});
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  EXPECT_FALSE(encoded->header_length.has_value());
  EXPECT_EQ(encoded->body, R"({"model_name":"m","model_version":"3","id":"abc","outputs":[)"
                           R"({"name":"y","datatype":"FP32","shape":[1,2],"data":[0.1,3]},)"
                           R"({"name":"z","datatype":"INT64","shape":[2],"data":[-5,7]}]})");
}

TEST(KServeEncodeTest, WritesBinaryOutputsAfterTheJson) {
  OutputFormat format;
  format.binary_by_default = true;
  format.binary["z"] = false;
  absl::StatusOr<EncodedInferResponse> encoded = EncodeInferResponse(MakeResponse(), format);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  ASSERT_TRUE(encoded->header_length.has_value());
  const std::string json = encoded->body.substr(0, *encoded->header_length);
  EXPECT_THAT(json, HasSubstr(R"({"name":"y","datatype":"FP32","shape":[1,2],)"
                              R"("parameters":{"binary_data_size":8}})"));
  EXPECT_THAT(json, HasSubstr(R"("data":[-5,7])"));
  EXPECT_EQ(encoded->body.substr(*encoded->header_length), FloatBytes({0.1f, 3.0f}));
}

TEST(KServeEncodeTest, Fp32JsonOutputsReadBackBitExactly) {
  std::vector<float> values = {0.1f,   1.0f / 3.0f, 7.038531e-26f, 3.4028235e38f, -1.17549435e-38f,
                               1e-45f, 16777217.0f, 123.456f};
  core::InferResponse response;
  response.outputs.push_back(
      {"y", core::Tensor::Owning(core::DataType::kFp32, {static_cast<int64_t>(values.size())},
                                 FloatBytes(values))});
  absl::StatusOr<EncodedInferResponse> encoded = EncodeInferResponse(response, {});
  ASSERT_TRUE(encoded.ok());
  rapidjson::Document doc;
  ASSERT_TRUE(ParseJson(encoded->body, doc).ok());
  const rapidjson::Value& data = doc["outputs"][0]["data"];
  ASSERT_EQ(data.Size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const float back = static_cast<float>(data[i].GetDouble());
    EXPECT_EQ(std::memcmp(&back, &values[i], 4), 0) << values[i];
  }
}

TEST(KServeEncodeTest, RefusesNonUtf8BytesAsJsonAndSendsFp16Binary) {
  core::InferResponse response;
  std::string bytes;
  core::AppendBytesElement("\xff\xfe", bytes);
  response.outputs.push_back({"s", core::Tensor::Owning(core::DataType::kBytes, {1}, bytes)});
  absl::StatusOr<EncodedInferResponse> encoded = EncodeInferResponse(response, {});
  EXPECT_EQ(encoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(encoded.status().message()),
              HasSubstr("output 's' element 0 is not valid UTF-8"));
  OutputFormat binary;
  binary.binary["s"] = true;
  EXPECT_TRUE(EncodeInferResponse(response, binary).ok());

  core::InferResponse half;
  half.outputs.push_back(
      {"h", core::Tensor::Owning(core::DataType::kFp16, {1}, std::string("\x00\x3c", 2))});
  encoded = EncodeInferResponse(half, {});
  ASSERT_TRUE(encoded.ok());
  EXPECT_TRUE(encoded->header_length.has_value());
  EXPECT_EQ(encoded->body.substr(*encoded->header_length), std::string("\x00\x3c", 2));
}

}  // namespace
}  // namespace modeld::transport::http

namespace modeld::transport::http {
namespace {

TEST(KServeTrainJsonTest, ReadsInputsAndTargets) {
  absl::StatusOr<core::TrainRequest> decoded = DecodeTrainRequest(
      R"({"id": "r", "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 1],
          "data": [1, 2]}], "targets": [{"name": "y", "datatype": "FP32", "shape": [2, 1],
          "data": [3, 6]}]})",
      std::nullopt, nullptr);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->id, "r");
  EXPECT_EQ(decoded->inputs.at("x").shape(), (core::Shape{2, 1}));
  float y[2];
  std::memcpy(y, decoded->targets.at("y").bytes().data(), sizeof(y));
  EXPECT_EQ(y[1], 6.0f);

  EXPECT_THAT(DecodeTrainRequest(R"({"inputs": []})", std::nullopt, nullptr).status().message(),
              HasSubstr("the request has no \"targets\""));
  EXPECT_THAT(
      DecodeTrainRequest(R"({"inputs": [], "targets": [{"name": "y"}]})", std::nullopt, nullptr)
          .status()
          .message(),
      HasSubstr("target 'y' has no \"datatype\""));
}

TEST(KServeTrainJsonTest, AnswersTheStep) {
  EXPECT_EQ(EncodeTrainResponse({"m", 1, "", 7, 0.5, 0}),
            R"({"model_name":"m","model_version":"1","step":7,"loss":0.5,"checkpoint_step":0})");
}

}  // namespace
}  // namespace modeld::transport::http
