#include "transport/http/http_server.h"

#include <atomic>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "transport/http/http_session.h"

namespace modeld::transport::http {

using session_internal::Admission;
using session_internal::PlainStream;
using session_internal::Session;
using session_internal::SessionBase;
using session_internal::SessionHost;
using session_internal::TlsStream;
namespace net = session_internal::net;
namespace beast = session_internal::beast;
namespace ssl = session_internal::ssl;
using tcp = net::ip::tcp;

class HttpServer::Impl : public SessionHost {
 public:
  Impl(const HttpServerOptions& options, Handler& handler)
      : options_(options),
        handler_(handler),
        ioc_(std::max(1, options.threads)),
        acceptor_(net::make_strand(ioc_)),
        work_(net::make_work_guard(ioc_)) {}

  ~Impl() { Shutdown(absl::ZeroDuration()); }

  absl::Status ConfigureTls();
  absl::Status Listen();
  void Run();
  void Shutdown(absl::Duration grace);
  int port() const { return port_; }

  const HttpServerOptions& options() const override { return options_; }
  Handler& handler() override { return handler_; }
  ssl::context& tls_context() override { return *tls_context_; }
  bool shutting_down() const override { return shutting_down_.load(std::memory_order_acquire); }
  void Unregister(SessionBase* session, Admission admission) override {
    absl::MutexLock lock(&mu_);
    sessions_.erase(session);
    if (admission == Admission::kAdmitted) --admitted_;
    if (admission == Admission::kProbe) --probes_;
  }

 private:
  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  template <class Stream>
  void StartSession(tcp::socket&& socket);

  const HttpServerOptions options_;
  Handler& handler_;
  std::optional<ssl::context> tls_context_;  // set when options_.tls is
  // Declared before ioc_: sessions destroyed with the io_context still unregister here.
  absl::Mutex mu_;
  absl::flat_hash_map<SessionBase*, std::weak_ptr<SessionBase>> sessions_ ABSL_GUARDED_BY(mu_);
  // Sessions counted against max_connections (those refused for being over it are not).
  int64_t admitted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t probes_ ABSL_GUARDED_BY(mu_) = 0;  // sessions in the probe slots beyond them
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> shutting_down_{false};
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  net::executor_work_guard<net::io_context::executor_type> work_;
  std::unique_ptr<net::steady_timer> retry_timer_;
  std::vector<std::thread> threads_;
  int port_ = 0;
};

absl::Status HttpServer::Impl::Listen() {
  const std::string& address = options_.address;
  const size_t colon = address.rfind(':');
  std::string host = colon == std::string::npos ? "" : address.substr(0, colon);
  const std::string port_text = colon == std::string::npos ? "" : address.substr(colon + 1);
  int port = 0;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || !absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP address '", address, "' is not HOST:PORT (e.g. 127.0.0.1:8000)"));
  }
  beast::error_code ec;
  tcp::resolver resolver(ioc_);
  const auto endpoints = resolver.resolve(host, port_text, tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve the HTTP address '", address, "': ", ec.message()));
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve HTTP on ", address, ": ", ec.message()));
  }
  port_ = acceptor_.local_endpoint().port();
  return absl::OkStatus();
}

void HttpServer::Impl::Run() {
  Accept();
  for (int i = 0; i < std::max(1, options_.threads); ++i) {
    threads_.emplace_back([this] {
      // A handler that throws (out of memory, say) must not take the server down with it.
      for (;;) {
        try {
          ioc_.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("HTTP I/O thread caught an exception: {}", e.what());
        }
      }
    });
  }
}

void HttpServer::Impl::Accept() {
  acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
  if (ec) {
    // Out of file descriptors, say: try again shortly rather than spin.
    spdlog::warn("HTTP accept failed: {}", ec.message());
    retry_timer_ = std::make_unique<net::steady_timer>(acceptor_.get_executor(),
                                                       std::chrono::milliseconds(100));
    retry_timer_->async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec && acceptor_.is_open()) Accept();
    });
    return;
  }
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  if (tls_context_.has_value()) {
    StartSession<TlsStream>(std::move(socket));
  } else {
    StartSession<PlainStream>(std::move(socket));
  }
  Accept();
}

template <class Stream>
void HttpServer::Impl::StartSession(tcp::socket&& socket) {
  std::shared_ptr<Session<Stream>> session;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    Admission admission = Admission::kRefused;
    if (admitted_ < options_.max_connections) {
      admission = Admission::kAdmitted;
      ++admitted_;
    } else if (options_.is_probe != nullptr && probes_ < kProbeConnections) {
      admission = Admission::kProbe;
      ++probes_;
    }
    session = std::make_shared<Session<Stream>>(std::move(socket), *this, admission);
    sessions_.emplace(session.get(), session);
  }
  session->Start();
}

absl::Status HttpServer::Impl::ConfigureTls() {
  if (!options_.tls.has_value()) return absl::OkStatus();
  const auth::TlsMaterial& tls = *options_.tls;
  tls_context_.emplace(ssl::context::tls_server);
  ssl::context& context = *tls_context_;
  beast::error_code ec;
  // TLS 1.2 and 1.3 only; OpenSSL's default cipher list otherwise.
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                          ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                          ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                      ec);
  if (!ec) context.use_certificate_chain(net::buffer(tls.cert_chain_pem), ec);
  if (!ec) context.use_private_key(net::buffer(tls.private_key_pem), ssl::context::pem, ec);
  if (!ec && !tls.client_ca_pem.empty()) {
    context.add_certificate_authority(net::buffer(tls.client_ca_pem), ec);
    if (!ec) {
      context.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
    }
  }
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot set up HTTPS with the given certificate files: ", ec.message()));
  }
  return absl::OkStatus();
}

void HttpServer::Impl::Shutdown(absl::Duration grace) {
  std::vector<std::shared_ptr<SessionBase>> sessions;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    shutting_down_.store(true, std::memory_order_release);
    for (const auto& [raw, weak] : sessions_) {
      if (auto session = weak.lock()) sessions.push_back(std::move(session));
    }
  }
  net::post(acceptor_.get_executor(), [this] {
    beast::error_code ignored;
    acceptor_.close(ignored);
    if (retry_timer_) retry_timer_->cancel();
  });
  for (const auto& session : sessions) {
    net::post(session->executor(), [session] { session->Stop(); });
  }
  sessions.clear();  // the sessions' own references decide when they end
  {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(
        absl::Condition(
            +[](absl::flat_hash_map<SessionBase*, std::weak_ptr<SessionBase>>* open) {
              return open->empty();
            },
            &sessions_),
        grace);
  }
  work_.reset();
  ioc_.stop();
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
  // The close posted above may not have run before the stop; no thread runs now, so close
  // here, or the port would go on accepting into its backlog until destruction.
  beast::error_code ignored;
  acceptor_.close(ignored);
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              Handler& handler) {
  auto impl = std::make_shared<Impl>(options, handler);
  if (absl::Status status = impl->ConfigureTls(); !status.ok()) return status;
  if (absl::Status status = impl->Listen(); !status.ok()) return status;
  impl->Run();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::~HttpServer() {
  if (impl_ != nullptr) impl_->Shutdown(absl::ZeroDuration());
}

int HttpServer::port() const { return impl_->port(); }

void HttpServer::Shutdown(absl::Duration grace) { impl_->Shutdown(grace); }

}  // namespace modeld::transport::http
