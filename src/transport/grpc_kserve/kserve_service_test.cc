#include "transport/grpc_kserve/kserve_service.h"

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kserve/grpc_service.grpc.pb.h"
#include "service/testing/fake_backend_service.h"

namespace modeld::transport::grpc_kserve {
namespace {

using ::inference::GRPCInferenceService;
using Stub = ::inference::GRPCInferenceService::Stub;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string FloatBytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

template <typename T>
std::vector<T> Values(const std::string& bytes) {
  std::vector<T> values(bytes.size() / sizeof(T));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
  return values;
}

inference::ModelInferRequest::InferInputTensor* AddInput(inference::ModelInferRequest& request,
                                                         const std::string& name,
                                                         const std::string& datatype,
                                                         const std::vector<int64_t>& shape) {
  auto* input = request.add_inputs();
  input->set_name(name);
  input->set_datatype(datatype);
  for (int64_t dim : shape) input->add_shape(dim);
  return input;
}

// The call failed with `code`, and its message holds `fragment`.
void ExpectError(const grpc::Status& status, grpc::StatusCode code, const std::string& fragment) {
  EXPECT_EQ(status.error_code(), code) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(fragment));
}

// An "echo" request: x FP32 of `shape` holding `values`, raw.
inference::ModelInferRequest EchoRequest(const std::vector<int64_t>& shape,
                                         const std::vector<float>& values) {
  inference::ModelInferRequest request;
  request.set_model_name("echo");
  AddInput(request, "x", "FP32", shape);
  request.add_raw_input_contents(FloatBytes(values));
  return request;
}

class KServeServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    serving_.AddModel("echo", R"(backend: "fake" max_batch_size: 8 version_policy { all {} }
        input { name: "x" data_type: TYPE_FP32 dims: [ 3 ] }
        output { name: "y" data_type: TYPE_FP32 dims: [ 3 ] })",
                      {1, 2});
    serving_.AddModel("pair", R"(backend: "fake"
        input { name: "a" data_type: TYPE_INT64 dims: [ -1 ] }
        input { name: "b" data_type: TYPE_BOOL dims: [ -1 ] }
        output { name: "c" data_type: TYPE_INT64 dims: [ -1 ] }
        output { name: "d" data_type: TYPE_BOOL dims: [ -1 ] })");
    serving_.AddModel("failing", R"(backend: "fake"
        parameters { key: "behavior" value { string_value: "fail" } }
        input { name: "x" data_type: TYPE_FP32 dims: [ 3 ] }
        output { name: "y" data_type: TYPE_FP32 dims: [ 3 ] })");
    serving_.AddModel("broken", R"(backend: "fake"
        parameters { key: "load_error" value { string_value: "boom" } }
        input { name: "x" data_type: TYPE_FP32 dims: [ 3 ] }
        output { name: "y" data_type: TYPE_FP32 dims: [ 3 ] })");
    ASSERT_TRUE(serving_.Start(Mode()).ok());
    kserve_ = std::make_unique<KServeGrpcService>(serving_.service());
    grpc::ServerBuilder builder;
    builder.RegisterService(kserve_.get());
    builder.RegisterCallbackGenericService(&kserve_->infer_calls());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = GRPCInferenceService::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }

  // The server first (it waits for the RPCs in flight), then the models' worker threads.
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
    serving_.Drain();
  }

  virtual service::ControlMode Mode() const { return service::ControlMode::kNone; }

  // One unary call with a deadline.
  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Request&, Response*),
                    const Request& request, Response* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return (stub_.get()->*rpc)(&context, request, response);
  }

  grpc::Status Infer(const inference::ModelInferRequest& request,
                     inference::ModelInferResponse* response) {
    return Call(&Stub::ModelInfer, request, response);
  }

  bool ModelReady(const std::string& name, const std::string& version = "") {
    inference::ModelReadyRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelReadyResponse response;
    grpc::Status status = Call(&Stub::ModelReady, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.ready();
  }

  common::RealClock clock_;
  testing::FakeBackendService serving_{clock_};
  std::unique_ptr<KServeGrpcService> kserve_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Stub> stub_;
};

