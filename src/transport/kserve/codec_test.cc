#include "transport/kserve/codec.h"

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/tensors.h"

namespace modeld::transport::kserve {
namespace {

using ::modeld::testing::Values;

using ::testing::AllOf;
using ::testing::HasSubstr;

inference::ModelInferRequest Request() {
  inference::ModelInferRequest request;
  request.set_model_name("m");
  request.set_id("42");
  return request;
}

auto* AddInput(inference::ModelInferRequest& request, const std::string& name,
               const std::string& datatype, std::vector<int64_t> shape) {
  auto* input = request.add_inputs();
  input->set_name(name);
  input->set_datatype(datatype);
  for (int64_t dim : shape) input->add_shape(dim);
  return input;
}

TEST(CodecTest, RawInputsAreViewedNotCopied) {
  inference::ModelInferRequest request = Request();
  request.set_model_version("3");
  AddInput(request, "x", "FP32", {1, 2});
  const float values[2] = {1.5f, -2.0f};
  request.add_raw_input_contents(std::string(reinterpret_cast<const char*>(values), 8));
  request.add_outputs()->set_name("y");

  absl::StatusOr<core::InferRequest> decoded = DecodeInferRequest(request);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->model_name, "m");
  EXPECT_EQ(decoded->model_version, 3);
  EXPECT_EQ(decoded->id, "42");
  const core::Tensor& x = decoded->inputs.at("x");
  EXPECT_EQ(x.type(), core::DataType::kFp32);
  EXPECT_EQ(x.shape(), (core::Shape{1, 2}));
  EXPECT_EQ(x.bytes().data(), request.raw_input_contents(0).data());
  EXPECT_EQ(decoded->requested_outputs, std::vector<std::string>{"y"});
}

TEST(CodecTest, TypedContentsBecomeLittleEndianBytes) {
  inference::ModelInferRequest request = Request();
  auto* i8 = AddInput(request, "i8", "INT8", {3});
  for (int v : {-128, 0, 127}) i8->mutable_contents()->add_int_contents(v);
  auto* u16 = AddInput(request, "u16", "UINT16", {2});
  for (int v : {0, 65535}) u16->mutable_contents()->add_uint_contents(v);
  auto* b = AddInput(request, "b", "BOOL", {2});
  b->mutable_contents()->add_bool_contents(true);
  b->mutable_contents()->add_bool_contents(false);
  auto* f64 = AddInput(request, "f64", "FP64", {1});
  f64->mutable_contents()->add_fp64_contents(0.25);
  auto* s = AddInput(request, "s", "BYTES", {2});
  s->mutable_contents()->add_bytes_contents("hi");
  s->mutable_contents()->add_bytes_contents("");

  absl::StatusOr<core::InferRequest> decoded = DecodeInferRequest(request);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(Values<int8_t>(decoded->inputs.at("i8")), (std::vector<int8_t>{-128, 0, 127}));
  EXPECT_EQ(Values<uint16_t>(decoded->inputs.at("u16")), (std::vector<uint16_t>{0, 65535}));
  EXPECT_EQ(decoded->inputs.at("b").bytes(), absl::string_view("\x01\x00", 2));
  EXPECT_EQ(Values<double>(decoded->inputs.at("f64")), std::vector<double>{0.25});
  EXPECT_EQ(decoded->inputs.at("s").bytes(), absl::string_view("\x02\0\0\0hi\0\0\0\0", 10));
}

TEST(CodecTest, BadRequestsNameTheProblem) {
  struct Case {
    std::function<void(inference::ModelInferRequest&)> build;
    absl::StatusCode code;
    std::vector<std::string> words;
  };
  const std::vector<Case> cases = {
      {[](auto& r) { r.clear_model_name(); },
       absl::StatusCode::kInvalidArgument,
       {"model_name is empty"}},
      {[](auto& r) { r.set_model_version("latest"); },
       absl::StatusCode::kInvalidArgument,
       {"model version 'latest' is not a version number"}},
      {[](auto& r) { r.set_model_version("0"); }, absl::StatusCode::kInvalidArgument, {"'0'"}},
      {[](auto& r) { AddInput(r, "x", "FP17", {1})->mutable_contents()->add_fp32_contents(1); },
       absl::StatusCode::kInvalidArgument,
       {"input 'x' has unknown datatype 'FP17'"}},
      {[](auto& r) { AddInput(r, "x", "FP32", {-2})->mutable_contents()->add_fp32_contents(1); },
       absl::StatusCode::kInvalidArgument,
       {"input 'x' has shape [-2]"}},
      {[](auto& r) { AddInput(r, "x", "FP32", {2})->mutable_contents()->add_fp32_contents(1); },
       absl::StatusCode::kInvalidArgument,
       {"input 'x' has 1 values in fp32_contents", "needs 2"}},
      {[](auto& r) { AddInput(r, "x", "INT32", {1})->mutable_contents()->add_fp32_contents(1); },
       absl::StatusCode::kInvalidArgument,
       {"input 'x' is INT32, whose values go in int_contents, but fp32_contents is set"}},
      {[](auto& r) { AddInput(r, "x", "FP16", {1})->mutable_contents()->add_fp32_contents(1); },
       absl::StatusCode::kInvalidArgument,
       {"input 'x' is FP16", "raw_input_contents"}},
      {[](auto& r) { AddInput(r, "x", "INT8", {1})->mutable_contents()->add_int_contents(300); },
       absl::StatusCode::kInvalidArgument,
       {"input 'x' value 300 at index 0 does not fit INT8"}},
      {[](auto& r) { AddInput(r, "x", "UINT8", {1})->mutable_contents()->add_uint_contents(256); },
       absl::StatusCode::kInvalidArgument,
       {"does not fit UINT8"}},
      {[](auto& r) {
         AddInput(r, "x", "FP32", {1});
         AddInput(r, "y", "FP32", {1});
         r.add_raw_input_contents(std::string(4, '\0'));
       },
       absl::StatusCode::kInvalidArgument,
       {"raw_input_contents has 1 entries", "2 inputs"}},
      {[](auto& r) {
         AddInput(r, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
         r.add_raw_input_contents(std::string(4, '\0'));
       },
       absl::StatusCode::kInvalidArgument,
       {"input 'x' sets contents", "raw_input_contents"}},
      {[](auto& r) {
         AddInput(r, "x", "FP32", {1});
         AddInput(r, "x", "FP32", {1});
         r.add_raw_input_contents(std::string(4, '\0'));
         r.add_raw_input_contents(std::string(4, '\0'));
       },
       absl::StatusCode::kInvalidArgument,
       {"input 'x' appears twice"}},
      {[](auto& r) {
         auto* out = r.add_outputs();
         out->set_name("y");
         (*out->mutable_parameters())["classification"].set_int64_param(3);
       },
       absl::StatusCode::kUnimplemented,
       {"output 'y' asks for classification"}},
  };
  for (const Case& c : cases) {
    inference::ModelInferRequest request = Request();
    c.build(request);
    absl::Status status = DecodeInferRequest(request).status();
    EXPECT_EQ(status.code(), c.code) << status;
    for (const std::string& word : c.words) EXPECT_THAT(status.message(), HasSubstr(word));
  }
}

TEST(CodecTest, PriorityAndTimeoutParameters) {
  inference::ModelInferRequest request = Request();
  (*request.mutable_parameters())["priority"].set_int64_param(2);
  (*request.mutable_parameters())["timeout"].set_uint64_param(1500);
  absl::StatusOr<core::InferRequest> decoded = DecodeInferRequest(request);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->priority, 2u);
  EXPECT_EQ(decoded->timeout, absl::Microseconds(1500));

  (*request.mutable_parameters())["priority"].set_string_param("high");
  EXPECT_THAT(DecodeInferRequest(request).status().message(),
              HasSubstr("parameter 'priority' must be a non-negative integer"));
  (*request.mutable_parameters())["priority"].set_int64_param(-1);
  EXPECT_EQ(DecodeInferRequest(request).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CodecTest, MissingDataIsCaughtAsACountMismatch) {
  inference::ModelInferRequest request = Request();
  AddInput(request, "x", "FP32", {1, 3});
  EXPECT_THAT(DecodeInferRequest(request).status().message(),
              AllOf(HasSubstr("input 'x' has 0 values"), HasSubstr("needs 3")));
}

TEST(CodecTest, ResponsesAreRawOnePerOutput) {
  core::InferResponse response;
  response.model_name = "m";
  response.model_version = 2;
  response.id = "abc";
  response.outputs.push_back(
      {"y", core::Tensor::Owning(core::DataType::kInt64, {1, 1}, std::string(8, '\x01'))});
  response.outputs.push_back(
      {"z", core::Tensor::Owning(core::DataType::kBool, {2}, std::string("\x01\x00", 2))});
  inference::ModelInferResponse wire;
  EncodeInferResponse(response, &wire);
  EXPECT_EQ(wire.model_name(), "m");
  EXPECT_EQ(wire.model_version(), "2");
  EXPECT_EQ(wire.id(), "abc");
  ASSERT_EQ(wire.outputs_size(), 2);
  ASSERT_EQ(wire.raw_output_contents_size(), 2);
  EXPECT_EQ(wire.outputs(0).name(), "y");
  EXPECT_EQ(wire.outputs(0).datatype(), "INT64");
  EXPECT_THAT(wire.outputs(0).shape(), ::testing::ElementsAre(1, 1));
  EXPECT_EQ(wire.raw_output_contents(0), std::string(8, '\x01'));
  EXPECT_EQ(wire.outputs(1).datatype(), "BOOL");
  EXPECT_FALSE(wire.outputs(1).has_contents());
  EXPECT_EQ(wire.raw_output_contents(1), std::string("\x01\x00", 2));
}

}  // namespace
}  // namespace modeld::transport::kserve

