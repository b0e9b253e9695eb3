#include "transport/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::transport::http {
namespace {

using ::testing::HasSubstr;

constexpr int kWaitMs = 10000;

// Echoes "<METHOD> <target> <body>"; holds requests to /later until the test answers them.
class EchoHandler : public Handler {
 public:
  void Handle(std::shared_ptr<const Request> request, Reply reply) override {
    Response response;
    response.content_type = "text/plain";
    response.body = absl::StrCat(request->method, " ", request->target, " ", request->body);
    if (request->Path() == "/later") {
      absl::MutexLock lock(&mu_);
      held_.emplace_back(std::move(reply), std::move(response));
      return;
    }
    std::move(reply)(std::move(response));
  }

  // Waits until `count` requests are held.
  bool WaitHeld(size_t count) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return held_.size() >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Milliseconds(kWaitMs));
  }

  // Answers the held requests from this (non-I/O) thread, as a model worker would.
  void ReleaseAll() {
    std::vector<std::pair<Reply, Response>> held;
    {
      absl::MutexLock lock(&mu_);
      held.swap(held_);
    }
    for (auto& [reply, response] : held) std::move(reply)(std::move(response));
  }

 private:
  absl::Mutex mu_;
  std::vector<std::pair<Reply, Response>> held_ ABSL_GUARDED_BY(mu_);
};

struct RawResponse {
  int status = 0;
  std::string head;  // status line and headers, lower-cased
  std::string body;
};

// A blocking HTTP/1.1 client on one TCP connection; every read waits at most kWaitMs.
class Client {
 public:
  explicit Client(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  }
  ~Client() { close(fd_); }

  bool connected() const { return connected_; }

  void Send(const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += n;
    }
  }

  // Reads one response (Content-Length framed); nullopt when the connection closes first.
  std::optional<RawResponse> Read() {
    std::optional<RawResponse> response = ReadHead();
    if (!response.has_value()) return std::nullopt;
    size_t length = 0;
    if (size_t at = response->head.find("content-length: "); at != std::string::npos) {
      const size_t line_end = response->head.find("\r\n", at);
      (void)absl::SimpleAtoi(response->head.substr(at + 16, line_end - at - 16), &length);
    }
    while (buffer_.size() < length) {
      if (!Fill()) return std::nullopt;
    }
    response->body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return response;
  }

  // Reads the head of one response: all of a response to HEAD (no body follows it).
  std::optional<RawResponse> ReadHead() {
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    RawResponse response;
    response.head = absl::AsciiStrToLower(buffer_.substr(0, end));
    buffer_.erase(0, end + 4);
    if (!absl::SimpleAtoi(response.head.substr(9, 3), &response.status)) return std::nullopt;
    return response;
  }

  // What was received and not read yet.
  const std::string& unread() const { return buffer_; }

  // Whether the server closes the connection (within kWaitMs), after any buffered bytes.
  bool WaitClosed() {
    while (Fill()) {
    }
    return closed_;
  }

 private:
  bool Fill() {
    pollfd p = {fd_, POLLIN, 0};
    if (poll(&p, 1, kWaitMs) <= 0) return false;
    char chunk[65536];
    const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    buffer_.append(chunk, n);
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string buffer_;
};

std::string Post(const std::string& target, const std::string& body,
                 const std::string& extra_headers = "") {
  return absl::StrCat("POST ", target, " HTTP/1.1\r\nHost: t\r\nContent-Length: ", body.size(),
                      "\r\n", extra_headers, "\r\n", body);
}

std::string Get(const std::string& target) {
  return absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: t\r\n\r\n");
}

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServerOptions options = {}) {
    options.address = "127.0.0.1:0";
    absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, handler_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
  }

  EchoHandler handler_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, KeepAliveAndPipelinedRequestsShareOneConnection) {
  StartServer();
  Client client(server_->port());
  ASSERT_TRUE(client.connected());
  client.Send(Get("/a?q=1"));
  std::optional<RawResponse> first = client.Read();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->body, "GET /a?q=1 ");
  EXPECT_THAT(first->head, HasSubstr("server: modeld"));
  EXPECT_THAT(first->head, HasSubstr("content-type: text/plain"));
  client.Send(Post("/b", "hello") + Get("/c"));  // pipelined: answered in order
  std::optional<RawResponse> second = client.Read();
  std::optional<RawResponse> third = client.Read();
  ASSERT_TRUE(second.has_value() && third.has_value());
  EXPECT_EQ(second->body, "POST /b hello");
  EXPECT_EQ(third->body, "GET /c ");
}

