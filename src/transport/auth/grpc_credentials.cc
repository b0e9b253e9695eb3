#include "transport/auth/grpc_credentials.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include <optional>
#include <string>

#include "absl/strings/strip.h"
#include "transport/auth/bearer.h"
#include "transport/status_codes.h"

namespace modeld::transport::auth {
namespace {

constexpr absl::string_view kKServeService = "/inference.GRPCInferenceService/";

absl::string_view SliceView(const grpc_slice& slice) {
  return absl::string_view(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)),
                           GRPC_SLICE_LENGTH(slice));
}

// What the processor needs; owned by the core credentials (freed by their destroy hook).
struct ProcessorState {
  const TokenStore* tokens;
  bool health_open;
};

// Runs for every call, on a gRPC thread, before the call reaches its service. Never blocks:
// the token check is a hash and a few comparisons under a reader lock.
void ProcessMetadata(void* state, grpc_auth_context* /*context*/, const grpc_metadata* metadata,
                     size_t count, grpc_process_auth_metadata_done_cb done, void* user_data) {
  const auto* processor = static_cast<const ProcessorState*>(state);
  std::optional<absl::string_view> authorization;
  absl::string_view method;
  for (size_t i = 0; i < count; ++i) {
    const absl::string_view key = SliceView(metadata[i].key);
    if (key == "authorization" && !authorization.has_value()) {
      authorization = SliceView(metadata[i].value);
    } else if (key == ":path") {
      method = SliceView(metadata[i].value);
    }
  }
  if (processor->health_open && IsGrpcHealthMethod(method)) {
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_OK, nullptr);
    return;
  }
  const absl::Status status = CheckBearer(*processor->tokens, authorization);
  if (status.ok()) {
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_OK, nullptr);
    return;
  }
  const grpc::Status wire = ToGrpcStatus(status);
  const std::string message = wire.error_message();
  done(user_data, nullptr, 0, nullptr, 0, static_cast<grpc_status_code>(wire.error_code()),
       message.c_str());
}

// grpc::ServerCredentials over core credentials: the C++ InsecureServerCredentials() accepts no
// auth metadata processor, the core plaintext credentials do.
class CoreServerCredentials : public grpc::ServerCredentials {
 public:
  explicit CoreServerCredentials(grpc_server_credentials* credentials)
      : credentials_(credentials) {}
  ~CoreServerCredentials() override { grpc_server_credentials_release(credentials_); }

  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>& /*processor*/) override {
    // modeld sets its processor on the core credentials (MakeGrpcServerCredentials).
  }

 private:
  int AddPortToServer(const std::string& address, grpc_server* server) override {
    return grpc_server_add_http2_port(server, address.c_str(), credentials_);
  }

  grpc_server_credentials* const credentials_;
};

grpc_server_credentials* MakeTlsCredentials(const TlsMaterial& tls) {
  grpc_ssl_pem_key_cert_pair pair = {tls.private_key_pem.c_str(), tls.cert_chain_pem.c_str()};
  const bool mtls = !tls.client_ca_pem.empty();
  return grpc_ssl_server_credentials_create_ex(
      mtls ? tls.client_ca_pem.c_str() : nullptr, &pair, 1,
      mtls ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
           : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
      nullptr);
}

}  // namespace

bool IsGrpcHealthMethod(absl::string_view method) {
  if (!absl::ConsumePrefix(&method, kKServeService)) return false;
  return method == "ServerLive" || method == "ServerReady" || method == "ModelReady";
}

std::shared_ptr<grpc::ServerCredentials> MakeGrpcServerCredentials(const GrpcSecurity& security) {
  if (security.tls == nullptr && security.tokens == nullptr) {
    return grpc::InsecureServerCredentials();
  }
  grpc_server_credentials* credentials = security.tls != nullptr
                                             ? MakeTlsCredentials(*security.tls)
                                             : grpc_insecure_server_credentials_create();
  if (security.tokens != nullptr) {
    grpc_auth_metadata_processor processor;
    processor.process = ProcessMetadata;
    processor.destroy = [](void* state) { delete static_cast<ProcessorState*>(state); };
    processor.state = new ProcessorState{security.tokens, security.health_open};
    grpc_server_credentials_set_auth_metadata_processor(credentials, processor);
  }
  return std::make_shared<CoreServerCredentials>(credentials);
}

}  // namespace modeld::transport::auth
