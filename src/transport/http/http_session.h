// Session: one HTTP/1.1 connection of the HttpServer, over a plain or a TLS stream, from the
// first byte to the close (header and idle timeouts, limits, keep-alive, lingering after a
// refusal). Private to http_server.cc: this header includes Boost.Beast and Asio, which stay
// out of every other file (docs/architecture.md).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "boost/asio.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "common/logging.h"
#include "transport/http/framing.h"
#include "transport/http/handler.h"
#include "transport/http/http_server.h"

namespace modeld::transport::http::session_internal {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

constexpr size_t kFirstReadBytes = 16 * 1024;
// After refusing a request whose body is still arriving, how long to read and discard it so the
// client sees the error instead of a connection reset.
constexpr std::chrono::seconds kLingerTime(2);

inline std::chrono::milliseconds ToChrono(absl::Duration d) {
  return absl::ToChronoMilliseconds(d);
}

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

// How a connection was let in: within max_connections, in a probe slot beyond it (one request
// of HttpServerOptions::is_probe, then close), or not at all (503, then close).
enum class Admission { kAdmitted, kProbe, kRefused };

// What a Session needs of its server. Thread-safe.
class SessionHost {
 public:
  virtual ~SessionHost() = default;
  virtual const HttpServerOptions& options() const = 0;
  virtual Handler& handler() = 0;
  // Set up when options().tls is.
  virtual ssl::context& tls_context() = 0;
  // Whether Shutdown has begun: every answer written from then on closes its connection, even
  // when the session's own Stop() has not run yet.
  virtual bool shutting_down() const = 0;
  // The session is gone; `admission`: what it counted against.
  virtual void Unregister(SessionBase* session, Admission admission) = 0;
};

// One connection over `Stream` (PlainStream or TlsStream). Every member is used on the
// connection's strand only. A refused session (over max_connections and the probe slots)
// answers 503 at once and closes; a probe session answers one probe request, or 503.
template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(tcp::socket&& socket, SessionHost& server, Admission admission)
      : stream_(MakeStream(std::move(socket), server)), server_(server), admission_(admission) {}
  ~Session() override { server_.Unregister(this, admission_); }

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
  static Stream MakeStream(tcp::socket&& socket, SessionHost& server) {
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
    if (admission_ == Admission::kRefused) return RefuseTooMany();
    ReadRequest();
  }

  void RefuseTooMany() {
    Refuse(503,
           absl::StrCat("too many connections: modeld serves at most ", options().max_connections,
                        " HTTP connections at once (--http-max-connections)"));
  }

  enum class State { kReading, kHandling, kWriting, kClosed };

  const HttpServerOptions& options() const { return server_.options(); }

  void ReadRequest() {
    state_ = State::kReading;
    request_started_ = false;
    head_ = false;
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
    HeaderFields fields;
    for (const auto& field : header) {
      fields.emplace_back(absl::AsciiStrToLower(std::string(field.name_string())),
                          std::string(field.value()));
    }
    if (absl::Status framing = CheckRequestFraming(fields); !framing.ok()) {
      return Refuse(400, framing.message());  // and closes: the next request cannot be found
    }
    if (admission_ == Admission::kProbe) {
      const absl::string_view target(header.target().data(), header.target().size());
      const bool get = header.method() == bhttp::verb::get || header.method() == bhttp::verb::head;
      if (!get || !options().is_probe(target.substr(0, target.find('?')))) return RefuseTooMany();
      keep_alive_ = false;  // the slot is for one probe
    }
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
    // HEAD is answered as GET without the body (RFC 9110 §9.3.2): the Router routes it as GET,
    // and Write leaves the body out.
    head_ = message.method() == bhttp::verb::head;
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
    if (options().admission != nullptr && options().is_inference != nullptr) {
      const absl::string_view target = request->target;
      if (options().is_inference(request->method, target.substr(0, target.find('?')))) {
        absl::StatusOr<service::Admission::Ticket> admitted = options().admission->Admit();
        if (!admitted.ok()) {
          Response refusal = ErrorResponse(429, admitted.status().message());
          refusal.headers.emplace_back("Retry-After", "1");
          return Write(std::move(refusal));
        }
        ticket_.emplace(*std::move(admitted));
      }
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
    // The answer is handed to the transport: the call's slot goes back now, not once the write
    // completes, so a client that reads it and sends at once never finds its own call holding it.
    ticket_.reset();
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
    response_->prepare_payload();  // Content-Length: what GET would send, for HEAD too
    if (head_) response_->body().clear();
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
  SessionHost& server_;
  const Admission admission_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::empty_body>> interim_;
  std::optional<bhttp::response<bhttp::string_body>> response_;
  // The --max-inflight-requests slot of the inference request being answered, if any.
  std::optional<service::Admission::Ticket> ticket_;
  State state_ = State::kReading;
  bool request_started_ = false;
  bool head_ = false;  // the request being answered is a HEAD
  bool keep_alive_ = true;
  bool stopping_ = false;
  bool linger_ = false;
  unsigned version_ = 11;
  std::chrono::steady_clock::time_point linger_until_;
};

}  // namespace modeld::transport::http::session_internal