TEST_F(KServeServiceTest, ServerLiveAndReadyFollowTheService) {
  inference::ServerLiveResponse live;
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(Call(&Stub::ServerLive, inference::ServerLiveRequest(), &live).ok());
  ASSERT_TRUE(Call(&Stub::ServerReady, inference::ServerReadyRequest(), &ready).ok());
  EXPECT_TRUE(live.live());
  EXPECT_TRUE(ready.ready());

  serving_.service().StartDraining();
  live.Clear();
  ready.set_ready(true);
  ASSERT_TRUE(Call(&Stub::ServerLive, inference::ServerLiveRequest(), &live).ok());
  ASSERT_TRUE(Call(&Stub::ServerReady, inference::ServerReadyRequest(), &ready).ok());
  EXPECT_TRUE(live.live());  // draining is not dead
  EXPECT_FALSE(ready.ready());
}

TEST_F(KServeServiceTest, ModelReadyIsFalseRatherThanAnError) {
  EXPECT_TRUE(ModelReady("echo"));
  EXPECT_TRUE(ModelReady("echo", "1"));
  EXPECT_TRUE(ModelReady("echo", "2"));
  EXPECT_FALSE(ModelReady("echo", "3"));
  EXPECT_FALSE(ModelReady("echo", "x"));  // not a version number: not ready, no error
  EXPECT_FALSE(ModelReady("missing"));
  EXPECT_FALSE(ModelReady("broken"));
  EXPECT_TRUE(ModelReady("failing"));  // it loaded; only its runs fail
}

TEST_F(KServeServiceTest, ServerMetadataNamesModeldAndItsExtensions) {
  inference::ServerMetadataResponse metadata;
  ASSERT_TRUE(Call(&Stub::ServerMetadata, inference::ServerMetadataRequest(), &metadata).ok());
  EXPECT_EQ(metadata.name(), "modeld");
  EXPECT_FALSE(metadata.version().empty());
  EXPECT_THAT(metadata.extensions(), ElementsAre("model_configuration", "model_repository"));
}

TEST_F(KServeServiceTest, ModelMetadataDescribesTheConfig) {
  inference::ModelMetadataRequest request;
  request.set_name("echo");
  inference::ModelMetadataResponse metadata;
  grpc::Status status = Call(&Stub::ModelMetadata, request, &metadata);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(metadata.name(), "echo");
  EXPECT_THAT(metadata.versions(), ElementsAre("1", "2"));
  EXPECT_EQ(metadata.platform(), "fake");
  ASSERT_EQ(metadata.inputs_size(), 1);
  EXPECT_EQ(metadata.inputs(0).name(), "x");
  EXPECT_EQ(metadata.inputs(0).datatype(), "FP32");
  EXPECT_THAT(metadata.inputs(0).shape(), ElementsAre(-1, 3));  // batch dimension included
  ASSERT_EQ(metadata.outputs_size(), 1);
  EXPECT_EQ(metadata.outputs(0).name(), "y");
  EXPECT_THAT(metadata.outputs(0).shape(), ElementsAre(-1, 3));

  request.set_name("pair");
  metadata.Clear();
  ASSERT_TRUE(Call(&Stub::ModelMetadata, request, &metadata).ok());
  ASSERT_EQ(metadata.inputs_size(), 2);
  EXPECT_EQ(metadata.inputs(1).datatype(), "BOOL");
  EXPECT_THAT(metadata.inputs(1).shape(), ElementsAre(-1));  // no batch dimension

  request.set_name("missing");
  ExpectError(Call(&Stub::ModelMetadata, request, &metadata), grpc::StatusCode::NOT_FOUND,
              "unknown model 'missing'");

  request.set_name("echo");
  request.set_version("7");
  ExpectError(Call(&Stub::ModelMetadata, request, &metadata), grpc::StatusCode::NOT_FOUND,
              "has no version 7");

  request.set_version("x");
  ExpectError(Call(&Stub::ModelMetadata, request, &metadata), grpc::StatusCode::INVALID_ARGUMENT,
              "model version 'x'");

  request.set_name("broken");
  request.clear_version();
  ExpectError(Call(&Stub::ModelMetadata, request, &metadata), grpc::StatusCode::UNAVAILABLE,
              "boom");
}

