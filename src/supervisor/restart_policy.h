// RestartPolicy: what modeld-supervisor does when its child exits (restart after a backoff,
// or end with an exit code), and ChildExit, the text of an exit's cause. No processes and no
// clock: every call is given the time, so tests drive it with made-up times.
#pragma once

#include <deque>
#include <string>

#include "absl/time/time.h"

namespace modeld::supervisor {

// How a child process ended, as waitpid() reported it.
struct ChildExit {
  enum class Kind { kExited, kSignaled };
  Kind kind = Kind::kExited;
  int value = 0;  // the exit status (kExited) or the signal number (kSignaled)
  bool core_dumped = false;

  static ChildExit Exited(int status) { return {Kind::kExited, status, false}; }
  static ChildExit Signaled(int signal) { return {Kind::kSignaled, signal, false}; }
  // From a wait status whose WIFEXITED or WIFSIGNALED holds.
  static ChildExit FromWaitStatus(int wait_status);

  // "exited with status N", or "killed by signal SIGKILL (9)" (" (core dumped)" appended
  // when it did); a signal without an abbreviation reads "killed by signal 40".
  std::string Describe() const;
};

struct RestartPolicyOptions {
  // The first restart delay; each further restart doubles it, up to backoff_max.
  absl::Duration backoff_initial = absl::Milliseconds(500);
  absl::Duration backoff_max = absl::Seconds(30);
  // More restarts than this within crash_loop_window is a crash loop: give up.
  int crash_loop_restarts = 5;
  // Also: a child that ran at least this long resets the backoff to backoff_initial.
  absl::Duration crash_loop_window = absl::Seconds(60);
};

// What to do after the child exited.
struct Decision {
  enum class Action { kRestart, kExit };
  Action action = Action::kExit;
  absl::Duration delay = absl::ZeroDuration();  // kRestart: wait this long, then start again
  int exit_code = 0;                            // kExit: the supervisor's own exit status
  // Why, for the log: "restarting in 500 ms", "stopped on request", "not restarted (a clean
  // exit)", "crash loop: 5 restarts in 60 s; giving up", ...
  std::string reason;
};

// The policy, one child at a time. Not thread-safe (the supervisor is single-threaded).
//
// Call ChildStarted() at every start (the first one and each restart), StopRequested() when a
// stop signal was forwarded to the running child, and ChildExited() when it has exited:
//   - after StopRequested(): exit, with 0 if the child exited with status 0, else 1;
//   - exit status 0: exit 0 (a clean stop nobody here asked for, e.g. a SIGTERM sent to the
//     child directly);
//   - exit status 2 (modeld's code for bad flags and usage; a restart cannot help): exit 2;
//   - anything else (another status, death by a signal): restart after a delay that starts at
//     backoff_initial and doubles with each restart, up to backoff_max. A child that ran for
//     at least crash_loop_window resets the delay to backoff_initial first. But when
//     crash_loop_restarts restarts have already been made within the crash_loop_window before
//     this exit (another one would be more than crash_loop_restarts), give up: exit 1 with
//     "crash loop: N restarts in W s; giving up".
class RestartPolicy {
 public:
  explicit RestartPolicy(const RestartPolicyOptions& options);

  // The child was started (again) at `now`.
  void ChildStarted(absl::Time now);
  // A stop signal was forwarded to the running child: its exit ends the supervisor.
  void StopRequested() { stop_requested_ = true; }
  bool stop_requested() const { return stop_requested_; }

  // The child started last exited at `now` in the way `exit` says.
  Decision ChildExited(const ChildExit& exit, absl::Time now);

  // Restarts made so far (every ChildStarted() after the first).
  int restarts() const { return restarts_; }

 private:
  const RestartPolicyOptions options_;
  bool started_once_ = false;
  bool stop_requested_ = false;
  int restarts_ = 0;
  absl::Time last_start_ = absl::InfinitePast();
  absl::Duration next_backoff_;
  // When each restart within the last crash_loop_window happened, oldest first (older ones
  // are dropped as ChildExited() meets them).
  std::deque<absl::Time> restart_times_;
};

// A delay for the log, in whole milliseconds: "500 ms", "30000 ms".
std::string FormatDelay(absl::Duration delay);

}  // namespace modeld::supervisor
