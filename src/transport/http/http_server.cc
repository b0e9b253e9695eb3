#include "transport/http/http_server.h"

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "common/logging.h"

namespace modeld::transport::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

constexpr size_t kFirstReadBytes = 16 * 1024;
// After refusing a request whose body is still arriving, how long to read and discard it so the
// client sees the error instead of a connection reset.
constexpr std::chrono::seconds kLingerTime(2);

std::chrono::milliseconds ToChrono(absl::Duration d) { return absl::ToChronoMilliseconds(d); }

// What the server needs of a connection, whatever its stream (plain TCP or TLS).
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Runs on the connection's strand.
  virtual void Stop() = 0;
  virtual net::any_io_executor executor() = 0;
};

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

}  // namespace

template <class Stream>
class Session;

class HttpServer::Impl {
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

  const HttpServerOptions& options() const { return options_; }
  Handler& handler() { return handler_; }
  ssl::context& tls_context() { return *tls_context_; }
  // Whether Shutdown has begun: every answer written from then on closes its connection, even
  // when the session's own Stop() has not run yet.
  bool shutting_down() const { return shutting_down_.load(std::memory_order_acquire); }
  void Unregister(SessionBase* session, bool admitted) {
    absl::MutexLock lock(&mu_);
    sessions_.erase(session);
    if (admitted) --admitted_;
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
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> shutting_down_{false};
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  net::executor_work_guard<net::io_context::executor_type> work_;
  std::unique_ptr<net::steady_timer> retry_timer_;
  std::vector<std::thread> threads_;
  int port_ = 0;
};

// One connection over `Stream` (PlainStream or TlsStream). Every member is used on the
// connection's strand only. A session that is not `admitted` (over max_connections) answers
// 503 at once and closes.
template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(tcp::socket&& socket, HttpServer::Impl& server, bool admitted)
      : stream_(MakeStream(std::move(socket), server)), server_(server), admitted_(admitted) {}
  ~Session() override { server_.Unregister(this, admitted_); }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (std::is_same_v<Stream, TlsStream>) {
        self->Handshake();
      } else {
        self->Begin();
      }
    });
  }

  // Shutdown: an idle connection closes now; one in the middle of a request finishes it and
  // then closes. Runs on the strand.
  void Stop() override {
    stopping_ = true;
    if (state_ == State::kReading && !request_started_) Lowest().cancel();
  }

  net::any_io_executor executor() override { return stream_.get_executor(); }

 private:
  static Stream MakeStream(tcp::socket&& socket, HttpServer::Impl& server) {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      return Stream(std::move(socket), server.tls_context());
    } else {
      (void)server;
      return Stream(std::move(socket));
    }
  }

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  // TLS: the handshake must finish within the header timeout (a client that connects and
  // stays silent holds a connection no longer than one that sends headers slowly).
  void Handshake() {
    Lowest().expires_after(ToChrono(options().header_timeout));
    stream_.async_handshake(ssl::stream_base::server,
                            [self = this->shared_from_this()](beast::error_code ec) {
                              if (ec) {
                                spdlog::debug("HTTPS handshake failed: {}", ec.message());
                                return self->Close();
                              }
                              self->Begin();
                            });
  }

  void Begin() {
    if (!admitted_) {
      return Refuse(503, absl::StrCat("too many connections: modeld serves at most ",
                                      options().max_connections,
                                      " HTTP connections at once (--http-max-connections)"));
    }
    ReadRequest();
  }

  enum class State { kReading, kHandling, kWriting, kClosed };

  const HttpServerOptions& options() const { return server_.options(); }

  void ReadRequest() {
    state_ = State::kReading;
    request_started_ = false;
    if (stopping_) return Close();
    parser_.emplace();
    parser_->header_limit(options().max_header_bytes);
    parser_->body_limit(static_cast<uint64_t>(options().max_body_bytes));
    if (buffer_.size() > 0) return ReadHeader();  // a pipelined request is already here
    // Wait for the first byte under the idle timeout; the header timeout starts with it.
    Lowest().expires_after(ToChrono(options().idle_timeout));
    stream_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return self->Close();
                              self->buffer_.commit(n);
                              self->ReadHeader();
                            });
  }

  void ReadHeader() {
    request_started_ = true;
    Lowest().expires_after(ToChrono(options().header_timeout));
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = this->shared_from_this()](beast::error_code ec, size_t) {
                               if (ec) return self->OnReadError(ec);
                               self->OnHeader();
                             });
  }

  void OnHeader() {
    const auto& header = parser_->get();
    version_ = header.version();
    keep_alive_ = header.keep_alive();
    if (parser_->chunked()) {
      return Refuse(411,
                    "chunked request bodies (Transfer-Encoding: chunked) are not supported; "
                    "send the body with a Content-Length");
    }
    if (parser_->content_length().value_or(0) > static_cast<uint64_t>(options().max_body_bytes)) {
      return Refuse(413, absl::StrCat("request body of ", *parser_->content_length(),
                                      " bytes is larger than the limit of ",
                                      options().max_body_bytes, " bytes (--http-max-body-bytes)"));
    }
    if (!parser_->is_done() && beast::iequals(header[bhttp::field::expect], "100-continue")) {
      interim_.emplace(bhttp::status::continue_, version_);
      Lowest().expires_after(ToChrono(options().idle_timeout));
      return bhttp::async_write(stream_, *interim_,
                                [self = this->shared_from_this()](beast::error_code ec, size_t) {
                                  if (ec) return self->Close();
                                  self->ReadBody();
                                });
    }
    ReadBody();
  }

  void ReadBody() {
    if (parser_->is_done()) return Dispatch();
    Lowest().expires_after(ToChrono(options().idle_timeout));
    bhttp::async_read_some(stream_, buffer_, *parser_,
                           [self = this->shared_from_this()](beast::error_code ec, size_t) {
                             if (ec) return self->OnReadError(ec);
                             self->ReadBody();
                           });
  }

  void OnReadError(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) {
      const auto length = parser_->content_length();  // boost::optional
      return Refuse(
          413, absl::StrCat("request body", length ? absl::StrCat(" of ", *length, " bytes") : "",
                            " is larger than the limit of ", options().max_body_bytes,
                            " bytes (--http-max-body-bytes)"));
    }
    if (ec == bhttp::error::header_limit) {
      return Refuse(431,
                    absl::StrCat("request headers are larger than the limit of ",
                                 options().max_header_bytes, " bytes (--http-max-header-bytes)"));
    }
    // A timeout closes the socket (Beast does); so do a hang-up and a cancel.
    if (ec == beast::error::timeout || ec == bhttp::error::end_of_stream ||
        ec == bhttp::error::partial_message || ec == net::error::operation_aborted ||
        ec.category() != bhttp::make_error_code(bhttp::error::end_of_stream).category()) {
      return Close();
    }
    Refuse(400, absl::StrCat("malformed HTTP request: ", ec.message()));
  }

  void Dispatch() {
    state_ = State::kHandling;
    Lowest().expires_never();
    bhttp::request<bhttp::string_body> message = parser_->release();
    parser_.reset();
    auto request = std::make_shared<Request>();
    request->method = std::string(message.method_string());
    request->target = std::string(message.target());
    for (const auto& field : message) {
      std::string name(field.name_string());
      absl::AsciiStrToLower(&name);
      request->headers.emplace_back(std::move(name), std::string(field.value()));
    }
    request->body = std::move(message.body());
    if (auto encoding = request->Header("content-encoding");
        encoding.has_value() && !absl::EqualsIgnoreCase(*encoding, "identity")) {
      return Write(ErrorResponse(415, absl::StrCat("Content-Encoding '", *encoding,
                                                   "' is not supported; send the body "
                                                   "uncompressed")));
    }
    server_.handler().Handle(
        std::move(request), [self = this->shared_from_this()](Response response) {
          // Inference answers arrive on model worker threads: write from the connection's strand.
          net::post(self->executor(), [self, response = std::move(response)]() mutable {
            self->Write(std::move(response));
          });
        });
  }

  // Answers a request that is not read whole, then closes the connection.
  void Refuse(int status, absl::string_view message) {
    linger_ = true;
    Response response = ErrorResponse(status, message);
    response.close = true;
    Write(std::move(response));
  }

  void Write(Response response) {
    if (state_ == State::kClosed) return;
    state_ = State::kWriting;
    response_.emplace();
    response_->version(version_);
    response_->result(static_cast<unsigned>(response.status));
    if (response.status == 499) response_->reason("Client Closed Request");
    response_->set(bhttp::field::server, "modeld");
    response_->set(bhttp::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) response_->set(name, value);
    response_->body() = std::move(response.body);
    const bool keep_alive =
        keep_alive_ && !response.close && !stopping_ && !server_.shutting_down();
    response_->keep_alive(keep_alive);
    response_->prepare_payload();
    Lowest().expires_after(ToChrono(options().idle_timeout));
    bhttp::async_write(stream_, *response_,
                       [self = this->shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                         self->response_.reset();
                         if (ec) return self->Close();
                         if (!keep_alive) return self->linger_ ? self->Linger() : self->Close();
                         self->ReadRequest();
                       });
  }

  // Half-closes, then reads and drops what the client still sends (for at most kLingerTime),
  // so a refused client reads our answer before it sees the connection close.
  void Linger() {
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    linger_until_ = std::chrono::steady_clock::now() + kLingerTime;
    Discard();
  }

  void Discard() {
    if (std::chrono::steady_clock::now() >= linger_until_) return Close();
    buffer_.clear();
    Lowest().expires_at(linger_until_);
    stream_.async_read_some(buffer_.prepare(64 * 1024),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->Close();
                              self->Discard();
                            });
  }

  void Close() {
    state_ = State::kClosed;
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Lowest().close();
  }

  Stream stream_;
  HttpServer::Impl& server_;
  const bool admitted_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::empty_body>> interim_;
  std::optional<bhttp::response<bhttp::string_body>> response_;
  State state_ = State::kReading;
  bool request_started_ = false;
  bool keep_alive_ = true;
  bool stopping_ = false;
  bool linger_ = false;
  unsigned version_ = 11;
  std::chrono::steady_clock::time_point linger_until_;
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
    const bool admitted = admitted_ < options_.max_connections;
    if (admitted) ++admitted_;
    session = std::make_shared<Session<Stream>>(std::move(socket), *this, admitted);
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
