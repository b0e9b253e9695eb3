#include "transport/grpc_tfserving/tfserving_service.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "service/testing/fake_backend_service.h"
#include "tensorflow_serving/prediction_service.grpc.pb.h"

namespace modeld::transport::grpc_tfserving {
namespace {

namespace tfs = ::tensorflow::serving;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

template <typename Message>
Message Parse(const std::string& text) {
  Message message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

std::vector<int64_t> Dims(const tensorflow::TensorShapeProto& shape) {
  std::vector<int64_t> dims;
  for (const auto& dim : shape.dim()) dims.push_back(dim.size());
  return dims;
}

void ExpectError(const grpc::Status& status, grpc::StatusCode code, const std::string& fragment) {
  EXPECT_EQ(status.error_code(), code) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(fragment));
}

constexpr char kEchoX[] = R"(model_spec { name: "echo" }
    inputs { key: "x" value { dtype: DT_FLOAT tensor_shape { dim { size: 2 } dim { size: 3 } }
                              float_val: [ 1, 2, 3, 4.5, -5, 6e30 ] } })";

class TfServingServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    serving_.AddModel("echo", R"(backend: "fake" max_batch_size: 8 version_policy { all {} }
        input { name: "x" data_type: TYPE_FP32 dims: [ 3 ] }
        output { name: "y" data_type: TYPE_FP32 dims: [ 3 ] })",
                      {1, 2});
    // Items of no dims: [batch] on TensorFlow Serving's API, [batch, 1] inside modeld.
    serving_.AddModel("scalar", R"(backend: "fake" max_batch_size: 8
        input { name: "s" data_type: TYPE_INT64 dims: [ 1 ] reshape { shape: [] } }
        output { name: "t" data_type: TYPE_INT64 dims: [ 1 ] reshape { shape: [] } })");
    // Version 2 fails to load: its weight file is no number.
    serving_.AddModel("staged", R"(backend: "fake" version_policy { all {} }
        input { name: "x" data_type: TYPE_FP32 dims: [ 3 ] }
        output { name: "y" data_type: TYPE_FP32 dims: [ 3 ] })",
                      {1, 2});
    serving_.repository().WriteFile("staged/2/weight", "bogus\n");
    serving_.AddModel("failing", R"(backend: "fake"
        parameters { key: "behavior" value { string_value: "fail" } }
        input { name: "x" data_type: TYPE_FP32 dims: [ 3 ] }
        output { name: "y" data_type: TYPE_FP32 dims: [ 3 ] })");
    // Served with a classify signature: identity makes each example its own class label.
    serving_.AddModel("classifier", R"(backend: "fake" max_batch_size: 8
        parameters { key: "signature_name" value { string_value: "classify_x" } }
        parameters { key: "signature_method_name"
                     value { string_value: "tensorflow/serving/classify" } }
        input { name: "examples" data_type: TYPE_STRING dims: [ 1 ] reshape { shape: [] } }
        output { name: "classes" data_type: TYPE_STRING dims: [ 1 ] reshape { shape: [] } })");
    // A regress signature the fake backend cannot serve: its identity output is not FP32.
    serving_.AddModel("regressor", R"(backend: "fake" max_batch_size: 8
        parameters { key: "signature_method_name"
                     value { string_value: "tensorflow/serving/regress" } }
        input { name: "examples" data_type: TYPE_STRING dims: [ 1 ] reshape { shape: [] } }
        output { name: "outputs" data_type: TYPE_STRING dims: [ 1 ] reshape { shape: [] } })");
    ASSERT_TRUE(serving_.Start().ok());
    prediction_ = std::make_unique<TfServingPredictionService>(serving_.service());
    model_ = std::make_unique<TfServingModelService>(serving_.service());
    grpc::ServerBuilder builder;
    builder.RegisterService(prediction_.get());
    builder.RegisterService(model_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    std::shared_ptr<grpc::Channel> channel = server_->InProcessChannel(grpc::ChannelArguments());
    prediction_stub_ = tfs::PredictionService::NewStub(channel);
    model_stub_ = tfs::ModelService::NewStub(channel);
  }

  // The server first (it waits for the RPCs in flight), then the models' worker threads.
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
    serving_.Drain();
  }

  // One unary call with a deadline.
  template <typename Stub, typename Request, typename Response>
  static grpc::Status Call(Stub& stub,
                           grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Request&,
                                                     Response*),
                           const Request& request, Response* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return (stub.*rpc)(&context, request, response);
  }

  grpc::Status Predict(const std::string& text, tfs::PredictResponse* response) {
    return Call(*prediction_stub_, &tfs::PredictionService::Stub::Predict,
                Parse<tfs::PredictRequest>(text), response);
  }

  grpc::Status Status(const std::string& text, tfs::GetModelStatusResponse* response) {
    return Call(*model_stub_, &tfs::ModelService::Stub::GetModelStatus,
                Parse<tfs::GetModelStatusRequest>(text), response);
  }

  // The signature_def map of GetModelMetadata for `spec` (ModelSpec text).
  grpc::Status Signatures(const std::string& spec, tfs::GetModelMetadataResponse* response,
                          tfs::SignatureDefMap* signatures) {
    grpc::Status status = Call(*prediction_stub_, &tfs::PredictionService::Stub::GetModelMetadata,
                               Parse<tfs::GetModelMetadataRequest>(
                                   "metadata_field: 'signature_def' model_spec { " + spec + " }"),
                               response);
    if (status.ok()) {
      EXPECT_TRUE(response->metadata().at("signature_def").UnpackTo(signatures));
    }
    return status;
  }

  common::RealClock clock_;
  testing::FakeBackendService serving_{clock_};
  std::unique_ptr<TfServingPredictionService> prediction_;
  std::unique_ptr<TfServingModelService> model_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<tfs::PredictionService::Stub> prediction_stub_;
  std::unique_ptr<tfs::ModelService::Stub> model_stub_;
};