TEST_F(KServeServiceTest, ModelConfigAnswersTheConfigFile) {
  inference::ModelConfigRequest request;
  request.set_name("echo");
  request.set_version("1");
  inference::ModelConfigResponse response;
  grpc::Status status = Call(&Stub::ModelConfig, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.config().name(), "echo");
  EXPECT_EQ(response.config().backend(), "fake");
  EXPECT_EQ(response.config().max_batch_size(), 8);
  ASSERT_EQ(response.config().input_size(), 1);
  EXPECT_EQ(response.config().input(0).name(), "x");
  EXPECT_THAT(response.config().input(0).dims(), ElementsAre(3));

  request.set_name("missing");
  ExpectError(Call(&Stub::ModelConfig, request, &response), grpc::StatusCode::NOT_FOUND,
              "unknown model 'missing'");
  request.set_name("echo");
  request.set_version("0");
  ExpectError(Call(&Stub::ModelConfig, request, &response), grpc::StatusCode::INVALID_ARGUMENT,
              "model version '0'");
}

TEST_F(KServeServiceTest, InferWithRawContentsEchoesTheInput) {
  const std::vector<float> values = {0.5f, -1.25f, 3e38f, 1e-45f, 0.0f, -0.0f};
  inference::ModelInferRequest request = EchoRequest({2, 3}, values);
  request.set_id("req-1");
  inference::ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model_name(), "echo");
  EXPECT_EQ(response.model_version(), "2");  // the newest ready version
  EXPECT_EQ(response.id(), "req-1");
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "y");
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(2, 3));
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  EXPECT_EQ(response.raw_output_contents(0), FloatBytes(values));  // bit for bit

  request.set_model_version("1");
  response.Clear();
  ASSERT_TRUE(Infer(request, &response).ok());
  EXPECT_EQ(response.model_version(), "1");
}

TEST_F(KServeServiceTest, InferWithTypedContentsAnswersRaw) {
  inference::ModelInferRequest request;
  request.set_model_name("pair");
  auto* a = AddInput(request, "a", "INT64", {3});
  for (int64_t v : {int64_t{-3}, int64_t{9}, int64_t{1} << 40}) {
    a->mutable_contents()->add_int64_contents(v);
  }
  auto* b = AddInput(request, "b", "BOOL", {3});
  for (bool v : {true, false, true}) b->mutable_contents()->add_bool_contents(v);
  inference::ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.outputs_size(), 2);
  ASSERT_EQ(response.raw_output_contents_size(), 2);
  bool saw_c = false, saw_d = false;
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& output = response.outputs(i);
    EXPECT_THAT(output.shape(), ElementsAre(3)) << output.name();
    EXPECT_EQ(output.contents().int64_contents_size(), 0);  // raw, never typed
    if (output.name() == "c") {
      saw_c = true;
      EXPECT_EQ(output.datatype(), "INT64");
      EXPECT_THAT(Values<int64_t>(response.raw_output_contents(i)),
                  ElementsAre(-3, 9, int64_t{1} << 40));
    } else if (output.name() == "d") {
      saw_d = true;
      EXPECT_EQ(output.datatype(), "BOOL");
      EXPECT_EQ(response.raw_output_contents(i), std::string("\x01\x00\x01", 3));
    }
  }
  EXPECT_TRUE(saw_c && saw_d);

  // FP32 typed contents too.
  inference::ModelInferRequest echo;
  echo.set_model_name("echo");
  auto* x = AddInput(echo, "x", "FP32", {1, 3});
  for (float v : {1.5f, 2.5f, -4.0f}) x->mutable_contents()->add_fp32_contents(v);
  response.Clear();
  ASSERT_TRUE(Infer(echo, &response).ok());
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  EXPECT_THAT(Values<float>(response.raw_output_contents(0)), ElementsAre(1.5f, 2.5f, -4.0f));
}