namespace modeld::transport::kserve {
namespace {

TEST(TrainCodecTest, RawEntriesAreTheInputsThenTheTargets) {
  modeld::training::TrainRequest request;
  request.set_model_name("m");
  request.set_model_version("2");
  request.set_id("r1");
  auto* x = request.add_inputs();
  x->set_name("x");
  x->set_datatype("FP32");
  x->add_shape(1);
  auto* y = request.add_targets();
  y->set_name("y");
  y->set_datatype("INT64");
  y->add_shape(1);
  request.add_raw_input_contents(std::string(4, 'a'));
  request.add_raw_input_contents(std::string(8, 'b'));
  absl::StatusOr<core::TrainRequest> decoded = DecodeTrainRequest(request);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->model_name, "m");
  EXPECT_EQ(decoded->model_version, 2);
  EXPECT_EQ(decoded->id, "r1");
  EXPECT_EQ(decoded->inputs.at("x").bytes(), std::string(4, 'a'));
  EXPECT_EQ(decoded->targets.at("y").type(), core::DataType::kInt64);
  EXPECT_EQ(decoded->targets.at("y").bytes(), std::string(8, 'b'));

  request.mutable_raw_input_contents()->RemoveLast();
  EXPECT_THAT(DecodeTrainRequest(request).status().message(),
              HasSubstr("1 inputs and 1 targets; send one entry per input and then one per "
                        "target"));
  request.add_raw_input_contents(std::string(8, 'b'));
  request.mutable_targets(0)->set_datatype("FP128");
  EXPECT_THAT(DecodeTrainRequest(request).status().message(),
              HasSubstr("target 'y' has unknown datatype 'FP128'"));
}

TEST(TrainCodecTest, ResponsesCarryTheStep) {
  core::TrainResponse response{"m", 3, "r", 12, 0.25, 10};
  modeld::training::TrainResponse out;
  EncodeTrainResponse(response, &out);
  EXPECT_EQ(out.model_name(), "m");
  EXPECT_EQ(out.model_version(), "3");
  EXPECT_EQ(out.id(), "r");
  EXPECT_EQ(out.step(), 12u);
  EXPECT_DOUBLE_EQ(out.loss(), 0.25);
  EXPECT_EQ(out.checkpoint_step(), 10u);
}

}  // namespace
}  // namespace modeld::transport::kserve