TEST_F(HttpServerTest, RepliesFromAnotherThreadAreWritten) {
  StartServer();
  Client client(server_->port());
  client.Send(Post("/later", "x"));
  ASSERT_TRUE(handler_.WaitHeld(1));
  std::thread worker([&] { handler_.ReleaseAll(); });
  std::optional<RawResponse> response = client.Read();
  worker.join();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->body, "POST /later x");
  client.Send(Get("/next"));  // still open
  EXPECT_EQ(client.Read()->body, "GET /next ");
}

TEST_F(HttpServerTest, OversizeBodyIs413ThenANewConnectionWorks) {
  HttpServerOptions options;
  options.max_body_bytes = 1024;
  StartServer(options);
  Client client(server_->port());
  client.Send(Post("/big", std::string(4096, 'x')));
  std::optional<RawResponse> response = client.Read();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(response->body,
            R"j({"error":"request body of 4096 bytes is larger than the limit of 1024 bytes )j"
            R"j((--http-max-body-bytes)"})j");
  EXPECT_TRUE(client.WaitClosed());
  Client again(server_->port());
  again.Send(Post("/small", std::string(1024, 'y')));
  response = again.Read();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
}

TEST_F(HttpServerTest, RefusesChunkedMalformedAndOversizeHeaders) {
  StartServer();
  {
    Client client(server_->port());
    client.Send(
        "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    std::optional<RawResponse> response = client.Read();
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 411);
    EXPECT_THAT(response->body, HasSubstr("chunked request bodies"));
    EXPECT_TRUE(client.WaitClosed());
  }
  {
    Client client(server_->port());
    client.Send("THIS IS NOT HTTP\r\n\r\n");
    std::optional<RawResponse> response = client.Read();
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 400);
    EXPECT_THAT(response->body, HasSubstr("malformed HTTP request"));
  }
  {
    Client client(server_->port());
    client.Send(absl::StrCat("GET / HTTP/1.1\r\nX-Big: ", std::string(70000, 'a'), "\r\n\r\n"));
    std::optional<RawResponse> response = client.Read();
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 431);
  }
  Client client(server_->port());
  client.Send(Get("/fine"));
  EXPECT_EQ(client.Read()->status, 200);
}

// Request smuggling: when the header leaves the body's length open to two readings, the
// request is refused and the connection closed, so what follows is never read as a request.
TEST_F(HttpServerTest, AmbiguousFramingIs400AndClosesTheConnection) {
  StartServer();
  const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
  for (const std::string& framing :
       {std::string("Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n"),
        std::string("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
        std::string("Content-Length: 5\r\nTransfer-Encoding: identity, chunked, gzip\r\n"),
        std::string("Inference-Header-Content-Length: 2\r\n"
                    "Inference-Header-Content-Length: 3\r\nContent-Length: 5\r\n")}) {
    SCOPED_TRACE(framing);
    Client client(server_->port());
    client.Send(absl::StrCat("POST /c HTTP/1.1\r\nHost: t\r\n", framing, "\r\nhello", smuggled));
    std::optional<RawResponse> response = client.Read();
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 400);
    EXPECT_TRUE(client.WaitClosed());
    EXPECT_EQ(client.unread(), "");  // the smuggled request got no answer
  }
  Client client(server_->port());
  client.Send(Post("/c", "hello",
                   "Inference-Header-Content-Length: 2\r\n"
                   "Inference-Header-Content-Length: 2\r\n"));
  EXPECT_EQ(client.Read()->status, 200);  // the same value twice is one framing
}

// With every connection held (idle, or sending headers slowly), a probe still gets through on
// a connection beyond the limit; anything else there is refused, and so is a connection beyond
// the probe slots.
TEST_F(HttpServerTest, ProbesGetThroughAConnectionFlood) {
  HttpServerOptions options;
  options.max_connections = 2;
  options.is_probe = [](absl::string_view path) { return path == "/health"; };
  StartServer(options);
  Client idle(server_->port());
  Client slow(server_->port());
  slow.Send("GET /slow HTTP/1.1\r\nHost: t\r\n");  // headers never finished
  ASSERT_TRUE(idle.connected() && slow.connected());
  {
    Client probe(server_->port());
    probe.Send(Get("/health?verbose=1"));
    std::optional<RawResponse> response = probe.Read();
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, "GET /health?verbose=1 ");
    EXPECT_TRUE(probe.WaitClosed());  // one probe per slot
  }
  {
    Client other(server_->port());
    other.Send(Get("/model"));
    std::optional<RawResponse> response = other.Read();
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 503);
    EXPECT_THAT(response->body, HasSubstr("too many connections"));
  }
  // Every probe slot held too: the next connection is refused whatever it asks.
  std::vector<std::unique_ptr<Client>> held;
  for (int64_t i = 0; i < kProbeConnections; ++i) {
    held.push_back(std::make_unique<Client>(server_->port()));
  }
  Client late(server_->port());
  late.Send(Get("/health"));
  std::optional<RawResponse> response = late.Read();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 503);
}

