// modeld-bench-echo: the transport floor. A bare KServe V2 gRPC server that runs no model:
// ModelInfer answers at once, on gRPC's callback thread, with outputs of the model's shapes
// (output bytes copied from the input, zero-padded; an output with -1 dims gets the input
// itself), so the bytes on the wire are exactly the model's. ModelMetadata and ModelConfig
// describe the model from its config.pbtxt, so modeld-bench drives it unchanged. Same
// callback API and message-size limit as modeld.
//
//   modeld-bench-echo --config=examples/models/mlp/config.pbtxt --address=127.0.0.1:0
//
// Logs "gRPC listening on HOST:PORT" on stderr when ready; stops on SIGTERM or SIGINT.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/flags.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "kserve/grpc_service.grpc.pb.h"

ABSL_FLAG(std::string, config, "", "The model's config.pbtxt (required).");
ABSL_FLAG(std::string, model, "", "Model name; default: the config's folder name.");
ABSL_FLAG(std::string, address, "127.0.0.1:0", "Where to listen; port 0 picks a free port.");
ABSL_FLAG(int64_t, max_message_bytes, 64 << 20, "As modeld's --grpc-max-message-bytes.");

namespace modeld::bench {
namespace {

int ElementSize(inference::DataType type) {
  switch (type) {
    case inference::TYPE_BOOL:
    case inference::TYPE_UINT8:
    case inference::TYPE_INT8:
      return 1;
    case inference::TYPE_UINT16:
    case inference::TYPE_INT16:
    case inference::TYPE_FP16:
      return 2;
    case inference::TYPE_UINT32:
    case inference::TYPE_INT32:
    case inference::TYPE_FP32:
      return 4;
    default:
      return 8;  // 64-bit types; BYTES is not supported here
  }
}

std::string DataTypeName(inference::DataType type) {
  return std::string(absl::StripPrefix(inference::DataType_Name(type), "TYPE_"));
}

class EchoService final : public inference::GRPCInferenceService::CallbackService {
 public:
  explicit EchoService(inference::ModelConfig config) : config_(std::move(config)) {}

  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override {
    if (request->name() != config_.name()) return Finish(context, NotFound(request->name()));
    response->set_name(config_.name());
    response->add_versions("1");
    response->set_platform("echo");
    const auto add = [&](const auto& specs, auto* out) {
      for (const auto& spec : specs) {
        auto* meta = out->Add();
        meta->set_name(spec.name());
        meta->set_datatype(DataTypeName(spec.data_type()));
        if (config_.max_batch_size() > 0) meta->add_shape(-1);
        for (int64_t dim : spec.dims()) meta->add_shape(dim);
      }
    };
    add(config_.input(), response->mutable_inputs());
    add(config_.output(), response->mutable_outputs());
    return Finish(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override {
    if (request->name() != config_.name()) return Finish(context, NotFound(request->name()));
    *response->mutable_config() = config_;
    return Finish(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override {
    if (request->model_name() != config_.name()) {
      return Finish(context, NotFound(request->model_name()));
    }
    if (request->raw_input_contents_size() < 1 || request->inputs_size() < 1) {
      return Finish(context, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no raw input"));
    }
    const int64_t batch = config_.max_batch_size() > 0 && request->inputs(0).shape_size() > 0
                              ? request->inputs(0).shape(0)
                              : 1;
    const std::string& input = request->raw_input_contents(0);
    response->set_model_name(config_.name());
    response->set_model_version("1");
    response->set_id(request->id());
    for (const auto& spec : config_.output()) {
      auto* output = response->add_outputs();
      output->set_name(spec.name());
      output->set_datatype(DataTypeName(spec.data_type()));
      std::string* raw = response->add_raw_output_contents();
      const bool variable =
          std::any_of(spec.dims().begin(), spec.dims().end(), [](int64_t dim) { return dim < 0; });
      if (variable) {
        // A variable output shape (an identity model's): answer with the input itself.
        *output->mutable_shape() = request->inputs(0).shape();
        *raw = input;
        continue;
      }
      int64_t bytes = ElementSize(spec.data_type());
      if (config_.max_batch_size() > 0) {
        output->add_shape(batch);
        bytes *= batch;
      }
      for (int64_t dim : spec.dims()) {
        output->add_shape(dim);
        bytes *= dim;
      }
      raw->assign(input, 0, std::min<size_t>(input.size(), bytes));
      raw->resize(bytes);
    }
    return Finish(context, grpc::Status::OK);
  }

 private:
  static grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context,
                                          const grpc::Status& status) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }

  static grpc::Status NotFound(const std::string& name) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("unknown model '", name, "'"));
  }

  const inference::ModelConfig config_;
};

int stop_pipe[2] = {-1, -1};

void OnStopSignal(int) {
  const char byte = 1;
  if (write(stop_pipe[1], &byte, 1) < 0) {
  }
}

absl::StatusOr<inference::ModelConfig> ReadConfig(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  if (!file) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  inference::ModelConfig config;
  if (!google::protobuf::TextFormat::ParseFromString(text.str(), &config)) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a model config"));
  }
  std::string name = absl::GetFlag(FLAGS_model);
  if (name.empty()) {
    // <repository>/<model>/config.pbtxt: the folder names the model, as in modeld.
    std::string folder = path.substr(0, path.rfind('/'));
    name = folder.substr(folder.rfind('/') + 1);
  }
  config.set_name(name);
  return config;
}

int Main() {
  absl::StatusOr<inference::ModelConfig> config = ReadConfig(absl::GetFlag(FLAGS_config));
  if (!config.ok()) {
    std::cerr << "modeld-bench-echo: " << config.status() << "\n";
    return 2;
  }
  EchoService service(*std::move(config));
  const int max_bytes = static_cast<int>(
      std::min<int64_t>(absl::GetFlag(FLAGS_max_message_bytes), std::numeric_limits<int>::max()));
  int port = 0;
  grpc::ServerBuilder builder;
  const std::string address = absl::GetFlag(FLAGS_address);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(max_bytes);
  builder.SetMaxSendMessageSize(max_bytes);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "modeld-bench-echo: cannot listen on " << address << "\n";
    return 1;
  }
  if (pipe(stop_pipe) != 0) return 1;
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGINT, OnStopSignal);
  std::cerr << "gRPC listening on " << address.substr(0, address.rfind(':')) << ":" << port
            << std::endl;
  char byte = 0;
  while (read(stop_pipe[0], &byte, 1) < 0 && errno == EINTR) {
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}

}  // namespace
}  // namespace modeld::bench

int main(int argc, char** argv) {
  modeld::bench::ParseDashedFlags(argc, argv);
  return modeld::bench::Main();
}
