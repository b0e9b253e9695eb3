// The command line of modeld-supervisor:
//   modeld-supervisor [flags] -- /path/to/modeld [modeld flags]
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "supervisor/restart_policy.h"

namespace modeld::supervisor {

struct SupervisorFlags {
  RestartPolicyOptions policy;
  // The child's argv: the program (a path; PATH is not searched) and its arguments. Never
  // empty unless help is set.
  std::vector<std::string> command;
  bool help = false;  // --help (or -h) came before "--": print SupervisorHelp() and exit 0
};

// Parses argv (argv[0] is skipped). Supervisor flags come first, as --name=value or
// --name value, then "--" and the command. INVALID_ARGUMENT names an unknown flag, a bad
// value (not a whole number, out of range, --backoff-max-ms below --backoff-initial-ms), an
// argument before "--" that is not a flag, or a missing command. Ranges:
// --backoff-initial-ms and --backoff-max-ms >= 1, --crash-loop-restarts >= 0,
// --crash-loop-window-seconds >= 1.
absl::StatusOr<SupervisorFlags> ParseSupervisorFlags(int argc, const char* const* argv);

// The usage text --help prints.
std::string SupervisorHelp();

}  // namespace modeld::supervisor