TEST_F(KServeServiceTest, BadInputsAreInvalidArgumentNamingTheInput) {
  inference::ModelInferResponse response;
  // Wrong datatype.
  inference::ModelInferRequest request;
  request.set_model_name("echo");
  AddInput(request, "x", "FP64", {1, 3});
  request.add_raw_input_contents(std::string(24, '\0'));
  ExpectError(Infer(request, &response), grpc::StatusCode::INVALID_ARGUMENT,
              "input 'x' has datatype FP64 but model 'echo' expects FP32");

  // Wrong shape.
  ExpectError(Infer(EchoRequest({1, 4}, {1, 2, 3, 4}), &response),
              grpc::StatusCode::INVALID_ARGUMENT,
              "input 'x' has shape [1, 4] but model 'echo' expects [-1, 3]");

  // Over max_batch_size.
  ExpectError(Infer(EchoRequest({9, 3}, std::vector<float>(27, 1.0f)), &response),
              grpc::StatusCode::INVALID_ARGUMENT, "max_batch_size 8");

  // Bytes that do not fit the shape (caught by the codec or the validator).
  ExpectError(Infer(EchoRequest({1, 3}, {1, 2}), &response), grpc::StatusCode::INVALID_ARGUMENT,
              "'x'");

  // An input the model does not have.
  request = EchoRequest({1, 3}, {1, 2, 3});
  request.mutable_inputs(0)->set_name("z");
  ExpectError(Infer(request, &response), grpc::StatusCode::INVALID_ARGUMENT, "unknown input 'z'");

  // Raw entries that do not match the inputs (the codec).
  request = EchoRequest({1, 3}, {1, 2, 3});
  request.add_raw_input_contents("extra");
  ExpectError(Infer(request, &response), grpc::StatusCode::INVALID_ARGUMENT, "raw_input_contents");
}

TEST_F(KServeServiceTest, UnknownModelOrVersionIsNotFound) {
  inference::ModelInferRequest request = EchoRequest({1, 3}, {1, 2, 3});
  request.set_model_name("missing");
  inference::ModelInferResponse response;
  ExpectError(Infer(request, &response), grpc::StatusCode::NOT_FOUND, "unknown model 'missing'");

  request.set_model_name("echo");
  request.set_model_version("5");
  ExpectError(Infer(request, &response), grpc::StatusCode::NOT_FOUND, "has no version 5");

  request.set_model_version("five");
  ExpectError(Infer(request, &response), grpc::StatusCode::INVALID_ARGUMENT, "'five'");

  request.set_model_name("broken");
  request.clear_model_version();
  ExpectError(Infer(request, &response), grpc::StatusCode::UNAVAILABLE, "boom");
}

TEST_F(KServeServiceTest, FailingModelIsInternalWithItsMessage) {
  inference::ModelInferRequest request = EchoRequest({3}, {1, 2, 3});
  request.set_model_name("failing");
  inference::ModelInferResponse response;
  ExpectError(Infer(request, &response), grpc::StatusCode::INTERNAL, "fake model failure");
  EXPECT_EQ(response.outputs_size(), 0);
}