TEST_F(TfServingServiceTest, PredictEchoesTypedValues) {
  tfs::PredictResponse response;
  grpc::Status status = Predict(kEchoX, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model_spec().name(), "echo");
  EXPECT_EQ(response.model_spec().version().value(), 2);  // the newest ready version
  EXPECT_EQ(response.model_spec().signature_name(), "serving_default");
  ASSERT_EQ(response.outputs_size(), 1);
  const tensorflow::TensorProto& y = response.outputs().at("y");
  EXPECT_EQ(y.dtype(), tensorflow::DT_FLOAT);
  EXPECT_THAT(Dims(y.tensor_shape()), ElementsAre(2, 3));
  EXPECT_THAT(y.float_val(), ElementsAre(1, 2, 3, 4.5f, -5, 6e30f));
  EXPECT_TRUE(y.tensor_content().empty());  // typed fields, as TensorFlow Serving answers
}

TEST_F(TfServingServiceTest, PredictTakesTensorContentVersionsAndLabels) {
  const float values[3] = {0.25f, -8.0f, 1e-40f};
  tfs::PredictRequest request = Parse<tfs::PredictRequest>(
      R"(model_spec { name: "echo" version { value: 1 } signature_name: "serving_default" }
         inputs { key: "x" value { dtype: DT_FLOAT
                                   tensor_shape { dim { size: 1 } dim { size: 3 } } } }
         output_filter: "y")");
  (*request.mutable_inputs())["x"].set_tensor_content(
      std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  tfs::PredictResponse response;
  grpc::Status status =
      Call(*prediction_stub_, &tfs::PredictionService::Stub::Predict, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model_spec().version().value(), 1);
  EXPECT_THAT(response.outputs().at("y").float_val(), ElementsAre(0.25f, -8.0f, 1e-40f));

  // A numeric version_label names that version (modeld has no labels).
  request.mutable_model_spec()->set_version_label("1");
  response.Clear();
  ASSERT_TRUE(
      Call(*prediction_stub_, &tfs::PredictionService::Stub::Predict, request, &response).ok());
  EXPECT_EQ(response.model_spec().version().value(), 1);
}

TEST_F(TfServingServiceTest, PredictShowsScalarItemsWithoutTheirDimension) {
  tfs::PredictResponse response;
  grpc::Status status = Predict(R"(model_spec { name: "scalar" }
      inputs { key: "s" value { dtype: DT_INT64 tensor_shape { dim { size: 3 } }
                                int64_val: [ 5, -6, 7000000000 ] } })",
                                &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const tensorflow::TensorProto& t = response.outputs().at("t");
  EXPECT_EQ(t.dtype(), tensorflow::DT_INT64);
  EXPECT_THAT(Dims(t.tensor_shape()), ElementsAre(3));  // not [3, 1]
  EXPECT_THAT(t.int64_val(), ElementsAre(5, -6, 7000000000));
}

TEST_F(TfServingServiceTest, PredictErrors) {
  tfs::PredictResponse response;
  ExpectError(Predict(R"(model_spec { name: "missing" })", &response), grpc::StatusCode::NOT_FOUND,
              "unknown model 'missing'");
  ExpectError(Predict(R"(model_spec { version { value: 1 } })", &response),
              grpc::StatusCode::INVALID_ARGUMENT, "model_spec.name is empty");
  ExpectError(Predict(R"(model_spec { name: "echo" version { value: 9 } })", &response),
              grpc::StatusCode::NOT_FOUND, "has no version 9");
  ExpectError(Predict(R"(model_spec { name: "echo" version_label: "stable" })", &response),
              grpc::StatusCode::INVALID_ARGUMENT, "version_label 'stable'");
  ExpectError(Predict(R"(model_spec { name: "echo" signature_name: "other" })", &response),
              grpc::StatusCode::INVALID_ARGUMENT, "signature_name 'other' not found");
  ExpectError(Predict(R"(model_spec { name: "echo" }
      inputs { key: "x" value { dtype: DT_FLOAT tensor_shape { dim { size: 1 } dim { size: 4 } }
                                float_val: [ 1, 2, 3, 4 ] } })",
                      &response),
              grpc::StatusCode::INVALID_ARGUMENT,
              "input 'x' has shape [1, 4] but model 'echo' expects [-1, 3]");
  ExpectError(Predict(R"(model_spec { name: "echo" }
      inputs { key: "x" value { dtype: DT_DOUBLE tensor_shape { dim { size: 1 } dim { size: 3 } }
                                double_val: [ 1, 2, 3 ] } })",
                      &response),
              grpc::StatusCode::INVALID_ARGUMENT, "input 'x' has datatype FP64");
  ExpectError(Predict(R"(model_spec { name: "echo" }
      inputs { key: "x" value { dtype: DT_FLOAT tensor_shape { dim { size: 1 } dim { size: 3 } }
                                float_val: [ 1, 2 ] } })",
                      &response),
              grpc::StatusCode::INVALID_ARGUMENT, "input 'x'");
  ExpectError(Predict(std::string(kEchoX) + R"( output_filter: "nope")", &response),
              grpc::StatusCode::INVALID_ARGUMENT, "requested output 'nope'");
  ExpectError(Predict(R"(model_spec { name: "failing" }
      inputs { key: "x" value { dtype: DT_FLOAT tensor_shape { dim { size: 3 } }
                                float_val: [ 1, 2, 3 ] } })",
                      &response),
              grpc::StatusCode::INTERNAL, "fake model failure");
  EXPECT_EQ(response.outputs_size(), 0);

  // The server still answers.
  response.Clear();
  ASSERT_TRUE(Predict(kEchoX, &response).ok());
  EXPECT_THAT(response.outputs().at("y").float_val(), ElementsAre(1, 2, 3, 4.5f, -5, 6e30f));
}

