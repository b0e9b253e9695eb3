// The gRPC server credentials every modeld gRPC port uses: plaintext or TLS (with client
// certificates required and verified when a client CA is given), and, with a TokenStore, a
// bearer-token check on every call of every service registered on the server, so a service
// added later is protected without code of its own. Only the health calls (ServerLive,
// ServerReady, ModelReady) may be left open.
//
// The token check runs in gRPC's server auth filter (an auth metadata processor), before a
// call reaches its service: a call without a valid token ends UNAUTHENTICATED and never
// runs.
#pragma once

#include <memory>

#include "absl/strings/string_view.h"
#include "grpcpp/security/server_credentials.h"
#include "transport/auth/tls_files.h"
#include "transport/auth/token_store.h"

namespace modeld::transport::auth {

struct GrpcSecurity {
  const TlsMaterial* tls = nullptr;    // null: plaintext
  const TokenStore* tokens = nullptr;  // null: no token needed
  bool health_open = true;             // health calls need no token
};

// Whether `method` (a gRPC path, "/package.Service/Method") is a health call.
bool IsGrpcHealthMethod(absl::string_view method);

// `security.tls` and `security.tokens` must outlive every server built with the result.
std::shared_ptr<grpc::ServerCredentials> MakeGrpcServerCredentials(const GrpcSecurity& security);

}  // namespace modeld::transport::auth