TEST_F(HttpServerTest, HeadIsAnsweredAsGetWithoutTheBody) {
  StartServer();
  Client client(server_->port());
  client.Send("HEAD /fine HTTP/1.1\r\nHost: t\r\n\r\n");
  std::optional<RawResponse> head = client.ReadHead();
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_THAT(head->head, HasSubstr("content-length: 11"));  // "HEAD /fine ", as GET sends it
  // No body bytes followed the head: the connection goes on with the next request.
  client.Send(Get("/next"));
  std::optional<RawResponse> next = client.Read();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->body, "GET /next ");
}

TEST_F(HttpServerTest, ContentEncodingIs415AndTheConnectionStaysOpen) {
  StartServer();
  Client client(server_->port());
  client.Send(Post("/z", "abc", "Content-Encoding: gzip\r\n"));
  std::optional<RawResponse> response = client.Read();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 415);
  EXPECT_THAT(response->body, HasSubstr("Content-Encoding 'gzip' is not supported"));
  client.Send(Get("/after"));
  EXPECT_EQ(client.Read()->body, "GET /after ");
}

TEST_F(HttpServerTest, AnswersExpectContinueBeforeTheBody) {
  StartServer();
  Client client(server_->port());
  client.Send("POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  std::optional<RawResponse> interim = client.Read();
  ASSERT_TRUE(interim.has_value());
  EXPECT_EQ(interim->status, 100);
  client.Send("body");
  std::optional<RawResponse> response = client.Read();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->body, "POST /e body");
}

TEST_F(HttpServerTest, TimeoutsCloseSlowAndIdleConnections) {
  HttpServerOptions options;
  options.header_timeout = absl::Milliseconds(200);
  options.idle_timeout = absl::Milliseconds(300);
  StartServer(options);
  Client slow(server_->port());
  slow.Send("GET / HTTP/1.1\r\nHost: t\r\n");  // headers never finish
  Client idle(server_->port());                // never sends
  Client kept(server_->port());
  kept.Send(Get("/one"));
  EXPECT_EQ(kept.Read()->status, 200);
  EXPECT_TRUE(slow.WaitClosed());
  EXPECT_TRUE(idle.WaitClosed());
  EXPECT_TRUE(kept.WaitClosed());  // kept alive, then idle too long
}

TEST_F(HttpServerTest, Http10ClosesAfterTheResponse) {
  StartServer();
  Client client(server_->port());
  client.Send("GET /old HTTP/1.0\r\n\r\n");
  std::optional<RawResponse> response = client.Read();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->body, "GET /old ");
  EXPECT_TRUE(client.WaitClosed());
}

TEST_F(HttpServerTest, ShutdownClosesIdleConnectionsAndFinishesInFlightOnes) {
  StartServer();
  const int port = server_->port();
  Client idle(port);
  idle.Send(Get("/warm"));
  ASSERT_EQ(idle.Read()->status, 200);
  Client busy(port);
  busy.Send(Post("/later", "work"));
  ASSERT_TRUE(handler_.WaitHeld(1));
  std::thread stopper([&] { server_->Shutdown(absl::Seconds(10)); });
  EXPECT_TRUE(idle.WaitClosed());
  handler_.ReleaseAll();
  std::optional<RawResponse> response = busy.Read();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->body, "POST /later work");
  EXPECT_THAT(response->head, HasSubstr("connection: close"));
  EXPECT_TRUE(busy.WaitClosed());
  stopper.join();
  Client refused(port);
  EXPECT_FALSE(refused.connected());
}

TEST(HttpServerStartTest, RefusesBadAddresses) {
  EchoHandler handler;
  HttpServerOptions options;
  options.address = "no-port";
  EXPECT_EQ(HttpServer::Start(options, handler).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.address = "127.0.0.1:0";
  absl::StatusOr<std::unique_ptr<HttpServer>> first = HttpServer::Start(options, handler);
  ASSERT_TRUE(first.ok());
  options.address = absl::StrCat("127.0.0.1:", (*first)->port());
  absl::StatusOr<std::unique_ptr<HttpServer>> second = HttpServer::Start(options, handler);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("cannot serve HTTP on 127.0.0.1:"));
}

}  // namespace
}  // namespace modeld::transport::http