TEST_F(TfServingServiceTest, GetModelMetadataAnswersTheSignature) {
  tfs::GetModelMetadataResponse response;
  tfs::SignatureDefMap signatures;
  grpc::Status status = Signatures(R"(name: "echo")", &response, &signatures);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model_spec().name(), "echo");
  EXPECT_EQ(response.model_spec().version().value(), 2);
  ASSERT_EQ(signatures.signature_def_size(), 1);
  const tensorflow::SignatureDef& def = signatures.signature_def().at("serving_default");
  EXPECT_EQ(def.method_name(), "tensorflow/serving/predict");
  const tensorflow::TensorInfo& x = def.inputs().at("x");
  EXPECT_EQ(x.name(), "x");
  EXPECT_EQ(x.dtype(), tensorflow::DT_FLOAT);
  EXPECT_THAT(Dims(x.tensor_shape()), ElementsAre(-1, 3));
  EXPECT_EQ(def.outputs().at("y").dtype(), tensorflow::DT_FLOAT);

  ASSERT_TRUE(Signatures(R"(name: "echo" version { value: 1 })", &response, &signatures).ok());
  EXPECT_EQ(response.model_spec().version().value(), 1);

  signatures.Clear();
  ASSERT_TRUE(Signatures(R"(name: "scalar")", &response, &signatures).ok());
  const tensorflow::SignatureDef& scalar = signatures.signature_def().at("serving_default");
  EXPECT_THAT(Dims(scalar.inputs().at("s").tensor_shape()), ElementsAre(-1));
  EXPECT_EQ(scalar.inputs().at("s").dtype(), tensorflow::DT_INT64);

  signatures.Clear();
  ASSERT_TRUE(Signatures(R"(name: "classifier")", &response, &signatures).ok());
  EXPECT_TRUE(signatures.signature_def().contains("classify_x"));
  EXPECT_EQ(signatures.signature_def().at("classify_x").inputs().at("examples").dtype(),
            tensorflow::DT_STRING);

  ExpectError(Signatures(R"(name: "missing")", &response, &signatures), grpc::StatusCode::NOT_FOUND,
              "unknown model 'missing'");
  tfs::GetModelMetadataRequest request =
      Parse<tfs::GetModelMetadataRequest>(R"(model_spec { name: "echo" })");
  ExpectError(
      Call(*prediction_stub_, &tfs::PredictionService::Stub::GetModelMetadata, request, &response),
      grpc::StatusCode::INVALID_ARGUMENT, "at least one metadata_field");
  request.add_metadata_field("signature_def");
  request.add_metadata_field("graph");
  ExpectError(
      Call(*prediction_stub_, &tfs::PredictionService::Stub::GetModelMetadata, request, &response),
      grpc::StatusCode::INVALID_ARGUMENT, "metadata_field 'graph' is not supported");
}

