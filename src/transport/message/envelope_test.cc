#include "transport/message/envelope.h"

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::transport::message {
namespace {

using ::testing::HasSubstr;

std::string Floats(std::initializer_list<float> values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.begin(), bytes.size());
  return bytes;
}

wire::RequestEnvelope GoodEnvelope() {
  wire::RequestEnvelope envelope;
  envelope.set_request_id("r-1");
  envelope.set_reply_key("replies:r-1");
  inference::ModelInferRequest* request = envelope.mutable_infer();
  request->set_model_name("identity_fp32");
  request->set_id("inner");
  auto* input = request->add_inputs();
  input->set_name("INPUT0");
  input->set_datatype("FP32");
  input->add_shape(1);
  input->add_shape(2);
  request->add_raw_input_contents(Floats({1.5f, -2.0f}));
  return envelope;
}

TEST(EnvelopeTest, ParsesAndDecodesAGoodEnvelope) {
  const std::string bytes = GoodEnvelope().SerializeAsString();
  absl::StatusOr<wire::RequestEnvelope> envelope = ParseRequestEnvelope(bytes);
  ASSERT_TRUE(envelope.ok()) << envelope.status();
  EXPECT_EQ(envelope->request_id(), "r-1");
  EXPECT_EQ(envelope->reply_key(), "replies:r-1");
  EXPECT_EQ(Deadline(*envelope), absl::InfiniteFuture());

  absl::StatusOr<core::InferRequest> request = DecodeEnvelopeRequest(*envelope);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->model_name, "identity_fp32");
  EXPECT_EQ(request->id, "inner");
  ASSERT_TRUE(request->inputs.contains("INPUT0"));
  EXPECT_EQ(request->inputs.at("INPUT0").bytes(), Floats({1.5f, -2.0f}));
  EXPECT_EQ(request->deadline, absl::InfiniteFuture());
}

TEST(EnvelopeTest, DeadlineBecomesTheRequestDeadline) {
  wire::RequestEnvelope envelope = GoodEnvelope();
  envelope.set_deadline_unix_ms(1'700'000'000'123);
  EXPECT_EQ(Deadline(envelope), absl::FromUnixMillis(1'700'000'000'123));
  absl::StatusOr<core::InferRequest> request = DecodeEnvelopeRequest(envelope);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->deadline, absl::FromUnixMillis(1'700'000'000'123));
}

TEST(EnvelopeTest, ANegativeDeadlineIsRefused) {
  wire::RequestEnvelope envelope;
  EXPECT_TRUE(CheckEnvelope(envelope).ok());  // 0: no deadline
  envelope.set_deadline_unix_ms(1'700'000'000'000);
  EXPECT_TRUE(CheckEnvelope(envelope).ok());
  envelope.set_deadline_unix_ms(-1);
  const absl::Status status = CheckEnvelope(envelope);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("deadline_unix_ms -1 is negative"));
}

TEST(EnvelopeTest, GarbageIsNotAnEnvelope) {
  absl::StatusOr<wire::RequestEnvelope> envelope = ParseRequestEnvelope("\xff\xff\xff garbage");
  EXPECT_EQ(envelope.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(envelope.status().message(), HasSubstr("is not a modeld.redis.RequestEnvelope"));
}

TEST(EnvelopeTest, EmptyBytesAreAnEmptyEnvelopeWithoutARequest) {
  absl::StatusOr<wire::RequestEnvelope> envelope = ParseRequestEnvelope("");
  ASSERT_TRUE(envelope.ok());
  absl::StatusOr<core::InferRequest> request = DecodeEnvelopeRequest(*envelope);
  EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(request.status().message(), HasSubstr("carries no request"));
}

TEST(EnvelopeTest, OnlyMetadataAndReadinessAreQueries) {
  wire::RequestEnvelope envelope;
  EXPECT_FALSE(IsQuery(envelope));  // no payload: refused on the inference path
  EXPECT_FALSE(IsQuery(GoodEnvelope()));
  envelope.mutable_metadata()->set_name("m");
  EXPECT_TRUE(IsQuery(envelope));
  envelope.mutable_model_ready()->set_name("m");
  EXPECT_TRUE(IsQuery(envelope));
  envelope.mutable_server_ready();
  EXPECT_TRUE(IsQuery(envelope));
  // A query is no inference request.
  EXPECT_THAT(DecodeEnvelopeRequest(envelope).status().message(), HasSubstr("carries no request"));
}

TEST(EnvelopeTest, APayloadFromANewerProducerIsNoRequest) {
  // Field 15 of the oneof does not exist (yet): it parses as an unknown field.
  wire::RequestEnvelope header;
  header.set_request_id("r-9");
  const std::string bytes =
      header.SerializeAsString() + std::string("\x7a\x02\x08\x01", 4);  // field 15, len 2
  absl::StatusOr<wire::RequestEnvelope> envelope = ParseRequestEnvelope(bytes);
  ASSERT_TRUE(envelope.ok()) << envelope.status();
  EXPECT_EQ(envelope->request_id(), "r-9");
  EXPECT_FALSE(IsQuery(*envelope));
  EXPECT_EQ(DecodeEnvelopeRequest(*envelope).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EnvelopeTest, CodecErrorsComeThrough) {
  wire::RequestEnvelope envelope = GoodEnvelope();
  envelope.mutable_infer()->mutable_inputs(0)->set_datatype("FP33");
  absl::StatusOr<core::InferRequest> request = DecodeEnvelopeRequest(envelope);
  EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(request.status().message(), HasSubstr("unknown datatype 'FP33'"));

  envelope = GoodEnvelope();
  envelope.mutable_infer()->clear_model_name();
  EXPECT_THAT(DecodeEnvelopeRequest(envelope).status().message(), HasSubstr("model_name is empty"));
}

TEST(EnvelopeTest, EncodesAnAnswer) {
  core::InferResponse response;
  response.model_name = "identity_fp32";
  response.model_version = 1;
  response.id = "inner";
  response.outputs.push_back(
      {"OUTPUT0", core::Tensor::Owning(core::DataType::kFp32, {1, 2}, Floats({1.5f, -2.0f}))});
  absl::StatusOr<wire::ReplyEnvelope> reply = ParseReplyEnvelope(EncodeReply("r-1", response));
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->request_id(), "r-1");
  EXPECT_EQ(reply->code(), 0);
  EXPECT_EQ(reply->message(), "");
  ASSERT_TRUE(reply->has_infer());
  EXPECT_EQ(reply->infer().model_name(), "identity_fp32");
  EXPECT_EQ(reply->infer().model_version(), "1");
  ASSERT_EQ(reply->infer().outputs_size(), 1);
  EXPECT_EQ(reply->infer().outputs(0).datatype(), "FP32");
  EXPECT_EQ(reply->infer().raw_output_contents(0), Floats({1.5f, -2.0f}));
}

TEST(EnvelopeTest, EncodesAnError) {
  absl::StatusOr<wire::ReplyEnvelope> reply =
      ParseReplyEnvelope(EncodeReply("r-2", absl::NotFoundError("no model 'x'")));
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->request_id(), "r-2");
  EXPECT_EQ(reply->code(), 5);  // google.rpc.Code NOT_FOUND
  EXPECT_EQ(reply->message(), "no model 'x'");
  EXPECT_FALSE(reply->has_infer());
}

}  // namespace
}  // namespace modeld::transport::message
