// ServerOptions: every setting of the modeld process, filled from command-line flags.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace modeld::server {

struct ServerOptions {
  // Folder with one sub-folder per model: <model>/config.pbtxt and <model>/<version>/.
  std::string model_repository;
  // host:port for gRPC (KServe V2). Loopback by default; port 0 picks a free port (logged).
  std::string grpc_address = "127.0.0.1:8001";
  // Largest gRPC message received or sent; a bigger request gets RESOURCE_EXHAUSTED.
  int64_t grpc_max_message_bytes = int64_t{64} << 20;
  // host:port for HTTP/1.1 (KServe V2 REST, TensorFlow Serving REST, /metrics). Loopback by
  // default; port 0 picks a free port (logged).
  std::string http_address = "127.0.0.1:8000";
  // I/O threads serving HTTP connections (they parse, queue and write; models run elsewhere).
  int64_t http_threads = 2;
  // Largest HTTP request body; a bigger request gets 413.
  int64_t http_max_body_bytes = int64_t{64} << 20;
  // How long a client may take to send a request's headers, counted from its first byte.
  int64_t http_header_timeout_seconds = 10;
  // How long an HTTP connection may stay silent: between kept-alive requests, while a body
  // arrives, while a response is written. Then it is closed.
  int64_t http_idle_timeout_seconds = 60;
  // After SIGTERM, how long in-flight requests may take to finish before they are cancelled.
  int64_t drain_timeout_seconds = 30;
  // trace, debug, info, warn, error, critical or off.
  std::string log_level = "info";
};

struct ParsedFlags {
  ServerOptions options;
  bool help = false;  // --help was given: print FlagsHelp() and exit 0
};

// Parses --name=value or --name value. INVALID_ARGUMENT naming an unknown flag, a missing or
// malformed value, or a missing --model-repository.
absl::StatusOr<ParsedFlags> ParseFlags(int argc, const char* const* argv);

// The usage text: every flag with its default and meaning.
std::string FlagsHelp();

}  // namespace modeld::server
