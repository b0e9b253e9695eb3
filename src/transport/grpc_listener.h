// GrpcListener: modeld's own listening socket for a gRPC port, so that it can cap the
// connections open at once (--grpc-max-connections), which gRPC 1.51 cannot.
//
// It accepts each connection and hands it to gRPC through ServerBuilder's external connection
// acceptor, made with the port's credentials, so TLS, client certificates and bearer tokens are
// gRPC's as with a port gRPC listens on itself. A connection over the cap is closed at once,
// so the client's calls fail UNAVAILABLE ("Socket closed") rather than wait; refusals are
// counted in modeld_connections_rejected_total{transport="grpc"} and logged, naming the flag,
// at most every 10 s.
//
// How a connection is known to be gone: gRPC owns its descriptor once handed over, so the
// listener keeps a duplicate and watches it for a hang-up. gRPC shuts a socket down (both
// directions) before it closes it, for every reason it closes (the peer left, an idle or
// server shutdown, an error), and a reset by the peer reports the same, so the hang-up comes
// exactly when the connection ends; the listener then closes its duplicate.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "grpcpp/server_builder.h"
#include "metrics/registry.h"

namespace modeld::transport {

struct GrpcListenerOptions {
  std::string address;          // host:port or [v6]:port; port 0 picks a free one
  int64_t max_connections = 0;  // 0: no limit
  metrics::Registry* registry = nullptr;  // may be null
};

// Thread-safe. Lifecycle: Bind, Start once (after the gRPC server is built), Stop (before the
// gRPC server shuts down, so no connection arrives meanwhile).
class GrpcListener {
 public:
  // Binds and listens on `options.address` (the first address it resolves to);
  // UNAVAILABLE naming it when that fails.
  static absl::StatusOr<std::unique_ptr<GrpcListener>> Bind(GrpcListenerOptions options);
  ~GrpcListener();  // Stop()
  GrpcListener(const GrpcListener&) = delete;
  GrpcListener& operator=(const GrpcListener&) = delete;

  int port() const { return port_; }

  // Starts accepting on a thread of its own; each admitted connection goes to `acceptor`.
  void Start(std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor);

  // Stops accepting (the listening socket is closed). Connections already handed to gRPC stay
  // gRPC's.
  void Stop();

  // Connections handed to gRPC and not yet ended.
  int64_t open_connections() const { return open_.load(std::memory_order_relaxed); }

 private:
  GrpcListener(GrpcListenerOptions options, int listen_fd, int port, int wake_fd, int epoll_fd);
  void Loop();
  void AcceptAll();
  void Refuse(int fd);
  void Ended(int watch_fd);

  const GrpcListenerOptions options_;
  const int listen_fd_;
  const int port_;
  const int wake_fd_;
  const int epoll_fd_;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor_;
  std::thread thread_;
  std::atomic<int64_t> open_{0};
  std::atomic<bool> stopped_{false};
  metrics::Counter* refused_ = nullptr;
  absl::flat_hash_set<int> watches_;  // the duplicates; the loop's thread only
  int64_t refused_since_log_ = 0;  // the loop's thread only
  int64_t last_log_ns_ = 0;        // the loop's thread only
};

}  // namespace modeld::transport
