#include "transport/grpc_listener.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"

namespace modeld::transport {
namespace {

// epoll data of the two descriptors that are no connection's duplicate.
constexpr uint64_t kListenTag = ~uint64_t{0};
constexpr uint64_t kWakeTag = ~uint64_t{0} - 1;

absl::Status Unavailable(const std::string& address, absl::string_view what) {
  return absl::UnavailableError(
      absl::StrCat("cannot serve gRPC on ", address, ": ", what, " (address in use or malformed?)"));
}

// "host:port" or "[v6]:port" split in two; false when there is no port.
bool SplitAddress(const std::string& address, std::string& host, std::string& port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  host = address.substr(0, colon);
  port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return !port.empty();
}

int64_t NowNs() { return absl::GetCurrentTimeNanos(); }

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcListener>> GrpcListener::Bind(GrpcListenerOptions options) {
  std::string host, port_text;
  if (!SplitAddress(options.address, host, port_text)) {
    return Unavailable(options.address, "expected host:port");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int error = getaddrinfo(host.empty() ? nullptr : host.c_str(), port_text.c_str(), &hints,
                              &found);
      error != 0) {
    return Unavailable(options.address, gai_strerror(error));
  }
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  const bool bound =
      fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
      // Accepted sockets inherit it: gRPC's own listener sets it too.
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0 &&
      bind(fd, found->ai_addr, found->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0;
  const int bind_errno = errno;
  freeaddrinfo(found);
  if (!bound) {
    if (fd >= 0) close(fd);
    return Unavailable(options.address, std::strerror(bind_errno));
  }
  sockaddr_storage local{};
  socklen_t length = sizeof(local);
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
  const int port = ntohs(local.ss_family == AF_INET6
                             ? reinterpret_cast<sockaddr_in6*>(&local)->sin6_port
                             : reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  const int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  const int epoll = epoll_create1(EPOLL_CLOEXEC);
  if (wake < 0 || epoll < 0) {
    const std::string why = std::strerror(errno);
    for (int open_fd : {fd, wake, epoll}) {
      if (open_fd >= 0) close(open_fd);
    }
    return Unavailable(options.address, why);
  }
  return std::unique_ptr<GrpcListener>(
      new GrpcListener(std::move(options), fd, port, wake, epoll));
}

GrpcListener::GrpcListener(GrpcListenerOptions options, int listen_fd, int port, int wake_fd,
                           int epoll_fd)
    : options_(std::move(options)),
      listen_fd_(listen_fd),
      port_(port),
      wake_fd_(wake_fd),
      epoll_fd_(epoll_fd) {
  if (options_.registry != nullptr) {
    refused_ = &options_.registry->GetCounter(
        "modeld_connections_rejected_total",
        "Connections refused on arrival for being over their port's connection limit.",
        {{"transport", "grpc"}});
  }
  epoll_event listen_event{.events = EPOLLIN, .data = {.u64 = kListenTag}};
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &listen_event);
  epoll_event wake_event{.events = EPOLLIN, .data = {.u64 = kWakeTag}};
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake_event);
}

GrpcListener::~GrpcListener() {
  Stop();
  close(epoll_fd_);
  close(wake_fd_);
}

void GrpcListener::Start(std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor) {
  acceptor_ = std::move(acceptor);
  thread_ = std::thread([this] { Loop(); });
}

void GrpcListener::Stop() {
  if (stopped_.exchange(true)) return;
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
}

void GrpcListener::Loop() {
  constexpr int kEvents = 64;
  epoll_event events[kEvents];
  while (!stopped_.load(std::memory_order_acquire)) {
    const int ready = epoll_wait(epoll_fd_, events, kEvents, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      spdlog::error("gRPC listener on port {} stopped: epoll_wait: {}", port_,
                    std::strerror(errno));
      return;
    }
    for (int i = 0; i < ready; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) break;
      if (tag == kListenTag) {
        AcceptAll();
      } else {
        Ended(static_cast<int>(tag));
      }
    }
  }
  // gRPC keeps its descriptors of the connections still open; the duplicates go.
  for (int watch : watches_) close(watch);
  watches_.clear();
}

void GrpcListener::AcceptAll() {
  while (true) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      // Out of descriptors (EMFILE, ENFILE) or memory: the connection waits in the backlog; try
      // again shortly rather than spin on a listener that stays readable.
      spdlog::warn("gRPC port {}: cannot accept a connection: {}", port_, std::strerror(errno));
      absl::SleepFor(absl::Milliseconds(100));
      return;
    }
    if (options_.max_connections > 0 && open_.load() >= options_.max_connections) {
      Refuse(fd);
      continue;
    }
    const int watch = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    epoll_event event{.events = 0, .data = {.u64 = static_cast<uint64_t>(watch)}};
    if (watch < 0 || epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, watch, &event) != 0) {
      // Without a duplicate to watch it could not be counted: refuse it like one over the cap.
      if (watch >= 0) close(watch);
      Refuse(fd);
      continue;
    }
    watches_.insert(watch);
    open_.fetch_add(1);
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters connection;
    connection.listener_fd = listen_fd_;
    connection.fd = fd;
    acceptor_->HandleNewConnection(&connection);
  }
}

void GrpcListener::Refuse(int fd) {
  // Closed before any HTTP/2: the client's connection attempt fails, and its calls get
  // UNAVAILABLE at once. (A GOAWAY would read as a graceful drain, and the client would retry
  // the call on a new connection, into the same refusal, until its deadline.)
  close(fd);
  if (refused_ != nullptr) refused_->Increment();
  ++refused_since_log_;
  const int64_t now = NowNs();
  if (now - last_log_ns_ >= absl::ToInt64Nanoseconds(absl::Seconds(10))) {
    spdlog::warn(
        "gRPC port {}: refused {} connection(s) over the limit of {} open at once "
        "(--grpc-max-connections)",
        port_, refused_since_log_, options_.max_connections);
    refused_since_log_ = 0;
    last_log_ns_ = now;
  }
}

void GrpcListener::Ended(int watch_fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, watch_fd, nullptr);
  watches_.erase(watch_fd);
  close(watch_fd);
  open_.fetch_sub(1);
}

}  // namespace modeld::transport
