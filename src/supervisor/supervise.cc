#include "supervisor/supervise.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/signal_pipe.h"
#include "supervisor/restart_policy.h"

namespace modeld::supervisor {
namespace {

constexpr std::initializer_list<int> kHandledSignals = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};

// A monotonic time for RestartPolicy, which only compares times and takes differences.
absl::Time MonotonicNow() {
  return absl::UnixEpoch() + absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

const char* SignalName(int signal) {
  switch (signal) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "a signal";
  }
}

// fork + execv of `command` (this process's environment, stdio inherited). In the child,
// the handlers and the signal mask are reset before execv, so a signal sent to it is never
// taken by this program's handlers.
absl::StatusOr<pid_t> StartChild(const std::vector<std::string>& command) {
  std::vector<char*> argv;
  argv.reserve(command.size() + 1);
  for (const std::string& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  // Prepared before fork: the child only makes system calls.
  const std::string exec_failed = absl::StrCat("modeld-supervisor: cannot execute ", command[0]);

  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &previous);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    struct sigaction default_action = {};
    default_action.sa_handler = SIG_DFL;
    sigemptyset(&default_action.sa_mask);
    for (int signal : kHandledSignals) sigaction(signal, &default_action, nullptr);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);  // the supervisor died before prctl took effect
    sigprocmask(SIG_SETMASK, &previous, nullptr);
    execv(argv[0], argv.data());
    const char* reason = std::strerror(errno);
    const iovec parts[] = {{const_cast<char*>(exec_failed.data()), exec_failed.size()},
                           {const_cast<char*>(": "), 2},
                           {const_cast<char*>(reason), std::strlen(reason)},
                           {const_cast<char*>("\n"), 1}};
    if (writev(STDERR_FILENO, parts, 4) < 0) {
      // Nothing left to report it with.
    }
    _exit(127);
  }
  const int fork_errno = errno;
  sigprocmask(SIG_SETMASK, &previous, nullptr);
  if (pid < 0) {
    return absl::InternalError(absl::StrCat("cannot fork: ", std::strerror(fork_errno)));
  }
  return pid;
}

}  // namespace

int Supervise(const SupervisorFlags& flags) {
  if (absl::Status status = common::InstallSignalPipe(kHandledSignals, SA_NOCLDSTOP);
      !status.ok()) {
    spdlog::critical("cannot start: {}", status.message());
    return 1;
  }
  if (setenv("MODELD_SUPERVISED", "1", /*overwrite=*/1) != 0) {
    spdlog::critical("cannot set MODELD_SUPERVISED: {}", std::strerror(errno));
    return 1;
  }
  const std::string command_text = absl::StrJoin(flags.command, " ");
  RestartPolicy policy(flags.policy);
  for (;;) {
    absl::StatusOr<pid_t> started = StartChild(flags.command);
    if (!started.ok()) {
      spdlog::critical("cannot start the child: {}", started.status().message());
      return 1;
    }
    const pid_t pid = *started;
    policy.ChildStarted(MonotonicNow());
    spdlog::info("started child pid {}: {}", pid, command_text);

    int wait_status = 0;
    for (;;) {
      for (int signal : common::WaitForSignals(absl::InfiniteDuration())) {
        if (signal == SIGTERM || signal == SIGINT || signal == SIGHUP) {
          spdlog::info("received {}; forwarding it to child pid {}", SignalName(signal), pid);
          if (kill(pid, signal) != 0) {
            spdlog::warn("cannot send {} to child pid {}: {}", SignalName(signal), pid,
                         std::strerror(errno));
          }
          if (signal != SIGHUP) policy.StopRequested();
        }
      }
      const pid_t reaped = waitpid(pid, &wait_status, WNOHANG);
      if (reaped == pid) break;
      if (reaped < 0 && errno != EINTR) {
        spdlog::critical("cannot wait for child pid {}: {}", pid, std::strerror(errno));
        return 1;
      }
    }

    const ChildExit exit = ChildExit::FromWaitStatus(wait_status);
    const Decision decision = policy.ChildExited(exit, MonotonicNow());
    if (decision.action == Decision::Action::kExit) {
      spdlog::log(decision.exit_code == 0 ? spdlog::level::info : spdlog::level::err,
                  "child pid {} {}; {}; exiting with status {}", pid, exit.Describe(),
                  decision.reason, decision.exit_code);
      return decision.exit_code;
    }
    spdlog::warn("child pid {} {}; {}", pid, exit.Describe(), decision.reason);

    const absl::Time restart_at = MonotonicNow() + decision.delay;
    for (absl::Time now = MonotonicNow(); now < restart_at; now = MonotonicNow()) {
      for (int signal : common::WaitForSignals(restart_at - now)) {
        if (signal == SIGTERM || signal == SIGINT) {
          spdlog::info("received {} while waiting to restart; exiting with status 0",
                       SignalName(signal));
          return 0;
        }
        if (signal == SIGHUP) spdlog::info("received SIGHUP with no child running; ignored");
      }
    }
  }
}

}  // namespace modeld::supervisor
