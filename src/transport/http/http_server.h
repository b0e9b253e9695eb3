// HttpServer: HTTP/1.1 on Boost.Beast (included only by http_server.cc). A fixed pool of I/O
// threads runs every connection; each connection reads one request, hands it to the Handler,
// writes the reply when it comes (from any thread), then reads the next (keep-alive;
// pipelined requests wait their turn).
//
// With `tls`, every connection is HTTPS (TLS 1.2+): the handshake must finish within
// header_timeout, and with a client CA a client without a certificate it signed fails the
// handshake (mTLS).
//
// What it refuses by itself, each with {"error": "..."} and then closing the connection:
//   503  a connection beyond max_connections open at once (answered before its request)
//   413  a Content-Length (or a body) above max_body_bytes
//   411  Transfer-Encoding: chunked request bodies (not supported: send Content-Length)
//   431  request line and headers above max_header_bytes
//   400  a request that is not HTTP/1.x
// and 415 for a Content-Encoding other than identity (the connection stays open). A client
// that sends `Expect: 100-continue` gets the interim 100 before the body is read.
//
// Timeouts: header_timeout bounds the time from a request's first byte until its headers are
// complete (slow-header clients); idle_timeout bounds any other wait for the client: the gap
// between requests on a kept-alive connection, each pause while a body arrives, and each
// response write. A timeout closes the connection without an answer (the client is not
// reading or not sending). A connection waiting for its inference answer has no timeout.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/admission.h"
#include "transport/auth/tls_files.h"
#include "transport/http/handler.h"

namespace modeld::transport::http {

struct HttpServerOptions {
  std::string address = "127.0.0.1:8000";  // host:port ([v6]:port); port 0 picks a free one
  int threads = 2;                         // I/O threads
  int64_t max_body_bytes = int64_t{64} << 20;
  uint32_t max_header_bytes = 64 * 1024;
  int64_t max_connections = 1024;
  // Requests a prober sends (GET or HEAD of these paths: health, readiness, metrics). When set,
  // up to kProbeConnections more connections than max_connections are let in for them alone, so
  // a flood that holds every other connection cannot fail a liveness probe; a probe connection
  // answers one request and closes. Null: none.
  std::function<bool(absl::string_view path)> is_probe;
  // Inference calls (method, path without the query) and the cap they are admitted under
  // (--max-inflight-requests): once such a request's body has arrived, before it is parsed, a
  // refusal answers 429 with Retry-After; an admitted request holds its slot until its answer
  // is written. Either null: no cap. `admission` must outlive the server.
  std::function<bool(absl::string_view method, absl::string_view path)> is_inference;
  service::Admission* admission = nullptr;
  std::optional<auth::TlsMaterial> tls;  // nullopt: plain HTTP
  absl::Duration header_timeout = absl::Seconds(10);
  absl::Duration idle_timeout = absl::Seconds(60);
};

// How many connections beyond max_connections may serve probes (HttpServerOptions::is_probe).
inline constexpr int64_t kProbeConnections = 8;

// Thread-safe. `handler` must outlive the server.
class HttpServer {
 public:
  // Binds, listens and starts the I/O threads. INVALID_ARGUMENT for a malformed address;
  // UNAVAILABLE when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           Handler& handler);

  // Shuts down (with no grace) if Shutdown() was not called. Replies still held by other
  // threads must not be invoked after this.
  ~HttpServer();

  // The port actually bound.
  int port() const;

  // Graceful stop: stops accepting, closes idle connections at once, lets connections that are
  // reading a request or waiting for/writing a response finish it (up to `grace`), then closes
  // whatever is left and joins the I/O threads. Replies that arrive afterwards are dropped.
  // Idempotent.
  void Shutdown(absl::Duration grace);

  class Impl;

 private:
  explicit HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace modeld::transport::http
