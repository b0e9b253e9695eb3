// TLS certificate material read from the --*-tls-* flags' PEM files, checked once at start so
// that a wrong file stops modeld with a clear message instead of failing every handshake.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace modeld::transport::auth {

struct TlsFiles {
  std::string cert_file;       // PEM: the server certificate, then any intermediates
  std::string key_file;        // PEM: its private key (unencrypted)
  std::string client_ca_file;  // PEM: CAs client certificates must chain to; empty: no mTLS

  bool enabled() const { return !cert_file.empty(); }
};

struct TlsMaterial {
  std::string cert_chain_pem;
  std::string private_key_pem;
  std::string client_ca_pem;  // empty: client certificates are neither asked for nor checked
};

// Reads the files. INVALID_ARGUMENT naming the flag (`flag_prefix` + "-cert", "-key",
// "-client-ca", e.g. "--grpc-tls") when a file cannot be read, holds no PEM certificate or
// key, or when the key does not belong to the certificate.
absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFiles& files, absl::string_view flag_prefix);

}  // namespace modeld::transport::auth
