// Server: wires backends, the model manager, the inference service and the transports into
// one process, and shuts them down in order.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "server/options.h"

namespace modeld::server {

// Not thread-safe: Start, then Shutdown once, from one thread.
class Server {
 public:
  // Listens, then loads every model (a model that fails is reported and skipped) and returns
  // once all have loaded or failed. Fails when an address cannot be bound or the repository
  // cannot be read.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);

  virtual ~Server() = default;

  // The gRPC port actually bound (useful when the address asked for port 0).
  virtual int grpc_port() const = 0;

  // Graceful stop: not ready at once, refuse new requests, let in-flight ones finish (up to
  // the drain timeout), then drain every model's queue.
  virtual void Shutdown() = 0;
};

}  // namespace modeld::server