TEST_F(TfServingServiceTest, GetModelStatusReportsEveryVersion) {
  tfs::GetModelStatusResponse response;
  grpc::Status status = Status(R"(model_spec { name: "echo" })", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.model_version_status_size(), 2);
  for (const tfs::ModelVersionStatus& version : response.model_version_status()) {
    EXPECT_EQ(version.state(), tfs::ModelVersionStatus::AVAILABLE) << version.version();
    EXPECT_EQ(version.status().error_code(), tensorflow::error::OK);
    EXPECT_EQ(version.status().error_message(), "");
  }

  response.Clear();
  status = Status(R"(model_spec { name: "staged" })", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.model_version_status_size(), 2);
  EXPECT_EQ(response.model_version_status(0).version(), 1);
  EXPECT_EQ(response.model_version_status(0).state(), tfs::ModelVersionStatus::AVAILABLE);
  const tfs::ModelVersionStatus& failed = response.model_version_status(1);
  EXPECT_EQ(failed.version(), 2);
  EXPECT_EQ(failed.state(), tfs::ModelVersionStatus::END);
  EXPECT_EQ(failed.status().error_code(), tensorflow::error::UNKNOWN);
  EXPECT_THAT(failed.status().error_message(), HasSubstr("fake_weight 'bogus' is no number"));

  response.Clear();
  ASSERT_TRUE(Status(R"(model_spec { name: "staged" version { value: 2 } })", &response).ok());
  ASSERT_EQ(response.model_version_status_size(), 1);
  EXPECT_EQ(response.model_version_status(0).state(), tfs::ModelVersionStatus::END);

  response.Clear();
  ASSERT_TRUE(Status(R"(model_spec { name: "echo" version_label: "1" })", &response).ok());
  ASSERT_EQ(response.model_version_status_size(), 1);
  EXPECT_EQ(response.model_version_status(0).version(), 1);

  ExpectError(Status(R"(model_spec { name: "echo" version { value: 7 } })", &response),
              grpc::StatusCode::NOT_FOUND, "Could not find version 7 of model 'echo'");
  ExpectError(Status(R"(model_spec { name: "missing" })", &response), grpc::StatusCode::NOT_FOUND,
              "unknown model 'missing'");
  ExpectError(Status(R"(model_spec {})", &response), grpc::StatusCode::INVALID_ARGUMENT,
              "model_spec.name is empty");
}

