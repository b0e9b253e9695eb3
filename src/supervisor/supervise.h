// The process side of modeld-supervisor: fork/exec of the child, signals, waitpid. The
// decisions (restart or stop, the backoff, crash loops) are RestartPolicy's.
#pragma once

#include "supervisor/supervisor_flags.h"

namespace modeld::supervisor {

// Runs flags.command as a child process and keeps it running; returns the supervisor's exit
// status. Call once per process, from a single-threaded process, after logging is set up.
//
// - The child is started with fork + execv (no shell, PATH not searched), with this process's
//   environment plus MODELD_SUPERVISED=1, and inherits stdin, stdout and stderr. It gets
//   SIGTERM if the supervisor dies (PR_SET_PDEATHSIG).
// - Every start is logged with the child's pid ("started child pid N: <command>"), every
//   exit with its cause and what follows ("child pid N killed by signal SIGKILL (9);
//   restarting in 500 ms"). Restarts follow RestartPolicy (restart_policy.h).
// - SIGTERM and SIGINT are forwarded to the running child, which is then not restarted: the
//   supervisor returns 0 once it exits with status 0, else 1. During a restart delay they
//   end the supervisor at once (0).
// - SIGHUP is forwarded to the running child and changes nothing else (during a restart
//   delay it is logged and dropped).
// - A child that cannot be forked is an error: 1. One that cannot be executed exits 127 (the
//   reason on stderr) and is restarted like any other failure.
// Signals reach a self-pipe (written by handlers), which is polled; nothing busy-waits.
int Supervise(const SupervisorFlags& flags);

}  // namespace modeld::supervisor
