// A self-pipe for signals, shared by modeld and modeld-supervisor: the handler writes each
// signal's number to a pipe, and the main loop waits for it in poll().
//
// A handler is used rather than sigwait() with a blocked mask because libraries start threads
// before main() (OpenBLAS does), and a signal delivered to such a thread would otherwise kill
// the process. The wait is poll() rather than a blocking read(): ThreadSanitizer runs a
// handler only once the thread leaves a call it knows may block, and read() is not one of
// those in clang 14's runtime, so under SA_RESTART modeld never saw SIGHUP or SIGTERM in
// make test-tsan.
#pragma once

#include <initializer_list>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace modeld::common {

// Installs the handler for `signals` (with SA_RESTART and `extra_flags`, e.g. SA_NOCLDSTOP).
// Call once per process, before the threads that should inherit it start.
absl::Status InstallSignalPipe(std::initializer_list<int> signals, int extra_flags = 0);

// Waits until a signal arrives or `timeout` passes (absl::InfiniteDuration(): no limit);
// returns the signals that arrived since the last call, oldest first (none after a timeout
// or an interrupted wait: the caller loops).
std::vector<int> WaitForSignals(absl::Duration timeout);

}  // namespace modeld::common
