// modeld: keeps models resident in one process and serves them to web applications.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "server/options.h"
#include "server/server.h"

namespace {

// Stop and reload signals are written to a pipe that main() reads. A handler is used rather than
// sigwait() with a blocked mask because libraries start threads before main() (OpenBLAS
// does), and a signal delivered to such a thread would otherwise kill the process.
int stop_pipe[2] = {-1, -1};

void OnStopSignal(int signal) {
  const int saved_errno = errno;
  const unsigned char byte = static_cast<unsigned char>(signal);
  if (write(stop_pipe[1], &byte, 1) < 0) {
    // Nothing useful can be done inside a signal handler; the pipe is never full in practice.
  }
  errno = saved_errno;
}

absl::Status InstallStopHandlers() {
  if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
    return absl::InternalError("cannot create a pipe");
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  if (sigaction(SIGTERM, &action, nullptr) != 0 || sigaction(SIGINT, &action, nullptr) != 0 ||
      sigaction(SIGHUP, &action, nullptr) != 0) {
    return absl::InternalError("cannot install the SIGTERM/SIGINT/SIGHUP handlers");
  }
  return absl::OkStatus();
}

// Blocks until SIGTERM, SIGINT or SIGHUP has arrived (possibly long ago). It waits in poll()
// rather than in read(): ThreadSanitizer defers a handler until the thread leaves a call it
// knows may block, and read() is not one of those in clang 14's runtime, so under SA_RESTART
// the handler (and with it the byte this read would return) never ran under make test-tsan.
int WaitForSignal() {
  struct pollfd readable = {stop_pipe[0], POLLIN, 0};
  unsigned char byte = 0;
  for (;;) {
    if (poll(&readable, 1, -1) < 0 && errno != EINTR) return SIGTERM;  // cannot wait: stop
    const ssize_t n = read(stop_pipe[0], &byte, 1);
    if (n == 1) return byte;
    if (n < 0 && errno != EINTR && errno != EAGAIN) return SIGTERM;
  }
}

}  // namespace

int main(int argc, char** argv) {
  // TensorFlow (opened later, for the first SavedModel) logs its INFO lines to stderr between
  // ours; warnings and errors are enough. Set before any thread could read the environment;
  // a value the user set wins.
  setenv("TF_CPP_MIN_LOG_LEVEL", "1", /*overwrite=*/0);
  absl::StatusOr<modeld::server::ParsedFlags> flags = modeld::server::ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::cerr << "modeld: " << flags.status().message() << "\n";
    return 2;
  }
  if (flags->help) {
    std::cout << modeld::server::FlagsHelp();
    return 0;
  }
  if (absl::Status status = modeld::common::InitLogging(flags->options.log_level); !status.ok()) {
    std::cerr << "modeld: " << status.message() << "\n";
    return 2;
  }

  // Abseil's mutex deadlock detection is on in Debian's build; it costs CPU on every lock
  // and modeld's lock order is fixed by design (no nested locks across components).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // Installed before loading, so a stop signal during loading is honoured once it is done.
  if (absl::Status status = InstallStopHandlers(); !status.ok()) {
    spdlog::critical("cannot start: {}", status.message());
    return 1;
  }

  auto server = modeld::server::Server::Start(flags->options);
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", server.status().message());
    return 1;
  }
  // SIGHUP re-reads the token file and rescans the repository (--model-control-mode=poll);
  // SIGTERM and SIGINT stop.
  int signal = 0;
  while ((signal = WaitForSignal()) == SIGHUP) {
    spdlog::info("received SIGHUP");
    (*server)->ReloadAuthTokens();
    (*server)->Rescan();
  }
  spdlog::info("received {}", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown();
  return 0;
}
