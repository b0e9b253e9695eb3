#include "common/signal_pipe.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace modeld::common {
namespace {

int signal_pipe[2] = {-1, -1};

void OnSignal(int signal) {
  const int saved_errno = errno;
  const unsigned char byte = static_cast<unsigned char>(signal);
  if (write(signal_pipe[1], &byte, 1) < 0) {
    // Full (EAGAIN): the loop has plenty of unread wake-ups already; nothing else to do here.
  }
  errno = saved_errno;
}

}  // namespace

absl::Status InstallSignalPipe(std::initializer_list<int> signals, int extra_flags) {
  if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(absl::StrCat("cannot create a pipe: ", std::strerror(errno)));
  }
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART | extra_flags;
  for (int signal : signals) {
    if (sigaction(signal, &action, nullptr) != 0) {
      return absl::InternalError(
          absl::StrCat("cannot install a handler for ", sigabbrev_np(signal)));
    }
  }
  return absl::OkStatus();
}

std::vector<int> WaitForSignals(absl::Duration timeout) {
  int timeout_ms = -1;
  if (timeout != absl::InfiniteDuration()) {
    timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(
        absl::Ceil(std::max(timeout, absl::ZeroDuration()), absl::Milliseconds(1))));
  }
  struct pollfd fd = {signal_pipe[0], POLLIN, 0};
  std::vector<int> signals;
  if (poll(&fd, 1, timeout_ms) <= 0) return signals;  // timeout, or EINTR
  unsigned char bytes[64];
  for (;;) {
    const ssize_t n = read(signal_pipe[0], bytes, sizeof(bytes));
    if (n > 0) {
      signals.insert(signals.end(), bytes, bytes + n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;  // EAGAIN: drained
  }
  return signals;
}

}  // namespace modeld::common
