// Server: wires backends, the model manager, the inference service and the transports into
// one process, and shuts them down in order.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "service/options.h"

namespace modeld::app {

// Not thread-safe: Start, then Shutdown once, from one thread.
class Server {
 public:
  // Listens, then loads every model on a thread of its own (a model that fails is reported
  // and skipped; ServerReady turns true once all have loaded or failed) and returns at once.
  // Fails when an address cannot be bound or the repository cannot be read.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const service::ServerOptions& options);

  virtual ~Server() = default;

  // The gRPC port actually bound (useful when the address asked for port 0).
  virtual int grpc_port() const = 0;

  // Graceful stop: not ready at once, refuse new requests, stop loading after the version in
  // progress, let in-flight ones finish (up to the drain timeout), then drain every model's
  // queue.
  virtual void Shutdown() = 0;

  // --model-control-mode=poll: rescans the repository now (SIGHUP); logged and ignored in
  // the other modes.
  virtual void Rescan() = 0;

  // --auth-token-file: reads the token file again (SIGHUP, in every model-control mode). A file
  // that cannot be read or holds no token is logged and the tokens in use stay.
  virtual void ReloadAuthTokens() = 0;
};

}  // namespace modeld::app
