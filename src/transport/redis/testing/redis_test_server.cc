#include "transport/redis/testing/redis_test_server.h"

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "transport/redis/hiredis_connection.h"

extern char** environ;

namespace modeld::transport::redis {
namespace {

// A port free right now on 127.0.0.1 (redis-server reads port 0 as "no TCP").
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

bool OnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "", ':')) {
    if (std::filesystem::exists(std::filesystem::path(std::string(dir)) / program)) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisTestServer>> RedisTestServer::Start(
    std::vector<std::string> extra_args) {
  if (!OnPath("redis-server")) return absl::NotFoundError("redis-server is not installed");
  const int port = FreePort();
  std::vector<std::string> args = {
      "redis-server", "--port", absl::StrCat(port), "--bind", "127.0.0.1", "--save", "",
      "--appendonly", "no",     "--loglevel",       "warning"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, "redis-server", nullptr, nullptr, argv.data(), environ) != 0) {
    return absl::UnavailableError("cannot spawn redis-server");
  }
  std::unique_ptr<RedisTestServer> server(new RedisTestServer(pid, port));
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    // Connecting without credentials works even with --requirepass; PING then says NOAUTH,
    // which still proves the server is up.
    RedisEndpoint endpoint = server->endpoint();
    absl::StatusOr<std::unique_ptr<RedisConnection>> connection =
        ConnectHiredis(endpoint, HiredisOptions(), "test");
    if (connection.ok() || absl::IsPermissionDenied(connection.status())) return server;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::UnavailableError(absl::StrCat("redis-server did not answer on port ", port));
}

RedisTestServer::~RedisTestServer() {
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
}

RedisEndpoint RedisTestServer::endpoint() const {
  RedisEndpoint endpoint;
  endpoint.host = "127.0.0.1";
  endpoint.port = port_;
  return endpoint;
}

absl::StatusOr<std::unique_ptr<RedisConnection>> RedisTestServer::Connect() const {
  return ConnectHiredis(endpoint(), HiredisOptions(), "test");
}

}  // namespace modeld::transport::redis