TEST_F(TfServingServiceTest, ClassifyRunsExamplesThroughAClassifySignature) {
  tfs::ClassificationRequest request = Parse<tfs::ClassificationRequest>(
      R"(model_spec { name: "classifier" }
         input { example_list { examples: [ "ex-a", "ex-b" ] } })");
  tfs::ClassificationResponse response;
  grpc::Status status =
      Call(*prediction_stub_, &tfs::PredictionService::Stub::Classify, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model_spec().name(), "classifier");
  EXPECT_EQ(response.model_spec().version().value(), 1);
  EXPECT_EQ(response.model_spec().signature_name(), "classify_x");
  ASSERT_EQ(response.result().classifications_size(), 2);
  ASSERT_EQ(response.result().classifications(0).classes_size(), 1);
  EXPECT_EQ(response.result().classifications(0).classes(0).label(), "ex-a");
  EXPECT_EQ(response.result().classifications(1).classes(0).label(), "ex-b");

  // The context's bytes come first in every example.
  request = Parse<tfs::ClassificationRequest>(
      R"(model_spec { name: "classifier" }
         input { example_list_with_context { examples: [ "1", "2" ] context: "ctx-" } })");
  response.Clear();
  ASSERT_TRUE(
      Call(*prediction_stub_, &tfs::PredictionService::Stub::Classify, request, &response).ok());
  ASSERT_EQ(response.result().classifications_size(), 2);
  EXPECT_EQ(response.result().classifications(1).classes(0).label(), "ctx-2");

  request = Parse<tfs::ClassificationRequest>(
      R"(model_spec { name: "classifier" } input { example_list {} })");
  ExpectError(Call(*prediction_stub_, &tfs::PredictionService::Stub::Classify, request, &response),
              grpc::StatusCode::INVALID_ARGUMENT, "input holds no examples");
  request = Parse<tfs::ClassificationRequest>(
      R"(model_spec { name: "echo" } input { example_list { examples: "e" } })");
  ExpectError(Call(*prediction_stub_, &tfs::PredictionService::Stub::Classify, request, &response),
              grpc::StatusCode::UNIMPLEMENTED,
              "Classify needs a signature of method tensorflow/serving/classify");
}

TEST_F(TfServingServiceTest, RegressNeedsARegressSignatureWithFp32Outputs) {
  tfs::RegressionRequest request = Parse<tfs::RegressionRequest>(
      R"(model_spec { name: "echo" } input { example_list { examples: "e" } })");
  tfs::RegressionResponse response;
  ExpectError(Call(*prediction_stub_, &tfs::PredictionService::Stub::Regress, request, &response),
              grpc::StatusCode::UNIMPLEMENTED,
              "Regress needs a signature of method tensorflow/serving/regress");
  request = Parse<tfs::RegressionRequest>(
      R"(model_spec { name: "classifier" } input { example_list { examples: "e" } })");
  ExpectError(Call(*prediction_stub_, &tfs::PredictionService::Stub::Regress, request, &response),
              grpc::StatusCode::UNIMPLEMENTED, "(method tensorflow/serving/classify)");
  // The fake backend echoes the examples (BYTES), which is no regression.
  request = Parse<tfs::RegressionRequest>(
      R"(model_spec { name: "regressor" } input { example_list { examples: "e" } })");
  ExpectError(Call(*prediction_stub_, &tfs::PredictionService::Stub::Regress, request, &response),
              grpc::StatusCode::INTERNAL, "no FP32 output 'outputs'");
  EXPECT_EQ(response.result().regressions_size(), 0);
}

}  // namespace
}  // namespace modeld::transport::grpc_tfserving