TEST_F(KServeServiceTest, ServerStillAnswersAfterBadRequests) {
  inference::ModelInferResponse response;
  inference::ModelInferRequest bad = EchoRequest({1, 3}, {1});
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Infer(bad, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  inference::ModelInferRequest failing = EchoRequest({3}, {1, 2, 3});
  failing.set_model_name("failing");
  EXPECT_EQ(Infer(failing, &response).error_code(), grpc::StatusCode::INTERNAL);

  response.Clear();
  grpc::Status status = Infer(EchoRequest({1, 3}, {7, 8, 9}), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  EXPECT_THAT(Values<float>(response.raw_output_contents(0)), ElementsAre(7, 8, 9));
  EXPECT_TRUE(ModelReady("echo"));
}

// One call of `method` carrying `bytes` as its message, through gRPC's generic stub.
grpc::Status CallWithBytes(grpc::Server& server, const std::string& method,
                           const std::string& bytes, std::string* answer = nullptr) {
  grpc::GenericStub stub(server.InProcessChannel(grpc::ChannelArguments()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    status = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  if (answer != nullptr && status.ok()) {
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(response.Dump(&slices).ok());
    answer->clear();
    for (const grpc::Slice& part : slices) answer->append(part.begin(), part.end());
  }
  return status;
}

TEST_F(KServeServiceTest, BytesThatAreNoModelInferRequestAreInvalidArgument) {
  ExpectError(CallWithBytes(*server_, kModelInferMethod, "\xff\xff\xff not protobuf"),
              grpc::StatusCode::INVALID_ARGUMENT, "not a valid inference.ModelInferRequest");
  // A truncated message: the first bytes of a valid one.
  std::string whole = EchoRequest({1, 3}, {1, 2, 3}).SerializeAsString();
  ExpectError(CallWithBytes(*server_, kModelInferMethod, whole.substr(0, whole.size() - 5)),
              grpc::StatusCode::INVALID_ARGUMENT, "not a valid inference.ModelInferRequest");
  // model_name (field 1, a proto3 string) holding bytes that are not UTF-8.
  ExpectError(CallWithBytes(*server_, kModelInferMethod, std::string("\x0a\x02\xc3\x28", 4)),
              grpc::StatusCode::INVALID_ARGUMENT, "not UTF-8");
  EXPECT_EQ(kserve_->infer_calls().Refused(), 3);

  // The same path serves a valid message, and the server is unharmed.
  std::string answer;
  grpc::Status status = CallWithBytes(*server_, kModelInferMethod, whole, &answer);
  ASSERT_TRUE(status.ok()) << status.error_message();
  inference::ModelInferResponse response;
  ASSERT_TRUE(response.ParseFromString(answer));
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  EXPECT_THAT(Values<float>(response.raw_output_contents(0)), ElementsAre(1, 2, 3));
}

TEST_F(KServeServiceTest, OverTheInflightLimitModelInferIsRefusedAtOnceNamingTheFlag) {
  service::Admission admission(1, nullptr);
  KServeGrpcService limited(serving_.service(), {.admission = &admission});
  grpc::ServerBuilder builder;
  builder.RegisterService(&limited);
  builder.RegisterCallbackGenericService(&limited.infer_calls());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  const std::string request = EchoRequest({1, 3}, {1, 2, 3}).SerializeAsString();

  std::optional<absl::StatusOr<service::Admission::Ticket>> held = admission.Admit();
  ASSERT_TRUE(held->ok());  // another call holds the one slot
  ExpectError(CallWithBytes(*server, kModelInferMethod, request),
              grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-inflight-requests=1");
  EXPECT_EQ(limited.infer_calls().Refused(), 1);

  held.reset();  // that call finished
  grpc::Status status = CallWithBytes(*server, kModelInferMethod, request);
  EXPECT_TRUE(status.ok()) << status.error_message();
  // The answered call gives its slot back once gRPC is done with it (OnDone, just after).
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (admission.in_flight() != 0 && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(admission.in_flight(), 0);
  server->Shutdown(std::chrono::system_clock::now());
}

TEST_F(KServeServiceTest, AnUnknownMethodIsUnimplementedNamingIt) {
  ExpectError(CallWithBytes(*server_, "/inference.GRPCInferenceService/ModelTrain", ""),
              grpc::StatusCode::UNIMPLEMENTED, "/inference.GRPCInferenceService/ModelTrain");
}

TEST_F(KServeServiceTest, LoadAndUnloadAreUnavailableWithoutExplicitModeAndTheIndexIsNot) {
  inference::RepositoryIndexResponse index;
  ASSERT_TRUE(Call(&Stub::RepositoryIndex, inference::RepositoryIndexRequest(), &index).ok());
  EXPECT_GT(index.models_size(), 0);

  inference::RepositoryModelLoadRequest load;
  load.set_model_name("echo");
  inference::RepositoryModelLoadResponse loaded;
  ExpectError(Call(&Stub::RepositoryModelLoad, load, &loaded), grpc::StatusCode::UNAVAILABLE,
              "--model-control-mode=explicit");

  inference::RepositoryModelUnloadRequest unload;
  unload.set_model_name("echo");
  inference::RepositoryModelUnloadResponse unloaded;
  ExpectError(Call(&Stub::RepositoryModelUnload, unload, &unloaded), grpc::StatusCode::UNAVAILABLE,
              "--model-control-mode=explicit");
  EXPECT_TRUE(ModelReady("echo"));  // nothing was unloaded
}

// --model-control-mode=explicit: the repository extension is on.
class KServeRepositoryTest : public KServeServiceTest {
 protected:
  service::ControlMode Mode() const override { return service::ControlMode::kExplicit; }

  // "name/version" -> "STATE: reason" of every index entry.
  std::map<std::string, std::string> Index(bool ready_only) {
    inference::RepositoryIndexRequest request;
    request.set_ready(ready_only);
    inference::RepositoryIndexResponse response;
    grpc::Status status = Call(&Stub::RepositoryIndex, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::map<std::string, std::string> entries;
    for (const auto& model : response.models()) {
      entries[model.name() + "/" + model.version()] = model.state() + ": " + model.reason();
    }
    return entries;
  }

  grpc::Status Load(const std::string& name, const std::string& parameter = "") {
    inference::RepositoryModelLoadRequest request;
    request.set_model_name(name);
    if (!parameter.empty()) (*request.mutable_parameters())[parameter].set_bool_param(true);
    inference::RepositoryModelLoadResponse response;
    return Call(&Stub::RepositoryModelLoad, request, &response);
  }

  grpc::Status Unload(const std::string& name, const std::string& parameter = "") {
    inference::RepositoryModelUnloadRequest request;
    request.set_model_name(name);
    if (!parameter.empty()) (*request.mutable_parameters())[parameter].set_bool_param(true);
    inference::RepositoryModelUnloadResponse response;
    return Call(&Stub::RepositoryModelUnload, request, &response);
  }
};

TEST_F(KServeRepositoryTest, IndexListsEveryVersionWithItsState) {
  serving_.AddModel("late", R"(backend: "fake"
      input { name: "x" data_type: TYPE_FP32 dims: [ 3 ] }
      output { name: "y" data_type: TYPE_FP32 dims: [ 3 ] })");
  std::map<std::string, std::string> all = Index(/*ready_only=*/false);
  EXPECT_EQ(all["echo/1"], "READY: ");
  EXPECT_EQ(all["echo/2"], "READY: ");
  EXPECT_EQ(all["failing/1"], "READY: ");
  EXPECT_THAT(all["broken/1"], HasSubstr("UNAVAILABLE: "));
  EXPECT_THAT(all["broken/1"], HasSubstr("boom"));
  EXPECT_EQ(all["late/"], "UNAVAILABLE: unloaded");  // a folder not loaded yet
  EXPECT_EQ(all.size(), 6u) << ::testing::PrintToString(all);

  std::map<std::string, std::string> ready = Index(/*ready_only=*/true);
  EXPECT_EQ(ready.size(), 4u) << ::testing::PrintToString(ready);
  EXPECT_FALSE(ready.contains("broken/1"));
  EXPECT_FALSE(ready.contains("late/"));
}

TEST_F(KServeRepositoryTest, LoadAndUnloadChangeWhatIsServed) {
  ASSERT_TRUE(Unload("echo", "unload_dependents").ok());  // Triton's clients send it
  EXPECT_FALSE(ModelReady("echo"));
  inference::ModelInferResponse response;
  EXPECT_EQ(Infer(EchoRequest({1, 3}, {1, 2, 3}), &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ExpectError(Unload("echo"), grpc::StatusCode::NOT_FOUND, "not loaded");

  grpc::Status status = Load("echo");
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(ModelReady("echo", "2"));
  status = Infer(EchoRequest({1, 3}, {1, 2, 3}), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(Values<float>(response.raw_output_contents(0)), ElementsAre(1, 2, 3));

  serving_.AddModel("late", R"(backend: "fake"
      input { name: "x" data_type: TYPE_FP32 dims: [ 3 ] }
      output { name: "y" data_type: TYPE_FP32 dims: [ 3 ] })");
  EXPECT_FALSE(ModelReady("late"));
  ASSERT_TRUE(Load("late").ok());
  EXPECT_TRUE(ModelReady("late"));

  ExpectError(Load("nowhere"), grpc::StatusCode::NOT_FOUND, "'nowhere' has no folder");
  ExpectError(Load("broken"), grpc::StatusCode::UNAVAILABLE, "boom");
  ExpectError(Load("echo", "config"), grpc::StatusCode::INVALID_ARGUMENT, "'config'");
  ExpectError(Unload("echo", "files"), grpc::StatusCode::INVALID_ARGUMENT, "'files'");
  EXPECT_TRUE(ModelReady("echo"));  // refused requests change nothing
}

}  // namespace
}  // namespace modeld::transport::grpc_kserve
