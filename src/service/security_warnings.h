// The start-up warnings about exposure: a port bound beyond the loopback interface without
// TLS, or without a bearer token, is reachable by whoever can reach the machine.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "service/options.h"

namespace modeld::service {

// Whether `address` ("host:port", "[v6]:port" or "unix:path") is reachable from this machine
// only: a 127.0.0.0/8 or ::1 host, "localhost", or a Unix socket. 0.0.0.0, [::] and any other
// host count as reachable from outside.
bool IsLoopbackAddress(absl::string_view address);

// One line per port bound beyond loopback without TLS, and one per port bound beyond loopback
// without --auth-token-file. Empty when every port is loopback-only or protected.
std::vector<std::string> SecurityWarnings(const ServerOptions& options);

}  // namespace modeld::service
