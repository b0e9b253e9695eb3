#include "service/security_warnings.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace modeld::service {

bool IsLoopbackAddress(absl::string_view address) {
  if (absl::StartsWith(address, "unix:")) return true;
  absl::string_view host = address;
  if (absl::ConsumePrefix(&host, "[")) {
    host = host.substr(0, host.find(']'));
    return host == "::1";
  }
  if (const size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    host = host.substr(0, colon);
  }
  return host == "localhost" || absl::StartsWith(host, "127.");
}

std::vector<std::string> SecurityWarnings(const ServerOptions& options) {
  struct Port {
    absl::string_view what;
    const std::string& address;
    bool tls;
    absl::string_view tls_flag;
  };
  const Port ports[] = {
      {"gRPC", options.grpc_address, !options.grpc_tls_cert.empty(), "--grpc-tls-cert"},
      {"TensorFlow Serving gRPC", options.tfserving_grpc_address, !options.grpc_tls_cert.empty(),
       "--grpc-tls-cert"},
      {"HTTP", options.http_address, !options.http_tls_cert.empty(), "--http-tls-cert"},
  };
  const bool tokens = !options.auth_token_file.empty();
  const absl::string_view control =
      options.model_control_mode == "explicit" ? ", and load and unload models" : "";
  std::vector<std::string> warnings;
  for (const Port& port : ports) {
    if (port.address.empty() || IsLoopbackAddress(port.address)) continue;
    if (!port.tls) {
      warnings.push_back(absl::StrCat(
          port.what, " on ", port.address, " is reachable beyond this machine without TLS (",
          port.tls_flag, "): requests, answers and bearer tokens cross the network in clear text"));
    }
    if (!tokens) {
      warnings.push_back(absl::StrCat(
          port.what, " on ", port.address,
          " is reachable beyond this machine without bearer tokens (--auth-token-file): "
          "whoever can connect can run every model",
          control));
    }
  }
  return warnings;
}

}  // namespace modeld::service
